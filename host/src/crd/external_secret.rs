//! `ExternalSecret` (`external-secrets.io/v1`, also served as `v1beta1`): which values to read
//! from which store, and how to write them into a Kubernetes Secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    Condition, DNS_SUBDOMAIN_PATTERN, GoDuration, LocalObjectReference, SECRET_KEY_PATTERN,
    SecretStoreRef,
};

/// The default `refreshInterval` of ExternalSecrets and PushSecrets.
pub const DEFAULT_REFRESH_INTERVAL: &str = "1h0m0s";

pub(crate) fn default_refresh_interval() -> GoDuration {
    GoDuration::new(DEFAULT_REFRESH_INTERVAL)
}

/// Desired state of an ExternalSecret: the store to read from, the values to fetch, and the
/// Secret to write them into.
///
/// At least one of `data` or `dataFrom` must be given.
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ExternalSecret",
    plural = "externalsecrets",
    namespaced,
    status = "ExternalSecretStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "es",
    category = "external-secrets",
    doc = "ExternalSecret reads values from an external secret manager through a SecretStore or \
           ClusterSecretStore and keeps a Kubernetes Secret in sync with them. It refreshes on \
           `spec.refreshInterval` and repairs the Secret when someone edits or deletes it.",
    printcolumn(
        name = "StoreType",
        type_ = "string",
        json_path = ".spec.secretStoreRef.kind"
    ),
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh Interval",
        type_ = "string",
        json_path = ".spec.refreshInterval"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.refreshTime"),
    selectable = ".spec.secretStoreRef.name",
    selectable = ".spec.secretStoreRef.kind",
    selectable = ".spec.target.name",
    selectable = ".spec.refreshInterval"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0)"
).message("at least one of data or dataFrom must be set"))]
pub struct ExternalSecretSpec {
    /// The store every entry reads from unless it names its own with `sourceRef`, for example
    /// `{name: vault-backend, kind: ClusterSecretStore}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_store_ref: Option<SecretStoreRef>,

    /// The Secret (or other object) to create and keep up to date. Defaults to a Secret named
    /// like the ExternalSecret, owned by it (creationPolicy `Owner`, deletionPolicy `Retain`).
    #[serde(default)]
    pub target: ExternalSecretTarget,

    /// When to fetch again: `Periodic` (the behaviour when unset: every `refreshInterval`),
    /// `OnChange` (only when the ExternalSecret's spec, labels or annotations change) or
    /// `CreatedOnce` (once; never again while the Secret exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_policy: Option<RefreshPolicy>,

    /// How often to fetch the values again, as a Go duration (`1h`, `15m`, `30s`). `0` fetches
    /// once and never refreshes. Defaults to `1h0m0s`.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: GoDuration,

    /// Time windows that allow or block periodic refreshes (for example, no rotation during
    /// business hours). Changes to the ExternalSecret are applied regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_windows: Option<SyncWindows>,

    /// Individual values: each entry fetches one remote value and stores it under `secretKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<ExternalSecretData>>,

    /// Bulk sources: each entry fetches many keys at once, by extracting a JSON object
    /// (`extract`), searching the store (`find`) or running a generator
    /// (`sourceRef.generatorRef`). Entries are processed in order before `data`; later keys win.
    /// At most 1000 entries.
    #[schemars(length(max = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_from: Option<Vec<ExternalSecretDataFromRemoteRef>>,
}

/// When an ExternalSecret fetches its values again.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(transform = super::common::strip_description)]
pub enum RefreshPolicy {
    /// Fetch once when the Secret is first created; never refresh.
    CreatedOnce,
    /// Fetch every `refreshInterval` (the default behaviour).
    Periodic,
    /// Fetch only when the ExternalSecret changes.
    OnChange,
}

/// Time windows (cron schedule + duration) that gate periodic refreshes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindows {
    /// `allow`: periodic refreshes happen only inside a window. `deny`: they never happen
    /// inside a window.
    pub kind: SyncWindowKind,
    /// The windows; at least one.
    #[schemars(length(min = 1))]
    pub windows: Vec<SyncWindow>,
}

/// Whether sync windows allow or deny refreshes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(transform = super::common::strip_description)]
#[serde(rename_all = "lowercase")]
pub enum SyncWindowKind {
    /// Refresh only inside a window.
    Allow,
    /// Never refresh inside a window.
    Deny,
}

