//! An in-process fake of a 1Password Connect server, for tests of the onepassword provider.
//!
//! No Connect server runs without a 1Password account, so this follows the Connect server
//! REST API v1 as documented at <https://developer.1password.com/docs/connect/api-reference>
//! (and its OpenAPI file `1password-connect-api.yaml`, version 1.5):
//!
//! - `Authorization: Bearer <token>` on every `/v1` path; a missing header answers 401
//!   `{"status":401,"message":"Invalid bearer token"}`, an unknown token 401
//!   `{"status":401,"message":"Invalid token signature"}`; a vault the token may not read is
//!   invisible in lists and 403 when named;
//! - `GET /v1/vaults[?filter=name eq "x"]`, `GET /v1/vaults/{vaultId}`;
//! - `GET /v1/vaults/{vaultId}/items[?filter=title eq "x"]` (summaries: no fields, no files),
//!   `GET /v1/vaults/{vaultId}/items/{itemId}` (fields and files with `content_path`),
//!   `POST .../items` (create: IDs assigned), `PUT .../items/{itemId}` (replace),
//!   `PATCH .../items/{itemId}` (RFC 6902 `add`/`replace`/`remove` on top-level attributes and
//!   `/fields/{fieldId}[/value]`), `DELETE .../items/{itemId}` (204);
//! - `GET .../items/{itemId}/files`, `.../files/{fileId}`, `.../files/{fileId}/content`;
//! - `GET /health` and `GET /heartbeat` without a token;
//! - errors are `{"status":<code>,"message":"..."}`: 400 for an unparsable filter or body,
//!   404 "Vault not found" / "Item not found" / "File not found".
//!
//! Every request is recorded (method, path, status) so tests can count what crossed the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::doppler::{Incoming, read_request};

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct Vault {
    id: String,
    name: String,
    /// Full items, fields and files included (`files[].content` held aside).
    items: Vec<Value>,
    /// item ID → file ID → content.
    contents: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

#[derive(Debug, Default)]
struct State {
    vaults: Vec<Vault>,
    /// token → the vault IDs it may read, `None` for every vault.
    tokens: BTreeMap<String, Option<BTreeSet<String>>>,
    requests: Vec<Recorded>,
    counter: u64,
}

impl State {
    /// A fresh 26-character lowercase ID, as Connect's UUIDs look.
    fn next_id(&mut self, prefix: char) -> String {
        self.counter += 1;
        format!("{prefix}{:0>25}", format!("{:x}", self.counter + 0xa0000))
    }
}

/// A running fake Connect server on `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct FakeOnePassword {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeOnePassword {
    /// Starts the fake on a free port (on the current Tokio runtime).
    pub async fn start() -> FakeOnePassword {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_connection(sock, shared.clone()));
            }
        });
        FakeOnePassword { port, state }
    }

    /// `http://127.0.0.1:<port>`, the base URL to point a client at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a vault and answers its ID.
    pub fn add_vault(&self, name: &str) -> String {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id('v');
        state.vaults.push(Vault {
            id: id.clone(),
            name: name.into(),
            items: Vec::new(),
            contents: BTreeMap::new(),
        });
        id
    }

    /// Adds an item of `category` with `fields` (label, value) and `tags` to the vault named
    /// `vault`, and answers its ID.
    pub fn add_item(
        &self,
        vault: &str,
        title: &str,
        category: &str,
        fields: &[(&str, &str)],
        tags: &[&str],
    ) -> String {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id('i');
        let mut field_list = Vec::new();
        for (label, value) in fields {
            let field_id = state.next_id('f');
            field_list
                .push(json!({"id": field_id, "type": "CONCEALED", "label": label, "value": value}));
        }
        let vault = vault_named(&mut state, vault);
        vault.items.push(json!({
            "id": id, "title": title, "category": category, "tags": tags,
            "vault": {"id": vault.id}, "version": 1, "fields": field_list, "files": [],
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
        }));
        id
    }

    /// Attaches a file `name` with `content` to the item `item_id`; answers the file ID.
    pub fn add_file(&self, vault: &str, item_id: &str, name: &str, content: &[u8]) -> String {
        let mut state = self.state.lock().unwrap();
        let file_id = state.next_id('d');
        let vault = vault_named(&mut state, vault);
        let vault_id = vault.id.clone();
        let item = vault
            .items
            .iter_mut()
            .find(|i| i["id"] == item_id)
            .expect("an item of that vault");
        item["files"].as_array_mut().expect("files").push(json!({
            "id": file_id, "name": name, "size": content.len(),
            "content_path": format!("/v1/vaults/{vault_id}/items/{item_id}/files/{file_id}/content"),
        }));
        vault
            .contents
            .entry(item_id.into())
            .or_default()
            .insert(file_id.clone(), content.to_vec());
        file_id
    }

    /// Adds a token that may read every vault.
    pub fn add_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.insert(token.into(), None);
    }

    /// Adds a token that may read only the vaults named.
    pub fn add_token_for(&self, token: &str, vaults: &[&str]) {
        let mut state = self.state.lock().unwrap();
        let ids = state
            .vaults
            .iter()
            .filter(|v| vaults.contains(&v.name.as_str()))
            .map(|v| v.id.clone())
            .collect();
        state.tokens.insert(token.into(), Some(ids));
    }

    /// The items titled `title` in the vault named `vault`, in full.
    pub fn items_titled(&self, vault: &str, title: &str) -> Vec<Value> {
        let mut state = self.state.lock().unwrap();
        vault_named(&mut state, vault)
            .items
            .iter()
            .filter(|i| i["title"] == title)
            .cloned()
            .collect()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests answered so far with `method`.
    pub fn requests_with(&self, method: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }
}

