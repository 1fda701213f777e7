//! `PushSecret` (`external-secrets.io/v1alpha1`): the reverse direction — copy keys of a
//! Kubernetes Secret into one or more secret managers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::{
    common::{Condition, DNS_SUBDOMAIN_PATTERN, GoDuration, StoreKind},
    external_secret::{
        ExternalSecretTemplate, GeneratorRef, RewriteRegexp, RewriteTransform,
        default_refresh_interval,
    },
};

/// What to push, where, and what to do on updates and deletion.
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "PushSecret",
    plural = "pushsecrets",
    namespaced,
    status = "PushSecretStatus",
    derive = "PartialEq",
    shortname = "ps",
    category = "external-secrets",
    doc = "PushSecret copies keys of Kubernetes Secrets (or generated values) into one or more \
           external secret managers, and optionally deletes them there when the PushSecret goes.",
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.refreshTime")
)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSpec {
    /// How often to push again, as a Go duration. Changes to the source Secret are picked up
    /// at this interval. Defaults to `1h0m0s`.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: GoDuration,

    /// The stores to push to, by name or by label selector. At most 1000 entries.
    #[schemars(length(max = 1000))]
    pub secret_store_refs: Vec<PushSecretStoreRef>,

    /// `Replace` (default): overwrite the remote secret. `IfNotExists`: only create it.
    #[serde(default)]
    pub update_policy: PushSecretUpdatePolicy,

    /// `None` (default): leave remote secrets alone. `Delete`: delete what was pushed when the
    /// PushSecret, an entry or the source Secret goes away.
    #[serde(default)]
    pub deletion_policy: PushSecretDeletionPolicy,

    /// Where the values come from: a Secret (by name or label selector) or a generator.
    pub selector: PushSecretSelector,

    /// Keys to push, one remote destination each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<PushSecretData>>,

    /// Bulk rules: push every key matching a pattern to a store, renamed or bundled. At most
    /// 1000 entries.
    #[schemars(length(max = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_to: Option<Vec<PushSecretDataTo>>,

    /// Template applied to the source Secret before pushing; same format as an
    /// ExternalSecret's `target.template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
}

/// Names stores by name or by labels. Set `name` or `labelSelector`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) || has(self.labelSelector)").message("set name or labelSelector"))]
pub struct PushSecretStoreRef {
    /// Name of the store.
    #[schemars(length(max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// All stores of `kind` whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// `SecretStore` (default) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: StoreKind,
}

/// Whether existing remote secrets are overwritten.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum PushSecretUpdatePolicy {
    /// Overwrite.
    #[default]
    Replace,
    /// Only create missing secrets.
    IfNotExists,
}

/// Whether pushed secrets are deleted again.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum PushSecretDeletionPolicy {
    /// Delete them.
    Delete,
    /// Keep them.
    #[default]
    None,
}

/// The source of the pushed values. Set exactly one of `secret` or `generatorRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secret) != has(self.generatorRef)").message("set exactly one of secret or generatorRef"))]
pub struct PushSecretSelector {
    /// A Secret in the same namespace, by name or by label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<PushSecretSecret>,
    /// A generator whose output is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// Source Secret(s). Set exactly one of `name` or `selector`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.selector)").message("set exactly one of name or selector"))]
pub struct PushSecretSecret {
    /// Name of the Secret.
    #[schemars(length(max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every Secret whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// One key to push and its destination.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretData {
    /// Which source key goes where.
    #[serde(rename = "match")]
    pub match_: PushSecretMatch,
    /// Provider-specific options for the remote secret, for example AWS tags or a KMS key,
    /// GCP labels, or Vault custom metadata. Kept as written.
    #[schemars(schema_with = "preserve_unknown_schema")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// `None` (default) pushes keys as they are; `ReverseUnicode` turns `_Uxxxx_` escapes back
    /// into characters.
    #[serde(default)]
    pub conversion_strategy: PushSecretConversionStrategy,
}

pub(crate) fn preserve_unknown_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// Key conversion before pushing.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum PushSecretConversionStrategy {
    /// Push keys unchanged.
    #[default]
    None,
    /// Decode `_Uxxxx_` escapes.
    ReverseUnicode,
}

