//! The Azure Key Vault provider (`azurekv.wasm`) in the real host against the in-repo fake
//! Azure (`airlock_testenv::fakes::azurekv`, proven against azure-keyvault-secrets and
//! azure-identity in tests/support/tests/azurekv_sdk.rs). The stores name Azure's real
//! hosts (`my-keyvault.vault.azure.net`, `login.microsoftonline.com`, IMDS
//! `169.254.169.254`); the Provider's grant pins them to the fake with `hostAliases` and
//! trusts its CA with `caBundle`, as an admin would for a private endpoint.

mod cluster;
mod common;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, MetadataPolicy, ProviderError, PushRef, PushRequest,
    RemoteRef, SecretValue, Validation,
};
use airlock::runtime::{Grants, HostAlias, Limits, Runtime, StaticCredentials};
use airlock_testenv::fakes::azurekv::{Access, FakeAzure};
use serde_json::{Value, json};

use common::{get, get_ref, install, runtime_with, store};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const VAULT: &str = "https://my-keyvault.vault.azure.net";
const REAL_HOSTS: [&str; 3] = [
    "https://*.vault.azure.net",
    "https://login.microsoftonline.com",
    "http://169.254.169.254",
];

fn seeded() -> FakeAzure {
    let fake = FakeAzure::start(TENANT);
    fake.add_client_secret("app-id", "app-secret", Access::Full)
        .add_client_secret("no-access", "its-secret", Access::None)
        .add_managed_identity(Some("mi-client-id"), None, Access::Full)
        .add_managed_identity(None, None, Access::Full)
        .add_federated_credential("wi-client", "sa-token-for-azure", Access::Full);
    fake.set_secret(
        "database-connection-string",
        "Server=db;Password=hunter2",
        &[],
    );
    fake.set_secret(
        "api-config",
        r#"{"user":"svc","nested":{"port":5432}}"#,
        &[("team", "payments"), ("env", "prod")],
    );
    fake
}

/// The grant for Azure's real hosts, those pinned to the fake, its CA trusted.
fn grants_for(fake: &FakeAzure, hosts: &[&str]) -> Grants {
    let mut g = Grants::parse(
        &hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        &["127.0.0.0/8".to_string()],
        Limits::default(),
    )
    .expect("grants");
    g.ca_bundle_pem = Some(fake.ca_pem().as_bytes().to_vec());
    g.host_aliases = vec![
        HostAlias::parse(
            &[
                "my-keyvault.vault.azure.net".to_string(),
                "login.microsoftonline.com".to_string(),
            ],
            &format!("127.0.0.1:{}", fake.https_port()),
        )
        .expect("alias"),
        HostAlias::parse(
            &["169.254.169.254".to_string()],
            &format!("127.0.0.1:{}", fake.imds_port()),
        )
        .expect("alias"),
    ];
    g
}

async fn azure_runtime(fake: &FakeAzure, secret: &str, hosts: &[&str]) -> Runtime {
    let creds = StaticCredentials::default()
        .with_secret("team-a", "azure-sp", "client-id", b"app-id")
        .with_secret("team-a", "azure-sp", "client-secret", secret.as_bytes())
        .with_token("team-a", "workload", "sa-token-for-azure")
        .with_annotation(
            "team-a",
            "workload",
            "azure.workload.identity/client-id",
            "wi-client",
        );
    let runtime = runtime_with(creds);
    install(
        &runtime,
        "azurekv",
        airlock_test_artifacts::AZUREKV,
        grants_for(fake, hosts),
    )
    .await;
    runtime
}

fn sp_store() -> airlock::backend::StoreContext {
    store(
        "azurekv",
        "azure",
        json!({"vaultUrl": VAULT, "tenantId": TENANT,
               "authSecretRef": {"clientId": {"name": "azure-sp", "key": "client-id"},
                                 "clientSecret": {"name": "azure-sp", "key": "client-secret"}}}),
    )
}

