//! The CRDs on a real kube-apiserver, with no operator running: the seed document's manifests
//! apply unchanged at both served versions without losing a field, bad input is refused by
//! the schema and its CEL rules, and `kubectl` shows ESO's columns and documentation.

mod cluster;

use cluster::install_crds;

use airlock::crd;
use airlock_testenv::ControlPlane;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde::Deserialize;
use serde_json::{Value, json};

const SEED: &str = include_str!("../../tests/data/seed/docs-manifests.yaml");
const GROUP: &str = "external-secrets.io";

fn seed_manifests() -> Vec<Value> {
    serde_yaml::Deserializer::from_str(SEED)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "ExternalSecret" => "externalsecrets",
        "SecretStore" => "secretstores",
        "ClusterSecretStore" => "clustersecretstores",
        "ClusterExternalSecret" => "clusterexternalsecrets",
        other => panic!("unexpected kind {other}"),
    }
}

/// A dynamic API for `kind` at `version`, namespaced unless the kind is cluster-scoped.
fn dynamic_api(client: &Client, kind: &str, version: &str, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, version, kind),
        plural(kind),
    );
    if kind.starts_with("Cluster") {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    }
}

/// The OpenAPI schema of `kind`'s `spec` in the installed CRDs.
fn spec_schema(kind: &str) -> Value {
    let crd = crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("a CRD for the kind");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema");
    serde_json::to_value(schema).expect("schema JSON")["properties"]["spec"].clone()
}

/// The schema of a child: `properties[key]`, else `additionalProperties`.
fn child_schema(schema: &Value, key: &str) -> Value {
    schema["properties"]
        .get(key)
        .or_else(|| schema.get("additionalProperties"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Whether `value` is what the schema's defaults alone would produce.
fn is_schema_default(schema: &Value, value: &Value) -> bool {
    if let Some(default) = schema.get("default") {
        return default == value;
    }
    match value {
        Value::Object(map) => {
            !map.is_empty()
                && map
                    .iter()
                    .all(|(k, v)| is_schema_default(&child_schema(schema, k), v))
        }
        _ => false,
    }
}

/// Lists every difference between what was sent and what came back other than fields the
/// schema defaulted: pruned or changed fields, and non-default additions.
fn differences(sent: &Value, got: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, got) {
        (Value::Object(s), Value::Object(g)) => {
            for (k, v) in s {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    None => out.push(format!("{p} was pruned")),
                    Some(gv) => differences(v, gv, &child_schema(schema, k), &p, out),
                }
            }
            for (k, v) in g.iter().filter(|(k, _)| !s.contains_key(*k)) {
                if !is_schema_default(&child_schema(schema, k), v) {
                    out.push(format!(
                        "{path}.{k} = {v} was added but is not a schema default"
                    ));
                }
            }
        }
        (Value::Array(s), Value::Array(g)) if s.len() == g.len() => {
            for (i, (sv, gv)) in s.iter().zip(g).enumerate() {
                differences(sv, gv, &schema["items"], &format!("{path}[{i}]"), out);
            }
        }
        _ if sent == got => {}
        _ => out.push(format!("{path}: sent {sent}, got {got}")),
    }
}

#[test]
fn the_comparison_reports_pruned_fields_and_additions_that_are_not_schema_defaults() {
    let schema = spec_schema("ExternalSecret");
    let sent = json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "k", "remoteRef": {"key": "r"}}]});
    let mut problems = Vec::new();
    let mut got = sent.clone();
    got["refreshInterval"] = json!("1h0m0s");
    differences(&sent, &got, &schema, "spec", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    got["data"][0]["remoteRef"]
        .as_object_mut()
        .expect("object")
        .remove("key");
    got["refreshPolicy"] = json!("OnChange");
    differences(&sent, &got, &schema, "spec", &mut problems);
    assert_eq!(
        problems,
        [
            "spec.data[0].remoteRef.key was pruned",
            "spec.refreshPolicy = \"OnChange\" was added but is not a schema default"
        ]
    );
}

async fn ensure_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// Applies every seed manifest at `version` (dry run, then for real), and reads each back at
/// `other` to check nothing was pruned.
async fn apply_seed_at(client: &Client, version: &str, other: &str, default_ns: &str) {
    let manifests = seed_manifests();
    assert_eq!(manifests.len(), 12, "the seed document has 12 manifests");
    for mut manifest in manifests {
        manifest["apiVersion"] = json!(format!("{GROUP}/{version}"));
        let kind = manifest["kind"].as_str().expect("kind").to_string();
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let namespace = manifest["metadata"]["namespace"]
            .as_str()
            .unwrap_or(default_ns)
            .to_string();
        if !kind.starts_with("Cluster") {
            ensure_namespace(client, &namespace).await;
        }
        let what = format!("{kind} {name} at {version}");
        let schema = spec_schema(&kind);
        let sent = manifest["spec"].clone();
        let api = dynamic_api(client, &kind, version, &namespace);
        let params = PatchParams::apply("airlock-seed-test").force();

        let dry = api
            .patch(&name, &params.clone().dry_run(), &Patch::Apply(&manifest))
            .await
            .unwrap_or_else(|e| panic!("dry run of {what} refused: {e}"));
        let mut problems = Vec::new();
        differences(&sent, &dry.data["spec"], &schema, "spec", &mut problems);
        assert!(problems.is_empty(), "dry run of {what}: {problems:#?}");

        api.patch(&name, &params, &Patch::Apply(&manifest))
            .await
            .unwrap_or_else(|e| panic!("{what} refused: {e}"));
        let back = dynamic_api(client, &kind, other, &namespace)
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("reading {what} back at {other}: {e}"));
        assert_eq!(
            back.types.as_ref().map(|t| t.api_version.as_str()),
            Some(format!("{GROUP}/{other}").as_str())
        );
        let mut problems = Vec::new();
        differences(&sent, &back.data["spec"], &schema, "spec", &mut problems);
        assert!(problems.is_empty(), "{what} read at {other}: {problems:#?}");
    }
}

