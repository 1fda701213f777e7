//! One test per sandbox rule, each with a hostile guest that tries to break it. After
//! every refusal the same runtime must still serve another store.

mod common;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock::backend::{Backend as _, BackendError, ProviderError, StoreContext};
use airlock::runtime::{
    Credentials, EngineConfig, Grants, Limits, Resolver, Runtime, RuntimeError, StaticCredentials,
};
use common::{get, hostile_with_instances, install, serve, store};
use serde_json::json;

fn grants(hosts: &[String]) -> Grants {
    Grants::parse(hosts, &[], Limits::default()).unwrap()
}

/// Installs `fake` beside the hostile guest and checks it still answers.
async fn still_serves(rt: &Runtime) {
    if rt.provider("fake").is_none() {
        install(rt, "fake", airlock_test_artifacts::FAKE, Grants::none()).await;
    }
    let s = store(
        "fake",
        "bystander",
        json!({"data": [{"key": "k", "value": "v"}]}),
    );
    assert_eq!(get(rt, &s, "k").await.unwrap().as_deref(), Some("v"));
}

async fn hostile(rt: &Runtime, g: Grants) -> StoreContext {
    install(rt, "hostile", airlock_test_artifacts::HOSTILE, g).await;
    store("hostile", "attacker", json!({}))
}

/// A runtime with `creds` and the hostile guest, and a store of it named `name` whose
/// configuration names the Secret key `db/password`.
async fn hostile_reading_db_password(
    creds: StaticCredentials,
    name: &str,
) -> (Runtime, StoreContext) {
    let rt = common::runtime_with(creds);
    hostile(&rt, Grants::none()).await;
    let s = store(
        "hostile",
        name,
        json!({"auth": {"secretRef": {"name": "db", "key": "password"}}}),
    );
    (rt, s)
}

fn unavailable(e: BackendError) -> String {
    match e {
        BackendError::Provider(ProviderError::Unavailable(m)) => m,
        other => panic!("expected an unavailable error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_to_a_granted_host_succeeds() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://127.0.0.1:{}", server.port)])).await;
    let body = get(&rt, &s, &format!("http:{}", server.url("/ok")))
        .await
        .unwrap();
    assert_eq!(body.as_deref(), Some("200 hello"));
}

#[tokio::test]
async fn a_request_body_reaches_the_backend_whether_written_before_or_after_handle() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://127.0.0.1:{}", server.port)])).await;
    let large = "b".repeat(300 << 10);
    for body in ["payload", large.as_str()] {
        // The SDK finishes the body before `handle`: the host sends on the calling task.
        let before = get(&rt, &s, &format!("post:{}|{body}", server.url("/echo")))
            .await
            .unwrap();
        assert_eq!(before.as_deref(), Some(format!("200 {body}").as_str()));
        // A guest writing after `handle` must not deadlock the host waiting for it.
        let after = get(
            &rt,
            &s,
            &format!("post-late:{}|{body}", server.url("/echo")),
        )
        .await
        .unwrap();
        assert_eq!(after.as_deref(), Some(format!("200 {body}").as_str()));
    }
}

