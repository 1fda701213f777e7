//! The Akeyless provider (`akeyless.wasm`) in the real host against the in-repo Akeyless fake
//! (`airlock_testenv::fakes::akeyless`, held to the official `akeyless` SDK by its contract
//! test): reads of every item type with version and property, find, push and delete, the
//! token cached per store, Kubernetes auth, and clear errors for a bad access key, a missing
//! item and a host outside the grant.

mod cluster;
mod common;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, ProviderError, PushRef, PushRequest, RemoteRef,
    SecretValue,
};
use airlock::runtime::{Grants, Limits, Runtime, StaticCredentials};
use airlock_testenv::fakes::akeyless::{FakeAkeyless, MANAGED_TAG};
use serde_json::{Value, json};

use common::{get, get_ref};

fn grants(hosts: &[String]) -> Grants {
    Grants::parse(hosts, &[], Limits::default()).unwrap()
}

async fn fake() -> FakeAkeyless {
    let fake = FakeAkeyless::start().await;
    fake.add_access_key("p-airlock", "key-airlock");
    fake.add_static(
        "/app/db",
        &[
            r#"{"user":"admin","password":"pw-1"}"#,
            r#"{"user":"admin","password":"pw-2"}"#,
        ],
        &["prod"],
    );
    fake.add_static("/app/api-key", &["k-123"], &["prod", "api"]);
    fake.add_static("/other/x", &["x"], &[]);
    fake.add_dynamic("/app/dyn", json!({"user": "tmp", "password": "tmp-pw"}));
    fake.add_rotated("/app/rot", json!({"username": "svc", "password": "rot-pw"}));
    fake.add_certificate(
        "/app/cert",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "KEY",
    );
    fake
}

fn credentials(key: &str) -> StaticCredentials {
    StaticCredentials::default()
        .with_secret("team-a", "akeyless", "accessId", b"p-airlock")
        .with_secret("team-a", "akeyless", "accessType", b"access_key")
        .with_secret("team-a", "akeyless", "accessTypeParam", key.as_bytes())
}

async fn runtime_for(fake: &FakeAkeyless, creds: StaticCredentials) -> Runtime {
    let rt = common::runtime_with(creds);
    common::install(
        &rt,
        "akeyless",
        airlock_test_artifacts::AKEYLESS,
        grants(&[fake.url()]),
    )
    .await;
    rt
}

fn store_with(url: String, auth: Value) -> airlock::backend::StoreContext {
    common::store(
        "akeyless",
        "akeyless",
        json!({"akeylessGWApiURL": url, "authSecretRef": auth}),
    )
}

fn store(fake: &FakeAkeyless) -> airlock::backend::StoreContext {
    let key = |k: &str| json!({"name": "akeyless", "key": k});
    store_with(
        fake.url(),
        json!({"secretRef": {"accessID": key("accessId"), "accessType": key("accessType"),
                             "accessTypeParam": key("accessTypeParam")}}),
    )
}

