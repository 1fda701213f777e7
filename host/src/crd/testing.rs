//! Offline checks shared by the CRD unit tests: loading sample manifests, a Kubernetes
//! structural-schema checker, a pruning simulator, round-trip comparison, and OpenAPI/CEL
//! validation of objects against the generated schemas.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::{
    ClusterExternalSecret, ClusterSecretStore, ExternalSecret, Provider, PushSecret, SecretStore,
    all,
};

/// Parses every YAML document of `tests/data/<relative>` (repository root) into JSON.
pub(crate) fn load_docs(relative: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut docs = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

/// The CRD serving `apiVersion`/`kind`.
pub(crate) fn crd_for(api_version: &str, kind: &str) -> CustomResourceDefinition {
    let (group, version) = api_version.split_once('/').expect("group/version");
    all()
        .into_iter()
        .find(|crd| {
            crd.spec.group == group
                && crd.spec.names.kind == kind
                && crd
                    .spec
                    .versions
                    .iter()
                    .any(|v| v.name == version && v.served)
        })
        .unwrap_or_else(|| panic!("no served CRD for {api_version} {kind}"))
}

/// The openAPIV3Schema of one version of a CRD, as JSON.
pub(crate) fn schema_of(crd: &CustomResourceDefinition, version: &str) -> Value {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .unwrap_or_else(|| panic!("{} has no version {version}", crd.spec.names.kind));
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("schema serializes")
}

/// The schema the apiserver would use for `object` (by its apiVersion and kind).
pub(crate) fn schema_for_object(object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let version = api_version.split_once('/').expect("group/version").1;
    schema_of(&crd_for(api_version, kind), version)
}

/// Deserializes `object` into the Rust type for its kind and serializes it back.
pub(crate) fn typed_round_trip(object: &Value) -> Result<Value, String> {
    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(
        object: &Value,
    ) -> Result<Value, String> {
        let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    match object["kind"].as_str() {
        Some("ExternalSecret") => via::<ExternalSecret>(object),
        Some("SecretStore") => via::<SecretStore>(object),
        Some("ClusterSecretStore") => via::<ClusterSecretStore>(object),
        Some("ClusterExternalSecret") => via::<ClusterExternalSecret>(object),
        Some("PushSecret") => via::<PushSecret>(object),
        Some("ClusterPushSecret") => via::<crate::crd::ClusterPushSecret>(object),
        Some("Provider") => via::<Provider>(object),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
const FORMATS: [&str; 8] = [
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "duration",
];
/// Keys a JSONSchemaProps node may carry in a CRD.
const SCHEMA_KEYS: [&str; 33] = [
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "nullable",
    "example",
    "externalDocs",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Everything in `schema` that a Kubernetes apiserver would refuse in a CRD's structural
/// schema, or that a JSONSchemaProps conversion would silently drop (`$ref`, `const`, …).
pub(crate) fn structural_errors(schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let root = schema.as_object().expect("schema object");
    if root.get("type") != Some(&json!("object")) {
        errors.push("root: type must be object".into());
    }
    for key in root
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.keys())
    {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            errors.push(format!("root: unexpected top-level property {key}"));
        }
    }
    check_node(schema, "", &mut errors);
    errors
}

fn check_node(node: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: schema must be an object, found {node}"));
        return;
    };
    let mut err = |msg: String| {
        errors.push(format!(
            "{}: {msg}",
            if path.is_empty() { "<root>" } else { path }
        ))
    };
    for key in obj.keys() {
        if !SCHEMA_KEYS.contains(&key.as_str()) {
            err(format!(
                "key {key:?} is not part of a Kubernetes structural schema"
            ));
        }
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    match obj.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {
            if int_or_string {
                err("x-kubernetes-int-or-string must not set type".into());
            }
        }
        Some(other) => err(format!("type must be one of {TYPES:?}, found {other}")),
        None if int_or_string || preserve => {}
        None => err("type is missing".into()),
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && !FORMATS.contains(&format)
    {
        err(format!("format {format:?} is not one Kubernetes knows"));
    }
    if obj.get("uniqueItems") == Some(&json!(true)) {
        err("uniqueItems: true is forbidden".into());
    }
    if obj.get("additionalProperties") == Some(&json!(false)) {
        err("additionalProperties: false is forbidden".into());
    }
    if obj.contains_key("additionalProperties") && obj.contains_key("properties") {
        err("properties and additionalProperties are mutually exclusive".into());
    }
    if let Some(Value::String(t)) = obj.get("type") {
        if t == "array" && !obj.get("items").is_some_and(Value::is_object) {
            err("arrays need a single items schema".into());
        }
        if t != "array" && obj.contains_key("items") {
            err("items on a non-array".into());
        }
        if t != "object"
            && (obj.contains_key("properties") || obj.contains_key("additionalProperties"))
        {
            err("properties on a non-object".into());
        }
        if let Some(values) = obj.get("enum").and_then(Value::as_array) {
            for value in values {
                let ok = match t.as_str() {
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "boolean" => value.is_boolean(),
                    _ => true,
                };
                let null_allowed = value.is_null() && obj.get("nullable") == Some(&json!(true));
                if !(ok || null_allowed) {
                    err(format!("enum value {value} does not match type {t}"));
                }
            }
        }
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        let properties = obj.get("properties").and_then(Value::as_object);
        for name in required {
            if !properties.is_some_and(|p| p.contains_key(name.as_str().unwrap_or_default())) {
                err(format!("required property {name} is not declared"));
            }
        }
    }
    if let Some(rules) = obj.get("x-kubernetes-validations") {
        for rule in rules.as_array().into_iter().flatten() {
            if !rule.get("rule").is_some_and(Value::is_string) {
                err(format!("validation without a rule: {rule}"));
            }
            if rule
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains('\n'))
            {
                err("validation messages must be one line".into());
            }
        }
    }
    if let Some(default) = obj.get("default") {
        for problem in value_errors(node, default) {
            err(format!("default {default} is invalid: {problem}"));
        }
    }
    if let Some(properties) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_node(child, &format!("{path}.{name}"), errors);
        }
    }
    if let Some(child) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_node(child, &format!("{path}.*"), errors);
    }
    if let Some(child) = obj.get("items").filter(|v| v.is_object()) {
        check_node(child, &format!("{path}[]"), errors);
    }
}

