//! An in-process fake of Google Cloud Secret Manager and the Google token services the GCP
//! provider talks to, served over HTTPS on `127.0.0.1` with a throw-away CA.
//!
//! No Secret Manager emulator exists, so this follows Google's published REST references:
//!
//! - Secret Manager API v1 (<https://cloud.google.com/secret-manager/docs/reference/rest>):
//!   `projects.secrets` `create` (`POST .../secrets?secretId=`), `get`, `list` (`filter`,
//!   `pageSize`, `pageToken` → `nextPageToken`, `totalSize`), `delete`, `addVersion`
//!   (`POST ...:addVersion`), and `projects.secrets.versions` `access`
//!   (`GET .../versions/{v}:access`, `latest` allowed), `get`, `list` (newest first), for both
//!   `projects/{p}/secrets/...` and the regional `projects/{p}/locations/{l}/secrets/...`.
//!   Payloads are base64 with `dataCrc32c`; labels and annotations are kept; filters accept
//!   `labels.k=v`, `labels.k:*`, `name:prefix` terms joined by spaces or `AND`. A request
//!   asking for `$alt=json;enum-encoding=int` (what the official REST clients send) gets
//!   enums as numbers, as Google answers.
//! - Errors are `google.rpc.Status` JSON
//!   (<https://cloud.google.com/apis/design/errors#http_mapping>):
//!   `{"error":{"code":404,"message":...,"status":"NOT_FOUND"}}`, 401 `UNAUTHENTICATED`,
//!   403 `PERMISSION_DENIED`, 409 `ALREADY_EXISTS`, 400 `FAILED_PRECONDITION` for a disabled
//!   or destroyed version, 400 `INVALID_ARGUMENT`.
//! - Authorization: a Bearer access token this fake issued, or a self-signed service-account
//!   JWT (<https://google.aip.dev/auth/4111>: RS256, `iss` the account, `aud`
//!   `https://secretmanager.googleapis.com/` or a `scope` claim), which the official client
//!   libraries send by default.
//! - OAuth 2.0 for service accounts (<https://developers.google.com/identity/protocols/oauth2/service-account>):
//!   `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an RS256
//!   `assertion` whose signature is checked with the account's public key, `aud` the token
//!   URI, a `scope`, `iss` a known account and `exp` in the future.
//! - GKE Workload Identity as ESO uses it: `POST /v1/identitybindingtoken`
//!   (securetoken.googleapis.com, JSON body) and STS `POST /v1/token`
//!   (<https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token>, form body),
//!   `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//!   `subject_token_type=urn:ietf:params:oauth:token-type:jwt`, `audience`
//!   `identitynamespace:<project>.svc.id.goog:<cluster URL>`; the subject token's `aud` must
//!   name the pool and its `sub` a Kubernetes ServiceAccount bound with [`FakeGcpsm::trust_workload`].
//!   The token's signature is not checked (the tests' API server signs it).
//! - Workload Identity Federation at STS `POST /v1/token` (form body) with `audience`
//!   `//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<p>`
//!   registered by [`FakeGcpsm::add_pool_provider`] with the audience its subject tokens must
//!   carry; the principal is `principal://iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/subject/<sub>`.
//! - IAM Credentials `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`
//!   (<https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken>)
//!   with a federated token whose principal holds `roles/iam.workloadIdentityUser` on the
//!   account ([`FakeGcpsm::allow_impersonation`]).
//!
//! - The GKE metadata server (<https://cloud.google.com/compute/docs/metadata/querying-metadata>),
//!   plain HTTP on its own port ([`FakeGcpsm::metadata_port`]): `GET /computeMetadata/v1/`
//!   `project/project-id` and `instance/attributes/cluster-{name,location}` as text, only with
//!   `Metadata-Flavor: Google` (403 otherwise), set by [`FakeGcpsm::set_cluster`].
//! - ETags (<https://cloud.google.com/secret-manager/docs/etags>): a secret's `etag` changes on
//!   create and patch (not on addVersion); `delete?etag=` and a patch body's `etag` that do
//!   not match fail with 400 `FAILED_PRECONDITION`. Version lists take `filter=state:ENABLED`.
//!
//! Every request is recorded (method, path, status) so tests can count what crossed the wire.
//! Secret values never appear in the record.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The host names the fake's certificate is valid for, besides `127.0.0.1` and `localhost`.
pub const GOOGLE_HOSTS: &[&str] = &[
    "secretmanager.googleapis.com",
    "secretmanager.europe-west1.rep.googleapis.com",
    "oauth2.googleapis.com",
    "securetoken.googleapis.com",
    "sts.googleapis.com",
    "iamcredentials.googleapis.com",
];

