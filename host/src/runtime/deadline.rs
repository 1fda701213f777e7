//! Wall-clock deadlines fired by the epoch thread.
//!
//! Every call has a deadline and every guest request a first-byte timeout. A tokio timer
//! for each is cheap to arm, except that when tokio's timer wheel holds nothing sooner,
//! arming one must wake a parked worker thread so that it re-arms its park timeout: one
//! cross-thread wake-up per call, which on loopback was the largest cost of a short call
//! after the round trip itself. The epoch thread already wakes every [`EPOCH_TICK`] to
//! meter guest CPU, so it also fires the deadlines that have passed. Arming one is a
//! lock and a push; resolution is one tick, ample for timeouts counted in seconds.
//!
//! [`EPOCH_TICK`]: super::engine::EPOCH_TICK

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use futures::task::AtomicWaker;

const ARMED: u8 = 0;
const FIRED: u8 = 1;
const DROPPED: u8 = 2;

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// The armed deadlines of one runtime.
#[derive(Debug, Default)]
pub struct Deadlines {
    armed: Mutex<Vec<Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    at: Instant,
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Deadlines {
    /// Runs `fut`, giving up with [`Elapsed`] once `after` has passed.
    pub async fn timeout<F: Future>(&self, after: Duration, fut: F) -> Result<F::Output, Elapsed> {
        let expiry = self.arm(after);
        match select(pin!(fut), expiry).await {
            Either::Left((output, _)) => Ok(output),
            Either::Right(((), _)) => Err(Elapsed),
        }
    }

    fn arm(&self, after: Duration) -> Expiry {
        let slot = Arc::new(Slot {
            at: Instant::now() + after,
            state: AtomicU8::new(ARMED),
            waker: AtomicWaker::new(),
        });
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot.clone());
        Expiry { slot }
    }

    /// Fires every deadline at or before `now` and forgets those whose future is gone.
    /// Called by the epoch thread on each tick.
    pub fn fire_due(&self, now: Instant) {
        let mut due = Vec::new();
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|slot| {
                if slot.state.load(Ordering::Acquire) == DROPPED {
                    return false;
                }
                if slot.at <= now {
                    due.push(slot.clone());
                    return false;
                }
                true
            });
        // Wake outside the lock: a woken task may arm a new deadline at once.
        for slot in due {
            if slot
                .state
                .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot.waker.wake();
            }
        }
    }

    /// How many deadlines are armed (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.armed.lock().map(|a| a.len()).unwrap_or_default()
    }
}

/// Resolves when its slot fires.
struct Expiry {
    slot: Arc<Slot>,
}

impl Future for Expiry {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Register first, then look: a fire between the two still wakes this task.
        self.slot.waker.register(cx.waker());
        if self.slot.state.load(Ordering::Acquire) == FIRED {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        let _ =
            self.slot
                .state
                .compare_exchange(ARMED, DROPPED, Ordering::AcqRel, Ordering::Acquire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_future_wins_and_its_deadline_is_forgotten() {
        let deadlines = Deadlines::default();
        assert_eq!(
            deadlines
                .timeout(Duration::from_secs(30), async { 7 })
                .await,
            Ok(7)
        );
        assert_eq!(deadlines.len(), 1);
        deadlines.fire_due(Instant::now());
        assert_eq!(deadlines.len(), 0, "a dropped deadline is swept");
    }

    #[tokio::test]
    async fn a_due_deadline_ends_a_pending_future() {
        let deadlines = Arc::new(Deadlines::default());
        let ticker = deadlines.clone();
        let tick = std::thread::spawn(move || {
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(5));
                ticker.fire_due(Instant::now());
            }
        });
        let started = Instant::now();
        let outcome = deadlines
            .timeout(Duration::from_millis(50), futures::future::pending::<()>())
            .await;
        assert_eq!(outcome, Err(Elapsed));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50), "fired early: {took:?}");
        assert_eq!(deadlines.len(), 0);
        tick.join().expect("ticker");
    }

    #[test]
    fn only_due_deadlines_fire() {
        let deadlines = Deadlines::default();
        let soon = deadlines.arm(Duration::from_millis(1));
        let later = deadlines.arm(Duration::from_secs(60));
        deadlines.fire_due(Instant::now() + Duration::from_millis(10));
        assert_eq!(soon.slot.state.load(Ordering::Acquire), FIRED);
        assert_eq!(later.slot.state.load(Ordering::Acquire), ARMED);
        assert_eq!(deadlines.len(), 1);
    }
}
