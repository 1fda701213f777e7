//! The `Provider` reconciler: reads the module a Provider names (a bundled file or an OCI
//! artifact), loads it into the runtime under the Provider's name with the Provider's grants,
//! and reports what was loaded. A new module replaces the old one only once it has been
//! pulled, verified and compiled; until then the old one keeps serving.

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
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
use crate::registry::{
    self, ArtifactCache, Registry, RegistryCredentials, RegistryError, RegistryOptions,
};
use crate::runtime::{Grants, HostAlias, Limits, Runtime, RuntimeError, digest};

/// The Secret type of registry credentials.
const DOCKER_CONFIG_SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";

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
    /// The provider's own version (its metadata).
    pub version: String,
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
            version: loaded.info.version.clone(),
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
        .run(
            crate::metrics::instrument(
                crate::metrics::Kind::Provider,
                ctx.config.concurrency,
                reconcile,
            ),
            error_policy,
            ctx,
        )
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
        call_timeout: u64::try_from(l.call_timeout_seconds)
            .map(Duration::from_secs)
            .unwrap_or(defaults.call_timeout),
        ..defaults
    };
    let mut grants = Grants::parse(&spec.allowed_outbound_hosts, &spec.allowed_cidrs, limits)?;
    grants.allow_operator_token = spec.credentials.allow_operator_service_account_token;
    if let Some(b64) = spec.ca_bundle.as_deref().filter(|b| !b.trim().is_empty()) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| RuntimeError::InvalidGrant(format!("spec.caBundle is not base64: {e}")))?;
        grants.ca_bundle_pem = Some(pem);
    }
    grants.host_aliases = spec
        .host_aliases
        .iter()
        .map(|a| HostAlias::parse(&a.hostnames, &a.address))
        .collect::<Result<_, _>>()?;
    Ok(grants)
}

fn crd_capabilities(c: Capabilities) -> CrdCapabilities {
    match c {
        Capabilities::ReadOnly => CrdCapabilities::ReadOnly,
        Capabilities::WriteOnly => CrdCapabilities::WriteOnly,
        Capabilities::ReadWrite => CrdCapabilities::ReadWrite,
    }
}

/// A module's bytes and, for an OCI module, the reference pinned to what was pulled.
struct Module {
    wasm: Vec<u8>,
    resolved_reference: Option<String>,
}

/// Reads the module a Provider names: a bundled file or an OCI artifact.
async fn fetch<B: ModuleHost>(p: &Provider, ctx: &Context<B>) -> Result<Module, Error> {
    let module = &p.spec.module;
    if let Some(oci) = module.oci.as_deref() {
        return fetch_oci(p, ctx, oci).await;
    }
    let Some(relative) = module.path.as_deref() else {
        return Err(Error::ModulePath("spec.module must set path or oci".into()));
    };
    let file = module_file(&ctx.config.providers_dir, relative)?;
    let wasm = tokio::fs::read(&file)
        .await
        .map_err(|source| Error::ModuleRead {
            path: relative.to_string(),
            source,
        })?;
    Ok(Module {
        wasm,
        resolved_reference: None,
    })
}

/// Pulls an OCI module: pinned by the spec's digest, or by the digest its tag resolved to
/// earlier (recorded in the status), or by resolving the tag now; then checks the signature
/// when the Provider asks for one.
async fn fetch_oci<B: ModuleHost>(
    p: &Provider,
    ctx: &Context<B>,
    oci: &str,
) -> Result<Module, Error> {
    let wanted = registry::parse_reference(oci)?;
    let reference = match wanted.digest() {
        Some(_) => wanted,
        None => p
            .status
            .as_ref()
            .and_then(|s| s.resolved_reference.as_deref())
            .and_then(|r| registry::parse_reference(r).ok())
            .filter(|r| {
                r.digest().is_some()
                    && r.registry() == wanted.registry()
                    && r.repository() == wanted.repository()
                    && r.tag() == wanted.tag()
            })
            .unwrap_or(wanted),
    };
    let options = registry_options(p, ctx, reference.registry()).await?;
    let cache = ctx.config.cache_dir.as_deref().map(ArtifactCache::new);
    let client = Registry::new(&options, cache)?;
    let pulled = client.pull(&reference, None).await?;
    if let Some(signature) = &p.spec.signature {
        client
            .verify_signature(&reference, &pulled.manifest_digest, &signature.public_key)
            .await?;
    }
    tracing::debug!(provider = %p.name_any(), reference = %pulled.reference, cached = pulled.from_cache, "module pulled");
    Ok(Module {
        wasm: pulled.wasm,
        resolved_reference: Some(pulled.reference),
    })
}

