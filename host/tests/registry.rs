//! Providers as OCI artifacts against a real registry (Debian `docker-registry`) on
//! 127.0.0.1: the CLI pushes, pulls, inspects and signs; the `oras` client reads what we
//! push and we load what it pushes; and the operator (in-process, against the real
//! kube-apiserver) loads Providers from the registry, swaps them, and reports failures —
//! with what to change, and in the columns of `kubectl get providers`.

mod cluster;
mod oci;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{OnceLock, mpsc};

use airlock::controller::{self, Config};
use airlock::crd::{Condition, ConditionStatus, Provider};
use airlock::runtime::Runtime;
use airlock_test_artifacts::{FAKE, HOSTILE, HOSTILE_FS};
use airlock_testenv::ControlPlane;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cluster::{apply, eventually, install_crds};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use oci::{Registry, airlock_err, airlock_ok, digest_of, push, write};
use serde_json::{Value, json};

fn sha256(bytes: &[u8]) -> String {
    airlock::runtime::digest(bytes)
}

#[test]
fn cli_pushes_and_pulls_a_component_by_tag_and_by_digest() {
    let registry = Registry::start();
    let pinned = push(&registry, FAKE, "providers/fake:1.0");
    let reference = format!("{}/providers/fake:1.0", registry.host);
    assert!(
        pinned.starts_with(&format!("{reference}@sha256:")),
        "{pinned}"
    );

    let out = tempfile::tempdir().expect("temp dir");
    let by_tag = out.path().join("by-tag.wasm");
    let pulled = airlock_ok(&[
        "provider",
        "pull",
        &reference,
        "-o",
        by_tag.to_str().unwrap(),
        "--insecure",
    ]);
    assert_eq!(
        pulled, pinned,
        "pull prints the reference pinned to the digest"
    );
    assert_eq!(
        std::fs::read(&by_tag).unwrap(),
        std::fs::read(FAKE).unwrap()
    );

    let by_digest = out.path().join("by-digest.wasm");
    let digest_only = format!("{}/providers/fake@{}", registry.host, digest_of(&pinned));
    airlock_ok(&[
        "provider",
        "pull",
        &digest_only,
        "-o",
        by_digest.to_str().unwrap(),
        "--insecure",
    ]);
    assert_eq!(
        std::fs::read(&by_digest).unwrap(),
        std::fs::read(FAKE).unwrap()
    );

    let inspect = airlock_ok(&["provider", "inspect", &pinned, "--insecure"]);
    assert!(inspect.contains("name:         fake"), "{inspect}");
    assert!(
        inspect.contains(&format!(
            "digest:       {}",
            sha256(&std::fs::read(FAKE).unwrap())
        )),
        "{inspect}"
    );
    assert!(
        inspect.contains(&format!("reference:    {pinned}")),
        "{inspect}"
    );
    assert!(
        inspect.contains("application/vnd.wasm.config.v0+json"),
        "{inspect}"
    );

    let https = airlock_err(&["provider", "pull", &reference, "-o", "/dev/null"]);
    assert!(
        https.contains("cannot pull"),
        "without --insecure the CLI speaks HTTPS: {https}"
    );
}

#[test]
fn a_pull_with_a_wrong_digest_or_tampered_content_is_refused() {
    let registry = Registry::start();
    let pinned = push(&registry, FAKE, "providers/fake:1.0");
    let wrong = format!(
        "{}/providers/fake:1.0@sha256:{}",
        registry.host,
        "0".repeat(64)
    );
    let err = airlock_err(&["provider", "pull", &wrong, "-o", "/dev/null", "--insecure"]);
    assert!(
        err.contains(&format!("providers/fake:1.0 is {}", digest_of(&pinned)))
            && err.contains("not in the repository"),
        "{err}"
    );

    // Corrupt the component layer in the registry's storage: the registry serves it, the
    // pull refuses it.
    let layer = sha256(&std::fs::read(FAKE).unwrap());
    std::fs::write(registry.blob_file(&layer), b"not the component").expect("tamper");
    let err = airlock_err(&["provider", "pull", &pinned, "-o", "/dev/null", "--insecure"]);
    assert!(
        err.contains("does not match its digest") || err.contains("has digest"),
        "{err}"
    );
}

