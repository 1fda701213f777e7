//! Google Cloud Secret Manager (ESO's `spec.provider.gcpsm`) as an Airlock component.
//!
//! Reads `GET …/secrets/<key>/versions/<version>:access` (`latest` unless the ref names a
//! version) on `secretmanager.googleapis.com`, or on `secretmanager.<location>.rep.googleapis.com`
//! for a store with `location`. `dataFrom.find` lists the project's secrets (label criteria
//! become Secret Manager's `filter`, pages follow `nextPageToken`) and reads the newest
//! version of each match. `metadataPolicy: Fetch` reads the secret's labels and annotations.
//! Authenticates with a service-account key file from a Secret (an RS256-signed JWT is
//! exchanged at the key's `token_uri`) or with GKE Workload Identity
//! ([`workload_identity`]); the access token is kept in the host's per-store cache until
//! shortly before it expires. Pushes add a version to a secret carrying ESO's
//! `managed-by: external-secrets` label (creating it so labelled), refuse secrets without
//! that label, and delete only labelled secrets, as ESO does.

pub mod config;
pub mod token;
pub mod workload_identity;

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, MetadataPolicy, Provider, ProviderMetadata, PushRef,
    PushRequest, RemoteRef, SecretEntry, StoreInfo, Validation, Value, json, paging,
};
use base64::Engine as _;
use serde_json::Value as Json;

use crate::config::{Config, VersionPolicy};

/// ESO's label on the secrets it creates and the only ones it changes or deletes.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "external-secrets");

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
        Capabilities::ReadWrite
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
            return self.metadata(reference);
        }
        let version = reference.version.as_deref().unwrap_or("latest");
        let read = match self.access(&reference.key, version) {
            // ESO's LatestOrFetch: a disabled or destroyed `latest` falls back to the newest
            // enabled version, for refs that name no version.
            Err(Error::InvalidRequest(_))
                if reference.version.is_none()
                    && self.config.secret_version_selection_policy
                        == VersionPolicy::LatestOrFetch =>
            {
                self.latest_enabled(&reference.key)
            }
            other => other,
        };
        let Some(value) = read? else {
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

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        let key = push_key(&request.remote)?;
        let metadata = PushMetadata::parse(request.metadata.as_deref())?;
        if request.remote.property.is_some() && metadata.is_some() {
            return Err(Error::invalid_request(
                "cannot specify metadata and property at the same time",
            ));
        }
        let existing = match self.secret(key)? {
            Some(existing) => existing,
            None => self.create(key)?,
        };
        // ESO refuses to write to a secret it did not create; so does Airlock, for a
        // property push too (where ESO would adopt the secret).
        if !is_managed(&existing) {
            return Err(Error::access_denied(format!(
                "secret {key:?} exists and is not managed by external-secrets (no label {}={}): refusing to change it",
                MANAGED_BY.0, MANAGED_BY.1
            )));
        }
        let labels = text_map(&existing["labels"]);
        let annotations = text_map(&existing["annotations"]);
        let (new_labels, new_annotations) = match &metadata {
            _ if request.remote.property.is_some() => {
                let mut l = labels.clone();
                l.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
                (l, annotations.clone())
            }
            Some(m) => m.labels_and_annotations(&labels),
            None => {
                let l = serde_json::Map::from_iter([(MANAGED_BY.0.into(), MANAGED_BY.1.into())]);
                (l, serde_json::Map::new())
            }
        };
        if new_labels != labels || new_annotations != annotations {
            let body = serde_json::json!({
                "labels": new_labels,
                "annotations": new_annotations,
                "etag": existing["etag"],
            });
            let path = format!(
                "/secrets/{}?updateMask=labels,annotations",
                http::encode(key)
            );
            let response = self.call_with("PATCH", &path, Some(&body))?;
            if !response.is_success() {
                return Err(error(&format!("the update of {key}"), &response));
            }
        }
        let current = match self.access(key, "latest") {
            Ok(v) => v,
            // A disabled or destroyed latest version is replaced by the new one.
            Err(Error::InvalidRequest(_)) => None,
            Err(e) => return Err(e),
        };
        let data = match &request.remote.property {
            Some(property) => {
                if let Some(current) = &current
                    && json::select(current, property)?.as_deref() == Some(&request.value[..])
                {
                    return Ok(());
                }
                json::set_property(current.as_deref(), property, &request.value)?
            }
            None => {
                if current.as_deref() == Some(&request.value[..]) {
                    return Ok(());
                }
                request.value.clone()
            }
        };
        // As ESO, the payload without `dataCrc32c` (the checksum is optional).
        let body = serde_json::json!({"payload": {
            "data": base64::engine::general_purpose::STANDARD.encode(&data),
        }});
        let path = format!("/secrets/{}:addVersion", http::encode(key));
        let response = self.call_with("POST", &path, Some(&body))?;
        if !response.is_success() {
            return Err(error(&format!("the new version of {key}"), &response));
        }
        Ok(())
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        let key = push_key(reference)?;
        let Some(existing) = self.secret(key)? else {
            return Ok(());
        };
        // As ESO: a secret it does not manage is left alone, and that is not an error.
        if !is_managed(&existing) {
            return Ok(());
        }
        let mut path = format!("/secrets/{}", http::encode(key));
        if let Some(etag) = existing["etag"].as_str() {
            path.push_str(&format!("?etag={}", http::encode(etag)));
        }
        let response = self.call("DELETE", &path)?;
        if !response.is_success() && response.status != 404 {
            return Err(error(&format!("the deletion of {key}"), &response));
        }
        Ok(())
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let key = push_key(reference)?;
        Ok(self.latest_enabled(key)?.is_some())
    }
}

