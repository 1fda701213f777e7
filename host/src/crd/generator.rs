//! Generators (`generators.external-secrets.io/v1alpha1`) that need no cloud: `Password`,
//! `UUID` and `Fake`, the cluster-scoped `ClusterGenerator` wrapping one of them, and
//! `GeneratorState`, ESO's record of what a stateful generator created.
//! ExternalSecrets use them through `dataFrom[].sourceRef.generatorRef`, PushSecrets through
//! `selector.generatorRef`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every generator kind.
pub const GROUP: &str = "generators.external-secrets.io";

fn default_length() -> i32 {
    24
}

/// A random password, as ESO's Password generator (sethvargo/go-password semantics).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Password",
    plural = "passwords",
    namespaced,
    derive = "PartialEq",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "Password generates a random password each time it is used."
)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSpec {
    /// Length of the password. Defaults to 24.
    #[serde(default = "default_length")]
    #[schemars(range(min = 0, max = 4096))]
    pub length: i32,
    /// How many digits; 25% of the length when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4096))]
    pub digits: Option<i32>,
    /// How many symbols; 25% of the length when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4096))]
    pub symbols: Option<i32>,
    /// The symbol characters to draw from. Defaults to ``~!@#$%^&*()_+`-={}|[]\:"<>?,./``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol_characters: Option<String>,
    /// No uppercase letters.
    #[serde(default)]
    pub no_upper: bool,
    /// Allow a character to appear more than once.
    #[serde(default)]
    pub allow_repeat: bool,
    /// The keys to fill, each with its own password. Defaults to `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_keys: Option<Vec<String>>,
    /// How the password is written: `raw` (default, as generated), `base64`, `base64url`,
    /// `base32` (all three padded, as Go's standard encodings) or `hex`.
    #[serde(default)]
    pub encoding: PasswordEncoding,
}

/// The encoding of a generated password.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = super::common::strip_description)]
pub enum PasswordEncoding {
    /// Standard Base64.
    Base64,
    /// URL-safe Base64.
    Base64Url,
    /// Standard Base32.
    Base32,
    /// Lowercase hexadecimal.
    Hex,
    /// As generated.
    #[default]
    Raw,
}

/// A random (version 4) UUID under the key `uuid`.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "UUID",
    plural = "uuids",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "UUID generates a random version 4 UUID each time it is used."
)]
pub struct UUIDSpec {}

/// Fixed data, for tests and demos.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Fake",
    plural = "fakes",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "Fake returns the data written in its spec."
)]
#[serde(rename_all = "camelCase")]
pub struct FakeSpec {
    /// The keys and values returned.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Controller class, as ESO's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
}

/// An RFC 6238 time-based one-time password from a seed kept in a Secret, under the keys
/// `token` and `timeLeft` (seconds the token stays valid), as ESO's MFA generator.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "MFA",
    plural = "mfas",
    namespaced,
    derive = "PartialEq",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "MFA generates an RFC 6238 TOTP token from a base32 seed held in a Secret."
)]
#[serde(rename_all = "camelCase")]
pub struct MFASpec {
    /// The Secret (in the namespace of the ExternalSecret or PushSecret) and key holding the
    /// base32 seed; spaces are ignored and case does not matter.
    pub secret: crate::crd::common::SecretKeySelector,
    /// Digits of the token; 6 when omitted or 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<i32>,
    /// Seconds each token is valid; 30 when omitted or 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_period: Option<i32>,
    /// Accepted as ESO accepts it (`sha1`, `sha256`, …); ESO v2.9 always computes SHA-1
    /// tokens whatever it says, and so does Airlock, so that both give the same token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Generate the token for this time instead of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Time>,
}

/// A cluster-scoped generator usable from every namespace: `kind` names which of the
/// `generator.*Spec` fields is used.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterGenerator",
    plural = "clustergenerators",
    derive = "PartialEq",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "ClusterGenerator wraps a generator spec for use from any namespace."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGeneratorSpec {
    /// The generator kind, for example `Password`.
    pub kind: String,
    /// The spec of that kind.
    pub generator: GeneratorSpecs,
}

/// One generator spec per kind; set the one `kind` names.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorSpecs {
    /// For `kind: Password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_spec: Option<PasswordSpec>,
    /// For `kind: UUID`.
    #[serde(default, rename = "uuidSpec", skip_serializing_if = "Option::is_none")]
    pub uuid_spec: Option<UUIDSpec>,
    /// For `kind: Fake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake_spec: Option<FakeSpec>,
}

/// What a stateful generator created (a GitLab deploy token, a Grafana service-account
/// token, …), kept so it can be revoked once superseded. ESO writes these; the generators
/// Airlock runs keep no state, so Airlock only collects them (see the GeneratorState
/// controller).
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "GeneratorState",
    plural = "generatorstates",
    namespaced,
    derive = "PartialEq",
    shortname = "gs",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "GeneratorState records the state a stateful generator produced, and the generator \
           manifest that produced it, until its garbage-collection deadline.",
    printcolumn(
        name = "GC Deadline",
        type_ = "string",
        json_path = ".spec.garbageCollectionDeadline"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorStateSpec {
    /// When the state may be cleaned up and deleted. Without it the state is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collection_deadline: Option<Time>,
    /// The generator manifest that produced the state, as it was then.
    #[schemars(schema_with = "crate::crd::push_secret::preserve_unknown_schema")]
    pub resource: serde_json::Value,
    /// The state the generator produced.
    #[schemars(schema_with = "crate::crd::push_secret::preserve_unknown_schema")]
    pub state: serde_json::Value,
}
