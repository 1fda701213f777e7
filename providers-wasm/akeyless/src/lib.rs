//! Akeyless secrets (ESO's `spec.provider.akeyless`) as an Airlock component.
//!
//! Speaks Akeyless API v2 (every operation a `POST /<operation>` with a JSON body) to the
//! SaaS API or a Gateway's `/v2` URL. Logs in at `POST /auth` with an access key from a
//! Secret (`authSecretRef.secretRef`) or with a ServiceAccount token from the host
//! (`authSecretRef.kubernetesAuth`, the JWT base64-encoded as ESO sends it); the token it
//! gets is kept in the host's per-store cache and sent in each request's body. A read
//! describes the item first and then uses the value call of its type (static, dynamic,
//! rotated secret or certificate), as ESO does. Search pages through `list-items`; push
//! writes JSON objects with `create-secret` (tagged `k8s-external-secrets`) or
//! `update-secret-val`, and delete removes only items carrying that tag.

pub mod config;

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value, cache, credential_error, credentials, json, paging,
};
use serde_json::{Map, Value as Json, json};

use crate::config::{Config, KeySelector};

/// The tag ESO puts on the items it creates; delete removes only items carrying it.
pub const MANAGED_TAG: &str = "k8s-external-secrets";
/// Cache key of the Akeyless token.
const TOKEN_KEY: &str = "akeyless-token";
/// How long a token is reused. Akeyless tokens live for their auth method's TTL (60 minutes
/// by default); a token refused earlier than this is dropped and the call logs in again.
const TOKEN_TTL_MS: u64 = 10 * 60 * 1000;
/// The item types a search lists (those ESO lists).
const LISTED_TYPES: [&str; 3] = ["static-secret", "dynamic-secret", "rotated-secret"];

/// The Akeyless provider.
#[derive(Debug)]
pub struct Akeyless;

/// The JSON Schema of `spec.provider.akeyless`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for Akeyless {
    type Client = AkeylessClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "akeyless".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Akeyless static, dynamic and rotated secrets and certificates".into(),
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
pub struct AkeylessClient {
    config: Config,
    store: StoreInfo,
}

impl Client for AkeylessClient {
    fn open(config: &str, store: StoreInfo) -> Result<Self, Error> {
        Ok(AkeylessClient {
            config: Config::parse(config)?,
            store,
        })
    }

