//! The GCP Secret Manager provider (`gcpsm.wasm`) in the real host against the in-repo fake
//! (`airlock_testenv::fakes::gcpsm`, held to google-cloud-secret-manager by its contract
//! test), reached under Google's real host names through the Provider's `hostAliases` and
//! trusting the fake's CA through its `caBundle`: get latest and numbered versions, property,
//! find by regexp and by labels across pages, the cached access token, and clear errors for
//! a bad key, a missing secret and a host outside the grant; GKE Workload Identity (the
//! ServiceAccount token exchanged at securetoken, then impersonation at iamcredentials);
//! push, delete and secret-exists under ESO's managed-by label; and the seed's Workload
//! Identity store and ExternalSecret on the real control plane.

mod cluster;
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

/// Google's hosts granted as the chart grants them, pinned to the fake (the metadata
/// server's address to its plain-HTTP port).
fn grants(fake: &FakeGcpsm, hosts: &[&str]) -> Grants {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let mut g = Grants::parse(&hosts, &["127.0.0.1/32".to_string()], Limits::default()).unwrap();
    g.host_aliases = aliases(fake)
        .into_iter()
        .map(|(names, address)| HostAlias::parse(&names, &address).unwrap())
        .collect();
    g.ca_bundle_pem = Some(fake.ca_pem().as_bytes().to_vec());
    g
}

/// Google's host names and the metadata server's address, each with the fake's address.
fn aliases(fake: &FakeGcpsm) -> Vec<(Vec<String>, String)> {
    let names: Vec<String> = airlock_testenv::fakes::gcpsm::GOOGLE_HOSTS
        .iter()
        .map(|h| h.to_string())
        .collect();
    vec![
        (names, format!("127.0.0.1:{}", fake.port())),
        (
            vec![METADATA_HOST.to_string()],
            format!("127.0.0.1:{}", fake.metadata_port()),
        ),
    ]
}

/// The chart's default grant for gcpsm.
const CHART_HOSTS: &[&str] = &[
    "https://secretmanager.googleapis.com",
    "https://secretmanager.*.rep.googleapis.com",
    "https://oauth2.googleapis.com",
    "https://securetoken.googleapis.com",
    "https://sts.googleapis.com",
    "https://iamcredentials.googleapis.com",
];
/// The GKE metadata server, which only an admin grants.
const METADATA_HOST: &str = "169.254.169.254";
const METADATA: &str = "http://169.254.169.254";
/// The cluster project of the Workload Identity tests, and its identity pool.
const CLUSTER_PROJECT: &str = "cluster-project";
const POOL: &str = "cluster-project.svc.id.goog";
/// The Google service account the annotated ServiceAccount impersonates.
const GSA: &str = "secrets-reader@my-gcp-project.iam.gserviceaccount.com";

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

/// An unsigned JWT with the claims a TokenRequest token of `team-a/<account>` for
/// `audience` has (the fake reads the claims; the API server's signature is not its
/// business, and the control-plane test below uses real TokenRequest tokens).
fn kube_token(account: &str, audience: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "kid": "k"})),
        b64(
            json!({"iss": "https://kubernetes.default.svc", "aud": [audience],
                   "sub": format!("system:serviceaccount:team-a:{account}"),
                   "iat": now, "exp": now + 3600})
        )
    )
}

