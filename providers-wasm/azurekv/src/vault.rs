//! Key Vault REST API 7.4: secrets, certificates and keys by name and version, listings
//! over `nextLink`, and writes guarded by ESO's `managed-by` tag.

use std::collections::BTreeMap;

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::paging::for_each_page;
use airlock_provider_sdk::time;
use airlock_provider_sdk::{
    Error, Find, MetadataPolicy, PushRef, PushRequest, RemoteRef, SecretEntry, Value, json,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as Json;

use crate::auth::{Tokens, origin};
use crate::config::Config;

/// The REST API version sent with every request.
pub const API_VERSION: &str = "7.4";
/// Page size of listings (Key Vault's maximum).
pub const MAX_RESULTS: usize = 25;
/// Pages of one listing before giving up (25 000 secrets).
pub const MAX_PAGES: usize = 1000;
/// ESO's ownership tag on pushed secrets.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "external-secrets");

/// A secret's tags.
pub type Tags = BTreeMap<String, String>;

/// What a `remoteRef.key` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `secret/<name>` or a bare name.
    Secret,
    /// `cert/<name>`: the certificate's DER.
    Certificate,
    /// `key/<name>`: the public JSON Web Key.
    Key,
}

/// Splits ESO's `secret/`, `cert/`, `key/` prefix off `key` and checks the name.
pub fn parse_key(key: &str) -> Result<(Kind, &str), Error> {
    let (kind, name) = match key.split_once('/') {
        Some(("secret", n)) => (Kind::Secret, n),
        Some(("cert", n)) => (Kind::Certificate, n),
        Some(("key", n)) => (Kind::Key, n),
        _ => (Kind::Secret, key),
    };
    check_name(name)?;
    Ok((kind, name))
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.len() > 127
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(Error::invalid_request(format!(
            "{name:?} is not a Key Vault object name (1-127 of 0-9, a-z, A-Z, -), optionally prefixed with secret/, cert/ or key/"
        )));
    }
    Ok(())
}

/// One store's vault.
#[derive(Debug)]
pub struct Vault<'a> {
    config: &'a Config,
    tokens: Tokens<'a>,
}

impl<'a> Vault<'a> {
    /// The vault of `config`.
    pub fn new(config: &'a Config) -> Self {
        Vault {
            config,
            tokens: Tokens::new(config),
        }
    }

    /// Gets a token, proving the credentials.
    pub fn validate(&self) -> Result<(), Error> {
        self.tokens.get().map(|_| ())
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!(
            "{}/{path}{sep}api-version={API_VERSION}",
            self.config.vault_url
        )
    }

    /// Sends one request with the token; a refused cached token is replaced once.
    fn send(&self, method: &str, url: &str, body: Option<&Json>) -> Result<Response, Error> {
        let mut retried = false;
        loop {
            let mut request = Request::new(method, url)
                .header("Accept", "application/json")
                .header("Authorization", format!("Bearer {}", self.tokens.get()?));
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
            }
            let response = http::send(&request).map_err(|e| match e {
                Error::Unavailable(m) if m.contains("denied") => Error::Unavailable(format!(
                    "{m}; to use this vault, add {} to spec.allowedOutboundHosts of the Provider \"azurekv\"",
                    origin(&self.config.vault_url)
                )),
                other => other,
            })?;
            if response.status == 401 && !retried {
                self.tokens.forget();
                retried = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// `GET` an object; `None` on 404.
    fn get_object(&self, path: &str) -> Result<Option<Json>, Error> {
        let response = self.send("GET", &self.url(path), None)?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(error(&format!("GET {path}"), &response));
        }
        body(&format!("GET {path}"), &response).map(Some)
    }

    fn object_path(kind: Kind, name: &str, version: Option<&str>) -> Result<String, Error> {
        let collection = match kind {
            Kind::Secret => "secrets",
            Kind::Certificate => "certificates",
            Kind::Key => "keys",
        };
        match version.filter(|v| !v.is_empty() && *v != "latest") {
            Some(v) if v.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Ok(format!("{collection}/{name}/{v}"))
            }
            Some(v) => Err(Error::invalid_request(format!(
                "version {v:?} is not a Key Vault version ID"
            ))),
            None => Ok(format!("{collection}/{name}")),
        }
    }

