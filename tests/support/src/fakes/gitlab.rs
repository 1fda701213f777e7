//! An in-memory GitLab that speaks the part of the **GitLab REST API v4** the GitLab
//! variables provider uses, on `127.0.0.1:0`, recording every request it gets.
//!
//! It follows GitLab's documentation pages (docs.gitlab.com/api/…):
//! - `rest/authentication`: the `PRIVATE-TOKEN` header (or `Authorization: Bearer`); a
//!   missing or unknown token answers `401 {"message":"401 Unauthorized"}`;
//! - `project_level_variables`: `GET /projects/:id/variables` (paginated) and
//!   `GET /projects/:id/variables/:key` with `filter[environment_scope]`; an absent key
//!   answers `404 {"message":"404 Variable Not Found"}`, a key defined for several scopes
//!   without a filter answers `409` asking for `filter[environment_scope]`;
//! - `group_level_variables`: the same under `/groups/:id/variables`;
//! - `projects` ("List groups of a project", `GET /projects/:id/groups`: the project's
//!   ancestor groups, listed here from the top-level group down to the project's own) and
//!   `GET /projects/:id`, `groups` (`GET /groups/:id`), `users` (`GET /user`);
//! - `rest/index#pagination`: `page` (default 1) and `per_page` (default 20, at most 100),
//!   answered with `X-Page`, `X-Per-Page`, `X-Total`, `X-Total-Pages`, `X-Next-Page`,
//!   `X-Prev-Page` (empty when there is none) and a `Link` header (`next`, `prev`, `first`,
//!   `last`) whose URLs are built from the request's `Host`;
//! - `rest/index#namespaced-paths`: `:id` is a numeric ID or the URL-encoded full path
//!   (`group%2Fproject`).
//!
//! Unknown projects and groups answer `404 {"message":"404 Project Not Found"}` /
//! `{"message":"404 Group Not Found"}`, unknown routes `404 {"error":"404 Not Found"}`.
//! HTTP/1.1 with keep-alive; only what these endpoints need (no chunked request bodies).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One CI/CD variable of a project or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The variable's key (`A-Z`, `a-z`, `0-9`, `_`).
    pub key: String,
    /// Its value.
    pub value: String,
    /// The environment scope; `*` for every environment.
    pub environment_scope: String,
}

impl Variable {
    /// A variable for every environment (`*`).
    pub fn new(key: &str, value: &str) -> Self {
        Variable::scoped(key, value, "*")
    }

    /// A variable for environment scope `scope`.
    pub fn scoped(key: &str, value: &str, scope: &str) -> Self {
        Variable {
            key: key.into(),
            value: value.into(),
            environment_scope: scope.into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "variable_type": "env_var",
            "key": self.key,
            "value": self.value,
            "protected": false,
            "masked": false,
            "hidden": false,
            "raw": false,
            "environment_scope": self.environment_scope,
            "description": null,
        })
    }
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, …
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Whether the request carried a token the fake accepts.
    pub authenticated: bool,
}

#[derive(Debug)]
struct Group {
    id: u64,
    full_path: String,
    parent: Option<u64>,
    variables: Vec<Variable>,
}

#[derive(Debug)]
struct Project {
    id: u64,
    full_path: String,
    group: Option<u64>,
    variables: Vec<Variable>,
}

#[derive(Debug, Default)]
struct State {
    tokens: BTreeSet<String>,
    groups: Vec<Group>,
    projects: Vec<Project>,
    requests: Vec<Recorded>,
}

