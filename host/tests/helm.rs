//! The Helm chart (`deploy/charts/airlock`) with the real `helm` binary: lint and template are
//! clean, the rendered Deployment is locked down and only uses flags `airlock run` has,
//! `helm install` into the real control plane creates every object, the rendered objects pass
//! a server-side dry run, and the operator running with exactly the chart's RBAC (a client
//! impersonating the chart's ServiceAccount) syncs ExternalSecrets — so the RBAC is
//! sufficient — while the rules stay least-privilege.

mod cluster;

use cluster::{apply, eventually};

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use airlock::controller::{self, Config, leader::LeaderElection};
use airlock::crd::{
    ClusterExternalSecret, ClusterSecretStore, ExternalSecret, Provider, SecretStore,
};
use airlock_testenv::ControlPlane;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The release every cluster test shares (its Providers and ClusterRole are cluster-wide).
const RELEASE: &str = "airlock";
/// Its namespace.
const RELEASE_NAMESPACE: &str = "airlock-system";
/// The ServiceAccount the chart creates for that release.
const SERVICE_ACCOUNT: &str = "airlock";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/charts/airlock")
}

/// Runs helm with private config/cache/data directories; returns (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().expect("helm home").keep());
    let output = Command::new(airlock_testenv::tools::helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("running helm");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `helm ARGS` that must succeed; its stdout.
fn helm_ok(args: &[&str]) -> String {
    let (ok, out, err) = helm(args);
    assert!(ok, "helm {args:?} failed:\n{err}{out}");
    out
}

/// The documents of a YAML stream, as JSON values (empty documents dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("helm output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` of the chart with `args` (e.g. `--set x=y`).
fn render(args: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut all = vec![
        "template",
        RELEASE,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        RELEASE_NAMESPACE,
    ];
    all.extend_from_slice(args);
    documents(&helm_ok(&all))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {found:#?}");
    found[0]
}

fn names(docs: &[&Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["metadata"]["name"].as_str().expect("a name").to_string())
        .collect()
}

/// Installs the chart once per test process (leader election on, so its Lease Role exists)
/// and returns the manifest helm recorded for the release.
fn installed() -> &'static str {
    static MANIFEST: OnceLock<String> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let kubeconfig = ControlPlane::shared().kubeconfig_path();
        let kubeconfig = kubeconfig.to_str().expect("utf-8 path");
        let chart = chart();
        let out = helm_ok(&[
            "install",
            RELEASE,
            chart.to_str().expect("utf-8 path"),
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            "--set",
            "leaderElect=true",
        ]);
        assert!(out.contains("STATUS: deployed"), "{out}");
        assert!(
            out.contains("kubectl get providers.airlock.dev"),
            "NOTES.txt tells the next command:\n{out}"
        );
        helm_ok(&[
            "get",
            "manifest",
            RELEASE,
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            RELEASE_NAMESPACE,
        ])
    })
}

#[test]
fn helm_lint_and_template_are_clean() {
    let chart = chart();
    let chart = chart.to_str().expect("utf-8 path");
    let lint = helm_ok(&["lint", "--strict", chart]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    assert!(
        !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
        "{lint}"
    );
    // Every optional part switched on renders too.
    let all_on = render(&[
        "--set",
        "leaderElect=true,replicaCount=2,networkPolicy.enabled=true,serviceMonitor.enabled=true,grafanaDashboard.enabled=true,prometheusRule.enabled=true",
        "--set",
        "scopedNamespace=team-a,controllerClass=blue",
        "--set-json",
        r#"extraArgs={"enable-leader-election":""}"#,
    ]);
    for kind in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceMonitor",
        "NetworkPolicy",
        "PrometheusRule",
    ] {
        one(&all_on, kind);
    }
}

