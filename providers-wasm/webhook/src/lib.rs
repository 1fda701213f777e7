//! ESO's generic `webhook` provider (`spec.provider.webhook`) as an Airlock component: one
//! templated HTTP request per secret, the answer used whole or through `result.jsonPath`.
//! `docs/providers/webhook.md` is the contract; the Python, JavaScript and Go examples under
//! `providers-wasm/examples/` implement the same one.
//!
//! Secrets for templated auth (`secrets[]`) come from the host's `credentials` interface:
//! the provider asks only for the keys its templates name (`.auth.token` → key `token` of
//! the Secret under `auth`), and the host answers only for Secrets the store's `secrets[]`
//! lists.

pub mod config;
pub mod jsonpath;
pub mod template;

use airlock_provider_sdk::http::{self, Request};
use airlock_provider_sdk::{
    Capabilities, Client, Error, Provider, ProviderMetadata, RemoteRef, SecretEntry, StoreInfo,
    Validation, Value, credential_error, credentials,
};
use serde_json::Value as Json;

use crate::config::Config;
use crate::template::{Data, query_escape};

/// The webhook provider.
#[derive(Debug)]
pub struct Webhook;

/// The JSON Schema of `spec.provider.webhook`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for Webhook {
    type Client = WebhookClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "webhook".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Secrets from any HTTP endpoint answering JSON (ESO's webhook)".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        SCHEMA.to_string()
    }
}

/// One store's webhook.
#[derive(Debug)]
pub struct WebhookClient {
    config: Config,
    namespace: String,
    /// `.<name>.<key>` of `secrets[]`, only the keys the templates name.
    secrets: Secrets,
}

/// Secret values for templates; `Debug` prints only the names.
struct Secrets(Data);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .flat_map(|(g, m)| m.keys().map(move |k| format!("{g}.{k}"))),
            )
            .finish()
    }
}

/// Reads the keys of `secrets[]` the templates reference.
fn read_secrets(config: &Config) -> Result<Data, Error> {
    let mut data = Data::new();
    for template in config.templates() {
        for (group, key) in template.fields() {
            let Some(source) = config.secrets.iter().find(|s| s.name == group) else {
                continue;
            };
            if data.get(group).is_some_and(|g| g.contains_key(key)) {
                continue;
            }
            let selector = credentials::KeySelector {
                name: source.secret_ref.name.clone(),
                key: key.to_string(),
                namespace: source.secret_ref.namespace.clone(),
            };
            let bytes = credentials::secret_key(&selector)
                .map_err(|e| credential_error(&format!("secrets[{group}]"), e))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::invalid_config(format!("secrets[{group}] key {key:?} is not UTF-8 text"))
            })?;
            data.entry(group.to_string())
                .or_default()
                .insert(key.to_string(), text);
        }
    }
    Ok(data)
}

/// A response body and the `result.jsonPath` to apply to it.
type Fetched = (Vec<u8>, Option<String>);

impl WebhookClient {
    /// Template data for `reference`: raw for headers, body and jsonPath, query-escaped
    /// `remoteRef` values for the URL.
    fn data(&self, reference: &RemoteRef, escape: bool) -> Data {
        let mut data = self.secrets.0.clone();
        let value = |v: &str| {
            if escape {
                query_escape(v)
            } else {
                v.to_string()
            }
        };
        let remote = data.entry("remoteRef".into()).or_default();
        remote.insert("key".into(), value(&reference.key));
        remote.insert(
            "version".into(),
            value(reference.version.as_deref().unwrap_or("")),
        );
        remote.insert(
            "property".into(),
            value(reference.property.as_deref().unwrap_or("")),
        );
        remote.insert("namespace".into(), self.namespace.clone());
        data
    }

