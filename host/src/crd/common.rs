//! Pieces shared by several kinds: conditions, object selectors, Go-style durations and the
//! well-known labels, annotations and finalizers that ESO-compatible controllers write.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Label every CRD of the `external-secrets.io` group carries (value `controller`).
pub const COMPONENT_LABEL: &str = "external-secrets.io/component";
/// Label put on every Secret a controller manages (value `true`); drives the filtered watch.
pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// Label on Secrets created with creationPolicy `Owner`: a hash of `<namespace>/<name>` of the
/// owning ExternalSecret, used to find and delete targets left behind by a rename.
pub const CREATED_BY_LABEL: &str = "reconcile.external-secrets.io/created-by";
/// Annotation holding the hash of the managed Secret's `.data`; a mismatch means drift.
pub const DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";
/// Annotation users set (any value) to force an immediate refresh of an ExternalSecret.
pub const FORCE_SYNC_ANNOTATION: &str = "external-secrets.io/force-sync";
/// Annotation that silences the warning events for unmaintained or deprecated providers.
pub const IGNORE_MAINTENANCE_CHECKS_ANNOTATION: &str =
    "external-secrets.io/ignore-maintenance-checks";
/// Finalizer ESO puts on every ExternalSecret.
pub const EXTERNAL_SECRET_FINALIZER: &str =
    "externalsecrets.external-secrets.io/externalsecret-cleanup";
/// Finalizer on ClusterExternalSecrets.
pub const CLUSTER_EXTERNAL_SECRET_FINALIZER: &str =
    "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";
/// Finalizer on PushSecrets whose deletionPolicy is `Delete`.
pub const PUSH_SECRET_FINALIZER: &str = "pushsecret.externalsecrets.io/finalizer";
/// Finalizer on (Cluster)SecretStores referenced by PushSecrets with deletionPolicy `Delete`.
pub const SECRET_STORE_FINALIZER: &str = "secretstore.externalsecrets.io/finalizer";

/// Condition type every kind reports.
pub const CONDITION_READY: &str = "Ready";

/// The regular expression a Go duration string must match (what `time.ParseDuration` accepts,
/// minus signs): one or more `<number><unit>` pairs with units `ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`, or the bare string `0`.
pub const GO_DURATION_PATTERN: &str =
    r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

/// A DNS-1123 subdomain (Kubernetes object names).
pub(crate) const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Secret data key.
pub(crate) const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Drops the type-level description from an enum's schema.
///
/// kube's schema rewriting hoists an `Option<Enum>` schema over the field, so the enum's own
/// doc comment would replace the field's (which is the one `kubectl explain` should show).
pub(crate) fn strip_description(schema: &mut Schema) {
    schema.remove("description");
}

/// A duration written the way Go's `time.ParseDuration` reads it, such as `1h`, `15m`,
/// `1h30m`, `90s`, `0.5s` or `0`.
///
/// The text is kept exactly as written so that objects round-trip without diffs (GitOps tools
/// compare it character by character); use [`GoDuration::parse`] to get a number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct GoDuration(pub String);

/// Error returned by [`GoDuration::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError(pub String);

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid duration {:?}", self.0)
    }
}

impl std::error::Error for DurationError {}

impl GoDuration {
    /// Wraps a duration string without checking it.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The duration as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text; negative durations are rejected.
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        let text = self.0.trim();
        if text.is_empty() || text.starts_with('-') {
            return Err(DurationError(self.0.clone()));
        }
        text.parse::<kube::core::Duration>()
            .map(std::time::Duration::from)
            .map_err(|_| DurationError(self.0.clone()))
    }
}

impl std::fmt::Display for GoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "pattern": GO_DURATION_PATTERN,
        })
    }
}

/// `True`, `False` or `Unknown`, as in every Kubernetes condition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = strip_description)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell yet.
    #[default]
    Unknown,
}

/// One observation about the object, in the usual Kubernetes shape. Airlock reports a `Ready`
/// condition on every kind.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// What the condition is about, for example `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds: `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A one-word, PascalCase reason for the last transition, such as `SecretSynced`,
    /// `SecretSyncedError`, `Valid` or `InvalidProviderConfig`. Stable enough for alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable explanation, for example the provider's error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Points at one key of a Kubernetes Secret. Provider configurations use it for credentials,
