//! OCI distribution benchmark: prints a table of
//! - first pull + compile + load of a provider from a local registry (cold caches),
//! - the same load again from the artifact and precompiled caches (no registry traffic),
//! - operator start to the first Provider `Ready` with cached precompiled components, on the
//!   real kube-apiserver.
//!
//! `cargo bench -p airlock --bench registry`. Measured with the AWS provider;
//! `AIRLOCK_BENCH_PROVIDER=fake` measures the fake one. `AIRLOCK_BENCH_RUNS` sets the
//! repetitions (default 5).

#[path = "../tests/cluster/mod.rs"]
mod cluster;
#[path = "../tests/oci/mod.rs"]
mod oci;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::controller::{self, Config};
use airlock::crd::{ConditionStatus, Provider};
use airlock::registry::{self, ArtifactCache, Registry, RegistryOptions};
use airlock::runtime::{EngineConfig, Grants, Runtime, StaticCredentials};
use airlock_testenv::ControlPlane;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn wait_ready(api: &Api<Provider>, name: &str, since: Instant) -> Duration {
    loop {
        if let Ok(p) = api.get(name).await
            && p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == ConditionStatus::True)
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "Provider {name} never became Ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("AIRLOCK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let registry_server = oci::Registry::start();
    let provider = std::env::var("AIRLOCK_BENCH_PROVIDER").unwrap_or_else(|_| "aws".into());
    let path = match provider.as_str() {
        "fake" => airlock_test_artifacts::FAKE,
        _ => airlock_test_artifacts::AWS,
    };
    let wasm = std::fs::read(path).expect("provider wasm");
    println!("provider: {provider} ({} bytes)", wasm.len());
    let reference = registry::parse_reference(&format!(
        "{}/providers/{provider}:bench",
        registry_server.host
    ))
    .expect("reference");
    let options = RegistryOptions {
        insecure: true,
        ..RegistryOptions::default()
    };
    let pinned = Registry::new(&options, None)
        .expect("client")
        .push(&reference, &wasm, None)
        .await
        .expect("push");
    let pinned_ref = registry::parse_reference(&pinned).expect("pinned");

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = EngineConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..EngineConfig::default()
        };
        for samples in [&mut cold, &mut warm] {
            let t = Instant::now();
            let client =
                Registry::new(&options, Some(ArtifactCache::new(dir.path()))).expect("client");
            let pulled = client.pull(&pinned_ref, None).await.expect("pull");
            let runtime =
                Runtime::new(&engine, Arc::new(StaticCredentials::default())).expect("runtime");
            runtime
                .install(&provider, &pulled.wasm, Grants::none())
                .await
                .expect("install");
            samples.push(t.elapsed());
        }
    }

    // Operator start to first Ready, caches warm: a first operator pulls and compiles, a
    // second one (new process state, same cache dir) is timed.
    let cp = ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let api: Api<Provider> = Api::all(client.clone());
    let cache = tempfile::tempdir().expect("cache dir");
    let providers = tempfile::tempdir().expect("providers dir");
    let mut starts = Vec::new();
    for i in 0..=runs {
        let name = format!("bench-oci-{i}");
        api.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(
                json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
                "metadata": {"name": name}, "spec": {"module": {"oci": pinned, "insecure": true}}}),
            ),
        )
        .await
        .expect("Provider");
        let t = Instant::now();
        let runtime = cluster::kube_runtime(&client, Some(cache.path().to_path_buf()));
        let config = Config {
            providers_dir: providers.path().to_path_buf(),
            cache_dir: Some(cache.path().to_path_buf()),
            ..Config::default()
        };
        let operator = tokio::spawn(controller::run(client.clone(), runtime, config));
        let took = wait_ready(&api, &name, t).await;
        operator.abort();
        let _ = operator.await;
        if i > 0 {
            starts.push(took);
        } else {
            println!("(first operator, cold caches: {} to Ready)", ms(took));
        }
    }

    println!();
    println!("| what ({runs} runs, median) | time | target |");
    println!("|---|---|---|");
    println!(
        "| first pull + compile + load, {provider} provider ({} bytes), local registry | {} | ≤ 5 s |",
        wasm.len(),
        ms(median(cold))
    );
    println!(
        "| same from the artifact + precompiled caches | {} | – |",
        ms(median(warm))
    );
    println!(
        "| operator start → first Provider Ready (OCI, cached precompiled) | {} | ≤ 1 s |",
        ms(median(starts))
    );
}
