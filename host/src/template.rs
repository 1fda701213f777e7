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
//! fails. Errors name the template and the line and column, never a data value.

pub mod apply;
mod crypto;
pub mod eval;
pub mod functions;
pub mod parse;

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
        Engine::Tera => render_tera(name, source, data),
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

/// Tera with nothing that reaches outside: `get_env` fails, no autoescaping, a few ESO-style
/// filters (`b64enc`, `b64dec`, `sha256sum`).
fn tera() -> tera::Tera {
    use base64::Engine as _;
    let mut t = tera::Tera::default();
    t.autoescape_on(Vec::new());
    t.register_function(
        "get_env",
        |_: &std::collections::HashMap<String, tera::Value>| {
            Err(tera::Error::msg(
                "get_env is disabled: templates cannot read the environment",
            ))
        },
    );
    t.register_filter(
        "b64enc",
        |v: &tera::Value, _: &std::collections::HashMap<String, tera::Value>| {
            let s = tera::try_get_value!("b64enc", "value", String, v);
            Ok(base64::engine::general_purpose::STANDARD.encode(s).into())
        },
    );
    t.register_filter(
        "b64dec",
        |v: &tera::Value, _: &std::collections::HashMap<String, tera::Value>| {
            let s = tera::try_get_value!("b64dec", "value", String, v);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| tera::Error::msg("the value is not valid base64"))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned().into())
        },
    );
    t.register_filter(
        "sha256sum",
        |v: &tera::Value, _: &std::collections::HashMap<String, tera::Value>| {
            use sha2::Digest as _;
            let s = tera::try_get_value!("sha256sum", "value", String, v);
            Ok(hex::encode(sha2::Sha256::digest(s)).into())
        },
    );
    t
}

fn render_tera(name: &str, source: &str, data: &Value) -> Result<Vec<u8>, TemplateError> {
    let mut t = tera();
    // tera reports the position in the text of its parse errors.
    let cause = |e: &tera::Error| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    };
    if let Err(e) = t.add_raw_template(name, source) {
        let message = cause(&e);
        let (line, col) = tera_position(&message).unwrap_or((1, 1));
        return Err(TemplateError::Parse {
            name: name.to_string(),
            line,
            col,
            message: message.replace('\n', " "),
        });
    }
    let context =
        tera::Context::from_value(functions::to_json(data)).map_err(|e| TemplateError::Render {
            name: name.to_string(),
            line: 1,
            col: 1,
            message: e.to_string(),
        })?;
    t.render(name, &context)
        .map(String::into_bytes)
        .map_err(|e| TemplateError::Render {
            name: name.to_string(),
            line: 1,
            col: 1,
            message: cause(&e).replace('\n', " "),
        })
}

/// Finds ` --> line:col` in a tera (pest) parse error.
fn tera_position(message: &str) -> Option<(usize, usize)> {
    let at = message.find("--> ")?;
    let rest = &message[at + 4..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ':'))?;
    let (l, c) = rest[..end].split_once(':')?;
    Some((l.parse().ok()?, c.parse().ok()?))
}

#[cfg(test)]
mod tests;