#[test]
fn a_tls_registry_with_basic_auth_needs_its_ca_and_credentials() {
    let registry = Registry::start_tls();
    let ca = registry.ca_file();
    let ca = ca.to_str().unwrap();
    let reference = format!("{}/providers/fake:tls", registry.host);

    let untrusted = airlock_err(&[
        "provider",
        "push",
        FAKE,
        &reference,
        "--username",
        oci::USER,
        "--password",
        oci::PASSWORD,
    ]);
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    let anonymous = airlock_err(&["provider", "push", FAKE, &reference, "--ca-file", ca]);
    assert!(
        anonymous.contains("refused the credentials") || anonymous.contains("401"),
        "{anonymous}"
    );
    let wrong = airlock_err(&[
        "provider",
        "push",
        FAKE,
        &reference,
        "--ca-file",
        ca,
        "--username",
        oci::USER,
        "--password",
        "wrong",
    ]);
    assert!(
        wrong.contains("refused the credentials") || wrong.contains("401"),
        "{wrong}"
    );

    let pinned = airlock_ok(&[
        "provider",
        "push",
        FAKE,
        &reference,
        "--ca-file",
        ca,
        "--username",
        oci::USER,
        "--password",
        oci::PASSWORD,
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = STANDARD.encode(format!("{}:{}", oci::USER, oci::PASSWORD));
    let docker_config = write(
        dir.path(),
        "config.json",
        json!({"auths": {registry.host.clone(): {"auth": auth}}})
            .to_string()
            .as_bytes(),
    );
    let out = dir.path().join("fake.wasm");
    let pulled = airlock_ok(&[
        "provider",
        "pull",
        &pinned,
        "-o",
        out.to_str().unwrap(),
        "--ca-file",
        ca,
        "--docker-config",
        docker_config.to_str().unwrap(),
    ]);
    assert_eq!(pulled, pinned);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(FAKE).unwrap());
}

fn oras_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(airlock_testenv::tools::python_tool("python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python with oras");
    assert!(
        out.status.success(),
        "oras script failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const ORAS_PULL: &str = r#"
import json, sys, oras.client
host, target, outdir = sys.argv[1:4]
client = oras.client.OrasClient(hostname=host, insecure=True)
manifest = client.get_manifest(target)
files = client.pull(target=target, outdir=outdir)
print(json.dumps({"manifest": manifest, "files": files}))
"#;

const ORAS_PUSH: &str = r#"
import os, sys, oras.client
host, target, workdir = sys.argv[1:4]
os.chdir(workdir)
client = oras.client.OrasClient(hostname=host, insecure=True)
client.push(target=target, files=["provider.wasm:application/wasm"],
            manifest_config="config.json:application/vnd.wasm.config.v0+json", quiet=True)
"#;

#[test]
fn artifacts_interoperate_with_the_oras_client() {
    let registry = Registry::start();
    let pinned = push(&registry, FAKE, "providers/fake:oras");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = oras_python(
        ORAS_PULL,
        &[&registry.host, &pinned, dir.path().to_str().unwrap()],
    );
    let pulled: Value = serde_json::from_str(out.trim()).expect("oras output");
    let manifest = &pulled["manifest"];
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let file = pulled["files"][0].as_str().expect("one file");
    assert_eq!(std::fs::read(file).unwrap(), std::fs::read(FAKE).unwrap());

    // And the other way round: oras pushes, Airlock pulls and loads.
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::copy(HOSTILE, work.path().join("provider.wasm")).expect("copy");
    let config = json!({"architecture": "wasm", "os": "wasip2",
                        "layerDigests": [sha256(&std::fs::read(HOSTILE).unwrap())]});
    write(work.path(), "config.json", config.to_string().as_bytes());
    let target = format!("{}/providers/by-oras:1", registry.host);
    oras_python(
        ORAS_PUSH,
        &[&registry.host, &target, work.path().to_str().unwrap()],
    );
    let inspect = airlock_ok(&["provider", "inspect", &target, "--insecure"]);
    assert!(inspect.contains("name:         hostile"), "{inspect}");
    assert!(inspect.contains("capabilities: ReadOnly"), "{inspect}");
}

/// A fresh cosign-style key pair: (private PKCS#8 PEM path, public SPKI PEM).
fn key_pair(dir: &std::path::Path, name: &str) -> (PathBuf, String) {
    let key = rcgen::KeyPair::generate().expect("P-256 key");
    let private = write(dir, &format!("{name}.key"), key.serialize_pem().as_bytes());
    (private, key.public_key_pem())
}

#[test]
fn cli_signs_and_verifies_with_a_cosign_style_key_pair() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "cosign");
    let (_, other_public) = key_pair(dir.path(), "other");
    let public = write(dir.path(), "cosign.pub", public.as_bytes());
    let other_public = write(dir.path(), "other.pub", other_public.as_bytes());
    let reference = format!("{}/providers/fake:signed", registry.host);
    let pinned = airlock_ok(&[
        "provider",
        "push",
        FAKE,
        &reference,
        "--insecure",
        "--sign-key",
        private.to_str().unwrap(),
    ]);
    let out = dir.path().join("out.wasm");
    let pull = |key: &PathBuf, reference: &str| {
        oci::airlock(&[
            "provider",
            "pull",
            reference,
            "-o",
            out.to_str().unwrap(),
            "--insecure",
            "--public-key",
            key.to_str().unwrap(),
        ])
    };
    assert!(pull(&public, &pinned).status.success());
    let wrong = pull(&other_public, &pinned);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("does not verify"),
        "{wrong:?}"
    );

    let unsigned = push(&registry, HOSTILE, "providers/unsigned:1");
    let missing = pull(&public, &unsigned);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("is not signed"),
        "{missing:?}"
    );
    // `sign` signs what is already in the registry.
    airlock_ok(&[
        "provider",
        "sign",
        &unsigned,
        "--key",
        private.to_str().unwrap(),
        "--insecure",
    ]);
    assert!(pull(&public, &unsigned).status.success());
}

