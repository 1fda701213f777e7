//! 1Password Connect items (ESO's `spec.provider.onepassword`) as an Airlock component.
//!
//! Talks to a self-hosted 1Password Connect server's REST API v1 with the store's Connect
//! token as a Bearer token. A key is an item title or a 26-character item ID, searched in the
//! store's `vaults` by priority (lowest number first, first hit wins, as ESO). `property`
//! names a field label (default `password`) or a file (`file/<name>`, or any name for a
//! Document item; `field/<label>` forces a field). Unlike ESO (its issue #6569) a missing item,
//! field or file is absence, not an error, so `deletionPolicy: Delete/Merge` work.
//! Push creates a `SERVER` item with one concealed field or updates the field in place;
//! delete removes the field and the item with its last field.

pub mod config;

use airlock_provider_sdk::credentials;
use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, MetadataPolicy, Provider, ProviderMetadata, PushRef,
    PushRequest, RemoteRef, SecretEntry, StoreInfo, Validation, Value, credential_error,
};
use serde_json::{Value as Json, json};

use crate::config::Config;

/// The field a key without `property` reads, and push writes, as ESO.
pub const DEFAULT_FIELD: &str = "password";

/// The 1Password Connect provider.
#[derive(Debug)]
pub struct OnePassword;

/// The JSON Schema of `spec.provider.onepassword`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for OnePassword {
    type Client = OnePasswordClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "onepassword".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "items of a 1Password Connect server".into(),
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
pub struct OnePasswordClient {
    config: Config,
}

/// An item found in one of the store's vaults: its full JSON (fields, files).
struct Item {
    vault_id: String,
    body: Json,
}

impl Item {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap_or_default()
    }

    fn title(&self) -> &str {
        self.body["title"].as_str().unwrap_or_default()
    }

    fn fields(&self) -> Vec<&Json> {
        list(&self.body["fields"])
    }

    fn files(&self) -> Vec<&Json> {
        list(&self.body["files"])
    }

    /// The value of the one field labelled `label`; `None` when there is none.
    fn field(&self, label: &str) -> Result<Option<Vec<u8>>, Error> {
        let matching: Vec<&Json> = self
            .fields()
            .into_iter()
            .filter(|f| f["label"].as_str() == Some(label))
            .collect();
        match matching.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(text(&one["value"]).into_bytes())),
            many => Err(Error::invalid_request(format!(
                "1password item {:?} has {} fields labelled {label:?}; expected one",
                self.title(),
                many.len()
            ))),
        }
    }

    /// Every field by label, refusing duplicate labels as ESO does.
    fn all_fields(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for field in self.fields() {
            let label = text(&field["label"]);
            if out.iter().any(|(l, _)| *l == label) {
                return Err(Error::invalid_request(format!(
                    "1password item {:?} has several fields labelled {label:?}; expected one",
                    self.title()
                )));
            }
            out.push((label, text(&field["value"]).into_bytes()));
        }
        Ok(out)
    }
}

