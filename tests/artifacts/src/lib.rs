//! Paths of the provider components and test guests, built by this crate's build script
//! from the list in the root `Cargo.toml` (`[workspace.metadata.airlock] wasm`): one
//! constant per crate (`FAKE`, `AWS`, `VAULT`, `HOSTILE`, `HOSTILE_FS`, `HOSTILE_NET`, …).

/// A provider the image and the chart bundle.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// Its key under the chart's `providers` (and the Provider object's name).
    pub key: &'static str,
    /// Its file in the image's /providers, the chart's `module.path`.
    pub file_name: &'static str,
    /// The built component.
    pub path: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/wasm.rs"));

/// The bytes of a built component.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}
