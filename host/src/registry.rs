//! Provider components as OCI artifacts: pull (digest-verified, cached by digest), push in
//! the Wasm artifact layout wasm-pkg-tools uses, and cosign-compatible signatures.
//!
//! - [`layout`]: the manifest, config and media types of a Wasm artifact.
//! - [`cache`]: raw manifests and layers cached by digest under the operator's cache dir.
//! - [`auth`]: registry credentials from flags or a Docker config / pull Secret.
//! - [`signature`]: cosign "simple signing" with an ECDSA P-256 key pair.

pub mod auth;
pub mod cache;
pub mod layout;
pub mod signature;

use std::collections::BTreeMap;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

pub use self::auth::RegistryCredentials;
pub use self::cache::ArtifactCache;
use self::layout::MANIFEST_MEDIA_TYPE;
pub use self::signature::SignatureError;
use crate::runtime::digest;

/// Docker's image manifest, which older cosign versions write signatures as.
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The largest component accepted from a registry.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;
/// The largest manifest or signature payload accepted.
const MAX_SMALL_BLOB_BYTES: u64 = 1 << 20;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error("invalid OCI reference {reference:?}: {message}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it does not parse.
        message: String,
    },
    /// The pull Secret or Docker config cannot be used.
    #[error("{0}")]
    InvalidCredentials(String),
    /// The CA bundle cannot be used.
    #[error("{0}")]
    InvalidCaBundle(String),
    /// The registry cannot be reached (connection refused, DNS, TLS handshake, timeout).
    #[error("registry {registry} is unreachable: {message}")]
    Unreachable {
        /// `host[:port]`.
        registry: String,
        /// The transport error with its causes.
        message: String,
    },
    /// The registry refused the credentials.
    #[error("registry {registry} refused the credentials: {message}")]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// The registry's answer.
        message: String,
    },
    /// The tag or digest does not exist in the repository.
    #[error("{0}")]
    NotFound(String),
    /// Content does not match the digest it was asked for by.
    #[error("{0}")]
    DigestMismatch(String),
    /// The artifact is not a Wasm component artifact.
    #[error("not a Wasm component artifact: {0}")]
    NotAWasmArtifact(String),
    /// No signature is stored for the artifact.
    #[error("{0}")]
    SignatureMissing(String),
    /// A signature exists but does not verify.
    #[error("{0}")]
    SignatureInvalid(String),
    /// Any other registry failure.
    #[error("registry {registry}: {message}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What failed.
        message: String,
    },
    /// The artifact cache could not be written.
    #[error("artifact cache {path}: {source}")]
    Cache {
        /// The cache directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl RegistryError {
    /// A stable, PascalCase reason for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::InvalidReference { .. } => "InvalidReference",
            RegistryError::InvalidCredentials(_) => "InvalidPullSecret",
            RegistryError::InvalidCaBundle(_) => "InvalidCABundle",
            RegistryError::Unreachable { .. } => "RegistryUnreachable",
            RegistryError::Unauthorized { .. } => "RegistryUnauthorized",
            RegistryError::NotFound(_) => "ArtifactNotFound",
            RegistryError::DigestMismatch(_) => "DigestMismatch",
            RegistryError::NotAWasmArtifact(_) => "NotAWasmArtifact",
            RegistryError::SignatureMissing(_) => "SignatureMissing",
            RegistryError::SignatureInvalid(_) => "SignatureInvalid",
            RegistryError::Registry { .. } => "PullFailed",
            RegistryError::Cache { .. } => "ArtifactCacheError",
        }
    }

    /// Whether trying again later may succeed (the registry may come back, the tag may be
    /// pushed); content that is wrong stays wrong until the Provider changes.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RegistryError::Unreachable { .. }
                | RegistryError::Unauthorized { .. }
                | RegistryError::NotFound(_)
                | RegistryError::SignatureMissing(_)
                | RegistryError::Registry { .. }
                | RegistryError::Cache { .. }
        )
    }
}

