//! The real control plane does what Airlock's tests rely on: namespaces, Secrets, CRDs with
//! structural schemas and CEL validation, server-side apply, TokenRequest/TokenReview, RBAC,
//! garbage collection, namespace deletion and kubectl.
//!
//! All tests share one control plane (per test binary) and use namespaces of their own. If
//! the binaries cannot be built or the servers do not start, every test fails with the reason.

use std::future::Future;
use std::time::{Duration, Instant};

use airlock_testenv::ControlPlane;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `check` every 200 ms until it yields `Some`, failing after `TIMEOUT` with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn the_apiserver_reports_kubernetes_v1_34_4_and_is_ready() {
    let cp = ControlPlane::shared();
    let version = cp.client().apiserver_version().await.expect("/version");
    assert_eq!(version.git_version, "v1.34.4");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "34")
    );
    let readyz = cp
        .client()
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
        .expect("/readyz");
    assert_eq!(readyz, "ok");
}

#[tokio::test]
async fn a_secret_can_be_created_and_read_back_in_a_new_namespace() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("secret").await.expect("namespace");
    assert!(ns.starts_with("secret-"));
    let namespace = Api::<Namespace>::all(cp.client()).get(&ns).await.unwrap();
    assert_eq!(
        namespace.metadata.labels.unwrap()["airlock-testenv"],
        "true"
    );

    let secrets: Api<Secret> = Api::namespaced(cp.client(), &ns);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("db".to_string()),
            ..ObjectMeta::default()
        },
        string_data: Some([("password".to_string(), "hunter2".to_string())].into()),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let read = secrets.get("db").await.expect("get secret");
    assert_eq!(read.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(read.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn a_crd_with_a_cel_rule_accepts_valid_objects_and_rejects_invalid_ones_with_the_message() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("crd").await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.testenv.airlock.dev"},
        "spec": {
            "group": "testenv.airlock.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["replicas", "maxReplicas"],
                            "properties": {
                                "replicas": {"type": "integer", "minimum": 0},
                                "maxReplicas": {"type": "integer"}
                            },
                            "x-kubernetes-validations": [{
                                "rule": "self.replicas <= self.maxReplicas",
                                "message": "replicas must not exceed maxReplicas"
                            }]
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }}
            }]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    eventually("the CRD to be Established", || async {
        let crd = crds.get("widgets.testenv.airlock.dev").await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("testenv.airlock.dev", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(cp.client(), &ns, &resource);
    let widget = |name: &str, replicas: i64, max: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "testenv.airlock.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "maxReplicas": max}
        }))
        .unwrap()
    };
    // Just after Established the endpoint may still 404 for a moment.
    let created = eventually("the valid Widget to be accepted", || async {
        match widgets
            .create(&PostParams::default(), &widget("ok", 2, 3))
            .await
        {
            Ok(created) => Some(created),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => panic!("valid Widget rejected: {e}"),
        }
    })
    .await;
    assert_eq!(created.data["spec"]["replicas"], 2);

    let status = api_error(
        widgets
            .create(&PostParams::default(), &widget("bad", 5, 3))
            .await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("replicas must not exceed maxReplicas"),
        "CEL message missing: {}",
        status.message
    );
    // The structural schema itself is enforced too.
    let status = api_error(
        widgets
            .create(&PostParams::default(), &widget("neg", -1, 3))
            .await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains("spec.replicas"),
        "{}",
        status.message
    );
    assert!(
        widgets.get_opt("bad").await.unwrap().is_none(),
        "the invalid Widget must not be stored"
    );
}

#[tokio::test]
async fn server_side_apply_merges_two_managers_and_records_their_managed_fields() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("ssa").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client(), &ns);
    let apply = |data: serde_json::Value| {
        Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "merged"},
            "data": data
        }))
    };
    config_maps
        .patch(
            "merged",
            &PatchParams::apply("manager-a"),
            &apply(json!({"a": "1"})),
        )
        .await
        .expect("apply by manager-a");
    let merged = config_maps
        .patch(
            "merged",
            &PatchParams::apply("manager-b"),
            &apply(json!({"b": "2"})),
        )
        .await
        .expect("apply by manager-b");

    let data = merged.data.clone().unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert_eq!(data.get("b").map(String::as_str), Some("2"));
    let managers: Vec<(String, String)> = merged
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert!(
        managers.contains(&("manager-a".into(), "Apply".into())),
        "{managers:?}"
    );
    assert!(
        managers.contains(&("manager-b".into(), "Apply".into())),
        "{managers:?}"
    );

    // manager-b may not take over manager-a's field without force.
    let status = api_error(
        config_maps
            .patch(
                "merged",
                &PatchParams::apply("manager-b"),
                &apply(json!({"a": "9"})),
            )
            .await,
    );
    assert_eq!(status.code, 409, "{status:?}");
    assert!(status.message.contains("manager-a"), "{}", status.message);
}