#[test]
fn bad_values_are_refused_with_the_offending_field() {
    let chart = chart();
    let chart = chart.to_str().expect("utf-8 path");
    for (set, expected) in [
        ("log.format=xml", "/log/format"),
        ("replicaCount=2", "replicaCount > 1 needs leaderElect: true"),
        ("replicasCount=1", "replicasCount"),
    ] {
        let (ok, out, err) = helm(&["template", "x", chart, "--set", set]);
        assert!(!ok, "--set {set} was accepted:\n{out}");
        assert!(err.contains(expected), "--set {set}: {err}");
    }
    let (ok, _, err) = helm(&[
        "template",
        "x",
        chart,
        "--set-json",
        r#"providers.vault.allowedOutboundHosts=["vault.corp:8200"]"#,
    ]);
    assert!(!ok);
    assert!(
        err.contains("/providers/vault/allowedOutboundHosts/0"),
        "{err}"
    );
}

#[test]
fn the_deployment_is_locked_down_and_uses_only_real_operator_flags() {
    let docs = render(&["--set", "leaderElect=true,replicaCount=2"]);
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], SERVICE_ACCOUNT);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The only writable paths are the module cache and /tmp (emptyDirs).
    let mounts: BTreeSet<&str> = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["mountPath"].as_str().expect("path"))
        .collect();
    assert_eq!(mounts, BTreeSet::from(["/var/cache/airlock", "/tmp"]));

    // Every argument is one the real CLI accepts.
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    for wanted in [
        "--enable-leader-election",
        "--leader-election-id=airlock-controller",
        "--concurrent=8",
        "--client-qps=50",
        "--client-burst=100",
        "--metrics-addr=0.0.0.0:8080",
        "--log-format=json",
    ] {
        assert!(args.contains(&wanted), "{wanted} missing from {args:?}");
    }
    let parsed = <airlock::cli::Cli as clap::Parser>::try_parse_from(
        std::iter::once("airlock").chain(args.iter().copied()),
    );
    assert!(
        parsed.is_ok(),
        "airlock rejects the chart's args {args:?}: {parsed:?}"
    );
    // The Lease is looked up in the pod's namespace.
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "POD_NAMESPACE"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace")
    );
}

