//! ESO's own template functions: PKCS#12, PEM filtering, certificate chains and SANs, JWK to
//! PEM and RSA decryption. Inputs are raw bytes (PKCS#12 and ciphertexts are binary; decode
//! base64 first with `b64dec`). Errors never contain key material.

use base64::Engine as _;
use p12_keystore::{
    Certificate, KeyStore, KeyStoreEntry, Pkcs12Archive, PrivateKey, PrivateKeyChain,
};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use sha1::Digest as _;

use super::eval::Value;

type R = Result<Value, String>;

/// Dispatches the ESO functions; anything else is not defined.
pub fn call(name: &str, a: &[Value]) -> R {
    let b = |i: usize| a.get(i).map(Value::to_bytes).unwrap_or_default();
    let s = |i: usize| a.get(i).map(Value::to_text).unwrap_or_default();
    let want = |n: usize| {
        if a.len() == n {
            Ok(())
        } else {
            Err(format!("wrong number of args: want {n}, got {}", a.len()))
        }
    };
    match name {
        "pkcs12key" => {
            want(1)?;
            pkcs12_key(&b(0), "")
        }
        "pkcs12keyPass" => {
            want(2)?;
            pkcs12_key(&b(1), &s(0))
        }
        "pkcs12cert" => {
            want(1)?;
            pkcs12_cert(&b(0), "")
        }
        "pkcs12certPass" => {
            want(2)?;
            pkcs12_cert(&b(1), &s(0))
        }
        "pemToPkcs12" | "fullPemToPkcs12" => {
            want(2)?;
            pem_to_pkcs12(&b(0), &b(1), "", name == "fullPemToPkcs12")
        }
        "pemToPkcs12Pass" | "fullPemToPkcs12Pass" => {
            want(3)?;
            pem_to_pkcs12(&b(0), &b(1), &s(2), name == "fullPemToPkcs12Pass")
        }
        "pemTruststoreToPKCS12" => {
            want(1)?;
            truststore(&b(0), "")
        }
        "pemTruststoreToPKCS12Pass" => {
            want(2)?;
            truststore(&b(0), &s(1))
        }
        "filterPEM" => {
            want(2)?;
            let kind = s(0);
            let blocks = parse_pem(&b(1))?;
            Ok(Value::str(encode_pem(
                blocks.iter().filter(|p| p.tag() == kind),
            )))
        }
        "filterCertChain" => {
            want(2)?;
            filter_chain(&s(0), &b(1))
        }
        "certSANs" => {
            want(1)?;
            cert_sans(&b(0))
        }
        "jwkPublicKeyPem" => {
            want(1)?;
            jwk_pem(&b(0), false)
        }
        "jwkPrivateKeyPem" => {
            want(1)?;
            jwk_pem(&b(0), true)
        }
        "rsaDecrypt" => {
            want(4)?;
            rsa_decrypt(&s(0), &s(1), &b(2), &b(3))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

fn parse_pem(input: &[u8]) -> Result<Vec<pem::Pem>, String> {
    pem::parse_many(input).map_err(|e| format!("invalid PEM: {e}"))
}

fn encode_pem<'a>(blocks: impl Iterator<Item = &'a pem::Pem>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    blocks.map(|p| pem::encode_config(p, config)).collect()
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    encode_pem(std::iter::once(&pem::Pem::new(tag, der.to_vec())))
}

fn archive(input: &[u8], password: &str) -> Result<Pkcs12Archive, String> {
    Pkcs12Archive::from_pkcs12(input, password)
        .map_err(|_| "cannot read the PKCS#12 archive (wrong password or not PKCS#12)".into())
}

fn pkcs12_key(input: &[u8], password: &str) -> R {
    let archive = archive(input, password)?;
    let key = archive
        .keys
        .first()
        .ok_or("the PKCS#12 archive holds no private key")?;
    Ok(Value::str(pem_block("PRIVATE KEY", key.key.as_der())))
}

fn pkcs12_cert(input: &[u8], password: &str) -> R {
    let archive = archive(input, password)?;
    if archive.certs.is_empty() {
        return Err("the PKCS#12 archive holds no certificate".into());
    }
    // Leaf first: the certificate bound to the key (local key id), then the others.
    let mut certs: Vec<&p12_keystore::CertificateBag> = archive.certs.iter().collect();
    certs.sort_by_key(|c| c.local_key_id.is_none());
    Ok(Value::str(
        certs
            .iter()
            .map(|c| pem_block("CERTIFICATE", c.cert.as_der()))
            .collect::<String>(),
    ))
}

/// A private key block as PKCS#8 DER (PKCS#1 RSA and SEC1 EC keys are converted).
fn pkcs8_key(block: &pem::Pem) -> Result<Vec<u8>, String> {
    let bad = |_| "cannot read the private key".to_string();
    match block.tag() {
        "PRIVATE KEY" => Ok(block.contents().to_vec()),
        "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(block.contents())
            .map_err(|_| "cannot read the RSA private key".to_string())?
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| "cannot encode the private key".into()),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(block.contents())
            .map_err(bad)?
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|_| "cannot encode the private key".into()),
        other => Err(format!("unsupported private key PEM type {other:?}")),
    }
}

