//! Doppler secrets (ESO's `spec.provider.doppler`) as an Airlock component.
//!
//! Every read goes through Doppler's download endpoint
//! (`GET /v3/configs/config/secrets/download`) for the store's project and config. The
//! answer's `ETag` and body are kept in the host's per-store cache and the next read sends
//! `If-None-Match`, so a poll of an unchanged config gets `304 Not Modified` and transfers no
//! secret payload. Authenticates with a service token from a Secret
//! (`auth.secretRef.dopplerToken`) or, with `auth.oidcConfig`, by exchanging a
//! ServiceAccount token from the host at `POST /v3/auth/oidc` (the Doppler token it gets is
//! cached until shortly before it expires). PushSecret sets a secret with
//! `POST /v3/configs/config/secrets` and delete removes it with that endpoint's
//! `change_requests[].shouldDelete`, as ESO does.

pub mod config;
pub mod time;

use airlock_provider_sdk::credentials;
use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value, cache, credential_error, json,
};
use serde_json::Value as Json;

use crate::config::{Auth, Config};

/// The key under which a store with `format` set returns the whole formatted download.
pub const SECRETS_FILE_KEY: &str = "DOPPLER_SECRETS_FILE";
/// Cache key of a Doppler token obtained by OIDC.
const OIDC_TOKEN_KEY: &str = "doppler-oidc-token";
/// How long a cached download (ETag and body) is kept. It is only ever used after Doppler
/// confirmed it with a 304, so a long life costs nothing but cache space.
const DOWNLOAD_TTL_MS: u64 = 24 * 3600 * 1000;

/// The Doppler provider.
#[derive(Debug)]
pub struct Doppler;

/// The JSON Schema of `spec.provider.doppler`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for Doppler {
    type Client = DopplerClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "doppler".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Doppler secrets of one project and config".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadWrite
    }

    fn config_schema() -> String {
        SCHEMA.to_string()
    }
}

/// A store's client.
#[derive(Debug)]
pub struct DopplerClient {
    config: Config,
    store: StoreInfo,
}

impl Client for DopplerClient {
    fn open(config: &str, store: StoreInfo) -> Result<Self, Error> {
        Ok(DopplerClient {
            config: Config::parse(config)?,
            store,
        })
    }

    fn validate(&self) -> Result<Validation, Error> {
        let response = self.call("GET", "/v3/projects", None)?;
        if !response.is_success() {
            return Err(error("GET /v3/projects", &response));
        }
        Ok(Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        if reference.key.is_empty() {
            return Err(Error::invalid_request("remoteRef.key is empty"));
        }
        let value = if reference.key == SECRETS_FILE_KEY
            && let Some(format) = &self.config.format
        {
            self.download(format, None)?
        } else {
            // Doppler's own names, as ESO's single-secret lookup uses them.
            let all = self.download("json", None)?;
            match secrets(&all)?.remove(&reference.key) {
                Some(value) => value.into_bytes(),
                None => return Ok(None),
            }
        };
        match &reference.property {
            Some(property) => json::select(&value, property),
            None => Ok(Some(value)),
        }
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        if !criteria.tags.is_empty() {
            return Err(Error::unsupported(
                "doppler secrets have no tags (find.tags)",
            ));
        }
        let matcher = NameMatcher::new(criteria)?;
        let prefix = criteria.path.as_deref().unwrap_or("");
        let all = self.download("json", self.config.name_transformer.as_deref())?;
        Ok(secrets(&all)?
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix) && matcher.matches(name))
            .map(|(key, value)| SecretEntry {
                key,
                value: value.into_bytes(),
            })
            .collect())
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        let name = &request.remote.remote_key;
        check_name(name)?;
        let value = match &request.remote.property {
            // A property is a key of a JSON object kept in the secret, its other keys kept.
            Some(property) => {
                let existing = secrets(&self.download("json", None)?)?.remove(name);
                json::set_property(
                    existing.as_deref().map(str::as_bytes),
                    property,
                    &request.value,
                )?
            }
            None => request.value.clone(),
        };
        let value = String::from_utf8(value).map_err(|_| {
            Error::invalid_request("doppler secrets hold text; the pushed value is not UTF-8")
        })?;
        let mut secrets = serde_json::Map::new();
        secrets.insert(name.clone(), Json::String(value));
        self.update(
            serde_json::json!({"secrets": secrets}),
            "the secrets update",
        )
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        check_name(&reference.remote_key)?;
        if reference.property.is_some() {
            return Err(Error::unsupported(
                "doppler deletes whole secrets; remove a property by pushing the object without it",
            ));
        }
        // Deleting what is not there is done; Doppler would refuse the change request.
        if !self.secret_exists(reference)? {
            return Ok(());
        }
        let change = serde_json::json!({
            "name": reference.remote_key,
            "originalName": reference.remote_key,
            "shouldDelete": true,
        });
        self.update(
            serde_json::json!({"change_requests": [change]}),
            "the secret deletion",
        )
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let all = self.download("json", None)?;
        let Some(value) = secrets(&all)?.remove(&reference.remote_key) else {
            return Ok(false);
        };
        match &reference.property {
            Some(property) => Ok(json::select(value.as_bytes(), property)?.is_some()),
            None => Ok(true),
        }
    }
}

