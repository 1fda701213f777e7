//! `airlock provider test`, the real binary, on real components: the Rust webhook passes
//! against a JSON server on 127.0.0.1 named by a `--store` file and against the suite's
//! own backend, the fake provider passes, and each deliberately broken component (wrong
//! export, forbidden import, panicking get) fails with a line that names the problem.

use std::process::Command;

use airlock::cli::conformance::fixture::WebhookServer;

/// Runs `airlock provider test` with `args`; returns (success, stdout + stderr).
fn provider_test(module: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["provider", "test", module])
        .args(args)
        .output()
        .expect("run airlock");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The report's line for `check`.
fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in:\n{report}"))
}

#[test]
fn the_rust_webhook_passes_against_a_store_file_and_a_local_json_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(WebhookServer::start("store-token"))
        .unwrap();
    server.set("app/db", r#"{"user":"app","password":"pw-123"}"#);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.yaml");
    std::fs::write(
        &store,
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: webhook-backend, namespace: team-a}}
spec:
  provider:
    webhook:
      url: "{}/secrets/{{{{ .remoteRef.key }}}}"
      headers:
        Authorization: "Bearer {{{{ .auth.token }}}}"
      result: {{jsonPath: "$.value"}}
      secrets:
      - name: auth
        secretRef: {{name: webhook-credentials}}
"#,
            server.url()
        ),
    )
    .unwrap();
    let credentials = dir.path().join("credentials.yaml");
    std::fs::write(
        &credentials,
        "secrets:\n- {namespace: team-a, name: webhook-credentials, data: {token: store-token}}\n",
    )
    .unwrap();
    let (ok, report) = provider_test(
        airlock_test_artifacts::WEBHOOK,
        &[
            "--store",
            store.to_str().unwrap(),
            "--credentials",
            credentials.to_str().unwrap(),
            "--allow-host",
            &server.url(),
            "--key",
            "app/db",
            "--map-key",
            "app/db",
        ],
    );
    assert!(ok, "{report}");
    for check in [
        "get-present",
        "get-absent",
        "get-secret-map",
        "batch",
        "validate-bad",
    ] {
        assert!(line(&report, check).starts_with("PASS"), "{report}");
    }
    assert!(
        line(&report, "get-secret-map").contains(r#"["password", "user"]"#),
        "{report}"
    );
    // Read-only with a user's store: nothing is written unless asked.
    assert!(
        line(&report, "capabilities").starts_with("SKIP"),
        "{report}"
    );
    assert!(server.requests() >= 5, "{} requests", server.requests());
    assert!(
        !report.contains("pw-123") && !report.contains("store-token"),
        "{report}"
    );
}

#[test]
fn the_rust_webhook_passes_against_the_suites_own_backend() {
    let (ok, report) = provider_test(airlock_test_artifacts::WEBHOOK, &[]);
    assert!(ok, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(
        line(&report, "capabilities").contains("ReadOnly, and push-secret answers unsupported"),
        "{report}"
    );
    assert!(
        line(&report, "memory-limit").contains("memory limit of 262144 bytes"),
        "{report}"
    );
}

#[test]
fn the_fake_provider_passes_with_its_push_and_delete_held_to_read_write() {
    let (ok, report) = provider_test(airlock_test_artifacts::FAKE, &[]);
    assert!(ok, "{report}");
    assert!(
        line(&report, "capabilities")
            .contains("ReadWrite: push-secret, secret-exists and delete-secret work"),
        "{report}"
    );
    assert!(line(&report, "find").starts_with("PASS"), "{report}");
}

#[test]
fn a_component_exporting_the_wrong_interface_fails_naming_the_export() {
    let (ok, report) = provider_test(airlock_test_artifacts::BROKEN_EXPORT, &[]);
    assert!(!ok, "{report}");
    let exports = line(&report, "exports");
    assert!(exports.starts_with("FAIL"), "{report}");
    assert!(
        exports.contains("does not export airlock:provider/secrets@0.1.0"),
        "{report}"
    );
    assert!(report.contains("conformance check failed"), "{report}");
}

#[test]
fn a_component_importing_the_filesystem_fails_naming_the_import() {
    let (ok, report) = provider_test(airlock_test_artifacts::HOSTILE_FS, &[]);
    assert!(!ok, "{report}");
    let imports = line(&report, "imports");
    assert!(imports.starts_with("FAIL"), "{report}");
    assert!(imports.contains("it imports wasi:filesystem"), "{report}");
}

#[test]
fn a_component_importing_sockets_fails_naming_the_import() {
    let (ok, report) = provider_test(airlock_test_artifacts::HOSTILE_NET, &[]);
    assert!(!ok, "{report}");
    assert!(
        line(&report, "imports").contains("wasi:sockets"),
        "{report}"
    );
}

#[test]
fn a_provider_whose_get_panics_fails_naming_the_panic() {
    let (ok, report) = provider_test(airlock_test_artifacts::BROKEN_PANIC, &[]);
    assert!(!ok, "{report}");
    let crash = line(&report, "no-crash");
    assert!(crash.starts_with("FAIL"), "{report}");
    assert!(crash.contains("get-secrets crashed"), "{report}");
    assert!(crash.contains("always panics"), "{report}");
    // It loads and describes itself, so those checks pass.
    for check in ["compile", "imports", "exports", "metadata", "config-schema"] {
        assert!(line(&report, check).starts_with("PASS"), "{report}");
    }
}