#[test]
fn bundled_providers_can_be_disabled_regranted_and_extended_from_oci() {
    let docs = render(&[]);
    let providers = of_kind(&docs, "Provider");
    assert_eq!(
        names(&providers),
        BTreeSet::from([
            "akeyless".into(),
            "aws".into(),
            "azurekv".into(),
            "doppler".into(),
            "fake".into(),
            "gcpsm".into(),
            "gitlab".into(),
            "onepassword".into(),
            "vault".into(),
            "webhook".into()
        ])
    );
    let spec = |name: &str| {
        providers
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .map(|p| p["spec"].clone())
            .expect("provider")
    };
    assert_eq!(spec("fake")["module"]["path"], "airlock_provider_fake.wasm");
    assert_eq!(spec("fake")["allowedOutboundHosts"], json!([]));
    assert_eq!(spec("aws")["module"]["path"], "airlock_provider_aws.wasm");
    assert_eq!(
        spec("aws")["allowedOutboundHosts"],
        json!([
            "https://secretsmanager.*.amazonaws.com",
            "https://ssm.*.amazonaws.com",
            "https://sts.*.amazonaws.com",
            "https://sts.amazonaws.com"
        ])
    );
    assert_eq!(spec("vault")["allowedOutboundHosts"], json!([]));
    assert!(
        spec("vault").get("enabled").is_none(),
        "enabled is not a spec field"
    );
    assert_eq!(
        spec("doppler")["allowedOutboundHosts"],
        json!(["https://api.doppler.com"])
    );
    assert_eq!(
        spec("gitlab")["allowedOutboundHosts"],
        json!(["https://gitlab.com"])
    );
    // Azure Key Vault: the clouds' vaults and Entra ID, never IMDS by default.
    let azure = spec("azurekv")["allowedOutboundHosts"].clone();
    assert_eq!(azure[0], "https://*.vault.azure.net");
    assert!(
        azure
            .as_array()
            .unwrap()
            .contains(&json!("https://login.microsoftonline.com"))
    );
    assert!(!azure.to_string().contains("169.254.169.254"));

    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let docs = render(&[
        "--set",
        "providers.fake.enabled=false",
        // The bundled Doppler provider steps aside for an OCI one of the same name.
        "--set",
        "providers.doppler.enabled=false",
        "--set-json",
        r#"providers.vault.allowedOutboundHosts=["https://vault.corp:8200"]"#,
        "--set-json",
        &format!(
            r#"extraProviders=[{{"name":"doppler","module":{{"oci":"ghcr.io/example/doppler:0.1.0@{digest}"}},"allowedOutboundHosts":["https://api.doppler.com"]}}]"#
        ),
    ]);
    let providers = of_kind(&docs, "Provider");
    assert_eq!(
        names(&providers),
        BTreeSet::from([
            "akeyless".into(),
            "aws".into(),
            "azurekv".into(),
            "doppler".into(),
            "gcpsm".into(),
            "gitlab".into(),
            "onepassword".into(),
            "vault".into(),
            "webhook".into()
        ])
    );
    let vault = providers
        .iter()
        .find(|p| p["metadata"]["name"] == "vault")
        .expect("vault");
    assert_eq!(
        vault["spec"]["allowedOutboundHosts"],
        json!(["https://vault.corp:8200"])
    );
    let doppler = providers
        .iter()
        .find(|p| p["metadata"]["name"] == "doppler")
        .expect("doppler");
    assert_eq!(
        doppler["spec"],
        json!({"module": {"oci": format!("ghcr.io/example/doppler:0.1.0@{digest}")},
               "allowedOutboundHosts": ["https://api.doppler.com"]})
    );
}

/// The chart bundles exactly the providers registered in the root Cargo.toml, each loading
/// the file the image ships (so adding a provider without its values.yaml entry, or the
/// other way round, fails here).
#[test]
fn the_charts_bundled_providers_are_the_ones_registered_in_cargo_toml() {
    let docs = render(&[]);
    let rendered: BTreeMap<String, Value> = of_kind(&docs, "Provider")
        .into_iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().expect("a name").to_string();
            (name, p["spec"]["module"]["path"].clone())
        })
        .collect();
    let registered: BTreeMap<String, Value> = airlock_test_artifacts::BUNDLED
        .iter()
        .map(|b| (b.key.to_string(), json!(b.file_name)))
        .collect();
    assert_eq!(rendered, registered);
}

#[test]
fn the_chart_carries_the_generated_crds_in_its_crds_directory() {
    // In crds/ (not templates/), Helm installs them before the chart's Provider objects.
    let with = render(&["--include-crds"]);
    let crds = of_kind(&with, "CustomResourceDefinition");
    let generated: Vec<_> = airlock::crd::all()
        .into_iter()
        .map(|c| serde_json::to_value(c).expect("crd"))
        .collect();
    assert_eq!(crds.len(), generated.len());
    for crd in crds {
        let name = &crd["metadata"]["name"];
        let ours = generated
            .iter()
            .find(|g| &g["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not generated by `airlock crds`"));
        assert_eq!(
            crd["spec"], ours["spec"],
            "{name} differs from `airlock crds`"
        );
    }
    assert!(of_kind(&render(&[]), "CustomResourceDefinition").is_empty());
}

