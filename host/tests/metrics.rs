//! `/metrics` of a running `airlock run` against a real kube-apiserver: after a sync, a
//! provider error with a denied outbound request, and a guest trap, each series ESO's and
//! Airlock's dashboards read is there with the expected values, `promtool check metrics`
//! accepts the page, and no label value holds a secret or a key name.

mod cluster;

use cluster::{apply, eventually, install_crds};

use std::collections::BTreeMap;

use airlock::crd::{ExternalSecret, Provider, SecretStore};
use airlock_testenv::ControlPlane;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

/// The synced secret's values and key names: none may show up in `/metrics`.
const SECRET_USER: &str = "u-7f3a9c-metrics";
const SECRET_PASS: &str = "p-Q2xW8z-metrics";
const REMOTE_KEY: &str = "metrics-remote/credential";
const SECRET_KEYS: [&str; 2] = ["sk-user-91", "sk-pass-92"];

/// A series a test waits for: name, some of its labels, the least value.
type Wanted<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// One sample of a scrape: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (the subset the operator writes).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a number in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("label=\"");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("closing quote") {
                    (_, '\\') => match chars.next().expect("escaped").1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            map.insert(key.to_string(), value);
            rest = after[end + 1..].trim_start_matches(',');
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    out
}

/// The value of the one sample of `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map(|s| s.value)
}

/// Like [`value`], failing with the whole scrape when the series is missing.
fn must(samples: &[Sample], text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
}

/// A free port on 127.0.0.1 for the operator's metrics endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn scrape(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn es(store: &str, kind: &str, data: Value) -> Value {
    json!({"refreshInterval": "1h",
           "secretStoreRef": {"name": store, "kind": kind},
           "target": {"creationPolicy": "Owner"},
           "data": data})
}

/// Waits for the Ready status; the operator process first compiles its providers in a debug
/// build, which on a loaded 2-core machine has taken more than the usual 30 s.
async fn ready_status(api: &Api<ExternalSecret>, name: &str, want: &str) {
    let what = format!("ExternalSecret {name} Ready={want}");
    cluster::eventually_within(std::time::Duration::from_secs(120), &what, || async {
        let es = api.get(name).await.ok()?;
        let c = es
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (format!("{:?}", c.status) == want).then_some(())
    })
    .await;
}

struct Operator {
    client: Client,
    ns: String,
    port: u16,
    vault: String,
    hostile: String,
    _child: tokio::process::Child,
    _providers: tempfile::TempDir,
}

/// The real binary in its own process (its metrics are its own), watching a fresh
/// namespace, with three Providers: `fake`, a Vault granted only `https://vault.example.com`
/// and the hostile guest.
async fn start(prefix: &str) -> Operator {
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace(prefix).await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    for (from, to) in [
        (airlock_test_artifacts::FAKE, "fake.wasm"),
        (airlock_test_artifacts::VAULT, "vault.wasm"),
        (airlock_test_artifacts::HOSTILE, "hostile.wasm"),
    ] {
        std::fs::copy(from, providers.path().join(to)).expect("copy a module");
    }
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["run", "--namespace", &ns])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .arg("--providers-dir")
        .arg(providers.path())
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("AIRLOCK_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("airlock run starts");
    // Provider objects are cluster-wide: this test's own names, so other tests' grants
    // do not change its counts.
    let (vault, hostile) = (format!("{ns}-vault"), format!("{ns}-hostile"));
    let api: Api<Provider> = Api::all(client.clone());
    for value in [
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "fake"}, "spec": {"module": {"path": "fake.wasm"}}}),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": vault}, "spec": {"module": {"path": "vault.wasm"},
               "allowedOutboundHosts": ["https://vault.example.com"]}}),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": hostile}, "spec": {"module": {"path": "hostile.wasm"}}}),
    ] {
        apply(&api, value).await;
    }
    eventually("the metrics endpoint", || scrape(port)).await;
    Operator {
        client,
        ns,
        port,
        vault,
        hostile,
        _child: child,
        _providers: providers,
    }
}

