//! The operator's HTTP endpoint for the kubelet and Prometheus (`airlock run --metrics-addr`):
//! `/healthz` (the process answers), `/readyz` (the controllers are running) and `/metrics`.
//!
//! `/metrics` carries three groups of series:
//!
//! - **ESO's own**, with ESO v2.9's names, types and labels, so its dashboards and alerts
//!   keep working: `externalsecret_sync_calls_total`, `externalsecret_sync_calls_error`,
//!   `externalsecret_status_condition`, `externalsecret_reconcile_duration` (a gauge in
//!   nanoseconds, as ESO sets it), `externalsecret_provider_api_calls_count{provider,call,
//!   status}`, and `<kind>_status_condition` / `<kind>_reconcile_duration` for
//!   `secretstore`, `clustersecretstore`, `clusterexternalsecret`, `pushsecret` and
//!   `clusterpushsecret`.
//! - **controller-runtime's**, which ESO's dashboard reads: `controller_runtime_reconcile_*`,
//!   `controller_runtime_active_workers`, `controller_runtime_max_concurrent_reconciles` and
//!   `workqueue_*`. kube-rs has no workqueue of controller-runtime's shape, so
//!   [`instrument`] keeps the concurrency limit itself: a reconcile that waits for a worker
//!   is the queue's depth, and its wait the queue duration.
//! - **the sandbox's** (`airlock_sandbox_*`), per Provider and store: calls, call duration,
//!   peak instance memory, share of the CPU budget used, traps by reason, egress by granted
//!   pattern, credential requests, and reads served by the backend or shared by the
//!   coalescer.
//!
//! No label carries a secret, a key name or text a guest chose: labels are object names
//! and namespaces, Provider names, granted patterns and fixed words (reasons, results).
//!
//! The registry and the server are small and written here on purpose: ESO's names break
//! the suffix rules of OpenMetrics encoders (`_error` and `_count` counters), ESO removes
//! series by partial label match, and the server answers `GET` on three paths only.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::backend::{StoreInfo, StoreKind};
use crate::crd::{Condition, ConditionStatus};

/// Largest request head read before answering 431.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// controller-runtime's buckets for `controller_runtime_reconcile_time_seconds`.
const RECONCILE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];
/// controller-runtime's workqueue buckets: 10 ns times powers of ten, twelve of them.
const QUEUE_BUCKETS: &[f64] = &[
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0,
];
/// Sandboxed calls: from a cached read (sub-millisecond) to the 30 s default call timeout.
const CALL_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Peak instance memory: 1 MiB to 1 GiB in powers of two (the default limit is 64 MiB).
const MEMORY_BUCKETS: &[f64] = &[
    1048576.0,
    2097152.0,
    4194304.0,
    8388608.0,
    16777216.0,
    33554432.0,
    67108864.0,
    134217728.0,
    268435456.0,
    536870912.0,
    1073741824.0,
];
/// Share of the CPU budget one call used.
const RATIO_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0];

/// The label names ESO gives resource series without a condition.
const RESOURCE: &[&str] = &["name", "namespace"];
/// The label names ESO gives `*_status_condition`.
const CONDITION: &[&str] = &["name", "namespace", "condition", "status"];
/// The labels naming one store.
const STORE: &[&str] = &["provider", "store_kind", "store_namespace", "store"];

