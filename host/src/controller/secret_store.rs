//! The SecretStore and ClusterSecretStore reconciler: asks the provider to validate the store
//! and reports `Ready` (`Valid`, `ValidationUnknown` or `InvalidProviderConfig`) and the
//! provider's capabilities, then re-validates at the store's `refreshInterval`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Context, Error, ModuleHost, find_ready, log_result, ready_condition};
use crate::backend::{Capabilities, StoreContext, StoreInfo, StoreKind, Validation};
use crate::crd::{
    ClusterSecretStore, ConditionStatus, GoDuration, Provider, SecretStore, SecretStoreSpec,
};
use crate::runtime::TlsSettings;

/// Builds what the backend needs to serve a store: the Provider's name (the key under
/// `spec.provider`, lowercased), its configuration and the store's identity. `namespace` is
/// the SecretStore's namespace, or for a ClusterSecretStore the namespace it is used from.
pub fn store_context(
    spec: &SecretStoreSpec,
    kind: StoreKind,
    name: &str,
    namespace: &str,
) -> Result<StoreContext, Error> {
    let (key, config) = spec.provider_config().ok_or_else(|| {
        Error::InvalidStore(format!(
            "{} {name:?}: spec.provider must have exactly one key naming the provider",
            kind_name(kind)
        ))
    })?;
    Ok(StoreContext {
        provider: key.to_lowercase(),
        config: serde_json::Value::Object(config.clone()),
        info: StoreInfo {
            kind,
            name: name.into(),
            namespace: namespace.into(),
        },
        tls: TlsSettings::default(),
    })
}

/// `SecretStore` or `ClusterSecretStore`.
pub fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::SecretStore => "SecretStore",
        StoreKind::ClusterSecretStore => "ClusterSecretStore",
    }
}

/// The two store kinds, for one generic reconciler.
pub trait StoreResource:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
    /// Which kind.
    const KIND: StoreKind;
    /// The spec.
    fn spec(&self) -> &SecretStoreSpec;
    /// The current conditions.
    fn conditions(&self) -> Option<&[crate::crd::Condition]>;
    /// The API for this object.
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
    /// The API the controller watches.
    fn watched<B>(ctx: &Context<B>) -> Api<Self>;
}

impl StoreResource for SecretStore {
    const KIND: StoreKind = StoreKind::SecretStore;
    fn spec(&self) -> &SecretStoreSpec {
        &self.spec
    }
    fn conditions(&self) -> Option<&[crate::crd::Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
    fn watched<B>(ctx: &Context<B>) -> Api<Self> {
        super::scoped_api(ctx)
    }
}

impl StoreResource for ClusterSecretStore {
    const KIND: StoreKind = StoreKind::ClusterSecretStore;
    fn spec(&self) -> &SecretStoreSpec {
        &self.spec
    }
    fn conditions(&self) -> Option<&[crate::crd::Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
    fn watched<B>(ctx: &Context<B>) -> Api<Self> {
        Api::all(ctx.client.clone())
    }
}

/// Runs the SecretStore controller.
pub async fn run_namespaced<B: ModuleHost>(ctx: Arc<Context<B>>) {
    run::<SecretStore, B>(ctx).await
}

/// Runs the ClusterSecretStore controller.
pub async fn run_cluster<B: ModuleHost>(ctx: Arc<Context<B>>) {
    run::<ClusterSecretStore, B>(ctx).await
}

async fn run<S: StoreResource, B: ModuleHost>(ctx: Arc<Context<B>>) {
    let api = S::watched(&ctx);
    let controller = Controller::new(api, watcher::Config::default());
    let stores = controller.store();
    // A store using a Provider is re-validated as soon as that Provider (re)loads.
    let providers: Api<Provider> = Api::all(ctx.client.clone());
    controller
        .watches(providers, watcher::Config::default(), move |p: Provider| {
            let name = p.name_any();
            stores
                .state()
                .into_iter()
                .filter(|s| {
                    s.spec()
                        .provider_config()
                        .is_some_and(|(key, _)| key.to_lowercase() == name)
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(reconcile::<S, B>, error_policy::<S, B>, ctx)
        .for_each(|r| async move { log_result(kind_name(S::KIND), r) })
        .await;
}

fn key<S: StoreResource>(s: &S) -> String {
    format!(
        "{}/{}/{}",
        kind_name(S::KIND),
        s.namespace().unwrap_or_default(),
        s.name_any()
    )
}

fn error_policy<S: StoreResource, B: ModuleHost>(
    s: Arc<S>,
    _: &Error,
    ctx: Arc<Context<B>>,
) -> Action {
    ctx.backoff(key(s.as_ref()))
}

/// The store's re-validation interval: `spec.refreshInterval` (seconds or a duration), else
/// the operator default.
fn requeue_interval(spec: &SecretStoreSpec, default: Duration) -> Duration {
    let parsed = match &spec.refresh_interval {
        Some(IntOrString::Int(secs)) => u64::try_from(*secs).ok().map(Duration::from_secs),
        Some(IntOrString::String(text)) => GoDuration::new(text.clone()).parse().ok(),
        None => None,
    };
    parsed.filter(|d| !d.is_zero()).unwrap_or(default)
}

fn capabilities_name(c: Capabilities) -> &'static str {
    c.as_str()
}

async fn reconcile<S: StoreResource, B: ModuleHost>(
    s: Arc<S>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let name = s.name_any();
    let namespace = s.namespace().unwrap_or_default();
    let previous = s.conditions();
    let outcome = async {
        let store = store_context(s.spec(), S::KIND, &name, &namespace)?;
        let capabilities = ctx.backend.capabilities(&store)?;
        let validation = ctx.backend.validate(&store).await?;
        Ok::<_, Error>((capabilities, validation))
    }
    .await;
    let (condition, capabilities) = match &outcome {
        Ok((caps, Validation::Ready)) => (
            ready_condition(previous, ConditionStatus::True, "Valid", "store validated"),
            Some(*caps),
        ),
        Ok((caps, Validation::Unknown)) => (
            ready_condition(
                previous,
                ConditionStatus::True,
                "ValidationUnknown",
                "the provider cannot tell whether the store is valid",
            ),
            Some(*caps),
        ),
        Err(e) => (
            ready_condition(
                previous,
                ConditionStatus::False,
                "InvalidProviderConfig",
                format!("unable to validate store ({}): {e}", e.reason()),
            ),
            None,
        ),
    };
    let old = find_ready(previous);
    let transitioned = old.map(|c| (c.status, c.message.clone()))
        != Some((condition.status, condition.message.clone()));
    if transitioned {
        let (type_, reason) = match condition.status {
            ConditionStatus::True => (EventType::Normal, condition.reason.clone()),
            _ => (EventType::Warning, condition.reason.clone()),
        };
        ctx.event(
            s.as_ref(),
            type_,
            reason.as_deref().unwrap_or("Valid"),
            condition.message.clone().unwrap_or_default(),
        )
        .await;
    }
    let patch = json!({"status": {
        "conditions": [condition],
        "capabilities": capabilities.map(capabilities_name),
    }});
    S::api(ctx.client.clone(), s.namespace().as_deref())
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    match outcome {
        Ok(_) => {
            ctx.succeeded(&key(s.as_ref()));
            Ok(Action::requeue(requeue_interval(
                s.spec(),
                ctx.config.store_requeue_interval,
            )))
        }
        Err(e) => Err(e),
    }
}