/// Doppler secret names: letters, digits and underscores, not starting with a digit.
fn check_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "{name:?} is not a doppler secret name (letters, digits and underscores, not starting with a digit)"
        )))
    }
}

impl DopplerClient {
    /// `POST /v3/configs/config/secrets` with `body` plus the store's project and config.
    fn update(&self, mut body: Json, what: &str) -> Result<(), Error> {
        if let (Some(project), Some(config)) = (&self.config.project, &self.config.config) {
            body["project"] = Json::String(project.clone());
            body["config"] = Json::String(config.clone());
        }
        let response = self.send("POST", "/v3/configs/config/secrets", None, Some(body))?;
        if !response.is_success() {
            return Err(error(what, &response));
        }
        Ok(())
    }

    fn endpoint(&self) -> &str {
        self.config
            .endpoint
            .as_deref()
            .unwrap_or(config::DEFAULT_ENDPOINT)
            .trim_end_matches('/')
    }

    /// The download in `format`, conditional on the cached ETag.
    fn download(&self, format: &str, transformer: Option<&str>) -> Result<Vec<u8>, Error> {
        let mut query = vec![("format", format)];
        if let Some(t) = transformer {
            query.push(("name_transformer", t));
        }
        query.extend(self.config.project.as_deref().map(|p| ("project", p)));
        query.extend(self.config.config.as_deref().map(|c| ("config", c)));
        let path = format!(
            "/v3/configs/config/secrets/download?{}",
            query
                .iter()
                .map(|(k, v)| format!("{k}={}", http::encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        );
        let cache_key = format!("doppler-download:{format}:{}", transformer.unwrap_or(""));
        let cached = cache::get(&cache_key).and_then(|entry| split_cached(&entry));
        let response = self.call("GET", &path, cached.as_ref().map(|(etag, _)| etag.as_str()))?;
        if response.status == 304 {
            return cached.map(|(_, body)| body).ok_or_else(|| {
                Error::other("doppler answered 304 Not Modified to a download sent without an ETag")
            });
        }
        if !response.is_success() {
            return Err(error("the secrets download", &response));
        }
        match response.header("etag") {
            Some(etag) if !etag.contains('\n') => {
                let mut entry = etag.as_bytes().to_vec();
                entry.push(b'\n');
                entry.extend_from_slice(&response.body);
                // Over the host's value bound the set is ignored: the next read downloads again.
                cache::set(&cache_key, &entry, DOWNLOAD_TTL_MS);
            }
            _ => cache::delete(&cache_key),
        }
        Ok(response.body)
    }

    /// Sends one authenticated request.
    fn call(&self, method: &str, path: &str, etag: Option<&str>) -> Result<Response, Error> {
        self.send(method, path, etag, None)
    }

    /// Sends one authenticated request, with a JSON body when given.
    fn send(
        &self,
        method: &str,
        path: &str,
        etag: Option<&str>,
        body: Option<Json>,
    ) -> Result<Response, Error> {
        let token = self.token()?;
        let mut request = Request::new(method, format!("{}{path}", self.endpoint()))
            .header("Accept", "application/json")
            .header("Authorization", format!("Bearer {token}"));
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = http::send(&request).map_err(|e| self.explain_refusal(e))?;
        if matches!(response.status, 401 | 403) && self.config.auth.oidc_config.is_some() {
            // A revoked or expired exchanged token: exchange again on the next call.
            cache::delete(OIDC_TOKEN_KEY);
        }
        Ok(response)
    }

    /// The Doppler token: the service token from its Secret, or one exchanged by OIDC.
    fn token(&self) -> Result<String, Error> {
        match &self.config.auth {
            Auth {
                secret_ref: Some(secret_ref),
                ..
            } => {
                let selector = &secret_ref.doppler_token;
                let bytes = credentials::secret_key(&credentials::KeySelector {
                    name: selector.name.clone(),
                    key: selector.key.clone(),
                    namespace: selector.namespace.clone(),
                })
                .map_err(|e| credential_error("auth.secretRef.dopplerToken", e))?;
                let token = String::from_utf8(bytes).map_err(|_| {
                    Error::invalid_config("auth.secretRef.dopplerToken is not UTF-8")
                })?;
                Ok(token.trim().to_string())
            }
            Auth {
                oidc_config: Some(oidc),
                ..
            } => {
                if let Some(token) =
                    cache::get(OIDC_TOKEN_KEY).and_then(|b| String::from_utf8(b).ok())
                {
                    return Ok(token);
                }
                self.exchange(oidc)
            }
            _ => Err(Error::invalid_config(
                "auth needs secretRef.dopplerToken or oidcConfig",
            )),
        }
    }

    /// Exchanges a ServiceAccount token for a Doppler token at `POST /v3/auth/oidc`.
    fn exchange(&self, oidc: &config::Oidc) -> Result<String, Error> {
        let account = &oidc.service_account_ref;
        let audiences = if account.audiences.is_empty() {
            vec![config::default_audience(&self.store)]
        } else {
            account.audiences.clone()
        };
        let jwt = credentials::service_account_token(&credentials::ServiceAccountSelector {
            name: account.name.clone(),
            namespace: account.namespace.clone(),
            audiences,
        })
        .map_err(|e| credential_error("auth.oidcConfig.serviceAccountRef", e))?;
        let body = serde_json::json!({"identity": oidc.identity, "token": jwt.token});
        let request = Request::new("POST", format!("{}/v3/auth/oidc", self.endpoint()))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let response = http::send(&request).map_err(|e| self.explain_refusal(e))?;
        if !response.is_success() {
            return Err(error("the OIDC login", &response));
        }
        let answer: Json = serde_json::from_slice(&response.body).map_err(|e| {
            Error::other(format!(
                "doppler's answer to the OIDC login is not JSON ({e})"
            ))
        })?;
        let Some(token) = answer.get("token").and_then(Json::as_str) else {
            return Err(Error::other(
                "doppler's answer to the OIDC login has no token",
            ));
        };
        let expires = answer
            .get("expires_at")
            .and_then(Json::as_str)
            .and_then(time::parse_rfc3339_ms);
        cache::set(
            OIDC_TOKEN_KEY,
            token.as_bytes(),
            time::ttl_ms(expires, time::now_ms()),
        );
        Ok(token.to_string())
    }

    /// Adds to a host refusal which grant the admin must add.
    fn explain_refusal(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) if m.contains("denied the request") => {
                Error::Unavailable(format!(
                    "{m}; to use this Doppler endpoint, add {} to spec.allowedOutboundHosts of the Provider \"doppler\"",
                    origin(self.endpoint())
                ))
            }
            other => other,
        }
    }
}