fn mi_store(identity: Option<&str>) -> airlock::backend::StoreContext {
    let mut config = json!({"vaultUrl": VAULT, "authType": "ManagedIdentity"});
    if let Some(id) = identity {
        config["identityId"] = json!(id);
    }
    store("azurekv", "azure-mi", config)
}

fn provider_error(e: BackendError) -> ProviderError {
    match e {
        BackendError::Provider(p) => p,
        other => panic!("expected a provider error, got {other}"),
    }
}

fn text_map(entries: Vec<(String, SecretValue)>) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(v.expose()).into_owned()))
        .collect()
}

fn find(regexp: Option<&str>, tags: &[(&str, &str)]) -> FindCriteria {
    FindCriteria {
        name_regexp: regexp.map(str::to_string),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_service_principal_reads_secrets_properties_versions_and_tags_with_one_token() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    assert_eq!(
        runtime.validate(&s).await.expect("validates"),
        Validation::Ready
    );
    assert_eq!(
        get(&runtime, &s, "database-connection-string")
            .await
            .unwrap()
            .as_deref(),
        Some("Server=db;Password=hunter2")
    );
    assert_eq!(
        get(&runtime, &s, "secret/database-connection-string")
            .await
            .unwrap()
            .as_deref(),
        Some("Server=db;Password=hunter2")
    );
    let port = RemoteRef::key("api-config").property("nested.port");
    assert_eq!(
        get_ref(&runtime, &s, port).await.unwrap().as_deref(),
        Some("5432")
    );
    let tags = RemoteRef {
        metadata_policy: MetadataPolicy::Fetch,
        ..RemoteRef::key("api-config")
    };
    let tags: Value =
        serde_json::from_str(&get_ref(&runtime, &s, tags).await.unwrap().unwrap()).unwrap();
    // The tags, and (as ESO) the time attributes as RFC 3339.
    assert_eq!(tags["team"], "payments");
    assert_eq!(tags["env"], "prod");
    assert!(
        tags["attribute.created"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{tags}"
    );
    assert!(tags.get("attribute.expires").is_none(), "{tags}");
    let team = RemoteRef {
        metadata_policy: MetadataPolicy::Fetch,
        ..RemoteRef::key("api-config").property("team")
    };
    assert_eq!(
        get_ref(&runtime, &s, team).await.unwrap().as_deref(),
        Some("payments")
    );

    let old = fake.set_secret("rotating", "v1", &[]);
    fake.set_secret("rotating", "v2", &[]);
    let pinned = RemoteRef {
        version: Some(old),
        ..RemoteRef::key("rotating")
    };
    assert_eq!(
        get_ref(&runtime, &s, pinned).await.unwrap().as_deref(),
        Some("v1")
    );
    assert_eq!(
        get(&runtime, &s, "rotating").await.unwrap().as_deref(),
        Some("v2")
    );
    assert_eq!(get(&runtime, &s, "nope").await.unwrap(), None);

    // One token for all of the above: it is cached in the host across calls.
    assert_eq!(fake.token_requests(), 1, "{:?}", fake.requests());
    let sent = fake.requests();
    let token = sent
        .iter()
        .find(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .unwrap();
    assert_eq!(token.host, "login.microsoftonline.com");
    assert!(
        token
            .form
            .contains(&("scope".into(), "https://vault.azure.net/.default".into()))
    );
    assert!(
        token
            .form
            .contains(&("client_secret".into(), "<set>".into()))
    );
    assert!(
        sent.iter()
            .all(|r| r.path.contains("oauth2") || r.authenticated)
    );
    assert!(sent.iter().any(|r| r.host == "my-keyvault.vault.azure.net"));
}

#[tokio::test]
async fn certificates_and_keys_are_read_by_their_prefixes() {
    let fake = seeded();
    fake.set_certificate("tls", b"\x30\x82fake-der");
    fake.set_key("signing", json!({"kty": "RSA", "n": "AQAB-n", "e": "AQAB"}));
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let cert = runtime
        .get_secrets(&s, &[RemoteRef::key("cert/tls")])
        .await
        .unwrap();
    let cert = cert.into_iter().next().unwrap().unwrap().unwrap();
    assert_eq!(cert.expose(), b"\x30\x82fake-der");
    let jwk: Value =
        serde_json::from_str(&get(&runtime, &s, "key/signing").await.unwrap().unwrap()).unwrap();
    assert_eq!(jwk["kty"], "RSA");
    assert!(jwk["kid"].as_str().unwrap().contains("/keys/signing/"));
    assert_eq!(get(&runtime, &s, "cert/absent").await.unwrap(), None);
    let e = provider_error(get(&runtime, &s, "secret/../keys/x").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::InvalidRequest(m) if m.contains("not a Key Vault object name")),
        "{e}"
    );
}

#[tokio::test]
async fn find_filters_by_name_and_tags_over_every_page_and_skips_disabled_secrets() {
    let fake = seeded();
    for i in 0..60 {
        let team = if i % 2 == 0 { "payments" } else { "search" };
        fake.set_secret(&format!("bulk-{i:02}"), &i.to_string(), &[("team", team)]);
    }
    fake.disable_secret("bulk-00");
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let bulk = text_map(
        runtime
            .get_all_secrets(&s, &find(Some("^bulk-"), &[]))
            .await
            .unwrap(),
    );
    assert_eq!(bulk.len(), 59);
    assert_eq!(bulk["bulk-59"], "59");
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/secrets")
        .count();
    assert_eq!(pages, 3, "62 secrets are 3 pages of 25");

    let payments = text_map(
        runtime
            .get_all_secrets(&s, &find(None, &[("team", "payments")]))
            .await
            .unwrap(),
    );
    assert_eq!(
        payments.len(),
        30,
        "29 bulk (bulk-00 disabled) and api-config"
    );
    assert!(payments.contains_key("api-config"));
    let both = text_map(
        runtime
            .get_all_secrets(
                &s,
                &find(Some("config"), &[("team", "payments"), ("env", "prod")]),
            )
            .await
            .unwrap(),
    );
    assert_eq!(both.keys().collect::<Vec<_>>(), ["api-config"]);
    let e = provider_error(
        runtime
            .get_all_secrets(
                &s,
                &FindCriteria {
                    path: Some("x".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::Unsupported(m) if m.contains("find.path")),
        "{e}"
    );
}

#[tokio::test]
async fn managed_identities_come_from_imds_with_the_metadata_header() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let user = mi_store(Some("mi-client-id"));
    assert_eq!(
        get(&runtime, &user, "database-connection-string")
            .await
            .unwrap()
            .as_deref(),
        Some("Server=db;Password=hunter2")
    );
    let system = mi_store(None);
    assert!(
        get(&runtime, &system, "api-config")
            .await
            .unwrap()
            .is_some()
    );
    let imds: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/metadata/"))
        .collect();
    assert_eq!(imds.len(), 2, "{imds:?}");
    assert_eq!(imds[0].host, "169.254.169.254");
    assert!(
        imds[0]
            .query
            .contains(&("client_id".into(), "mi-client-id".into()))
    );
    assert!(
        imds[0]
            .query
            .contains(&("resource".into(), "https://vault.azure.net".into()))
    );
    assert!(!imds[1].query.iter().any(|(k, _)| k == "client_id"));

    let unknown = mi_store(Some("someone-else"));
    let e = provider_error(get(&runtime, &unknown, "api-config").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("IMDS answered 400") && m.contains("Identity not found")),
        "{e}"
    );
}

/// Reads the seeded connection string through `s` and returns the token request it took.
async fn read_with_a_new_token(
    runtime: &Runtime,
    s: &airlock::backend::StoreContext,
    fake: &FakeAzure,
) -> airlock_testenv::fakes::azurekv::Recorded {
    assert_eq!(
        get(runtime, s, "database-connection-string")
            .await
            .unwrap()
            .as_deref(),
        Some("Server=db;Password=hunter2")
    );
    fake.requests()
        .into_iter()
        .find(|r| r.path.ends_with("/token"))
        .expect("a token request")
}

#[tokio::test]
async fn workload_identity_exchanges_the_service_account_token() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = store(
        "azurekv",
        "azure-wi",
        json!({"vaultUrl": VAULT, "authType": "WorkloadIdentity", "tenantId": TENANT,
               "serviceAccountRef": {"name": "workload"}}),
    );
    let token = read_with_a_new_token(&runtime, &s, &fake).await;
    assert!(
        token
            .form
            .contains(&("client_id".into(), "wi-client".into()))
    );
    assert!(token.form.contains(&(
        "client_assertion_type".into(),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()
    )));
}

#[tokio::test]
async fn push_tags_managed_by_refuses_foreign_secrets_and_delete_removes_only_managed_ones() {
    let fake = seeded();
    fake.set_secret("foreign", "theirs", &[("owner", "someone")]);
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let push = |key: &str, property: Option<&str>, value: &str| PushRequest {
        remote: PushRef {
            remote_key: key.into(),
            property: property.map(str::to_string),
        },
        value: SecretValue::new(value.as_bytes().to_vec()),
        metadata: None,
    };
    runtime
        .push_secret(&s, &push("pushed", None, "v1"))
        .await
        .expect("push");
    let (value, tags) = fake.secret("pushed").unwrap();
    assert_eq!(value, "v1");
    assert_eq!(
        tags.get("managed-by").map(String::as_str),
        Some("external-secrets")
    );
    runtime
        .push_secret(&s, &push("pushed-json", Some("user"), "svc"))
        .await
        .expect("push");
    runtime
        .push_secret(&s, &push("pushed-json", Some("pass"), "pw"))
        .await
        .expect("push");
    let (value, _) = fake.secret("pushed-json").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&value).unwrap(),
        json!({"user": "svc", "pass": "pw"})
    );

    let e = provider_error(
        runtime
            .push_secret(&s, &push("foreign", None, "mine"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("not managed by external-secrets")),
        "{e}"
    );
    assert_eq!(fake.secret("foreign").unwrap().0, "theirs");
    let exists = |key: &str| PushRef {
        remote_key: key.into(),
        property: None,
    };
    assert!(runtime.secret_exists(&s, &exists("pushed")).await.unwrap());
    assert!(!runtime.secret_exists(&s, &exists("never")).await.unwrap());

    let e = provider_error(
        runtime
            .delete_secret(&s, &exists("foreign"))
            .await
            .unwrap_err(),
    );
    assert!(matches!(&e, ProviderError::AccessDenied(_)), "{e}");
    runtime
        .delete_secret(&s, &exists("pushed"))
        .await
        .expect("delete");
    assert!(fake.is_deleted("pushed") && fake.secret("pushed").is_none());
    runtime
        .delete_secret(&s, &exists("never"))
        .await
        .expect("absent is deleted");
}

