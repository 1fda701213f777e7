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
    /// Credential denials made so far in this call (the first few are logged).
    pub(super) denials_logged: u32,
    /// Whether the cache refused an entry in this call (the first refusal is logged).
    pub(super) cache_refused: bool,
    /// Credential requests the store's configuration refused in this call (a metric).
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
///
/// The memory limit is the total of all the instance's linear memories, and the counts of
/// memories, tables and core instances are those the pool holds per instance, so a
/// component with many memories cannot multiply its limit.
#[derive(Debug)]
pub struct Limiter {
    pub(super) memory_bytes: usize,
    pub(super) memory_exhausted: bool,
    /// Bytes of all linear memories of the instance.
    pub(super) memory_used: usize,
    /// The last growth allowed, taken back if it then fails.
    pub(super) last_growth: usize,
    /// The most bytes the instance's memories held at once (a metric).
    pub(super) peak_bytes: usize,
}

impl Limiter {
    /// A limiter allowing `memory_bytes` across the instance's memories.
    pub(super) fn new(memory_bytes: usize) -> Self {
        Limiter {
            memory_bytes,
            memory_exhausted: false,
            memory_used: 0,
            last_growth: 0,
            peak_bytes: 0,
        }
    }
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        let growth = desired.saturating_sub(current);
        match self.memory_used.checked_add(growth) {
            Some(total) if total <= self.memory_bytes => {
                self.memory_used = total;
                self.last_growth = growth;
                self.peak_bytes = self.peak_bytes.max(total);
                Ok(true)
            }
            _ => {
                self.memory_exhausted = true;
                Ok(false)
            }
        }
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> Result<()> {
        self.memory_used = self
            .memory_used
            .saturating_sub(std::mem::take(&mut self.last_growth));
        Ok(())
    }

    fn instances(&self) -> usize {
        super::engine::MAX_CORE_INSTANCES as usize
    }

    fn memories(&self) -> usize {
        super::engine::MAX_MEMORIES as usize
    }

    fn tables(&self) -> usize {
        super::engine::MAX_TABLES as usize
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
            let message = self.redactor.redact_cut(message, MAX_LOG_LINE);
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
        // Only a value the cache keeps is remembered for redaction: one it refuses is the
        // guest's own bytes, and remembering every refused value would let a guest make
        // the redactor's work as large as it likes.
        match self
            .cache
            .set(&key, &value, std::time::Duration::from_millis(ttl_ms))
        {
            Ok(()) => self.redactor.add(&value),
            // The first refusal of a call says why; a guest retrying in a loop adds none.
            Err(refused) if !self.cache_refused => {
                self.cache_refused = true;
                tracing::debug!(target: "airlock::provider", provider = &*self.provider, "a cache entry was not kept: {refused}");
            }
            Err(_) => {}
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

/// Credential denials one call logs; later ones are refused without a line.
const MAX_DENIALS_LOGGED: u32 = 4;
/// The longest denial logged: denials quote guest-chosen names and audiences.
const MAX_DENIAL_LOG: usize = 512;

impl Sandbox {
    /// Logs a denial, up to [`MAX_DENIALS_LOGGED`] per call, cut to [`MAX_DENIAL_LOG`]
    /// bytes and redacted.
    fn denied_log(&mut self, e: &CredentialError) {
        let CredentialError::Denied(m) = e else {
            return;
        };
        self.count_denied();
        self.denials_logged += 1;
        if self.denials_logged > MAX_DENIALS_LOGGED {
            return;
        }
        let m = self.redactor.redact_cut(m.clone(), MAX_DENIAL_LOG);
        let provider = &*self.provider;
        tracing::warn!(target: "airlock::credentials", provider, "credential request denied: {m}");
    }

    /// Counts one refused credential request for the metrics.
    fn count_denied(&self) {
        self.credentials_denied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `result` with its denial logged.
    fn checked<T>(
        &mut self,
        result: Result<T, CredentialError>,
    ) -> Result<T, credentials::CredentialError> {
        result.inspect_err(|e| self.denied_log(e)).map_err(to_wit)
    }

    /// Counts one credential request, refusing those past [`MAX_CREDENTIAL_REQUESTS`].
    fn count_credential_request(&mut self) -> Result<(), credentials::CredentialError> {
        self.credential_requests = self.credential_requests.saturating_add(1);
        if self.credential_requests > MAX_CREDENTIAL_REQUESTS {
            let e = CredentialError::Denied(format!(
                "more than {MAX_CREDENTIAL_REQUESTS} credential requests in one call \
                 (each is a Kubernetes API request)"
            ));
            // The first request past the bound is logged; the flood after it is not.
            if self.credential_requests == MAX_CREDENTIAL_REQUESTS + 1 {
                self.denied_log(&e);
            } else {
                self.count_denied();
            }
            return Err(to_wit(e));
        }
        Ok(())
    }

    /// The namespace of a ServiceAccount the store's configuration names, or the denial.
    fn account_namespace(
        &mut self,
        selector: &credentials::ServiceAccountSelector,
    ) -> Result<String, credentials::CredentialError> {
        let checked = self
            .policy
            .check_account(&selector.name, selector.namespace.as_deref());
        self.checked(checked)
    }
}

impl credentials::Host for Sandbox {
    async fn secret_key(
        &mut self,
        selector: credentials::KeySelector,
    ) -> Result<Vec<u8>, credentials::CredentialError> {
        self.count_credential_request()?;
        use secrecy::ExposeSecret;
        let checked = self.policy.check_key(
            &selector.name,
            &selector.key,
            selector.namespace.as_deref(),
            false,
        );
        let ns = self.checked(checked)?;
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
        let checked = self.policy.check_key(
            &selector.name,
            &selector.key,
            selector.namespace.as_deref(),
            true,
        );
        let ns = self.checked(checked)?;
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
        let checked = self.policy.check_account_token(
            &selector.name,
            selector.namespace.as_deref(),
            &selector.audiences,
        );
        let ns = self.checked(checked)?;
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
        let checked = self.policy.check_operator_token(&self.provider, &audiences);
        self.checked(checked)?;
        let source = self.credentials.clone();
        let token = source.operator_token(&audiences).await.map_err(to_wit)?;
        self.redactor.add(token.token.expose_secret().as_bytes());
        Ok(credentials::Token {
            token: token.token.expose_secret().to_string(),
            expires_at_ms: token.expires_at_ms,
        })
    }
}
