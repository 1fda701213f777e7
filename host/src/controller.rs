//! The operator: one kube-rs `Controller` per kind, sharing a [`Context`].
//!
//! - [`provider`] loads the Wasm module of each `Provider` into the runtime.
//! - [`secret_store`] validates SecretStores and ClusterSecretStores.
//! - [`external_secret`] keeps each ExternalSecret's target Secret in sync.
//! - [`cluster_external_secret`] stamps ExternalSecrets into the selected namespaces.
//! - [`push_secret`] pushes Secrets (or generated values) into the stores PushSecrets name.
//!
//! Every reconciler reports failures through one [`Error`] whose [`Error::reason`] is the
//! stable PascalCase word used in messages, events and logs.

mod advice;
pub mod cluster_external_secret;
pub mod external_secret;
pub mod generator;
pub mod leader;
pub mod provider;
pub mod push_secret;
pub mod secret_store;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

pub use self::provider::ModuleHost;
use crate::backend::{BackendError, ProviderError};
use crate::crd::{Condition, ConditionStatus, common::CONDITION_READY};
use crate::registry::RegistryError;
use crate::runtime::RuntimeError;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "airlock";

/// Operator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `Provider.spec.module.path` is resolved (the modules bundled in the image).
    pub providers_dir: PathBuf,
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// How often a store is re-validated when its `refreshInterval` is unset (ESO's
    /// `--store-requeue-interval`).
    pub store_requeue_interval: Duration,
    /// Name reported on Events.
    pub reporter: String,
    /// Watch only this namespace for namespaced kinds (ESO's `--namespace`); all when unset.
    pub namespace: Option<String>,
    /// This operator's controller class (ESO's `--controller-class`): stores whose
    /// `spec.controller` names another class, and ExternalSecrets using them, are left to the
    /// operator of that class. Stores with an empty `spec.controller` are served by all.
    pub controller_class: String,
    /// The namespace the operator runs in: where a Provider's `pullSecretRef` without a
    /// namespace is read.
    pub operator_namespace: String,
    /// Where pulled OCI artifacts are cached by digest (the runtime's cache dir); memory only
    /// (pulled on every load) when unset.
    pub cache_dir: Option<PathBuf>,
}

impl Config {
    /// Whether a store with `spec.controller = class` is this operator's.
    pub fn serves(&self, class: Option<&str>) -> bool {
        class.is_none_or(|c| c.is_empty() || c == self.controller_class)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            providers_dir: PathBuf::from("/providers"),
            concurrency: 8,
            store_requeue_interval: Duration::from_secs(300),
            reporter: "airlock".into(),
            namespace: None,
            controller_class: "default".into(),
            operator_namespace: "default".into(),
            cache_dir: None,
        }
    }
}

