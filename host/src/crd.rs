//! The typed API: the ESO-compatible kinds of `external-secrets.io` and airlock's own
//! `Provider` (`airlock.dev`), with their CustomResourceDefinitions.
//!
//! ExternalSecret, SecretStore, ClusterSecretStore and ClusterExternalSecret are served as `v1`
//! (storage) and `v1beta1` with the same schema and no conversion, so manifests written for
//! either version apply unchanged. PushSecret is `v1alpha1`, Provider `airlock.dev/v1alpha1`.

pub mod cluster_external_secret;
pub mod cluster_push_secret;
pub mod common;
pub mod external_secret;
pub mod generator;
pub mod provider;
pub mod push_secret;
pub mod secret_store;
#[cfg(test)]
mod testing;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition,
};
use kube::CustomResourceExt;

pub use cluster_external_secret::{
    ClusterExternalSecret, ClusterExternalSecretSpec, ClusterExternalSecretStatus,
};
pub use cluster_push_secret::{ClusterPushSecret, ClusterPushSecretSpec, ClusterPushSecretStatus};
pub use common::{
    Condition, ConditionStatus, GoDuration, SecretKeySelector, ServiceAccountSelector,
};
pub use external_secret::{ExternalSecret, ExternalSecretSpec, ExternalSecretStatus};
pub use provider::{Provider, ProviderSpec, ProviderStatus};
pub use push_secret::{PushSecret, PushSecretSpec, PushSecretStatus};
pub use secret_store::{ClusterSecretStore, SecretStore, SecretStoreSpec, SecretStoreStatus};

/// The older API version still served for the ESO kinds.
pub const V1BETA1: &str = "v1beta1";

const V1BETA1_WARNING: &str =
    "external-secrets.io/v1beta1 is deprecated; use external-secrets.io/v1";

/// Adds a `v1beta1` version to a CRD derived at `v1`: the same schema, columns and
/// subresources, served but not stored, and no conversion (`strategy: None`) because the two
/// versions are the same shape.
fn with_v1beta1(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut beta = crd.spec.versions[0].clone();
    beta.name = V1BETA1.into();
    beta.served = true;
    beta.storage = false;
    beta.deprecated = Some(true);
    beta.deprecation_warning = Some(V1BETA1_WARNING.into());
    crd.spec.versions.push(beta);
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "None".into(),
        webhook: None,
    });
    crd
}

/// Puts a label on the CRD object itself. (kube's `#[kube(label)]` would also stamp it on
/// every object built with `::new`, which ESO does not do.)
fn with_label(
    mut crd: CustomResourceDefinition,
    key: &str,
    value: &str,
) -> CustomResourceDefinition {
    crd.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    crd
}

