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
//! resumed; every operator replica is SIGKILLed mid-storm and started again; the leader alone
//! is SIGKILLed and the standby takes over within the lease; the Provider's module is
//! swapped to one that panics on every call, then to one that does not load (the module
//! loaded before keeps serving).
//!
//! The operator is the real `airlock run` binary, two replicas with leader election, kept
//! running as a kubelet would (a replica that exits is started again). Besides lost and
//! blanked Secrets, each scenario counts the writes every Secret got: exactly one (the new
//! value), so a restart or a takeover rewrites nothing and two leaders never both write.
//!
//! `cargo bench -p airlock --bench faults` (N = 1000). `AIRLOCK_FAULTS_ES` changes N;
//! under `cargo test --benches` (no `--bench` argument) N defaults to 40.

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock::crd::{ConditionStatus, ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use airlock_testenv::fakes::gitlab::{FakeGitLab, Variable};
use airlock_testenv::fault_proxy::{Fault, FaultProxy};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
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
    OperatorKilled,
    LeaderKilled,
    /// The gitlab Provider's module replaced by one that loads and traps on every call.
    ModulePanics,
    /// The gitlab Provider's module replaced by one that does not load (no provider export).
    ModuleDoesNotLoad,
}

/// The modules the swap scenarios put in the providers directory.
const SWAPS: [(&str, &str); 2] = [
    (airlock_test_artifacts::BROKEN_PANIC, "panics.wasm"),
    (airlock_test_artifacts::BROKEN_EXPORT, "no-export.wasm"),
];
const GRANT: &[&str] = &["http://127.0.0.1:*"];

