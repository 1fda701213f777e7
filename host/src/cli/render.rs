//! `airlock render`: renders an ExternalSecret's template offline (ESO's `esoctl template`),
//! from a data file instead of a provider, and prints the Secret it would write.

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
    /// return them.
    #[arg(long, short = 'd', value_name = "FILE")]
    pub data: PathBuf,
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

/// Renders the template and returns the Secret it yields.
pub fn render(args: &RenderArgs) -> anyhow::Result<Secret> {
    let es: ExternalSecret = yaml(&args.external_secret, "ExternalSecret")?;
    let data = data_file(&args.data)?;
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
    let engine =
        Engine::from_annotation(es.annotations().get(ENGINE_ANNOTATION).map(String::as_str))?;
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
