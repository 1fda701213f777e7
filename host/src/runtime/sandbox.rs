//! The data of one sandboxed call: what the guest can reach through its imports. Nothing
//! here is shared between calls except the store's cache and its connection pool.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::airlock::provider::{cache, credentials, log};
use super::cache::StoreCache;
use super::credentials::{CredentialError, CredentialPolicy, Credentials, TokenCache};
use super::egress::EgressHooks;
use super::redact::Redactor;
use crate::backend::StoreInfo;

/// Longest guest log line written.
const MAX_LOG_LINE: usize = 1024;
/// Longest guest log line held until the call ends. Redaction runs on this, before the
/// line is cut to [`MAX_LOG_LINE`], so a long secret is matched whole, not left half-cut.
const MAX_HELD_LOG_LINE: usize = 16 << 10;
/// Log lines one call may write.
const MAX_LOG_LINES: u32 = 100;
/// How the Rust SDK's panic hook starts its log line (`airlock_provider_sdk::PANIC_PREFIX`);
/// guests in other languages may use it too.
const PANIC_PREFIX: &str = "panic: ";
/// Credential requests one call may make: each is a Kubernetes API request (a TokenRequest
/// creates a token), and a provider needs a handful.
pub(super) const MAX_CREDENTIAL_REQUESTS: u32 = 32;

/// Store data of one call.
pub struct Sandbox {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: WasiHttpCtx,
    pub(super) egress: EgressHooks,
    pub(super) limiter: Limiter,
    pub(super) provider: Arc<str>,
    pub(super) store: StoreInfo,
    pub(super) cache: Arc<StoreCache>,
    pub(super) credentials: Credentials,
    pub(super) policy: CredentialPolicy,
    /// The store's minted ServiceAccount tokens.
    pub(super) tokens: Arc<TokenCache>,
    pub(super) log_lines: u32,
    /// The guest's panic report (the SDK's panic hook logs one), for the trap's message.
    pub(super) panic: Option<String>,
    /// Credential requests made so far in this call.
    pub(super) credential_requests: u32,
    /// Those the store's configuration refused.
    pub(super) credentials_denied: std::sync::atomic::AtomicU32,
    /// Guest log lines, written when the call ends (see [`Redactor`]).
    pub(super) held_logs: Vec<(log::Level, String)>,
    /// The secret bytes this call touched.
    pub(super) redactor: Redactor,
    /// Epoch ticks the guest has run for.
    pub(super) ticks: u64,
    /// Set when the CPU budget ran out.
    pub(super) cpu_exhausted: bool,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("provider", &self.provider)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.egress,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Memory and table limits of one instance; remembers whether a limit was hit so a trap
/// can be reported as what it is.
#[derive(Debug)]
pub struct Limiter {
    pub(super) memory_bytes: usize,
    pub(super) memory_exhausted: bool,
    /// The largest linear memory granted so far, in bytes.
    pub(super) peak_bytes: usize,
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exhausted = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl log::Host for Sandbox {
    fn log(&mut self, level: log::Level, message: String) {
        if level == log::Level::Error
            && self.panic.is_none()
            && let Some(report) = message.strip_prefix(PANIC_PREFIX)
        {
            self.panic = Some(truncate(report.to_string(), MAX_LOG_LINE));
        }
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        self.held_logs
            .push((level, truncate(message, MAX_HELD_LOG_LINE)));
    }
}

/// `message` cut to at most `max` bytes on a character boundary, marked when cut.
fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

// Whatever way a call ends, its log lines are written when its store goes.
impl Drop for Sandbox {
    fn drop(&mut self) {
        self.flush_logs();
    }
}

impl Sandbox {
    /// Writes the guest's held log lines to `tracing` with the store's identity, each with
    /// the call's secrets redacted.
    pub(super) fn flush_logs(&mut self) {
        let (provider, store, ns) = (&*self.provider, &self.store.name, &self.store.namespace);
        for (level, message) in self.held_logs.drain(..) {
            let message = truncate(self.redactor.redact_string(message), MAX_LOG_LINE);
            match level {
                log::Level::Trace => {
                    tracing::trace!(target: "airlock::provider", provider, store, namespace = ns, "{message}")
                }
                log::Level::Debug => {
                    tracing::debug!(target: "airlock::provider", provider, store, namespace = ns, "{message}")
                }
                log::Level::Info => {
                    tracing::info!(target: "airlock::provider", provider, store, namespace = ns, "{message}")
                }
                log::Level::Warn => {
                    tracing::warn!(target: "airlock::provider", provider, store, namespace = ns, "{message}")
                }
                log::Level::Error => {
                    tracing::error!(target: "airlock::provider", provider, store, namespace = ns, "{message}")
                }
            }
        }
    }
}

impl cache::Host for Sandbox {
    // What a provider keeps between calls is tokens and temporary credentials: secret.
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        let value = self.cache.get(&key);
        if let Some(value) = &value {
            self.redactor.add(value);
        }
        value
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: u64) {
        self.redactor.add(&value);
        if !self
            .cache
            .set(&key, &value, std::time::Duration::from_millis(ttl_ms))
        {
            tracing::debug!(target: "airlock::provider", provider = &*self.provider, "cache entry {key:?} over the bound, ignored");
        }
    }

