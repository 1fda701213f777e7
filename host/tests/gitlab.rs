//! The GitLab provider (`gitlab.wasm`) in the real host against the in-repo fake GitLab
//! (`airlock_testenv::fakes::gitlab`, proven against python-gitlab in
//! tests/support/tests/gitlab_fake.rs): project and group variables, inherited groups,
//! environment scopes with the `*` fallback, `property`, extract, find with pagination,
//! and clear errors for a bad token, a missing key and a host outside the grant.

mod cluster;
mod common;

use std::collections::BTreeMap;

use airlock::backend::{
    Backend, BackendError, FindCriteria, MetadataPolicy, ProviderError, RemoteRef, SecretValue,
    StoreContext, Validation,
};
use airlock::runtime::{Grants, Limits, Runtime, StaticCredentials};
use airlock_testenv::fakes::gitlab::{FakeGitLab, Variable};
use serde_json::{Value, json};

use common::{get, get_ref, install, runtime_with, store};

const TOKEN: &str = "glpat-airlock-test";

/// A fake with group `acme` (3) > `acme/platform` (7) > project `acme/platform/app` (42).
fn seeded() -> FakeGitLab {
    let fake = FakeGitLab::start(TOKEN);
    fake.add_group(3, "acme", None)
        .add_group(7, "acme/platform", Some(3))
        .add_group(9, "other", None)
        .add_project(42, "acme/platform/app", Some(7))
        .set_group_variable(3, Variable::new("SHARED", "from-acme"))
        .set_group_variable(3, Variable::new("ROOT_ONLY", "root"))
        .set_group_variable(7, Variable::new("SHARED", "from-platform"))
        .set_group_variable(9, Variable::new("OTHER_ONLY", "other"))
        .set_project_variable(42, Variable::new("DB_PASSWORD", "dev-secret"))
        .set_project_variable(
            42,
            Variable::scoped("DB_PASSWORD", "prod-secret", "production"),
        )
        .set_project_variable(42, Variable::new("WILDCARD_ONLY", "everywhere"))
        .set_project_variable(
            42,
            Variable::new("API_CONFIG", r#"{"user":"svc","nested":{"port":5432}}"#),
        );
    fake
}

fn loopback_grants() -> Grants {
    Grants::parse(&["http://127.0.0.1:*".to_string()], &[], Limits::default()).expect("grants")
}

async fn gitlab_runtime(token: &str, grants: Grants) -> Runtime {
    let creds = StaticCredentials::default().with_secret(
        "team-a",
        "gitlab-token",
        "token",
        token.as_bytes(),
    );
    let runtime = runtime_with(creds);
    install(&runtime, "gitlab", airlock_test_artifacts::GITLAB, grants).await;
    runtime
}

fn gitlab_store(fake: &FakeGitLab, extra: Value) -> StoreContext {
    let mut config = json!({
        "url": fake.url(),
        "auth": {"SecretRef": {"accessToken": {"name": "gitlab-token", "key": "token"}}},
    });
    for (k, v) in extra.as_object().expect("an object") {
        config[k] = v.clone();
    }
    store("gitlab", "gitlab", config)
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
async fn project_variables_come_first_then_inherited_groups_the_closest_first() {
    let fake = seeded();
    let runtime = gitlab_runtime(TOKEN, loopback_grants()).await;
    let s = gitlab_store(
        &fake,
        json!({"projectID": "42", "inheritFromGroups": true, "environment": "production"}),
    );

    assert_eq!(
        runtime.validate(&s).await.expect("validates"),
        Validation::Ready
    );
    // The environment's own scope, and `*` when the environment has none.
    assert_eq!(
        get(&runtime, &s, "DB_PASSWORD").await.unwrap().as_deref(),
        Some("prod-secret")
    );
    assert_eq!(
        get(&runtime, &s, "WILDCARD_ONLY").await.unwrap().as_deref(),
        Some("everywhere")
    );
    // Not in the project: the closest ancestor group, then the top-level one.
    assert_eq!(
        get(&runtime, &s, "SHARED").await.unwrap().as_deref(),
        Some("from-platform")
    );
    assert_eq!(
        get(&runtime, &s, "ROOT_ONLY").await.unwrap().as_deref(),
        Some("root")
    );
    // A group that is not an ancestor is not read; absence is not an error.
    assert_eq!(get(&runtime, &s, "OTHER_ONLY").await.unwrap(), None);
    // ESO's `-` → `_` for Kubernetes-style names.
    assert_eq!(
        get(&runtime, &s, "DB-PASSWORD").await.unwrap().as_deref(),
        Some("prod-secret")
    );

    let sent = fake.requests();
    assert!(sent.iter().all(|r| r.authenticated), "{sent:?}");
    assert!(
        sent.iter()
            .any(|r| r.path == "/api/v4/projects/42/variables/DB_PASSWORD"
                && r.query
                    == [(
                        "filter[environment_scope]".to_string(),
                        "production".to_string()
                    )]),
        "{sent:?}"
    );
}

#[tokio::test]
async fn without_an_environment_a_key_with_several_scopes_asks_for_one() {
    let fake = seeded();
    let runtime = gitlab_runtime(TOKEN, loopback_grants()).await;
    let s = gitlab_store(&fake, json!({"projectID": "acme/platform/app"}));
    assert_eq!(
        get(&runtime, &s, "WILDCARD_ONLY").await.unwrap().as_deref(),
        Some("everywhere")
    );
    let e = provider_error(get(&runtime, &s, "DB_PASSWORD").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::InvalidConfig(m) if m.contains("409") && m.contains("set spec.provider.gitlab.environment")),
        "{e}"
    );
    // The namespaced path travels URL-encoded, as GitLab requires.
    assert!(fake.requests().iter().any(|r| {
        r.path
            .starts_with("/api/v4/projects/acme%2Fplatform%2Fapp/")
    }));
}

#[tokio::test]
async fn properties_and_extract_read_json_values_and_group_ids_go_last_first() {
    let fake = seeded();
    let runtime = gitlab_runtime(TOKEN, loopback_grants()).await;
    let s = gitlab_store(&fake, json!({"projectID": "42", "environment": "*"}));
    let user = RemoteRef::key("API_CONFIG").property("user");
    assert_eq!(
        get_ref(&runtime, &s, user).await.unwrap().as_deref(),
        Some("svc")
    );
    let port = RemoteRef::key("API_CONFIG").property("nested.port");
    assert_eq!(
        get_ref(&runtime, &s, port).await.unwrap().as_deref(),
        Some("5432")
    );
    let missing = RemoteRef::key("API_CONFIG").property("nope");
    assert_eq!(get_ref(&runtime, &s, missing).await.unwrap(), None);
    let map = runtime
        .get_secret_map(&s, &RemoteRef::key("API_CONFIG"))
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(
        text_map(map),
        BTreeMap::from([
            ("nested".to_string(), r#"{"port":5432}"#.to_string()),
            ("user".to_string(), "svc".to_string()),
        ])
    );

    // groupIDs only: the last listed group wins.
    let groups = gitlab_store(&fake, json!({"groupIDs": ["7", "3"]}));
    assert_eq!(
        get(&runtime, &groups, "SHARED").await.unwrap().as_deref(),
        Some("from-acme")
    );
    let fetch = RemoteRef {
        metadata_policy: MetadataPolicy::Fetch,
        ..RemoteRef::key("SHARED")
    };
    let e = provider_error(get_ref(&runtime, &groups, fetch).await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::Unsupported(m) if m.contains("metadataPolicy")),
        "{e}"
    );
}

#[tokio::test]
async fn find_filters_by_name_and_environment_scope_over_every_page() {
    let fake = seeded();
    for i in 0..250 {
        fake.set_project_variable(42, Variable::new(&format!("BULK_{i:03}"), &i.to_string()));
    }
    fake.set_project_variable(42, Variable::scoped("STAGING_ONLY", "s", "staging"));
    let runtime = gitlab_runtime(TOKEN, loopback_grants()).await;
    let s = gitlab_store(&fake, json!({"projectID": "42", "inheritFromGroups": true}));

    let bulk = text_map(
        runtime
            .get_all_secrets(&s, &find(Some("^BULK_"), &[]))
            .await
            .unwrap(),
    );
    assert_eq!(bulk.len(), 250);
    assert_eq!(bulk["BULK_249"], "249");
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v4/projects/42/variables")
        .count();
    assert_eq!(pages, 3, "250 project variables are 3 pages of 100");

    // The environment from find.tags: its own scope beats `*`, other scopes are left out;
    // project variables override the groups', the closest group overrides the top one.
    let production = text_map(
        runtime
            .get_all_secrets(
                &s,
                &find(
                    Some("^(DB_|SHARED|ROOT|STAGING|WILDCARD)"),
                    &[("environment_scope", "production")],
                ),
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        production,
        BTreeMap::from([
            ("DB_PASSWORD".to_string(), "prod-secret".to_string()),
            ("ROOT_ONLY".to_string(), "root".to_string()),
            ("SHARED".to_string(), "from-platform".to_string()),
            ("WILDCARD_ONLY".to_string(), "everywhere".to_string()),
        ])
    );

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
        matches!(&e, ProviderError::Unsupported(m) if m.contains("find.path is not supported")),
        "{e}"
    );
    let e = provider_error(
        runtime
            .get_all_secrets(&s, &find(None, &[("team", "a")]))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::InvalidRequest(m) if m.contains("only on environment_scope")),
        "{e}"
    );
    let scoped = gitlab_store(&fake, json!({"projectID": "42", "environment": "staging"}));
    let e = provider_error(
        runtime
            .get_all_secrets(&scoped, &find(None, &[("environment_scope", "production")]))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::InvalidRequest(m) if m.contains("contradicts")),
        "{e}"
    );
}

