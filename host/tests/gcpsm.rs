//! The GCP Secret Manager provider (`gcpsm.wasm`) in the real host against the in-repo fake
//! (`airlock_testenv::fakes::gcpsm`, held to google-cloud-secret-manager by its contract
//! test), reached under Google's real host names through the Provider's `hostAliases` and
//! trusting the fake's CA through its `caBundle`: get latest and numbered versions, property,
//! find by regexp and by labels across pages, the cached access token, and clear errors for
//! a bad key, a missing secret and a host outside the grant.

mod common;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, ProviderError, RemoteRef, SecretValue, StoreContext,
};
use airlock::runtime::{Grants, HostAlias, Limits, Runtime, StaticCredentials};
use airlock_testenv::fakes::gcpsm::FakeGcpsm;
use serde_json::json;

use common::{get, get_ref};

const EMAIL: &str = "airlock@my-gcp-project.iam.gserviceaccount.com";
const PROJECT: &str = "my-gcp-project";
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

fn data(file: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gcpsm");
    std::fs::read_to_string(format!("{dir}/{file}")).expect("test key")
}

/// A service-account key file as the IAM console writes it.
fn key_json(private_key_pem: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": private_key_pem,
        "client_email": EMAIL,
        "token_uri": TOKEN_URI,
    })
    .to_string()
}

/// Google's hosts granted as the chart grants them, pinned to the fake.
fn grants(fake: &FakeGcpsm, hosts: &[&str]) -> Grants {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let mut g = Grants::parse(&hosts, &["127.0.0.1/32".to_string()], Limits::default()).unwrap();
    let names: Vec<String> = airlock_testenv::fakes::gcpsm::GOOGLE_HOSTS
        .iter()
        .map(|h| h.to_string())
        .collect();
    g.host_aliases = vec![HostAlias::parse(&names, &format!("127.0.0.1:{}", fake.port())).unwrap()];
    g.ca_bundle_pem = Some(fake.ca_pem().as_bytes().to_vec());
    g
}

const CHART_HOSTS: &[&str] = &[
    "https://secretmanager.googleapis.com",
    "https://secretmanager.*.rep.googleapis.com",
    "https://oauth2.googleapis.com",
];