/// One sync window.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    /// When the window opens: a 5-field cron expression in UTC (`0 22 * * 1-5`) or a
    /// descriptor such as `@daily`, `@hourly` or `@every 6h`.
    #[schemars(length(min = 1))]
    pub schedule: String,
    /// How long the window stays open, as a Go duration (`2h`).
    pub duration: GoDuration,
}

impl Default for ExternalSecretSpec {
    fn default() -> Self {
        Self {
            secret_store_ref: None,
            target: ExternalSecretTarget::default(),
            refresh_policy: None,
            refresh_interval: default_refresh_interval(),
            sync_windows: None,
            data: None,
            data_from: None,
        }
    }
}

/// The object an ExternalSecret writes and how it owns it.
///
/// Rules: deletionPolicy `Delete` needs creationPolicy `Owner`; deletionPolicy `Merge` cannot
/// be combined with creationPolicy `None`; for Secret targets `templateFrom[].target` must be
/// `Data`, `Annotations` or `Labels`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!has(self.deletionPolicy) || self.deletionPolicy != 'Delete' || !has(self.creationPolicy) || self.creationPolicy == 'Owner'"
    ).message("deletionPolicy Delete requires creationPolicy Owner"),
    validation = Rule::new(
        "!has(self.deletionPolicy) || self.deletionPolicy != 'Merge' || !has(self.creationPolicy) || self.creationPolicy != 'None'"
    ).message("deletionPolicy Merge cannot be combined with creationPolicy None"),
    validation = Rule::new(
        "has(self.manifest) || !has(self.template) || !has(self.template.templateFrom) || self.template.templateFrom.all(t, !has(t.target) || t.target.lowerAscii() in ['data', 'annotations', 'labels'])"
    ).message("templateFrom target must be Data, Annotations or Labels for Secret targets")
)]
pub struct ExternalSecretTarget {
    /// Name of the Secret to write. Defaults to the ExternalSecret's name.
    #[schemars(length(max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Who creates and owns the Secret. `Owner` (default): create it and set an owner
    /// reference, so it is garbage-collected with the ExternalSecret. `Orphan`: create it
    /// without an owner reference and leave it behind. `Merge`: only add keys to a Secret that
    /// already exists (never create it). `CreateOrMerge`: create it when missing, otherwise
    /// merge keys in; keep it on deletion. `None`: write nothing.
    #[serde(default)]
    pub creation_policy: CreationPolicy,

    /// What to do when the provider no longer has the data. `Retain` (default): keep the
    /// Secret as it is and report an error. `Delete`: delete the Secret once every value is
    /// gone (only with creationPolicy `Owner`). `Merge`: drop the missing keys but keep the
    /// Secret.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Shapes the Secret: its type, labels, annotations and templated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,

    /// Write into another kind of object (a ConfigMap or a custom resource) instead of a
    /// Secret. Must be enabled on the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<TargetManifest>,

    /// Create the Secret with `immutable: true`. Data changes then require deleting the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl Default for ExternalSecretTarget {
    fn default() -> Self {
        Self {
            name: None,
            creation_policy: CreationPolicy::Owner,
            deletion_policy: DeletionPolicy::Retain,
            template: None,
            manifest: None,
            immutable: None,
        }
    }
}

/// Who creates and owns the target Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum CreationPolicy {
    /// Create the Secret and own it (owner reference).
    #[default]
    Owner,
    /// Create the Secret without an owner reference.
    Orphan,
    /// Only merge keys into an existing Secret.
    Merge,
    /// Do not write anything.
    None,
    /// Create the Secret if needed, otherwise merge keys in.
    CreateOrMerge,
}

/// What happens to the target when the provider has no data any more.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum DeletionPolicy {
    /// Delete the Secret.
    Delete,
    /// Remove the missing keys, keep the Secret.
    Merge,
    /// Keep the Secret unchanged.
    #[default]
    Retain,
}

/// Identifies a non-Secret object kind to render into.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetManifest {
    /// API version of the object, for example `v1`.
    #[schemars(length(min = 1))]
    pub api_version: String,
    /// Kind of the object, for example `ConfigMap`.
    #[schemars(length(min = 1))]
    pub kind: String,
}