/// A running fake GitLab. Its server thread ends with the process.
#[derive(Debug, Clone)]
pub struct FakeGitLab {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeGitLab {
    /// Starts a fake accepting `token`, on its own thread (usable with or without a Tokio
    /// runtime).
    pub fn start(token: &str) -> FakeGitLab {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake GitLab");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        state
            .lock()
            .expect("fresh lock")
            .tokens
            .insert(token.into());
        let shared = state.clone();
        std::thread::Builder::new()
            .name("fake-gitlab".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake GitLab runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve_connection(socket, shared.clone()));
                    }
                });
            })
            .expect("spawning the fake GitLab");
        FakeGitLab { port, state }
    }

    /// The base URL, `http://127.0.0.1:PORT` (the API is under `/api/v4`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds group `id` at `full_path`, a subgroup of `parent` when given.
    pub fn add_group(&self, id: u64, full_path: &str, parent: Option<u64>) -> &Self {
        self.lock().groups.push(Group {
            id,
            full_path: full_path.into(),
            parent,
            variables: Vec::new(),
        });
        self
    }

    /// Adds project `id` at `full_path`, in group `group` (or a user namespace when `None`).
    pub fn add_project(&self, id: u64, full_path: &str, group: Option<u64>) -> &Self {
        self.lock().projects.push(Project {
            id,
            full_path: full_path.into(),
            group,
            variables: Vec::new(),
        });
        self
    }

    /// Sets a project variable (replacing one with the same key and scope).
    pub fn set_project_variable(&self, project: u64, variable: Variable) -> &Self {
        let mut state = self.lock();
        let p = state
            .projects
            .iter_mut()
            .find(|p| p.id == project)
            .expect("project exists");
        upsert(&mut p.variables, variable);
        self
    }

    /// Sets a group variable (replacing one with the same key and scope).
    pub fn set_group_variable(&self, group: u64, variable: Variable) -> &Self {
        let mut state = self.lock();
        let g = state
            .groups
            .iter_mut()
            .find(|g| g.id == group)
            .expect("group exists");
        upsert(&mut g.variables, variable);
        self
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

fn upsert(variables: &mut Vec<Variable>, variable: Variable) {
    variables
        .retain(|v| !(v.key == variable.key && v.environment_scope == variable.environment_scope));
    variables.push(variable);
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, extra headers, JSON body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

fn message(status: u16, text: &str) -> Answer {
    answer(status, json!({ "message": text }))
}

async fn serve_connection(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let target = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let request = Request {
            method,
            path: path.to_string(),
            query: parse_query(query),
            headers,
        };
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let reply = {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            handle(&mut state, &request)
        };
        let body = reply.body.to_string();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reason(reply.status),
            body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(if close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        out.push_str(&body);
        if socket.write_all(out.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Unknown",
    }
}

fn handle(state: &mut State, request: &Request) -> Answer {
    let token = request.header("private-token").or_else(|| {
        request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    });
    let authenticated = token.is_some_and(|t| state.tokens.contains(t));
    state.requests.push(Recorded {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        authenticated,
    });
    if !authenticated {
        return message(401, "401 Unauthorized");
    }
    let Some(rest) = request.path.strip_prefix("/api/v4/") else {
        return answer(404, json!({"error": "404 Not Found"}));
    };
    // Split before decoding, so an encoded `/` stays inside its segment (namespaced paths).
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if request.method != "GET" {
        return answer(405, json!({"error": "405 Method Not Allowed"}));
    }
    match segments.as_slice() {
        ["user"] => answer(
            200,
            json!({"id": 1, "username": "airlock", "name": "Airlock"}),
        ),
        ["projects", id] => match find_project(state, id) {
            Some(p) => answer(200, project_json(state, p)),
            None => message(404, "404 Project Not Found"),
        },
        ["projects", id, "groups"] => match find_project(state, id) {
            Some(p) => {
                let groups: Vec<Value> = ancestors(state, p.group)
                    .into_iter()
                    .map(|g| group_json(state, g))
                    .collect();
                paginate(request, groups)
            }
            None => message(404, "404 Project Not Found"),
        },
        ["projects", id, "variables"] => match find_project(state, id) {
            Some(p) => paginate(request, p.variables.iter().map(Variable::to_json).collect()),
            None => message(404, "404 Project Not Found"),
        },
        ["projects", id, "variables", key] => match find_project(state, id) {
            Some(p) => one_variable(request, &p.variables, key),
            None => message(404, "404 Project Not Found"),
        },
        ["groups", id] => match find_group(state, id) {
            Some(g) => answer(200, group_json(state, g)),
            None => message(404, "404 Group Not Found"),
        },
        ["groups", id, "variables"] => match find_group(state, id) {
            Some(g) => paginate(request, g.variables.iter().map(Variable::to_json).collect()),
            None => message(404, "404 Group Not Found"),
        },
        ["groups", id, "variables", key] => match find_group(state, id) {
            Some(g) => one_variable(request, &g.variables, key),
            None => message(404, "404 Group Not Found"),
        },
        _ => answer(404, json!({"error": "404 Not Found"})),
    }
}

fn find_project<'a>(state: &'a State, id: &str) -> Option<&'a Project> {
    state
        .projects
        .iter()
        .find(|p| p.id.to_string() == id || p.full_path == id)
}

fn find_group<'a>(state: &'a State, id: &str) -> Option<&'a Group> {
    state
        .groups
        .iter()
        .find(|g| g.id.to_string() == id || g.full_path == id)
}