/// Parses `registry/repo[:tag][@sha256:…]`.
pub fn parse_reference(reference: &str) -> Result<Reference, RegistryError> {
    let parsed: Reference =
        reference.parse().map_err(
            |e: oci_client::ParseError| RegistryError::InvalidReference {
                reference: reference.to_string(),
                message: e.to_string(),
            },
        )?;
    if !reference.contains('/') {
        return Err(RegistryError::InvalidReference {
            reference: reference.to_string(),
            message: "name the registry, e.g. registry.example.com/providers/vault:1.0".into(),
        });
    }
    Ok(parsed)
}

/// `registry/repo[:tag]@digest`: `reference` pinned to `digest`.
pub fn pinned(reference: &Reference, digest: &str) -> String {
    let tag = reference.tag().map(|t| format!(":{t}")).unwrap_or_default();
    format!(
        "{}/{}{tag}@{digest}",
        reference.registry(),
        reference.repository()
    )
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Credentials.
    pub credentials: RegistryCredentials,
    /// PEM certificates to trust besides the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Plain HTTP (for registries explicitly marked insecure only).
    pub insecure: bool,
}

/// Called with (bytes done, bytes in all when known) while a blob moves.
pub type Progress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// A pulled component.
#[derive(Clone)]
pub struct Pulled {
    /// The reference pinned to the manifest digest.
    pub reference: String,
    /// `sha256:` digest of the manifest.
    pub manifest_digest: String,
    /// The manifest.
    pub manifest: OciImageManifest,
    /// The component bytes (their digest is the layer digest, verified).
    pub wasm: Vec<u8>,
    /// Whether manifest and layer both came from the artifact cache.
    pub from_cache: bool,
}

impl std::fmt::Debug for Pulled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pulled")
            .field("reference", &self.reference)
            .field("size", &self.wasm.len())
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

/// A registry client for one set of [`RegistryOptions`].
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    cache: Option<ArtifactCache>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

fn registry_error(reference: &Reference, e: OciDistributionError) -> RegistryError {
    let registry = reference.registry().to_string();
    match e {
        OciDistributionError::UnauthorizedError { url } => RegistryError::Unauthorized {
            registry,
            message: format!("401 Unauthorized for {url}"),
        },
        OciDistributionError::AuthenticationFailure(message) => {
            RegistryError::Unauthorized { registry, message }
        }
        OciDistributionError::ImageManifestNotFoundError(m) => {
            RegistryError::NotFound(format!("{} not found: {m}", reference.whole()))
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) =>
        {
            RegistryError::NotFound(format!(
                "{} not found in the registry ({envelope})",
                reference.whole()
            ))
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            RegistryError::Unauthorized {
                registry,
                message: envelope.to_string(),
            }
        }
        OciDistributionError::DigestError(d) => RegistryError::DigestMismatch(format!(
            "content of {} does not match its digest: {d}",
            reference.whole()
        )),
        OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
            RegistryError::Unreachable {
                registry,
                message: chain(&r),
            }
        }
        other => RegistryError::Registry {
            registry,
            message: chain(&other),
        },
    }
}

