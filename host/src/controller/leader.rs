//! Leader election on a `coordination.k8s.io` Lease, so that several replicas can run and only
//! one reconciles. The holder renews the Lease; another replica takes it over once it has not
//! been renewed for its duration. A leader that cannot renew stops (and its pod restarts).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

/// Why leadership ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be renewed for longer than its duration.
    #[error("cannot renew lease: {0}")]
    Kube(#[from] kube::Error),
    /// Another replica took the Lease.
    #[error("lost leadership of lease {lease}: {why}")]
    Lost {
        /// The Lease.
        lease: String,
        /// What happened.
        why: String,
    },
}

/// How to elect.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews, and others retry.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Defaults like controller-runtime's: 15 s lease, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElection {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Waits to become leader, then runs `work` while renewing. Returns when `work` ends, or
    /// with an error when leadership is lost.
    pub async fn run<F: Future<Output = ()>>(
        &self,
        client: Client,
        work: F,
    ) -> Result<(), LeaderError> {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        loop {
            match self.try_acquire_or_renew(&api).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: cannot read the lease"),
            }
            tokio::time::sleep(self.retry_period).await;
        }
        tracing::info!(identity = %self.identity, lease = %self.name, "became leader");
        let renew = async {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.retry_period).await;
                match self.try_acquire_or_renew(&api).await {
                    Ok(true) => last_renewed = tokio::time::Instant::now(),
                    Ok(false) => return self.lost("another replica holds the lease"),
                    Err(e) if last_renewed.elapsed() >= self.lease_duration => {
                        return Err(LeaderError::Kube(e));
                    }
                    Err(e) => tracing::warn!(error = %e, "leader election: renewal failed"),
                }
            }
        };
        tokio::select! {
            () = work => Ok(()),
            r = renew => r,
        }
    }

    fn lost(&self, why: &str) -> Result<(), LeaderError> {
        tracing::error!(identity = %self.identity, why, "lost leadership");
        Err(LeaderError::Lost {
            lease: self.name.clone(),
            why: why.into(),
        })
    }

    /// One round: takes the Lease if it is free or expired, renews it if it is ours.
    pub async fn try_acquire_or_renew(&self, api: &Api<Lease>) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return conflict_is_false(api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(d)) => renewed.0 + SignedDuration::from_secs(i64::from(d)) < now,
            _ => true,
        };
        if !ours && !expired {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        // The resourceVersion in `lease` makes this a compare-and-swap.
        conflict_is_false(
            api.replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }
}

fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