// ---------------------------------------------------------------------------------------
// The operator, in-process against the real control plane. One operator serves every test
// of this binary (Providers are cluster-scoped, so each test uses its own Provider names).

struct Operator {
    runtime: Runtime,
}

fn operator() -> &'static Operator {
    static OPERATOR: OnceLock<Operator> = OnceLock::new();
    OPERATOR.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("operator".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio");
                rt.block_on(async move {
                    let client = ControlPlane::shared().client();
                    install_crds(&client).await;
                    let dir = std::env::temp_dir()
                        .join(format!("airlock-registry-test-{}", std::process::id()));
                    let providers = dir.join("providers");
                    std::fs::create_dir_all(&providers).expect("providers dir");
                    std::fs::copy(FAKE, providers.join("fake.wasm")).expect("copy fake.wasm");
                    std::fs::copy(HOSTILE_FS, providers.join("hostile-fs.wasm"))
                        .expect("copy hostile-fs.wasm");
                    let cache = dir.join("cache");
                    let runtime = cluster::kube_runtime(&client, Some(cache.clone()));
                    let config = Config {
                        providers_dir: providers,
                        cache_dir: Some(cache),
                        ..Config::default()
                    };
                    tx.send(Operator {
                        runtime: runtime.clone(),
                    })
                    .expect("send");
                    controller::run(client, runtime, config).await;
                });
            })
            .expect("operator thread");
        rx.recv().expect("operator started")
    })
}

async fn apply_provider(name: &str, spec: Value) {
    let _ = operator();
    let client = ControlPlane::shared().client();
    install_crds(&client).await;
    apply(
        &Api::<Provider>::all(client),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": name}, "spec": spec}),
    )
    .await;
}

/// The Provider once its Ready condition has `status` and `reason` (for its current
/// generation).
async fn provider_condition(
    name: &str,
    status: ConditionStatus,
    reason: &str,
) -> (Provider, Condition) {
    let api: Api<Provider> = Api::all(ControlPlane::shared().client());
    eventually(
        &format!("Provider {name} Ready={status:?} {reason}"),
        || async {
            let p = api.get(name).await.ok()?;
            let s = p.status.as_ref()?;
            if s.observed_generation != p.metadata.generation {
                return None;
            }
            let c = s
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (c.status == status && c.reason.as_deref() == Some(reason)).then_some((p, c))
        },
    )
    .await
}

