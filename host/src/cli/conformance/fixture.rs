//! A small webhook backend on 127.0.0.1 that answers JSON: what `airlock provider test`
//! runs a `webhook` provider against when no `--store` is given, and what the webhook
//! tests of every language use. `GET /secrets/<key>` with `Authorization: Bearer <token>`
//! answers `{"value": "<text>"}` for a known key, 404 for an unknown one, 401 for a wrong
//! token, and 500 for everything while failing is switched on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head the server reads.
const MAX_HEAD: usize = 64 << 10;

struct State {
    token: String,
    values: Mutex<BTreeMap<String, String>>,
    failing: AtomicBool,
    requests: AtomicUsize,
}

/// A running webhook backend; it stops when dropped.
pub struct WebhookServer {
    port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WebhookServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookServer {
    /// Starts the server on a free port of 127.0.0.1; requests need `Bearer <token>`.
    pub async fn start(token: &str) -> std::io::Result<WebhookServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            token: token.to_string(),
            values: Mutex::default(),
            failing: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
        });
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, &state).await;
                });
            }
        });
        Ok(WebhookServer { port, state, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the text served for `key`.
    pub fn set(&self, key: &str, value: &str) {
        self.state
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), value.to_string());
    }

    /// Answers 500 to every request while `failing`.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// Decodes a query-escaped path segment (`+` is a space, `%XX` a byte).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve(mut sock: TcpStream, state: &State) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if buf.len() > MAX_HEAD {
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + length);
        state.requests.fetch_add(1, Ordering::SeqCst);
        let target = head.split_whitespace().nth(1).unwrap_or("/");
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let (status, body) = if state.failing.load(Ordering::SeqCst) {
            (
                "500 Internal Server Error",
                r#"{"error":"failing on purpose"}"#.to_string(),
            )
        } else if header("authorization").as_deref() != Some(&format!("Bearer {}", state.token)) {
            ("401 Unauthorized", r#"{"error":"bad token"}"#.to_string())
        } else {
            let value = path.strip_prefix("/secrets/").and_then(|key| {
                state
                    .values
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&unescape(key))
                    .cloned()
            });
            match value {
                Some(v) => ("200 OK", serde_json::json!({ "value": v }).to_string()),
                None => ("404 Not Found", r#"{"error":"no such secret"}"#.to_string()),
            }
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(response.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn query_escaped_keys_decode() {
        assert_eq!(unescape("conformance%2Fpresent"), "conformance/present");
        assert_eq!(unescape("a+b%zz%"), "a b%zz%");
    }
}
