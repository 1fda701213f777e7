//! `spec.provider.webhook` as ESO v2.9 defines it (`docs/providers/webhook.md` is the
//! contract every language's webhook provider follows).

use std::collections::BTreeMap;
use std::time::Duration;

use airlock_provider_sdk::Error;
use serde::Deserialize;

use crate::jsonpath;
use crate::template::Template;

/// `spec.provider.webhook`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    result: Option<RawResult>,
    #[serde(default)]
    secrets: Vec<SecretSource>,
    // ESO fields this provider refuses by name rather than as unknown.
    #[serde(default)]
    auth: Option<serde_json::Value>,
    #[serde(default)]
    ca_bundle: Option<serde_json::Value>,
    #[serde(default)]
    ca_provider: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawResult {
    #[serde(default)]
    json_path: Option<String>,
}

/// One `secrets[]` entry: a Secret whose keys become `.<name>.<key>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSource {
    /// The name templates use.
    pub name: String,
    /// The Secret.
    pub secret_ref: SecretRef,
}

/// `secretRef` of a `secrets[]` entry: a whole Secret (ESO ignores `key` here).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Accepted for ESO manifests that set it; not used.
    #[serde(default)]
    pub key: Option<String>,
}

/// The parsed configuration with every template compiled.
#[derive(Debug, Clone)]
pub struct Config {
    /// `url`.
    pub url: Template,
    /// `method`, default GET.
    pub method: String,
    /// `headers` in name order.
    pub headers: Vec<(String, Template)>,
    /// `body`.
    pub body: Option<Template>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `result.jsonPath`.
    pub json_path: Option<Template>,
    /// `secrets`.
    pub secrets: Vec<SecretSource>,
}

fn compile(what: &str, source: &str) -> Result<Template, Error> {
    Template::parse(source).map_err(|e| Error::invalid_config(format!("template {what}: {e}")))
}

impl Config {
    /// Parses and compiles `spec.provider.webhook`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("webhook config: {e}")))?;
        for (field, set) in [
            ("auth", raw.auth.is_some()),
            ("caBundle", raw.ca_bundle.is_some()),
            ("caProvider", raw.ca_provider.is_some()),
        ] {
            if set {
                return Err(Error::invalid_config(format!(
                    "{field} is not supported by this webhook provider (grant a CA with the \
                     Provider's spec.caBundle; NTLM is not available)"
                )));
            }
        }
        if raw.url.trim().is_empty() {
            return Err(Error::invalid_config("url must not be empty"));
        }
        for s in &raw.secrets {
            if s.name.is_empty() || s.secret_ref.name.is_empty() {
                return Err(Error::invalid_config(
                    "secrets[]: name and secretRef.name must not be empty",
                ));
            }
        }
        let headers = raw
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), compile(&format!("headers[{k}]"), v)?)))
            .collect::<Result<_, Error>>()?;
        let json_path = match raw.result.and_then(|r| r.json_path) {
            Some(p) if !p.is_empty() => {
                let t = compile("result.jsonPath", &p)?;
                // A path without actions can be checked now; a templated one at each call.
                if t.fields().next().is_none() {
                    jsonpath::check(&p)
                        .map_err(|e| Error::invalid_config(format!("result.jsonPath {e}")))?;
                }
                Some(t)
            }
            _ => None,
        };
        Ok(Config {
            url: compile("url", &raw.url)?,
            method: raw
                .method
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "GET".into())
                .to_uppercase(),
            headers,
            body: raw
                .body
                .filter(|b| !b.is_empty())
                .map(|b| compile("body", &b))
                .transpose()?,
            timeout: raw
                .timeout
                .map(|t| {
                    parse_duration(&t).ok_or_else(|| {
                        Error::invalid_config(format!("timeout {t:?} is not a Go duration"))
                    })
                })
                .transpose()?,
            json_path,
            secrets: raw.secrets,
        })
    }

    /// Every template, named as in error messages.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, t)| t))
            .chain(self.body.iter())
            .chain(self.json_path.iter())
    }
}

/// A Go duration: `1h2m3.5s`, `500ms`, `10us`, `0`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esos_documented_store_parses() {
        let c = Config::parse(
            r#"{"url": "http://httpbin.org/get?parameter={{ .remoteRef.key }}",
                "result": {"jsonPath": "$.args.parameter"},
                "headers": {"Content-Type": "application/json",
                  "Authorization": "Basic {{ print .auth.username \":\" .auth.password | b64enc }}"},
                "secrets": [{"name": "auth", "secretRef": {"name": "webhook-credentials"}}]}"#,
        )
        .unwrap();
        assert_eq!(c.method, "GET");
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.secrets[0].secret_ref.name, "webhook-credentials");
    }

    #[test]
    fn bad_configs_say_which_field() {
        let err = |t: &str| match Config::parse(t).unwrap_err() {
            Error::InvalidConfig(m) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"url": ""}"#).contains("url must not be empty"));
        assert!(err(r#"{"url": "x", "bogus": 1}"#).contains("bogus"));
        assert!(err(r#"{"url": "{{ range .a.b }}"}"#).contains("template url"));
        assert!(err(r#"{"url": "x", "timeout": "5 parsecs"}"#).contains("timeout"));
        assert!(err(r#"{"url": "x", "auth": {"ntlm": {}}}"#).contains("auth is not supported"));
        assert!(err(r#"{"url": "x", "result": {"jsonPath": "data"}}"#).contains("jsonPath"));
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5"), None);
    }
}
