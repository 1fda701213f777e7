//! An in-memory Azure Key Vault with its Microsoft Entra ID token endpoint and the Azure
//! Instance Metadata Service (IMDS), recording every request it gets.
//!
//! It follows Microsoft's documentation (learn.microsoft.com):
//! - Key Vault REST API **7.4** (`rest/api/keyvault/secrets/...`): `GET /secrets/{name}`
//!   and `/secrets/{name}/{version}` (a `SecretBundle`), `PUT /secrets/{name}` (Set Secret:
//!   a new version), `DELETE /secrets/{name}` (a `DeletedSecretBundle`; the secret stays
//!   soft-deleted under `/deletedsecrets/{name}` until purged with `DELETE` there),
//!   `GET /secrets` and `/secrets/{name}/versions` (`maxresults` at most 25, the next page
//!   as an absolute `nextLink` carrying `$skiptoken`), `GET /certificates/{name}[/{version}]`
//!   (`cer` is the base64 DER) and `GET /keys/{name}[/{version}]` (a JSON Web Key);
//!   `POST /certificates/{name}/import` (`value`: a base64 PKCS#12 with its `pwd`, or PEM
//!   holding the certificate and its PKCS#8 private key, as `policy.secret_props.contentType`
//!   says or, without a policy, as the bytes look; a `CertificateBundle`), `PUT
//!   /keys/{name}` (Import Key: a private JSON Web Key `RSA`/`EC`; the answer and later reads
//!   carry only its public part), `DELETE /certificates/{name}` and `DELETE /keys/{name}`
//!   (soft delete, read back under `/deletedcertificates/{name}` and `/deletedkeys/{name}`);
//! - `keyvault/general/authentication-requests-and-responses`: a request without a valid
//!   bearer token answers `401` with `WWW-Authenticate: Bearer
//!   authorization="https://login.microsoftonline.com/{tenant}",
//!   resource="https://vault.azure.net"`; a valid token without access answers `403`
//!   `Forbidden`; errors are `{"error":{"code":…,"message":…}}` (`SecretNotFound`,
//!   `CertificateNotFound`, `KeyNotFound`, `BadParameter`, `Conflict`);
//! - `entra/identity-platform/v2-oauth2-client-creds-grant-flow`: `POST
//!   /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, `client_id`,
//!   `scope=https://vault.azure.net/.default` and either `client_secret` or
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with a
//!   `client_assertion` (a certificate-signed JWT, or a federated token for workload
//!   identity); failures are the `AADSTS…` error bodies (`error`, `error_description`,
//!   `error_codes`, `trace_id`, …); `GET /{tenant}/v2.0/.well-known/openid-configuration` for
//!   MSAL's tenant discovery;
//! - `entra/identity/managed-identities-azure-resources/how-to-use-vm-token`: `GET
//!   /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…` with `Metadata:
//!   true`, optionally `client_id`, `object_id` or `msi_res_id`, served over plain HTTP on a
//!   second port as IMDS is.
//!
//! Key Vault and Entra ID share one HTTPS port whose certificate (signed by the fake's own
//! CA, [`FakeAzure::ca_pem`]) names `127.0.0.1`, `localhost`, `*.vault.azure.net` and
//! `login.microsoftonline.com`. HTTP/1.1 with keep-alive; no chunked request bodies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The Key Vault resource of the public cloud, the audience of every token the fake issues.
pub const RESOURCE: &str = "https://vault.azure.net";
/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Key Vault's page-size bound for listings.
pub const MAX_RESULTS: usize = 25;
/// Lifetime of issued tokens, seconds.
pub const TOKEN_LIFETIME: u64 = 3599;

/// What a principal may do in the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every secret, certificate and key operation.
    Full,
    /// Nothing: its tokens are valid, the vault answers 403.
    None,
}

/// How a client application proves itself to Entra ID.
#[derive(Debug, Clone)]
enum ClientAuth {
    Secret(String),
    /// A certificate: SHA-1 thumbprint of its DER and its RSA public key (PKCS#1 DER).
    Certificate {
        thumbprint: Vec<u8>,
        public_key: Vec<u8>,
    },
    /// A federated identity credential: the exact assertion accepted.
    Federated(String),
}

#[derive(Debug, Clone)]
struct Client {
    id: String,
    auth: Vec<ClientAuth>,
    access: Access,
}

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    tags: BTreeMap<String, String>,
    content_type: Option<String>,
    enabled: bool,
    created: u64,
    /// The `exp` attribute (seconds since the epoch), when set.
    expires: Option<u64>,
}

