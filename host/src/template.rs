//! Secret templates: ESO's Go-template dialect, and tera for those who opt in.
//!
//! ESO renders `target.template` with Go's `text/template` (`missingkey=error`) and sprig.
//! Translating that dialect into tera source cannot be faithful (Go pipelines pass the value
//! as the *last* argument, `index . "my-key"`, `{{- -}}` trimming, Go truthiness, variables),
//! so Airlock parses and evaluates the Go dialect itself ([`parse`], [`eval`]) with the sprig
//! and ESO functions ([`functions`], [`crypto`]), and offers tera 1 for tera-native templates.
//!
//! **Which engine renders a template:** Go, unless the ExternalSecret carries the annotation
//! `airlock.dev/template-engine: tera` ([`ENGINE_ANNOTATION`]); the choice applies to all of
//! its templates (`data`, `templateFrom`, metadata and `rewrite[].transform`). No heuristic
//! guesses the dialect: `{{ x }}` means different things in the two.
//!
//! No template can reach the network, the environment, the filesystem or the Kubernetes API:
//! the Go function map has no such function, and tera's `get_env` is replaced by one that
//! fails. Both engines have budgets (steps, depth, memory, output): the Go engine counts them
//! itself, tera runs inside wasmtime ([`tera`]). Errors name the template and the line and column, never a data value.

pub mod apply;
mod crypto;
pub mod eval;
pub mod functions;
pub mod parse;
pub mod tera;

use std::collections::BTreeMap;

pub use self::apply::{Rendered, Sources, apply};
pub use self::eval::Value;

/// Annotation on an ExternalSecret that selects the template engine: `go` (default) or
/// `tera`.
pub const ENGINE_ANNOTATION: &str = "airlock.dev/template-engine";

/// The template dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// ESO's Go `text/template` dialect with sprig and ESO functions.
    #[default]
    Go,
    /// Tera 1 syntax (`{{ username }}`, `{{ password | b64enc }}`).
    Tera,
}

impl Engine {
    /// The engine an annotation value asks for.
    pub fn from_annotation(value: Option<&str>) -> Result<Self, TemplateError> {
        match value.map(str::trim) {
            None | Some("") | Some("go") | Some("Go") => Ok(Engine::Go),
            Some("tera") | Some("Tera") => Ok(Engine::Tera),
            Some(other) => Err(TemplateError::Engine(other.to_string())),
        }
    }
}

/// Why a template failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not parse.
    #[error("template {name:?}: line {line}, column {col}: {message}")]
    Parse {
        /// Template name (the Secret key, label, annotation or source it came from).
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// Rendering failed (missing key, bad function argument, budget exceeded).
    #[error("template {name:?}: line {line}, column {col}: {message}")]
    Render {
        /// Template name.
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// A KeysAndValues template did not render a YAML map.
    #[error("template {name:?}: the output must be a YAML map of keys to values: {message}")]
    Output {
        /// Template name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A templateFrom source is missing or lacks the key.
    #[error("{0}")]
    Source(String),
    /// The engine annotation names no engine.
    #[error("annotation {ENGINE_ANNOTATION} must be \"go\" or \"tera\", not {0:?}")]
    Engine(String),
}

impl TemplateError {
    /// The error with `redact` applied to each text that can quote data (`fail .password`,
    /// a function's complaint about its argument); the template's name and position stay.
    pub fn redact_with(self, redact: impl Fn(String) -> String) -> Self {
        match self {
            TemplateError::Parse {
                name,
                line,
                col,
                message,
            } => TemplateError::Parse {
                name,
                line,
                col,
                message: redact(message),
            },
            TemplateError::Render {
                name,
                line,
                col,
                message,
            } => TemplateError::Render {
                name,
                line,
                col,
                message: redact(message),
            },
            TemplateError::Output { name, message } => TemplateError::Output {
                name,
                message: redact(message),
            },
            TemplateError::Source(message) => TemplateError::Source(redact(message)),
            TemplateError::Engine(value) => TemplateError::Engine(value),
        }
    }

    /// A stable reason for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TemplateError::Parse { .. } => "TemplateParseError",
            TemplateError::Render { .. } => "TemplateRenderError",
            TemplateError::Output { .. } => "TemplateOutputError",
            TemplateError::Source(_) => "TemplateSourceNotFound",
            TemplateError::Engine(_) => "InvalidTemplateEngine",
        }
    }
}

/// The data context of a Secret template: each fetched key as a string of its bytes.
pub fn data_context(data: &BTreeMap<String, Vec<u8>>) -> Value {
    Value::Map(
        data.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

/// Renders template `source` (called `name` in errors) over `data`.
pub fn render(
    engine: Engine,
    name: &str,
    source: &str,
    data: &Value,
) -> Result<Vec<u8>, TemplateError> {
    match engine {
        Engine::Go => render_go(name, source, data),
        Engine::Tera => tera::render(name, source, data),
    }
}

fn render_go(name: &str, source: &str, data: &Value) -> Result<Vec<u8>, TemplateError> {
    let nodes = parse::parse(source).map_err(|e| TemplateError::Parse {
        name: name.to_string(),
        line: e.pos.line,
        col: e.pos.col,
        message: e.message,
    })?;
    eval::render(&nodes, data).map_err(|e| TemplateError::Render {
        name: name.to_string(),
        line: e.pos.line,
        col: e.pos.col,
        message: e.message,
    })
}

/// Renders a template and parses its output as a YAML map (`KeysAndValues`).
pub fn render_map(
    engine: Engine,
    name: &str,
    source: &str,
    data: &Value,
) -> Result<BTreeMap<String, Vec<u8>>, TemplateError> {
    let out = render(engine, name, source, data)?;
    let output = |message: String| TemplateError::Output {
        name: name.to_string(),
        message,
    };
    let parsed: serde_yaml::Value = serde_yaml::from_slice(&out).map_err(|e| {
        output(match e.location() {
            Some(l) => format!("invalid YAML at line {} column {}", l.line(), l.column()),
            None => "invalid YAML".into(),
        })
    })?;
    let map = match parsed {
        serde_yaml::Value::Null => return Ok(BTreeMap::new()),
        serde_yaml::Value::Mapping(m) => m,
        _ => return Err(output("the output is not a map".into())),
    };
    let mut result = BTreeMap::new();
    for (k, v) in map {
        let key = scalar(k).ok_or_else(|| output("a key is not a string".into()))?;
        let value = match v {
            serde_yaml::Value::Null => String::new(),
            v => {
                scalar(v).ok_or_else(|| output(format!("the value of {key:?} is not a string")))?
            }
        };
        result.insert(key, value.into_bytes());
    }
    Ok(result)
}

fn scalar(v: serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
