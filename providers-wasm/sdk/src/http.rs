//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request goes through the host, which checks it against the Provider's
//! outbound-host grant, resolves DNS, refuses private addresses that were not granted,
//! applies the store's TLS settings and bounds the response size. A request the host
//! refuses comes back as [`Error::Unavailable`] naming the URL; the host adds its reason
//! to the operation's error. Redirects are followed here, each hop as a new request that
//! the host checks again.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::Error;

/// How many redirects [`send`] follows before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// An HTTP request.
#[derive(Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, … (upper case).
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
    /// How long to wait for the response head; `None` leaves it to the call's deadline.
    /// The host never waits longer than that deadline, whatever is asked here.
    pub first_byte_timeout: Option<std::time::Duration>,
}

// Requests carry credentials (Authorization headers, signed bodies): never print them.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("first_byte_timeout", &self.first_byte_timeout)
            .finish()
    }
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_string(),
            url: url.into(),
            ..Default::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Gives up when the response head has not arrived within `timeout`.
    pub fn first_byte_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.first_byte_timeout = Some(timeout);
        self
    }
}

/// An HTTP response with its whole body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Response {
    /// The first value of header `name` (case-insensitive) as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `<vendor> answered <status> to <what>`, then `: <message>` when the backend said one:
    /// the text of an error about this answer.
    pub fn describe(&self, vendor: &str, what: &str, message: &str) -> String {
        if message.is_empty() {
            format!("{vendor} answered {} to {what}", self.status)
        } else {
            format!("{vendor} answered {} to {what}: {message}", self.status)
        }
    }

    /// `Retry-After` in milliseconds, when it is given in seconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000))
    }

    /// The error for a failed answer by its status class: 400 a bad request, 401 and 403
    /// access denied, 429 rate limited (with `Retry-After`), 5xx unavailable, anything else
    /// other. A provider matches its API's own meanings of other statuses before this.
    pub fn status_error(&self, text: String) -> Error {
        match self.status {
            400 => Error::invalid_request(text),
            401 | 403 => Error::access_denied(text),
            429 => Error::rate_limited(text, self.retry_after_ms()),
            500..=599 => Error::unavailable(text),
            _ => Error::other(text),
        }
    }
}

/// Sends `request`, following up to [`MAX_REDIRECTS`] redirects.
pub fn send(request: &Request) -> Result<Response, Error> {
    let mut current = request.clone();
    for _ in 0..=MAX_REDIRECTS {
        let response = send_once(&current)?;
        if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(response);
        }
        let Some(location) = response.header("location") else {
            return Ok(response);
        };
        redirect(&mut current, location);
        if response.status == 303 {
            current.method = "GET".into();
            current.body.clear();
        }
    }
    Err(Error::unavailable(format!(
        "too many redirects starting at {}",
        request.url
    )))
}

/// Sends exactly one request, without following redirects.
pub fn send_once(request: &Request) -> Result<Response, Error> {
    let url = Url::parse(&request.url)?;
    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| Error::other(format!("invalid header {name:?}: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let invalid = |what: &str| Error::other(format!("invalid {what} in {}", request.url));
    outgoing
        .set_method(&method)
        .map_err(|_| invalid("method"))?;
    outgoing
        .set_scheme(Some(&url.scheme))
        .map_err(|_| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&url.authority))
        .map_err(|_| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|_| invalid("path"))?;

    // The body is written and finished before `handle`, so the host finds the request
    // complete and sends it on the calling task (no spawn, no cross-task wake-up). A
    // request without a body never takes the body resource at all.
    if !request.body.is_empty() {
        let body = outgoing
            .body()
            .map_err(|_| Error::other("request body already taken"))?;
        let stream = body
            .write()
            .map_err(|_| Error::other("request body stream already taken"))?;
        for chunk in request.body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| {
                Error::unavailable(format!("writing the body for {}: {e:?}", request.url))
            })?;
        }
        drop(stream);
        OutgoingBody::finish(body, None).map_err(|e| describe(&request.url, &e))?;
    }
    let options = match request.first_byte_timeout {
        Some(timeout) => {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            options
                .set_first_byte_timeout(Some(nanos))
                .map_err(|()| Error::other("the host refused a first-byte timeout"))?;
            Some(options)
        }
        None => None,
    };
    let future =
        outgoing_handler::handle(outgoing, options).map_err(|e| describe(&request.url, &e))?;

    let incoming = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let incoming = incoming
        .map_err(|()| Error::other("response already taken"))?
        .map_err(|e| describe(&request.url, &e))?;

    let status = incoming.status();
    let headers: Vec<(String, Vec<u8>)> = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let body_resource = incoming
        .consume()
        .map_err(|()| Error::other("response body already taken"))?;
    let stream = body_resource
        .stream()
        .map_err(|()| Error::other("response body stream already taken"))?;
    let declared: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok());
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(1 << 20));
    // Each step is a host call, so: read what is there before blocking (the host has
    // usually read a small body whole already), and stop at the declared length instead of
    // asking once more only to hear that the stream is closed.
    while declared.is_none_or(|n| body.len() < n) {
        let chunk = match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => stream.blocking_read(64 * 1024),
            other => other,
        };
        match chunk {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::unavailable(format!(
                    "reading the response from {}: {}",
                    request.url,
                    e.to_debug_string()
                )));
            }
        }
    }
    drop(stream);
    drop(body_resource);
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Turns a wasi:http error code into the contract's error.
fn describe(url: &str, code: &ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::unavailable(format!(
            "the host denied the request to {url} (outbound host not granted to this provider)"
        )),
        ErrorCode::DestinationIpProhibited => Error::unavailable(format!(
            "the host refused to connect to {url}: its address is private and not granted"
        )),
        ErrorCode::HttpResponseBodySize(_) => Error::unavailable(format!(
            "the response from {url} is larger than the host allows"
        )),
        other => Error::unavailable(format!("request to {url} failed: {other:?}")),
    }
}

