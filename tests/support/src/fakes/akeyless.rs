//! An in-process fake of the Akeyless API, for tests of the Akeyless provider.
//!
//! No Akeyless server can be installed, so this follows Akeyless API v2 as its OpenAPI
//! document describes it (`api/openapi.yaml` of akeylesslabs/akeyless-go, "Akeyless API"
//! version 2.0, the source of every official SDK) and the pages "API Reference" and
//! "Authentication Methods" of <https://docs.akeyless.io>:
//!
//! - every operation is `POST /<operation>` with a JSON body; a Gateway serves the same
//!   operations below `/v2`, so both `/auth` and `/v2/auth` are answered;
//! - `POST /auth` takes `access-id` and, for `access-type` `access_key` (the default, or
//!   `api_key`), `access-key`; for `k8s`, `k8s-auth-config-name` and the ServiceAccount JWT
//!   base64-encoded in `k8s-service-account-token`. It answers `{"token": "t-…",
//!   "expiration": …}`, or 401 for credentials it does not know;
//! - every other operation carries the token in the body (`token`, or `uid-token` for a
//!   universal-identity token starting `u-`); a missing or unknown token answers 401;
//! - `describe-item` (an `Item`: `item_name`, `item_type`, `item_tags`, `last_version`,
//!   `item_versions`), `get-secret-value` (`names`, `version`: `{name: value}`),
//!   `get-dynamic-secret-value` (`name`: the producer's JSON object),
//!   `get-rotated-secret-value` (`names`, `version`: `{"value": {…}}`),
//!   `get-certificate-value` (`name`, `version`: `certificate_pem`, `private_key_pem`),
//!   `list-items` (`filter` on the name, `type`, `tag`, `pagination-token`: `items`,
//!   `next_page`), `create-secret` (`name`, `value`, `tags`), `update-secret-val`
//!   (`name`, `value`; a new version), `delete-item` (`name`);
//! - errors are `{"error": "<message>"}` ("errorResponse wraps any error to return it as a
//!   JSON object with one error field") with 400, 401, 404 or 409.
//!
//! Every request is recorded (path, status, body length) so tests can count what crossed
//! the wire. Secret values are never printed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The tag ESO's Akeyless provider puts on the secrets it creates.
pub const MANAGED_TAG: &str = "k8s-external-secrets";

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The operation's path without any `/v2` prefix, e.g. `/auth`.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// How many body bytes were sent back.
    pub body_len: usize,
}

/// What an item holds, by Akeyless item type.
#[derive(Debug, Clone)]
enum Content {
    /// `STATIC_SECRET`: every version's value, oldest first.
    Static(Vec<String>),
    /// `DYNAMIC_SECRET`: what each read produces.
    Dynamic(Value),
    /// `ROTATED_SECRET`: the current value object.
    Rotated(Value),
    /// `CERTIFICATE`: certificate and key PEM.
    Certificate { pem: String, key: String },
}

impl Content {
    fn item_type(&self) -> &'static str {
        match self {
            Content::Static(_) => "STATIC_SECRET",
            Content::Dynamic(_) => "DYNAMIC_SECRET",
            Content::Rotated(_) => "ROTATED_SECRET",
            Content::Certificate { .. } => "CERTIFICATE",
        }
    }

    /// The `type` filter value of `list-items`.
    fn list_type(&self) -> &'static str {
        match self {
            Content::Static(_) => "static-secret",
            Content::Dynamic(_) => "dynamic-secret",
            Content::Rotated(_) => "rotated-secret",
            Content::Certificate { .. } => "certificate",
        }
    }
}

#[derive(Debug, Clone)]
struct Item {
    id: u64,
    content: Content,
    tags: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    items: BTreeMap<String, Item>,
    /// access id → access key.
    access_keys: BTreeMap<String, String>,
    /// (access id, k8s auth config name) → the ServiceAccount JWT it accepts.
    k8s: BTreeMap<(String, String), String>,
    tokens: BTreeSet<String>,
    page_size: usize,
    requests: Vec<Recorded>,
    issued: u64,
}