/// The gitlab Provider's `Ready` condition, `(status, reason, message)`.
async fn provider_ready(api: &Api<Provider>) -> Option<(ConditionStatus, String, String)> {
    let p = api.get_opt("gitlab").await.ok()??;
    let c = p
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

/// The operator's leader-election lease: `airlock run`'s defaults.
const LEASE: &str = "airlock-controller";
const LEASE_SECS: u64 = 15;
const RETRY_SECS: u64 = 2;

/// A replica's identity and pid.
type Running = (String, u32);

/// `airlock run` replicas with leader election, each restarted when it exits (SIGKILLed, or
/// it gave up a lease it could not renew) one second later, as a kubelet restarts a
/// container; each start has a new identity, as a new Pod would.
struct Replicas {
    /// The running process of each replica slot.
    running: Arc<Mutex<Vec<Option<Running>>>>,
    /// While set, exited replicas stay down.
    hold: Arc<std::sync::atomic::AtomicBool>,
    starts: Arc<std::sync::atomic::AtomicUsize>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Replicas {
    fn start(count: usize, ns: &str, kubeconfig: std::path::PathBuf) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let providers = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            airlock_test_artifacts::GITLAB,
            providers.path().join("gitlab.wasm"),
        )
        .expect("copy gitlab.wasm");
        for (module, file) in SWAPS {
            std::fs::copy(module, providers.path().join(file)).expect("copy a swap module");
        }
        // Shared, so the component is compiled once, not at every start.
        let cache = tempfile::tempdir().expect("temp dir");
        let running = Arc::new(Mutex::new(vec![None; count]));
        let hold = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        for slot in 0..count {
            let (running, hold, starts) = (running.clone(), hold.clone(), starts.clone());
            let (ns, kubeconfig) = (ns.to_string(), kubeconfig.clone());
            let (providers, cache) = (providers.path().to_owned(), cache.path().to_owned());
            tokio::spawn(async move {
                loop {
                    if !hold.load(Ordering::SeqCst) {
                        let n = starts.fetch_add(1, Ordering::SeqCst);
                        let identity = format!("replica-{slot}-start-{n}");
                        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
                            .args(["run", "--metrics-addr", "0", "--enable-leader-election"])
                            .args(["--namespace", &ns, "--leader-election-namespace", &ns])
                            .arg("--providers-dir")
                            .arg(&providers)
                            .arg("--cache-dir")
                            .arg(&cache)
                            .env("KUBECONFIG", &kubeconfig)
                            .env("POD_NAME", &identity)
                            .env("AIRLOCK_LOG", "error")
                            .kill_on_drop(true)
                            .spawn()
                            .expect("airlock run starts");
                        let pid = child.id().expect("a running child has a pid");
                        running.lock().unwrap()[slot] = Some((identity, pid));
                        let _ = child.wait().await;
                        running.lock().unwrap()[slot] = None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        Replicas {
            running,
            hold,
            starts,
            _dirs: (providers, cache),
        }
    }

    fn kill(&self, identity: Option<&str>) {
        for (name, pid) in self.running.lock().unwrap().iter().flatten() {
            if identity.is_none_or(|i| i == name) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }

    fn hold(&self, hold: bool) {
        self.hold.store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    fn starts(&self) -> usize {
        self.starts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The identity holding the lease, if it can be read.
async fn leader(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// The resource versions each target Secret took after it started: a watch that lists again
/// after an API outage, so a write is one new version whatever the outage.
struct Writes {
    versions: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn count_writes(secrets: Api<Secret>) -> Writes {
    let before: BTreeMap<String, String> = secrets
        .list(&ListParams::default())
        .await
        .expect("list Secrets")
        .items
        .iter()
        .map(|s| (s.name_any(), s.resource_version().unwrap_or_default()))
        .collect();
    let versions = Arc::new(Mutex::new(BTreeMap::<String, BTreeSet<String>>::new()));
    let v = versions.clone();
    let task = tokio::spawn(async move {
        use kube::runtime::{WatchStreamExt, watcher};
        let stream = watcher(secrets, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) = event {
                let (name, version) = (s.name_any(), s.resource_version().unwrap_or_default());
                if name.starts_with("fault-") && before.get(&name) != Some(&version) {
                    v.lock().unwrap().entry(name).or_default().insert(version);
                }
            }
        }
    });
    Writes { versions, task }
}

impl Writes {
    /// `(fewest, most)` writes of a target Secret.
    fn range(&self, total: usize) -> (usize, usize) {
        let versions = self.versions.lock().unwrap();
        let counts: Vec<usize> = (0..total)
            .map(|i| versions.get(&format!("fault-{i}")).map_or(0, BTreeSet::len))
            .collect();
        (
            counts.iter().copied().min().unwrap_or(0),
            counts.iter().copied().max().unwrap_or(0),
        )
    }
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
    writes: (usize, usize),
    note: String,
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
    let replicas = Replicas::start(2, &ns, cp.kubeconfig_path());
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let providers: Api<Provider> = Api::all(client.clone());
    cluster::apply_provider(&client, "gitlab", "gitlab.wasm", GRANT).await;
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
        Scenario::OperatorKilled,
        Scenario::LeaderKilled,
        Scenario::ModulePanics,
        Scenario::ModuleDoesNotLoad,
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
        let writes = count_writes(secrets.clone()).await;
        set_round(round + 1);
        let fault_start = Instant::now();
        let mut note = String::new();
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
            Scenario::OperatorKilled => {
                // Mid-storm: the refresh is writing the new values when every replica dies.
                tokio::time::sleep(Duration::from_secs(1)).await;
                replicas.hold(true);
                replicas.kill(None);
                tokio::time::sleep(HOLD).await;
                replicas.hold(false);
                ("every operator replica SIGKILLed + restarted", 0)
            }
            Scenario::ModulePanics => {
                cluster::apply_provider(&client, "gitlab", "panics.wasm", GRANT).await;
                cluster::eventually_within(LIMIT, "the ExternalSecrets say why", || async {
                    let (_, failing) = conditions(&ess).await?;
                    (failing == total).then_some(())
                })
                .await;
                tokio::time::sleep(HOLD).await;
                let (_, failing) = conditions(&ess).await.unwrap_or_default();
                cluster::apply_provider(&client, "gitlab", "gitlab.wasm", GRANT).await;
                (
                    "Provider swapped to a module that panics on every call",
                    failing,
                )
            }
            Scenario::ModuleDoesNotLoad => {
                cluster::apply_provider(&client, "gitlab", "no-export.wasm", GRANT).await;
                let (reason, message) = cluster::eventually_within(
                    LIMIT,
                    "the Provider says the new module does not load",
                    || async {
                        match provider_ready(&providers).await? {
                            (ConditionStatus::False, reason, message)
                                if message.contains("keeps serving") =>
                            {
                                Some((reason, message))
                            }
                            _ => None,
                        }
                    },
                )
                .await;
                // The module loaded before keeps serving: the new values arrive meanwhile.
                synced(&secrets, &ess, total, round + 1).await;
                note = format!("Provider Ready=False {reason}, the old module kept serving");
                assert!(!message.is_empty());
                cluster::apply_provider(&client, "gitlab", "gitlab.wasm", GRANT).await;
                ("Provider swapped to a module that does not load", 0)
            }
            Scenario::LeaderKilled => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let old = leader(&leases).await.expect("a replica leads");
                let starts = replicas.starts();
                replicas.kill(Some(&old));
                let killed = Instant::now();
                let new = cluster::eventually_within(LIMIT, "another replica leads", || async {
                    leader(&leases).await.filter(|l| *l != old)
                })
                .await;
                let takeover = killed.elapsed();
                note = format!(
                    "takeover by {} in {:.1} s (lease {LEASE_SECS} s)",
                    if replicas.starts() > starts && new.ends_with(&format!("start-{starts}")) {
                        "the restarted replica"
                    } else {
                        "the standby"
                    },
                    takeover.as_secs_f64()
                );
                assert!(
                    takeover <= Duration::from_secs(LEASE_SECS + 2 * RETRY_SECS),
                    "the lease changed hands {takeover:?} after the leader died"
                );
                ("leader SIGKILLed, another replica takes over", 0)
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
        writes.task.abort();
        let lost = w.lost.lock().unwrap().len();
        let blanked = w.blanked.lock().unwrap().len();
        let writes = writes.range(total);
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
            writes,
            note: note.clone(),
        };
        println!(
            "{name}: {lost} lost, {blanked} blanked, {said_why}/{total} said why, converged in \
             {:.1} s, {requests} backend requests in {:.1} s of fault (bound {bound}), \
             {}–{} writes per Secret {note}",
            converge.as_secs_f64(),
            window.as_secs_f64(),
            writes.0,
            writes.1
        );
        assert_eq!(
            writes,
            (1, 1),
            "{name}: every Secret written exactly once (its new value)"
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
        "| scenario | ES | lost | blanked | Ready=False, SecretSyncedError at window end | converged | time to converge | backend requests during fault (window, bound) | writes per Secret | |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {total} | {} | {} | {} | {} | {:.1} s | {} ({:.1} s, ≤ {}) | {} | {} |",
            r.name,
            r.lost,
            r.blanked,
            if r.name.starts_with("kube-apiserver") || r.name.starts_with("etcd") {
                "n/a (API down)".to_string()
            } else if r.name.contains("SIGKILL") {
                "n/a (backend up)".to_string()
            } else if r.name.contains("does not load") {
                "n/a (old module serves)".to_string()
            } else {
                r.said_why.to_string()
            },
            if r.converged { "yes" } else { "no" },
            r.converge.as_secs_f64(),
            r.requests,
            r.window.as_secs_f64(),
            r.bound,
            if r.writes.0 == r.writes.1 {
                r.writes.0.to_string()
            } else {
                format!("{}–{}", r.writes.0, r.writes.1)
            },
            r.note
        );
    }
}
