//! The ExternalSecret reconciler: fetches what an ExternalSecret asks for from its store's
//! provider and writes the target Secret with server-side apply.
//!
//! A failure never deletes or blanks an existing Secret: it sets `Ready=False` with reason
//! `SecretSyncedError`, publishes a Warning event and retries with backoff. Managed Secrets
//! are watched (by the managed label) so that an edited or deleted Secret is repaired.

mod coalesce;
mod data;
mod hash;
mod stores;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, Error, FIELD_MANAGER, ModuleHost, find_ready, log_result, ready_condition};
use crate::backend::{
    Backend, BackendError, FindCriteria, MetadataPolicy, RemoteRef, SecretValue, StoreContext,
};
use crate::crd::common::{
    CREATED_BY_LABEL, DATA_HASH_ANNOTATION, MANAGED_LABEL, SecretStoreRef, StoreKind as CrdKind,
};
use crate::crd::external_secret::{
    CreationPolicy, DeletionPolicy, ExternalSecretDataRemoteRef, ExternalSecretTemplate,
    RefreshPolicy,
};
use crate::crd::{ClusterSecretStore, ConditionStatus, ExternalSecret, SecretStore};
use crate::template::{ENGINE_ANNOTATION, Engine, Sources};

pub use self::coalesce::Coalescer;
pub use self::data::{check_key, check_null_bytes, convert_key, decode, rewrite_key};
pub use self::hash::{created_by, data_hash, meta_hash};
pub use self::stores::{resolve_store, selector_matches, store_for};

/// Refresh interval used when `spec.refreshInterval` does not parse (ESO's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

// ESO's fixed `Ready=False` messages, one per step that can fail: users grep and alert on
// them, so they never carry the detail (that goes to the Warning `UpdateFailed` event).
const MSG_GET_SECRET_DATA: &str = "could not get secret data from provider";
const MSG_DELETE_SECRET: &str = "could not delete secret";
const MSG_DELETE_ORPHANED: &str = "could not delete orphaned secrets";
const MSG_UPDATE_SECRET: &str = "could not update secret";
const MSG_UPDATE_IMMUTABLE: &str = "could not update secret, target is immutable";
const MSG_BECOME_OWNER: &str = "failed to take ownership of target secret";
const MSG_IS_OWNED: &str = "target is owned by another ExternalSecret";

/// A failed sync (or store validation): ESO's condition message for the step that failed,
/// and what went wrong.
pub(super) struct Failure {
    pub(super) message: &'static str,
    pub(super) error: Error,
}

/// Tags the error of one sync step with that step's condition message.
pub(super) trait Step<T> {
    fn step(self, message: &'static str) -> Result<T, Failure>;
}

impl<T, E: Into<Error>> Step<T> for Result<T, E> {
    fn step(self, message: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            message,
            error: e.into(),
        })
    }
}

