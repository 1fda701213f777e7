//! The ClusterExternalSecret reconciler: stamps one ExternalSecret into every selected
//! namespace and removes it from namespaces that stop matching (see [`super::fan_out`],
//! shared with ClusterPushSecret).
//!
//! Namespaces are selected by `spec.namespaceSelectors` (OR'ed), the deprecated
//! `spec.namespaceSelector` and the deprecated `spec.namespaces` list. As ESO does, the
//! ClusterExternalSecret's own `force-sync` annotation is mirrored onto each ExternalSecret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use serde_json::Value;

use super::fan_out::{self, FanOut, Observed};
use super::{Context, ModuleHost};
use crate::crd::common::FORCE_SYNC_ANNOTATION;
use crate::crd::{ClusterExternalSecret, ExternalSecret, GoDuration};

/// The finalizer ESO puts on every ClusterExternalSecret.
const ESO_FINALIZER: &str = "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";
/// ESO's finalizer on each namespace a ClusterExternalSecret selects, followed by its name.
const ESO_NAMESPACE_FINALIZER_PREFIX: &str = "externalsecrets.external-secrets.io/ces-";

/// How often namespaces are re-scanned when `spec.refreshTime` is unset or invalid.
pub const DEFAULT_REFRESH: Duration = fan_out::DEFAULT_REFRESH;

/// The reason recorded for a namespace whose ExternalSecret exists and is not ours (ESO's
/// wording).
pub const EXISTS_NOT_OWNED: &str = "external secret already exists in namespace";

/// Runs the ClusterExternalSecret controller (not in a namespace-scoped operator).
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    fan_out::run::<ClusterExternalSecret, B>(ctx).await
}

impl FanOut for ClusterExternalSecret {
    type Child = ExternalSecret;
    const METRICS: crate::metrics::Kind = crate::metrics::Kind::ClusterExternalSecret;
    const EXISTS_NOT_OWNED: &'static str = EXISTS_NOT_OWNED;
    const NAME_FIELD: &'static str = "externalSecretName";
    const ESO_FINALIZERS: Option<(&'static str, &'static str)> =
        Some((ESO_FINALIZER, ESO_NAMESPACE_FINALIZER_PREFIX));

    fn child_name(&self) -> String {
        external_secret_name(self)
    }

    fn selected(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        namespace_selected(self, name, labels)
    }

    fn refresh_time(&self) -> Option<&GoDuration> {
        self.spec.refresh_time.as_ref()
    }

    fn desired_child(&self, namespace: &str) -> Value {
        desired_external_secret(self, namespace)
    }

    fn observed(&self) -> Observed {
        let status = self.status.clone().unwrap_or_default();
        Observed {
            child_name: status.external_secret_name,
            provisioned: status.provisioned_namespaces.unwrap_or_default(),
            failed: status.failed_namespaces.unwrap_or_default(),
            conditions: status.conditions,
        }
    }
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
    let selectors = spec
        .namespace_selectors
        .iter()
        .flatten()
        .chain(spec.namespace_selector.as_ref());
    by_name || fan_out::any_selector_matches(selectors, labels)
}

/// The ExternalSecret the CES wants in `namespace`, as a server-side apply body.
pub fn desired_external_secret(ces: &ClusterExternalSecret, namespace: &str) -> Value {
    let mut metadata = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
    // As ESO does, the CES's own force-sync annotation is mirrored (so forcing the CES forces
    // every ExternalSecret), and one set only through `externalSecretMetadata` is dropped.
    let annotations = metadata.annotations.get_or_insert_with(Default::default);
    match ces.annotations().get(FORCE_SYNC_ANNOTATION) {
        Some(v) => annotations.insert(FORCE_SYNC_ANNOTATION.to_string(), v.clone()),
        None => annotations.remove(FORCE_SYNC_ANNOTATION),
    };
    let spec = serde_json::to_value(&ces.spec.external_secret_spec).unwrap_or_default();
    fan_out::child_object(ces, namespace, metadata, spec)
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
        assert_eq!(
            fan_out::refresh_of(c.refresh_time()),
            Duration::from_secs(10)
        );
        assert_eq!(
            fan_out::refresh_of(ces(json!({"externalSecretSpec": es_spec()})).refresh_time()),
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
