//! The KV secrets engine, v1 and v2: read, search, write and delete as ESO's Vault
//! provider does.

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::Response;
use airlock_provider_sdk::{
    Error, Find, MetadataPolicy, PushRef, PushRequest, RemoteRef, SecretEntry, Value, cache, json,
};
use serde_json::{Map, Value as Json, json};

use crate::api::{self, Api, Call};
use crate::auth::Authenticator;
use crate::config::{Config, KvVersion, Location};

/// The `custom_metadata` mark on what this provider writes (ESO's value, so secrets pushed
/// by ESO stay manageable after a migration and the other way round).
pub const MANAGED_BY: (&str, &str) = ("managed-by", "external-secrets");
/// How long a mount check is remembered.
const MOUNT_TTL_MS: u64 = 5 * 60 * 1000;
/// Most secrets one `find` visits.
const MAX_LISTED: usize = 10_000;

/// One store's view of its KV engine.
#[derive(Debug)]
pub struct Kv<'a> {
    api: &'a Api,
    config: &'a Config,
    auth: Authenticator<'a>,
}

/// A secret read from the engine.
#[derive(Debug)]
struct Secret {
    /// The secret's key/value data.
    data: Map<String, Json>,
    /// `custom_metadata` (KV v2) or the embedded `custom_metadata` field (KV v1).
    custom_metadata: Map<String, Json>,
    /// KV v2: the current version, for check-and-set.
    version: Option<u64>,
}

impl Secret {
    fn managed(&self) -> bool {
        self.custom_metadata
            .get(MANAGED_BY.0)
            .and_then(Json::as_str)
            == Some(MANAGED_BY.1)
    }
}

impl<'a> Kv<'a> {
    /// For one store.
    pub fn new(api: &'a Api, config: &'a Config) -> Self {
        Kv {
            api,
            config,
            auth: Authenticator::new(api, config),
        }
    }

    /// Sends `call` with the store's token. When the server refuses a cached token that it
    /// no longer knows (revoked, expired early), logs in again and retries once.
    fn send(&self, call: &Call<'_>) -> Result<Response, Error> {
        let token = self.auth.token()?;
        let response = self.api.send(call, Some(&token.value))?;
        if response.status == 403 && token.cached && !self.auth.still_valid(&token.value)? {
            self.auth.forget();
            let fresh = self.auth.login()?;
            return self.api.send(call, Some(&fresh.value));
        }
        Ok(response)
    }

    /// Checks the credentials and, when the store names a mount, that it is a KV engine of
    /// the configured version.
    pub fn validate(&self) -> Result<(), Error> {
        let token = self.auth.token()?;
        if !self.auth.still_valid(&token.value)? {
            self.auth.forget();
            return Err(Error::access_denied(format!(
                "vault at {} does not accept the store's token (auth/token/lookup-self was denied)",
                self.api.server()
            )));
        }
        if let Some(mount) = &self.config.path {
            self.check_mount(mount, true)?;
        }
        Ok(())
    }

    /// Tells a missing secret from a missing or mismatched mount: `Ok` when the mount is a
    /// KV engine of the configured version (or cannot be inspected).
    fn check_mount(&self, mount: &str, fresh: bool) -> Result<(), Error> {
        let key = format!("mount-ok/{mount}");
        if !fresh && cache::get(&key).is_some() {
            return Ok(());
        }
        let path = format!("sys/internal/ui/mounts/{mount}");
        let response = self.send(&Call::new("GET", &path))?;
        let expected = self.config.version;
        match response.status {
            200..=299 => {
                let body = api::body(&path, &response)?;
                let data = &body["data"];
                let kind = data["type"].as_str().unwrap_or_default();
                let real_mount = data["path"].as_str().unwrap_or_default().trim_matches('/');
                if !real_mount.is_empty() && real_mount != mount {
                    return Err(Error::invalid_config(format!(
                        "no secrets engine is mounted at {mount:?} on {} (the nearest mount is {real_mount:?})",
                        self.api.server()
                    )));
                }
                if kind != "kv" && kind != "generic" {
                    return Err(Error::invalid_config(format!(
                        "the mount {mount:?} is a {kind:?} engine, not KV"
                    )));
                }
                let version = match data["options"]["version"].as_str() {
                    Some("2") => KvVersion::V2,
                    _ => KvVersion::V1,
                };
                if version != expected {
                    return Err(Error::invalid_config(format!(
                        "KV version mismatch: the store says version {} but the mount {mount:?} is KV {}; set spec.provider.vault.version: {}",
                        expected.as_str(),
                        version.as_str(),
                        version.as_str()
                    )));
                }
                cache::set(&key, b"1", MOUNT_TTL_MS);
                Ok(())
            }
            400 | 403 | 404 if api::messages(&response).contains("preflight capability check") => {
                Err(Error::invalid_config(format!(
                    "no secrets engine is mounted at {mount:?} on {} (or the token may not use it): {}",
                    self.api.server(),
                    api::messages(&response)
                )))
            }
            // Policies may forbid the mounts endpoint; then absence stays absence.
            _ => Ok(()),
        }
    }