/// Runs the ExternalSecret controller, watching managed Secrets for drift and the stores
/// for spec changes (a changed store re-syncs the ExternalSecrets reading from it at once).
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    let api: Api<ExternalSecret> = super::scoped_api(&ctx);
    let controller = Controller::new(api, watcher::Config::default());
    let store = controller.store();
    let secrets: Api<Secret> = super::scoped_api(&ctx);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
    let stores: Api<SecretStore> = super::scoped_api(&ctx);
    let cluster_stores: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
    let generations = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    let (es_cache, es_ctx, seen) = (store.clone(), ctx.clone(), generations.clone());
    let on_store = move |s: SecretStore| {
        let Some(change) = store_change(&seen, "SecretStore", &s) else {
            return Vec::new();
        };
        let found = dependents(
            &es_cache,
            CrdKind::SecretStore,
            s.namespace(),
            &s.name_any(),
        );
        triggered(&es_ctx, found, change)
    };
    let (es_cache, es_ctx, seen) = (store.clone(), ctx.clone(), generations);
    let on_cluster_store = move |s: ClusterSecretStore| {
        let Some(change) = store_change(&seen, "ClusterSecretStore", &s) else {
            return Vec::new();
        };
        let found = dependents(&es_cache, CrdKind::ClusterSecretStore, None, &s.name_any());
        triggered(&es_ctx, found, change)
    };
    controller
        .watches(secrets, managed, move |secret: Secret| {
            let namespace = secret.namespace();
            // An owned Secret (creationPolicy Owner, the default) names its ExternalSecret:
            // no scan over every ExternalSecret for each Secret event.
            if let Some(owner) = secret.owner_references().iter().find(|o| {
                o.kind == "ExternalSecret" && o.api_version.starts_with("external-secrets.io/")
            }) {
                let owner = ObjectRef::<ExternalSecret>::new(&owner.name);
                return vec![match &namespace {
                    Some(ns) => owner.within(ns),
                    None => owner,
                }];
            }
            let name = secret.name_any();
            store
                .state()
                .into_iter()
                .filter(|es| es.namespace() == namespace && target_name(es) == name)
                .map(|es| ObjectRef::from_obj(es.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches(stores, watcher::Config::default(), on_store)
        .watches(cluster_stores, watcher::Config::default(), on_cluster_store)
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(
            crate::metrics::instrument(
                crate::metrics::Kind::ExternalSecret,
                ctx.config.concurrency,
                reconcile,
            ),
            error_policy,
            ctx,
        )
        .for_each(|r| async move { log_result("externalsecret", r) })
        .await;
}

/// What a store watch event means for the ExternalSecrets reading from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreChange {
    /// The store is seen for the first time (operator start, or a new store).
    New,
    /// `metadata.generation` changed: the spec was edited.
    Spec,
}

/// Compares the store's `metadata.generation` with the last one seen; `None` when it is the
/// same (status-only updates keep the generation, so they trigger nothing).
fn store_change<S: Resource>(
    seen: &Mutex<HashMap<String, i64>>,
    kind: &str,
    s: &S,
) -> Option<StoreChange> {
    let id = format!(
        "{kind}/{}/{}",
        s.meta().namespace.as_deref().unwrap_or_default(),
        s.meta().name.as_deref().unwrap_or_default()
    );
    let generation = s.meta().generation.unwrap_or_default();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    match seen.insert(id, generation) {
        None => Some(StoreChange::New),
        Some(g) if g != generation => Some(StoreChange::Spec),
        Some(_) => None,
    }
}

/// The ExternalSecrets that read from the store `kind`/`name` (a SecretStore in `namespace`,
/// or a ClusterSecretStore from any namespace), through `spec.secretStoreRef` or an entry's
/// `sourceRef.storeRef`.
fn dependents(
    cache: &kube::runtime::reflector::Store<ExternalSecret>,
    kind: CrdKind,
    namespace: Option<String>,
    name: &str,
) -> Vec<Arc<ExternalSecret>> {
    let uses = |r: Option<&SecretStoreRef>| {
        r.is_some_and(|r| r.name == name && r.kind_or_default() == kind)
    };
    cache
        .state()
        .into_iter()
        .filter(|es| kind == CrdKind::ClusterSecretStore || es.namespace() == namespace)
        .filter(|es| {
            let spec = &es.spec;
            let default = spec.secret_store_ref.as_ref();
            let data = spec.data.iter().flatten().map(|d| {
                d.source_ref
                    .as_ref()
                    .and_then(|s| s.store_ref.as_ref())
                    .or(default)
            });
            let data_from = spec.data_from.iter().flatten().map(|d| {
                d.source_ref
                    .as_ref()
                    .and_then(|s| s.store_ref.as_ref())
                    .or(default)
            });
            uses(default) || data.chain(data_from).any(uses)
        })
        .collect()
}

/// The ExternalSecrets to reconcile after a store event.
///
/// A new store only triggers a reconcile, which follows the usual refresh rules (an
/// ExternalSecret that failed for want of the store syncs at once; a synced one is not
/// re-fetched when the operator starts). A spec change also flags them for a re-fetch on
/// their next reconcile; only periodic refreshes follow spec changes: `CreatedOnce`,
/// `OnChange` and a zero `refreshInterval` (fetch once) keep their meaning.
fn triggered<B>(
    ctx: &Context<B>,
    dependents: Vec<Arc<ExternalSecret>>,
    change: StoreChange,
) -> Vec<ObjectRef<ExternalSecret>> {
    dependents
        .into_iter()
        .filter(|es| {
            change == StoreChange::New
                || (matches!(es.spec.refresh_policy, None | Some(RefreshPolicy::Periodic))
                    && !interval(es).is_zero())
        })
        .map(|es| {
            if change == StoreChange::Spec {
                ctx.mark_store_changed(key(&es));
            }
            ObjectRef::from_obj(es.as_ref())
        })
        .collect()
}

fn key(es: &ExternalSecret) -> String {
    format!(
        "externalsecret/{}/{}",
        es.namespace().unwrap_or_default(),
        es.name_any()
    )
}

fn error_policy<B: ModuleHost>(es: Arc<ExternalSecret>, e: &Error, ctx: Arc<Context<B>>) -> Action {
    ctx.backoff_after(key(&es), e)
}

/// The target Secret's name: `spec.target.name`, else the ExternalSecret's name.
pub fn target_name(es: &ExternalSecret) -> String {
    es.spec
        .target
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| es.name_any())
}

/// `<generation>-<hash of labels and annotations>`, as ESO computes it: a change means the
/// user changed the ExternalSecret (including the force-sync annotation).
pub fn synced_resource_version(es: &ExternalSecret) -> String {
    format!(
        "{}-{}",
        es.meta().generation.unwrap_or_default(),
        hash::meta_hash(es.labels(), es.annotations())
    )
}

fn interval(es: &ExternalSecret) -> Duration {
    es.spec.refresh_interval.parse().unwrap_or(DEFAULT_INTERVAL)
}

fn seconds_since(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second() - time.0.as_second()
}

/// How old a value read for another ExternalSecret may be and still serve this one: its
/// refresh interval, or zero (read fresh) when its spec or annotations changed since its
/// last sync — an edit or a force-sync.
fn reuse_window(es: &ExternalSecret) -> Duration {
    let synced = es
        .status
        .as_ref()
        .and_then(|s| s.synced_resource_version.as_deref());
    match synced {
        Some(v) if v != synced_resource_version(es) => Duration::ZERO,
        _ => interval(es),
    }
}

/// ESO's `shouldRefresh`: whether this reconcile must fetch from the provider.
pub fn should_refresh(es: &ExternalSecret) -> bool {
    let status = es.status.as_ref();
    let refresh_time = status.and_then(|s| s.refresh_time.as_ref());
    let synced = status.and_then(|s| s.synced_resource_version.as_deref());
    let ready = find_ready(status.and_then(|s| s.conditions.as_deref()))
        .is_some_and(|c| c.status == ConditionStatus::True);
    if !ready {
        return true;
    }
    let current = synced_resource_version(es);
    match es.spec.refresh_policy {
        Some(RefreshPolicy::CreatedOnce) => synced.is_none() || refresh_time.is_none(),
        Some(RefreshPolicy::OnChange) => synced != Some(current.as_str()),
        Some(RefreshPolicy::Periodic) | None => {
            let every = interval(es);
            let Some(refreshed) = refresh_time else {
                return true;
            };
            if every.is_zero() {
                return false;
            }
            if synced != Some(current.as_str()) {
                return true;
            }
            let age = seconds_since(refreshed);
            age < 0 || age as u64 >= every.as_secs()
        }
    }
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .as_ref()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// Whether the existing target still is what the last sync wrote.
fn secret_valid(es: &ExternalSecret, existing: Option<&Secret>) -> bool {
    let policy = es.spec.target.creation_policy;
    match (policy, existing) {
        (CreationPolicy::Orphan | CreationPolicy::None, _) => true,
        (CreationPolicy::Merge, None) => true,
        (_, None) => false,
        (_, Some(s)) => {
            s.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true")
                && s.annotations().get(DATA_HASH_ANNOTATION) == Some(&data_hash(&secret_data(s)))
        }
    }
}

/// How a successful sync ended.
struct Synced {
    reason: &'static str,
    message: &'static str,
    event: Option<(&'static str, &'static str)>,
}

impl Synced {
    fn ok(event: Option<(&'static str, &'static str)>) -> Self {
        Synced {
            reason: "SecretSynced",
            message: "secret synced",
            event,
        }
    }
}

async fn reconcile<B: ModuleHost>(
    es: Arc<ExternalSecret>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let namespace = es.namespace().unwrap_or_default();
    let name = es.name_any();
    if es.meta().deletion_timestamp.is_some() {
        release_eso_finalizer(&ctx, &es).await?;
        return Ok(Action::await_change());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let target = target_name(&es);
    let existing = secrets.get_opt(&target).await?;
    let every = interval(&es);
    let store_changed = ctx.take_store_changed(&key(&es));
    if !store_changed && !should_refresh(&es) && secret_valid(&es, existing.as_ref()) {
        let next = match es.status.as_ref().and_then(|s| s.refresh_time.as_ref()) {
            _ if every.is_zero() => return Ok(Action::await_change()),
            Some(t) => every.saturating_sub(Duration::from_secs(seconds_since(t).max(0) as u64)),
            None => every,
        };
        return Ok(Action::requeue(next.max(Duration::from_secs(1))));
    }
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous = es.status.as_ref().and_then(|s| s.conditions.as_deref());
    let started = super::now();
    match sync(&es, &ctx, existing).await {
        Ok(done) => {
            crate::metrics::global().external_secret_synced(&namespace, &name, true);
            let condition =
                ready_condition(previous, ConditionStatus::True, done.reason, done.message);
            let status = json!({"status": {
                "conditions": [condition],
                "refreshTime": started,
                "syncedResourceVersion": synced_resource_version(&es),
                "binding": {"name": target},
            }});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            if let Some((reason, note)) = done.event {
                ctx.event(es.as_ref(), EventType::Normal, reason, note.into())
                    .await;
            }
            ctx.succeeded(&key(&es));
            Ok(if every.is_zero() {
                Action::await_change()
            } else {
                Action::requeue(every)
            })
        }
        Err(Failure {
            error: Error::OtherControllerClass(why),
            ..
        }) => {
            tracing::debug!(externalsecret = %format!("{namespace}/{name}"), %why, "left to another controller class");
            Ok(Action::await_change())
        }
        Err(Failure { message, error: e }) => {
            crate::metrics::global().external_secret_synced(&namespace, &name, false);
            let detail = super::advice::failure_note(&e, None);
            tracing::warn!(externalsecret = %format!("{namespace}/{name}"), reason = e.reason(), error = %detail, "sync failed: {message}");
            let condition = ready_condition(
                previous,
                ConditionStatus::False,
                "SecretSyncedError",
                message,
            );
            let status = json!({"status": {"conditions": [condition]}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            ctx.event(es.as_ref(), EventType::Warning, "UpdateFailed", detail)
                .await;
            if e.is_retryable() {
                Err(e)
            } else {
                Ok(Action::await_change())
            }
        }
    }
}

async fn sync<B: ModuleHost>(
    es: &ExternalSecret,
    ctx: &Context<B>,
    existing: Option<Secret>,
) -> Result<Synced, Failure> {
    if es.spec.target.manifest.is_some() {
        return Err(Error::Unsupported {
            reason: "GenericTargetNotSupportedYet",
            message: "spec.target.manifest (generic targets) is not supported yet".into(),
        })
        .step(MSG_UPDATE_SECRET);
    }
    // The engine also renders `rewrite[].transform`, a step of reading the data.
    let engine = template_engine(es).step(MSG_GET_SECRET_DATA)?;
    let data = fetch(es, ctx, engine).await.step(MSG_GET_SECRET_DATA)?;
    let target = &es.spec.target;
    if data.is_empty() {
        match target.deletion_policy {
            DeletionPolicy::Retain => {
                return Ok(Synced {
                    reason: "SecretSynced",
                    message: "secret retained due to DeletionPolicy=Retain",
                    event: None,
                });
            }
            DeletionPolicy::Delete => {
                let mut deleted = false;
                if let Some(s) = &existing
                    && target.creation_policy == CreationPolicy::Owner
                    && controlled_by(s, es)
                {
                    let api: Api<Secret> =
                        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
                    api.delete(&s.name_any(), &DeleteParams::default())
                        .await
                        .step(MSG_DELETE_SECRET)?;
                    deleted = true;
                }
                return Ok(Synced {
                    reason: "SecretDeleted",
                    message: "secret deleted due to DeletionPolicy=Delete",
                    event: deleted
                        .then_some(("Deleted", "secret deleted due to DeletionPolicy=Delete")),
                });
            }
            DeletionPolicy::Merge => {}
        }
    }
    // Everything renders before anything is written: a template error leaves the Secret as
    // it was.
    let shape = match &target.template {
        Some(template) => {
            // ESO renders templates while updating the Secret: their errors read as such.
            let sources = template_sources(es, ctx, template)
                .await
                .step(MSG_UPDATE_SECRET)?;
            let fetched: BTreeMap<String, Vec<u8>> = data
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_vec()))
                .collect();
            let rendered = crate::template::apply(template, engine, &fetched, &sources)
                .map_err(|e| redact_template_error(e, &fetched, &sources))
                .step(MSG_UPDATE_SECRET)?;
            Shape {
                data: rendered
                    .data
                    .into_iter()
                    .map(|(k, v)| (k, SecretValue::new(v)))
                    .collect(),
                labels: rendered.labels,
                annotations: rendered.annotations,
                type_: rendered.type_,
            }
        }
        // Without a template ESO carries the ExternalSecret's own labels and annotations
        // (all of them) to the Secret.
        None => Shape {
            data,
            labels: es.labels().clone(),
            annotations: es.annotations().clone(),
            type_: None,
        },
    };
    for key in shape.data.keys() {
        check_key(key, "spec.target.template").step(MSG_UPDATE_SECRET)?;
    }
    check_secret_type(shape.type_.as_deref()).step(MSG_UPDATE_SECRET)?;
    write(es, ctx, existing, shape).await
}

/// A template error without the fetched values and templateFrom Secret values it may quote
/// (`{{ fail .password }}`): its text goes to the status, a Warning Event and the log.
fn redact_template_error(
    e: crate::template::TemplateError,
    fetched: &BTreeMap<String, Vec<u8>>,
    sources: &Sources,
) -> crate::template::TemplateError {
    let mut redactor = crate::runtime::redact::Redactor::default();
    for value in fetched
        .values()
        .chain(sources.secrets.values().flat_map(BTreeMap::values))
    {
        redactor.add(value);
    }
    e.redact_with(|text| redactor.redact_string(text))
}

/// Secret types Kubernetes itself fills with credentials: a `service-account-token` Secret
/// gets a long-lived token of the ServiceAccount its annotation names, a bootstrap token
/// joins nodes. Writing one would let whoever may create an ExternalSecret mint credentials
/// (ESO advisory GHSA-fq7h-9x26-6j22, CVE-2026-42876), so they are refused as ESO now does.
const FORBIDDEN_SECRET_TYPES: [&str; 2] = [
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
];

/// Refuses a target type from [`FORBIDDEN_SECRET_TYPES`], before anything is written.
fn check_secret_type(type_: Option<&str>) -> Result<(), Error> {
    match type_ {
        Some(t) if FORBIDDEN_SECRET_TYPES.contains(&t) => Err(Error::Forbidden {
            reason: "ForbiddenSecretType",
            message: format!(
                "spec.target.template.type {t:?} is refused: Kubernetes fills such Secrets with \
                 ServiceAccount or bootstrap tokens, so an ExternalSecret must not create one \
                 (GHSA-fq7h-9x26-6j22); use another type, and get ServiceAccount tokens from \
                 the TokenRequest API (a store's serviceAccountRef) instead"
            ),
        }),
        _ => Ok(()),
    }
}

/// What the target Secret gets: data, and from a template its labels, annotations and type.
#[derive(Default)]
struct Shape {
    data: BTreeMap<String, SecretValue>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    type_: Option<String>,
}

/// The template engine the ExternalSecret asks for (annotation `airlock.dev/template-engine`).
fn template_engine(es: &ExternalSecret) -> Result<Engine, Error> {
    Ok(Engine::from_annotation(
        es.annotations().get(ENGINE_ANNOTATION).map(String::as_str),
    )?)
}

/// Reads the ConfigMaps and Secrets `templateFrom` names, from the ExternalSecret's own
/// namespace only. A missing one is reported by `template::apply` with its index.
async fn template_sources<B>(
    es: &ExternalSecret,
    ctx: &Context<B>,
    template: &ExternalSecretTemplate,
) -> Result<Sources, Error> {
    let namespace = es.namespace().unwrap_or_default();
    let (config_maps, secrets) = crate::template::apply::source_names(template);
    let mut sources = Sources::default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    for name in config_maps {
        if let Some(cm) = cms.get_opt(&name).await? {
            let mut map: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            map.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            sources.config_maps.insert(name, map);
        }
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for name in secrets {
        if let Some(secret) = api.get_opt(&name).await? {
            sources.secrets.insert(name, secret_data(&secret));
        }
    }
    Ok(sources)
}

fn controller_of(
    s: &Secret,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    s.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
}

fn controlled_by(s: &Secret, es: &ExternalSecret) -> bool {
    controller_of(s).is_some_and(|o| Some(&o.uid) == es.meta().uid.as_ref())
}

async fn write<B: ModuleHost>(
    es: &ExternalSecret,
    ctx: &Context<B>,
    existing: Option<Secret>,
    shape: Shape,
) -> Result<Synced, Failure> {
    let data = &shape.data;
    let target = &es.spec.target;
    let policy = target.creation_policy;
    if policy == CreationPolicy::None {
        return Ok(Synced::ok(None));
    }
    if let Some(s) = &existing
        && let Some(owner) = controller_of(s)
        && Some(&owner.uid) != es.meta().uid.as_ref()
    {
        if owner.kind == "ExternalSecret" {
            return Err(Error::OwnedByAnother(format!(
                "target is owned by another ExternalSecret ({})",
                owner.name
            )))
            .step(MSG_IS_OWNED);
        }
        if policy == CreationPolicy::Owner {
            return Err(Error::OwnedByAnother(format!(
                "failed to take ownership of target secret: it is controlled by {} {}",
                owner.kind, owner.name
            )))
            .step(MSG_BECOME_OWNER);
        }
    }
    if policy == CreationPolicy::Merge && existing.is_none() {
        return Ok(Synced {
            reason: "SecretMissing",
            message: "secret will not be created due to CreationPolicy=Merge",
            event: None,
        });
    }
    let merge = matches!(
        policy,
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge
    );
    // Merging keeps the keys of other field managers; keys the operator applied before and
    // no longer has (removed at the provider or from the spec) go, as server-side apply
    // drops them.
    let mut full: BTreeMap<String, Vec<u8>> = match (&existing, merge) {
        (Some(s), true) => {
            let ours = applied_data_keys(s, &es.name_any());
            secret_data(s)
                .into_iter()
                .filter(|(k, _)| !ours.contains(k))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    for (k, v) in data {
        full.insert(k.clone(), v.expose().to_vec());
    }
    let hash = data_hash(&full);
    let namespace = es.namespace().unwrap_or_default();
    let name = target_name(es);

    let mut labels = shape.labels.clone();
    let mut annotations = shape.annotations.clone();
    labels.insert(MANAGED_LABEL.into(), "true".into());
    annotations.insert(DATA_HASH_ANNOTATION.into(), hash.clone());
    // As ESO, the template's finalizers go on the Secret, unless it is being deleted (the
    // apiserver refuses new finalizers then).
    let finalizers: Vec<String> = match &existing {
        Some(s) if s.meta().deletion_timestamp.is_some() => Vec::new(),
        _ => target
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.finalizers.clone())
            .unwrap_or_default(),
    };
    let owner = policy == CreationPolicy::Owner;
    if owner {
        labels.insert(
            CREATED_BY_LABEL.into(),
            created_by(&namespace, &es.name_any()),
        );
    }

    if let Some(s) = &existing {
        let unchanged = secret_data(s) == full
            && labels.iter().all(|(k, v)| s.labels().get(k) == Some(v))
            && annotations
                .iter()
                .all(|(k, v)| s.annotations().get(k) == Some(v))
            && finalizers.iter().all(|f| s.finalizers().contains(f))
            && (!owner || controlled_by(s, es))
            && (target.immutable != Some(true) || s.immutable == Some(true))
            && shape
                .type_
                .as_ref()
                .is_none_or(|t| s.type_.as_ref() == Some(t));
        if unchanged {
            return Ok(Synced::ok(None));
        }
        if s.immutable == Some(true) && secret_data(s) != full {
            return Err(Error::Immutable).step(MSG_UPDATE_IMMUTABLE);
        }
    }

    let encoded: BTreeMap<&str, String> = data
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                base64::engine::general_purpose::STANDARD.encode(v.expose()),
            )
        })
        .collect();
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": annotations,
    });
    if !finalizers.is_empty() {
        metadata["finalizers"] = json!(finalizers);
    }
    if owner {
        metadata["ownerReferences"] = json!([{
            "apiVersion": ExternalSecret::api_version(&()),
            "kind": ExternalSecret::kind(&()),
            "name": es.name_any(),
            "uid": es.meta().uid.clone().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "data": encoded,
    });
    if let Some(t) = &shape.type_ {
        object["type"] = json!(t);
    }
    if target.immutable == Some(true) {
        object["immutable"] = json!(true);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .step(MSG_UPDATE_SECRET)?;
    if !merge {
        // Owner and Orphan replace the data: drop keys other field managers put there.
        let extra: serde_json::Map<String, serde_json::Value> = secret_data(&applied)
            .into_keys()
            .filter(|k| !data.contains_key(k))
            .map(|k| (k, serde_json::Value::Null))
            .collect();
        if !extra.is_empty() {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"data": extra})),
            )
            .await
            .step(MSG_UPDATE_SECRET)?;
        }
    }
    if owner {
        let deleted = delete_renamed_targets(&api, es, &name)
            .await
            .step(MSG_DELETE_ORPHANED)?;
        for _ in 0..deleted {
            // ESO's event for each orphan it deletes (one per Secret, same text).
            ctx.event(
                es,
                EventType::Normal,
                "Deleted",
                "secret deleted because it was orphaned".into(),
            )
            .await;
        }
    }
    Ok(Synced::ok(Some(if existing.is_some() {
        ("Updated", "secret updated")
    } else {
        ("Created", "secret created")
    })))
}

