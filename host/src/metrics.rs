//! The operator's HTTP endpoint for the kubelet and Prometheus (`airlock run --metrics-addr`):
//! `/healthz` (the process answers), `/readyz` (the controllers are running) and `/metrics`
//! with ESO's ExternalSecret metric names, so existing dashboards and alerts keep working:
//!
//! - `externalsecret_sync_calls_total{name,namespace}`: reconciles that tried to sync;
//! - `externalsecret_sync_calls_error{name,namespace}`: those that failed;
//! - `externalsecret_status_condition{name,namespace,condition="Ready",status}`: 1 for the
//!   current status of the Ready condition, 0 for the other.
//!
//! The server is a few lines over Tokio on purpose: it answers `GET` on three paths and
//! nothing else, so it needs no HTTP framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Largest request head read before answering 431.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, Copy)]
struct SyncCounts {
    calls: u64,
    errors: u64,
    ready: bool,
}

/// Counters of the running operator (one per process, see [`global`]).
#[derive(Debug, Default)]
pub struct Metrics {
    external_secrets: Mutex<BTreeMap<(String, String), SyncCounts>>,
    ready: AtomicBool,
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// Records one sync attempt of the ExternalSecret `namespace/name` and its outcome.
    pub fn external_secret_synced(&self, namespace: &str, name: &str, ok: bool) {
        let mut map = self
            .external_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let counts = map
            .entry((namespace.to_string(), name.to_string()))
            .or_default();
        counts.calls += 1;
        if !ok {
            counts.errors += 1;
        }
        counts.ready = ok;
    }

    /// Marks the controllers as running (`/readyz` answers 200 from then on).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the controllers are running.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let map = self
            .external_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let series = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        series(
            &mut out,
            "externalsecret_sync_calls_total",
            "counter",
            "Total number of ExternalSecret sync attempts.",
        );
        for ((ns, name), c) in map.iter() {
            let _ = writeln!(
                out,
                "externalsecret_sync_calls_total{{name=\"{}\",namespace=\"{}\"}} {}",
                escape(name),
                escape(ns),
                c.calls
            );
        }
        series(
            &mut out,
            "externalsecret_sync_calls_error",
            "counter",
            "Total number of failed ExternalSecret sync attempts.",
        );
        for ((ns, name), c) in map.iter() {
            let _ = writeln!(
                out,
                "externalsecret_sync_calls_error{{name=\"{}\",namespace=\"{}\"}} {}",
                escape(name),
                escape(ns),
                c.errors
            );
        }
        series(
            &mut out,
            "externalsecret_status_condition",
            "gauge",
            "The status condition of an ExternalSecret (1 for the current status).",
        );
        for ((ns, name), c) in map.iter() {
            for (status, value) in [("True", c.ready), ("False", !c.ready)] {
                let _ = writeln!(
                    out,
                    "externalsecret_status_condition{{condition=\"Ready\",name=\"{}\",namespace=\"{}\",status=\"{status}\"}} {}",
                    escape(name),
                    escape(ns),
                    u8::from(value)
                );
            }
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Binds `addr`; the returned listener is served by [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers `/healthz`, `/readyz` and `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: &'static Metrics) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Err(e) = answer(stream, metrics).await {
                tracing::debug!(error = %e, "metrics endpoint: connection failed");
            }
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_BYTES {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(head.windows(4).any(|w| w == b"\r\n\r\n"))
    })
    .await
    .unwrap_or(Ok(false))?;
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default());
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (complete, method, path) {
        (false, _, _) => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        (_, "GET", "/healthz") => ("200 OK", "text/plain", "ok\n".into()),
        (_, "GET", "/readyz") if metrics.is_ready() => ("200 OK", "text/plain", "ok\n".into()),
        (_, "GET", "/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "controllers not started\n".into(),
        ),
        (_, "GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (_, "GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_outcomes_are_counted_with_eso_metric_names() {
        let m = Metrics::default();
        m.external_secret_synced("prod", "db", true);
        m.external_secret_synced("prod", "db", false);
        m.external_secret_synced("prod", "db", true);
        let text = m.render();
        assert!(text.contains("externalsecret_sync_calls_total{name=\"db\",namespace=\"prod\"} 3"));
        assert!(text.contains("externalsecret_sync_calls_error{name=\"db\",namespace=\"prod\"} 1"));
        assert!(text.contains(
            "externalsecret_status_condition{condition=\"Ready\",name=\"db\",namespace=\"prod\",status=\"True\"} 1"
        ));
        assert!(text.contains(
            "externalsecret_status_condition{condition=\"Ready\",name=\"db\",namespace=\"prod\",status=\"False\"} 0"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn the_endpoint_answers_health_readiness_and_metrics() {
        let metrics: &'static Metrics = Box::leak(Box::default());
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, metrics));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        metrics.set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        metrics.external_secret_synced("ns", "es", true);
        let body = get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("externalsecret_sync_calls_total{name=\"es\",namespace=\"ns\"} 1"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
