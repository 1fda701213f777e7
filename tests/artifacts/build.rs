//! Builds every WebAssembly crate registered in the root `Cargo.toml`
//! (`[workspace.metadata.airlock] wasm`) for `wasm32-wasip2` with the workspace's `wasm`
//! profile, in a target directory of their own (so this nested cargo never waits on the
//! outer build's lock), and writes `$OUT_DIR/wasm.rs` for `src/lib.rs`: one constant per
//! crate holding its `.wasm` path, and the list of bundled providers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK is a library for guests, not a component.
const SDK: &str = "airlock-provider-sdk";

/// One entry of `[workspace.metadata.airlock] wasm`.
struct Guest {
    krate: String,
    constant: String,
    /// The chart's `providers.<key>` when the component is bundled.
    chart: Option<String>,
}

fn text(entry: &toml::Table, key: &str) -> Option<String> {
    entry.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("`{key}` of a wasm entry in Cargo.toml must be a string"))
            .to_owned()
    })
}

/// The registered crates, in their order in the root `Cargo.toml`.
fn registered(root: &Path) -> Vec<Guest> {
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .expect("read the root Cargo.toml")
        .parse()
        .expect("parse the root Cargo.toml");
    let list = manifest
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("airlock"))
        .and_then(|a| a.get("wasm"))
        .and_then(|w| w.as_array())
        .expect("the root Cargo.toml has a [workspace.metadata.airlock] wasm list");
    list.iter()
        .map(|entry| {
            let entry = entry
                .as_table()
                .expect("each wasm entry in Cargo.toml is a table");
            Guest {
                krate: text(entry, "crate").expect("a wasm entry without `crate`"),
                constant: text(entry, "const").expect("a wasm entry without `const`"),
                chart: text(entry, "chart"),
            }
        })
        .collect()
}

/// Package name → directory (`providers-wasm` or `tests/guests`) of every crate there.
fn crates_on_disk(root: &Path) -> BTreeMap<String, &'static str> {
    let mut found = BTreeMap::new();
    for dir in ["providers-wasm", "tests/guests"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("list the guest directories");
        for entry in entries {
            let manifest = entry.expect("a directory entry").path().join("Cargo.toml");
            let Ok(source) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let parsed: toml::Table = source
                .parse()
                .unwrap_or_else(|e| panic!("parse {}: {e}", manifest.display()));
            let name = parsed
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or_else(|| panic!("{} has no package name", manifest.display()));
            found.insert(name.to_owned(), dir);
        }
    }
    found
}

/// The rules the image, the demo and the chart rely on: every guest crate is registered,
/// bundled exactly when it lives under providers-wasm/.
fn check(guests: &[Guest], on_disk: &BTreeMap<String, &str>) {
    for guest in guests {
        let Some(dir) = on_disk.get(&guest.krate) else {
            panic!(
                "Cargo.toml registers {} but no crate under providers-wasm/ or tests/guests/ has that name",
                guest.krate
            );
        };
        match (*dir, &guest.chart) {
            ("providers-wasm", None) => panic!(
                "{} is under providers-wasm/ (which the image bundles) but its Cargo.toml entry has no `chart` key",
                guest.krate
            ),
            ("tests/guests", Some(_)) => panic!(
                "{} is a test guest but its Cargo.toml entry bundles it in the chart",
                guest.krate
            ),
            _ => {}
        }
    }
    for (krate, dir) in on_disk {
        if krate != SDK && !guests.iter().any(|g| &g.krate == krate) {
            panic!(
                "{krate} (under {dir}/) is not registered: add it to [workspace.metadata.airlock] wasm in the root Cargo.toml"
            );
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    for dir in ["providers-wasm", "tests/guests", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    let guests = registered(&root);
    check(&guests, &crates_on_disk(&root));

    println!("cargo:rerun-if-env-changed=AIRLOCK_WASM_TARGET_DIR");
    let target_dir = std::env::var("AIRLOCK_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("wasm")))
        .unwrap_or_else(|_| root.join("target/wasm"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "wasm"])
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in &guests {
        cmd.args(["-p", &guest.krate]);
    }
    // The outer build's flags are for the host target, not for wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the wasm guests");
    if !status.success() {
        panic!(
            "building the wasm guests failed ({status}); is the wasm32-wasip2 target installed? \
             (`rustup target add wasm32-wasip2`)"
        );
    }
    let mut out = String::new();
    let mut bundled = String::new();
    for guest in &guests {
        let file_name = format!("{}.wasm", guest.krate.replace('-', "_"));
        let file = target_dir.join("wasm32-wasip2/wasm").join(&file_name);
        assert!(file.exists(), "expected {} after the build", file.display());
        let path = file.to_str().expect("a UTF-8 target directory");
        let _ = writeln!(
            out,
            "/// The component built from `{}`.\npub const {}: &str = {path:?};",
            guest.krate, guest.constant
        );
        if let Some(key) = &guest.chart {
            let _ = writeln!(
                bundled,
                "    Bundled {{ key: {key:?}, file_name: {file_name:?}, path: {} }},",
                guest.constant
            );
        }
    }
    let _ = writeln!(
        out,
        "/// The providers bundled in the image and the chart.\npub const BUNDLED: &[Bundled] = &[\n{bundled}];"
    );
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("wasm.rs"), out).expect("write wasm.rs");
}
