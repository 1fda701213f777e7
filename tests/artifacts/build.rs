//! Builds the provider components and the hostile test guests for `wasm32-wasip2` with
//! the workspace's `wasm` profile, in a target directory of their own (so this nested
//! cargo never waits on the outer build's lock), and exports each `.wasm` path as an
//! environment variable for `src/lib.rs`.

use std::path::PathBuf;
use std::process::Command;

/// (crate, exported constant)
const GUESTS: &[(&str, &str)] = &[
    ("airlock-provider-fake", "FAKE"),
    ("airlock-provider-aws", "AWS"),
    ("airlock-provider-vault", "VAULT"),
    ("airlock-guest-hostile", "HOSTILE"),
    ("airlock-guest-hostile-fs", "HOSTILE_FS"),
    ("airlock-guest-hostile-net", "HOSTILE_NET"),
];

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
    for (krate, _) in GUESTS {
        cmd.args(["-p", krate]);
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
    for (krate, constant) in GUESTS {
        let file = target_dir
            .join("wasm32-wasip2/wasm")
            .join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(file.exists(), "expected {} after the build", file.display());
        println!("cargo:rustc-env=AIRLOCK_WASM_{constant}={}", file.display());
    }
}
