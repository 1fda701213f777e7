//! The `Provider` reconciler: reads the module a Provider names, loads it into the runtime
//! under the Provider's name with the Provider's grants, and reports what was loaded.

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, Error, find_ready, log_result, now, ready_condition};
use crate::backend::{Backend, Capabilities};
use crate::crd::common::Capabilities as CrdCapabilities;
use crate::crd::{ConditionStatus, Provider, ProviderSpec};
use crate::runtime::{Grants, Limits, Runtime, RuntimeError, digest};

/// The WIT world every provider implements, reported on the Provider's status.
pub const WORLD: &str = "airlock:provider/provider@0.1.0";

/// What was loaded for a Provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// `sha256:` digest of the module.
    pub digest: String,
    /// Size of the module in bytes.
    pub size: usize,
    /// What the provider supports.
    pub capabilities: Capabilities,
}

/// A [`Backend`] that can also load provider modules (the Wasm [`Runtime`]).
pub trait ModuleHost: Backend {
    /// Loads `wasm` as provider `name` with `grants`, replacing any older one.
    fn install_module(
        &self,
        name: &str,
        wasm: &[u8],
        grants: Grants,
    ) -> impl Future<Output = Result<Installed, RuntimeError>> + Send;

    /// The digest of the module loaded as `name`, if any.
    fn installed_digest(&self, name: &str) -> Option<String>;

    /// Unloads provider `name`; later calls for it fail with `ProviderNotFound`.
    fn uninstall_module(&self, name: &str) -> bool;
}

impl ModuleHost for Runtime {
    async fn install_module(
        &self,
        name: &str,
        wasm: &[u8],
        grants: Grants,
    ) -> Result<Installed, RuntimeError> {
        let loaded = self.install(name, wasm, grants).await?;
        Ok(Installed {
            digest: loaded.digest.clone(),
            size: loaded.size,
            capabilities: loaded.info.capabilities,
        })
    }

    fn installed_digest(&self, name: &str) -> Option<String> {
        self.provider(name).map(|p| p.digest.clone())
    }

    fn uninstall_module(&self, name: &str) -> bool {
        self.uninstall(name)
    }
}

/// Runs the Provider controller, and unloads the module of a deleted Provider (the module
/// lives only in this process, so no finalizer is needed).
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    let api: Api<Provider> = Api::all(ctx.client.clone());
    let deletions = {
        let ctx = ctx.clone();
        watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .for_each(move |event| {
                if let Ok(watcher::Event::Delete(p)) = event {
                    let name = p.name_any();
                    if ctx.backend.uninstall_module(&name) {
                        tracing::info!(provider = %name, "provider deleted; module unloaded");
                    }
                }
                futures::future::ready(())
            })
    };
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move { log_result("provider", r) });
    tokio::select! {
        () = controller => {}
        () = deletions => {}
    }
}

fn error_policy<B: ModuleHost>(p: Arc<Provider>, _: &Error, ctx: Arc<Context<B>>) -> Action {
    ctx.backoff(format!("provider/{}", p.name_any()))
}

/// Resolves `relative` inside `dir`, refusing absolute paths and `..`.
pub fn module_file(dir: &Path, relative: &str) -> Result<PathBuf, Error> {
    let path = Path::new(relative);
    let safe = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(Error::ModulePath(format!(
            "spec.module.path {relative:?} must be a relative path inside the providers directory (no leading /, no ..)"
        )));
    }
    Ok(dir.join(path))
}

/// The grants a Provider spec gives.
pub fn grants(spec: &ProviderSpec) -> Result<Grants, RuntimeError> {
    let l = &spec.limits;
    let defaults = Limits::default();
    let limits = Limits {
        memory_bytes: u64::try_from(l.memory_bytes).unwrap_or(defaults.memory_bytes),
        cpu_time: Duration::from_millis(u64::try_from(l.cpu_millis_per_call).unwrap_or(2_000)),
        max_response_bytes: u64::try_from(l.max_response_bytes)
            .unwrap_or(defaults.max_response_bytes),
        max_concurrent_instances: u32::try_from(l.max_concurrent_instances)
            .unwrap_or(defaults.max_concurrent_instances),
        ..defaults
    };
    let mut grants = Grants::parse(&spec.allowed_outbound_hosts, &spec.allowed_cidrs, limits)?;
    grants.allow_operator_token = spec.credentials.allow_operator_service_account_token;
    Ok(grants)
}

fn crd_capabilities(c: Capabilities) -> CrdCapabilities {
    match c {
        Capabilities::ReadOnly => CrdCapabilities::ReadOnly,
        Capabilities::WriteOnly => CrdCapabilities::WriteOnly,
        Capabilities::ReadWrite => CrdCapabilities::ReadWrite,
    }
}

