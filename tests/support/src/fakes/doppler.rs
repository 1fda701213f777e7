//! An in-process fake of the Doppler API, for tests of the Doppler provider.
//!
//! No Doppler server can be installed, so this follows the public REST API v3 as documented
//! at <https://docs.doppler.com/reference/api> (pages "Secrets: Download", "Secrets:
//! Retrieve", "Secrets: List", "Secrets: Update", "Projects: List", "Auth: Me",
//! "Service Account Identities: OIDC auth", "Errors") and
//! <https://docs.doppler.com/docs/service-tokens>:
//!
//! - `Authorization: Bearer <token>` (or HTTP Basic with the token as user name); an unknown
//!   token answers 401 `{"messages":["Invalid Auth token"],"success":false}`;
//! - a service token is bound to one project and config, which it uses when the request names
//!   none; asking for another config answers 403;
//! - `GET /v3/configs/config/secrets/download` answers every secret of the config (plus
//!   Doppler's `DOPPLER_PROJECT`, `DOPPLER_CONFIG`, `DOPPLER_ENVIRONMENT`) in `format` with
//!   `name_transformer` applied, with an `ETag`; a request whose `If-None-Match` names the
//!   current ETag answers `304 Not Modified` with no body;
//! - `GET /v3/configs/config/secret`, `GET /v3/configs/config/secrets`, `GET /v3/projects`,
//!   `GET /v3/me`, `POST /v3/configs/config/secrets` (`secrets` to set, `null` or
//!   `change_requests[].shouldDelete` to delete), `DELETE /v3/configs/config/secret`
//!   ("Secrets: Delete", 204; 404 for a missing secret) and `POST /v3/auth/oidc`;
//! - errors are `{"messages":[...],"success":false}` with 400, 401, 403 or 404.
//!
//! Every request is recorded (method, path, status, body length) so tests can count what
//! crossed the wire.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// How many body bytes were sent back.
    pub body_len: usize,
}

/// What a token may read.
#[derive(Debug, Clone)]
enum Grant {
    /// A service token: exactly one project and config.
    Config { project: String, config: String },
    /// A personal or service-account token: any config, which each request must name.
    Any,
}

#[derive(Debug, Default)]
struct State {
    /// project → config → name → value.
    projects: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    tokens: BTreeMap<String, Grant>,
    /// OIDC identity → the JWT it accepts.
    identities: BTreeMap<String, String>,
    /// Bumped by every write, so the ETag of a config changes with its content.
    revision: u64,
    requests: Vec<Recorded>,
    issued: u64,
}