/// How to build the Secret from the fetched values. Templates use Go template syntax: the
/// fetched values are available by key (`{{ .password }}`) together with helper functions.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// Secret type, such as `Opaque` or `kubernetes.io/dockerconfigjson`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Template engine version. Only `v2` exists; it is the default.
    #[serde(default)]
    pub engine_version: TemplateEngineVersion,

    /// Labels, annotations and finalizers for the Secret. Values may be templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ExternalSecretTemplateMetadata>,

    /// `Replace` (default): the template output is the whole Secret data. `Merge`: the template
    /// output is merged over the fetched values.
    #[serde(default)]
    pub merge_policy: TemplateMergePolicy,

    /// Secret keys and the template that produces each value, for example
    /// `DATABASE_URL: "postgresql://{{ .username }}:{{ .password }}@db:5432/app"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,

    /// Templates kept elsewhere (ConfigMaps, Secrets, or inline literals), rendered in order.
    /// At most 1000 entries.
    #[schemars(length(max = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_from: Option<Vec<TemplateFrom>>,
}

/// The template engine version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum TemplateEngineVersion {
    /// The current engine (Go templates with sprig-style helpers).
    #[default]
    #[serde(rename = "v2")]
    V2,
}

/// How template output combines with the fetched values.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum TemplateMergePolicy {
    /// Template output replaces the data.
    #[default]
    Replace,
    /// Template output is merged over the data.
    Merge,
}

/// Metadata written onto the target Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplateMetadata {
    /// Annotations for the Secret; values may be templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels for the Secret; values may be templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Finalizers to add to the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
}

/// One source of templates. Set one of `configMap`, `secret` or `literal`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// Read templates from keys of a ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<TemplateRef>,
    /// Read templates from keys of a Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<TemplateRef>,
    /// Where the rendered output goes: `Data` (default), `Annotations` or `Labels` for
    /// Secret targets; a dotted path such as `spec.config` for other targets.
    #[schemars(length(max = 1024))]
    #[serde(default = "default_template_target")]
    pub target: String,
    /// An inline template whose output is parsed as YAML key/value pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// Decoding applied to the rendered values: `Auto`, `Base64`, `Base64URL` or `None`
    /// (the behaviour when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_decoding_strategy: Option<DecodingStrategy>,
}

fn default_template_target() -> String {
    "Data".into()
}

/// A ConfigMap or Secret holding templates.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// The keys to use as templates.
    pub items: Vec<TemplateRefItem>,
}

/// One key of a template ConfigMap or Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    /// The key holding the template.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
    /// `Values` (default): render the template as the value of the same key.
    /// `KeysAndValues`: the rendered output is YAML whose pairs become keys and values.
    #[serde(default)]
    pub template_as: TemplateScope,
}

/// How a referenced template is applied.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum TemplateScope {
    /// The template renders one value.
    #[default]
    Values,
    /// The template renders YAML key/value pairs.
    KeysAndValues,
}

/// One value: a remote reference stored under one Secret key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// The key in the Secret, for example `password`.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub secret_key: String,
    /// What to read from the provider.
    pub remote_ref: ExternalSecretDataRemoteRef,
    /// Read this entry from a different store than `spec.secretStoreRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<StoreSourceRef>,
}

/// Addresses one secret at the provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataRemoteRef {
    /// The provider's name or path of the secret, for example `production/database` or
    /// `secret/data/myapp`.
    #[schemars(length(min = 1))]
    pub key: String,
    /// `None` (the behaviour when unset) reads the value; `Fetch` reads the secret's
    /// metadata (tags, labels) instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_policy: Option<MetadataPolicy>,
    /// A field inside the secret, for JSON values usually a path such as `username` or
    /// `db.password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// A provider-specific version, such as `latest`, a version number or `AWSPREVIOUS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How keys are made safe for a Secret (dataFrom only): `Default` (the behaviour when
    /// unset) replaces invalid characters with `_`; `Unicode` writes them as `_Uxxxx_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_strategy: Option<ConversionStrategy>,
    /// How values are decoded: `None` (the behaviour when unset), `Base64`, `Base64URL`, or
    /// `Auto` (try Base64, then Base64URL, else keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<DecodingStrategy>,
    /// `Ignore` (the behaviour when unset) accepts values with NUL bytes; `Fail` rejects them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// Whether to read a secret's value or its metadata.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum MetadataPolicy {
    /// Read the value.
    #[default]
    None,
    /// Read the metadata.
    Fetch,
}