    fn delete(&mut self, key: String) {
        self.cache.delete(&key);
    }
}

fn to_wit(e: CredentialError) -> credentials::CredentialError {
    match e {
        CredentialError::Denied(m) => credentials::CredentialError::Denied(m),
        CredentialError::NotFound(m) => credentials::CredentialError::NotFound(m),
        CredentialError::Unavailable(m) => credentials::CredentialError::Unavailable(m),
    }
}

fn denied_log(provider: &str, e: &CredentialError) {
    if let CredentialError::Denied(m) = e {
        tracing::warn!(target: "airlock::credentials", provider, "credential request denied: {m}");
    }
}

impl Sandbox {
    /// Logs and counts a refused credential request.
    fn denied(&self, e: &CredentialError) {
        if matches!(e, CredentialError::Denied(_)) {
            self.credentials_denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        denied_log(&self.provider, e);
    }

    /// Counts one credential request, refusing those past [`MAX_CREDENTIAL_REQUESTS`].
    fn count_credential_request(&mut self) -> Result<(), credentials::CredentialError> {
        self.credential_requests += 1;
        if self.credential_requests > MAX_CREDENTIAL_REQUESTS {
            let e = CredentialError::Denied(format!(
                "more than {MAX_CREDENTIAL_REQUESTS} credential requests in one call \
                 (each is a Kubernetes API request)"
            ));
            self.denied(&e);
            return Err(to_wit(e));
        }
        Ok(())
    }

    /// The namespace of a ServiceAccount the store's configuration names, or the denial.
    fn account_namespace(
        &self,
        selector: &credentials::ServiceAccountSelector,
    ) -> Result<String, credentials::CredentialError> {
        self.policy
            .check_account(&selector.name, selector.namespace.as_deref())
            .inspect_err(|e| self.denied(e))
            .map_err(to_wit)
    }
}

impl credentials::Host for Sandbox {
    async fn secret_key(
        &mut self,
        selector: credentials::KeySelector,
    ) -> Result<Vec<u8>, credentials::CredentialError> {
        self.count_credential_request()?;
        use secrecy::ExposeSecret;
        let ns = self
            .policy
            .check_key(
                &selector.name,
                &selector.key,
                selector.namespace.as_deref(),
                false,
            )
            .inspect_err(|e| self.denied(e))
            .map_err(to_wit)?;
        let source = self.credentials.clone();
        let value = source
            .secret_key(&ns, &selector.name, &selector.key)
            .await
            .map_err(to_wit)?;
        self.redactor.add(value.expose_secret());
        Ok(value.expose_secret().to_vec())
    }

    async fn config_map_key(
        &mut self,
        selector: credentials::KeySelector,
    ) -> Result<String, credentials::CredentialError> {
        self.count_credential_request()?;
        let ns = self
            .policy
            .check_key(
                &selector.name,
                &selector.key,
                selector.namespace.as_deref(),
                true,
            )
            .inspect_err(|e| self.denied(e))
            .map_err(to_wit)?;
        let source = self.credentials.clone();
        source
            .config_map_key(&ns, &selector.name, &selector.key)
            .await
            .map_err(to_wit)
    }

    async fn service_account_token(
        &mut self,
        selector: credentials::ServiceAccountSelector,
    ) -> Result<credentials::Token, credentials::CredentialError> {
        self.count_credential_request()?;
        use secrecy::ExposeSecret;
        let ns = self
            .policy
            .check_account_token(
                &selector.name,
                selector.namespace.as_deref(),
                &selector.audiences,
            )
            .inspect_err(|e| self.denied(e))
            .map_err(to_wit)?;
        let (source, tokens) = (self.credentials.clone(), self.tokens.clone());
        let token = tokens
            .service_account_token(&*source, &ns, &selector.name, &selector.audiences)
            .await
            .map_err(to_wit)?;
        self.redactor.add(token.token.expose_secret().as_bytes());
        Ok(credentials::Token {
            token: token.token.expose_secret().to_string(),
            expires_at_ms: token.expires_at_ms,
        })
    }

    async fn service_account_annotation(
        &mut self,
        selector: credentials::ServiceAccountSelector,
        annotation: String,
    ) -> Result<Option<String>, credentials::CredentialError> {
        self.count_credential_request()?;
        let ns = self.account_namespace(&selector)?;
        let source = self.credentials.clone();
        source
            .service_account_annotation(&ns, &selector.name, &annotation)
            .await
            .map_err(to_wit)
    }

    async fn operator_token(
        &mut self,
        audiences: Vec<String>,
    ) -> Result<credentials::Token, credentials::CredentialError> {
        self.count_credential_request()?;
        use secrecy::ExposeSecret;
        self.policy
            .check_operator_token(&self.provider, &audiences)
            .inspect_err(|e| self.denied(e))
            .map_err(to_wit)?;
        let source = self.credentials.clone();
        let token = source.operator_token(&audiences).await.map_err(to_wit)?;
        self.redactor.add(token.token.expose_secret().as_bytes());
        Ok(credentials::Token {
            token: token.token.expose_secret().to_string(),
            expires_at_ms: token.expires_at_ms,
        })
    }
}