#[tokio::test]
async fn a_request_to_a_host_not_granted_is_denied_with_the_reason() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&["https://*.amazonaws.com".into()])).await;
    let err = get(&rt, &s, &format!("http:{}", server.url("/ok")))
        .await
        .unwrap_err();
    let message = unavailable(err);
    assert!(
        message.contains(&format!(
            "outbound host http://127.0.0.1:{} is not granted to provider hostile",
            server.port
        )),
        "{message}"
    );
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the server"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_redirect_to_a_host_not_granted_is_denied() {
    let granted = serve().await;
    let other = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://127.0.0.1:{}", granted.port)])).await;
    let hop = granted.url(&format!("/redirect?to={}", other.url("/ok")));
    let message = unavailable(get(&rt, &s, &format!("http:{hop}")).await.unwrap_err());
    assert!(
        message.contains(&format!("127.0.0.1:{} is not granted", other.port)),
        "{message}"
    );
    assert_eq!(other.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    let same = granted.url(&format!("/redirect?to={}", granted.url("/ok")));
    assert_eq!(
        get(&rt, &s, &format!("http:{same}"))
            .await
            .unwrap()
            .as_deref(),
        Some("200 hello")
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_granted_hostname_resolving_to_loopback_is_refused() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://localhost:{}", server.port)])).await;
    let message = unavailable(
        get(
            &rt,
            &s,
            &format!("http:http://localhost:{}/ok", server.port),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        message.contains("private, loopback, link-local or metadata"),
        "{message}"
    );
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    still_serves(&rt).await;
}

/// Resolves every name to the cloud metadata address, as a hostile DNS answer would.
struct MetadataResolver;

impl Resolver for MetadataResolver {
    fn resolve(
        &self,
        _host: String,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async { Ok(vec!["169.254.169.254".parse().unwrap()]) })
    }
}

#[tokio::test]
async fn a_granted_hostname_resolving_to_the_metadata_address_is_refused_before_connecting() {
    let creds: Credentials = Arc::new(StaticCredentials::default());
    let config = EngineConfig {
        cache_dir: Some(common::cache_dir()),
        ..Default::default()
    };
    let rt = Runtime::with_resolver(&config, creds, Arc::new(MetadataResolver)).unwrap();
    let s = hostile(&rt, grants(&["http://secrets.example.com".into()])).await;
    let message = unavailable(
        get(&rt, &s, "http:http://secrets.example.com/latest/meta-data")
            .await
            .unwrap_err(),
    );
    assert!(message.contains("169.254.169.254"), "{message}");
    still_serves(&rt).await;
}

#[tokio::test]
async fn an_ip_literal_grant_reaches_that_address() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(
        &rt,
        grants(&[
            "http://127.0.0.1:*".into(),
            format!("http://localhost:{}", server.port),
        ]),
    )
    .await;
    // localhost resolves to 127.0.0.1, which the first pattern names: allowed.
    let body = get(
        &rt,
        &s,
        &format!("http:http://localhost:{}/ok", server.port),
    )
    .await
    .unwrap();
    assert_eq!(body.as_deref(), Some("200 hello"));
}

