//! The operator against a real kube-apiserver: each test runs the controllers in-process,
//! scoped to a namespace of its own, with the real `fake.wasm` loaded through a `Provider`.

mod cluster;

use cluster::{
    TIMEOUT, apply, apply_fake_provider, eventually, failure_event, install_crds, secret_text,
    string_map, text_data, warning_event,
};

use std::collections::BTreeMap;
use std::time::Duration;

use airlock::controller::{self, Config};
use airlock::crd::{self, ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// One test's world: a namespace, a client and a running operator.
struct Env {
    client: Client,
    ns: String,
    _providers: tempfile::TempDir,
}

fn cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("airlock-operator-cache-{}", std::process::id()))
}

/// CRDs, a namespace, the `fake` Provider loaded, and the operator running.
async fn start(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace(prefix).await.expect("namespace");
    operate(client, ns).await
}

/// The `fake` Provider loaded and the operator running in the namespace `ns`.
async fn operate(client: Client, ns: String) -> Env {
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::FAKE,
        providers.path().join("fake.wasm"),
    )
    .expect("copy fake.wasm");
    let runtime = cluster::kube_runtime(&client, Some(cache_dir()));
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    apply_fake_provider(&client).await;
    // This test's operator has loaded the module (other tests' operators may have set the
    // status already).
    eventually("the fake provider loaded in this operator", || async {
        runtime.provider("fake").map(|_| ())
    })
    .await;
    Env {
        client,
        ns,
        _providers: providers,
    }
}

fn fake_data() -> Value {
    json!([
        {"key": "production/database", "value": "{\"username\":\"admin\",\"password\":\"s3cr3t\"}"},
        {"key": "production/api-keys", "value": "{\"api-key\":\"abc123\"}"},
        {"key": "staging/database", "value": "stage"}
    ])
}

impl Env {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn store(&self, name: &str, fake: Value) {
        apply(
            &self.api::<SecretStore>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": name, "namespace": self.ns},
                   "spec": {"provider": {"fake": fake}}}),
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

    /// The ExternalSecret's Ready condition once it has the wanted status.
    async fn ready(
        &self,
        name: &str,
        status: &str,
        reason: &str,
    ) -> (ExternalSecret, crd::Condition) {
        self.ready_within(cluster::TIMEOUT, name, status, reason)
            .await
    }

    /// [`Env::ready`] with a timeout of its own: an operator started as a process first
    /// compiles its providers (and the tera component) in a debug build.
    async fn ready_within(
        &self,
        timeout: Duration,
        name: &str,
        status: &str,
        reason: &str,
    ) -> (ExternalSecret, crd::Condition) {
        let api = self.api::<ExternalSecret>();
        cluster::eventually_within(
            timeout,
            &format!("ExternalSecret {name} Ready={status} {reason}"),
            || async {
                let es = api.get(name).await.ok()?;
                let c = es
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == "Ready")?
                    .clone();
                (format!("{:?}", c.status) == status && c.reason.as_deref() == Some(reason))
                    .then_some((es, c))
            },
        )
        .await
    }

    async fn secret_data(&self, name: &str) -> Option<BTreeMap<String, String>> {
        secret_text(&self.api(), name).await
    }

    /// Waits for the ExternalSecret to fail with ESO's fixed condition `message`, and
    /// returns the note of the Warning event mentioning `needle` (the detail).
    async fn failure(&self, name: &str, message: &str, needle: &str) -> String {
        let (_, ready) = self.ready(name, "False", "SecretSyncedError").await;
        assert_eq!(ready.message.as_deref(), Some(message));
        failure_event(&self.client, &self.ns, name, needle).await
    }
}

/// The seed's ExternalSecret spec, reading from `store` into `database-credentials`.
fn seed_es(store: &str) -> Value {
    cluster::seed_external_secret(store, "database-credentials")
}

#[tokio::test]
async fn an_external_secret_syncs_into_an_owned_managed_secret() {
    let env = start("es-sync").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret("database", seed_es("fake-store")).await;

    let (es, ready) = env.ready("database", "True", "SecretSynced").await;
    assert_eq!(ready.message.as_deref(), Some("secret synced"));
    let status = es.status.as_ref().unwrap();
    assert!(status.refresh_time.is_some(), "{status:?}");
    assert_eq!(
        status.binding.as_ref().map(|b| b.name.as_str()),
        Some("database-credentials")
    );
    assert!(
        status
            .synced_resource_version
            .as_deref()
            .is_some_and(|v| v.starts_with("1-")),
        "{status:?}"
    );

    let secret = env
        .api::<Secret>()
        .get("database-credentials")
        .await
        .expect("the target Secret exists");
    assert_eq!(
        text_data(&secret),
        string_map(&[("username", "admin"), ("password", "s3cr3t")])
    );
    assert_managed(&secret);
    let owners = secret.owner_references();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "ExternalSecret");
    assert_eq!(owners[0].name, "database");
    assert_eq!(Some(&owners[0].uid), es.metadata.uid.as_ref());
    assert_eq!(owners[0].controller, Some(true));

    let provider: Api<Provider> = Api::all(env.client.clone());
    let p = eventually("Provider fake Ready", || async {
        let p = provider.get("fake").await.ok()?;
        let s = p.status.clone()?;
        s.conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == crd::ConditionStatus::True)
            .then_some(p)
    })
    .await;
    let ps = p.status.unwrap();
    assert!(
        ps.digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71),
        "{ps:?}"
    );
    assert_eq!(ps.world.as_deref(), Some("airlock:provider/provider@0.1.0"));

    let stores = env.api::<SecretStore>();
    let store = eventually("SecretStore Ready Valid", || async {
        let s = stores.get("fake-store").await.ok()?;
        let st = s.status.clone()?;
        st.conditions
            .as_ref()?
            .iter()
            .any(|c| {
                c.type_ == "Ready"
                    && c.status == crd::ConditionStatus::True
                    && c.reason.as_deref() == Some("Valid")
            })
            .then_some(st)
    })
    .await;
    assert_eq!(
        store.capabilities,
        Some(crd::common::Capabilities::ReadWrite)
    );
}

#[tokio::test]
async fn data_from_extract_and_find_produce_the_expected_keys() {
    let env = start("es-datafrom").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret(
        "all",
        json!({
            "secretStoreRef": {"name": "fake-store"},
            "target": {"name": "all"},
            "dataFrom": [
                {"extract": {"key": "production/database"}},
                {"find": {"name": {"regexp": "^production/"}},
                 "rewrite": [{"regexp": {"source": "^production/", "target": "found-"}}]},
                {"find": {"path": "staging/"}}
            ]
        }),
    )
    .await;
    env.ready("all", "True", "SecretSynced").await;
    let data = env.secret_data("all").await.expect("Secret all");
    assert_eq!(
        data,
        string_map(&[
            ("username", "admin"),
            ("password", "s3cr3t"),
            (
                "found-database",
                "{\"username\":\"admin\",\"password\":\"s3cr3t\"}"
            ),
            ("found-api-keys", "{\"api-key\":\"abc123\"}"),
            ("staging_database", "stage"),
        ])
    );
}

#[tokio::test]
async fn a_provider_failure_keeps_the_existing_secret_data() {
    let env = start("es-failure").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret("database", seed_es("fake-store")).await;
    env.ready("database", "True", "SecretSynced").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);
    assert_eq!(
        env.secret_data("database-credentials").await,
        Some(synced.clone())
    );

    // The key disappears at the provider; force a refresh.
    env.store(
        "fake-store",
        json!({"data": [{"key": "other", "value": "x"}]}),
    )
    .await;
    let es_api = env.api::<ExternalSecret>();
    let force =
        |v: &str| json!({"metadata": {"annotations": {"external-secrets.io/force-sync": v}}});
    es_api
        .patch(
            "database",
            &PatchParams::default(),
            &Patch::Merge(&force("1")),
        )
        .await
        .expect("annotate");
    let detail = env
        .failure(
            "database",
            "could not get secret data from provider",
            "does not exist at provider",
        )
        .await;
    assert!(detail.contains("production/database"), "{detail}");
    assert_eq!(
        env.secret_data("database-credentials").await,
        Some(synced.clone())
    );

    // An invalid store configuration fails the same way, with the backend's reason.
    env.store("fake-store", json!({"data": "not-a-list"})).await;
    es_api
        .patch(
            "database",
            &PatchParams::default(),
            &Patch::Merge(&force("2")),
        )
        .await
        .expect("annotate");
    env.failure(
        "database",
        "could not get secret data from provider",
        "InvalidProviderConfig",
    )
    .await;
    assert_eq!(env.secret_data("database-credentials").await, Some(synced));

    // Events tell the story without ever carrying a value.
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let seen = eventually("Created and UpdateFailed events", || async {
        let list = events.list(&Default::default()).await.ok()?;
        let about_es: Vec<_> = list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("database"))
            .collect();
        let has = |reason: &str, type_: &str| {
            about_es
                .iter()
                .any(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_))
        };
        (has("Created", "Normal") && has("UpdateFailed", "Warning")).then_some(about_es)
    })
    .await;
    for e in &seen {
        let note = e.note.clone().unwrap_or_default();
        assert!(!note.contains("s3cr3t"), "an event leaks a value: {note}");
    }

    let stores = env.api::<SecretStore>();
    eventually("SecretStore Ready=False InvalidProviderConfig", || async {
        let s = stores.get("fake-store").await.ok()?;
        s.status?
            .conditions?
            .iter()
            .any(|c| {
                c.type_ == "Ready"
                    && c.status == crd::ConditionStatus::False
                    && c.reason.as_deref() == Some("InvalidProviderConfig")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_store_sets_ready_false_naming_the_store() {
    let env = start("es-nostore").await;
    env.external_secret("database", seed_es("no-such-store"))
        .await;
    let detail = env
        .failure(
            "database",
            "could not get secret data from provider",
            "\"no-such-store\"",
        )
        .await;
    assert!(detail.contains("SecretStore"), "{detail}");
    assert_eq!(env.secret_data("database-credentials").await, None);
}

#[tokio::test]
async fn creation_policies_merge_none_and_orphan_write_as_eso_does() {
    let env = start("es-policies").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let with_policy = |target: &str, policy: &str| {
        let mut spec = seed_es("fake-store");
        spec["target"] = json!({"name": target, "creationPolicy": policy});
        spec
    };

    // Merge: nothing is created while the Secret is absent.
    env.external_secret("merge", with_policy("merged", "Merge"))
        .await;
    let (_, ready) = env.ready("merge", "True", "SecretMissing").await;
    assert_eq!(
        ready.message.as_deref(),
        Some("secret will not be created due to CreationPolicy=Merge")
    );
    assert_eq!(env.secret_data("merged").await, None);
    // Once someone creates it, the managed keys are merged in and foreign keys stay.
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "merged", "namespace": env.ns},
               "stringData": {"keep": "me"}}),
    )
    .await;
    env.api::<ExternalSecret>()
        .patch(
            "merge",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"external-secrets.io/force-sync": "1"}}}),
            ),
        )
        .await
        .expect("annotate");
    env.ready("merge", "True", "SecretSynced").await;
    assert_eq!(
        env.secret_data("merged").await,
        Some(string_map(&[
            ("keep", "me"),
            ("username", "admin"),
            ("password", "s3cr3t")
        ]))
    );
    let merged = env.api::<Secret>().get("merged").await.unwrap();
    assert!(merged.owner_references().is_empty());

    // None: synced, nothing written.
    env.external_secret("none", with_policy("not-written", "None"))
        .await;
    env.ready("none", "True", "SecretSynced").await;
    assert_eq!(env.secret_data("not-written").await, None);

    // Orphan: written without an owner reference.
    env.external_secret("orphan", with_policy("orphaned", "Orphan"))
        .await;
    env.ready("orphan", "True", "SecretSynced").await;
    let orphan = env.api::<Secret>().get("orphaned").await.unwrap();
    assert!(orphan.owner_references().is_empty());
    assert_eq!(
        text_data(&orphan),
        string_map(&[("username", "admin"), ("password", "s3cr3t")])
    );
}