    fn validate(&self) -> Result<Validation, Error> {
        self.login()?;
        Ok(Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        if reference.key.is_empty() {
            return Err(Error::invalid_request("remoteRef.key is empty"));
        }
        let version = match reference.version.as_deref().filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => v.parse::<u32>().map_err(|_| {
                Error::invalid_request(format!(
                    "remoteRef.version {v:?} is not an Akeyless item version (a number, 0 for the latest)"
                ))
            })?,
        };
        let Some(value) = self.value(&reference.key, version)? else {
            return Ok(None);
        };
        match &reference.property {
            Some(property) => json::select(&value, property),
            None => Ok(Some(value)),
        }
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        let matcher = NameMatcher::new(criteria)?;
        // ESO's path: rooted and ending in `/`, matched as a name prefix.
        let path = criteria.path.as_deref().filter(|p| !p.is_empty()).map(|p| {
            let rooted = if p.starts_with('/') {
                p.to_string()
            } else {
                format!("/{p}")
            };
            if rooted.ends_with('/') {
                rooted
            } else {
                format!("{rooted}/")
            }
        });
        // Akeyless tags are plain words: ESO matches a `find.tags` entry by its value.
        let tags: Vec<&str> = criteria.tags.iter().map(|(_, v)| v.as_str()).collect();
        let mut names = Vec::new();
        paging::for_each_page(|page| {
            let mut body = json!({
                "filter": path.as_deref().unwrap_or(""),
                "type": LISTED_TYPES,
                "minimal-view": tags.is_empty(),
            });
            if let Some(tag) = tags.first() {
                body["tag"] = json!(tag);
            }
            if let Some(page) = page {
                body["pagination-token"] = json!(page);
            }
            let answer = self
                .operation("list-items", body)?
                .ok_or_else(|| Error::other("akeyless answered 404 to list-items"))?;
            for item in answer["items"].as_array().into_iter().flatten() {
                let Some(name) = item["item_name"].as_str() else {
                    continue;
                };
                let carried: Vec<&str> = item["item_tags"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Json::as_str).collect())
                    .unwrap_or_default();
                if path.as_deref().is_none_or(|p| name.starts_with(p))
                    && matcher.matches(name)
                    && tags.iter().all(|t| carried.contains(t))
                {
                    names.push(name.to_string());
                }
            }
            Ok::<_, Error>(
                answer["next_page"]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            )
        })?;
        let mut found = Vec::new();
        for name in names {
            // Gone since the listing, or empty: skipped, as ESO skips empty values.
            if let Some(value) = self.value(&name, 0)?.filter(|v| !v.is_empty()) {
                found.push(SecretEntry { key: name, value });
            }
        }
        Ok(found)
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        let key = &request.remote.remote_key;
        let existing = self.value(key, 0)?;
        let mut data = match &existing {
            None => Map::new(),
            Some(bytes) => object(bytes).ok_or_else(|| {
                Error::invalid_request(format!(
                    "the akeyless secret {key} does not hold a JSON object, so a pushed key cannot be merged into it"
                ))
            })?,
        };
        let text = String::from_utf8_lossy(&request.value).into_owned();
        match request.remote.property.as_deref().filter(|p| !p.is_empty()) {
            // ESO writes the property as one top-level key.
            Some(property) => {
                data.insert(property.to_string(), Json::String(text));
            }
            // The whole Secret: its keys merged into the remote object.
            None => match object(&request.value) {
                Some(pushed) => data.extend(pushed),
                None => {
                    return Err(Error::invalid_request(format!(
                        "pushing to {key} without remoteRef.property needs a JSON object value; set property to write one key"
                    )));
                }
            },
        }
        let value = Json::Object(data).to_string();
        if existing.as_deref() == Some(value.as_bytes()) {
            return Ok(());
        }
        let (operation, body) = if existing.is_none() {
            (
                "create-secret",
                json!({"name": key, "value": value, "tags": [MANAGED_TAG]}),
            )
        } else {
            ("update-secret-val", json!({"name": key, "value": value}))
        };
        self.operation(operation, body)?
            .map(|_| ())
            .ok_or_else(|| Error::other(format!("akeyless answered 404 to {operation} of {key}")))
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        let key = &reference.remote_key;
        let Some(item) = self.describe(key)? else {
            return Ok(());
        };
        let managed = item["item_tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t == MANAGED_TAG));
        if !managed {
            // ESO leaves items it did not create alone.
            return Ok(());
        }
        let remaining = match reference.property.as_deref().filter(|p| !p.is_empty()) {
            None => Map::new(),
            Some(property) => {
                let Some(current) = self.value(key, 0)? else {
                    return Ok(());
                };
                let mut map = object(&current).ok_or_else(|| {
                    Error::invalid_request(format!(
                        "the akeyless secret {key} does not hold a JSON object, so key {property} cannot be deleted from it"
                    ))
                })?;
                map.remove(property);
                map
            }
        };
        if remaining.is_empty() {
            self.operation(
                "delete-item",
                json!({"name": key, "delete-immediately": true}),
            )?;
        } else {
            let value = Json::Object(remaining).to_string();
            self.operation("update-secret-val", json!({"name": key, "value": value}))?;
        }
        Ok(())
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let Some(value) = self.value(&reference.remote_key, 0)? else {
            return Ok(false);
        };
        Ok(
            match reference.property.as_deref().filter(|p| !p.is_empty()) {
                None => true,
                Some(property) => object(&value).is_some_and(|m| m.contains_key(property)),
            },
        )
    }
}