/// Joins the hard-wrapped lines of doc comments so `kubectl explain` can wrap the text itself;
/// blank lines (paragraphs) stay.
fn unwrap_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    match child {
                        serde_json::Value::String(text) if key == "description" => {
                            *text = text
                                .split("\n\n")
                                .map(|paragraph| {
                                    paragraph
                                        .split('\n')
                                        .map(str::trim)
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .collect::<Vec<_>>()
                                .join("\n\n");
                        }
                        _ => walk(child),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    walk(&mut value);
    serde_json::from_value(value).expect("a CRD deserializes")
}

/// Every CRD airlock installs: the four ESO kinds with `v1` and `v1beta1`, PushSecret and
/// Provider. The ESO kinds carry `external-secrets.io/component: controller` like ESO's.
pub fn all() -> Vec<CustomResourceDefinition> {
    let eso = |crd| with_label(crd, common::COMPONENT_LABEL, "controller");
    [
        eso(with_v1beta1(ExternalSecret::crd())),
        eso(with_v1beta1(SecretStore::crd())),
        eso(with_v1beta1(ClusterSecretStore::crd())),
        eso(with_v1beta1(ClusterExternalSecret::crd())),
        eso(PushSecret::crd()),
        eso(ClusterPushSecret::crd()),
        eso(generator::Password::crd()),
        eso(generator::UUID::crd()),
        eso(generator::Fake::crd()),
        eso(generator::MFA::crd()),
        eso(generator::ClusterGenerator::crd()),
        eso(generator::GeneratorState::crd()),
        with_label(Provider::crd(), "app.kubernetes.io/part-of", "airlock"),
    ]
    .into_iter()
    .map(unwrap_descriptions)
    .collect()
}

/// [`all`] as one multi-document YAML stream (`---` before each document), ready for a
/// `crds/` file or `kubectl apply -f -`.
pub fn to_yaml_docs() -> String {
    all()
        .iter()
        .map(|crd| {
            let yaml = serde_yaml::to_string(crd).expect("a CRD always serializes to YAML");
            format!("---\n{yaml}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
    use serde_json::{Value, json};

    use super::{testing::*, *};

    const ESO_KINDS: [&str; 4] = [
        "ExternalSecret",
        "SecretStore",
        "ClusterSecretStore",
        "ClusterExternalSecret",
    ];

    fn crd(kind: &str) -> CustomResourceDefinition {
        all()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"))
    }

    fn sample_manifests() -> Vec<Value> {
        let mut docs = load_docs("seed/docs-manifests.yaml");
        assert_eq!(
            docs.len(),
            12,
            "the seed page has twelve complete manifests"
        );
        docs.extend(load_docs("seed/eso-fields.yaml"));
        docs
    }

    fn name_of(doc: &Value) -> String {
        format!(
            "{} {}/{}",
            doc["kind"], doc["apiVersion"], doc["metadata"]["name"]
        )
    }

    #[test]
    fn seed_and_reference_manifests_round_trip_without_losing_fields() {
        for doc in sample_manifests() {
            let back = typed_round_trip(&doc).unwrap_or_else(|e| panic!("{}: {e}", name_of(&doc)));
            let diffs = round_trip_differences(&schema_for_object(&doc), &doc, &back);
            assert!(diffs.is_empty(), "{}: {diffs:#?}", name_of(&doc));
        }
    }

    #[test]
    fn seed_and_reference_manifests_are_admitted_unchanged() {
        for doc in sample_manifests() {
            let errors = admission_errors(&doc);
            assert!(errors.is_empty(), "{}: {errors:#?}", name_of(&doc));
        }
    }

    #[test]
    fn seed_page_fragments_fit_an_external_secret() {
        for fragment in load_docs("seed/docs-fragments.yaml") {
            let mut doc = json!({
                "apiVersion": "external-secrets.io/v1beta1",
                "kind": "ExternalSecret",
                "metadata": {"name": "fragment", "namespace": "production"},
                "spec": {
                    "secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
                    "data": [{"secretKey": "k", "remoteRef": {"key": "production/k"}}],
                },
            });
            for (key, value) in fragment["spec"].as_object().expect("spec fragment") {
                doc["spec"][key] = value.clone();
            }
            assert!(
                admission_errors(&doc).is_empty(),
                "{fragment}: {:?}",
                admission_errors(&doc)
            );
            let back = typed_round_trip(&doc).expect("typed");
            assert!(round_trip_differences(&schema_for_object(&doc), &doc, &back).is_empty());
        }
    }

    #[test]
    fn eso_kinds_serve_v1_for_storage_and_v1beta1_with_the_same_schema() {
        for kind in ESO_KINDS {
            let crd = crd(kind);
            let names: Vec<_> = crd
                .spec
                .versions
                .iter()
                .map(|v| (v.name.as_str(), v.served, v.storage))
                .collect();
            assert_eq!(
                names,
                [("v1", true, true), ("v1beta1", true, false)],
                "{kind}"
            );
            let (v1, beta) = (&crd.spec.versions[0], &crd.spec.versions[1]);
            assert_eq!(v1.schema, beta.schema, "{kind}");
            assert_eq!(
                v1.additional_printer_columns, beta.additional_printer_columns,
                "{kind}"
            );
            assert_eq!(v1.subresources, beta.subresources, "{kind}");
            assert_eq!(v1.selectable_fields, beta.selectable_fields, "{kind}");
            assert_eq!(beta.deprecated, Some(true), "{kind}");
            assert_eq!(v1.deprecated, None, "{kind}");
            let conversion = crd.spec.conversion.as_ref().expect("conversion");
            assert_eq!(
                (conversion.strategy.as_str(), conversion.webhook.is_none()),
                ("None", true),
                "{kind}"
            );
        }
        let push = crd("PushSecret");
        assert_eq!(push.spec.versions.len(), 1);
        assert_eq!(
            (
                push.spec.versions[0].name.as_str(),
                push.spec.versions[0].storage
            ),
            ("v1alpha1", true)
        );
        let provider = crd("Provider");
        assert_eq!(
            (
                provider.spec.group.as_str(),
                provider.spec.versions[0].name.as_str()
            ),
            ("airlock.dev", "v1alpha1")
        );
    }

    #[test]
    fn crds_carry_eso_names_scopes_labels_and_categories() {
        let expected = [
            (
                "ExternalSecret",
                "externalsecrets.external-secrets.io",
                "Namespaced",
                "es",
                "external-secrets",
            ),
            (
                "SecretStore",
                "secretstores.external-secrets.io",
                "Namespaced",
                "ss",
                "external-secrets",
            ),
            (
                "ClusterSecretStore",
                "clustersecretstores.external-secrets.io",
                "Cluster",
                "css",
                "external-secrets",
            ),
            (
                "ClusterExternalSecret",
                "clusterexternalsecrets.external-secrets.io",
                "Cluster",
                "ces",
                "external-secrets",
            ),
            (
                "PushSecret",
                "pushsecrets.external-secrets.io",
                "Namespaced",
                "ps",
                "external-secrets",
            ),
        ];
        for (kind, name, scope, short, category) in expected {
            let crd = crd(kind);
            assert_eq!(crd.metadata.name.as_deref(), Some(name));
            assert_eq!(crd.spec.scope, scope, "{kind}");
            assert_eq!(
                crd.spec.names.short_names,
                Some(vec![short.to_string()]),
                "{kind}"
            );
            assert_eq!(
                crd.spec.names.categories,
                Some(vec![category.to_string()]),
                "{kind}"
            );
            assert_eq!(
                crd.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(common::COMPONENT_LABEL))
                    .map(String::as_str),
                Some("controller"),
                "{kind}"
            );
            assert_eq!(
                format!("{}.{}", crd.spec.names.plural, crd.spec.group),
                name
            );
        }
        let provider = crd("Provider");
        assert_eq!(
            provider.metadata.name.as_deref(),
            Some("providers.airlock.dev")
        );
        assert_eq!(provider.spec.scope, "Cluster");
        assert_eq!(
            provider.spec.names.categories,
            Some(vec!["airlock".to_string()])
        );
        let names: BTreeSet<_> = all().into_iter().filter_map(|c| c.metadata.name).collect();
        // ESO's six, the Provider, the generators Password, UUID, Fake, MFA, ClusterGenerator,
        // and GeneratorState.
        assert_eq!(names.len(), 13);
        let gs = crd("GeneratorState");
        assert_eq!(gs.spec.scope, "Namespaced");
        assert_eq!(gs.spec.names.short_names, Some(vec!["gs".to_string()]));
        assert_eq!(
            gs.spec.names.categories,
            Some(vec![
                "external-secrets".to_string(),
                "external-secrets-generators".to_string()
            ])
        );
        let schema = schema_of(&gs, "v1alpha1");
        assert_eq!(
            schema["properties"]["spec"]["required"],
            json!(["resource", "state"])
        );
        // ClusterPushSecret as ESO serves it: cluster-scoped, v1alpha1 only, no short name.
        let cps = crd("ClusterPushSecret");
        assert_eq!(
            cps.metadata.name.as_deref(),
            Some("clusterpushsecrets.external-secrets.io")
        );
        assert_eq!(cps.spec.scope, "Cluster");
        assert_eq!(cps.spec.names.short_names, None);
        assert_eq!(
            cps.spec.names.categories,
            Some(vec!["external-secrets".to_string()])
        );
        let versions: Vec<_> = cps
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(versions, [("v1alpha1", true, true)]);
        assert_eq!(
            cps.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(common::COMPONENT_LABEL))
                .map(String::as_str),
            Some("controller")
        );
        for kind in ["Password", "UUID", "Fake", "MFA"] {
            assert_eq!(crd(kind).spec.group, "generators.external-secrets.io");
            assert_eq!(crd(kind).spec.scope, "Namespaced", "{kind}");
        }
        assert_eq!(crd("ClusterGenerator").spec.scope, "Cluster");
    }

    #[test]
    fn printer_columns_match_eso() {
        const READY_REASON: &str = ".status.conditions[?(@.type==\"Ready\")].reason";
        const READY_STATUS: &str = ".status.conditions[?(@.type==\"Ready\")].status";
        const CREATED: &str = ".metadata.creationTimestamp";
        let store = [
            ("AGE", "date", CREATED),
            ("Status", "string", READY_REASON),
            ("Capabilities", "string", ".status.capabilities"),
            ("Ready", "string", READY_STATUS),
        ];
        type Column<'a> = (&'a str, &'a str, &'a str);
        let expected: [(&str, &[Column]); 8] = [
            (
                "ExternalSecret",
                &[
                    ("StoreType", "string", ".spec.secretStoreRef.kind"),
                    ("Store", "string", ".spec.secretStoreRef.name"),
                    ("Refresh Interval", "string", ".spec.refreshInterval"),
                    ("Status", "string", READY_REASON),
                    ("Ready", "string", READY_STATUS),
                    ("Last Sync", "date", ".status.refreshTime"),
                ],
            ),
            ("SecretStore", &store),
            ("ClusterSecretStore", &store),
            (
                "ClusterExternalSecret",
                &[
                    (
                        "Store",
                        "string",
                        ".spec.externalSecretSpec.secretStoreRef.name",
                    ),
                    ("Refresh Interval", "string", ".spec.refreshTime"),
                    ("Ready", "string", READY_STATUS),
                ],
            ),
            (
                "PushSecret",
                &[
                    ("AGE", "date", CREATED),
                    ("Status", "string", READY_REASON),
                    ("Last Sync", "date", ".status.refreshTime"),
                ],
            ),
            (
                "ClusterPushSecret",
                &[("AGE", "date", CREATED), ("Status", "string", READY_REASON)],
            ),
            (
                "GeneratorState",
                &[
                    ("GC Deadline", "string", ".spec.garbageCollectionDeadline"),
                    ("Age", "date", CREATED),
                ],
            ),
            (
                "Provider",
                &[
                    ("Module", "string", ".spec.module['oci','path']"),
                    ("Digest", "string", ".status.digest"),
                    ("Status", "string", READY_REASON),
                    ("Ready", "string", READY_STATUS),
                    ("Age", "date", CREATED),
                    (
                        "Message",
                        "string",
                        ".status.conditions[?(@.type==\"Ready\")].message",
                    ),
                ],
            ),
        ];
        for (kind, columns) in expected {
            for version in &crd(kind).spec.versions {
                let got: Vec<Column> = version
                    .additional_printer_columns
                    .iter()
                    .flatten()
                    .map(
                        |CustomResourceColumnDefinition {
                             name,
                             type_,
                             json_path,
                             ..
                         }| {
                            (name.as_str(), type_.as_str(), json_path.as_str())
                        },
                    )
                    .collect();
                assert_eq!(got, columns, "{kind} {}", version.name);
            }
        }
    }

    #[test]
    fn every_kind_has_a_status_subresource() {
        // ESO's generator kinds are specs only: nothing reconciles them, so no status.
        for crd in all()
            .into_iter()
            .filter(|c| c.spec.group != generator::GROUP)
        {
            for version in &crd.spec.versions {
                let status = version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref());
                assert!(status.is_some(), "{} {}", crd.spec.names.kind, version.name);
                let schema = schema_of(&crd, &version.name);
                assert!(
                    schema["properties"]["status"].is_object(),
                    "{}",
                    crd.spec.names.kind
                );
            }
        }
    }

    #[test]
    fn external_secrets_can_be_selected_by_store_target_and_interval() {
        let crd = crd("ExternalSecret");
        let fields: Vec<_> = crd.spec.versions[0]
            .selectable_fields
            .iter()
            .flatten()
            .map(|f| f.json_path.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                ".spec.secretStoreRef.name",
                ".spec.secretStoreRef.kind",
                ".spec.target.name",
                ".spec.refreshInterval"
            ]
        );
    }

    #[test]
    fn store_provider_config_is_a_single_preserved_object() {
        for kind in ["SecretStore", "ClusterSecretStore"] {
            let schema = schema_of(&crd(kind), "v1");
            let provider = &schema["properties"]["spec"]["properties"]["provider"];
            assert_eq!(provider["type"], "object");
            assert_eq!(
                (
                    provider["minProperties"].as_i64(),
                    provider["maxProperties"].as_i64()
                ),
                (Some(1), Some(1))
            );
            assert_eq!(provider["additionalProperties"]["type"], "object");
            assert_eq!(
                provider["additionalProperties"]["x-kubernetes-preserve-unknown-fields"],
                true
            );
            let required = &schema["properties"]["spec"]["required"];
            assert!(
                required
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("provider"))),
                "{kind}"
            );
        }
    }

    #[test]
    fn generated_schemas_are_structural() {
        for crd in all() {
            for version in &crd.spec.versions {
                let errors = structural_errors(&schema_of(&crd, &version.name));
                assert!(
                    errors.is_empty(),
                    "{} {}: {errors:#?}",
                    crd.spec.names.kind,
                    version.name
                );
            }
        }
    }

    /// kube converts the schemars output into `JSONSchemaProps`, which silently drops keys it
    /// does not know (`$ref`, `const`, `$defs`, …). Check the raw output so nothing is lost on
    /// the way.
    #[test]
    fn raw_schemars_output_has_nothing_the_conversion_would_drop() {
        fn raw<T: schemars::JsonSchema>() -> Value {
            let generator = schemars::generate::SchemaSettings::openapi3()
                .with(|s| {
                    s.inline_subschemas = true;
                    s.meta_schema = None;
                })
                .with_transform(schemars::transform::AddNullable::default())
                .with_transform(kube::core::schema::StructuralSchemaRewriter)
                .with_transform(kube::core::schema::OptionalEnum)
                .with_transform(kube::core::schema::OptionalIntOrString)
                .into_generator();
            serde_json::to_value(generator.into_root_schema_for::<T>()).expect("schema json")
        }
        let schemas = [
            (
                "ExternalSecret",
                raw::<ExternalSecret>(),
                ExternalSecret::crd(),
            ),
            ("SecretStore", raw::<SecretStore>(), SecretStore::crd()),
            (
                "ClusterExternalSecret",
                raw::<ClusterExternalSecret>(),
                ClusterExternalSecret::crd(),
            ),
            ("PushSecret", raw::<PushSecret>(), PushSecret::crd()),
            (
                "ClusterPushSecret",
                raw::<ClusterPushSecret>(),
                ClusterPushSecret::crd(),
            ),
            ("Provider", raw::<Provider>(), Provider::crd()),
        ];
        for (kind, schema, crd) in schemas {
            let errors = structural_errors(&schema);
            assert!(errors.is_empty(), "{kind}: {errors:#?}");
            let converted = schema_of(&crd, &crd.spec.versions[0].name);
            let lost = json_differences(&schema, &converted, "");
            assert!(
                lost.is_empty(),
                "{kind}: the JSONSchemaProps conversion changed {lost:#?}"
            );
        }
    }

    /// Structural differences, treating `1` and `1.0` as equal (JSONSchemaProps stores bounds as
    /// floats).
    fn json_differences(a: &Value, b: &Value, path: &str) -> Vec<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter()
                    .flat_map(|k| {
                        json_differences(
                            x.get(k).unwrap_or(&Value::Null),
                            y.get(k).unwrap_or(&Value::Null),
                            &format!("{path}.{k}"),
                        )
                    })
                    .collect()
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .flat_map(|(i, (x, y))| json_differences(x, y, &format!("{path}[{i}]")))
                .collect(),
            (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => vec![],
            _ if a == b => vec![],
            _ => vec![format!("{path}: {a} vs {b}")],
        }
    }

    #[test]
    fn every_field_is_documented_for_kubectl_explain() {
        fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
            for (name, child) in node
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let child_path = format!("{path}.{name}");
                match child.get("description").and_then(Value::as_str) {
                    None => missing.push(child_path.clone()),
                    Some(d) if d.trim().is_empty() => missing.push(child_path.clone()),
                    // Hard line breaks would show up mid-sentence in `kubectl explain`.
                    Some(d) if d.replace("\n\n", "").contains('\n') => {
                        missing.push(format!("{child_path} (hard-wrapped)"))
                    }
                    Some(_) => {}
                }
                walk(child, &child_path, missing);
            }
            for key in ["items", "additionalProperties"] {
                if let Some(child) = node.get(key).filter(|v| v.is_object()) {
                    walk(child, path, missing);
                }
            }
        }
        for crd in all() {
            let schema = schema_of(&crd, &crd.spec.versions[0].name);
            assert!(
                schema.get("description").is_some(),
                "{}",
                crd.spec.names.kind
            );
            let mut missing = Vec::new();
            walk(&schema["properties"]["spec"], ".spec", &mut missing);
            walk(&schema["properties"]["status"], ".status", &mut missing);
            assert!(
                missing.is_empty(),
                "{}: undocumented {missing:#?}",
                crd.spec.names.kind
            );
        }
    }

    #[test]
    fn cel_rules_compile_and_iterate_only_bounded_lists() {
        let mut count = 0;
        for crd in all() {
            let schema = schema_of(&crd, &crd.spec.versions[0].name);
            for (path, rule, node) in cel_rules(&schema) {
                count += 1;
                kube_cel::cel::Program::compile(&rule)
                    .unwrap_or_else(|e| panic!("{path}: {rule}: {e}"));
                // Comprehensions over fields must have bounded lists, or the apiserver's cost
                // estimate assumes millions of items and rejects the CRD.
                for macro_name in [".all(", ".exists(", ".exists_one(", ".map(", ".filter("] {
                    for (start, _) in rule.match_indices(macro_name) {
                        let receiver = rule[..start]
                            .rsplit([' ', '(', '!', '|', '&'])
                            .next()
                            .unwrap_or_default();
                        if receiver.ends_with(']') {
                            continue; // a list literal
                        }
                        let mut target = &node;
                        for segment in receiver.split('.').skip(1) {
                            target = &target["properties"][segment];
                        }
                        assert!(
                            target["maxItems"].is_u64(),
                            "{path}: {rule}: {receiver} has no maxItems"
                        );
                        let item = &target["items"];
                        if item["type"] == "string" {
                            assert!(
                                item["maxLength"].is_u64(),
                                "{path}: {rule}: {receiver}[] has no maxLength"
                            );
                        }
                    }
                }
            }
        }
        assert!(count >= 10, "expected the admission rules, found {count}");
    }

    #[test]
    fn yaml_documents_parse_back_into_the_same_crds() {
        let yaml = to_yaml_docs();
        assert!(yaml.starts_with("---\n"));
        let parsed: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("a CRD"))
            .collect();
        assert_eq!(parsed, all());
        assert!(
            yaml.contains("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n")
        );
    }
}