#[tokio::test]
async fn an_edited_or_deleted_secret_is_repaired() {
    let env = start("es-drift").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret("database", seed_es("fake-store")).await;
    env.ready("database", "True", "SecretSynced").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);
    let secrets = env.api::<Secret>();

    secrets
        .patch(
            "database-credentials",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"password": "tampered", "extra": "x"}})),
        )
        .await
        .expect("edit");
    eventually("the edited Secret repaired", || async {
        (env.secret_data("database-credentials").await? == synced).then_some(())
    })
    .await;

    secrets
        .delete("database-credentials", &Default::default())
        .await
        .expect("delete");
    eventually("the deleted Secret recreated", || async {
        (env.secret_data("database-credentials").await? == synced).then_some(())
    })
    .await;
}

#[tokio::test]
async fn provider_module_errors_are_reported_on_the_provider_status() {
    let env = start("provider-errors").await;
    let api: Api<Provider> = Api::all(env.client.clone());
    let missing = format!("{}-missing", env.ns);
    let oci = format!("{}-oci", env.ns);
    apply(
        &api,
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": missing}, "spec": {"module": {"path": "nope/missing.wasm"}}}),
    )
    .await;
    apply(
        &api,
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": oci}, "spec": {"module": {"oci": format!(
                   "127.0.0.1:1/airlock/vault:1.0@sha256:{}", "0".repeat(64))}}}),
    )
    .await;
    for (name, reason) in [(&missing, "ModuleNotFound"), (&oci, "RegistryUnreachable")] {
        let c = eventually(&format!("Provider {name} Ready=False {reason}"), || async {
            let p = api.get(name).await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == crd::ConditionStatus::False)
                .filter(|c| c.reason.as_deref() == Some(reason))
        })
        .await;
        assert!(c.message.is_some_and(|m| !m.is_empty()));
    }
    // Deleting a Provider unloads its module.
    api.delete(&missing, &Default::default())
        .await
        .expect("delete");
    api.delete(&oci, &Default::default()).await.expect("delete");
}

#[tokio::test]
async fn a_cluster_store_refuses_namespaces_its_conditions_exclude() {
    let env = start("css").await;
    let api: Api<crd::ClusterSecretStore> = Api::all(env.client.clone());
    let allowed = format!("{}-allowed", env.ns);
    let denied = format!("{}-denied", env.ns);
    for (name, namespaces) in [(&allowed, json!([env.ns])), (&denied, json!(["elsewhere"]))] {
        apply(
            &api,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
                   "metadata": {"name": name},
                   "spec": {"provider": {"fake": {"data": fake_data()}},
                            "conditions": [{"namespaces": namespaces}]}}),
        )
        .await;
    }
    let mut spec = seed_es(&allowed);
    spec["secretStoreRef"]["kind"] = json!("ClusterSecretStore");
    env.external_secret("allowed", spec.clone()).await;
    spec["secretStoreRef"]["name"] = json!(denied);
    spec["target"]["name"] = json!("denied");
    env.external_secret("denied", spec).await;

    env.ready("allowed", "True", "SecretSynced").await;
    assert_eq!(
        env.secret_data("database-credentials").await,
        Some(string_map(&[("username", "admin"), ("password", "s3cr3t")]))
    );
    env.failure(
        "denied",
        "could not get secret data from provider",
        "not allowed from namespace",
    )
    .await;
    assert_eq!(env.secret_data("denied").await, None);
    for name in [&allowed, &denied] {
        api.delete(name, &Default::default()).await.expect("delete");
    }
}