#[tokio::test]
async fn a_component_importing_the_filesystem_is_refused_at_load() {
    let rt = common::runtime();
    let err = rt
        .install(
            "fs",
            &airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE_FS),
            Grants::none(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ProviderImportsNotGranted");
    assert!(
        err.to_string()
            .contains("it imports wasi:filesystem, which Airlock never grants"),
        "{err}"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_component_importing_sockets_is_refused_at_load() {
    let rt = common::runtime();
    let err = rt
        .install(
            "net",
            &airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE_NET),
            Grants::none(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("it imports wasi:sockets"), "{err}");
    still_serves(&rt).await;
}

#[tokio::test]
async fn the_guest_sees_no_environment_arguments_or_stdin() {
    // SAFETY of the test: setting a variable the guest would see if env were inherited.
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    assert!(!std::env::vars().collect::<Vec<_>>().is_empty());
    assert_eq!(
        get(&rt, &s, "env").await.unwrap().as_deref(),
        Some("env=0 args=0 stdin=0")
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_cpu_budget() {
    let rt = common::runtime();
    let limits = Limits {
        cpu_time: Duration::from_millis(200),
        ..Limits::default()
    };
    let s = hostile(&rt, Grants::parse(&[], &[], limits).unwrap()).await;
    let started = std::time::Instant::now();
    let err = get(&rt, &s, "spin").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Runtime(RuntimeError::CpuDeadline { .. })),
        "{err:?}"
    );
    assert_eq!(err.reason(), "ProviderCPUDeadlineExceeded");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        started.elapsed()
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let rt = common::runtime();
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let s = hostile(&rt, Grants::parse(&[], &[], limits).unwrap()).await;
    let err = get(&rt, &s, "alloc").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Runtime(RuntimeError::MemoryLimit { limit, .. }) if limit == 32 << 20),
        "{err:?}"
    );
    assert_eq!(err.reason(), "ProviderMemoryLimitExceeded");
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_stack_overflow_fails_its_call_only() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    let err = get(&rt, &s, "recurse").await.unwrap_err();
    match &err {
        // Rust's stack lives in linear memory: overflowing it is an out-of-bounds access
        // there, which wasm stops like any other; the reason leads the message.
        BackendError::Runtime(RuntimeError::Trap { message, .. }) => assert!(
            message.starts_with("wasm trap: out of bounds memory access; wasm backtrace: 0:"),
            "{message}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_host_resource_bomb_is_stopped_by_the_resource_limit() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    let err = get(&rt, &s, "resource-bomb").await.unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::Runtime(RuntimeError::ResourceLimit { limit, .. })
                if limit == airlock::runtime::MAX_HOST_RESOURCES
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("host resources"), "{err}");
    still_serves(&rt).await;
}

#[tokio::test]
async fn an_oversized_response_is_cut_by_the_bound() {
    let server = serve().await;
    let rt = common::runtime();
    let limits = Limits {
        max_response_bytes: 1 << 20,
        ..Limits::default()
    };
    let g = Grants::parse(&[format!("http://127.0.0.1:{}", server.port)], &[], limits).unwrap();
    let s = hostile(&rt, g).await;
    let declared = unavailable(
        get(&rt, &s, &format!("http:{}", server.url("/big")))
            .await
            .unwrap_err(),
    );
    assert!(
        declared.contains("over the 1048576-byte limit"),
        "{declared}"
    );
    let streamed = unavailable(
        get(&rt, &s, &format!("http:{}", server.url("/stream")))
            .await
            .unwrap_err(),
    );
    assert!(
        streamed.contains("exceeded the 1048576-byte limit"),
        "{streamed}"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_slow_backend_is_cut_by_the_call_timeout() {
    let server = serve().await;
    let rt = common::runtime();
    let limits = Limits {
        call_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let g = Grants::parse(&[format!("http://127.0.0.1:{}", server.port)], &[], limits).unwrap();
    let s = hostile(&rt, g).await;
    let err = get(&rt, &s, &format!("http:{}", server.url("/slow")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Runtime(RuntimeError::Timeout { .. }))
            || matches!(&err, BackendError::Provider(ProviderError::Unavailable(m)) if m.contains("did not answer")),
        "{err:?}"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_shorter_first_byte_timeout_the_guest_asks_for_is_kept() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://127.0.0.1:{}", server.port)])).await;
    let err = get(
        &rt,
        &s,
        &format!("http-first-byte:200|{}", server.url("/slow")),
    )
    .await
    .unwrap_err();
    let message = unavailable(err);
    assert!(message.contains("HttpResponseTimeout"), "{message}");
    assert!(message.contains("did not answer within 200ms"), "{message}");
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_credential_selector_absent_from_the_store_config_is_denied() {
    let creds = StaticCredentials::default()
        .with_secret("team-a", "db", "password", b"hunter2")
        .with_secret("team-a", "db", "admin-password", b"root!")
        .with_secret("kube-system", "db", "password", b"cluster");
    let (rt, s) = hostile_reading_db_password(creds, "attacker").await;
    assert_eq!(
        get(&rt, &s, "secret:db/password").await.unwrap().as_deref(),
        Some("hunter2")
    );
    let err = get(&rt, &s, "secret:db/admin-password").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is not named in the configuration of store attacker"),
        "{err}"
    );
    let err = get(&rt, &s, "secret:db/password@kube-system")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("may only read its own namespace"),
        "{err}"
    );
    still_serves(&rt).await;
}

/// What `tracing` wrote on this thread while the guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures at TRACE through the operator's own filter.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::layer::{Layer, SubscriberExt};
        tracing::subscriber::set_default(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .with_writer(self.clone())
                    .with_ansi(false)
                    .with_filter(airlock::logging::filter("trace")),
            ),
        )
    }

    /// Captures everything at TRACE, unfiltered.
    fn install_unfiltered(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(self.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_a_guest_puts_in_its_log_or_its_errors_are_redacted() {
    let captured = Captured::default();
    let _guard = captured.install();
    let creds =
        StaticCredentials::default().with_secret("team-a", "db", "password", b"hunter2-horse");
    let (rt, s) = hostile_reading_db_password(creds, "leaky").await;
    // A credential the host handed over.
    let err = get(&rt, &s, "leak-credential:db/password")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the backend rejected [redacted]"),
        "{err}"
    );
    // A panic message: the SDK's hook reports it, the host redacts it.
    let err = get(&rt, &s, "panic-with-credential:db/password")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot parse [redacted]"), "{err}");
    // A value the guest returns is the caller's, whole; only the log hides it.
    assert_eq!(
        get(&rt, &s, "leak-value:value-s3cr3t")
            .await
            .unwrap()
            .as_deref(),
        Some("value-s3cr3t")
    );
    // A token the guest keeps in the host's cache.
    let err = get(&rt, &s, "leak-cached:tok-abcdef").await.unwrap_err();
    let message = unavailable(err);
    assert!(
        message.contains("renewing token [redacted] failed"),
        "{message}"
    );
    // A credential spelled as the host of a refused request: the host logs the refusal.
    let err = get(&rt, &s, "leak-in-host:db/password").await.unwrap_err();
    assert!(err.to_string().contains("[redacted].example"), "{err}");
    let logs = captured.text();
    assert!(
        logs.lines()
            .any(|l| l.contains("airlock::egress") && l.contains("[redacted].example")),
        "the refusal is not logged:\n{logs}"
    );
    for line in [
        "logging in with [redacted]",
        "returning [redacted] to the host",
        "login gave token=[redacted]",
    ] {
        assert!(logs.contains(line), "{line:?} not in:\n{logs}");
    }
    for secret in ["hunter2", "value-s3cr3t", "tok-abcdef"] {
        assert!(!logs.contains(secret), "{secret} leaked into:\n{logs}");
    }
}

/// wasmtime's WASI bindings trace every call across the boundary with its arguments; the
/// operator's log filter drops them even at `trace`.
#[tokio::test]
async fn the_operators_log_filter_drops_the_bindings_traces_even_at_trace() {
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://127.0.0.1:{}", server.port)])).await;
    // A token in the query string, as some backends take one: `set-path-with-query`
    // passes it as a string, which the bindings' traces print.
    let post = format!("post:{}|body", server.url("/echo?token=q-s3cr3t"));

    let unfiltered = Captured::default();
    {
        let _guard = unfiltered.install_unfiltered();
        assert_eq!(
            get(&rt, &s, &post).await.unwrap().as_deref(),
            Some("200 body")
        );
    }
    assert!(
        unfiltered.text().contains("q-s3cr3t"),
        "without the filter the bindings trace the path:\n{}",
        unfiltered.text()
    );

    let filtered = Captured::default();
    {
        let _guard = filtered.install();
        assert_eq!(
            get(&rt, &s, &post).await.unwrap().as_deref(),
            Some("200 body")
        );
    }
    let logs = filtered.text();
    assert!(!logs.contains("wit-bindgen"), "{logs}");
    assert!(!logs.contains("s3cr3t"), "{logs}");
}

#[tokio::test]
async fn a_credential_flood_is_refused_past_the_per_call_bound() {
    let creds = StaticCredentials::default().with_secret("team-a", "db", "password", b"pw");
    let (rt, s) = hostile_reading_db_password(creds, "flooder").await;
    let answer = get(&rt, &s, "credential-flood:db/password")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        answer.starts_with("32 granted, then: more than 32 credential requests in one call"),
        "{answer}"
    );
    // The bound is per call: the next call is granted again.
    assert_eq!(
        get(&rt, &s, "secret:db/password").await.unwrap().as_deref(),
        Some("pw")
    );
}

#[tokio::test]
async fn two_stores_never_see_each_others_state() {
    let rt = common::runtime();
    install(
        &rt,
        "hostile",
        airlock_test_artifacts::HOSTILE,
        Grants::none(),
    )
    .await;
    let a = store("hostile", "store-a", json!({}));
    let b = store("hostile", "store-b", json!({}));
    assert_eq!(
        get(&rt, &a, "cache-put:token=alpha")
            .await
            .unwrap()
            .as_deref(),
        Some("stored")
    );
    assert_eq!(
        get(&rt, &a, "cache-get:token").await.unwrap().as_deref(),
        Some("alpha")
    );
    assert_eq!(get(&rt, &b, "cache-get:token").await.unwrap(), None);
    // Guest memory does not survive a call either: a static counter starts over.
    for s in [&a, &b, &a] {
        assert_eq!(get(&rt, s, "counter").await.unwrap().as_deref(), Some("1"));
    }
}

#[tokio::test]
async fn nothing_a_call_leaves_in_guest_memory_is_visible_to_the_next_call() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    // The scan finds a planted value within one call, so "absent" below is meaningful.
    assert_eq!(
        get(&rt, &s, "plant-and-scan:db-password-1")
            .await
            .unwrap()
            .as_deref(),
        Some("present")
    );
    for round in 0..20 {
        let marker = format!("db-password-{round}");
        assert_eq!(
            get(&rt, &s, &format!("plant:{marker}"))
                .await
                .unwrap()
                .as_deref(),
            Some("planted")
        );
        assert_eq!(
            get(&rt, &s, &format!("scan:{marker}"))
                .await
                .unwrap()
                .as_deref(),
            Some("absent"),
            "round {round}: the previous instance's memory leaked into a fresh one"
        );
    }
}

#[tokio::test]
async fn a_panicking_guest_fails_its_call_only() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    let err = get(&rt, &s, "panic").await.unwrap_err();
    assert_eq!(err.reason(), "ProviderCrashed", "{err}");
    // The SDK's panic hook reports where and why; the host puts it in the error.
    let message = err.to_string();
    assert!(
        message.contains("the provider panicked at ")
            && message.contains("hostile guest panics on purpose"),
        "{message}"
    );
    assert_eq!(get(&rt, &s, "counter").await.unwrap().as_deref(), Some("1"));
    still_serves(&rt).await;
}

/// Issue 21: 64 calls at once over four stores, every other one panicking. A panic ends only
/// its own call, and the guest's static call counter reads 1 in each of the others: no two
/// calls share an instance, so a guest's data race cannot cross calls either.
#[tokio::test]
async fn sixty_four_concurrent_calls_with_panics_among_them_end_only_the_panicking_ones() {
    let rt = common::runtime();
    let limits = Limits {
        max_concurrent_instances: 64,
        ..Limits::default()
    };
    hostile(&rt, Grants::parse(&[], &[], limits).unwrap()).await;
    let stores: Vec<StoreContext> = (0..4)
        .map(|i| store("hostile", &format!("store-{i}"), json!({})))
        .collect();
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let (rt, s) = (rt.clone(), stores[i % 4].clone());
            tokio::spawn(async move {
                let key = if i % 2 == 0 { "panic" } else { "counter" };
                (i, get(&rt, &s, key).await)
            })
        })
        .collect();
    let (mut crashed, mut answered) = (0, 0);
    for call in calls {
        match call.await.expect("the call's task") {
            (i, Err(e)) if i % 2 == 0 => {
                assert_eq!(e.reason(), "ProviderCrashed", "{e}");
                crashed += 1;
            }
            (i, Ok(value)) if i % 2 == 1 => {
                assert_eq!(
                    value.as_deref(),
                    Some("1"),
                    "call {i} saw another call's state"
                );
                answered += 1;
            }
            (i, other) => panic!("call {i}: {other:?}"),
        }
    }
    assert_eq!((crashed, answered), (32, 32));
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_log_flood_is_capped_and_the_call_completes() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    assert_eq!(
        get(&rt, &s, "log-flood").await.unwrap().as_deref(),
        Some("flooded")
    );
}

