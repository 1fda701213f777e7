//! `airlock provider test`: the conformance suite any provider component can be run
//! against, in the operator's own runtime (the same linker, grants and limits). Each check
//! prints one `PASS`, `FAIL` or `SKIP` line with its reason; any `FAIL` makes the command
//! exit non-zero.
//!
//! The calls need a backend. With `--store` the suite uses that store's configuration
//! (and `--credentials`, `--allow-host`, `--allow-cidr`, `--key`, `--map-key` to know what
//! exists there). Without it, a self-contained provider gets a built-in backend: the
//! `webhook` provider (any language) a JSON server the suite starts on 127.0.0.1, the
//! `fake` provider its own in-config data. Any other provider without `--store` is only
//! checked for loading, describing itself, refusing bad configs and never crashing; the
//! backend checks print `SKIP`.

pub mod fixture;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value as Json, json};

use crate::backend::{
    Backend, BackendError, Capabilities, FindCriteria, ProviderError, PushRef, PushRequest,
    RemoteRef, SecretValue, StoreContext, StoreInfo, StoreKind,
};
use crate::runtime::{
    EngineConfig, Grants, Limits, LoadedProvider, Runtime, RuntimeError, StaticCredentials,
    TlsSettings,
};

use self::fixture::WebhookServer;

/// Arguments of `airlock provider test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The provider component (`.wasm`).
    module: PathBuf,
    /// A SecretStore or ClusterSecretStore manifest to test against; without it, the
    /// `webhook` and `fake` providers get a built-in backend and others skip the backend
    /// checks.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Local credentials the store's selectors resolve to (as `provider run`).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Outbound host the provider may reach (repeatable).
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Private IP or CIDR the provider may connect to (repeatable).
    #[arg(long = "allow-cidr")]
    allow_cidrs: Vec<String>,
    /// A key that exists in the store's backend (get, batched get).
    #[arg(long)]
    key: Option<String>,
    /// A key whose value is a JSON object (get-secret-map).
    #[arg(long)]
    map_key: Option<String>,
    /// A key that does not exist (default: a random `airlock-conformance-absent-…`).
    #[arg(long)]
    absent_key: Option<String>,
    /// Let the suite push, check and delete a key `airlock-conformance-…` in the store's
    /// backend to hold write capabilities to their claim (always done with a built-in
    /// backend).
    #[arg(long)]
    allow_write: bool,
}

/// The built-in webhook backend's bearer token and the store's Secret holding it.
const TOKEN: &str = "conformance-token";
/// The key every built-in backend serves.
const PRESENT_KEY: &str = "conformance/present";
/// Its value: a JSON object, so extract has keys to return.
const PRESENT_VALUE: &str = r#"{"password":"s3cret-conformance","user":"admin"}"#;
/// Name the component under test is installed as without `--store`.
const UNDER_TEST: &str = "under-test";
/// Memory limit of the memory check: below what any component needs to start.
const TIGHT_MEMORY: u64 = 256 << 10;
/// CPU budget of the CPU check: one epoch tick.
const TIGHT_CPU: Duration = Duration::from_millis(1);

