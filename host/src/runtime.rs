//! The sandboxed provider runtime: loads provider components, runs every call in a fresh
//! instance under the provider's grants and limits, and implements [`Backend`].

pub mod bindings;
mod cache;
pub mod credentials;
mod deadline;
pub mod egress;
mod engine;
mod grant;
pub(crate) mod redact;
mod sandbox;
mod stall;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::component::{ResourceAny, ResourceTable, ResourceTableError};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

pub use self::cache::{CacheBudget, StoreCache};
pub use self::credentials::{
    CredentialError, CredentialSource, Credentials, StaticCredentials, Token,
};
pub use self::egress::{HostPattern, Resolver, SystemResolver, TlsSettings};
pub use self::engine::{EPOCH_TICK, EngineConfig, Origin, digest};
pub use self::grant::{Grants, HostAlias, Limits};

use self::bindings::{ProviderPre, wit};
use self::credentials::{CredentialPolicy, TokenCache};
use self::egress::{AddressPolicy, EgressClient, EgressHooks};
use self::engine::Host;
use self::redact::Redactor;
use self::sandbox::{Limiter, Sandbox};
use crate::backend::{
    Backend, BackendError, Capabilities, FindCriteria, GetResult, MetadataPolicy, ProviderError,
    PushRef, PushRequest, RemoteRef, SecretMap, SecretValue, StoreContext, StoreInfo, StoreKind,
    Validation,
};

/// Why the runtime could not load a provider or complete a call.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// A grant in a Provider is malformed.
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    /// TLS settings of a store are unusable.
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The precompiled-component cache could not be used.
    #[error("component cache {path}: {source}")]
    Cache {
        /// The cache directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("provider module does not compile: {0}")]
    Compile(String),
    /// The component imports something Airlock does not grant, or lacks the export.
    #[error("provider module cannot be linked: {0}")]
    Link(String),
    /// No provider is installed under this name.
    #[error("no Provider named {0:?} is installed (spec.provider.<key> must name a Provider)")]
    ProviderNotFound(String),
    /// The store's provider config fails the provider's JSON Schema.
    #[error("spec.provider.{provider} does not match the provider's schema: {message}")]
    ConfigSchema {
        /// The provider.
        provider: String,
        /// Each violation as `path: message`.
        message: String,
    },
    /// The guest used more CPU time than its budget.
    #[error("provider {provider} exceeded its CPU budget of {budget:?} and was stopped")]
    CpuDeadline {
        /// The provider.
        provider: String,
        /// Its budget.
        budget: Duration,
    },
    /// The call took longer than its wall-clock timeout.
    #[error("provider {provider} did not finish within {timeout:?}")]
    Timeout {
        /// The provider.
        provider: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The store's last call timed out and no call of it has answered since; while one
    /// probe call finds out whether the backend is back, other calls are not queued.
    #[error(
        "provider {provider} got no answer from this store's backend within {timeout:?} \
         ({ago_secs} s ago, and none since); its other calls are not queued behind it \
         while one call retries"
    )]
    Stalled {
        /// The provider.
        provider: String,
        /// The call timeout the stalled call ran into.
        timeout: Duration,
        /// Seconds since the store stalled.
        ago_secs: u64,
    },
    /// The guest tried to grow memory past its limit.
    #[error("provider {provider} exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The provider.
        provider: String,
        /// The limit.
        limit: u64,
    },
    /// The guest held more host-side resources (HTTP fields, requests, streams, pollables)
    /// at once than a call may.
    #[error(
        "provider {provider} held more than {limit} host resources (HTTP fields, requests, streams) at once and was stopped"
    )]
    ResourceLimit {
        /// The provider.
        provider: String,
        /// The limit.
        limit: usize,
    },
    /// The guest handed the host more data in one transfer (a call's result or one host
    /// call's arguments) than the host copies out of a guest. Aliased lists are counted
    /// element by element, so a million entries pointing at one buffer are counted as
    /// a million copies.
    #[error(
        "provider {provider} tried to hand the host more than {limit} bytes at once (a result or a host call's arguments) and was stopped"
    )]
    TransferLimit {
        /// The provider.
        provider: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The providers installed would be allowed more instances at once than the runtime's
    /// pool holds, so one could take the slots another was promised.
    #[error(
        "provider {provider} may run {requested} instances at once, but the runtime holds {pool} in all and the other providers are granted {others} of them; lower its spec.limits.maxConcurrentInstances or another provider's"
    )]
    InstancePool {
        /// The provider being installed.
        provider: String,
        /// Its `maxConcurrentInstances`.
        requested: u32,
        /// The sum of the other providers' `maxConcurrentInstances`.
        others: u32,
        /// The instances of the runtime's pool.
        pool: u32,
    },
    /// The guest trapped (panicked, hit `unreachable`, …).
    #[error("provider {provider} crashed: {message}")]
    Trap {
        /// The provider.
        provider: String,
        /// The trap, with host-side egress refusals appended.
        message: String,
    },
}