fn list(value: &Json) -> Vec<&Json> {
    value
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn text(value: &Json) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Whether `name` has the shape of a 1Password item ID (26 lowercase letters and digits).
pub fn is_item_id(name: &str) -> bool {
    name.len() == 26
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// What a `property` names: a file or a field, as ESO's prefixes and Document default say.
fn target<'a>(category: &str, property: &'a str) -> (bool, &'a str) {
    if let Some(label) = property.strip_prefix("field/") {
        (false, label)
    } else if let Some(name) = property.strip_prefix("file/") {
        (true, name)
    } else {
        (category == "DOCUMENT", property)
    }
}

impl Client for OnePasswordClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(OnePasswordClient {
            config: Config::parse(config)?,
        })
    }

    fn validate(&self) -> Result<Validation, Error> {
        for vault in self.config.vaults_in_order() {
            self.vault_id(vault)?;
        }
        Ok(Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        check_read(reference)?;
        let Some(item) = self.find_item(&reference.key)? else {
            return Ok(None);
        };
        let property = reference.property.as_deref().unwrap_or("");
        let category = item.body["category"].as_str().unwrap_or_default();
        match target(category, property) {
            (true, name) => {
                let file = item
                    .files()
                    .into_iter()
                    .find(|f| name.is_empty() || f["name"].as_str() == Some(name));
                match file {
                    Some(file) => self.file_content(&item, file).map(Some),
                    None => Ok(None),
                }
            }
            (false, label) => item.field(if label.is_empty() {
                DEFAULT_FIELD
            } else {
                label
            }),
        }
    }

    fn get_secret_map(&self, reference: &RemoteRef) -> Result<Option<Vec<SecretEntry>>, Error> {
        check_read(reference)?;
        let Some(item) = self.find_item(&reference.key)? else {
            return Ok(None);
        };
        let property = reference.property.as_deref().unwrap_or("");
        let category = item.body["category"].as_str().unwrap_or_default();
        let entries = match target(category, property) {
            (true, name) => {
                let mut out = Vec::new();
                for file in item.files() {
                    if name.is_empty() || file["name"].as_str() == Some(name) {
                        out.push(SecretEntry {
                            key: text(&file["name"]),
                            value: self.file_content(&item, file)?,
                        });
                    }
                }
                out
            }
            (false, label) => item
                .all_fields()?
                .into_iter()
                .filter(|(l, _)| label.is_empty() || l == label)
                .map(|(key, value)| SecretEntry { key, value })
                .collect(),
        };
        Ok(Some(entries))
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        let matcher = NameMatcher::new(criteria)?;
        let mut out: Vec<SecretEntry> = Vec::new();
        let add = |out: &mut Vec<SecretEntry>, key: String, value: Vec<u8>| {
            // Vaults and items are visited in priority order: the first value of a name wins.
            if !out.iter().any(|e| e.key == key) {
                out.push(SecretEntry { key, value });
            }
        };
        for vault in self.config.vaults_in_order() {
            let vault_id = self.vault_id(vault)?;
            let path = format!("/v1/vaults/{}/items", http::encode(&vault_id));
            for summary in list(&self.get_json(&path, "the item list")?) {
                if criteria
                    .path
                    .as_deref()
                    .is_some_and(|p| summary["title"].as_str() != Some(p))
                {
                    continue;
                }
                // 1Password tags are bare words: a find tag matches by its key, as in ESO.
                let tags: Vec<&str> = list(&summary["tags"])
                    .into_iter()
                    .filter_map(Json::as_str)
                    .collect();
                if !criteria
                    .tags
                    .iter()
                    .all(|(k, _)| tags.contains(&k.as_str()))
                {
                    continue;
                }
                let Some(item) = self.item_by_id(&vault_id, &text(&summary["id"]))? else {
                    continue;
                };
                for file in item.files() {
                    let name = text(&file["name"]);
                    if matcher.matches(&name) && !out.iter().any(|e| e.key == name) {
                        let content = self.file_content(&item, file)?;
                        add(&mut out, name, content);
                    }
                }
                for (label, value) in item.all_fields()? {
                    if matcher.matches(&label) {
                        add(&mut out, label, value);
                    }
                }
            }
        }
        Ok(out)
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        let metadata: Json = match request.metadata.as_deref() {
            Some(m) => serde_json::from_str(m).map_err(|e| {
                Error::invalid_request(format!("the PushSecret metadata is not JSON ({e})"))
            })?,
            None => Json::Null,
        };
        let spec = metadata.get("spec").unwrap_or(&metadata);
        let tags: Option<Vec<String>> = spec["tags"].as_array().map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        });
        let label = push_label(&request.remote);
        let value = String::from_utf8(request.value.clone()).map_err(|_| {
            Error::invalid_request("1password fields hold text; the pushed value is not UTF-8")
        })?;
        let Some(mut item) = self.find_item(&request.remote.remote_key)? else {
            let vault = match spec["vault"].as_str() {
                Some(v) if !self.config.vaults.contains_key(v) => {
                    return Err(Error::invalid_request(format!(
                        "metadata vault {v:?} is not one of the store's vaults"
                    )));
                }
                Some(v) => v,
                None => self.config.vaults_in_order()[0],
            };
            let vault_id = self.vault_id(vault)?;
            let body = json!({
                "title": request.remote.remote_key,
                "category": "SERVER",
                "vault": {"id": vault_id},
                "tags": tags.unwrap_or_default(),
                "fields": [new_field(label, &value)],
            });
            let path = format!("/v1/vaults/{}/items", http::encode(&vault_id));
            self.send_json("POST", &path, &body, "the item creation")?;
            return Ok(());
        };
        if let Some(tags) = tags {
            item.body["tags"] = json!(tags);
        }
        let mut fields: Vec<Json> = item.fields().into_iter().cloned().collect();
        let matching = fields
            .iter()
            .filter(|f| f["label"].as_str() == Some(label))
            .count();
        match matching {
            0 => fields.push(new_field(label, &value)),
            1 => {
                let field = fields
                    .iter_mut()
                    .find(|f| f["label"].as_str() == Some(label))
                    .expect("counted one");
                if field["value"].as_str() == Some(value.as_str()) && spec["tags"].is_null() {
                    return Ok(());
                }
                field["value"] = json!(value);
            }
            n => {
                return Err(Error::invalid_request(format!(
                    "1password item {:?} has {n} fields labelled {label:?}; expected one",
                    item.title()
                )));
            }
        }
        item.body["fields"] = json!(fields);
        self.put_item(&item)
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        let Some(mut item) = self.find_item(&reference.remote_key)? else {
            return Ok(());
        };
        let label = push_label(reference);
        let fields: Vec<Json> = item.fields().into_iter().cloned().collect();
        let kept: Vec<Json> = fields
            .iter()
            .filter(|f| f["label"].as_str() != Some(label))
            .cloned()
            .collect();
        if fields.len() - kept.len() > 1 {
            return Err(Error::invalid_request(format!(
                "1password item {:?} has several fields labelled {label:?}; expected one",
                item.title()
            )));
        }
        if kept.len() == fields.len() {
            return Ok(());
        }
        // An unnamed default section is no content of its own.
        let sections = list(&item.body["sections"])
            .into_iter()
            .filter(|s| !text(&s["id"]).is_empty() || !text(&s["label"]).is_empty())
            .count();
        if kept.is_empty() && item.files().is_empty() && sections == 0 {
            let path = format!(
                "/v1/vaults/{}/items/{}",
                http::encode(&item.vault_id),
                http::encode(item.id())
            );
            let response = self.call("DELETE", &path, None)?;
            if !response.is_success() && response.status != 404 {
                return Err(error("the item deletion", &response));
            }
            return Ok(());
        }
        item.body["fields"] = json!(kept);
        self.put_item(&item)
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let Some(item) = self.find_item(&reference.remote_key)? else {
            return Ok(false);
        };
        Ok(match reference.property.as_deref() {
            None | Some("") => true,
            Some(label) => item
                .fields()
                .iter()
                .any(|f| f["label"].as_str() == Some(label)),
        })
    }
}

