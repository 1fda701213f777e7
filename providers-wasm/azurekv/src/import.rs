//! What ESO v2.9 pushes to `cert/` and `key/` objects: the certificate a pushed value holds
//! (PKCS#12 without a password, DER or PEM, read in that order) and the JSON Web Key of a
//! pushed private key (PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`; anything
//! that is not PEM is a symmetric `oct` key). Errors never quote key material.

use airlock_provider_sdk::Error;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde_json::{Value as Json, json};

/// PEM blocks of `text` as (label, DER), in order; unreadable blocks are skipped.
fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].to_string();
        let end_marker = format!("-----END {label}-----");
        let body = &after[label_end + 5..];
        let Some(stop) = body.find(&end_marker) else {
            break;
        };
        let b64: String = body[..stop].split_whitespace().collect();
        if let Ok(der) = STANDARD.decode(b64) {
            out.push((label, der));
        }
        rest = &body[stop + end_marker.len()..];
    }
    out
}

/// One DER element: (tag, contents, the bytes after it).
fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Whether `der` has the shape of an X.509 certificate: a SEQUENCE of the to-be-signed
/// SEQUENCE, the algorithm SEQUENCE and the signature BIT STRING, nothing after it.
fn is_certificate(der: &[u8]) -> bool {
    let Some((0x30, inner, [])) = tlv(der) else {
        return false;
    };
    let Some((0x30, _, rest)) = tlv(inner) else {
        return false;
    };
    let Some((0x30, _, rest)) = tlv(rest) else {
        return false;
    };
    matches!(tlv(rest), Some((0x03, _, [])))
}

/// ESO's `getCertificateFromValue`: the leaf certificate's DER.
pub fn certificate_der(value: &[u8]) -> Result<Vec<u8>, Error> {
    if let Ok(archive) = p12_keystore::Pkcs12Archive::from_pkcs12(value, "") {
        let mut certs: Vec<&p12_keystore::CertificateBag> = archive.certs.iter().collect();
        certs.sort_by_key(|c| c.local_key_id.is_none());
        if let Some(c) = certs.first() {
            return Ok(c.cert.as_der().to_vec());
        }
    }
    if is_certificate(value) {
        return Ok(value.to_vec());
    }
    if let Ok(text) = std::str::from_utf8(value) {
        for (_, der) in pem_blocks(text) {
            if is_certificate(&der) {
                return Ok(der);
            }
        }
    }
    Err(Error::invalid_request(
        "value from secret is not a valid certificate: could not parse certificate value as PKCS#12, DER or PEM",
    ))
}

fn b64u(bytes: &[u8]) -> Json {
    Json::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn rsa_jwk(key: &RsaPrivateKey) -> Json {
    let mut key = key.clone();
    // The CRT values; precompute only fails for keys that did not parse.
    let _ = key.precompute();
    let primes = key.primes();
    let mut jwk = json!({"kty": "RSA", "n": b64u(&key.n().to_bytes_be()),
                         "e": b64u(&key.e().to_bytes_be()), "d": b64u(&key.d().to_bytes_be())});
    if let [p, q] = primes {
        jwk["p"] = b64u(&p.to_bytes_be());
        jwk["q"] = b64u(&q.to_bytes_be());
    }
    if let (Some(dp), Some(dq), Some(qi)) = (key.dp(), key.dq(), key.crt_coefficient()) {
        jwk["dp"] = b64u(&dp.to_bytes_be());
        jwk["dq"] = b64u(&dq.to_bytes_be());
        jwk["qi"] = b64u(&qi.to_bytes_be());
    }
    jwk
}

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A named curve's JWK `crv` and coordinate size.
fn curve(oid: &[u8]) -> Option<(&'static str, usize)> {
    match oid {
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => Some(("P-256", 32)),
        [0x2b, 0x81, 0x04, 0x00, 0x22] => Some(("P-384", 48)),
        [0x2b, 0x81, 0x04, 0x00, 0x23] => Some(("P-521", 66)),
        [0x2b, 0x81, 0x04, 0x00, 0x0a] => Some(("P-256K", 32)),
        _ => None,
    }
}

fn unreadable(what: &str) -> Error {
    Error::invalid_request(format!("could not load private key: {what}"))
}

/// A SEC1 `ECPrivateKey` (RFC 5915) as a JWK; `curve_oid` from PKCS#8 when it has none.
fn ec_jwk(der: &[u8], curve_oid: Option<&[u8]>) -> Result<Json, Error> {
    let bad = || unreadable("the EC private key cannot be read");
    let (0x30, inner, _) = tlv(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x02, _, rest) = tlv(inner).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x04, d, mut rest) = tlv(rest).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (mut oid, mut point) = (curve_oid, None);
    while let Some((tag, content, next)) = tlv(rest) {
        match tag {
            0xa0 => {
                if let Some((0x06, o, _)) = tlv(content) {
                    oid = Some(o);
                }
            }
            0xa1 => {
                if let Some((0x03, bits, _)) = tlv(content) {
                    point = bits.get(1..);
                }
            }
            _ => {}
        }
        rest = next;
    }
    let (crv, size) = oid
        .and_then(curve)
        .ok_or_else(|| unreadable("the EC key's curve is not P-256, P-384, P-521 or secp256k1"))?;
    let point = point
        .filter(|p| p.len() == 1 + 2 * size && p[0] == 4)
        .ok_or_else(|| unreadable("the EC private key does not carry its public point"))?;
    if d.len() > size {
        return Err(bad());
    }
    let mut padded = vec![0u8; size - d.len()];
    padded.extend_from_slice(d);
    Ok(json!({"kty": "EC", "crv": crv, "x": b64u(&point[1..=size]),
              "y": b64u(&point[1 + size..]), "d": b64u(&padded)}))
}

