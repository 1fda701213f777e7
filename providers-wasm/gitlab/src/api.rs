//! Requests to the GitLab REST API v4: the token header, pagination and how GitLab's
//! answers map onto the contract's errors.

use std::cell::RefCell;

use airlock_provider_sdk::Error;
use airlock_provider_sdk::credentials::{self, CredentialError, KeySelector as WitKey};
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::paging::for_each_page;
use serde_json::Value as Json;

use crate::config::{Config, KeySelector};

/// Items per page of a listing (GitLab's maximum).
pub const PER_PAGE: usize = 100;
/// Pages of one listing before giving up (100 000 variables).
pub const MAX_PAGES: usize = 1000;

/// A GitLab instance as one store sees it.
#[derive(Debug)]
pub struct Api {
    base: String,
    token_ref: KeySelector,
    // Read from the host on first use, so `open` stays offline.
    token: RefCell<Option<String>>,
}

impl Api {
    /// The API of the configured instance.
    pub fn new(config: &Config) -> Self {
        Api {
            base: config.url.clone(),
            token_ref: config.token.clone(),
            token: RefCell::new(None),
        }
    }

    fn token(&self) -> Result<String, Error> {
        if let Some(token) = self.token.borrow().as_ref() {
            return Ok(token.clone());
        }
        let bytes = credentials::secret_key(&WitKey {
            name: self.token_ref.name.clone(),
            key: self.token_ref.key.clone(),
            namespace: self.token_ref.namespace.clone(),
        })
        .map_err(|e| {
            let field = "auth.SecretRef.accessToken";
            match e {
                CredentialError::Denied(m) => Error::access_denied(format!("{field}: {m}")),
                CredentialError::NotFound(m) => Error::invalid_config(format!("{field}: {m}")),
                CredentialError::Unavailable(m) => Error::unavailable(format!("{field}: {m}")),
            }
        })?;
        let token = String::from_utf8(bytes)
            .map_err(|_| Error::invalid_config("auth.SecretRef.accessToken is not UTF-8"))?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(Error::invalid_config("auth.SecretRef.accessToken is empty"));
        }
        *self.token.borrow_mut() = Some(token.clone());
        Ok(token)
    }

    /// `GET /api/v4/<path_and_query>`; returns the response whatever its status.
    pub fn get(&self, path_and_query: &str) -> Result<Response, Error> {
        self.get_url(&format!("{}/api/v4/{path_and_query}", self.base))
    }

    fn get_url(&self, url: &str) -> Result<Response, Error> {
        let request = Request::new("GET", url)
            .header("Accept", "application/json")
            .header("PRIVATE-TOKEN", self.token()?);
        http::send(&request).map_err(|e| match e {
            Error::Unavailable(m) if m.contains("denied the request") => Error::Unavailable(format!(
                "{m}; to use this GitLab instance, add {} to spec.allowedOutboundHosts of the Provider \"gitlab\"",
                origin(&self.base)
            )),
            other => other,
        })
    }

    /// Every item of the listing at `path` (no query), following GitLab's pagination:
    /// `X-Next-Page`, or the `Link` header's `next` on this instance when that is absent.
    pub fn list(&self, path: &str) -> Result<Vec<Json>, Error> {
        let first = format!("{}/api/v4/{path}?per_page={PER_PAGE}", self.base);
        let mut items = Vec::new();
        let mut pages = 0;
        for_each_page(|next: Option<&str>| {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Error::other(format!(
                    "GET {path}: more than {MAX_PAGES} pages of {PER_PAGE}; giving up"
                )));
            }
            let url = next.unwrap_or(&first).to_string();
            let response = self.get_url(&url)?;
            if !response.is_success() {
                return Err(error(&format!("GET {path}"), &response));
            }
            match body(&format!("GET {path}"), &response)? {
                Json::Array(page) => items.extend(page),
                _ => {
                    return Err(Error::other(format!(
                        "GET {path}: the answer is not a list"
                    )));
                }
            }
            Ok(self.next_page(path, &response))
        })?;
        Ok(items)
    }

    fn next_page(&self, path: &str, response: &Response) -> Option<String> {
        if let Some(page) = response
            .header("x-next-page")
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let page: u64 = page.parse().ok()?;
            return Some(format!(
                "{}/api/v4/{path}?per_page={PER_PAGE}&page={page}",
                self.base
            ));
        }
        // Without X-Next-Page (GitLab drops it for very large listings), follow `Link`,
        // but only to this instance: the token must not travel elsewhere.
        let link = response.header("link")?;
        link.split(',').find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
            let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            (is_next && url.starts_with(&format!("{}/api/v4/", self.base))).then(|| url.to_string())
        })
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

