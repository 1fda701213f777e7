//! Cosign-compatible key-pair signatures ("simple signing"), verified with a public key from
//! the Provider spec.
//!
//! Cosign stores the signature of the manifest `sha256:<hex>` of `registry/repo` as an OCI
//! image tagged `sha256-<hex>.sig` in the same repository. Each of its layers is a
//! `application/vnd.dev.cosign.simplesigning.v1+json` payload naming the signed manifest
//! digest, with the base64 ASN.1 ECDSA signature of that payload in the
//! `dev.cosignproject.cosign/signature` annotation. Only ECDSA P-256 with SHA-256 keys (what
//! `cosign generate-key-pair` makes) are supported; keyless (Fulcio/Rekor) signing is not.
//! See `docs/design/004-oci-distribution.md` for why this is not the `sigstore` crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use serde_json::json;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation of a payload layer holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of a cosign payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The key in the Provider spec (or the CLI's key file) cannot be used.
    #[error("{0}")]
    InvalidKey(String),
    /// The signature does not verify with the key, or signs another manifest.
    #[error("{0}")]
    Invalid(String),
}

/// The tag cosign stores the signature of manifest `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// The simple-signing payload for manifest `digest` of repository `docker_reference`
/// (`registry/repo`), as cosign writes it.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let doc = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&doc).expect("a JSON value always serializes")
}

/// Parses a PEM public key (`-----BEGIN PUBLIC KEY-----`, P-256).
pub fn public_key(pem: &str) -> Result<VerifyingKey, SignatureError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        SignatureError::InvalidKey(format!(
            "spec.signature.publicKey is not a PEM ECDSA P-256 public key: {e}"
        ))
    })
}

/// Parses an unencrypted PEM private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
pub fn private_key(pem: &str) -> Result<SigningKey, SignatureError> {
    SigningKey::from_pkcs8_pem(pem.trim())
        .or_else(|_| p256::SecretKey::from_sec1_pem(pem.trim()).map(|k| SigningKey::from(&k)))
        .map_err(|_| {
            SignatureError::InvalidKey(
                "the private key is not an unencrypted PEM ECDSA P-256 key (PKCS#8 or SEC1)".into(),
            )
        })
}

/// The PEM public key of `key`.
pub fn public_key_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("a P-256 public key always encodes")
}

/// The base64 ASN.1 DER signature of `payload`.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let signature: Signature = key.sign(payload);
    STANDARD.encode(signature.to_der().as_bytes())
}

/// Checks that `signature_b64` signs `payload` with `key` and that the payload names
/// manifest `digest`.
pub fn verify(
    key: &VerifyingKey,
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
) -> Result<(), SignatureError> {
    let raw = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| SignatureError::Invalid("the signature annotation is not base64".into()))?;
    let signature = Signature::from_der(&raw)
        .or_else(|_| Signature::from_slice(&raw))
        .map_err(|_| SignatureError::Invalid("the signature is not an ECDSA signature".into()))?;
    key.verify(payload, &signature).map_err(|_| {
        SignatureError::Invalid(
            "the signature does not verify with spec.signature.publicKey".into(),
        )
    })?;
    let doc: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|_| SignatureError::Invalid("the signed payload is not JSON".into()))?;
    let signed = doc
        .pointer("/critical/image/docker-manifest-digest")
        .and_then(|d| d.as_str());
    if doc.pointer("/critical/type").and_then(|t| t.as_str()) != Some(PAYLOAD_TYPE) {
        return Err(SignatureError::Invalid(
            "the signed payload is not a cosign container image signature".into(),
        ));
    }
    if signed != Some(digest) {
        return Err(SignatureError::Invalid(format!(
            "the signature is for {}, not for {digest}",
            signed.unwrap_or("no digest")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("key")
    }

    #[test]
    fn a_signed_payload_verifies_only_with_its_key_and_digest() {
        let k = key(7);
        let p = payload("registry.corp/providers/fake", DIGEST);
        let sig = sign(&k, &p);
        let public = public_key(&public_key_pem(&k)).expect("public key");
        assert_eq!(verify(&public, &p, &sig, DIGEST), Ok(()));
        let other = public_key(&public_key_pem(&key(8))).expect("public key");
        assert!(
            matches!(verify(&other, &p, &sig, DIGEST), Err(SignatureError::Invalid(m)) if m.contains("does not verify"))
        );
        let wrong = DIGEST.replace("0123", "4567");
        assert!(
            matches!(verify(&public, &p, &sig, &wrong), Err(SignatureError::Invalid(m)) if m.contains("not for"))
        );
        assert!(verify(&public, &p, "!!", DIGEST).is_err());
    }

    #[test]
    fn cosign_names_and_payloads_match_its_format() {
        assert_eq!(
            signature_tag(DIGEST),
            "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"
        );
        let doc: serde_json::Value = serde_json::from_slice(&payload("r/x", DIGEST)).expect("json");
        assert_eq!(doc["critical"]["image"]["docker-manifest-digest"], DIGEST);
        assert_eq!(doc["critical"]["identity"]["docker-reference"], "r/x");
        assert!(matches!(
            public_key("nope"),
            Err(SignatureError::InvalidKey(_))
        ));
        assert!(private_key("nope").is_err());
    }
}