fn check_read(reference: &RemoteRef) -> Result<(), Error> {
    if reference.key.is_empty() {
        return Err(Error::invalid_request("remoteRef.key is empty"));
    }
    if reference.version.is_some() {
        return Err(Error::unsupported(
            "1password connect items have no versions to select (remoteRef.version)",
        ));
    }
    if reference.metadata_policy == MetadataPolicy::Fetch {
        return Err(Error::unsupported(
            "the 1password provider does not fetch metadata (remoteRef.metadataPolicy: Fetch)",
        ));
    }
    Ok(())
}

fn push_label(reference: &PushRef) -> &str {
    match reference.property.as_deref() {
        None | Some("") => DEFAULT_FIELD,
        Some(label) => label,
    }
}

fn new_field(label: &str, value: &str) -> Json {
    json!({"label": label, "value": value, "type": "CONCEALED"})
}

/// A SCIM filter `attribute eq "value"`, with the value's quotes and backslashes escaped.
fn filter(attribute: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    http::encode(&format!("{attribute} eq \"{escaped}\""))
}

impl OnePasswordClient {
    /// The ID of the vault the store names (by name, or by ID when it has the shape of one).
    fn vault_id(&self, vault: &str) -> Result<String, Error> {
        if is_item_id(vault) {
            let path = format!("/v1/vaults/{}", http::encode(vault));
            let response = self.call("GET", &path, None)?;
            if response.is_success() {
                return Ok(vault.to_string());
            }
            if response.status != 404 {
                return Err(error("the vault lookup", &response));
            }
        }
        let path = format!("/v1/vaults?filter={}", filter("name", vault));
        let found = self.get_json(&path, "the vault lookup")?;
        match list(&found).as_slice() {
            [one] => Ok(text(&one["id"])),
            [] => Err(Error::invalid_config(format!(
                "1password connect has no vault {vault:?} that this token may read (spec.provider.onepassword.vaults)"
            ))),
            many => Err(Error::invalid_config(format!(
                "1password connect has {} vaults named {vault:?}; name it by its ID",
                many.len()
            ))),
        }
    }

