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