#[tokio::test]
async fn a_bad_secret_or_a_principal_without_access_is_access_denied() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "wrong-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let e = provider_error(get(&runtime, &s, "api-config").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("AADSTS7000215")),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong-secret"), "{e}");
    let e = provider_error(runtime.validate(&s).await.unwrap_err());
    assert!(matches!(&e, ProviderError::AccessDenied(_)), "{e}");

    let creds = StaticCredentials::default()
        .with_secret("team-a", "azure-sp", "client-id", b"no-access")
        .with_secret("team-a", "azure-sp", "client-secret", b"its-secret");
    let denied = runtime_with(creds);
    install(
        &denied,
        "azurekv",
        airlock_test_artifacts::AZUREKV,
        grants_for(&fake, &REAL_HOSTS),
    )
    .await;
    let e = provider_error(get(&denied, &s, "api-config").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("403") && m.contains("Forbidden")),
        "{e}"
    );
}

#[tokio::test]
async fn a_host_outside_the_grant_is_refused_naming_the_host_to_grant() {
    let fake = seeded();
    // IMDS is not granted by default: a managed identity needs the admin to add it.
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS[..2]).await;
    let e = get(&runtime, &mi_store(None), "api-config")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "add http://169.254.169.254 to spec.allowedOutboundHosts of the Provider \"azurekv\""
        ),
        "{e}"
    );
    let only_login = azure_runtime(&fake, "app-secret", &REAL_HOSTS[1..2]).await;
    let e = get(&only_login, &sp_store(), "api-config")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("add {VAULT} to spec.allowedOutboundHosts")),
        "{e}"
    );
    assert!(
        fake.requests().iter().all(|r| r.path.ends_with("/token")),
        "{:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn the_seeds_managed_identity_store_syncs_on_the_control_plane_and_failures_keep_the_data() {
    use airlock::crd::{ExternalSecret, SecretStore};
    use k8s_openapi::api::core::v1::Secret;
    use kube::Api;

    let fake = seeded();
    fake.add_managed_identity(Some("client-id-of-managed-identity"), None, Access::Full);
    let operator = cluster::VendorOperator::start(
        "azurekv",
        airlock_test_artifacts::AZUREKV,
        "airlock_provider_azurekv.wasm",
        fake.ca_pem(),
        vec![
            (
                vec![
                    "my-keyvault.vault.azure.net".to_string(),
                    "login.microsoftonline.com".to_string(),
                ],
                format!("127.0.0.1:{}", fake.https_port()),
            ),
            (
                vec!["169.254.169.254".to_string()],
                format!("127.0.0.1:{}", fake.imds_port()),
            ),
        ],
        common::cache_dir(),
    )
    .await;
    let (client, ns) = (operator.client.clone(), operator.namespace.clone());
    let secrets: Api<Secret> = operator.api();
    operator.grant(&REAL_HOSTS).await;

    // The seed's manifests, unchanged.
    let store = cluster::seed_object("SecretStore", "azure-keyvault");
    let external_secret = cluster::seed_object("ExternalSecret", "azure-secret");
    let stores: Api<SecretStore> = operator.api();
    let external_secrets: Api<ExternalSecret> = operator.api();
    // They are v1beta1 objects: applied as such, read back at v1.
    let beta_stores = operator.beta("SecretStore", "secretstores");
    cluster::apply(&beta_stores, store.clone()).await;
    cluster::apply(
        &operator.beta("ExternalSecret", "externalsecrets"),
        external_secret,
    )
    .await;
    cluster::ready_message(&stores, "azure-keyvault", "True", "").await;
    cluster::ready_message(&external_secrets, "azure-secret", "True", "").await;
    assert_eq!(
        cluster::secret_text(&secrets, "my-azure-secret").await,
        Some(cluster::string_map(&[(
            "connection-string",
            "Server=db;Password=hunter2"
        )]))
    );
    let imds = fake
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/metadata/"))
        .expect("an IMDS request");
    assert!(
        imds.query
            .contains(&("client_id".into(), "client-id-of-managed-identity".into()))
    );

    // find by tags and extract, refreshed every second.
    let more = |extra_key: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "azure-more"},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRef": {"name": "azure-keyvault", "kind": "SecretStore"},
                        "target": {"name": "azure-more"},
                        "data": [{"secretKey": "extra", "remoteRef": {"key": extra_key}}],
                        "dataFrom": [
                            {"find": {"tags": {"team": "payments"}}},
                            {"extract": {"key": "api-config"}}]}})
    };
    cluster::apply(&external_secrets, more("database-connection-string")).await;
    cluster::ready_message(&external_secrets, "azure-more", "True", "").await;
    let expected = cluster::string_map(&[
        ("api-config", r#"{"user":"svc","nested":{"port":5432}}"#),
        ("extra", "Server=db;Password=hunter2"),
        ("nested", r#"{"port":5432}"#),
        ("user", "svc"),
    ]);
    assert_eq!(
        cluster::secret_text(&secrets, "azure-more").await,
        Some(expected.clone())
    );

    // A missing secret: Ready=False, the data stays.
    cluster::apply(&external_secrets, more("no-such-secret")).await;
    cluster::ready_message(
        &external_secrets,
        "azure-more",
        "False",
        "could not get secret data from provider",
    )
    .await;
    cluster::failure_event(&client, &ns, "azure-more", "no-such-secret").await;
    assert_eq!(
        cluster::secret_text(&secrets, "azure-more").await,
        Some(expected.clone())
    );
    cluster::apply(&external_secrets, more("database-connection-string")).await;
    cluster::ready_message(&external_secrets, "azure-more", "True", "").await;

    // A bad credential (an identity IMDS does not know): Ready=False, the data stays.
    let mut wrong = store.clone();
    wrong["spec"]["provider"]["azurekv"]["identityId"] = json!("revoked-identity");
    cluster::apply(&beta_stores, wrong).await;
    cluster::failure_event(&client, &ns, "azure-more", "Identity not found").await;
    cluster::ready_message(
        &external_secrets,
        "azure-more",
        "False",
        "could not get secret data from provider",
    )
    .await;
    assert_eq!(
        cluster::secret_text(&secrets, "azure-more").await,
        Some(expected.clone())
    );
    cluster::apply(&beta_stores, store).await;
    cluster::ready_message(&external_secrets, "azure-more", "True", "").await;

    // The vault no longer granted: the egress refusal names the host to grant.
    operator.grant(&REAL_HOSTS[1..]).await;
    cluster::failure_event(
        &client,
        &ns,
        "azure-more",
        "add https://my-keyvault.vault.azure.net to spec.allowedOutboundHosts",
    )
    .await;
    assert_eq!(
        cluster::secret_text(&secrets, "azure-more").await,
        Some(expected)
    );
}

/// A runtime whose Secret `azure-cert` holds application `cert-app`'s ID and PEM.
async fn cert_runtime(fake: &FakeAzure, pem: &str) -> Runtime {
    let creds = StaticCredentials::default()
        .with_secret("team-a", "azure-cert", "client-id", b"cert-app")
        .with_secret("team-a", "azure-cert", "tls.pem", pem.as_bytes());
    let runtime = runtime_with(creds);
    install(
        &runtime,
        "azurekv",
        airlock_test_artifacts::AZUREKV,
        grants_for(fake, &REAL_HOSTS),
    )
    .await;
    runtime
}

#[tokio::test]
async fn a_client_certificate_signs_the_assertion_entra_id_verifies() {
    let fake = seeded();
    let pem = include_str!("../../tests/data/azurekv/client.pem");
    let (cert, public_key) = airlock_testenv::fakes::azurekv::certificate_parts(pem);
    fake.add_client_certificate("cert-app", &cert, &public_key, Access::Full);
    let runtime = cert_runtime(&fake, pem).await;
    let s = store(
        "azurekv",
        "azure-cert",
        json!({"vaultUrl": VAULT, "tenantId": TENANT,
               "authSecretRef": {"clientId": {"name": "azure-cert", "key": "client-id"},
                                 "clientCertificate": {"name": "azure-cert", "key": "tls.pem"}}}),
    );
    let token = read_with_a_new_token(&runtime, &s, &fake).await;
    assert!(
        token
            .form
            .contains(&("client_assertion".into(), "<set>".into()))
    );

    // Another key under the same certificate name is refused by Entra ID.
    let other = FakeAzure::start(TENANT);
    other.add_client_certificate("cert-app", &cert, b"not-this-key", Access::Full);
    let runtime = cert_runtime(&other, pem).await;
    let e = provider_error(get(&runtime, &s, "x").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("AADSTS700027")),
        "{e}"
    );
}