    /// ESO's `GetSecret`.
    pub fn get(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let (kind, name) = parse_key(&reference.key)?;
        let path = Self::object_path(kind, name, reference.version.as_deref())?;
        let Some(object) = self.get_object(&path)? else {
            return Ok(None);
        };
        if reference.metadata_policy == MetadataPolicy::Fetch {
            let tags = Json::Object(metadata_of(&object));
            return Ok(match &reference.property {
                Some(p) => tags
                    .get(p)
                    .and_then(Json::as_str)
                    .map(|v| v.as_bytes().to_vec()),
                None => Some(tags.to_string().into_bytes()),
            });
        }
        let value = match kind {
            Kind::Secret => object["value"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            Kind::Certificate => {
                let cer = object["cer"].as_str().unwrap_or_default();
                base64::engine::general_purpose::STANDARD
                    .decode(cer)
                    .map_err(|e| Error::other(format!("GET {path}: cer is not base64 ({e})")))?
            }
            Kind::Key => object["key"].to_string().into_bytes(),
        };
        match &reference.property {
            Some(p) => json::select(&value, p),
            None => Ok(Some(value)),
        }
    }

    /// Every enabled secret's name and tags, over every page.
    fn list(&self) -> Result<Vec<(String, Tags)>, Error> {
        let first = self.url(&format!("secrets?maxresults={MAX_RESULTS}"));
        let prefix = format!("{}/", origin(&self.config.vault_url));
        let mut out = Vec::new();
        let mut pages = 0;
        for_each_page(|next: Option<&str>| {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Error::other(format!(
                    "GET secrets: more than {MAX_PAGES} pages; giving up"
                )));
            }
            let response = self.send("GET", next.unwrap_or(&first), None)?;
            if !response.is_success() {
                return Err(error("GET secrets", &response));
            }
            let page = body("GET secrets", &response)?;
            for item in page["value"].as_array().into_iter().flatten() {
                if item["attributes"]["enabled"].as_bool() == Some(false) {
                    continue;
                }
                let Some(name) = item["id"].as_str().and_then(|id| id.rsplit('/').next()) else {
                    continue;
                };
                let tags = item["tags"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((name.to_string(), tags));
            }
            // The token must not travel elsewhere: only this vault's links are followed.
            Ok(page["nextLink"]
                .as_str()
                .filter(|l| l.starts_with(&prefix) || l.starts_with(&self.config.vault_url))
                .map(str::to_string))
        })?;
        Ok(out)
    }

    /// ESO's `GetAllSecrets`: secrets by name regexp and tags.
    pub fn find(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        if criteria.path.is_some() {
            return Err(Error::unsupported(
                "find.path is not supported by Azure Key Vault: use find.name or find.tags",
            ));
        }
        let names = NameMatcher::new(criteria)?;
        let mut entries = Vec::new();
        for (name, tags) in self.list()? {
            let tagged = criteria
                .tags
                .iter()
                .all(|(k, v)| tags.get(k).is_some_and(|t| t == v));
            if !tagged || !names.matches(&name) {
                continue;
            }
            if let Some(value) = self.get(&RemoteRef {
                key: name.clone(),
                property: None,
                version: None,
                metadata_policy: MetadataPolicy::None,
            })? {
                entries.push(SecretEntry { key: name, value });
            }
        }
        Ok(entries)
    }

    fn current(&self, name: &str) -> Result<Option<Json>, Error> {
        self.get_object(&format!("secrets/{name}"))
    }

    fn managed(what: &str, name: &str, existing: &Json) -> Result<(), Error> {
        if existing["tags"][MANAGED_BY.0].as_str() == Some(MANAGED_BY.1) {
            Ok(())
        } else {
            Err(Error::access_denied(format!(
                "{what} {name:?} exists and is not managed by external-secrets (no tag {}={}): refusing to change it",
                MANAGED_BY.0, MANAGED_BY.1
            )))
        }
    }