/// Source key and remote destination.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretMatch {
    /// The key in the source Secret. When empty, the whole Secret is pushed as one JSON
    /// object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// Where to write it.
    pub remote_ref: PushSecretRemoteRef,
}

/// A remote destination.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretRemoteRef {
    /// Name or path of the remote secret, for example `prod/app/db-password`.
    #[schemars(length(min = 1))]
    pub remote_key: String,
    /// A field inside the remote secret to set, for providers that store JSON objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
}

/// A bulk push rule. `remoteKey` (bundle everything into one remote secret) and `rewrite`
/// cannot be combined.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.remoteKey) || !has(self.rewrite) || size(self.rewrite) == 0"
).message("remoteKey and rewrite are mutually exclusive"))]
pub struct PushSecretDataTo {
    /// The store(s) this rule pushes to.
    pub store_ref: PushSecretStoreRef,
    /// Push all matched keys together as one JSON object under this remote key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_key: Option<String>,
    /// Which source keys this rule takes; all keys when omitted.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<PushSecretDataToMatch>,
    /// Rename matched keys before pushing, applied in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Vec<PushSecretRewrite>>,
    /// Provider-specific options, as in `data[].metadata`.
    #[schemars(schema_with = "preserve_unknown_schema")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Key conversion, as in `data[].conversionStrategy`.
    #[serde(default)]
    pub conversion_strategy: PushSecretConversionStrategy,
}

/// Selects source keys.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretDataToMatch {
    /// RE2 regular expression matched against source keys, for example `^db-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// One rename step. Set exactly one of `regexp` or `transform`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct PushSecretRewrite {
    /// Replace regular-expression matches in each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RewriteRegexp>,
    /// Compute each new key with a template (`.value` is the old key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<RewriteTransform>,
}

