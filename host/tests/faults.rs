//! Faults on the real control plane: a backend that rate-limits with `Retry-After` (behind a
//! fault proxy on 127.0.0.1), and an operator that is gone when its namespaces are deleted.
//! Each test prints what it measured (`cargo test -- --nocapture` shows it).

mod cluster;

use std::time::{Duration, Instant};

use cluster::{apply, eventually_within, install_crds, ready_message};

use airlock::crd::{ExternalSecret, SecretStore};
use airlock_testenv::ControlPlane;
use airlock_testenv::fakes::gitlab::{FakeGitLab, Variable};
use airlock_testenv::fault_proxy::{Fault, FaultProxy};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

const TOKEN: &str = "glpat-faults";
/// What the backend asks for while it rate-limits.
const RETRY_AFTER_SECS: u64 = 20;
/// The variable the ExternalSecret reads, as the GitLab request path names it.
const VARIABLE_PATH: &str = "/variables/DB_PASSWORD";

/// A GitLab that answers `429` with `Retry-After: 20` is asked again no sooner than that:
/// while it rate-limits, the ExternalSecret (refreshing every second) sends no request at
/// all, keeps its Secret, and says why in its Warning event; once the backend recovers the
/// Secret converges to the new value. Without the Retry-After the 1 s, 2 s, 4 s backoff
/// would have retried three times in the observed window.
#[tokio::test]
async fn a_backend_answering_429_with_retry_after_is_asked_again_no_sooner() {
    let gitlab = FakeGitLab::start(TOKEN);
    gitlab
        .add_project(42, "acme/app", None)
        .set_project_variable(42, Variable::new("DB_PASSWORD", "before"));
    let proxy = FaultProxy::start(gitlab.url().trim_start_matches("http://"));

    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("retry-after").await.expect("namespace");
    let (runtime, _providers) = cluster::run_operator(
        &client,
        &ns,
        &[(airlock_test_artifacts::GITLAB, "gitlab.wasm")],
    );
    cluster::apply_provider(&client, "gitlab", "gitlab.wasm", &["http://127.0.0.1:*"]).await;
    cluster::eventually("the gitlab provider loaded", || async {
        runtime.provider("gitlab").map(|_| ())
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    apply(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitlab-token"},
               "stringData": {"token": TOKEN}}),
    )
    .await;
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "gitlab"},
               "spec": {"provider": {"gitlab": {"url": proxy.url(), "projectID": "42",
                   "auth": {"SecretRef": {"accessToken": {"name": "gitlab-token", "key": "token"}}}}}}}),
    )
    .await;
    let external_secrets: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    apply(
        &external_secrets,
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "app"},
               "spec": {"refreshInterval": "1s",
                        "secretStoreRef": {"name": "gitlab", "kind": "SecretStore"},
                        "target": {"name": "app"},
                        "data": [{"secretKey": "password", "remoteRef": {"key": "DB_PASSWORD"}}]}}),
    )
    .await;
    ready_message(&external_secrets, "app", "True", "").await;
    let synced = cluster::string_map(&[("password", "before")]);
    assert_eq!(
        cluster::secret_text(&secrets, "app").await,
        Some(synced.clone())
    );

    // The backend rate-limits and, meanwhile, gets a new value.
    gitlab.set_project_variable(42, Variable::new("DB_PASSWORD", "after"));
    proxy.set_fault(Fault::RateLimited {
        retry_after_secs: RETRY_AFTER_SECS,
    });
    let fault_start = Instant::now();
    ready_message(
        &external_secrets,
        "app",
        "False",
        "could not get secret data from provider",
    )
    .await;
    let note = cluster::failure_event(&client, &ns, "app", "Retry-After").await;
    assert!(note.contains("(RateLimited)"), "{note}");
    assert!(
        note.contains(&format!("retry after {RETRY_AFTER_SECS} s")),
        "{note}"
    );
    // The failure's own status change wakes the ExternalSecret once more; after that the
    // next attempt waits for the Retry-After.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let faulted = |proxy: &FaultProxy| {
        proxy
            .seen_matching(VARIABLE_PATH)
            .into_iter()
            .filter(|s| s.faulted)
            .count()
    };
    let at_window_start = faulted(&proxy);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let at_window_end = faulted(&proxy);
    assert_eq!(
        cluster::secret_text(&secrets, "app").await,
        Some(synced.clone()),
        "the Secret was kept while the backend rate-limited"
    );
    assert_eq!(
        at_window_end, at_window_start,
        "requests during the 8 s window while Retry-After: {RETRY_AFTER_SECS} held"
    );
    assert!(
        at_window_start <= 3,
        "{at_window_start} rate-limited requests"
    );

    // Recovery: the next attempt, no sooner than asked, converges.
    proxy.set_fault(Fault::None);
    let recovered = Instant::now();
    let after = cluster::string_map(&[("password", "after")]);
    eventually_within(
        Duration::from_secs(RETRY_AFTER_SECS * 3),
        "the Secret converged after the rate limit",
        || async { (cluster::secret_text(&secrets, "app").await? == after).then_some(()) },
    )
    .await;
    let seen = proxy.seen_matching(VARIABLE_PATH);
    let last_faulted = seen.iter().rfind(|s| s.faulted).expect("a faulted request");
    let first_after = seen
        .iter()
        .find(|s| !s.faulted && s.at > last_faulted.at)
        .expect("a request after the fault");
    let gap = first_after.at - last_faulted.at;
    assert!(
        gap >= Duration::from_secs(RETRY_AFTER_SECS - 1),
        "asked again {gap:?} after a Retry-After of {RETRY_AFTER_SECS} s"
    );
    println!(
        "retry-after: {} rate-limited requests in {:.1} s of fault (Retry-After {RETRY_AFTER_SECS} s, \
         refreshInterval 1 s); next request {:.1} s after the last 429; converged {:.1} s after \
         recovery; 0 Secrets lost or blanked",
        faulted(&proxy),
        (recovered - fault_start).as_secs_f64(),
        gap.as_secs_f64(),
        recovered.elapsed().as_secs_f64(),
    );
}

