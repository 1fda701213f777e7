//! ESO's `ApplyTemplate` for Secret targets: which template writes what, in ESO's order.
//!
//! 1. `type`;
//! 2. the fetched data is kept when `mergePolicy: Merge` or when the template has neither
//!    `data` nor `templateFrom`;
//! 3. `templateFrom[]` in order (ConfigMap, Secret, literal), into `Data`, `Annotations` or
//!    `Labels`;
//! 4. `template.data` (wins over templateFrom);
//! 5. label templates, then annotation templates.
//!
//! Everything renders before anything is written, so a failing template never yields a
//! partial Secret.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{Engine, TemplateError, Value, data_context, render, render_map};
use crate::crd::external_secret::{
    DecodingStrategy, ExternalSecretTemplate, TemplateMergePolicy, TemplateScope,
};

/// The contents of the ConfigMaps and Secrets that `templateFrom` names, by name; read
/// from the ExternalSecret's namespace by the caller.
#[derive(Default, Clone)]
pub struct Sources {
    /// ConfigMap name → key → value.
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Secret name → key → value.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

// Secrets used as template sources hold secret bytes: print only names.
impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a template produces for the Secret.
#[derive(Default, Clone, PartialEq)]
pub struct Rendered {
    /// The Secret's data.
    pub data: BTreeMap<String, Vec<u8>>,
    /// Labels from the template.
    pub labels: BTreeMap<String, String>,
    /// Annotations from the template.
    pub annotations: BTreeMap<String, String>,
    /// The Secret type, when the template sets one.
    pub type_: Option<String>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .field("type", &self.type_)
            .finish()
    }
}

/// The names of the ConfigMaps and Secrets `templateFrom` reads.
pub fn source_names(template: &ExternalSecretTemplate) -> (Vec<String>, Vec<String>) {
    let from = template.template_from.as_deref().unwrap_or_default();
    let config_maps = from
        .iter()
        .filter_map(|t| t.config_map.as_ref().map(|r| r.name.clone()))
        .collect();
    let secrets = from
        .iter()
        .filter_map(|t| t.secret.as_ref().map(|r| r.name.clone()))
        .collect();
    (config_maps, secrets)
}

/// Where a templateFrom entry writes.
#[derive(Clone, Copy)]
enum Target {
    Data,
    Annotations,
    Labels,
}

/// Renders `template` over `fetched`.
pub fn apply(
    template: &ExternalSecretTemplate,
    engine: Engine,
    fetched: &BTreeMap<String, Vec<u8>>,
    sources: &Sources,
) -> Result<Rendered, TemplateError> {
    let ctx = data_context(fetched);
    let mut out = Rendered {
        type_: template.type_.clone().filter(|t| !t.is_empty()),
        ..Rendered::default()
    };
    let has_data = template.data.as_ref().is_some_and(|d| !d.is_empty());
    let from = template.template_from.as_deref().unwrap_or_default();
    if template.merge_policy == TemplateMergePolicy::Merge || (!has_data && from.is_empty()) {
        out.data = fetched.clone();
    }
    for (i, entry) in from.iter().enumerate() {
        let target = match entry.target.to_ascii_lowercase().as_str() {
            "" | "data" => Target::Data,
            "annotations" => Target::Annotations,
            "labels" => Target::Labels,
            other => {
                return Err(TemplateError::Source(format!(
                    "spec.target.template.templateFrom[{i}].target {other:?}: use Data, Annotations or Labels"
                )));
            }
        };
        let decoding = entry
            .values_decoding_strategy
            .unwrap_or(DecodingStrategy::None);
        let mut rendered: Vec<(String, Vec<u8>)> = Vec::new();
        for (kind, reference, pool) in [
            ("configMap", entry.config_map.as_ref(), &sources.config_maps),
            ("secret", entry.secret.as_ref(), &sources.secrets),
        ] {
            let Some(reference) = reference else { continue };
            let contents = pool.get(&reference.name).ok_or_else(|| {
                TemplateError::Source(format!(
                    "templateFrom[{i}].{kind} {:?} not found in the ExternalSecret's namespace",
                    reference.name
                ))
            })?;
            for item in &reference.items {
                let source = contents.get(&item.key).ok_or_else(|| {
                    TemplateError::Source(format!(
                        "templateFrom[{i}].{kind} {:?} has no key {:?}",
                        reference.name, item.key
                    ))
                })?;
                let name = format!("{}/{}", reference.name, item.key);
                let source = String::from_utf8_lossy(source);
                match item.template_as {
                    TemplateScope::Values => {
                        rendered.push((item.key.clone(), render(engine, &name, &source, &ctx)?));
                    }
                    TemplateScope::KeysAndValues => {
                        rendered.extend(render_map(engine, &name, &source, &ctx)?);
                    }
                }
            }
        }
        if let Some(literal) = &entry.literal {
            let name = format!("templateFrom[{i}].literal");
            rendered.extend(render_map(engine, &name, literal, &ctx)?);
        }
        for (key, value) in rendered {
            let value = decode(value, decoding).map_err(|message| TemplateError::Output {
                name: format!("templateFrom[{i}] {key}"),
                message,
            })?;
            match target {
                Target::Data => {
                    out.data.insert(key, value);
                }
                Target::Annotations => {
                    out.annotations
                        .insert(key, String::from_utf8_lossy(&value).into_owned());
                }
                Target::Labels => {
                    out.labels
                        .insert(key, String::from_utf8_lossy(&value).into_owned());
                }
            }
        }
    }
    for (key, source) in template.data.iter().flatten() {
        out.data
            .insert(key.clone(), render(engine, key, source, &ctx)?);
    }
    if let Some(meta) = &template.metadata {
        for (kind, templates, into) in [
            ("label", &meta.labels, &mut out.labels),
            ("annotation", &meta.annotations, &mut out.annotations),
        ] {
            for (key, source) in templates.iter().flatten() {
                let name = format!("{kind} {key}");
                let value = render(engine, &name, source, &ctx)?;
                into.insert(key.clone(), String::from_utf8_lossy(&value).into_owned());
            }
        }
    }
    Ok(out)
}

/// Renders a `rewrite[].transform` template for one key (`.value` is the key).
pub fn transform_key(
    engine: Engine,
    what: &str,
    source: &str,
    key: &str,
) -> Result<String, TemplateError> {
    let ctx = Value::Map(BTreeMap::from([("value".to_string(), Value::str(key))]));
    let out = render(engine, what, source, &ctx)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn decode(value: Vec<u8>, strategy: DecodingStrategy) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => STANDARD
            .decode(&value)
            .map_err(|_| "the rendered value is not valid base64".into()),
        DecodingStrategy::Base64Url => URL_SAFE
            .decode(&value)
            .map_err(|_| "the rendered value is not valid base64url".into()),
        DecodingStrategy::Auto => Ok(STANDARD
            .decode(&value)
            .or_else(|_| URL_SAFE.decode(&value))
            .unwrap_or(value)),
    }
}