fn certificates(input: &[u8]) -> Result<Vec<Certificate>, String> {
    parse_pem(input)?
        .iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| Certificate::from_der(p.contents()).map_err(|_| "invalid certificate".into()))
        .collect()
}

fn pem_to_pkcs12(cert: &[u8], key: &[u8], password: &str, full: bool) -> R {
    let mut certs = certificates(cert)?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the certificate input".into());
    }
    if !full {
        certs.truncate(1);
    }
    let blocks = parse_pem(key)?;
    let block = blocks
        .iter()
        .find(|p| p.tag().ends_with("PRIVATE KEY"))
        .ok_or("no PRIVATE KEY block in the key input")?;
    let key = PrivateKey::from_der(&pkcs8_key(block)?)
        .map_err(|_| "cannot read the private key".to_string())?;
    let id = sha1::Sha1::digest(certs[0].as_der()).to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        "1",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(id, key, certs)),
    );
    write_store(&store, password)
}

fn truststore(input: &[u8], password: &str) -> R {
    let certs = certificates(input)?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the input".into());
    }
    let mut store = KeyStore::new();
    for (i, c) in certs.into_iter().enumerate() {
        store.add_entry(&i.to_string(), KeyStoreEntry::Certificate(c));
    }
    write_store(&store, password)
}

fn write_store(store: &KeyStore, password: &str) -> R {
    let der = store
        .writer(password)
        .write()
        .map_err(|_| "cannot write the PKCS#12 archive".to_string())?;
    Ok(Value::str(
        base64::engine::general_purpose::STANDARD.encode(der),
    ))
}

fn filter_chain(kind: &str, input: &[u8]) -> R {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let blocks: Vec<pem::Pem> = parse_pem(input)?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .collect();
    let mut parsed = Vec::new();
    for p in &blocks {
        let (_, c) = X509Certificate::from_der(p.contents())
            .map_err(|_| "invalid certificate in the chain".to_string())?;
        parsed.push(c);
    }
    let is_root = |c: &X509Certificate| c.subject().as_raw() == c.issuer().as_raw();
    let issues_another = |i: usize| {
        parsed.iter().enumerate().any(|(j, other)| {
            j != i && other.issuer().as_raw() == parsed[i].subject().as_raw() && !is_root(other)
        })
    };
    let keep: Vec<&pem::Pem> = blocks
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let c = &parsed[*i];
            match kind {
                "root" => is_root(c),
                "leaf" => !is_root(c) && !issues_another(*i),
                "intermediate" => !is_root(c) && issues_another(*i),
                _ => false,
            }
        })
        .map(|(_, p)| p)
        .collect();
    if !matches!(kind, "root" | "leaf" | "intermediate") {
        return Err(format!(
            "unknown certificate type {kind:?}: use leaf, intermediate or root"
        ));
    }
    Ok(Value::str(encode_pem(keep.into_iter())))
}

fn cert_sans(input: &[u8]) -> R {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let der = match parse_pem(input) {
        Ok(blocks) if !blocks.is_empty() => blocks
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .ok_or("no CERTIFICATE block in the input")?
            .into_contents(),
        _ => input.to_vec(),
    };
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|_| "invalid certificate".to_string())?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let text = match name {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::RFC822Name(e) => e.to_string(),
                GeneralName::URI(u) => u.to_string(),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        std::net::Ipv6Addr::from(b).to_string()
                    }
                    _ => continue,
                },
                _ => continue,
            };
            out.push(Value::str(text));
        }
    }
    Ok(Value::List(out))
}

