//! The AWS provider component (`providers-wasm/aws`) in the real host against moto, a
//! real implementation of the Secrets Manager, SSM, STS and IAM wire protocols, started
//! by each test on 127.0.0.1.

mod cluster;
mod common;
mod moto;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, MetadataPolicy, ProviderError, PushRef, PushRequest,
    RemoteRef, SecretValue, StoreContext, Validation,
};
use airlock::runtime::{Grants, Limits, Runtime, StaticCredentials};
use common::get_ref;
use moto::Moto;
use serde_json::{Value, json};

const ACCESS_KEY: &str = "AKIDAIRLOCKTEST";
const SECRET_KEY: &str = "airlock-test-secret";

fn grants(hosts: &[String]) -> Grants {
    Grants::parse(hosts, &[], Limits::default()).unwrap()
}

fn credentials(access: &str, secret: &str) -> StaticCredentials {
    StaticCredentials::default()
        .with_secret("team-a", "aws-credentials", "access-key", access.as_bytes())
        .with_secret("team-a", "aws-credentials", "secret-key", secret.as_bytes())
        .with_token("team-a", "external-secrets-sa", "header.payload.signature")
}

async fn runtime_for(moto: &Moto, creds: StaticCredentials) -> Runtime {
    let rt = common::runtime_with(creds);
    common::install(
        &rt,
        "aws",
        airlock_test_artifacts::AWS,
        grants(&[moto.grant()]),
    )
    .await;
    rt
}

/// The seed's store with the endpoint overrides pointing at moto.
fn config(moto: &Moto, service: &str, extra: Value) -> Value {
    let mut c = json!({
        "service": service,
        "region": "us-east-1",
        "endpoint": moto.url(""),
        "stsEndpoint": moto.url(""),
        "auth": {"secretRef": {
            "accessKeyIDSecretRef": {"name": "aws-credentials", "key": "access-key"},
            "secretAccessKeySecretRef": {"name": "aws-credentials", "key": "secret-key"}}}
    });
    for (k, v) in extra.as_object().expect("an object") {
        c[k] = v.clone();
    }
    c
}

fn sm_store(moto: &Moto, extra: Value) -> StoreContext {
    common::store(
        "aws",
        "aws-secrets-manager",
        config(moto, "SecretsManager", extra),
    )
}

