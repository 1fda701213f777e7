//! The Akeyless fake (`airlock_testenv::fakes::akeyless`) answers Akeyless's official Python
//! SDK (PyPI `akeyless`, pinned in tests/tools/requirements.txt) as the API v2 documents:
//! access-key and Kubernetes auth, create, get (with versions), describe, update, list with
//! paging, filter, types and tags, dynamic, rotated and certificate reads, delete, not found,
//! conflicts and bad tokens; at the SaaS layout and a Gateway's `/v2` layout.

use airlock_testenv::fakes::akeyless::FakeAkeyless;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_akeyless_sdk_gets_the_documented_answers_from_the_fake() {
    let fake = FakeAkeyless::start().await;
    fake.add_access_key("p-contract", "key-contract");
    fake.add_k8s_auth("p-k8s", "my-conf", "header.payload.signature");
    fake.add_static("/seed/static-a", &["a"], &[]);
    fake.add_static("/seed/static-b", &["b"], &[]);
    fake.add_static("/elsewhere/static-c", &["c"], &[]);
    fake.add_dynamic(
        "/seed/dynamic",
        json!({"user": "tmp-user", "password": "tmp-pw", "ttl_in_minutes": "60"}),
    );
    fake.add_rotated(
        "/seed/rotated",
        json!({"username": "svc", "password": "rot-pw"}),
    );
    fake.add_certificate(
        "/seed/cert",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    );
    fake.set_page_size(3);

    let python = airlock_testenv::tools::python_tool("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/akeyless_sdk.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("AKEYLESS_URL", fake.url())
        .env("ACCESS_ID", "p-contract")
        .env("ACCESS_KEY", "key-contract")
        .env("K8S_ACCESS_ID", "p-k8s")
        .env("K8S_CONF", "my-conf")
        .env("K8S_JWT", "header.payload.signature")
        .output()
        .await
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("contract ok"),
        "the SDK script failed (is akeyless installed? run tests/scripts/tools.sh)\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The SDK really talked to the fake: pages of the listing, the 401s and 404s it was given.
    let requests = fake.requests();
    assert!(fake.requests_to("/list-items").len() >= 4, "{requests:?}");
    assert!(requests.iter().filter(|r| r.status == 401).count() >= 10);
    assert!(requests.iter().filter(|r| r.status == 404).count() >= 8);
}