/// Observed state of a PushSecret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStatus {
    /// When the last successful push started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,
    /// `<metadata.generation>-<hash of labels and annotations>` at the last push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// What was pushed where: store (`Kind/Name`) → remote key → the data entry. Used to delete
    /// remote secrets that are no longer wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_push_secrets: Option<BTreeMap<String, BTreeMap<String, PushSecretData>>>,
    /// `Ready` condition, reasons `Synced`, `Errored` or `SourceDeleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::testing::admission_errors;

    fn push(spec: Value) -> Value {
        json!({
            "apiVersion": "external-secrets.io/v1alpha1",
            "kind": "PushSecret",
            "metadata": {"name": "push", "namespace": "team-a"},
            "spec": spec,
        })
    }

    fn minimal() -> Value {
        json!({
            "secretStoreRefs": [{"name": "aws"}],
            "selector": {"secret": {"name": "db"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "prod/db"}}}],
        })
    }

    fn errors_with(patch: Value) -> Vec<String> {
        let mut spec = minimal();
        for (k, v) in patch.as_object().expect("object") {
            spec[k] = v.clone();
        }
        admission_errors(&push(spec))
    }

    fn assert_rejected(patch: Value, expected: &str) {
        let errors = errors_with(patch.clone());
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{patch}: expected {expected:?}, got {errors:#?}"
        );
    }

    #[test]
    fn a_minimal_push_secret_is_admitted_and_defaulted_like_eso() {
        assert!(
            errors_with(json!({})).is_empty(),
            "{:#?}",
            errors_with(json!({}))
        );
        let spec: PushSecretSpec = serde_json::from_value(minimal()).expect("spec");
        assert_eq!(spec.refresh_interval.as_str(), "1h0m0s");
        assert_eq!(spec.update_policy, PushSecretUpdatePolicy::Replace);
        assert_eq!(spec.deletion_policy, PushSecretDeletionPolicy::None);
        assert_eq!(spec.secret_store_refs[0].kind, StoreKind::SecretStore);
        let data = &spec.data.as_ref().expect("data")[0];
        assert_eq!(data.conversion_strategy, PushSecretConversionStrategy::None);
    }

    #[test]
    fn the_source_is_exactly_one_secret_or_generator() {
        let generator = json!({"kind": "Password", "name": "pw"});
        assert!(errors_with(json!({"selector": {"generatorRef": generator}})).is_empty());
        assert!(
            errors_with(json!({"selector": {"secret": {"selector": {"matchLabels": {"a": "b"}}}}}))
                .is_empty()
        );
        assert_rejected(
            json!({"selector": {}}),
            "exactly one of secret or generatorRef",
        );
        assert_rejected(
            json!({"selector": {"secret": {"name": "db"}, "generatorRef": generator}}),
            "exactly one of secret or generatorRef",
        );
        assert_rejected(
            json!({"selector": {"secret": {"name": "db", "selector": {"matchLabels": {"a": "b"}}}}}),
            "exactly one of name or selector",
        );
        assert_rejected(
            json!({"selector": {"secret": {}}}),
            "exactly one of name or selector",
        );
    }

    #[test]
    fn store_refs_name_a_store_or_a_selector() {
        assert_rejected(
            json!({"secretStoreRefs": [{"kind": "ClusterSecretStore"}]}),
            "set name or labelSelector",
        );
        assert_rejected(
            json!({"secretStoreRefs": [{"name": "aws", "kind": "Vault"}]}),
            "kind",
        );
        assert_rejected(json!({"dataTo": [{"remoteKey": "bundle"}]}), "storeRef");
    }

    #[test]
    fn data_to_bundles_or_rewrites_but_not_both() {
        let rewrite = json!([{"regexp": {"source": "^db-", "target": ""}}]);
        assert!(
            errors_with(json!({"dataTo": [{"storeRef": {"name": "aws"}, "rewrite": rewrite}]}))
                .is_empty()
        );
        assert_rejected(
            json!({"dataTo": [{"storeRef": {"name": "aws"}, "remoteKey": "bundle", "rewrite": rewrite}]}),
            "remoteKey and rewrite are mutually exclusive",
        );
        assert_rejected(
            json!({"dataTo": [{"storeRef": {"name": "aws"}, "rewrite": [{}]}]}),
            "rewrite",
        );
    }

    #[test]
    fn provider_metadata_is_kept_as_written() {
        let metadata = json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata",
            "spec": {"tags": {"a": "b"}, "nested": [1, {"x": null}]}});
        let patch =
            json!({"data": [{"match": {"remoteRef": {"remoteKey": "k"}}, "metadata": metadata}]});
        assert!(
            errors_with(patch.clone()).is_empty(),
            "{:#?}",
            errors_with(patch)
        );
        let data: PushSecretData = serde_json::from_value(
            json!({"match": {"remoteRef": {"remoteKey": "k"}}, "metadata": metadata}),
        )
        .expect("data");
        assert_eq!(data.metadata.as_ref(), Some(&metadata));
    }

    #[test]
    fn synced_push_secrets_status_round_trips() {
        let status = json!({
            "refreshTime": "2026-01-02T03:04:05Z",
            "syncedResourceVersion": "1-abc",
            "syncedPushSecrets": {"SecretStore/aws": {"prod/db": {
                "match": {"secretKey": "password", "remoteRef": {"remoteKey": "prod/db"}},
                "conversionStrategy": "None",
            }}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "PushSecret synced successfully"}],
        });
        let typed: PushSecretStatus = serde_json::from_value(status.clone()).expect("status");
        assert_eq!(serde_json::to_value(typed).expect("json"), status);
    }
}
