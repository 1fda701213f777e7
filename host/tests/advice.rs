//! Failure events that say what to do next, on a real kube-apiserver: a sync refused by the
//! sandbox's egress or credential policy gets a Warning event naming the Provider, what was
//! refused and the setting that would allow it. The hostile guest makes the requests.

mod cluster;

use airlock::controller::{self, Config};
use airlock::crd::{ClusterSecretStore, ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use cluster::{apply, eventually, failure_event, install_crds, ready_message};
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

/// A namespace, the operator running in it, and a Provider of the hostile guest granted no
/// host and no operator token.
struct Env {
    client: Client,
    ns: String,
    provider: String,
    _providers: tempfile::TempDir,
}

async fn start(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace(prefix).await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::HOSTILE,
        providers.path().join("hostile.wasm"),
    )
    .expect("copy hostile.wasm");
    let runtime = cluster::kube_runtime(&client, None);
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    // Provider objects are cluster-wide: this test's own name.
    let provider = format!("{ns}-hostile");
    apply(
        &Api::<Provider>::all(client.clone()),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": provider}, "spec": {"module": {"path": "hostile.wasm"}}}),
    )
    .await;
    eventually("the hostile provider loaded", || async {
        runtime.provider(&provider).map(|_| ())
    })
    .await;
    Env {
        client,
        ns,
        provider,
        _providers: providers,
    }
}

impl Env {
    /// An ExternalSecret reading `key` from the store `store` of `kind`.
    async fn external_secret(&self, name: &str, store: &str, kind: &str, key: &str) {
        apply(
            &Api::<ExternalSecret>::namespaced(self.client.clone(), &self.ns),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": name, "namespace": self.ns},
                   "spec": {"secretStoreRef": {"name": store, "kind": kind},
                            "target": {"name": name},
                            "data": [{"secretKey": "value", "remoteRef": {"key": key}}]}}),
        )
        .await;
    }

    /// Waits for ESO's fixed failure message on `name`, then returns the event note
    /// mentioning `needle`.
    async fn failure(&self, name: &str, needle: &str) -> String {
        let api = Api::<ExternalSecret>::namespaced(self.client.clone(), &self.ns);
        ready_message(
            &api,
            name,
            "False",
            "could not get secret data from provider",
        )
        .await;
        failure_event(&self.client, &self.ns, name, needle).await
    }
}

fn store_spec(provider: &str) -> Value {
    json!({"provider": {provider: {}}})
}

#[tokio::test]
async fn a_refused_host_or_operator_token_gets_an_event_naming_the_setting_to_change() {
    let env = start("advice").await;
    let p = &env.provider;
    apply(
        &Api::<SecretStore>::namespaced(env.client.clone(), &env.ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "hostile", "namespace": env.ns}, "spec": store_spec(p)}),
    )
    .await;

    // Egress to a host the Provider does not grant.
    env.external_secret(
        "egress",
        "hostile",
        "SecretStore",
        "http:https://refused.example/v1/secret",
    )
    .await;
    let note = env.failure("egress", "not granted").await;
    assert!(
        note.contains(&format!(
            "outbound host https://refused.example:443 is not granted to provider {p}"
        )),
        "{note}"
    );
    assert!(
        note.ends_with(&format!(
            "; to fix: add \"https://refused.example\" to spec.allowedOutboundHosts of \
             Provider {p}"
        )),
        "{note}"
    );

    // The operator's token asked for from a namespaced store.
    env.external_secret("ns-token", "hostile", "SecretStore", "operator-token")
        .await;
    let note = env
        .failure("ns-token", "operator's service-account token")
        .await;
    assert!(
        note.ends_with(&format!(
            "; to fix: name a secretRef or serviceAccountRef in the auth of SecretStore {}/hostile \
             (only a ClusterSecretStore may use the operator's token)",
            env.ns
        )),
        "{note}"
    );

    // The operator's token asked for from a ClusterSecretStore of a Provider that does not
    // grant it.
    let cluster_store = format!("{}-hostile", env.ns);
    let cluster_stores = Api::<ClusterSecretStore>::all(env.client.clone());
    apply(
        &cluster_stores,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
               "metadata": {"name": cluster_store}, "spec": store_spec(p)}),
    )
    .await;
    env.external_secret(
        "cluster-token",
        &cluster_store,
        "ClusterSecretStore",
        "operator-token",
    )
    .await;
    let note = env
        .failure("cluster-token", "is not granted the operator's")
        .await;
    assert!(
        note.ends_with(&format!(
            "; to fix: set spec.credentials.allowOperatorServiceAccountToken: true on Provider \
             {p}, or name a secretRef or serviceAccountRef in the store's auth"
        )),
        "{note}"
    );
    cluster_stores
        .delete(&cluster_store, &Default::default())
        .await
        .expect("delete the ClusterSecretStore");
}
