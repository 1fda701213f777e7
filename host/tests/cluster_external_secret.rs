//! ClusterExternalSecret and ClusterPushSecret against a real kube-apiserver: one cluster-wide
//! operator per test process (both controllers are off in namespace-scoped operators), with the
//! real `fake.wasm` behind the stores.

mod cluster;

use cluster::{apply, apply_fake_provider, eventually, install_crds};

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use airlock::controller::{self, Config};
use airlock::crd::{
    self, ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ExternalSecret, PushSecret,
    SecretStore,
};
use airlock::kube_credentials::KubeCredentials;
use airlock::runtime::{EngineConfig, Runtime};
use airlock_testenv::ControlPlane;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

static OPERATOR: OnceLock<Runtime> = OnceLock::new();

/// Starts (once per process) a cluster-wide operator on a runtime of its own, so it outlives
/// each test's runtime; returns its Wasm runtime.
fn operator() -> &'static Runtime {
    OPERATOR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("operator runtime");
            rt.block_on(async move {
                let client = ControlPlane::shared().client();
                install_crds(&client).await;
                let providers = tempfile::tempdir().expect("temp dir").keep();
                std::fs::copy(airlock_test_artifacts::FAKE, providers.join("fake.wasm"))
                    .expect("copy fake.wasm");
                let runtime = Runtime::new(
                    &EngineConfig {
                        cache_dir: Some(
                            std::env::temp_dir()
                                .join(format!("airlock-ces-cache-{}", std::process::id())),
                        ),
                        ..EngineConfig::default()
                    },
                    Arc::new(KubeCredentials::new(client.clone())),
                )
                .expect("runtime");
                let config = Config {
                    providers_dir: providers,
                    ..Config::default()
                };
                apply_fake_provider(&client).await;
                tx.send(runtime.clone()).expect("send runtime");
                controller::run(client, runtime, config).await;
            });
        });
        rx.recv().expect("the operator started")
    })
}

/// A client of the shared control plane, with the operator running and `fake` loaded.
async fn start() -> Client {
    let runtime = operator();
    eventually("the fake provider loaded", || async {
        runtime.provider("fake").map(|_| ())
    })
    .await;
    ControlPlane::shared().client()
}

/// Creates a namespace labelled `key=value`.
async fn labelled_namespace(client: &Client, prefix: &str, key: &str, value: &str) -> String {
    let ns = ControlPlane::shared()
        .new_namespace(prefix)
        .await
        .expect("namespace");
    label(client, &ns, key, Some(value)).await;
    ns
}

/// Sets (or with `None` removes) a label of a namespace.
async fn label(client: &Client, ns: &str, key: &str, value: Option<&str>) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(
        ns,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
    )
    .await
    .expect("label namespace");
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

async fn cluster_store(client: &Client, name: &str) {
    apply(
        &Api::<ClusterSecretStore>::all(client.clone()),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
               "metadata": {"name": name},
               "spec": {"provider": {"fake": {"data": [
                   {"key": "production/database", "value": "{\"username\":\"admin\",\"password\":\"s3cr3t\"}"}
               ]}}}}),
    )
    .await;
}

fn es_spec(store: &str) -> Value {
    json!({
        "refreshInterval": "1h",
        "secretStoreRef": {"name": store, "kind": "ClusterSecretStore"},
        "target": {"name": "db-creds"},
        "data": [{"secretKey": "username",
                  "remoteRef": {"key": "production/database", "property": "username"}}]
    })
}

/// The CES status once `check` accepts it.
async fn ces_status(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&crd::ClusterExternalSecretStatus) -> bool,
) -> crd::ClusterExternalSecretStatus {
    let api: Api<ClusterExternalSecret> = Api::all(client.clone());
    eventually(what, || async {
        let status = api.get(name).await.ok()?.status?;
        check(&status).then_some(status)
    })
    .await
}

fn ready_status(status: &crd::ClusterExternalSecretStatus) -> Option<String> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| format!("{:?}", c.status))
}

