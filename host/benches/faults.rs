//! Fault suite (issue 21): N ExternalSecrets synced from a GitLab behind a fault-injecting
//! proxy on 127.0.0.1, then, one scenario after the other, a fault for a bounded window and
//! recovery. For each scenario it asserts that no Secret is lost (deleted) or blanked (data
//! other than the last synced value or the new one), that the ExternalSecrets' `Ready`
//! conditions say why while the backend fails, that every Secret converges to the value the
//! backend holds after recovery, and that the requests the backend got during the fault stay
//! bounded (no hot loop): at most N × (4 + log2 of the window in seconds), what a doubling
//! backoff from 1 s allows plus the wake-ups of the status changes themselves.
//!
//! Scenarios: the backend answers 500; hangs (accepts, never answers); closes mid-body;
//! answers garbage (non-JSON, then truncated JSON); answers 429 with Retry-After; the
//! kube-apiserver is SIGKILLed and restarted on the same port; etcd is paused (SIGSTOP) and
//! resumed.
//!
//! `cargo bench -p airlock --bench faults` (N = 1000). `AIRLOCK_FAULTS_ES` changes N;
//! under `cargo test --benches` (no `--bench` argument) N defaults to 40.
//! The operator runs in this process against the real kube-apiserver and etcd.

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock::crd::{ConditionStatus, ExternalSecret, SecretStore};
use airlock_testenv::ControlPlane;
use airlock_testenv::fakes::gitlab::{FakeGitLab, Variable};
use airlock_testenv::fault_proxy::{Fault, FaultProxy};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;

const TOKEN: &str = "glpat-fault-suite";
const PROJECT: u64 = 42;
/// Every ExternalSecret refreshes this often, so each one asks the backend during a fault.
const REFRESH_SECS: u64 = 5;
/// What the backend asks for while it rate-limits.
const RETRY_AFTER_SECS: u64 = 10;
/// How long a fault stays after every ExternalSecret that will notice it has said why.
const HOLD: Duration = Duration::from_secs(6);
/// The longest any wait may take before the bench fails.
const LIMIT: Duration = Duration::from_secs(600);

/// Whether `cargo bench` runs this (it passes `--bench`), rather than `cargo test --benches`.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn variable(i: usize) -> String {
    format!("V_{i}")
}

