//! What ClusterExternalSecret and ClusterPushSecret share: a cluster-scoped object that stamps
//! one namespaced child (an ExternalSecret, a PushSecret) into every selected namespace and
//! removes it from namespaces that stop matching.
//!
//! Each child is server-side applied with a controller ownerReference to its parent, so the
//! garbage collector removes the children when the parent is deleted. An existing child of
//! the same name that the parent does not own is never touched: its namespace is reported in
//! `status.failedNamespaces`. Namespaces are watched, so a newly labelled namespace gets its
//! child at once, and a deleted or edited child is repaired at once; the namespaces are also
//! re-scanned every `spec.refreshTime` (default one hour, as ESO's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::external_secret::selector_matches;
use super::{Context, Error, FIELD_MANAGER, ModuleHost, log_result, ready_condition};
use crate::crd::cluster_external_secret::{
    ClusterExternalSecretNamespaceFailure as NamespaceFailure, ExternalSecretMetadata,
};
use crate::crd::{Condition, ConditionStatus, GoDuration};

/// How often namespaces are re-scanned when `spec.refreshTime` is unset or invalid.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// A cluster-scoped kind that fans a namespaced child out over namespaces.
pub(crate) trait FanOut:
    Resource<DynamicType = (), Scope = ClusterResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The namespaced kind stamped into each namespace.
    type Child: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// The kind in metrics and controller names.
    const METRICS: crate::metrics::Kind;
    /// ESO's reason for a namespace whose child exists and belongs to someone else.
    const EXISTS_NOT_OWNED: &'static str;
    /// The status field naming the children (`externalSecretName`, `pushSecretName`).
    const NAME_FIELD: &'static str;
    /// Finalizers ESO puts on this kind and (followed by the parent's name) on each selected
    /// namespace. Airlock needs neither and removes them, or they would block deletion.
    const ESO_FINALIZERS: Option<(&'static str, &'static str)>;

    /// The name of the children.
    fn child_name(&self) -> String;
    /// Whether the namespace `name` with `labels` is selected.
    fn selected(&self, name: &str, labels: &BTreeMap<String, String>) -> bool;
    /// `spec.refreshTime`.
    fn refresh_time(&self) -> Option<&GoDuration>;
    /// The child wanted in `namespace`, as a server-side apply body (see [`child_object`]).
    fn desired_child(&self, namespace: &str) -> Value;
    /// What the status recorded at the last reconcile.
    fn observed(&self) -> Observed;
}

/// The part of a fan-out status the reconciler reads back.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The children's name at the last reconcile.
    pub child_name: Option<String>,
    /// Namespaces provisioned at the last reconcile.
    pub provisioned: Vec<String>,
    /// Namespaces that failed at the last reconcile.
    pub failed: Vec<NamespaceFailure>,
    /// The conditions.
    pub conditions: Option<Vec<Condition>>,
}

/// Whether any of `selectors` matches `labels`.
pub(crate) fn any_selector_matches<'a>(
    selectors: impl IntoIterator<Item = &'a LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selectors.into_iter().any(|s| selector_matches(s, labels))
}

/// `spec.refreshTime` as a duration; [`DEFAULT_REFRESH`] when unset, zero or invalid.
pub(crate) fn refresh_of(time: Option<&GoDuration>) -> Duration {
    time.and_then(|t| t.parse().ok())
        .filter(|d: &Duration| !d.is_zero())
        .unwrap_or(DEFAULT_REFRESH)
}

