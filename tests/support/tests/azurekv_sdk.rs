//! The fake Azure (`airlock_testenv::fakes::azurekv`) proven against Microsoft's official
//! Python SDKs, PyPI `azure-keyvault-secrets`, `azure-keyvault-certificates`,
//! `azure-keyvault-keys` and `azure-identity` (pinned in tests/tools/requirements.txt): set,
//! get by version, version and secret listings over `nextLink` pages, tags, soft delete and
//! purge, certificates imported from PKCS#12 and PEM, RSA and EC keys imported as JSON Web
//! Keys, their deletes, not-found, a principal without access,
//! a wrong client secret and a certificate-signed client assertion. Fails loudly when the
//! venv or the SDKs are missing.

use std::process::Command;

use airlock_testenv::fakes::azurekv::{Access, FakeAzure, certificate_parts};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_PEM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/azurekv/client.pem");

#[test]
fn the_azure_sdks_get_the_documented_answers_from_the_fake() {
    let fake = FakeAzure::start(TENANT);
    let (cert, public_key) =
        certificate_parts(&std::fs::read_to_string(CLIENT_PEM).expect("client.pem"));
    fake.add_client_secret("app-rw", "s3cret", Access::Full)
        .add_client_secret("app-none", "other", Access::None)
        .add_client_certificate("app-cert", &cert, &public_key, Access::Full);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).expect("writing the CA");

    let python = airlock_testenv::tools::python_tool("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/azurekv_contract.py");
    let output = Command::new(python)
        .arg(script)
        .arg(fake.url())
        .arg(fake.url())
        .arg(TENANT)
        .arg(&ca)
        .arg(CLIENT_PEM)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Azure SDK contract failed (are azure-keyvault-secrets and azure-identity installed? run tests/scripts/tools.sh)\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok"), "{stdout}");

    let sent = fake.requests();
    // The SDK's first request went without a token and got the 401 challenge.
    assert!(
        sent.iter()
            .any(|r| r.path.starts_with("/secrets") && !r.authenticated)
    );
    // It asked Entra ID with the certificate flow too.
    assert!(
        sent.iter()
            .any(|r| r.form.iter().any(|(k, v)| k == "client_assertion_type"
                && v == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
    );
    // The certificate and key SDKs imported through the documented endpoints, and deleted.
    for (method, path) in [
        ("POST", "/certificates/tls/import"),
        ("POST", "/certificates/tls-pem/import"),
        ("PUT", "/keys/signing"),
        ("PUT", "/keys/ec-signing"),
        ("DELETE", "/certificates/tls"),
        ("DELETE", "/keys/signing"),
    ] {
        assert!(
            sent.iter().any(|r| r.method == method && r.path == path),
            "{method} {path}"
        );
    }
    assert!(fake.is_deleted_object("certificates", "tls"));
    assert!(fake.is_deleted_object("keys", "signing"));
    assert_eq!(
        fake.key("ec-signing").map(|(jwk, _)| jwk["crv"].clone()),
        Some(serde_json::json!("P-256"))
    );
    // It followed a nextLink.
    assert!(
        sent.iter()
            .any(|r| r.path == "/secrets" && r.query.iter().any(|(k, _)| k == "$skiptoken"))
    );
}