/// The scope every token must carry.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The IAM scope, enough to call IAM Credentials.
pub const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Version {
    data: Vec<u8>,
    state: &'static str,
}

#[derive(Debug, Clone, Default)]
struct Secret {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    versions: Vec<Version>,
    created: u64,
    /// Bumped on every change of the secret itself (create, patch).
    etag: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Resource name (`projects/p/secrets/s` or `projects/p/locations/l/secrets/s`) → secret.
    secrets: BTreeMap<String, Secret>,
    /// Service account email → its public key (SPKI PEM).
    accounts: BTreeMap<String, String>,
    /// Access token → the principal it stands for.
    tokens: BTreeMap<String, String>,
    /// Principal → projects it may read and write.
    grants: BTreeMap<String, Vec<String>>,
    /// Kubernetes `system:serviceaccount:ns:name` subjects trusted by the identity pool.
    workloads: Vec<String>,
    /// Workload Identity Federation pool providers (`//iam.googleapis.com/...`) → the
    /// audience their subject tokens must carry.
    pool_providers: BTreeMap<String, String>,
    /// (federated principal, service account) impersonation bindings.
    impersonation: Vec<(String, String)>,
    requests: Vec<Recorded>,
    issued: u64,
    page_size: usize,
    /// The metadata server's project id, cluster location and cluster name.
    cluster: Option<(String, String, String)>,
}

/// A running fake on `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct FakeGcpsm {
    port: u16,
    metadata_port: u16,
    ca_pem: String,
    state: Arc<Mutex<State>>,
}

impl FakeGcpsm {
    /// Starts the fake on a free port (on the current Tokio runtime).
    pub async fn start() -> FakeGcpsm {
        let (ca_pem, tls) = tls_config();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            page_size: 100,
            ..State::default()
        }));
        let metadata = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metadata_port = metadata.local_addr().expect("addr").port();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = metadata.accept().await {
                tokio::spawn(serve_connection(sock, shared.clone(), Listener::Metadata));
            }
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(sock).await {
                        serve_connection(tls, shared, Listener::Google).await;
                    }
                });
            }
        });
        FakeGcpsm {
            port,
            metadata_port,
            ca_pem,
            state,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the plain-HTTP GKE metadata server.
    pub fn metadata_port(&self) -> u16 {
        self.metadata_port
    }

    /// What the metadata server answers for the project and the cluster.
    pub fn set_cluster(&self, project: &str, location: &str, name: &str) {
        self.state.lock().unwrap().cluster = Some((project.into(), location.into(), name.into()));
    }

    /// The CA certificate (PEM) that signed the fake's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Answers lists with at most `n` items per page.
    pub fn set_page_size(&self, n: usize) {
        self.state.lock().unwrap().page_size = n.max(1);
    }

    /// Registers a service account and the public key (SPKI PEM) of its key.
    pub fn add_service_account(&self, email: &str, public_key_pem: &str) {
        self.state
            .lock()
            .unwrap()
            .accounts
            .insert(email.into(), public_key_pem.into());
    }

    /// Lets `principal` (a service-account email or a federated
    /// `serviceAccount:<pool>[ns/name]`) read and write every secret of `project`.
    pub fn grant(&self, principal: &str, project: &str) {
        self.state
            .lock()
            .unwrap()
            .grants
            .entry(principal.into())
            .or_default()
            .push(project.into());
    }

    /// Adds an access token standing for `principal`.
    pub fn add_access_token(&self, token: &str, principal: &str) {
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), principal.into());
    }

    /// Trusts Kubernetes ServiceAccount `namespace/name` in the workload identity pool.
    pub fn trust_workload(&self, namespace: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .workloads
            .push(format!("system:serviceaccount:{namespace}:{name}"));
    }

    /// Registers a Workload Identity Federation pool provider (`//iam.googleapis.com/projects/…/providers/…`)
    /// whose subject tokens must carry `token_audience`.
    pub fn add_pool_provider(&self, provider: &str, token_audience: &str) {
        self.state
            .lock()
            .unwrap()
            .pool_providers
            .insert(provider.into(), token_audience.into());
    }

    /// Revokes every access token issued so far (as an expiry or a revocation does):
    /// Secret Manager answers them 401 UNAUTHENTICATED from now on.
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// Lets the federated principal `serviceAccount:<pool>[ns/name]` impersonate `email`.
    pub fn allow_impersonation(&self, federated: &str, email: &str) {
        self.state
            .lock()
            .unwrap()
            .impersonation
            .push((federated.into(), email.into()));
    }

    /// Creates (or replaces) secret `name` (`projects/p/secrets/s`) with labels.
    pub fn create_secret(&self, name: &str, labels: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        state.issued += 1;
        let created = state.issued;
        state.secrets.insert(
            name.into(),
            Secret {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                created,
                etag: created,
                ..Secret::default()
            },
        );
    }

    /// Sets annotations on an existing secret.
    pub fn annotate(&self, name: &str, annotations: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        let secret = state.secrets.get_mut(name).expect("secret exists");
        for (k, v) in annotations {
            secret.annotations.insert(k.to_string(), v.to_string());
        }
    }

    /// Adds an enabled version to secret `name` and returns its number.
    pub fn add_version(&self, name: &str, data: &[u8]) -> usize {
        let mut state = self.state.lock().unwrap();
        let secret = state.secrets.get_mut(name).expect("secret exists");
        secret.versions.push(Version {
            data: data.to_vec(),
            state: "ENABLED",
        });
        secret.versions.len()
    }

    /// Sets version `n` of `name` to `DISABLED` or `DESTROYED`.
    pub fn set_version_state(&self, name: &str, n: usize, state_name: &'static str) {
        let mut state = self.state.lock().unwrap();
        let version = &mut state.secrets.get_mut(name).expect("secret exists").versions[n - 1];
        version.state = state_name;
        if state_name == "DESTROYED" {
            version.data.clear();
        }
    }

    /// The payload of the newest version of `name`, its labels, and how many versions it has.
    pub fn secret(&self, name: &str) -> Option<(Vec<u8>, BTreeMap<String, String>, usize)> {
        let state = self.state.lock().unwrap();
        let s = state.secrets.get(name)?;
        Some((
            s.versions
                .last()
                .map(|v| v.data.clone())
                .unwrap_or_default(),
            s.labels.clone(),
            s.versions.len(),
        ))
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests answered so far whose path ends with `suffix`.
    pub fn requests_ending(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }
}