fn oci_module(reference: &str) -> Value {
    json!({"oci": reference, "insecure": true})
}

#[tokio::test]
async fn an_oci_provider_given_a_tag_becomes_ready_with_its_resolved_digest_world_and_capabilities()
{
    let registry = Registry::start();
    let pinned = push(&registry, FAKE, "providers/fake:1.0");
    let tag = format!("{}/providers/fake:1.0", registry.host);
    apply_provider("oci-by-tag", json!({"module": oci_module(&tag)})).await;
    let (p, ready) = provider_condition("oci-by-tag", ConditionStatus::True, "Loaded").await;
    let status = p.status.expect("status");
    let fake = std::fs::read(FAKE).unwrap();
    assert_eq!(status.digest.as_deref(), Some(sha256(&fake).as_str()));
    assert_eq!(status.resolved_reference.as_deref(), Some(pinned.as_str()));
    assert_eq!(status.size, Some(fake.len() as i64));
    assert_eq!(
        status.world.as_deref(),
        Some("airlock:provider/provider@0.1.0")
    );
    assert_eq!(
        serde_json::to_value(status.capabilities).unwrap(),
        json!("ReadWrite")
    );
    assert!(status.version.is_some());
    assert!(ready.message.unwrap().contains(&sha256(&fake)));
    let loaded = operator()
        .runtime
        .provider("oci-by-tag")
        .expect("installed");
    assert_eq!(loaded.info.name, "fake");

    // The tag was resolved once: moving it does not move the Provider.
    push(&registry, HOSTILE, "providers/fake:1.0");
    apply_provider(
        "oci-by-tag",
        json!({"module": oci_module(&tag), "limits": {"maxConcurrentInstances": 4}}),
    )
    .await;
    let (p, _) = provider_condition("oci-by-tag", ConditionStatus::True, "Loaded").await;
    assert_eq!(
        p.status.unwrap().resolved_reference.as_deref(),
        Some(pinned.as_str())
    );
    assert_eq!(
        operator().runtime.provider("oci-by-tag").unwrap().info.name,
        "fake"
    );
}

#[tokio::test]
async fn a_registry_that_is_down_leaves_the_provider_not_ready_while_others_keep_working() {
    apply_provider("fake-bundled", json!({"module": {"path": "fake.wasm"}})).await;
    provider_condition("fake-bundled", ConditionStatus::True, "Loaded").await;
    let down = format!(
        "127.0.0.1:{}/providers/fake:1.0@sha256:{}",
        oci::free_port(),
        "1".repeat(64)
    );
    apply_provider("oci-down", json!({"module": oci_module(&down)})).await;
    let (_, c) =
        provider_condition("oci-down", ConditionStatus::False, "RegistryUnreachable").await;
    assert!(
        c.message.as_deref().unwrap().contains("is unreachable"),
        "{c:?}"
    );
    assert!(operator().runtime.provider("oci-down").is_none());
    // The other provider is untouched and still answers calls.
    provider_condition("fake-bundled", ConditionStatus::True, "Loaded").await;
    operator()
        .runtime
        .ping("fake-bundled")
        .await
        .expect("fake still serves");
}

