//! The Doppler fake (`airlock_testenv::fakes::doppler`) answers Doppler's official Python SDK
//! (PyPI `doppler-sdk`, pinned in tests/tools/requirements.txt) as the real API does:
//! retrieve, list, download with name transformers and formats, the download's ETag and 304,
//! update and delete, projects, me, not found, another config and a bad token.

use airlock_testenv::fakes::doppler::FakeDoppler;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_doppler_sdk_gets_the_documented_answers_from_the_fake() {
    let fake = FakeDoppler::start().await;
    fake.set_secret("backend", "prd", "DB_PASSWORD", "s3cr3t");
    fake.set_secret("backend", "prd", "API_KEY", "k-123");
    fake.set_secret("backend", "dev", "DB_PASSWORD", "dev-pw");
    fake.add_service_token("dp.st.prd.contract", "backend", "prd");
    fake.add_personal_token("dp.pt.contract");

    let python = airlock_testenv::tools::python_tool("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/doppler_sdk.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("DOPPLER_URL", fake.url())
        .env("SERVICE_TOKEN", "dp.st.prd.contract")
        .env("PERSONAL_TOKEN", "dp.pt.contract")
        .env("BAD_TOKEN", "dp.st.nobody")
        .output()
        .await
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("contract ok"),
        "the SDK script failed (is doppler-sdk installed? run tests/scripts/tools.sh)\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The SDK really talked to the fake: one 304 with no body, and the 401s it was refused.
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.status == 304 && r.body_len == 0));
    assert!(requests.iter().filter(|r| r.status == 401).count() >= 2);
    let deletes: Vec<u16> = requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect();
    assert_eq!(deletes, [204, 404]);
}