#[tokio::test]
async fn push_metadata_sets_the_expiration_date_and_content_type_and_fetch_reads_them_back() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let push = |metadata: Value| PushRequest {
        remote: PushRef {
            remote_key: "expiring".into(),
            property: None,
        },
        value: SecretValue::new(b"v1".to_vec()),
        metadata: Some(metadata),
    };
    let meta = |spec: Value| {
        json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
               "kind": "PushSecretMetadata", "spec": spec})
    };
    runtime
        .push_secret(
            &s,
            &push(meta(json!({"expirationDate": "2030-12-31T20:00:00Z",
                              "contentType": "text/plain", "tags": {"team": "a"}}))),
        )
        .await
        .expect("push");
    assert_eq!(
        fake.secret_attributes("expiring"),
        Some((Some(1_924_977_600), Some("text/plain".to_string())))
    );
    let expires = RemoteRef {
        metadata_policy: MetadataPolicy::Fetch,
        ..RemoteRef::key("expiring").property("attribute.expires")
    };
    assert_eq!(
        get_ref(&runtime, &s, expires).await.unwrap().as_deref(),
        Some("2030-12-31T20:00:00Z")
    );
    // A date that is not RFC 3339, or a managed-by tag of one's own, is refused.
    for bad in [
        json!({"expirationDate": "31/12/2030"}),
        json!({"tags": {"managed-by": "me"}}),
    ] {
        let e = provider_error(runtime.push_secret(&s, &push(meta(bad))).await.unwrap_err());
        assert!(matches!(&e, ProviderError::InvalidRequest(_)), "{e}");
    }
    assert_eq!(
        fake.secret_attributes("expiring").unwrap().0,
        Some(1_924_977_600)
    );
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/data/azurekv/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn push_bytes(key: &str, value: Vec<u8>, metadata: Option<Value>) -> PushRequest {
    PushRequest {
        remote: PushRef {
            remote_key: key.into(),
            property: None,
        },
        value: SecretValue::new(value),
        metadata,
    }
}