#[tokio::test]
async fn changing_the_module_hot_swaps_the_provider_and_a_failed_pull_keeps_the_old_one() {
    let registry = Registry::start();
    let first = push(&registry, FAKE, "providers/swap:1");
    let second = push(&registry, HOSTILE, "providers/swap:2");
    apply_provider("oci-swap", json!({"module": oci_module(&first)})).await;
    let (p, _) = provider_condition("oci-swap", ConditionStatus::True, "Loaded").await;
    assert_eq!(
        p.status.unwrap().resolved_reference.as_deref(),
        Some(first.as_str())
    );
    let rt = &operator().runtime;
    assert_eq!(rt.provider("oci-swap").unwrap().info.name, "fake");

    apply_provider("oci-swap", json!({"module": oci_module(&second)})).await;
    let (p, _) = provider_condition("oci-swap", ConditionStatus::True, "Loaded").await;
    let status = p.status.unwrap();
    assert_eq!(status.resolved_reference.as_deref(), Some(second.as_str()));
    let hostile = sha256(&std::fs::read(HOSTILE).unwrap());
    assert_eq!(status.digest.as_deref(), Some(hostile.as_str()));
    assert_eq!(
        serde_json::to_value(status.capabilities).unwrap(),
        json!("ReadOnly")
    );
    assert_eq!(status.version.as_deref(), Some("0.0.0"));
    let swapped = rt.provider("oci-swap").unwrap();
    assert_eq!(
        (swapped.info.name.as_str(), swapped.digest.as_str()),
        ("hostile", hostile.as_str())
    );

    // A module that cannot be pulled: the condition says why, the old module keeps serving.
    let missing = format!("{}/providers/swap:3", registry.host);
    apply_provider("oci-swap", json!({"module": oci_module(&missing)})).await;
    let (p, c) = provider_condition("oci-swap", ConditionStatus::False, "ArtifactNotFound").await;
    let message = c.message.unwrap();
    assert!(
        message.contains("keeps serving") && message.contains(&hostile),
        "{message}"
    );
    assert_eq!(p.status.unwrap().digest.as_deref(), Some(hostile.as_str()));
    assert_eq!(rt.provider("oci-swap").unwrap().digest, hostile);
    rt.ping("oci-swap").await.expect("the old module serves");
}

#[tokio::test]
async fn a_wrong_digest_in_the_provider_is_refused() {
    let registry = Registry::start();
    let pinned = push(&registry, FAKE, "providers/fake:1.0");
    let wrong = format!(
        "{}/providers/fake:1.0@sha256:{}",
        registry.host,
        "2".repeat(64)
    );
    apply_provider("oci-wrong-digest", json!({"module": oci_module(&wrong)})).await;
    let (_, c) =
        provider_condition("oci-wrong-digest", ConditionStatus::False, "DigestMismatch").await;
    let message = c.message.unwrap();
    assert!(message.contains(digest_of(&pinned)), "{message}");
    // What to do next: pin what the tag holds, if trusted, or push what the pin names.
    let actual = digest_of(&pinned);
    assert!(
        message.ends_with(&format!(
            "; to fix: if {actual}, what the tag holds now, is the module you trust, pin it in \
             spec.module.oci of Provider oci-wrong-digest (…@{actual}); otherwise push the \
             module whose manifest digest is sha256:{}",
            "2".repeat(64)
        )),
        "{message}"
    );
    assert!(operator().runtime.provider("oci-wrong-digest").is_none());
}

#[tokio::test]
async fn signature_verification_refuses_unsigned_and_wrongly_signed_modules() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "right");
    let (other, _) = key_pair(dir.path(), "wrong");
    let pinned = push(&registry, FAKE, "providers/signed:1");
    let spec = |reference: &str| json!({"module": oci_module(reference), "signature": {"publicKey": public}});
    apply_provider("oci-signed", spec(&pinned)).await;
    let (_, c) = provider_condition("oci-signed", ConditionStatus::False, "SignatureMissing").await;
    assert!(c.message.unwrap().contains("is not signed"));

    airlock_ok(&[
        "provider",
        "sign",
        &pinned,
        "--key",
        other.to_str().unwrap(),
        "--insecure",
    ]);
    // Re-reconcile: the same spec with another limit bumps the generation.
    let mut wrong = spec(&pinned);
    wrong["limits"] = json!({"maxConcurrentInstances": 3});
    apply_provider("oci-signed", wrong).await;
    let (_, c) = provider_condition("oci-signed", ConditionStatus::False, "SignatureInvalid").await;
    assert!(c.message.unwrap().contains("does not verify"));
    assert!(operator().runtime.provider("oci-signed").is_none());

    // Signed with the right key (cosign keeps several signatures in one `.sig` image; our
    // `sign` replaces it, which is enough here).
    airlock_ok(&[
        "provider",
        "sign",
        &pinned,
        "--key",
        private.to_str().unwrap(),
        "--insecure",
    ]);
    apply_provider("oci-signed", spec(&pinned)).await;
    provider_condition("oci-signed", ConditionStatus::True, "Loaded").await;
    assert_eq!(
        operator().runtime.provider("oci-signed").unwrap().info.name,
        "fake"
    );
}