/// The secret id of a push ref.
fn push_key(reference: &PushRef) -> Result<&str, Error> {
    let key = reference.remote_key.as_str();
    if key.is_empty()
        || key.len() > 255
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid_request(format!(
            "remoteKey {key:?} is not a Secret Manager secret id ([a-zA-Z0-9_-], at most 255)"
        )));
    }
    Ok(key)
}

fn is_managed(secret: &Json) -> bool {
    secret["labels"][MANAGED_BY.0].as_str() == Some(MANAGED_BY.1)
}

fn text_map(value: &Json) -> serde_json::Map<String, Json> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// ESO's PushSecret `metadata` for gcpsm (`kind: PushSecretMetadata`, `spec.labels`,
/// `spec.annotations`, `spec.mergePolicy`).
#[derive(Debug)]
struct PushMetadata {
    labels: serde_json::Map<String, Json>,
    annotations: serde_json::Map<String, Json>,
    merge: bool,
}

impl PushMetadata {
    fn parse(text: Option<&str>) -> Result<Option<PushMetadata>, Error> {
        let Some(text) = text else {
            return Ok(None);
        };
        let meta: Json = serde_json::from_str(text)
            .map_err(|e| Error::invalid_request(format!("push metadata is not JSON: {e}")))?;
        let spec = &meta["spec"];
        for unsupported in [
            "topics",
            "cmekKeyName",
            "replicationLocation",
            "replicationLocations",
        ] {
            if !spec[unsupported].is_null() {
                return Err(Error::unsupported(format!(
                    "gcpsm push metadata spec.{unsupported} is not supported"
                )));
            }
        }
        let merge = match spec["mergePolicy"].as_str() {
            None | Some("Replace") => false,
            Some("Merge") => true,
            Some(other) => {
                return Err(Error::invalid_request(format!(
                    "push metadata spec.mergePolicy {other:?} is not Replace or Merge"
                )));
            }
        };
        Ok(Some(PushMetadata {
            labels: text_map(&spec["labels"]),
            annotations: text_map(&spec["annotations"]),
            merge,
        }))
    }

    /// ESO's rule: the metadata's labels (merged over the existing ones with `Merge`), the
    /// managed-by label always; its annotations replace the secret's.
    fn labels_and_annotations(
        &self,
        existing: &serde_json::Map<String, Json>,
    ) -> (serde_json::Map<String, Json>, serde_json::Map<String, Json>) {
        let mut labels = self.labels.clone();
        if self.merge {
            labels.extend(existing.clone());
        }
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        (labels, self.annotations.clone())
    }
}

impl GcpsmClient {
    /// The secret resource (labels, annotations, etag), `None` when it does not exist.
    fn secret(&self, key: &str) -> Result<Option<Json>, Error> {
        let response = self.call("GET", &format!("/secrets/{}", http::encode(key)))?;
        if response.status == 404 {
            return Ok(None);
        }
        if !response.is_success() {
            return Err(error(&format!("the secret {key}"), &response));
        }
        parse(&response, "the secret").map(Some)
    }