    /// The item `name` (title or ID) in the first vault that has it, by priority.
    fn find_item(&self, name: &str) -> Result<Option<Item>, Error> {
        for vault in self.config.vaults_in_order() {
            let vault_id = self.vault_id(vault)?;
            if is_item_id(name)
                && let Some(item) = self.item_by_id(&vault_id, name)?
            {
                return Ok(Some(item));
            }
            let path = format!(
                "/v1/vaults/{}/items?filter={}",
                http::encode(&vault_id),
                filter("title", name)
            );
            let found = self.get_json(&path, "the item search")?;
            match list(&found).as_slice() {
                [] => continue,
                [one] => return self.item_by_id(&vault_id, &text(&one["id"])),
                many => {
                    return Err(Error::invalid_request(format!(
                        "1password vault {vault:?} has {} items titled {name:?}; expected one (use the item ID)",
                        many.len()
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The full item, or `None` when the vault has no such item.
    fn item_by_id(&self, vault_id: &str, id: &str) -> Result<Option<Item>, Error> {
        let path = format!(
            "/v1/vaults/{}/items/{}",
            http::encode(vault_id),
            http::encode(id)
        );
        let response = self.call("GET", &path, None)?;
        if response.status == 404 {
            return Ok(None);
        }
        Ok(Some(Item {
            vault_id: vault_id.to_string(),
            body: parse(&response, "the item read")?,
        }))
    }

    fn file_content(&self, item: &Item, file: &Json) -> Result<Vec<u8>, Error> {
        let path = format!(
            "/v1/vaults/{}/items/{}/files/{}/content",
            http::encode(&item.vault_id),
            http::encode(item.id()),
            http::encode(file["id"].as_str().unwrap_or_default())
        );
        let response = self.call("GET", &path, None)?;
        if !response.is_success() {
            return Err(error("the file download", &response));
        }
        Ok(response.body)
    }

    fn put_item(&self, item: &Item) -> Result<(), Error> {
        let path = format!(
            "/v1/vaults/{}/items/{}",
            http::encode(&item.vault_id),
            http::encode(item.id())
        );
        self.send_json("PUT", &path, &item.body, "the item update")
            .map(|_| ())
    }

    fn get_json(&self, path: &str, what: &str) -> Result<Json, Error> {
        let response = self.call("GET", path, None)?;
        parse(&response, what)
    }

    fn send_json(&self, method: &str, path: &str, body: &Json, what: &str) -> Result<Json, Error> {
        let response = self.call(method, path, Some(body.to_string()))?;
        parse(&response, what)
    }

    /// Sends one authenticated request.
    fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<Response, Error> {
        let token = self.token()?;
        let mut request = Request::new(method, format!("{}{path}", self.config.host()))
            .header("Accept", "application/json")
            .header("Authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        http::send(&request).map_err(|e| self.explain_refusal(e))
    }

    /// The Connect token from its Secret.
    fn token(&self) -> Result<String, Error> {
        let selector = &self.config.auth.secret_ref.connect_token_secret_ref;
        let bytes = credentials::secret_key(&credentials::KeySelector {
            name: selector.name.clone(),
            key: selector.key.clone(),
            namespace: selector.namespace.clone(),
        })
        .map_err(|e| credential_error("auth.secretRef.connectTokenSecretRef", e))?;
        let token = String::from_utf8(bytes).map_err(|_| {
            Error::invalid_config("auth.secretRef.connectTokenSecretRef is not UTF-8")
        })?;
        Ok(token.trim().to_string())
    }

    /// Adds to a host refusal which grant the admin must add.
    fn explain_refusal(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) if m.contains("denied the request") => {
                Error::Unavailable(format!(
                    "{m}; to use this Connect server, add {} to spec.allowedOutboundHosts of the Provider \"onepassword\"",
                    self.config.host()
                ))
            }
            other => other,
        }
    }
}

/// The JSON of a successful answer to `what`.
fn parse(response: &Response, what: &str) -> Result<Json, Error> {
    if !response.is_success() {
        return Err(error(what, response));
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        Error::other(format!(
            "1password connect's answer to {what} is not JSON ({e})"
        ))
    })
}

/// The contract error for a non-2xx answer to `what`, with Connect's `message`.
fn error(what: &str, response: &Response) -> Error {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    let message = parsed
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Json::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
                .trim()
                .to_string()
        });
    let text = response.describe("1password connect", what, &message);
    match response.status {
        404 => Error::invalid_config(text),
        _ => response.status_error(text),
    }
}

airlock_provider_sdk::export_provider!(OnePassword);

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
    fn connect_errors_keep_their_message_and_map_by_status() {
        let denied = error(
            "the vault lookup",
            &response(401, r#"{"status":401,"message":"Invalid token signature"}"#),
        );
        assert!(
            matches!(&denied, Error::AccessDenied(m) if m == "1password connect answered 401 to the vault lookup: Invalid token signature"),
            "{denied:?}"
        );
        assert!(
            matches!(error("x", &response(503, "down")), Error::Unavailable(m) if m.ends_with("down"))
        );
    }

    #[test]
    fn item_ids_are_26_lowercase_letters_and_digits() {
        assert!(is_item_id("abcdefghijklmnopqrstuvwxy2"));
        assert!(!is_item_id("Abcdefghijklmnopqrstuvwxy2"));
        assert!(!is_item_id("my-database"));
    }

    #[test]
    fn a_property_names_a_field_or_a_file_as_in_eso() {
        assert_eq!(target("LOGIN", "user"), (false, "user"));
        assert_eq!(target("LOGIN", "file/cert.pem"), (true, "cert.pem"));
        assert_eq!(target("DOCUMENT", "cert.pem"), (true, "cert.pem"));
        assert_eq!(target("DOCUMENT", "field/notes"), (false, "notes"));
    }

    #[test]
    fn a_filter_value_is_quoted_and_escaped() {
        assert_eq!(
            filter("title", r#"a "b""#),
            http::encode(r#"title eq "a \"b\"""#)
        );
    }
}