/// The group `id` and its ancestors, from the top-level group down.
fn ancestors(state: &State, mut id: Option<u64>) -> Vec<&Group> {
    let mut chain = Vec::new();
    while let Some(g) = id.and_then(|id| state.groups.iter().find(|g| g.id == id)) {
        chain.push(g);
        id = g.parent;
    }
    chain.reverse();
    chain
}

fn group_json(_state: &State, g: &Group) -> Value {
    let name = g.full_path.rsplit('/').next().unwrap_or(&g.full_path);
    json!({
        "id": g.id,
        "name": name,
        "path": name,
        "full_name": g.full_path,
        "full_path": g.full_path,
        "parent_id": g.parent,
    })
}

fn project_json(state: &State, p: &Project) -> Value {
    let name = p.full_path.rsplit('/').next().unwrap_or(&p.full_path);
    let namespace = p
        .group
        .and_then(|id| state.groups.iter().find(|g| g.id == id))
        .map(|g| json!({"id": g.id, "kind": "group", "full_path": g.full_path}))
        .unwrap_or_else(|| json!({"id": 0, "kind": "user", "full_path": "airlock"}));
    json!({
        "id": p.id,
        "name": name,
        "path": name,
        "path_with_namespace": p.full_path,
        "namespace": namespace,
    })
}

fn one_variable(request: &Request, variables: &[Variable], key: &str) -> Answer {
    let scope = request.param("filter[environment_scope]");
    let matching: Vec<&Variable> = variables
        .iter()
        .filter(|v| v.key == key && scope.is_none_or(|s| v.environment_scope == s))
        .collect();
    match matching.as_slice() {
        [] => message(404, "404 Variable Not Found"),
        [one] => answer(200, one.to_json()),
        _ => answer(
            409,
            json!({"message": {"key": ["There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"]}}),
        ),
    }
}

/// One page of `items` with GitLab's pagination headers.
fn paginate(request: &Request, items: Vec<Value>) -> Answer {
    let page: usize = request
        .param("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let per_page: usize = request
        .param("per_page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(20)
        .min(100);
    let total = items.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let host = request.header("host").unwrap_or("127.0.0.1");
    let link = |p: usize| {
        let mut query: Vec<String> = request
            .query
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("page={p}"));
        query.push(format!("per_page={per_page}"));
        format!("http://{host}{}?{}", request.path, query.join("&"))
    };
    let next = (page < total_pages).then_some(page + 1);
    let prev = (page > 1).then(|| (page - 1).min(total_pages));
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("<{}>; rel=\"prev\"", link(p)));
    }
    if let Some(n) = next {
        links.push(format!("<{}>; rel=\"next\"", link(n)));
    }
    links.push(format!("<{}>; rel=\"first\"", link(1)));
    links.push(format!("<{}>; rel=\"last\"", link(total_pages)));
    let opt = |p: Option<usize>| p.map(|p| p.to_string()).unwrap_or_default();
    Answer {
        status: 200,
        headers: vec![
            ("X-Page".into(), page.to_string()),
            ("X-Per-Page".into(), per_page.to_string()),
            ("X-Total".into(), total.to_string()),
            ("X-Total-Pages".into(), total_pages.to_string()),
            ("X-Next-Page".into(), opt(next)),
            ("X-Prev-Page".into(), opt(prev)),
            ("Link".into(), links.join(", ")),
        ],
        body: Value::Array(body),
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