#[tokio::test]
async fn the_airlock_run_command_syncs_an_external_secret() {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("cli-run").await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::FAKE,
        providers.path().join("fake.wasm"),
    )
    .expect("copy fake.wasm");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["run", "--log-format", "json", "--namespace", &ns])
        .args([
            "--enable-leader-election",
            "--leader-election-namespace",
            &ns,
        ])
        .arg("--providers-dir")
        .arg(providers.path())
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("AIRLOCK_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("airlock run starts");
    let env = Env {
        client: client.clone(),
        ns,
        _providers: providers,
    };
    apply_fake_provider(&client).await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret("database", seed_es("fake-store")).await;
    // The process's first sync waits on its start (leader election, compiling fake.wasm),
    // which on a loaded 2-core machine has taken more than the usual 30 s.
    env.ready_within(Duration::from_secs(120), "database", "True", "SecretSynced")
        .await;
    assert_eq!(
        env.secret_data("database-credentials").await,
        Some(string_map(&[("username", "admin"), ("password", "s3cr3t")]))
    );
    assert!(
        child.try_wait().expect("status").is_none(),
        "airlock run exited"
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = env.api();
    let lease = leases
        .get("airlock-controller")
        .await
        .expect("the leader lease");
    assert!(lease.spec.and_then(|s| s.holder_identity).is_some());
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn a_short_refresh_interval_picks_up_provider_changes() {
    let env = start("es-refresh").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let mut spec = seed_es("fake-store");
    spec["refreshInterval"] = json!("1s");
    env.external_secret("database", spec).await;
    env.ready("database", "True", "SecretSynced").await;
    env.store("fake-store", json!({"data": rotated()})).await;
    env.wait_for_rotated().await;
}

#[tokio::test]
async fn deletion_policy_delete_removes_the_secret_when_the_provider_has_nothing() {
    let env = start("es-delete").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let mut spec = seed_es("fake-store");
    spec["target"]["deletionPolicy"] = json!("Delete");
    env.external_secret("database", spec).await;
    env.ready("database", "True", "SecretSynced").await;
    assert!(env.secret_data("database-credentials").await.is_some());
    env.store("fake-store", json!({"data": []})).await;
    env.api::<ExternalSecret>()
        .patch(
            "database",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"external-secrets.io/force-sync": "1"}}}),
            ),
        )
        .await
        .expect("annotate");
    let (_, ready) = env.ready("database", "True", "SecretDeleted").await;
    assert_eq!(
        ready.message.as_deref(),
        Some("secret deleted due to DeletionPolicy=Delete")
    );
    eventually("the Secret deleted", || async {
        env.secret_data("database-credentials")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

/// The seed's "Secret Templates" ExternalSecret, unchanged but for the API version.
fn seed_templated_es() -> Value {
    json!({
        "secretStoreRef": {"name": "vault-backend", "kind": "SecretStore"},
        "target": {
            "name": "database-url",
            "template": {
                "type": "Opaque",
                "data": {
                    "DATABASE_URL": "postgresql://{{ .username }}:{{ .password }}@db.example.com:5432/mydb"
                }
            }
        },
        "data": [
            {"secretKey": "username", "remoteRef": {"key": "secret/data/database", "property": "username"}},
            {"secretKey": "password", "remoteRef": {"key": "secret/data/database", "property": "password"}}
        ]
    })
}

fn seed_template_store_data() -> Value {
    json!({"data": [
        {"key": "secret/data/database", "value": "{\"username\":\"admin\",\"password\":\"s3cr3t\"}"}
    ]})
}

#[tokio::test]
async fn the_seeds_templated_external_secret_yields_database_url_exactly() {
    let env = start("es-template").await;
    env.store("vault-backend", seed_template_store_data()).await;
    env.external_secret("templated-secret", seed_templated_es())
        .await;
    env.ready("templated-secret", "True", "SecretSynced").await;
    assert_eq!(
        env.secret_data("database-url").await,
        Some(string_map(&[(
            "DATABASE_URL",
            "postgresql://admin:s3cr3t@db.example.com:5432/mydb"
        )]))
    );
    let secret = env.api::<Secret>().get("database-url").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn a_template_error_names_the_key_and_position_and_keeps_the_previous_secret() {
    let env = start("es-template-error").await;
    env.store("vault-backend", seed_template_store_data()).await;
    env.external_secret("templated-secret", seed_templated_es())
        .await;
    env.ready("templated-secret", "True", "SecretSynced").await;
    let before = env.secret_data("database-url").await;
    assert!(before.is_some());

    let mut spec = seed_templated_es();
    spec["target"]["template"]["data"] = json!({
        "DATABASE_URL": "postgresql://{{ .usernam }}:{{ .password }}@db",
        "EXTRA": "{{ .password | b64enc }}"
    });
    env.external_secret("templated-secret", spec).await;
    let message = env
        .failure(
            "templated-secret",
            "could not update secret",
            r#"template "DATABASE_URL": line 1, column 17: map has no entry for key "usernam""#,
        )
        .await;
    assert!(message.contains("TemplateRenderError"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
    // Nothing was written: not the EXTRA key, not a half-rendered URL.
    assert_eq!(env.secret_data("database-url").await, before);
}

#[tokio::test]
async fn template_from_a_config_map_fills_data_labels_and_annotations() {
    let env = start("es-template-from").await;
    env.store("vault-backend", seed_template_store_data()).await;
    apply(
        &env.api::<k8s_openapi::api::core::v1::ConfigMap>(),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "db-templates", "namespace": env.ns},
        "data": {
            "config.yaml": "user: {{ .username }}",
            "pairs": "DB_USER: \"{{ .username | upper }}\"\nDB_HOST: db.example.com"
        }}),
    )
    .await;
    let mut spec = seed_templated_es();
    spec["target"]["template"] = json!({
        "metadata": {"labels": {"owner": "{{ .username }}"}},
        "templateFrom": [
            {"configMap": {"name": "db-templates", "items": [
                {"key": "config.yaml"},
                {"key": "pairs", "templateAs": "KeysAndValues"}
            ]}},
            {"literal": "rotated-by: \"{{ .username }}\"", "target": "Annotations"}
        ]
    });
    env.external_secret("templated-secret", spec).await;
    env.ready("templated-secret", "True", "SecretSynced").await;
    assert_eq!(
        env.secret_data("database-url").await,
        Some(string_map(&[
            ("DB_HOST", "db.example.com"),
            ("DB_USER", "ADMIN"),
            ("config.yaml", "user: admin"),
        ]))
    );
    let secret = env.api::<Secret>().get("database-url").await.unwrap();
    assert_eq!(
        secret.labels().get("owner").map(String::as_str),
        Some("admin")
    );
    assert_eq!(
        secret.annotations().get("rotated-by").map(String::as_str),
        Some("admin")
    );
}

#[tokio::test]
async fn renaming_the_target_deletes_the_old_secret_and_template_metadata_is_copied() {
    let env = start("es-rename").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let mut spec = seed_es("fake-store");
    spec["target"]["template"] = json!({
        "type": "kubernetes.io/basic-auth",
        "metadata": {"labels": {"team": "a"}, "annotations": {"owner": "db-team"}}
    });
    env.external_secret("database", spec.clone()).await;
    env.ready("database", "True", "SecretSynced").await;
    let secret = env
        .api::<Secret>()
        .get("database-credentials")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(secret.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(
        secret.annotations().get("owner").map(String::as_str),
        Some("db-team")
    );

    spec["target"]["name"] = json!("renamed");
    env.external_secret("database", spec).await;
    eventually(
        "the renamed Secret written and the old one deleted",
        || async {
            let new = env.secret_data("renamed").await?;
            let old_gone = env.secret_data("database-credentials").await.is_none();
            (old_gone && new == string_map(&[("username", "admin"), ("password", "s3cr3t")]))
                .then_some(())
        },
    )
    .await;
    // ESO's event for the deleted orphan.
    cluster::event(
        &env.client,
        &env.ns,
        "ExternalSecret",
        "database",
        ("Normal", "Deleted"),
        "secret deleted because it was orphaned",
    )
    .await;
}

#[tokio::test]
async fn stores_of_another_controller_class_are_left_alone() {
    let env = start("es-class").await;
    apply(
        &env.api::<SecretStore>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "other-class", "namespace": env.ns},
               "spec": {"controller": "shard-b", "provider": {"fake": {"data": fake_data()}}}}),
    )
    .await;
    env.external_secret("database", seed_es("other-class"))
        .await;
    // A store of this operator's class in the same namespace syncs meanwhile.
    env.store("fake-store", json!({"data": fake_data()})).await;
    let mut spec = seed_es("fake-store");
    spec["target"]["name"] = json!("mine");
    env.external_secret("mine", spec).await;
    env.ready("mine", "True", "SecretSynced").await;
    let es = env.api::<ExternalSecret>().get("database").await.unwrap();
    assert!(es.status.is_none(), "{:?}", es.status);
    let store = env.api::<SecretStore>().get("other-class").await.unwrap();
    assert!(store.status.is_none(), "{:?}", store.status);
    assert_eq!(env.secret_data("database-credentials").await, None);
}

#[tokio::test]
async fn a_secret_owned_by_another_external_secret_is_not_taken_over() {
    let env = start("es-owned").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret("first", seed_es("fake-store")).await;
    env.ready("first", "True", "SecretSynced").await;
    // A second ExternalSecret with the same target must not steal or change it.
    let mut spec = seed_es("fake-store");
    spec["data"] = json!([{"secretKey": "other", "remoteRef": {"key": "staging/database"}}]);
    env.external_secret("second", spec).await;
    env.failure(
        "second",
        "target is owned by another ExternalSecret",
        "owned by another ExternalSecret (first)",
    )
    .await;
    assert_eq!(
        env.secret_data("database-credentials").await,
        Some(string_map(&[("username", "admin"), ("password", "s3cr3t")]))
    );
}

#[tokio::test]
async fn only_one_replica_leads_and_another_takes_over_an_expired_lease() {
    use airlock::controller::leader::LeaderElection;
    use k8s_openapi::api::coordination::v1::Lease;
    let cp = ControlPlane::shared();
    let client = cp.client();
    let ns = cp.new_namespace("leader").await.expect("namespace");
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let elector = |id: &str| LeaderElection {
        lease_duration: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
        ..LeaderElection::new(&ns, "airlock-controller", id)
    };
    let (a, b) = (elector("replica-a"), elector("replica-b"));
    assert!(a.try_acquire_or_renew(&api).await.unwrap());
    assert!(
        !b.try_acquire_or_renew(&api).await.unwrap(),
        "the lease is held"
    );
    assert!(
        a.try_acquire_or_renew(&api).await.unwrap(),
        "the holder renews"
    );

    // b runs its work only once a stops renewing and the lease expires.
    let started = tokio::time::Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let bc = client.clone();
    tokio::spawn(async move {
        let _ = b
            .run(bc, async move {
                let _ = tx.send(());
                std::future::pending::<()>().await
            })
            .await;
    });
    tokio::time::timeout(TIMEOUT, rx)
        .await
        .expect("b leads")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let lease = api.get("airlock-controller").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(
        !a.try_acquire_or_renew(&api).await.unwrap(),
        "a lost the lease"
    );
}

impl Env {
    /// Waits until the target Secret holds the credentials of [`rotated`].
    async fn wait_for_rotated(&self) {
        eventually("the rotated password synced", || async {
            let data = self.secret_data("database-credentials").await?;
            (data == string_map(&[("username", "admin"), ("password", "rotated")])).then_some(())
        })
        .await;
    }

    /// Waits for the SecretStore `name` to be `Ready=False` with reason
    /// `InvalidProviderConfig` and exactly ESO's fixed `message`, and returns the note of the
    /// Warning `InvalidProviderConfig` event mentioning `needle` (the detail).
    async fn store_failure(&self, name: &str, message: &str, needle: &str) -> String {
        let c = self
            .store_ready(name, "False", "InvalidProviderConfig")
            .await;
        assert_eq!(c.message.as_deref(), Some(message), "{c:?}");
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

    /// The SecretStore's Ready condition once it has the wanted status and reason.
    async fn store_ready(&self, name: &str, status: &str, reason: &str) -> crd::Condition {
        let api = self.api::<SecretStore>();
        eventually(
            &format!("SecretStore {name} Ready={status} {reason}"),
            || async {
                let c = api
                    .get(name)
                    .await
                    .ok()?
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "Ready")?;
                (format!("{:?}", c.status) == status && c.reason.as_deref() == Some(reason))
                    .then_some(c)
            },
        )
        .await
    }
}

#[tokio::test]
async fn an_invalid_find_name_regexp_sets_ready_false_with_a_clear_message() {
    let env = start("es-badregexp").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret(
        "found",
        json!({"secretStoreRef": {"name": "fake-store", "kind": "SecretStore"},
               "dataFrom": [{"find": {"name": {"regexp": "production/(["}}}]}),
    )
    .await;
    env.failure(
        "found",
        "could not get secret data from provider",
        "find.name.regexp: found unclosed character class",
    )
    .await;
    assert_eq!(env.secret_data("found").await, None);
}