/// How keys from bulk fetches are converted into valid Secret keys.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum ConversionStrategy {
    /// Replace invalid characters with `_`.
    #[default]
    Default,
    /// Replace invalid characters with `_Uxxxx_`.
    Unicode,
}

/// How fetched values are decoded.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum DecodingStrategy {
    /// Try Base64, then Base64URL, else keep the value.
    Auto,
    /// Standard Base64.
    Base64,
    /// URL-safe Base64.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// No decoding.
    #[default]
    None,
}

/// What to do with values that contain NUL bytes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum NullBytePolicy {
    /// Keep them.
    #[default]
    Ignore,
    /// Fail the sync.
    Fail,
}

/// Per-entry store override for `data[]`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StoreSourceRef {
    /// The store to read this entry from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,
    /// Deprecated and not supported in `data[]`; use `dataFrom[].sourceRef.generatorRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// One bulk source. Set exactly one of `extract`, `find` or `sourceRef.generatorRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.extract) ? 1 : 0) + (has(self.find) ? 1 : 0) + (has(self.sourceRef) && has(self.sourceRef.generatorRef) ? 1 : 0) == 1"
).message("set exactly one of extract, find or sourceRef.generatorRef"))]
pub struct ExternalSecretDataFromRemoteRef {
    /// Read one secret whose value is a JSON object and turn each top-level field into a
    /// Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<ExternalSecretDataRemoteRef>,
    /// Search the store and read every matching secret (by name pattern, path or tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<ExternalSecretFind>,
    /// Rename the fetched keys, applied in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Vec<ExternalSecretRewrite>>,
    /// Read from another store, or run a generator instead of reading a store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<StoreGeneratorSourceRef>,
}

/// Finds secrets in a store.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretFind {
    /// Only search below this path or prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Match secret names against a regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,
    /// Match secrets carrying all of these tags or labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Key conversion, as in `remoteRef.conversionStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_strategy: Option<ConversionStrategy>,
    /// Value decoding, as in `remoteRef.decodingStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<DecodingStrategy>,
    /// NUL byte handling, as in `remoteRef.nullBytePolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// A secret name filter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    /// RE2 regular expression matched against secret names, for example `^app-.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// One key rewrite step. Set exactly one of `regexp`, `transform` or `merge`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ExternalSecretRewrite {
    /// Replace every match of `source` in each key with `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RewriteRegexp>,
    /// Compute each new key with a template; the old key is `.value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<RewriteTransform>,
    /// Merge the values (JSON objects) of several keys into one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<RewriteMerge>,
}

/// A regular-expression key rewrite.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RewriteRegexp {
    /// RE2 regular expression to find in each key, for example `^path/`.
    pub source: String,
    /// Replacement; `$1`-style groups are allowed.
    pub target: String,
}

/// A template key rewrite.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RewriteTransform {
    /// Go template producing the new key, for example `{{ .value | upper }}`.
    pub template: String,
}

/// Merges JSON-object values into one set of keys.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RewriteMerge {
    /// With strategy `JSON`, the key that receives the merged JSON document (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Keys merged last, so their fields win conflicts; in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Vec<String>>,
    /// `Strict` (default): every key named in `priority` must exist. `IgnoreNotFound`: skip
    /// missing ones.
    #[serde(default)]
    pub priority_policy: MergePriorityPolicy,
    /// `Error` (default): fail when two keys set the same field. `Ignore`: the later wins.
    #[serde(default)]
    pub conflict_policy: MergeConflictPolicy,
    /// `Extract` (default): fields become Secret keys. `JSON`: write one JSON document to
    /// `into`.
    #[serde(default)]
    pub strategy: MergeStrategy,
}

/// Whether keys named in `merge.priority` must exist.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum MergePriorityPolicy {
    /// Skip missing keys.
    IgnoreNotFound,
    /// Fail on missing keys.
    #[default]
    Strict,
}

/// What to do when merged objects share a field.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum MergeConflictPolicy {
    /// The later value wins.
    Ignore,
    /// Fail the sync.
    #[default]
    Error,
}

/// The shape of the merge output.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(transform = super::common::strip_description)]
pub enum MergeStrategy {
    /// Every merged field becomes a Secret key.
    #[default]
    Extract,
    /// One JSON document under `into`.
    #[serde(rename = "JSON")]
    Json,
}