#[test]
fn the_charts_rbac_is_least_privilege() {
    let docs = render(&["--set", "leaderElect=true"]);
    let cluster_role = one(&docs, "ClusterRole");
    let role = one(&docs, "Role");
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in cluster_role["rules"].as_array().expect("rules") {
        assert!(rule.get("resourceNames").is_none(), "{rule}");
        for group in rule["apiGroups"].as_array().expect("groups") {
            for resource in rule["resources"].as_array().expect("resources") {
                let key = format!(
                    "{}/{}",
                    group.as_str().expect("group"),
                    resource.as_str().expect("resource")
                );
                for verb in rule["verbs"].as_array().expect("verbs") {
                    granted
                        .entry(key.clone())
                        .or_default()
                        .insert(verb.as_str().expect("verb").into());
                }
            }
        }
    }
    let set = |verbs: &[&str]| verbs.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>();
    let read = ["get", "list", "watch"];
    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("airlock.dev/providers", set(&read)),
        ("airlock.dev/providers/status", set(&["patch"])),
        ("external-secrets.io/secretstores", set(&read)),
        ("external-secrets.io/clustersecretstores", set(&read)),
        (
            "external-secrets.io/externalsecrets",
            set(&["get", "list", "watch", "create", "patch", "delete"]),
        ),
        ("external-secrets.io/clusterexternalsecrets", set(&read)),
        ("external-secrets.io/secretstores/status", set(&["patch"])),
        (
            "external-secrets.io/clustersecretstores/status",
            set(&["patch"]),
        ),
        (
            "external-secrets.io/externalsecrets/status",
            set(&["patch"]),
        ),
        (
            "external-secrets.io/clusterexternalsecrets/status",
            set(&["patch"]),
        ),
        (
            "external-secrets.io/externalsecrets/finalizers",
            set(&["update"]),
        ),
        (
            "external-secrets.io/clusterexternalsecrets/finalizers",
            set(&["update"]),
        ),
        (
            "/secrets",
            set(&["get", "list", "watch", "create", "patch", "delete"]),
        ),
        // The PushSecret controller: its finalizer is added and removed with a patch; the
        // ClusterPushSecret controller creates, applies and deletes the PushSecrets it owns.
        (
            "external-secrets.io/pushsecrets",
            set(&["get", "list", "watch", "create", "patch", "delete"]),
        ),
        ("external-secrets.io/pushsecrets/status", set(&["patch"])),
        ("external-secrets.io/clusterpushsecrets", set(&read)),
        (
            "external-secrets.io/clusterpushsecrets/status",
            set(&["patch"]),
        ),
        (
            "external-secrets.io/clusterpushsecrets/finalizers",
            set(&["update"]),
        ),
        ("generators.external-secrets.io/passwords", set(&["get"])),
        ("generators.external-secrets.io/uuids", set(&["get"])),
        ("generators.external-secrets.io/fakes", set(&["get"])),
        ("generators.external-secrets.io/mfas", set(&["get"])),
        (
            "generators.external-secrets.io/clustergenerators",
            set(&["get"]),
        ),
        (
            "generators.external-secrets.io/generatorstates",
            set(&["get", "list", "watch", "patch", "delete"]),
        ),
        ("/configmaps", set(&["get"])),
        ("/namespaces", set(&read)),
        ("/serviceaccounts/token", set(&["create"])),
        ("/serviceaccounts", set(&["get"])),
        ("events.k8s.io/events", set(&["create", "patch"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(
        granted, expected,
        "the ClusterRole changed; update this list only with a reason"
    );
    // No wildcard anywhere (the map above already rules out Secret update and Pods).
    let rbac = serde_json::to_string(&[cluster_role, role]).expect("json");
    assert!(!rbac.contains("\"*\""), "a wildcard in the RBAC");

    // Leases: only in the release namespace, created once, then only the named Lease.
    assert_eq!(role["metadata"]["namespace"], RELEASE_NAMESPACE);
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["airlock-controller"], "verbs": ["get", "update"]},
        ])
    );
    // Without leader election there is no Lease access at all; without token auth no
    // serviceaccounts/token.
    let minimal = render(&["--set", "rbac.serviceAccountTokenCreate=false"]);
    assert!(of_kind(&minimal, "Role").is_empty());
    assert!(
        !serde_json::to_string(&minimal)
            .expect("json")
            .contains("serviceaccounts/token")
    );
}