fn count(fake: &FakeAzure, method: &str, path: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

#[tokio::test]
async fn cert_pushes_import_pkcs12_or_pem_once_under_managed_by_and_refuse_foreign_certificates() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let der = fixture("push-cert.der");
    let tags = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                      "kind": "PushSecretMetadata", "spec": {"tags": {"env": "prod"}}});
    // A PKCS#12 (no password): imported as it is, its certificate is the vault's.
    runtime
        .push_secret(&s, &push_bytes("cert/tls", fixture("push.p12"), Some(tags)))
        .await
        .expect("push a PKCS#12");
    let (cer, tags) = fake.certificate("tls").expect("imported");
    assert_eq!(cer, der);
    assert_eq!(
        tags,
        BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("managed-by".to_string(), "external-secrets".to_string())
        ])
    );
    assert_eq!(count(&fake, "POST", "/certificates/tls/import"), 1);
    // The same certificate again (now as PEM): unchanged, not imported again.
    let mut pem = fixture("push-cert.pem");
    pem.extend(fixture("push-key.pem"));
    runtime
        .push_secret(&s, &push_bytes("cert/tls", pem.clone(), None))
        .await
        .expect("push again");
    assert_eq!(count(&fake, "POST", "/certificates/tls/import"), 1);
    // PEM into a new certificate.
    runtime
        .push_secret(&s, &push_bytes("cert/tls-pem", pem.clone(), None))
        .await
        .expect("push a PEM");
    assert_eq!(fake.certificate("tls-pem").unwrap().0, der);

    // Not a certificate: ESO's message, nothing sent.
    let e = provider_error(
        runtime
            .push_secret(&s, &push_bytes("cert/junk", b"hello".to_vec(), None))
            .await
            .unwrap_err(),
    );
    assert!(
        e.to_string()
            .contains("could not parse certificate value as PKCS#12, DER or PEM"),
        "{e}"
    );
    assert_eq!(count(&fake, "POST", "/certificates/junk/import"), 0);

    // A certificate ESO does not manage is refused, and survives delete.
    fake.set_certificate("foreign", &der);
    let e = provider_error(
        runtime
            .push_secret(&s, &push_bytes("cert/foreign", pem, None))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("certificate \"foreign\"") && m.contains("not managed by external-secrets")),
        "{e}"
    );
    let at = |key: &str| PushRef {
        remote_key: key.into(),
        property: None,
    };
    let e = provider_error(
        runtime
            .delete_secret(&s, &at("cert/foreign"))
            .await
            .unwrap_err(),
    );
    assert!(matches!(&e, ProviderError::AccessDenied(_)), "{e}");
    assert!(fake.certificate("foreign").is_some());

    // Exists and delete of a managed certificate; absent is deleted.
    assert!(runtime.secret_exists(&s, &at("cert/tls")).await.unwrap());
    runtime
        .delete_secret(&s, &at("cert/tls"))
        .await
        .expect("delete");
    assert!(fake.certificate("tls").is_none() && fake.is_deleted_object("certificates", "tls"));
    assert!(!runtime.secret_exists(&s, &at("cert/tls")).await.unwrap());
    runtime
        .delete_secret(&s, &at("cert/never"))
        .await
        .expect("absent is deleted");
}