/// Issue 23 item 1: lists whose elements all point at one guest buffer are copied once per
/// element, so 1,024 entries over one 32 KiB buffer make the host allocate 32 MiB; the
/// transfer bound stops both a result and a host call's arguments built that way.
#[tokio::test]
async fn aliased_lists_from_a_guest_are_stopped_by_the_transfer_bound() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    let map = rt
        .get_secret_map(&s, &airlock::backend::RemoteRef::key("alias-map:1024|32"))
        .await
        .unwrap_err();
    let fields = get(&rt, &s, "alias-fields:1024|32").await.unwrap_err();
    for err in [map, fields] {
        assert!(
            matches!(
                err,
                BackendError::Runtime(RuntimeError::TransferLimit { limit, .. })
                    if limit == airlock::runtime::MAX_TRANSFER_BYTES
            ),
            "{err:?}"
        );
        assert_eq!(err.reason(), "ProviderTransferLimitExceeded");
    }
    // The same shapes under the bound still pass: 64 entries over 32 KiB is 2 MiB.
    let small = rt
        .get_secret_map(&s, &airlock::backend::RemoteRef::key("alias-map:64|32"))
        .await
        .unwrap()
        .expect("a map");
    assert_eq!(small.len(), 64);
    still_serves(&rt).await;
}

