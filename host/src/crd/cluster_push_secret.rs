//! `ClusterPushSecret` (`external-secrets.io/v1alpha1`): stamps one PushSecret into every
//! selected namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    cluster_external_secret::{ClusterExternalSecretNamespaceFailure, ExternalSecretMetadata},
    common::{Condition, DNS_SUBDOMAIN_PATTERN, GoDuration},
    push_secret::PushSecretSpec,
};

/// Which namespaces get a PushSecret, and what it looks like.
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterPushSecret",
    plural = "clusterpushsecrets",
    status = "ClusterPushSecretStatus",
    derive = "PartialEq",
    category = "external-secrets",
    doc = "ClusterPushSecret creates the same PushSecret in every namespace matched by its \
           selectors and keeps them in line: namespaces that stop matching lose theirs.",
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretSpec {
    /// The spec of the PushSecret created in each namespace.
    pub push_secret_spec: PushSecretSpec,

    /// How often to look for new or removed namespaces, as a Go duration. The operator's
    /// default is one hour, as ESO's (it also reacts to namespace changes at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<GoDuration>,

    /// Name of the created PushSecrets. Defaults to the ClusterPushSecret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_name: Option<String>,

    /// Labels and annotations for the created PushSecrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_metadata: Option<ExternalSecretMetadata>,

    /// Label selectors for namespaces; a namespace matching any of them is selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selectors: Option<Vec<LabelSelector>>,
}

/// Observed state of a ClusterPushSecret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretStatus {
    /// Namespaces where creating or updating the PushSecret failed, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_namespaces: Option<Vec<ClusterExternalSecretNamespaceFailure>>,
    /// Namespaces that have an up-to-date PushSecret, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_namespaces: Option<Vec<String>>,
    /// Name of the PushSecrets created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_name: Option<String>,
    /// `Ready` condition: `False` with message "one or more namespaces failed" while any
    /// namespace fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::testing::admission_errors;

    fn cps(spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "ClusterPushSecret",
               "metadata": {"name": "c"}, "spec": spec})
    }

    fn push_spec() -> serde_json::Value {
        json!({"secretStoreRefs": [{"name": "vault", "kind": "ClusterSecretStore"}],
               "selector": {"secret": {"name": "db"}},
               "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "db"}}}]})
    }

    #[test]
    fn the_embedded_push_secret_spec_is_validated_and_defaulted() {
        let good = cps(json!({"pushSecretSpec": push_spec(),
                              "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                              "pushSecretName": "db", "refreshTime": "10m",
                              "pushSecretMetadata": {"labels": {"a": "b"}}}));
        assert!(
            admission_errors(&good).is_empty(),
            "{:#?}",
            admission_errors(&good)
        );
        let errors = admission_errors(&cps(json!({"pushSecretSpec": {"selector": {}}})));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("exactly one of secret or generatorRef")),
            "{errors:#?}"
        );
        let errors = admission_errors(&cps(json!({})));
        assert!(
            errors.iter().any(|e| e.contains("pushSecretSpec")),
            "{errors:#?}"
        );
        let errors = admission_errors(&cps(
            json!({"pushSecretSpec": push_spec(), "pushSecretName": "Not_DNS"}),
        ));
        assert!(
            errors.iter().any(|e| e.contains("pushSecretName")),
            "{errors:#?}"
        );

        let spec: ClusterPushSecretSpec =
            serde_json::from_value(json!({"pushSecretSpec": push_spec()})).expect("spec");
        assert_eq!(spec.push_secret_spec.refresh_interval.as_str(), "1h0m0s");
    }

    #[test]
    fn status_round_trips_with_eso_field_names() {
        let status = json!({
            "pushSecretName": "db",
            "provisionedNamespaces": ["a", "b"],
            "failedNamespaces": [{"namespace": "c", "reason": "push secret already exists in namespace"}],
            "conditions": [{"type": "Ready", "status": "False", "message": "one or more namespaces failed"}],
        });
        let typed: ClusterPushSecretStatus =
            serde_json::from_value(status.clone()).expect("status");
        assert_eq!(typed.failed_namespaces.as_ref().map(Vec::len), Some(1));
        assert_eq!(serde_json::to_value(typed).expect("json"), status);
    }
}