    /// The push metadata's tags (with ESO's `managed-by`), `expirationDate` and
    /// `contentType`.
    fn push_metadata(request: &PushRequest) -> Result<(Json, Option<u64>, Option<String>), Error> {
        let mut tags = serde_json::Map::new();
        let mut expires = None;
        let mut content_type = None;
        if let Some(meta) = &request.metadata {
            let meta: Json = serde_json::from_str(meta)
                .map_err(|e| Error::invalid_request(format!("push metadata: {e}")))?;
            for (k, v) in meta["spec"]["tags"].as_object().into_iter().flatten() {
                if k == MANAGED_BY.0 {
                    return Err(Error::invalid_request(format!(
                        "error parsing tags in metadata: Cannot specify a '{}' tag",
                        MANAGED_BY.0
                    )));
                }
                tags.insert(
                    k.clone(),
                    Json::String(v.as_str().unwrap_or_default().into()),
                );
            }
            // ESO's `expirationDate`: RFC 3339, set as the secret's `exp` attribute.
            if let Some(date) = meta["spec"]["expirationDate"]
                .as_str()
                .filter(|d| !d.is_empty())
            {
                expires = Some(time::parse_rfc3339(date).ok_or_else(|| {
                    Error::invalid_request(format!(
                        "error parsing expiration date in metadata: {date:?}. Expected format: YYYY-MM-DDTHH:MM:SSZ (RFC3339). Example: 2024-12-31T20:00:00Z"
                    ))
                })?);
            }
            content_type = meta["spec"]["contentType"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
        }
        tags.insert(MANAGED_BY.0.into(), Json::String(MANAGED_BY.1.into()));
        Ok((Json::Object(tags), expires, content_type))
    }

    /// Sends `body` with `method` to `path`; a non-2xx answer is the error.
    fn write(&self, method: &str, path: &str, body: Option<&Json>) -> Result<(), Error> {
        let response = self.send(method, &self.url(path), body)?;
        if !response.is_success() {
            return Err(error(&format!("{method} {path}"), &response));
        }
        Ok(())
    }

    /// ESO's `setKeyVaultCertificate`: the value's certificate is imported (the value
    /// itself, base64, through Import Certificate) unless the vault's is the same.
    fn push_certificate(&self, name: &str, request: &PushRequest) -> Result<(), Error> {
        let (tags, _, _) = Self::push_metadata(request)?;
        let der = crate::import::certificate_der(&request.value)?;
        let path = format!("certificates/{name}");
        if let Some(existing) = self.get_object(&path)? {
            Self::managed("certificate", name, &existing)?;
            let cer = existing["cer"]
                .as_str()
                .and_then(|c| STANDARD.decode(c).ok());
            if cer.as_deref() == Some(der.as_slice()) {
                return Ok(());
            }
        }
        let body = serde_json::json!({"value": STANDARD.encode(&request.value), "tags": tags});
        self.write("POST", &format!("{path}/import"), Some(&body))
    }

    /// ESO's `setKeyVaultKey`: the value's private key is imported as a JSON Web Key unless
    /// the vault holds the same one.
    fn push_key(&self, name: &str, request: &PushRequest) -> Result<(), Error> {
        let (tags, _, _) = Self::push_metadata(request)?;
        let jwk = crate::import::jwk(&request.value)?;
        let path = format!("keys/{name}");
        if let Some(existing) = self.get_object(&path)? {
            Self::managed("key", name, &existing)?;
            if crate::import::same_key(&jwk, &existing["key"]) {
                return Ok(());
            }
        }
        let body = serde_json::json!({"key": jwk, "attributes": {}, "tags": tags});
        self.write("PUT", &path, Some(&body))
    }

    /// ESO's `PushSecret`.
    pub fn push(&self, request: &PushRequest) -> Result<(), Error> {
        let name = match parse_key(&request.remote.remote_key)? {
            (Kind::Secret, name) => name,
            (Kind::Certificate, name) => return self.push_certificate(name, request),
            (Kind::Key, name) => return self.push_key(name, request),
        };
        let existing = self.current(name)?;
        if let Some(existing) = &existing {
            Self::managed("secret", name, existing)?;
        }
        let old = existing
            .as_ref()
            .and_then(|e| e["value"].as_str())
            .map(|v| v.as_bytes().to_vec());
        let value = match &request.remote.property {
            Some(p) => json::set_property(old.as_deref(), p, &request.value)?,
            None => request.value.clone(),
        };
        let value = String::from_utf8(value).map_err(|_| {
            Error::invalid_request("Key Vault secret values are text: the value is not UTF-8")
        })?;
        let (tags, expires, content_type) = Self::push_metadata(request)?;
        // ESO's "unchanged": the value, the expiry, and the content type when one is asked.
        let unchanged = existing.as_ref().is_some_and(|e| {
            old.as_deref() == Some(value.as_bytes())
                && e["tags"] == tags
                && e["attributes"]["exp"].as_u64() == expires
                && content_type
                    .as_deref()
                    .is_none_or(|c| e["contentType"].as_str() == Some(c))
        });
        if unchanged {
            return Ok(());
        }
        let mut body = serde_json::json!({"value": value, "tags": tags,
                                          "attributes": {"enabled": true}});
        if let Some(exp) = expires {
            body["attributes"]["exp"] = exp.into();
        }
        // Without a new one, the secret keeps its content type (as ESO).
        if let Some(c) = content_type.or_else(|| {
            existing
                .as_ref()
                .and_then(|e| e["contentType"].as_str().map(str::to_string))
        }) {
            body["contentType"] = c.into();
        }
        self.write("PUT", &format!("secrets/{name}"), Some(&body))
    }

    /// ESO's `DeleteSecret`: absent is done; only managed objects are deleted (a
    /// certificate or key whole, as ESO does).
    pub fn delete(&self, reference: &PushRef) -> Result<(), Error> {
        let (kind, name) = parse_key(&reference.remote_key)?;
        let (what, path) = match kind {
            Kind::Secret => ("secret", format!("secrets/{name}")),
            Kind::Certificate => ("certificate", format!("certificates/{name}")),
            Kind::Key => ("key", format!("keys/{name}")),
        };
        let Some(existing) = self.get_object(&path)? else {
            return Ok(());
        };
        Self::managed(what, name, &existing)?;
        if kind != Kind::Secret {
            let response = self.send("DELETE", &self.url(&path), None)?;
            if !response.is_success() && response.status != 404 {
                return Err(error(&format!("DELETE {path}"), &response));
            }
            return Ok(());
        }
        if let Some(property) = &reference.property {
            let mut object: Json = serde_json::from_str(existing["value"].as_str().unwrap_or("{}"))
                .unwrap_or(Json::Object(Default::default()));
            if let Some(map) = object.as_object_mut() {
                map.remove(property);
                if !map.is_empty() {
                    let body =
                        serde_json::json!({"value": object.to_string(), "tags": existing["tags"]});
                    return self.write("PUT", &path, Some(&body));
                }
            }
        }
        let response = self.send("DELETE", &self.url(&path), None)?;
        if !response.is_success() && response.status != 404 {
            return Err(error(&format!("DELETE {path}"), &response));
        }
        Ok(())
    }

    /// ESO's `SecretExists`.
    pub fn exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let (kind, name) = parse_key(&reference.remote_key)?;
        if kind != Kind::Secret {
            let path = Self::object_path(kind, name, None)?;
            return Ok(self.get_object(&path)?.is_some());
        }
        let Some(existing) = self.current(name)? else {
            return Ok(false);
        };
        Ok(match &reference.property {
            Some(p) => json::select(existing["value"].as_str().unwrap_or_default().as_bytes(), p)
                .ok()
                .flatten()
                .is_some(),
            None => true,
        })
    }
}