#[derive(Debug, Clone, Copy)]
enum Type {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

#[derive(Debug, Default, Clone)]
struct Series {
    /// The value, or the sum of a histogram's observations.
    value: f64,
    /// Per-bucket (not cumulative) counts of a histogram.
    buckets: Vec<u64>,
    count: u64,
}

/// One metric: its name, type, label names and series.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Type,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Family {
    fn new(
        name: &'static str,
        kind: Type,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Family {
            name,
            help,
            kind,
            labels,
            series: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<String>, Series>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with(&self, values: &[&str], f: impl FnOnce(&mut Series)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| (*v).to_string()).collect();
        f(self.lock().entry(key).or_default());
    }

    fn add(&self, values: &[&str], v: f64) {
        self.with(values, |s| s.value += v);
    }

    fn inc(&self, values: &[&str]) {
        self.add(values, 1.0);
    }

    fn set(&self, values: &[&str], v: f64) {
        self.with(values, |s| s.value = v);
    }

    fn observe(&self, values: &[&str], v: f64) {
        let Type::Histogram(bounds) = self.kind else {
            return;
        };
        self.with(values, |s| {
            if s.buckets.len() != bounds.len() {
                s.buckets = vec![0; bounds.len()];
            }
            if let Some(i) = bounds.iter().position(|b| v <= *b) {
                s.buckets[i] += 1;
            }
            s.value += v;
            s.count += 1;
        });
    }

    /// Removes the series whose labels hold all of `pairs` (ESO's `DeletePartialMatch`).
    fn remove_matching(&self, pairs: &[(&str, &str)]) {
        let idx: Vec<(usize, &str)> = pairs
            .iter()
            .filter_map(|(l, v)| self.labels.iter().position(|n| n == l).map(|i| (i, *v)))
            .collect();
        if idx.len() != pairs.len() {
            return;
        }
        self.lock()
            .retain(|key, _| !idx.iter().all(|(i, v)| key[*i] == *v));
    }

    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (key, s) in self.lock().iter() {
            let labels = label_text(self.labels, key);
            match self.kind {
                Type::Histogram(bounds) => {
                    let mut cumulative = 0;
                    for (bound, n) in bounds.iter().zip(&s.buckets) {
                        cumulative += n;
                        let _ = writeln!(
                            out,
                            "{}_bucket{{{labels}{}le=\"{bound}\"}} {cumulative}",
                            self.name,
                            if labels.is_empty() { "" } else { "," }
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{}_bucket{{{labels}{}le=\"+Inf\"}} {}",
                        self.name,
                        if labels.is_empty() { "" } else { "," },
                        s.count
                    );
                    let _ = writeln!(out, "{}_sum{} {}", self.name, braced(&labels), s.value);
                    let _ = writeln!(out, "{}_count{} {}", self.name, braced(&labels), s.count);
                }
                _ => {
                    let _ = writeln!(out, "{}{} {}", self.name, braced(&labels), s.value);
                }
            }
        }
    }
}

fn label_text(names: &[&str], values: &[String]) -> String {
    let mut text = String::new();
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(text, "{n}=\"{}\"", escape(v));
    }
    text
}

fn braced(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// The kinds whose controllers report metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ExternalSecret`.
    ExternalSecret,
    /// `SecretStore`.
    SecretStore,
    /// `ClusterSecretStore`.
    ClusterSecretStore,
    /// `ClusterExternalSecret`.
    ClusterExternalSecret,
    /// `PushSecret`.
    PushSecret,
    /// `ClusterPushSecret`.
    ClusterPushSecret,
    /// Airlock's `Provider`.
    Provider,
    /// `GeneratorState` (controller metrics only, as ESO).
    GeneratorState,
}

const KINDS: [Kind; 8] = [
    Kind::ExternalSecret,
    Kind::SecretStore,
    Kind::ClusterSecretStore,
    Kind::ClusterExternalSecret,
    Kind::PushSecret,
    Kind::ClusterPushSecret,
    Kind::Provider,
    Kind::GeneratorState,
];

impl Kind {
    /// The controller's name in `controller` labels: the kind in lower case, as
    /// controller-runtime names ESO's controllers.
    pub fn controller(self) -> &'static str {
        match self {
            Kind::ExternalSecret => "externalsecret",
            Kind::SecretStore => "secretstore",
            Kind::ClusterSecretStore => "clustersecretstore",
            Kind::ClusterExternalSecret => "clusterexternalsecret",
            Kind::PushSecret => "pushsecret",
            Kind::ClusterPushSecret => "clusterpushsecret",
            Kind::Provider => "provider",
            Kind::GeneratorState => "generatorstate",
        }
    }

    /// The kind whose controller is called `name` (any case).
    pub fn from_controller(name: &str) -> Option<Kind> {
        KINDS
            .into_iter()
            .find(|k| k.controller().eq_ignore_ascii_case(name))
    }

    /// The kind of a store.
    pub fn of_store(kind: StoreKind) -> Kind {
        match kind {
            StoreKind::SecretStore => Kind::SecretStore,
            StoreKind::ClusterSecretStore => Kind::ClusterSecretStore,
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// ESO's two series of one kind.
#[derive(Debug)]
struct KindFamilies {
    condition: Family,
    duration: Family,
}

/// Reconciles running now, per controller, by start time (for the workqueue's
/// unfinished-work gauges).
#[derive(Debug, Default)]
struct InFlight {
    next: AtomicU64,
    running: Mutex<HashMap<u64, Instant>>,
}

/// The series of the running operator (one set per process, see [`global`]).
#[derive(Debug)]
pub struct Metrics {
    ready: AtomicBool,
    sync_calls: Family,
    sync_errors: Family,
    kinds: Vec<Option<KindFamilies>>,
    api_calls: Family,
    reconcile_total: Family,
    reconcile_errors: Family,
    reconcile_time: Family,
    max_concurrent: Family,
    active_workers: Family,
    queue_depth: Family,
    queue_adds: Family,
    queue_duration: Family,
    work_duration: Family,
    unfinished: Family,
    longest: Family,
    retries: Family,
    in_flight: Vec<InFlight>,
    sandbox_calls: Family,
    sandbox_duration: Family,
    sandbox_memory: Family,
    sandbox_cpu: Family,
    sandbox_traps: Family,
    egress: Family,
    credentials: Family,
    reads: Family,
}

impl Default for Metrics {
    fn default() -> Self {
        use Type::{Counter, Gauge, Histogram};
        let kind = |k: Kind| {
            let (condition, duration, c_help, d_help) = match k {
                Kind::ExternalSecret => (
                    "externalsecret_status_condition",
                    "externalsecret_reconcile_duration",
                    "The status condition of a specific External Secret",
                    "The duration time to reconcile the External Secret",
                ),
                Kind::SecretStore => (
                    "secretstore_status_condition",
                    "secretstore_reconcile_duration",
                    "The status condition of a specific Secret Store",
                    "The duration time to reconcile the Secret Store",
                ),
                Kind::ClusterSecretStore => (
                    "clustersecretstore_status_condition",
                    "clustersecretstore_reconcile_duration",
                    "The status condition of a specific Cluster Secret Store",
                    "The duration time to reconcile the Cluster Secret Store",
                ),
                Kind::ClusterExternalSecret => (
                    "clusterexternalsecret_status_condition",
                    "clusterexternalsecret_reconcile_duration",
                    "The status condition of a specific Cluster External Secret",
                    "The duration time to reconcile the Cluster External Secret",
                ),
                Kind::PushSecret => (
                    "pushsecret_status_condition",
                    "pushsecret_reconcile_duration",
                    "The status condition of a specific Push Secret",
                    "The duration time to reconcile the Push Secret",
                ),
                Kind::ClusterPushSecret => (
                    "clusterpushsecret_status_condition",
                    "clusterpushsecret_reconcile_duration",
                    "The status condition of a specific Cluster Push Secret",
                    "The duration time to reconcile the Cluster Push Secret",
                ),
                Kind::Provider | Kind::GeneratorState => return None,
            };
            Some(KindFamilies {
                condition: Family::new(condition, Gauge, CONDITION, c_help),
                duration: Family::new(duration, Gauge, RESOURCE, d_help),
            })
        };
        const CONTROLLER: &[&str] = &["controller"];
        const QUEUE: &[&str] = &["controller", "name"];
        Metrics {
            ready: AtomicBool::new(false),
            sync_calls: Family::new(
                "externalsecret_sync_calls_total",
                Counter,
                RESOURCE,
                "Total number of the External Secret sync calls",
            ),
            sync_errors: Family::new(
                "externalsecret_sync_calls_error",
                Counter,
                RESOURCE,
                "Total number of the External Secret sync errors",
            ),
            kinds: KINDS.into_iter().map(kind).collect(),
            api_calls: Family::new(
                "externalsecret_provider_api_calls_count",
                Counter,
                &["provider", "call", "status"],
                "Number of API calls towards the secret provider",
            ),
            reconcile_total: Family::new(
                "controller_runtime_reconcile_total",
                Counter,
                &["controller", "result"],
                "Total number of reconciliations per controller",
            ),
            reconcile_errors: Family::new(
                "controller_runtime_reconcile_errors_total",
                Counter,
                CONTROLLER,
                "Total number of reconciliation errors per controller",
            ),
            reconcile_time: Family::new(
                "controller_runtime_reconcile_time_seconds",
                Histogram(RECONCILE_BUCKETS),
                CONTROLLER,
                "Length of time per reconciliation per controller",
            ),
            max_concurrent: Family::new(
                "controller_runtime_max_concurrent_reconciles",
                Gauge,
                CONTROLLER,
                "Maximum number of concurrent reconciles per controller",
            ),
            active_workers: Family::new(
                "controller_runtime_active_workers",
                Gauge,
                CONTROLLER,
                "Number of currently used workers per controller",
            ),
            queue_depth: Family::new(
                "workqueue_depth",
                Gauge,
                QUEUE,
                "Current depth of workqueue",
            ),
            queue_adds: Family::new(
                "workqueue_adds_total",
                Counter,
                QUEUE,
                "Total number of adds handled by workqueue",
            ),
            queue_duration: Family::new(
                "workqueue_queue_duration_seconds",
                Histogram(QUEUE_BUCKETS),
                QUEUE,
                "How long in seconds an item stays in workqueue before being requested",
            ),
            work_duration: Family::new(
                "workqueue_work_duration_seconds",
                Histogram(QUEUE_BUCKETS),
                QUEUE,
                "How long in seconds processing an item from workqueue takes.",
            ),
            unfinished: Family::new(
                "workqueue_unfinished_work_seconds",
                Gauge,
                QUEUE,
                "How many seconds of work has been done that is in progress and hasn't been observed by work_duration.",
            ),
            longest: Family::new(
                "workqueue_longest_running_processor_seconds",
                Gauge,
                QUEUE,
                "How many seconds has the longest running processor for workqueue been running.",
            ),
            retries: Family::new(
                "workqueue_retries_total",
                Counter,
                QUEUE,
                "Total number of retries handled by workqueue",
            ),
            in_flight: KINDS.iter().map(|_| InFlight::default()).collect(),
            sandbox_calls: Family::new(
                "airlock_sandbox_calls_total",
                Counter,
                &[
                    "provider",
                    "store_kind",
                    "store_namespace",
                    "store",
                    "call",
                    "result",
                ],
                "Calls into a provider's sandbox, by store, WIT function and result (success or error)",
            ),
            sandbox_duration: Family::new(
                "airlock_sandbox_call_duration_seconds",
                Histogram(CALL_BUCKETS),
                &["provider", "store_kind", "store_namespace", "store", "call"],
                "Wall time of one sandboxed call, instantiation included",
            ),
            sandbox_memory: Family::new(
                "airlock_sandbox_memory_peak_bytes",
                Histogram(MEMORY_BUCKETS),
                STORE,
                "Largest linear memory one sandboxed call's instance grew to",
            ),
            sandbox_cpu: Family::new(
                "airlock_sandbox_cpu_budget_used_ratio",
                Histogram(RATIO_BUCKETS),
                STORE,
                "Share of the Provider's CPU budget (limits.cpuTime) one call used, in epoch ticks",
            ),
            sandbox_traps: Family::new(
                "airlock_sandbox_traps_total",
                Counter,
                &[
                    "provider",
                    "store_kind",
                    "store_namespace",
                    "store",
                    "reason",
                ],
                "Sandboxed calls stopped by the host (limits, timeouts, crashes), by reason",
            ),
            egress: Family::new(
                "airlock_sandbox_egress_requests_total",
                Counter,
                &["provider", "pattern", "result"],
                "Outbound requests of guests by the granted pattern that let them through (allowed; address_refused when the host then refused the address it resolved to), or denied with pattern=\"none\"",
            ),
            credentials: Family::new(
                "airlock_sandbox_credential_requests_total",
                Counter,
                &[
                    "provider",
                    "store_kind",
                    "store_namespace",
                    "store",
                    "result",
                ],
                "Credential requests of guests (Secret keys, ConfigMap keys, tokens), allowed or denied by the store's configuration",
            ),
            reads: Family::new(
                "airlock_secret_reads_total",
                Counter,
                &[
                    "provider",
                    "store_kind",
                    "store_namespace",
                    "store",
                    "source",
                ],
                "Refs an ExternalSecret read, by source: backend (a sandboxed call) or coalesced (shared with another reader)",
            ),
        }
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// The label values naming a store. A ClusterSecretStore's namespace is the namespace
/// being reconciled, not the store's: it is left out, so a cluster store is one series.
fn store_labels<'a>(provider: &'a str, store: &'a StoreInfo) -> [&'a str; 4] {
    match store.kind {
        StoreKind::SecretStore => [provider, "SecretStore", &store.namespace, &store.name],
        StoreKind::ClusterSecretStore => [provider, "ClusterSecretStore", "", &store.name],
    }
}

/// What one sandboxed call used and how it ended, for [`Metrics::sandbox_call`].
#[derive(Debug)]
pub struct SandboxCall<'a> {
    /// The Provider's name.
    pub provider: &'a str,
    /// The store served.
    pub store: &'a StoreInfo,
    /// The WIT function called (`get-secrets`, `validate`, …).
    pub call: &'static str,
    /// How long the call took.
    pub elapsed: Duration,
    /// The largest linear memory the instance grew to, in bytes.
    pub memory_peak: usize,
    /// Guest CPU time used, in epoch ticks, and the budget in ticks.
    pub cpu_ticks: (u64, u64),
    /// Credential requests made and denied.
    pub credentials: (u32, u32),
    /// Whether the provider answered without an error.
    pub ok: bool,
    /// The host stopped the call: the error's stable `reason()`.
    pub trap: Option<&'static str>,
}

impl Metrics {
    /// Records the outcome of one ExternalSecret sync: errors count in
    /// `externalsecret_sync_calls_error`, and the Ready condition is set.
    pub fn external_secret_synced(&self, namespace: &str, name: &str, ok: bool) {
        if !ok {
            self.sync_errors.inc(&[name, namespace]);
        }
        let status = if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        self.ready_status(Kind::ExternalSecret, namespace, name, status);
    }

    /// Sets `<kind>_status_condition` from the object's Ready `condition`, as ESO does:
    /// 1 for its status, 0 for the opposite one.
    pub fn condition(&self, kind: Kind, namespace: &str, name: &str, condition: &Condition) {
        self.ready_status(kind, namespace, name, condition.status);
    }

    fn ready_status(&self, kind: Kind, namespace: &str, name: &str, status: ConditionStatus) {
        let Some(f) = &self.kinds[kind.index()] else {
            return;
        };
        let (current, other) = match status {
            ConditionStatus::True => ("True", Some("False")),
            ConditionStatus::False => ("False", Some("True")),
            ConditionStatus::Unknown => ("Unknown", None),
        };
        f.condition.set(&[name, namespace, "Ready", current], 1.0);
        if let Some(other) = other {
            f.condition.set(&[name, namespace, "Ready", other], 0.0);
        }
    }

    /// Drops the series of an object that no longer exists (ESO's `RemoveMetrics`).
    pub fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        let pairs = [("name", name), ("namespace", namespace)];
        if let Some(f) = &self.kinds[kind.index()] {
            f.condition.remove_matching(&pairs);
            f.duration.remove_matching(&pairs);
        }
        if kind == Kind::ExternalSecret {
            self.sync_calls.remove_matching(&pairs);
            self.sync_errors.remove_matching(&pairs);
        }
    }

    /// Records one sandboxed call (see [`SandboxCall`]).
    pub fn sandbox_call(&self, c: &SandboxCall<'_>) {
        let [provider, kind, ns, store] = store_labels(c.provider, c.store);
        let result = if c.ok { "success" } else { "error" };
        self.api_calls.inc(&[provider, c.call, result]);
        self.sandbox_calls
            .inc(&[provider, kind, ns, store, c.call, result]);
        self.sandbox_duration.observe(
            &[provider, kind, ns, store, c.call],
            c.elapsed.as_secs_f64(),
        );
        let labels = [provider, kind, ns, store];
        self.sandbox_memory.observe(&labels, c.memory_peak as f64);
        let (used, budget) = c.cpu_ticks;
        self.sandbox_cpu
            .observe(&labels, (used as f64 / budget.max(1) as f64).min(1.0));
        if let Some(reason) = c.trap {
            self.sandbox_traps.inc(&[provider, kind, ns, store, reason]);
        }
        let (requested, denied) = c.credentials;
        let allowed = requested.saturating_sub(denied);
        if allowed > 0 {
            self.credentials
                .add(&[provider, kind, ns, store, "allowed"], f64::from(allowed));
        }
        if denied > 0 {
            self.credentials
                .add(&[provider, kind, ns, store, "denied"], f64::from(denied));
        }
    }

    /// Records one outbound request of `provider`'s guest: `granted` is the pattern that
    /// allowed it, `None` when it was refused.
    pub fn egress(&self, provider: &str, granted: Option<&dyn std::fmt::Display>) {
        match granted {
            Some(pattern) => self
                .egress
                .inc(&[provider, &pattern.to_string(), "allowed"]),
            None => self.egress.inc(&[provider, "none", "denied"]),
        }
    }

    /// Records a request a pattern let through but the host then refused to connect: its
    /// address is private, loopback, link-local or metadata and not granted.
    pub fn egress_refused(
        &self,
        provider: &str,
        pattern: &Option<String>,
        error: &wasmtime_wasi_http::Error,
    ) {
        if matches!(error, wasmtime_wasi_http::Error::DestinationIpProhibited) {
            let pattern = pattern.as_deref().unwrap_or("none");
            self.egress.inc(&[provider, pattern, "address_refused"]);
        }
    }

    /// Records refs read for one ExternalSecret: `backend` by a sandboxed call, `coalesced`
    /// answered by another reader's call or a recent result.
    pub fn reads(&self, provider: &str, store: &StoreInfo, backend: usize, coalesced: usize) {
        let [provider, kind, ns, store] = store_labels(provider, store);
        for (source, n) in [("backend", backend), ("coalesced", coalesced)] {
            if n > 0 {
                self.reads
                    .add(&[provider, kind, ns, store, source], n as f64);
            }
        }
    }

    /// Marks the controllers as running (`/readyz` answers 200 from then on).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the controllers are running.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        for kind in KINDS {
            let running = self.in_flight[kind.index()]
                .running
                .lock()
                .map(|r| r.values().map(Instant::elapsed).collect::<Vec<_>>())
                .unwrap_or_default();
            let name = kind.controller();
            if !self
                .max_concurrent
                .lock()
                .contains_key(&vec![name.to_string()])
            {
                continue;
            }
            let total = running
                .iter()
                .map(Duration::as_secs_f64)
                .fold(0.0, |a, b| a + b);
            let longest = running.iter().max().map_or(0.0, Duration::as_secs_f64);
            self.unfinished.set(&[name, name], total);
            self.longest.set(&[name, name], longest);
        }
        let mut out = String::new();
        self.sync_calls.render(&mut out);
        self.sync_errors.render(&mut out);
        for f in self.kinds.iter().flatten() {
            f.condition.render(&mut out);
            f.duration.render(&mut out);
        }
        for f in [
            &self.api_calls,
            &self.reconcile_total,
            &self.reconcile_errors,
            &self.reconcile_time,
            &self.max_concurrent,
            &self.active_workers,
            &self.queue_depth,
            &self.queue_adds,
            &self.queue_duration,
            &self.work_duration,
            &self.unfinished,
            &self.longest,
            &self.retries,
            &self.sandbox_calls,
            &self.sandbox_duration,
            &self.sandbox_memory,
            &self.sandbox_cpu,
            &self.sandbox_traps,
            &self.egress,
            &self.credentials,
            &self.reads,
        ] {
            f.render(&mut out);
        }
        out
    }
}

/// A reconcile future as kube-rs runs it.
pub type ReconcileFuture<E> = Pin<Box<dyn Future<Output = Result<Action, E>> + Send>>;

/// Wraps a kube-rs reconciler so that it reports controller-runtime's and ESO's series for
/// `kind`, and runs at most `concurrency` reconciles at once (0: no limit). The controller
/// itself must then run with no limit of its own (see `controller::controller_config`), so
/// that a reconcile waiting for a worker is visible here as the workqueue's depth.
pub fn instrument<K, C, E, F, Fut>(
    kind: Kind,
    concurrency: u16,
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> ReconcileFuture<E>
where
    K: kube::Resource + Send + Sync + 'static,
    C: Send + Sync + 'static,
    E: Send + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let m = global();
    let name = kind.controller();
    m.max_concurrent.set(&[name], f64::from(concurrency));
    m.active_workers.add(&[name], 0.0);
    m.queue_depth.add(&[name, name], 0.0);
    let workers = (concurrency > 0).then(|| Arc::new(Semaphore::new(usize::from(concurrency))));
    move |object: Arc<K>, ctx: Arc<C>| {
        let object_name = object.meta().name.clone().unwrap_or_default();
        let namespace = object.meta().namespace.clone().unwrap_or_default();
        let fut = reconcile(object, ctx);
        let workers = workers.clone();
        let queued = Instant::now();
        m.queue_adds.inc(&[name, name]);
        m.queue_depth.add(&[name, name], 1.0);
        Box::pin(async move {
            let permit = match workers {
                Some(w) => w.acquire_owned().await.ok(),
                None => None,
            };
            m.queue_depth.add(&[name, name], -1.0);
            m.queue_duration
                .observe(&[name, name], queued.elapsed().as_secs_f64());
            let in_flight = &m.in_flight[kind.index()];
            let id = in_flight.next.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            if let Ok(mut r) = in_flight.running.lock() {
                r.insert(id, started);
            }
            m.active_workers.add(&[name], 1.0);
            let result = fut.await;
            m.active_workers.add(&[name], -1.0);
            if let Ok(mut r) = in_flight.running.lock() {
                r.remove(&id);
            }
            drop(permit);
            let took = started.elapsed();
            m.reconcile_time.observe(&[name], took.as_secs_f64());
            m.work_duration.observe(&[name, name], took.as_secs_f64());
            let outcome = match &result {
                Err(_) => "error",
                Ok(action) if *action == Action::await_change() => "success",
                Ok(_) => "requeue_after",
            };
            m.reconcile_total.inc(&[name, outcome]);
            if result.is_err() {
                m.reconcile_errors.inc(&[name]);
                // The error policy requeues it with backoff: controller-runtime's
                // rate-limited re-add.
                m.retries.inc(&[name, name]);
            }
            if let Some(f) = &m.kinds[kind.index()] {
                f.duration
                    .set(&[&object_name, &namespace], took.as_nanos() as f64);
            }
            if kind == Kind::ExternalSecret {
                m.sync_calls.inc(&[&object_name, &namespace]);
            }
            result
        })
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
    fn sync_outcomes_set_eso_error_counts_and_the_ready_condition() {
        let m = Metrics::default();
        m.external_secret_synced("prod", "db", true);
        m.external_secret_synced("prod", "db", false);
        let text = m.render();
        assert!(text.contains("externalsecret_sync_calls_error{name=\"db\",namespace=\"prod\"} 1"));
        assert!(text.contains(
            "externalsecret_status_condition{name=\"db\",namespace=\"prod\",condition=\"Ready\",status=\"False\"} 1"
        ));
        assert!(text.contains(
            "externalsecret_status_condition{name=\"db\",namespace=\"prod\",condition=\"Ready\",status=\"True\"} 0"
        ));
        m.forget(Kind::ExternalSecret, "prod", "db");
        assert!(!m.render().contains("name=\"db\""), "{}", m.render());
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let f = Family::new("h", Type::Histogram(&[1.0, 2.0]), &["a"], "help");
        f.observe(&["x"], 0.5);
        f.observe(&["x"], 1.5);
        f.observe(&["x"], 9.0);
        let mut out = String::new();
        f.render(&mut out);
        for line in [
            "h_bucket{a=\"x\",le=\"1\"} 1",
            "h_bucket{a=\"x\",le=\"2\"} 2",
            "h_bucket{a=\"x\",le=\"+Inf\"} 3",
            "h_sum{a=\"x\"} 11",
            "h_count{a=\"x\"} 3",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }

    #[test]
    fn a_cluster_store_is_one_series_whatever_namespace_reads_it() {
        let m = Metrics::default();
        for ns in ["a", "b"] {
            let store = StoreInfo {
                kind: StoreKind::ClusterSecretStore,
                name: "shared".into(),
                namespace: ns.into(),
            };
            m.reads("fake", &store, 1, 0);
        }
        assert!(m.render().contains(
            "airlock_secret_reads_total{provider=\"fake\",store_kind=\"ClusterSecretStore\",store_namespace=\"\",store=\"shared\",source=\"backend\"} 2"
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
        metrics.external_secret_synced("ns", "es", false);
        let body = get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("externalsecret_sync_calls_error{name=\"es\",namespace=\"ns\"} 1"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