fn ssm_store(moto: &Moto, extra: Value) -> StoreContext {
    common::store(
        "aws",
        "aws-parameter-store",
        config(moto, "ParameterStore", extra),
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

fn push(key: &str, property: Option<&str>, value: &str) -> PushRequest {
    PushRequest {
        remote: PushRef {
            remote_key: key.into(),
            property: property.map(str::to_string),
        },
        value: SecretValue::new(value.as_bytes().to_vec()),
        metadata: None,
    }
}

fn push_ref(key: &str) -> PushRef {
    PushRef {
        remote_key: key.into(),
        property: None,
    }
}

const DB: &str = r#"{"username":"admin","password":"s3cr3t","nested":{"port":5432}}"#;

#[tokio::test]
async fn secrets_manager_reads_values_properties_versions_and_reports_absence() {
    let moto = Moto::start().await;
    let first = moto
        .create_secret("production/database", r#"{"username":"old"}"#, &[])
        .await;
    let first_id = first["VersionId"].as_str().unwrap().to_string();
    moto.sm(
        "PutSecretValue",
        json!({"SecretId": "production/database", "SecretString": DB}),
    )
    .await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(&moto, json!({}));

    let get = |r: RemoteRef| get_ref(&rt, &s, r);
    assert_eq!(
        get(RemoteRef::key("production/database"))
            .await
            .unwrap()
            .as_deref(),
        Some(DB)
    );
    assert_eq!(
        get(RemoteRef::key("production/database").property("username"))
            .await
            .unwrap()
            .as_deref(),
        Some("admin")
    );
    assert_eq!(
        get(RemoteRef::key("production/database").property("nested.port"))
            .await
            .unwrap()
            .as_deref(),
        Some("5432")
    );
    let mut previous = RemoteRef::key("production/database").property("username");
    previous.version = Some("AWSPREVIOUS".into());
    assert_eq!(get(previous).await.unwrap().as_deref(), Some("old"));
    let mut by_id = RemoteRef::key("production/database").property("username");
    by_id.version = Some(format!("uuid/{first_id}"));
    assert_eq!(get(by_id).await.unwrap().as_deref(), Some("old"));
    assert_eq!(
        get(RemoteRef::key("production/missing")).await.unwrap(),
        None
    );
    assert_eq!(
        get(RemoteRef::key("production/database").property("nope"))
            .await
            .unwrap(),
        None
    );

    let map = rt
        .get_secret_map(&s, &RemoteRef::key("production/database"))
        .await
        .unwrap()
        .expect("exists");
    let map = texts(map);
    assert_eq!(map["username"], "admin");
    assert_eq!(map["nested"], r#"{"port":5432}"#);
}

#[tokio::test]
async fn batched_secrets_manager_gets_cost_one_batch_call() {
    let moto = Moto::start().await;
    for i in 0..3 {
        moto.create_secret(&format!("app/s{i}"), &format!(r#"{{"v":"{i}"}}"#), &[])
            .await;
    }
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(&moto, json!({}));
    let refs = vec![
        RemoteRef::key("app/s0").property("v"),
        RemoteRef::key("app/s1"),
        RemoteRef::key("app/s2").property("v"),
        RemoteRef::key("app/missing"),
        RemoteRef::key("app/s0"),
    ];
    let results: Vec<Option<String>> = rt
        .get_secrets(&s, &refs)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            r.unwrap()
                .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
        })
        .collect();
    assert_eq!(
        results,
        [
            Some("0".into()),
            Some(r#"{"v":"1"}"#.into()),
            Some("2".into()),
            None,
            Some(r#"{"v":"0"}"#.into())
        ]
    );
    assert_eq!(moto.count("secretsmanager.BatchGetSecretValue").await, 1);
    assert_eq!(moto.count("secretsmanager.GetSecretValue").await, 0);
}

#[tokio::test]
async fn secrets_manager_find_matches_names_tags_and_paths_and_fetches_tags_as_metadata() {
    let moto = Moto::start().await;
    moto.create_secret("team-a/db", "db-value", &[("team", "a"), ("env", "prod")])
        .await;
    moto.create_secret("team-a/api", "api-value", &[("team", "a"), ("env", "dev")])
        .await;
    moto.create_secret("team-b/db", "other", &[("team", "b")])
        .await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(&moto, json!({}));

    let by_name = FindCriteria {
        name_regexp: Some("/db$".into()),
        ..Default::default()
    };
    let found = texts(rt.get_all_secrets(&s, &by_name).await.unwrap());
    assert_eq!(found.keys().collect::<Vec<_>>(), ["team-a/db", "team-b/db"]);
    assert_eq!(found["team-a/db"], "db-value");

    let by_tag = FindCriteria {
        tags: BTreeMap::from([("team".into(), "a".into()), ("env".into(), "prod".into())]),
        ..Default::default()
    };
    let found = texts(rt.get_all_secrets(&s, &by_tag).await.unwrap());
    assert_eq!(found.keys().collect::<Vec<_>>(), ["team-a/db"]);

    let by_path = FindCriteria {
        path: Some("team-a/".into()),
        ..Default::default()
    };
    let found = texts(rt.get_all_secrets(&s, &by_path).await.unwrap());
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["team-a/api", "team-a/db"]
    );

    let mut meta = RemoteRef::key("team-a/db");
    meta.metadata_policy = MetadataPolicy::Fetch;
    let tags: Value =
        serde_json::from_str(&get_ref(&rt, &s, meta.clone()).await.unwrap().unwrap()).unwrap();
    assert_eq!(tags, json!({"team": "a", "env": "prod"}));
    meta.property = Some("env".into());
    assert_eq!(
        get_ref(&rt, &s, meta).await.unwrap().as_deref(),
        Some("prod")
    );
}

#[tokio::test]
async fn secrets_manager_push_tags_what_it_creates_and_refuses_unmanaged_secrets() {
    let moto = Moto::start().await;
    moto.create_secret("hand-made", "keep-me", &[]).await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(
        &moto,
        json!({"secretsManager": {"forceDeleteWithoutRecovery": true}}),
    );

    rt.push_secret(&s, &push("pushed/app", None, "v1"))
        .await
        .unwrap();
    let described = moto
        .sm("DescribeSecret", json!({"SecretId": "pushed/app"}))
        .await;
    assert_eq!(
        described["Tags"],
        json!([{"Key": "managed-by", "Value": "external-secrets"}])
    );
    rt.push_secret(&s, &push("pushed/app", None, "v2"))
        .await
        .unwrap();
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("pushed/app"))
            .await
            .unwrap()
            .as_deref(),
        Some("v2")
    );
    rt.push_secret(&s, &push("pushed/json", Some("user"), "alice"))
        .await
        .unwrap();
    rt.push_secret(&s, &push("pushed/json", Some("pass"), "pw"))
        .await
        .unwrap();
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("pushed/json"))
            .await
            .unwrap()
            .as_deref(),
        Some(r#"{"pass":"pw","user":"alice"}"#)
    );
    assert!(rt.secret_exists(&s, &push_ref("pushed/app")).await.unwrap());

    let refused = provider_error(
        rt.push_secret(&s, &push("hand-made", None, "x"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&refused, ProviderError::AccessDenied(m) if m.contains("managed-by=external-secrets")),
        "{refused:?}"
    );
    let refused = provider_error(
        rt.delete_secret(&s, &push_ref("hand-made"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(refused, ProviderError::AccessDenied(_)),
        "{refused:?}"
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("hand-made"))
            .await
            .unwrap()
            .as_deref(),
        Some("keep-me")
    );

    rt.delete_secret(&s, &push_ref("pushed/app")).await.unwrap();
    assert!(!rt.secret_exists(&s, &push_ref("pushed/app")).await.unwrap());
    rt.delete_secret(&s, &push_ref("never-existed"))
        .await
        .unwrap();
}

#[tokio::test]
async fn parameter_store_reads_decrypts_versions_batches_and_finds() {
    let moto = Moto::start().await;
    moto.put_parameter("/app/db/user", "admin", "String", &[("team", "a")])
        .await;
    moto.put_parameter(
        "/app/db/password",
        "s3cr3t",
        "SecureString",
        &[("team", "a")],
    )
    .await;
    moto.put_parameter("/app/json", DB, "String", &[]).await;
    moto.put_parameter("/other/x", "x", "String", &[("team", "b")])
        .await;
    moto.ssm(
        "PutParameter",
        json!({"Name": "/app/db/user", "Value": "admin2", "Type": "String", "Overwrite": true}),
    )
    .await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = ssm_store(&moto, json!({}));

    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("/app/db/password"))
            .await
            .unwrap()
            .as_deref(),
        Some("s3cr3t")
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("/app/db/user"))
            .await
            .unwrap()
            .as_deref(),
        Some("admin2")
    );
    let mut v1 = RemoteRef::key("/app/db/user");
    v1.version = Some("1".into());
    assert_eq!(
        get_ref(&rt, &s, v1).await.unwrap().as_deref(),
        Some("admin")
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("/app/json").property("username"))
            .await
            .unwrap()
            .as_deref(),
        Some("admin")
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("/app/none")).await.unwrap(),
        None
    );

    let batch = rt
        .get_secrets(
            &s,
            &[
                RemoteRef::key("/app/db/user"),
                RemoteRef::key("/app/db/password"),
                RemoteRef::key("/app/gone"),
            ],
        )
        .await
        .unwrap();
    let batch: Vec<Option<Vec<u8>>> = batch
        .into_iter()
        .map(|r| r.unwrap().map(|v| v.expose().to_vec()))
        .collect();
    assert_eq!(
        batch,
        [Some(b"admin2".to_vec()), Some(b"s3cr3t".to_vec()), None]
    );
    assert_eq!(moto.count("AmazonSSM.GetParameters").await, 1);

    let by_path = FindCriteria {
        path: Some("/app/db".into()),
        ..Default::default()
    };
    let found = texts(rt.get_all_secrets(&s, &by_path).await.unwrap());
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["/app/db/password", "/app/db/user"]
    );
    assert_eq!(found["/app/db/password"], "s3cr3t");

    let by_tag = FindCriteria {
        tags: BTreeMap::from([("team".into(), "a".into())]),
        ..Default::default()
    };
    let found = texts(rt.get_all_secrets(&s, &by_tag).await.unwrap());
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["/app/db/password", "/app/db/user"]
    );

    let by_name = FindCriteria {
        name_regexp: Some("^/other/".into()),
        ..Default::default()
    };
    let found = texts(rt.get_all_secrets(&s, &by_name).await.unwrap());
    assert_eq!(found.keys().collect::<Vec<_>>(), ["/other/x"]);

    let mut meta = RemoteRef::key("/app/db/user");
    meta.metadata_policy = MetadataPolicy::Fetch;
    meta.property = Some("team".into());
    assert_eq!(get_ref(&rt, &s, meta).await.unwrap().as_deref(), Some("a"));
}