fn provider_error(e: BackendError) -> ProviderError {
    match e {
        BackendError::Provider(p) => p,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_type_reads_with_version_and_property_and_the_token_is_cached() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials("key-airlock")).await;
    let s = store(&fake);
    let read = |key: &str, property: Option<&str>, version: Option<&str>| {
        let mut r = RemoteRef::key(key);
        if let Some(p) = property {
            r = r.property(p);
        }
        r.version = version.map(str::to_string);
        r
    };
    assert_eq!(
        get_ref(&rt, &s, read("/app/db", Some("password"), None))
            .await
            .unwrap()
            .as_deref(),
        Some("pw-2")
    );
    assert_eq!(
        get_ref(&rt, &s, read("/app/db", Some("password"), Some("1")))
            .await
            .unwrap()
            .as_deref(),
        Some("pw-1")
    );
    assert_eq!(
        get(&rt, &s, "/app/api-key").await.unwrap().as_deref(),
        Some("k-123")
    );
    assert_eq!(
        get_ref(&rt, &s, read("/app/dyn", Some("password"), None))
            .await
            .unwrap()
            .as_deref(),
        Some("tmp-pw")
    );
    assert_eq!(
        get_ref(&rt, &s, read("/app/rot", Some("username"), None))
            .await
            .unwrap()
            .as_deref(),
        Some("svc")
    );
    let cert = get_ref(&rt, &s, read("/app/cert", Some("certificate_pem"), None))
        .await
        .unwrap()
        .unwrap();
    assert!(
        cert.starts_with("-----BEGIN CERTIFICATE-----"),
        "certificate"
    );
    // A missing item or version is absence, not an error.
    assert_eq!(get(&rt, &s, "/app/nope").await.unwrap(), None);
    assert_eq!(
        get_ref(&rt, &s, read("/app/db", None, Some("9")))
            .await
            .unwrap(),
        None
    );
    // One login for all of it; an expired token is replaced once.
    assert_eq!(fake.requests_to("/auth").len(), 1);
    fake.expire_tokens();
    assert_eq!(
        get(&rt, &s, "/app/api-key").await.unwrap().as_deref(),
        Some("k-123")
    );
    assert_eq!(fake.requests_to("/auth").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_pages_through_list_items_by_path_regexp_and_tags() {
    let fake = fake().await;
    fake.set_page_size(2);
    let rt = runtime_for(&fake, credentials("key-airlock")).await;
    let s = store(&fake);
    let names =
        |found: Vec<(String, SecretValue)>| found.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let found = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                path: Some("app".into()),
                name_regexp: Some("d".into()),
                ..Default::default()
            },
        )
        .await
        .expect("find");
    assert_eq!(names(found), ["/app/db", "/app/dyn"]);
    let tagged = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                tags: BTreeMap::from([
                    ("env".to_string(), "prod".to_string()),
                    ("kind".to_string(), "api".to_string()),
                ]),
                ..Default::default()
            },
        )
        .await
        .expect("find by tags");
    assert_eq!(names(tagged), ["/app/api-key"]);
    assert!(fake.requests_to("/list-items").len() >= 3, "paged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_creates_a_managed_secret_and_delete_removes_only_managed_ones() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials("key-airlock")).await;
    let s = store(&fake);
    let pushed = PushRef {
        remote_key: "/eso/pushed".into(),
        property: Some("token".into()),
    };
    let push = |r: &PushRef, v: &str| PushRequest {
        remote: r.clone(),
        value: SecretValue::new(v.as_bytes().to_vec()),
        metadata: None,
    };
    rt.push_secret(&s, &push(&pushed, "abc"))
        .await
        .expect("create");
    assert_eq!(
        fake.static_value("/eso/pushed").as_deref(),
        Some(r#"{"token":"abc"}"#)
    );
    assert_eq!(
        fake.tags("/eso/pushed"),
        Some(vec![MANAGED_TAG.to_string()])
    );
    let other = PushRef {
        remote_key: "/eso/pushed".into(),
        property: Some("user".into()),
    };
    rt.push_secret(&s, &push(&other, "me"))
        .await
        .expect("update");
    assert_eq!(
        fake.static_value("/eso/pushed").as_deref(),
        Some(r#"{"token":"abc","user":"me"}"#)
    );
    assert!(rt.secret_exists(&s, &other).await.unwrap());
    rt.delete_secret(&s, &pushed).await.expect("delete one key");
    assert_eq!(
        fake.static_value("/eso/pushed").as_deref(),
        Some(r#"{"user":"me"}"#)
    );
    rt.delete_secret(&s, &other)
        .await
        .expect("delete the last key");
    assert_eq!(fake.static_value("/eso/pushed"), None);
    assert!(!rt.secret_exists(&s, &other).await.unwrap());
    // An item ESO did not create is left alone.
    rt.delete_secret(
        &s,
        &PushRef {
            remote_key: "/app/api-key".into(),
            property: None,
        },
    )
    .await
    .expect("no-op");
    assert_eq!(fake.static_value("/app/api-key").as_deref(), Some("k-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_auth_sends_the_service_account_token_base64_encoded() {
    let fake = fake().await;
    fake.add_k8s_auth("p-k8s", "my-conf", "header.payload.signature");
    let creds = StaticCredentials::default().with_token(
        "team-a",
        "akeyless-sa",
        "header.payload.signature",
    );
    let rt = runtime_for(&fake, creds).await;
    let s = store_with(
        format!("{}/v2", fake.url()),
        json!({"kubernetesAuth": {"accessID": "p-k8s", "k8sConfName": "my-conf", "serviceAccountRef": {"name": "akeyless-sa"}}}),
    );
    assert_eq!(
        get(&rt, &s, "/app/api-key").await.unwrap().as_deref(),
        Some("k-123")
    );
    let wrong = store_with(
        fake.url(),
        json!({"kubernetesAuth": {"accessID": "p-k8s", "k8sConfName": "other", "serviceAccountRef": {"name": "akeyless-sa"}}}),
    );
    let err = provider_error(get(&rt, &wrong, "/app/api-key").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("401 to auth")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_access_key_is_access_denied_and_an_ungranted_host_is_never_contacted() {
    let fake = fake().await;
    let rt = runtime_for(&fake, credentials("wrong-key")).await;
    let err = provider_error(get(&rt, &store(&fake), "/app/api-key").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("akeyless answered 401 to auth")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("wrong-key"), "{err:?}");
    let err = provider_error(rt.validate(&store(&fake)).await.unwrap_err());
    assert!(matches!(&err, ProviderError::AccessDenied(_)), "{err:?}");

    let other = FakeAkeyless::start().await;
    let rt = common::runtime_with(credentials("key-airlock"));
    common::install(
        &rt,
        "akeyless",
        airlock_test_artifacts::AKEYLESS,
        grants(&["https://api.akeyless.io".into()]),
    )
    .await;
    let err = provider_error(get(&rt, &store(&other), "/app/api-key").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("not granted") && m.contains("allowedOutboundHosts")),
        "{err:?}"
    );
    assert!(other.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// On the real control plane: the operator in-process, the akeyless Provider loaded from the
// built component, the fake as the Akeyless API.

use airlock::controller::{self, Config};
use airlock::crd::{ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use cluster::{apply, eventually, install_crds, ready_message, secret_text, string_map};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

const MODULE: &str = "airlock_provider_akeyless.wasm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_akeyless_store_syncs_and_a_bad_key_a_missing_item_or_an_ungranted_host_keep_the_data() {
    let fake = fake().await;
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("akeyless").await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::AKEYLESS,
        providers.path().join(MODULE),
    )
    .expect("copy akeyless.wasm");
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
               "metadata": {"name": "akeyless"},
               "spec": {"module": {"path": MODULE},
                        "allowedOutboundHosts": [fake.url()]}}),
    )
    .await;
    eventually("the akeyless provider loaded in this operator", || async {
        runtime.provider("akeyless").map(|_| ())
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for (name, key) in [
        ("akeyless-secret-creds", "key-airlock"),
        ("akeyless-wrong-creds", "not-the-key"),
    ] {
        apply(
            &secrets,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": ns},
                   "stringData": {"accessId": "p-airlock", "accessType": "access_key",
                                  "accessTypeParam": key}}),
        )
        .await;
    }
    // ESO's documented store (docs/provider/akeyless.md), with this fake as the API URL.
    let elsewhere = "https://api.akeyless.io".to_string();
    for (store, url, creds) in [
        ("akeyless", fake.url(), "akeyless-secret-creds"),
        ("akeyless-bad", fake.url(), "akeyless-wrong-creds"),
        ("akeyless-elsewhere", elsewhere, "akeyless-secret-creds"),
    ] {
        let key = |k: &str| json!({"name": creds, "key": k});
        apply(
            &stores,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": store, "namespace": ns},
                   "spec": {"provider": {"akeyless": {
                       "akeylessGWApiURL": url,
                       "authSecretRef": {"secretRef": {
                           "accessID": key("accessId"), "accessType": key("accessType"),
                           "accessTypeParam": key("accessTypeParam")}}}}}}),
        )
        .await;
    }
    ready_message(&stores, "akeyless", "True", "").await;

    let external = |store: &str, item: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": ns},
               "spec": {"refreshInterval": "1h",
                        "secretStoreRef": {"name": store, "kind": "SecretStore"},
                        "target": {"name": "db-secret"},
                        "data": [
                            {"secretKey": "password", "remoteRef": {"key": item, "property": "password"}},
                            {"secretKey": "api-key", "remoteRef": {"key": "/app/api-key"}}]}})
    };
    apply(&externals, external("akeyless", "/app/db")).await;
    ready_message(&externals, "db", "True", "").await;
    let synced = string_map(&[("password", "pw-2"), ("api-key", "k-123")]);
    assert_eq!(
        secret_text(&secrets, "db-secret").await.as_ref(),
        Some(&synced)
    );

    // A missing item, a wrong access key, a host outside the grant: each Ready=False with
    // the cause in the event, and the Secret keeps its data.
    for (store, item, needle) in [
        ("akeyless", "/app/no-such-item", "does not exist"),
        ("akeyless-bad", "/app/db", "access"),
        ("akeyless-elsewhere", "/app/db", "allowedOutboundHosts"),
    ] {
        apply(&externals, external(store, item)).await;
        ready_message(
            &externals,
            "db",
            "False",
            "could not get secret data from provider",
        )
        .await;
        let m = cluster::failure_event(&client, &ns, "db", needle).await;
        assert!(!m.contains("not-the-key"), "{m}");
        assert_eq!(
            secret_text(&secrets, "db-secret").await.as_ref(),
            Some(&synced),
            "after {store} / {item}"
        );
    }
}