/// Store or generator for a `dataFrom[]` entry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StoreGeneratorSourceRef {
    /// Read this entry from this store instead of `spec.secretStoreRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,
    /// Produce values with a generator (passwords, registry tokens, …) instead of reading a
    /// store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// The default `generatorRef.apiVersion`.
pub const GENERATORS_API_VERSION: &str = "generators.external-secrets.io/v1alpha1";

fn default_generator_api_version() -> String {
    GENERATORS_API_VERSION.into()
}

/// Names a generator object in the same namespace (or a ClusterGenerator).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorRef {
    /// API version of the generator. Defaults to `generators.external-secrets.io/v1alpha1`.
    #[serde(default = "default_generator_api_version")]
    pub api_version: String,
    /// Kind of the generator, for example `Password`, `ECRAuthorizationToken` or
    /// `ClusterGenerator`.
    pub kind: GeneratorKind,
    /// Name of the generator object.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// The generator kinds ESO defines.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(transform = super::common::strip_description)]
#[allow(clippy::upper_case_acronyms)]
pub enum GeneratorKind {
    /// Azure Container Registry token.
    ACRAccessToken,
    /// BeyondTrust workload credentials.
    BeyondtrustWorkloadCredentialsDynamicSecret,
    /// Cloudsmith token.
    CloudsmithAccessToken,
    /// AWS ECR login token.
    ECRAuthorizationToken,
    /// Fixed test data.
    Fake,
    /// Google Container Registry token.
    GCRAccessToken,
    /// GitHub App installation token.
    GithubAccessToken,
    /// GitLab deploy token.
    GitlabDeployToken,
    /// Grafana service account token.
    Grafana,
    /// One-time password (TOTP).
    MFA,
    /// Random password.
    Password,
    /// Quay robot token.
    QuayAccessToken,
    /// SSH key pair.
    SSHKey,
    /// AWS STS session token.
    STSSessionToken,
    /// Random UUID.
    UUID,
    /// Vault dynamic secret.
    VaultDynamicSecret,
    /// Value from an HTTP endpoint.
    Webhook,
    /// A cluster-scoped generator wrapping one of the above.
    ClusterGenerator,
}

