//! Google Cloud Secret Manager (ESO's `spec.provider.gcpsm`) as an Airlock component.
//!
//! Reads `GET …/secrets/<key>/versions/<version>:access` (`latest` unless the ref names a
//! version) on `secretmanager.googleapis.com`, or on `secretmanager.<location>.rep.googleapis.com`
//! for a store with `location`. `dataFrom.find` lists the project's secrets (label criteria
//! become Secret Manager's `filter`, pages follow `nextPageToken`) and reads the newest
//! version of each match. Authenticates with a service-account key file from a Secret: an
//! RS256-signed JWT is exchanged at the key's `token_uri` for an access token, which is kept
//! in the host's per-store cache until shortly before it expires. Read-only.

pub mod config;
pub mod token;

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, MetadataPolicy, Provider, ProviderMetadata, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value, json, paging,
};
use base64::Engine as _;
use serde_json::Value as Json;

use crate::config::Config;

/// The Google Cloud Secret Manager provider.
#[derive(Debug)]
pub struct Gcpsm;

/// The JSON Schema of `spec.provider.gcpsm`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for Gcpsm {
    type Client = GcpsmClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "gcpsm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Google Cloud Secret Manager secrets of one project".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        SCHEMA.to_string()
    }
}

/// A store's client.
#[derive(Debug)]
pub struct GcpsmClient {
    config: Config,
}

impl Client for GcpsmClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(GcpsmClient {
            config: Config::parse(config)?,
        })
    }

    fn validate(&self) -> Result<Validation, Error> {
        let response = self.call("GET", "/secrets?pageSize=1")?;
        if !response.is_success() {
            return Err(error("the secrets list", &response));
        }
        Ok(Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        if reference.key.is_empty() {
            return Err(Error::invalid_request("remoteRef.key is empty"));
        }
        if reference.metadata_policy == MetadataPolicy::Fetch {
            return Err(Error::unsupported(
                "gcpsm: metadataPolicy Fetch is not supported",
            ));
        }
        let version = reference.version.as_deref().unwrap_or("latest");
        let Some(value) = self.access(&reference.key, version)? else {
            return Ok(None);
        };
        match &reference.property {
            Some(property) => json::select(&value, property),
            None => Ok(Some(value)),
        }
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        let matcher = NameMatcher::new(criteria)?;
        let prefix = criteria.path.as_deref().unwrap_or("");
        let filter = criteria
            .tags
            .iter()
            .map(|(k, v)| format!("labels.{k}={v}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut names = Vec::new();
        paging::for_each_page(|token| {
            let mut path = "/secrets?pageSize=100".to_string();
            if !filter.is_empty() {
                path.push_str(&format!("&filter={}", http::encode(&filter)));
            }
            if let Some(token) = token {
                path.push_str(&format!("&pageToken={}", http::encode(token)));
            }
            let response = self.call("GET", &path)?;
            if !response.is_success() {
                return Err(error("the secrets list", &response));
            }
            let page: Json = parse(&response, "the secrets list")?;
            for secret in page["secrets"].as_array().into_iter().flatten() {
                let Some(full) = secret["name"].as_str() else {
                    continue;
                };
                let name = full.rsplit('/').next().unwrap_or(full);
                // A label criterion the filter syntax cannot carry is checked here too.
                let labelled = criteria
                    .tags
                    .iter()
                    .all(|(k, v)| secret["labels"][k].as_str() == Some(v.as_str()));
                if labelled && name.starts_with(prefix) && matcher.matches(name) {
                    names.push(name.to_string());
                }
            }
            Ok(page["nextPageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string))
        })?;
        let mut entries = Vec::new();
        for name in names {
            // A secret without an enabled version has nothing to sync, as in ESO.
            if let Some(value) = self.access(&name, "latest")? {
                entries.push(SecretEntry { key: name, value });
            }
        }
        Ok(entries)
    }
}

impl GcpsmClient {
    /// The payload of `version` of secret `key`, `None` when either does not exist.
    fn access(&self, key: &str, version: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = format!(
            "/secrets/{}/versions/{}:access",
            http::encode(key),
            http::encode(version)
        );
        let response = self.call("GET", &path)?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(error(&format!("the access to {key}/{version}"), &response));
        }
        let answer = parse(&response, "the access")?;
        let data = answer["payload"]["data"].as_str().unwrap_or("");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(Some)
            .map_err(|_| Error::other("gcpsm answered a payload that is not base64"))
    }

    /// Sends one authenticated request to `<base><path>`.
    fn call(&self, method: &str, path: &str) -> Result<Response, Error> {
        let token = token::access_token(&self.config)?;
        let request = Request::new(method, format!("{}{path}", self.config.base()))
            .header("Accept", "application/json")
            .header("Authorization", format!("Bearer {token}"));
        let response = http::send(&request).map_err(|e| explain_refusal(&self.config.base(), e))?;
        if matches!(response.status, 401) {
            // A revoked or expired token: fetch a fresh one on the next call.
            token::forget();
        }
        Ok(response)
    }
}

/// Adds to a host refusal which grant the admin must add.
pub(crate) fn explain_refusal(url: &str, e: Error) -> Error {
    match e {
        Error::Unavailable(m) if m.contains("denied the request") => {
            let host = url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or(url);
            Error::Unavailable(format!(
                "{m}; add https://{host} to spec.allowedOutboundHosts of the Provider \"gcpsm\""
            ))
        }
        other => other,
    }
}

/// The JSON body of a successful answer.
pub(crate) fn parse(response: &Response, what: &str) -> Result<Json, Error> {
    serde_json::from_slice(&response.body)
        .map_err(|e| Error::other(format!("gcpsm's answer to {what} is not JSON ({e})")))
}

/// Google's `error.message` (or OAuth's `error_description`), or the body's start.
pub(crate) fn message(response: &Response) -> String {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    if let Some(j) = &parsed {
        if let Some(m) = j["error"]["message"].as_str() {
            return m.to_string();
        }
        if let Some(m) = j["error_description"].as_str() {
            return m.to_string();
        }
    }
    String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
        .trim()
        .to_string()
}

/// The contract error for a non-2xx answer to `what`.
fn error(what: &str, response: &Response) -> Error {
    let text = response.describe("gcpsm", what, &message(response));
    let status = serde_json::from_slice::<Json>(&response.body)
        .ok()
        .and_then(|j| j["error"]["status"].as_str().map(str::to_string));
    match status.as_deref() {
        // A disabled or destroyed version: the ref's version is the thing to fix.
        Some("FAILED_PRECONDITION") => Error::invalid_request(text),
        _ => response.status_error(text),
    }
}

airlock_provider_sdk::export_provider!(Gcpsm);

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn google_errors_keep_their_message_and_map_by_status() {
        let denied = error(
            "x",
            &response(
                403,
                r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
            ),
        );
        assert!(
            matches!(&denied, Error::AccessDenied(m) if m.ends_with("Permission denied")),
            "{denied:?}"
        );
        assert!(matches!(
            error(
                "x",
                &response(400, r#"{"error":{"status":"FAILED_PRECONDITION"}}"#)
            ),
            Error::InvalidRequest(_)
        ));
        assert!(matches!(
            error("x", &response(503, "down")),
            Error::Unavailable(_)
        ));
    }

    #[test]
    fn the_schema_is_json_and_requires_the_project_and_auth() {
        let schema: Json = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["projectID", "auth"]));
    }
}