#[tokio::test]
async fn helm_install_creates_every_object() {
    let manifest = installed();
    let docs = documents(manifest);
    let kinds: BTreeSet<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Provider",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ])
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), manifest).expect("write manifest");
    let found = airlock_testenv::kubectl([
        OsStr::new("get"),
        OsStr::new("-f"),
        file.path().as_os_str(),
        OsStr::new("-o"),
        OsStr::new("name"),
    ])
    .expect("every object of the release exists");
    assert_eq!(found.lines().count(), docs.len(), "{found}");
    // The CRDs from the chart's crds/ directory (not part of the release manifest).
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(ControlPlane::shared().client());
    for crd in airlock::crd::all() {
        crds.get(&crd.name_any())
            .await
            .expect("a CRD from the chart");
    }
    let providers: Api<Provider> = Api::all(ControlPlane::shared().client());
    for name in ["fake", "aws", "vault"] {
        providers.get(name).await.expect("a bundled Provider");
    }
}

#[tokio::test]
async fn the_rendered_deployment_and_rbac_pass_server_side_dry_run() {
    installed();
    let ns = airlock_testenv::new_namespace("helm-dry")
        .await
        .expect("namespace");
    let chart = chart();
    let yaml = helm_ok(&[
        "template",
        "dry",
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        &ns,
        "--set",
        "leaderElect=true,replicaCount=2,networkPolicy.enabled=true",
        "--set",
        "providers.fake.enabled=false,providers.aws.enabled=false,providers.vault.enabled=false",
        "--set",
        "providers.doppler.enabled=false,providers.gitlab.enabled=false",
        "--set",
        "providers.onepassword.enabled=false,providers.azurekv.enabled=false,providers.akeyless.enabled=false,providers.gcpsm.enabled=false,providers.webhook.enabled=false",
    ]);
    let docs = documents(&yaml);
    assert!(of_kind(&docs, "Provider").is_empty());
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &yaml).expect("write");
    let out = airlock_testenv::kubectl([
        OsStr::new("apply"),
        OsStr::new("--server-side"),
        OsStr::new("--dry-run=server"),
        OsStr::new("-f"),
        file.path().as_os_str(),
    ])
    .expect("the server accepts every rendered object");
    for kind in [
        "deployment.apps",
        "clusterrole.rbac",
        "role.rbac",
        "networkpolicy",
    ] {
        assert!(out.contains(kind), "{kind} not in:\n{out}");
    }
    assert_eq!(out.matches("(server dry run)").count(), docs.len(), "{out}");
}

/// A client that is exactly the chart's ServiceAccount, as the kubelet would give the pod.
fn as_service_account() -> Client {
    ControlPlane::shared().client_as(
        &format!("system:serviceaccount:{RELEASE_NAMESPACE}:{SERVICE_ACCOUNT}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{RELEASE_NAMESPACE}"),
            "system:authenticated",
        ],
    )
}

