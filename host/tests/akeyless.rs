//! The Akeyless provider (`akeyless.wasm`) in the real host against the in-repo Akeyless fake
//! (`airlock_testenv::fakes::akeyless`, held to the official `akeyless` SDK by its contract
//! test): reads of every item type with version and property, find, push and delete, the
//! token cached per store, Kubernetes auth, and clear errors for a bad access key, a missing
//! item and a host outside the grant.

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