/// GitLab's `message` (a string, or an object of field errors) or `error`, else the body's
/// start.
pub fn message(response: &Response) -> String {
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    let field = parsed
        .as_ref()
        .and_then(|j| j.get("message").or_else(|| j.get("error")));
    match field {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            .trim()
            .to_string(),
    }
}

/// Whether a 404 says the variable is absent (rather than the project or group).
pub fn is_missing_variable(response: &Response) -> bool {
    response.status == 404 && message(response).contains("Variable Not Found")
}

/// The contract error for a non-2xx answer to `what`.
pub fn error(what: &str, response: &Response) -> Error {
    let text = response.describe("gitlab", what, &message(response));
    match response.status {
        // GitLab hides what a token may not see behind a 404.
        404 => Error::access_denied(format!(
            "{text} (it does not exist or the token cannot see it)"
        )),
        409 => Error::invalid_config(format!(
            "{text} (the variable exists for several environment scopes: set spec.provider.gitlab.environment)"
        )),
        _ => response.status_error(text),
    }
}

/// Parses a JSON body.
pub fn body(what: &str, response: &Response) -> Result<Json, Error> {
    serde_json::from_slice(&response.body)
        .map_err(|e| Error::other(format!("gitlab's answer to {what} is not JSON ({e})")))
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
    fn gitlab_errors_keep_their_message_and_map_by_status() {
        let denied = error(
            "GET projects/1/variables/A",
            &response(401, r#"{"message":"401 Unauthorized"}"#),
        );
        assert!(
            matches!(&denied, Error::AccessDenied(m) if m == "gitlab answered 401 to GET projects/1/variables/A: 401 Unauthorized"),
            "{denied:?}"
        );
        assert!(matches!(
            error("x", &response(429, "{}")),
            Error::RateLimited(_)
        ));
        assert!(
            matches!(error("x", &response(502, "bad gateway")), Error::Unavailable(m) if m.ends_with("bad gateway"))
        );
        let conflict = error("x", &response(409, r#"{"message":{"key":["multiple"]}}"#));
        assert!(matches!(conflict, Error::InvalidConfig(m) if m.contains("environment")));
    }

    #[test]
    fn only_a_variable_404_means_absent() {
        assert!(is_missing_variable(&response(
            404,
            r#"{"message":"404 Variable Not Found"}"#
        )));
        assert!(!is_missing_variable(&response(
            404,
            r#"{"message":"404 Project Not Found"}"#
        )));
    }

    #[test]
    fn the_link_header_is_followed_only_on_this_instance() {
        let api = Api {
            base: "https://git.corp".into(),
            token_ref: KeySelector {
                name: "n".into(),
                key: "k".into(),
                namespace: None,
            },
            token: RefCell::new(None),
        };
        let with_link = |link: &str| Response {
            status: 200,
            headers: vec![("link".into(), link.as_bytes().to_vec())],
            body: vec![],
        };
        let ours = with_link(
            r#"<https://git.corp/api/v4/projects/1/variables?page=2>; rel="next", <https://git.corp/api/v4/projects/1/variables?page=9>; rel="last""#,
        );
        assert_eq!(
            api.next_page("projects/1/variables", &ours).as_deref(),
            Some("https://git.corp/api/v4/projects/1/variables?page=2")
        );
        let theirs = with_link(r#"<https://evil.example/api/v4/x?page=2>; rel="next""#);
        assert_eq!(api.next_page("projects/1/variables", &theirs), None);
        let numbered = Response {
            status: 200,
            headers: vec![("x-next-page".into(), b"3".to_vec())],
            body: vec![],
        };
        assert_eq!(
            api.next_page("groups/7/variables", &numbered).as_deref(),
            Some("https://git.corp/api/v4/groups/7/variables?per_page=100&page=3")
        );
    }
}