#[tokio::test]
async fn store_configs_the_provider_cannot_use_set_ready_false_with_the_reason() {
    let env = start("store-bad").await;
    // The fake provider never reads credentials: a credential selector naming another
    // namespace is refused by its config schema before any credential policy applies.
    env.store(
        "other-namespace-credentials",
        json!({"auth": {"secretRef": {"name": "x", "key": "k", "namespace": "other"}}}),
    )
    .await;
    env.store("missing-key", json!({"data": [{"value": "no key"}]}))
        .await;
    apply(
        &env.api::<SecretStore>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "no-provider", "namespace": env.ns},
               "spec": {"provider": {"nosuch": {}}}}),
    )
    .await;

    // ESO's fixed Ready message; the detail is in the Warning event, as ESO does it.
    let note = env
        .store_failure(
            "other-namespace-credentials",
            "unable to create client",
            "does not match",
        )
        .await;
    assert!(
        note.contains("spec.provider.fake does not match the provider's schema"),
        "{note}"
    );
    assert!(note.contains("auth"), "{note}");

    let note = env
        .store_failure("missing-key", "unable to create client", "does not match")
        .await;
    assert!(
        note.contains("spec.provider.fake does not match the provider's schema"),
        "{note}"
    );
    assert!(note.contains("key"), "{note}");

    let note = env
        .store_failure("no-provider", "unable to create client", "nosuch")
        .await;
    assert!(note.contains("(ProviderNotFound)"), "{note}");
    assert!(
        note.contains("no Provider named \"nosuch\" is installed"),
        "{note}"
    );

    // An ExternalSecret using such a store reports it too, and writes nothing.
    env.external_secret("database", seed_es("no-provider"))
        .await;
    env.failure(
        "database",
        "could not get secret data from provider",
        "nosuch",
    )
    .await;
    assert_eq!(env.secret_data("database-credentials").await, None);
}

#[tokio::test]
async fn a_store_change_resyncs_its_external_secrets_at_once() {
    let env = start("es-storewatch").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    // refreshInterval 1h: only the store watch can bring the change in time.
    env.external_secret("database", seed_es("fake-store")).await;
    env.ready("database", "True", "SecretSynced").await;

    let changed = tokio::time::Instant::now();
    env.store("fake-store", json!({"data": rotated()})).await;
    env.wait_for_rotated().await;
    assert!(changed.elapsed() < Duration::from_secs(20));
    let (_, ready) = env.ready("database", "True", "SecretSynced").await;
    assert_eq!(ready.message.as_deref(), Some("secret synced"));
}

#[tokio::test]
async fn a_cluster_store_change_resyncs_external_secrets_in_any_namespace() {
    let env = start("es-cstorewatch").await;
    let name = format!("{}-fake", env.ns);
    let stores: Api<crd::ClusterSecretStore> = Api::all(env.client.clone());
    let cluster_store = |data: Value| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
               "metadata": {"name": name}, "spec": {"provider": {"fake": {"data": data}}}})
    };
    apply(&stores, cluster_store(fake_data())).await;
    let mut spec = seed_es(&name);
    spec["secretStoreRef"]["kind"] = json!("ClusterSecretStore");
    env.external_secret("database", spec).await;
    env.ready("database", "True", "SecretSynced").await;

    apply(
        &stores,
        cluster_store(json!([{"key": "production/database",
                              "value": "{\"username\":\"root\",\"password\":\"rotated\"}"}])),
    )
    .await;
    eventually("the rotated credentials synced", || async {
        let data = env.secret_data("database-credentials").await?;
        (data == string_map(&[("username", "root"), ("password", "rotated")])).then_some(())
    })
    .await;
    stores
        .delete(&name, &Default::default())
        .await
        .expect("delete the ClusterSecretStore");
}

impl Env {
    /// Sets the force-sync annotation of the ExternalSecret `name` to `value`.
    async fn force_sync(&self, name: &str, value: &str) {
        self.api::<ExternalSecret>()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"annotations": {"external-secrets.io/force-sync": value}}}),
                ),
            )
            .await
            .expect("annotate");
    }

    /// Asserts that the Secret `name` keeps `data` for `secs` seconds.
    async fn keeps(&self, name: &str, data: &BTreeMap<String, String>, secs: u64) {
        let until = tokio::time::Instant::now() + Duration::from_secs(secs);
        while tokio::time::Instant::now() < until {
            assert_eq!(self.secret_data(name).await.as_ref(), Some(data));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Asserts ESO's managed label and Airlock's data-hash annotation on a target Secret.
fn assert_managed(secret: &Secret) {
    assert_eq!(
        secret
            .labels()
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );
    assert!(
        secret
            .annotations()
            .contains_key("reconcile.external-secrets.io/data-hash")
    );
}

fn rotated() -> Value {
    json!([{"key": "production/database",
            "value": "{\"username\":\"admin\",\"password\":\"rotated\"}"}])
}

#[tokio::test]
async fn an_immutable_target_is_created_immutable_and_a_later_change_is_refused() {
    let env = start("es-immutable").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let mut spec = seed_es("fake-store");
    spec["refreshInterval"] = json!("1s");
    spec["target"]["immutable"] = json!(true);
    env.external_secret("database", spec).await;
    env.ready("database", "True", "SecretSynced").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);
    let secret = env
        .api::<Secret>()
        .get("database-credentials")
        .await
        .unwrap();
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(text_data(&secret), synced);
    assert_eq!(secret.owner_references().len(), 1);

    env.store("fake-store", json!({"data": rotated()})).await;
    let detail = env
        .failure(
            "database",
            "could not update secret, target is immutable",
            "TargetImmutable",
        )
        .await;
    assert!(!detail.contains("rotated"), "{detail}");
    let secret = env
        .api::<Secret>()
        .get("database-credentials")
        .await
        .unwrap();
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(text_data(&secret), synced);
}

#[tokio::test]
async fn refresh_policy_created_once_never_refetches_and_on_change_refetches_on_spec_changes() {
    let env = start("es-refreshpolicy").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let with_policy = |policy: &str, target: &str| {
        let mut spec = seed_es("fake-store");
        spec["refreshInterval"] = json!("1s");
        spec["refreshPolicy"] = json!(policy);
        spec["target"]["name"] = json!(target);
        spec
    };
    env.external_secret("once", with_policy("CreatedOnce", "once"))
        .await;
    let on_change = with_policy("OnChange", "on-change");
    env.external_secret("on-change", on_change.clone()).await;
    env.ready("once", "True", "SecretSynced").await;
    env.ready("on-change", "True", "SecretSynced").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);

    env.store("fake-store", json!({"data": rotated()})).await;
    // Several 1 s intervals and the store change pass without a refetch.
    env.keeps("once", &synced, 5).await;
    env.keeps("on-change", &synced, 1).await;

    // OnChange: a spec change (a label in the template metadata) refetches.
    let mut bumped = on_change;
    bumped["target"]["template"] = json!({"metadata": {"labels": {"rev": "2"}}});
    env.external_secret("on-change", bumped).await;
    let secret = eventually("the OnChange target refetched", || async {
        let s = env.api::<Secret>().get_opt("on-change").await.ok()??;
        (text_data(&s) == string_map(&[("username", "admin"), ("password", "rotated")]))
            .then_some(s)
    })
    .await;
    assert_eq!(secret.labels().get("rev").map(String::as_str), Some("2"));
    let (es, _) = env.ready("on-change", "True", "SecretSynced").await;
    assert!(
        es.status
            .and_then(|s| s.synced_resource_version)
            .is_some_and(|v| v.starts_with("2-"))
    );
    // CreatedOnce still holds the first value.
    assert_eq!(env.secret_data("once").await, Some(synced));
}

#[tokio::test]
async fn the_force_sync_annotation_refetches_before_the_refresh_interval() {
    let env = start("es-forcesync").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.external_secret("database", seed_es("fake-store")).await;
    let (first, _) = env.ready("database", "True", "SecretSynced").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);

    // A store deleted and created again has generation 1 again: the store watch sees no
    // spec change, so only the next refresh (1h) or a force-sync would pick the new data up.
    let stores = env.api::<SecretStore>();
    stores
        .delete("fake-store", &Default::default())
        .await
        .expect("delete the store");
    eventually("the store gone", || async {
        stores
            .get_opt("fake-store")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.store("fake-store", json!({"data": rotated()})).await;
    env.keeps("database-credentials", &synced, 3).await;

    env.force_sync("database", "2026-11-28T03:00:00Z").await;
    env.wait_for_rotated().await;
    let es = eventually("the new syncedResourceVersion", || async {
        let es = env.api::<ExternalSecret>().get("database").await.ok()?;
        let version = es.status.as_ref()?.synced_resource_version.clone();
        (version != first.status.as_ref()?.synced_resource_version).then_some(es)
    })
    .await;
    let ready = es
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("SecretSynced"));
}

#[tokio::test]
async fn creation_policy_create_or_merge_creates_when_absent_and_keeps_foreign_keys() {
    let env = start("es-createormerge").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    let with_target = |target: &str| {
        let mut spec = seed_es("fake-store");
        spec["target"] = json!({"name": target, "creationPolicy": "CreateOrMerge"});
        spec
    };

    env.external_secret("created", with_target("created")).await;
    let (_, ready) = env.ready("created", "True", "SecretSynced").await;
    assert_eq!(ready.message.as_deref(), Some("secret synced"));
    let created = env.api::<Secret>().get("created").await.unwrap();
    assert_eq!(
        text_data(&created),
        string_map(&[("username", "admin"), ("password", "s3cr3t")])
    );
    assert!(created.owner_references().is_empty());
    assert_managed(&created);

    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "existing", "namespace": env.ns,
                            "labels": {"app": "db"}},
               "stringData": {"keep": "me", "password": "old"}}),
    )
    .await;
    env.external_secret("merged", with_target("existing")).await;
    env.ready("merged", "True", "SecretSynced").await;
    let merged = env.api::<Secret>().get("existing").await.unwrap();
    assert_eq!(
        text_data(&merged),
        string_map(&[
            ("keep", "me"),
            ("username", "admin"),
            ("password", "s3cr3t")
        ])
    );
    assert!(merged.owner_references().is_empty());
    assert_eq!(merged.labels().get("app").map(String::as_str), Some("db"));
}