/// A runtime whose ServiceAccounts `workload` (annotated with [`GSA`]) and `plain` (not
/// annotated) have tokens for [`POOL`].
async fn wi_runtime(fake: &FakeGcpsm, hosts: &[&str]) -> Runtime {
    let creds = StaticCredentials::default()
        .with_token("team-a", "workload", &kube_token("workload", POOL))
        .with_annotation("team-a", "workload", "iam.gke.io/gcp-service-account", GSA)
        .with_token("team-a", "plain", &kube_token("plain", POOL));
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

fn wi_store(account: &str, cluster_project: Option<&str>) -> StoreContext {
    let mut wi = json!({"clusterLocation": "us-central1", "clusterName": "my-cluster",
                        "serviceAccountRef": {"name": account}});
    if let Some(p) = cluster_project {
        wi["clusterProjectID"] = json!(p);
    }
    common::store(
        "gcpsm",
        &format!("gcp-wi-{account}"),
        json!({"projectID": PROJECT, "auth": {"workloadIdentity": wi}}),
    )
}

/// A fake whose identity pool trusts `team-a/workload` and `team-a/plain`: the first may
/// impersonate [`GSA`], which may read the project; the second is granted the project
/// directly as its federated principal.
async fn wi_fake() -> FakeGcpsm {
    let fake = fake().await;
    fake.trust_workload("team-a", "workload");
    fake.trust_workload("team-a", "plain");
    fake.allow_impersonation(&format!("serviceAccount:{POOL}[team-a/workload]"), GSA);
    fake.grant(GSA, PROJECT);
    fake.grant(&format!("serviceAccount:{POOL}[team-a/plain]"), PROJECT);
    fake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_exchanges_the_token_and_impersonates_the_annotated_account_once() {
    let fake = wi_fake().await;
    let rt = wi_runtime(&fake, CHART_HOSTS).await;
    let s = wi_store("workload", Some(CLUSTER_PROJECT));
    assert_eq!(
        get(&rt, &s, "api-key").await.unwrap().as_deref(),
        Some("k-123")
    );
    assert_eq!(
        get(&rt, &s, "db-credentials").await.unwrap().as_deref(),
        Some(r#"{"user":"admin","password":"v2"}"#)
    );
    // One exchange and one impersonation, at Google's hosts; then the cached token.
    let exchanges = fake.requests_ending("POST", "/v1/identitybindingtoken");
    assert_eq!(exchanges.len(), 1, "{:?}", fake.requests());
    assert!(exchanges[0].host.starts_with("securetoken.googleapis.com"));
    assert_eq!(exchanges[0].status, 200);
    let impersonations = fake.requests_ending("POST", ":generateAccessToken");
    assert_eq!(impersonations.len(), 1, "{:?}", fake.requests());
    assert!(
        impersonations[0]
            .host
            .starts_with("iamcredentials.googleapis.com")
    );
    assert!(impersonations[0].path.contains(GSA));
    assert_eq!(impersonations[0].status, 200);
    // No key file was involved, and the metadata server was not needed.
    assert!(fake.requests_ending("POST", "/token").is_empty());
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.starts_with("/computeMetadata"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_annotation_the_federated_token_reads_directly() {
    let fake = wi_fake().await;
    let rt = wi_runtime(&fake, CHART_HOSTS).await;
    let s = wi_store("plain", Some(CLUSTER_PROJECT));
    assert_eq!(
        get(&rt, &s, "api-key").await.unwrap().as_deref(),
        Some("k-123")
    );
    assert_eq!(
        fake.requests_ending("POST", "/v1/identitybindingtoken")
            .len(),
        1
    );
    assert!(
        fake.requests_ending("POST", ":generateAccessToken")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_service_account_or_a_refused_impersonation_is_access_denied() {
    let fake = fake().await;
    // The pool trusts nobody.
    let rt = wi_runtime(&fake, CHART_HOSTS).await;
    let err = provider_error(
        get(&rt, &wi_store("plain", Some(CLUSTER_PROJECT)), "api-key")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("identity-binding") && m.contains("not trusted")),
        "{err:?}"
    );
    // Trusted, but not allowed to impersonate the annotated account (which exists).
    fake.trust_workload("team-a", "workload");
    fake.allow_impersonation("serviceAccount:someone-else", GSA);
    let err = provider_error(
        get(&rt, &wi_store("workload", Some(CLUSTER_PROJECT)), "api-key")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("generateAccessToken") && m.contains("iam.serviceAccounts.getAccessToken")),
        "{err:?}"
    );
    // The ServiceAccount token's audience is another project's pool: Google refuses it.
    let err = provider_error(
        get(&rt, &wi_store("plain", Some("someone-else")), "api-key")
            .await
            .unwrap_err(),
    );
    assert!(matches!(&err, ProviderError::AccessDenied(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_cluster_facts_come_from_the_metadata_server_only_when_it_is_granted() {
    let fake = wi_fake().await;
    fake.set_cluster(CLUSTER_PROJECT, "us-central1", "my-cluster");
    let s = wi_store("workload", None);
    let chart = wi_runtime(&fake, CHART_HOSTS).await;
    let err = provider_error(get(&chart, &s, "api-key").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains(&format!("add {METADATA} to spec.allowedOutboundHosts"))),
        "{err:?}"
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    let mut hosts = CHART_HOSTS.to_vec();
    hosts.push(METADATA);
    let granted = wi_runtime(&fake, &hosts).await;
    assert_eq!(
        get(&granted, &s, "api-key").await.unwrap().as_deref(),
        Some("k-123")
    );
    let asked: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/computeMetadata/v1/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        asked,
        ["/computeMetadata/v1/project/project-id"],
        "the store names the cluster's location and name"
    );
}

fn push_request(key: &str, property: Option<&str>, value: &str) -> airlock::backend::PushRequest {
    airlock::backend::PushRequest {
        remote: airlock::backend::PushRef {
            remote_key: key.into(),
            property: property.map(str::to_string),
        },
        value: SecretValue::new(value.as_bytes().to_vec()),
        metadata: None,
    }
}

fn push_ref(key: &str) -> airlock::backend::PushRef {
    airlock::backend::PushRef {
        remote_key: key.into(),
        property: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_adds_versions_under_the_managed_by_label_and_delete_removes_only_managed_secrets() {
    let fake = fake().await;
    let rt = runtime_for(&fake, &key_json(&data("sa-key.pem")), CHART_HOSTS).await;
    let s = store(json!({}));
    let pushed = format!("projects/{PROJECT}/secrets/pushed");

    rt.push_secret(&s, &push_request("pushed", None, "v1"))
        .await
        .expect("push creates");
    let (value, labels, versions) = fake.secret(&pushed).unwrap();
    assert_eq!((value.as_slice(), versions), (&b"v1"[..], 1));
    assert_eq!(
        labels.get("managed-by").map(String::as_str),
        Some("external-secrets")
    );
    // The same value again is no new version; another value is.
    rt.push_secret(&s, &push_request("pushed", None, "v1"))
        .await
        .unwrap();
    assert_eq!(fake.secret(&pushed).unwrap().2, 1);
    rt.push_secret(&s, &push_request("pushed", None, "v2"))
        .await
        .unwrap();
    assert_eq!(fake.secret(&pushed).unwrap().2, 2);
    assert_eq!(get(&rt, &s, "pushed").await.unwrap().as_deref(), Some("v2"));
    // Properties build a JSON object, version by version.
    rt.push_secret(&s, &push_request("pushed-json", Some("user"), "svc"))
        .await
        .unwrap();
    rt.push_secret(&s, &push_request("pushed-json", Some("pass"), "pw"))
        .await
        .unwrap();
    let json_value = fake
        .secret(&format!("projects/{PROJECT}/secrets/pushed-json"))
        .unwrap()
        .0;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json_value).unwrap(),
        json!({"user": "svc", "pass": "pw"})
    );
    // Metadata labels and annotations are written with managed-by kept.
    let mut labelled = push_request("labelled", None, "x");
    labelled.metadata = Some(
        json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
        "kind": "PushSecretMetadata",
        "spec": {"labels": {"team": "a"}, "annotations": {"owner": "me"}}}),
    );
    rt.push_secret(&s, &labelled).await.unwrap();
    let fetch = RemoteRef {
        metadata_policy: airlock::backend::MetadataPolicy::Fetch,
        ..RemoteRef::key("labelled")
    };
    let meta: serde_json::Value =
        serde_json::from_str(&get_ref(&rt, &s, fetch.clone()).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        meta,
        json!({"annotations": {"owner": "me"},
               "labels": {"managed-by": "external-secrets", "team": "a"}})
    );
    assert_eq!(
        get_ref(
            &rt,
            &s,
            RemoteRef {
                property: Some("labels.team".into()),
                ..fetch
            }
        )
        .await
        .unwrap()
        .as_deref(),
        Some("a")
    );

    // A secret someone else made is neither changed nor deleted.
    let err = provider_error(
        rt.push_secret(&s, &push_request("api-key", None, "mine"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("not managed by external-secrets")),
        "{err:?}"
    );
    let api = format!("projects/{PROJECT}/secrets/api-key");
    assert_eq!(fake.secret(&api).unwrap().2, 1);
    rt.delete_secret(&s, &push_ref("api-key")).await.unwrap();
    assert!(fake.secret(&api).is_some(), "an unmanaged secret is kept");

    assert!(rt.secret_exists(&s, &push_ref("pushed")).await.unwrap());
    assert!(!rt.secret_exists(&s, &push_ref("never")).await.unwrap());
    rt.delete_secret(&s, &push_ref("pushed")).await.unwrap();
    assert!(fake.secret(&pushed).is_none());
    assert!(!rt.secret_exists(&s, &push_ref("pushed")).await.unwrap());
    rt.delete_secret(&s, &push_ref("never"))
        .await
        .expect("absent is deleted");
    // The delete carried the secret's etag.
    assert!(
        fake.requests_ending("DELETE", "/secrets/pushed")
            .iter()
            .all(|r| r.status == 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_or_fetch_reads_the_newest_enabled_version_when_latest_is_disabled() {
    let fake = fake().await;
    let db = format!("projects/{PROJECT}/secrets/db-credentials");
    fake.set_version_state(&db, 2, "DISABLED");
    let rt = runtime_for(&fake, &key_json(&data("sa-key.pem")), CHART_HOSTS).await;
    let fail = store(json!({}));
    let err = provider_error(get(&rt, &fail, "db-credentials").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::InvalidRequest(m) if m.contains("DISABLED")),
        "{err:?}"
    );
    let fetch = store(json!({"secretVersionSelectionPolicy": "LatestOrFetch"}));
    assert_eq!(
        get(&rt, &fetch, "db-credentials").await.unwrap().as_deref(),
        Some(r#"{"user":"admin","password":"v1"}"#)
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/versions")),
        "the versions were listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_workload_identity_store_syncs_on_the_control_plane_and_failures_keep_the_data() {
    use airlock::crd::{ExternalSecret, SecretStore};
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use kube::Api;

    let fake = fake().await;
    // The seed names no clusterProjectID: the metadata server says which pool it is.
    fake.set_cluster(PROJECT, "us-central1", "my-cluster");
    let operator = cluster::VendorOperator::start(
        "gcpsm",
        airlock_test_artifacts::GCPSM,
        "airlock_provider_gcpsm.wasm",
        fake.ca_pem(),
        aliases(&fake),
        common::cache_dir(),
    )
    .await;
    let (client, ns) = (operator.client.clone(), operator.namespace.clone());
    let federated = format!("serviceAccount:{PROJECT}.svc.id.goog[{ns}/external-secrets-sa]");
    fake.trust_workload(&ns, "external-secrets-sa");
    fake.allow_impersonation(&federated, GSA);
    fake.grant(GSA, PROJECT);
    let accounts: Api<ServiceAccount> = operator.api();
    let account = |gsa: &str| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "external-secrets-sa",
                            "annotations": {"iam.gke.io/gcp-service-account": gsa}}})
    };
    cluster::apply(&accounts, account(GSA)).await;
    let mut granted = CHART_HOSTS.to_vec();
    granted.push(METADATA);
    operator.grant(&granted).await;

    // The seed's manifests, unchanged (v1beta1, read back at v1).
    let stores: Api<SecretStore> = operator.api();
    let external_secrets: Api<ExternalSecret> = operator.api();
    let secrets: Api<Secret> = operator.api();
    cluster::apply(
        &operator.beta("SecretStore", "secretstores"),
        cluster::seed_object("SecretStore", "gcp-secretmanager"),
    )
    .await;
    cluster::apply(
        &operator.beta("ExternalSecret", "externalsecrets"),
        cluster::seed_object("ExternalSecret", "gcp-secret"),
    )
    .await;
    cluster::ready_message(&stores, "gcp-secretmanager", "True", "").await;
    cluster::ready_message(&external_secrets, "gcp-secret", "True", "").await;
    assert_eq!(
        cluster::secret_text(&secrets, "my-gcp-secret").await,
        Some(cluster::string_map(&[("api-key", "k-123")]))
    );
    // A real TokenRequest token went through securetoken (which checked its audience and
    // subject) and iamcredentials.
    assert!(
        fake.requests_ending("POST", "/v1/identitybindingtoken")
            .iter()
            .any(|r| r.status == 200),
        "{:?}",
        fake.requests()
    );
    assert!(
        fake.requests_ending("POST", ":generateAccessToken")
            .iter()
            .any(|r| r.status == 200)
    );

    // find by labels and extract, refreshed every second.
    let more = |extra_key: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "gcp-more"},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRef": {"name": "gcp-secretmanager", "kind": "SecretStore"},
                        "target": {"name": "gcp-more"},
                        "data": [{"secretKey": "extra", "remoteRef": {"key": extra_key}}],
                        "dataFrom": [
                            {"find": {"tags": {"team": "b"}}},
                            {"extract": {"key": "db-credentials"}}]}})
    };
    cluster::apply(&external_secrets, more("api-key")).await;
    cluster::ready_message(&external_secrets, "gcp-more", "True", "").await;
    let expected = cluster::string_map(&[
        ("extra", "k-123"),
        ("other-team", "theirs"),
        ("password", "v2"),
        ("user", "admin"),
    ]);
    assert_eq!(
        cluster::secret_text(&secrets, "gcp-more").await,
        Some(expected.clone())
    );

    // A missing secret: Ready=False, the data stays.
    cluster::apply(&external_secrets, more("no-such-secret")).await;
    cluster::ready_message(
        &external_secrets,
        "gcp-more",
        "False",
        "could not get secret data from provider",
    )
    .await;
    cluster::failure_event(&client, &ns, "gcp-more", "no-such-secret").await;
    assert_eq!(
        cluster::secret_text(&secrets, "gcp-more").await,
        Some(expected.clone())
    );
    cluster::apply(&external_secrets, more("api-key")).await;
    cluster::ready_message(&external_secrets, "gcp-more", "True", "").await;

    // A bad credential: the ServiceAccount now names an account its federated identity may
    // not impersonate (one that exists), and the token it had is revoked. Secret Manager
    // answers 401, the next exchange is refused at iamcredentials: Ready=False with ESO's
    // message, an event naming the refused permission, and the data stays.
    let refused = "someone-elses-reader@my-gcp-project.iam.gserviceaccount.com";
    fake.allow_impersonation("serviceAccount:someone-else", refused);
    cluster::apply(&accounts, account(refused)).await;
    fake.revoke_tokens();
    cluster::failure_event(
        &client,
        &ns,
        "gcp-more",
        "iam.serviceAccounts.getAccessToken",
    )
    .await;
    cluster::ready_message(
        &external_secrets,
        "gcp-more",
        "False",
        "could not get secret data from provider",
    )
    .await;
    assert!(
        fake.requests_ending("POST", ":generateAccessToken")
            .iter()
            .any(|r| r.status == 403 && r.path.contains(refused)),
        "{:?}",
        fake.requests()
    );
    assert_eq!(
        cluster::secret_text(&secrets, "gcp-more").await,
        Some(expected.clone())
    );
    cluster::apply(&accounts, account(GSA)).await;
    cluster::ready_message(&external_secrets, "gcp-more", "True", "").await;

    // Secret Manager no longer granted: the egress refusal names the host to grant.
    let without: Vec<&str> = granted
        .iter()
        .copied()
        .filter(|h| *h != "https://secretmanager.googleapis.com")
        .collect();
    operator.grant(&without).await;
    cluster::failure_event(
        &client,
        &ns,
        "gcp-more",
        "add https://secretmanager.googleapis.com to spec.allowedOutboundHosts",
    )
    .await;
    cluster::ready_message(&external_secrets, "gcp-more", "False", "").await;
    assert_eq!(
        cluster::secret_text(&secrets, "gcp-more").await,
        Some(expected)
    );
    assert_eq!(
        cluster::secret_text(&secrets, "my-gcp-secret").await,
        Some(cluster::string_map(&[("api-key", "k-123")]))
    );
}

/// A Workload Identity Federation pool provider trusting the cluster's tokens for
/// [`FEDERATION_AUDIENCE`].
const POOL_PROVIDER: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/k8s/providers/cluster";
const FEDERATION_AUDIENCE: &str = "https://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/k8s/providers/cluster";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_federation_exchanges_the_token_at_sts_and_impersonates() {
    let fake = fake().await;
    fake.add_pool_provider(POOL_PROVIDER, FEDERATION_AUDIENCE);
    let principal = |account: &str| {
        format!(
            "principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/k8s/subject/system:serviceaccount:team-a:{account}"
        )
    };
    fake.allow_impersonation(&principal("federated"), GSA);
    fake.grant(GSA, PROJECT);
    fake.grant(&principal("direct"), PROJECT);
    let creds = StaticCredentials::default()
        .with_token(
            "team-a",
            "federated",
            &kube_token("federated", FEDERATION_AUDIENCE),
        )
        .with_token(
            "team-a",
            "direct",
            &kube_token("direct", FEDERATION_AUDIENCE),
        )
        .with_token("team-a", "wrong", &kube_token("wrong", "https://elsewhere"));
    let rt = common::runtime_with(creds);
    common::install(
        &rt,
        "gcpsm",
        airlock_test_artifacts::GCPSM,
        grants(&fake, CHART_HOSTS),
    )
    .await;
    let wif = |account: &str, email: Option<&str>| {
        let mut f = json!({"audience": POOL_PROVIDER,
                           "serviceAccountRef": {"name": account, "audiences": [FEDERATION_AUDIENCE]}});
        if let Some(e) = email {
            f["gcpServiceAccountEmail"] = json!(e);
        }
        common::store(
            "gcpsm",
            &format!("gcp-wif-{account}"),
            json!({"projectID": PROJECT, "auth": {"workloadIdentityFederation": f}}),
        )
    };
    assert_eq!(
        get(&rt, &wif("federated", Some(GSA)), "api-key")
            .await
            .unwrap()
            .as_deref(),
        Some("k-123")
    );
    let sts = fake.requests_ending("POST", "/v1/token");
    assert_eq!(sts.len(), 1, "{:?}", fake.requests());
    assert!(sts[0].host.starts_with("sts.googleapis.com"));
    assert_eq!(
        fake.requests_ending("POST", ":generateAccessToken").len(),
        1
    );
    // The federated principal itself, without impersonation.
    assert_eq!(
        get(&rt, &wif("direct", None), "api-key")
            .await
            .unwrap()
            .as_deref(),
        Some("k-123")
    );
    assert_eq!(
        fake.requests_ending("POST", ":generateAccessToken").len(),
        1
    );
    // A token for another audience is refused by STS.
    let err = provider_error(get(&rt, &wif("wrong", None), "api-key").await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("STS") && m.contains("expected audience")),
        "{err:?}"
    );
}
