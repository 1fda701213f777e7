//! Helpers of the tests that run against the real control plane: polling, server-side
//! apply and CRD installation.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use airlock::crd;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long a test waits for the control plane or the operator to converge.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {TIMEOUT:?} waiting for {what}");
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