#[test]
fn the_service_account_is_refused_what_the_chart_does_not_grant() {
    installed();
    let user = format!("--as=system:serviceaccount:{RELEASE_NAMESPACE}:{SERVICE_ACCOUNT}");
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", user.as_str()];
        all.extend_from_slice(args);
        // `can-i` exits 1 for "no".
        airlock_testenv::kubectl(&all).is_ok()
    };
    assert!(can(&["list", "secrets", "--all-namespaces"]));
    assert!(can(&[
        "patch",
        "externalsecrets.external-secrets.io/status",
        "-n",
        "default"
    ]));
    assert!(can(&[
        "update",
        "leases/airlock-controller",
        "-n",
        RELEASE_NAMESPACE
    ]));
    for refused in [
        &["update", "secrets", "-n", "default"][..],
        &["deletecollection", "secrets", "-n", "default"],
        &["list", "configmaps", "-n", "default"],
        &["get", "pods", "-n", "default"],
        &["create", "pods", "-n", "default"],
        &["list", "serviceaccounts", "-n", "default"],
        &["patch", "providers.airlock.dev"],
        &["delete", "providers.airlock.dev"],
        &[
            "update",
            "externalsecrets.external-secrets.io",
            "-n",
            "default",
        ],
        // ClusterPushSecret creates PushSecrets with server-side apply (create and patch),
        // never with update.
        &["update", "pushsecrets.external-secrets.io", "-n", "default"],
        &["update", "clusterpushsecrets.external-secrets.io"],
        &["update", "leases/kube-scheduler", "-n", RELEASE_NAMESPACE],
        &["get", "leases", "-n", "kube-system"],
        &["create", "clusterroles"],
        &["escalate", "clusterroles"],
        &["impersonate", "serviceaccounts"],
    ] {
        assert!(!can(refused), "the chart's ServiceAccount may {refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_with_exactly_the_charts_rbac_syncs_external_secrets() {
    installed();
    let admin = ControlPlane::shared().client();
    let ns = airlock_testenv::new_namespace("helm-rbac")
        .await
        .expect("namespace");
    let label = format!("helm-rbac-{}", &ns[ns.len() - 8..]);
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {label.as_str(): "yes"}}})),
        )
        .await
        .expect("label the namespace");

    // The operator as the pod would run it: the chart's ServiceAccount, the chart's fake
    // Provider (module airlock_provider_fake.wasm), leader election on the chart's Lease.
    let client = as_service_account();
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::FAKE,
        providers.path().join("airlock_provider_fake.wasm"),
    )
    .expect("copy the fake provider");
    let runtime = cluster::kube_runtime(&client, None);
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        ..Config::default()
    };
    let election = LeaderElection::new(RELEASE_NAMESPACE, "airlock-controller", "helm-test");
    let operator = tokio::spawn({
        let client = client.clone();
        async move {
            election
                .run(client.clone(), controller::run(client, runtime, config))
                .await
        }
    });

    // The Provider status is patched by the operator.
    let provider_api: Api<Provider> = Api::all(admin.clone());
    eventually("the chart's fake Provider Ready", || async {
        let p = provider_api.get("fake").await.ok()?;
        p.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == airlock::crd::ConditionStatus::True)
            .then_some(())
    })
    .await;

    let store = format!("helm-{}", &ns[ns.len() - 8..]);
    apply(
        &Api::<SecretStore>::namespaced(admin.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "fake", "namespace": ns},
               "spec": {"provider": {"fake": {"data": [
                   {"key": "db", "value": "{\"username\":\"app\",\"password\":\"pw\"}"}]}}}}),
    )
    .await;
    apply(
        &Api::<ClusterSecretStore>::all(admin.clone()),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
               "metadata": {"name": store},
               "spec": {"provider": {"fake": {"data": [{"key": "api", "value": "k3y"}]}}}}),
    )
    .await;
    apply(
        &Api::<ExternalSecret>::namespaced(admin.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": ns},
               "spec": {"refreshInterval": "1h",
                        "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
                        "target": {"name": "db-secret"},
                        "data": [{"secretKey": "password",
                                  "remoteRef": {"key": "db", "property": "password"}}]}}),
    )
    .await;
    apply(
        &Api::<ClusterExternalSecret>::all(admin.clone()),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
               "metadata": {"name": store},
               "spec": {"externalSecretName": "api",
                        "namespaceSelectors": [{"matchLabels": {label.as_str(): "yes"}}],
                        "externalSecretSpec": {
                            "secretStoreRef": {"name": store, "kind": "ClusterSecretStore"},
                            "target": {"name": "api-secret"},
                            "data": [{"secretKey": "key", "remoteRef": {"key": "api"}}]}}}),
    )
    .await;

    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    for (name, key, value) in [
        ("db-secret", "password", "pw"),
        ("api-secret", "key", "k3y"),
    ] {
        eventually(
            &format!("{ns}/{name} synced by the chart's RBAC"),
            || async {
                let s = secrets.get_opt(name).await.ok()??;
                (s.data?.get(key)?.0 == value.as_bytes()).then_some(())
            },
        )
        .await;
    }
    let es_api: Api<ExternalSecret> = Api::namespaced(admin.clone(), &ns);
    let es = es_api.get("db").await.expect("the ExternalSecret");
    let ready = es
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    assert_eq!(
        ready.status,
        airlock::crd::ConditionStatus::True,
        "{ready:?}"
    );
    // The stores were validated (status patch) and an Event was published.
    let stores: Api<SecretStore> = Api::namespaced(admin.clone(), &ns);
    eventually("the SecretStore validated", || async {
        let s = stores.get("fake").await.ok()?;
        s.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == airlock::crd::ConditionStatus::True)
            .then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    eventually("an Event about the ExternalSecret", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("db"))
            .then_some(())
    })
    .await;
    // The Lease is held through the chart's Role.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    let lease = leases.get("airlock-controller").await.expect("the Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("helm-test")
    );
    let ces_api: Api<ClusterExternalSecret> = Api::all(admin.clone());
    let ces = ces_api
        .get(&store)
        .await
        .expect("the ClusterExternalSecret");
    assert!(
        ces.status
            .and_then(|s| s.provisioned_namespaces)
            .unwrap_or_default()
            .contains(&ns),
        "the ClusterExternalSecret provisioned {ns}"
    );
    operator.abort();
}

