//! `airlock render`: renders an ExternalSecret's template offline (ESO's `esoctl template`),
//! from a data file instead of a provider, and prints the Secret it would write.
//!
//! `dataFrom[].sourceRef.generatorRef` sources run for real, from generator manifests given
//! with `--generator` (Password, UUID, Fake, ClusterGenerator), with the entry's `rewrite[]`;
//! the data file's values are laid over what they generate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt as _;

use crate::crd::ExternalSecret;
use crate::template::{ENGINE_ANNOTATION, Engine, Sources};

/// Arguments of `airlock render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The ExternalSecret manifest (YAML) whose `spec.target.template` to render.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub external_secret: PathBuf,
    /// The fetched values: a YAML or JSON map of secret key to value, as the provider would
    /// return them. Needed unless every source of the ExternalSecret is a generator.
    #[arg(long, short = 'd', value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// A generator manifest (Password, UUID, Fake or ClusterGenerator; several YAML documents
    /// allowed) that `dataFrom[].sourceRef.generatorRef` names (repeatable).
    #[arg(long = "generator", value_name = "FILE")]
    pub generators: Vec<PathBuf>,
    /// A ConfigMap manifest that `templateFrom[].configMap` names (repeatable).
    #[arg(long = "template-from-config-map", value_name = "FILE")]
    pub config_maps: Vec<PathBuf>,
    /// A Secret manifest that `templateFrom[].secret` names (repeatable).
    #[arg(long = "template-from-secret", value_name = "FILE")]
    pub secrets: Vec<PathBuf>,
    /// Write the Secret here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn yaml<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    serde_yaml::from_str(&read(path)?)
        .with_context(|| format!("{} is not a valid {what}", path.display()))
}

/// Reads the data file: every value becomes the bytes of its text (numbers and booleans as
/// written).
fn data_file(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let map: BTreeMap<String, serde_yaml::Value> = yaml(path, "map of keys to values")?;
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Null => String::new(),
                _ => bail!(
                    "{}: the value of {k:?} must be a string, number or boolean",
                    path.display()
                ),
            };
            Ok((k, text.into_bytes()))
        })
        .collect()
}

/// Every YAML document of the generator files.
fn generator_manifests(paths: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for path in paths {
        let text = read(path)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(doc)
                .with_context(|| format!("{} is not valid YAML", path.display()))?;
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    Ok(out)
}

/// The values the ExternalSecret's generators produce, in `dataFrom` order.
fn generated(
    es: &ExternalSecret,
    manifests: &[serde_json::Value],
    engine: Engine,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for (i, from) in es.spec.data_from.iter().flatten().enumerate() {
        let Some(generator) = from
            .source_ref
            .as_ref()
            .and_then(|s| s.generator_ref.as_ref())
        else {
            continue;
        };
        let what = format!("spec.dataFrom[{i}]");
        let values = crate::controller::generator::generate_offline(manifests, generator)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let rewrites = from.rewrite.as_deref().unwrap_or_default();
        // The rewrite's errors name the entry already.
        out.extend(crate::controller::external_secret::data::generated_keys(
            values, rewrites, &what, engine,
        )?);
    }
    Ok(out)
}

/// Whether every source of the ExternalSecret is a generator (so no data file is needed).
fn only_generators(es: &ExternalSecret) -> bool {
    es.spec.data.as_ref().is_none_or(Vec::is_empty)
        && es.spec.data_from.iter().flatten().all(|f| {
            f.source_ref
                .as_ref()
                .is_some_and(|s| s.generator_ref.is_some())
        })
}

/// Renders the template and returns the Secret it yields.
pub fn render(args: &RenderArgs) -> anyhow::Result<Secret> {
    let es: ExternalSecret = yaml(&args.external_secret, "ExternalSecret")?;
    let engine =
        Engine::from_annotation(es.annotations().get(ENGINE_ANNOTATION).map(String::as_str))?;
    let mut data = generated(&es, &generator_manifests(&args.generators)?, engine)?;
    match &args.data {
        Some(path) => data.extend(data_file(path)?),
        None if only_generators(&es) => {}
        None => bail!(
            "--data is required: the ExternalSecret reads from a store (spec.data or a dataFrom entry that is not a generator)"
        ),
    }
    let mut sources = Sources::default();
    for path in &args.config_maps {
        let cm: ConfigMap = yaml(path, "ConfigMap")?;
        let mut map: BTreeMap<String, Vec<u8>> = cm
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        map.extend(
            cm.binary_data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        sources.config_maps.insert(cm.name_any(), map);
    }
    for path in &args.secrets {
        let s: Secret = yaml(path, "Secret")?;
        let mut map: BTreeMap<String, Vec<u8>> = s
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        map.extend(
            s.string_data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        );
        sources.secrets.insert(s.name_any(), map);
    }
    let template = es.spec.target.template.clone().unwrap_or_default();
    let rendered = crate::template::apply(&template, engine, &data, &sources)?;
    let mut secret = Secret::default();
    secret.metadata.name = Some(crate::controller::external_secret::target_name(&es));
    secret.metadata.namespace = es.namespace();
    if !rendered.labels.is_empty() {
        secret.metadata.labels = Some(rendered.labels);
    }
    if !rendered.annotations.is_empty() {
        secret.metadata.annotations = Some(rendered.annotations);
    }
    secret.type_ = Some(rendered.type_.unwrap_or_else(|| "Opaque".into()));
    secret.data = Some(
        rendered
            .data
            .into_iter()
            .map(|(k, v)| (k, ByteString(v)))
            .collect(),
    );
    Ok(secret)
}

/// Runs `airlock render`.
pub fn run(args: &RenderArgs) -> anyhow::Result<()> {
    let secret = render(args)?;
    let mut value = serde_json::to_value(&secret)?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    let text = serde_yaml::to_string(&value)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