#[tokio::test]
async fn a_provider_pulls_from_a_tls_registry_with_a_pull_secret_and_a_ca_bundle() {
    let registry = Registry::start_tls();
    let ca = registry.ca_file();
    let reference = format!("{}/providers/fake:tls", registry.host);
    let pinned = airlock_ok(&[
        "provider",
        "push",
        FAKE,
        &reference,
        "--ca-file",
        ca.to_str().unwrap(),
        "--username",
        oci::USER,
        "--password",
        oci::PASSWORD,
    ]);
    let client = ControlPlane::shared().client();
    let ns = ControlPlane::shared()
        .new_namespace("oci-pull")
        .await
        .expect("namespace");
    let auth = STANDARD.encode(format!("{}:{}", oci::USER, oci::PASSWORD));
    let docker_config = json!({"auths": {registry.host.clone(): {"auth": auth}}}).to_string();
    apply(
        &Api::<Secret>::namespaced(client, &ns),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
               "metadata": {"name": "registry", "namespace": ns},
               "stringData": {".dockerconfigjson": docker_config}}),
    )
    .await;
    let ca_bundle = STANDARD.encode(registry.ca_pem.as_deref().unwrap());
    apply_provider(
        "oci-tls-anonymous",
        json!({"module": {"oci": pinned, "caBundle": ca_bundle}}),
    )
    .await;
    provider_condition(
        "oci-tls-anonymous",
        ConditionStatus::False,
        "RegistryUnauthorized",
    )
    .await;
    apply_provider(
        "oci-tls",
        json!({"module": {"oci": pinned, "caBundle": ca_bundle,
                          "pullSecretRef": {"name": "registry", "namespace": ns}}}),
    )
    .await;
    provider_condition("oci-tls", ConditionStatus::True, "Loaded").await;
}

