//! `SecretStore` (namespaced) and `ClusterSecretStore` (cluster-wide): how to reach one secret
//! manager. Both kinds share [`SecretStoreSpec`] and [`SecretStoreStatus`], as in ESO.
//!
//! `SecretStore` is derived with `#[derive(CustomResource)]`. A derive owns its spec type, so
//! `ClusterSecretStore` is written out by hand below (root struct, `Resource`, serde and CRD)
//! to keep one spec type for both kinds.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::{
        apis::meta::v1::LabelSelector, apis::meta::v1::ObjectMeta, util::intstr::IntOrString,
    },
};
use kube::{
    CustomResource, CustomResourceExt,
    core::{
        ClusterResourceScope, Resource,
        object::{HasSpec, HasStatus},
    },
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::{Capabilities, Condition, GoDuration};

/// How to reach one secret manager. Used by both SecretStore and ClusterSecretStore.
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "SecretStore",
    plural = "secretstores",
    namespaced,
    status = "SecretStoreStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ss",
    category = "external-secrets",
    doc = "SecretStore describes how to reach one external secret manager (which provider, \
           where, and with which credentials). ExternalSecrets and PushSecrets in the same \
           namespace refer to it by name.",
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
    printcolumn(
        name = "Capabilities",
        type_ = "string",
        json_path = ".status.capabilities"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// Controller class. When set, only an operator started with the same
    /// `--controller-class` handles this store (and the ExternalSecrets using it); when empty,
    /// every operator does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,

    /// The provider and its configuration: exactly one key naming the provider (`aws`,
    /// `vault`, `azurekv`, `gcpsm`, `akeyless`, `onepassword`, `doppler`, `gitlab`, `fake`, …)
    /// whose value is that provider's configuration, for example
    /// `aws: {service: SecretsManager, region: eu-west-1, auth: {...}}`.
    ///
    /// The key selects the cluster-scoped airlock.dev Provider of the same name, which decides
    /// which Wasm module runs and what it may reach. The value is checked against that
    /// provider's own schema when the store is validated, so it is kept here as written.
    #[schemars(schema_with = "provider_map_schema")]
    pub provider: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,

    /// Retries for provider calls. Only some providers honour it (AWS: default 3 retries when
    /// the block is present; Vault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<SecretStoreRetrySettings>,

    /// How often the store's connection and credentials are re-validated: a Go duration
    /// (`10m`) or a number of seconds. Empty or 0 uses the operator's default (5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<IntOrString>,

    /// ClusterSecretStore only: which namespaces may use the store. Each entry selects
    /// namespaces by label selector, by name or by name regexp; a namespace may use the store
    /// if any entry matches it. Without conditions every namespace may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ClusterSecretStoreCondition>>,
}

impl SecretStoreSpec {
    /// The provider key and its configuration, when exactly one is set.
    pub fn provider_config(&self) -> Option<(&str, &serde_json::Map<String, serde_json::Value>)> {
        let mut entries = self.provider.iter();
        match (entries.next(), entries.next()) {
            (Some((name, config)), None) => Some((name.as_str(), config)),
            _ => None,
        }
    }
}

fn provider_map_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// Retry behaviour for provider calls.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRetrySettings {
    /// How many times a failed call is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Pause between retries, as a Go duration (`2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<GoDuration>,
}

/// One rule saying which namespaces may use a ClusterSecretStore. Fields combine with AND;
/// entries in the list combine with OR.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Namespaces whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces with these names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Namespaces whose names match one of these Go (RE2) regular expressions, for example
    /// `^team-a-.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_regexes: Option<Vec<String>>,
}

/// Observed state of a SecretStore or ClusterSecretStore.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// `Ready` condition: `True` with reason `Valid` (or `ValidationUnknown`), `False` with
    /// reason `InvalidProviderConfig` and the error as message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// What the provider supports: `ReadOnly`, `WriteOnly` or `ReadWrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// A cluster-wide [`SecretStore`]: same spec, usable from every namespace allowed by