#[tokio::test]
async fn a_bad_token_is_access_denied_and_a_missing_project_says_so() {
    let fake = seeded();
    let runtime = gitlab_runtime("glpat-wrong", loopback_grants()).await;
    let s = gitlab_store(&fake, json!({"projectID": "42"}));
    let e = provider_error(get(&runtime, &s, "WILDCARD_ONLY").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("gitlab answered 401") && m.contains("401 Unauthorized")),
        "{e}"
    );
    assert!(!e.to_string().contains("glpat-wrong"), "{e}");
    let e = provider_error(runtime.validate(&s).await.unwrap_err());
    assert!(matches!(&e, ProviderError::AccessDenied(_)), "{e}");

    let good = gitlab_runtime(TOKEN, loopback_grants()).await;
    let nowhere = gitlab_store(&fake, json!({"projectID": "404"}));
    let e = provider_error(get(&good, &nowhere, "X").await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("404 Project Not Found") && m.contains("cannot see it")),
        "{e}"
    );
}

#[tokio::test]
async fn a_host_outside_the_grant_is_refused_naming_the_host_to_grant() {
    let fake = seeded();
    let only_gitlab_com =
        Grants::parse(&["https://gitlab.com".to_string()], &[], Limits::default()).expect("grants");
    let runtime = gitlab_runtime(TOKEN, only_gitlab_com).await;
    let s = gitlab_store(&fake, json!({"projectID": "42"}));
    let e = get(&runtime, &s, "WILDCARD_ONLY").await.unwrap_err();
    let port = fake.url().rsplit(':').next().unwrap().to_string();
    assert!(
        e.to_string().contains(&format!(
            "add http://127.0.0.1:{port} to spec.allowedOutboundHosts of the Provider \"gitlab\""
        )),
        "{e}"
    );
    assert!(fake.requests().is_empty(), "nothing reached the fake");
}