/// ESO puts a finalizer on every ExternalSecret, so with its operator stopped or uninstalled
/// a namespace being deleted stays `Terminating` (reference eso.md §9). Airlock needs none
/// for ExternalSecrets (owner references clean up their Secrets): with the operator
/// SIGKILLed, a namespace of 30 synced ExternalSecrets is deleted completely.
#[tokio::test]
async fn deleting_a_namespace_of_external_secrets_completes_with_the_operator_stopped() {
    const COUNT: usize = 30;
    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("ns-delete").await.expect("namespace");
    let providers = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        airlock_test_artifacts::FAKE,
        providers.path().join("fake.wasm"),
    )
    .expect("copy fake.wasm");
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["run", "--metrics-addr", "0", "--namespace", &ns])
        .arg("--providers-dir")
        .arg(providers.path())
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("AIRLOCK_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("airlock run starts");
    cluster::apply_fake_provider(&client).await;
    apply(
        &Api::<SecretStore>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "fake-store"},
               "spec": {"provider": {"fake": {"data": [
                   {"key": "production/database",
                    "value": "{\"username\":\"admin\",\"password\":\"s3cr3t\"}"}]}}}}),
    )
    .await;
    let external_secrets: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for i in 0..COUNT {
        apply(
            &external_secrets,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": format!("es-{i}")},
                   "spec": cluster::seed_external_secret("fake-store", &format!("secret-{i}"))}),
        )
        .await;
    }
    // The process first compiles fake.wasm in a debug build: a longer wait than usual.
    eventually_within(
        Duration::from_secs(180),
        "every ExternalSecret synced",
        || async {
            let list = external_secrets.list(&Default::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|es| {
                    es.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter()
                                .any(|c| c.type_ == "Ready" && format!("{:?}", c.status) == "True")
                        })
                })
                .count();
            (ready == COUNT).then_some(list.items)
        },
    )
    .await
    .iter()
    .for_each(|es| {
        assert!(
            es.finalizers().is_empty(),
            "{} has finalizers {:?}",
            es.name_any(),
            es.finalizers()
        )
    });
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let managed = secrets
        .list(
            &kube::api::ListParams::default().labels("reconcile.external-secrets.io/managed=true"),
        )
        .await
        .expect("list Secrets");
    assert_eq!(managed.items.len(), COUNT, "every target Secret written");

    operator.kill().await.expect("SIGKILL the operator");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    namespaces
        .delete(&ns, &Default::default())
        .await
        .expect("delete the namespace");
    eventually_within(
        Duration::from_secs(120),
        "the namespace deleted with the operator stopped",
        || async { namespaces.get_opt(&ns).await.ok()?.is_none().then_some(()) },
    )
    .await;
    println!(
        "namespace deletion with the operator stopped: {COUNT} ExternalSecrets and their \
         Secrets gone in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Ready condition status of each ExternalSecret, by name.
async fn ready_states(api: &Api<ExternalSecret>) -> Option<Vec<(String, String, String)>> {
    let list = api.list(&Default::default()).await.ok()?;
    Some(
        list.items
            .iter()
            .map(|es| {
                let ready = es
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
                (
                    es.name_any(),
                    ready.map(|c| format!("{:?}", c.status)).unwrap_or_default(),
                    ready.and_then(|c| c.message.clone()).unwrap_or_default(),
                )
            })
            .collect(),
    )
}

/// A backend that accepts connections and never answers must not hold up the rest of the
/// operator. With two Doppler stores, one black-holed behind the fault proxy: once the first
/// of its calls runs into the Provider's `callTimeoutSeconds`, every ExternalSecret of that
/// store says why at once (instead of a handful per timeout as they queue for the store's
/// calls), the healthy store's ExternalSecrets keep syncing new values throughout, the
/// stalled backend sees one probe call at a time, and no Secret is lost or blanked. When the
/// backend answers again, everything converges.
#[tokio::test]
async fn a_hanging_backend_fails_its_store_fast_and_other_stores_keep_syncing() {
    use airlock_testenv::fakes::doppler::FakeDoppler;
    const STALLED: usize = 24;
    const HEALTHY: usize = 4;
    const TIMEOUT_SECS: u64 = 5;
    const TOKEN: &str = "dp.st.prd.stall";

    let doppler = FakeDoppler::start().await;
    doppler.add_service_token(TOKEN, "backend", "prd");
    doppler.set_secret("backend", "prd", "DB_PASSWORD", "v1");
    let proxy = FaultProxy::start(doppler.url().trim_start_matches("http://"));

    let cp = ControlPlane::shared();
    let client = cp.client();
    install_crds(&client).await;
    let ns = cp.new_namespace("stall").await.expect("namespace");
    let (runtime, _providers) = cluster::run_operator(
        &client,
        &ns,
        &[(airlock_test_artifacts::DOPPLER, "doppler.wasm")],
    );
    apply(
        &Api::<airlock::crd::Provider>::all(client.clone()),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": "doppler"},
               "spec": {"module": {"path": "doppler.wasm"},
                        "allowedOutboundHosts": ["http://127.0.0.1:*"],
                        "limits": {"callTimeoutSeconds": TIMEOUT_SECS}}}),
    )
    .await;
    eventually_within(
        Duration::from_secs(180),
        "the doppler provider loaded with its call timeout",
        || async {
            runtime
                .provider("doppler")
                .filter(|p| p.grants.limits.call_timeout == Duration::from_secs(TIMEOUT_SECS))
                .map(|_| ())
        },
    )
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    apply(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "doppler-token"},
               "stringData": {"dopplerToken": TOKEN}}),
    )
    .await;
    let stores: Api<SecretStore> = Api::namespaced(client.clone(), &ns);
    for (store, endpoint) in [("stalled", proxy.url()), ("healthy", doppler.url())] {
        apply(
            &stores,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                   "metadata": {"name": store},
                   "spec": {"provider": {"doppler": {
                       "endpoint": endpoint, "project": "backend", "config": "prd",
                       "auth": {"secretRef": {"dopplerToken": {
                           "name": "doppler-token", "key": "dopplerToken"}}}}}}}),
        )
        .await;
    }
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let names: Vec<(String, &str)> = (0..STALLED)
        .map(|i| (format!("stalled-{i}"), "stalled"))
        .chain((0..HEALTHY).map(|i| (format!("healthy-{i}"), "healthy")))
        .collect();
    for (name, store) in &names {
        apply(
            &externals,
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                   "metadata": {"name": name},
                   "spec": {"refreshInterval": "2s",
                            "secretStoreRef": {"name": store, "kind": "SecretStore"},
                            "target": {"name": name},
                            "data": [{"secretKey": "password",
                                      "remoteRef": {"key": "DB_PASSWORD"}}]}}),
        )
        .await;
    }
    let all_hold = |value: &'static str, prefix: &'static str| {
        let secrets = secrets.clone();
        let names = names.clone();
        async move {
            for (name, _) in names.iter().filter(|(n, _)| n.starts_with(prefix)) {
                if cluster::secret_text(&secrets, name).await?
                    != cluster::string_map(&[("password", value)])
                {
                    return None;
                }
            }
            Some(())
        }
    };
    eventually_within(Duration::from_secs(120), "every Secret synced", || {
        all_hold("v1", "")
    })
    .await;

    // The stalled store's backend black-holes; the value changes meanwhile.
    proxy.set_fault(Fault::Hang);
    doppler.set_secret("backend", "prd", "DB_PASSWORD", "v2");
    let hang_start = Instant::now();
    // Every ExternalSecret of the stalled store says why soon after the first timeout. (Queued
    // behind the store's 4 concurrent calls, 24 would take 6 timeouts: 30 s.)
    let said_why = eventually_within(
        Duration::from_secs(90),
        "every stalled ExternalSecret says why",
        || async {
            let states = ready_states(&externals).await?;
            let failing = states
                .iter()
                .filter(|(n, s, _)| n.starts_with("stalled-") && s == "False")
                .count();
            (failing == STALLED).then(|| hang_start.elapsed())
        },
    )
    .await;
    // The healthy store kept syncing through the stall.
    let healthy_synced = eventually_within(
        Duration::from_secs(90),
        "the healthy store's Secrets took the new value",
        || async {
            all_hold("v2", "healthy-")
                .await
                .map(|()| hang_start.elapsed())
        },
    )
    .await;
    let states = ready_states(&externals).await.expect("list");
    for (name, status, message) in &states {
        if name.starts_with("stalled-") {
            assert_eq!(status, "False", "{name}: {message}");
        }
    }
    let note = cluster::failure_event(&client, &ns, "stalled-0", "ProviderTimeout").await;
    assert!(
        note.contains(&format!("within {TIMEOUT_SECS}s")),
        "the event names the timeout: {note}"
    );
    // Requests reaching the black hole over a window of three timeouts: one probe at a
    // time, so about three, where queued calls would send the store's 4 per timeout.
    let window_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(TIMEOUT_SECS * 3)).await;
    let probes = proxy.count_between(window_start, Instant::now());
    assert!(
        probes <= 5,
        "{probes} requests reached the hanging backend in {} s",
        TIMEOUT_SECS * 3
    );
    all_hold("v1", "stalled-")
        .await
        .expect("no stalled Secret lost or blanked");

    // The backend answers again: the stalled store converges.
    proxy.set_fault(Fault::None);
    let recovered = Instant::now();
    eventually_within(
        Duration::from_secs(120),
        "the stalled store's Secrets converged",
        || all_hold("v2", "stalled-"),
    )
    .await;
    println!(
        "hanging backend (callTimeoutSeconds {TIMEOUT_SECS}): all {STALLED} stalled \
         ExternalSecrets said why after {:.1} s; the healthy store synced a new value after \
         {:.1} s; {probes} requests reached the hang in {} s; converged {:.1} s after recovery",
        said_why.as_secs_f64(),
        healthy_synced.as_secs_f64(),
        TIMEOUT_SECS * 3,
        recovered.elapsed().as_secs_f64()
    );
}