/// Key Vault's `error.code: error.message`, else the body's start.
pub fn message(response: &Response) -> String {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    match parsed.as_ref().map(|j| &j["error"]) {
        Some(e) if e.is_object() => {
            let code = e["code"].as_str().unwrap_or_default();
            let text = e["message"].as_str().unwrap_or_default();
            let first = text.lines().next().unwrap_or_default();
            format!("{code}: {first}")
        }
        _ => String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            .trim()
            .to_string(),
    }
}

/// The contract error for a non-2xx answer to `what`.
pub fn error(what: &str, response: &Response) -> Error {
    let text = response.describe("azure key vault", what, &message(response));
    match response.status {
        409 => Error::invalid_request(text),
        _ => response.status_error(text),
    }
}

fn body(what: &str, response: &Response) -> Result<Json, Error> {
    serde_json::from_slice(&response.body).map_err(|e| {
        Error::other(format!(
            "azure key vault's answer to {what} is not JSON ({e})"
        ))
    })
}

/// ESO's metadata of an object (`metadataPolicy: Fetch`): its tags plus
/// `attribute.expires`, `attribute.created`, `attribute.updated` and `attribute.notBefore`
/// as RFC 3339 times, where set.
fn metadata_of(object: &Json) -> serde_json::Map<String, Json> {
    let mut out: serde_json::Map<String, Json> =
        object["tags"].as_object().cloned().unwrap_or_default();
    for (attribute, name) in [
        ("exp", "attribute.expires"),
        ("created", "attribute.created"),
        ("updated", "attribute.updated"),
        ("nbf", "attribute.notBefore"),
    ] {
        if let Some(secs) = object["attributes"][attribute].as_u64() {
            out.insert(name.into(), Json::String(time::format_rfc3339(secs)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_pick_the_object_kind_and_names_are_checked() {
        assert_eq!(parse_key("db").unwrap(), (Kind::Secret, "db"));
        assert_eq!(parse_key("secret/db").unwrap(), (Kind::Secret, "db"));
        assert_eq!(parse_key("cert/tls").unwrap(), (Kind::Certificate, "tls"));
        assert_eq!(parse_key("key/sign").unwrap(), (Kind::Key, "sign"));
        assert!(matches!(
            parse_key("../keys/x"),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_key("secret/a b"),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn key_vault_errors_keep_code_and_first_line() {
        let response = Response {
            status: 403,
            headers: vec![],
            body:
                br#"{"error":{"code":"Forbidden","message":"Caller is not authorized.\r\nMore"}}"#
                    .to_vec(),
        };
        let e = error("GET secrets/x", &response);
        assert!(
            matches!(&e, Error::AccessDenied(m) if m == "azure key vault answered 403 to GET secrets/x: Forbidden: Caller is not authorized."),
            "{e:?}"
        );
    }
}
