//! Which store an ExternalSecret reads from: the SecretStore in its namespace or a
//! ClusterSecretStore that admits the namespace, with the controller-class check.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::Api;

use crate::backend::{StoreContext, StoreKind};
use crate::controller::secret_store::{kind_name, resolve_tls, store_context};
use crate::controller::{Context, Error};
use crate::crd::common::{SecretStoreRef, StoreKind as CrdKind};
use crate::crd::{ClusterSecretStore, SecretStore};

/// Resolves a store reference once per reconcile.
pub async fn store_for<B>(
    ctx: &Context<B>,
    namespace: &str,
    store_ref: Option<SecretStoreRef>,
    cache: &mut HashMap<(String, String), StoreContext>,
) -> Result<StoreContext, Error> {
    let store_ref = store_ref.ok_or_else(|| {
        Error::StoreNotFound("spec.secretStoreRef is not set and the entry names no store".into())
    })?;
    let id = (
        format!("{:?}", store_ref.kind_or_default()),
        store_ref.name.clone(),
    );
    if let Some(s) = cache.get(&id) {
        return Ok(s.clone());
    }
    let mut store = resolve_store(ctx, namespace, &store_ref).await?;
    resolve_tls(ctx, &mut store).await?;
    cache.insert(id, store.clone());
    Ok(store)
}

/// Reads the referenced SecretStore (in `namespace`) or ClusterSecretStore and checks that a
/// ClusterSecretStore may be used from `namespace`.
pub async fn resolve_store<B>(
    ctx: &Context<B>,
    namespace: &str,
    store_ref: &SecretStoreRef,
) -> Result<StoreContext, Error> {
    let name = &store_ref.name;
    match store_ref.kind_or_default() {
        CrdKind::SecretStore => {
            let api: Api<SecretStore> = Api::namespaced(ctx.client.clone(), namespace);
            let store = api.get_opt(name).await?.ok_or_else(|| {
                Error::StoreNotFound(format!(
                    "SecretStore {name:?} not found in namespace {namespace:?}"
                ))
            })?;
            if !ctx.config.serves(store.spec.controller.as_deref()) {
                return Err(Error::OtherControllerClass(format!(
                    "SecretStore {name:?} has controller class {:?}",
                    store.spec.controller
                )));
            }
            store_context(&store.spec, StoreKind::SecretStore, name, namespace)
        }
        CrdKind::ClusterSecretStore => {
            let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
            let store = api.get_opt(name).await?.ok_or_else(|| {
                Error::StoreNotFound(format!("ClusterSecretStore {name:?} not found"))
            })?;
            if !ctx.config.serves(store.spec.controller.as_deref()) {
                return Err(Error::OtherControllerClass(format!(
                    "ClusterSecretStore {name:?} has controller class {:?}",
                    store.spec.controller
                )));
            }
            if let Some(conditions) = store.spec.conditions.as_deref().filter(|c| !c.is_empty()) {
                let mut allowed = false;
                for c in conditions {
                    let by_name = c.namespaces.iter().flatten().any(|n| n == namespace);
                    let by_regex = c
                        .namespace_regexes
                        .iter()
                        .flatten()
                        .any(|r| regex::Regex::new(r).is_ok_and(|re| re.is_match(namespace)));
                    let by_selector = match &c.namespace_selector {
                        Some(selector) => {
                            let ns: Api<Namespace> = Api::all(ctx.client.clone());
                            let labels = ns
                                .get_opt(namespace)
                                .await?
                                .map(|n| n.labels().clone())
                                .unwrap_or_default();
                            selector_matches(selector, &labels)
                        }
                        None => false,
                    };
                    if by_name || by_regex || by_selector {
                        allowed = true;
                        break;
                    }
                }
                if !allowed {
                    return Err(Error::StoreNotAllowed(format!(
                        "using {} {name:?} is not allowed from namespace {namespace:?}",
                        kind_name(StoreKind::ClusterSecretStore)
                    )));
                }
            }
            store_context(&store.spec, StoreKind::ClusterSecretStore, name, namespace)
        }
    }
}

/// Whether `labels` match a label selector (`matchLabels` and `matchExpressions`).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}
