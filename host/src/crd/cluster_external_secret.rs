//! `ClusterExternalSecret`: stamps one ExternalSecret into every selected namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    common::{Condition, DNS_SUBDOMAIN_PATTERN, GoDuration},
    external_secret::ExternalSecretSpec,
};

/// Which namespaces get an ExternalSecret, and what it looks like.
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterExternalSecret",
    plural = "clusterexternalsecrets",
    status = "ClusterExternalSecretStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ces",
    category = "external-secrets",
    doc = "ClusterExternalSecret creates the same ExternalSecret in every namespace matched by \
           its selectors and keeps them in line: namespaces that stop matching lose theirs.",
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.externalSecretSpec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh Interval",
        type_ = "string",
        json_path = ".spec.refreshTime"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// The spec of the ExternalSecret created in each namespace.
    pub external_secret_spec: ExternalSecretSpec,

    /// Name of the created ExternalSecrets. Defaults to the ClusterExternalSecret's name.
    #[schemars(length(max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,

    /// Labels and annotations for the created ExternalSecrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_metadata: Option<ExternalSecretMetadata>,

    /// Deprecated: use `namespaceSelectors`. A single label selector for namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Label selectors for namespaces; a namespace matching any of them is selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selectors: Option<Vec<LabelSelector>>,

    /// Deprecated: use `namespaceSelectors`. Namespaces selected by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,

    /// How often to look for new or removed namespaces, as a Go duration. The operator's
    /// default is one hour, as ESO's (it also reacts to namespace changes at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<GoDuration>,
}

/// Metadata copied onto each created ExternalSecret (or, in a ClusterPushSecret, PushSecret).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretMetadata {
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A namespace where the ExternalSecret (or PushSecret) could not be created or updated.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why it failed, for example that an object of that name exists and belongs to someone
    /// else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Observed state of a ClusterExternalSecret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatus {
    /// Name of the ExternalSecrets created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,
    /// Namespaces where creating or updating the ExternalSecret failed, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_namespaces: Option<Vec<ClusterExternalSecretNamespaceFailure>>,
    /// Namespaces that have an up-to-date ExternalSecret, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_namespaces: Option<Vec<String>>,
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

    #[test]
    fn the_embedded_external_secret_spec_is_validated_and_defaulted() {
        let ces = |spec: serde_json::Value| {
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
                   "metadata": {"name": "c"}, "spec": {"externalSecretSpec": spec, "namespaces": ["a"]}})
        };
        let good = json!({"secretStoreRef": {"name": "s", "kind": "ClusterSecretStore"}, "dataFrom": [{"extract": {"key": "k"}}]});
        assert!(admission_errors(&ces(good.clone())).is_empty());
        let errors = admission_errors(&ces(json!({"secretStoreRef": {"name": "s"}})));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("at least one of data or dataFrom")),
            "{errors:#?}"
        );
        let errors = admission_errors(
            &json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": {"name": "c"}, "spec": {}}),
        );
        assert!(
            errors.iter().any(|e| e.contains("externalSecretSpec")),
            "{errors:#?}"
        );

        let spec: ClusterExternalSecretSpec =
            serde_json::from_value(json!({"externalSecretSpec": good})).expect("spec");
        assert_eq!(
            spec.external_secret_spec.refresh_interval.as_str(),
            "1h0m0s"
        );
    }

    #[test]
    fn status_lists_provisioned_and_failed_namespaces() {
        let status = json!({
            "externalSecretName": "registry-creds",
            "provisionedNamespaces": ["a", "b"],
            "failedNamespaces": [{"namespace": "c", "reason": "external secret already exists in namespace"}],
            "conditions": [{"type": "Ready", "status": "False", "message": "one or more namespaces failed"}],
        });
        let typed: ClusterExternalSecretStatus =
            serde_json::from_value(status.clone()).expect("status");
        assert_eq!(typed.failed_namespaces.as_ref().map(Vec::len), Some(1));
        assert_eq!(serde_json::to_value(typed).expect("json"), status);
    }
}
