//! Runtime benchmark: prints a table of per-call overhead with a fresh instance, cold
//! compile versus cached precompiled load, and a guest HTTP round trip through the host's
//! pooled connector versus the same request from native reqwest with keep-alive.
//!
//! `cargo bench -p airlock --bench runtime` (or `make bench`). `AIRLOCK_BENCH_CALLS`
//! sets the sample count (default 3000); `AIRLOCK_BENCH_ONLY=<row>` runs mostly one row
//! (`local`, `guest-http`, `guest-http-ten`, `native-http`, `native-http-ten`), for
//! `perf stat` / `perf record`.
//!
//! Everything is measured from a task on a two-worker runtime, as the operator's
//! reconcilers run (`AIRLOCK_BENCH_ON=main` measures from the thread blocking on the
//! runtime instead, as the CLI's one-shot `provider run` does). The HTTP server runs on
//! the same runtime, so a native round trip never leaves the thread: the rows compare CPU
//! cost, not the machine's thread wake-up latency, which on this VM varies run to run by
//! more than the whole difference being measured.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::backend::{Backend, RemoteRef};
use airlock::runtime::{Credentials, EngineConfig, Grants, Limits, Runtime, StaticCredentials};
use serde_json::json;

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn time_calls<F, Fut>(n: usize, mut f: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..(n / 10).max(10) {
        f().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    stats(samples)
}

fn row(what: &str, s: &Stats, target: &str) {
    println!(
        "| {what:<58} | {:>10} | {:>10} | {:>10} | {target:<14} |",
        us(s.p50),
        us(s.p99),
        us(s.mean)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // reqwest is built without a default crypto provider; the host uses ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The operator's reconcilers run as tasks on the runtime's workers, not on the thread
    // that blocks on the runtime; so does everything measured here, native or guest.
    // `AIRLOCK_BENCH_ON=main` measures from the thread blocking on the runtime instead, as
    // the CLI's one-shot `provider run` does.
    if std::env::var("AIRLOCK_BENCH_ON").as_deref() == Ok("main") {
        bench().await;
    } else {
        tokio::spawn(bench()).await.expect("benchmark task");
    }
}

/// The HTTP rows against one server.
struct HttpRows {
    guest: Stats,
    native: Stats,
    guest_ten: Stats,
    native_ten: Stats,
}

impl HttpRows {
    fn print(&self, target: &str) {
        row(
            "guest HTTP GET via host pooled connector (fresh instance)",
            &self.guest,
            target,
        );
        row("native reqwest GET, keep-alive", &self.native, "");
        row(
            "guest HTTP, 10 GETs in one call (one instance)",
            &self.guest_ten,
            "",
        );
        row("native reqwest, 10 sequential GETs", &self.native_ten, "");
    }

    fn summary(&self) {
        let ratio = self.guest.p50.as_secs_f64() / self.native.p50.as_secs_f64();
        let ratio_ten = self.guest_ten.p50.as_secs_f64() / self.native_ten.p50.as_secs_f64();
        let marginal = (self.guest_ten.p50.as_secs_f64() - self.guest.p50.as_secs_f64()) / 9.0;
        println!(
            "guest/native HTTP p50: {ratio:.2}× for one request per call \
             ({} more); {ratio_ten:.2}× for ten \
             (one more guest request {:.1} µs, one native request {:.1} µs)",
            us(self.guest.p50.saturating_sub(self.native.p50)),
            marginal * 1e6,
            self.native_ten.p50.as_secs_f64() * 1e5,
        );
    }
}

async fn http_rows(
    rt: &Runtime,
    provider: &str,
    server: &common::TestServer,
    n_for: &impl Fn(&str) -> usize,
) -> HttpRows {
    let store = common::store(provider, &format!("bench-{provider}"), json!({}));
    let url = server.url("/ok");
    let one = [RemoteRef::key(format!("http:{url}"))];
    let ten: Vec<RemoteRef> = (0..10).map(|_| one[0].clone()).collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .build()
        .expect("reqwest");
    let native_get = || async {
        let body = client
            .get(&url)
            .send()
            .await
            .expect("send")
            .bytes()
            .await
            .expect("body");
        assert_eq!(&body[..], b"hello");
    };
    let guest = time_calls(n_for("guest-http"), || async {
        let r = rt.get_secrets(&store, &one).await.expect("call");
        assert!(r[0].is_ok());
    })
    .await;
    // Ten requests in one call: one fresh instance, so (ten - one) / 9 is what one more
    // request costs through the sandbox, without the per-call instance cost.
    let guest_ten = time_calls(n_for("guest-http-ten") / 10, || async {
        let r = rt.get_secrets(&store, &ten).await.expect("call");
        assert!(r.iter().all(Result::is_ok));
    })
    .await;
    let native = time_calls(n_for("native-http"), native_get).await;
    let native_ten = time_calls(n_for("native-http-ten") / 10, || async {
        for _ in 0..10 {
            native_get().await;
        }
    })
    .await;
    HttpRows {
        guest,
        native,
        guest_ten,
        native_ten,
    }
}

async fn bench() {
    let n: usize = std::env::var("AIRLOCK_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let only = std::env::var("AIRLOCK_BENCH_ONLY").ok();
    let n_for = |row: &str| match &only {
        Some(o) if o != row => 20,
        _ => n,
    };
    let n_local = n_for("local");
    let creds: Credentials = Arc::new(StaticCredentials::default());
    let fake = airlock_test_artifacts::read(airlock_test_artifacts::FAKE);
    let hostile = airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE);

    // Compile versus cached load.
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = EngineConfig {
        cache_dir: Some(dir.path().into()),
        ..EngineConfig::default()
    };
    let cold_rt = Runtime::new(&engine, creds.clone()).expect("runtime");
    let t = Instant::now();
    cold_rt
        .install("fake", &fake, Grants::none())
        .await
        .expect("install");
    let cold = t.elapsed();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let rt = Runtime::new(&engine, creds.clone()).expect("runtime");
        let t = Instant::now();
        rt.install("fake", &fake, Grants::none())
            .await
            .expect("install");
        warm.push(t.elapsed());
    }
    let warm = stats(warm);

    // Per-call overhead: fake provider, no network, fresh instance per call.
    let rt = cold_rt;
    let store = common::store(
        "fake",
        "bench",
        json!({"data": [{"key": "db", "value": "{\"password\":\"s3cr3t\"}"}]}),
    );
    let ping = time_calls(n_local, || async {
        rt.ping("fake").await.expect("ping");
    })
    .await;
    let one = [RemoteRef::key("db").property("password")];
    let call = time_calls(n_local, || async {
        let r = rt.get_secrets(&store, &one).await.expect("call");
        assert!(r[0].as_ref().expect("ok").is_some());
    })
    .await;
    let ten: Vec<RemoteRef> = (0..10).map(|_| one[0].clone()).collect();
    let batch = time_calls(n_local / 2, || async {
        let r = rt.get_secrets(&store, &ten).await.expect("call");
        assert_eq!(r.len(), 10);
    })
    .await;

    // HTTP round trips on loopback: the guest through the host's pooled connector versus
    // reqwest with keep-alive, against the same server.
    let server = common::serve().await;
    let grants = Grants::parse(
        &[format!("http://127.0.0.1:{}", server.port)],
        &[],
        Limits::default(),
    )
    .expect("grants");
    rt.install("hostile", &hostile, grants)
        .await
        .expect("install");
    let http = http_rows(&rt, "hostile", &server, &n_for).await;
    let connections = server.connections.load(std::sync::atomic::Ordering::SeqCst);

    println!();
    println!("Airlock runtime benchmark ({n} samples per row; 2-core machine)");
    println!();
    println!(
        "| {:<58} | {:>10} | {:>10} | {:>10} | {:<14} |",
        "what", "p50", "p99", "mean", "target"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(60),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(16)
    );
    row(
        "runtime only: fresh instance + one export call (ping)",
        &ping,
        "p50≤25 p99≤200",
    );
    row(
        "fake get, 1 ref, fresh instance (instantiate+open+get)",
        &call,
        "",
    );
    row("fake get_secrets, 10 refs in one call", &batch, "");
    http.print("≤1.25× native");
    println!();
    println!(
        "| {:<58} | {:>10} |",
        "component load (fake, {} bytes)".replace("{}", &fake.len().to_string()),
        "time"
    );
    println!("|{}|{}|", "-".repeat(60), "-".repeat(12));
    println!(
        "| {:<58} | {:>10} |",
        "cold: compile with Cranelift + write precompiled",
        ms(cold)
    );
    println!(
        "| {:<58} | {:>10} |",
        "cached: load precompiled from disk (p50 of 20)",
        ms(warm.p50)
    );
    println!();
    http.summary();
    println!("loopback connections the server accepted (guest and native clients): {connections}");
}
