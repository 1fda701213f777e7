//! Operator-at-scale benchmark (issue 20): the real `airlock run` binary, default flags, as
//! its own process against the test control plane's kube-apiserver and etcd, so the RSS
//! and CPU printed are the operator's alone. Beside it, a raw-limit client makes the same
//! writes (one Secret create and one status patch per ExternalSecret) directly with the
//! same client stack at its best concurrency: the floor any operator is measured against.
//!
//! Scenarios for each size N (ExternalSecrets with three `data` refs, `refreshInterval:
//! 1h`, over NS namespaces with one fake-provider SecretStore each):
//! - cold start: N never-synced ExternalSecrets exist, the operator starts → all Ready;
//! - restart: the operator is stopped and started again over the N synced ones, and the
//!   writes it makes to Secrets and ExternalSecrets in a settle window are counted (goal 0);
//! - storm: N more applied while it runs; lag from the last apply to all Ready, and p50/p99
//!   of apply → Ready per object.
//!
//! `cargo bench -p airlock --bench operator_scale` (release: the operator binary is built
//! with the bench profile). `AIRLOCK_BENCH_SIZES` (comma-separated, default `1000`; the
//! issue's sizes are `1000,10000`), `AIRLOCK_BENCH_NS` (default 50) and
//! `AIRLOCK_BENCH_SETTLE_S` (restart settle window, default 30; 5 as a test) change the load. The
//! table is printed and written as JSON to `$CARGO_TARGET_DIR/airlock-bench/operator_scale.json`.
//! Under `cargo test --benches` (no `--bench` argument) it runs once at N = 50 over 5
//! namespaces, unoptimised, so the harness itself is exercised by `make test`.

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock::crd::{ConditionStatus, ExternalSecret, SecretStore};
use airlock_testenv::ControlPlane;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ready(es: &ExternalSecret) -> bool {
    es.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// Whether `cargo bench` runs this (it passes `--bench`), rather than `cargo test --benches`.
fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The restart settle window: 30 s when benching, 5 s as a test.
fn settle_default() -> usize {
    if benching() { 30 } else { 5 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The operator process, its resident set sampled every 100 ms.
struct Operator {
    child: tokio::process::Child,
    peak_rss_kib: Arc<Mutex<u64>>,
    started: Instant,
}

/// `(VmRSS, VmHWM)` of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User + system CPU seconds of `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the parenthesised command name come state, ppid, …: utime and stime are the
    // 12th and 13th fields from there (proc(5) fields 14 and 15).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| -> u64 {
        rest.split_whitespace()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field(11) + field(12)) as f64 / 100.0
}

impl Operator {
    fn start(cp: &ControlPlane, providers: &std::path::Path) -> Operator {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .arg("run")
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .arg("--providers-dir")
            .arg(providers)
            .env("KUBECONFIG", cp.kubeconfig_path())
            .env("AIRLOCK_LOG", "error")
            .kill_on_drop(true)
            .spawn()
            .expect("airlock run starts");
        let pid = child.id().expect("a pid");
        let peak = Arc::new(Mutex::new(0));
        let sampled = peak.clone();
        tokio::spawn(async move {
            while let Some((rss, hwm)) = rss_kib(pid) {
                {
                    let mut p = sampled.lock().unwrap();
                    *p = (*p).max(rss).max(hwm);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Operator {
            child,
            peak_rss_kib: peak,
            started: Instant::now(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    fn peak_mib(&self) -> f64 {
        *self.peak_rss_kib.lock().unwrap() as f64 / 1024.0
    }

    fn rss_mib(&self) -> f64 {
        rss_kib(self.pid()).map_or(0.0, |(rss, _)| rss as f64 / 1024.0)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn external_secret(name: &str, label: &str) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "labels": {"airlock.dev/bench": label}},
        "spec": {"refreshInterval": "1h",
                 "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
                 "target": {"name": name},
                 "data": [
                     {"secretKey": "user", "remoteRef": {"key": "db-user"}},
                     {"secretKey": "password", "remoteRef": {"key": "db-password"}},
                     {"secretKey": "token", "remoteRef": {"key": "api-token"}}]}})
}

/// `namespaces` new namespaces, each with the fake SecretStore.
async fn namespaces_with_stores(cp: &ControlPlane, prefix: &str, namespaces: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..namespaces {
        let ns = cp.new_namespace(prefix).await.expect("namespace");
        let stores: Api<SecretStore> = Api::namespaced(cp.client(), &ns);
        cluster::apply(
            &stores,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": "fake"},
                   "spec": {"provider": {"fake": {"data": [
                       {"key": "db-user", "value": "app"},
                       {"key": "db-password", "value": "correct-horse"},
                       {"key": "api-token", "value": "tok-123"}]}}}}),
        )
        .await;
        names.push(ns);
    }
    names
}

/// Applies `total` ExternalSecrets labelled `label` round-robin over `namespaces`, 16 in
/// flight; returns when each was applied, by `namespace/name`.
async fn apply_all(
    client: &Client,
    namespaces: &[String],
    label: &str,
    total: usize,
) -> HashMap<String, Instant> {
    futures::stream::iter(0..total)
        .map(|i| {
            let ns = namespaces[i % namespaces.len()].clone();
            let name = format!("{label}-{i}");
            let api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
            async move {
                cluster::apply(&api, external_secret(&name, label)).await;
                (format!("{ns}/{name}"), Instant::now())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Counts the ExternalSecrets labelled `label` that are Ready, a page at a time.
async fn count_ready(client: &Client, label: &str) -> usize {
    let all: Api<ExternalSecret> = Api::all(client.clone());
    let mut page = ListParams::default()
        .labels(&format!("airlock.dev/bench={label}"))
        .limit(500);
    let mut done = 0;
    loop {
        let list = all.list(&page).await.expect("list ExternalSecrets");
        done += list.items.iter().filter(|es| ready(es)).count();
        match list.metadata.continue_ {
            Some(token) if !token.is_empty() => page = page.continue_token(&token),
            _ => return done,
        }
    }
}

async fn wait_all_ready(client: &Client, label: &str, total: usize, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let done = count_ready(client, label).await;
        if done >= total {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "only {done} of {total} ExternalSecrets labelled {label} Ready after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The raw limit: for `total` objects, one Secret create and one ExternalSecret status
/// patch each, made directly at `concurrency` requests in flight (ExternalSecrets made
/// beforehand, not timed). Returns the time of the timed writes.
async fn raw_limit(
    cp: &ControlPlane,
    namespaces: usize,
    total: usize,
    concurrency: usize,
) -> Duration {
    let client = cp.client();
    let names = namespaces_with_stores(cp, "raw", namespaces).await;
    let label = format!("raw{concurrency}");
    apply_all(&client, &names, &label, total).await;
    let t0 = Instant::now();
    futures::stream::iter(0..total)
        .map(|i| {
            let ns = names[i % names.len()].clone();
            let name = format!("{label}-{i}");
            let client = client.clone();
            async move {
                let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
                let secret: Secret = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "data": {"user": "YXBw", "password": "Y29ycmVjdC1ob3JzZQ==", "token": "dG9rLTEyMw=="}
                }))
                .expect("a Secret");
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .expect("create a Secret");
                let es: Api<ExternalSecret> = Api::namespaced(client, &ns);
                es.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"conditions": [{
                        "type": "Ready", "status": "True", "reason": "SecretSynced",
                        "message": "secret synced",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
                )
                .await
                .expect("patch a status");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<()>()
        .await;
    t0.elapsed()
}

/// `resourceVersion` of every Secret and ExternalSecret in `namespaces`.
async fn versions(client: &Client, namespaces: &[String]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for ns in namespaces {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        for s in secrets.list(&ListParams::default()).await.expect("Secrets") {
            let name = s.metadata.name.unwrap_or_default();
            out.insert(
                format!("secret/{ns}/{name}"),
                s.metadata.resource_version.unwrap_or_default(),
            );
        }
        let es: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
        for e in es
            .list(&ListParams::default())
            .await
            .expect("ExternalSecrets")
        {
            let name = e.metadata.name.clone().unwrap_or_default();
            out.insert(
                format!("es/{ns}/{name}"),
                e.metadata.resource_version.clone().unwrap_or_default(),
            );
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Row {
    n: usize,
    raw_best: Duration,
    raw_concurrency: usize,
    cold: Duration,
    cold_peak_mib: f64,
    cold_cpu_s: f64,
    restart_writes: usize,
    restart_settle: Duration,
    storm_lag: Duration,
    storm_p50: Duration,
    storm_p99: Duration,
    peak_mib: f64,
    rss_end_mib: f64,
}

async fn run_size(cp: &ControlPlane, providers: &std::path::Path, n: usize, ns: usize) -> Row {
    let client = cp.client();
    let limit = Duration::from_secs(900);

    // Cold start.
    let cold_label = format!("cold{n}");
    let cold_ns = namespaces_with_stores(cp, "cold", ns).await;
    apply_all(&client, &cold_ns, &cold_label, n).await;
    let op = Operator::start(cp, providers);
    wait_all_ready(&client, &cold_label, n, limit).await;
    let cold = op.started.elapsed();
    let cold_peak_mib = op.peak_mib();
    let cold_cpu_s = cpu_seconds(op.pid());

    // Restart over the synced ones: count writes in the settle window.
    let settle = Duration::from_secs(env_or("AIRLOCK_BENCH_SETTLE_S", settle_default()) as u64);
    let before = versions(&client, &cold_ns).await;
    op.stop().await;
    let op = Operator::start(cp, providers);
    tokio::time::sleep(settle).await;
    let after = versions(&client, &cold_ns).await;
    let restart_writes = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .count();

    // Storm: N more while it runs, Ready times from a watch.
    let storm_label = format!("storm{n}");
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watched = seen.clone();
    let all: Api<ExternalSecret> = Api::all(client.clone());
    let watch = tokio::spawn(
        watcher(
            all,
            watcher::Config::default().labels(&format!("airlock.dev/bench={storm_label}")),
        )
        .applied_objects()
        .try_for_each(move |es| {
            if ready(&es) {
                let key = format!(
                    "{}/{}",
                    es.metadata.namespace.clone().unwrap_or_default(),
                    es.metadata.name.clone().unwrap_or_default()
                );
                watched
                    .lock()
                    .unwrap()
                    .entry(key)
                    .or_insert_with(Instant::now);
            }
            futures::future::ready(Ok(()))
        }),
    );
    let storm_ns = namespaces_with_stores(cp, "storm", ns).await;
    let applied = apply_all(&client, &storm_ns, &storm_label, n).await;
    let last_apply = applied.values().max().copied().expect("an apply");
    wait_all_ready(&client, &storm_label, n, limit).await;
    let listed_lag = last_apply.elapsed();
    // The watch may trail the list by a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    let mut lags: Vec<Duration> = applied
        .iter()
        .filter_map(|(k, at)| Some(seen.get(k)?.saturating_duration_since(*at)))
        .collect();
    lags.sort();
    // From the watch when it saw every object, else from the polling list.
    let storm_lag = match seen.values().max() {
        Some(last) if seen.len() >= n => last.saturating_duration_since(last_apply),
        _ => listed_lag,
    };
    let row = Row {
        n,
        cold,
        cold_peak_mib,
        cold_cpu_s,
        restart_writes,
        restart_settle: settle,
        storm_lag,
        storm_p50: percentile(&lags, 0.5),
        storm_p99: percentile(&lags, 0.99),
        peak_mib: op.peak_mib().max(cold_peak_mib),
        rss_end_mib: op.rss_mib(),
        raw_best: Duration::ZERO,
        raw_concurrency: 0,
    };
    op.stop().await;

    // The raw limit, with the operator stopped (it would reconcile these too), at a few
    // concurrencies; the best one counts.
    let mut raw = Vec::new();
    for concurrency in [16, 64, 128] {
        raw.push((raw_limit(cp, ns, n, concurrency).await, concurrency));
    }
    let (raw_best, raw_concurrency) = raw.iter().min().copied().expect("a raw run");
    Row {
        raw_best,
        raw_concurrency,
        ..row
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (sizes, ns): (Vec<usize>, usize) = if benching() {
        let sizes = std::env::var("AIRLOCK_BENCH_SIZES").unwrap_or_else(|_| "1000".into());
        (
            sizes
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
            env_or("AIRLOCK_BENCH_NS", 50).max(1),
        )
    } else {
        (vec![50], 5)
    };

    let cp = ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let providers = tempfile::tempdir().expect("providers dir");
    std::fs::copy(
        airlock_test_artifacts::FAKE,
        providers.path().join("fake.wasm"),
    )
    .expect("copy fake.wasm");
    cluster::apply_fake_provider(&client).await;

    let mut rows = Vec::new();
    for n in sizes {
        rows.push(run_size(cp, providers.path(), n, ns).await);
    }

    let s = |d: Duration| d.as_secs_f64();
    println!();
    println!(
        "Operator at scale: `airlock run` (default flags) as its own process; {ns} namespaces, \
         one fake SecretStore each, 3 data refs per ExternalSecret"
    );
    println!();
    println!(
        "| N | raw limit (2 writes/ES) | cold start → all Ready | × raw | peak RSS | CPU (cold) | restart writes ({}s) | storm lag after last apply | storm p50 / p99 apply→Ready | RSS at end (2N ES) |",
        rows.first().map_or(0, |r| r.restart_settle.as_secs())
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    for r in &rows {
        let ratio = s(r.cold) / s(r.raw_best).max(1e-9);
        println!(
            "| {} | {:.1} s ({} in flight, {:.0} writes/s) | {:.1} s | {:.2} | {:.0} MiB | {:.1} s | {} | {:.1} s | {:.2} s / {:.2} s | {:.0} MiB |",
            r.n,
            s(r.raw_best),
            r.raw_concurrency,
            2.0 * r.n as f64 / s(r.raw_best).max(1e-9),
            s(r.cold),
            ratio,
            r.peak_mib,
            r.cold_cpu_s,
            r.restart_writes,
            s(r.storm_lag),
            s(r.storm_p50),
            s(r.storm_p99),
            r.rss_end_mib,
        );
        json_rows.push(json!({
            "n": r.n, "namespaces": ns,
            "raw_limit_s": s(r.raw_best), "raw_concurrency": r.raw_concurrency,
            "cold_start_s": s(r.cold), "cold_vs_raw": ratio,
            "cold_peak_rss_mib": r.cold_peak_mib, "cold_cpu_s": r.cold_cpu_s,
            "restart_writes": r.restart_writes, "restart_settle_s": r.restart_settle.as_secs(),
            "storm_lag_s": s(r.storm_lag), "storm_p50_s": s(r.storm_p50), "storm_p99_s": s(r.storm_p99),
            "peak_rss_mib": r.peak_mib, "rss_end_mib": r.rss_end_mib,
        }));
    }
    println!();
    println!(
        "ESO v2.9.0, same machine kind (eso.md §9): 1,000 ES 102.8 s default flags / 27.6 s tuned, 102–107 MiB; 10,000 ES ≈ 265 s tuned (crashed at 8,832), 281–288 MiB."
    );
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("airlock-bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("operator_scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json_rows).unwrap()).expect("write JSON");
    println!("written: {}", path.display());
}