/// Observed state of an ExternalSecret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// When the last successful sync started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,
    /// `<metadata.generation>-<hash of labels and annotations>` at the last sync; a change
    /// triggers a refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// `Ready` condition: `True` with reason `SecretSynced` (or `SecretDeleted`,
    /// `SecretMissing`), `False` with reason `SecretSyncedError` and the error as message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The Secret this ExternalSecret provides (servicebinding.io provisioned service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<LocalObjectReference>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::testing::{admission_errors, schema_for_object, typed_round_trip};

    fn es(spec: Value) -> Value {
        json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "app", "namespace": "team-a"},
            "spec": spec,
        })
    }

    fn data() -> Value {
        json!([{"secretKey": "password", "remoteRef": {"key": "prod/db", "property": "password"}}])
    }

    fn assert_rejected(object: Value, expected: &str) {
        let errors = admission_errors(&object);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?} for {object}, got {errors:#?}"
        );
    }

    fn assert_admitted(object: Value) {
        let errors = admission_errors(&object);
        assert!(errors.is_empty(), "{object}: {errors:#?}");
    }

    #[test]
    fn an_external_secret_needs_data_or_data_from() {
        assert_rejected(
            es(json!({"secretStoreRef": {"name": "s"}})),
            "at least one of data or dataFrom",
        );
        assert_rejected(
            es(json!({"secretStoreRef": {"name": "s"}, "data": []})),
            "at least one of data or dataFrom",
        );
        assert_admitted(es(json!({"secretStoreRef": {"name": "s"}, "data": data()})));
        assert_admitted(es(
            json!({"secretStoreRef": {"name": "s"}, "dataFrom": [{"extract": {"key": "k"}}]}),
        ));
    }

    #[test]
    fn each_data_from_entry_sets_exactly_one_source() {
        let spec = |entry: Value| es(json!({"secretStoreRef": {"name": "s"}, "dataFrom": [entry]}));
        let generator = json!({"generatorRef": {"kind": "Password", "name": "pw"}});
        assert_admitted(spec(json!({"find": {"name": {"regexp": "^app"}}})));
        assert_admitted(spec(json!({"sourceRef": generator})));
        assert_admitted(spec(
            json!({"extract": {"key": "k"}, "sourceRef": {"storeRef": {"name": "other"}}}),
        ));
        let exactly_one = "exactly one of extract, find or sourceRef.generatorRef";
        assert_rejected(
            spec(json!({"extract": {"key": "k"}, "find": {"path": "/"}})),
            exactly_one,
        );
        assert_rejected(
            spec(json!({"extract": {"key": "k"}, "sourceRef": generator})),
            exactly_one,
        );
        assert_rejected(
            spec(json!({"rewrite": [{"regexp": {"source": "a", "target": "b"}}]})),
            exactly_one,
        );
        assert_rejected(
            spec(json!({"sourceRef": {"storeRef": {"name": "other"}}})),
            exactly_one,
        );
    }

    #[test]
    fn deletion_policy_must_fit_the_creation_policy() {
        let with = |creation: &str, deletion: &str| {
            es(json!({
                "secretStoreRef": {"name": "s"},
                "target": {"creationPolicy": creation, "deletionPolicy": deletion},
                "data": data(),
            }))
        };
        for creation in ["Owner", "Orphan", "Merge", "None", "CreateOrMerge"] {
            assert_admitted(with(creation, "Retain"));
        }
        assert_admitted(with("Owner", "Delete"));
        for creation in ["Orphan", "Merge", "None", "CreateOrMerge"] {
            assert_rejected(
                with(creation, "Delete"),
                "deletionPolicy Delete requires creationPolicy Owner",
            );
        }
        assert_admitted(with("Merge", "Merge"));
        assert_admitted(with("Owner", "Merge"));
        assert_rejected(
            with("None", "Merge"),
            "deletionPolicy Merge cannot be combined with creationPolicy None",
        );
        // Defaults count: deletionPolicy Delete with creationPolicy left out means Owner.
        assert_admitted(es(
            json!({"secretStoreRef": {"name": "s"}, "target": {"deletionPolicy": "Delete"}, "data": data()}),
        ));
    }

    #[test]
    fn template_from_may_only_target_data_annotations_or_labels_of_a_secret() {
        let with = |target: &str, manifest: Option<Value>| {
            let mut spec = json!({
                "secretStoreRef": {"name": "s"},
                "target": {"template": {"templateFrom": [{"literal": "a: b", "target": target}]}},
                "data": data(),
            });
            if let Some(manifest) = manifest {
                spec["target"]["manifest"] = manifest;
            }
            es(spec)
        };
        for ok in [
            "Data",
            "Annotations",
            "Labels",
            "data",
            "ANNOTATIONS",
            "labels",
        ] {
            assert_admitted(with(ok, None));
        }
        let rule = "templateFrom target must be Data, Annotations or Labels";
        assert_rejected(with("metadata.ownerReferences", None), rule);
        assert_rejected(with("type", None), rule);
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert_admitted(with("spec.values[0].name", Some(config_map)));
        // The default target is Data.
        assert_admitted(es(json!({
            "secretStoreRef": {"name": "s"},
            "target": {"template": {"templateFrom": [{"literal": "a: b"}]}},
            "data": data(),
        })));
    }

    #[test]
    fn openapi_rules_reject_malformed_fields() {
        let with = |patch: Value| {
            let mut spec = json!({"secretStoreRef": {"name": "s"}, "data": data()});
            for (k, v) in patch.as_object().expect("object") {
                spec[k] = v.clone();
            }
            es(spec)
        };
        assert_rejected(with(json!({"refreshInterval": "1d"})), "refreshInterval");
        assert_rejected(with(json!({"refreshInterval": "-1h"})), "refreshInterval");
        assert_rejected(
            with(json!({"secretStoreRef": {"name": "s", "kind": "Store"}})),
            "kind",
        );
        assert_rejected(
            with(json!({"target": {"creationPolicy": "Always"}})),
            "creationPolicy",
        );
        assert_rejected(
            with(json!({"data": [{"secretKey": "a/b", "remoteRef": {"key": "k"}}]})),
            "secretKey",
        );
        assert_rejected(with(json!({"data": [{"secretKey": "a"}]})), "remoteRef");
        assert_rejected(with(json!({"refreshPolicy": "Sometimes"})), "refreshPolicy");
        assert_rejected(
            with(json!({"syncWindows": {"kind": "allow", "windows": []}})),
            "windows",
        );
        assert_rejected(
            with(
                json!({"dataFrom": [{"find": {"path": "/"}, "rewrite": [{"regexp": {"source": "a", "target": "b"}, "transform": {"template": "x"}}]}]}),
            ),
            "rewrite",
        );
        assert_rejected(
            with(json!({"unknownField": true})),
            "unknownField would be pruned",
        );
        assert_admitted(with(json!({"refreshInterval": "0"})));
        assert_admitted(with(json!({"refreshInterval": "1h0m0s"})));
    }

    #[test]
    fn defaults_match_eso_and_remote_ref_strategies_stay_undefaulted() {
        let spec: ExternalSecretSpec =
            serde_json::from_value(json!({"data": data()})).expect("spec");
        assert_eq!(spec.refresh_interval.as_str(), "1h0m0s");
        assert_eq!(spec.target.creation_policy, CreationPolicy::Owner);
        assert_eq!(spec.target.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(
            spec,
            ExternalSecretSpec {
                data: spec.data.clone(),
                ..Default::default()
            }
        );

        let schema = schema_for_object(&es(json!({})));
        let spec_schema = &schema["properties"]["spec"]["properties"];
        assert_eq!(spec_schema["refreshInterval"]["default"], "1h0m0s");
        assert_eq!(
            spec_schema["target"]["default"],
            json!({"creationPolicy": "Owner", "deletionPolicy": "Retain"})
        );
        let template = &spec_schema["target"]["properties"]["template"]["properties"];
        assert_eq!(template["engineVersion"]["default"], "v2");
        assert_eq!(template["mergePolicy"]["default"], "Replace");
        assert_eq!(
            template["templateFrom"]["items"]["properties"]["target"]["default"],
            "Data"
        );
        let remote_ref = &spec_schema["data"]["items"]["properties"]["remoteRef"]["properties"];
        for field in [
            "conversionStrategy",
            "decodingStrategy",
            "metadataPolicy",
            "nullBytePolicy",
        ] {
            assert!(
                remote_ref[field].get("default").is_none(),
                "remoteRef.{field} must not be defaulted"
            );
            assert!(
                remote_ref[field]["enum"].is_array(),
                "remoteRef.{field} is an enum"
            );
        }
        let find = &spec_schema["dataFrom"]["items"]["properties"]["find"]["properties"];
        assert!(find["conversionStrategy"].get("default").is_none());
        let merge = &spec_schema["dataFrom"]["items"]["properties"]["rewrite"]["items"]["properties"]
            ["merge"]["properties"];
        assert_eq!(
            (
                &merge["priorityPolicy"]["default"],
                &merge["conflictPolicy"]["default"],
                &merge["strategy"]["default"]
            ),
            (&json!("Strict"), &json!("Error"), &json!("Extract"))
        );
        let generator = &spec_schema["dataFrom"]["items"]["properties"]["sourceRef"]["properties"]
            ["generatorRef"];
        assert_eq!(
            generator["properties"]["apiVersion"]["default"],
            GENERATORS_API_VERSION
        );
    }

    #[test]
    fn status_written_by_eso_deserializes_and_round_trips() {
        let object = json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "app", "namespace": "team-a", "generation": 3},
            "spec": {"secretStoreRef": {"name": "s", "kind": "SecretStore"}, "refreshInterval": "1h", "data": data()},
            "status": {
                "binding": {"name": "app"},
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "SecretSynced",
                    "message": "secret synced",
                    "lastTransitionTime": "2026-01-02T03:04:05Z",
                }],
                "refreshTime": "2026-01-02T03:04:05Z",
                "syncedResourceVersion": "3-0f1e2d3c",
            },
        });
        let typed: ExternalSecret = serde_json::from_value(object.clone()).expect("typed");
        let status = typed.status.as_ref().expect("status");
        assert_eq!(
            status.binding.as_ref().map(|b| b.name.as_str()),
            Some("app")
        );
        let ready = &status.conditions.as_ref().expect("conditions")[0];
        assert_eq!(
            (ready.status, ready.reason.as_deref()),
            (crate::crd::ConditionStatus::True, Some("SecretSynced"))
        );
        let back = typed_round_trip(&object).expect("round trip");
        assert_eq!(back["status"], object["status"]);

        // ESO writes a zero refreshTime as null before the first sync.
        let mut unsynced = object.clone();
        unsynced["status"] = json!({"refreshTime": null});
        let typed: ExternalSecret = serde_json::from_value(unsynced).expect("null refreshTime");
        assert_eq!(typed.status.and_then(|s| s.refresh_time), None);
    }
}