/// `spec.conditions`. Credentials it references name their namespace explicitly, or default to
/// the namespace of the ExternalSecret that uses the store.
#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ClusterSecretStore {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// How to reach the secret manager.
    pub spec: SecretStoreSpec,
    /// Observed state.
    #[serde(default)]
    pub status: Option<SecretStoreStatus>,
}

impl ClusterSecretStore {
    /// A ClusterSecretStore with this name and spec.
    pub fn new(name: &str, spec: SecretStoreSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl Serialize for ClusterSecretStore {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let has_status = self.status.is_some();
        let mut obj = ser.serialize_struct("ClusterSecretStore", 4 + usize::from(has_status))?;
        obj.serialize_field("apiVersion", &<Self as Resource>::api_version(&()))?;
        obj.serialize_field("kind", &<Self as Resource>::kind(&()))?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        }
        obj.end()
    }
}

impl Resource for ClusterSecretStore {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn group(_: &()) -> Cow<'_, str> {
        "external-secrets.io".into()
    }

    fn kind(_: &()) -> Cow<'_, str> {
        "ClusterSecretStore".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        "external-secrets.io/v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "clustersecretstores".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl HasSpec for ClusterSecretStore {
    type Spec = SecretStoreSpec;

    fn spec(&self) -> &SecretStoreSpec {
        &self.spec
    }

    fn spec_mut(&mut self) -> &mut SecretStoreSpec {
        &mut self.spec
    }
}

impl HasStatus for ClusterSecretStore {
    type Status = SecretStoreStatus;

    fn status(&self) -> Option<&SecretStoreStatus> {
        self.status.as_ref()
    }

    fn status_mut(&mut self) -> &mut Option<SecretStoreStatus> {
        &mut self.status
    }
}

const CLUSTER_SECRET_STORE_DOC: &str = "ClusterSecretStore describes how to reach one external \
    secret manager for the whole cluster. ExternalSecrets in any namespace allowed by \
    spec.conditions refer to it with secretStoreRef.kind ClusterSecretStore.";

