//! Generators (`generators.external-secrets.io/v1alpha1`) that need no cloud: `Password`,
//! `UUID` and `Fake`, and the cluster-scoped `ClusterGenerator` wrapping one of them.
//! ExternalSecrets use them through `dataFrom[].sourceRef.generatorRef`, PushSecrets through
//! `selector.generatorRef`.

use std::collections::BTreeMap;

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