#[tokio::test]
async fn deletion_policy_merge_removes_only_the_managed_keys_when_the_provider_has_nothing() {
    let env = start("es-delmerge").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "shared", "namespace": env.ns},
               "stringData": {"keep": "me"}}),
    )
    .await;
    let mut spec = seed_es("fake-store");
    spec["target"] = json!({"name": "shared", "creationPolicy": "CreateOrMerge",
                            "deletionPolicy": "Merge"});
    env.external_secret("database", spec).await;
    env.ready("database", "True", "SecretSynced").await;
    assert_eq!(
        env.secret_data("shared").await,
        Some(string_map(&[
            ("keep", "me"),
            ("username", "admin"),
            ("password", "s3cr3t")
        ]))
    );

    env.store("fake-store", json!({"data": []})).await;
    eventually("the managed keys removed", || async {
        (env.secret_data("shared").await? == string_map(&[("keep", "me")])).then_some(())
    })
    .await;
    let (_, ready) = env.ready("database", "True", "SecretSynced").await;
    assert_eq!(ready.message.as_deref(), Some("secret synced"));
    let secret = env.api::<Secret>().get("shared").await.unwrap();
    assert_eq!(
        secret
            .labels()
            .get("reconcile.external-secrets.io/managed")
            .map(String::as_str),
        Some("true")
    );
    // The data hash matches what is left, so the Secret is not seen as drifted.
    env.keeps("shared", &string_map(&[("keep", "me")]), 2).await;
}

#[tokio::test]
async fn deletion_policy_retain_keeps_the_secret_when_the_provider_has_nothing() {
    let env = start("es-retain").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    // data[]: a key missing at the provider is an error under Retain (ESO's behaviour).
    env.external_secret("database", seed_es("fake-store")).await;
    // dataFrom.find matching nothing: all data empty, the Secret is retained.
    env.external_secret(
        "found",
        json!({
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "fake-store"},
            "target": {"name": "found"},
            "dataFrom": [{"find": {"name": {"regexp": "^staging/"}}}]
        }),
    )
    .await;
    env.ready("database", "True", "SecretSynced").await;
    env.ready("found", "True", "SecretSynced").await;
    let synced = string_map(&[("username", "admin"), ("password", "s3cr3t")]);
    let found = env.secret_data("found").await.expect("found written");
    assert_eq!(found.len(), 1, "{:?}", found.keys());

    env.store("fake-store", json!({"data": []})).await;
    let ready = eventually("found retained", || async {
        let es = env.api::<ExternalSecret>().get("found").await.ok()?;
        let c = es
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.message.as_deref() == Some("secret retained due to DeletionPolicy=Retain")).then_some(c)
    })
    .await;
    assert_eq!(ready.reason.as_deref(), Some("SecretSynced"));
    assert_eq!(
        ready.message.as_deref(),
        Some("secret retained due to DeletionPolicy=Retain")
    );
    assert_eq!(env.secret_data("found").await, Some(found));
    let found_secret = env.api::<Secret>().get("found").await.unwrap();
    assert_eq!(found_secret.owner_references().len(), 1);

    env.failure(
        "database",
        "could not get secret data from provider",
        "secret does not exist at provider",
    )
    .await;
    assert_eq!(env.secret_data("database-credentials").await, Some(synced));
}

// Issue 23 item 11: `fail` and `required` quote what the template gives them; the condition
// keeps ESO's fixed message and the Warning Event says which template failed and how, never
// the fetched value.
#[tokio::test]
async fn a_template_failing_with_a_fetched_value_reports_it_redacted() {
    let env = start("es-template-fail").await;
    env.store("vault-backend", seed_template_store_data()).await;
    let mut spec = seed_templated_es();
    spec["target"]["template"]["data"] = json!({
        "DATABASE_URL": "{{ fail .password }}"
    });
    env.external_secret("templated-secret", spec).await;
    let (_, ready) = env
        .ready("templated-secret", "False", "SecretSyncedError")
        .await;
    let message = ready.message.unwrap_or_default();
    assert_eq!(message, "could not update secret");

    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let notes = eventually("an UpdateFailed event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        let notes: Vec<String> = list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("UpdateFailed"))
            .filter_map(|e| e.note)
            .collect();
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(
        notes.iter().any(|n| n.contains(
            r#"template "DATABASE_URL": line 1, column 4: error calling fail: [redacted]"#
        )),
        "{notes:?}"
    );
    for note in notes {
        assert!(!note.contains("s3cr3t"), "an event leaks a value: {note}");
    }
}

// Issue 24 (ESO fidelity): metadata, conditions and migration from ESO.

#[tokio::test]
async fn without_a_template_the_external_secrets_labels_and_annotations_reach_the_secret() {
    let env = start("es-meta").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    apply(
        &env.api::<ExternalSecret>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "database", "namespace": env.ns,
                            "labels": {"team": "payments"},
                            "annotations": {"note": "stamped"}},
               "spec": seed_es("fake-store")}),
    )
    .await;
    env.ready("database", "True", "SecretSynced").await;
    let secret = env
        .api::<Secret>()
        .get("database-credentials")
        .await
        .unwrap();
    assert_eq!(
        secret.labels().get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(
        secret.annotations().get("note").map(String::as_str),
        Some("stamped")
    );
    assert_managed(&secret);
}

#[tokio::test]
async fn with_creation_policy_merge_template_metadata_joins_the_targets_own() {
    let env = start("es-meta-merge").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "shared", "namespace": env.ns,
                            "labels": {"app": "db"}, "annotations": {"keep": "yes"}},
               "stringData": {"keep": "me"}}),
    )
    .await;
    let mut spec = seed_es("fake-store");
    spec["target"] = json!({"name": "shared", "creationPolicy": "Merge",
                            "template": {"metadata": {
                                "labels": {"tier": "backend"},
                                "annotations": {"owner": "{{ .username }}"},
                                "finalizers": ["example.com/keep"]}}});
    apply(
        &env.api::<ExternalSecret>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "merged", "namespace": env.ns,
                            "labels": {"team": "not-copied"}},
               "spec": spec}),
    )
    .await;
    env.ready("merged", "True", "SecretSynced").await;
    let secret = env.api::<Secret>().get("shared").await.unwrap();
    let labels = secret.labels();
    assert_eq!(labels.get("app").map(String::as_str), Some("db"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("backend"));
    assert_eq!(labels.get("team"), None, "a template replaces the copy");
    let annotations = secret.annotations();
    assert_eq!(annotations.get("keep").map(String::as_str), Some("yes"));
    assert_eq!(annotations.get("owner").map(String::as_str), Some("admin"));
    assert_eq!(secret.finalizers(), ["example.com/keep"]);
    assert_eq!(
        text_data(&secret),
        string_map(&[
            ("keep", "me"),
            ("username", "admin"),
            ("password", "s3cr3t")
        ])
    );
}