async fn load<B: ModuleHost>(p: &Provider, ctx: &Context<B>) -> Result<Installed, Error> {
    let name = p.name_any();
    let Some(relative) = p.spec.module.path.as_deref() else {
        return Err(Error::Unsupported {
            reason: "OciNotSupportedYet",
            message: "loading provider modules from OCI registries is not supported yet; use spec.module.path".into(),
        });
    };
    let file = module_file(&ctx.config.providers_dir, relative)?;
    let wasm = tokio::fs::read(&file)
        .await
        .map_err(|source| Error::ModuleRead {
            path: relative.to_string(),
            source,
        })?;
    let grants = grants(&p.spec)?;
    let installed_here = ctx.backend.installed_digest(&name);
    let observed = p.status.as_ref().and_then(|s| s.observed_generation);
    let wanted = digest(&wasm);
    if installed_here.as_deref() == Some(wanted.as_str())
        && observed == p.meta().generation
        && let Some(info) = current_install(p, &ctx.backend, &name)
    {
        return Ok(info);
    }
    Ok(ctx.backend.install_module(&name, &wasm, grants).await?)
}

/// What is loaded now, when nothing needs reloading.
fn current_install<B: ModuleHost>(p: &Provider, backend: &B, name: &str) -> Option<Installed> {
    let status = p.status.as_ref()?;
    let store = crate::backend::StoreContext {
        provider: name.into(),
        config: serde_json::Value::Null,
        info: crate::backend::StoreInfo {
            kind: crate::backend::StoreKind::ClusterSecretStore,
            name: String::new(),
            namespace: String::new(),
        },
        tls: Default::default(),
    };
    Some(Installed {
        digest: status.digest.clone()?,
        size: usize::try_from(status.size?).ok()?,
        capabilities: backend.capabilities(&store).ok()?,
    })
}

async fn reconcile<B: ModuleHost>(p: Arc<Provider>, ctx: Arc<Context<B>>) -> Result<Action, Error> {
    let name = p.name_any();
    let api: Api<Provider> = Api::all(ctx.client.clone());
    let previous = p.status.as_ref().and_then(|s| s.conditions.as_deref());
    let was_ready = find_ready(previous).map(|c| c.status) == Some(ConditionStatus::True);
    let result = load(&p, &ctx).await;
    let status = match &result {
        Ok(info) => {
            let changed =
                p.status.as_ref().and_then(|s| s.digest.as_deref()) != Some(info.digest.as_str());
            let condition = ready_condition(
                previous,
                ConditionStatus::True,
                "Loaded",
                format!("module loaded ({})", info.digest),
            );
            let loaded_time = if changed || !was_ready {
                Some(now())
            } else {
                p.status.as_ref().and_then(|s| s.loaded_time.clone())
            };
            if changed || !was_ready {
                tracing::info!(provider = %name, digest = %info.digest, "provider loaded");
                ctx.event(
                    p.as_ref(),
                    EventType::Normal,
                    "Loaded",
                    format!("module {} loaded", info.digest),
                )
                .await;
            }
            json!({"status": {
                "conditions": [condition],
                "observedGeneration": p.meta().generation,
                "digest": info.digest,
                "size": info.size,
                "world": WORLD,
                "capabilities": crd_capabilities(info.capabilities),
                "loadedTime": loaded_time,
            }})
        }
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(provider = %name, reason = e.reason(), error = %message, "provider not loaded");
            let condition = ready_condition(
                previous,
                ConditionStatus::False,
                e.reason(),
                message.clone(),
            );
            if was_ready
                || find_ready(previous).and_then(|c| c.message.as_deref()) != Some(&message)
            {
                ctx.event(p.as_ref(), EventType::Warning, e.reason(), message)
                    .await;
            }
            json!({"status": {
                "conditions": [condition],
                "observedGeneration": p.meta().generation,
            }})
        }
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    match result {
        Ok(_) => {
            ctx.succeeded(&format!("provider/{name}"));
            Ok(Action::await_change())
        }
        Err(e) if e.is_retryable() => Err(e),
        Err(_) => Ok(Action::await_change()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_stay_inside_the_providers_directory() {
        let dir = Path::new("/providers");
        assert_eq!(
            module_file(dir, "fake.wasm").unwrap(),
            Path::new("/providers/fake.wasm")
        );
        assert_eq!(
            module_file(dir, "aws/v1/aws.wasm").unwrap(),
            Path::new("/providers/aws/v1/aws.wasm")
        );
        for bad in ["/etc/passwd", "../x.wasm", "a/../../x.wasm", ""] {
            assert!(
                matches!(module_file(dir, bad), Err(Error::ModulePath(_))),
                "{bad:?}"
            );
        }
    }
}