fn b64url(jwk: &serde_json::Value, field: &str) -> Result<rsa::BigUint, String> {
    let text = jwk[field]
        .as_str()
        .ok_or_else(|| format!("the JWK has no {field:?}"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("the JWK field {field:?} is not base64url"))?;
    Ok(rsa::BigUint::from_bytes_be(&bytes))
}

fn jwk_pem(input: &[u8], private: bool) -> R {
    let jwk: serde_json::Value =
        serde_json::from_slice(input).map_err(|_| "the JWK is not valid JSON".to_string())?;
    let text = String::from_utf8_lossy(input);
    let pem = match jwk["kty"].as_str() {
        Some("RSA") => {
            let (n, e) = (b64url(&jwk, "n")?, b64url(&jwk, "e")?);
            if private {
                let d = b64url(&jwk, "d")?;
                let primes = match (b64url(&jwk, "p"), b64url(&jwk, "q")) {
                    (Ok(p), Ok(q)) => vec![p, q],
                    _ => Vec::new(),
                };
                rsa::RsaPrivateKey::from_components(n, e, d, primes)
                    .map_err(|_| "invalid RSA JWK".to_string())?
                    .to_pkcs8_pem(LineEnding::LF)
                    .map(|p| p.to_string())
                    .map_err(|_| "cannot encode the key".to_string())?
            } else {
                rsa::RsaPublicKey::new(n, e)
                    .map_err(|_| "invalid RSA JWK".to_string())?
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|_| "cannot encode the key".to_string())?
            }
        }
        Some("EC") if jwk["crv"].as_str() == Some("P-256") => {
            if private {
                p256::SecretKey::from_jwk_str(&text)
                    .map_err(|_| "invalid EC JWK".to_string())?
                    .to_pkcs8_pem(LineEnding::LF)
                    .map(|p| p.to_string())
                    .map_err(|_| "cannot encode the key".to_string())?
            } else {
                p256::PublicKey::from_jwk_str(&text)
                    .map_err(|_| "invalid EC JWK".to_string())?
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|_| "cannot encode the key".to_string())?
            }
        }
        Some(kty) => {
            return Err(format!(
                "unsupported JWK key type {kty:?} (RSA and EC P-256 are supported)"
            ));
        }
        None => return Err("the JWK has no \"kty\"".into()),
    };
    Ok(Value::str(pem))
}

fn rsa_decrypt(scheme: &str, hash: &str, ciphertext: &[u8], key: &[u8]) -> R {
    let blocks = parse_pem(key)?;
    let block = blocks
        .iter()
        .find(|p| p.tag().ends_with("PRIVATE KEY"))
        .ok_or("no PRIVATE KEY block in the key input")?;
    let key = match block.tag() {
        "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(block.contents()).ok(),
        _ => rsa::RsaPrivateKey::from_pkcs8_der(block.contents()).ok(),
    }
    .ok_or("cannot read the RSA private key")?;
    let fail = |_| "decryption failed".to_string();
    let plain = match (scheme, hash) {
        ("None", _) => key
            .decrypt(rsa::Pkcs1v15Encrypt, ciphertext)
            .map_err(fail)?,
        ("RSA-OAEP", "SHA1") => key
            .decrypt(rsa::Oaep::new::<sha1::Sha1>(), ciphertext)
            .map_err(fail)?,
        ("RSA-OAEP", "SHA256") => key
            .decrypt(rsa::Oaep::new::<sha2::Sha256>(), ciphertext)
            .map_err(fail)?,
        ("RSA-OAEP", "SHA512") => key
            .decrypt(rsa::Oaep::new::<sha2::Sha512>(), ciphertext)
            .map_err(fail)?,
        ("RSA-OAEP", other) => {
            return Err(format!(
                "unsupported hash {other:?}: use SHA1, SHA256 or SHA512"
            ));
        }
        (other, _) => {
            return Err(format!(
                "unsupported scheme {other:?}: use None or RSA-OAEP"
            ));
        }
    };
    Ok(Value::Str(plain))
}