impl AkeylessClient {
    /// `describe-item`: the item, or `None` when Akeyless has no such item.
    fn describe(&self, name: &str) -> Result<Option<Json>, Error> {
        let item = self.operation("describe-item", json!({"name": name}))?;
        Ok(item.filter(|i| i["item_name"].is_string()))
    }

    /// The value of item `name` at `version` (0 for the latest), read with the call of its
    /// type as ESO does; `None` when the item or the version does not exist.
    fn value(&self, name: &str, version: u32) -> Result<Value, Error> {
        let Some(item) = self.describe(name)? else {
            return Ok(None);
        };
        let item_type = item["item_type"].as_str().unwrap_or("");
        let mut body = match item_type {
            "STATIC_SECRET" => json!({"names": [name], "version": version}),
            "DYNAMIC_SECRET" => json!({"name": name}),
            "ROTATED_SECRET" => json!({"names": name, "version": version}),
            "CERTIFICATE" => json!({"name": name, "version": version}),
            other => {
                return Err(Error::unsupported(format!(
                    "akeyless item {name} is of type {other:?}; only static, dynamic and rotated secrets and certificates can be read"
                )));
            }
        };
        if self.config.ignore_cache && item_type != "DYNAMIC_SECRET" {
            body["ignore-cache"] = json!("true");
        }
        let operation = match item_type {
            "STATIC_SECRET" => "get-secret-value",
            "DYNAMIC_SECRET" => "get-dynamic-secret-value",
            "ROTATED_SECRET" => "get-rotated-secret-value",
            _ => "get-certificate-value",
        };
        let Some(answer) = self.operation(operation, body)? else {
            return Ok(None);
        };
        let text = match item_type {
            "STATIC_SECRET" => match answer.get(name) {
                Some(Json::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(Error::other(format!(
                        "akeyless's answer to get-secret-value has no value for {name}"
                    )));
                }
            },
            "ROTATED_SECRET" => rotated(&answer),
            _ => answer.to_string(),
        };
        Ok(Some(text.into_bytes()))
    }

    /// Sends one authenticated operation; `None` for a 404. A refused cached token is
    /// dropped and the operation sent once more with a fresh one.
    fn operation(&self, operation: &str, body: Json) -> Result<Option<Json>, Error> {
        let mut fresh = false;
        loop {
            let (token, new) = match cache::get(TOKEN_KEY).and_then(|b| String::from_utf8(b).ok()) {
                Some(token) if !fresh => (token, false),
                _ => (self.login()?, true),
            };
            let mut authed = body.clone();
            // A universal-identity token travels in its own field, as ESO sends it.
            let field = if token.starts_with("u-") {
                "uid-token"
            } else {
                "token"
            };
            authed[field] = json!(token);
            let response = self.post(operation, &authed)?;
            match response.status {
                200..=299 => return parse(operation, &response).map(Some),
                // Akeyless's own 404 (`{"error": …}`) is absence; any other 404 is a wrong URL.
                404 if is_akeyless_error(&response) => return Ok(None),
                401 | 403 if !new => {
                    cache::delete(TOKEN_KEY);
                    fresh = true;
                }
                _ => return Err(error(operation, &response)),
            }
        }
    }

