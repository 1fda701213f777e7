//! The wasmtime engine: component model, epoch interruption, the pooling allocator, the
//! linker with only the interfaces a provider may import, and compilation cached by
//! content digest — in memory and precompiled on disk.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeError;
use super::bindings::airlock::provider::{cache, credentials, log};
use super::deadline::Deadlines;
use super::sandbox::Sandbox;

/// How often the epoch advances: the unit of the CPU budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

// What one provider instance may contain. A Rust component built for wasm32-wasip2 has one
// linear memory, two tables and three core instances; memories and tables are twice that.
// Core instances hold no pool reservation of their own, and an interpreter linked from
// several shared libraries (componentize-py) instantiates a dozen modules over one memory,
// so their bound is wider. The pool holds this much per instance slot, so one component
// cannot take the slots of others, and the store's limiter enforces the same counts where
// the pool is unavailable.
/// Linear memories one provider instance may have.
pub const MAX_MEMORIES: u32 = 2;
/// Tables one provider instance may have.
pub const MAX_TABLES: u32 = 4;
/// Core module instances one provider instance may have.
pub const MAX_CORE_INSTANCES: u32 = 32;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where precompiled components are kept; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may exist at once across all providers (pooling allocator slots).
    /// The providers' `max_concurrent_instances` together may not exceed it.
    pub max_instances: u32,
    /// The largest memory any provider may be granted.
    pub max_memory_bytes: u64,
    /// Bytes the provider caches of all stores may hold together.
    pub max_cache_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            // Sixteen providers at the default 16 instances each. A slot is address space
            // reserved, not memory: only slots in use at once are ever touched.
            max_instances: 256,
            max_memory_bytes: 256 << 20,
            max_cache_bytes: super::cache::DEFAULT_ALL_STORES_BYTES,
        }
    }
}

/// The engine, its linker and the compiled components.
pub struct Host {
    pub(super) engine: Engine,
    pub(super) linker: Linker<Sandbox>,
    cache_dir: Option<PathBuf>,
    compiled: Mutex<HashMap<String, Component>>,
    stop_ticker: Arc<AtomicBool>,
    /// Call deadlines and first-byte timeouts, fired by the epoch thread.
    pub(super) deadlines: Arc<Deadlines>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// `sha256:<hex>` of some bytes: the digest components are cached and reported by.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn engine_config(pooling: Option<&EngineConfig>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if let Some(settings) = pooling {
        let n = settings.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * MAX_CORE_INSTANCES)
            .total_memories(n * MAX_MEMORIES)
            .total_tables(n * MAX_TABLES)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .total_stacks(n)
            .max_memory_size(usize::try_from(settings.max_memory_bytes).unwrap_or(usize::MAX))
            // A fresh instance per call makes slot reset the hot path. With PAGEMAP_SCAN
            // (Linux 6.7+) wasmtime resets only the pages a call dirtied, by memset, inside
            // the keep-resident window: no madvise, so no TLB-shootdown IPIs across the
            // executor's threads and no page faults on the next instance. Elsewhere the
            // window is not memset blindly (auto falls back to madvise), and decommits
            // are batched.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(64 << 10)
            .decommit_batch_size(16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

struct IoTable;
impl HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links exactly what a provider may import: wasi:io, clocks, random, the stdio,
/// environment, terminal and exit interfaces Rust's std uses (with an empty environment, no
/// arguments and no stdin), wasi:http, and Airlock's own interfaces. Not linked:
/// wasi:filesystem and wasi:sockets — a component importing them fails to load.
fn linker(engine: &Engine) -> Result<Linker<Sandbox>, RuntimeError> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
    let link = |e: wasmtime::Error| RuntimeError::Engine(format!("linking host interfaces: {e:#}"));
    let mut l = Linker::<Sandbox>::new(engine);
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<Sandbox, IoTable>(&mut l, |t| {
        &mut t.table
    })
    .map_err(link)?;
    wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<Sandbox, IoTable>(&mut l, |t| {
        &mut t.table
    })
    .map_err(link)?;
    wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<Sandbox, IoTable>(&mut l, |t| {
        &mut t.table
    })
    .map_err(link)?;
    clocks::wall_clock::add_to_linker::<Sandbox, WasiClocks>(&mut l, Sandbox::clocks)
        .map_err(link)?;
    clocks::monotonic_clock::add_to_linker::<Sandbox, WasiClocks>(&mut l, Sandbox::clocks)
        .map_err(link)?;
    random::random::add_to_linker::<Sandbox, WasiRandom>(&mut l, Sandbox::random).map_err(link)?;
    random::insecure::add_to_linker::<Sandbox, WasiRandom>(&mut l, Sandbox::random)
        .map_err(link)?;
    random::insecure_seed::add_to_linker::<Sandbox, WasiRandom>(&mut l, Sandbox::random)
        .map_err(link)?;
    cli::exit::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::environment::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::stdin::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::stdout::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::stderr::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::terminal_input::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::terminal_output::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::terminal_stdin::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::terminal_stdout::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    cli::terminal_stderr::add_to_linker::<Sandbox, WasiCli>(&mut l, Sandbox::cli).map_err(link)?;
    super::egress::handler::add_to_linker(&mut l).map_err(link)?;
    log::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(&mut l, |s| s)
        .map_err(link)?;
    cache::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(&mut l, |s| s)
        .map_err(link)?;
    credentials::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(&mut l, |s| s)
        .map_err(link)?;
    Ok(l)
}