// Issue 23, item 10: concurrency is bounded per store as well as per provider.
#[tokio::test]
async fn one_stores_slow_calls_leave_room_for_another_store_of_the_same_provider() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = serve().await;
    let rt = common::runtime();
    let limits = Limits {
        max_concurrent_instances: 2,
        ..Limits::default()
    };
    let g = Grants::parse(&[format!("http://127.0.0.1:{}", server.port)], &[], limits).unwrap();
    let slow = hostile(&rt, g).await;
    let quick = store("hostile", "bystander", json!({}));
    // As many slow calls as the provider has instances; each waits 5 s on the backend.
    let key = format!("http:{}", server.url("/slow"));
    let ended = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (rt, slow, key, ended) = (rt.clone(), slow.clone(), key.clone(), ended.clone());
            tokio::spawn(async move {
                let answer = get(&rt, &slow, &key).await;
                ended.fetch_add(1, Ordering::SeqCst);
                answer
            })
        })
        .collect();
    // Once the backend holds a slow request, the slow store has its instances.
    while server.requests.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        get(&rt, &quick, "counter").await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        ended.load(Ordering::SeqCst),
        0,
        "the other store's call waited for a slow call to end"
    );
    // The slow store's own calls still all complete, one after the other.
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().as_deref(), Some("200 slow"));
    }
}