/// A running fake Akeyless API on `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct FakeAkeyless {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeAkeyless {
    /// Starts the fake on a free port (on the current Tokio runtime).
    pub async fn start() -> FakeAkeyless {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            page_size: 1000,
            ..State::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_connection(sock, shared.clone()));
            }
        });
        FakeAkeyless { port, state }
    }

    /// `http://127.0.0.1:<port>`, the API URL to point a client at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Accepts `access_key` for `access_id` (access-key auth).
    pub fn add_access_key(&self, access_id: &str, access_key: &str) {
        self.state
            .lock()
            .unwrap()
            .access_keys
            .insert(access_id.into(), access_key.into());
    }

    /// Accepts the ServiceAccount `jwt` for `access_id` with Kubernetes auth config `config`.
    pub fn add_k8s_auth(&self, access_id: &str, config: &str, jwt: &str) {
        self.state
            .lock()
            .unwrap()
            .k8s
            .insert((access_id.into(), config.into()), jwt.into());
    }

    /// Answers `list-items` in pages of `size` items.
    pub fn set_page_size(&self, size: usize) {
        self.state.lock().unwrap().page_size = size.max(1);
    }

    /// Forgets every token issued so far, as an expiry would.
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    fn put(&self, name: &str, content: Content, tags: &[&str]) {
        let mut state = self.state.lock().unwrap();
        state.issued += 1;
        let id = state.issued;
        state.items.insert(
            name.into(),
            Item {
                id,
                content,
                tags: tags.iter().map(|t| t.to_string()).collect(),
            },
        );
    }

    /// Creates (or replaces) a static secret with one version per value.
    pub fn add_static(&self, name: &str, versions: &[&str], tags: &[&str]) {
        let values = versions.iter().map(|v| v.to_string()).collect();
        self.put(name, Content::Static(values), tags);
    }

    /// Creates a dynamic secret whose every read produces `value`.
    pub fn add_dynamic(&self, name: &str, value: Value) {
        self.put(name, Content::Dynamic(value), &[]);
    }

    /// Creates a rotated secret holding `value` (e.g. `{"username":…,"password":…}`).
    pub fn add_rotated(&self, name: &str, value: Value) {
        self.put(name, Content::Rotated(value), &[]);
    }

    /// Creates a certificate item.
    pub fn add_certificate(&self, name: &str, pem: &str, key: &str) {
        let content = Content::Certificate {
            pem: pem.into(),
            key: key.into(),
        };
        self.put(name, content, &[]);
    }

    /// The latest value of a static secret.
    pub fn static_value(&self, name: &str) -> Option<String> {
        match &self.state.lock().unwrap().items.get(name)?.content {
            Content::Static(versions) => versions.last().cloned(),
            _ => None,
        }
    }

    /// An item's tags.
    pub fn tags(&self, name: &str) -> Option<Vec<String>> {
        Some(self.state.lock().unwrap().items.get(name)?.tags.clone())
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests answered so far to `path` (e.g. `/auth`).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// An answer: status and JSON body.
type Answer = (u16, Value);

fn failure(status: u16, message: &str) -> Answer {
    (status, json!({ "error": message }))
}

async fn serve_connection(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    while let Some((method, target, body)) = read_request(&mut sock, &mut buf).await {
        let path = target.split('?').next().unwrap_or("");
        let path = path.strip_prefix("/v2").unwrap_or(path).to_string();
        let (status, answer) = {
            let mut state = state.lock().unwrap();
            let (status, answer) = if method != "POST" {
                failure(405, "only POST is supported")
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(map)) => route(&mut state, &path, &Value::Object(map)),
                    _ => failure(400, "the request body is not a JSON object"),
                }
            };
            let answer = answer.to_string().into_bytes();
            state.requests.push(Recorded {
                path,
                status,
                body_len: answer.len(),
            });
            (status, answer)
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            if status == 200 { "OK" } else { "Error" },
            answer.len()
        );
        if sock.write_all(head.as_bytes()).await.is_err() || sock.write_all(&answer).await.is_err()
        {
            return;
        }
    }
}