impl RuntimeError {
    /// A stable, PascalCase reason for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RuntimeError::Engine(_) => "RuntimeError",
            RuntimeError::InvalidGrant(_) => "InvalidGrant",
            RuntimeError::Tls(_) => "InvalidTLSConfig",
            RuntimeError::Cache { .. } => "ComponentCacheError",
            RuntimeError::Compile(_) => "InvalidProviderModule",
            RuntimeError::Link(_) => "ProviderImportsNotGranted",
            RuntimeError::ProviderNotFound(_) => "ProviderNotFound",
            RuntimeError::ConfigSchema { .. } => "InvalidProviderConfig",
            RuntimeError::CpuDeadline { .. } => "ProviderCPUDeadlineExceeded",
            RuntimeError::Timeout { .. } | RuntimeError::Stalled { .. } => "ProviderTimeout",
            RuntimeError::MemoryLimit { .. } => "ProviderMemoryLimitExceeded",
            RuntimeError::ResourceLimit { .. } => "ProviderResourceLimitExceeded",
            RuntimeError::TransferLimit { .. } => "ProviderTransferLimitExceeded",
            RuntimeError::InstancePool { .. } => "InstancePoolOvercommitted",
            RuntimeError::Trap { .. } => "ProviderCrashed",
        }
    }
}

/// What a loaded provider says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Short name.
    pub name: String,
    /// Version.
    pub version: String,
    /// One sentence.
    pub description: String,
    /// What it supports.
    pub capabilities: Capabilities,
    /// JSON Schema of its configuration.
    pub config_schema: serde_json::Value,
}

/// A provider installed in the runtime under a name.
pub struct LoadedProvider {
    /// The name stores use under `spec.provider`.
    pub name: String,
    /// `sha256:` digest of the component.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// What it says about itself.
    pub info: ProviderInfo,
    /// Where the compiled code came from.
    pub origin: Origin,
    /// Its grants.
    pub grants: Grants,
    name_arc: Arc<str>,
    patterns: Arc<[HostPattern]>,
    address_policy: AddressPolicy,
    egress_hash: u64,
    validator: jsonschema::Validator,
    pre: ProviderPre<Sandbox>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for LoadedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedProvider")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Identity of one store for its cache and connection pool: a changed configuration
/// gets new ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StoreKey {
    provider: String,
    digest: String,
    store: StoreInfo,
    config_hash: u64,
    tls_hash: u64,
    /// The provider's egress grants: a store's pool is rebuilt when they change, even if
    /// the module did not.
    egress_hash: u64,
}

/// What the runtime keeps for one store configuration, computed on its first call and
/// shared by every later one: the provider's cache, the connection pool, the credential
/// policy and the schema verdict.
struct StoreState {
    config_text: String,
    cache: Arc<StoreCache>,
    client: Option<EgressClient>,
    policy: CredentialPolicy,
    schema_error: Option<String>,
    tokens: Arc<TokenCache>,
    /// Calls of this store running at once: a share of the provider's instances, so one
    /// store's slow calls cannot hold them all.
    permits: Arc<Semaphore>,
    /// Whether the backend stopped answering this store's calls.
    stall: stall::Stall,
}

/// One store may run at most this fraction of its provider's concurrent instances
/// (rounded up): 4 of the default 16.
const STORE_SHARE_OF_INSTANCES: u32 = 4;

/// The concurrent calls one store of a provider allowed `provider_max` may run.
fn store_instances(provider_max: u32) -> usize {
    provider_max.max(1).div_ceil(STORE_SHARE_OF_INSTANCES) as usize
}

/// Host-side resources (HTTP fields, requests, bodies, streams, pollables) a call may hold
/// at once. A request needs about a dozen; with [`FIELD_SIZE_LIMIT`] this bounds the HTTP
/// fields one call can pin to 16 MiB (bodies have their own bounds, per request).
pub const MAX_HOST_RESOURCES: usize = 512;
/// Bytes (in memory, roughly) of one set of HTTP fields a guest builds.
const FIELD_SIZE_LIMIT: usize = 32 << 10;
/// Bytes the host copies out of a guest in one transfer: a call's result, or the arguments
/// of one host call. Sixteen times a Kubernetes Secret's 1 MiB, so a batched get that fills
/// several Secrets fits, while a guest cannot make the host allocate more than a quarter of
/// the default 64 MiB memory limit per transfer, however its lists alias.
pub const MAX_TRANSFER_BYTES: usize = 16 << 20;

/// Store configurations remembered at most; past this the map starts over, which only
/// costs a recomputation (and drops provider caches of stores not seen since).
const MAX_STORES: usize = 10_000;

/// The runtime. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    host: Host,
    providers: RwLock<HashMap<String, Arc<LoadedProvider>>>,
    stores: Mutex<HashMap<StoreKey, Arc<StoreState>>>,
    credentials: Credentials,
    resolver: Arc<dyn Resolver>,
    /// What the caches of all stores may hold together.
    cache_budget: Arc<CacheBudget>,
    /// Instances of the pool, one permit each, taken by every instantiation. Installs keep
    /// the providers' shares within it, so a provider waits only on its own share.
    instances: Arc<Semaphore>,
    pool: u32,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .providers
            .read()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("Runtime")
            .field("providers", &names)
            .finish_non_exhaustive()
    }
}

