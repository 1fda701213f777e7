//! The GeneratorState reconciler: collects the GeneratorStates ESO left behind once their
//! `spec.garbageCollectionDeadline` passes, as ESO's GeneratorState controller does.
//!
//! Airlock's generators (Password, UUID, Fake) keep no state, so Airlock writes no
//! GeneratorStates and adds no finalizer. A state whose deadline has passed is deleted; ESO's
//! finalizer on it is removed once the state needs no cleanup (it was produced by a stateless
//! generator). A state of a stateful generator Airlock cannot run (a GitLab deploy token, …)
//! keeps ESO's finalizer, since removing it would leave the credential unrevoked: a Warning
//! event says so and what to do.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::{Context, Error, ModuleHost, log_result};
use crate::crd::generator::GeneratorState;

/// The finalizer ESO puts on every GeneratorState.
pub const FINALIZER: &str = "generatorstate.externalsecrets.io/finalizer";

/// Runs the GeneratorState controller.
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    let api: Api<GeneratorState> = super::scoped_api(&ctx);
    Controller::new(api, watcher::Config::default())
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(
            crate::metrics::instrument(
                crate::metrics::Kind::GeneratorState,
                ctx.config.concurrency,
                reconcile,
            ),
            error_policy,
            ctx,
        )
        .for_each(|r| async move { log_result("generatorstate", r) })
        .await;
}

fn key(gs: &GeneratorState) -> String {
    format!(
        "generatorstate/{}/{}",
        gs.namespace().unwrap_or_default(),
        gs.name_any()
    )
}

fn error_policy<B: ModuleHost>(gs: Arc<GeneratorState>, _: &Error, ctx: Arc<Context<B>>) -> Action {
    ctx.backoff(key(&gs))
}

/// Whether the generator that produced the state keeps none worth cleaning up: the kinds
/// Airlock runs (also wrapped in a ClusterGenerator).
pub fn needs_no_cleanup(resource: &serde_json::Value) -> bool {
    const STATELESS: [&str; 3] = ["Password", "UUID", "Fake"];
    let kind = match resource["kind"].as_str() {
        Some("ClusterGenerator") => resource["spec"]["kind"].as_str(),
        other => other,
    };
    kind.is_some_and(|k| STATELESS.contains(&k))
}

/// How long until the deadline: `None` without one, zero once it passed.
pub fn until_deadline(gs: &GeneratorState) -> Option<Duration> {
    let deadline = gs.spec.garbage_collection_deadline.as_ref()?;
    let left = deadline.0.as_second() - k8s_openapi::jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
}

async fn reconcile<B: ModuleHost>(
    gs: Arc<GeneratorState>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let api: Api<GeneratorState> = Api::namespaced(ctx.client.clone(), &namespace);
    if gs.meta().deletion_timestamp.is_some() {
        if !gs.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        if needs_no_cleanup(&gs.spec.resource) {
            super::remove_finalizer(&api, gs.as_ref(), FINALIZER).await?;
        } else {
            let kind = gs.spec.resource["kind"].as_str().unwrap_or("unknown");
            ctx.event(
                gs.as_ref(),
                EventType::Warning,
                "CleanupNotSupported",
                format!(
                    "could not cleanup generator state: generator kind {kind} is not supported, so what it created was not revoked; revoke it, then remove the finalizer {FINALIZER}"
                ),
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    match until_deadline(&gs) {
        None => Ok(Action::await_change()),
        Some(left) if !left.is_zero() => Ok(Action::requeue(left)),
        Some(_) => {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(generatorstate = %key(&gs), "reached its gc deadline; deleted");
            ctx.succeeded(&key(&gs));
            // The deletion (with ESO's finalizer) or its absence comes back as a change.
            Ok(Action::await_change())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_states_of_the_generators_airlock_runs_need_no_cleanup() {
        assert!(needs_no_cleanup(&json!({"kind": "Password", "spec": {}})));
        assert!(needs_no_cleanup(&json!({"kind": "UUID"})));
        assert!(needs_no_cleanup(
            &json!({"kind": "ClusterGenerator", "spec": {"kind": "Fake"}})
        ));
        assert!(!needs_no_cleanup(&json!({"kind": "GitlabDeployToken"})));
        assert!(!needs_no_cleanup(
            &json!({"kind": "ClusterGenerator", "spec": {"kind": "Grafana"}})
        ));
        assert!(!needs_no_cleanup(&json!({})));
    }

    #[test]
    fn the_deadline_is_counted_down_and_absent_without_one() {
        let state = |deadline: Option<&str>| -> GeneratorState {
            serde_json::from_value(json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GeneratorState",
                "metadata": {"name": "s", "namespace": "n"},
                "spec": {"garbageCollectionDeadline": deadline, "resource": {"kind": "Password"}, "state": {}},
            }))
            .expect("state")
        };
        assert_eq!(until_deadline(&state(None)), None);
        assert_eq!(
            until_deadline(&state(Some("2000-01-01T00:00:00Z"))),
            Some(Duration::ZERO)
        );
        let left = until_deadline(&state(Some("2999-01-01T00:00:00Z"))).expect("a deadline");
        assert!(left > Duration::from_secs(3600 * 24 * 365), "{left:?}");
    }
}