/// Reads one request: method, target, body.
async fn read_request(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut words = head.split_whitespace();
            let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = buf.drain(..end + 4 + length).skip(end + 4).collect();
                return Some((method, target, body));
            }
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn text<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

fn route(state: &mut State, path: &str, body: &Value) -> Answer {
    if path == "/auth" {
        return auth(state, body);
    }
    let token = text(body, "token").or_else(|| text(body, "uid-token"));
    if !token.is_some_and(|t| state.tokens.contains(t)) {
        return failure(
            401,
            "Unauthorized: the token is missing, invalid or expired",
        );
    }
    match path {
        "/describe-item" => describe(state, body),
        "/get-secret-value" => static_value(state, body),
        "/get-dynamic-secret-value" => dynamic_value(state, body),
        "/get-rotated-secret-value" => rotated_value(state, body),
        "/get-certificate-value" => certificate_value(state, body),
        "/list-items" => list(state, body),
        "/create-secret" => create(state, body),
        "/update-secret-val" => update(state, body),
        "/delete-item" => delete(state, body),
        _ => failure(404, &format!("unknown command {path}")),
    }
}

fn auth(state: &mut State, body: &Value) -> Answer {
    let Some(access_id) = text(body, "access-id") else {
        return failure(400, "access-id is required");
    };
    let accepted = match text(body, "access-type").unwrap_or("access_key") {
        "access_key" | "api_key" => text(body, "access-key")
            .is_some_and(|key| state.access_keys.get(access_id).map(String::as_str) == Some(key)),
        "k8s" => {
            let config = text(body, "k8s-auth-config-name").unwrap_or("");
            let jwt = text(body, "k8s-service-account-token")
                .and_then(base64_decode)
                .and_then(|b| String::from_utf8(b).ok());
            jwt.is_some()
                && state.k8s.get(&(access_id.to_string(), config.to_string())) == jwt.as_ref()
        }
        other => return failure(400, &format!("unsupported access type {other}")),
    };
    if !accepted {
        return failure(
            401,
            &format!("failed to authenticate with access id {access_id}: access denied"),
        );
    }
    state.issued += 1;
    let token = format!("t-{:08x}", state.issued * 2_654_435_761 % 0xffff_ffff);
    state.tokens.insert(token.clone());
    (
        200,
        json!({"token": token, "expiration": "2099-01-01 00:00:00 +0000 UTC"}),
    )
}

fn find<'a>(state: &'a State, name: Option<&str>) -> Result<(&'a str, &'a Item), Answer> {
    let Some(name) = name else {
        return Err(failure(400, "name is required"));
    };
    state
        .items
        .get_key_value(name)
        .map(|(k, v)| (k.as_str(), v))
        .ok_or_else(|| failure(404, &format!("item {name} not found")))
}

/// `version` of a read: 0 or absent for the latest, otherwise 1-based.
fn pick(versions: &[String], body: &Value) -> Result<String, Answer> {
    let version = body.get("version").and_then(Value::as_u64).unwrap_or(0) as usize;
    if version == 0 {
        return versions
            .last()
            .cloned()
            .ok_or_else(|| failure(404, "no version"));
    }
    versions
        .get(version - 1)
        .cloned()
        .ok_or_else(|| failure(404, &format!("version {version} not found")))
}

