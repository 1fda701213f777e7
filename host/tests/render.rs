//! `airlock render`: the binary renders an ExternalSecret's template offline from files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/templates")
        .join(file)
}

fn airlock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .expect("run airlock")
}

/// Renders the test ExternalSecret with `values` and the `db-templates` ConfigMap.
fn render_with_config_map(values: &Path) -> std::process::Output {
    airlock(&[
        "render",
        "-f",
        data("templated-secret.yaml").to_str().unwrap(),
        "-d",
        values.to_str().unwrap(),
        "--template-from-config-map",
        data("db-templates.yaml").to_str().unwrap(),
    ])
}

#[test]
fn render_prints_the_secret_the_template_yields() {
    let out = render_with_config_map(&data("data.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret: serde_json::Value = serde_yaml::from_slice(&out.stdout).expect("YAML");
    let text = |k: &str| {
        use base64::Engine as _;
        let b64 = secret["data"][k].as_str().unwrap_or_else(|| panic!("{k}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "database-url");
    assert_eq!(secret["metadata"]["namespace"], "apps");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        text("DATABASE_URL"),
        "postgresql://admin:s3cr3t@db.example.com:5432/mydb"
    );
    assert_eq!(text("pgpass"), "db.example.com:5432:mydb:admin:s3cr3t");
    assert_eq!(text("PGUSER"), "admin");
    assert_eq!(text("PGHOST"), "db.example.com");
    assert_eq!(
        secret["data"].as_object().unwrap().len(),
        4,
        "Replace: only template keys"
    );
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "db"
    );
    assert_eq!(secret["metadata"]["annotations"]["owner"], "payments");
    assert_eq!(
        secret["metadata"]["annotations"]["checksum"]
            .as_str()
            .unwrap()
            .len(),
        12
    );
}

#[test]
fn render_fails_with_one_line_naming_the_template_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("data.yaml");
    std::fs::write(&values, "username: admin\n").unwrap();
    let out = render_with_config_map(&values);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        r#"error: template "db-templates/pgpass": line 1, column 45: map has no entry for key "password""#
    );
    // Without the ConfigMap file the missing source is named.
    let out = airlock(&[
        "render",
        "-f",
        data("templated-secret.yaml").to_str().unwrap(),
        "-d",
        data("data.yaml").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        r#"error: templateFrom[0].configMap "db-templates" not found in the ExternalSecret's namespace"#
    );
}

#[test]
fn render_runs_the_generators_an_external_secret_names() {
    let out = airlock(&[
        "render",
        "-f",
        data("generated-secret.yaml").to_str().unwrap(),
        "--generator",
        data("generators.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret: serde_json::Value = serde_yaml::from_slice(&out.stdout).expect("YAML");
    let text = |k: &str| {
        use base64::Engine as _;
        let b64 = secret["data"][k].as_str().unwrap_or_else(|| panic!("{k}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    // The Password generator's key renamed by the entry's rewrite.
    let url = text("DATABASE_URL");
    let password = url
        .strip_prefix("postgresql://app:")
        .and_then(|r| r.strip_suffix("@db:5432/app"))
        .unwrap_or_else(|| panic!("{url}"));
    assert_eq!(password.chars().count(), 20, "{password}");
    assert_eq!(password.chars().filter(char::is_ascii_digit).count(), 5);
    assert!(
        password
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    // The ClusterGenerator's hex-encoded password of 16 characters.
    let key = text("API_KEY");
    assert_eq!(key.len(), 32, "{key}");
    let decoded = hex::decode(&key).expect("hex");
    assert_eq!(decoded.len(), 16);
    assert_eq!(text("REQUEST_ID").len(), 36);
    assert_eq!(text("REGION"), "eu-west-1");

    // Each run generates anew, as the operator does at each refresh.
    let again = airlock(&[
        "render",
        "-f",
        data("generated-secret.yaml").to_str().unwrap(),
        "--generator",
        data("generators.yaml").to_str().unwrap(),
    ]);
    let second: serde_json::Value = serde_yaml::from_slice(&again.stdout).expect("YAML");
    assert_ne!(second["data"]["API_KEY"], secret["data"]["API_KEY"]);
}

#[test]
fn render_names_a_generator_it_was_not_given() {
    let out = airlock(&[
        "render",
        "-f",
        data("generated-secret.yaml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.dataFrom[0]")
            && stderr.contains(
                "Password \"db-password\" not given (pass its manifest with --generator)"
            ),
        "{stderr}"
    );
    // An ExternalSecret that reads a store still needs its data file.
    let out = airlock(&[
        "render",
        "-f",
        data("templated-secret.yaml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--data is required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
