//! The certificate flow's client assertion: a JWT naming the certificate by its SHA-1
//! thumbprint (`x5t`), signed RS256 with the certificate's RSA key, as Entra ID documents
//! for `client_assertion` (entra/identity-platform/certificate-credentials).

use airlock_provider_sdk::Error;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha1::{Digest, Sha1};

/// How long an assertion is valid, seconds.
pub const LIFETIME_SECS: u64 = 600;

fn block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let text: String = pem[start..stop].split_whitespace().collect();
    STANDARD.decode(text).ok()
}

/// A signed assertion for `client_id` at token endpoint `audience`, from a PEM holding the
/// certificate and its private key (PKCS#8 or PKCS#1), at `now` (Unix seconds).
pub fn assertion(pem: &str, client_id: &str, audience: &str, now: u64) -> Result<String, Error> {
    let field = "authSecretRef.clientCertificate";
    let cert = block(pem, "CERTIFICATE")
        .ok_or_else(|| Error::invalid_config(format!("{field} holds no PEM CERTIFICATE block")))?;
    let key = if let Some(der) = block(pem, "PRIVATE KEY") {
        RsaPrivateKey::from_pkcs8_der(&der).ok()
    } else {
        block(pem, "RSA PRIVATE KEY").and_then(|der| RsaPrivateKey::from_pkcs1_der(&der).ok())
    }
    .ok_or_else(|| {
        Error::invalid_config(format!(
            "{field} holds no RSA PRIVATE KEY (PKCS#8 or PKCS#1) block"
        ))
    })?;
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": URL_SAFE_NO_PAD.encode(Sha1::digest(&cert)),
    });
    let payload = serde_json::json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": jti(client_id, now),
        "nbf": now,
        "iat": now,
        "exp": now + LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = SigningKey::<sha2::Sha256>::new(key).sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

/// A token ID unique per client and second (Entra ID rejects a replayed `jti`).
fn jti(client_id: &str, now: u64) -> String {
    let digest = Sha1::digest(format!("{client_id}:{now}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = include_str!("../../../tests/data/azurekv/client.pem");

    #[test]
    fn the_assertion_names_the_certificate_and_the_endpoint() {
        let jwt = assertion(CLIENT, "app", "https://login/t/oauth2/v2.0/token", 1000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(
            header["x5t"].as_str().unwrap().len(),
            27,
            "a SHA-1 in base64url"
        );
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["aud"], "https://login/t/oauth2/v2.0/token");
        assert_eq!(payload["exp"], 1600);
        assert!(matches!(
            assertion("nothing", "app", "x", 0),
            Err(Error::InvalidConfig(m)) if m.contains("CERTIFICATE")
        ));
    }
}
