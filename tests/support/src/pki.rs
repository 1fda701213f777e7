//! Throw-away PKI for one control plane: a CA, a serving certificate for 127.0.0.1/localhost
//! signed by it, and the service-account token signing key.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM material written to the control plane's directory.
#[derive(Debug)]
pub struct Pki {
    /// CA certificate (PEM); trust anchor for the apiserver's serving certificate.
    pub ca_cert_pem: String,
    /// CA certificate (DER), for `kube::Config::root_cert`.
    pub ca_cert_der: Vec<u8>,
    /// CA private key (PKCS#8 PEM), kept so later tests can issue client certificates.
    pub ca_key_pem: String,
    /// Serving certificate for `127.0.0.1` and `localhost` (PEM).
    pub serving_cert_pem: String,
    /// Serving key (PKCS#8 PEM).
    pub serving_key_pem: String,
    /// Service-account token signing key (ECDSA P-256, PKCS#8 PEM).
    pub service_account_key_pem: String,
    /// Public half of the service-account key (SPKI PEM), to verify tokens.
    pub service_account_public_key_pem: String,
}

impl Pki {
    /// Generates fresh keys and certificates.
    pub fn generate() -> Result<Pki> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "airlock-testenv-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the CA")?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().context("generating the serving key")?;
        let mut serving = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
        ])?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .context("signing the serving certificate")?;

        let service_account_key =
            KeyPair::generate().context("generating the service-account key")?;

        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            ca_cert_der: ca_cert.der().to_vec(),
            ca_key_pem,
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_key_pem: service_account_key.public_key_pem(),
        })
    }
}
