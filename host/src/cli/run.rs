//! `airlock run`: the operator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;

use crate::controller::{self, Config};
use crate::kube_credentials::KubeCredentials;
use crate::runtime::{EngineConfig, Runtime};

/// Flags of `airlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory that `Provider.spec.module.path` is resolved in (the modules bundled in the
    /// image). Paths may not be absolute or contain `..`.
    #[arg(long, env = "AIRLOCK_PROVIDERS_DIR", default_value = "/providers")]
    pub providers_dir: PathBuf,
    /// Reconciles running at once per controller.
    #[arg(long, default_value_t = 8)]
    pub concurrent: u16,
    /// Kubernetes client requests per second (token bucket; 0 disables the limit).
    #[arg(long, default_value_t = 50.0)]
    pub client_qps: f32,
    /// Kubernetes client burst: requests allowed at once before `--client-qps` applies.
    #[arg(long, default_value_t = 100)]
    pub client_burst: u32,
    /// How often a store without `refreshInterval` is re-validated (Go duration).
    #[arg(long, default_value = "5m")]
    pub store_requeue_interval: String,
    /// Watch only this namespace for ExternalSecrets and SecretStores (all when unset).
    #[arg(long, env = "AIRLOCK_NAMESPACE")]
    pub namespace: Option<String>,
    /// Serve only stores whose `spec.controller` is empty or equals this class.
    #[arg(long, env = "AIRLOCK_CONTROLLER_CLASS", default_value = "default")]
    pub controller_class: String,
    /// Directory for precompiled provider components; memory only when unset.
    #[arg(long, env = "AIRLOCK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Connects to the cluster (KUBECONFIG or in-cluster) and runs every controller until
/// SIGINT/SIGTERM.
pub async fn run(args: RunArgs) -> Result<()> {
    let client = crate::kube_client::client(args.client_qps, args.client_burst)
        .await
        .context("cannot build a Kubernetes client (KUBECONFIG or in-cluster config)")?;
    let runtime = Runtime::new(
        &EngineConfig {
            cache_dir: args.cache_dir.clone(),
            ..EngineConfig::default()
        },
        Arc::new(KubeCredentials::new(client.clone())),
    )?;
    let store_requeue_interval: Duration =
        crate::crd::GoDuration::new(args.store_requeue_interval.clone())
            .parse()
            .context("--store-requeue-interval")?;
    tracing::info!(
        providers_dir = %args.providers_dir.display(),
        concurrent = args.concurrent,
        "starting controllers"
    );
    controller::run(
        client,
        runtime,
        Config {
            providers_dir: args.providers_dir,
            concurrency: args.concurrent,
            store_requeue_interval,
            namespace: args.namespace,
            controller_class: args.controller_class,
            ..Config::default()
        },
    )
    .await;
    Ok(())
}