/// A CA and a serving certificate for 127.0.0.1, localhost and [`GOOGLE_HOSTS`].
fn tls_config() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "airlock fake google CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    names.extend(GOOGLE_HOSTS.iter().map(|h| h.to_string()));
    let key = KeyPair::generate().expect("serving key");
    let leaf = CertificateParams::new(names)
        .expect("leaf params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("serving config");
    (ca_cert.pem(), config)
}

/// A parsed request.
struct Incoming {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn ints(&self) -> bool {
        self.query
            .get("$alt")
            .is_some_and(|a| a.contains("enum-encoding=int"))
    }

    fn json(&self) -> Result<Value, Answer> {
        serde_json::from_slice(&self.body)
            .map_err(|_| failure(400, "INVALID_ARGUMENT", "the request body is not JSON"))
    }

    /// The body as JSON or, for form posts, as an object of its fields.
    fn fields(&self) -> BTreeMap<String, String> {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&self.body) {
            return map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect();
        }
        form(&String::from_utf8_lossy(&self.body))
    }
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn reply(status: u16, body: Value) -> Answer {
    Answer {
        status,
        content_type: "application/json; charset=UTF-8",
        body: body.to_string().into_bytes(),
    }
}

/// A plain-text answer, as the metadata server gives (with its `Metadata-Flavor` header).
fn text_reply(status: u16, body: &str) -> Answer {
    Answer {
        status,
        content_type: "application/text\r\nMetadata-Flavor: Google",
        body: body.as_bytes().to_vec(),
    }
}

fn failure(code: u16, status: &str, message: &str) -> Answer {
    reply(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

/// An OAuth 2.0 error body (RFC 6749 §5.2), as Google's token endpoints answer.
fn oauth_failure(code: u16, error: &str, description: &str) -> Answer {
    reply(
        code,
        json!({"error": error, "error_description": description}),
    )
}

/// Which of the fake's two listeners a connection came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// HTTPS: Secret Manager, OAuth, STS, IAM Credentials.
    Google,
    /// Plain HTTP: the metadata server only.
    Metadata,
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    state: Arc<Mutex<State>>,
    listener: Listener,
) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        let answer = {
            let mut state = state.lock().unwrap();
            let answer = match listener {
                Listener::Google => route(&mut state, &request),
                Listener::Metadata => match request.path.strip_prefix("/computeMetadata/v1/") {
                    Some(item) => metadata_server(&state, &request, item),
                    // The root, which clients ping to detect the server.
                    None if request.path == "/" => Ok(text_reply(200, "computeMetadata/\n")),
                    None => Err(text_reply(404, "Not Found")),
                },
            }
            .unwrap_or_else(|a| a);
            state.requests.push(Recorded {
                method: request.method.clone(),
                path: request.path.clone(),
                host: request.header("host").unwrap_or_default().to_string(),
                status: answer.status,
            });
            answer
        };
        let head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            answer.status,
            answer.content_type,
            answer.body.len()
        );
        if sock.write_all(head.as_bytes()).await.is_err()
            || sock.write_all(&answer.body).await.is_err()
            || sock.flush().await.is_err()
        {
            return;
        }
    }
}

