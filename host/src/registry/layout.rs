//! The OCI artifact layout of a Wasm component, as wasm-pkg-tools (`wkg`) and `oci-wasm`
//! write it: an image manifest whose `artifactType` and config media type are
//! `application/vnd.wasm.config.v0+json`, a config listing the layer digests with
//! architecture `wasm` and os `wasip2`, and exactly one `application/wasm` layer.
//!
//! The four media types are constants here rather than a dependency on `oci-wasm`, which pins
//! another `oci-client` than the one the rest of the host uses.

use std::collections::BTreeMap;

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde::{Deserialize, Serialize};

use super::RegistryError;

/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the config blob, also the manifest's `artifactType`.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the one layer: the component's bytes.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer media type of the older `wasm-to-oci` layout, accepted when pulling.
pub const LEGACY_WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Annotation with the creation time of the artifact.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// The config blob of a Wasm artifact (the fields `oci-wasm` writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2` for components.
    pub os: String,
    /// Digests of the layers, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
}

/// The config blob and manifest of a component.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The serialized [`WasmConfig`].
    pub config: Vec<u8>,
    /// The manifest referencing the config and the layer.
    pub manifest: OciImageManifest,
}

/// Builds the config and manifest for `wasm`, created at `created` (RFC 3339).
pub fn artifact(wasm: &[u8], created: &str) -> Artifact {
    let layer_digest = crate::runtime::digest(wasm);
    let config = serde_json::to_vec(&WasmConfig {
        created: Some(created.to_string()),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer_digest.clone()],
    })
    .expect("a WasmConfig always serializes");
    let descriptor = |media_type: &str, digest: String, size: usize| OciDescriptor {
        media_type: media_type.into(),
        digest,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    };
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        config: descriptor(
            WASM_CONFIG_MEDIA_TYPE,
            crate::runtime::digest(&config),
            config.len(),
        ),
        layers: vec![descriptor(WASM_LAYER_MEDIA_TYPE, layer_digest, wasm.len())],
        subject: None,
        artifact_type: Some(WASM_CONFIG_MEDIA_TYPE.into()),
        annotations: Some(BTreeMap::from([(
            CREATED_ANNOTATION.to_string(),
            created.to_string(),
        )])),
    };
    Artifact { config, manifest }
}

/// The component layer of a pulled manifest: exactly one `application/wasm` layer (the
/// config media type is not required, so artifacts pushed by generic clients load too).
pub fn wasm_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor, RegistryError> {
    let wasm: Vec<&OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|l| {
            l.media_type == WASM_LAYER_MEDIA_TYPE || l.media_type == LEGACY_WASM_LAYER_MEDIA_TYPE
        })
        .collect();
    match wasm.as_slice() {
        [one] if manifest.layers.len() == 1 => Ok(one),
        _ => Err(RegistryError::NotAWasmArtifact(format!(
            "expected exactly one layer of media type {WASM_LAYER_MEDIA_TYPE}, found [{}]",
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_has_the_wasm_artifact_media_types() {
        let a = artifact(b"\0asm-component", "2026-01-01T00:00:00Z");
        let m = serde_json::to_value(&a.manifest).expect("json");
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["artifactType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(m["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(m["layers"][0]["size"], 14);
        let config: WasmConfig = serde_json::from_slice(&a.config).expect("config");
        assert_eq!(
            (config.architecture.as_str(), config.os.as_str()),
            ("wasm", "wasip2")
        );
        assert_eq!(
            config.layer_digests,
            vec![a.manifest.layers[0].digest.clone()]
        );
        assert_eq!(wasm_layer(&a.manifest).expect("layer").size, 14);
    }

    #[test]
    fn a_manifest_without_exactly_one_wasm_layer_is_refused() {
        let mut m = artifact(b"x", "2026-01-01T00:00:00Z").manifest;
        m.layers[0].media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        let e = wasm_layer(&m).expect_err("not wasm");
        assert_eq!(e.reason(), "NotAWasmArtifact");
        assert!(e.to_string().contains("tar+gzip"), "{e}");
        m.layers = vec![];
        assert!(wasm_layer(&m).is_err());
    }
}