/// Fields of `value` the apiserver would drop because `schema` does not declare them.
pub(crate) fn pruned_fields(schema: &Value, value: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    let Some(object) = value.as_object() else {
        return pruned;
    };
    for (key, child) in object {
        if ["apiVersion", "kind", "metadata"].contains(&key.as_str()) {
            continue; // handled by the apiserver itself
        }
        match schema.get("properties").and_then(|p| p.get(key)) {
            Some(child_schema) => walk_pruning(child_schema, child, key, &mut pruned),
            None => pruned.push(key.clone()),
        }
    }
    pruned
}

fn walk_pruning(schema: &Value, value: &Value, path: &str, pruned: &mut Vec<String>) {
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|v| v.is_object());
            for (key, child) in object {
                let child_path = format!("{path}.{key}");
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    walk_pruning(child_schema, child, &child_path, pruned);
                } else if let Some(child_schema) = additional {
                    walk_pruning(child_schema, child, &child_path, pruned);
                } else if !preserve {
                    pruned.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk_pruning(item_schema, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Differences between an object as written (`original`) and after a typed round trip
/// (`back`). Fields the round trip adds are accepted only where the schema defaults them to
/// exactly that value (the apiserver would add them too).
pub(crate) fn round_trip_differences(
    schema: &Value,
    original: &Value,
    back: &Value,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (key, value) in original.as_object().expect("object") {
        match (key.as_str(), back.get(key)) {
            ("apiVersion", _) => {} // typed objects always speak the storage version
            ("kind" | "metadata", Some(b)) if b == value => {}
            ("kind" | "metadata", b) => diffs.push(format!("{key}: {value} became {b:?}")),
            (_, None) => diffs.push(format!("{key} was lost")),
            (_, Some(b)) => compare(&schema["properties"][key], value, b, key, &mut diffs),
        }
    }
    for (key, value) in back.as_object().expect("object") {
        if !original.as_object().expect("object").contains_key(key)
            && !["apiVersion", "kind"].contains(&key.as_str())
        {
            diffs.push(format!("{key}: {value} was added"));
        }
    }
    diffs
}

fn compare(schema: &Value, original: &Value, back: &Value, path: &str, diffs: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            let child_schema = |key: &str| {
                schema
                    .get("properties")
                    .and_then(|p| p.get(key))
                    .or_else(|| schema.get("additionalProperties"))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            for (key, value) in o {
                let child_path = format!("{path}.{key}");
                match b.get(key) {
                    Some(bv) => compare(&child_schema(key), value, bv, &child_path, diffs),
                    None => diffs.push(format!("{child_path} was lost")),
                }
            }
            for (key, value) in b {
                if !o.contains_key(key) && child_schema(key).get("default") != Some(value) {
                    diffs.push(format!(
                        "{path}.{key}: {value} was added without being a schema default"
                    ));
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                compare(&schema["items"], ov, bv, &format!("{path}[{i}]"), diffs);
            }
        }
        _ if original == back => {}
        _ => diffs.push(format!("{path}: {original} became {back}")),
    }
}

/// OpenAPI validation (types, enums, patterns, lengths, required) of `value` against `schema`.
pub(crate) fn value_errors(schema: &Value, value: &Value) -> Vec<String> {
    let validator =
        jsonschema::draft4::new(&openapi_to_json_schema(schema)).expect("schema compiles");
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

/// Rewrites the OpenAPI-only bits (`nullable`, `x-kubernetes-int-or-string`) into JSON Schema.
fn openapi_to_json_schema(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = obj.clone();
    if let Some(Value::Object(properties)) = out.get_mut("properties") {
        for child in properties.values_mut() {
            *child = openapi_to_json_schema(child);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = out.get_mut(key).filter(|c| c.is_object()) {
            *child = openapi_to_json_schema(child);
        }
    }
    let nullable = out.get("nullable") == Some(&json!(true));
    if out.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if nullable {
        let types = match out.get("type") {
            Some(Value::String(t)) => Some(vec![json!(t)]),
            Some(Value::Array(ts)) => Some(ts.clone()),
            _ => None,
        };
        if let Some(mut types) = types {
            types.push(json!("null"));
            out.insert("type".into(), Value::Array(types));
        }
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// CEL (`x-kubernetes-validations`) failures for `value`, with schema defaults applied first
/// as the apiserver does.
pub(crate) fn cel_errors(schema: &Value, value: &Value) -> Vec<String> {
    match kube_cel::Validator::new().validate(schema, value, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Every `x-kubernetes-validations` rule in `schema`, with the path of the node it sits on.
pub(crate) fn cel_rules(schema: &Value) -> Vec<(String, String, Value)> {
    fn walk(node: &Value, path: &str, out: &mut Vec<(String, String, Value)>) {
        for rule in node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push((
                path.to_string(),
                rule["rule"].as_str().unwrap_or_default().to_string(),
                node.clone(),
            ));
        }
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                walk(child, &format!("{path}.{name}"), out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = node.get(key).filter(|v| v.is_object()) {
                walk(
                    child,
                    &format!("{path}{}", if key == "items" { "[]" } else { ".*" }),
                    out,
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

/// Everything an apiserver would refuse `object` for at admission: OpenAPI violations and
/// failed CEL rules (defaults applied as the apiserver does), plus fields it would prune.
pub(crate) fn admission_errors(object: &Value) -> Vec<String> {
    let schema = schema_for_object(object);
    let mut errors = value_errors(&schema, object);
    errors.extend(cel_errors(&schema, object));
    errors.extend(
        pruned_fields(&schema, object)
            .into_iter()
            .map(|f| format!("{f} would be pruned")),
    );
    errors
}