#[tokio::test]
async fn parameter_store_push_tags_what_it_creates_and_refuses_unmanaged_parameters() {
    let moto = Moto::start().await;
    moto.put_parameter("/hand/made", "keep-me", "String", &[])
        .await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = ssm_store(&moto, json!({}));

    let mut secure = push("/pushed/p", None, "v1");
    secure.metadata = Some(
        json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"secretType": "SecureString"}}),
    );
    rt.push_secret(&s, &secure).await.unwrap();
    let described = moto.ssm("GetParameter", json!({"Name": "/pushed/p"})).await;
    assert_eq!(described["Parameter"]["Type"], "SecureString");
    rt.push_secret(&s, &push("/pushed/p", None, "v2"))
        .await
        .unwrap();
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("/pushed/p"))
            .await
            .unwrap()
            .as_deref(),
        Some("v2")
    );
    assert!(rt.secret_exists(&s, &push_ref("/pushed/p")).await.unwrap());

    let refused = provider_error(
        rt.push_secret(&s, &push("/hand/made", None, "x"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(refused, ProviderError::AccessDenied(_)),
        "{refused:?}"
    );
    let refused = provider_error(
        rt.delete_secret(&s, &push_ref("/hand/made"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(refused, ProviderError::AccessDenied(_)),
        "{refused:?}"
    );

    rt.delete_secret(&s, &push_ref("/pushed/p")).await.unwrap();
    assert!(!rt.secret_exists(&s, &push_ref("/pushed/p")).await.unwrap());
    rt.delete_secret(&s, &push_ref("/never/existed"))
        .await
        .unwrap();
}

#[tokio::test]
async fn web_identity_exchanges_the_service_account_token_once_and_caches_the_credentials() {
    let moto = Moto::start().await;
    moto.create_secret("production/api-keys", r#"{"api-key":"k-123"}"#, &[])
        .await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(
        &moto,
        json!({
            "role": "arn:aws:iam::123456789012:role/eso",
            "auth": {"jwt": {"serviceAccountRef": {"name": "external-secrets-sa"}}}
        }),
    );
    for _ in 0..3 {
        let got = get_ref(
            &rt,
            &s,
            RemoteRef::key("production/api-keys").property("api-key"),
        )
        .await;
        assert_eq!(got.unwrap().as_deref(), Some("k-123"));
    }
    assert_eq!(moto.count("AssumeRoleWithWebIdentity").await, 1);
}

#[tokio::test]
async fn web_identity_without_role_assumes_the_service_accounts_role_arn_annotation() {
    // The seed's IRSA-style store: `auth.jwt.serviceAccountRef` and no `role`.
    let moto = Moto::start().await;
    moto.create_secret("production/api-keys", r#"{"api-key":"k-irsa"}"#, &[])
        .await;
    let seed_store =
        json!({"auth": {"jwt": {"serviceAccountRef": {"name": "external-secrets-sa"}}}});

    let annotated = credentials(ACCESS_KEY, SECRET_KEY).with_annotation(
        "team-a",
        "external-secrets-sa",
        "eks.amazonaws.com/role-arn",
        "arn:aws:iam::123456789012:role/irsa",
    );
    let rt = runtime_for(&moto, annotated).await;
    let s = sm_store(&moto, seed_store.clone());
    let got = get_ref(
        &rt,
        &s,
        RemoteRef::key("production/api-keys").property("api-key"),
    )
    .await;
    assert_eq!(got.unwrap().as_deref(), Some("k-irsa"));
    assert_eq!(moto.count("AssumeRoleWithWebIdentity").await, 1);

    // Neither the annotation nor `role`: a clear configuration error naming both.
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(&moto, seed_store);
    let err = get_ref(&rt, &s, RemoteRef::key("production/api-keys"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("eks.amazonaws.com/role-arn") && text.contains("role"),
        "{text}"
    );
}

#[tokio::test]
async fn assume_role_chains_additional_roles_with_external_id_and_session_tags() {
    let moto = Moto::start().await;
    moto.create_secret("s", "v", &[]).await;
    let rt = runtime_for(&moto, credentials(ACCESS_KEY, SECRET_KEY)).await;
    let s = sm_store(
        &moto,
        json!({
            "additionalRoles": ["arn:aws:iam::123456789012:role/hop"],
            "role": "arn:aws:iam::123456789012:role/final",
            "externalID": "ext-42",
            "sessionTags": [{"key": "team", "value": "a"}]
        }),
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("s"))
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("s"))
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    assert_eq!(moto.count("AssumeRole").await, 2, "two hops, then cached");
}

#[tokio::test]
async fn moto_verifying_signatures_accepts_ours_and_names_signature_does_not_match() {
    // Three unsigned IAM calls create the user; every later request is verified.
    let moto = Moto::start_verifying(3).await;
    let (access, secret) = moto.iam_user().await;

    let rt = runtime_for(&moto, credentials(&access, &secret)).await;
    let s = sm_store(&moto, json!({}));
    assert_eq!(rt.validate(&s).await.unwrap(), Validation::Ready);
    rt.push_secret(&s, &push("signed/app", None, "v"))
        .await
        .unwrap();
    assert_eq!(
        get_ref(&rt, &s, RemoteRef::key("signed/app"))
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    let p = ssm_store(&moto, json!({}));
    assert_eq!(rt.validate(&p).await.unwrap(), Validation::Ready);

    let wrong = runtime_for(&moto, credentials(&access, "not-the-secret")).await;
    let err = provider_error(wrong.validate(&s).await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("SignatureDoesNotMatch")),
        "{err:?}"
    );
    let unknown = runtime_for(&moto, credentials("AKIDUNKNOWN", &secret)).await;
    let err = provider_error(unknown.validate(&s).await.unwrap_err());
    assert!(
        matches!(&err, ProviderError::AccessDenied(m) if m.contains("InvalidClientTokenId")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_configuration_and_missing_credentials_are_clear_errors() {
    let moto = Moto::start().await;
    let rt = runtime_for(&moto, StaticCredentials::default()).await;

    let err = provider_error(
        rt.validate(&sm_store(&moto, json!({"region": "mars-north-1"})))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("\"mars-north-1\" is not an AWS region")),
        "{err:?}"
    );

    let err = provider_error(
        get_ref(&rt, &sm_store(&moto, json!({})), RemoteRef::key("x"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("aws-credentials") && m.contains("accessKeyIDSecretRef")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_endpoint_outside_the_grant_is_refused_by_the_host() {
    let moto = Moto::start().await;
    moto.create_secret("s", "v", &[]).await;
    let rt = common::runtime_with(credentials(ACCESS_KEY, SECRET_KEY));
    common::install(
        &rt,
        "aws",
        airlock_test_artifacts::AWS,
        grants(&["https://*.amazonaws.com".into()]),
    )
    .await;
    let err = provider_error(
        get_ref(&rt, &sm_store(&moto, json!({})), RemoteRef::key("s"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("not granted")),
        "{err:?}"
    );
    assert_eq!(moto.count("secretsmanager.GetSecretValue").await, 0);
}

#[tokio::test]
async fn the_default_provider_grants_cover_the_default_aws_endpoints() {
    let defaults: Vec<String> = [
        "https://secretsmanager.*.amazonaws.com",
        "https://ssm.*.amazonaws.com",
        "https://sts.*.amazonaws.com",
        "https://sts.amazonaws.com",
    ]
    .map(String::from)
    .to_vec();
    let g = grants(&defaults);
    for host in [
        "secretsmanager.us-west-2.amazonaws.com",
        "ssm.eu-central-1.amazonaws.com",
        "sts.ap-southeast-2.amazonaws.com",
        "sts.amazonaws.com",
    ] {
        assert!(
            g.allowed_outbound_hosts
                .iter()
                .any(|p| p.matches("https", host, 443)),
            "{host}"
        );
    }
    for host in [
        "evil.com",
        "secretsmanager.us-west-2.amazonaws.com.evil.com",
        "s3.us-west-2.amazonaws.com",
    ] {
        assert!(
            !g.allowed_outbound_hosts
                .iter()
                .any(|p| p.matches("https", host, 443)),
            "{host}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// On the real control plane: the operator in-process, the aws Provider loaded from the
// built component, moto as the backend.

use airlock::controller::{self, Config};
use airlock::crd::{ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use cluster::{
    apply, eventually, failure_event, install_crds, ready_message, secret_text, string_map,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Client;
use kube::api::Api;

/// The Provider every control-plane test applies: the same grants each time, so parallel
/// tests agree. Loopback is reachable only because the grant names 127.0.0.1.
const MODULE: &str = "airlock_provider_aws.wasm";

struct Cluster {
    client: Client,
    ns: String,
    _providers: tempfile::TempDir,
}

async fn operator(prefix: &str) -> Cluster {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace(prefix).await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(airlock_test_artifacts::AWS, providers.path().join(MODULE))
        .expect("copy aws.wasm");
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
               "metadata": {"name": "aws"},
               "spec": {"module": {"path": MODULE},
                        "allowedOutboundHosts": ["http://127.0.0.1:*"]}}),
    )
    .await;
    eventually("the aws provider loaded in this operator", || async {
        runtime.provider("aws").map(|_| ())
    })
    .await;
    Cluster {
        client,
        ns,
        _providers: providers,
    }
}

impl Cluster {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn credentials_secret(&self, access: &str, secret: &str) {
        apply(
            &self.api::<Secret>(),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "aws-credentials", "namespace": self.ns},
                   "stringData": {"access-key": access, "secret-key": secret}}),
        )
        .await;
    }

    /// The seed's SecretStore, in this namespace, plus the endpoint overrides.
    async fn seed_store(&self, name: &str, region: &str, endpoint: &str) {
        apply(
            &self.api::<SecretStore>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": name, "namespace": self.ns},
                   "spec": {"provider": {"aws": {
                       "service": "SecretsManager",
                       "region": region,
                       "endpoint": endpoint,
                       "stsEndpoint": endpoint,
                       "auth": {"secretRef": {
                           "accessKeyIDSecretRef": {"name": "aws-credentials", "key": "access-key"},
                           "secretAccessKeySecretRef": {"name": "aws-credentials", "key": "secret-key"}}}}}}}),
        )
        .await;
    }

    async fn external_secret(&self, name: &str, spec: Value) {
        apply(
            &self.api::<ExternalSecret>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": name, "namespace": self.ns}, "spec": spec}),
        )
        .await;
    }

    async fn secret_data(&self, name: &str) -> Option<BTreeMap<String, String>> {
        secret_text(&self.api(), name).await
    }

    /// The ExternalSecret's Ready message once its status is `want` and it mentions `needle`.
    async fn ready_es(&self, name: &str, want: &str, needle: &str) -> String {
        ready_message(&self.api::<ExternalSecret>(), name, want, needle).await
    }

    /// Waits for the ExternalSecret to fail with ESO's fixed message for a provider error,
    /// and returns the note of the Warning event mentioning `needle` (the detail).
    async fn failed_es(&self, name: &str, needle: &str) -> String {
        self.ready_es(name, "False", "could not get secret data from provider")
            .await;
        failure_event(&self.client, &self.ns, name, needle).await
    }

    /// Once the SecretStore's Ready status is `want`: its message when it mentions `needle`
    /// (`True`), or for `False` (ESO's fixed `unable to …` message) the note of the Warning
    /// event mentioning `needle`, where the detail is, as ESO does it.
    async fn ready_store(&self, name: &str, want: &str, needle: &str) -> String {
        let api = self.api::<SecretStore>();
        if want != "False" {
            return ready_message(&api, name, want, needle).await;
        }
        ready_message(&api, name, "False", "unable to ").await;
        cluster::warning_event(
            &self.client,
            &self.ns,
            "SecretStore",
            name,
            "InvalidProviderConfig",
            needle,
        )
        .await
    }
}

/// The seed's ExternalSecret spec, reading from `store` into `database-secret`.
fn seed_external_secret(store: &str) -> Value {
    cluster::seed_external_secret(store, "database-secret")
}

#[tokio::test]
async fn the_seed_store_and_external_secret_sync_from_moto_with_extract_and_find() {
    let mut moto = Moto::start().await;
    moto.region = "us-west-2".into();
    moto.create_secret(
        "production/database",
        r#"{"username":"admin","password":"s3cr3t"}"#,
        &[("team", "db")],
    )
    .await;
    moto.create_secret("production/api-keys", "k-123", &[("team", "api")])
        .await;
    moto.create_secret("staging/database", "stage", &[("team", "db")])
        .await;
    let env = operator("aws-seed").await;
    env.credentials_secret(ACCESS_KEY, SECRET_KEY).await;
    env.seed_store("aws-secrets-manager", "us-west-2", &moto.url(""))
        .await;
    env.ready_store("aws-secrets-manager", "True", "").await;

    env.external_secret(
        "database-credentials",
        seed_external_secret("aws-secrets-manager"),
    )
    .await;
    env.ready_es("database-credentials", "True", "").await;
    assert_eq!(
        env.secret_data("database-secret").await,
        Some(string_map(&[("username", "admin"), ("password", "s3cr3t")]))
    );

    env.external_secret(
        "extracted",
        json!({"secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
               "target": {"name": "extracted"},
               "dataFrom": [{"extract": {"key": "production/database"}}]}),
    )
    .await;
    env.external_secret(
        "by-tag",
        json!({"secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
               "target": {"name": "by-tag"},
               "dataFrom": [{"find": {"tags": {"team": "db"}}}]}),
    )
    .await;
    env.external_secret(
        "by-name",
        json!({"secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
               "target": {"name": "by-name"},
               "dataFrom": [{"find": {"name": {"regexp": "^production/"}}}]}),
    )
    .await;
    for name in ["extracted", "by-tag", "by-name"] {
        env.ready_es(name, "True", "").await;
    }
    assert_eq!(
        env.secret_data("extracted").await,
        Some(string_map(&[("username", "admin"), ("password", "s3cr3t")]))
    );
    let by_tag = env.secret_data("by-tag").await.unwrap();
    assert_eq!(
        by_tag.keys().collect::<Vec<_>>(),
        ["production_database", "staging_database"]
    );
    assert_eq!(by_tag["staging_database"], "stage");
    let by_name = env.secret_data("by-name").await.unwrap();
    assert_eq!(
        by_name.keys().collect::<Vec<_>>(),
        ["production_api-keys", "production_database"]
    );
}

#[tokio::test]
async fn the_seed_irsa_store_syncs_with_the_service_accounts_role_arn_annotation() {
    // The seed's second AWS example as written (jwt.serviceAccountRef, no role), plus the
    // endpoint override: the role comes from the ServiceAccount, as on EKS.
    let mut moto = Moto::start().await;
    moto.region = "us-west-2".into();
    moto.create_secret("production/api-keys", r#"{"api-key":"k-irsa"}"#, &[])
        .await;
    let env = operator("aws-irsa").await;
    apply(
        &env.api::<ServiceAccount>(),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "external-secrets-sa", "namespace": env.ns,
                 "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/irsa"}}}),
    )
    .await;
    apply(
        &env.api::<SecretStore>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "aws-secretsmanager", "namespace": env.ns},
               "spec": {"provider": {"aws": {
                   "service": "SecretsManager",
                   "region": "us-west-2",
                   "endpoint": moto.url(""),
                   "stsEndpoint": moto.url(""),
                   "auth": {"jwt": {"serviceAccountRef": {"name": "external-secrets-sa"}}}}}}}),
    )
    .await;
    env.ready_store("aws-secretsmanager", "True", "").await;
    env.external_secret(
        "api-keys",
        json!({"secretStoreRef": {"name": "aws-secretsmanager", "kind": "SecretStore"},
               "target": {"name": "api-keys"},
               "data": [{"secretKey": "api-key",
                         "remoteRef": {"key": "production/api-keys", "property": "api-key"}}]}),
    )
    .await;
    env.ready_es("api-keys", "True", "").await;
    assert_eq!(
        env.secret_data("api-keys").await,
        Some(string_map(&[("api-key", "k-irsa")]))
    );
    assert_eq!(moto.count("AssumeRoleWithWebIdentity").await, 1);
}

#[tokio::test]
async fn bad_aws_stores_give_clear_conditions_and_keep_synced_data() {
    // Signature verification on: 3 unsigned calls create the IAM user, 1 seeds the secret.
    let mut moto = Moto::start_verifying(4).await;
    moto.region = "us-west-2".into();
    let (access, secret) = moto.iam_user().await;
    moto.create_secret(
        "production/database",
        r#"{"username":"admin","password":"s3cr3t"}"#,
        &[],
    )
    .await;
    let env = operator("aws-bad").await;
    env.credentials_secret(&access, &secret).await;
    env.seed_store("aws-secrets-manager", "us-west-2", &moto.url(""))
        .await;
    env.external_secret(
        "database-credentials",
        seed_external_secret("aws-secrets-manager"),
    )
    .await;
    env.ready_es("database-credentials", "True", "").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);
    assert_eq!(
        env.secret_data("database-secret").await.as_ref(),
        Some(&synced)
    );

    // A wrong secret key: moto's signature check fails; switching the synced
    // ExternalSecret to that store fails it and its Secret keeps the data.
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "aws-wrong", "namespace": env.ns},
        "stringData": {"access-key": access, "secret-key": "not-the-secret-key"}}),
    )
    .await;
    apply(
        &env.api::<SecretStore>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "wrong-key", "namespace": env.ns},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "us-west-2",
            "endpoint": moto.url(""),
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-wrong", "key": "access-key"},
                "secretAccessKeySecretRef": {"name": "aws-wrong", "key": "secret-key"}}}}}}}),
    )
    .await;
    let m = env
        .ready_store("wrong-key", "False", "SignatureDoesNotMatch")
        .await;
    assert!(m.contains("AccessDenied"), "{m}");
    env.external_secret("database-credentials", seed_external_secret("wrong-key"))
        .await;
    env.failed_es("database-credentials", "SignatureDoesNotMatch")
        .await;
    assert_eq!(
        env.secret_data("database-secret").await.as_ref(),
        Some(&synced)
    );

    // An unknown region.
    env.seed_store("bad-region", "moon-base-1", &moto.url(""))
        .await;
    let m = env
        .ready_store(
            "bad-region",
            "False",
            "\"moon-base-1\" is not an AWS region",
        )
        .await;
    assert!(m.contains("InvalidProviderConfig"), "{m}");

    // A missing credentials Secret.
    apply(&env.api::<SecretStore>(), json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "no-credentials", "namespace": env.ns},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "us-west-2",
            "endpoint": moto.url(""),
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "missing-credentials", "key": "access-key"},
                "secretAccessKeySecretRef": {"name": "missing-credentials", "key": "secret-key"}}}}}}})).await;
    let m = env
        .ready_store("no-credentials", "False", "missing-credentials")
        .await;
    assert!(m.contains("accessKeyIDSecretRef"), "{m}");

    // An endpoint outside the Provider's grant (127.0.0.2 is not 127.0.0.1).
    env.seed_store(
        "outside-grant",
        "us-west-2",
        &format!("http://127.0.0.2:{}", moto.port),
    )
    .await;
    env.ready_store("outside-grant", "False", "not granted")
        .await;
    env.external_secret(
        "outside",
        seed_external_secret("outside-grant")
            .as_object()
            .cloned()
            .map(|mut o| {
                o["target"] = json!({"name": "outside"});
                Value::Object(o)
            })
            .unwrap(),
    )
    .await;
    env.failed_es("outside", "not granted").await;
    assert_eq!(env.secret_data("outside").await, None);
    assert_eq!(
        env.secret_data("database-secret").await.as_ref(),
        Some(&synced)
    );
}

