//! The webhook provider (`webhook.wasm`, ESO's `spec.provider.webhook`) in the real host
//! against a JSON server on 127.0.0.1: templated URL and auth header from a Secret read
//! through the host's credentials, `result.jsonPath`, absence on 404, extract, and ESO's
//! error mapping; then on the real control plane, the case every language's webhook
//! provider must pass (`common/webhook.rs`).

mod cluster;
mod common;
#[path = "common/webhook.rs"]
mod webhook_case;

use airlock::backend::{Backend, BackendError, ProviderError, RemoteRef, StoreContext};
use airlock::cli::conformance::fixture::WebhookServer;
use airlock::cli::conformance::webhook_config;
use airlock::runtime::{Grants, Limits, Runtime, RuntimeError, StaticCredentials};
use serde_json::json;

use common::get;

const TOKEN: &str = "wh-runtime-token";

async fn setup() -> (WebhookServer, Runtime) {
    let server = WebhookServer::start(TOKEN).await.expect("server");
    server.set("db/password", "s3cr3t");
    server.set("db/config", r#"{"user":"admin","port":5432}"#);
    let rt = common::runtime_with(StaticCredentials::default().with_secret(
        "team-a",
        "webhook-credentials",
        "token",
        TOKEN.as_bytes(),
    ));
    let grants = Grants::parse(&[server.url()], &[], Limits::default()).unwrap();
    common::install(&rt, "webhook", airlock_test_artifacts::WEBHOOK, grants).await;
    (server, rt)
}

fn store(config: serde_json::Value) -> StoreContext {
    common::store("webhook", "webhook-backend", config)
}

fn provider_error(e: BackendError) -> ProviderError {
    match e {
        BackendError::Provider(p) => p,
        other => panic!("expected a provider error, got {other}"),
    }
}

#[tokio::test]
async fn a_templated_url_and_auth_header_read_a_value_through_json_path_and_absence_is_none() {
    let (server, rt) = setup().await;
    let store = store(webhook_config(&server.url()));
    assert_eq!(
        get(&rt, &store, "db/password").await.unwrap().as_deref(),
        Some("s3cr3t")
    );
    assert_eq!(get(&rt, &store, "db/absent").await.unwrap(), None);
    let map = rt
        .get_secret_map(&store, &RemoteRef::key("db/config"))
        .await
        .unwrap()
        .expect("a map");
    let mut map: Vec<(String, String)> = map
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(v.expose()).into_owned()))
        .collect();
    map.sort();
    assert_eq!(
        map,
        [
            ("port".to_string(), "5432".to_string()),
            ("user".to_string(), "admin".to_string())
        ]
    );
}

#[tokio::test]
async fn without_json_path_the_whole_body_comes_back() {
    let (server, rt) = setup().await;
    let mut config = webhook_config(&server.url());
    config.as_object_mut().unwrap().remove("result");
    let value = get(&rt, &store(config), "db/password").await.unwrap();
    assert_eq!(value.as_deref(), Some(r#"{"value":"s3cr3t"}"#));
}

#[tokio::test]
async fn backend_failures_map_to_esos_error_kinds_without_the_token() {
    let (server, rt) = setup().await;
    let mut config = webhook_config(&server.url());
    config["headers"]["Authorization"] = json!("Bearer wrong-{{ .auth.token }}");
    let denied = provider_error(get(&rt, &store(config), "db/password").await.unwrap_err());
    assert!(
        matches!(&denied, ProviderError::AccessDenied(m) if m.contains("HTTP 401")),
        "{denied:?}"
    );
    server.set_failing(true);
    let failing = provider_error(
        get(&rt, &store(webhook_config(&server.url())), "db/password")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&failing, ProviderError::Unavailable(m) if m.contains("HTTP 500")),
        "{failing:?}"
    );
    for e in [denied, failing] {
        assert!(!e.to_string().contains(TOKEN), "{e}");
    }
}

#[tokio::test]
async fn secrets_are_read_only_from_the_stores_namespace_and_only_the_named_secret() {
    let (server, rt) = setup().await;
    let mut config = webhook_config(&server.url());
    config["secrets"] = json!([{"name": "auth", "secretRef": {"name": "other-secret"}}]);
    let missing = provider_error(get(&rt, &store(config), "db/password").await.unwrap_err());
    assert!(
        matches!(&missing, ProviderError::InvalidConfig(m) if m.contains("secrets[auth]")),
        "{missing:?}"
    );
    let mut config = webhook_config(&server.url());
    config["secrets"] = json!([{"name": "auth",
        "secretRef": {"name": "webhook-credentials", "namespace": "kube-system"}}]);
    let denied = provider_error(get(&rt, &store(config), "db/password").await.unwrap_err());
    assert!(
        matches!(&denied, ProviderError::AccessDenied(m) if m.contains("own namespace")),
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_config_outside_the_template_subset_is_refused_naming_the_field() {
    let (server, rt) = setup().await;
    let mut config = webhook_config(&server.url());
    config["body"] = json!("{{ range .remoteRef.key }}x{{ end }}");
    let e = rt.validate(&store(config)).await.unwrap_err();
    let e = provider_error(e);
    assert!(
        matches!(&e, ProviderError::InvalidConfig(m) if m.contains("template body") && m.contains("\"range\"")),
        "{e:?}"
    );
    let e = rt
        .validate(&store(json!({"url": server.url(), "caBundle": "eA=="})))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BackendError::Runtime(RuntimeError::ConfigSchema { .. }))
            || matches!(&e, BackendError::Provider(ProviderError::InvalidConfig(m)) if m.contains("caBundle")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_webhook_syncs_an_external_secret_on_the_control_plane() {
    webhook_case::syncs_through_the_control_plane(airlock_test_artifacts::WEBHOOK).await;
}