fn vault_named<'a>(state: &'a mut State, name: &str) -> &'a mut Vault {
    state
        .vaults
        .iter_mut()
        .find(|v| v.name == name)
        .expect("a vault of that name")
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn reply(status: u16, body: Value) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    }
}

fn failure(status: u16, message: &str) -> Answer {
    reply(status, json!({"status": status, "message": message}))
}

async fn serve_connection(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut sock, &mut buf).await {
        let answer = {
            let mut state = state.lock().unwrap();
            let answer = route(&mut state, &request);
            state.requests.push(Recorded {
                method: request.method.clone(),
                path: request.path.clone(),
                status: answer.status,
            });
            answer
        };
        let reason = match answer.status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Other",
        };
        let head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            answer.status,
            answer.content_type,
            answer.body.len()
        );
        if sock.write_all(head.as_bytes()).await.is_err()
            || sock.write_all(&answer.body).await.is_err()
        {
            return;
        }
    }
}

/// `attribute eq "value"` → `value`, for the one attribute a list filters on.
fn filter_value(filter: &str, attribute: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix(attribute)?.trim_start();
    let quoted = rest.strip_prefix("eq")?.trim();
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
}

fn route(state: &mut State, request: &Incoming) -> Answer {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["health"]) => {
            return reply(
                200,
                json!({"name": "1Password Connect API", "version": "1.7.3",
                       "dependencies": [{"service": "sqlite", "status": "ACTIVE"}]}),
            );
        }
        ("GET", ["heartbeat"]) => {
            return Answer {
                status: 200,
                content_type: "text/plain",
                body: b".".to_vec(),
            };
        }
        _ => {}
    }
    let Some(header) = request.header("authorization") else {
        return failure(401, "Invalid bearer token");
    };
    let Some(grant) = header
        .strip_prefix("Bearer ")
        .and_then(|t| state.tokens.get(t.trim()))
        .cloned()
    else {
        return failure(401, "Invalid token signature");
    };
    let visible = |id: &str| grant.as_ref().is_none_or(|ids| ids.contains(id));
    let ["v1", "vaults", rest @ ..] = segments.as_slice() else {
        return failure(404, "Not found");
    };
    let method = request.method.as_str();
    let Some((vault_id, rest)) = rest.split_first() else {
        if method != "GET" {
            return failure(405, "Method not allowed");
        }
        let name = match request.query.get("filter") {
            Some(f) => match filter_value(f, "name") {
                Some(n) => Some(n),
                None => return failure(400, "Invalid filter query"),
            },
            None => None,
        };
        let list: Vec<Value> = state
            .vaults
            .iter()
            .filter(|v| visible(&v.id) && name.as_ref().is_none_or(|n| *n == v.name))
            .map(vault_json)
            .collect();
        return reply(200, json!(list));
    };
    let Some(index) = state.vaults.iter().position(|v| v.id == *vault_id) else {
        return failure(404, "Vault not found");
    };
    if !visible(vault_id) {
        return failure(403, "Authorization: Access to vault denied");
    }
    let vault = &mut state.vaults[index];
    match (method, rest) {
        ("GET", []) => reply(200, vault_json(vault)),
        ("GET", ["items"]) => {
            let title = match request.query.get("filter") {
                Some(f) => match filter_value(f, "title") {
                    Some(t) => Some(t),
                    None => return failure(400, "Invalid filter query"),
                },
                None => None,
            };
            let list: Vec<Value> = vault
                .items
                .iter()
                .filter(|i| title.as_ref().is_none_or(|t| i["title"] == t.as_str()))
                .map(summary)
                .collect();
            reply(200, json!(list))
        }
        ("POST", ["items"]) => {
            let Ok(mut item) = serde_json::from_slice::<Value>(&request.body) else {
                return failure(400, "Invalid request body");
            };
            let vault_id = vault.id.clone();
            let id = state.next_id('i');
            if let Err(answer) = complete(state, &mut item, &id, &vault_id, 1) {
                return answer;
            }
            state.vaults[index].items.push(item.clone());
            reply(200, item)
        }
        (_, ["items", item_id, more @ ..]) => {
            let Some(at) = vault.items.iter().position(|i| i["id"] == *item_id) else {
                return failure(404, "Item not found");
            };
            item_route(state, index, at, method, more, &request.body)
        }
        _ => failure(404, "Not found"),
    }
}