async fn read_request<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut Vec<u8>) -> Option<Incoming> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < end + 4 + length {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: Vec<u8> = buf.drain(..end + 4 + length).skip(end + 4).collect();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Incoming {
        method,
        path: decode(path),
        query: form(query),
        headers,
        body,
    })
}

/// `a=1&b=2` with percent-decoding.
fn form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The claims of a JWT, without checking its signature.
fn claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The claims of an RS256 JWT signed by a known service account, or why not.
fn verified_claims(state: &State, jwt: &str) -> Result<Value, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("the assertion is not a JWT".into());
    }
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("the JWT header is not JSON")?;
    if header["alg"] != "RS256" {
        return Err(format!(
            "the JWT is signed with {}, not RS256",
            header["alg"]
        ));
    }
    let claims = claims(jwt).ok_or("the JWT claims are not JSON")?;
    let iss = claims["iss"].as_str().unwrap_or_default();
    let key = state
        .accounts
        .get(iss)
        .ok_or_else(|| format!("unknown service account {iss:?}"))?;
    let key = VerifyingKey::<rsa::sha2::Sha256>::new(
        rsa::RsaPublicKey::from_public_key_pem(key).map_err(|e| e.to_string())?,
    );
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .ok()
        .and_then(|s| Signature::try_from(s.as_slice()).ok())
        .ok_or("the JWT signature is malformed")?;
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.".to_string())?;
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let iat = claims["iat"].as_u64().unwrap_or(u64::MAX);
    if exp <= now() || iat > now() + 300 || exp > iat + 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.".into());
    }
    Ok(claims)
}

/// The principal a request's Bearer token stands for.
fn principal(state: &State, request: &Incoming) -> Result<String, Answer> {
    let unauthenticated = || {
        failure(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    };
    let token = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unauthenticated)?;
    if let Some(p) = state.tokens.get(token) {
        return Ok(p.clone());
    }
    // A self-signed JWT (AIP-4111).
    let claims = verified_claims(state, token).map_err(|_| unauthenticated())?;
    let aud_ok = claims["aud"]
        .as_str()
        .is_some_and(|a| a.starts_with("https://secretmanager."));
    let scope_ok = claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|s| s == CLOUD_PLATFORM));
    if !aud_ok && !scope_ok {
        return Err(unauthenticated());
    }
    Ok(claims["iss"].as_str().unwrap_or_default().to_string())
}

fn issue(state: &mut State, principal: &str) -> String {
    state.issued += 1;
    let token = format!("ya29.fake-{}-{}", state.issued, now());
    state.tokens.insert(token.clone(), principal.to_string());
    token
}