#[tokio::test]
async fn external_secrets_reading_the_same_key_cost_one_provider_call_per_refresh_window() {
    let mut moto = Moto::start().await;
    moto.region = "us-west-2".into();
    moto.create_secret("shared/ten", r#"{"password":"p10"}"#, &[])
        .await;
    moto.create_secret("shared/fifty", r#"{"password":"p50"}"#, &[])
        .await;
    let env = operator("aws-coalesce").await;
    env.credentials_secret(ACCESS_KEY, SECRET_KEY).await;
    env.seed_store("aws-secrets-manager", "us-west-2", &moto.url(""))
        .await;
    env.ready_store("aws-secrets-manager", "True", "").await;

    let reads = |key: &'static str| {
        let moto = &moto;
        async move {
            moto.count_for("secretsmanager.GetSecretValue", key).await
                + moto
                    .count_for("secretsmanager.BatchGetSecretValue", key)
                    .await
        }
    };
    let mut report = Vec::new();
    for (n, key, interval) in [(10, "shared/ten", "1h"), (50, "shared/fifty", "8s")] {
        let started = std::time::Instant::now();
        for i in 0..n {
            env.external_secret(
                &format!("reader-{n}-{i}"),
                json!({"refreshInterval": interval,
                       "secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
                       "target": {"name": format!("reader-{n}-{i}")},
                       "data": [{"secretKey": "password", "remoteRef": {"key": key, "property": "password"}}]}),
            )
            .await;
        }
        for i in 0..n {
            let name = format!("reader-{n}-{i}");
            eventually(&format!("{name} synced"), || async {
                env.secret_data(&name)
                    .await
                    .filter(|d| d.contains_key("password"))
            })
            .await;
        }
        let first = reads(key).await;
        report.push(format!(
            "N={n}: {first} backend read(s) for the first sync of all {n} in {:?}",
            started.elapsed()
        ));
        assert_eq!(first, 1, "{n} ExternalSecrets reading {key} cost one read");
    }
    // Two more 8 s windows for the fifty: about one read per window, not fifty.
    tokio::time::sleep(std::time::Duration::from_secs(17)).await;
    let later = reads("shared/fifty").await;
    report.push(format!(
        "N=50, refreshInterval 8s: {later} backend reads after ~25 s (3 windows)"
    ));
    println!("{}", report.join("\n"));
    assert!((2..=6).contains(&later), "{report:?}");
}

// ---------------------------------------------------------------------------------------
// PushSecret (issue 19) into Secrets Manager on moto.

async fn push_ready(env: &Cluster, name: &str, want: &str, needle: &str) -> String {
    ready_message(&env.api::<airlock::crd::PushSecret>(), name, want, needle).await
}

async fn push_secret(env: &Cluster, name: &str, spec: Value) {
    apply(
        &env.api::<airlock::crd::PushSecret>(),
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
               "metadata": {"name": name, "namespace": env.ns}, "spec": spec}),
    )
    .await;
}

