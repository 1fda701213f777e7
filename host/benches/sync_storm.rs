//! Sync-storm benchmark, the load ESO was measured under (`reference/eso.md` §9): N
//! ExternalSecrets with three `data` refs each and `refreshInterval: 1h`, spread over NS
//! namespaces with one fake-provider SecretStore each, server-side applied while the
//! operator runs; the clock runs from the first ExternalSecret applied to all `Ready=True`.
//!
//! The operator runs in this process against the real kube-apiserver and etcd of the test
//! control plane, so the peak RSS printed is the operator's plus this harness's (an upper
//! bound for the operator alone).
//!
//! `cargo bench -p airlock --bench sync_storm`. `AIRLOCK_BENCH_ES` (default 1000),
//! `AIRLOCK_BENCH_NS` (default 10) and `AIRLOCK_BENCH_CONCURRENCY` (reconciles at once per
//! controller; default the operator's own default) change the load.

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::time::{Duration, Instant};

use airlock::controller::{self, Config};
use airlock::crd::{ConditionStatus, ExternalSecret, SecretStore};
use airlock_testenv::ControlPlane;
use futures::StreamExt;
use kube::api::{Api, ListParams};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak and current resident set of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn ready(conditions: Option<&Vec<airlock::crd::Condition>>) -> bool {
    conditions
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total = env_or("AIRLOCK_BENCH_ES", 1000);
    let namespaces = env_or("AIRLOCK_BENCH_NS", 10).max(1);
    let defaults = Config::default();
    let concurrency = env_or(
        "AIRLOCK_BENCH_CONCURRENCY",
        usize::from(defaults.concurrency),
    );

    let cp = ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let providers = tempfile::tempdir().expect("providers dir");
    std::fs::copy(
        airlock_test_artifacts::FAKE,
        providers.path().join("fake.wasm"),
    )
    .expect("copy fake.wasm");
    let cache = tempfile::tempdir().expect("cache dir");
    let runtime = cluster::kube_runtime(&client, Some(cache.path().to_path_buf()));
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        concurrency: u16::try_from(concurrency).unwrap_or(u16::MAX),
        ..defaults
    };
    let operator = tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    cluster::apply_fake_provider(&client).await;
    cluster::eventually("the fake provider loaded", || async {
        runtime.provider("fake").map(|_| ())
    })
    .await;

    // One fake SecretStore per namespace, Valid before the clock starts.
    let mut names = Vec::new();
    for _ in 0..namespaces {
        let ns = cp.new_namespace("storm").await.expect("namespace");
        let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
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
    for ns in &names {
        let stores: Api<SecretStore> = Api::namespaced(client.clone(), ns);
        cluster::eventually("the SecretStore Valid", || async {
            let store = stores.get("fake").await.ok()?;
            ready(store.status.as_ref()?.conditions.as_ref()).then_some(())
        })
        .await;
    }

    // The storm: server-side apply, 16 requests in flight.
    let started = Instant::now();
    let manifests: Vec<(String, serde_json::Value)> = (0..total)
        .map(|i| {
            let ns = names[i % namespaces].clone();
            let es = json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": format!("storm-{i}"), "labels": {"airlock.dev/bench": "storm"}},
                "spec": {"refreshInterval": "1h",
                         "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
                         "target": {"name": format!("storm-{i}")},
                         "data": [
                             {"secretKey": "user", "remoteRef": {"key": "db-user"}},
                             {"secretKey": "password", "remoteRef": {"key": "db-password"}},
                             {"secretKey": "token", "remoteRef": {"key": "api-token"}}]}});
            (ns, es)
        })
        .collect();
    futures::stream::iter(manifests)
        .map(|(ns, es)| {
            let api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
            async move { cluster::apply(&api, es).await }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
    let applied = started.elapsed();

    let all: Api<ExternalSecret> = Api::all(client.clone());
    let selector = ListParams::default().labels("airlock.dev/bench=storm");
    let limit = Duration::from_secs(600);
    let synced = loop {
        // Pages of 500, so the harness never holds the whole list (its memory counts in
        // the peak RSS printed).
        let mut done = 0;
        let mut page = selector.clone().limit(500);
        loop {
            let list = all.list(&page).await.expect("list ExternalSecrets");
            done += list
                .items
                .iter()
                .filter(|es| ready(es.status.as_ref().and_then(|s| s.conditions.as_ref())))
                .count();
            match list.metadata.continue_ {
                Some(token) if !token.is_empty() => page = page.continue_token(&token),
                _ => break,
            }
        }
        if done >= total {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "only {done} of {total} ExternalSecrets Ready after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (peak, now) = rss_mib();
    operator.abort();
    let _ = operator.await;

    let rate = total as f64 / synced.as_secs_f64();
    println!();
    println!(
        "Sync storm: {total} ExternalSecrets (3 data refs each) over {namespaces} namespaces, \
         {concurrency} reconciles at once per controller"
    );
    println!();
    println!("| what | Airlock | ESO v2.9.0, same machine kind (eso.md §9) |");
    println!("|---|---|---|");
    println!(
        "| first apply → all Ready=True | {:.1} s (apply alone {:.1} s) | 1,000 ES: 102.8 s default flags, 27.6 s tuned |",
        synced.as_secs_f64(),
        applied.as_secs_f64()
    );
    println!("| rate | {rate:.0} ES/s | ~10 ES/s default, ~36 ES/s tuned |");
    println!(
        "| peak RSS (operator + this harness) | {peak:.0} MiB (now {now:.0} MiB) | 102–107 MiB at 1,000 ES |"
    );
}