#[tokio::test]
async fn every_seed_manifest_applies_unchanged_at_v1beta1_and_reads_back_whole_at_v1() {
    let client = ControlPlane::shared().client();
    install_crds(&client).await;
    let ns = ControlPlane::shared()
        .new_namespace("seed-beta")
        .await
        .expect("namespace");
    apply_seed_at(&client, "v1beta1", "v1", &ns).await;
}

#[tokio::test]
async fn every_seed_manifest_converted_to_v1_applies_and_reads_back_whole_at_v1beta1() {
    let client = ControlPlane::shared().client();
    install_crds(&client).await;
    let ns = ControlPlane::shared()
        .new_namespace("seed-v1")
        .await
        .expect("namespace");
    apply_seed_at(&client, "v1", "v1beta1", &ns).await;
}

/// Creates an ExternalSecret with `spec` and returns the apiserver's refusal message.
async fn refusal(client: &Client, ns: &str, name: &str, spec: Value) -> String {
    // Sent as JSON so that invalid values reach the apiserver exactly as written.
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("a dynamic object");
    let dynamic = dynamic_api(client, "ExternalSecret", "v1", ns);
    match dynamic.create(&PostParams::default(), &object).await {
        Ok(_) => panic!("ExternalSecret {name} was accepted"),
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            e.message
        }
        Err(e) => panic!("unexpected error for {name}: {e}"),
    }
}

#[tokio::test]
async fn the_apiserver_refuses_external_secrets_that_break_the_admission_rules() {
    let client = ControlPlane::shared().client();
    install_crds(&client).await;
    let ns = ControlPlane::shared()
        .new_namespace("bad-input")
        .await
        .expect("namespace");
    let store = json!({"name": "s", "kind": "SecretStore"});
    let data = json!([{"secretKey": "k", "remoteRef": {"key": "remote"}}]);

    let message = refusal(&client, &ns, "nothing", json!({"secretStoreRef": store})).await;
    assert!(
        message.contains("at least one of data or dataFrom must be set"),
        "{message}"
    );

    let message = refusal(
        &client,
        &ns,
        "soon",
        json!({"secretStoreRef": store, "refreshInterval": "soon", "data": data}),
    )
    .await;
    assert!(
        message.contains("spec.refreshInterval: Invalid value: \"soon\""),
        "{message}"
    );

    let message = refusal(
        &client,
        &ns,
        "merge-delete",
        json!({"secretStoreRef": store, "data": data,
               "target": {"creationPolicy": "Merge", "deletionPolicy": "Delete"}}),
    )
    .await;
    assert!(
        message.contains("deletionPolicy Delete requires creationPolicy Owner"),
        "{message}"
    );
}

fn kubectl(args: &[&str]) -> String {
    ControlPlane::shared()
        .kubectl(args)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e:#}"))
}

#[tokio::test]
async fn kubectl_get_shows_esos_columns_and_explain_shows_the_documentation() {
    let client = ControlPlane::shared().client();
    install_crds(&client).await;
    let ns = ControlPlane::shared()
        .new_namespace("kubectl")
        .await
        .expect("namespace");
    let api = dynamic_api(&client, "ExternalSecret", "v1", &ns);
    let es: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "database", "namespace": ns},
        "spec": {"refreshInterval": "15m",
                 "secretStoreRef": {"name": "vault-backend", "kind": "ClusterSecretStore"},
                 "data": [{"secretKey": "k", "remoteRef": {"key": "remote"}}]},
    }))
    .expect("dynamic");
    api.create(&PostParams::default(), &es)
        .await
        .expect("create");
    let out = tokio::task::spawn_blocking({
        let ns = ns.clone();
        move || kubectl(&["get", "externalsecrets", "-n", &ns])
    })
    .await
    .expect("kubectl");
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("a header")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STORETYPE",
            "STORE",
            "REFRESH INTERVAL",
            "STATUS",
            "READY",
            "LAST SYNC"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["database", "ClusterSecretStore", "vault-backend", "15m"],
        "{out}"
    );

    let explain = tokio::task::spawn_blocking(|| kubectl(&["explain", "externalsecret.spec"]))
        .await
        .expect("kubectl");
    for expected in [
        "GROUP:      external-secrets.io",
        "refreshInterval",
        "How often to fetch the values again",
        "secretStoreRef",
        "At least one of `data` or `dataFrom` must be given.",
    ] {
        assert!(
            explain.contains(expected),
            "missing {expected:?} in:\n{explain}"
        );
    }
}