fn value(round: usize, i: usize) -> String {
    format!("round-{round}-value-{i}")
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Backend(&'static str, fn() -> Fault),
    ApiserverRestart,
    EtcdPaused,
}

struct Row {
    name: &'static str,
    lost: usize,
    blanked: usize,
    said_why: usize,
    converged: bool,
    converge: Duration,
    window: Duration,
    requests: usize,
    bound: usize,
}

/// Lists the managed Secrets every 300 ms and records each target that is missing or whose
/// data is neither the previous nor the next value (apiserver errors are skipped).
struct Watch {
    lost: Arc<Mutex<BTreeSet<usize>>>,
    blanked: Arc<Mutex<BTreeSet<usize>>>,
    task: tokio::task::JoinHandle<()>,
}

fn watch(secrets: Api<Secret>, total: usize, round: usize) -> Watch {
    let lost = Arc::new(Mutex::new(BTreeSet::new()));
    let blanked = Arc::new(Mutex::new(BTreeSet::new()));
    let (l, b) = (lost.clone(), blanked.clone());
    let task = tokio::spawn(async move {
        loop {
            if let Ok(list) = secrets.list(&ListParams::default()).await {
                let by_name: BTreeMap<String, BTreeMap<String, String>> = list
                    .items
                    .iter()
                    .map(|s| (s.name_any(), cluster::text_data(s)))
                    .collect();
                for i in 0..total {
                    match by_name.get(&format!("fault-{i}")) {
                        None => {
                            l.lock().unwrap().insert(i);
                        }
                        Some(data) => {
                            let v = data.get("value").map(String::as_str);
                            if v != Some(&value(round, i)) && v != Some(&value(round + 1, i)) {
                                b.lock().unwrap().insert(i);
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    Watch {
        lost,
        blanked,
        task,
    }
}

/// How many ExternalSecrets have each `Ready` (status, reason, message), for a failure report.
async fn histogram(api: &Api<ExternalSecret>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for es in api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let ready = es
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| format!("{:?} {:?} {:?}", c.status, c.reason, c.message));
        *out.entry(ready.unwrap_or_else(|| "no Ready".into()))
            .or_default() += 1;
    }
    out
}

/// `(Ready=True, Ready=False with reason SecretSyncedError)` counts.
async fn conditions(api: &Api<ExternalSecret>) -> Option<(usize, usize)> {
    let list = api.list(&ListParams::default()).await.ok()?;
    let mut ok = 0;
    let mut failing = 0;
    for es in &list.items {
        let ready = es
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        match ready {
            Some(c) if c.status == ConditionStatus::True => ok += 1,
            Some(c)
                if c.reason.as_deref() == Some("SecretSyncedError")
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.contains("could not get secret data from provider")) =>
            {
                failing += 1
            }
            _ => {}
        }
    }
    Some((ok, failing))
}

/// Waits until every Secret holds round `round`'s value and every ExternalSecret is Ready.
async fn synced(secrets: &Api<Secret>, ess: &Api<ExternalSecret>, total: usize, round: usize) {
    cluster::eventually_within(LIMIT, "every Secret synced", || async {
        let list = secrets.list(&ListParams::default()).await.ok()?;
        let good = list
            .items
            .iter()
            .filter(|s| {
                let name = s.name_any();
                name.strip_prefix("fault-")
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| cluster::text_data(s).get("value") == Some(&value(round, i)))
            })
            .count();
        let (ok, _) = conditions(ess).await?;
        (good == total && ok == total).then_some(())
    })
    .await;
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total = std::env::var("AIRLOCK_FAULTS_ES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full_run() { 1000 } else { 40 });

    let gitlab = FakeGitLab::start(TOKEN);
    gitlab.add_project(PROJECT, "acme/app", None);
    let set_round = |round: usize| {
        for i in 0..total {
            gitlab.set_project_variable(PROJECT, Variable::new(&variable(i), &value(round, i)));
        }
    };
    set_round(0);
    let proxy = FaultProxy::start(gitlab.url().trim_start_matches("http://"));

    let cp = ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let ns = cp.new_namespace("faults").await.expect("namespace");
    let (runtime, _providers) = cluster::run_operator(
        &client,
        &ns,
        &[(airlock_test_artifacts::GITLAB, "gitlab.wasm")],
    );
    cluster::apply_provider(&client, "gitlab", "gitlab.wasm", &["http://127.0.0.1:*"]).await;
    cluster::eventually("the gitlab provider loaded", || async {
        runtime.provider("gitlab").map(|_| ())
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    cluster::apply(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitlab-token"},
               "stringData": {"token": TOKEN}}),
    )
    .await;
    cluster::apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "gitlab"},
               "spec": {"provider": {"gitlab": {"url": proxy.url(), "projectID": PROJECT.to_string(),
                   "auth": {"SecretRef": {"accessToken": {"name": "gitlab-token", "key": "token"}}}}}}}),
    )
    .await;
    let ess: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    futures::stream::iter(0..total)
        .map(|i| {
            let ess = ess.clone();
            async move {
                cluster::apply(
                    &ess,
                    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                       "metadata": {"name": format!("fault-{i}")},
                       "spec": {"refreshInterval": format!("{REFRESH_SECS}s"),
                                "secretStoreRef": {"name": "gitlab", "kind": "SecretStore"},
                                "target": {"name": format!("fault-{i}")},
                                "data": [{"secretKey": "value",
                                          "remoteRef": {"key": variable(i)}}]}}),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
    synced(&secrets, &ess, total, 0).await;
    println!(
        "fault suite: {total} ExternalSecrets synced from GitLab through the proxy in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let scenarios = [
        Scenario::Backend("backend 500", || Fault::Status(500)),
        Scenario::Backend("backend hang", || Fault::Hang),
        Scenario::Backend("close mid-body", || Fault::CloseMidBody),
        Scenario::Backend("garbage (not JSON)", || Fault::Garbage),
        Scenario::Backend("garbage (truncated JSON)", || Fault::TruncatedJson),
        Scenario::Backend("429 + Retry-After 10 s", || Fault::RateLimited {
            retry_after_secs: RETRY_AFTER_SECS,
        }),
        Scenario::ApiserverRestart,
        Scenario::EtcdPaused,
    ];
    let mut rows = Vec::new();
    let only = std::env::var("AIRLOCK_FAULTS_ONLY").unwrap_or_default();
    let mut round = 0;
    for scenario in scenarios {
        let label = format!("{scenario:?}");
        if !only.is_empty() && !only.split(',').any(|o| label.contains(o)) {
            continue;
        }
        // Each scenario starts from N synced Secrets holding round `round`'s values.
        synced(&secrets, &ess, total, round).await;
        let w = watch(secrets.clone(), total, round);
        set_round(round + 1);
        let fault_start = Instant::now();
        let (name, said_why) = match scenario {
            Scenario::Backend(name, fault) => {
                proxy.set_fault(fault());
                // Until every ExternalSecret says why (for a hanging backend, from the first
                // call timeout on: the stalled store's other calls fail at once).
                cluster::eventually_within(
                    LIMIT,
                    "the ExternalSecrets' conditions say why",
                    || async {
                        if fault_start.elapsed().as_secs() % 30 == 29 {
                            eprintln!(
                                "{name} after {:?}: {:?}",
                                fault_start.elapsed(),
                                histogram(&ess).await
                            );
                        }
                        let (_, failing) = conditions(&ess).await?;
                        (failing == total).then_some(())
                    },
                )
                .await;
                tokio::time::sleep(HOLD).await;
                let (_, failing) = conditions(&ess).await.unwrap_or_default();
                (name, failing)
            }
            Scenario::ApiserverRestart => {
                tokio::task::spawn_blocking(|| {
                    ControlPlane::shared()
                        .kill_server("kube-apiserver")
                        .expect("kill the apiserver")
                })
                .await
                .expect("kill");
                tokio::time::sleep(HOLD * 2).await;
                tokio::task::spawn_blocking(|| {
                    ControlPlane::shared()
                        .restart_server("kube-apiserver")
                        .expect("restart the apiserver")
                })
                .await
                .expect("restart");
                ("kube-apiserver killed + restarted", 0)
            }
            Scenario::EtcdPaused => {
                let cp = ControlPlane::shared();
                cp.pause_server("etcd", true).expect("SIGSTOP etcd");
                tokio::time::sleep(HOLD * 2).await;
                cp.pause_server("etcd", false).expect("SIGCONT etcd");
                ("etcd paused (SIGSTOP) + resumed", 0)
            }
        };
        let fault_end = Instant::now();
        let window = fault_end - fault_start;
        proxy.set_fault(Fault::None);
        let requests = proxy.count_between(fault_start, fault_end);
        let bound = total * (4 + window.as_secs_f64().log2().ceil() as usize);
        synced(&secrets, &ess, total, round + 1).await;
        let converge = fault_end.elapsed();
        // One more pass of the watcher after convergence.
        tokio::time::sleep(Duration::from_millis(700)).await;
        w.task.abort();
        let lost = w.lost.lock().unwrap().len();
        let blanked = w.blanked.lock().unwrap().len();
        let row = Row {
            name,
            lost,
            blanked,
            said_why,
            converged: true,
            converge,
            window,
            requests,
            bound,
        };
        println!(
            "{name}: {lost} lost, {blanked} blanked, {said_why}/{total} said why, converged in \
             {:.1} s, {requests} backend requests in {:.1} s of fault (bound {bound})",
            converge.as_secs_f64(),
            window.as_secs_f64()
        );
        assert_eq!(lost, 0, "{name}: Secrets lost");
        assert_eq!(blanked, 0, "{name}: Secrets blanked");
        assert!(
            requests <= bound,
            "{name}: {requests} backend requests during the fault"
        );
        rows.push(row);
        round += 1;
    }

    println!();
    println!(
        "Fault suite: {total} ExternalSecrets (refreshInterval {REFRESH_SECS} s) reading GitLab \
         through the fault proxy; the fault holds {} s after the conditions say why",
        HOLD.as_secs()
    );
    println!();
    println!(
        "| scenario | ES | lost | blanked | Ready=False, SecretSyncedError at window end | converged | time to converge | backend requests during fault (window, bound) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {total} | {} | {} | {} | {} | {:.1} s | {} ({:.1} s, ≤ {}) |",
            r.name,
            r.lost,
            r.blanked,
            if r.name.starts_with("kube-apiserver") || r.name.starts_with("etcd") {
                "n/a (API down)".to_string()
            } else {
                r.said_why.to_string()
            },
            if r.converged { "yes" } else { "no" },
            r.converge.as_secs_f64(),
            r.requests,
            r.window.as_secs_f64(),
            r.bound
        );
    }
}