    /// Logs in at `POST /auth` and caches the token.
    fn login(&self) -> Result<String, Error> {
        let body = self.auth_body()?;
        let response = self.post("auth", &body)?;
        if !response.is_success() {
            return Err(error("auth", &response));
        }
        let answer = parse("auth", &response)?;
        let token = answer["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::other("akeyless's answer to auth has no token"))?;
        cache::set(TOKEN_KEY, token.as_bytes(), TOKEN_TTL_MS);
        Ok(token.to_string())
    }

    /// The body of `POST /auth` for the store's auth method.
    fn auth_body(&self) -> Result<Json, Error> {
        let auth = &self.config.auth;
        if let Some(k8s) = &auth.kubernetes_auth {
            return Ok(json!({
                "access-id": k8s.access_id,
                "access-type": "k8s",
                "k8s-auth-config-name": k8s.k8s_conf_name,
                "k8s-service-account-token": base64(self.service_account_jwt(k8s)?.as_bytes()),
            }));
        }
        let Some(secret) = &auth.secret_ref else {
            return Err(Error::invalid_config(
                "authSecretRef needs secretRef or kubernetesAuth",
            ));
        };
        let access_id = read_key("authSecretRef.secretRef.accessID", &secret.access_id)?;
        let access_type = read_key("authSecretRef.secretRef.accessType", &secret.access_type)?;
        let param = match &secret.access_type_param {
            Some(selector) if !selector.name.is_empty() => {
                read_key("authSecretRef.secretRef.accessTypeParam", selector)?
            }
            _ => String::new(),
        };
        if access_id.is_empty() {
            return Err(Error::invalid_config(
                "the akeyless access id (authSecretRef.secretRef.accessID) is empty",
            ));
        }
        match access_type.as_str() {
            "api_key" | "access_key" if param.is_empty() => Err(Error::invalid_config(
                "missing AccessTypeParam for Akeyless access key auth (authSecretRef.secretRef.accessTypeParam)",
            )),
            "api_key" | "access_key" => Ok(json!({"access-id": access_id, "access-key": param})),
            "" => Err(Error::invalid_config(
                "the akeyless access type (authSecretRef.secretRef.accessType) is empty",
            )),
            "k8s" => Err(Error::invalid_config(
                "kubernetes auth configuration is required: use authSecretRef.kubernetesAuth for accessType k8s",
            )),
            other => Err(Error::unsupported(format!(
                "akeyless access type {other:?} (a cloud identity) is not supported; use access_key or kubernetesAuth"
            ))),
        }
    }

    /// The ServiceAccount JWT of Kubernetes auth: minted by the host for `serviceAccountRef`,
    /// or read from `secretRef` (key `token` when none is named).
    fn service_account_jwt(&self, k8s: &config::KubernetesAuth) -> Result<String, Error> {
        if let Some(account) = &k8s.service_account_ref {
            let token = credentials::service_account_token(&credentials::ServiceAccountSelector {
                name: account.name.clone(),
                namespace: account.namespace.clone(),
                audiences: account.audiences.clone(),
            })
            .map_err(|e| credential_error("authSecretRef.kubernetesAuth.serviceAccountRef", e))?;
            return Ok(token.token);
        }
        let Some(selector) = &k8s.secret_ref else {
            return Err(Error::invalid_config(
                "authSecretRef.kubernetesAuth needs serviceAccountRef or secretRef",
            ));
        };
        let mut selector = selector.clone();
        if selector.key.is_empty() {
            selector.key = "token".into();
        }
        read_key("authSecretRef.kubernetesAuth.secretRef", &selector)
    }

    /// One `POST <url>/<operation>`. Not redirected: the token travels in the body, and a
    /// redirect elsewhere would carry it along.
    fn post(&self, operation: &str, body: &Json) -> Result<Response, Error> {
        let request = Request::new("POST", format!("{}/{operation}", self.config.url()))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let response = http::send_once(&request).map_err(|e| self.explain_refusal(e))?;
        if (300..400).contains(&response.status) {
            return Err(Error::unavailable(format!(
                "akeyless answered {} to {operation}; redirects are not followed because the token travels in the request body (point akeylessGWApiURL at the final URL)",
                response.status
            )));
        }
        Ok(response)
    }

    /// Adds to a host refusal which grant the admin must add.
    fn explain_refusal(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) if m.contains("denied the request") => {
                let url = self.config.url();
                let end = url.find("://").map_or(0, |i| i + 3);
                let host_end = url[end..].find('/').map_or(url.len(), |i| end + i);
                Error::Unavailable(format!(
                    "{m}; to use this Akeyless API, add {} to spec.allowedOutboundHosts of the Provider \"akeyless\" (store {}/{})",
                    &url[..host_end],
                    self.store.namespace,
                    self.store.name
                ))
            }
            other => other,
        }
    }
}

