//! A fault-injecting HTTP/1.1 proxy on `127.0.0.1:0` in front of a backend on 127.0.0.1:
//! it forwards each request to the backend, or answers it with the fault set at that
//! moment, and records every request it gets (path, and whether a fault answered it) so a
//! test can count retries.
//!
//! One request per connection: every answer says `Connection: close` and the connection is
//! closed after it, so a fault set between two requests applies to the next one even when
//! the client pools connections. Request bodies need a `Content-Length`; backend answers
//! need one too (no chunked encoding), which the in-repo fakes always send.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the backend.
    None,
    /// Answer `429 Too Many Requests` with `Retry-After: <seconds>`.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Answer `status` with a short text body.
    Status(u16),
    /// Read the request and never answer; the connection stays open until the client
    /// gives up and closes it.
    Hang,
    /// Answer `200` with headers announcing a JSON body, send its first bytes and close the
    /// connection mid-body.
    CloseMidBody,
    /// Answer `200 application/json` with a body that is not JSON at all.
    Garbage,
    /// Answer `200 application/json` with JSON cut off half-way (complete per its
    /// `Content-Length`, but not parseable).
    TruncatedJson,
}

/// A request the proxy received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path and query as sent.
    pub target: String,
    /// When it arrived.
    pub at: Instant,
    /// Whether a fault answered it (it never reached the backend).
    pub faulted: bool,
}

#[derive(Debug)]
struct State {
    fault: Fault,
    seen: Vec<Seen>,
}

/// A running proxy. Its server thread ends with the process.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `backend` (`host:port` on 127.0.0.1), on its own thread.
    pub fn start(backend: &str) -> FaultProxy {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State {
            fault: Fault::None,
            seen: Vec::new(),
        }));
        let (shared, backend) = (state.clone(), backend.to_string());
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fault proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve(socket, backend.clone(), shared.clone()));
                    }
                });
            })
            .expect("spawning the fault proxy");
        FaultProxy { port, state }
    }

    /// The proxy's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets what the next requests get.
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many requests arrived in `[from, to)`.
    pub fn count_between(&self, from: Instant, to: Instant) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .count()
    }

    /// The requests so far whose path and query contain `needle`.
    pub fn seen_matching(&self, needle: &str) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.target.contains(needle))
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One HTTP message head (start line and headers) and its body.
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    /// The message with `Connection: close` instead of any connection header.
    fn closing(&self) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.head {
            let name = line.split(':').next().unwrap_or_default().trim();
            if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive")
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message (head, then `Content-Length` bytes of body); `None` at a clean EOF.
async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Message>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf[..buf.len() - 4]).into_owned();
    let head: Vec<String> = text.split("\r\n").map(str::to_string).collect();
    let length = head
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).await?;
    Ok(Some(Message { head, body }))
}

async fn serve(mut client: TcpStream, backend: String, state: Arc<Mutex<State>>) {
    let Ok(Some(request)) = read_message(&mut client).await else {
        return;
    };
    let target = request
        .head
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_string();
    let fault = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let fault = s.fault.clone();
        s.seen.push(Seen {
            target,
            at: Instant::now(),
            faulted: fault != Fault::None,
        });
        fault
    };
    let answer = match fault {
        Fault::None => match forward(&backend, &request).await {
            Ok(response) => response.closing(),
            Err(e) => canned(502, &[], &format!("fault proxy: backend failed: {e}")),
        },
        Fault::RateLimited { retry_after_secs } => canned(
            429,
            &[("Retry-After", retry_after_secs.to_string())],
            "{\"message\":\"429 Too Many Requests\"}",
        ),
        Fault::Status(code) => canned(code, &[], "{\"message\":\"injected fault\"}"),
        Fault::Hang => {
            // Hold the connection until the client closes it; nothing is ever written.
            let mut sink = [0u8; 256];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        Fault::CloseMidBody => {
            let body = "{\"key\":\"x\",\"value\":\"the rest never comes";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len() * 4
            );
            let _ = client.write_all(head.as_bytes()).await;
            let _ = client.write_all(body.as_bytes()).await;
            let _ = client.flush().await;
            // Dropping the socket closes it with the body three quarters short.
            return;
        }
        Fault::Garbage => canned(
            200,
            &[],
            "<html><body>502 upstream gateway oops</body></html>\u{0}\u{ff}",
        ),
        Fault::TruncatedJson => canned(200, &[], "{\"variable_type\":\"env_var\",\"key\":\"DB_PA"),
    };
    let _ = client.write_all(&answer).await;
    let _ = client.shutdown().await;
}

async fn forward(backend: &str, request: &Message) -> std::io::Result<Message> {
    let mut upstream =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(backend)).await??;
    upstream.write_all(&request.closing()).await?;
    tokio::time::timeout(Duration::from_secs(30), read_message(&mut upstream))
        .await??
        .ok_or_else(|| std::io::Error::other("the backend closed without answering"))
}

/// A complete response with `status`, extra `headers` and a JSON or text `body`.
fn canned(status: u16, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let reason = match status {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        200 => "OK",
        _ => "Fault",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}
