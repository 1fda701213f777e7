//! The Doppler provider (`doppler.wasm`) in the real host against the in-repo Doppler fake
//! (`airlock_testenv::fakes::doppler`, held to Doppler's official SDK by its contract test):
//! get with property and absence, find by regexp and path with a name transformer, the
//! whole download in a `format`, the ETag-conditional download that transfers no payload
//! when nothing changed, OIDC, and clear errors for a bad token and a host outside the grant;
//! then on the real control plane, a SecretStore and ExternalSecret syncing from the fake.

mod cluster;
mod common;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, ProviderError, RemoteRef, SecretValue, StoreContext,
    Validation,
};
use airlock::runtime::{Grants, Limits, Runtime, StaticCredentials};
use airlock_testenv::fakes::doppler::FakeDoppler;
use serde_json::{Value, json};

use common::{get, get_ref};

const TOKEN: &str = "dp.st.prd.airlock-test";
const DOWNLOAD: &str = "/v3/configs/config/secrets/download";

fn grants(hosts: &[String]) -> Grants {
    Grants::parse(hosts, &[], Limits::default()).unwrap()
}

/// A fake with project `backend`, configs `prd` and `dev`, and a service token for `prd`.
async fn fake() -> FakeDoppler {
    let fake = FakeDoppler::start().await;
    fake.set_secret("backend", "prd", "DB_PASSWORD", "s3cr3t");
    fake.set_secret("backend", "prd", "DB_USER", "admin");
    fake.set_secret("backend", "prd", "API_KEY", "k-123");
    fake.set_secret(
        "backend",
        "prd",
        "JSON_BLOB",
        r#"{"host":"db.local","port":5432}"#,
    );
    fake.set_secret("backend", "dev", "DB_PASSWORD", "dev-pw");
    fake.add_service_token(TOKEN, "backend", "prd");
    fake
}

fn credentials(token: &str) -> StaticCredentials {
    StaticCredentials::default().with_secret("team-a", "doppler", "token", token.as_bytes())
}

async fn runtime_for(fake: &FakeDoppler, creds: StaticCredentials) -> Runtime {
    let rt = common::runtime_with(creds);
    common::install(
        &rt,
        "doppler",
        airlock_test_artifacts::DOPPLER,
        grants(&[fake.url()]),
    )
    .await;
    rt
}

fn store(fake: &FakeDoppler, extra: Value) -> StoreContext {
    let mut config = json!({
        "endpoint": fake.url(),
        "auth": {"secretRef": {"dopplerToken": {"name": "doppler", "key": "token"}}}
    });
    for (k, v) in extra.as_object().expect("an object") {
        config[k] = v.clone();
    }
    common::store("doppler", "doppler", config)
}

fn texts(map: Vec<(String, SecretValue)>) -> BTreeMap<String, String> {
    map.into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(v.expose()).into_owned()))
        .collect()
}

