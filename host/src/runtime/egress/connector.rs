//! The host's own HTTP client for guests: DNS resolved here, addresses checked against the
//! provider's [`AddressPolicy`], TLS with the store's CA bundle and client certificate,
//! keep-alive connections pooled per store.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrecy::{ExposeSecret, SecretSlice};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::AddressPolicy;
use super::pattern::default_port;
use crate::runtime::RuntimeError;
use crate::runtime::{Grants, HostAlias};

/// Resolves host names to addresses. The host resolves for the guest so that the address
/// it checks is the address it connects to.
pub trait Resolver: Send + Sync + 'static {
    /// All addresses of `host`.
    fn resolve(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// TLS settings of one store's connections.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// PEM CA certificates that replace the public roots for this store (ESO's
    /// `caBundle` / `caProvider`).
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// PEM client certificate chain (ESO's `tls.certSecretRef`).
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM private key of the client certificate.
    pub client_key_pem: Option<SecretSlice<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_bundle", &self.ca_bundle_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .finish()
    }
}

impl TlsSettings {
    /// The rustls configuration: the store's CA bundle or the public roots, plus the
    /// provider's own CA bundle (`provider_ca_pem`) when it has one.
    fn client_config(
        &self,
        provider_ca_pem: Option<&[u8]>,
    ) -> Result<rustls::ClientConfig, RuntimeError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| RuntimeError::Tls(format!("{what}: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_bundle_pem {
            Some(pem) => add_pem_roots(&mut roots, pem, "CA bundle")?,
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        if let Some(pem) = provider_ca_pem {
            add_pem_roots(&mut roots, pem, "the Provider's caBundle")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .with_root_certificates(roots);
        match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> =
                    rustls_pemfile::certs(&mut cert.as_slice())
                        .collect::<Result<_, _>>()
                        .map_err(|e| bad("client certificate is not PEM", &e))?;
                let key: PrivateKeyDer<'static> =
                    rustls_pemfile::private_key(&mut key.expose_secret())
                        .map_err(|e| bad("client key is not PEM", &e))?
                        .ok_or_else(|| {
                            RuntimeError::Tls("no private key in client key PEM".into())
                        })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad("client certificate", &e))
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(RuntimeError::Tls(
                "a client certificate needs both the certificate and its key".into(),
            )),
        }
    }
}

/// Adds every certificate of a PEM bundle to `roots`; a bundle without one is an error, so
/// a mistyped bundle is not silently ignored.
fn add_pem_roots(
    roots: &mut rustls::RootCertStore,
    pem: &[u8],
    what: &str,
) -> Result<(), RuntimeError> {
    let bad = |problem: &str, e: &dyn std::fmt::Display| {
        RuntimeError::Tls(format!("{what} {problem}: {e}"))
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| bad("is not PEM", &e))?;
    if certs.is_empty() {
        return Err(RuntimeError::Tls(format!("{what} holds no certificate")));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad("has a certificate that was rejected", &e))?;
    }
    Ok(())
}

/// The host refused to connect: every address of the host is restricted and not granted.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves to {ip}, a private, loopback, link-local or metadata address that is not granted"
)]
pub struct AddressRefused {
    /// The host name of the request.
    pub host: String,
    /// The first refused address.
    pub ip: IpAddr,
}

/// The HTTP client of one store: a pool of keep-alive connections made by [`Connector`].
#[derive(Clone)]
pub struct EgressClient {
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for EgressClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EgressClient")
    }
}

impl EgressClient {
    /// A client for one store of a provider: the store's TLS settings, and the provider's
    /// address policy, CA bundle and host aliases.
    pub fn new(
        policy: AddressPolicy,
        tls: &TlsSettings,
        grants: &Grants,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, RuntimeError> {
        let connector = Connector {
            inner: Arc::new(ConnectorInner {
                policy,
                tls: TlsConnector::from(Arc::new(
                    tls.client_config(grants.ca_bundle_pem.as_deref())?,
                )),
                aliases: grants.host_aliases.clone().into(),
                resolver,
                connect_timeout: grants.limits.connect_timeout,
            }),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .build(connector);
        Ok(EgressClient { client })
    }

    /// Sends one request on a pooled connection.
    pub async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}

/// Makes connections for the pool: resolve, check, connect, TLS.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    policy: AddressPolicy,
    tls: TlsConnector,
    aliases: Arc<[HostAlias]>,
    resolver: Arc<dyn Resolver>,
    connect_timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.connect(&uri).await.map(TokioIo::new) })
    }
}

impl ConnectorInner {
    async fn connect(&self, uri: &Uri) -> io::Result<Stream> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut port = uri
            .port_u16()
            .or_else(|| default_port(scheme))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no port"))?;
        let alias = self.aliases.iter().find(|a| a.matches(&host));
        let addresses = match (alias, host.parse::<IpAddr>()) {
            (Some(alias), _) => {
                port = alias.port.unwrap_or(port);
                vec![alias.ip]
            }
            (None, Ok(ip)) => vec![ip],
            (None, Err(_)) => self.resolver.resolve(host.clone()).await?,
        };
        // Check every address before using any: a name that resolves to one public and
        // one private address must not reach the private one on a retry.
        let allowed: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|ip| self.policy.allows(*ip))
            .collect();
        if allowed.is_empty() {
            let ip = addresses.first().copied().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
            })?;
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                AddressRefused { host, ip },
            ));
        }
        let mut last = None;
        let mut tcp = None;
        for ip in allowed {
            let addr = SocketAddr::new(ip, port);
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {addr} timed out"),
                    ))
                }
            }
        }
        let tcp = tcp.ok_or_else(|| last.expect("at least one address was tried"))?;
        tcp.set_nodelay(true)?;
        if scheme != "https" {
            return Ok(Stream::Plain(tcp));
        }
        let name = ServerName::try_from(host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = self.tls.connect(name, tcp).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// A connection, plain or TLS.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