/// Removes `finalizer` from `object` if it has it (a finalizer ESO put there and nobody else
/// would remove). The resourceVersion in the patch makes it fail rather than drop a
/// finalizer added meanwhile; an object already gone is fine.
pub(crate) async fn remove_finalizer<K>(
    api: &kube::Api<K>,
    object: &K,
    finalizer: &str,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::ResourceExt as _;
    if !object.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let rest: Vec<&String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": object.resource_version(),
    }});
    match api
        .patch(
            &object.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What every reconciler gets.
pub struct Context<B> {
    /// The Kubernetes client.
    pub client: Client,
    /// The secret backend (the Wasm runtime in the operator).
    pub backend: B,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Settings.
    pub config: Config,
    /// Shares provider reads between ExternalSecrets (one call per ref per refresh window).
    pub coalescer: external_secret::Coalescer,
    failures: Mutex<HashMap<String, u32>>,
    store_changed: Mutex<HashSet<String>>,
    // kube's Recorder folds every event of one type and reason about an object into one
    // series that keeps the first note, so a later, different failure would never be seen;
    // client-go (ESO) keys on the message too. One Recorder per distinct note does the same.
    recorders: Mutex<HashMap<u64, Recorder>>,
    reporter: Reporter,
}

/// How many distinct events' recorders are kept before they are all dropped (a repeat after
/// that starts a new event instead of counting on the old one).
const MAX_EVENT_RECORDERS: usize = 4096;

impl<B> std::fmt::Debug for Context<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<B> Context<B> {
    /// A context for `backend`.
    pub fn new(client: Client, backend: B, config: Config) -> Self {
        let reporter = Reporter {
            controller: config.reporter.clone(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Context {
            client,
            backend,
            recorder,
            config,
            coalescer: external_secret::Coalescer::default(),
            failures: Mutex::default(),
            store_changed: Mutex::default(),
            recorders: Mutex::default(),
            reporter,
        }
    }

    /// Publishes an Event about `object`; a failure to publish is only logged.
    pub(crate) async fn event<K>(&self, object: &K, type_: EventType, reason: &str, note: String)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        use std::hash::{Hash, Hasher};
        let reference = object.object_ref(&());
        let mut key = std::collections::hash_map::DefaultHasher::new();
        (&reference.uid, &reference.namespace, &reference.name).hash(&mut key);
        (type_ == EventType::Warning, reason, &note).hash(&mut key);
        let recorder = {
            let mut recorders = self.recorders.lock().unwrap_or_else(|p| p.into_inner());
            if recorders.len() >= MAX_EVENT_RECORDERS {
                recorders.clear();
            }
            recorders
                .entry(key.finish())
                .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
                .clone()
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }

    /// Per-object exponential backoff after failures: 1 s doubling to 7 min (ESO's limits).
    pub(crate) fn backoff(&self, key: String) -> Action {
        Action::requeue(self.backoff_delay(key))
    }

    /// [`Context::backoff`], but never sooner than a rate-limited backend asked
    /// (`Retry-After`); what it asks is capped at the backoff's own maximum, so a broken or
    /// hostile backend cannot park an object for hours. Each such failure still counts, so
    /// a backend answering `Retry-After: 1` forever is backed off all the same.
    pub(crate) fn backoff_after(&self, key: String, error: &Error) -> Action {
        Action::requeue(honour_retry_after(
            self.backoff_delay(key),
            error.retry_after(),
        ))
    }

    fn backoff_delay(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 1u64 << (*n - 1).min(9);
        Duration::from_secs(secs).min(MAX_BACKOFF)
    }

    /// Records that a store `key` reads from changed its spec: its next reconcile re-fetches.
    pub(crate) fn mark_store_changed(&self, key: String) {
        let mut keys = self.store_changed.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(key);
    }

    /// Whether a store `key` reads from changed since the last call (and forgets it).
    pub(crate) fn take_store_changed(&self, key: &str) -> bool {
        let mut keys = self.store_changed.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(key)
    }

    /// Forgets the failures of an object after a success.
    pub(crate) fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// The longest failure backoff (ESO's 7 min), which also caps a backend's `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(420);

/// The wait before retrying: the backoff, or what the backend `asked` (at most
/// [`MAX_BACKOFF`]) when that is longer.
fn honour_retry_after(backoff: Duration, asked: Option<Duration>) -> Duration {
    asked.map_or(backoff, |a| backoff.max(a.min(MAX_BACKOFF)))
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The provider or the sandbox failed the call.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The runtime could not load a provider.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The store belongs to an operator of another controller class; nothing is done.
    #[error("{0}")]
    OtherControllerClass(String),
    /// The referenced store does not exist.
    #[error("{0}")]
    StoreNotFound(String),
    /// The store's spec cannot be used.
    #[error("{0}")]
    InvalidStore(String),
    /// A ClusterSecretStore refuses this namespace.
    #[error("{0}")]
    StoreNotAllowed(String),
    /// A value the ExternalSecret asks for does not exist at the provider.
    #[error("{0}")]
    SecretNotFoundAtProvider(String),
    /// Fetched data cannot be written (bad key, bad encoding, NUL byte).
    #[error("{0}")]
    InvalidData(String),
    /// A feature this version does not implement yet.
    #[error("{message}")]
    Unsupported {
        /// Stable reason, e.g. `GeneratorNotSupportedYet`.
        reason: &'static str,
        /// What is unsupported.
        message: String,
    },
    /// A template failed to parse or render, or a templateFrom source is missing.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// The target Secret is controlled by another ExternalSecret.
    #[error("{0}")]
    OwnedByAnother(String),
    /// The ExternalSecret asks for something Airlock refuses on security grounds (a Secret
    /// type Kubernetes would fill with credentials).
    #[error("{message}")]
    Forbidden {
        /// Stable reason, e.g. `ForbiddenSecretType`.
        reason: &'static str,
        /// What is refused, why, and what to do instead.
        message: String,
    },
    /// The target Secret is immutable and its data would change.
    #[error("could not update secret, target is immutable")]
    Immutable,
    /// The OCI module cannot be pulled, verified or trusted.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `spec.module.path` is not a relative path inside the providers directory.
    #[error("{0}")]
    ModulePath(String),
    /// The module file cannot be read.
    #[error("cannot read module {path:?} in the providers directory: {source}")]
    ModuleRead {
        /// The file, as `spec.module.path` names it.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// A stable, PascalCase reason for messages, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesAPIError",
            Error::Backend(e) => e.reason(),
            Error::Runtime(e) => e.reason(),
            Error::Registry(e) => e.reason(),
            Error::OtherControllerClass(_) => "OtherControllerClass",
            Error::StoreNotFound(_) => "StoreNotFound",
            Error::InvalidStore(_) => "InvalidStoreConfiguration",
            Error::StoreNotAllowed(_) => "StoreNotAllowed",
            Error::SecretNotFoundAtProvider(_) => "SecretNotFound",
            Error::InvalidData(_) => "InvalidSecretData",
            Error::Unsupported { reason, .. } => reason,
            Error::Template(e) => e.reason(),
            Error::OwnedByAnother(_) => "OwnedByAnotherExternalSecret",
            Error::Immutable => "TargetImmutable",
            Error::Forbidden { reason, .. } => reason,
            Error::ModulePath(_) => "InvalidModulePath",
            Error::ModuleRead { .. } => "ModuleNotFound",
        }
    }

    /// Whether retrying with backoff may help; the others wait for a change of the object.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry(e) => e.is_retryable(),
            other => !matches!(
                other,
                Error::Unsupported { .. }
                    | Error::Forbidden { .. }
                    | Error::OwnedByAnother(_)
                    | Error::Immutable
            ),
        }
    }

    /// How long a rate-limited backend asked to wait (`Retry-After`), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Backend(BackendError::Provider(ProviderError::RateLimited {
                retry_after,
                ..
            })) => *retry_after,
            _ => None,
        }
    }
}