fn provider_error(e: BackendError) -> ProviderError {
    match e {
        BackendError::Provider(p) => p,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_token_reads_values_and_properties_and_absence_is_not_an_error() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({}));

    assert_eq!(
        get(&rt, &s, "DB_PASSWORD").await.unwrap().as_deref(),
        Some("s3cr3t")
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("JSON_BLOB").property("host"))
            .await
            .unwrap()
            .as_deref(),
        Some("db.local")
    );
    assert_eq!(get(&rt, &s, "NO_SUCH_SECRET").await.unwrap(), None);
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("JSON_BLOB").property("nope"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(rt.validate(&s).await.expect("validates"), Validation::Ready);

    // Naming the token's own project and config works; another config is refused.
    let named = store(&fake, json!({"project": "backend", "config": "prd"}));
    assert_eq!(
        get(&rt, &named, "DB_USER").await.unwrap().as_deref(),
        Some("admin")
    );
    let other = store(&fake, json!({"project": "backend", "config": "dev"}));
    let err = provider_error(get(&rt, &other, "DB_PASSWORD").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("does not have access")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_poll_gets_304_and_transfers_no_secret_payload() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({}));

    assert_eq!(
        get(&rt, &s, "API_KEY").await.unwrap().as_deref(),
        Some("k-123")
    );
    assert_eq!(
        get(&rt, &s, "API_KEY").await.unwrap().as_deref(),
        Some("k-123")
    );
    let polls = fake.requests_to("GET", DOWNLOAD);
    assert_eq!(polls.len(), 2, "{polls:?}");
    assert!(polls[0].status == 200 && polls[0].body_len > 0, "{polls:?}");
    assert!(
        polls[1].status == 304 && polls[1].body_len == 0,
        "{polls:?}"
    );

    // A change in Doppler changes the ETag: the next poll downloads the new value.
    fake.set_secret("backend", "prd", "API_KEY", "k-456");
    assert_eq!(
        get(&rt, &s, "API_KEY").await.unwrap().as_deref(),
        Some("k-456")
    );
    let third = &fake.requests_to("GET", DOWNLOAD)[2];
    assert!(third.status == 200 && third.body_len > 0, "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_filters_by_regexp_and_path_after_the_name_transformer() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;

    let plain = store(&fake, json!({}));
    let found = rt
        .get_all_secrets(
            &plain,
            &FindCriteria {
                name_regexp: Some("^DB_".into()),
                ..Default::default()
            },
        )
        .await
        .expect("find");
    assert_eq!(
        texts(found),
        BTreeMap::from([
            ("DB_PASSWORD".to_string(), "s3cr3t".to_string()),
            ("DB_USER".to_string(), "admin".to_string()),
        ])
    );

    let camel = store(&fake, json!({"nameTransformer": "camel"}));
    let found = rt
        .get_all_secrets(
            &camel,
            &FindCriteria {
                path: Some("db".into()),
                name_regexp: Some("Pass".into()),
                ..Default::default()
            },
        )
        .await
        .expect("find");
    assert_eq!(
        texts(found),
        BTreeMap::from([("dbPassword".to_string(), "s3cr3t".to_string())])
    );

    let kebab = store(&fake, json!({"nameTransformer": "lower-kebab"}));
    let found = rt
        .get_all_secrets(
            &kebab,
            &FindCriteria {
                path: Some("api".into()),
                ..Default::default()
            },
        )
        .await
        .expect("find");
    assert_eq!(
        texts(found),
        BTreeMap::from([("api-key".to_string(), "k-123".to_string())])
    );

    let tags = FindCriteria {
        tags: BTreeMap::from([("env".to_string(), "prd".to_string())]),
        ..Default::default()
    };
    let err = provider_error(rt.get_all_secrets(&plain, &tags).await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::Unsupported(m) if m.contains("tags")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_returns_the_whole_download_under_doppler_secrets_file() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({"format": "env"}));
    let file = get(&rt, &s, "DOPPLER_SECRETS_FILE")
        .await
        .unwrap()
        .expect("a file");
    assert!(
        file.lines().any(|l| l == r#"DB_PASSWORD="s3cr3t""#),
        "{file}"
    );
    assert!(file.lines().any(|l| l == r#"API_KEY="k-123""#), "{file}");
    // Single keys still read Doppler's names.
    assert_eq!(
        get(&rt, &s, "DB_USER").await.unwrap().as_deref(),
        Some("admin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_access_denied_with_dopplers_message() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials("dp.st.revoked")).await;
    let s = store(&fake, json!({}));
    let err = provider_error(get(&rt, &s, "DB_PASSWORD").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("401") && m.contains("Invalid Auth token")),
        "{err:?}"
    );
    let err = provider_error(rt.validate(&s).await.unwrap_err());
    assert!(matches!(&err, ProviderError::AccessDenied(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("dp.st.revoked"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_grant_is_refused_and_never_contacted() {
    let fake = fake().await;
    let rt = common::runtime_with(credentials(TOKEN));
    common::install(
        &rt,
        "doppler",
        airlock_test_artifacts::DOPPLER,
        grants(&["https://api.doppler.com".into()]),
    )
    .await;
    let err = provider_error(
        get(&rt, &store(&fake, json!({})), "DB_PASSWORD")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("not granted") && m.contains("allowedOutboundHosts")),
        "{err:?}"
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_exchanges_the_service_account_token_once_and_reuses_the_doppler_token() {
    let fake = fake().await;
    fake.add_oidc_identity("identity-1234", "header.payload.signature");
    let creds =
        StaticCredentials::default().with_token("team-a", "doppler-sa", "header.payload.signature");
    let rt = runtime_for(&fake, creds).await;
    let s = store(
        &fake,
        json!({
            "project": "backend",
            "config": "dev",
            "auth": {"oidcConfig": {
                "identity": "identity-1234",
                "serviceAccountRef": {"name": "doppler-sa", "audiences": ["https://doppler.example"]}
            }}
        }),
    );
    assert_eq!(
        get(&rt, &s, "DB_PASSWORD").await.unwrap().as_deref(),
        Some("dev-pw")
    );
    assert_eq!(
        get(&rt, &s, "DB_PASSWORD").await.unwrap().as_deref(),
        Some("dev-pw")
    );
    assert_eq!(fake.requests_to("POST", "/v3/auth/oidc").len(), 1);

    let wrong = store(
        &fake,
        json!({
            "project": "backend",
            "config": "dev",
            "auth": {"oidcConfig": {
                "identity": "identity-other",
                "serviceAccountRef": {"name": "doppler-sa", "audiences": ["https://doppler.example"]}
            }}
        }),
    );
    let err = provider_error(get(&rt, &wrong, "DB_PASSWORD").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("OIDC login")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// On the real control plane: the operator in-process, the doppler Provider loaded from the
// built component, the fake as Doppler.

use airlock::controller::{self, Config};
use airlock::crd::{ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use cluster::{apply, eventually, install_crds, ready_message, secret_text, string_map};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

const MODULE: &str = "airlock_provider_doppler.wasm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doppler_store_syncs_an_external_secret_and_a_bad_token_keeps_the_synced_data() {
    let fake = fake().await;
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("doppler").await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::DOPPLER,
        providers.path().join(MODULE),
    )
    .expect("copy doppler.wasm");
    let runtime = cluster::kube_runtime(&client, Some(common::cache_dir()));
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    apply(
        &Api::<Provider>::all(client.clone()),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "doppler"},
               "spec": {"module": {"path": MODULE},
                        "allowedOutboundHosts": ["http://127.0.0.1:*"]}}),
    )
    .await;
    eventually("the doppler provider loaded in this operator", || async {
        runtime.provider("doppler").map(|_| ())
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for (name, token) in [
        ("doppler-token", TOKEN),
        ("doppler-revoked", "dp.st.revoked"),
    ] {
        apply(
            &secrets,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": ns},
                   "stringData": {"dopplerToken": token}}),
        )
        .await;
    }
    // The third store's endpoint is Doppler's real API, outside this Provider's grant.
    let elsewhere = "https://api.doppler.com".to_string();
    for (store, secret, endpoint) in [
        ("doppler", "doppler-token", fake.url()),
        ("doppler-bad", "doppler-revoked", fake.url()),
        ("doppler-elsewhere", "doppler-token", elsewhere),
    ] {
        apply(
            &stores,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": store, "namespace": ns},
                   "spec": {"provider": {"doppler": {
                       "endpoint": endpoint,
                       "project": "backend",
                       "config": "prd",
                       "auth": {"secretRef": {"dopplerToken": {"name": secret, "key": "dopplerToken"}}}}}}}),
        )
        .await;
    }
    ready_message(&stores, "doppler", "True", "").await;
    // ESO's fixed Ready message; Doppler's answer is in the Warning event.
    ready_message(&stores, "doppler-bad", "False", "unable to ").await;
    let m = cluster::warning_event(
        &client,
        &ns,
        "SecretStore",
        "doppler-bad",
        "InvalidProviderConfig",
        "Invalid Auth token",
    )
    .await;
    assert!(m.contains("401"), "{m}");

    let external = |store: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": ns},
               "spec": {"refreshInterval": "1h",
                        "secretStoreRef": {"name": store, "kind": "SecretStore"},
                        "target": {"name": "db-secret"},
                        "data": [
                            {"secretKey": "password", "remoteRef": {"key": "DB_PASSWORD"}},
                            {"secretKey": "host", "remoteRef": {"key": "JSON_BLOB", "property": "host"}}],
                        "dataFrom": [{"find": {"name": {"regexp": "^API_"}}}]}})
    };
    apply(&externals, external("doppler")).await;
    ready_message(&externals, "db", "True", "").await;
    let synced = string_map(&[
        ("password", "s3cr3t"),
        ("host", "db.local"),
        ("API_KEY", "k-123"),
    ]);
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // Switched to the store with a revoked token: Ready=False naming Doppler's answer, and the
    // Secret keeps what it had.
    apply(&externals, external("doppler-bad")).await;
    // ESO's fixed Ready message; Doppler's answer is in the Warning event, as ESO does it.
    ready_message(
        &externals,
        "db",
        "False",
        "could not get secret data from provider",
    )
    .await;
    let m = cluster::failure_event(&client, &ns, "db", "Invalid Auth token").await;
    assert!(m.contains("doppler answered 401"), "{m}");
    assert!(!m.contains("dp.st.revoked"), "{m}");
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // A key the config does not have, then a store whose endpoint is outside the grant:
    // each Ready=False with the cause in the event, and the Secret keeps what it had.
    let one_key = |store: &str, key: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": ns},
               "spec": {"refreshInterval": "1h",
                        "secretStoreRef": {"name": store, "kind": "SecretStore"},
                        "target": {"name": "db-secret"},
                        "data": [{"secretKey": "password", "remoteRef": {"key": key}}]}})
    };
    for (store, key, needle) in [
        (
            "doppler",
            "NO_SUCH_KEY",
            "secret does not exist at provider",
        ),
        ("doppler-elsewhere", "DB_PASSWORD", "allowedOutboundHosts"),
    ] {
        apply(&externals, one_key(store, key)).await;
        ready_message(
            &externals,
            "db",
            "False",
            "could not get secret data from provider",
        )
        .await;
        cluster::failure_event(&client, &ns, "db", needle).await;
        assert_eq!(
            secret_text(&secrets, "db-secret").await.as_ref(),
            Some(&synced),
            "after {store} / {key}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// PushSecret, delete and secret-exists (issue 17, Doppler push and delete).

use airlock::backend::{PushRef, PushRequest};

fn push(key: &str, property: Option<&str>, value: &str) -> PushRequest {
    PushRequest {
        remote: push_ref(key, property),
        value: SecretValue::new(value.as_bytes().to_vec()),
        metadata: None,
    }
}

fn push_ref(key: &str, property: Option<&str>) -> PushRef {
    PushRef {
        remote_key: key.into(),
        property: property.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sets_secrets_and_properties_and_delete_removes_them() {
    let fake = fake().await;
    fake.add_personal_token("dp.pt.writer");
    let rt = runtime_for(&fake, credentials("dp.pt.writer")).await;
    let s = store(&fake, json!({"project": "backend", "config": "prd"}));

    rt.push_secret(&s, &push("PUSHED", None, "v1"))
        .await
        .unwrap();
    assert_eq!(
        fake.secret("backend", "prd", "PUSHED").as_deref(),
        Some("v1")
    );
    // A cached download does not hide the new value: the write changed the ETag.
    assert_eq!(get(&rt, &s, "PUSHED").await.unwrap().as_deref(), Some("v1"));
    rt.push_secret(&s, &push("PUSHED", None, "v2"))
        .await
        .unwrap();
    assert_eq!(get(&rt, &s, "PUSHED").await.unwrap().as_deref(), Some("v2"));

    // A property goes into a JSON object, keeping its other keys.
    rt.push_secret(&s, &push("JSON_BLOB", Some("user"), "alice"))
        .await
        .unwrap();
    let blob: Value =
        serde_json::from_str(&fake.secret("backend", "prd", "JSON_BLOB").unwrap()).unwrap();
    assert_eq!(
        blob,
        json!({"host": "db.local", "port": 5432, "user": "alice"})
    );

    assert!(
        rt.secret_exists(&s, &push_ref("PUSHED", None))
            .await
            .unwrap()
    );
    assert!(
        rt.secret_exists(&s, &push_ref("JSON_BLOB", Some("user")))
            .await
            .unwrap()
    );
    assert!(
        !rt.secret_exists(&s, &push_ref("JSON_BLOB", Some("nope")))
            .await
            .unwrap()
    );
    rt.delete_secret(&s, &push_ref("PUSHED", None))
        .await
        .unwrap();
    assert_eq!(fake.secret("backend", "prd", "PUSHED"), None);
    assert!(
        !rt.secret_exists(&s, &push_ref("PUSHED", None))
            .await
            .unwrap()
    );
    assert_eq!(get(&rt, &s, "PUSHED").await.unwrap(), None);
    // Deleting what is gone is done, without a write.
    let writes = fake.requests_to("POST", "/v3/configs/config/secrets").len();
    rt.delete_secret(&s, &push_ref("PUSHED", None))
        .await
        .unwrap();
    assert_eq!(
        fake.requests_to("POST", "/v3/configs/config/secrets").len(),
        writes
    );

    let err = provider_error(
        rt.push_secret(&s, &push("not-a-name", None, "x"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::InvalidRequest(m) if m.contains("not a doppler secret name")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_with_a_bad_token_is_access_denied_and_writes_nothing() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials("dp.st.revoked")).await;
    let s = store(&fake, json!({}));
    let err = provider_error(
        rt.push_secret(&s, &push("PUSHED", None, "v1"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("Invalid Auth token")),
        "{err:?}"
    );
    assert_eq!(fake.secret("backend", "prd", "PUSHED"), None);
}