/// A PKCS#8 `PrivateKeyInfo` (RSA or EC) as a JWK.
fn pkcs8_jwk(der: &[u8]) -> Result<Json, Error> {
    let bad = || unreadable("the PKCS#8 private key cannot be read");
    let (0x30, inner, _) = tlv(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x02, _, rest) = tlv(inner).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x30, algorithm, rest) = tlv(rest).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x06, oid, params) = tlv(algorithm).ok_or_else(bad)? else {
        return Err(bad());
    };
    if oid == RSA_ENCRYPTION {
        let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|_| bad())?;
        return Ok(rsa_jwk(&key));
    }
    if oid == EC_PUBLIC_KEY {
        let curve_oid = match tlv(params) {
            Some((0x06, o, _)) => Some(o),
            _ => None,
        };
        let (0x04, sec1, _) = tlv(rest).ok_or_else(bad)? else {
            return Err(bad());
        };
        return ec_jwk(sec1, curve_oid);
    }
    Err(unreadable(
        "only RSA and EC keys can be imported into Key Vault",
    ))
}

/// ESO's `getKeyFromValue` then `jwk.FromRaw`: the private JSON Web Key to import.
pub fn jwk(value: &[u8]) -> Result<Json, Error> {
    let first = std::str::from_utf8(value)
        .ok()
        .and_then(|t| pem_blocks(t).into_iter().next());
    let Some((label, der)) = first else {
        // Not PEM: ESO takes the bytes as a symmetric key.
        return Ok(json!({"kty": "oct", "k": b64u(value)}));
    };
    match label.as_str() {
        "PRIVATE KEY" => pkcs8_jwk(&der),
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(&der)
            .map(|k| rsa_jwk(&k))
            .map_err(|_| unreadable("the RSA private key cannot be read")),
        "EC PRIVATE KEY" => ec_jwk(&der, None),
        other => Err(unreadable(&format!("key type {other} is not supported"))),
    }
}

/// ESO's `equalKeys`: the same type and RSA modulus and exponent. (ESO's check for other
/// keys also wants the HSM token `T`, which is never set, so EC and symmetric keys are
/// always imported again.)
pub fn same_key(new: &Json, old: &Json) -> bool {
    new["kty"] == old["kty"]
        && new["n"].is_string()
        && new["n"] == old["n"]
        && new["e"].is_string()
        && new["e"] == old["e"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_der_shape_check_tells_certificates_from_other_sequences() {
        // SEQUENCE { SEQUENCE {}, SEQUENCE {}, BIT STRING 00 }
        assert!(is_certificate(&[
            0x30, 0x07, 0x30, 0x00, 0x30, 0x00, 0x03, 0x01, 0x00
        ]));
        // SEQUENCE { INTEGER 3, ... } (a PKCS#12 PFX) is not.
        assert!(!is_certificate(&[0x30, 0x03, 0x02, 0x01, 0x03]));
        assert!(certificate_der(b"not a certificate").is_err());
    }

    #[test]
    fn bytes_that_are_not_pem_are_a_symmetric_key() {
        assert_eq!(jwk(b"abc").unwrap(), json!({"kty": "oct", "k": "YWJj"}));
        let err = jwk(b"-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("DSA PRIVATE KEY is not supported"),
            "{err}"
        );
    }
}