impl CustomResourceExt for ClusterSecretStore {
    /// The SecretStore CRD with the cluster-scoped names: the schema, printer columns and
    /// labels are the same by construction.
    fn crd() -> CustomResourceDefinition {
        let mut crd = SecretStore::crd();
        crd.metadata.name = Some(Self::crd_name().into());
        crd.spec.scope = "Cluster".into();
        crd.spec.names.kind = "ClusterSecretStore".into();
        crd.spec.names.plural = "clustersecretstores".into();
        crd.spec.names.singular = Some("clustersecretstore".into());
        crd.spec.names.short_names =
            Some(Self::shortnames().iter().map(|s| s.to_string()).collect());
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                schema.description = Some(CLUSTER_SECRET_STORE_DOC.into());
            }
        }
        crd
    }

    fn crd_name() -> &'static str {
        "clustersecretstores.external-secrets.io"
    }

    fn api_resource() -> kube::core::ApiResource {
        kube::core::ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        &["css"]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::testing::admission_errors;

    fn store(kind: &str, spec: Value) -> Value {
        json!({"apiVersion": "external-secrets.io/v1", "kind": kind, "metadata": {"name": "s", "namespace": "a"}, "spec": spec})
    }

    #[test]
    fn exactly_one_provider_key_is_required() {
        for kind in ["SecretStore", "ClusterSecretStore"] {
            assert!(
                admission_errors(&store(kind, json!({"provider": {"fake": {"data": []}}})))
                    .is_empty()
            );
            for bad in [json!({}), json!({"fake": {}, "vault": {}})] {
                let errors = admission_errors(&store(kind, json!({"provider": bad})));
                assert!(
                    errors.iter().any(|e| e.contains("provider")),
                    "{kind} {bad}: {errors:#?}"
                );
            }
            let errors = admission_errors(&store(kind, json!({})));
            assert!(
                errors.iter().any(|e| e.contains("provider")),
                "{kind}: {errors:#?}"
            );
            let errors = admission_errors(&store(
                kind,
                json!({"provider": {"vault": "https://vault"}}),
            ));
            assert!(!errors.is_empty(), "a provider config must be an object");
        }
    }

    #[test]
    fn provider_config_is_kept_verbatim_and_easy_to_reach() {
        let config = json!({"server": "https://vault:8200", "auth": {"kubernetes": {"role": "r"}}, "x": [1, null, {"y": true}]});
        let spec: SecretStoreSpec =
            serde_json::from_value(json!({"provider": {"vault": config}})).expect("spec");
        let (name, got) = spec.provider_config().expect("one provider");
        assert_eq!(
            (name, &serde_json::Value::Object(got.clone())),
            ("vault", &config)
        );
        let two: SecretStoreSpec =
            serde_json::from_value(json!({"provider": {"a": {}, "b": {}}})).expect("spec");
        assert_eq!(two.provider_config(), None);
    }

    #[test]
    fn refresh_interval_accepts_seconds_or_a_duration_string() {
        for interval in [json!(300), json!("5m")] {
            let object = store(
                "SecretStore",
                json!({"provider": {"fake": {}}, "refreshInterval": interval}),
            );
            assert!(admission_errors(&object).is_empty(), "{interval}");
        }
    }

    #[test]
    fn cluster_secret_store_shares_the_secret_store_schema_but_not_its_scope() {
        let (namespaced, cluster) = (SecretStore::crd(), ClusterSecretStore::crd());
        assert_eq!(
            (namespaced.spec.scope.as_str(), cluster.spec.scope.as_str()),
            ("Namespaced", "Cluster")
        );
        assert_eq!(cluster.spec.names.kind, "ClusterSecretStore");
        assert_eq!(
            cluster.spec.names.singular.as_deref(),
            Some("clustersecretstore")
        );
        let schema = |crd: &CustomResourceDefinition| {
            let mut schema = crd.spec.versions[0]
                .schema
                .clone()
                .expect("schema")
                .open_api_v3_schema
                .expect("schema");
            schema.description = None;
            schema
        };
        assert_eq!(schema(&namespaced), schema(&cluster));
        assert_eq!(
            namespaced.spec.versions[0].additional_printer_columns,
            cluster.spec.versions[0].additional_printer_columns
        );
        assert_eq!(
            ClusterSecretStore::crd_name(),
            format!("{}.{}", cluster.spec.names.plural, cluster.spec.group)
        );
    }

    #[test]
    fn cluster_secret_store_serializes_like_a_derived_resource() {
        let mut store = ClusterSecretStore::new("vault", SecretStoreSpec::default());
        store
            .spec
            .provider
            .insert("fake".into(), serde_json::Map::new());
        store.status = Some(SecretStoreStatus {
            capabilities: Some(Capabilities::ReadWrite),
            conditions: None,
        });
        let value = serde_json::to_value(&store).expect("json");
        assert_eq!(value["apiVersion"], "external-secrets.io/v1");
        assert_eq!(value["kind"], "ClusterSecretStore");
        assert_eq!(value["metadata"]["name"], "vault");
        assert_eq!(value["status"]["capabilities"], "ReadWrite");
        let back: ClusterSecretStore = serde_json::from_value(value).expect("back");
        assert_eq!(back, store);
        assert_eq!(store.spec(), &store.spec);
        assert_eq!(
            ClusterSecretStore::api_resource().plural,
            "clustersecretstores"
        );
        assert_eq!(
            <ClusterSecretStore as Resource>::api_version(&()),
            "external-secrets.io/v1"
        );
        let without_status =
            serde_json::to_value(ClusterSecretStore::new("x", SecretStoreSpec::default()))
                .expect("json");
        assert!(without_status.get("status").is_none());
    }
}