/// for example `{name: aws-credentials, key: access-key}`.
///
/// In a SecretStore the Secret is always read from the store's own namespace. In a
/// ClusterSecretStore `namespace` says where to look; when it is left out, the namespace of the
/// ExternalSecret using the store is used instead.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Key inside the Secret's data. Some provider fields allow it to be omitted.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Namespace of the Secret. Only honoured in a ClusterSecretStore; see above.
    #[schemars(length(min = 1, max = 63))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Points at a Kubernetes ServiceAccount whose token is handed to a provider, for example for
/// Vault Kubernetes auth or AWS IRSA-style web identity. Tokens are requested through the
/// TokenRequest API with the audiences given here.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the ServiceAccount. Only honoured in a ClusterSecretStore; when left out
    /// there, the namespace of the ExternalSecret using the store is used.
    #[schemars(length(min = 1, max = 63))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Audiences to put in the requested token, for example `["vault"]` or
    /// `["sts.amazonaws.com"]`. The provider's default audience is used when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
}

/// Where a CA certificate comes from: a Secret or a ConfigMap key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(transform = strip_description)]
pub enum CaProviderType {
    /// Read the certificate from a Secret.
    Secret,
    /// Read the certificate from a ConfigMap.
    ConfigMap,
}

/// A CA certificate (PEM) kept in a Secret or ConfigMap, used to trust a backend's TLS
/// certificate. An inline alternative in most provider configs is `caBundle` (base64 PEM).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaProvider {
    /// `Secret` or `ConfigMap`.
    #[serde(rename = "type")]
    pub type_: CaProviderType,
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key holding the PEM certificate(s).
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Namespace of the object. Required for ClusterSecretStores, ignored for SecretStores.
    #[schemars(length(min = 1, max = 63))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What a store (or the provider behind it) can do: `ReadOnly` (ExternalSecrets only),
/// `WriteOnly` (PushSecrets only) or `ReadWrite`. Informational.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(transform = strip_description)]
pub enum Capabilities {
    /// Secrets can be read but not written.
    ReadOnly,
    /// Secrets can be written but not read.
    WriteOnly,
    /// Secrets can be read and written.
    ReadWrite,
}

/// Where to find a store: by name and kind.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = strip_description)]
pub enum StoreKind {
    /// A namespaced SecretStore in the same namespace as the referring object.
    #[default]
    SecretStore,
    /// A cluster-wide ClusterSecretStore.
    ClusterSecretStore,
}

/// Names the (Cluster)SecretStore an ExternalSecret reads from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Name of the SecretStore or ClusterSecretStore.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// `SecretStore` (same namespace; the meaning when omitted) or `ClusterSecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
}

impl SecretStoreRef {
    /// The kind, with the documented fallback to `SecretStore`.
    pub fn kind_or_default(&self) -> StoreKind {
        self.kind.unwrap_or_default()
    }
}

/// A Kubernetes object in the same namespace, by name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// Name of the object.
    #[schemars(length(max = 253))]
    #[serde(default)]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_durations_parse_like_go() {
        let cases = [
            ("1h0m0s", Duration::from_secs(3600)),
            ("1h", Duration::from_secs(3600)),
            ("15m", Duration::from_secs(900)),
            ("1h30m", Duration::from_secs(5400)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1.5s", Duration::from_millis(1500)),
            ("300ms", Duration::from_millis(300)),
            ("10µs", Duration::from_micros(10)),
        ];
        for (text, want) in cases {
            assert_eq!(GoDuration::new(text).parse(), Ok(want), "{text}");
        }
        for bad in ["", "-1h", "1x", "h", "1"] {
            assert!(
                GoDuration::new(bad).parse().is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn go_duration_pattern_agrees_with_parser() {
        let pattern = jsonschema::validator_for(&serde_json::json!({
            "type": "string",
            "pattern": GO_DURATION_PATTERN,
        }))
        .expect("pattern compiles");
        for good in [
            "1h0m0s", "0", "0s", "15m", "1.5h", ".5s", "10µs", "2h45m30s", "100ns",
        ] {
            assert!(
                pattern.is_valid(&serde_json::json!(good)),
                "{good} should match"
            );
            assert!(GoDuration::new(good).parse().is_ok(), "{good} should parse");
        }
        for bad in ["", "1", "1d", "-1h", "h", "1 h", "01:00"] {
            assert!(
                !pattern.is_valid(&serde_json::json!(bad)),
                "{bad:?} should not match"
            );
        }
    }
}
