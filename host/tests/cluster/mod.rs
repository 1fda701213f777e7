//! Helpers of the tests that run against the real control plane: polling, server-side
//! apply and CRD installation.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use airlock::crd;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long a test waits for the control plane or the operator to converge.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(TIMEOUT, what, check).await
}

/// Polls `check` until it returns `Some`, failing after `timeout`: for waits on
/// kube-controller-manager, whose garbage collector finds new resource kinds only at its
/// 30 s discovery resync and is slower still on a loaded machine.
pub async fn eventually_within<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Server-side applies `value` (it names itself) as the field manager `airlock-test`.
pub async fn apply<K>(api: &Api<K>, value: Value)
where
    K: Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = value["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply("airlock-test").force(),
        &Patch::Apply(&value),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

/// Applies every Airlock CRD and waits until each is established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("airlock-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    for crd in crd::all() {
        let name = crd.name_any();
        eventually(&format!("CRD {name} established"), || async {
            let c = api.get(&name).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

/// A runtime whose credentials come from the cluster through `client`, caching
/// precompiled components in `cache_dir` (memory only when `None`).
pub fn kube_runtime(
    client: &Client,
    cache_dir: Option<std::path::PathBuf>,
) -> airlock::runtime::Runtime {
    airlock::runtime::Runtime::new(
        &airlock::runtime::EngineConfig {
            cache_dir,
            ..airlock::runtime::EngineConfig::default()
        },
        std::sync::Arc::new(airlock::kube_credentials::KubeCredentials::new(
            client.clone(),
        )),
    )
    .expect("runtime")
}

/// Applies the Provider `fake`, whose module is `fake.wasm` in the operator's providers dir.
pub async fn apply_fake_provider(client: &Client) {
    let api: Api<airlock::crd::Provider> = Api::all(client.clone());
    apply(
        &api,
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "fake"}, "spec": {"module": {"path": "fake.wasm"}}}),
    )
    .await;
}

/// The seed document's ExternalSecret spec (username and password properties of
/// `production/database`) reading from the SecretStore `store` into the Secret `target`.
pub fn seed_external_secret(store: &str, target: &str) -> Value {
    json!({
        "refreshInterval": "1h",
        "secretStoreRef": {"name": store, "kind": "SecretStore"},
        "target": {"name": target, "creationPolicy": "Owner"},
        "data": [
            {"secretKey": "username", "remoteRef": {"key": "production/database", "property": "username"}},
            {"secretKey": "password", "remoteRef": {"key": "production/database", "property": "password"}}
        ]
    })
}

/// Each key of a Secret as (lossy UTF-8) text.
pub fn text_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The Secret's data as text; `None` when it does not exist.
pub async fn secret_text(api: &Api<Secret>, name: &str) -> Option<BTreeMap<String, String>> {
    Some(text_data(&api.get_opt(name).await.ok()??))
}

/// `(key, value)` pairs as the map [`text_data`] returns.
pub fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Waits until the object's `Ready` condition has status `want` and a message containing
/// `needle`, and returns that message. Works for every kind with ESO-style conditions.
pub async fn ready_message<K>(api: &Api<K>, name: &str, want: &str, needle: &str) -> String
where
    K: Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    eventually(
        &format!("{name} Ready={want} mentioning {needle:?}"),
        || async {
            let object = serde_json::to_value(api.get(name).await.ok()?).ok()?;
            let ready = object["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?;
            let message = ready["message"].as_str().unwrap_or_default().to_string();
            (ready["status"] == want && message.contains(needle)).then_some(message)
        },
    )
    .await
}

/// Waits for a Warning `UpdateFailed` event about the ExternalSecret `name` whose note
/// contains `needle`, and returns the note: the Ready condition carries ESO's fixed message,
/// the detail of a failed sync goes to this event, as ESO does.
pub async fn failure_event(client: &Client, namespace: &str, name: &str, needle: &str) -> String {
    warning_event(
        client,
        namespace,
        "ExternalSecret",
        name,
        "UpdateFailed",
        needle,
    )
    .await
}

/// Waits for a Warning event with `reason` about the `kind` object `name` (events of
/// cluster-scoped objects are in `default`) whose note contains `needle`; returns the note.
pub async fn warning_event(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
    needle: &str,
) -> String {
    event(client, namespace, kind, name, ("Warning", reason), needle).await
}

/// Waits for an event of `(type, reason)` about the `kind` object `name` whose note contains
/// `needle`; returns the note.
pub async fn event(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    (type_, reason): (&str, &str),
    needle: &str,
) -> String {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    eventually(
        &format!("a {reason} event about {kind} {name} mentioning {needle:?}"),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                let about = e.regarding.as_ref()?;
                let note = e.note.clone().unwrap_or_default();
                (about.kind.as_deref() == Some(kind)
                    && about.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some(type_)
                    && note.contains(needle))
                .then_some(note)
            })
        },
    )
    .await
}

/// Runs the controllers in-process for `namespace`, with each `(module, file name)` copied
/// into a fresh providers directory; returns the runtime (to wait for a Provider to load)
/// and the directory, which must live as long as the operator.
pub fn run_operator(
    client: &Client,
    namespace: &str,
    modules: &[(&str, &str)],
) -> (airlock::runtime::Runtime, tempfile::TempDir) {
    let providers = tempfile::tempdir().expect("temp dir");
    for (module, file) in modules {
        std::fs::copy(module, providers.path().join(file))
            .unwrap_or_else(|e| panic!("copying {module} to the providers dir: {e}"));
    }
    let cache = std::env::temp_dir().join(format!("airlock-test-cache-{}", std::process::id()));
    let runtime = kube_runtime(client, Some(cache));
    let config = airlock::controller::Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(namespace.to_string()),
        ..airlock::controller::Config::default()
    };
    tokio::spawn(airlock::controller::run(
        client.clone(),
        runtime.clone(),
        config,
    ));
    (runtime, providers)
}

/// Applies the Provider `name` loading `file` from the providers dir, granted `hosts`.
pub async fn apply_provider(client: &Client, name: &str, file: &str, hosts: &[&str]) {
    let api: Api<airlock::crd::Provider> = Api::all(client.clone());
    apply(
        &api,
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": name},
               "spec": {"module": {"path": file}, "allowedOutboundHosts": hosts}}),
    )
    .await;
}