fn item_route(
    state: &mut State,
    vault: usize,
    at: usize,
    method: &str,
    rest: &[&str],
    body: &[u8],
) -> Answer {
    let item = state.vaults[vault].items[at].clone();
    let item_id = item["id"].as_str().unwrap_or_default().to_string();
    let vault_id = state.vaults[vault].id.clone();
    let version = item["version"].as_u64().unwrap_or(1) + 1;
    match (method, rest) {
        ("GET", []) => reply(200, item),
        ("PUT", []) => {
            let Ok(mut new) = serde_json::from_slice::<Value>(body) else {
                return failure(400, "Invalid request body");
            };
            // Files are not part of an item's replaceable body.
            new["files"] = item["files"].clone();
            if let Err(answer) = complete(state, &mut new, &item_id, &vault_id, version) {
                return answer;
            }
            state.vaults[vault].items[at] = new.clone();
            reply(200, new)
        }
        ("PATCH", []) => {
            let Ok(Value::Array(ops)) = serde_json::from_slice::<Value>(body) else {
                return failure(400, "Invalid request body: expected a JSON Patch array");
            };
            let mut new = item;
            for op in &ops {
                if let Err(message) = patch(&mut new, op) {
                    return failure(400, &message);
                }
            }
            if let Err(answer) = complete(state, &mut new, &item_id, &vault_id, version) {
                return answer;
            }
            state.vaults[vault].items[at] = new.clone();
            reply(200, new)
        }
        ("DELETE", []) => {
            state.vaults[vault].items.remove(at);
            state.vaults[vault].contents.remove(&item_id);
            Answer {
                status: 204,
                content_type: "application/json",
                body: Vec::new(),
            }
        }
        ("GET", ["files"]) => reply(200, item["files"].clone()),
        ("GET", ["files", file_id, more @ ..]) => {
            let Some(file) = item["files"]
                .as_array()
                .and_then(|f| f.iter().find(|f| f["id"] == *file_id))
            else {
                return failure(404, "File not found");
            };
            match more {
                [] => reply(200, file.clone()),
                ["content"] => Answer {
                    status: 200,
                    content_type: "application/octet-stream",
                    body: state.vaults[vault].contents[&item_id][*file_id].clone(),
                },
                _ => failure(404, "Not found"),
            }
        }
        _ => failure(404, "Not found"),
    }
}