#[tokio::test]
async fn a_gitlab_store_syncs_a_secret_on_the_control_plane_and_a_bad_token_keeps_its_data() {
    use airlock::controller::{self, Config};
    use airlock::crd::{ExternalSecret, Provider, SecretStore};
    use k8s_openapi::api::core::v1::Secret;
    use kube::Api;

    let fake = seeded();
    let cp = airlock_testenv::ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let ns = cp.new_namespace("gitlab").await.expect("namespace");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let token_secret = |token: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitlab-token"},
               "stringData": {"token": token}})
    };
    cluster::apply(&secrets, token_secret(TOKEN)).await;

    let providers = tempfile::tempdir().unwrap();
    std::fs::copy(
        airlock_test_artifacts::GITLAB,
        providers.path().join("airlock_provider_gitlab.wasm"),
    )
    .unwrap();
    let runtime = cluster::kube_runtime(&client, Some(common::cache_dir()));
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    let provider_api: Api<Provider> = Api::all(client.clone());
    cluster::apply(
        &provider_api,
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "gitlab"},
               "spec": {"module": {"path": "airlock_provider_gitlab.wasm"},
                        "allowedOutboundHosts": [fake.url()]}}),
    )
    .await;
    cluster::eventually("the gitlab provider loaded", || async {
        runtime.provider("gitlab").map(|_| ())
    })
    .await;

    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    cluster::apply(
        &stores,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "gitlab"},
               "spec": {"provider": {"gitlab": {
                   "url": fake.url(), "projectID": "42", "inheritFromGroups": true,
                   "environment": "production",
                   "auth": {"SecretRef": {"accessToken": {"name": "gitlab-token", "key": "token"}}}}}}}),
    )
    .await;
    let external_secrets: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    cluster::apply(
        &external_secrets,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "app"},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRef": {"name": "gitlab", "kind": "SecretStore"},
                        "target": {"name": "app"},
                        "data": [
                            {"secretKey": "password", "remoteRef": {"key": "DB_PASSWORD"}},
                            {"secretKey": "user", "remoteRef": {"key": "API_CONFIG", "property": "user"}},
                            {"secretKey": "shared", "remoteRef": {"key": "SHARED"}}]}}),
    )
    .await;
    cluster::ready_message(&stores, "gitlab", "True", "").await;
    cluster::ready_message(&external_secrets, "app", "True", "").await;
    let expected = cluster::string_map(&[
        ("password", "prod-secret"),
        ("shared", "from-platform"),
        ("user", "svc"),
    ]);
    assert_eq!(
        cluster::secret_text(&secrets, "app").await,
        Some(expected.clone())
    );

    // A revoked token: Ready=False saying so, and the synced data stays.
    cluster::apply(&secrets, token_secret("glpat-revoked")).await;
    // ESO's fixed Ready message; GitLab's answer is in the Warning event, as ESO does it.
    cluster::ready_message(
        &external_secrets,
        "app",
        "False",
        "could not get secret data from provider",
    )
    .await;
    let message = cluster::failure_event(&client, &ns, "app", "401 Unauthorized").await;
    assert!(!message.contains("glpat-revoked"), "{message}");
    assert_eq!(
        cluster::secret_text(&secrets, "app").await,
        Some(expected.clone())
    );

    // The token restored, then a variable the project does not have, then a store on an
    // instance outside the grant: each Ready=False with the cause in the event, data kept.
    cluster::apply(&secrets, token_secret(TOKEN)).await;
    cluster::apply(
        &stores,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "gitlab-elsewhere"},
               "spec": {"provider": {"gitlab": {
                   "url": "https://gitlab.com", "projectID": "42",
                   "auth": {"SecretRef": {"accessToken": {"name": "gitlab-token", "key": "token"}}}}}}}),
    )
    .await;
    for (store, key, needle) in [
        (
            "gitlab",
            "NO_SUCH_VARIABLE",
            "secret does not exist at provider",
        ),
        ("gitlab-elsewhere", "DB_PASSWORD", "allowedOutboundHosts"),
    ] {
        cluster::apply(
            &external_secrets,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": "app"},
                   "spec": {"refreshInterval": "1s",
                            "secretStoreRef": {"name": store, "kind": "SecretStore"},
                            "target": {"name": "app"},
                            "data": [{"secretKey": "password", "remoteRef": {"key": key}}]}}),
        )
        .await;
        cluster::failure_event(&client, &ns, "app", needle).await;
        cluster::ready_message(
            &external_secrets,
            "app",
            "False",
            "could not get secret data from provider",
        )
        .await;
        assert_eq!(
            cluster::secret_text(&secrets, "app").await,
            Some(expected.clone()),
            "after {store} / {key}"
        );
    }
}
