//! A store whose backend has stopped answering is not queued behind.
//!
//! Without this, a backend that accepts connections and never answers holds each of the
//! store's calls for the whole call timeout, and every other reconcile of that store waits
//! for one of them to end: the operator's reconcile workers fill up with one store's
//! waiters, ExternalSecrets of healthy stores stop syncing, and only a handful of the
//! stalled store's ExternalSecrets learn why per timeout.
//!
//! So once a call of a store times out, the store is *stalled* until a call of it ends any
//! other way. While stalled, one call at a time goes through as a probe; every other call,
//! including those already waiting for the store's permits, is refused at once with the
//! reason, and its resource requeues with the usual backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The stall state of one store.
#[derive(Debug)]
pub(super) struct Stall {
    /// When the first call that timed out (since the last call that did not) ended.
    since: Mutex<Option<Instant>>,
    /// Woken when the store stalls, so that calls waiting for a permit stop waiting.
    stalled: Notify,
    /// The single probe call allowed while stalled.
    probe: Arc<Semaphore>,
}

/// Leave to run one call of the store.
#[derive(Debug)]
pub(super) struct Admitted {
    _permit: OwnedSemaphorePermit,
    _probe: Option<OwnedSemaphorePermit>,
}

/// Why a call was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The store is stalled and its probe call is running (or its permits are still held
    /// by calls that have not yet timed out).
    Stalled {
        /// How long ago the store stalled.
        ago: Duration,
    },
    /// The permits were closed: the runtime is shutting down.
    Closed,
}

impl Default for Stall {
    fn default() -> Self {
        Stall {
            since: Mutex::new(None),
            stalled: Notify::new(),
            probe: Arc::new(Semaphore::new(1)),
        }
    }
}

impl Stall {
    fn since(&self) -> Option<Instant> {
        *self.since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call of the store timed out.
    pub(super) fn timed_out(&self) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
            drop(since);
            self.stalled.notify_waiters();
        }
    }

    /// A call of the store ended without timing out: the backend answers again.
    pub(super) fn answered(&self) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Waits for one of `permits` (the store's share of its provider's instances); while
    /// the store is stalled, admits one probe call and refuses the rest without waiting.
    pub(super) async fn admit(&self, permits: &Arc<Semaphore>) -> Result<Admitted, Refused> {
        loop {
            // Registered before the check, so a stall between the check and the wait
            // still wakes this call.
            let woken = self.stalled.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(since) = self.since() {
                let refused = || Refused::Stalled {
                    ago: since.elapsed(),
                };
                let probe = self
                    .probe
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| refused())?;
                let permit = permits.clone().try_acquire_owned().map_err(|_| refused())?;
                return Ok(Admitted {
                    _permit: permit,
                    _probe: Some(probe),
                });
            }
            tokio::select! {
                permit = permits.clone().acquire_owned() => {
                    return permit
                        .map(|permit| Admitted { _permit: permit, _probe: None })
                        .map_err(|_| Refused::Closed);
                }
                () = &mut woken => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_healthy_store_queues_for_its_permits() {
        let stall = Arc::new(Stall::default());
        let permits = Arc::new(Semaphore::new(1));
        let first = stall.admit(&permits).await.expect("admitted");
        let waiting = tokio::spawn({
            let (stall, permits) = (stall.clone(), permits.clone());
            async move { stall.admit(&permits).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second call waits for the permit");
        drop(first);
        assert_eq!(waiting.await.expect("join"), Ok(()));
    }

    #[tokio::test]
    async fn a_stall_refuses_the_waiters_at_once_and_admits_one_probe() {
        let stall = Arc::new(Stall::default());
        let permits = Arc::new(Semaphore::new(2));
        let hung = stall.admit(&permits).await.expect("admitted");
        let hung2 = stall.admit(&permits).await.expect("admitted");
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (stall, permits) = (stall.clone(), permits.clone());
                tokio::spawn(async move { stall.admit(&permits).await.map(|_| ()) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The first hung call times out: every waiter is refused without waiting more.
        stall.timed_out();
        for waiter in waiters {
            assert!(matches!(
                waiter.await.expect("join"),
                Err(Refused::Stalled { .. })
            ));
        }
        // A permit frees as the hung call ends: one probe goes, a second call is refused.
        drop(hung);
        let probe = stall.admit(&permits).await.expect("the probe is admitted");
        drop(hung2);
        assert!(matches!(
            stall.admit(&permits).await,
            Err(Refused::Stalled { .. })
        ));
        // The probe is answered: calls queue normally again.
        stall.answered();
        drop(probe);
        let a = stall.admit(&permits).await.expect("admitted");
        let b = stall.admit(&permits).await.expect("admitted");
        drop((a, b));
    }

    #[tokio::test]
    async fn closed_permits_refuse_as_shutting_down() {
        let stall = Stall::default();
        let permits = Arc::new(Semaphore::new(1));
        permits.close();
        assert_eq!(stall.admit(&permits).await.err(), Some(Refused::Closed));
    }
}
