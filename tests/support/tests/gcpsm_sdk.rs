//! The GCP Secret Manager fake (`airlock_testenv::fakes::gcpsm`) answers Google's official
//! Python client (PyPI `google-cloud-secret-manager` over its REST transport, with
//! `google-auth`; pinned in tests/tools/requirements.txt) as the real services document:
//! create, addVersion, access (`latest` and numbered), get, list with paging and a label
//! filter, versions, regional secrets, delete; self-signed JWTs and the OAuth 2.0 JWT-bearer
//! token flow; not found, already exists, permission denied, a disabled version and unknown
//! keys and tokens; the etag-guarded update and delete and the version state filter that
//! pushes use; the GKE metadata server as google-auth reads it; and Workload Identity
//! Federation (STS and generateAccessToken) as google-auth's `identity_pool` drives it.

use airlock_testenv::fakes::gcpsm::FakeGcpsm;
use serde_json::json;

const EMAIL: &str = "airlock@my-gcp-project.iam.gserviceaccount.com";

/// A service-account key file as the IAM console writes it, for `private_key_pem`.
pub fn key_json(private_key_pem: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "my-gcp-project",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key_pem,
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

/// A Kubernetes ServiceAccount token's claims for `team-a/federated` and `audience`,
/// unsigned (the fake reads claims only, as the API server would have signed it).
fn unsigned_jwt(audience: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256"})),
        b64(
            json!({"aud": [audience], "sub": "system:serviceaccount:team-a:federated",
                   "iat": now, "exp": now + 3600})
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_secret_manager_client_gets_the_documented_answers_from_the_fake() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/gcpsm");
    let read = |f: &str| std::fs::read_to_string(format!("{data}/{f}")).expect("test key");
    let fake = FakeGcpsm::start().await;
    fake.add_service_account(EMAIL, &read("sa-key.pub.pem"));
    fake.grant(EMAIL, "my-gcp-project");
    fake.set_page_size(1);
    fake.create_secret("projects/my-gcp-project/secrets/disabled", &[]);
    fake.add_version("projects/my-gcp-project/secrets/disabled", b"old");
    fake.set_version_state("projects/my-gcp-project/secrets/disabled", 1, "DISABLED");
    fake.set_cluster("cluster-project", "us-central1", "my-cluster");
    let provider = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/k8s/providers/cluster";
    fake.add_pool_provider(provider, "https://kubernetes.federation.example");
    let principal = "principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/k8s/subject/system:serviceaccount:team-a:federated";
    let impersonated = "impersonated@my-gcp-project.iam.gserviceaccount.com";
    fake.allow_impersonation(principal, impersonated);
    fake.grant(impersonated, "my-gcp-project");

    let dir = tempfile::tempdir().expect("temp dir");
    let token_uri = format!("{}/token", fake.url());
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let good = write("key.json", &key_json(&read("sa-key.pem"), &token_uri));
    let bad = write("bad.json", &key_json(&read("other-key.pem"), &token_uri));
    let ca = write("ca.pem", fake.ca_pem());
    let subject = write(
        "subject.jwt",
        &unsigned_jwt("https://kubernetes.federation.example"),
    );
    let wrong_subject = write("wrong.jwt", &unsigned_jwt("https://elsewhere.example"));

    let python = airlock_testenv::tools::python_tool("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gcpsm_sdk.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("GCPSM_URL", fake.url())
        .env("GCPSM_PROJECT", "my-gcp-project")
        .env("GCPSM_OTHER_PROJECT", "someone-elses-project")
        .env("GCPSM_KEY", &good)
        .env("GCPSM_BAD_KEY", &bad)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env(
            "GCE_METADATA_HOST",
            format!("127.0.0.1:{}", fake.metadata_port()),
        )
        .env(
            "GCE_METADATA_IP",
            format!("127.0.0.1:{}", fake.metadata_port()),
        )
        .env("GCPSM_CLUSTER_PROJECT", "cluster-project")
        .env("GCPSM_POOL_PROVIDER", provider)
        .env("GCPSM_IMPERSONATED", impersonated)
        .env("GCPSM_SUBJECT_TOKEN", &subject)
        .env("GCPSM_WRONG_SUBJECT_TOKEN", &wrong_subject)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .output()
        .await
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("contract ok"),
        "the SDK script failed (is google-cloud-secret-manager installed? run tests/scripts/tools.sh)\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The SDK really talked to the fake: the token endpoint, paged lists and the refusals.
    let requests = fake.requests();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/token")
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        vec![200, 400]
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.path.ends_with("/secrets") && r.method == "GET")
            .count()
            >= 3
    );
    assert!(requests.iter().any(|r| r.status == 403));
    assert!(requests.iter().filter(|r| r.status == 401).count() >= 2);
    assert!(
        requests
            .iter()
            .any(|r| r.method == "PATCH" && r.status == 400),
        "the stale etag reached the fake"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/computeMetadata/v1/project/project-id" && r.status == 200)
    );
    assert_eq!(
        fake.requests_ending("POST", "/v1/token")
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        vec![200, 200, 400],
        "STS: direct, before impersonation, the wrong audience"
    );
    assert!(
        fake.requests_ending("POST", ":generateAccessToken")
            .iter()
            .any(|r| r.status == 200)
    );
}
