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
    /// Run several replicas: only the holder of a Lease reconciles (ESO's flag name).
    #[arg(long, env = "AIRLOCK_LEADER_ELECT")]
    pub enable_leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "airlock-controller")]
    pub leader_election_id: String,
    /// Directory for precompiled provider components and pulled OCI artifacts (both by
    /// digest); memory only when unset.
    #[arg(long, env = "AIRLOCK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Address of `/healthz`, `/readyz` and `/metrics` (ESO's flag name), `HOST:PORT` or
    /// `:PORT`; `0` turns the endpoint off.
    #[arg(long, default_value = ":8080")]
    pub metrics_addr: String,
}

/// Connects to the cluster (KUBECONFIG or in-cluster) and runs every controller until
/// SIGINT/SIGTERM.
pub async fn run(args: RunArgs) -> Result<()> {
    let client = crate::kube_client::client(args.client_qps, args.client_burst)
        .await
        .context("cannot build a Kubernetes client (KUBECONFIG or in-cluster config)")?;
    let metrics = crate::metrics::global();
    if args.metrics_addr != "0" {
        // Go's `:8080` (ESO's spelling) means every interface.
        let spelled = match args.metrics_addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => args.metrics_addr.clone(),
        };
        let addr: std::net::SocketAddr = spelled
            .parse()
            .context("--metrics-addr: expected HOST:PORT, e.g. 0.0.0.0:8080, or 0")?;
        let listener = crate::metrics::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --metrics-addr {addr}"))?;
        tokio::spawn(crate::metrics::serve(listener, metrics));
    }
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
    metrics.set_ready(true);
    let config = Config {
        providers_dir: args.providers_dir,
        operator_namespace: args.leader_election_namespace.clone(),
        cache_dir: args.cache_dir.clone(),
        concurrency: args.concurrent,
        store_requeue_interval,
        namespace: args.namespace,
        controller_class: args.controller_class,
        ..Config::default()
    };
    if args.enable_leader_election {
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("airlock-{}", std::process::id()));
        let election = controller::leader::LeaderElection::new(
            &args.leader_election_namespace,
            &args.leader_election_id,
            &identity,
        );
        election
            .run(client.clone(), controller::run(client, runtime, config))
            .await?;
    } else {
        controller::run(client, runtime, config).await;
    }
    Ok(())
}