// Issue 26 (observability): the dashboard and the alert rules.

/// The series `/metrics` serves: every family the operator declares, with a histogram's
/// `_bucket`, `_sum` and `_count`.
fn exported_series() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in airlock::metrics::Metrics::default().render().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        names.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The metric names a PromQL expression reads: its identifiers once strings, label
/// matchers, ranges and `by (...)` groupings are cut out, minus functions and keywords.
fn series_in(expr: &str) -> BTreeSet<String> {
    let cut =
        regex::Regex::new(r#""[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)"#)
            .expect("regex");
    let bare = cut.replace_all(expr, " ");
    let word = regex::Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?").expect("regex");
    word.find_iter(&bare)
        .map(|m| m.as_str())
        .filter(|w| !w.ends_with('('))
        .map(str::trim)
        .filter(|w| !matches!(*w, "and" | "or" | "unless" | "bool" | "offset"))
        .map(String::from)
        .collect()
}

/// The dashboard JSON in the chart's Grafana sidecar ConfigMap of `docs`.
fn dashboard_of(docs: &[Value]) -> Value {
    let maps = of_kind(docs, "ConfigMap");
    let cm = maps
        .iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-dashboard"))
        })
        .expect("the dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    serde_json::from_str(cm["data"]["airlock.json"].as_str().expect("airlock.json"))
        .expect("the dashboard is JSON")
}

