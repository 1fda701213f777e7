//! The Provider-level egress settings: `caBundle` (CA certificates trusted on top of the
//! public roots) and `hostAliases` (fixed addresses for host names), driven through the
//! hostile guest's plain HTTP client against an HTTPS server on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use airlock::backend::{BackendError, ProviderError, StoreContext};
use airlock::runtime::{Grants, HostAlias, Limits, Runtime};
use common::{get, install, store};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The name the stand-in server's certificate carries and the guest asks for.
const HOST: &str = "vault.example.test";

/// An HTTPS server on 127.0.0.1 whose certificate names [`HOST`], signed by its own CA.
struct StandIn {
    addr: SocketAddr,
    ca_pem: String,
    requests: Arc<AtomicUsize>,
}

async fn stand_in() -> StandIn {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![HOST.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                // A handshake the client aborts (an untrusted certificate) just ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nstand-in",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    StandIn {
        addr,
        ca_pem: ca_cert.pem(),
        requests,
    }
}

/// Grants for `https://vault.example.test` with loopback allowed, plus `edit`.
fn grants(edit: impl FnOnce(&mut Grants)) -> Grants {
    let mut g = Grants::parse(
        &[format!("https://{HOST}")],
        &["127.0.0.1/32".to_string()],
        Limits::default(),
    )
    .unwrap();
    edit(&mut g);
    g
}

fn alias_to(addr: SocketAddr) -> HostAlias {
    HostAlias::parse(&[HOST.to_string()], &addr.to_string()).unwrap()
}

async fn hostile(rt: &Runtime, g: Grants) -> StoreContext {
    install(rt, "hostile", airlock_test_artifacts::HOSTILE, g).await;
    store("hostile", "egress", json!({}))
}

fn unavailable(e: BackendError) -> String {
    match e {
        BackendError::Provider(ProviderError::Unavailable(m)) => m,
        other => panic!("expected an unavailable error, got {other:?}"),
    }
}

fn url() -> String {
    format!("http:https://{HOST}/v1/secret")
}

#[tokio::test]
async fn a_host_alias_reaches_the_stand_in_under_the_vendor_name_trusting_the_providers_ca() {
    let server = stand_in().await;
    let rt = common::runtime();
    let s = hostile(
        &rt,
        grants(|g| {
            g.host_aliases = vec![alias_to(server.addr)];
            g.ca_bundle_pem = Some(server.ca_pem.clone().into_bytes());
        }),
    )
    .await;
    let body = get(&rt, &s, &url()).await.unwrap();
    assert_eq!(body.as_deref(), Some("200 stand-in"));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_the_providers_ca_the_stand_ins_certificate_is_refused() {
    let server = stand_in().await;
    let rt = common::runtime();
    let s = hostile(
        &rt,
        grants(|g| g.host_aliases = vec![alias_to(server.addr)]),
    )
    .await;
    let message = unavailable(get(&rt, &s, &url()).await.unwrap_err());
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_alias_to_a_private_address_still_needs_allowed_cidrs() {
    let server = stand_in().await;
    let rt = common::runtime();
    let s = hostile(
        &rt,
        grants(|g| {
            g.allowed_cidrs.clear();
            g.host_aliases = vec![alias_to(server.addr)];
            g.ca_bundle_pem = Some(server.ca_pem.clone().into_bytes());
        }),
    )
    .await;
    let message = unavailable(get(&rt, &s, &url()).await.unwrap_err());
    assert!(
        message.contains("private, loopback, link-local or metadata"),
        "{message}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_alias_does_not_widen_the_outbound_host_grant() {
    let server = stand_in().await;
    let rt = common::runtime();
    let s = hostile(
        &rt,
        grants(|g| {
            g.allowed_outbound_hosts = Grants::parse(
                &["https://other.example.test".to_string()],
                &[],
                Limits::default(),
            )
            .unwrap()
            .allowed_outbound_hosts;
            g.host_aliases = vec![alias_to(server.addr)];
            g.ca_bundle_pem = Some(server.ca_pem.clone().into_bytes());
        }),
    )
    .await;
    let message = unavailable(get(&rt, &s, &url()).await.unwrap_err());
    assert!(message.contains("not granted"), "{message}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn changing_a_providers_aliases_rebuilds_its_stores_connections() {
    let first = stand_in().await;
    let second = stand_in().await;
    let rt = common::runtime();
    let both_cas = format!("{}{}", first.ca_pem, second.ca_pem).into_bytes();
    let s = hostile(
        &rt,
        grants(|g| {
            g.host_aliases = vec![alias_to(first.addr)];
            g.ca_bundle_pem = Some(both_cas.clone());
        }),
    )
    .await;
    get(&rt, &s, &url()).await.unwrap();
    // Same module, new grants: the store's pool must not keep dialling the old address.
    hostile(
        &rt,
        grants(|g| {
            g.host_aliases = vec![alias_to(second.addr)];
            g.ca_bundle_pem = Some(both_cas);
        }),
    )
    .await;
    get(&rt, &s, &url()).await.unwrap();
    assert_eq!(first.requests.load(Ordering::SeqCst), 1);
    assert_eq!(second.requests.load(Ordering::SeqCst), 1);
}