/// `kubectl get ARGS` on the shared control plane, as rows of `header → cell` (cells cut at
/// the header's column offsets, so empty cells stay empty).
async fn kubectl_table(args: &[&str]) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut all = vec!["get".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        ControlPlane::shared()
            .kubectl(&all)
            .unwrap_or_else(|e| panic!("kubectl {all:?}: {e:#}"))
    })
    .await
    .expect("kubectl");
    let mut lines = out.lines();
    let header = lines.next().expect("a header line");
    let mut starts = Vec::new();
    let mut at = 0;
    for name in header.split("  ").map(str::trim).filter(|n| !n.is_empty()) {
        let start = at + header[at..].find(name).expect("header name");
        starts.push((name.to_string(), start));
        at = start + name.len();
    }
    lines
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(i, (name, start))| {
                    let end = starts.get(i + 1).map_or(line.len(), |(_, e)| *e);
                    let cell = line.get(*start..end.min(line.len())).unwrap_or_default();
                    (name.clone(), cell.trim().to_string())
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_provider_that_does_not_load_says_what_to_change_and_kubectl_shows_why() {
    // The memory limit is below what the module needs to be instantiated at all.
    apply_provider(
        "advice-memory",
        json!({"module": {"path": "fake.wasm"}, "limits": {"memoryBytes": 1_048_576}}),
    )
    .await;
    // A grant admission accepts but the runtime cannot use.
    apply_provider(
        "advice-grant",
        json!({"module": {"path": "fake.wasm"}, "caBundle": "not base64!"}),
    )
    .await;
    // A module that breaks the provider contract: it imports the filesystem.
    apply_provider(
        "advice-contract",
        json!({"module": {"path": "hostile-fs.wasm"}}),
    )
    .await;
    apply_provider("advice-missing", json!({"module": {"path": "nosuch.wasm"}})).await;

    let (_, c) = provider_condition(
        "advice-memory",
        ConditionStatus::False,
        "ProviderMemoryLimitExceeded",
    )
    .await;
    assert_eq!(
        c.message.as_deref(),
        Some(
            "provider advice-memory exceeded its memory limit of 1048576 bytes; to fix: raise \
             spec.limits.memoryBytes of Provider advice-memory (now 1048576)"
        )
    );
    let (_, c) = provider_condition("advice-grant", ConditionStatus::False, "InvalidGrant").await;
    let message = c.message.unwrap();
    assert!(
        message.starts_with("invalid grant: spec.caBundle is not base64: "),
        "{message}"
    );
    assert!(
        message.ends_with(
            "; to fix: set spec.caBundle of Provider advice-grant to base64-encoded PEM \
             certificates (`base64 -w0 ca.pem`)"
        ),
        "{message}"
    );
    let (_, c) = provider_condition(
        "advice-contract",
        ConditionStatus::False,
        "ProviderImportsNotGranted",
    )
    .await;
    let message = c.message.unwrap();
    assert!(
        message.ends_with(
            "; to fix: rebuild the module of Provider advice-contract without wasi:filesystem \
             (providers reach the network only through wasi:http and the cluster's Secrets \
             only through airlock:provider/credentials)"
        ),
        "{message}"
    );
    let (_, c) =
        provider_condition("advice-missing", ConditionStatus::False, "ModuleNotFound").await;
    let message = c.message.unwrap();
    assert!(
        message.ends_with(
            "; to fix: set spec.module.path of Provider advice-missing to a module in the \
             operator's providers directory (the image bundles airlock_provider_<name>.wasm), \
             or name an OCI artifact in spec.module.oci"
        ),
        "{message}"
    );
    // The Warning event carries the same advice.
    let note = cluster::warning_event(
        &ControlPlane::shared().client(),
        "default",
        "Provider",
        "advice-memory",
        "ProviderMemoryLimitExceeded",
        "to fix:",
    )
    .await;
    assert!(
        note.ends_with("raise spec.limits.memoryBytes of Provider advice-memory (now 1048576)"),
        "{note}"
    );

    // `kubectl get providers` shows the reason next to READY; `-o wide` the advice.
    let names = [
        "advice-memory",
        "advice-grant",
        "advice-contract",
        "advice-missing",
    ];
    let mut args = vec!["providers.airlock.dev"];
    args.extend(names);
    let rows = kubectl_table(&args).await;
    let mut cells: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["NAME"].as_str(),
                r["STATUS"].as_str(),
                r["READY"].as_str(),
            )
        })
        .collect();
    cells.sort();
    assert_eq!(
        cells,
        [
            ("advice-contract", "ProviderImportsNotGranted", "False"),
            ("advice-grant", "InvalidGrant", "False"),
            ("advice-memory", "ProviderMemoryLimitExceeded", "False"),
            ("advice-missing", "ModuleNotFound", "False"),
        ]
    );
    args.extend(["-o", "wide"]);
    let wide = kubectl_table(&args).await;
    let memory = wide
        .iter()
        .find(|r| r["NAME"] == "advice-memory")
        .expect("the advice-memory row");
    assert!(
        memory["MESSAGE"].ends_with(
            "to fix: raise spec.limits.memoryBytes of Provider advice-memory (now 1048576)"
        ),
        "{memory:?}"
    );
}

#[tokio::test]
async fn a_provider_still_being_pulled_shows_loading_not_an_empty_ready_column() {
    // A registry that accepts connections and never answers: the pull hangs, so the
    // Provider stays in its first load for as long as the test looks.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let reference = format!(
        "127.0.0.1:{port}/providers/slow:1@sha256:{}",
        "3".repeat(64)
    );
    apply_provider("oci-loading", json!({"module": oci_module(&reference)})).await;
    let (_, c) = provider_condition("oci-loading", ConditionStatus::Unknown, "Loading").await;
    assert_eq!(
        c.message.as_deref(),
        Some(format!("fetching, verifying and compiling module {reference}").as_str())
    );
    let rows = kubectl_table(&["providers.airlock.dev", "oci-loading"]).await;
    assert_eq!(
        (rows[0]["STATUS"].as_str(), rows[0]["READY"].as_str()),
        ("Loading", "Unknown"),
        "{rows:?}"
    );
    Api::<Provider>::all(ControlPlane::shared().client())
        .delete("oci-loading", &Default::default())
        .await
        .expect("delete oci-loading");
}
