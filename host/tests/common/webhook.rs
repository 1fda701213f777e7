//! The webhook provider's control-plane case, for a component in any language: include
//! it with `#[path = "common/webhook.rs"] mod webhook_case;` next to `mod cluster;` and
//! `mod common;`, and call [`syncs_through_the_control_plane`] with the `.wasm` to test.
//! Every language's webhook provider must produce the same Secret and the same failures.
#![allow(dead_code)]

use airlock::cli::conformance::fixture::WebhookServer;
use airlock::crd::{ExternalSecret, SecretStore};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;

use crate::cluster::{
    apply, apply_provider, eventually, failure_event, install_crds, ready_message, run_operator,
    secret_text, string_map,
};

/// The file name the Provider loads, whatever language the component is written in.
const MODULE: &str = "airlock_provider_webhook.wasm";
/// The backend's bearer token, held in a Kubernetes Secret the store's `secrets` names.
const TOKEN: &str = "wh-token-7f3a";

/// On the real control plane, with the operator in-process loading `wasm` as Provider
/// `webhook`: a SecretStore with ESO's `spec.provider.webhook` (url template, a header
/// with templated auth from a Secret, `result.jsonPath`) and an ExternalSecret with `data`
/// and `dataFrom.extract` → the expected Secret; then the backend failing (500) and a
/// missing key each give Ready=False with the cause in the Warning event, and the Secret
/// keeps its data.
pub async fn syncs_through_the_control_plane(wasm: &str) {
    let server = WebhookServer::start(TOKEN).await.expect("webhook backend");
    server.set("db/password", "s3cr3t");
    server.set("db/config", r#"{"host":"db.local","port":5432}"#);
    let cp = airlock_testenv::ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("webhook").await.expect("namespace");
    let (runtime, _providers) = run_operator(&client, &ns, &[(wasm, MODULE)]);
    apply_provider(&client, "webhook", MODULE, &["http://127.0.0.1:*"]).await;
    eventually("the webhook provider loaded in this operator", || async {
        runtime.provider("webhook").map(|_| ())
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    apply(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "webhook-credentials", "namespace": ns,
                            "labels": {"external-secrets.io/type": "webhook"}},
               "stringData": {"token": TOKEN}}),
    )
    .await;
    apply(
        &stores,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "webhook-backend", "namespace": ns},
               "spec": {"provider": {"webhook": {
                   "url": format!("{}/secrets/{{{{ .remoteRef.key }}}}", server.url()),
                   "headers": {"Content-Type": "application/json",
                               "Authorization": "Bearer {{ .auth.token }}"},
                   "result": {"jsonPath": "$.value"},
                   "secrets": [{"name": "auth", "secretRef": {"name": "webhook-credentials"}}]}}}}),
    )
    .await;
    ready_message(&stores, "webhook-backend", "True", "").await;

    let external = |keys: &[(&str, &str)]| {
        let data: Vec<_> = keys
            .iter()
            .map(|(secret_key, key)| json!({"secretKey": secret_key, "remoteRef": {"key": key}}))
            .collect();
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": ns},
               "spec": {"refreshInterval": "1h",
                        "secretStoreRef": {"name": "webhook-backend", "kind": "SecretStore"},
                        "target": {"name": "db-secret"},
                        "data": data,
                        "dataFrom": [{"extract": {"key": "db/config"}}]}})
    };
    apply(&externals, external(&[("password", "db/password")])).await;
    ready_message(&externals, "db", "True", "").await;
    let synced = string_map(&[
        ("password", "s3cr3t"),
        ("host", "db.local"),
        ("port", "5432"),
    ]);
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );
    let answered = server.requests();
    assert!(answered >= 2, "the backend saw {answered} requests");

    // The backend failing: Ready=False, the status in the event, the Secret kept.
    server.set_failing(true);
    apply(
        &externals,
        external(&[("password", "db/password"), ("again", "db/password")]),
    )
    .await;
    ready_message(
        &externals,
        "db",
        "False",
        "could not get secret data from provider",
    )
    .await;
    let m = failure_event(&client, &ns, "db", "HTTP 500").await;
    assert!(!m.contains(TOKEN) && !m.contains("s3cr3t"), "{m}");
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // A key the backend does not have (404): ESO's "does not exist", the Secret kept.
    server.set_failing(false);
    apply(&externals, external(&[("password", "db/no-such-key")])).await;
    ready_message(
        &externals,
        "db",
        "False",
        "could not get secret data from provider",
    )
    .await;
    failure_event(&client, &ns, "db", "secret does not exist at provider").await;
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );
}