    /// Creates secret `key` with ESO's managed-by label (automatic replication globally;
    /// regional secrets take none).
    fn create(&self, key: &str) -> Result<Json, Error> {
        let mut body = serde_json::json!({"labels": {MANAGED_BY.0: MANAGED_BY.1}});
        if self.config.location.is_none() {
            body["replication"] = serde_json::json!({"automatic": {}});
        }
        let path = format!("/secrets?secretId={}", http::encode(key));
        let response = self.call_with("POST", &path, Some(&body))?;
        if !response.is_success() {
            return Err(error(&format!("the creation of {key}"), &response));
        }
        parse(&response, "the created secret")
    }

    /// `metadataPolicy: Fetch`: the secret's labels and annotations, as ESO returns them
    /// (`{"annotations":…,"labels":…}`, or one map by `property` `labels`/`annotations`,
    /// or one value by `labels.<k>`/`annotations.<k>`).
    fn metadata(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let Some(secret) = self.secret(&reference.key)? else {
            return Ok(None);
        };
        let labels = Json::Object(text_map(&secret["labels"]));
        let annotations = Json::Object(text_map(&secret["annotations"]));
        let text = |v: &Json| Ok(Some(v.to_string().into_bytes()));
        match reference.property.as_deref() {
            None | Some("") => text(&serde_json::json!({
                "annotations": annotations, "labels": labels})),
            Some("labels") => text(&labels),
            Some("annotations") => text(&annotations),
            Some(p) => {
                let (map, name) = if let Some(k) = p.strip_prefix("labels.") {
                    (&labels, k)
                } else if let Some(k) = p.strip_prefix("annotations.") {
                    (&annotations, k)
                } else {
                    return Err(Error::invalid_request(format!(
                        "invalid property {p}: metadata property should start with either annotations or labels"
                    )));
                };
                Ok(map[name].as_str().map(|v| v.as_bytes().to_vec()))
            }
        }
    }

    /// The payload of the newest enabled version (ESO's `getLatestEnabledVersion`): the
    /// versions listed with `filter=state:ENABLED`, the newest by `createTime`; `latest`
    /// when none is enabled, whose answer then says why.
    fn latest_enabled(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut newest: Option<(String, String)> = None;
        let mut missing = false;
        paging::for_each_page(|token| {
            let mut path = format!(
                "/secrets/{}/versions?filter={}",
                http::encode(key),
                http::encode("state:ENABLED")
            );
            if let Some(token) = token {
                path.push_str(&format!("&pageToken={}", http::encode(token)));
            }
            let response = self.call("GET", &path)?;
            if response.status == 404 {
                missing = true;
                return Ok(None);
            }
            if !response.is_success() {
                return Err(error(&format!("the versions of {key}"), &response));
            }
            let page: Json = parse(&response, "the versions list")?;
            for v in page["versions"].as_array().into_iter().flatten() {
                let (Some(name), Some(created)) = (v["name"].as_str(), v["createTime"].as_str())
                else {
                    continue;
                };
                // RFC 3339 UTC times of one format order as text.
                if newest.as_ref().is_none_or(|(_, c)| created > c.as_str()) {
                    newest = Some((name.to_string(), created.to_string()));
                }
            }
            Ok(page["nextPageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string))
        })?;
        if missing {
            return Ok(None);
        }
        let version = newest
            .as_ref()
            .and_then(|(name, _)| name.rsplit('/').next())
            .unwrap_or("latest")
            .to_string();
        self.access(key, &version)
    }

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
        self.call_with(method, path, None)
    }

    /// Sends one authenticated request to `<base><path>` with a JSON body.
    fn call_with(&self, method: &str, path: &str, body: Option<&Json>) -> Result<Response, Error> {
        let token = token::access_token(&self.config)?;
        let mut request = Request::new(method, format!("{}{path}", self.config.base()))
            .header("Accept", "application/json")
            .header("Authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = http::send(&request)
            .map_err(|e| explain_refusal(&self.config.base(), e, "Secret Manager"))?;
        if matches!(response.status, 401) {
            // A revoked or expired token: fetch a fresh one on the next call.
            token::forget();
        }
        Ok(response)
    }
}

/// Adds to a host refusal which grant the admin must add to reach `what` at `url`.
pub(crate) fn explain_refusal(url: &str, e: Error, what: &str) -> Error {
    match e {
        Error::Unavailable(m) if m.contains("denied the request") => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            Error::Unavailable(format!(
                "{m}; to reach {what}, add {scheme}://{host} to spec.allowedOutboundHosts of the Provider \"gcpsm\""
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
