//! `airlock-cluster`: a real local Kubernetes control plane for humans (demos, debugging).
//!
//! Starts etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 (building the binaries
//! on first use), prints how to point `kubectl` at it, and runs until Ctrl-C or SIGTERM, then
//! tears everything down.

use airlock_testenv::ControlPlane;
use anyhow::Result;

fn main() -> Result<()> {
    eprintln!("airlock-cluster: starting etcd + kube-apiserver + kube-controller-manager ...");
    let cp = ControlPlane::start()?;
    let kubectl_dir = cp.binaries().kubernetes_dir.display().to_string();
    println!(
        "airlock-cluster: ready in {:.1}s (Kubernetes {}, etcd {})",
        cp.startup_duration().as_secs_f64(),
        airlock_testenv::KUBERNETES_VERSION,
        airlock_testenv::ETCD_VERSION
    );
    println!("  apiserver: {}", cp.server_url());
    println!("  logs:      {}", cp.dir().display());
    println!("  kubectl:   {kubectl_dir}/kubectl");
    println!();
    println!("export KUBECONFIG={}", cp.kubeconfig_path().display());
    println!("export PATH={kubectl_dir}:$PATH");
    println!();
    println!("Press Ctrl-C to stop.");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    })?;
    eprintln!("airlock-cluster: {signal}: stopping");
    cp.stop();
    eprintln!("airlock-cluster: stopped");
    Ok(())
}