/// Credentials (from the `kubernetes.io/dockerconfigjson` pull Secret), CA bundle and
/// protocol for the registry of a Provider's OCI module.
async fn registry_options<B>(
    p: &Provider,
    ctx: &Context<B>,
    registry: &str,
) -> Result<RegistryOptions, Error> {
    let module = &p.spec.module;
    let credentials = match &module.pull_secret_ref {
        None => RegistryCredentials::Anonymous,
        Some(r) => {
            let ns = r
                .namespace
                .clone()
                .unwrap_or_else(|| ctx.config.operator_namespace.clone());
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let secret = api.get_opt(&r.name).await?.ok_or_else(|| {
                RegistryError::InvalidCredentials(format!(
                    "pull secret {ns}/{} (spec.module.pullSecretRef) does not exist",
                    r.name
                ))
            })?;
            if secret.type_.as_deref() != Some(DOCKER_CONFIG_SECRET_TYPE) {
                return Err(RegistryError::InvalidCredentials(format!(
                    "pull secret {ns}/{} must be of type {DOCKER_CONFIG_SECRET_TYPE}",
                    r.name
                ))
                .into());
            }
            let json = secret
                .data
                .as_ref()
                .and_then(|d| d.get(".dockerconfigjson"))
                .ok_or_else(|| {
                    RegistryError::InvalidCredentials(format!(
                        "pull secret {ns}/{} has no .dockerconfigjson key",
                        r.name
                    ))
                })?;
            RegistryCredentials::from_docker_config(&json.0, registry)?
        }
    };
    let ca_pem = match &module.ca_bundle {
        None => None,
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    RegistryError::InvalidCaBundle(format!(
                        "spec.module.caBundle is not base64: {e}"
                    ))
                })?,
        ),
    };
    Ok(RegistryOptions {
        credentials,
        ca_pem,
        insecure: module.insecure.unwrap_or(false),
    })
}

/// Loads the module into the backend unless that exact module is loaded already.
async fn load<B: ModuleHost>(
    p: &Provider,
    ctx: &Context<B>,
) -> Result<(Installed, Option<String>), Error> {
    let name = p.name_any();
    let module = fetch(p, ctx).await?;
    let grants = grants(&p.spec)?;
    let installed_here = ctx.backend.installed_digest(&name);
    let observed = p.status.as_ref().and_then(|s| s.observed_generation);
    let wanted = digest(&module.wasm);
    if installed_here.as_deref() == Some(wanted.as_str())
        && observed == p.meta().generation
        && let Some(info) = current_install(p, &ctx.backend, &name)
        && info.digest == wanted
    {
        return Ok((info, module.resolved_reference));
    }
    let installed = ctx
        .backend
        .install_module(&name, &module.wasm, grants)
        .await?;
    Ok((installed, module.resolved_reference))
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
        version: status.version.clone().unwrap_or_default(),
    })
}

async fn reconcile<B: ModuleHost>(p: Arc<Provider>, ctx: Arc<Context<B>>) -> Result<Action, Error> {
    let name = p.name_any();
    let api: Api<Provider> = Api::all(ctx.client.clone());
    let mut conditions = p.status.as_ref().and_then(|s| s.conditions.clone());
    let was_ready =
        find_ready(conditions.as_deref()).map(|c| c.status) == Some(ConditionStatus::True);
    // Pulling and compiling a module takes seconds; until then `kubectl get providers` says
    // so instead of an empty READY column (or a Ready left by an earlier operator process).
    // A failure already reported for this spec stays while it is retried.
    let failed_here = find_ready(conditions.as_deref())
        .is_some_and(|c| c.status == ConditionStatus::False)
        && p.status.as_ref().and_then(|s| s.observed_generation) == p.meta().generation;
    if ctx.backend.installed_digest(&name).is_none() && !failed_here {
        let condition = ready_condition(
            conditions.as_deref(),
            ConditionStatus::Unknown,
            "Loading",
            format!(
                "fetching, verifying and compiling module {}",
                p.spec.module.reference().unwrap_or_default()
            ),
        );
        let status = json!({"status": {
            "conditions": [condition],
            "observedGeneration": p.meta().generation,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        conditions = Some(vec![condition]);
    }
    let previous = conditions.as_deref();
    let result = load(&p, &ctx).await;
    let status = match &result {
        Ok((info, resolved_reference)) => {
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
                "resolvedReference": resolved_reference,
                "version": info.version,
                "world": WORLD,
                "capabilities": crd_capabilities(info.capabilities),
                "loadedTime": loaded_time,
            }})
        }
        Err(e) => {
            let mut message = e.to_string();
            if let Some(serving) = ctx.backend.installed_digest(&name) {
                message.push_str(&format!(
                    "; the module loaded before ({serving}) keeps serving"
                ));
            }
            let message = super::advice::load_failure_message(e, &name, message);
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

    fn spec(extra: serde_json::Value) -> ProviderSpec {
        let mut v = json!({"module": {"path": "fake.wasm"}});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_providers_ca_bundle_and_host_aliases_reach_its_grants() {
        let g = grants(&spec(json!({
            "caBundle": base64::engine::general_purpose::STANDARD.encode("PEM"),
            "hostAliases": [{"hostnames": ["login.microsoftonline.com"], "address": "127.0.0.1:8443"}],
        })))
        .unwrap();
        assert_eq!(g.ca_bundle_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(g.host_aliases.len(), 1);
        assert!(g.host_aliases[0].matches("login.microsoftonline.com"));
        assert_eq!(g.host_aliases[0].port, Some(8443));
    }

    #[test]
    fn a_bad_ca_bundle_or_alias_address_is_a_clear_grant_error() {
        let e = grants(&spec(json!({"caBundle": "not base64!"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.caBundle is not base64"), "{e}");
        let e = grants(&spec(json!({
            "hostAliases": [{"hostnames": ["a.example"], "address": "a.internal"}],
        })))
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"a.internal\" is not an IP address"), "{e}");
    }
}