// Issue 23 items 4, 5, 8 and 14 (branch runtime): what one instance may contain, what the
// redactor and the cache keep, what a call may buffer unsent, and what reaches the log.

#[tokio::test]
async fn a_component_with_more_memories_than_an_instance_may_have_is_refused_at_load() {
    let rt = common::runtime();
    // Were it allowed, a few such instances would take every memory slot of the pool.
    for (wasm, what) in [
        (hostile_with_instances(2, Some(1)), "3 Wasm linear memories"),
        (hostile_with_instances(40, None), "43 core module instances"),
    ] {
        let err = rt
            .install("hoarder", &wasm, Grants::none())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "InvalidProviderModule", "{err}");
        let message = err.to_string();
        assert!(
            message.contains("more than one provider instance may have (2 linear memories")
                && message.contains(what),
            "{message}"
        );
    }
    // The same shape within the counts loads and runs.
    let fits = hostile_with_instances(1, Some(1));
    rt.install("two-memories", &fits, Grants::none())
        .await
        .unwrap();
    let s = store("two-memories", "attacker", json!({}));
    assert_eq!(get(&rt, &s, "counter").await.unwrap().as_deref(), Some("1"));
    still_serves(&rt).await;
}

#[tokio::test]
async fn the_memory_limit_counts_every_memory_of_an_instance() {
    let rt = common::runtime();
    // A second memory of 64 MiB: within the default limit alone, not beside the first.
    // Installing runs it once (to read its metadata): that instance is stopped.
    let wasm = hostile_with_instances(1, Some(1024));
    let err = rt
        .install("big-memory", &wasm, Grants::none())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::MemoryLimit { limit, .. } if limit == 64 << 20),
        "{err:?}"
    );
    let s = store("big-memory", "attacker", json!({}));
    let roomy = Limits {
        memory_bytes: 128 << 20,
        ..Limits::default()
    };
    rt.install("big-memory", &wasm, Grants::parse(&[], &[], roomy).unwrap())
        .await
        .unwrap();
    assert_eq!(get(&rt, &s, "counter").await.unwrap().as_deref(), Some("1"));
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_provider_granted_more_instances_than_the_pool_leaves_is_refused() {
    let config = EngineConfig {
        cache_dir: Some(common::cache_dir()),
        max_instances: 8,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&config, Arc::new(StaticCredentials::default())).unwrap();
    let share = |n| {
        let limits = Limits {
            max_concurrent_instances: n,
            ..Limits::default()
        };
        Grants::parse(&[], &[], limits).unwrap()
    };
    install(&rt, "fake", airlock_test_artifacts::FAKE, share(4)).await;
    let hostile = airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE);
    let err = rt.install("hostile", &hostile, share(5)).await.unwrap_err();
    assert_eq!(err.reason(), "InstancePoolOvercommitted", "{err}");
    assert!(
        err.to_string().contains(
            "may run 5 instances at once, but the runtime holds 8 in all and the other providers are granted 4"
        ),
        "{err}"
    );
    assert!(rt.provider("hostile").is_none());
    rt.install("hostile", &hostile, share(4)).await.unwrap();
    // Replacing a provider counts its new share instead of its old one.
    rt.install("hostile", &hostile, share(4)).await.unwrap();
    still_serves(&rt).await;
}