impl Registry {
    /// A client with `options`, caching raw artifacts in `cache` when given.
    pub fn new(
        options: &RegistryOptions,
        cache: Option<ArtifactCache>,
    ) -> Result<Self, RegistryError> {
        // reqwest is built without a default crypto provider; the process uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra_root_certificates = Vec::new();
        if let Some(pem) = &options.ca_pem {
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    RegistryError::InvalidCaBundle(format!("the CA bundle is not PEM: {e}"))
                })?;
            if certs.is_empty() {
                return Err(RegistryError::InvalidCaBundle(
                    "the CA bundle holds no PEM certificate".into(),
                ));
            }
            extra_root_certificates.extend(certs.into_iter().map(|c| Certificate {
                encoding: CertificateEncoding::Der,
                data: c.to_vec(),
            }));
        }
        let config = ClientConfig {
            protocol: if options.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| RegistryError::Registry {
            registry: String::new(),
            message: format!("cannot build the registry client: {}", chain(&e)),
        })?;
        Ok(Registry {
            client,
            auth: options.credentials.to_oci(),
            cache,
        })
    }

    /// The manifest digest `reference` points to now (a HEAD/GET on the registry).
    pub async fn resolve(&self, reference: &Reference) -> Result<String, RegistryError> {
        let (_, digest) = self.manifest(reference).await?;
        Ok(digest)
    }

    async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<(OciImageManifest, String), RegistryError> {
        let (bytes, digest) = self.manifest_bytes(reference).await?;
        let manifest = parse_manifest(&bytes, reference)?;
        Ok((manifest, digest))
    }

    async fn manifest_bytes(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(
                reference,
                &self.auth,
                &[MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE],
            )
            .await
            .map_err(|e| registry_error(reference, e))?;
        if bytes.len() as u64 > MAX_SMALL_BLOB_BYTES {
            return Err(RegistryError::NotAWasmArtifact(format!(
                "the manifest of {} is larger than 1 MiB",
                reference.whole()
            )));
        }
        let actual = crate::runtime::digest(&bytes);
        if actual != digest || reference.digest().is_some_and(|d| d != actual) {
            return Err(RegistryError::DigestMismatch(format!(
                "the manifest of {} has digest {actual}, not {}",
                reference.whole(),
                reference.digest().unwrap_or(&digest)
            )));
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Pulls the component `reference` names. With a digest, the manifest must have it (a
    /// tag given as well is only informative); every blob is checked against its digest.
    /// Cached manifests and layers are used when the reference has a digest.
    pub async fn pull(
        &self,
        reference: &Reference,
        progress: Option<Progress<'_>>,
    ) -> Result<Pulled, RegistryError> {
        if let Some(pulled) = self.pull_cached(reference) {
            if let Some(p) = progress {
                let n = pulled.wasm.len() as u64;
                p(n, Some(n));
            }
            return Ok(pulled);
        }
        let (bytes, manifest_digest) = match self.manifest_bytes(reference).await {
            Err(RegistryError::NotFound(m)) if reference.digest().is_some() => {
                return Err(self.explain_missing_digest(reference, m).await);
            }
            other => other?,
        };
        let manifest = parse_manifest(&bytes, reference)?;
        let layer = layout::wasm_layer(&manifest)?.clone();
        let wasm = self.blob(reference, &layer, progress).await?;
        if let Some(cache) = &self.cache {
            cache.put(&wasm)?;
            cache.put(&bytes)?;
        }
        Ok(Pulled {
            reference: pinned(reference, &manifest_digest),
            manifest_digest,
            manifest,
            wasm,
            from_cache: false,
        })
    }

    fn pull_cached(&self, reference: &Reference) -> Option<Pulled> {
        let cache = self.cache.as_ref()?;
        let manifest_digest = reference.digest()?;
        let bytes = cache.get(manifest_digest)?;
        let manifest = parse_manifest(&bytes, reference).ok()?;
        let layer = layout::wasm_layer(&manifest).ok()?;
        let wasm = cache.get(&layer.digest)?;
        Some(Pulled {
            reference: pinned(reference, manifest_digest),
            manifest_digest: manifest_digest.to_string(),
            manifest,
            wasm,
            from_cache: true,
        })
    }

    /// A wrong digest reads as "not found" from the registry; say what the tag points to.
    async fn explain_missing_digest(
        &self,
        reference: &Reference,
        message: String,
    ) -> RegistryError {
        let Some(tag) = reference.tag() else {
            return RegistryError::NotFound(message);
        };
        let by_tag = Reference::with_tag(
            reference.registry().to_string(),
            reference.repository().to_string(),
            tag.to_string(),
        );
        match self.resolve(&by_tag).await {
            Ok(actual) => RegistryError::DigestMismatch(format!(
                "{}:{tag} is {actual}, but the reference pins {} which is not in the repository",
                reference.repository(),
                reference.digest().unwrap_or_default()
            )),
            Err(_) => RegistryError::NotFound(message),
        }
    }

    async fn blob(
        &self,
        reference: &Reference,
        layer: &OciDescriptor,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<u8>, RegistryError> {
        let total = u64::try_from(layer.size).ok();
        if total.is_some_and(|t| t > MAX_COMPONENT_BYTES) {
            return Err(RegistryError::NotAWasmArtifact(format!(
                "the layer is {} bytes, more than the {MAX_COMPONENT_BYTES} allowed",
                layer.size
            )));
        }
        let mut stream = self
            .client
            .pull_blob_stream(reference, layer)
            .await
            .map_err(|e| registry_error(reference, e))?;
        let mut bytes = Vec::with_capacity(total.unwrap_or(0).min(MAX_COMPONENT_BYTES) as usize);
        while let Some(chunk) = stream.stream.next().await {
            let chunk = chunk.map_err(|e| {
                let digest_failed = e
                    .get_ref()
                    .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
                if digest_failed {
                    RegistryError::DigestMismatch(format!(
                        "layer {} of {} does not match its digest: {}",
                        layer.digest,
                        reference.whole(),
                        chain(&e)
                    ))
                } else {
                    registry_error(reference, OciDistributionError::IoError(e))
                }
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_COMPONENT_BYTES.min(total.unwrap_or(u64::MAX)) {
                return Err(RegistryError::DigestMismatch(format!(
                    "layer {} of {} is larger than its descriptor says",
                    layer.digest,
                    reference.whole()
                )));
            }
            if let Some(p) = progress {
                p(bytes.len() as u64, total);
            }
        }
        let actual = digest(&bytes);
        if actual != layer.digest {
            return Err(RegistryError::DigestMismatch(format!(
                "layer of {} has digest {actual}, not {}",
                reference.whole(),
                layer.digest
            )));
        }
        Ok(bytes)
    }

    /// Pushes `wasm` as a Wasm component artifact to `reference` (a tag); returns the
    /// reference pinned to the manifest digest.
    pub async fn push(
        &self,
        reference: &Reference,
        wasm: &[u8],
        progress: Option<Progress<'_>>,
    ) -> Result<String, RegistryError> {
        let created = k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
            .to_string();
        let artifact = layout::artifact(wasm, &created);
        let total = wasm.len() as u64;
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let err = |e| registry_error(reference, e);
        if let Some(p) = progress {
            p(0, Some(total));
        }
        let layer_digest = artifact.manifest.layers[0].digest.clone();
        if !self
            .client
            .blob_exists(reference, &layer_digest)
            .await
            .map_err(err)?
        {
            self.client
                .push_blob(reference, wasm.to_vec(), &layer_digest)
                .await
                .map_err(err)?;
        }
        if let Some(p) = progress {
            p(total, Some(total));
        }
        self.client
            .push_blob(
                reference,
                artifact.config.clone(),
                &artifact.manifest.config.digest,
            )
            .await
            .map_err(err)?;
        let body = serde_json::to_vec(&artifact.manifest).expect("a manifest serializes");
        let manifest_digest = digest(&body);
        self.client
            .push_manifest_raw(
                reference,
                body,
                http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(err)?;
        Ok(pinned(reference, &manifest_digest))
    }

    /// Checks a cosign signature of manifest `manifest_digest` in `reference`'s repository
    /// with `public_key_pem`.
    pub async fn verify_signature(
        &self,
        reference: &Reference,
        manifest_digest: &str,
        public_key_pem: &str,
    ) -> Result<(), RegistryError> {
        let key = signature::public_key(public_key_pem)
            .map_err(|e| RegistryError::SignatureInvalid(e.to_string()))?;
        let sig_ref = Reference::with_tag(
            reference.registry().to_string(),
            reference.repository().to_string(),
            signature::signature_tag(manifest_digest),
        );
        let (manifest, _) = match self.manifest(&sig_ref).await {
            Err(RegistryError::NotFound(_)) => {
                return Err(RegistryError::SignatureMissing(format!(
                    "{} is not signed: no signature {}",
                    pinned(reference, manifest_digest),
                    sig_ref.whole()
                )));
            }
            other => other?,
        };
        let mut last = format!(
            "the signature {} has no {} layer",
            sig_ref.whole(),
            signature::SIMPLE_SIGNING_MEDIA_TYPE
        );
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == signature::SIMPLE_SIGNING_MEDIA_TYPE)
            .take(16)
        {
            let Some(sig) = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(signature::SIGNATURE_ANNOTATION))
            else {
                last = format!(
                    "a signature layer lacks the {} annotation",
                    signature::SIGNATURE_ANNOTATION
                );
                continue;
            };
            if u64::try_from(layer.size).unwrap_or(u64::MAX) > MAX_SMALL_BLOB_BYTES {
                continue;
            }
            let payload = self.blob(&sig_ref, layer, None).await?;
            match signature::verify(&key, &payload, sig, manifest_digest) {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(RegistryError::SignatureInvalid(format!(
            "{} is not signed by spec.signature.publicKey: {last}",
            pinned(reference, manifest_digest)
        )))
    }

    /// Signs manifest `manifest_digest` of `reference`'s repository with `private_key_pem`
    /// and pushes the signature where cosign would (`sha256-<hex>.sig`).
    pub async fn push_signature(
        &self,
        reference: &Reference,
        manifest_digest: &str,
        private_key_pem: &str,
    ) -> Result<String, RegistryError> {
        let key = signature::private_key(private_key_pem)
            .map_err(|e| RegistryError::SignatureInvalid(e.to_string()))?;
        let repository = format!("{}/{}", reference.registry(), reference.repository());
        let payload = signature::payload(&repository, manifest_digest);
        let sig = signature::sign(&key, &payload);
        let sig_ref = Reference::with_tag(
            reference.registry().to_string(),
            reference.repository().to_string(),
            signature::signature_tag(manifest_digest),
        );
        let payload_digest = digest(&payload);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "", "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
            "rootfs": {"type": "layers", "diff_ids": [payload_digest]}, "config": {}
        }))
        .expect("JSON serializes");
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.into()),
            config: OciDescriptor {
                media_type: "application/vnd.oci.image.config.v1+json".into(),
                digest: digest(&config),
                size: config.len() as i64,
                ..OciDescriptor::default()
            },
            layers: vec![OciDescriptor {
                media_type: signature::SIMPLE_SIGNING_MEDIA_TYPE.into(),
                digest: payload_digest.clone(),
                size: payload.len() as i64,
                annotations: Some(BTreeMap::from([(
                    signature::SIGNATURE_ANNOTATION.to_string(),
                    sig,
                )])),
                ..OciDescriptor::default()
            }],
            subject: None,
            artifact_type: None,
            annotations: None,
        };
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let err = |e| registry_error(&sig_ref, e);
        self.client
            .push_blob(&sig_ref, payload, &payload_digest)
            .await
            .map_err(err)?;
        let config_digest = manifest.config.digest.clone();
        self.client
            .push_blob(&sig_ref, config, &config_digest)
            .await
            .map_err(err)?;
        self.client
            .push_manifest(&sig_ref, &OciManifest::Image(manifest))
            .await
            .map_err(err)?;
        Ok(sig_ref.whole())
    }
}

fn parse_manifest(bytes: &[u8], reference: &Reference) -> Result<OciImageManifest, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::NotAWasmArtifact(format!(
            "the manifest of {} is not an OCI image manifest: {e}",
            reference.whole()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_pin_to_a_digest_keeping_the_tag() {
        let r = parse_reference("127.0.0.1:5000/providers/fake:1.0").expect("parse");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(
            pinned(&r, DIGEST),
            format!("127.0.0.1:5000/providers/fake:1.0@{DIGEST}")
        );
        let d = parse_reference(&format!("registry.corp/x@{DIGEST}")).expect("parse");
        assert_eq!(d.digest(), Some(DIGEST));
        assert_eq!(pinned(&d, DIGEST), format!("registry.corp/x@{DIGEST}"));
        let e = parse_reference("fake").expect_err("no registry");
        assert_eq!(e.reason(), "InvalidReference");
        assert!(parse_reference("Registry/X::").is_err());
    }
}