#[test]
fn the_grafana_dashboard_passes_grafanas_own_dashboard_schema_and_a_broken_one_fails_it() {
    let docs = render(&["--set", "grafanaDashboard.enabled=true"]);
    let dashboard = dashboard_of(&docs);
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, value: &Value| {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(value).expect("JSON")).expect("write");
        file
    };
    let chart = write("airlock.json", &dashboard);
    let (valid, report) = airlock_testenv::tools::check_grafana_dashboards(&[&chart]);
    assert!(
        valid,
        "the chart's dashboard fails Grafana's schema:\n{report}"
    );
    assert!(
        report.trim_end().ends_with("airlock.json: valid"),
        "{report}"
    );

    // The check can fail: a panel whose gridPos is not an object, and no schemaVersion.
    let panels = dashboard["panels"].as_array().expect("panels");
    let at = panels
        .iter()
        .position(|p| p["type"] != "row")
        .expect("a panel that is not a row");
    let mut bad_grid = dashboard.clone();
    bad_grid["panels"][at]["gridPos"] = json!("0,1,6,6");
    let mut no_version = dashboard.clone();
    no_version
        .as_object_mut()
        .expect("an object")
        .remove("schemaVersion");
    let bad_grid = write("bad-grid.json", &bad_grid);
    let no_version = write("no-version.json", &no_version);
    let (valid, report) =
        airlock_testenv::tools::check_grafana_dashboards(&[&bad_grid, &no_version]);
    assert!(!valid, "{report}");
    assert!(
        report.contains(&format!(
            "bad-grid.json: /panels/{at}/gridPos must be object"
        )),
        "{report}"
    );
    assert!(
        report.contains("no-version.json: / must have required property 'schemaVersion'"),
        "{report}"
    );
    assert!(!report.lines().any(|l| l.ends_with(": valid")), "{report}");
}

#[test]
fn the_grafana_dashboard_and_alert_rules_read_only_series_the_operator_exports() {
    let docs = render(&[
        "--set",
        "grafanaDashboard.enabled=true,prometheusRule.enabled=true",
    ]);
    let exported = exported_series();
    let dashboard = dashboard_of(&docs);
    // Grafana's dashboard model: what it needs to load it.
    assert_eq!(dashboard["uid"], "airlock-operator");
    assert!(dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("a variable name"))
        .collect();
    assert!(variables.contains(&"datasource"), "{variables:?}");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut read = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("a panel title");
        assert!(
            ids.insert(p["id"].as_u64().expect("a panel id")),
            "duplicate id: {title}"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().expect("x"),
            g["y"].as_u64().expect("y"),
            g["w"].as_u64().expect("w"),
            g["h"].as_u64().expect("h"),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title} {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(
            ["gauge", "stat", "timeseries", "table"].contains(&p["type"].as_str().unwrap_or("")),
            "{title}: {}",
            p["type"]
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("a PromQL expr");
            for name in series_in(expr) {
                assert!(
                    exported.contains(&name),
                    "{title} reads {name}, which /metrics does not serve"
                );
                read.insert(name);
            }
        }
    }
    // ESO's panels and the sandbox's.
    for name in [
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "workqueue_depth",
        "externalsecret_status_condition",
        "externalsecret_sync_calls_error",
        "externalsecret_provider_api_calls_count",
        "airlock_sandbox_calls_total",
        "airlock_sandbox_egress_requests_total",
        "airlock_sandbox_traps_total",
        "airlock_sandbox_memory_peak_bytes_bucket",
        "airlock_sandbox_cpu_budget_used_ratio_bucket",
        "airlock_sandbox_credential_requests_total",
        "airlock_secret_reads_total",
    ] {
        assert!(read.contains(name), "no panel reads {name}");
    }

    // The alert rules: promtool checks their PromQL, and they read real series.
    let rule = one(&docs, "PrometheusRule");
    let groups = &rule["spec"];
    let mut alerts = BTreeSet::new();
    for r in groups["groups"][0]["rules"].as_array().expect("rules") {
        alerts.insert(r["alert"].as_str().expect("an alert").to_string());
        for name in series_in(r["expr"].as_str().expect("expr")) {
            assert!(exported.contains(&name), "{} reads {name}", r["alert"]);
        }
    }
    for alert in [
        "AirlockExternalSecretSyncErrors",
        "AirlockEgressDenied",
        "AirlockProviderTraps",
    ] {
        assert!(alerts.contains(alert), "{alerts:?}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml::to_string(groups).expect("YAML")).expect("write rules");
    let out = Command::new(airlock_testenv::tools::promtool())
        .args([OsStr::new("check"), OsStr::new("rules"), file.as_os_str()])
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
