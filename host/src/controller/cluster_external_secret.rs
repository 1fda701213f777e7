//! The ClusterExternalSecret reconciler: stamps one ExternalSecret into every selected
//! namespace and removes it from namespaces that stop matching.
//!
//! Namespaces are selected by `spec.namespaceSelectors` (OR'ed), the deprecated
//! `spec.namespaceSelector` and the deprecated `spec.namespaces` list. Each created
//! ExternalSecret is server-side applied with an ownerReference to the ClusterExternalSecret,
//! so the garbage collector removes them when it is deleted. An existing ExternalSecret of the
//! same name that this ClusterExternalSecret does not own is never touched: its namespace is
//! reported in `status.failedNamespaces`.
//!
//! Namespaces are watched, so a newly labelled namespace gets its ExternalSecret at once; the
//! namespaces are also re-scanned every `spec.refreshTime` (default one minute).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::external_secret::selector_matches;
use super::{Context, Error, FIELD_MANAGER, ModuleHost, log_result, ready_condition};
use crate::crd::cluster_external_secret::ClusterExternalSecretNamespaceFailure;
use crate::crd::common::FORCE_SYNC_ANNOTATION;

/// The finalizer ESO puts on every ClusterExternalSecret.
const ESO_FINALIZER: &str = "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";
/// ESO's finalizer on each namespace a ClusterExternalSecret selects, followed by its name.
const ESO_NAMESPACE_FINALIZER_PREFIX: &str = "externalsecrets.external-secrets.io/ces-";
use crate::crd::{ClusterExternalSecret, ConditionStatus, ExternalSecret};

/// How often namespaces are re-scanned when `spec.refreshTime` is unset or invalid.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// The reason recorded for a namespace whose ExternalSecret exists and is not ours (ESO's
/// wording).
pub const EXISTS_NOT_OWNED: &str = "external secret already exists in namespace";

/// Runs the ClusterExternalSecret controller, also watching Namespaces (so label changes are
/// acted on at once) and ExternalSecrets owned by a ClusterExternalSecret (so an edited or
/// deleted one is repaired at once).
///
/// A namespace-scoped operator (`Config::namespace` set) does not run it: writing into other
/// namespaces is outside its remit.
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    if ctx.config.namespace.is_some() {
        tracing::info!("namespace-scoped operator: ClusterExternalSecret controller disabled");
        return;
    }
    let api: Api<ClusterExternalSecret> = Api::all(ctx.client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let store = controller.store();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let external_secrets: Api<ExternalSecret> = Api::all(ctx.client.clone());
    controller
        .watches(
            namespaces,
            watcher::Config::default(),
            move |_: Namespace| {
                store
                    .state()
                    .into_iter()
                    .map(|ces| ObjectRef::from_obj(ces.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(owned_changes(external_secrets))
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(
            crate::metrics::instrument(
                crate::metrics::Kind::ClusterExternalSecret,
                ctx.config.concurrency,
                reconcile,
            ),
            error_policy,
            ctx,
        )
        .for_each(|r| async move { log_result("clusterexternalsecret", r) })
        .await;
}

/// Fires when an ExternalSecret owned by a ClusterExternalSecret is deleted or its spec
/// changes (its generation moves), not on the status updates of every sync. The initial list
/// fires nothing: the controller reconciles every ClusterExternalSecret when it starts.
fn owned_changes(api: Api<ExternalSecret>) -> impl Stream<Item = ()> + Send + 'static {
    let mut generations: HashMap<(String, String), Option<i64>> = HashMap::new();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let owned = |es: &ExternalSecret| {
                es.owner_references()
                    .iter()
                    .any(|o| o.kind == "ClusterExternalSecret")
            };
            let id = |es: &ExternalSecret| (es.namespace().unwrap_or_default(), es.name_any());
            let fire = match event {
                Ok(watcher::Event::Delete(es)) => {
                    generations.remove(&id(&es));
                    owned(&es)
                }
                Ok(watcher::Event::Apply(es)) if owned(&es) => {
                    generations.insert(id(&es), es.metadata.generation)
                        != Some(es.metadata.generation)
                }
                Ok(watcher::Event::InitApply(es)) if owned(&es) => {
                    generations.insert(id(&es), es.metadata.generation);
                    false
                }
                _ => false,
            };
            futures::future::ready(fire.then_some(()))
        })
}

fn key(ces: &ClusterExternalSecret) -> String {
    format!("clusterexternalsecret/{}", ces.name_any())
}

fn error_policy<B: ModuleHost>(
    ces: Arc<ClusterExternalSecret>,
    _: &Error,
    ctx: Arc<Context<B>>,
) -> Action {
    ctx.backoff(key(&ces))
}

/// The name of the ExternalSecrets: `spec.externalSecretName`, else the CES's name.
pub fn external_secret_name(ces: &ClusterExternalSecret) -> String {
    ces.spec
        .external_secret_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ces.name_any())
}