/// The webhook store the built-in backend serves.
pub fn webhook_config(base_url: &str) -> Json {
    json!({
        "url": format!("{base_url}/secrets/{{{{ .remoteRef.key }}}}"),
        "headers": {"Authorization": "Bearer {{ .auth.token }}"},
        "result": {"jsonPath": "$.value"},
        "secrets": [{"name": "auth", "secretRef": {"name": "webhook-credentials"}}],
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// The report printed line by line.
#[derive(Debug, Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    fn line(&mut self, verdict: Verdict, check: &str, message: impl AsRef<str>) {
        let word = match verdict {
            Verdict::Pass => {
                self.passed += 1;
                "PASS"
            }
            Verdict::Fail => {
                self.failed += 1;
                "FAIL"
            }
            Verdict::Skip => {
                self.skipped += 1;
                "SKIP"
            }
        };
        // One line per check, whatever the provider's messages hold.
        let message = message.as_ref().replace(['\r', '\n'], " ");
        println!("{word}  {check:<16} {message}");
    }

    fn verdict(&mut self, check: &str, result: Result<String, String>) {
        match result {
            Ok(m) => self.line(Verdict::Pass, check, m),
            Err(m) => self.line(Verdict::Fail, check, m),
        }
    }
}

/// What the calls run against.
enum Backing {
    /// The user's `--store`.
    Store,
    /// The built-in JSON server (kept alive while the suite runs).
    Webhook(#[allow(dead_code)] WebhookServer),
    /// The fake provider's own data.
    Fake,
    /// Nothing: only the checks that need no backend.
    None,
}

impl Backing {
    fn built_in(&self) -> bool {
        matches!(self, Backing::Webhook(_) | Backing::Fake)
    }
}

/// A call's outcome text: the error's stable reason and message.
fn describe(e: &BackendError) -> String {
    format!("{} ({})", e, e.reason())
}

/// A call that must not crash the sandbox: provider errors are answers, runtime errors
/// (traps, limits) are failures.
fn crashed(e: &BackendError) -> Option<String> {
    match e {
        BackendError::Runtime(r) => Some(format!("{r} ({})", r.reason())),
        BackendError::Provider(_) => None,
    }
}

fn text(value: &SecretValue) -> String {
    String::from_utf8_lossy(value.expose()).into_owned()
}

fn message(e: &ProviderError) -> &str {
    match e {
        ProviderError::InvalidConfig(m)
        | ProviderError::InvalidRequest(m)
        | ProviderError::AccessDenied(m)
        | ProviderError::Unavailable(m)
        | ProviderError::Unsupported(m)
        | ProviderError::Other(m) => m,
        ProviderError::RateLimited { message, .. } => message,
    }
}

/// Where the install of the component stopped, as the check that failed.
fn load_failure(report: &mut Report, e: &RuntimeError) {
    let text = e.to_string();
    let (failed, passed): (&str, &[&str]) = match e {
        RuntimeError::Compile(_) => ("compile", &[]),
        RuntimeError::Link(m) if m.starts_with("it does not export") => {
            ("exports", &["compile", "imports"])
        }
        RuntimeError::Link(m) if m.starts_with("its config-schema") => (
            "config-schema",
            &["compile", "imports", "exports", "metadata"],
        ),
        RuntimeError::Link(_) => ("imports", &["compile"]),
        _ => ("metadata", &["compile", "imports", "exports"]),
    };
    for check in passed {
        report.line(Verdict::Pass, check, "ok");
    }
    report.line(Verdict::Fail, failed, format!("{text} ({})", e.reason()));
    let rest = LOAD_CHECKS
        .iter()
        .skip_while(|c| **c != failed)
        .skip(1)
        .chain(CALL_CHECKS);
    for check in rest {
        report.line(Verdict::Skip, check, "the component did not load");
    }
}

/// The checks of loading, in order.
const LOAD_CHECKS: &[&str] = &["compile", "imports", "exports", "metadata", "config-schema"];
/// The checks that call the loaded component.
const CALL_CHECKS: &[&str] = &[
    "validate-bad",
    "validate",
    "get-present",
    "get-absent",
    "get-secret-map",
    "find",
    "batch",
    "capabilities",
    "errors",
    "memory-limit",
    "cpu-limit",
];

/// Checks what the component says about itself.
fn metadata_problems(provider: &LoadedProvider) -> Result<String, String> {
    let info = &provider.info;
    let mut problems = Vec::new();
    let good_name = !info.name.is_empty()
        && info
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !good_name {
        problems.push(format!(
            "name {:?} must be non-empty lowercase letters, digits and -",
            info.name
        ));
    }
    if info.version.trim().is_empty() {
        problems.push("version is empty".to_string());
    }
    if info.description.trim().is_empty() {
        problems.push("description is empty".to_string());
    }
    if problems.is_empty() {
        Ok(format!(
            "{} {} ({}): {}",
            info.name,
            info.version,
            info.capabilities.as_str(),
            info.description
        ))
    } else {
        Err(problems.join("; "))
    }
}

fn schema_summary(schema: &Json) -> Result<String, String> {
    if schema.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err(format!(
            "a store's spec.provider.<key> is an object, but the schema's type is {}",
            schema.get("type").map_or("unset".into(), |t| t.to_string())
        ));
    }
    let keys = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    Ok(format!(
        "valid JSON Schema, type object, properties: [{keys}]"
    ))
}

/// The suite's state after the component loaded.
struct Suite {
    runtime: Runtime,
    wasm: Vec<u8>,
    grants: Grants,
    provider: Arc<LoadedProvider>,
    store: StoreContext,
    backing: Backing,
    present: Option<String>,
    expected_present: Option<String>,
    map_key: Option<String>,
    absent: String,
    allow_write: bool,
    /// Every provider error seen, with the call that returned it.
    errors: Vec<(String, ProviderError)>,
    /// Strings no error message may contain (secret values the suite knows).
    secrets: Vec<String>,
}

/// Runs the suite and prints the report; an error when any check failed.
pub async fn run(args: TestArgs) -> Result<()> {
    let wasm = std::fs::read(&args.module)
        .with_context(|| format!("cannot read provider module {}", args.module.display()))?;
    println!("airlock provider test {}", args.module.display());
    let mut report = Report::default();

    let mut hosts = args.allow_hosts.clone();
    let mut cidrs = args.allow_cidrs.clone();
    let (name, manifest_store, credentials, server) = match &args.store {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read store manifest {}", path.display()))?;
            let (key, config, info) = super::provider::store_from_manifest(&text, None)?;
            let credentials = match &args.credentials {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read credentials {}", p.display()))?;
                    StaticCredentials::from_yaml(&text)
                        .with_context(|| format!("credentials file {} is malformed", p.display()))?
                }
                None => StaticCredentials::default(),
            };
            (key, Some((config, info)), credentials, None)
        }
        None => {
            let server = WebhookServer::start(TOKEN)
                .await
                .context("cannot start the built-in webhook backend on 127.0.0.1")?;
            server.set(PRESENT_KEY, PRESENT_VALUE);
            hosts.push(server.url());
            cidrs.push("127.0.0.1/32".into());
            let credentials = StaticCredentials::default().with_secret(
                "default",
                "webhook-credentials",
                "token",
                TOKEN.as_bytes(),
            );
            (UNDER_TEST.to_string(), None, credentials, Some(server))
        }
    };
    let grants = Grants::parse(&hosts, &cidrs, Limits::default())?;
    let runtime = Runtime::new(&EngineConfig::default(), Arc::new(credentials))?;

    let provider = match runtime.install(&name, &wasm, grants.clone()).await {
        Ok(p) => p,
        Err(e) => {
            load_failure(&mut report, &e);
            return finish(report);
        }
    };
    report.line(
        Verdict::Pass,
        "compile",
        format!("{} bytes, {}", provider.size, provider.digest),
    );
    report.line(
        Verdict::Pass,
        "imports",
        "every import is one the operator's linker offers",
    );
    report.line(
        Verdict::Pass,
        "exports",
        "airlock:provider/secrets@0.1.0 with every function of the world",
    );
    report.verdict("metadata", metadata_problems(&provider));
    report.verdict(
        "config-schema",
        schema_summary(&provider.info.config_schema),
    );

    let info = StoreInfo {
        kind: StoreKind::SecretStore,
        name: "conformance".into(),
        namespace: "default".into(),
    };
    let (config, info, backing) = match (manifest_store, server) {
        (Some((config, info)), _) => (config, info, Backing::Store),
        (None, Some(server)) if provider.info.name == "webhook" => (
            webhook_config(&server.url()),
            info,
            Backing::Webhook(server),
        ),
        (None, _) if provider.info.name == "fake" => (
            json!({"data": [{"key": PRESENT_KEY, "value": PRESENT_VALUE}]}),
            info,
            Backing::Fake,
        ),
        (None, _) => (json!({}), info, Backing::None),
    };
    let built_in = backing.built_in();
    let absent = args.absent_key.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!("airlock-conformance-absent-{}-{nanos}", std::process::id())
    });
    let mut suite = Suite {
        store: StoreContext {
            provider: name,
            config,
            info,
            tls: TlsSettings::default(),
        },
        present: if built_in {
            Some(PRESENT_KEY.into())
        } else {
            args.key.clone()
        },
        expected_present: built_in.then(|| PRESENT_VALUE.to_string()),
        map_key: if built_in {
            Some(PRESENT_KEY.into())
        } else {
            args.map_key.clone()
        },
        absent,
        allow_write: built_in || args.allow_write,
        errors: Vec::new(),
        secrets: if built_in {
            vec![TOKEN.into(), "s3cret-conformance".into()]
        } else {
            Vec::new()
        },
        runtime,
        wasm,
        grants,
        provider,
        backing,
    };
    suite.check_bad_configs(&mut report).await;
    if matches!(suite.backing, Backing::None) {
        suite.check_no_crash(&mut report).await;
        for check in [
            "validate",
            "get-present",
            "get-absent",
            "get-secret-map",
            "find",
            "batch",
            "capabilities",
        ] {
            report.line(
                Verdict::Skip,
                check,
                "no backend: pass --store (and --key, --map-key) to run it",
            );
        }
    } else {
        suite.check_validate(&mut report).await;
        suite.check_get_present(&mut report).await;
        suite.check_get_absent(&mut report).await;
        suite.check_map(&mut report).await;
        suite.check_find(&mut report).await;
        suite.check_batch(&mut report).await;
        suite.check_capabilities(&mut report).await;
    }
    suite.check_errors(&mut report);
    suite.check_memory_limit(&mut report).await;
    suite.check_cpu_limit(&mut report).await;
    finish(report)
}