/// A running fake Doppler API on `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct FakeDoppler {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeDoppler {
    /// Starts the fake on a free port (on the current Tokio runtime).
    pub async fn start() -> FakeDoppler {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_connection(sock, shared.clone()));
            }
        });
        FakeDoppler { port, state }
    }

    /// `http://127.0.0.1:<port>`, the base URL to point a client at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets a secret in `project`/`config`, creating both as needed.
    pub fn set_secret(&self, project: &str, config: &str, name: &str, value: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .projects
            .entry(project.into())
            .or_default()
            .entry(config.into())
            .or_default()
            .insert(name.into(), value.into());
        state.revision += 1;
    }

    /// A secret's current value.
    pub fn secret(&self, project: &str, config: &str, name: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state.projects.get(project)?.get(config)?.get(name).cloned()
    }

    /// Adds a service token bound to `project`/`config`.
    pub fn add_service_token(&self, token: &str, project: &str, config: &str) {
        self.state.lock().unwrap().tokens.insert(
            token.into(),
            Grant::Config {
                project: project.into(),
                config: config.into(),
            },
        );
    }

    /// Adds a personal token that may read any config named in the request.
    pub fn add_personal_token(&self, token: &str) {
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), Grant::Any);
    }

    /// Accepts `jwt` for the service-account identity `identity` at `POST /v3/auth/oidc`.
    pub fn add_oidc_identity(&self, identity: &str, jwt: &str) {
        self.state
            .lock()
            .unwrap()
            .identities
            .insert(identity.into(), jwt.into());
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests answered so far to `method path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
}

/// A parsed request (shared with the 1Password fake).
pub(super) struct Incoming {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: BTreeMap<String, String>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Incoming {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra headers, body.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: vec![("Content-Type", "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn failure(status: u16, message: &str) -> Answer {
    reply(status, json!({"messages": [message], "success": false}))
}

async fn serve_connection(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        let answer = {
            let mut state = state.lock().unwrap();
            let answer = route(&mut state, &request);
            state.requests.push(Recorded {
                method: request.method.clone(),
                path: request.path.clone(),
                status: answer.status,
                body_len: answer.body.len(),
            });
            answer
        };
        let reason = match answer.status {
            200 => "OK",
            204 => "No Content",
            304 => "Not Modified",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Other",
        };
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", answer.status);
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if answer.status != 304 {
            head.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
        }
        head.push_str("\r\n");
        if sock.write_all(head.as_bytes()).await.is_err()
            || sock.write_all(&answer.body).await.is_err()
        {
            return;
        }
    }
}

pub(super) async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Incoming> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < end + 4 + length {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: Vec<u8> = buf.drain(..end + 4 + length).skip(end + 4).collect();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Incoming {
        method,
        path: path.to_string(),
        query,
        headers,
        body,
    })
}

/// Percent-decoding of a query component (`+` is a space, as in forms).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of a request: Bearer, or Basic with the token as user name (as ESO sends it).
fn token_of(request: &Incoming) -> Option<String> {
    let value = request.header("authorization")?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(u, _)| u.to_string()),
    )
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn route(state: &mut State, request: &Incoming) -> Answer {
    if (request.method.as_str(), request.path.as_str()) == ("POST", "/v3/auth/oidc") {
        return oidc(state, request);
    }
    let Some(grant) = token_of(request).and_then(|t| state.tokens.get(&t).cloned()) else {
        return failure(401, "Invalid Auth token");
    };
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/v3/me") => reply(
            200,
            json!({"success": true, "name": "airlock", "type": match grant {
                Grant::Config { .. } => "service_token",
                Grant::Any => "personal",
            }}),
        ),
        ("GET", "/v3/projects") => {
            let projects: Vec<Value> = state
                .projects
                .keys()
                .filter(|p| match &grant {
                    Grant::Config { project, .. } => project == *p,
                    Grant::Any => true,
                })
                .map(|p| json!({"id": p, "slug": p, "name": p, "description": ""}))
                .collect();
            reply(
                200,
                json!({"page": 1, "projects": projects, "success": true}),
            )
        }
        ("GET", path) if path.starts_with("/v3/configs/config/secret") => {
            let params = |k: &str| request.query.get(k).cloned();
            let (project, config) = match scope(&grant, params("project"), params("config")) {
                Ok(scope) => scope,
                Err(answer) => return answer,
            };
            let Some(secrets) = state.projects.get(&project).and_then(|p| p.get(&config)) else {
                return failure(404, "Could not find requested config");
            };
            match path {
                "/v3/configs/config/secret" => {
                    let name = params("name").unwrap_or_default();
                    match secrets.get(&name) {
                        Some(value) => reply(
                            200,
                            json!({"name": name, "value": {"raw": value, "computed": value, "note": ""}, "success": true}),
                        ),
                        None => failure(404, "Could not find requested secret"),
                    }
                }
                "/v3/configs/config/secrets" => {
                    let all: serde_json::Map<String, Value> = secrets
                        .iter()
                        .map(|(k, v)| (k.clone(), json!({"raw": v, "computed": v, "note": ""})))
                        .collect();
                    reply(200, json!({"secrets": all, "success": true}))
                }
                "/v3/configs/config/secrets/download" => {
                    let etag = format!("\"{:x}-{project}-{config}\"", state.revision);
                    let etag = etag.replace(['/', ' '], "_");
                    let mut answer = match download(&project, &config, secrets, &request.query) {
                        Ok(answer) => answer,
                        Err(answer) => return answer,
                    };
                    answer.headers.push(("ETag", etag.clone()));
                    if request.header("if-none-match") == Some(etag.as_str()) {
                        answer.status = 304;
                        answer.body.clear();
                    }
                    answer
                }
                _ => failure(404, "Not found"),
            }
        }
        ("POST", "/v3/configs/config/secrets") => update(state, &grant, &request.body),
        ("DELETE", "/v3/configs/config/secret") => {
            let params = |k: &str| request.query.get(k).cloned();
            let (project, config) = match scope(&grant, params("project"), params("config")) {
                Ok(scope) => scope,
                Err(answer) => return answer,
            };
            let Some(secrets) = state
                .projects
                .get_mut(&project)
                .and_then(|p| p.get_mut(&config))
            else {
                return failure(404, "Could not find requested config");
            };
            if secrets
                .remove(&params("name").unwrap_or_default())
                .is_none()
            {
                return failure(404, "Could not find requested secret");
            }
            state.revision += 1;
            Answer {
                status: 204,
                headers: vec![],
                body: Vec::new(),
            }
        }
        _ => failure(404, "Not found"),
    }
}

/// The project and config a request reads: the service token's, or the named ones.
fn scope(
    grant: &Grant,
    project: Option<String>,
    config: Option<String>,
) -> Result<(String, String), Answer> {
    match grant {
        Grant::Config {
            project: p,
            config: c,
        } => {
            let project = project.unwrap_or_else(|| p.clone());
            let config = config.unwrap_or_else(|| c.clone());
            if (&project, &config) != (p, c) {
                return Err(failure(
                    403,
                    "This token does not have access to requested config",
                ));
            }
            Ok((project, config))
        }
        Grant::Any => match (project, config) {
            (Some(p), Some(c)) if !p.is_empty() && !c.is_empty() => Ok((p, c)),
            _ => Err(failure(400, "Missing project and config")),
        },
    }
}

fn download(
    project: &str,
    config: &str,
    secrets: &BTreeMap<String, String>,
    query: &BTreeMap<String, String>,
) -> Result<Answer, Answer> {
    let mut all = secrets.clone();
    all.insert("DOPPLER_PROJECT".into(), project.into());
    all.insert("DOPPLER_CONFIG".into(), config.into());
    all.insert(
        "DOPPLER_ENVIRONMENT".into(),
        config.split('_').next().unwrap_or(config).into(),
    );
    if let Some(only) = query.get("secrets") {
        let names: Vec<&str> = only.split(',').collect();
        all.retain(|k, _| names.contains(&k.as_str()));
    }
    let transformed: Vec<(String, String)> = match query.get("name_transformer") {
        None => all.into_iter().collect(),
        Some(t) => {
            let mut out = Vec::new();
            for (k, v) in all {
                out.push((
                    transform(t, &k).ok_or_else(|| failure(400, "Invalid name transformer"))?,
                    v,
                ));
            }
            out
        }
    };
    let format = query.get("format").map_or("json", String::as_str);
    let (content_type, body) = match format {
        "json" => {
            let map: serde_json::Map<String, Value> = transformed
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            ("application/json", Value::Object(map).to_string())
        }
        "env" => (
            "text/plain",
            transformed
                .iter()
                .map(|(k, v)| format!("{k}={}\n", Value::String(v.clone())))
                .collect(),
        ),
        "env-no-quotes" | "docker" => (
            "text/plain",
            transformed
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect(),
        ),
        "yaml" => (
            "text/yaml",
            transformed
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", Value::String(v.clone())))
                .collect(),
        ),
        _ => return Err(failure(400, "Invalid format")),
    };
    Ok(Answer {
        status: 200,
        headers: vec![("Content-Type", content_type.into())],
        body: body.into_bytes(),
    })
}

/// Doppler's name transformers, applied to an upper-snake name such as `DB_HOST_NAME`.
pub fn transform(transformer: &str, name: &str) -> Option<String> {
    let words: Vec<String> = name
        .split('_')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let capital = |w: &String| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    Some(match transformer {
        "upper-camel" => words.iter().map(capital).collect(),
        "camel" => words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { capital(w) })
            .collect(),
        "lower-snake" => words.join("_"),
        "lower-kebab" => words.join("-"),
        "tf-var" => format!("TF_VAR_{}", words.join("_")),
        // `SECTION__KEY_NAME` → `Section__KeyName`: .NET's environment form of nested keys.
        "dotnet-env" => name
            .split("__")
            .map(|part| transform("upper-camel", part).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("__"),
        "dotnet" => name
            .split("__")
            .map(|part| transform("upper-camel", part).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":"),
        _ => return None,
    })
}

fn update(state: &mut State, grant: &Grant, body: &[u8]) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return failure(400, "Request body is not valid JSON");
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (project, config) = match scope(grant, text("project"), text("config")) {
        Ok(scope) => scope,
        Err(answer) => return answer,
    };
    let Some(secrets) = state
        .projects
        .get_mut(&project)
        .and_then(|p| p.get_mut(&config))
    else {
        return failure(404, "Could not find requested config");
    };
    if let Some(set) = body.get("secrets").and_then(Value::as_object) {
        for (name, value) in set {
            match value {
                Value::Null => {
                    secrets.remove(name);
                }
                Value::String(v) => {
                    secrets.insert(name.clone(), v.clone());
                }
                _ => return failure(400, "Secret values must be strings"),
            }
        }
    }
    for change in body
        .get("change_requests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = change.get("name").and_then(Value::as_str) else {
            return failure(400, "A change request needs a name");
        };
        if change.get("shouldDelete").and_then(Value::as_bool) == Some(true) {
            secrets.remove(name);
        } else if let Some(v) = change.get("value").and_then(Value::as_str) {
            secrets.insert(name.to_string(), v.to_string());
        }
    }
    let all: serde_json::Map<String, Value> = secrets
        .iter()
        .map(|(k, v)| (k.clone(), json!({"raw": v, "computed": v, "note": ""})))
        .collect();
    state.revision += 1;
    reply(200, json!({"secrets": all, "success": true}))
}

fn oidc(state: &mut State, request: &Incoming) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return failure(400, "Request body is not valid JSON");
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    match state.identities.get(field("identity")) {
        Some(jwt) if jwt == field("token") => {
            state.issued += 1;
            let token = format!("dp.said.issued{}", state.issued);
            state.tokens.insert(token.clone(), Grant::Any);
            reply(
                200,
                json!({"success": true, "token": token, "expires_at": "2099-01-01T00:00:00.000Z"}),
            )
        }
        _ => failure(401, "Unable to authenticate with the provided token"),
    }
}