fn push_spec(store: &str, remote: &str, extra: Value) -> Value {
    let mut spec = json!({"refreshInterval": "1s", "secretStoreRefs": [{"name": store}],
        "selector": {"secret": {"name": "source"}},
        "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": remote}}}]});
    for (k, v) in extra.as_object().expect("an object") {
        spec[k] = v.clone();
    }
    spec
}

async fn sm_value(moto: &Moto, name: &str) -> String {
    let v = moto.sm("GetSecretValue", json!({"SecretId": name})).await;
    v["SecretString"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn push_secrets_write_update_and_delete_managed_secrets_in_moto_and_refuse_unmanaged_ones() {
    let moto = Moto::start().await;
    moto.create_secret("legacy/db", "theirs", &[]).await;
    let env = operator("aws-push").await;
    env.credentials_secret(ACCESS_KEY, SECRET_KEY).await;
    env.seed_store("aws-sm", "us-east-1", &moto.url("")).await;
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "source", "namespace": env.ns},
               "stringData": {"password": "p1"}}),
    )
    .await;

    push_secret(
        &env,
        "push",
        push_spec(
            "aws-sm",
            "app/db-password",
            json!({"deletionPolicy": "Delete"}),
        ),
    )
    .await;
    push_ready(&env, "push", "True", "PushSecret synced successfully").await;
    assert_eq!(sm_value(&moto, "app/db-password").await, "p1");
    let described = moto
        .sm("DescribeSecret", json!({"SecretId": "app/db-password"}))
        .await;
    assert!(
        described["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["Key"] == "managed-by" && t["Value"] == "external-secrets"),
        "{described}"
    );

    // Replace (the default) follows the source at the next refresh.
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "source", "namespace": env.ns},
               "stringData": {"password": "p2"}}),
    )
    .await;
    eventually("p2 pushed", || async {
        (sm_value(&moto, "app/db-password").await == "p2").then_some(())
    })
    .await;

    // A secret Airlock did not create is refused, and IfNotExists leaves it alone.
    push_secret(
        &env,
        "unmanaged",
        push_spec("aws-sm", "legacy/db", json!({})),
    )
    .await;
    let message = push_ready(
        &env,
        "unmanaged",
        "False",
        "not tagged managed-by=external-secrets",
    )
    .await;
    assert!(
        message.starts_with(
            "set secret failed: could not write remote ref password to target secretstore aws-sm"
        ),
        "{message}"
    );
    push_secret(
        &env,
        "if-not-exists",
        push_spec(
            "aws-sm",
            "legacy/db",
            json!({"updatePolicy": "IfNotExists"}),
        ),
    )
    .await;
    push_ready(
        &env,
        "if-not-exists",
        "True",
        "Existing secrets in providers unchanged.",
    )
    .await;
    assert_eq!(sm_value(&moto, "legacy/db").await, "theirs");

    // A store whose endpoint is outside the Provider's grant: a clear condition.
    env.seed_store(
        "aws-real",
        "us-east-1",
        "https://secretsmanager.us-east-1.amazonaws.com",
    )
    .await;
    push_secret(
        &env,
        "outside",
        push_spec("aws-real", "app/outside", json!({})),
    )
    .await;
    push_ready(&env, "outside", "False", "is not granted to provider").await;

    // deletionPolicy None keeps the remote secret; Delete removes it.
    push_secret(&env, "kept", push_spec("aws-sm", "app/kept", json!({}))).await;
    push_ready(&env, "kept", "True", "PushSecret synced successfully").await;
    let pushes = env.api::<airlock::crd::PushSecret>();
    for name in ["kept", "push"] {
        pushes
            .delete(name, &Default::default())
            .await
            .expect("delete");
        eventually(&format!("PushSecret {name} gone"), || async {
            pushes.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    assert_eq!(sm_value(&moto, "app/kept").await, "p2");
    let deleted = moto
        .sm("DescribeSecret", json!({"SecretId": "app/db-password"}))
        .await;
    assert!(
        deleted.get("DeletedDate").is_some_and(|d| !d.is_null()),
        "{deleted}"
    );
}