#[derive(Debug, Clone)]
struct Certificate {
    version: String,
    der: Vec<u8>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Key {
    version: String,
    jwk: Value,
    tags: BTreeMap<String, String>,
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// The `Host` header.
    pub host: String,
    /// Whether it was a Key Vault request with a token the fake issued.
    pub authenticated: bool,
    /// For token requests, the decoded form fields except secrets and assertions, whose
    /// presence is kept as `"<set>"`.
    pub form: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    tenant: String,
    clients: Vec<Client>,
    /// Managed identities: client ID (`None` = system-assigned), resource ID, access.
    identities: Vec<(Option<String>, Option<String>, Access)>,
    tokens: BTreeMap<String, Access>,
    secrets: BTreeMap<String, Vec<Version>>,
    deleted: BTreeMap<String, Vec<Version>>,
    certificates: BTreeMap<String, Certificate>,
    keys: BTreeMap<String, Key>,
    deleted_certificates: BTreeMap<String, Certificate>,
    deleted_keys: BTreeMap<String, Key>,
    requests: Vec<Recorded>,
    counter: u64,
}

impl State {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn issue(&mut self, access: Access) -> String {
        let token = format!("fake-aad-token-{}", self.next());
        self.tokens.insert(token.clone(), access);
        token
    }
}

/// A running fake Azure. Its server threads end with the process.
#[derive(Debug, Clone)]
pub struct FakeAzure {
    https_port: u16,
    imds_port: u16,
    ca_pem: String,
    state: Arc<Mutex<State>>,
}

impl FakeAzure {
    /// Starts a fake for directory `tenant` on two fresh ports of 127.0.0.1.
    pub fn start(tenant: &str) -> FakeAzure {
        let (ca_pem, tls) = tls_config();
        let state = Arc::new(Mutex::new(State {
            tenant: tenant.into(),
            ..State::default()
        }));
        let https = bind();
        let imds = bind();
        let https_port = https.local_addr().expect("addr").port();
        let imds_port = imds.local_addr().expect("addr").port();
        let shared = state.clone();
        std::thread::Builder::new()
            .name("fake-azure".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake Azure runtime");
                runtime.block_on(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
                    let https = TcpListener::from_std(https).expect("listener");
                    let imds = TcpListener::from_std(imds).expect("listener");
                    let plain_state = shared.clone();
                    tokio::spawn(async move {
                        while let Ok((socket, _)) = imds.accept().await {
                            tokio::spawn(serve(socket, plain_state.clone(), false));
                        }
                    });
                    while let Ok((socket, _)) = https.accept().await {
                        let acceptor = acceptor.clone();
                        let state = shared.clone();
                        tokio::spawn(async move {
                            if let Ok(tls) = acceptor.accept(socket).await {
                                serve(tls, state, true).await;
                            }
                        });
                    }
                });
            })
            .expect("spawning the fake Azure");
        FakeAzure {
            https_port,
            imds_port,
            ca_pem,
            state,
        }
    }

    /// The CA certificate (PEM) that signed the HTTPS port's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The HTTPS port (Key Vault and Entra ID).
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The plain-HTTP port of the IMDS endpoint.
    pub fn imds_port(&self) -> u16 {
        self.imds_port
    }

    /// `https://127.0.0.1:PORT`: the vault, and the Entra ID authority host.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self, id: &str, auth: ClientAuth, access: Access) -> &Self {
        let mut state = self.lock();
        match state.clients.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.auth.push(auth);
                c.access = access;
            }
            None => state.clients.push(Client {
                id: id.into(),
                auth: vec![auth],
                access,
            }),
        }
        self
    }

    /// Registers application `client_id` with a client secret.
    pub fn add_client_secret(&self, client_id: &str, secret: &str, access: Access) -> &Self {
        self.client(client_id, ClientAuth::Secret(secret.into()), access)
    }

    /// Registers application `client_id` with a certificate (DER) whose RSA key's public
    /// half is `public_key` (PKCS#1 `RSAPublicKey` DER).
    pub fn add_client_certificate(
        &self,
        client_id: &str,
        cert_der: &[u8],
        public_key: &[u8],
        access: Access,
    ) -> &Self {
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der)
            .as_ref()
            .to_vec();
        self.client(
            client_id,
            ClientAuth::Certificate {
                thumbprint,
                public_key: public_key.to_vec(),
            },
            access,
        )
    }

    /// Registers application `client_id` with a federated credential accepting exactly
    /// `assertion` (a Kubernetes ServiceAccount token, for workload identity).
    pub fn add_federated_credential(
        &self,
        client_id: &str,
        assertion: &str,
        access: Access,
    ) -> &Self {
        self.client(client_id, ClientAuth::Federated(assertion.into()), access)
    }

    /// Adds a managed identity to the IMDS endpoint: `client_id` `None` is the
    /// system-assigned one, otherwise a user-assigned one, also known by `resource_id`.
    pub fn add_managed_identity(
        &self,
        client_id: Option<&str>,
        resource_id: Option<&str>,
        access: Access,
    ) -> &Self {
        self.lock().identities.push((
            client_id.map(str::to_string),
            resource_id.map(str::to_string),
            access,
        ));
        self
    }

    /// Sets a new version of secret `name` and returns the version's ID.
    pub fn set_secret(&self, name: &str, value: &str, tags: &[(&str, &str)]) -> String {
        let tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        set_version(&mut self.lock(), name, value, tags, None)
    }

    /// Disables the latest version of secret `name`.
    pub fn disable_secret(&self, name: &str) {
        if let Some(v) = self.lock().secrets.get_mut(name).and_then(|v| v.last_mut()) {
            v.enabled = false;
        }
    }

    /// The latest value and tags of secret `name`.
    pub fn secret(&self, name: &str) -> Option<(String, BTreeMap<String, String>)> {
        self.lock()
            .secrets
            .get(name)
            .and_then(|v| v.last())
            .map(|v| (v.value.clone(), v.tags.clone()))
    }

    /// The `exp` attribute of the current version of secret `name`, and its content type.
    pub fn secret_attributes(&self, name: &str) -> Option<(Option<u64>, Option<String>)> {
        self.lock()
            .secrets
            .get(name)
            .and_then(|v| v.last())
            .map(|v| (v.expires, v.content_type.clone()))
    }

    /// Whether secret `name` is soft-deleted.
    pub fn is_deleted(&self, name: &str) -> bool {
        self.lock().deleted.contains_key(name)
    }

    /// Sets certificate `name` (DER).
    pub fn set_certificate(&self, name: &str, der: &[u8]) {
        let mut state = self.lock();
        let version = format!("{:032x}", state.next());
        state.certificates.insert(
            name.into(),
            Certificate {
                version,
                der: der.to_vec(),
                tags: BTreeMap::new(),
            },
        );
    }

    /// Certificate `name`'s DER and tags.
    pub fn certificate(&self, name: &str) -> Option<(Vec<u8>, BTreeMap<String, String>)> {
        let state = self.lock();
        let c = state.certificates.get(name)?;
        Some((c.der.clone(), c.tags.clone()))
    }

    /// Key `name`'s public JSON Web Key and tags.
    pub fn key(&self, name: &str) -> Option<(Value, BTreeMap<String, String>)> {
        let state = self.lock();
        let k = state.keys.get(name)?;
        Some((k.jwk.clone(), k.tags.clone()))
    }

    /// Whether certificate (`"certificates"`) or key (`"keys"`) `name` is soft-deleted.
    pub fn is_deleted_object(&self, collection: &str, name: &str) -> bool {
        let state = self.lock();
        match collection {
            "certificates" => state.deleted_certificates.contains_key(name),
            _ => state.deleted_keys.contains_key(name),
        }
    }

    /// Sets key `name` (its public JSON Web Key, without `kid`).
    pub fn set_key(&self, name: &str, jwk: Value) {
        let mut state = self.lock();
        let version = format!("{:032x}", state.next());
        state.keys.insert(
            name.into(),
            Key {
                version,
                jwk,
                tags: BTreeMap::new(),
            },
        );
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The token requests (Entra ID and IMDS) received so far.
    pub fn token_requests(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/oauth2/v2.0/token") || r.path.starts_with("/metadata/"))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

fn bind() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake Azure");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

/// A CA and a serving certificate for the names the vendor's clients use.
fn tls_config() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "airlock fake Azure CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let names = [
        "127.0.0.1",
        "localhost",
        "*.vault.azure.net",
        "login.microsoftonline.com",
    ];
    let mut leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "fake Azure");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("serving certificate");
    (ca_cert.pem(), config)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn set_version(
    state: &mut State,
    name: &str,
    value: &str,
    tags: BTreeMap<String, String>,
    content_type: Option<String>,
) -> String {
    let id = format!("{:032x}", state.next());
    state
        .secrets
        .entry(name.to_string())
        .or_default()
        .push(Version {
            id: id.clone(),
            value: value.into(),
            tags,
            content_type,
            enabled: true,
            created: now(),
            expires: None,
        });
    id
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, extra headers, JSON body (`Null` for none).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

fn vault_error(status: u16, code: &str, message: &str) -> Answer {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    state: Arc<Mutex<State>>,
    https: bool,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let target = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let request = Request {
            method,
            path: path.to_string(),
            query: parse_form(query),
            headers,
            body,
        };
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let reply = {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            handle(&mut state, &request, https)
        };
        let body = if reply.body.is_null() {
            String::new()
        } else {
            reply.body.to_string()
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            reply.status,
            reason(reply.status),
            body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(if close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        out.push_str(&body);
        if socket.write_all(out.as_bytes()).await.is_err() || close {
            return;
        }
        let _ = socket.flush().await;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Unknown",
    }
}

fn handle(state: &mut State, request: &Request, https: bool) -> Answer {
    let host = request.header("host").unwrap_or_default().to_string();
    let token = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_string);
    let access = token.as_ref().and_then(|t| state.tokens.get(t).copied());
    let form = if request.method == "POST" {
        parse_form(&String::from_utf8_lossy(&request.body))
    } else {
        Vec::new()
    };
    let is_token_request =
        request.path.ends_with("/oauth2/v2.0/token") || request.path.starts_with("/metadata/");
    state.requests.push(Recorded {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        host: host.clone(),
        authenticated: !is_token_request && access.is_some(),
        form: form
            .iter()
            .map(|(k, v)| {
                let hidden = matches!(k.as_str(), "client_secret" | "client_assertion");
                (k.clone(), if hidden { "<set>".into() } else { v.clone() })
            })
            .collect(),
    });
    if !https {
        return if request.path == "/metadata/identity/oauth2/token" {
            imds(state, request)
        } else {
            answer(404, json!({"error": "not_found"}))
        };
    }
    let segments: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            let url = format!("https://{host}/{tenant}/oauth2/v2.0/token");
            token_endpoint(state, tenant, &form, &url)
        }
        ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            let base = format!("https://{host}/{tenant}");
            answer(
                200,
                json!({
                    "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                    "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
                    "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
                    "issuer": format!("https://{host}/{tenant}/v2.0"),
                    "token_endpoint_auth_methods_supported":
                        ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                    "tenant_region_scope": "WW",
                }),
            )
        }
        (_, [collection, ..])
            if matches!(
                *collection,
                "secrets"
                    | "deletedsecrets"
                    | "certificates"
                    | "deletedcertificates"
                    | "keys"
                    | "deletedkeys"
            ) =>
        {
            let Some(access) = access else {
                let mut reply = vault_error(
                    401,
                    "Unauthorized",
                    if token.is_some() {
                        "AKV10032: Invalid issuer."
                    } else {
                        "AKV10000: Request is missing a Bearer or PoP token."
                    },
                );
                reply.headers.push((
                    "WWW-Authenticate".into(),
                    format!(
                        "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{RESOURCE}\"",
                        state.tenant
                    ),
                ));
                return reply;
            };
            if access == Access::None {
                return answer(
                    403,
                    json!({"error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.",
                        "innererror": {"code": "ForbiddenByRbac"}}}),
                );
            }
            vault(state, request, &format!("https://{host}"), &segments)
        }
        _ => vault_error(404, "NotFound", "the route does not exist"),
    }
}