#[tokio::test]
async fn request_bodies_a_guest_never_sends_are_bounded() {
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    let answer = get(&rt, &s, "body-hoard:64")
        .await
        .unwrap()
        .unwrap_or_default();
    let (bytes, why) = answer.split_once(" bytes buffered; ").expect(&answer);
    let bytes: usize = bytes.parse().unwrap();
    // Four bodies of the 1 MiB request bound plus three 4 KiB chunks each.
    let bound = airlock::runtime::egress::MAX_UNSENT_BODIES * ((1 << 20) + 3 * 4096);
    assert!(bytes <= bound, "{bytes} bytes buffered, over {bound}");
    assert_eq!(why, "body refused", "{answer}");
    // A request that is sent gives its body back: the next call, and the next request
    // of a call, are not refused.
    let server = serve().await;
    let rt = common::runtime();
    let s = hostile(&rt, grants(&[format!("http://127.0.0.1:{}", server.port)])).await;
    for _ in 0..6 {
        let echoed = get(&rt, &s, &format!("post:{}|body", server.url("/echo")))
            .await
            .unwrap();
        assert_eq!(echoed.as_deref(), Some("200 body"));
    }
    still_serves(&rt).await;
}

#[tokio::test]
async fn the_caches_of_all_stores_share_one_budget() {
    let config = EngineConfig {
        cache_dir: Some(common::cache_dir()),
        max_cache_bytes: 1 << 20,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&config, Arc::new(StaticCredentials::default())).unwrap();
    install(
        &rt,
        "hostile",
        airlock_test_artifacts::HOSTILE,
        Grants::none(),
    )
    .await;
    let mut kept = Vec::new();
    for i in 0..4 {
        let s = store("hostile", &format!("tenant-{i}"), json!({}));
        let n = get(&rt, &s, "cache-fill:8|64").await.unwrap().unwrap();
        kept.push(n.parse::<usize>().unwrap());
    }
    // Each entry is 64 KiB and a 5-byte key: a store keeps 7 within its 512 KiB, and
    // 1 MiB across stores holds 15.
    assert_eq!(kept, [7, 7, 1, 0]);
    still_serves(&rt).await;
}

#[tokio::test]
async fn a_cache_flood_is_refused_by_the_bound_and_leaves_the_redactor_and_the_log_alone() {
    let captured = Captured::default();
    let _guard = captured.install();
    let rt = common::runtime();
    let s = hostile(&rt, Grants::none()).await;
    // 512 values of 64 KiB: 32 MiB the host used to remember, 2 MiB as patterns.
    assert_eq!(
        get(&rt, &s, "cache-flood:512|64").await.unwrap().as_deref(),
        Some("flooded the cache")
    );
    let logs = captured.text();
    assert!(
        logs.contains(&"x".repeat(1000)),
        "the guest's line is missing:\n{logs}"
    );
    assert!(!logs.contains("[withheld"), "{logs}");
}

#[tokio::test]
async fn a_credential_flood_logs_one_denial_and_long_names_are_cut() {
    let captured = Captured::default();
    let _guard = captured.install();
    let creds = StaticCredentials::default().with_secret("team-a", "db", "password", b"pw");
    let (rt, s) = hostile_reading_db_password(creds, "flooder").await;
    let answer = get(&rt, &s, "credential-flood:db/password").await.unwrap();
    assert!(answer.unwrap_or_default().starts_with("32 granted"));
    let long = "n".repeat(60_000);
    for _ in 0..10 {
        let err = get(&rt, &s, &format!("secret:{long}/key"))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("access denied"), "{err}");
    }
    let logs = captured.text();
    let denials: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("credential request denied"))
        .collect();
    // One for the flood (its first request past the bound), one per call for the name.
    assert_eq!(denials.len(), 11, "{logs}");
    assert!(
        denials.iter().all(|l| l.len() < 1024),
        "a denial quotes the whole name"
    );
}

// Issue 26 (observability): the sandbox's metrics. Tests in this binary share the process's
// metrics, so each series here is told apart by a store name or a pattern of its own.