fn route(state: &mut State, request: &Incoming) -> Result<Answer, Answer> {
    let path = request.path.as_str();
    let method = request.method.as_str();
    match (method, path) {
        ("POST", "/token") => return oauth_token(state, request),
        ("POST", "/v1/identitybindingtoken") | ("POST", "/v1/token") => {
            return token_exchange(state, request);
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/v1/projects/-/serviceAccounts/")
        && let Some(email) = rest.strip_suffix(":generateAccessToken")
        && method == "POST"
    {
        return generate_access_token(state, request, email);
    }
    let Some(resource) = path.strip_prefix("/v1/") else {
        return Err(failure(404, "NOT_FOUND", "Method not found."));
    };
    secret_manager(state, request, resource)
}

fn metadata_server(state: &State, request: &Incoming, item: &str) -> Result<Answer, Answer> {
    if request.header("metadata-flavor") != Some("Google") {
        return Err(text_reply(403, "Missing required header: Metadata-Flavor"));
    }
    let Some((project, location, name)) = &state.cluster else {
        return Err(text_reply(404, "Not Found"));
    };
    match (request.method.as_str(), item) {
        ("GET", "project/project-id") => Ok(text_reply(200, project)),
        ("GET", "instance/attributes/cluster-location") => Ok(text_reply(200, location)),
        ("GET", "instance/attributes/cluster-name") => Ok(text_reply(200, name)),
        _ => Err(text_reply(404, "Not Found")),
    }
}

fn oauth_token(state: &mut State, request: &Incoming) -> Result<Answer, Answer> {
    let fields = request.fields();
    if fields.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err(oauth_failure(
            400,
            "unsupported_grant_type",
            "Invalid grant_type",
        ));
    }
    let assertion = fields.get("assertion").map(String::as_str).unwrap_or("");
    let claims =
        verified_claims(state, assertion).map_err(|m| oauth_failure(400, "invalid_grant", &m))?;
    let host = request.header("host").unwrap_or_default();
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !aud.ends_with("/token")
        || !(aud.contains(host) || aud == "https://oauth2.googleapis.com/token")
    {
        return Err(oauth_failure(
            400,
            "invalid_grant",
            "Invalid JWT: aud is not the token URI",
        ));
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM) {
        return Err(oauth_failure(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    let email = claims["iss"].as_str().unwrap_or_default().to_string();
    let token = issue(state, &email);
    Ok(reply(
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    ))
}

fn token_exchange(state: &mut State, request: &Incoming) -> Result<Answer, Answer> {
    let f = request.fields();
    let field = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return Err(oauth_failure(
            400,
            "unsupported_grant_type",
            "Invalid grant_type",
        ));
    }
    if field("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
        return Err(oauth_failure(
            400,
            "invalid_request",
            "Invalid subject_token_type",
        ));
    }
    // STS hands out tokens for cloud-platform, or for IAM alone (what google-auth asks for
    // before impersonating); the identity-binding exchange only for cloud-platform.
    let federation = field("audience").starts_with("//iam.googleapis.com/");
    let scope_ok = field("scope")
        .split(' ')
        .any(|s| s == CLOUD_PLATFORM || (federation && s == IAM_SCOPE));
    if !scope_ok {
        return Err(oauth_failure(400, "invalid_scope", "Invalid scope"));
    }
    if federation {
        return federation_exchange(state, field("audience"), field("subject_token"));
    }
    // identitynamespace:<project>.svc.id.goog:https://container.googleapis.com/v1/projects/...
    let Some(rest) = field("audience").strip_prefix("identitynamespace:") else {
        return Err(oauth_failure(400, "invalid_target", "Invalid audience"));
    };
    let Some((pool, provider)) = rest.split_once(':') else {
        return Err(oauth_failure(400, "invalid_target", "Invalid audience"));
    };
    let pool_project = pool.strip_suffix(".svc.id.goog").unwrap_or_default();
    if pool_project.is_empty()
        || !provider.starts_with(&format!(
            "https://container.googleapis.com/v1/projects/{pool_project}/"
        ))
        || !provider.contains("/locations/")
        || !provider.contains("/clusters/")
    {
        return Err(oauth_failure(400, "invalid_target", "Invalid audience"));
    }
    let Some(claims) = claims(field("subject_token")) else {
        return Err(oauth_failure(
            400,
            "invalid_grant",
            "The subject token is not a JWT",
        ));
    };
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == pool,
        Value::Array(list) => list.iter().any(|a| a == pool),
        _ => false,
    };
    let sub = claims["sub"].as_str().unwrap_or_default();
    if !aud_ok {
        return Err(oauth_failure(
            400,
            "invalid_grant",
            "The audience of the subject token is not the identity pool",
        ));
    }
    if claims["exp"].as_u64().unwrap_or(0) <= now() || !state.workloads.iter().any(|w| w == sub) {
        return Err(oauth_failure(
            400,
            "invalid_grant",
            "The subject token is expired or its subject is not trusted",
        ));
    }
    let account = sub
        .trim_start_matches("system:serviceaccount:")
        .replacen(':', "/", 1);
    let principal = format!("serviceAccount:{pool}[{account}]");
    let token = issue(state, &principal);
    Ok(reply(
        200,
        json!({"access_token": token,
               "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
               "token_type": "Bearer", "expires_in": 3600}),
    ))
}

/// STS for a Workload Identity Federation pool provider.
fn federation_exchange(state: &mut State, audience: &str, subject: &str) -> Result<Answer, Answer> {
    let Some(wanted) = state.pool_providers.get(audience).cloned() else {
        return Err(oauth_failure(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
        ));
    };
    let Some(claims) = claims(subject) else {
        return Err(oauth_failure(
            400,
            "invalid_grant",
            "Unable to parse the ID Token.",
        ));
    };
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == wanted,
        Value::Array(list) => list.iter().any(|a| *a == wanted),
        _ => false,
    };
    if !aud_ok {
        return Err(oauth_failure(
            400,
            "invalid_grant",
            "The audience in ID Token does not match the expected audience.",
        ));
    }
    if claims["exp"].as_u64().unwrap_or(0) <= now() {
        return Err(oauth_failure(400, "invalid_grant", "ID Token has expired."));
    }
    let pool = audience
        .trim_start_matches("//iam.googleapis.com/")
        .split("/providers/")
        .next()
        .unwrap_or_default();
    let principal = format!(
        "principal://iam.googleapis.com/{pool}/subject/{}",
        claims["sub"].as_str().unwrap_or_default()
    );
    let token = issue(state, &principal);
    Ok(reply(
        200,
        json!({"access_token": token,
               "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
               "token_type": "Bearer", "expires_in": 3600}),
    ))
}

fn generate_access_token(
    state: &mut State,
    request: &Incoming,
    email: &str,
) -> Result<Answer, Answer> {
    let caller = principal(state, request)?;
    if !state.accounts.contains_key(email) && !state.impersonation.iter().any(|(_, e)| e == email) {
        return Err(failure(
            404,
            "NOT_FOUND",
            &format!("Service account projects/-/serviceAccounts/{email} not found."),
        ));
    }
    if !state
        .impersonation
        .iter()
        .any(|(p, e)| *p == caller && e == email)
    {
        return Err(failure(
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        ));
    }
    let body = request.json()?;
    let scope_ok = body["scope"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s == CLOUD_PLATFORM));
    if !scope_ok {
        return Err(failure(400, "INVALID_ARGUMENT", "Scope required."));
    }
    let token = issue(state, email);
    let expires = now() + 3600;
    Ok(reply(
        200,
        json!({"accessToken": token, "expireTime": rfc3339(expires)}),
    ))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// CRC32C (Castagnoli), which Secret Manager reports as `dataCrc32c`.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Splits `projects/p[/locations/l]/secrets[/s[/versions[/v]]][:verb]`.
struct Name<'a> {
    project: &'a str,
    /// `projects/p` or `projects/p/locations/l`.
    parent: String,
    secret: Option<&'a str>,
    versions: bool,
    version: Option<&'a str>,
    verb: Option<&'a str>,
}