#[tokio::test]
async fn a_cluster_external_secret_fans_out_to_labelled_namespaces_and_follows_relabelling() {
    let client = start().await;
    let key = unique("airlock-ces-fanout");
    let store = unique("ces-store");
    cluster_store(&client, &store).await;
    let mut namespaces = vec![
        labelled_namespace(&client, "ces-a", &key, "yes").await,
        labelled_namespace(&client, "ces-b", &key, "yes").await,
    ];
    namespaces.sort();
    let unlabelled = ControlPlane::shared()
        .new_namespace("ces-other")
        .await
        .expect("namespace");
    let ces_name = unique("shared-db");
    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    apply(
        &ces_api,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
               "metadata": {"name": ces_name},
               "spec": {"externalSecretName": "db",
                        "externalSecretMetadata": {"labels": {"team": "payments"},
                                                   "annotations": {"note": "stamped"}},
                        "namespaceSelectors": [{"matchLabels": {key.as_str(): "yes"}}],
                        "refreshTime": "1h",
                        "externalSecretSpec": es_spec(&store)}}),
    )
    .await;

    let status = ces_status(&client, &ces_name, "both namespaces provisioned", |s| {
        s.provisioned_namespaces.as_ref() == Some(&namespaces)
    })
    .await;
    assert_eq!(status.external_secret_name.as_deref(), Some("db"));
    assert_eq!(status.failed_namespaces, None);
    assert_eq!(ready_status(&status).as_deref(), Some("True"));
    let ces = ces_api.get(&ces_name).await.expect("ces");

    for ns in &namespaces {
        let es = Api::<ExternalSecret>::namespaced(client.clone(), ns)
            .get("db")
            .await
            .expect("the ExternalSecret exists");
        let owners = es.owner_references();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].kind, "ClusterExternalSecret");
        assert_eq!(Some(&owners[0].uid), ces.metadata.uid.as_ref());
        assert_eq!(
            es.labels().get("team").map(String::as_str),
            Some("payments")
        );
        assert_eq!(
            es.annotations().get("note").map(String::as_str),
            Some("stamped")
        );
        assert_eq!(
            es.spec.secret_store_ref.as_ref().map(|r| r.name.as_str()),
            Some(store.as_str())
        );
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let username = eventually(&format!("Secret db-creds synced in {ns}"), || async {
            let s = secrets.get_opt("db-creds").await.ok()??;
            s.data?.get("username").map(|v| v.0.clone())
        })
        .await;
        assert_eq!(username, b"admin");
        // Without a template the ExternalSecret's metadata travels on to its Secret.
        let secret = secrets.get("db-creds").await.expect("secret");
        assert_eq!(
            secret.labels().get("team").map(String::as_str),
            Some("payments")
        );
        assert_eq!(
            secret.annotations().get("note").map(String::as_str),
            Some("stamped")
        );
    }
    let none = Api::<ExternalSecret>::namespaced(client.clone(), &unlabelled)
        .get_opt("db")
        .await
        .expect("get");
    assert!(none.is_none(), "an unselected namespace got {none:?}");

    // A deleted ExternalSecret is put back without waiting for refreshTime (1h).
    let first = Api::<ExternalSecret>::namespaced(client.clone(), &namespaces[0]);
    let old_uid = first.get("db").await.expect("es").metadata.uid;
    first
        .delete("db", &Default::default())
        .await
        .expect("delete es");
    eventually("the deleted ExternalSecret is recreated", || async {
        let es = first.get_opt("db").await.ok()??;
        (es.metadata.uid != old_uid).then_some(())
    })
    .await;

    // A namespace labelled later gets its ExternalSecret without waiting for refreshTime (1h).
    label(&client, &unlabelled, &key, Some("yes")).await;
    let later = Api::<ExternalSecret>::namespaced(client.clone(), &unlabelled);
    eventually(
        "the newly labelled namespace gets the ExternalSecret",
        || async { later.get_opt("db").await.ok()? },
    )
    .await;

    // Unlabelling removes the ExternalSecret and the namespace from the status.
    label(&client, &namespaces[1], &key, None).await;
    let removed = Api::<ExternalSecret>::namespaced(client.clone(), &namespaces[1]);
    eventually(
        "the unlabelled namespace loses its ExternalSecret",
        || async { matches!(removed.get_opt("db").await, Ok(None)).then_some(()) },
    )
    .await;
    let mut expected = vec![namespaces[0].clone(), unlabelled.clone()];
    expected.sort();
    ces_status(
        &client,
        &ces_name,
        "status without the unlabelled namespace",
        |s| s.provisioned_namespaces.as_ref() == Some(&expected),
    )
    .await;

    // Deleting the ClusterExternalSecret garbage-collects the ExternalSecrets it owns.
    ces_api
        .delete(&ces_name, &Default::default())
        .await
        .expect("delete ces");
    cluster::eventually_within(
        std::time::Duration::from_secs(120),
        "owned ExternalSecrets are garbage-collected",
        || async { matches!(first.get_opt("db").await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn an_existing_external_secret_it_does_not_own_is_left_alone_and_reported_as_failed() {
    let client = start().await;
    let key = unique("airlock-ces-foreign");
    let store = unique("ces-store");
    cluster_store(&client, &store).await;
    let taken = labelled_namespace(&client, "ces-taken", &key, "yes").await;
    let free = labelled_namespace(&client, "ces-free", &key, "yes").await;
    let mut foreign_spec = es_spec("someone-elses-store");
    foreign_spec["target"]["name"] = json!("theirs");
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), &taken),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": taken}, "spec": foreign_spec}),
    )
    .await;
    let ces_name = unique("shared-db");
    apply(
        &Api::<ClusterExternalSecret>::all(client.clone()),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
               "metadata": {"name": ces_name},
               "spec": {"externalSecretName": "db",
                        "namespaceSelectors": [{"matchLabels": {key.as_str(): "yes"}}],
                        "externalSecretSpec": es_spec(&store)}}),
    )
    .await;

    let status = ces_status(&client, &ces_name, "one namespace failed", |s| {
        s.failed_namespaces.is_some() && s.provisioned_namespaces.is_some()
    })
    .await;
    assert_eq!(status.provisioned_namespaces, Some(vec![free.clone()]));
    let failed = status.failed_namespaces.clone().unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].namespace, taken);
    assert_eq!(
        failed[0].reason.as_deref(),
        Some("external secret already exists in namespace")
    );
    assert_eq!(ready_status(&status).as_deref(), Some("False"));
    let condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(
        condition.message.as_deref(),
        Some("one or more namespaces failed")
    );

    let foreign = Api::<ExternalSecret>::namespaced(client.clone(), &taken)
        .get("db")
        .await
        .expect("the foreign ExternalSecret still exists");
    assert_eq!(
        foreign
            .spec
            .secret_store_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("someone-elses-store")
    );
    assert!(foreign.owner_references().is_empty());
    let labels: BTreeMap<String, String> = foreign.labels().clone();
    assert!(labels.is_empty(), "{labels:?}");
}

