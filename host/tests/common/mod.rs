//! Shared helpers of the runtime tests: a runtime with the built components, store
//! contexts, and a small HTTP/1.1 server on 127.0.0.1.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use airlock::backend::{Backend, BackendError, RemoteRef, StoreContext, StoreInfo, StoreKind};
use airlock::runtime::{
    Credentials, EngineConfig, Grants, Runtime, StaticCredentials, TlsSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A precompiled-component cache shared by the tests of one binary.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("airlock-test-cache-{}", std::process::id()))
}

pub fn runtime_with(credentials: StaticCredentials) -> Runtime {
    let creds: Credentials = Arc::new(credentials);
    let config = EngineConfig {
        cache_dir: Some(cache_dir()),
        ..EngineConfig::default()
    };
    Runtime::new(&config, creds).expect("runtime starts")
}

pub fn runtime() -> Runtime {
    runtime_with(StaticCredentials::default())
}

pub async fn install(runtime: &Runtime, name: &str, path: &str, grants: Grants) {
    runtime
        .install(name, &airlock_test_artifacts::read(path), grants)
        .await
        .unwrap_or_else(|e| panic!("installing {name}: {e}"));
}

pub fn store(provider: &str, name: &str, config: serde_json::Value) -> StoreContext {
    StoreContext {
        provider: provider.into(),
        config,
        info: StoreInfo {
            kind: StoreKind::SecretStore,
            name: name.into(),
            namespace: "team-a".into(),
        },
        tls: TlsSettings::default(),
    }
}

/// Reads one key and returns it as text.
pub async fn get(
    runtime: &Runtime,
    store: &StoreContext,
    key: &str,
) -> Result<Option<String>, BackendError> {
    get_ref(runtime, store, RemoteRef::key(key)).await
}

/// Reads one reference (version, property, …) and returns it as text (lossy UTF-8).
pub async fn get_ref(
    runtime: &Runtime,
    store: &StoreContext,
    reference: RemoteRef,
) -> Result<Option<String>, BackendError> {
    let mut results = runtime.get_secrets(store, &[reference]).await?;
    let one = results.pop().expect("one result per ref");
    Ok(one?.map(|v| String::from_utf8_lossy(v.expose()).into_owned()))
}

/// A tiny HTTP/1.1 server with keep-alive:
/// `/ok` → "hello"; `/redirect?to=URL` → 302; `/big` → 8 MiB with Content-Length;
/// `/stream` → 8 MiB chunked; `/echo` → the request body; `/slow` → answers after 5 s.
pub struct TestServer {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub async fn serve() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Some(end) = find_end(&buf) else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..end + 4 + length).skip(end + 4).collect();
                    r.fetch_add(1, Ordering::SeqCst);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    if respond(&mut sock, &path, &body).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    TestServer {
        port,
        connections,
        requests,
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

async fn respond(sock: &mut tokio::net::TcpStream, path: &str, body: &[u8]) -> std::io::Result<()> {
    const BIG: usize = 8 << 20;
    if let Some(to) = path.strip_prefix("/redirect?to=") {
        let head = format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
        return sock.write_all(head.as_bytes()).await;
    }
    // The query never picks the route (tests put tokens there).
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    match route {
        "/ok" => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                .await
        }
        "/echo" => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(body).await
        }
        "/big" => {
            sock.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").as_bytes())
                .await?;
            sock.write_all(&vec![b'x'; BIG]).await
        }
        "/stream" => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = vec![b'y'; 1 << 20];
            for _ in 0..(BIG >> 20) {
                sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                sock.write_all(&chunk).await?;
                sock.write_all(b"\r\n").await?;
            }
            sock.write_all(b"0\r\n\r\n").await
        }
        "/slow" => {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
                .await
        }
        _ => {
            sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await
        }
    }
}