struct Url {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::invalid_config(format!("not an absolute URL: {url:?}")))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(Error::invalid_config(format!(
                    "unsupported URL scheme {other:?} in {url:?}"
                )));
            }
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(Error::invalid_config(format!("no host in URL {url:?}")));
        }
        let path_with_query = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

/// Headers that carry a credential, or a signature over one, for the host they were meant for.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-vault-token",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Points `request` at `location`. A redirect to another scheme, host or port drops the
/// credential headers, so a backend (or whoever controls its `Location`) cannot forward a
/// token to a host it was not meant for.
fn redirect(request: &mut Request, location: &str) {
    let next = resolve_location(&request.url, location);
    if origin(&next) != origin(&request.url) {
        request
            .headers
            .retain(|(name, _)| !CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()));
    }
    request.url = next;
}

/// `scheme://authority` of `url`, lowercased.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

/// Resolves a `Location` header against the URL it came from.
fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if let Some(path) = location.strip_prefix('/') {
        format!("{scheme}://{authority}/{path}")
    } else {
        let dir = rest
            .split('?')
            .next()
            .and_then(|p| p.rsplit_once('/'))
            .map(|(d, _)| d)
            .unwrap_or(authority);
        format!("{scheme}://{dir}/{location}")
    }
}

/// Percent-encodes one URL path segment or query value (RFC 3986 unreserved kept).
pub fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body of `fields`, each name and value encoded
/// by [`encode`].
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let u = Url::parse("https://vault.corp:8200/v1/secret?list=true").unwrap();
        assert!(matches!(u.scheme, Scheme::Https));
        assert_eq!(u.authority, "vault.corp:8200");
        assert_eq!(u.path_with_query, "/v1/secret?list=true");
        assert_eq!(Url::parse("http://h").unwrap().path_with_query, "/");
        assert!(Url::parse("ftp://h/x").is_err());
        assert!(Url::parse("no-scheme").is_err());
    }

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        assert_eq!(resolve_location("http://a:1/x/y?q", "/z"), "http://a:1/z");
        assert_eq!(resolve_location("http://a:1/x/y", "z"), "http://a:1/x/z");
        assert_eq!(
            resolve_location("http://a:1/x", "https://evil/"),
            "https://evil/"
        );
    }

    #[test]
    fn a_cross_origin_redirect_drops_credential_headers_and_a_same_origin_one_keeps_them() {
        let signed = || {
            Request::new("GET", "https://vault.corp:8200/v1/secret/a")
                .header("X-Vault-Token", "s.token")
                .header("Authorization", "Bearer t")
                .header("X-Amz-Security-Token", "sts")
                .header("Accept", "application/json")
        };
        let names = |r: &Request| r.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();

        let mut same = signed();
        redirect(&mut same, "/v1/secret/b");
        assert_eq!(same.url, "https://vault.corp:8200/v1/secret/b");
        assert_eq!(names(&same).len(), 4);

        for elsewhere in [
            "https://evil.example/steal",
            "https://vault.corp:8443/v1/secret/a",
            "http://vault.corp:8200/v1/secret/a",
        ] {
            let mut moved = signed();
            redirect(&mut moved, elsewhere);
            assert_eq!(moved.url, elsewhere);
            assert_eq!(names(&moved), ["Accept"], "{elsewhere}");
        }
    }

    #[test]
    fn encode_keeps_unreserved_characters_only() {
        assert_eq!(encode("a b/c~d"), "a%20b%2Fc~d");
    }
}