/// Whether the namespace `name` with `labels` is selected by the CES's `namespaces` list,
/// `namespaceSelectors` or deprecated `namespaceSelector` (any of them).
pub fn namespace_selected(
    ces: &ClusterExternalSecret,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let spec = &ces.spec;
    let by_name = spec.namespaces.iter().flatten().any(|n| n == name);
    let selectors: Vec<&LabelSelector> = spec
        .namespace_selectors
        .iter()
        .flatten()
        .chain(spec.namespace_selector.as_ref())
        .collect();
    by_name || selectors.iter().any(|s| selector_matches(s, labels))
}

fn refresh(ces: &ClusterExternalSecret) -> Duration {
    ces.spec
        .refresh_time
        .as_ref()
        .and_then(|t| t.parse().ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_REFRESH)
}

fn owned_by(es: &ExternalSecret, ces: &ClusterExternalSecret) -> bool {
    let uid = ces.uid();
    es.owner_references()
        .iter()
        .any(|o| o.kind == "ClusterExternalSecret" && Some(&o.uid) == uid.as_ref())
}

/// The ExternalSecret the CES wants in `namespace`, as a server-side apply body.
pub fn desired_external_secret(ces: &ClusterExternalSecret, namespace: &str) -> serde_json::Value {
    let metadata = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
    // As ESO does, the CES's own force-sync annotation is mirrored (so forcing the CES forces
    // every ExternalSecret), and one set only through `externalSecretMetadata` is dropped.
    let mut annotations = metadata.annotations.unwrap_or_default();
    match ces.annotations().get(FORCE_SYNC_ANNOTATION) {
        Some(v) => annotations.insert(FORCE_SYNC_ANNOTATION.to_string(), v.clone()),
        None => annotations.remove(FORCE_SYNC_ANNOTATION),
    };
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {
            "name": external_secret_name(ces),
            "namespace": namespace,
            "labels": metadata.labels.unwrap_or_default(),
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": ClusterExternalSecret::api_version(&()),
                "kind": ClusterExternalSecret::kind(&()),
                "name": ces.name_any(),
                "uid": ces.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": ces.spec.external_secret_spec,
    })
}

/// Creates or updates the ExternalSecret in one namespace; `Ok(Some(reason))` when the
/// namespace fails for a reason to report.
async fn provision<B>(
    ctx: &Context<B>,
    ces: &ClusterExternalSecret,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, kube::Error> {
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), namespace);
    if let Some(existing) = api.get_opt(name).await?
        && !owned_by(&existing, ces)
    {
        return Ok(Some(EXISTS_NOT_OWNED.into()));
    }
    let body = desired_external_secret(ces, namespace);
    match api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(None),
        // The apiserver refused the ExternalSecret (schema, CEL): a namespace failure.
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 || e.code == 403 => Ok(Some(
            format!("could not apply the ExternalSecret: {}", e.message),
        )),
        Err(e) => Err(e),
    }
}