fn parse_name(resource: &str) -> Option<Name<'_>> {
    let (resource, verb) = match resource.rsplit_once(':') {
        Some((r, v)) if !v.contains('/') => (r, Some(v)),
        _ => (resource, None),
    };
    let parts: Vec<&str> = resource.split('/').collect();
    let (project, rest, parent) = match parts.as_slice() {
        ["projects", p, "locations", l, rest @ ..] => {
            (*p, rest, format!("projects/{p}/locations/{l}"))
        }
        ["projects", p, rest @ ..] => (*p, rest, format!("projects/{p}")),
        _ => return None,
    };
    let (secret, versions, version) = match rest {
        ["secrets"] => (None, false, None),
        ["secrets", s] => (Some(*s), false, None),
        ["secrets", s, "versions"] => (Some(*s), true, None),
        ["secrets", s, "versions", v] => (Some(*s), true, Some(*v)),
        _ => return None,
    };
    Some(Name {
        project,
        parent,
        secret,
        versions,
        version,
        verb,
    })
}

fn state_value(state: &str, ints: bool) -> Value {
    if !ints {
        return json!(state);
    }
    json!(match state {
        "ENABLED" => 1,
        "DISABLED" => 2,
        "DESTROYED" => 3,
        _ => 0,
    })
}

fn timestamp(n: u64) -> String {
    rfc3339(1_767_225_600 + n)
}

fn secret_json(name: &str, s: &Secret) -> Value {
    json!({
        "name": name,
        "replication": {"automatic": {}},
        "createTime": timestamp(s.created),
        "labels": s.labels,
        "annotations": s.annotations,
        "etag": etag_of(s),
    })
}

fn version_json(name: &str, n: usize, v: &Version, ints: bool) -> Value {
    let mut out = json!({
        "name": format!("{name}/versions/{n}"),
        "createTime": timestamp(n as u64),
        "state": state_value(v.state, ints),
        "etag": format!("\"{n}\""),
        "replicationStatus": {"automatic": {}},
    });
    if v.state == "DESTROYED" {
        out["destroyTime"] = json!(timestamp(n as u64 + 1));
    }
    out
}

/// Matches a `list` filter: terms joined by spaces or `AND`, each `labels.k=v`,
/// `labels.k:v`, `labels.k:*` or `name:prefix` (`name:` matches the secret id's start).
fn filter_matches(filter: &str, id: &str, s: &Secret) -> bool {
    filter
        .split_whitespace()
        .filter(|t| *t != "AND")
        .all(|term| {
            let term = term.trim_matches(|c| c == '(' || c == ')');
            let (field, value) = match term.split_once(['=', ':']) {
                Some(pair) => pair,
                None => return id.contains(term),
            };
            let value = value.trim_matches('"');
            if let Some(key) = field.strip_prefix("labels.") {
                return s
                    .labels
                    .get(key)
                    .is_some_and(|v| value == "*" || v == value);
            }
            match field {
                "name" => id.starts_with(value.trim_end_matches('*')),
                _ => false,
            }
        })
}

