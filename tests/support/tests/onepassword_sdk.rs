//! The 1Password Connect fake (`airlock_testenv::fakes::onepassword`) answers 1Password's
//! official Connect SDK for Python (PyPI `onepasswordconnectsdk`, pinned in
//! tests/tools/requirements.txt) as a Connect server does: vaults by name and ID, items by
//! title and ID, item lists, files and their content, create, update and delete, not found,
//! a vault outside the token and a bad token.

use airlock_testenv::fakes::onepassword::FakeOnePassword;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_connect_sdk_gets_the_documented_answers_from_the_fake() {
    let fake = FakeOnePassword::start().await;
    fake.add_vault("Production");
    fake.add_vault("Personal");
    fake.add_item(
        "Production",
        "database",
        "LOGIN",
        &[("username", "admin"), ("password", "s3cr3t")],
        &[],
    );
    let tls = fake.add_item("Production", "tls", "DOCUMENT", &[], &["web"]);
    fake.add_file(
        "Production",
        &tls,
        "cert.pem",
        b"-----BEGIN CERTIFICATE-----\n",
    );
    fake.add_token("op-connect-contract");
    fake.add_token_for("op-connect-narrow", &["Production"]);

    let python = airlock_testenv::tools::python_tool("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onepassword_sdk.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("OP_URL", fake.url())
        .env("OP_TOKEN", "op-connect-contract")
        .env("NARROW_TOKEN", "op-connect-narrow")
        .env("BAD_TOKEN", "op-connect-revoked")
        .output()
        .await
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("contract ok"),
        "the SDK script failed (is onepasswordconnectsdk installed? run tests/scripts/tools.sh)\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The SDK really talked to the fake: the writes, and the 401s it was refused.
    assert_eq!(fake.requests_with("POST").len(), 1);
    assert_eq!(fake.requests_with("PUT").len(), 1);
    assert_eq!(fake.requests_with("DELETE").len(), 1);
    assert_eq!(
        fake.requests().iter().filter(|r| r.status == 401).count(),
        2
    );
}