/// `scheme://host:port` of a URL, with the scheme's default port made explicit.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
    {
        format!("{scheme}://{authority}")
    } else {
        let port = if scheme == "http" { 80 } else { 443 };
        format!("{scheme}://{authority}:{port}")
    }
}

/// A cache entry `etag \n body`, split.
fn split_cached(entry: &[u8]) -> Option<(String, Vec<u8>)> {
    let at = entry.iter().position(|&b| b == b'\n')?;
    let etag = std::str::from_utf8(&entry[..at]).ok()?.to_string();
    Some((etag, entry[at + 1..].to_vec()))
}

/// The name → value object of a JSON download.
fn secrets(body: &[u8]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let parsed: Json = serde_json::from_slice(body)
        .map_err(|e| Error::other(format!("doppler's secrets download is not JSON ({e})")))?;
    let Json::Object(map) = parsed else {
        return Err(Error::other(
            "doppler's secrets download is not a JSON object",
        ));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| match v {
            Json::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// Doppler's `messages`, joined, or the body's start when it has none.
fn messages(response: &Response) -> String {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    let list: Vec<&str> = parsed
        .as_ref()
        .and_then(|j| j.get("messages"))
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if !list.is_empty() {
        return list.join("; ");
    }
    String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
        .trim()
        .to_string()
}

/// The contract error for a non-2xx answer to `what`.
fn error(what: &str, response: &Response) -> Error {
    let text = response.describe("doppler", what, &messages(response));
    match response.status {
        // A project, config, format or transformer Doppler does not know: the store's doing.
        400 | 404 => Error::invalid_config(text),
        _ => response.status_error(text),
    }
}

airlock_provider_sdk::export_provider!(Doppler);

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
    fn doppler_errors_keep_their_message_and_map_by_status() {
        let denied = error(
            "the secrets download",
            &response(
                401,
                r#"{"messages":["Invalid Auth token"],"success":false}"#,
            ),
        );
        assert!(
            matches!(&denied, Error::AccessDenied(m) if m == "doppler answered 401 to the secrets download: Invalid Auth token"),
            "{denied:?}"
        );
        assert!(matches!(
            error("x", &response(404, "{}")),
            Error::InvalidConfig(_)
        ));
        assert!(matches!(
            error("x", &response(429, "{}")),
            Error::RateLimited(_)
        ));
        assert!(
            matches!(error("x", &response(502, "bad gateway")), Error::Unavailable(m) if m.ends_with("bad gateway"))
        );
    }

    #[test]
    fn a_cached_download_splits_into_etag_and_body() {
        assert_eq!(
            split_cached(b"\"abc\"\n{\"A\":\"1\\n2\"}"),
            Some(("\"abc\"".to_string(), b"{\"A\":\"1\\n2\"}".to_vec()))
        );
        assert_eq!(split_cached(b"no newline"), None);
    }

    #[test]
    fn non_string_values_of_a_download_are_kept_as_json() {
        let all = secrets(br#"{"A":"x","B":3}"#).unwrap();
        assert_eq!((all["A"].as_str(), all["B"].as_str()), ("x", "3"));
        assert!(secrets(b"[1]").is_err());
    }

    #[test]
    fn the_schema_is_json_and_requires_auth() {
        let schema: Json = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["auth"]));
    }
}