fn hash_text(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Runtime {
    /// A runtime with the OS resolver.
    pub fn new(config: &EngineConfig, credentials: Credentials) -> Result<Self, RuntimeError> {
        Self::with_resolver(config, credentials, Arc::new(SystemResolver))
    }

    /// A runtime resolving host names with `resolver` (tests map names to addresses).
    pub fn with_resolver(
        config: &EngineConfig,
        credentials: Credentials,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, RuntimeError> {
        Ok(Runtime {
            inner: Arc::new(Inner {
                host: Host::new(config)?,
                providers: RwLock::default(),
                stores: Mutex::default(),
                credentials,
                resolver,
                cache_budget: Arc::new(CacheBudget::new(config.max_cache_bytes)),
                instances: Arc::new(Semaphore::new(config.max_instances.max(1) as usize)),
                pool: config.max_instances.max(1),
            }),
        })
    }

    /// Loads `wasm` and installs it as provider `name` with `grants`, replacing any
    /// provider of that name: calls already running finish on the old component, new
    /// calls use the new one. Fails, leaving the old one in place, when the module does
    /// not compile, imports what is not granted or does not describe itself.
    pub async fn install(
        &self,
        name: &str,
        wasm: &[u8],
        grants: Grants,
    ) -> Result<Arc<LoadedProvider>, RuntimeError> {
        self.check_share(name, &grants)?;
        // Compiling a component takes seconds (a minute for a large one in a debug build):
        // on a blocking thread, so the controllers' tokio workers keep reconciling meanwhile.
        let inner = self.inner.clone();
        let bytes = wasm.to_vec();
        let (component, digest, origin) =
            tokio::task::spawn_blocking(move || inner.host.component(&bytes))
                .await
                .map_err(|e| RuntimeError::Compile(format!("the compile task failed: {e}")))??;
        let pre = self
            .inner
            .host
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::Link(link_message(&e)))?;
        let pre = ProviderPre::new(pre).map_err(|e| {
            RuntimeError::Link(format!(
                "it does not export airlock:provider/secrets@0.1.0 (world airlock:provider/provider): {e:#}"
            ))
        })?;
        let patterns: Arc<[HostPattern]> = grants.allowed_outbound_hosts.clone().into();
        let address_policy = AddressPolicy::new(&grants.allowed_cidrs, &patterns);
        let egress_hash = hash_text(&format!(
            "{:?}",
            (
                &grants.allowed_outbound_hosts,
                &grants.allowed_cidrs,
                &grants.ca_bundle_pem,
                &grants.host_aliases,
                grants.limits.connect_timeout,
            )
        ));
        let name_arc: Arc<str> = name.into();
        let info = self.describe(&pre, &name_arc, &grants).await?;
        let validator = jsonschema::validator_for(&info.config_schema).map_err(|e| {
            RuntimeError::Link(format!("its config-schema is not a valid JSON Schema: {e}"))
        })?;
        let provider = Arc::new(LoadedProvider {
            name: name.to_string(),
            size: wasm.len(),
            digest,
            info,
            origin,
            permits: Arc::new(Semaphore::new(
                grants.limits.max_concurrent_instances.max(1) as usize,
            )),
            grants,
            name_arc,
            patterns,
            address_policy,
            egress_hash,
            validator,
            pre,
        });
        let mut providers = self
            .inner
            .providers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // Checked again under the lock: another install may have run meanwhile.
        self.share_fits(&providers, name, &provider.grants)?;
        providers.insert(name.to_string(), provider.clone());
        Ok(provider)
    }

    /// Whether `grants` leave the instances of every other installed provider available.
    fn check_share(&self, name: &str, grants: &Grants) -> Result<(), RuntimeError> {
        let providers = self
            .inner
            .providers
            .read()
            .unwrap_or_else(|p| p.into_inner());
        self.share_fits(&providers, name, grants)
    }

    fn share_fits(
        &self,
        providers: &HashMap<String, Arc<LoadedProvider>>,
        name: &str,
        grants: &Grants,
    ) -> Result<(), RuntimeError> {
        let share = |g: &Grants| g.limits.max_concurrent_instances.max(1);
        let others: u32 = providers
            .iter()
            .filter(|(other, _)| other.as_str() != name)
            .map(|(_, p)| share(&p.grants))
            .fold(0, u32::saturating_add);
        let requested = share(grants);
        if others.saturating_add(requested) > self.inner.pool {
            return Err(RuntimeError::InstancePool {
                provider: name.to_string(),
                requested,
                others,
                pool: self.inner.pool,
            });
        }
        Ok(())
    }

    /// A slot of the instance pool.
    async fn instance_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, RuntimeError> {
        self.inner
            .instances
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RuntimeError::Engine("the runtime is shutting down".into()))
    }

    /// Removes provider `name`.
    pub fn uninstall(&self, name: &str) -> bool {
        self.inner
            .providers
            .write()
            .map(|mut p| p.remove(name).is_some())
            .unwrap_or(false)
    }

    /// The provider installed as `name`.
    pub fn provider(&self, name: &str) -> Option<Arc<LoadedProvider>> {
        self.inner.providers.read().ok()?.get(name).cloned()
    }

    /// Instantiates provider `name` in a fresh sandbox and calls its `metadata` export:
    /// the runtime's own per-call cost with no provider work, and a liveness check.
    pub async fn ping(&self, name: &str) -> Result<(), RuntimeError> {
        let provider = self
            .provider(name)
            .ok_or_else(|| RuntimeError::ProviderNotFound(name.to_string()))?;
        let _permit = provider
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RuntimeError::Engine("provider is shutting down".into()))?;
        let _slot = self.instance_slot().await?;
        let mut store = self.new_store(
            provider.name_arc.clone(),
            &provider.grants,
            &provider.patterns,
            None,
            empty_store(),
            Arc::default(),
            CredentialPolicy::from_config(&serde_json::Value::Null, &empty_store(), false),
            Arc::default(),
        );
        let run = async {
            let bindings = provider.pre.instantiate_async(&mut store).await?;
            bindings
                .airlock_provider_secrets()
                .call_metadata(&mut store)
                .await
        };
        match run.await {
            Ok(_) => Ok(()),
            Err(e) => Err(trap_error(&e, store.data(), &provider.grants)),
        }
    }

    /// Metadata, capabilities and schema, read from a fresh instance.
    async fn describe(
        &self,
        pre: &ProviderPre<Sandbox>,
        name: &Arc<str>,
        grants: &Grants,
    ) -> Result<ProviderInfo, RuntimeError> {
        let store_info = StoreInfo {
            kind: StoreKind::ClusterSecretStore,
            name: String::new(),
            namespace: String::new(),
        };
        let mut store = self.new_store(
            name.clone(),
            grants,
            &[].into(),
            None,
            store_info,
            Arc::default(),
            CredentialPolicy::from_config(&serde_json::Value::Null, &empty_store(), false),
            Arc::default(),
        );
        let _slot = self.instance_slot().await?;
        let run = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            let guest = bindings.airlock_provider_secrets();
            let metadata = guest.call_metadata(&mut store).await?;
            let capabilities = guest.call_capabilities(&mut store).await?;
            let schema = guest.call_config_schema(&mut store).await?;
            wasmtime::Result::Ok((metadata, capabilities, schema))
        };
        let (metadata, capabilities, schema) = match self
            .inner
            .host
            .deadlines
            .timeout(grants.limits.call_timeout, run)
            .await
        {
            Err(_) => {
                return Err(RuntimeError::Timeout {
                    provider: name.to_string(),
                    timeout: grants.limits.call_timeout,
                });
            }
            Ok(r) => r.map_err(|e| trap_error(&e, store.data(), grants))?,
        };
        let config_schema: serde_json::Value = serde_json::from_str(&schema)
            .map_err(|e| RuntimeError::Link(format!("its config-schema is not JSON: {e}")))?;
        Ok(ProviderInfo {
            name: metadata.name,
            version: metadata.version,
            description: metadata.description,
            capabilities: capabilities_from_wit(capabilities),
            config_schema,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn new_store(
        &self,
        provider: Arc<str>,
        grants: &Grants,
        patterns: &Arc<[HostPattern]>,
        client: Option<EgressClient>,
        store_info: StoreInfo,
        cache: Arc<StoreCache>,
        policy: CredentialPolicy,
        tokens: Arc<TokenCache>,
    ) -> Store<Sandbox> {
        let limits = &grants.limits;
        let egress = EgressHooks::new(
            provider.clone(),
            patterns.clone(),
            client,
            limits.max_request_bytes,
            limits.max_response_bytes,
            limits.call_timeout,
            self.inner.host.deadlines.clone(),
        );
        // No environment, no arguments, no stdin, stdout and stderr discarded.
        let wasi = WasiCtxBuilder::new().build();
        let sandbox = Sandbox {
            wasi,
            table: {
                // Each resource is host memory the guest's memory limit does not count.
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_HOST_RESOURCES);
                table
            },
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(FIELD_SIZE_LIMIT);
                http
            },
            egress,
            limiter: Limiter::new(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX)),
            provider,
            store: store_info,
            cache,
            credentials: self.inner.credentials.clone(),
            policy,
            tokens,
            log_lines: 0,
            panic: None,
            credential_requests: 0,
            denials_logged: 0,
            cache_refused: false,
            credentials_denied: Default::default(),
            held_logs: Vec::new(),
            redactor: Redactor::default(),
            ticks: 0,
            cpu_exhausted: false,
        };
        let mut store = Store::new(&self.inner.host.engine, sandbox);
        store.limiter(|s| &mut s.limiter);
        // What wasmtime copies out of the guest per transfer; its default (128 MiB) would let
        // one call make the host allocate twice the guest's whole memory limit.
        store.set_hostcall_fuel(MAX_TRANSFER_BYTES);
        let budget = (limits.cpu_time.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(1);
        // Each time the deadline passes while the guest runs, count a tick and yield to
        // the executor, so a busy guest shares the thread; stop it when the budget is spent.
        store.epoch_deadline_callback(move |mut ctx| {
            let data = ctx.data_mut();
            data.ticks += 1;
            if data.ticks > budget {
                data.cpu_exhausted = true;
                return Err(wasmtime::Error::msg("cpu budget exhausted"));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// The state of `store` for `provider`, created on first use.
    fn store_state(
        &self,
        provider: &LoadedProvider,
        store: &StoreContext,
    ) -> Result<Arc<StoreState>, RuntimeError> {
        let config_text = store.config.to_string();
        let key = StoreKey {
            provider: provider.name.clone(),
            digest: provider.digest.clone(),
            store: store.info.clone(),
            config_hash: hash_text(&config_text),
            tls_hash: store.tls_fingerprint(),
            egress_hash: provider.egress_hash,
        };
        let mut stores = self.inner.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = stores.get(&key) {
            return Ok(state.clone());
        }
        let client = if provider.patterns.is_empty() {
            None
        } else {
            Some(EgressClient::new(
                provider.address_policy.clone(),
                &store.tls,
                &provider.grants,
                self.inner.resolver.clone(),
            )?)
        };
        let state = Arc::new(StoreState {
            schema_error: validate_config(provider, &store.config).err(),
            policy: CredentialPolicy::from_config(
                &store.config,
                &store.info,
                provider.grants.allow_operator_token,
            ),
            cache: Arc::new(StoreCache::new(self.inner.cache_budget.clone())),
            client,
            config_text,
            tokens: Arc::default(),
            permits: Arc::new(Semaphore::new(store_instances(
                provider.grants.limits.max_concurrent_instances,
            ))),
            stall: stall::Stall::default(),
        });
        if stores.len() >= MAX_STORES {
            stores.clear();
        }
        stores.insert(key, state.clone());
        Ok(state)
    }

    /// Runs `op` against a freshly opened client of `store`'s provider, under its limits.
    async fn call<T: Secrets>(
        &self,
        store: &StoreContext,
        call: &'static str,
        op: impl GuestOp<T>,
    ) -> Result<T, BackendError> {
        self.call_noting_refusals(store, call, &[], op)
            .await
            .map(|(value, _)| value)
    }

    /// Like [`Runtime::call`], with the secret bytes handed to the guest (`inputs`), and
    /// also returning what the host refused and the call's secrets, for results that carry
    /// their own errors (batched gets).
    async fn call_noting_refusals<T: Secrets>(
        &self,
        store: &StoreContext,
        call: &'static str,
        inputs: &[&[u8]],
        op: impl GuestOp<T>,
    ) -> Result<(T, CallNotes), BackendError> {
        let provider = self
            .provider(&store.provider)
            .ok_or_else(|| RuntimeError::ProviderNotFound(store.provider.clone()))?;
        let state = self.store_state(&provider, store)?;
        if let Some(message) = &state.schema_error {
            return Err(RuntimeError::ConfigSchema {
                provider: store.provider.clone(),
                message: message.clone(),
            }
            .into());
        }
        // The store's own permit first, so a store waiting on its share holds none of the
        // provider's.
        let shutting_down = |_| RuntimeError::Engine("provider is shutting down".into());
        let _store_permit = state
            .stall
            .admit(&state.permits)
            .await
            .map_err(|r| match r {
                stall::Refused::Stalled { ago } => RuntimeError::Stalled {
                    provider: provider.name.clone(),
                    timeout: provider.grants.limits.call_timeout,
                    ago_secs: ago.as_secs(),
                },
                stall::Refused::Closed => RuntimeError::Engine("provider is shutting down".into()),
            })?;
        let _permit = provider
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(shutting_down)?;
        let _slot = self.instance_slot().await?;
        let mut wstore = self.new_store(
            provider.name_arc.clone(),
            &provider.grants,
            &provider.patterns,
            state.client.clone(),
            store.info.clone(),
            state.cache.clone(),
            state.policy.clone(),
            state.tokens.clone(),
        );
        for input in inputs {
            wstore.data_mut().redactor.add(input);
        }
        let config_text = &state.config_text;
        let info = store_info_to_wit(&store.info);
        let timeout = provider.grants.limits.call_timeout;
        let started = std::time::Instant::now();
        let run = async {
            let bindings = provider.pre.instantiate_async(&mut wstore).await?;
            let opened = bindings
                .airlock_provider_secrets()
                .client()
                .call_open(&mut wstore, config_text, &info)
                .await?;
            match opened {
                Ok(handle) => op(&mut wstore, &bindings, handle).await,
                Err(e) => Ok(Err(e)),
            }
        };
        let outcome = self.inner.host.deadlines.timeout(timeout, run).await;
        let data = wstore.data_mut();
        if let Ok(Ok(Ok(value))) = &outcome {
            value.each_secret(&mut |bytes| data.redactor.add(bytes));
        }
        data.flush_logs();
        // Refusals quote guest-chosen hosts, which may spell the call's secrets: logged once
        // the call's secrets are all known, through its redactor.
        for refusal in data.egress.refusals() {
            let refusal = data.redactor.redact_string(refusal);
            tracing::warn!(target: "airlock::egress", provider = %provider.name, "{refusal}");
        }
        crate::metrics::global()
            .sandbox_call(&call_usage(&provider, store, call, started, &outcome, data));
        if outcome.is_err() {
            state.stall.timed_out();
        } else {
            state.stall.answered();
        }
        let answer = match outcome {
            Err(_) => {
                return Err(RuntimeError::Timeout {
                    provider: provider.name.clone(),
                    timeout,
                }
                .into());
            }
            Ok(Err(trap)) => return Err(trap_error(&trap, data, &provider.grants).into()),
            Ok(Ok(answer)) => answer,
        };
        let notes = CallNotes {
            refusals: data.egress.refusals(),
            redactor: std::mem::take(&mut data.redactor),
        };
        match answer {
            Err(e) => Err(provider_error(e, &notes).into()),
            Ok(value) => Ok((value, notes)),
        }
    }
}

/// What the host learned during a call: the requests it refused and the secret bytes the
/// guest touched.
struct CallNotes {
    refusals: Vec<String>,
    redactor: Redactor,
}

/// The secret bytes in an operation's result, so that the guest's log lines and errors
/// cannot carry them out.
trait Secrets {
    /// Calls `f` with each secret value.
    fn each_secret(&self, _f: &mut dyn FnMut(&[u8])) {}

    /// Whether a result that carries its own errors (a batched get) holds one.
    fn has_error(&self) -> bool {
        false
    }
}

impl Secrets for () {}
impl Secrets for bool {}
impl Secrets for Validation {}

impl Secrets for SecretMap {
    fn each_secret(&self, f: &mut dyn FnMut(&[u8])) {
        for (_, value) in self {
            f(value.expose());
        }
    }
}

impl Secrets for Option<SecretMap> {
    fn each_secret(&self, f: &mut dyn FnMut(&[u8])) {
        if let Some(map) = self {
            map.each_secret(f);
        }
    }
}

impl Secrets for Vec<Result<Option<Vec<u8>>, wit::Error>> {
    fn each_secret(&self, f: &mut dyn FnMut(&[u8])) {
        for value in self.iter().flatten().flatten() {
            f(value);
        }
    }

    fn has_error(&self) -> bool {
        self.iter().any(Result::is_err)
    }
}

/// One operation on an opened guest client.
trait GuestOp<T>:
    AsyncFnOnce(
    &mut Store<Sandbox>,
    &bindings::Provider,
    ResourceAny,
) -> wasmtime::Result<Result<T, wit::Error>>
{
}

impl<T, F> GuestOp<T> for F where
    F: AsyncFnOnce(
        &mut Store<Sandbox>,
        &bindings::Provider,
        ResourceAny,
    ) -> wasmtime::Result<Result<T, wit::Error>>
{
}

fn empty_store() -> StoreInfo {
    StoreInfo {
        kind: StoreKind::ClusterSecretStore,
        name: String::new(),
        namespace: String::new(),
    }
}

impl StoreContext {
    fn tls_fingerprint(&self) -> u64 {
        use secrecy::ExposeSecret;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.tls.ca_bundle_pem.hash(&mut h);
        self.tls.client_cert_pem.hash(&mut h);
        self.tls
            .client_key_pem
            .as_ref()
            .map(|k| k.expose_secret())
            .hash(&mut h);
        h.finish()
    }
}

/// Validates a store's provider config against the provider's schema.
fn validate_config(provider: &LoadedProvider, config: &serde_json::Value) -> Result<(), String> {
    let errors: Vec<String> = provider
        .validator
        .iter_errors(config)
        .take(5)
        .map(|e| {
            let path = e.instance_path.to_string();
            let path = if path.is_empty() {
                "(root)".to_string()
            } else {
                path
            };
            format!("{path}: {e}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Explains a link failure in terms of the sandbox.
fn link_message(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    for forbidden in ["wasi:filesystem", "wasi:sockets"] {
        if text.contains(forbidden) {
            return format!(
                "it imports {forbidden}, which Airlock never grants to providers (allowed: wasi:http, wasi:io, wasi:clocks, wasi:random, wasi:cli stdio/terminal/environment/exit, airlock:provider); {text}"
            );
        }
    }
    text
}

/// Classifies a trap using what the sandbox observed.
fn trap_error(e: &wasmtime::Error, data: &Sandbox, grants: &Grants) -> RuntimeError {
    let provider = data.provider.to_string();
    if data.cpu_exhausted {
        return RuntimeError::CpuDeadline {
            provider,
            budget: grants.limits.cpu_time,
        };
    }
    if data.limiter.memory_exhausted {
        return RuntimeError::MemoryLimit {
            provider,
            limit: grants.limits.memory_bytes,
        };
    }
    // wasmtime's error type for this is private; its message is stable across releases.
    if e.chain().any(|cause| {
        cause
            .to_string()
            .contains("fuel allocated for hostcalls has been exhausted")
    }) {
        return RuntimeError::TransferLimit {
            provider,
            limit: MAX_TRANSFER_BYTES,
        };
    }
    if e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        )
    }) {
        return RuntimeError::ResourceLimit {
            provider,
            limit: MAX_HOST_RESOURCES,
        };
    }
    // The reason first (wasmtime puts it after the backtrace), what the guest reported on
    // panicking, then the innermost frames.
    let mut message = e.root_cause().to_string();
    if let Some(panic) = &data.panic {
        message.push_str("; the provider panicked at ");
        message.push_str(panic.trim_start_matches("panicked at "));
    }
    let full = format!("{e:#}");
    let frames: Vec<&str> = full
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .take(5)
        .collect();
    if !frames.is_empty() {
        message.push_str("; wasm backtrace: ");
        message.push_str(&frames.join(" | "));
    }
    let refusals = data.egress.refusals();
    if !refusals.is_empty() {
        message.push_str("; host: ");
        message.push_str(&refusals.join("; "));
    }
    // The panic report is guest text: it may quote the call's secrets.
    let message = data.redactor.redact_string(message);
    RuntimeError::Trap { provider, message }
}

/// What one call used and how it ended, for the sandbox metrics.
fn call_usage<'a, T: Secrets>(
    provider: &'a LoadedProvider,
    store: &'a StoreContext,
    call: &'static str,
    started: std::time::Instant,
    outcome: &Result<wasmtime::Result<Result<T, wit::Error>>, deadline::Elapsed>,
    data: &Sandbox,
) -> crate::metrics::SandboxCall<'a> {
    let limits = &provider.grants.limits;
    let trap = match outcome {
        Err(_) => Some("ProviderTimeout"),
        Ok(Err(e)) => Some(trap_error(e, data, &provider.grants).reason()),
        Ok(Ok(_)) => None,
    };
    crate::metrics::SandboxCall {
        provider: &provider.name,
        store: &store.info,
        call,
        elapsed: started.elapsed(),
        memory_peak: data.limiter.peak_bytes,
        cpu_ticks: (
            data.ticks,
            (limits.cpu_time.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64,
        ),
        credentials: (
            data.credential_requests,
            data.credentials_denied
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
        ok: matches!(outcome, Ok(Ok(Ok(value))) if !value.has_error()),
        trap,
    }
}

/// Converts the guest's error, hiding the call's secrets in its text and adding what the
/// host refused during the call.
fn provider_error(e: wit::Error, notes: &CallNotes) -> ProviderError {
    // The refusals quote guest-chosen URLs, which may embed the call's secrets, so the
    // message is redacted whole, after they are added.
    let with_host = |m: String| {
        let m = if notes.refusals.is_empty() {
            m
        } else {
            format!("{m} (host: {})", notes.refusals.join("; "))
        };
        notes.redactor.redact_string(m)
    };
    match e {
        wit::Error::InvalidConfig(m) => ProviderError::InvalidConfig(with_host(m)),
        wit::Error::InvalidRequest(m) => ProviderError::InvalidRequest(with_host(m)),
        wit::Error::AccessDenied(m) => ProviderError::AccessDenied(with_host(m)),
        wit::Error::RateLimited(r) => ProviderError::RateLimited {
            retry_after: r.retry_after_ms.map(Duration::from_millis),
            message: with_host(r.message),
        },
        wit::Error::Unavailable(m) => ProviderError::Unavailable(with_host(m)),
        wit::Error::Unsupported(m) => ProviderError::Unsupported(with_host(m)),
        wit::Error::Other(m) => ProviderError::Other(with_host(m)),
    }
}

fn capabilities_from_wit(c: wit::StoreCapabilities) -> Capabilities {
    match c {
        wit::StoreCapabilities::ReadOnly => Capabilities::ReadOnly,
        wit::StoreCapabilities::WriteOnly => Capabilities::WriteOnly,
        wit::StoreCapabilities::ReadWrite => Capabilities::ReadWrite,
    }
}

fn store_info_to_wit(info: &StoreInfo) -> wit::StoreInfo {
    wit::StoreInfo {
        kind: match info.kind {
            StoreKind::SecretStore => wit::StoreKind::SecretStore,
            StoreKind::ClusterSecretStore => wit::StoreKind::ClusterSecretStore,
        },
        name: info.name.clone(),
        namespace: info.namespace.clone(),
    }
}

fn remote_ref_to_wit(r: &RemoteRef) -> wit::RemoteRef {
    wit::RemoteRef {
        key: r.key.clone(),
        property: r.property.clone(),
        version: r.version.clone(),
        metadata_policy: match r.metadata_policy {
            MetadataPolicy::None => wit::MetadataPolicy::None,
            MetadataPolicy::Fetch => wit::MetadataPolicy::Fetch,
        },
    }
}

fn push_ref_to_wit(r: &PushRef) -> wit::PushRef {
    wit::PushRef {
        remote_key: r.remote_key.clone(),
        property: r.property.clone(),
    }
}

fn entries_from_wit(entries: Vec<wit::SecretEntry>) -> SecretMap {
    entries
        .into_iter()
        .map(|e| (e.key, SecretValue::new(e.value)))
        .collect()
}

impl Backend for Runtime {
    fn capabilities(&self, store: &StoreContext) -> Result<Capabilities, BackendError> {
        self.provider(&store.provider)
            .map(|p| p.info.capabilities)
            .ok_or_else(|| RuntimeError::ProviderNotFound(store.provider.clone()).into())
    }

    async fn validate(&self, store: &StoreContext) -> Result<Validation, BackendError> {
        self.call(store, "validate", async |s, b, c| {
            let r = b
                .airlock_provider_secrets()
                .client()
                .call_validate(s, c)
                .await?;
            Ok(r.map(|v| match v {
                wit::Validation::Ready => Validation::Ready,
                wit::Validation::Unknown => Validation::Unknown,
            }))
        })
        .await
    }

    async fn get_secrets(
        &self,
        store: &StoreContext,
        refs: &[RemoteRef],
    ) -> Result<Vec<GetResult>, BackendError> {
        let wit_refs: Vec<wit::RemoteRef> = refs.iter().map(remote_ref_to_wit).collect();
        let (results, notes) = self
            .call_noting_refusals(store, "get-secrets", &[], async |s, b, c| {
                let r = b
                    .airlock_provider_secrets()
                    .client()
                    .call_get_secrets(s, c, &wit_refs)
                    .await?;
                Ok(Ok(r))
            })
            .await?;
        if results.len() != refs.len() {
            return Err(RuntimeError::Trap {
                provider: store.provider.clone(),
                message: format!(
                    "get-secrets answered {} results for {} refs",
                    results.len(),
                    refs.len()
                ),
            }
            .into());
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.map(|v| v.map(SecretValue::new))
                    .map_err(|e| provider_error(e, &notes))
            })
            .collect())
    }

    async fn get_secret_map(
        &self,
        store: &StoreContext,
        reference: &RemoteRef,
    ) -> Result<Option<SecretMap>, BackendError> {
        let r = remote_ref_to_wit(reference);
        self.call(store, "get-secret-map", async |s, b, c| {
            let out = b
                .airlock_provider_secrets()
                .client()
                .call_get_secret_map(s, c, &r)
                .await?;
            Ok(out.map(|m| m.map(entries_from_wit)))
        })
        .await
    }

    async fn get_all_secrets(
        &self,
        store: &StoreContext,
        criteria: &FindCriteria,
    ) -> Result<SecretMap, BackendError> {
        let find = wit::Find {
            path: criteria.path.clone(),
            name_regexp: criteria.name_regexp.clone(),
            tags: criteria
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        self.call(store, "get-all-secrets", async |s, b, c| {
            let out = b
                .airlock_provider_secrets()
                .client()
                .call_get_all_secrets(s, c, &find)
                .await?;
            Ok(out.map(entries_from_wit))
        })
        .await
    }

    async fn push_secret(
        &self,
        store: &StoreContext,
        request: &PushRequest,
    ) -> Result<(), BackendError> {
        let req = wit::PushRequest {
            remote: push_ref_to_wit(&request.remote),
            value: request.value.expose().to_vec(),
            metadata: request.metadata.as_ref().map(|m| m.to_string()),
        };
        self.call_noting_refusals(
            store,
            "push-secret",
            &[request.value.expose()],
            async |s, b, c| {
                b.airlock_provider_secrets()
                    .client()
                    .call_push_secret(s, c, &req)
                    .await
            },
        )
        .await
        .map(|((), _)| ())
    }

    async fn delete_secret(
        &self,
        store: &StoreContext,
        reference: &PushRef,
    ) -> Result<(), BackendError> {
        let r = push_ref_to_wit(reference);
        self.call(store, "delete-secret", async |s, b, c| {
            b.airlock_provider_secrets()
                .client()
                .call_delete_secret(s, c, &r)
                .await
        })
        .await
    }

    async fn secret_exists(
        &self,
        store: &StoreContext,
        reference: &PushRef,
    ) -> Result<bool, BackendError> {
        let r = push_ref_to_wit(reference);
        self.call(store, "secret-exists", async |s, b, c| {
            b.airlock_provider_secrets()
                .client()
                .call_secret_exists(s, c, &r)
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_a_refused_url_is_redacted_from_the_providers_error() {
        let mut redactor = Redactor::default();
        redactor.add(b"hunter2-db-password");
        let notes = CallNotes {
            refusals: vec![
                "outbound host https://hunter2-db-password.evil.example:443 is not granted to provider p"
                    .into(),
            ],
            redactor,
        };
        let e = provider_error(
            wit::Error::Unavailable("exfiltration failed".into()),
            &notes,
        );
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("is not granted to provider p"), "{text}");
    }
}