/// Deletes `name` in `namespace` if this CES owns it.
async fn remove<B>(
    ctx: &Context<B>,
    ces: &ClusterExternalSecret,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(name).await? {
        Some(es) if owned_by(&es, ces) => {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        }
        _ => Ok(()),
    }
}

async fn reconcile<B: ModuleHost>(
    ces: Arc<ClusterExternalSecret>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let ces_name = ces.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let all = namespaces.list(&ListParams::default()).await?;
    // ESO guards each namespace with a finalizer of this CES; Airlock needs none, and left
    // there it would keep the namespace from ever being deleted.
    let guard = format!("{ESO_NAMESPACE_FINALIZER_PREFIX}{ces_name}");
    for ns in &all.items {
        super::remove_finalizer(&namespaces, ns, &guard).await?;
    }
    if ces.meta().deletion_timestamp.is_some() {
        // The garbage collector deletes the owned ExternalSecrets; ESO's finalizer would keep
        // the CES forever.
        let api: Api<ClusterExternalSecret> = Api::all(ctx.client.clone());
        super::remove_finalizer(&api, ces.as_ref(), ESO_FINALIZER).await?;
        return Ok(Action::await_change());
    }
    let es_name = external_secret_name(&ces);
    let selected: BTreeSet<String> = all
        .items
        .into_iter()
        .filter(|ns| ns.meta().deletion_timestamp.is_none())
        .filter(|ns| namespace_selected(&ces, &ns.name_any(), ns.labels()))
        .map(|ns| ns.name_any())
        .collect();

    let mut provisioned = Vec::new();
    let mut failed = Vec::new();
    // An API failure that may pass (not a refusal): retried with backoff after the status.
    let mut transient = None;
    for namespace in &selected {
        match provision(&ctx, &ces, namespace, &es_name).await {
            Ok(None) => provisioned.push(namespace.clone()),
            Ok(Some(reason)) => failed.push(ClusterExternalSecretNamespaceFailure {
                namespace: namespace.clone(),
                reason: Some(reason),
            }),
            Err(e) => {
                failed.push(ClusterExternalSecretNamespaceFailure {
                    namespace: namespace.clone(),
                    reason: Some(format!("could not apply the ExternalSecret: {e}")),
                });
                transient = Some(e);
            }
        }
    }

    // Namespaces that stopped matching, and the old name after a rename.
    let status = ces.status.clone().unwrap_or_default();
    let old_name = status
        .external_secret_name
        .clone()
        .filter(|n| !n.is_empty());
    let mut removals: Vec<(String, String)> = Vec::new();
    for namespace in status.provisioned_namespaces.iter().flatten() {
        if !selected.contains(namespace) {
            removals.push((
                namespace.clone(),
                old_name.clone().unwrap_or(es_name.clone()),
            ));
        } else if let Some(old) = old_name.as_ref().filter(|o| **o != es_name) {
            removals.push((namespace.clone(), old.clone()));
        }
    }
    for (namespace, name) in removals {
        if let Err(e) = remove(&ctx, &ces, &namespace, &name).await {
            tracing::warn!(clusterexternalsecret = %ces_name, %namespace, error = %e, "cannot delete ExternalSecret");
            transient = Some(e);
        }
    }

    provisioned.sort();
    failed.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    let previous = status.conditions.as_deref();
    let condition = if failed.is_empty() {
        ready_condition(
            previous,
            ConditionStatus::True,
            "Provisioned",
            format!(
                "ExternalSecret {es_name:?} provisioned in {} namespace(s)",
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
    crate::metrics::global().condition(
        crate::metrics::Kind::ClusterExternalSecret,
        "",
        &ces_name,
        &condition,
    );
    let failures_changed = !status.failed_namespaces.iter().flatten().eq(failed.iter());
    let patch = json!({"status": {
        "externalSecretName": es_name,
        "provisionedNamespaces": if provisioned.is_empty() { None } else { Some(&provisioned) },
        "failedNamespaces": if failed.is_empty() { None } else { Some(&failed) },
        "conditions": [condition],
    }});
    let api: Api<ClusterExternalSecret> = Api::all(ctx.client.clone());
    api.patch_status(&ces_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    if !failed.is_empty() && failures_changed {
        let names: Vec<&str> = failed.iter().map(|f| f.namespace.as_str()).collect();
        ctx.event(
            ces.as_ref(),
            EventType::Warning,
            "NamespacesFailed",
            format!(
                "ExternalSecret {es_name:?} not provisioned in: {}",
                names.join(", ")
            ),
        )
        .await;
    }
    if let Some(e) = transient {
        return Err(e.into());
    }
    ctx.succeeded(&key(&ces));
    Ok(Action::requeue(refresh(&ces)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ces(spec: serde_json::Value) -> ClusterExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": {"name": "shared", "uid": "u-1"},
            "spec": spec,
        }))
        .expect("ces")
    }

    fn es_spec() -> serde_json::Value {
        json!({"secretStoreRef": {"name": "s", "kind": "ClusterSecretStore"},
               "dataFrom": [{"extract": {"key": "k"}}]})
    }

    #[test]
    fn namespaces_are_selected_by_any_selector_or_by_name() {
        let c = ces(json!({
            "externalSecretSpec": es_spec(),
            "namespaceSelectors": [{"matchLabels": {"team": "a"}},
                                   {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}],
            "namespaceSelector": {"matchLabels": {"legacy": "yes"}},
            "namespaces": ["named"],
        }));
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(namespace_selected(&c, "x", &labels(&[("team", "a")])));
        assert!(namespace_selected(&c, "x", &labels(&[("env", "prod")])));
        assert!(namespace_selected(&c, "x", &labels(&[("legacy", "yes")])));
        assert!(namespace_selected(&c, "named", &labels(&[])));
        assert!(!namespace_selected(&c, "x", &labels(&[("team", "b")])));
        let none = ces(json!({"externalSecretSpec": es_spec()}));
        assert!(!namespace_selected(&none, "x", &labels(&[("team", "a")])));
    }

    #[test]
    fn the_desired_external_secret_is_owned_by_the_cluster_external_secret() {
        let c = ces(json!({
            "externalSecretSpec": es_spec(),
            "externalSecretName": "copied",
            "externalSecretMetadata": {"labels": {"a": "1"}, "annotations": {"b": "2"}},
            "refreshTime": "10s",
        }));
        let body = desired_external_secret(&c, "ns1");
        assert_eq!(body["metadata"]["name"], "copied");
        assert_eq!(body["metadata"]["namespace"], "ns1");
        assert_eq!(body["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(body["metadata"]["annotations"], json!({"b": "2"}));
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ClusterExternalSecret");
        assert_eq!(owner["uid"], "u-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(body["spec"]["secretStoreRef"]["name"], "s");
        assert_eq!(refresh(&c), Duration::from_secs(10));
        assert_eq!(
            refresh(&ces(json!({"externalSecretSpec": es_spec()}))),
            DEFAULT_REFRESH
        );
    }

    #[test]
    fn the_force_sync_annotation_of_the_cluster_external_secret_is_mirrored_as_eso_does() {
        let spec = json!({
            "externalSecretSpec": es_spec(),
            "externalSecretMetadata": {"annotations": {
                "b": "2", "external-secrets.io/force-sync": "from-metadata"}},
        });
        let mut c = ces(spec);
        let body = desired_external_secret(&c, "ns1");
        assert_eq!(body["metadata"]["annotations"], json!({"b": "2"}));
        c.metadata.annotations = Some(BTreeMap::from([(
            FORCE_SYNC_ANNOTATION.to_string(),
            "now".to_string(),
        )]));
        let body = desired_external_secret(&c, "ns1");
        assert_eq!(
            body["metadata"]["annotations"],
            json!({"b": "2", "external-secrets.io/force-sync": "now"})
        );
    }
}