// Issue 24 (ESO fidelity): a ClusterExternalSecret left by ESO.

#[tokio::test]
async fn esos_finalizers_on_a_cluster_external_secret_and_its_namespaces_do_not_block_deletion() {
    let client = start().await;
    let key = unique("airlock-ces-eso");
    let store = unique("ces-store");
    cluster_store(&client, &store).await;
    let ns = labelled_namespace(&client, "ces-eso", &key, "yes").await;
    let ces_name = unique("from-eso");
    let guard = format!("externalsecrets.external-secrets.io/ces-{ces_name}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [guard]}})),
        )
        .await
        .expect("ESO's namespace finalizer");
    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    apply(
        &ces_api,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
               "metadata": {"name": ces_name, "finalizers": [
                   "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup"]},
               "spec": {"externalSecretName": "db",
                        "namespaceSelectors": [{"matchLabels": {key.as_str(): "yes"}}],
                        "refreshTime": "1h",
                        "externalSecretSpec": es_spec(&store)}}),
    )
    .await;
    let es_api = Api::<ExternalSecret>::namespaced(client.clone(), &ns);
    eventually("the ExternalSecret provisioned", || async {
        es_api.get_opt("db").await.ok()?
    })
    .await;
    eventually("ESO's namespace finalizer removed", || async {
        let n = namespaces.get(&ns).await.ok()?;
        (!n.finalizers().contains(&guard)).then_some(())
    })
    .await;

    ces_api
        .delete(&ces_name, &Default::default())
        .await
        .expect("delete ces");
    eventually(
        "the ClusterExternalSecret with ESO's finalizer is gone",
        || async { matches!(ces_api.get_opt(&ces_name).await, Ok(None)).then_some(()) },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// ClusterPushSecret (issue 19): the same fan-out, of PushSecrets. Each selected namespace has
// its own SecretStore `fake-store` (the fake keeps pushed values per store) and Secret
// `source`; what a stamped PushSecret pushed is read back by an ExternalSecret there.

/// A SecretStore `fake-store` and a Secret `source` with `password: <password>` in `ns`.
async fn push_namespace(client: &Client, ns: &str, password: &str) {
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "fake-store", "namespace": ns},
               "spec": {"provider": {"fake": {"data": []}}}}),
    )
    .await;
    apply(
        &Api::<Secret>::namespaced(client.clone(), ns),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "source", "namespace": ns},
               "stringData": {"password": password}}),
    )
    .await;
}