    /// Explains a 404 on a data path: an unknown mount or a version mismatch is a store
    /// error; anything else means the secret is absent.
    fn explain_absence(&self, location: &Location, response: &Response) -> Result<(), Error> {
        let message = api::messages(response);
        if message.contains("no handler for route") {
            return Err(Error::invalid_config(format!(
                "no secrets engine is mounted at {:?} on {}: {message}",
                location.mount,
                self.api.server()
            )));
        }
        if message.contains("Invalid path for a versioned K/V") {
            return Err(Error::invalid_config(format!(
                "KV version mismatch: the store says version v1 but the mount {:?} is KV v2; set spec.provider.vault.version: v2",
                location.mount
            )));
        }
        self.check_mount(&location.mount, false)
    }

    /// Reads a secret; `None` when it (or that version) does not exist or is deleted.
    fn read(&self, location: &Location, version: Option<&str>) -> Result<Option<Secret>, Error> {
        let mut path = location.data_path();
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            if location.version == KvVersion::V1 {
                return Err(Error::invalid_request(
                    "remoteRef.version is only supported on KV v2 mounts",
                ));
            }
            if v.parse::<u64>().is_err() {
                return Err(Error::invalid_request(format!(
                    "remoteRef.version {v:?} is not a KV v2 version number"
                )));
            }
            path = format!("{path}?version={v}");
        }
        let what = format!("GET {path}");
        let response = self.send(&Call::new("GET", &path))?;
        if response.status == 404 {
            self.explain_absence(location, &response)?;
            return Ok(None);
        }
        if !response.is_success() {
            return Err(api::error(&what, &response));
        }
        let body = api::body(&what, &response)?;
        let data = &body["data"];
        Ok(match location.version {
            KvVersion::V1 => {
                let mut map = data.as_object().cloned().unwrap_or_default();
                let custom = match map.get("custom_metadata") {
                    Some(Json::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                if !custom.is_empty() {
                    map.remove("custom_metadata");
                }
                Some(Secret {
                    data: map,
                    custom_metadata: custom,
                    version: None,
                })
            }
            KvVersion::V2 => match &data["data"] {
                Json::Object(map) => Some(Secret {
                    data: map.clone(),
                    custom_metadata: data["metadata"]["custom_metadata"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    version: data["metadata"]["version"].as_u64(),
                }),
                _ => None,
            },
        })
    }

    /// KV v2 metadata of a secret; `None` when it does not exist.
    fn metadata(&self, location: &Location) -> Result<Option<Json>, Error> {
        if location.version == KvVersion::V1 {
            return Err(Error::unsupported(
                "metadataPolicy: Fetch and find by tags need a KV v2 mount",
            ));
        }
        let path = location.metadata_path();
        let response = self.send(&Call::new("GET", &path))?;
        if response.status == 404 {
            self.explain_absence(location, &response)?;
            return Ok(None);
        }
        if !response.is_success() {
            return Err(api::error(&format!("GET {path}"), &response));
        }
        Ok(Some(api::body(&path, &response)?["data"].take()))
    }

    /// ESO's `GetSecret`.
    pub fn get(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let location = self.config.locate(&reference.key)?;
        let whole = match reference.metadata_policy {
            MetadataPolicy::Fetch => {
                let Some(metadata) = self.metadata(&location)? else {
                    return Ok(None);
                };
                let custom = metadata["custom_metadata"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                Json::Object(custom)
            }
            MetadataPolicy::None => {
                let Some(secret) = self.read(&location, reference.version.as_deref())? else {
                    return Ok(None);
                };
                Json::Object(secret.data)
            }
        };
        let bytes = whole.to_string().into_bytes();
        match reference.property.as_deref().filter(|p| !p.is_empty()) {
            Some(property) => json::select(&bytes, property),
            None => Ok(Some(bytes)),
        }
    }

    /// ESO's `GetAllSecrets`: every secret below `path` whose name matches the regexp and
    /// whose KV v2 `custom_metadata` carries the tags, keyed by its path in the mount.
    pub fn find(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        let names_wanted = NameMatcher::new(criteria)?;
        let find_path = criteria.path.as_deref().unwrap_or("").trim_matches('/');
        let (mount, base) = match &self.config.path {
            Some(mount) => {
                let base = find_path
                    .strip_prefix(mount.as_str())
                    .map(|r| r.trim_start_matches('/'))
                    .unwrap_or(find_path);
                (mount.clone(), base.to_string())
            }
            None => match find_path.split_once('/') {
                Some((m, rest)) => (m.to_string(), rest.to_string()),
                None if !find_path.is_empty() => (find_path.to_string(), String::new()),
                None => {
                    return Err(Error::invalid_request(
                        "find needs spec.provider.vault.path or a find.path that starts with the mount",
                    ));
                }
            },
        };
        if !criteria.tags.is_empty() && self.config.version == KvVersion::V1 {
            return Err(Error::unsupported("find by tags needs a KV v2 mount"));
        }
        let mut names = Vec::new();
        self.list(&mount, &base, &mut names)?;
        let mut out = Vec::new();
        for name in names {
            if !names_wanted.matches(&name) {
                continue;
            }
            let location = Location {
                mount: mount.clone(),
                path: name.clone(),
                version: self.config.version,
            };
            if !criteria.tags.is_empty() {
                let Some(metadata) = self.metadata(&location)? else {
                    continue;
                };
                let custom = &metadata["custom_metadata"];
                let all = criteria
                    .tags
                    .iter()
                    .all(|(k, v)| custom[k.as_str()].as_str() == Some(v.as_str()));
                if !all {
                    continue;
                }
            }
            if let Some(secret) = self.read(&location, None)? {
                out.push(SecretEntry {
                    key: name,
                    value: Json::Object(secret.data).to_string().into_bytes(),
                });
            }
        }
        Ok(out)
    }

    /// Recursive LIST below `dir` (relative to the mount), appending secret paths.
    fn list(&self, mount: &str, dir: &str, out: &mut Vec<String>) -> Result<(), Error> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{}/", dir.trim_end_matches('/'))
        };
        let path = match self.config.version {
            KvVersion::V1 => format!("{mount}/{prefix}"),
            KvVersion::V2 => format!("{mount}/metadata/{prefix}"),
        };
        let what = format!("LIST {path}");
        let response = self.send(&Call::new("LIST", &path))?;
        if response.status == 404 {
            let location = Location {
                mount: mount.to_string(),
                path: "x".into(),
                version: self.config.version,
            };
            self.explain_absence(&location, &response)?;
            return Ok(());
        }
        if !response.is_success() {
            return Err(api::error(&what, &response));
        }
        let body = api::body(&what, &response)?;
        let keys: Vec<String> = body["data"]["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for key in keys {
            if out.len() >= MAX_LISTED {
                return Err(Error::other(format!(
                    "find visited more than {MAX_LISTED} secrets below {mount}/{dir}; narrow find.path"
                )));
            }
            let full = format!("{prefix}{key}");
            if let Some(sub) = full.strip_suffix('/') {
                self.list(mount, sub, out)?;
            } else {
                out.push(full);
            }
        }
        Ok(())
    }

    /// ESO's `PushSecret`.
    pub fn push(&self, request: &PushRequest) -> Result<(), Error> {
        let location = self.config.locate(&request.remote.remote_key)?;
        let existing = self.read(&location, None)?;
        if let Some(secret) = &existing
            && !secret.managed()
        {
            return Err(Error::access_denied(format!(
                "{} exists and is not managed by external-secrets (custom_metadata managed-by); refusing to overwrite it",
                location.data_path()
            )));
        }
        let mut data = match request.remote.property.as_deref().filter(|p| !p.is_empty()) {
            Some(property) => {
                let current = existing
                    .as_ref()
                    .map(|s| Json::Object(s.data.clone()).to_string().into_bytes());
                let merged = json::set_property(current.as_deref(), property, &request.value)?;
                match serde_json::from_slice(&merged) {
                    Ok(Json::Object(map)) => map,
                    _ => return Err(Error::other("merging the property gave no JSON object")),
                }
            }
            None => match serde_json::from_slice::<Json>(&request.value) {
                Ok(Json::Object(map)) => map,
                _ => {
                    return Err(Error::invalid_request(format!(
                        "pushing a whole secret to {} needs a JSON object value; set remoteRef.property to write one field",
                        location.data_path()
                    )));
                }
            },
        };
        if existing.as_ref().is_some_and(|s| s.data == data) {
            return Ok(());
        }
        let managed = json!({MANAGED_BY.0: MANAGED_BY.1});
        match location.version {
            KvVersion::V1 => {
                data.insert("custom_metadata".into(), managed);
                self.write(&location.data_path(), json!(data))
            }
            KvVersion::V2 => {
                let mut body = json!({"data": data});
                let cas_required = self
                    .config
                    .check_and_set
                    .as_ref()
                    .is_some_and(|c| c.required);
                if cas_required {
                    let version = existing.as_ref().and_then(|s| s.version).unwrap_or(0);
                    body["options"] = json!({"cas": version});
                }
                self.write(&location.data_path(), body)?;
                if existing.is_none() {
                    self.write(
                        &location.metadata_path(),
                        json!({"custom_metadata": managed}),
                    )?;
                }
                Ok(())
            }
        }
    }

    fn write(&self, path: &str, body: Json) -> Result<(), Error> {
        let response = self.send(&Call::new("POST", path).json(body))?;
        if response.is_success() {
            Ok(())
        } else {
            let error = api::error(&format!("POST {path}"), &response);
            Err(match error {
                Error::InvalidRequest(m) if m.contains("check-and-set") => Error::unavailable(m),
                other => other,
            })
        }
    }

    fn remove(&self, path: &str) -> Result<(), Error> {
        let response = self.send(&Call::new("DELETE", path))?;
        if response.is_success() || response.status == 404 {
            Ok(())
        } else {
            Err(api::error(&format!("DELETE {path}"), &response))
        }
    }

    /// ESO's `DeleteSecret`: one property when others remain, else the whole secret.
    pub fn delete(&self, reference: &PushRef) -> Result<(), Error> {
        let location = self.config.locate(&reference.remote_key)?;
        let Some(secret) = self.read(&location, None)? else {
            return Ok(());
        };
        if !secret.managed() {
            return Err(Error::access_denied(format!(
                "{} is not managed by external-secrets; refusing to delete it",
                location.data_path()
            )));
        }
        if let Some(property) = reference.property.as_deref().filter(|p| !p.is_empty()) {
            let mut data = secret.data.clone();
            if data.remove(property).is_none() {
                return Ok(());
            }
            if !data.is_empty() {
                return match location.version {
                    KvVersion::V1 => {
                        data.insert(
                            "custom_metadata".into(),
                            json!({MANAGED_BY.0: MANAGED_BY.1}),
                        );
                        self.write(&location.data_path(), json!(data))
                    }
                    KvVersion::V2 => {
                        let mut body = json!({"data": data});
                        if self
                            .config
                            .check_and_set
                            .as_ref()
                            .is_some_and(|c| c.required)
                        {
                            body["options"] = json!({"cas": secret.version.unwrap_or(0)});
                        }
                        self.write(&location.data_path(), body)
                    }
                };
            }
        }
        match location.version {
            KvVersion::V1 => self.remove(&location.data_path()),
            KvVersion::V2 => self.remove(&location.metadata_path()),
        }
    }

    /// ESO's `SecretExists`.
    pub fn exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let location = self.config.locate(&reference.remote_key)?;
        let Some(secret) = self.read(&location, None)? else {
            return Ok(false);
        };
        Ok(
            match reference.property.as_deref().filter(|p| !p.is_empty()) {
                Some(property) => {
                    let bytes = Json::Object(secret.data).to_string().into_bytes();
                    json::select(&bytes, property)?.is_some()
                }
                None => true,
            },
        )
    }
}
