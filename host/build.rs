//! Builds `host/tera-guest` (tera as a WebAssembly component) for `wasm32-wasip2` with the
//! workspace's `wasm` profile and copies it to `$OUT_DIR/tera.wasm`, which the host embeds:
//! tera templates render inside wasmtime, where tera's unbounded recursion and allocation
//! end in a trap rather than in the operator. A nested cargo with a target directory of its
//! own, so it never waits on the outer build's lock.

use std::path::PathBuf;
use std::process::Command;

const GUEST: &str = "airlock-tera-guest";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("..").canonicalize().expect("workspace root");
    // The root manifest holds the `wasm` profile and the dependency versions.
    for path in ["host/tera-guest", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=AIRLOCK_WASM_TARGET_DIR");
    let target_dir = std::env::var("AIRLOCK_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("wasm")))
        .unwrap_or_else(|_| root.join("target/wasm"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
            "-p",
            GUEST,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags (and a clippy or coverage wrapper) are for the host, not wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the tera guest");
    if !status.success() {
        panic!(
            "building {GUEST} failed ({status}); is the wasm32-wasip2 target installed? \
             (`rustup target add wasm32-wasip2`)"
        );
    }
    let built = target_dir.join("wasm32-wasip2/wasm/airlock_tera_guest.wasm");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("tera.wasm");
    std::fs::copy(&built, &out)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), out.display()));
}