/// Fills in what Connect assigns on a write: IDs, vault, version, timestamps.
fn complete(
    state: &mut State,
    item: &mut Value,
    id: &str,
    vault_id: &str,
    version: u64,
) -> Result<(), Answer> {
    if !item["title"].is_string() || !item["category"].is_string() {
        return Err(failure(
            400,
            "Validation: item title and category are required",
        ));
    }
    if let Some(given) = item["id"].as_str()
        && given != id
    {
        return Err(failure(400, "Validation: item ID does not match the path"));
    }
    item["id"] = json!(id);
    item["vault"] = json!({"id": vault_id});
    item["version"] = json!(version);
    item["createdAt"] = item
        .get("createdAt")
        .cloned()
        .unwrap_or(json!("2026-01-01T00:00:00Z"));
    item["updatedAt"] = json!("2026-01-02T00:00:00Z");
    if !item["tags"].is_array() {
        item["tags"] = json!([]);
    }
    if !item["files"].is_array() {
        item["files"] = json!([]);
    }
    let mut fields = item["fields"].as_array().cloned().unwrap_or_default();
    for field in &mut fields {
        if !field["id"].is_string() {
            field["id"] = json!(state.next_id('f'));
        }
        if !field["type"].is_string() {
            field["type"] = json!("STRING");
        }
    }
    item["fields"] = json!(fields);
    Ok(())
}

/// One RFC 6902 operation on an item.
fn patch(item: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op["op"].as_str().unwrap_or_default();
    let path = op["path"].as_str().unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let target: &mut Value = match parts.as_slice() {
        [attr] if !attr.is_empty() => {
            return match kind {
                "add" | "replace" => {
                    item[*attr] = op["value"].clone();
                    Ok(())
                }
                "remove" => {
                    item.as_object_mut().map(|o| o.remove(*attr));
                    Ok(())
                }
                _ => Err(format!("Invalid patch operation {kind:?}")),
            };
        }
        ["fields"] if kind == "add" => {
            item["fields"]
                .as_array_mut()
                .ok_or("the item has no fields")?
                .push(op["value"].clone());
            return Ok(());
        }
        ["fields", field_id, ..] => {
            let fields = item["fields"]
                .as_array_mut()
                .ok_or("the item has no fields")?;
            let Some(at) = fields.iter().position(|f| f["id"] == *field_id) else {
                return Err(format!("Invalid patch path {path:?}: no such field"));
            };
            if parts.len() == 2 && kind == "remove" {
                fields.remove(at);
                return Ok(());
            }
            &mut fields[at]
        }
        _ => return Err(format!("Invalid patch path {path:?}")),
    };
    match (kind, parts.get(2)) {
        ("add" | "replace", Some(attr)) => target[*attr] = op["value"].clone(),
        ("replace", None) => *target = op["value"].clone(),
        _ => return Err(format!("Invalid patch operation {kind:?} on {path:?}")),
    }
    Ok(())
}

fn vault_json(vault: &Vault) -> Value {
    json!({
        "id": vault.id, "name": vault.name, "description": "",
        "attributeVersion": 1, "contentVersion": vault.items.len() + 1,
        "items": vault.items.len(), "type": "USER_CREATED",
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
    })
}

/// An item as the list answers it: everything but fields, sections and files.
fn summary(item: &Value) -> Value {
    let mut out = item.clone();
    if let Some(object) = out.as_object_mut() {
        for key in ["fields", "sections", "files"] {
            object.remove(key);
        }
    }
    out
}