/// Runs every controller until the process is asked to stop.
pub async fn run<B: ModuleHost>(client: Client, backend: B, config: Config) {
    // Compiling the tera component takes a second or two; not on the first tera render.
    std::thread::spawn(crate::template::tera::prepare);
    let ctx = Arc::new(Context::new(client, backend, config));
    tokio::join!(
        provider::run(ctx.clone()),
        secret_store::run_namespaced(ctx.clone()),
        secret_store::run_cluster(ctx.clone()),
        external_secret::run(ctx.clone()),
        cluster_external_secret::run(ctx.clone()),
        push_secret::run(ctx),
    );
}

/// An API for a namespaced kind, limited to the configured namespace if any.
pub(crate) fn scoped_api<K, B>(ctx: &Context<B>) -> kube::Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &ctx.config.namespace {
        Some(ns) => kube::Api::namespaced(ctx.client.clone(), ns),
        None => kube::Api::all(ctx.client.clone()),
    }
}

/// The controller settings shared by all controllers. The concurrency limit is kept by
/// [`crate::metrics::instrument`] instead of kube-rs, so that reconciles waiting for a
/// worker show as the workqueue's depth.
pub(crate) fn controller_config<B>(_ctx: &Context<B>) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(0)
}

/// Now as a Kubernetes time.
pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}

/// A `Ready` condition, keeping the previous transition time when the status is unchanged.
pub(crate) fn ready_condition(
    previous: Option<&[Condition]>,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
) -> Condition {
    let last = previous
        .and_then(|c| c.iter().find(|c| c.type_ == CONDITION_READY))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    Condition {
        type_: CONDITION_READY.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(last.unwrap_or_else(now)),
    }
}

/// The `Ready` condition among `conditions`.
pub(crate) fn find_ready(conditions: Option<&[Condition]>) -> Option<&Condition> {
    conditions?.iter().find(|c| c.type_ == CONDITION_READY)
}

/// Logs the end of a reconcile stream item, and drops the metrics of an object that is gone.
pub(crate) fn log_result<T: std::fmt::Debug, E, Q>(
    controller: &'static str,
    result: Result<T, kube::runtime::controller::Error<E, Q>>,
) where
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    match result {
        Ok(o) => tracing::debug!(controller, object = ?o, "reconciled"),
        Err(kube::runtime::controller::Error::ObjectNotFound(gone)) => {
            if let Some(kind) = crate::metrics::Kind::from_controller(controller) {
                let namespace = gone.namespace.as_deref().unwrap_or_default();
                crate::metrics::global().forget(kind, namespace, &gone.name);
            }
        }
        Err(e) => tracing::debug!(controller, error = %e, "reconcile failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_lengthens_the_backoff_but_never_past_its_maximum() {
        let s = Duration::from_secs;
        assert_eq!(honour_retry_after(s(2), None), s(2));
        assert_eq!(honour_retry_after(s(2), Some(s(30))), s(30));
        // A shorter Retry-After than the backoff does not speed the retry up.
        assert_eq!(honour_retry_after(s(64), Some(s(1))), s(64));
        assert_eq!(honour_retry_after(s(1), Some(s(86_400))), MAX_BACKOFF);
    }

    #[test]
    fn only_a_rate_limited_provider_error_carries_a_retry_after() {
        let limited = |retry_after| {
            Error::Backend(BackendError::Provider(ProviderError::RateLimited {
                retry_after,
                message: "slow down".into(),
            }))
        };
        let s = Duration::from_secs;
        assert_eq!(limited(Some(s(7))).retry_after(), Some(s(7)));
        assert_eq!(limited(None).retry_after(), None);
        let down = Error::Backend(BackendError::Provider(ProviderError::Unavailable(
            "down".into(),
        )));
        assert_eq!(down.retry_after(), None);
    }
}
