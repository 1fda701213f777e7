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

/// Appends `section` with id `id` to a component's bytes.
pub fn append_section(wasm: &mut Vec<u8>, id: u8, section: &[u8]) {
    wasm.push(id);
    leb128(wasm, section.len() as u32);
    wasm.extend_from_slice(section);
}

pub fn leb128(out: &mut Vec<u8>, mut n: u32) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The hostile component with `count` more core instances, each of a module holding one
/// linear memory of `pages` 64 KiB pages (none when `None`): a component as any toolchain
/// could emit it.
pub fn hostile_with_instances(count: u32, pages: Option<u32>) -> Vec<u8> {
    let mut wasm = airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE);
    // The new module's index is the number of core modules already defined at top level.
    let (mut at, mut modules) = (8, 0u32);
    while at < wasm.len() {
        let id = wasm[at];
        let (mut size, mut shift) = (0usize, 0);
        at += 1;
        loop {
            let b = wasm[at];
            at += 1;
            size |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        modules += u32::from(id == 1);
        at += size;
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    if let Some(pages) = pages {
        let mut memory = vec![1, 0x00];
        leb128(&mut memory, pages);
        append_section(&mut module, 5, &memory);
    }
    append_section(&mut wasm, 1, &module);
    let mut instances = Vec::new();
    leb128(&mut instances, count);
    for _ in 0..count {
        instances.push(0x00);
        leb128(&mut instances, modules);
        instances.push(0);
    }
    append_section(&mut wasm, 2, &instances);
    wasm
}