/// An ExternalSecret and its Secret exactly as ESO v2.9 leaves them after a sync, with the
/// refresh overdue (`refreshTime` two hours ago, interval 1h).
async fn seed_eso_state(
    client: &Client,
    ns: &str,
    name: &str,
    metadata: Value,
    spec: Value,
    secret: Value,
    synced_resource_version: &str,
) -> (ExternalSecret, Secret) {
    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    let mut es_meta = metadata;
    es_meta["name"] = json!(name);
    es_meta["namespace"] = json!(ns);
    // ESO puts its cleanup finalizer on every ExternalSecret.
    es_meta["finalizers"] = json!(["externalsecrets.external-secrets.io/externalsecret-cleanup"]);
    let es = es_api
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": es_meta, "spec": spec,
            }))
            .expect("an ExternalSecret"),
        )
        .await
        .expect("create the ExternalSecret");
    let target = secret["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    let two_hours_ago = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_hours(2))
    .round(k8s_openapi::jiff::Unit::Second)
    .expect("round");
    es_api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "refreshTime": two_hours_ago.to_string(),
                "syncedResourceVersion": synced_resource_version,
                "binding": {"name": target},
                "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                                "message": "secret synced",
                                "lastTransitionTime": two_hours_ago.to_string()}],
            }})),
        )
        .await
        .expect("ESO's status");
    let mut secret = secret;
    secret["metadata"]["namespace"] = json!(ns);
    if secret["metadata"]["ownerReferences"] == json!("controller") {
        secret["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": name,
            "uid": es.metadata.uid.clone().expect("a uid"),
            "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    // ESO writes with a field manager of its own per ExternalSecret: it creates the Secret,
    // or (Merge) updates the one someone else made.
    let manager = Some(format!("externalsecrets.external-secrets.io/{name}"));
    let secret = if secrets.get_opt(&target).await.expect("get").is_some() {
        let params = PatchParams {
            field_manager: manager,
            ..Default::default()
        };
        secrets
            .patch(&target, &params, &Patch::Merge(&secret))
            .await
    } else {
        let params = kube::api::PostParams {
            field_manager: manager,
            ..Default::default()
        };
        let secret = serde_json::from_value(secret).expect("a Secret");
        secrets.create(&params, &secret).await
    }
    .expect("write the Secret as ESO did");
    let es = es_api.get(name).await.expect("the ExternalSecret");
    (es, secret)
}

#[tokio::test]
async fn a_cluster_left_by_eso_is_taken_over_without_a_single_secret_write() {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("es-migration").await.expect("namespace");
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "fake-store", "namespace": ns},
               "spec": {"provider": {"fake": {"data": fake_data()}}}}),
    )
    .await;

    // Hashes as ESO's Go code computes them (SHA3-224 of `%+v`), computed by Go 1.26.
    let data_hash = "4dc87f1bc1b42f99971f11cd8a752c3c1babc6486c0744d841d68c6a";
    let merged_hash = "a598fd76ab7adf438d94677046e7d0d763331524b817c094194bdb39";
    let meta_hash = "43100c8fd202fa920ef4c804052a8a5d94d95cb1c5a55b2c93dc5b58";
    let no_meta_hash = "f47fe3c0b255b6dd8047cdffa772587bb829efe7a1cb70febeda2eb2";
    let created_by = airlock::controller::external_secret::created_by(&ns, "database");
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };

    // creationPolicy Owner, no template: ESO copied the ExternalSecret's metadata.
    let (owned_es, owned) = seed_eso_state(
        &client,
        &ns,
        "database",
        json!({"labels": {"team": "payments"}, "annotations": {"note": "from-eso"}}),
        seed_es("fake-store"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "database-credentials",
                            "labels": {"team": "payments",
                                       "reconcile.external-secrets.io/managed": "true",
                                       "reconcile.external-secrets.io/created-by": created_by},
                            "annotations": {"note": "from-eso",
                                            "reconcile.external-secrets.io/data-hash": data_hash},
                            "ownerReferences": "controller"},
               "type": "Opaque",
               "data": {"username": b64("admin"), "password": b64("s3cr3t")}}),
        &format!("1-{meta_hash}"),
    )
    .await;
    // creationPolicy Merge into a Secret someone else made: no owner, no created-by.
    apply(
        &Api::<Secret>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "shared", "namespace": ns, "labels": {"app": "db"}},
               "data": {"keep": b64("me")}}),
    )
    .await;
    let mut merge_spec = seed_es("fake-store");
    merge_spec["target"] = json!({"name": "shared", "creationPolicy": "Merge"});
    let (_, merged) = seed_eso_state(
        &client,
        &ns,
        "merger",
        json!({}),
        merge_spec,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "shared",
                            "labels": {"reconcile.external-secrets.io/managed": "true"},
                            "annotations": {"reconcile.external-secrets.io/data-hash": merged_hash}},
               "data": {"username": b64("admin"), "password": b64("s3cr3t")}}),
        &format!("1-{no_meta_hash}"),
    )
    .await;

    // Every write to these Secrets from here on shows up on this watch.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let from = secrets
        .list_metadata(&Default::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("a list version");
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut watch = secrets
        .watch(&kube::api::WatchParams::default(), &from)
        .await
        .expect("watch")
        .boxed();
    let seen = writes.clone();
    tokio::spawn(async move {
        while let Some(Ok(event)) = watch.next().await {
            let name = match event {
                kube::api::WatchEvent::Added(s)
                | kube::api::WatchEvent::Modified(s)
                | kube::api::WatchEvent::Deleted(s) => s.name_any(),
                _ => continue,
            };
            seen.lock().unwrap().push(name);
        }
    });

    let env = operate(client.clone(), ns.clone()).await;
    // The overdue refresh happens: the provider is read and the status written...
    let es_api = env.api::<ExternalSecret>();
    let old_refresh = owned_es
        .status
        .as_ref()
        .and_then(|s| s.refresh_time.clone());
    for name in ["database", "merger"] {
        eventually(&format!("{name} refreshed by Airlock"), || async {
            let es = es_api.get(name).await.ok()?;
            let refreshed = es.status?.refresh_time;
            (refreshed.is_some() && refreshed != old_refresh).then_some(())
        })
        .await;
        let (es, ready) = env.ready(name, "True", "SecretSynced").await;
        assert_eq!(ready.message.as_deref(), Some("secret synced"));
        // ...and ESO's syncedResourceVersion is kept as it is.
        let version = es.status.unwrap().synced_resource_version.unwrap();
        let want = if name == "database" {
            meta_hash
        } else {
            no_meta_hash
        };
        assert_eq!(version, format!("1-{want}"));
    }
    // ...yet neither Secret was written: same resourceVersion, no Airlock field manager.
    for before in [&owned, &merged] {
        let name = before.name_any();
        let now = secrets.get(&name).await.expect("the Secret");
        assert_eq!(now.resource_version(), before.resource_version(), "{name}");
        assert!(
            now.managed_fields()
                .iter()
                .all(|m| m.manager.as_deref() != Some(airlock::controller::FIELD_MANAGER)),
            "{name}: {:?}",
            now.managed_fields()
        );
    }
    let count = writes.lock().unwrap().len();
    assert_eq!(count, 0, "writes to Secrets: {:?}", writes.lock().unwrap());

    // Drift repair is Airlock's now: a hand edit is undone, with ESO's hash of the result.
    secrets
        .patch(
            "database-credentials",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"password": "tampered"}})),
        )
        .await
        .expect("edit");
    eventually("the edited Secret repaired", || async {
        let s = secrets.get("database-credentials").await.ok()?;
        (text_data(&s) == string_map(&[("username", "admin"), ("password", "s3cr3t")]))
            .then_some(())
    })
    .await;
    let repaired = secrets.get("database-credentials").await.unwrap();
    assert_eq!(
        repaired
            .annotations()
            .get("reconcile.external-secrets.io/data-hash")
            .map(String::as_str),
        Some(data_hash)
    );
    assert_eq!(
        repaired.labels().get("team").map(String::as_str),
        Some("payments")
    );

    // ESO's finalizer does not keep a deleted ExternalSecret around.
    es_api
        .delete("merger", &Default::default())
        .await
        .expect("delete");
    eventually(
        "the ExternalSecret with ESO's finalizer is gone",
        || async { matches!(es_api.get_opt("merger").await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn property_takes_gjson_paths_as_eso_does() {
    let env = start("es-gjson").await;
    let doc = json!({
        "replicas": [{"host": "a", "port": 1}, {"host": "b", "port": 2}],
        "users": [{"name": "ann", "role": "admin"}, {"name": "bob", "role": "dev"}],
        "db.host": "literal",
        "conn": "{\"user\":\"u\",\"pass\":\"p\"}",
        // Keys in sorted order, so the document reads the same with or without serde_json's
        // preserve_order.
        "tiers": {"free": {"limit": 1}, "gold": {"limit": 9}},
    });
    env.store(
        "fake-store",
        json!({"data": [{"key": "app", "value": doc.to_string()}]}),
    )
    .await;
    let item = |key: &str, property: &str| json!({"secretKey": key, "remoteRef": {"key": "app", "property": property}});
    env.external_secret(
        "gjson",
        json!({
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "fake-store", "kind": "SecretStore"},
            "target": {"name": "gjson"},
            "data": [
                item("count", "replicas.#"),
                item("hosts", "replicas.#.host"),
                item("admin", r#"users.#(role=="admin").name"#),
                item("reversed", "users.#.name|@reverse"),
                item("literal", "db.host"),
                // The modifiers gjson.rs lacks, from the SDK's own layer (gjson v1.18's).
                item("tiers", "tiers|@keys"),
                item("limits", "tiers.@values.#.limit"),
                item("pass", "conn|@fromstr|pass"),
                item("quoted", "users.0.name|@tostr"),
                item("deep", "@dig:limit"),
                item("pairs", "{host:replicas.#.host,port:replicas.#.port}|@group|1.port"),
            ]
        }),
    )
    .await;
    env.ready("gjson", "True", "SecretSynced").await;
    assert_eq!(
        env.secret_data("gjson").await,
        Some(string_map(&[
            ("count", "2"),
            ("hosts", r#"["a","b"]"#),
            ("admin", "ann"),
            ("reversed", r#"["bob","ann"]"#),
            ("literal", "literal"),
            ("tiers", r#"["free","gold"]"#),
            ("limits", "[1,9]"),
            ("pass", "p"),
            ("quoted", r#""ann""#),
            ("deep", "[1,9]"),
            ("pairs", "2"),
        ]))
    );
}

// ---------------------------------------------------------------------------------------
// PushSecret (issue 19) through the fake provider: what was pushed is read back by
// ExternalSecrets from the same store (the fake serves pushed values first).

use airlock::crd::PushSecret;

impl Env {
    async fn push_secret(&self, name: &str, spec: Value) {
        apply(
            &self.api::<PushSecret>(),
            json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
                   "metadata": {"name": name, "namespace": self.ns}, "spec": spec}),
        )
        .await;
    }

    async fn source_secret(&self, name: &str, data: Value) {
        apply(
            &self.api::<Secret>(),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": self.ns, "labels": {"push": "me"}},
                   "stringData": data}),
        )
        .await;
    }

    /// Waits for the PushSecret's Ready condition with `status`, `reason` and a message
    /// containing `needle`; returns the PushSecret.
    async fn push_ready(&self, name: &str, status: &str, reason: &str, needle: &str) -> PushSecret {
        let api = self.api::<PushSecret>();
        cluster::ready_message(&api, name, status, needle).await;
        let ps = api.get(name).await.expect("the PushSecret");
        let ready = crate::find_push_ready(&ps);
        assert_eq!(ready.reason.as_deref(), Some(reason), "{name}: {ready:?}");
        ps
    }

    /// An ExternalSecret reading `(secretKey, key, property)` refs from `store` every second.
    async fn reader(&self, name: &str, store: &str, refs: &[(&str, &str, Option<&str>)]) {
        let data: Vec<Value> = refs
            .iter()
            .map(|(k, key, property)| json!({"secretKey": k, "remoteRef": {"key": key, "property": property}}))
            .collect();
        self.external_secret(
            name,
            json!({"refreshInterval": "1s", "secretStoreRef": {"name": store, "kind": "SecretStore"},
                   "target": {"name": name}, "data": data}),
        )
        .await;
    }
}

fn find_push_ready(ps: &PushSecret) -> crd::Condition {
    let conditions = ps.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .expect("a Ready condition")
}

fn synced_keys(ps: &PushSecret, store: &str) -> Vec<String> {
    ps.status
        .as_ref()
        .and_then(|s| s.synced_push_secrets.as_ref())
        .and_then(|m| m.get(store))
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_push_secret_pushes_keys_and_whole_secrets_follows_updates_and_deletes_with_delete_policy()
 {
    let env = start("ps-fake").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.source_secret("source", json!({"password": "p1", "user": "u1"}))
        .await;
    let entry = |key: Option<&str>, remote: &str| json!({"match": {"secretKey": key, "remoteRef": {"remoteKey": remote}}});
    let spec = |data: Value| {
        json!({"refreshInterval": "1s", "deletionPolicy": "Delete",
               "secretStoreRefs": [{"name": "fake-store"}],
               "selector": {"secret": {"name": "source"}}, "data": data})
    };
    env.push_secret(
        "push",
        spec(json!([
            entry(Some("password"), "app/password"),
            entry(None, "app/whole")
        ])),
    )
    .await;
    let ps = env
        .push_ready("push", "True", "Synced", "PushSecret synced successfully")
        .await;
    assert!(
        ps.finalizers()
            .iter()
            .any(|f| f == "pushsecret.externalsecrets.io/finalizer")
    );
    assert_eq!(
        synced_keys(&ps, "SecretStore/fake-store"),
        ["app/password", "app/whole"]
    );
    env.reader(
        "reader",
        "fake-store",
        &[
            ("password", "app/password", None),
            ("user", "app/whole", Some("user")),
        ],
    )
    .await;
    eventually("the pushed values read back", || async {
        (env.secret_data("reader").await? == string_map(&[("password", "p1"), ("user", "u1")]))
            .then_some(())
    })
    .await;

    // A changed source Secret is pushed again at the next refresh.
    env.source_secret("source", json!({"password": "p2", "user": "u1"}))
        .await;
    eventually("the updated value read back", || async {
        (env.secret_data("reader").await?.get("password")? == "p2").then_some(())
    })
    .await;

    // An entry dropped from data[] is deleted at the provider.
    env.push_secret(
        "push",
        spec(json!([entry(Some("password"), "app/password")])),
    )
    .await;
    eventually("app/whole dropped from the status", || async {
        let ps = env.api::<PushSecret>().get("push").await.ok()?;
        (synced_keys(&ps, "SecretStore/fake-store") == ["app/password"]).then_some(())
    })
    .await;
    env.reader(
        "whole-reader",
        "fake-store",
        &[("user", "app/whole", Some("user"))],
    )
    .await;
    env.ready("whole-reader", "False", "SecretSyncedError")
        .await;

    // Deleting the PushSecret deletes what it pushed, then lets it go.
    env.api::<PushSecret>()
        .delete("push", &Default::default())
        .await
        .expect("delete");
    eventually("the PushSecret gone", || async {
        env.api::<PushSecret>()
            .get_opt("push")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.reader("after", "fake-store", &[("password", "app/password", None)])
        .await;
    env.ready("after", "False", "SecretSyncedError").await;
}

#[tokio::test]
async fn if_not_exists_keeps_remote_values_and_deletion_policy_none_leaves_them() {
    let env = start("ps-fake-ine").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.source_secret("source", json!({"value": "pushed"}))
        .await;
    env.push_secret(
        "push",
        json!({"updatePolicy": "IfNotExists", "secretStoreRefs": [{"labelSelector": {"matchLabels": {}}}],
               "selector": {"secret": {"selector": {"matchLabels": {"push": "me"}}}},
               "data": [
                   {"match": {"secretKey": "value", "remoteRef": {"remoteKey": "staging/database"}}},
                   {"match": {"secretKey": "value", "remoteRef": {"remoteKey": "new/key"}}}]}),
    )
    .await;
    let ps = env
        .push_ready(
            "push",
            "True",
            "Synced",
            "PushSecret synced successfully. Existing secrets in providers unchanged.",
        )
        .await;
    assert!(ps.finalizers().is_empty(), "{:?}", ps.finalizers());
    env.reader(
        "reader",
        "fake-store",
        &[
            ("existing", "staging/database", None),
            ("new", "new/key", None),
        ],
    )
    .await;
    eventually("the existing value kept and the new one pushed", || async {
        (env.secret_data("reader").await?
            == string_map(&[("existing", "stage"), ("new", "pushed")]))
        .then_some(())
    })
    .await;
    env.api::<PushSecret>()
        .delete("push", &Default::default())
        .await
        .expect("delete");
    eventually("the PushSecret gone", || async {
        env.api::<PushSecret>()
            .get_opt("push")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.reader("after", "fake-store", &[("new", "new/key", None)])
        .await;
    eventually("the pushed value still there", || async {
        (env.secret_data("after").await? == string_map(&[("new", "pushed")])).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_push_input_gives_a_clear_condition_and_pushes_nothing() {
    let env = start("ps-fake-bad").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    env.source_secret("source", json!({"value": "pushed"}))
        .await;
    let spec = |stores: Value, secret: &str, key: &str| {
        json!({"secretStoreRefs": stores, "selector": {"secret": {"name": secret}},
               "data": [{"match": {"secretKey": key, "remoteRef": {"remoteKey": "bad/key"}}}]})
    };
    let by_name = json!([{"name": "fake-store"}]);
    env.push_secret("missing-key", spec(by_name.clone(), "source", "nope"))
        .await;
    env.push_secret("missing-source", spec(by_name.clone(), "absent", "value"))
        .await;
    env.push_secret(
        "no-store",
        spec(
            json!([{"labelSelector": {"matchLabels": {"tier": "none"}}}]),
            "source",
            "value",
        ),
    )
    .await;
    env.push_secret(
        "missing-store",
        spec(json!([{"name": "absent"}]), "source", "value"),
    )
    .await;
    // A read-only provider (the hostile guest declares ReadOnly).
    std::fs::copy(
        airlock_test_artifacts::HOSTILE,
        env._providers.path().join("hostile.wasm"),
    )
    .expect("copy hostile.wasm");
    apply(
        &Api::<Provider>::all(env.client.clone()),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "readonly"}, "spec": {"module": {"path": "hostile.wasm"}}}),
    )
    .await;
    apply(
        &env.api::<SecretStore>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "read-only", "namespace": env.ns},
               "spec": {"provider": {"readonly": {}}}}),
    )
    .await;
    env.push_secret(
        "read-only",
        spec(json!([{"name": "read-only"}]), "source", "value"),
    )
    .await;

    for (name, needle) in [
        ("missing-key", "secret key nope does not exist"),
        (
            "missing-source",
            "could not get source secret: Secret \"absent\" not found",
        ),
        (
            "no-store",
            "no SecretStore matches the labelSelector of spec.secretStoreRefs[0]",
        ),
        ("missing-store", "SecretStore \"absent\" not found"),
        (
            "read-only",
            "read-only provider \"readonly\": it cannot receive pushed secrets",
        ),
    ] {
        let ps = env.push_ready(name, "False", "Errored", needle).await;
        assert!(
            ps.status
                .as_ref()
                .and_then(|s| s.synced_push_secrets.as_ref())
                .is_none_or(|m| m.values().all(|v| v.is_empty())),
            "{name}: {:?}",
            ps.status
        );
    }
    env.reader("reader", "fake-store", &[("value", "bad/key", None)])
        .await;
    env.ready("reader", "False", "SecretSyncedError").await;
}

// ---------------------------------------------------------------------------------------
// Generators (issue 19): Password, UUID, Fake and ClusterGenerator as ExternalSecret and
// PushSecret sources.

async fn apply_generator(env: &Env, kind: &str, name: &str, spec: Value) {
    let resource = kube::core::ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let cluster = kind == "ClusterGenerator";
    let api: Api<kube::core::DynamicObject> = if cluster {
        Api::all_with(env.client.clone(), &resource)
    } else {
        Api::namespaced_with(env.client.clone(), &env.ns, &resource)
    };
    let mut metadata = json!({"name": name});
    if !cluster {
        metadata["namespace"] = json!(env.ns);
    }
    let object = json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind,
                        "metadata": metadata, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply("airlock-test").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

fn generated_es(kind: &str, name: &str, interval: &str, policy: &str) -> Value {
    json!({"refreshInterval": interval, "refreshPolicy": policy, "target": {"name": format!("gen-{name}-{}", policy.to_lowercase())},
           "dataFrom": [{"sourceRef": {"generatorRef": {
               "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind, "name": name}}}]})
}

#[tokio::test]
async fn generated_values_stay_until_the_refresh_policy_says_otherwise() {
    let env = start("gen-es").await;
    apply_generator(&env, "Password", "pw", json!({"length": 32, "symbols": 0})).await;
    apply_generator(&env, "UUID", "id", json!({})).await;
    apply_generator(&env, "Fake", "fixed", json!({"data": {"a": "1"}})).await;
    let cluster_name = format!("{}-cluster-pw", env.ns);
    apply_generator(
        &env,
        "ClusterGenerator",
        &cluster_name,
        json!({"kind": "Password", "generator": {"passwordSpec": {"length": 12, "digits": 8, "symbols": 0}}}),
    )
    .await;
    env.external_secret("once", generated_es("Password", "pw", "1s", "CreatedOnce"))
        .await;
    env.external_secret("periodic", generated_es("Password", "pw", "1s", "Periodic"))
        .await;
    env.external_secret("uuid", generated_es("UUID", "id", "1h", "Periodic"))
        .await;
    env.external_secret("fake", generated_es("Fake", "fixed", "1h", "Periodic"))
        .await;
    env.external_secret(
        "cluster",
        generated_es("ClusterGenerator", &cluster_name, "1h", "Periodic"),
    )
    .await;
    for name in ["once", "periodic", "uuid", "fake", "cluster"] {
        env.ready(name, "True", "SecretSynced").await;
    }
    let first = |d: Option<BTreeMap<String, String>>, key: &str| {
        d.and_then(|d| d.get(key).cloned()).expect("the key")
    };
    let once = first(env.secret_data("gen-pw-createdonce").await, "password");
    assert_eq!(once.chars().count(), 32);
    assert_eq!(first(env.secret_data("gen-fixed-periodic").await, "a"), "1");
    let digits = first(
        env.secret_data(&format!("gen-{cluster_name}-periodic"))
            .await,
        "password",
    );
    assert!(
        digits.len() == 12 && digits.chars().filter(char::is_ascii_digit).count() == 8,
        "{}",
        digits.len()
    );
    assert_eq!(
        first(env.secret_data("gen-id-periodic").await, "uuid").len(),
        36
    );
    // Periodic with a 1 s interval generates a new password; CreatedOnce keeps its own.
    let periodic = first(env.secret_data("gen-pw-periodic").await, "password");
    eventually("the periodic password regenerated", || async {
        (first(env.secret_data("gen-pw-periodic").await, "password") != periodic).then_some(())
    })
    .await;
    assert_eq!(
        first(env.secret_data("gen-pw-createdonce").await, "password"),
        once
    );
}

#[tokio::test]
async fn a_push_secret_pushes_a_generated_password() {
    let env = start("gen-push").await;
    env.store("fake-store", json!({"data": fake_data()})).await;
    apply_generator(&env, "Password", "pw", json!({})).await;
    env.push_secret(
        "push",
        json!({"refreshInterval": "1h", "secretStoreRefs": [{"name": "fake-store"}],
               "selector": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}},
               "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "generated"}}}]}),
    )
    .await;
    env.push_ready("push", "True", "Synced", "PushSecret synced successfully")
        .await;
    env.reader("reader", "fake-store", &[("password", "generated", None)])
        .await;
    env.ready("reader", "True", "SecretSynced").await;
    let value = env.secret_data("reader").await.unwrap()["password"].clone();
    assert_eq!(value.chars().count(), 24);
}

#[tokio::test]
async fn data_to_pushes_matching_keys_renamed_or_bundled_and_deletes_keys_that_stop_matching() {
    let env = start("ps-datato").await;
    apply(
        &env.api::<SecretStore>(),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "fake-store", "namespace": env.ns, "labels": {"tier": "prod"}},
               "spec": {"provider": {"fake": {"data": fake_data()}}}}),
    )
    .await;
    env.source_secret(
        "source",
        json!({"db-user": "u1", "db-pass": "p1", "api-token": "t1"}),
    )
    .await;
    let spec = |pattern: &str| {
        json!({"refreshInterval": "1s", "deletionPolicy": "Delete",
               "secretStoreRefs": [{"name": "fake-store"}],
               "selector": {"secret": {"name": "source"}},
               "dataTo": [
                   {"storeRef": {"name": "fake-store"}, "match": {"regexp": pattern},
                    "rewrite": [{"regexp": {"source": "^db-", "target": "app/"}}]},
                   {"storeRef": {"labelSelector": {"matchLabels": {"tier": "prod"}}},
                    "remoteKey": "bundle", "match": {"regexp": pattern}}],
               "data": [{"match": {"secretKey": "api-token", "remoteRef": {"remoteKey": "app/token"}}}]})
    };
    env.push_secret("push", spec("^db-")).await;
    let ps = env
        .push_ready("push", "True", "Synced", "PushSecret synced successfully")
        .await;
    assert_eq!(
        synced_keys(&ps, "SecretStore/fake-store"),
        ["app/pass", "app/token", "app/user", "bundle"]
    );
    env.reader(
        "reader",
        "fake-store",
        &[
            ("user", "app/user", None),
            ("pass", "app/pass", None),
            ("token", "app/token", None),
            ("bundle", "bundle", None),
        ],
    )
    .await;
    let read = eventually("the pushed keys read back", || async {
        let data = env.secret_data("reader").await?;
        (data.len() == 4).then_some(data)
    })
    .await;
    assert_eq!(read["user"], "u1");
    assert_eq!(read["pass"], "p1");
    assert_eq!(read["token"], "t1");
    // The bundle holds only the keys its rule matched.
    let bundle: Value = serde_json::from_str(&read["bundle"]).expect("the bundle is JSON");
    assert_eq!(bundle, json!({"db-user": "u1", "db-pass": "p1"}));

    // A key that stops matching is deleted at the provider (deletionPolicy Delete).
    env.push_secret("push", spec("^db-u")).await;
    eventually("app/pass dropped from the status", || async {
        let ps = env.api::<PushSecret>().get("push").await.ok()?;
        (synced_keys(&ps, "SecretStore/fake-store") == ["app/token", "app/user", "bundle"])
            .then_some(())
    })
    .await;
    env.reader("pass-reader", "fake-store", &[("pass", "app/pass", None)])
        .await;
    env.ready("pass-reader", "False", "SecretSyncedError").await;

    // A rule naming a store that secretStoreRefs does not list is refused before anything is
    // read or pushed.
    let mut bad = spec("^db-");
    bad["dataTo"][0]["storeRef"]["name"] = json!("elsewhere");
    bad["data"][0]["match"]["remoteRef"]["remoteKey"] = json!("bad/token");
    env.push_secret("bad", bad).await;
    env.push_ready(
        "bad",
        "False",
        "Errored",
        "dataTo[0]: storeRef \"elsewhere\" not found in secretStoreRefs",
    )
    .await;
    env.reader("bad-reader", "fake-store", &[("token", "bad/token", None)])
        .await;
    env.ready("bad-reader", "False", "SecretSyncedError").await;
}

// GeneratorState (issue 19): states ESO left are collected at their deadline.

#[tokio::test]
async fn generator_states_past_their_deadline_are_collected_unless_they_need_a_cleanup_airlock_cannot_do()
 {
    use airlock::crd::generator::GeneratorState;
    let env = start("gen-state").await;
    let api = env.api::<GeneratorState>();
    let finalizer = "generatorstate.externalsecrets.io/finalizer";
    let state = |name: &str, kind: &str, deadline: Option<&str>| {
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GeneratorState",
               "metadata": {"name": name, "namespace": env.ns, "finalizers": [finalizer]},
               "spec": {"garbageCollectionDeadline": deadline,
                        "resource": {"apiVersion": "generators.external-secrets.io/v1alpha1",
                                     "kind": kind, "spec": {}},
                        "state": {"id": 7}}})
    };
    apply(&api, state("kept", "Password", None)).await;
    apply(
        &api,
        state("stateless", "Password", Some("2000-01-01T00:00:00Z")),
    )
    .await;
    apply(
        &api,
        state("gitlab", "GitlabDeployToken", Some("2000-01-01T00:00:00Z")),
    )
    .await;
    eventually("the stateless state past its deadline is gone", || async {
        matches!(api.get_opt("stateless").await, Ok(None)).then_some(())
    })
    .await;
    // A stateful generator's state is deleted but keeps ESO's finalizer: what it created
    // was not revoked.
    let note = warning_event(
        &env.client,
        &env.ns,
        "GeneratorState",
        "gitlab",
        "CleanupNotSupported",
        "generator kind GitlabDeployToken is not supported",
    )
    .await;
    assert!(note.contains(finalizer), "{note}");
    let gitlab = api.get("gitlab").await.expect("still there");
    assert!(gitlab.metadata.deletion_timestamp.is_some());
    assert_eq!(gitlab.finalizers(), [finalizer]);
    // No deadline, no collection.
    let kept = api.get("kept").await.expect("kept");
    assert!(kept.metadata.deletion_timestamp.is_none());

    api.patch(
        "gitlab",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release the finalizer");
}

#[tokio::test]
async fn an_mfa_generator_gives_the_rfc_6238_token_of_the_seed_in_a_secret() {
    let env = start("gen-mfa").await;
    apply(
        &env.api::<Secret>(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "seed", "namespace": env.ns},
               "stringData": {"totp": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}}),
    )
    .await;
    apply_generator(
        &env,
        "MFA",
        "otp",
        json!({"secret": {"name": "seed", "key": "totp"}, "length": 8,
               "when": "2009-02-13T23:31:30Z"}),
    )
    .await;
    env.external_secret(
        "otp",
        json!({"refreshInterval": "1h", "target": {"name": "otp"},
               "dataFrom": [{"sourceRef": {"generatorRef": {
                   "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "MFA", "name": "otp"}}}]}),
    )
    .await;
    env.ready("otp", "True", "SecretSynced").await;
    // RFC 6238's SHA-1 vector for 1234567890 s; 30 - 1234567890 % 30 = 30 seconds left.
    assert_eq!(
        env.secret_data("otp").await.expect("the Secret"),
        string_map(&[("token", "89005924"), ("timeLeft", "30")])
    );
}