#[tokio::test]
async fn key_pushes_import_the_private_key_as_a_jwk_and_delete_only_managed_keys() {
    let fake = seeded();
    let runtime = azure_runtime(&fake, "app-secret", &REAL_HOSTS).await;
    let s = sp_store();
    let rsa = fixture("push-key.pem");
    runtime
        .push_secret(&s, &push_bytes("key/signing", rsa.clone(), None))
        .await
        .expect("push an RSA key");
    let (jwk, tags) = fake.key("signing").expect("imported");
    assert_eq!(jwk["kty"], "RSA");
    assert!(jwk["n"].as_str().is_some_and(|n| n.len() > 300), "{jwk}");
    assert!(
        jwk.get("d").is_none(),
        "the vault keeps only the public key"
    );
    assert_eq!(
        tags.get("managed-by").map(String::as_str),
        Some("external-secrets")
    );
    // The fake accepted the import only because it carried the private key (d, p, q, …).
    assert_eq!(count(&fake, "PUT", "/keys/signing"), 1);
    // The same RSA key again: ESO's equalKeys (kty, n, e) says unchanged.
    runtime
        .push_secret(&s, &push_bytes("key/signing", rsa, None))
        .await
        .expect("push again");
    assert_eq!(count(&fake, "PUT", "/keys/signing"), 1);

    // An EC (SEC1) key: crv, x, y, d.
    runtime
        .push_secret(&s, &push_bytes("key/ec", fixture("push-ec.pem"), None))
        .await
        .expect("push an EC key");
    let (jwk, _) = fake.key("ec").expect("imported");
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");

    // Bytes that are not PEM are a symmetric key, which a vault refuses: Key Vault's error.
    let e = provider_error(
        runtime
            .push_secret(
                &s,
                &push_bytes("key/raw", b"0123456789abcdef".to_vec(), None),
            )
            .await
            .unwrap_err(),
    );
    assert!(e.to_string().contains("BadParameter"), "{e}");

    // A key ESO does not manage: push and delete refused.
    fake.set_key("foreign", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
    let e = provider_error(
        runtime
            .push_secret(
                &s,
                &push_bytes("key/foreign", fixture("push-key.pem"), None),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("key \"foreign\"")),
        "{e}"
    );
    let at = |key: &str| PushRef {
        remote_key: key.into(),
        property: None,
    };
    assert!(runtime.delete_secret(&s, &at("key/foreign")).await.is_err());
    assert!(fake.key("foreign").is_some());
    runtime
        .delete_secret(&s, &at("key/signing"))
        .await
        .expect("delete");
    assert!(fake.key("signing").is_none() && fake.is_deleted_object("keys", "signing"));
}