impl Host {
    /// Builds the engine (pooling allocator when the OS allows its reservation, on-demand
    /// otherwise), the linker and the epoch thread, which also fires deadlines.
    pub fn new(settings: &EngineConfig) -> Result<Self, RuntimeError> {
        let engine = match Engine::new(&engine_config(Some(settings))) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand instances");
                Engine::new(&engine_config(None))
                    .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?
            }
        };
        let linker = linker(&engine)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        let deadlines = Arc::new(Deadlines::default());
        let ticker_deadlines = deadlines.clone();
        std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                    ticker_deadlines.fire_due(std::time::Instant::now());
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("starting the epoch thread: {e}")))?;
        if let Some(dir) = &settings.cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::Cache {
                path: dir.clone(),
                source: e,
            })?;
        }
        Ok(Host {
            engine,
            linker,
            cache_dir: settings.cache_dir.clone(),
            compiled: Mutex::default(),
            stop_ticker: stop,
            deadlines,
        })
    }

    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let name = format!(
            "{}-{:016x}.cwasm",
            digest.trim_start_matches("sha256:"),
            h.finish()
        );
        self.cache_dir.as_ref().map(|d| d.join(name))
    }

    /// The compiled component for `bytes`: from memory, from the on-disk precompiled
    /// cache, or compiled now (and then cached). Returns it with its digest and where it
    /// came from.
    pub fn component(&self, bytes: &[u8]) -> Result<(Component, String, Origin), RuntimeError> {
        let digest = digest(bytes);
        if let Some(c) = self
            .compiled
            .lock()
            .ok()
            .and_then(|m| m.get(&digest).cloned())
        {
            return Ok((c, digest, Origin::Memory));
        }
        if let Some(path) = self.cache_path(&digest)
            && path.exists()
        {
            match self.load_precompiled(&path) {
                Ok(c) => {
                    self.remember(&digest, &c);
                    return Ok((c, digest, Origin::Disk));
                }
                Err(e) => tracing::warn!("ignoring unusable precompiled {}: {e:#}", path.display()),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            let text = format!("{e:#}");
            // The pooling allocator checks the counts when the component is loaded.
            if text.contains("transitively contains") {
                RuntimeError::Compile(format!(
                    "it needs more than one provider instance may have ({MAX_MEMORIES} linear \
                     memories, {MAX_TABLES} tables, {MAX_CORE_INSTANCES} core instances): {text}"
                ))
            } else {
                RuntimeError::Compile(text)
            }
        })?;
        if let Some(path) = self.cache_path(&digest)
            && let Err(e) = store_precompiled(&component, &path)
        {
            tracing::warn!(
                "could not cache precompiled component at {}: {e}",
                path.display()
            );
        }
        self.remember(&digest, &component);
        Ok((component, digest, Origin::Compiled))
    }

    fn remember(&self, digest: &str, component: &Component) {
        if let Ok(mut m) = self.compiled.lock() {
            m.insert(digest.to_string(), component.clone());
        }
    }

    #[allow(unsafe_code)]
    fn load_precompiled(&self, path: &Path) -> wasmtime::Result<Component> {
        // SAFETY: the file was written by `store_precompiled` of this program into the
        // operator's own cache directory, is named by the digest of the source component
        // and the engine's compatibility hash, and wasmtime checks its header against the
        // engine before use. Nothing else writes there.
        unsafe { Component::deserialize_file(&self.engine, path) }
    }
}

fn store_precompiled(component: &Component, path: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Where a component came from when loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Already compiled in this process.
    Memory,
    /// Loaded precompiled from the disk cache.
    Disk,
    /// Compiled from source now.
    Compiled,
}
