//! The ClusterPushSecret reconciler: stamps one PushSecret into every namespace matched by
//! `spec.namespaceSelectors` (OR'ed) and removes it from namespaces that stop matching (see
//! [`super::fan_out`], shared with ClusterExternalSecret).
//!
//! As ESO's: each PushSecret gets `spec.pushSecretSpec`, the labels and annotations of
//! `spec.pushSecretMetadata` and a controller ownerReference (so the garbage collector removes
//! it with the ClusterPushSecret, and with `deletionPolicy: Delete` its finalizer cleans the
//! stores first); an existing PushSecret the ClusterPushSecret does not own fails its
//! namespace with "push secret already exists in namespace".

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use serde_json::Value;

use super::fan_out::{self, FanOut, Observed};
use super::{Context, ModuleHost};
use crate::crd::{ClusterPushSecret, GoDuration, PushSecret};

/// The reason recorded for a namespace whose PushSecret exists and is not ours (ESO's
/// wording).
pub const EXISTS_NOT_OWNED: &str = "push secret already exists in namespace";

/// Runs the ClusterPushSecret controller (not in a namespace-scoped operator).
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    fan_out::run::<ClusterPushSecret, B>(ctx).await
}

impl FanOut for ClusterPushSecret {
    type Child = PushSecret;
    const METRICS: crate::metrics::Kind = crate::metrics::Kind::ClusterPushSecret;
    const EXISTS_NOT_OWNED: &'static str = EXISTS_NOT_OWNED;
    const NAME_FIELD: &'static str = "pushSecretName";
    // ESO puts no finalizer on a ClusterPushSecret or its namespaces.
    const ESO_FINALIZERS: Option<(&'static str, &'static str)> = None;

    fn child_name(&self) -> String {
        push_secret_name(self)
    }

    fn selected(&self, _name: &str, labels: &BTreeMap<String, String>) -> bool {
        fan_out::any_selector_matches(self.spec.namespace_selectors.iter().flatten(), labels)
    }

    fn refresh_time(&self) -> Option<&GoDuration> {
        self.spec.refresh_time.as_ref()
    }

    fn desired_child(&self, namespace: &str) -> Value {
        desired_push_secret(self, namespace)
    }

    fn observed(&self) -> Observed {
        let status = self.status.clone().unwrap_or_default();
        Observed {
            child_name: status.push_secret_name,
            provisioned: status.provisioned_namespaces.unwrap_or_default(),
            failed: status.failed_namespaces.unwrap_or_default(),
            conditions: status.conditions,
        }
    }
}

/// The name of the PushSecrets: `spec.pushSecretName`, else the ClusterPushSecret's name.
pub fn push_secret_name(cps: &ClusterPushSecret) -> String {
    cps.spec
        .push_secret_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| cps.name_any())
}

/// The PushSecret the ClusterPushSecret wants in `namespace`, as a server-side apply body.
pub fn desired_push_secret(cps: &ClusterPushSecret, namespace: &str) -> Value {
    let metadata = cps.spec.push_secret_metadata.clone().unwrap_or_default();
    let spec = serde_json::to_value(&cps.spec.push_secret_spec).unwrap_or_default();
    fan_out::child_object(cps, namespace, metadata, spec)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn cps(spec: Value) -> ClusterPushSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
            "metadata": {"name": "shared", "uid": "u-2"},
            "spec": spec,
        }))
        .expect("cps")
    }

    fn push_spec() -> Value {
        json!({"secretStoreRefs": [{"name": "vault", "kind": "ClusterSecretStore"}],
               "selector": {"secret": {"name": "db"}},
               "deletionPolicy": "Delete",
               "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "db"}}}]})
    }

    #[test]
    fn namespaces_are_selected_by_any_of_the_selectors_only() {
        let c = cps(json!({
            "pushSecretSpec": push_spec(),
            "namespaceSelectors": [{"matchLabels": {"team": "a"}},
                                   {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}],
        }));
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(c.selected("x", &labels(&[("team", "a")])));
        assert!(c.selected("x", &labels(&[("env", "prod")])));
        assert!(!c.selected("x", &labels(&[("team", "b")])));
        let none = cps(json!({"pushSecretSpec": push_spec()}));
        assert!(!none.selected("x", &labels(&[("team", "a")])));
    }

    #[test]
    fn the_desired_push_secret_is_owned_by_the_cluster_push_secret() {
        let c = cps(json!({
            "pushSecretSpec": push_spec(),
            "pushSecretName": "copied",
            "pushSecretMetadata": {"labels": {"a": "1"}, "annotations": {"b": "2"}},
            "refreshTime": "10s",
        }));
        let body = desired_push_secret(&c, "ns1");
        assert_eq!(body["apiVersion"], "external-secrets.io/v1alpha1");
        assert_eq!(body["kind"], "PushSecret");
        assert_eq!(body["metadata"]["name"], "copied");
        assert_eq!(body["metadata"]["namespace"], "ns1");
        assert_eq!(body["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(body["metadata"]["annotations"], json!({"b": "2"}));
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ClusterPushSecret");
        assert_eq!(owner["apiVersion"], "external-secrets.io/v1alpha1");
        assert_eq!(owner["uid"], "u-2");
        assert_eq!(owner["controller"], true);
        assert_eq!(body["spec"]["deletionPolicy"], "Delete");
        assert_eq!(body["spec"]["secretStoreRefs"][0]["name"], "vault");
        assert_eq!(
            fan_out::refresh_of(c.refresh_time()),
            Duration::from_secs(10)
        );
        let unnamed = cps(json!({"pushSecretSpec": push_spec()}));
        assert_eq!(push_secret_name(&unnamed), "shared");
        assert_eq!(
            fan_out::refresh_of(unnamed.refresh_time()),
            fan_out::DEFAULT_REFRESH
        );
    }
}