/// Reads one Secret key as trimmed text.
fn read_key(field: &str, selector: &KeySelector) -> Result<String, Error> {
    let bytes = credentials::secret_key(&credentials::KeySelector {
        name: selector.name.clone(),
        key: selector.key.clone(),
        namespace: selector.namespace.clone(),
    })
    .map_err(|e| credential_error(field, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::invalid_config(format!("{field} is not UTF-8")))?;
    Ok(text.trim().to_string())
}

/// A value parsed as a JSON object.
fn object(bytes: &[u8]) -> Option<Map<String, Json>> {
    match serde_json::from_slice(bytes) {
        Ok(Json::Object(map)) => Some(map),
        _ => None,
    }
}

/// The value of a rotated secret as ESO returns it: the `payload` text, else the
/// `target_value` or the whole `value` as JSON, else the whole answer.
fn rotated(answer: &Json) -> String {
    match answer.get("value") {
        Some(Json::Object(value)) => match (value.get("payload"), value.get("target_value")) {
            (Some(Json::String(payload)), _) => payload.clone(),
            (Some(payload), _) => payload.to_string(),
            (None, Some(target)) => target.to_string(),
            (None, None) => Json::Object(value.clone()).to_string(),
        },
        _ => answer.to_string(),
    }
}

/// Whether the body is Akeyless's error object.
fn is_akeyless_error(response: &Response) -> bool {
    serde_json::from_slice::<Json>(&response.body).is_ok_and(|j| j["error"].is_string())
}

/// A 2xx answer's JSON.
fn parse(operation: &str, response: &Response) -> Result<Json, Error> {
    serde_json::from_slice(&response.body).map_err(|e| {
        Error::other(format!(
            "akeyless's answer to {operation} is not JSON ({e})"
        ))
    })
}

/// The contract error for a failed answer to `operation`, with Akeyless's `error` text.
fn error(operation: &str, response: &Response) -> Error {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    let message = match parsed
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Json::as_str)
    {
        Some(m) => m.to_string(),
        None => String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            .trim()
            .to_string(),
    };
    response.status_error(response.describe("akeyless", operation, &message))
}

/// Standard base64 with padding, as ESO encodes the ServiceAccount JWT.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

airlock_provider_sdk::export_provider!(Akeyless);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"header.payload.sig"), "aGVhZGVyLnBheWxvYWQuc2ln");
    }

    #[test]
    fn a_rotated_value_is_its_payload_or_target_value_or_value() {
        assert_eq!(rotated(&json!({"value": {"payload": "p"}})), "p");
        assert_eq!(
            rotated(&json!({"value": {"target_value": {"a": 1}}})),
            r#"{"a":1}"#
        );
        assert_eq!(
            rotated(&json!({"value": {"username": "u"}})),
            r#"{"username":"u"}"#
        );
        assert_eq!(rotated(&json!({"other": 1})), r#"{"other":1}"#);
    }

    #[test]
    fn akeyless_errors_keep_their_message_and_map_by_status() {
        let response = |status, body: &str| Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        let denied = error("auth", &response(401, r#"{"error":"access denied"}"#));
        assert!(
            matches!(&denied, Error::AccessDenied(m) if m == "akeyless answered 401 to auth: access denied"),
            "{denied:?}"
        );
        assert!(
            matches!(error("x", &response(500, "boom")), Error::Unavailable(m) if m.ends_with("boom"))
        );
    }

    #[test]
    fn the_schema_is_json_and_requires_auth() {
        let schema: Json = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], json!(["authSecretRef"]));
    }
}
