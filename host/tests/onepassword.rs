//! The onepassword provider (`onepassword.wasm`) in the real host against the in-repo 1Password
//! Connect fake (`airlock_testenv::fakes::onepassword`, held to 1Password's official Connect
//! SDK by its contract test): items by title and ID through the vault priority map, fields,
//! the default `password` field and files, extract, find over labels, titles and tags, push
//! and delete, absence (ESO issue #6569) and clear errors for a bad token and a host outside
//! the grant; then on the real control plane, an ESO-documented SecretStore and
//! ExternalSecret syncing from the fake.

mod cluster;
mod common;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, ProviderError, PushRef, PushRequest, RemoteRef,
    SecretValue, StoreContext, Validation,
};
use airlock::runtime::{Grants, Limits, Runtime, StaticCredentials};
use airlock_testenv::fakes::onepassword::FakeOnePassword;
use serde_json::{Value, json};

use common::{get, get_ref};

const TOKEN: &str = "op-connect-token-airlock-test";
const CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n";

fn grants(hosts: &[String]) -> Grants {
    Grants::parse(hosts, &[], Limits::default()).unwrap()
}

/// Vaults `Production` and `Shared`; `database` in both (with different passwords), a Document
/// `tls` with a file, and a tagged `api` item in Shared only.
async fn fake() -> (FakeOnePassword, String) {
    let fake = FakeOnePassword::start().await;
    fake.add_vault("Production");
    fake.add_vault("Shared");
    let db = fake.add_item(
        "Production",
        "database",
        "LOGIN",
        &[("username", "admin"), ("password", "s3cr3t")],
        &["db"],
    );
    fake.add_item(
        "Shared",
        "database",
        "LOGIN",
        &[
            ("username", "shared"),
            ("password", "shared-pw"),
            ("host", "db.local"),
        ],
        &["db"],
    );
    let tls = fake.add_item("Production", "tls", "DOCUMENT", &[], &[]);
    fake.add_file("Production", &tls, "cert.pem", CERT);
    fake.add_item(
        "Shared",
        "api",
        "API_CREDENTIAL",
        &[("api_key", "k-123"), ("api_secret", "k-456")],
        &["team-a"],
    );
    fake.add_token(TOKEN);
    (fake, db)
}

fn credentials(token: &str) -> StaticCredentials {
    StaticCredentials::default().with_secret("team-a", "op-connect", "token", token.as_bytes())
}

async fn runtime_for(fake: &FakeOnePassword, creds: StaticCredentials) -> Runtime {
    let rt = common::runtime_with(creds);
    common::install(
        &rt,
        "onepassword",
        airlock_test_artifacts::ONEPASSWORD,
        grants(&[fake.url()]),
    )
    .await;
    rt
}