/// The value of the series `name{labels}` (labels written exactly as rendered).
fn metric(name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    airlock::metrics::global().render().lines().find_map(|l| {
        l.strip_prefix(&prefix)
            .map(|v| v.parse().expect("a number"))
    })
}

#[tokio::test]
async fn sandbox_metrics_name_the_granted_pattern_the_trap_reason_and_the_credential_verdict() {
    let server = serve().await;
    let pattern = format!("http://127.0.0.1:{}", server.port);
    let rt = common::runtime();
    install(
        &rt,
        "hostile",
        airlock_test_artifacts::HOSTILE,
        grants(std::slice::from_ref(&pattern)),
    )
    .await;
    let s = store("hostile", "metrics-egress", json!({}));
    get(
        &rt,
        &s,
        &format!("http:{}", server.url("/guest-chosen-path")),
    )
    .await
    .unwrap();
    let text = airlock::metrics::global().render();
    assert_eq!(
        metric(
            "airlock_sandbox_egress_requests_total",
            &format!("provider=\"hostile\",pattern=\"{pattern}\",result=\"allowed\"")
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("guest-chosen-path"), "{text}");
    let store_labels = |store: &str| {
        format!(
            "provider=\"hostile\",store_kind=\"SecretStore\",store_namespace=\"team-a\",store=\"{store}\""
        )
    };
    assert_eq!(
        metric(
            "airlock_sandbox_calls_total",
            &format!(
                "{},call=\"get-secrets\",result=\"success\"",
                store_labels("metrics-egress")
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(
            "airlock_sandbox_memory_peak_bytes_sum",
            &store_labels("metrics-egress")
        )
        .is_some_and(|peak| peak > 0.0),
        "{text}"
    );

    // A granted name resolving to the metadata address: the pattern let it through, the
    // host refused the address.
    let config = EngineConfig {
        cache_dir: Some(common::cache_dir()),
        ..Default::default()
    };
    let creds: Credentials = Arc::new(StaticCredentials::default());
    let rt = Runtime::with_resolver(&config, creds, Arc::new(MetadataResolver)).unwrap();
    let refused = "http://metrics-refused.example.com";
    let s = hostile(&rt, grants(&[refused.into()])).await;
    get(&rt, &s, &format!("http:{refused}/latest"))
        .await
        .unwrap_err();
    assert_eq!(
        metric(
            "airlock_sandbox_egress_requests_total",
            &format!("provider=\"hostile\",pattern=\"{refused}\",result=\"address_refused\"")
        ),
        Some(1.0),
        "{}",
        airlock::metrics::global().render()
    );

    let limits = Limits {
        cpu_time: Duration::from_millis(200),
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let rt = common::runtime();
    hostile(&rt, Grants::parse(&[], &[], limits).unwrap()).await;
    for (name, attack, reason) in [
        ("metrics-cpu", "spin", "ProviderCPUDeadlineExceeded"),
        ("metrics-memory", "alloc", "ProviderMemoryLimitExceeded"),
    ] {
        let s = store("hostile", name, json!({}));
        get(&rt, &s, attack).await.unwrap_err();
        assert_eq!(
            metric(
                "airlock_sandbox_traps_total",
                &format!("{},reason=\"{reason}\"", store_labels(name))
            ),
            Some(1.0),
            "{}",
            airlock::metrics::global().render()
        );
    }
    // The spinning call used its whole CPU budget.
    assert_eq!(
        metric(
            "airlock_sandbox_cpu_budget_used_ratio_sum",
            &store_labels("metrics-cpu")
        ),
        Some(1.0)
    );

    let creds = StaticCredentials::default()
        .with_secret("team-a", "db", "password", b"hunter2")
        .with_secret("team-a", "db", "admin-password", b"root!");
    let (rt, s) = hostile_reading_db_password(creds, "metrics-creds").await;
    get(&rt, &s, "secret:db/password").await.unwrap();
    get(&rt, &s, "secret:db/admin-password").await.unwrap_err();
    for (result, n) in [("allowed", 1.0), ("denied", 1.0)] {
        assert_eq!(
            metric(
                "airlock_sandbox_credential_requests_total",
                &format!("{},result=\"{result}\"", store_labels("metrics-creds"))
            ),
            Some(n),
            "{}",
            airlock::metrics::global().render()
        );
    }
}