fn secret_manager(state: &mut State, request: &Incoming, resource: &str) -> Result<Answer, Answer> {
    let Some(name) = parse_name(resource) else {
        return Err(failure(404, "NOT_FOUND", "Method not found."));
    };
    let caller = principal(state, request)?;
    let denied = |permission: &str| {
        failure(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission '{permission}' denied for resource '{}' (or it may not exist).",
                resource.split(':').next().unwrap_or(resource)
            ),
        )
    };
    let allowed = state
        .grants
        .get(&caller)
        .is_some_and(|projects| projects.iter().any(|p| p == name.project));
    let ints = request.ints();
    let method = request.method.as_str();
    let Some(id) = name.secret else {
        // The collection: list or create.
        if !allowed {
            let permission = if method == "POST" {
                "secretmanager.secrets.create"
            } else {
                "secretmanager.secrets.list"
            };
            return Err(denied(permission));
        }
        let prefix = format!("{}/secrets/", name.parent);
        return match method {
            "GET" => {
                let filter = request.query.get("filter").cloned().unwrap_or_default();
                let mut all: Vec<Value> = state
                    .secrets
                    .iter()
                    .filter_map(|(n, s)| {
                        let id = n.strip_prefix(&prefix)?;
                        filter_matches(&filter, id, s).then(|| secret_json(n, s))
                    })
                    .collect();
                Ok(reply(200, page(state, request, &mut all, "secrets")))
            }
            "POST" => {
                let Some(id) = request.query.get("secretId").filter(|s| !s.is_empty()) else {
                    return Err(failure(400, "INVALID_ARGUMENT", "secret_id is required"));
                };
                if !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    || id.len() > 255
                {
                    return Err(failure(
                        400,
                        "INVALID_ARGUMENT",
                        "Secret ID must match [a-zA-Z0-9_-]{1,255}",
                    ));
                }
                let full = format!("{prefix}{id}");
                if state.secrets.contains_key(&full) {
                    return Err(failure(
                        409,
                        "ALREADY_EXISTS",
                        &format!("Secret [{full}] already exists."),
                    ));
                }
                let body = request.json()?;
                let text_map = |v: &Value| -> BTreeMap<String, String> {
                    v.as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                state.issued += 1;
                let secret = Secret {
                    labels: text_map(&body["labels"]),
                    annotations: text_map(&body["annotations"]),
                    versions: Vec::new(),
                    created: state.issued,
                    etag: state.issued,
                };
                let out = secret_json(&full, &secret);
                state.secrets.insert(full, secret);
                Ok(reply(200, out))
            }
            _ => Err(failure(404, "NOT_FOUND", "Method not found.")),
        };
    };
    let full = format!("{}/secrets/{id}", name.parent);
    let permission = match (method, name.versions, name.verb) {
        (_, _, Some("access")) => "secretmanager.versions.access",
        ("POST", _, Some("addVersion")) => "secretmanager.versions.add",
        ("GET", true, _) => "secretmanager.versions.get",
        ("DELETE", _, _) => "secretmanager.secrets.delete",
        ("PATCH", _, _) => "secretmanager.secrets.update",
        _ => "secretmanager.secrets.get",
    };
    if !allowed {
        return Err(denied(permission));
    }
    let not_found = |what: &str| {
        failure(
            404,
            "NOT_FOUND",
            &format!(
                "{what} [{}] not found or has no versions.",
                what_name(&full, name.version)
            ),
        )
    };
    let Some(secret) = state.secrets.get(&full).cloned() else {
        return Err(failure(
            404,
            "NOT_FOUND",
            &format!("Secret [{full}] not found or has no versions."),
        ));
    };
    match (method, name.versions, name.version, name.verb) {
        ("GET", false, None, None) => Ok(reply(200, secret_json(&full, &secret))),
        ("DELETE", false, None, None) => {
            if let Some(etag) = request.query.get("etag")
                && *etag != etag_of(&secret)
            {
                return Err(etag_mismatch(&full));
            }
            state.secrets.remove(&full);
            Ok(reply(200, json!({})))
        }
        ("PATCH", false, None, None) => {
            let body = request.json()?;
            let mask = request.query.get("updateMask").cloned().unwrap_or_default();
            if let Some(etag) = body["etag"].as_str()
                && !etag.is_empty()
                && etag != etag_of(&secret)
            {
                return Err(etag_mismatch(&full));
            }
            state.issued += 1;
            let issued = state.issued;
            let s = state.secrets.get_mut(&full).expect("present");
            s.etag = issued;
            for field in mask.split(',') {
                let map = body[field].as_object().map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect::<BTreeMap<_, _>>()
                });
                match field {
                    "labels" => s.labels = map.unwrap_or_default(),
                    "annotations" => s.annotations = map.unwrap_or_default(),
                    _ => {}
                }
            }
            Ok(reply(200, secret_json(&full, s)))
        }
        ("POST", false, None, Some("addVersion")) => {
            let body = request.json()?;
            let data = body["payload"]["data"]
                .as_str()
                .and_then(|d| STANDARD.decode(d).ok())
                .ok_or_else(|| failure(400, "INVALID_ARGUMENT", "payload.data must be base64"))?;
            if let Some(sum) = body["payload"]["dataCrc32c"]
                .as_str()
                .and_then(|s| s.parse::<u32>().ok())
                && sum != crc32c(&data)
            {
                return Err(failure(
                    400,
                    "INVALID_ARGUMENT",
                    "Checksum mismatch: payload.data_crc32c does not match the payload.",
                ));
            }
            let s = state.secrets.get_mut(&full).expect("present");
            s.versions.push(Version {
                data,
                state: "ENABLED",
            });
            let n = s.versions.len();
            let v = s.versions[n - 1].clone();
            Ok(reply(200, version_json(&full, n, &v, ints)))
        }
        ("GET", true, None, None) => {
            // `state:ENABLED` (or `state:DISABLED`, …): the one filter term versions take here.
            let wanted = request
                .query
                .get("filter")
                .and_then(|f| f.strip_prefix("state:").map(str::to_string));
            let mut all: Vec<Value> = secret
                .versions
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, v)| wanted.as_deref().is_none_or(|w| w == v.state))
                .map(|(i, v)| version_json(&full, i + 1, v, ints))
                .collect();
            Ok(reply(200, page(state, request, &mut all, "versions")))
        }
        ("GET", true, Some(v), verb @ (None | Some("access"))) => {
            let n = if v == "latest" {
                secret.versions.len()
            } else {
                v.parse::<usize>()
                    .map_err(|_| failure(400, "INVALID_ARGUMENT", "Invalid version id."))?
            };
            let Some(version) = n.checked_sub(1).and_then(|i| secret.versions.get(i)) else {
                return Err(not_found("Secret Version"));
            };
            if verb.is_none() {
                return Ok(reply(200, version_json(&full, n, version, ints)));
            }
            if version.state != "ENABLED" {
                return Err(failure(
                    400,
                    "FAILED_PRECONDITION",
                    &format!("{full}/versions/{n} is in {} state.", version.state),
                ));
            }
            Ok(reply(
                200,
                json!({"name": format!("{full}/versions/{n}"),
                       "payload": {"data": STANDARD.encode(&version.data),
                                   "dataCrc32c": crc32c(&version.data).to_string()}}),
            ))
        }
        _ => Err(failure(404, "NOT_FOUND", "Method not found.")),
    }
}