/// The finalizer ESO puts on every ExternalSecret.
const ESO_FINALIZER: &str = "externalsecrets.external-secrets.io/externalsecret-cleanup";

/// Removes ESO's finalizer from a deleted ExternalSecret: with ESO gone nobody else would, and
/// the ExternalSecret would never go. ESO's cleanup needs nothing more here: an owned target
/// goes with its owner through the garbage collector.
async fn release_eso_finalizer<B>(ctx: &Context<B>, es: &ExternalSecret) -> Result<(), Error> {
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    Ok(super::remove_finalizer(&api, es, ESO_FINALIZER).await?)
}

/// ESO's field manager for the ExternalSecret `name` (`fqdnFor` in ESO).
fn eso_field_manager(name: &str) -> String {
    let manager = format!("externalsecrets.external-secrets.io/{name}");
    if manager.len() > 63 {
        use sha3::Digest as _;
        format!(
            "externalsecrets.external-secrets.io/sha3/{}",
            hex::encode(sha3::Sha3_224::digest(name.as_bytes()))
        )
    } else {
        manager
    }
}

/// The `data` keys this ExternalSecret wrote: through Airlock's server-side apply, or through
/// ESO's field manager for it before a migration.
fn applied_data_keys(secret: &Secret, es_name: &str) -> std::collections::HashSet<String> {
    let eso = eso_field_manager(es_name);
    secret
        .managed_fields()
        .iter()
        .filter(|m| {
            (m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply"))
                || m.manager.as_deref() == Some(eso.as_str())
        })
        .filter_map(|m| m.fields_v1.as_ref()?.0.get("f:data")?.as_object())
        .flat_map(|fields| fields.keys())
        .filter_map(|k| k.strip_prefix("f:").map(str::to_string))
        .collect()
}

/// With creationPolicy Owner, deletes Secrets this ExternalSecret created under an earlier
/// `target.name` (found by the created-by label and controlled by this ExternalSecret).
async fn delete_renamed_targets(
    api: &Api<Secret>,
    es: &ExternalSecret,
    current: &str,
) -> Result<usize, Error> {
    let namespace = es.namespace().unwrap_or_default();
    let selector = format!(
        "{CREATED_BY_LABEL}={}",
        created_by(&namespace, &es.name_any())
    );
    let old = api
        .list_metadata(&kube::api::ListParams::default().labels(&selector))
        .await?;
    let mut deleted = 0;
    for s in old.items {
        let name = s.name_any();
        let ours = s
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == es.meta().uid.as_ref());
        if name != current && ours {
            tracing::info!(secret = %format!("{namespace}/{name}"), "deleting the previous target of a renamed ExternalSecret");
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(deleted)
}

/// Fetches everything the ExternalSecret asks for: `dataFrom[]` in order, then `data[]`
/// (later keys win). All `data[]` refs of one store go in one batched call.
async fn fetch<B: Backend>(
    es: &ExternalSecret,
    ctx: &Context<B>,
    engine: Engine,
) -> Result<BTreeMap<String, SecretValue>, Error> {
    let namespace = es.namespace().unwrap_or_default();
    let default_ref = es.spec.secret_store_ref.clone();
    let mut stores: HashMap<(String, String), StoreContext> = HashMap::new();
    let retain = es.spec.target.deletion_policy == DeletionPolicy::Retain;
    let mut out: BTreeMap<String, SecretValue> = BTreeMap::new();

    for (i, from) in es.spec.data_from.iter().flatten().enumerate() {
        let source = from.source_ref.as_ref();
        // A generator runs on every fetch; the refresh rules decide when that is.
        if let Some(generator) = source.and_then(|s| s.generator_ref.as_ref()) {
            let what = format!("spec.dataFrom[{i}]");
            let rewrites = from.rewrite.as_deref().unwrap_or_default();
            for (key, value) in super::generator::generate(ctx, &namespace, generator).await? {
                let key = if rewrites.is_empty() {
                    key
                } else {
                    rewrite_key(&key, rewrites, &what, engine)?
                };
                check_key(&key, &what)?;
                out.insert(key, SecretValue::new(value));
            }
            continue;
        }
        let store_ref = source
            .and_then(|s| s.store_ref.clone())
            .or_else(|| default_ref.clone());
        let store = store_for(ctx, &namespace, store_ref, &mut stores).await?;
        let (entries, conversion, decoding, null_bytes) = if let Some(extract) = &from.extract {
            let reference = remote_ref(extract);
            match ctx.backend.get_secret_map(&store, &reference).await? {
                Some(map) => (
                    map,
                    extract.conversion_strategy,
                    extract.decoding_strategy,
                    extract.null_byte_policy,
                ),
                None if retain => {
                    return Err(Error::SecretNotFoundAtProvider(format!(
                        "secret does not exist at provider using spec.dataFrom[{i}] (key={})",
                        extract.key
                    )));
                }
                None => {
                    ctx.event(
                        es,
                        EventType::Normal,
                        "MissingProviderSecret",
                        format!("secret does not exist at provider using spec.dataFrom[{i}]"),
                    )
                    .await;
                    continue;
                }
            }
        } else if let Some(find) = &from.find {
            let criteria = FindCriteria {
                path: find.path.clone(),
                name_regexp: find.name.as_ref().and_then(|n| n.regexp.clone()),
                tags: find.tags.clone().unwrap_or_default(),
            };
            (
                ctx.backend.get_all_secrets(&store, &criteria).await?,
                find.conversion_strategy,
                find.decoding_strategy,
                find.null_byte_policy,
            )
        } else {
            continue;
        };
        let rewrites = from.rewrite.as_deref().unwrap_or_default();
        for (remote_key, value) in entries {
            let what = format!("spec.dataFrom[{i}]");
            let key = if rewrites.is_empty() {
                convert_key(&remote_key, conversion.unwrap_or_default())
            } else {
                rewrite_key(&remote_key, rewrites, &what, engine)?
            };
            if key.is_empty() {
                continue;
            }
            check_key(&key, &what)?;
            let value = decode(value, decoding.unwrap_or_default(), &what)?;
            check_null_bytes(&value, null_bytes.unwrap_or_default(), &what)?;
            out.insert(key, value);
        }
    }

    // data[]: one batched call per store.
    let mut batches: Vec<(StoreContext, Vec<usize>)> = Vec::new();
    let data = es.spec.data.as_deref().unwrap_or_default();
    for (i, item) in data.iter().enumerate() {
        let store_ref = item
            .source_ref
            .as_ref()
            .and_then(|s| s.store_ref.clone())
            .or_else(|| default_ref.clone());
        let store = store_for(ctx, &namespace, store_ref, &mut stores).await?;
        match batches.iter_mut().find(|(s, _)| s.info == store.info) {
            Some((_, items)) => items.push(i),
            None => batches.push((store, vec![i])),
        }
    }
    for (store, items) in batches {
        let refs: Vec<RemoteRef> = items
            .iter()
            .map(|&i| remote_ref(&data[i].remote_ref))
            .collect();
        let results = ctx
            .coalescer
            .get_secrets(&ctx.backend, &store, &refs, reuse_window(es))
            .await?;
        for (&i, result) in items.iter().zip(results) {
            let item = &data[i];
            let what = format!("spec.data[{i}] (key={})", item.remote_ref.key);
            match result.map_err(BackendError::from)? {
                Some(value) => {
                    let value = decode(
                        value,
                        item.remote_ref.decoding_strategy.unwrap_or_default(),
                        &what,
                    )?;
                    check_null_bytes(
                        &value,
                        item.remote_ref.null_byte_policy.unwrap_or_default(),
                        &what,
                    )?;
                    out.insert(item.secret_key.clone(), value);
                }
                None if retain => {
                    return Err(Error::SecretNotFoundAtProvider(format!(
                        "secret does not exist at provider using {what}"
                    )));
                }
                None => {
                    ctx.event(
                        es,
                        EventType::Normal,
                        "MissingProviderSecret",
                        format!("secret does not exist at provider using {what}"),
                    )
                    .await;
                }
            }
        }
    }
    Ok(out)
}

fn remote_ref(r: &ExternalSecretDataRemoteRef) -> RemoteRef {
    use crate::crd::external_secret::MetadataPolicy as CrdPolicy;
    RemoteRef {
        key: r.key.clone(),
        property: r.property.clone().filter(|p| !p.is_empty()),
        version: r.version.clone().filter(|v| !v.is_empty()),
        metadata_policy: match r.metadata_policy {
            Some(CrdPolicy::Fetch) => MetadataPolicy::Fetch,
            _ => MetadataPolicy::None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::external_secret::ExternalSecretStatus;
    use crate::crd::{Condition, ExternalSecretSpec, GoDuration};

    fn synced_es(interval: &str, age_secs: i64, policy: Option<RefreshPolicy>) -> ExternalSecret {
        let mut es = ExternalSecret::new(
            "app",
            ExternalSecretSpec {
                refresh_interval: GoDuration::new(interval),
                refresh_policy: policy,
                ..ExternalSecretSpec::default()
            },
        );
        es.metadata.generation = Some(1);
        let refreshed = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(age_secs);
        es.status = Some(ExternalSecretStatus {
            refresh_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                refreshed,
            )),
            synced_resource_version: Some(synced_resource_version(&es)),
            conditions: Some(vec![Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                ..Condition::default()
            }]),
            binding: None,
        });
        es
    }

    #[test]
    fn refresh_follows_the_interval_the_policy_and_changes() {
        assert!(!should_refresh(&synced_es("1h", 10, None)));
        assert!(should_refresh(&synced_es("1h", 3700, None)));
        assert!(
            !should_refresh(&synced_es("0s", 99999, None)),
            "0 = never again"
        );
        let mut changed = synced_es("1h", 10, None);
        changed.metadata.annotations = Some(BTreeMap::from([(
            crate::crd::common::FORCE_SYNC_ANNOTATION.to_string(),
            "now".to_string(),
        )]));
        assert!(
            should_refresh(&changed),
            "force-sync changes the synced version"
        );
        assert!(!should_refresh(&synced_es(
            "1s",
            99999,
            Some(RefreshPolicy::CreatedOnce)
        )));
        let mut bumped = synced_es("1h", 10, Some(RefreshPolicy::OnChange));
        bumped.metadata.generation = Some(2);
        assert!(should_refresh(&bumped));
        let mut failed = synced_es("1h", 10, None);
        failed.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status =
            ConditionStatus::False;
        assert!(should_refresh(&failed), "a failed sync is retried");
    }

    #[test]
    fn only_a_generation_change_of_a_known_store_is_a_spec_change() {
        let seen = Mutex::new(HashMap::new());
        let mut store = SecretStore::new("s", crate::crd::SecretStoreSpec::default());
        store.metadata.namespace = Some("ns".into());
        store.metadata.generation = Some(1);
        let change = |s: &SecretStore| store_change(&seen, "SecretStore", s);
        assert_eq!(change(&store), Some(StoreChange::New));
        assert_eq!(change(&store), None, "a status update keeps the generation");
        store.metadata.generation = Some(2);
        assert_eq!(change(&store), Some(StoreChange::Spec));
        assert_eq!(change(&store), None);
    }

    #[test]
    fn token_secret_types_are_refused_and_others_pass() {
        for t in FORBIDDEN_SECRET_TYPES {
            let e = check_secret_type(Some(t)).unwrap_err();
            assert_eq!(e.reason(), "ForbiddenSecretType");
            assert!(!e.is_retryable());
            assert!(e.to_string().contains(t), "{e}");
        }
        for t in [
            None,
            Some("Opaque"),
            Some("kubernetes.io/tls"),
            Some("custom/x"),
        ] {
            assert!(check_secret_type(t).is_ok(), "{t:?}");
        }
    }

    #[test]
    fn esos_field_manager_is_named_as_eso_names_it() {
        assert_eq!(
            eso_field_manager("database"),
            "externalsecrets.external-secrets.io/database"
        );
        // Go: fmt.Sprintf("externalsecrets.external-secrets.io/sha3/%x", sha3.Sum224(name)).
        assert_eq!(
            eso_field_manager(&"a".repeat(40)),
            "externalsecrets.external-secrets.io/sha3/6a401f856df4bd20348b18ab3ea9388a9ad151e1eabdbd7c60b76761"
        );
    }

    #[test]
    fn data_hash_depends_on_keys_and_values() {
        let a = BTreeMap::from([("k".to_string(), b"v".to_vec())]);
        let b = BTreeMap::from([("k".to_string(), b"w".to_vec())]);
        assert_ne!(data_hash(&a), data_hash(&b));
        assert_eq!(data_hash(&a).len(), 56);
    }

    // Issue 23 item 11: template error text never carries fetched or templateFrom values.
    #[test]
    fn template_errors_name_the_template_but_not_the_secret_values_they_quote() {
        let fetched = BTreeMap::from([("password".to_string(), b"hunter2-db".to_vec())]);
        let mut sources = Sources::default();
        sources.secrets.insert(
            "extra".into(),
            BTreeMap::from([("token".to_string(), b"tok-5678".to_vec())]),
        );
        for (key, source) in [
            ("fail", "{{ fail .password }}"),
            ("required", "{{ required .password \"\" }}"),
            ("fromSource", "{{ fail \"tok-5678\" }}"),
        ] {
            let template: ExternalSecretTemplate =
                serde_yaml::from_str(&format!("data: {{{key}: '{source}'}}")).unwrap();
            let e = crate::template::apply(&template, Engine::Go, &fetched, &sources).unwrap_err();
            let message = Error::Template(redact_template_error(e, &fetched, &sources)).to_string();
            assert!(!message.contains("hunter2-db"), "{message}");
            assert!(!message.contains("tok-5678"), "{message}");
            assert!(
                message.contains(&format!("template \"{key}\"")),
                "{message}"
            );
            assert!(message.contains("[redacted]"), "{message}");
        }
    }
}