async fn fake() -> FakeGcpsm {
    let fake = FakeGcpsm::start().await;
    fake.add_service_account(EMAIL, &data("sa-key.pub.pem"));
    fake.grant(EMAIL, PROJECT);
    fake.set_page_size(1);
    let db = format!("projects/{PROJECT}/secrets/db-credentials");
    fake.create_secret(&db, &[("team", "a")]);
    fake.add_version(&db, br#"{"user":"admin","password":"v1"}"#);
    fake.add_version(&db, br#"{"user":"admin","password":"v2"}"#);
    let api = format!("projects/{PROJECT}/secrets/api-key");
    fake.create_secret(&api, &[("team", "a")]);
    fake.add_version(&api, b"k-123");
    let other = format!("projects/{PROJECT}/secrets/other-team");
    fake.create_secret(&other, &[("team", "b")]);
    fake.add_version(&other, b"theirs");
    let regional = format!("projects/{PROJECT}/locations/europe-west1/secrets/regional");
    fake.create_secret(&regional, &[]);
    fake.add_version(&regional, b"in-europe");
    fake
}

async fn runtime_for(fake: &FakeGcpsm, key: &str, hosts: &[&str]) -> Runtime {
    let creds =
        StaticCredentials::default().with_secret("team-a", "gcp", "key.json", key.as_bytes());
    let rt = common::runtime_with(creds);
    common::install(
        &rt,
        "gcpsm",
        airlock_test_artifacts::GCPSM,
        grants(fake, hosts),
    )
    .await;
    rt
}

fn store(extra: serde_json::Value) -> StoreContext {
    let mut config = json!({
        "projectID": PROJECT,
        "auth": {"secretRef": {"secretAccessKeySecretRef": {"name": "gcp", "key": "key.json"}}}
    });
    for (k, v) in extra.as_object().expect("an object") {
        config[k] = v.clone();
    }
    common::store("gcpsm", "gcp", config)
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
async fn a_key_file_reads_latest_and_numbered_versions_and_properties_with_one_token() {
    let fake = fake().await;
    let rt = runtime_for(&fake, &key_json(&data("sa-key.pem")), CHART_HOSTS).await;
    let s = store(json!({}));

    assert_eq!(
        get(&rt, &s, "db-credentials").await.unwrap().as_deref(),
        Some(r#"{"user":"admin","password":"v2"}"#)
    );
    let first = RemoteRef {
        version: Some("1".into()),
        ..RemoteRef::key("db-credentials").property("password")
    };
    assert_eq!(
        get_ref(&rt, &s, first).await.unwrap().as_deref(),
        Some("v1")
    );
    assert_eq!(
        get_ref(
            &rt,
            &s,
            RemoteRef::key("db-credentials").property("password")
        )
        .await
        .unwrap()
        .as_deref(),
        Some("v2")
    );
    assert_eq!(get(&rt, &s, "no-such-secret").await.unwrap(), None);
    // Every read used the one access token fetched first.
    assert_eq!(
        fake.requests_ending("POST", "/token").len(),
        1,
        "{:?}",
        fake.requests()
    );

    // The regional endpoint serves the location's secrets.
    let regional = store(json!({"location": "europe-west1"}));
    assert_eq!(
        get(&rt, &regional, "regional").await.unwrap().as_deref(),
        Some("in-europe")
    );
    let hosts: Vec<String> = fake.requests().iter().map(|r| r.host.clone()).collect();
    assert!(
        hosts
            .iter()
            .any(|h| h.starts_with("secretmanager.europe-west1.rep.googleapis.com")),
        "{hosts:?}"
    );
    // The token cache is per store: the regional store fetched its own.
    assert_eq!(
        fake.requests_ending("POST", "/token").len(),
        2,
        "{:?}",
        fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_matches_names_by_regexp_and_labels_across_pages() {
    let fake = fake().await;
    let rt = runtime_for(&fake, &key_json(&data("sa-key.pem")), CHART_HOSTS).await;
    let s = store(json!({}));
    let by_name = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                name_regexp: Some("^(api|other)".into()),
                ..Default::default()
            },
        )
        .await
        .expect("find");
    assert_eq!(
        texts(by_name),
        BTreeMap::from([
            ("api-key".to_string(), "k-123".to_string()),
            ("other-team".to_string(), "theirs".to_string()),
        ])
    );
    let by_label = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                tags: BTreeMap::from([("team".to_string(), "a".to_string())]),
                ..Default::default()
            },
        )
        .await
        .expect("find");
    assert_eq!(
        by_label.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["api-key", "db-credentials"]
    );
    // One secret per page: the walk followed nextPageToken.
    assert!(
        fake.requests_ending("GET", "/secrets").len() >= 4,
        "{:?}",
        fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_google_does_not_know_is_access_denied() {
    let fake = fake().await;
    let rt = runtime_for(&fake, &key_json(&data("other-key.pem")), CHART_HOSTS).await;
    let err = provider_error(get(&rt, &store(json!({})), "api-key").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("token request")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("PRIVATE KEY"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_grant_is_refused_and_never_contacted() {
    let fake = fake().await;
    let rt = runtime_for(
        &fake,
        &key_json(&data("sa-key.pem")),
        &[
            "https://secretmanager.googleapis.com",
            "https://oauth2.googleapis.com",
        ],
    )
    .await;
    let err = provider_error(
        get(&rt, &store(json!({"location": "europe-west1"})), "regional")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("allowedOutboundHosts") && m.contains("europe-west1")),
        "{err:?}"
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.host.contains("europe-west1")),
        "{:?}",
        fake.requests()
    );
}