fn etag_of(s: &Secret) -> String {
    format!("\"{}\"", s.etag)
}

fn etag_mismatch(full: &str) -> Answer {
    failure(
        400,
        "FAILED_PRECONDITION",
        &format!("The etag provided does not match the current etag of {full}."),
    )
}

fn what_name(full: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{full}/versions/{v}"),
        None => full.to_string(),
    }
}

/// One page of `all` under `key`, by `pageSize` (bounded by the fake's page size) and the
/// offset in `pageToken`.
fn page(state: &State, request: &Incoming, all: &mut Vec<Value>, key: &str) -> Value {
    let size = request
        .query
        .get("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(state.page_size)
        .min(state.page_size);
    let start = request
        .query
        .get("pageToken")
        .and_then(|t| t.strip_prefix("offset-"))
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let total = all.len();
    let items: Vec<Value> = all.drain(..).skip(start).take(size).collect();
    let mut out = json!({"totalSize": total});
    if !items.is_empty() {
        out[key] = Value::Array(items);
    }
    if start + size < total {
        out["nextPageToken"] = json!(format!("offset-{}", start + size));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn names_split_into_parent_secret_and_version() {
        let n = parse_name("projects/p/locations/eu/secrets/s/versions/latest:access").unwrap();
        assert_eq!(
            (n.project, n.parent.as_str()),
            ("p", "projects/p/locations/eu")
        );
        assert_eq!(
            (n.secret, n.version, n.verb),
            (Some("s"), Some("latest"), Some("access"))
        );
        assert!(parse_name("projects/p/secrets").unwrap().secret.is_none());
    }

    #[test]
    fn rfc3339_formats_a_known_instant() {
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