impl Operator {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn store(&self, name: &str, provider: &str, config: Value) {
        apply(
            &self.api::<SecretStore>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": name, "namespace": self.ns},
                   "spec": {"provider": {provider: config}}}),
        )
        .await;
    }

    async fn external_secret(&self, name: &str, spec: Value) {
        apply(
            &self.api::<ExternalSecret>(),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": name, "namespace": self.ns}, "spec": spec}),
        )
        .await;
    }

    /// A store `fake-store` holding the known secret, and ExternalSecret `synced` reading it.
    async fn sync_known_secret(&self) {
        let value = json!({"user": SECRET_USER, "pass": SECRET_PASS}).to_string();
        self.store(
            "fake-store",
            "fake",
            json!({"data": [{"key": REMOTE_KEY, "value": value}]}),
        )
        .await;
        self.external_secret(
            "synced",
            es(
                "fake-store",
                "SecretStore",
                json!([
                    {"secretKey": SECRET_KEYS[0], "remoteRef": {"key": REMOTE_KEY, "property": "user"}},
                    {"secretKey": SECRET_KEYS[1], "remoteRef": {"key": REMOTE_KEY, "property": "pass"}}
                ]),
            ),
        )
        .await;
        ready_status(&self.api(), "synced", "True").await;
    }

    async fn scrape(&self) -> String {
        scrape(self.port).await.expect("/metrics answers")
    }
}