/// The server-side apply body of a child of `owner`: `metadata` (labels and annotations),
/// a controller ownerReference to `owner`, and `spec`.
pub(crate) fn child_object<K: FanOut>(
    owner: &K,
    namespace: &str,
    metadata: ExternalSecretMetadata,
    spec: Value,
) -> Value {
    json!({
        "apiVersion": K::Child::api_version(&()),
        "kind": K::Child::kind(&()),
        "metadata": {
            "name": owner.child_name(),
            "namespace": namespace,
            "labels": metadata.labels.unwrap_or_default(),
            "annotations": metadata.annotations.unwrap_or_default(),
            "ownerReferences": [{
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "name": owner.name_any(),
                "uid": owner.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

/// Runs the controller of `K`, also watching Namespaces (so label changes are acted on at
/// once) and the children owned by a `K` (so an edited or deleted one is repaired at once).
///
/// A namespace-scoped operator (`Config::namespace` set) does not run it: writing into other
/// namespaces is outside its remit.
pub(crate) async fn run<K: FanOut, B: ModuleHost>(ctx: Arc<Context<B>>) {
    let name = K::METRICS.controller();
    if ctx.config.namespace.is_some() {
        tracing::info!("namespace-scoped operator: {name} controller disabled");
        return;
    }
    let api: Api<K> = Api::all(ctx.client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let store = controller.store();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let children: Api<K::Child> = Api::all(ctx.client.clone());
    controller
        .watches(
            namespaces,
            watcher::Config::default(),
            move |_: Namespace| {
                store
                    .state()
                    .into_iter()
                    .map(|parent| ObjectRef::from_obj(parent.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(owned_changes::<K>(children))
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(
            crate::metrics::instrument(K::METRICS, ctx.config.concurrency, reconcile::<K, B>),
            error_policy::<K, B>,
            ctx,
        )
        .for_each(|r| async move { log_result(name, r) })
        .await;
}

/// Fires when a child owned by a `K` is deleted or its spec changes (its generation moves),
/// not on the status updates of every sync. The initial list fires nothing: the controller
/// reconciles every parent when it starts.
fn owned_changes<K: FanOut>(api: Api<K::Child>) -> impl Stream<Item = ()> + Send + 'static {
    let mut generations: HashMap<(String, String), Option<i64>> = HashMap::new();
    let owner_kind = K::kind(&()).to_string();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let owned = |child: &K::Child| {
                child
                    .owner_references()
                    .iter()
                    .any(|o| o.kind == owner_kind)
            };
            let id = |child: &K::Child| (child.namespace().unwrap_or_default(), child.name_any());
            let fire = match event {
                Ok(watcher::Event::Delete(child)) => {
                    generations.remove(&id(&child));
                    owned(&child)
                }
                Ok(watcher::Event::Apply(child)) if owned(&child) => {
                    generations.insert(id(&child), child.meta().generation)
                        != Some(child.meta().generation)
                }
                Ok(watcher::Event::InitApply(child)) if owned(&child) => {
                    generations.insert(id(&child), child.meta().generation);
                    false
                }
                _ => false,
            };
            futures::future::ready(fire.then_some(()))
        })
}

fn key<K: FanOut>(parent: &K) -> String {
    format!("{}/{}", K::METRICS.controller(), parent.name_any())
}

fn error_policy<K: FanOut, B: ModuleHost>(
    parent: Arc<K>,
    _: &Error,
    ctx: Arc<Context<B>>,
) -> Action {
    ctx.backoff(key(parent.as_ref()))
}

fn owned_by<K: FanOut>(child: &K::Child, parent: &K) -> bool {
    let uid = parent.uid();
    child
        .owner_references()
        .iter()
        .any(|o| o.kind == K::kind(&()) && Some(&o.uid) == uid.as_ref())
}

/// Creates or updates the child in one namespace; `Ok(Some(reason))` when the namespace
/// fails for a reason to report.
async fn provision<K: FanOut, B>(
    ctx: &Context<B>,
    parent: &K,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, kube::Error> {
    let api: Api<K::Child> = Api::namespaced(ctx.client.clone(), namespace);
    if let Some(existing) = api.get_opt(name).await?
        && !owned_by(&existing, parent)
    {
        return Ok(Some(K::EXISTS_NOT_OWNED.into()));
    }
    let body = parent.desired_child(namespace);
    match api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(None),
        // The apiserver refused the child (schema, CEL): a namespace failure.
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 || e.code == 403 => Ok(Some(
            format!("could not apply the {}: {}", K::Child::kind(&()), e.message),
        )),
        Err(e) => Err(e),
    }
}

/// Deletes the child `name` in `namespace` if `parent` owns it.
async fn remove<K: FanOut, B>(
    ctx: &Context<B>,
    parent: &K,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<K::Child> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(name).await? {
        Some(child) if owned_by(&child, parent) => {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        }
        _ => Ok(()),
    }
}

async fn reconcile<K: FanOut, B: ModuleHost>(
    parent: Arc<K>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let parent_name = parent.name_any();
    let child_kind = K::Child::kind(&());
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let all = namespaces.list(&ListParams::default()).await?;
    let api: Api<K> = Api::all(ctx.client.clone());
    if let Some((own, namespace_prefix)) = K::ESO_FINALIZERS {
        // Left there, ESO's namespace guard would keep the namespace from ever being deleted.
        let guard = format!("{namespace_prefix}{parent_name}");
        for ns in &all.items {
            super::remove_finalizer(&namespaces, ns, &guard).await?;
        }
        if parent.meta().deletion_timestamp.is_some() {
            super::remove_finalizer(&api, parent.as_ref(), own).await?;
        }
    }
    if parent.meta().deletion_timestamp.is_some() {
        // The garbage collector deletes the owned children.
        return Ok(Action::await_change());
    }
    let child_name = parent.child_name();
    let selected: BTreeSet<String> = all
        .items
        .into_iter()
        .filter(|ns| ns.meta().deletion_timestamp.is_none())
        .filter(|ns| parent.selected(&ns.name_any(), ns.labels()))
        .map(|ns| ns.name_any())
        .collect();

    let mut provisioned = Vec::new();
    let mut failed = Vec::new();
    // An API failure that may pass (not a refusal): retried with backoff after the status.
    let mut transient = None;
    for namespace in &selected {
        match provision(&ctx, parent.as_ref(), namespace, &child_name).await {
            Ok(None) => provisioned.push(namespace.clone()),
            Ok(Some(reason)) => failed.push(NamespaceFailure {
                namespace: namespace.clone(),
                reason: Some(reason),
            }),
            Err(e) => {
                failed.push(NamespaceFailure {
                    namespace: namespace.clone(),
                    reason: Some(format!("could not apply the {child_kind}: {e}")),
                });
                transient = Some(e);
            }
        }
    }

    // Namespaces that stopped matching, and the old name after a rename.
    let observed = parent.observed();
    let old_name = observed.child_name.clone().filter(|n| !n.is_empty());
    let mut removals: Vec<(String, String)> = Vec::new();
    for namespace in &observed.provisioned {
        if !selected.contains(namespace) {
            removals.push((
                namespace.clone(),
                old_name.clone().unwrap_or(child_name.clone()),
            ));
        } else if let Some(old) = old_name.as_ref().filter(|o| **o != child_name) {
            removals.push((namespace.clone(), old.clone()));
        }
    }
    for (namespace, name) in removals {
        if let Err(e) = remove(&ctx, parent.as_ref(), &namespace, &name).await {
            tracing::warn!(parent = %parent_name, %namespace, error = %e, "cannot delete {child_kind}");
            transient = Some(e);
        }
    }

    provisioned.sort();
    failed.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    let previous = observed.conditions.as_deref();
    let condition = if failed.is_empty() {
        ready_condition(
            previous,
            ConditionStatus::True,
            "Provisioned",
            format!(
                "{child_kind} {child_name:?} provisioned in {} namespace(s)",
                provisioned.len()
            ),
        )
    } else {
        ready_condition(
            previous,
            ConditionStatus::False,
            "NamespacesFailed",
            "one or more namespaces failed",
        )
    };
    crate::metrics::global().condition(K::METRICS, "", &parent_name, &condition);
    let failures_changed = !observed.failed.iter().eq(failed.iter());
    let mut status = serde_json::Map::new();
    status.insert(K::NAME_FIELD.into(), json!(child_name));
    status.insert(
        "provisionedNamespaces".into(),
        json!((!provisioned.is_empty()).then_some(&provisioned)),
    );
    status.insert(
        "failedNamespaces".into(),
        json!((!failed.is_empty()).then_some(&failed)),
    );
    status.insert("conditions".into(), json!([condition]));
    api.patch_status(
        &parent_name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await?;
    if !failed.is_empty() && failures_changed {
        let names: Vec<&str> = failed.iter().map(|f| f.namespace.as_str()).collect();
        ctx.event(
            parent.as_ref(),
            EventType::Warning,
            "NamespacesFailed",
            format!(
                "{child_kind} {child_name:?} not provisioned in: {}",
                names.join(", ")
            ),
        )
        .await;
    }
    if let Some(e) = transient {
        return Err(e.into());
    }
    ctx.succeeded(&key(parent.as_ref()));
    Ok(Action::requeue(refresh_of(parent.refresh_time())))
}
