//! Requests to the Vault HTTP API: the headers every request carries and how Vault's
//! answers map onto the contract's errors.

use std::cell::RefCell;

use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{Error, cache};
use serde_json::Value as Json;

use crate::config::Config;

/// Cache key of the last `X-Vault-Index` seen (`readYourWrites`).
const INDEX_KEY: &str = "vault-index";
/// How long a remembered index is useful.
const INDEX_TTL_MS: u64 = 10 * 60 * 1000;

/// A Vault server as one store sees it.
#[derive(Debug)]
pub struct Api {
    server: String,
    namespace: Option<String>,
    headers: Vec<(String, String)>,
    read_your_writes: bool,
    forward_inconsistent: bool,
    index: RefCell<Option<String>>,
}

/// What one request is: method, API path below `/v1/`, body and the namespace to use.
#[derive(Debug)]
pub struct Call<'a> {
    /// `GET`, `POST`, `LIST`, `DELETE`.
    pub method: &'a str,
    /// The API path, e.g. `secret/data/app`.
    pub path: &'a str,
    /// JSON body.
    pub body: Option<Json>,
    /// The namespace header; `None` uses the store's.
    pub namespace: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A call without a body.
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Call {
            method,
            path,
            body: None,
            namespace: None,
        }
    }

    /// With a JSON body.
    pub fn json(mut self, body: Json) -> Self {
        self.body = Some(body);
        self
    }
}

impl Api {
    /// The API of the configured server.
    pub fn new(config: &Config) -> Self {
        Api {
            server: config.server.clone(),
            namespace: config.namespace.clone(),
            headers: config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            read_your_writes: config.read_your_writes,
            forward_inconsistent: config.forward_inconsistent,
            index: RefCell::new(None),
        }
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends `call` with `token`; returns the response whatever its status.
    pub fn send(&self, call: &Call<'_>, token: Option<&str>) -> Result<Response, Error> {
        let url = format!("{}/v1/{}", self.server, call.path);
        let mut request = Request::new(call.method, url.clone()).header("X-Vault-Request", "true");
        for (name, value) in &self.headers {
            request = request.header(name, value.clone());
        }
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(ns) = call.namespace.or(self.namespace.as_deref()) {
            request = request.header("X-Vault-Namespace", ns);
        }
        if self.forward_inconsistent {
            request = request.header("X-Vault-Inconsistent", "forward-active-node");
        }
        if self.read_your_writes
            && let Some(index) = self.last_index()
        {
            request = request.header("X-Vault-Index", index);
        }
        if let Some(body) = &call.body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = http::send(&request).map_err(|e| self.explain_refusal(e))?;
        if self.read_your_writes
            && let Some(index) = response.header("x-vault-index")
        {
            *self.index.borrow_mut() = Some(index.to_string());
            cache::set(INDEX_KEY, index.as_bytes(), INDEX_TTL_MS);
        }
        Ok(response)
    }

    fn last_index(&self) -> Option<String> {
        if let Some(index) = self.index.borrow().clone() {
            return Some(index);
        }
        cache::get(INDEX_KEY).and_then(|b| String::from_utf8(b).ok())
    }

    /// Adds to a host refusal which grant the admin must add.
    fn explain_refusal(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) if m.contains("denied the request") => {
                Error::Unavailable(format!(
                    "{m}; to use this Vault server, add {} to spec.allowedOutboundHosts of the Provider \"vault\"",
                    origin(&self.server)
                ))
            }
            other => other,
        }
    }
}

/// `scheme://host:port` of a URL, with the scheme's default port made explicit.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']'));
    if has_port {
        format!("{scheme}://{authority}")
    } else {
        let port = if scheme == "http" { 80 } else { 443 };
        format!("{scheme}://{authority}:{port}")
    }
}

/// Vault's `errors` array, joined, or the body's start when it has none.
pub fn messages(response: &Response) -> String {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    let joined = |field: &str| {
        let list: Vec<&str> = parsed
            .as_ref()
            .and_then(|j| j.get(field))
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        (!list.is_empty()).then(|| list.join("; "))
    };
    if let Some(text) = joined("errors").or_else(|| joined("warnings")) {
        return text;
    }
    String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
        .trim()
        .to_string()
}

/// The contract error for a non-2xx answer to `what`.
pub fn error(what: &str, response: &Response) -> Error {
    let text = response.describe("vault", what, &messages(response));
    match response.status {
        412 => Error::unavailable(text),
        _ => response.status_error(text),
    }
}

/// Parses a JSON body.
pub fn body(what: &str, response: &Response) -> Result<Json, Error> {
    serde_json::from_slice(&response.body)
        .map_err(|e| Error::other(format!("vault's answer to {what} is not JSON ({e})")))
}

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
    fn vault_errors_keep_their_message_and_map_by_status() {
        let denied = error(
            "GET secret/data/x",
            &response(403, r#"{"errors":["permission denied"]}"#),
        );
        assert!(
            matches!(&denied, Error::AccessDenied(m) if m == "vault answered 403 to GET secret/data/x: permission denied"),
            "{denied:?}"
        );
        assert!(matches!(
            error("x", &response(429, "{}")),
            Error::RateLimited(_)
        ));
        assert!(matches!(
            error("x", &response(503, r#"{"errors":["Vault is sealed"]}"#)),
            Error::Unavailable(m) if m.contains("sealed")
        ));
    }

    #[test]
    fn messages_prefer_errors_then_warnings_then_the_body() {
        let both = r#"{"errors":["a","b"],"warnings":["w"]}"#;
        assert_eq!(messages(&response(400, both)), "a; b");
        assert_eq!(
            messages(&response(400, r#"{"warnings":["w1","w2"]}"#)),
            "w1; w2"
        );
        assert_eq!(messages(&response(502, "  bad gateway \n")), "bad gateway");
    }

    #[test]
    fn origins_name_the_port_to_grant() {
        assert_eq!(origin("https://vault.corp"), "https://vault.corp:443");
        assert_eq!(origin("http://127.0.0.1:8200/x"), "http://127.0.0.1:8200");
    }
}