#[tokio::test]
async fn a_requested_service_account_token_is_accepted_by_token_review() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("token").await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(cp.client(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("vault-auth".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let token = cp
        .service_account_token(&ns, "vault-auth", Some(600))
        .await
        .expect("TokenRequest");
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let reviews: Api<TokenReview> = Api::all(cp.client());
    let review = |token: String| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let status = reviews
        .create(&PostParams::default(), &review(token))
        .await
        .expect("TokenReview")
        .status
        .unwrap();
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:vault-auth").as_str())
    );
    assert!(
        user.groups
            .unwrap()
            .contains(&format!("system:serviceaccounts:{ns}"))
    );

    let forged = reviews
        .create(&PostParams::default(), &review("not.a.token".into()))
        .await
        .expect("TokenReview")
        .status
        .unwrap();
    assert_ne!(forged.authenticated, Some(true));
}

#[tokio::test]
async fn rbac_applies_to_service_account_tokens_and_impersonated_clients() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("rbac").await.unwrap();
    Api::<ServiceAccount>::namespaced(cp.client(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap(),
        )
        .await
        .unwrap();
    let as_token = cp.client_for_service_account(&ns, "reader").await.unwrap();
    let user = format!("system:serviceaccount:{ns}:reader");
    let group = format!("system:serviceaccounts:{ns}");
    let impersonated = cp.client_as(
        &user,
        &["system:serviceaccounts", &group, "system:authenticated"],
    );

    for client in [as_token.clone(), impersonated.clone()] {
        let status = api_error(
            Api::<Secret>::namespaced(client, &ns)
                .list(&Default::default())
                .await,
        );
        assert_eq!(status.code, 403, "{status:?}");
    }

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(cp.client(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader-reads-secrets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(cp.client(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    for client in [as_token, impersonated] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        eventually("the RoleBinding to take effect", || async {
            secrets.list(&Default::default()).await.ok()
        })
        .await;
        // Still no access to other resources or other namespaces.
        let status = api_error(
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .list(&Default::default())
                .await,
        );
        assert_eq!(status.code, 403);
        let status = api_error(
            Api::<Secret>::namespaced(client, "default")
                .list(&Default::default())
                .await,
        );
        assert_eq!(status.code, 403);
    }
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("gc").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client(), &ns);
    let owner = config_maps
        .create(
            &PostParams::default(),
            &config_map("owner", &[("role", "owner")]),
        )
        .await
        .unwrap();
    let mut dependent = config_map("dependent", &[("role", "dependent")]);
    dependent.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        ..OwnerReference::default()
    }]);
    config_maps
        .create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    let unrelated = config_maps
        .create(&PostParams::default(), &config_map("unrelated", &[]))
        .await
        .unwrap();

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        "the dependent ConfigMap to be garbage-collected",
        || async {
            config_maps
                .get_opt("dependent")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let still_there = config_maps.get("unrelated").await.unwrap();
    assert_eq!(still_there.metadata.uid, unrelated.metadata.uid);
}

#[tokio::test]
async fn deleting_a_namespace_removes_it_with_its_contents() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("doomed").await.unwrap();
    Api::<ConfigMap>::namespaced(cp.client(), &ns)
        .create(&PostParams::default(), &config_map("inside", &[("k", "v")]))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(cp.client());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to be finalized and gone", || async {
        namespaces
            .get_opt(&ns)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn kubectl_get_ns_works_with_the_written_kubeconfig() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("kubectl").await.unwrap();
    let kubeconfig = cp.kubeconfig_path();
    assert!(kubeconfig.is_file());

    let out = cp
        .kubectl(["get", "ns", "-o", "name"])
        .expect("kubectl get ns");
    assert!(out.lines().any(|l| l == "namespace/default"), "{out}");
    assert!(out.lines().any(|l| l == format!("namespace/{ns}")), "{out}");

    // A plain kubectl process with only KUBECONFIG set, as a person would run it.
    let output = std::process::Command::new(cp.binaries().kubectl())
        .args(["get", "ns", ns.as_str()])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&ns) && stdout.contains("Active"),
        "{stdout}"
    );

    let version = cp.kubectl(["version", "-o", "json"]).unwrap();
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["clientVersion"]["gitVersion"], "v1.34.4");
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.34.4");

    let error = cp.kubectl(["get", "nosuchkind"]).unwrap_err();
    assert!(format!("{error:#}").contains("nosuchkind"), "{error:#}");
}

#[test]
fn dropping_a_control_plane_stops_its_servers_and_removes_its_directory() {
    let cp = ControlPlane::start().expect("a second, private control plane");
    let dir = cp.dir().to_path_buf();
    let pids = cp.process_ids();
    let names: Vec<&str> = pids.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["etcd", "kube-apiserver", "kube-controller-manager"]);
    let port: u16 = cp.server_url().rsplit(':').next().unwrap().parse().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(dir.join("kubeconfig").is_file());

    drop(cp);

    for (name, pid) in pids {
        // Killed and reaped: the pid no longer exists.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) still exists"
        );
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