fn describe(state: &State, body: &Value) -> Answer {
    let (name, item) = match find(state, text(body, "name")) {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let last = match &item.content {
        Content::Static(v) => v.len(),
        _ => 1,
    };
    let versions: Vec<Value> = (1..=last).map(|v| json!({"version": v})).collect();
    (
        200,
        json!({
            "item_name": name,
            "item_id": item.id,
            "item_type": item.content.item_type(),
            "item_tags": item.tags,
            "last_version": last,
            "item_versions": versions,
            "is_enabled": true,
        }),
    )
}

fn static_value(state: &State, body: &Value) -> Answer {
    let names: Vec<&str> = body
        .get("names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return failure(400, "names is required");
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let (name, item) = match find(state, Some(name)) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let Content::Static(versions) = &item.content else {
            return failure(400, &format!("item {name} is not a static secret"));
        };
        match pick(versions, body) {
            Ok(value) => out.insert(name.to_string(), Value::String(value)),
            Err(answer) => return answer,
        };
    }
    (200, Value::Object(out))
}

fn dynamic_value(state: &State, body: &Value) -> Answer {
    match find(state, text(body, "name")) {
        Ok((
            _,
            Item {
                content: Content::Dynamic(value),
                ..
            },
        )) => (200, value.clone()),
        Ok((name, _)) => failure(400, &format!("item {name} is not a dynamic secret")),
        Err(answer) => answer,
    }
}

fn rotated_value(state: &State, body: &Value) -> Answer {
    match find(state, text(body, "names")) {
        Ok((
            _,
            Item {
                content: Content::Rotated(value),
                ..
            },
        )) => (200, json!({"value": value})),
        Ok((name, _)) => failure(400, &format!("item {name} is not a rotated secret")),
        Err(answer) => answer,
    }
}

fn certificate_value(state: &State, body: &Value) -> Answer {
    match find(state, text(body, "name")) {
        Ok((
            _,
            Item {
                content: Content::Certificate { pem, key },
                ..
            },
        )) => (200, json!({"certificate_pem": pem, "private_key_pem": key})),
        Ok((name, _)) => failure(400, &format!("item {name} is not a certificate")),
        Err(answer) => answer,
    }
}

fn list(state: &State, body: &Value) -> Answer {
    let filter = text(body, "filter").unwrap_or("");
    let tag = text(body, "tag").filter(|t| !t.is_empty());
    let types: Vec<&str> = body
        .get("type")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let start: usize = match text(body, "pagination-token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return failure(400, "invalid pagination token"),
        },
    };
    let matching: Vec<(&String, &Item)> = state
        .items
        .iter()
        .filter(|(name, item)| {
            name.contains(filter)
                && (types.is_empty() || types.contains(&item.content.list_type()))
                && tag.is_none_or(|t| item.tags.iter().any(|have| have == t))
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(state.page_size)
        .map(|(name, item)| {
            json!({"item_name": name, "item_id": item.id,
                   "item_type": item.content.item_type(), "item_tags": item.tags})
        })
        .collect();
    let next = start + page.len();
    let more = next < matching.len();
    let mut answer = json!({"items": page, "folders": [], "has_next": more});
    if more {
        answer["next_page"] = json!(format!("page-{next}"));
    }
    (200, answer)
}

fn create(state: &mut State, body: &Value) -> Answer {
    let (Some(name), Some(value)) = (text(body, "name"), text(body, "value")) else {
        return failure(400, "name and value are required");
    };
    if state.items.contains_key(name) {
        return failure(409, &format!("item {name} already exists"));
    }
    let tags = body
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    state.issued += 1;
    let item = Item {
        id: state.issued,
        content: Content::Static(vec![value.to_string()]),
        tags,
    };
    state.items.insert(name.to_string(), item);
    (200, json!({"name": name}))
}

fn update(state: &mut State, body: &Value) -> Answer {
    let Some(value) = text(body, "value") else {
        return failure(400, "value is required");
    };
    let name = text(body, "name").unwrap_or("");
    match state.items.get_mut(name).map(|i| &mut i.content) {
        Some(Content::Static(versions)) => {
            versions.push(value.to_string());
            (200, json!({"name": name}))
        }
        Some(_) => failure(400, &format!("item {name} is not a static secret")),
        None => failure(404, &format!("item {name} not found")),
    }
}

fn delete(state: &mut State, body: &Value) -> Answer {
    let name = text(body, "name").unwrap_or("");
    match state.items.remove(name) {
        Some(item) => (200, json!({"item_name": name, "item_id": item.id})),
        None => failure(404, &format!("item {name} not found")),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
