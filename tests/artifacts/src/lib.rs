//! Paths of the provider components and test guests, built by this crate's build script.

/// ESO's fake provider.
pub const FAKE: &str = env!("AIRLOCK_WASM_FAKE");
/// AWS Secrets Manager and Parameter Store.
pub const AWS: &str = env!("AIRLOCK_WASM_AWS");
/// The HashiCorp Vault / OpenBao provider.
pub const VAULT: &str = env!("AIRLOCK_WASM_VAULT");
/// The hostile guest: its `key` picks an attack on the sandbox.
pub const HOSTILE: &str = env!("AIRLOCK_WASM_HOSTILE");
/// A guest importing `wasi:filesystem`.
pub const HOSTILE_FS: &str = env!("AIRLOCK_WASM_HOSTILE_FS");
/// A guest importing `wasi:sockets`.
pub const HOSTILE_NET: &str = env!("AIRLOCK_WASM_HOSTILE_NET");

/// The bytes of a built component.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}