fn finish(report: Report) -> Result<()> {
    println!(
        "{} passed, {} failed, {} skipped",
        report.passed, report.failed, report.skipped
    );
    if report.failed > 0 {
        bail!(
            "{} conformance check{} failed",
            report.failed,
            if report.failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

impl Suite {
    fn note(&mut self, call: &str, result: &Result<impl Sized, BackendError>) {
        if let Err(BackendError::Provider(e)) = result {
            self.errors.push((call.to_string(), e.clone()));
        }
    }

    async fn get_one(&mut self, key: &str) -> Result<Option<SecretValue>, BackendError> {
        let result = self
            .runtime
            .get_secrets(&self.store, &[RemoteRef::key(key)])
            .await
            .and_then(|mut results| {
                results
                    .pop()
                    .map(|r| r.map_err(BackendError::from))
                    .unwrap_or_else(|| {
                        Err(BackendError::Provider(ProviderError::Other(
                            "get-secrets returned no result for one ref".into(),
                        )))
                    })
            });
        self.note("get-secrets", &result);
        result
    }

    async fn check_bad_configs(&mut self, report: &mut Report) {
        let mut bad = vec![(
            "a config that is a string, not an object",
            json!("airlock-conformance"),
        )];
        let required = self
            .provider
            .info
            .config_schema
            .get("required")
            .and_then(|r| r.as_array())
            .is_some_and(|r| !r.is_empty());
        if required {
            bad.push((
                "an empty config although the schema requires fields",
                json!({}),
            ));
        }
        let mut lines = Vec::new();
        for (what, config) in bad {
            let store = StoreContext {
                config,
                ..self.store.clone()
            };
            let result = self.runtime.validate(&store).await;
            self.note("validate", &result);
            match result {
                Ok(v) => {
                    report.line(
                        Verdict::Fail,
                        "validate-bad",
                        format!("{what} was accepted ({v:?}); it must be an error"),
                    );
                    return;
                }
                Err(e) => {
                    if let Some(crash) = crashed(&e).filter(|_| {
                        !matches!(e, BackendError::Runtime(RuntimeError::ConfigSchema { .. }))
                    }) {
                        report.line(
                            Verdict::Fail,
                            "validate-bad",
                            format!("{what}: validate crashed: {crash}"),
                        );
                        return;
                    }
                    lines.push(format!("{what}: {}", describe(&e)));
                }
            }
        }
        report.line(Verdict::Pass, "validate-bad", lines.join("; "));
    }

    /// Without a backend: every call answers (an error is an answer) and none crashes.
    async fn check_no_crash(&mut self, report: &mut Report) {
        let store = self.store.clone();
        let reference = RemoteRef::key(self.absent.clone());
        let mut outcomes = Vec::new();
        let mut crashes = Vec::new();
        let mut record = |call: &str, result: Result<String, BackendError>| match result {
            Ok(m) => outcomes.push(format!("{call}: {m}")),
            Err(e) => match crashed(&e) {
                Some(c) => crashes.push(format!("{call} crashed: {c}")),
                None => outcomes.push(format!("{call}: {}", e.reason())),
            },
        };
        let rt = &self.runtime;
        record(
            "validate",
            rt.validate(&store).await.map(|v| format!("{v:?}")),
        );
        record(
            "get-secrets",
            rt.get_secrets(&store, std::slice::from_ref(&reference))
                .await
                .map(|r| match r.first() {
                    Some(Ok(Some(_))) => "a value".to_string(),
                    Some(Ok(None)) => "absent".to_string(),
                    Some(Err(e)) => e.reason().to_string(),
                    None => "no result".to_string(),
                }),
        );
        record(
            "get-secret-map",
            rt.get_secret_map(&store, &reference)
                .await
                .map(|m| if m.is_some() { "a map" } else { "absent" }.to_string()),
        );
        record(
            "get-all-secrets",
            rt.get_all_secrets(
                &store,
                &FindCriteria {
                    name_regexp: Some(".*".into()),
                    ..Default::default()
                },
            )
            .await
            .map(|m| format!("{} entries", m.len())),
        );
        if crashes.is_empty() {
            report.line(
                Verdict::Pass,
                "no-crash",
                format!(
                    "with config {{}} every call answered: {}",
                    outcomes.join(", ")
                ),
            );
        } else {
            report.line(Verdict::Fail, "no-crash", crashes.join("; "));
        }
    }

    async fn check_validate(&mut self, report: &mut Report) {
        let result = self.runtime.validate(&self.store).await;
        self.note("validate", &result);
        report.verdict(
            "validate",
            result
                .map(|v| format!("the store's config validates: {v:?}"))
                .map_err(|e| format!("the store's config is refused: {}", describe(&e))),
        );
    }

    async fn check_get_present(&mut self, report: &mut Report) {
        let Some(key) = self.present.clone() else {
            report.line(
                Verdict::Skip,
                "get-present",
                "pass --key KEY naming a secret that exists",
            );
            return;
        };
        let result = match self.get_one(&key).await {
            Ok(Some(v)) => {
                self.secrets.push(text(&v));
                match &self.expected_present {
                    Some(expected) if *expected != text(&v) => Err(format!(
                        "{key:?} returned {:?}, the built-in backend serves {expected:?}",
                        text(&v)
                    )),
                    _ => Ok(format!("{key:?}: {} bytes", v.len())),
                }
            }
            Ok(None) => Err(format!("{key:?} came back absent (ok(none)) but it exists")),
            Err(e) => Err(format!("{key:?}: {}", describe(&e))),
        };
        report.verdict("get-present", result);
    }

    async fn check_get_absent(&mut self, report: &mut Report) {
        let key = self.absent.clone();
        let result = match self.get_one(&key).await {
            Ok(None) => Ok(format!("{key:?} is ok(none)")),
            Ok(Some(_)) => Err(format!("{key:?} does not exist, yet a value came back")),
            Err(e) => Err(format!(
                "a missing key must be ok(none), not an error: {}",
                describe(&e)
            )),
        };
        report.verdict("get-absent", result);
    }

    async fn check_map(&mut self, report: &mut Report) {
        let Some(key) = self.map_key.clone() else {
            report.line(
                Verdict::Skip,
                "get-secret-map",
                "pass --map-key KEY naming a secret holding a JSON object",
            );
            return;
        };
        let result = self
            .runtime
            .get_secret_map(&self.store, &RemoteRef::key(key.clone()))
            .await;
        self.note("get-secret-map", &result);
        let verdict = match result {
            Ok(Some(map)) if map.is_empty() => Err(format!("{key:?} gave an empty map")),
            Ok(Some(map)) => {
                let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
                if self.expected_present.is_some() && keys != ["password", "user"] {
                    Err(format!(
                        "{key:?} gave keys {keys:?}, the built-in backend serves [\"password\", \"user\"]"
                    ))
                } else {
                    Ok(format!("{key:?}: keys {keys:?}"))
                }
            }
            Ok(None) => Err(format!("{key:?} came back absent but it exists")),
            Err(BackendError::Provider(ProviderError::Unsupported(m))) => {
                Ok(format!("unsupported: {m}"))
            }
            Err(e) => Err(format!("{key:?}: {}", describe(&e))),
        };
        let verdict = match verdict {
            Ok(m) => {
                let absent = self
                    .runtime
                    .get_secret_map(&self.store, &RemoteRef::key(self.absent.clone()))
                    .await;
                self.note("get-secret-map", &absent);
                match absent {
                    Ok(None) => Ok(format!("{m}; a missing key is ok(none)")),
                    Ok(Some(_)) => Err(format!("{m}; but a missing key gave a map")),
                    Err(BackendError::Provider(ProviderError::Unsupported(_))) => Ok(m),
                    Err(e) => Err(format!(
                        "{m}; but a missing key must be ok(none), not {}",
                        describe(&e)
                    )),
                }
            }
            Err(m) => Err(m),
        };
        report.verdict("get-secret-map", verdict);
    }

    async fn check_find(&mut self, report: &mut Report) {
        let criteria = FindCriteria {
            name_regexp: Some("^conformance/".into()),
            ..Default::default()
        };
        let result = self.runtime.get_all_secrets(&self.store, &criteria).await;
        self.note("get-all-secrets", &result);
        let verdict = match result {
            Ok(map) => {
                let names: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
                if self.expected_present.is_some() && !names.contains(&PRESENT_KEY) {
                    Err(format!(
                        "find ^conformance/ returned {names:?}, missing {PRESENT_KEY:?}"
                    ))
                } else {
                    Ok(format!("find ^conformance/: {} entries", names.len()))
                }
            }
            Err(BackendError::Provider(ProviderError::Unsupported(m))) => {
                Ok(format!("unsupported: {m}"))
            }
            Err(e) => Err(describe(&e)),
        };
        report.verdict("find", verdict);
    }

    async fn check_batch(&mut self, report: &mut Report) {
        let mut keys = vec![self.absent.clone()];
        if let Some(present) = &self.present {
            keys = vec![present.clone(), self.absent.clone(), present.clone()];
        }
        let mut singles = Vec::new();
        for key in &keys {
            singles.push(self.get_one(key).await);
        }
        let refs: Vec<RemoteRef> = keys.iter().map(RemoteRef::key).collect();
        let batch = self.runtime.get_secrets(&self.store, &refs).await;
        self.note("get-secrets", &batch);
        let verdict = match batch {
            Err(e) => Err(format!("batched get-secrets: {}", describe(&e))),
            Ok(results) if results.len() != keys.len() => Err(format!(
                "{} refs gave {} results; one per ref, in order",
                keys.len(),
                results.len()
            )),
            Ok(results) => {
                let mut problems = Vec::new();
                for ((key, single), batched) in keys.iter().zip(&singles).zip(&results) {
                    let same = match (single, batched) {
                        (Ok(a), Ok(b)) => a == b,
                        (Err(a), Err(b)) => a.reason() == b.reason(),
                        _ => false,
                    };
                    if !same {
                        problems.push(format!(
                            "{key:?} differs between a single and a batched get"
                        ));
                    }
                }
                if problems.is_empty() {
                    Ok(format!("{} refs, each as its single get", keys.len()))
                } else {
                    Err(problems.join("; "))
                }
            }
        };
        report.verdict("batch", verdict);
    }

    async fn check_capabilities(&mut self, report: &mut Report) {
        let claim = self.provider.info.capabilities;
        if !self.allow_write {
            report.line(
                Verdict::Skip,
                "capabilities",
                format!(
                    "claims {}; pass --allow-write to let the suite push and delete a test key",
                    claim.as_str()
                ),
            );
            return;
        }
        let remote = PushRef {
            remote_key: format!("airlock-conformance-push-{}", std::process::id()),
            property: None,
        };
        let request = PushRequest {
            remote: remote.clone(),
            value: SecretValue::new(b"airlock-conformance".to_vec()),
            metadata: None,
        };
        let pushed = self.runtime.push_secret(&self.store, &request).await;
        self.note("push-secret", &pushed);
        let verdict = match (claim, pushed) {
            (Capabilities::ReadOnly, Ok(())) => {
                Err("claims ReadOnly, yet push-secret succeeded".to_string())
            }
            (
                Capabilities::ReadOnly,
                Err(BackendError::Provider(ProviderError::Unsupported(_))),
            ) => Ok("ReadOnly, and push-secret answers unsupported".to_string()),
            (Capabilities::ReadOnly, Err(e)) => Err(format!(
                "claims ReadOnly; push-secret should answer unsupported, not {}",
                describe(&e)
            )),
            (claim, Err(BackendError::Provider(ProviderError::Unsupported(m)))) => Err(format!(
                "claims {}, but push-secret answered unsupported: {m}",
                claim.as_str()
            )),
            (claim, Err(e)) => Err(format!(
                "claims {}, but push-secret failed: {}",
                claim.as_str(),
                describe(&e)
            )),
            (claim, Ok(())) => self.check_written(claim.as_str(), &remote).await,
        };
        report.verdict("capabilities", verdict);
    }

    /// After a push: it exists, delete removes it.
    async fn check_written(&mut self, claim: &str, remote: &PushRef) -> Result<String, String> {
        let exists = self.runtime.secret_exists(&self.store, remote).await;
        self.note("secret-exists", &exists);
        match exists {
            Ok(true) => {}
            Ok(false) => {
                return Err(
                    "push-secret succeeded, but secret-exists says it does not exist".into(),
                );
            }
            Err(e) => {
                return Err(format!(
                    "claims {claim}, but secret-exists failed: {}",
                    describe(&e)
                ));
            }
        }
        let deleted = self.runtime.delete_secret(&self.store, remote).await;
        self.note("delete-secret", &deleted);
        if let Err(e) = deleted {
            return Err(format!(
                "claims {claim}, but delete-secret failed: {}",
                describe(&e)
            ));
        }
        match self.runtime.secret_exists(&self.store, remote).await {
            Ok(false) => Ok(format!(
                "{claim}: push-secret, secret-exists and delete-secret work"
            )),
            Ok(true) => Err("delete-secret succeeded, but the key still exists".into()),
            Err(e) => Err(format!(
                "secret-exists after delete failed: {}",
                describe(&e)
            )),
        }
    }

    fn check_errors(&mut self, report: &mut Report) {
        let mut problems = Vec::new();
        for (call, e) in &self.errors {
            let m = message(e);
            if m.trim().is_empty() {
                problems.push(format!(
                    "{call} returned {} with an empty message",
                    e.reason()
                ));
            }
            for secret in &self.secrets {
                if !secret.is_empty() && m.contains(secret.as_str()) {
                    problems.push(format!(
                        "{call}'s {} message contains a secret value",
                        e.reason()
                    ));
                }
            }
            if let ProviderError::RateLimited {
                retry_after: Some(wait),
                ..
            } = e
                && *wait > Duration::from_secs(24 * 3600)
            {
                problems.push(format!("{call} asked to retry after {wait:?}"));
            }
        }
        if problems.is_empty() {
            let mut seen = String::new();
            for (call, e) in &self.errors {
                let _ = write!(
                    seen,
                    "{}{call}: {}",
                    if seen.is_empty() { "" } else { ", " },
                    e.reason()
                );
            }
            report.line(
                Verdict::Pass,
                "errors",
                format!(
                    "{} error{} well-formed, none holding a secret value{}",
                    self.errors.len(),
                    if self.errors.len() == 1 { "" } else { "s" },
                    if seen.is_empty() {
                        String::new()
                    } else {
                        format!(" ({seen})")
                    }
                ),
            );
        } else {
            report.line(Verdict::Fail, "errors", problems.join("; "));
        }
    }

    /// Installs the component again with `limits` and reads the absent key, on a task of
    /// its own so that a host panic is reported instead of ending the suite.
    async fn under_limits(
        &self,
        name: &str,
        limits: Limits,
    ) -> Result<Result<(), BackendError>, String> {
        let runtime = self.runtime.clone();
        let wasm = self.wasm.clone();
        let grants = Grants {
            limits,
            ..self.grants.clone()
        };
        let store = StoreContext {
            provider: name.to_string(),
            ..self.store.clone()
        };
        let key = self.present.clone().unwrap_or_else(|| self.absent.clone());
        let name = name.to_string();
        tokio::spawn(async move {
            if let Err(e) = runtime.install(&name, &wasm, grants).await {
                return Err(BackendError::Runtime(e));
            }
            let result = runtime
                .get_secrets(&store, &[RemoteRef::key(key)])
                .await
                .map(drop);
            runtime.uninstall(&name);
            result
        })
        .await
        .map_err(|e| format!("the host itself failed (a bug in Airlock, not the provider): {e}"))
    }

    async fn check_memory_limit(&mut self, report: &mut Report) {
        let limits = Limits {
            memory_bytes: TIGHT_MEMORY,
            ..Limits::default()
        };
        let verdict = match self.under_limits("conformance-memory", limits).await {
            Err(host) => Err(host),
            Ok(Ok(())) => Ok(format!("the call fits in {TIGHT_MEMORY} bytes")),
            Ok(Err(BackendError::Runtime(e @ RuntimeError::MemoryLimit { .. })))
                if e.to_string().contains(&TIGHT_MEMORY.to_string()) =>
            {
                Ok(format!("stopped cleanly: {e}"))
            }
            Ok(Err(e)) => Err(format!(
                "under a {TIGHT_MEMORY}-byte memory limit the error must name the limit, got: {}",
                describe(&e)
            )),
        };
        report.verdict("memory-limit", verdict);
    }

    async fn check_cpu_limit(&mut self, report: &mut Report) {
        let limits = Limits {
            cpu_time: TIGHT_CPU,
            ..Limits::default()
        };
        let verdict = match self.under_limits("conformance-cpu", limits).await {
            Err(host) => Err(host),
            Ok(Ok(())) => Ok(format!(
                "the call finished within a {TIGHT_CPU:?} CPU budget"
            )),
            Ok(Err(BackendError::Runtime(e @ RuntimeError::CpuDeadline { .. }))) => {
                Ok(format!("stopped cleanly: {e}"))
            }
            Ok(Err(BackendError::Provider(e))) => Ok(format!(
                "answered {} within a {TIGHT_CPU:?} CPU budget",
                e.reason()
            )),
            Ok(Err(BackendError::Runtime(RuntimeError::Trap { .. }))) => {
                report.line(
                    Verdict::Skip,
                    "cpu-limit",
                    "the call crashed before the budget mattered (see the checks above)",
                );
                return;
            }
            Ok(Err(e)) => Err(format!(
                "under a {TIGHT_CPU:?} CPU budget the error must name the budget, got: {}",
                describe(&e)
            )),
        };
        report.verdict("cpu-limit", verdict);
    }
}