fn store(fake: &FakeOnePassword, vaults: Value) -> StoreContext {
    common::store(
        "onepassword",
        "op",
        json!({
            "connectHost": fake.url(),
            "vaults": vaults,
            "auth": {"secretRef": {"connectTokenSecretRef": {"name": "op-connect", "key": "token"}}}
        }),
    )
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

fn push(key: &str, property: Option<&str>, value: &str, metadata: Option<Value>) -> PushRequest {
    PushRequest {
        remote: push_ref(key, property),
        value: SecretValue::new(value.as_bytes().to_vec()),
        metadata,
    }
}

fn push_ref(key: &str, property: Option<&str>) -> PushRef {
    PushRef {
        remote_key: key.into(),
        property: property.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_are_read_by_title_or_id_in_vault_priority_order() {
    let (fake, db_id) = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({"Production": 1, "Shared": 2}));

    // No property: the `password` field, from the first vault that has the item.
    assert_eq!(
        get(&rt, &s, "database").await.unwrap().as_deref(),
        Some("s3cr3t")
    );
    let user = RemoteRef::key("database").property("username");
    assert_eq!(
        get_ref(&rt, &s, user).await.unwrap().as_deref(),
        Some("admin")
    );
    assert_eq!(
        get(&rt, &s, &db_id).await.unwrap().as_deref(),
        Some("s3cr3t")
    );
    // The other priority order finds the other vault's item first.
    let shared_first = store(&fake, json!({"Production": 2, "Shared": 1}));
    assert_eq!(
        get(&rt, &shared_first, "database")
            .await
            .unwrap()
            .as_deref(),
        Some("shared-pw")
    );
    // An item only in the second vault is found there.
    let key = RemoteRef::key("api").property("api_key");
    assert_eq!(
        get_ref(&rt, &s, key).await.unwrap().as_deref(),
        Some("k-123")
    );
    // A Document's file, by name, with or without the `file/` prefix; a login's by prefix.
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("tls").property("cert.pem"))
            .await
            .unwrap()
            .map(String::into_bytes)
            .as_deref(),
        Some(CERT)
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("tls").property("file/cert.pem"))
            .await
            .unwrap()
            .map(String::into_bytes)
            .as_deref(),
        Some(CERT)
    );
    assert_eq!(rt.validate(&s).await.expect("validates"), Validation::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_item_field_or_file_is_absence_not_an_error() {
    let (fake, _) = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({"Production": 1, "Shared": 2}));
    assert_eq!(get(&rt, &s, "no-such-item").await.unwrap(), None);
    assert_eq!(
        get(&rt, &s, "zzzzzzzzzzzzzzzzzzzzzzzzzz").await.unwrap(),
        None
    );
    let field = RemoteRef::key("database").property("no-such-field");
    assert_eq!(get_ref(&rt, &s, field).await.unwrap(), None);
    let file = RemoteRef::key("tls").property("key.pem");
    assert_eq!(get_ref(&rt, &s, file).await.unwrap(), None);
    // `tls` has no `password` field.
    let login_field = RemoteRef::key("tls").property("field/password");
    assert_eq!(get_ref(&rt, &s, login_field).await.unwrap(), None);
    assert_eq!(
        rt.get_secret_map(&s, &RemoteRef::key("no-such-item"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_and_find_return_labels_and_files_first_vault_winning() {
    let (fake, _) = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({"Production": 1, "Shared": 2}));

    let all = rt
        .get_secret_map(&s, &RemoteRef::key("database"))
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(
        texts(all),
        BTreeMap::from([
            ("username".to_string(), "admin".to_string()),
            ("password".to_string(), "s3cr3t".to_string()),
        ])
    );

    let by_name = FindCriteria {
        name_regexp: Some("^(pass|host|api_key)".into()),
        ..Default::default()
    };
    assert_eq!(
        texts(rt.get_all_secrets(&s, &by_name).await.expect("find")),
        BTreeMap::from([
            ("password".to_string(), "s3cr3t".to_string()),
            ("host".to_string(), "db.local".to_string()),
            ("api_key".to_string(), "k-123".to_string()),
        ])
    );
    let by_title = FindCriteria {
        path: Some("tls".into()),
        ..Default::default()
    };
    let files = rt.get_all_secrets(&s, &by_title).await.expect("find");
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].0.as_str(), files[0].1.expose()),
        ("cert.pem", CERT)
    );
    let by_tag = FindCriteria {
        tags: BTreeMap::from([("team-a".to_string(), String::new())]),
        ..Default::default()
    };
    assert_eq!(
        texts(rt.get_all_secrets(&s, &by_tag).await.expect("find")),
        BTreeMap::from([
            ("api_key".to_string(), "k-123".to_string()),
            ("api_secret".to_string(), "k-456".to_string()),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_creates_and_updates_fields_and_delete_removes_them_then_the_item() {
    let (fake, _) = fake().await;
    let rt = runtime_for(&fake, credentials(TOKEN)).await;
    let s = store(&fake, json!({"Production": 1, "Shared": 2}));

    let tagged = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                        "kind": "PushSecretMetadata",
                        "spec": {"vault": "Shared", "tags": ["pushed"]}});
    rt.push_secret(&s, &push("pushed", None, "v1", Some(tagged)))
        .await
        .unwrap();
    let created = fake.items_titled("Shared", "pushed");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["category"], "SERVER");
    assert_eq!(created[0]["tags"], json!(["pushed"]));
    assert_eq!(created[0]["fields"][0]["label"], "password");
    assert_eq!(created[0]["fields"][0]["type"], "CONCEALED");
    assert_eq!(get(&rt, &s, "pushed").await.unwrap().as_deref(), Some("v1"));

    rt.push_secret(&s, &push("pushed", None, "v2", None))
        .await
        .unwrap();
    rt.push_secret(&s, &push("pushed", Some("user"), "alice", None))
        .await
        .unwrap();
    assert_eq!(get(&rt, &s, "pushed").await.unwrap().as_deref(), Some("v2"));
    let user = RemoteRef::key("pushed").property("user");
    assert_eq!(
        get_ref(&rt, &s, user).await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(
        fake.items_titled("Shared", "pushed")[0]["tags"],
        json!(["pushed"])
    );
    // Pushing the value it already has writes nothing.
    let puts = fake.requests_with("PUT").len();
    rt.push_secret(&s, &push("pushed", None, "v2", None))
        .await
        .unwrap();
    assert_eq!(fake.requests_with("PUT").len(), puts);

    assert!(
        rt.secret_exists(&s, &push_ref("pushed", Some("user")))
            .await
            .unwrap()
    );
    assert!(
        !rt.secret_exists(&s, &push_ref("pushed", Some("nope")))
            .await
            .unwrap()
    );
    rt.delete_secret(&s, &push_ref("pushed", Some("user")))
        .await
        .unwrap();
    assert!(
        !rt.secret_exists(&s, &push_ref("pushed", Some("user")))
            .await
            .unwrap()
    );
    assert!(
        rt.secret_exists(&s, &push_ref("pushed", None))
            .await
            .unwrap()
    );
    // Its last field gone, the item goes too.
    rt.delete_secret(&s, &push_ref("pushed", None))
        .await
        .unwrap();
    assert!(fake.items_titled("Shared", "pushed").is_empty());
    assert!(
        !rt.secret_exists(&s, &push_ref("pushed", None))
            .await
            .unwrap()
    );
    rt.delete_secret(&s, &push_ref("never-existed", None))
        .await
        .unwrap();

    // Without a metadata vault, a new item goes to the first vault by priority.
    rt.push_secret(&s, &push("fresh", None, "x", None))
        .await
        .unwrap();
    assert_eq!(fake.items_titled("Production", "fresh").len(), 1);
    let elsewhere = json!({"spec": {"vault": "Other"}});
    let err = provider_error(
        rt.push_secret(&s, &push("new", None, "x", Some(elsewhere)))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::InvalidRequest(m) if m.contains("\"Other\"")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_access_denied_with_connects_message() {
    let (fake, _) = fake().await;
    let rt = runtime_for(&fake, credentials("op-connect-revoked")).await;
    let s = store(&fake, json!({"Production": 1}));
    let err = provider_error(get(&rt, &s, "database").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("401") && m.contains("Invalid token signature")),
        "{err:?}"
    );
    let err = provider_error(rt.validate(&s).await.unwrap_err());
    assert!(matches!(&err, ProviderError::AccessDenied(_)), "{err:?}");
    assert!(
        !format!("{err:?}").contains("op-connect-revoked"),
        "{err:?}"
    );
    // A vault the token cannot see is the store's configuration to fix.
    let ok = runtime_for(&fake, credentials(TOKEN)).await;
    let err = provider_error(
        ok.validate(&store(&fake, json!({"Nope": 1})))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("no vault \"Nope\"")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_grant_is_refused_and_never_contacted() {
    let (fake, _) = fake().await;
    let rt = common::runtime_with(credentials(TOKEN));
    common::install(
        &rt,
        "onepassword",
        airlock_test_artifacts::ONEPASSWORD,
        grants(&["http://onepassword-connect:8080".into()]),
    )
    .await;
    let err = provider_error(
        get(&rt, &store(&fake, json!({"Production": 1})), "database")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("not granted") && m.contains("allowedOutboundHosts")),
        "{err:?}"
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

// ---------------------------------------------------------------------------------------
// On the real control plane: the operator in-process, the onepassword Provider loaded from
// the built component, the fake as the Connect server.

use airlock::controller::{self, Config};
use airlock::crd::{ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use cluster::{apply, eventually, install_crds, ready_message, secret_text, string_map};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

const MODULE: &str = "airlock_provider_onepassword.wasm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_onepassword_store_syncs_and_a_bad_token_a_missing_item_or_an_ungranted_host_keep_the_data()
 {
    let (fake, _) = fake().await;
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("onepassword").await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::ONEPASSWORD,
        providers.path().join(MODULE),
    )
    .expect("copy onepassword.wasm");
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
               "metadata": {"name": "onepassword"},
               "spec": {"module": {"path": MODULE},
                        "allowedOutboundHosts": [fake.url()]}}),
    )
    .await;
    eventually(
        "the onepassword provider loaded in this operator",
        || async { runtime.provider("onepassword").map(|_| ()) },
    )
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for (name, token) in [
        ("onepassword-connect-token", TOKEN),
        ("onepassword-revoked", "op-connect-revoked"),
    ] {
        apply(
            &secrets,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": ns},
                   "stringData": {"token": token}}),
        )
        .await;
    }
    // ESO's documented store (docs/provider/1password-automation.md), with this fake as host.
    for (store, host, secret) in [
        ("onepassword", fake.url(), "onepassword-connect-token"),
        ("onepassword-bad", fake.url(), "onepassword-revoked"),
        (
            "onepassword-elsewhere",
            "http://onepassword-connect:8080".to_string(),
            "onepassword-connect-token",
        ),
    ] {
        apply(
            &stores,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": store, "namespace": ns},
                   "spec": {"provider": {"onepassword": {
                       "connectHost": host,
                       "vaults": {"Production": 1, "Shared": 2},
                       "auth": {"secretRef": {"connectTokenSecretRef": {"name": secret, "key": "token"}}}}}}}),
        )
        .await;
    }
    ready_message(&stores, "onepassword", "True", "").await;
    // ESO's fixed Ready messages; the detail is in the store's Warning event.
    ready_message(&stores, "onepassword-bad", "False", "unable to ").await;
    let m = cluster::warning_event(
        &client,
        &ns,
        "SecretStore",
        "onepassword-bad",
        "InvalidProviderConfig",
        "Invalid token signature",
    )
    .await;
    assert!(m.contains("401"), "{m}");
    ready_message(&stores, "onepassword-elsewhere", "False", "unable to ").await;
    let m = cluster::warning_event(
        &client,
        &ns,
        "SecretStore",
        "onepassword-elsewhere",
        "InvalidProviderConfig",
        "allowedOutboundHosts",
    )
    .await;
    assert!(m.contains("onepassword-connect:8080"), "{m}");

    let external = |store: &str, item: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": ns},
               "spec": {"refreshInterval": "1h",
                        "secretStoreRef": {"name": store, "kind": "SecretStore"},
                        "target": {"name": "db-secret"},
                        "data": [
                            {"secretKey": "password", "remoteRef": {"key": item, "property": "password"}},
                            {"secretKey": "cert", "remoteRef": {"key": "tls", "property": "cert.pem"}}],
                        "dataFrom": [{"extract": {"key": "api"}}]}})
    };
    apply(&externals, external("onepassword", "database")).await;
    ready_message(&externals, "db", "True", "").await;
    let synced = string_map(&[
        ("password", "s3cr3t"),
        ("cert", std::str::from_utf8(CERT).unwrap()),
        ("api_key", "k-123"),
        ("api_secret", "k-456"),
    ]);
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // A missing item: Ready=False (deletionPolicy Retain), the event says which, data kept.
    apply(&externals, external("onepassword", "no-such-item")).await;
    ready_message(&externals, "db", "False", "").await;
    cluster::failure_event(&client, &ns, "db", "secret does not exist at provider").await;
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // A revoked token: Ready=False, Connect's answer in the event, data kept.
    apply(&externals, external("onepassword-bad", "database")).await;
    ready_message(
        &externals,
        "db",
        "False",
        "could not get secret data from provider",
    )
    .await;
    let m = cluster::failure_event(&client, &ns, "db", "Invalid token signature").await;
    assert!(!m.contains("op-connect-revoked"), "{m}");
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // A store whose host is outside the Provider's grant: Ready=False, data kept.
    apply(&externals, external("onepassword-elsewhere", "database")).await;
    ready_message(
        &externals,
        "db",
        "False",
        "could not get secret data from provider",
    )
    .await;
    let m = cluster::failure_event(&client, &ns, "db", "allowedOutboundHosts").await;
    assert!(m.contains("onepassword-connect:8080"), "{m}");
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );
}