fn push_spec() -> Value {
    json!({
        "refreshInterval": "1h",
        "deletionPolicy": "Delete",
        "secretStoreRefs": [{"name": "fake-store"}],
        "selector": {"secret": {"name": "source"}},
        "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "app/password"}}}]
    })
}

/// An ExternalSecret `reader` in `ns` reading `app/password` from `fake-store` every second.
async fn reader(client: &Client, ns: &str) {
    apply(
        &Api::<ExternalSecret>::namespaced(client.clone(), ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "reader", "namespace": ns},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRef": {"name": "fake-store", "kind": "SecretStore"},
                        "target": {"name": "reader"},
                        "data": [{"secretKey": "password", "remoteRef": {"key": "app/password"}}]}}),
    )
    .await;
}

async fn cps_status(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&crd::ClusterPushSecretStatus) -> bool,
) -> crd::ClusterPushSecretStatus {
    let api: Api<ClusterPushSecret> = Api::all(client.clone());
    eventually(what, || async {
        let status = api.get(name).await.ok()?.status?;
        check(&status).then_some(status)
    })
    .await
}

#[tokio::test]
async fn a_cluster_push_secret_fans_out_push_secrets_that_push_follow_relabelling_and_are_collected()
 {
    let client = start().await;
    let key = unique("airlock-cps-fanout");
    let mut namespaces = vec![
        labelled_namespace(&client, "cps-a", &key, "yes").await,
        labelled_namespace(&client, "cps-b", &key, "yes").await,
    ];
    namespaces.sort();
    for ns in &namespaces {
        push_namespace(&client, ns, &format!("pw-{ns}")).await;
    }
    let unlabelled = ControlPlane::shared()
        .new_namespace("cps-other")
        .await
        .expect("namespace");
    let cps_name = unique("shared-push");
    let cps_api: Api<ClusterPushSecret> = Api::all(client.clone());
    apply(
        &cps_api,
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
               "metadata": {"name": cps_name},
               "spec": {"pushSecretName": "push",
                        "pushSecretMetadata": {"labels": {"team": "payments"},
                                               "annotations": {"note": "stamped"}},
                        "namespaceSelectors": [{"matchLabels": {key.as_str(): "yes"}}],
                        "refreshTime": "1h",
                        "pushSecretSpec": push_spec()}}),
    )
    .await;

    let status = cps_status(&client, &cps_name, "both namespaces provisioned", |s| {
        s.provisioned_namespaces.as_ref() == Some(&namespaces)
    })
    .await;
    assert_eq!(status.push_secret_name.as_deref(), Some("push"));
    assert_eq!(status.failed_namespaces, None);
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(format!("{:?}", ready.status), "True");
    let cps = cps_api.get(&cps_name).await.expect("cps");

    for ns in &namespaces {
        let api = Api::<PushSecret>::namespaced(client.clone(), ns);
        let ps = api.get("push").await.expect("the PushSecret exists");
        let owners = ps.owner_references();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].kind, "ClusterPushSecret");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(Some(&owners[0].uid), cps.metadata.uid.as_ref());
        assert_eq!(
            ps.labels().get("team").map(String::as_str),
            Some("payments")
        );
        assert_eq!(
            ps.annotations().get("note").map(String::as_str),
            Some("stamped")
        );
        cluster::ready_message(&api, "push", "True", "PushSecret synced successfully").await;
        reader(&client, ns).await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let pushed = eventually(&format!("the value pushed in {ns} read back"), || async {
            cluster::secret_text(&secrets, "reader")
                .await?
                .remove("password")
        })
        .await;
        assert_eq!(pushed, format!("pw-{ns}"));
    }
    let none = Api::<PushSecret>::namespaced(client.clone(), &unlabelled)
        .get_opt("push")
        .await
        .expect("get");
    assert!(none.is_none(), "an unselected namespace got {none:?}");

    // A deleted PushSecret is put back without waiting for refreshTime (1h).
    let first = Api::<PushSecret>::namespaced(client.clone(), &namespaces[0]);
    let old_uid = first.get("push").await.expect("ps").metadata.uid;
    first
        .delete("push", &Default::default())
        .await
        .expect("delete ps");
    eventually("the deleted PushSecret is recreated", || async {
        let ps = first.get_opt("push").await.ok()??;
        (ps.metadata.uid != old_uid).then_some(())
    })
    .await;

    // Unlabelling removes that namespace's PushSecret, and (deletionPolicy Delete) what it
    // pushed: the reader there can no longer find the value.
    label(&client, &namespaces[1], &key, None).await;
    let removed = Api::<PushSecret>::namespaced(client.clone(), &namespaces[1]);
    eventually("the unlabelled namespace loses its PushSecret", || async {
        matches!(removed.get_opt("push").await, Ok(None)).then_some(())
    })
    .await;
    cluster::ready_message(
        &Api::<ExternalSecret>::namespaced(client.clone(), &namespaces[1]),
        "reader",
        "False",
        "",
    )
    .await;
    cps_status(
        &client,
        &cps_name,
        "status without the unlabelled namespace",
        |s| s.provisioned_namespaces.as_deref() == Some(&namespaces[..1]),
    )
    .await;

    // Deleting the ClusterPushSecret garbage-collects the PushSecrets it owns.
    cps_api
        .delete(&cps_name, &Default::default())
        .await
        .expect("delete cps");
    cluster::eventually_within(
        std::time::Duration::from_secs(120),
        "owned PushSecrets are garbage-collected",
        || async { matches!(first.get_opt("push").await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn an_existing_push_secret_it_does_not_own_is_left_alone_and_reported_as_failed() {
    let client = start().await;
    let key = unique("airlock-cps-foreign");
    let taken = labelled_namespace(&client, "cps-taken", &key, "yes").await;
    let free = labelled_namespace(&client, "cps-free", &key, "yes").await;
    for ns in [&taken, &free] {
        push_namespace(&client, ns, "pw").await;
    }
    let mut foreign = push_spec();
    foreign["data"][0]["match"]["remoteRef"]["remoteKey"] = json!("theirs");
    foreign["deletionPolicy"] = json!("None");
    apply(
        &Api::<PushSecret>::namespaced(client.clone(), &taken),
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
               "metadata": {"name": "push", "namespace": taken}, "spec": foreign}),
    )
    .await;
    let cps_name = unique("shared-push");
    apply(
        &Api::<ClusterPushSecret>::all(client.clone()),
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
               "metadata": {"name": cps_name},
               "spec": {"pushSecretName": "push",
                        "namespaceSelectors": [{"matchLabels": {key.as_str(): "yes"}}],
                        "pushSecretSpec": push_spec()}}),
    )
    .await;

    let status = cps_status(&client, &cps_name, "one namespace failed", |s| {
        s.failed_namespaces.is_some() && s.provisioned_namespaces.is_some()
    })
    .await;
    assert_eq!(status.provisioned_namespaces, Some(vec![free.clone()]));
    let failed = status.failed_namespaces.clone().unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].namespace, taken);
    assert_eq!(
        failed[0].reason.as_deref(),
        Some("push secret already exists in namespace")
    );
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(format!("{:?}", ready.status), "False");
    assert_eq!(
        ready.message.as_deref(),
        Some("one or more namespaces failed")
    );
    assert_eq!(ready.reason.as_deref(), Some("NamespacesFailed"));

    let theirs = Api::<PushSecret>::namespaced(client.clone(), &taken)
        .get("push")
        .await
        .expect("the foreign PushSecret still exists");
    assert!(theirs.owner_references().is_empty());
    let data = theirs.spec.data.clone().unwrap_or_default();
    assert_eq!(data[0].match_.remote_ref.remote_key, "theirs");
}