#[tokio::test]
async fn metrics_after_a_sync_an_error_a_denied_egress_and_a_trap_carry_the_expected_values() {
    let op = start("metrics").await;
    op.sync_known_secret().await;
    // A Vault store whose server is not granted: its request is refused by the host.
    let token: Api<Secret> = op.api();
    apply(
        &token,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "vault-token", "namespace": op.ns},
               "stringData": {"token": "not-used"}}),
    )
    .await;
    op.store(
        "vault-store",
        &op.vault,
        json!({"server": "http://127.0.0.1:1", "path": "secret", "version": "v2",
               "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}),
    )
    .await;
    op.external_secret(
        "failing",
        es(
            "vault-store",
            "SecretStore",
            json!([{"secretKey": "x", "remoteRef": {"key": "app", "property": "x"}}]),
        ),
    )
    .await;
    // The hostile guest panics on the key "panic".
    op.store("hostile-store", &op.hostile, json!({})).await;
    op.external_secret(
        "trapping",
        es(
            "hostile-store",
            "SecretStore",
            json!([{"secretKey": "x", "remoteRef": {"key": "panic"}}]),
        ),
    )
    .await;
    let api: Api<ExternalSecret> = op.api();
    ready_status(&api, "failing", "False").await;
    ready_status(&api, "trapping", "False").await;

    let ns = op.ns.as_str();
    // Counters move after the status patch a test can see: wait until every reconcile and
    // call this test caused has been counted.
    let (vault, hostile) = (op.vault.as_str(), op.hostile.as_str());
    let counted: [Wanted; 8] = [
        (
            "externalsecret_sync_calls_total",
            vec![("name", "synced")],
            1.0,
        ),
        (
            "externalsecret_sync_calls_error",
            vec![("name", "failing")],
            1.0,
        ),
        (
            "externalsecret_sync_calls_error",
            vec![("name", "trapping")],
            1.0,
        ),
        (
            "controller_runtime_reconcile_total",
            vec![("controller", "externalsecret"), ("result", "error")],
            2.0,
        ),
        (
            "secretstore_status_condition",
            vec![("name", "fake-store"), ("status", "True")],
            1.0,
        ),
        (
            "airlock_sandbox_credential_requests_total",
            vec![
                ("provider", vault),
                ("store", "vault-store"),
                ("result", "allowed"),
            ],
            1.0,
        ),
        (
            "airlock_sandbox_egress_requests_total",
            vec![("provider", vault), ("result", "denied")],
            1.0,
        ),
        (
            "airlock_sandbox_traps_total",
            vec![("provider", hostile), ("store", "hostile-store")],
            1.0,
        ),
    ];
    let text = eventually("every reconcile and call counted", || async {
        let text = op.scrape().await;
        let s = parse(&text);
        counted
            .iter()
            .all(|(name, labels, min)| value(&s, name, labels) >= Some(*min))
            .then_some(text)
    })
    .await;
    let s = parse(&text);
    let at = |name: &str, labels: &[(&str, &str)]| must(&s, &text, name, labels);

    // ESO's ExternalSecret series.
    let synced = [("name", "synced"), ("namespace", ns)];
    assert!(at("externalsecret_sync_calls_total", &synced) >= 1.0);
    let ready = |name: &'static str, status: &'static str| {
        [
            ("name", name),
            ("namespace", ns),
            ("condition", "Ready"),
            ("status", status),
        ]
    };
    assert_eq!(
        at("externalsecret_status_condition", &ready("synced", "True")),
        1.0
    );
    assert_eq!(
        at("externalsecret_status_condition", &ready("synced", "False")),
        0.0
    );
    assert_eq!(
        at(
            "externalsecret_status_condition",
            &ready("failing", "False")
        ),
        1.0
    );
    assert_eq!(
        at("externalsecret_status_condition", &ready("failing", "True")),
        0.0
    );
    assert!(at("externalsecret_reconcile_duration", &synced) > 0.0);
    assert!(
        at(
            "externalsecret_provider_api_calls_count",
            &[
                ("provider", "fake"),
                ("call", "get-secrets"),
                ("status", "success")
            ]
        ) >= 1.0
    );
    assert!(
        at(
            "externalsecret_provider_api_calls_count",
            &[
                ("provider", &op.vault),
                ("call", "get-secrets"),
                ("status", "error")
            ]
        ) >= 1.0
    );
    // The stores' own series.
    let store_ready = [
        ("name", "fake-store"),
        ("namespace", ns),
        ("condition", "Ready"),
        ("status", "True"),
    ];
    assert_eq!(at("secretstore_status_condition", &store_ready), 1.0);
    assert!(
        at(
            "secretstore_reconcile_duration",
            &[("name", "fake-store"), ("namespace", ns)]
        ) > 0.0
    );

    // controller-runtime's series, as ESO's dashboard reads them.
    let es_controller = [("controller", "externalsecret")];
    assert!(
        at(
            "controller_runtime_reconcile_total",
            &[
                ("controller", "externalsecret"),
                ("result", "requeue_after")
            ]
        ) >= 1.0
    );
    assert!(
        at(
            "controller_runtime_reconcile_total",
            &[("controller", "externalsecret"), ("result", "error")]
        ) >= 2.0,
        "the failing and the trapping ExternalSecret"
    );
    assert!(at("controller_runtime_reconcile_errors_total", &es_controller) >= 2.0);
    assert!(
        at(
            "controller_runtime_reconcile_time_seconds_count",
            &es_controller
        ) >= 3.0
    );
    assert_eq!(
        at(
            "controller_runtime_max_concurrent_reconciles",
            &es_controller
        ),
        8.0
    );
    let queue = [("controller", "externalsecret"), ("name", "externalsecret")];
    assert!(at("workqueue_adds_total", &queue) >= 3.0);
    assert!(at("workqueue_depth", &queue) >= 0.0);
    assert!(at("workqueue_retries_total", &queue) >= 2.0);
    assert!(at("workqueue_work_duration_seconds_count", &queue) >= 3.0);
    assert!(
        at("workqueue_queue_duration_seconds_count", &queue)
            >= at("workqueue_work_duration_seconds_count", &queue)
    );

    // The sandbox.
    let fake_store = [
        ("provider", "fake"),
        ("store_kind", "SecretStore"),
        ("store_namespace", ns),
        ("store", "fake-store"),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut l = fake_store.to_vec();
        l.push(extra);
        l
    };
    let mut get_ok = with(("call", "get-secrets"));
    get_ok.push(("result", "success"));
    assert!(at("airlock_sandbox_calls_total", &get_ok) >= 1.0);
    assert!(
        at(
            "airlock_sandbox_call_duration_seconds_count",
            &with(("call", "get-secrets"))
        ) >= 1.0
    );
    assert!(at("airlock_sandbox_memory_peak_bytes_sum", &fake_store) > 0.0);
    assert!(at("airlock_sandbox_memory_peak_bytes_count", &fake_store) >= 1.0);
    assert!(at("airlock_sandbox_cpu_budget_used_ratio_count", &fake_store) >= 1.0);
    assert!(at("airlock_secret_reads_total", &with(("source", "backend"))) >= 1.0);
    assert!(
        at(
            "airlock_sandbox_egress_requests_total",
            &[
                ("provider", &op.vault),
                ("pattern", "none"),
                ("result", "denied")
            ]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &s,
            "airlock_sandbox_egress_requests_total",
            &[("provider", &op.vault), ("result", "allowed")]
        ),
        None,
        "nothing reached the network"
    );
    assert!(
        at(
            "airlock_sandbox_credential_requests_total",
            &[
                ("provider", &op.vault),
                ("store", "vault-store"),
                ("result", "allowed")
            ]
        ) >= 1.0
    );
    assert!(
        at(
            "airlock_sandbox_traps_total",
            &[
                ("provider", &op.hostile),
                ("store", "hostile-store"),
                ("reason", "ProviderCrashed")
            ]
        ) >= 1.0
    );
    promtool_check(&text);

    // A deleted ExternalSecret's series go, as ESO removes them.
    api.delete("synced", &Default::default())
        .await
        .expect("delete");
    eventually("the deleted ExternalSecret's series removed", || async {
        let text = op.scrape().await;
        let s = parse(&text);
        (value(&s, "externalsecret_sync_calls_total", &synced).is_none()
            && value(
                &s,
                "externalsecret_status_condition",
                &ready("synced", "True"),
            )
            .is_none()
            && value(&s, "externalsecret_reconcile_duration", &synced).is_none())
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn no_label_value_holds_secret_bytes_or_key_names() {
    let op = start("metrics-labels").await;
    op.sync_known_secret().await;
    let text = op.scrape().await;
    let labels: Vec<String> = parse(&text)
        .into_iter()
        .flat_map(|s| s.labels.into_values())
        .collect();
    // The check sees label values at all: the ExternalSecret's own name is one.
    assert!(labels.iter().any(|v| v == "synced"), "{text}");
    for needle in [SECRET_USER, SECRET_PASS, REMOTE_KEY, "user", "pass"]
        .into_iter()
        .chain(SECRET_KEYS)
    {
        assert!(
            !labels.iter().any(|v| v.contains(needle)),
            "a label value holds {needle:?}:\n{text}"
        );
    }
    for needle in [SECRET_USER, SECRET_PASS, REMOTE_KEY]
        .into_iter()
        .chain(SECRET_KEYS)
    {
        assert!(!text.contains(needle), "/metrics holds {needle:?}:\n{text}");
    }
}

/// Runs `promtool check metrics` on `text`: it must find nothing but the three notes that
/// ESO's own names cause (dashboards and alerts depend on those names, so they stay).
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(airlock_testenv::tools::promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: Vec<&str> = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "externalsecret_provider_api_calls_count counter metrics should have \"_total\" suffix",
            "externalsecret_provider_api_calls_count non-histogram and non-summary metrics should not have \"_count\" suffix",
            "externalsecret_sync_calls_error counter metrics should have \"_total\" suffix",
        ],
        "promtool check metrics ({:?}) on:\n{text}",
        out.status
    );
    // 3: lint findings only; a page promtool cannot parse exits 1.
    assert_eq!(out.status.code(), Some(3), "{report}");
}