    /// Sends the request for `reference`: the body and the `result.jsonPath` to apply to it,
    /// or `None` on 404.
    fn fetch(&self, reference: &RemoteRef) -> Result<Option<Fetched>, Error> {
        let raw = self.data(reference, false);
        let render = |what: &str, t: &template::Template, data: &Data| {
            t.render(data)
                .map_err(|e| Error::invalid_config(format!("template {what}: {e}")))
        };
        let url = render("url", &self.config.url, &self.data(reference, true))?;
        let mut request = Request::new(&self.config.method, url);
        for (name, value) in &self.config.headers {
            request = request.header(name, render(&format!("headers[{name}]"), value, &raw)?);
        }
        if let Some(body) = &self.config.body {
            let body = render("body", body, &raw)?;
            if !body.is_empty() {
                request = request.body(body.into_bytes());
            }
        }
        if let Some(timeout) = self.config.timeout {
            request = request.first_byte_timeout(timeout);
        }
        let json_path = self
            .config
            .json_path
            .as_ref()
            .map(|t| render("result.jsonPath", t, &raw))
            .transpose()?
            .filter(|p| !p.is_empty());
        let response = http::send(&request)?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            let text = format!("webhook endpoint answered HTTP {}", response.status);
            // ESO treats a 400 like any other failed answer, not as a bad reference.
            return Err(match response.status {
                400 => Error::other(text),
                _ => response.status_error(text),
            });
        }
        Ok(Some((response.body, json_path)))
    }
}

fn parse_json(body: &[u8]) -> Result<Json, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::other(format!("webhook response is not JSON: {e}")))
}

/// A JSONPath result as secret bytes, as ESO's `extractSecretData`.
fn value_bytes(value: Json) -> Result<Vec<u8>, Error> {
    Ok(match value {
        Json::String(s) => s.into_bytes(),
        Json::Bool(b) => b.to_string().into_bytes(),
        Json::Null => Vec::new(),
        Json::Number(n) => format!("{:.0}", n.as_f64().unwrap_or_default()).into_bytes(),
        Json::Array(mut items) => {
            if items.is_empty() {
                return Err(Error::other(
                    "result.jsonPath matched an empty list (no result)",
                ));
            }
            return value_bytes(items.swap_remove(0));
        }
        object @ Json::Object(_) => object.to_string().into_bytes(),
    })
}

impl Client for WebhookClient {
    fn open(config: &str, store: StoreInfo) -> Result<Self, Error> {
        let config = Config::parse(config)?;
        let secrets = Secrets(read_secrets(&config)?);
        Ok(WebhookClient {
            config,
            namespace: store.namespace,
            secrets,
        })
    }

    fn validate(&self) -> Result<Validation, Error> {
        Ok(Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let Some((body, json_path)) = self.fetch(reference)? else {
            return Ok(None);
        };
        let Some(path) = json_path else {
            return Ok(Some(body));
        };
        let selected = jsonpath::get(&path, &parse_json(&body)?)
            .map_err(|e| Error::other(format!("result.jsonPath {e}")))?;
        value_bytes(selected).map(Some)
    }

    fn get_secret_map(&self, reference: &RemoteRef) -> Result<Option<Vec<SecretEntry>>, Error> {
        let Some((body, json_path)) = self.fetch(reference)? else {
            return Ok(None);
        };
        let mut value = parse_json(&body)?;
        if let Some(path) = json_path {
            value = jsonpath::get(&path, &value)
                .map_err(|e| Error::other(format!("result.jsonPath {e}")))?;
        }
        if let Json::String(text) = &value {
            value = serde_json::from_str(text).map_err(|e| {
                Error::other(format!("webhook result is a string that is not JSON: {e}"))
            })?;
        }
        let Json::Object(map) = value else {
            return Err(Error::other(
                "webhook result is not a JSON object (wrong type for dataFrom.extract)",
            ));
        };
        Ok(Some(
            map.into_iter()
                .map(|(key, v)| SecretEntry {
                    key,
                    value: match v {
                        Json::String(s) => s.into_bytes(),
                        other => other.to_string().into_bytes(),
                    },
                })
                .collect(),
        ))
    }
}

airlock_provider_sdk::export_provider!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_results_turn_into_bytes_as_eso_does() {
        let b = |v: Json| String::from_utf8(value_bytes(v).unwrap()).unwrap();
        assert_eq!(b(json!("s")), "s");
        assert_eq!(b(json!(true)), "true");
        assert_eq!(b(json!(3.7)), "4");
        assert_eq!(b(json!(null)), "");
        assert_eq!(b(json!(["a", "b"])), "a");
        assert_eq!(b(json!({"a": 1})), r#"{"a":1}"#);
        assert!(value_bytes(json!([])).is_err());
    }

    #[test]
    fn the_schema_is_json() {
        let schema: Json = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], json!(["url"]));
    }
}