fn aadsts(status: u16, error: &str, code: u32, description: &str) -> Answer {
    answer(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn token_answer(state: &mut State, access: Access) -> Answer {
    let token = state.issue(access);
    answer(
        200,
        json!({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
               "ext_expires_in": TOKEN_LIFETIME, "access_token": token}),
    )
}

fn token_endpoint(
    state: &mut State,
    tenant: &str,
    form: &[(String, String)],
    endpoint: &str,
) -> Answer {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if tenant != state.tenant {
        return aadsts(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return aadsts(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("scope") != Some(&format!("{RESOURCE}/.default")) {
        return aadsts(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    let Some(client) = state.clients.iter().find(|c| c.id == client_id).cloned() else {
        return aadsts(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    if let Some(secret) = field("client_secret") {
        let ok = client
            .auth
            .iter()
            .any(|a| matches!(a, ClientAuth::Secret(s) if s == secret));
        return if ok {
            token_answer(state, client.access)
        } else {
            aadsts(
                401,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            )
        };
    }
    let Some(assertion) = field("client_assertion") else {
        return aadsts(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if field("client_assertion_type") != Some(JWT_BEARER) {
        return aadsts(
            400,
            "invalid_request",
            90014,
            "The required field 'client_assertion_type' is missing from the credential.",
        );
    }
    let accepted = client.auth.iter().any(|a| match a {
        ClientAuth::Federated(expected) => expected == assertion,
        ClientAuth::Certificate {
            thumbprint,
            public_key,
        } => verify_assertion(assertion, client_id, endpoint, thumbprint, public_key),
        ClientAuth::Secret(_) => false,
    });
    if accepted {
        token_answer(state, client.access)
    } else {
        aadsts(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )
    }
}

/// Checks a certificate-signed client assertion: RS256 (or PS256) over `header.payload`
/// with the registered key, the certificate named by `x5t` or `x5t#S256`, `aud` the token
/// endpoint, `iss` = `sub` = the client, and not expired (MSAL writes `exp` as a float).
fn verify_assertion(
    jwt: &str,
    client_id: &str,
    endpoint: &str,
    thumbprint: &[u8],
    public_key: &[u8],
) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return false;
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).ok();
    let (Some(h), Some(p), Some(sig)) = (decode(header), decode(payload), decode(signature)) else {
        return false;
    };
    let (Ok(h), Ok(p)) = (
        serde_json::from_slice::<Value>(&h),
        serde_json::from_slice::<Value>(&p),
    ) else {
        return false;
    };
    let names_certificate = h["x5t"]
        .as_str()
        .and_then(decode_either)
        .is_some_and(|t| t == thumbprint)
        || h["x5t#S256"].is_string();
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match h["alg"].as_str() {
        Some("RS256") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => &ring::signature::RSA_PSS_2048_8192_SHA256,
        _ => return false,
    };
    let signed = format!("{header}.{payload}");
    let key = ring::signature::UnparsedPublicKey::new(algorithm, public_key);
    names_certificate
        && key.verify(signed.as_bytes(), &sig).is_ok()
        && p["aud"].as_str() == Some(endpoint)
        && p["iss"].as_str() == Some(client_id)
        && p["sub"].as_str() == Some(client_id)
        && p["exp"].as_f64().is_some_and(|exp| exp > now() as f64)
}

fn decode_either(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .or_else(|| STANDARD.decode(text).ok())
}

fn imds(state: &mut State, request: &Request) -> Answer {
    let invalid = |description: &str| {
        answer(
            400,
            json!({"error": "invalid_request", "error_description": description}),
        )
    };
    if request.header("metadata") != Some("true") {
        return invalid("Required metadata header not specified");
    }
    if request.param("api-version").is_none() {
        return invalid("Required query variable 'api-version' is missing");
    }
    if request.param("resource") != Some(RESOURCE) {
        return invalid("Resource is not a valid Key Vault resource for this fake");
    }
    let client_id = request.param("client_id");
    let resource_id = request.param("msi_res_id");
    let found = state
        .identities
        .iter()
        .find(|(c, r, _)| match (client_id, resource_id) {
            (Some(id), _) => c.as_deref() == Some(id),
            (None, Some(id)) => r.as_deref() == Some(id),
            (None, None) => c.is_none(),
        });
    let Some((found_client, _, access)) = found.cloned() else {
        return invalid("Identity not found");
    };
    let token = state.issue(access);
    let expires_on = now() + TOKEN_LIFETIME;
    answer(
        200,
        json!({
            "access_token": token,
            "client_id": found_client.unwrap_or_else(|| "system-assigned".into()),
            "expires_in": TOKEN_LIFETIME.to_string(),
            "expires_on": expires_on.to_string(),
            "ext_expires_in": TOKEN_LIFETIME.to_string(),
            "not_before": now().to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
        }),
    )
}

fn attributes(v: &Version) -> Value {
    let mut out = json!({"enabled": v.enabled, "created": v.created, "updated": v.created,
                         "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90});
    if let Some(exp) = v.expires {
        out["exp"] = json!(exp);
    }
    out
}

fn bundle(base: &str, name: &str, v: &Version) -> Value {
    let mut out = json!({
        "value": v.value,
        "id": format!("{base}/secrets/{name}/{}", v.id),
        "attributes": attributes(v),
        "tags": v.tags,
    });
    if let Some(ct) = &v.content_type {
        out["contentType"] = json!(ct);
    }
    out
}

fn not_found(name: &str) -> Answer {
    vault_error(
        404,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A page of `items` from `$skiptoken` on, with the next page's absolute link.
fn page(request: &Request, base: &str, items: Vec<Value>) -> Answer {
    let size = request
        .param("maxresults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&size) {
        return vault_error(
            400,
            "BadParameter",
            "Invalid value for maxresults: must be between 1 and 25.",
        );
    }
    let start = request
        .param("$skiptoken")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| {
        format!(
            "{base}{}?api-version=7.4&$skiptoken={end}&maxresults={size}",
            request.path
        )
    });
    answer(
        200,
        json!({"value": items.get(start..end).unwrap_or_default(), "nextLink": next}),
    )
}

fn vault(state: &mut State, request: &Request, base: &str, segments: &[&str]) -> Answer {
    let base = base.to_string();
    match (request.method.as_str(), segments) {
        ("GET", ["secrets"]) => {
            let items = state
                .secrets
                .iter()
                .filter_map(|(name, versions)| versions.last().map(|v| (name, v)))
                .map(|(name, v)| {
                    json!({"id": format!("{base}/secrets/{name}"), "attributes": attributes(v),
                           "tags": v.tags, "contentType": v.content_type})
                })
                .collect();
            page(request, &base, items)
        }
        ("GET", ["secrets", name, "versions"]) => match state.secrets.get(*name) {
            Some(versions) => {
                let items = versions
                    .iter()
                    .map(|v| {
                        json!({"id": format!("{base}/secrets/{name}/{}", v.id),
                               "attributes": attributes(v), "tags": v.tags,
                               "contentType": v.content_type})
                    })
                    .collect();
                page(request, &base, items)
            }
            None => not_found(name),
        },
        ("GET", ["secrets", name] | ["secrets", name, ""]) => {
            match state.secrets.get(*name).and_then(|v| v.last()) {
                Some(v) if !v.enabled => vault_error(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                ),
                Some(v) => answer(200, bundle(&base, name, v)),
                None => not_found(name),
            }
        }
        ("GET", ["secrets", name, version]) => {
            match state
                .secrets
                .get(*name)
                .and_then(|vs| vs.iter().find(|v| v.id == *version))
            {
                Some(v) => answer(200, bundle(&base, name, v)),
                None => not_found(&format!("{name}/{version}")),
            }
        }
        ("PUT", ["secrets", name]) => {
            if !valid_name(name) {
                return bad_name();
            }
            if state.deleted.contains_key(*name) {
                return deleted_conflict("Secret", name);
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return vault_error(400, "BadParameter", "The request body is not JSON.");
            };
            let Some(value) = body["value"].as_str() else {
                return vault_error(400, "BadParameter", "Property value is required.");
            };
            let tags = body["tags"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let content_type = body["contentType"].as_str().map(str::to_string);
            set_version(state, name, value, tags, content_type);
            let expires = body["attributes"]["exp"].as_u64();
            let versions = state.secrets.get_mut(*name).expect("just set");
            versions.last_mut().expect("just set").expires = expires;
            let v = state.secrets[*name].last().expect("just set");
            answer(200, bundle(&base, name, v))
        }
        ("DELETE", ["secrets", name]) => match state.secrets.remove(*name) {
            Some(versions) => {
                let mut out = bundle(&base, name, versions.last().expect("a version"));
                out["recoveryId"] = json!(format!("{base}/deletedsecrets/{name}"));
                out["deletedDate"] = json!(now());
                out["scheduledPurgeDate"] = json!(now() + 90 * 86400);
                state.deleted.insert(name.to_string(), versions);
                answer(200, out)
            }
            None => not_found(name),
        },
        ("GET", ["deletedsecrets", name]) => {
            match state.deleted.get(*name).and_then(|v| v.last()) {
                Some(v) => {
                    let mut out = bundle(&base, name, v);
                    out["recoveryId"] = json!(format!("{base}/deletedsecrets/{name}"));
                    answer(200, out)
                }
                None => vault_error(
                    404,
                    "SecretNotFound",
                    &format!("Deleted Secret not found: {name}"),
                ),
            }
        }
        ("DELETE", ["deletedsecrets", name]) => match state.deleted.remove(*name) {
            Some(_) => answer(204, Value::Null),
            None => vault_error(
                404,
                "SecretNotFound",
                &format!("Deleted Secret not found: {name}"),
            ),
        },
        ("GET", ["certificates", name] | ["certificates", name, _]) => {
            let version = segments.get(2).copied().filter(|v| !v.is_empty());
            match state
                .certificates
                .get(*name)
                .filter(|c| version.is_none_or(|v| v == c.version))
            {
                Some(c) => answer(200, certificate_bundle(&base, name, c)),
                None => certificate_not_found(name),
            }
        }
        ("POST", ["certificates", name, "import"]) => {
            if !valid_name(name) {
                return bad_name();
            }
            if state.deleted_certificates.contains_key(*name) {
                return deleted_conflict("Certificate", name);
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return vault_error(400, "BadParameter", "The request body is not JSON.");
            };
            let der = match imported_certificate(&body) {
                Ok(der) => der,
                Err(message) => return vault_error(400, "BadParameter", message),
            };
            let version = format!("{:032x}", state.next());
            let c = Certificate {
                version,
                der,
                tags: tags_of(&body),
            };
            let out = certificate_bundle(&base, name, &c);
            state.certificates.insert(name.to_string(), c);
            answer(200, out)
        }
        ("DELETE", ["certificates", name]) => match state.certificates.remove(*name) {
            Some(c) => {
                let mut out = certificate_bundle(&base, name, &c);
                deleted_fields(&mut out, &format!("{base}/deletedcertificates/{name}"));
                state.deleted_certificates.insert(name.to_string(), c);
                answer(200, out)
            }
            None => certificate_not_found(name),
        },
        ("GET", ["deletedcertificates", name]) => match state.deleted_certificates.get(*name) {
            Some(c) => {
                let mut out = certificate_bundle(&base, name, c);
                deleted_fields(&mut out, &format!("{base}/deletedcertificates/{name}"));
                answer(200, out)
            }
            None => vault_error(
                404,
                "CertificateNotFound",
                &format!("Deleted Certificate not found: {name}"),
            ),
        },
        ("GET", ["keys", name] | ["keys", name, _]) => {
            let version = segments.get(2).copied().filter(|v| !v.is_empty());
            match state
                .keys
                .get(*name)
                .filter(|k| version.is_none_or(|v| v == k.version))
            {
                Some(k) => answer(200, key_bundle(&base, name, k)),
                None => key_not_found(name),
            }
        }
        ("PUT", ["keys", name]) => {
            if !valid_name(name) {
                return bad_name();
            }
            if state.deleted_keys.contains_key(*name) {
                return deleted_conflict("Key", name);
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return vault_error(400, "BadParameter", "The request body is not JSON.");
            };
            let jwk = match public_jwk(&body["key"]) {
                Ok(jwk) => jwk,
                Err(message) => return vault_error(400, "BadParameter", message),
            };
            let version = format!("{:032x}", state.next());
            let k = Key {
                version,
                jwk,
                tags: tags_of(&body),
            };
            let out = key_bundle(&base, name, &k);
            state.keys.insert(name.to_string(), k);
            answer(200, out)
        }
        ("DELETE", ["keys", name]) => match state.keys.remove(*name) {
            Some(k) => {
                let mut out = key_bundle(&base, name, &k);
                deleted_fields(&mut out, &format!("{base}/deletedkeys/{name}"));
                state.deleted_keys.insert(name.to_string(), k);
                answer(200, out)
            }
            None => key_not_found(name),
        },
        ("GET", ["deletedkeys", name]) => match state.deleted_keys.get(*name) {
            Some(k) => {
                let mut out = key_bundle(&base, name, k);
                deleted_fields(&mut out, &format!("{base}/deletedkeys/{name}"));
                answer(200, out)
            }
            None => vault_error(
                404,
                "KeyNotFound",
                &format!("Deleted Key not found: {name}"),
            ),
        },
        _ => vault_error(405, "MethodNotAllowed", "the method is not allowed here"),
    }
}

fn bad_name() -> Answer {
    vault_error(
        400,
        "BadParameter",
        "The request URI contains an invalid name: the name must be 1-127 characters of 0-9, a-z, A-Z and -.",
    )
}

fn deleted_conflict(what: &str, name: &str) -> Answer {
    vault_error(
        409,
        "Conflict",
        &format!(
            "{what} {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {} can only be recovered or purged.",
            what.to_lowercase()
        ),
    )
}

fn deleted_fields(out: &mut Value, recovery_id: &str) {
    out["recoveryId"] = json!(recovery_id);
    out["deletedDate"] = json!(now());
    out["scheduledPurgeDate"] = json!(now() + 90 * 86400);
}

fn tags_of(body: &Value) -> BTreeMap<String, String> {
    body["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn certificate_not_found(name: &str) -> Answer {
    vault_error(
        404,
        "CertificateNotFound",
        &format!("A certificate with (name/id) {name} was not found in this key vault."),
    )
}

fn key_not_found(name: &str) -> Answer {
    vault_error(
        404,
        "KeyNotFound",
        &format!("A key with (name/id) {name} was not found in this key vault."),
    )
}

fn certificate_bundle(base: &str, name: &str, c: &Certificate) -> Value {
    let x5t = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &c.der).as_ref());
    json!({"id": format!("{base}/certificates/{name}/{}", c.version),
           "kid": format!("{base}/keys/{name}/{}", c.version),
           "sid": format!("{base}/secrets/{name}/{}", c.version),
           "x5t": x5t, "cer": STANDARD.encode(&c.der),
           "attributes": {"enabled": true, "created": now(), "updated": now(),
                          "recoveryLevel": "Recoverable+Purgeable"},
           "tags": c.tags})
}

fn key_bundle(base: &str, name: &str, k: &Key) -> Value {
    let mut jwk = k.jwk.clone();
    jwk["kid"] = json!(format!("{base}/keys/{name}/{}", k.version));
    json!({"key": jwk,
           "attributes": {"enabled": true, "created": now(), "updated": now(),
                          "recoveryLevel": "Recoverable+Purgeable"},
           "tags": k.tags})
}

const PEM_FORMAT: &str = "The specified PEM X.509 certificate content is in an unexpected format. Please check if certificate is in valid PEM format.";
const PKCS12_FORMAT: &str = "The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format.";

/// The leaf certificate (DER) of an import request's `value`: PEM when the policy says
/// `application/x-pem-file` (or, without one, when the bytes are PEM), else PKCS#12 opened
/// with `pwd`. Either must hold the private key (PEM: a PKCS#8 `PRIVATE KEY`).
fn imported_certificate(body: &Value) -> Result<Vec<u8>, &'static str> {
    let Some(value) = body["value"].as_str() else {
        return Err("Property value is required.");
    };
    let bytes = STANDARD.decode(value.trim()).map_err(|_| PKCS12_FORMAT)?;
    let declared = body["policy"]["secret_props"]["contentType"].as_str();
    let pem = match declared {
        Some("application/x-pem-file") => true,
        Some("application/x-pkcs12") => false,
        Some(_) => return Err("The content type of the certificate policy is not supported."),
        None => bytes.starts_with(b"-----BEGIN"),
    };
    if pem {
        let text = std::str::from_utf8(&bytes).map_err(|_| PEM_FORMAT)?;
        let block = |label: &str| -> Option<Vec<u8>> {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let start = text.find(&begin)? + begin.len();
            let stop = start + text[start..].find(&end)?;
            let b64: String = text[start..stop].split_whitespace().collect();
            STANDARD.decode(b64).ok()
        };
        let cert = block("CERTIFICATE").ok_or(PEM_FORMAT)?;
        block("PRIVATE KEY").ok_or(PEM_FORMAT)?;
        return Ok(cert);
    }
    let password = body["pwd"].as_str().unwrap_or_default();
    let archive =
        p12_keystore::Pkcs12Archive::from_pkcs12(&bytes, password).map_err(|_| PKCS12_FORMAT)?;
    if archive.keys.is_empty() {
        return Err(PKCS12_FORMAT);
    }
    let mut certs: Vec<&p12_keystore::CertificateBag> = archive.certs.iter().collect();
    certs.sort_by_key(|c| c.local_key_id.is_none());
    certs
        .first()
        .map(|c| c.cert.as_der().to_vec())
        .ok_or(PKCS12_FORMAT)
}

/// The public part of an Import Key request's private JSON Web Key (`RSA`: `n`, `e` with
/// `d`; `EC`: `crv`, `x`, `y` with `d`), with the operations Key Vault grants it.
fn public_jwk(key: &Value) -> Result<Value, &'static str> {
    let has = |field: &str| key[field].as_str().is_some_and(|v| !v.is_empty());
    match key["kty"].as_str() {
        Some("RSA" | "RSA-HSM") if has("n") && has("e") && has("d") => Ok(json!({
            "kty": "RSA", "n": key["n"], "e": key["e"],
            "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]})),
        Some("EC" | "EC-HSM")
            if has("x")
                && has("y")
                && has("d")
                && matches!(
                    key["crv"].as_str(),
                    Some("P-256" | "P-384" | "P-521" | "P-256K")
                ) =>
        {
            Ok(
                json!({"kty": "EC", "crv": key["crv"], "x": key["x"], "y": key["y"],
                      "key_ops": ["sign", "verify"]}),
            )
        }
        Some("RSA" | "RSA-HSM" | "EC" | "EC-HSM") => {
            Err("The key to import is not a complete private key.")
        }
        _ => Err("The key type (kty) of the key to import is not supported."),
    }
}

/// `a=b&c=d` (a query or a form body), `+` as space and percent-decoded.
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The certificate (DER) and its RSA public key (PKCS#1 DER) of a PEM holding a
/// `CERTIFICATE` and a PKCS#8 `PRIVATE KEY`, as [`FakeAzure::add_client_certificate`] takes
/// them.
pub fn certificate_parts(pem: &str) -> (Vec<u8>, Vec<u8>) {
    let block = |label: &str| -> Vec<u8> {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let start = pem.find(&begin).expect("PEM block") + begin.len();
        let stop = start + pem[start..].find(&end).expect("PEM end");
        let text: String = pem[start..stop].split_whitespace().collect();
        STANDARD.decode(text).expect("PEM base64")
    };
    let key = ring::signature::RsaKeyPair::from_pkcs8(&block("PRIVATE KEY")).expect("RSA key");
    use ring::signature::KeyPair as _;
    (block("CERTIFICATE"), key.public_key().as_ref().to_vec())
}
