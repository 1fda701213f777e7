//! Coalesced provider reads: ExternalSecrets that read the same ref of the same store share
//! one backend call per refresh window.
//!
//! A read joins a call already in flight for the same store and ref, or reuses a result
//! younger than the reader's own refresh interval (capped, see [`Coalescer::new`]). The store
//! identity includes a hash of its provider configuration, so editing a store starts over;
//! an ExternalSecret whose spec or annotations changed since its last sync (a force-sync)
//! asks with a zero window and always reads fresh. Errors are never kept: a failed call
//! answers only its own caller, and readers that were waiting on it read for themselves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::backend::{Backend, BackendError, GetResult, RemoteRef, SecretValue, StoreContext};

/// How many entries the coalescer keeps before it drops expired ones.
const MAX_ENTRIES: usize = 4096;

/// What a waiting reader learns: the value, or `Err` when it must read for itself.
type Outcome = Option<Result<Option<SecretValue>, ()>>;

enum Slot {
    /// A call is in flight; its outcome arrives on the channel.
    Pending {
        id: u64,
        done: watch::Receiver<Outcome>,
    },
    /// A successful read and when it finished.
    Ready {
        at: Instant,
        value: Option<SecretValue>,
    },
}

/// Shares reads of the same store and ref between ExternalSecrets.
pub struct Coalescer {
    slots: Mutex<HashMap<String, Slot>>,
    next_id: AtomicU64,
    cap: Duration,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer::new(Duration::from_secs(300))
    }
}

/// Removes this call's still-pending slots when the call ends without finishing them
/// (an error, or the reconcile future dropped), so later readers do not wait forever.
struct PendingGuard<'a> {
    coalescer: &'a Coalescer,
    owned: Vec<(String, u64)>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut slots = self.coalescer.lock();
        for (key, id) in &self.owned {
            if matches!(slots.get(key), Some(Slot::Pending { id: p, .. }) if p == id) {
                slots.remove(key);
            }
        }
    }
}

impl Coalescer {
    /// A coalescer that never reuses a result older than `cap`, whatever the reader's
    /// refresh interval.
    pub fn new(cap: Duration) -> Self {
        Coalescer {
            slots: Mutex::default(),
            next_id: AtomicU64::new(0),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `refs` from `store` like [`Backend::get_secrets`], sharing calls with other
    /// readers and reusing results younger than `max_age` (zero: always read fresh).
    pub async fn get_secrets<B: Backend>(
        &self,
        backend: &B,
        store: &StoreContext,
        refs: &[RemoteRef],
        max_age: Duration,
    ) -> Result<Vec<GetResult>, BackendError> {
        let max_age = max_age.min(self.cap);
        if max_age.is_zero() {
            crate::metrics::global().reads(&store.provider, &store.info, refs.len(), 0);
            return backend.get_secrets(store, refs).await;
        }
        let prefix = store_identity(store);
        let keys: Vec<String> = refs.iter().map(|r| format!("{prefix}\n{r:?}")).collect();
        let mut results: Vec<Option<GetResult>> = vec![None; refs.len()];
        let mut waiting = Vec::new();
        let mut mine = Vec::new();
        let mut senders = Vec::new();
        let mut guard = PendingGuard {
            coalescer: self,
            owned: Vec::new(),
        };
        {
            let mut slots = self.lock();
            for (i, key) in keys.iter().enumerate() {
                let found = match slots.get(key) {
                    Some(Slot::Ready { at, value }) if at.elapsed() <= max_age => {
                        Some(Ok(value.clone()))
                    }
                    Some(Slot::Pending { done, .. }) => Some(Err(done.clone())),
                    _ => None,
                };
                match found {
                    Some(Ok(value)) => results[i] = Some(Ok(value)),
                    Some(Err(done)) => waiting.push((i, done)),
                    None => {
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        slots.insert(key.clone(), Slot::Pending { id, done: rx });
                        guard.owned.push((key.clone(), id));
                        mine.push(i);
                        senders.push(tx);
                    }
                }
            }
        }
        if !mine.is_empty() {
            let own: Vec<RemoteRef> = mine.iter().map(|&i| refs[i].clone()).collect();
            // On error the guard clears the pending slots and the dropped senders send
            // every waiter off to read for itself.
            let got = backend.get_secrets(store, &own).await?;
            let mut slots = self.lock();
            for ((&i, tx), result) in mine.iter().zip(&senders).zip(got) {
                match &result {
                    Ok(value) => {
                        slots.insert(
                            keys[i].clone(),
                            Slot::Ready {
                                at: Instant::now(),
                                value: value.clone(),
                            },
                        );
                        tx.send_replace(Some(Ok(value.clone())));
                    }
                    Err(_) => {
                        slots.remove(&keys[i]);
                        tx.send_replace(Some(Err(())));
                    }
                }
                results[i] = Some(result);
            }
            guard.owned.clear();
            if slots.len() > MAX_ENTRIES {
                let cap = self.cap;
                slots.retain(|_, s| match s {
                    Slot::Ready { at, .. } => at.elapsed() <= cap,
                    Slot::Pending { .. } => true,
                });
            }
        }
        drop(guard);
        let mut fallback = Vec::new();
        for (i, mut rx) in waiting {
            let outcome = loop {
                if let Some(outcome) = rx.borrow().clone() {
                    break Some(outcome);
                }
                if rx.changed().await.is_err() {
                    break rx.borrow().clone();
                }
            };
            match outcome {
                Some(Ok(value)) => results[i] = Some(Ok(value)),
                _ => fallback.push(i),
            }
        }
        if !fallback.is_empty() {
            let again: Vec<RemoteRef> = fallback.iter().map(|&i| refs[i].clone()).collect();
            let got = backend.get_secrets(store, &again).await?;
            for (&i, result) in fallback.iter().zip(got) {
                results[i] = Some(result);
            }
        }
        let backend_reads = mine.len() + fallback.len();
        crate::metrics::global().reads(
            &store.provider,
            &store.info,
            backend_reads,
            refs.len() - backend_reads,
        );
        Ok(results
            .into_iter()
            .map(|r| r.expect("every ref answered"))
            .collect())
    }
}

/// The store's provider, identity and a hash of its configuration.
fn store_identity(store: &StoreContext) -> String {
    let config = Sha256::digest(store.config.to_string().as_bytes());
    format!(
        "{}/{:?}/{}/{}/{}",
        store.provider,
        store.info.kind,
        store.info.namespace,
        store.info.name,
        hex::encode(config)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::backend::{
        Capabilities, FindCriteria, ProviderError, PushRef, PushRequest, SecretMap, StoreInfo,
        StoreKind, Validation,
    };

    /// Counts calls and refs; answers `value-of-<key>`, or fails keys starting `fail`.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        refs: AtomicUsize,
    }

    impl Backend for Counting {
        fn capabilities(&self, _: &StoreContext) -> Result<Capabilities, BackendError> {
            Ok(Capabilities::ReadOnly)
        }
        async fn validate(&self, _: &StoreContext) -> Result<Validation, BackendError> {
            Ok(Validation::Ready)
        }
        async fn get_secrets(
            &self,
            _: &StoreContext,
            refs: &[RemoteRef],
        ) -> Result<Vec<GetResult>, BackendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.refs.fetch_add(refs.len(), Ordering::SeqCst);
            // Long enough for concurrent readers to find the call in flight.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(refs
                .iter()
                .map(|r| {
                    if r.key.starts_with("fail") {
                        Err(ProviderError::Unavailable("down".into()))
                    } else {
                        Ok(Some(SecretValue::new(
                            format!("value-of-{}", r.key).into_bytes(),
                        )))
                    }
                })
                .collect())
        }
        async fn get_secret_map(
            &self,
            _: &StoreContext,
            _: &RemoteRef,
        ) -> Result<Option<SecretMap>, BackendError> {
            Ok(None)
        }
        async fn get_all_secrets(
            &self,
            _: &StoreContext,
            _: &FindCriteria,
        ) -> Result<SecretMap, BackendError> {
            Ok(Vec::new())
        }
        async fn push_secret(&self, _: &StoreContext, _: &PushRequest) -> Result<(), BackendError> {
            Ok(())
        }
        async fn delete_secret(&self, _: &StoreContext, _: &PushRef) -> Result<(), BackendError> {
            Ok(())
        }
        async fn secret_exists(&self, _: &StoreContext, _: &PushRef) -> Result<bool, BackendError> {
            Ok(false)
        }
    }

    fn store(config: serde_json::Value) -> StoreContext {
        StoreContext {
            provider: "aws".into(),
            config,
            info: StoreInfo {
                kind: StoreKind::SecretStore,
                name: "s".into(),
                namespace: "ns".into(),
            },
            tls: Default::default(),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn text(r: &GetResult) -> String {
        String::from_utf8_lossy(r.as_ref().unwrap().as_ref().unwrap().expose()).into_owned()
    }

    #[tokio::test]
    async fn concurrent_readers_of_the_same_ref_share_one_call() {
        let backend = Arc::new(Counting::default());
        let coalescer = Arc::new(Coalescer::default());
        let s = store(serde_json::json!({"region": "us-east-1"}));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (b, c, s) = (backend.clone(), coalescer.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                c.get_secrets(b.as_ref(), &s, &[RemoteRef::key("db")], HOUR)
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(text(&t.await.unwrap()[0]), "value-of-db");
        }
        assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
        // A later reader within its window reuses the result.
        let again = coalescer
            .get_secrets(backend.as_ref(), &s, &[RemoteRef::key("db")], HOUR)
            .await
            .unwrap();
        assert_eq!(text(&again[0]), "value-of-db");
        assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_zero_window_a_changed_store_or_an_old_result_read_again() {
        let backend = Counting::default();
        let coalescer = Coalescer::default();
        let s = store(serde_json::json!({"region": "us-east-1"}));
        let one = [RemoteRef::key("db")];
        coalescer
            .get_secrets(&backend, &s, &one, HOUR)
            .await
            .unwrap();
        coalescer
            .get_secrets(&backend, &s, &one, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            backend.calls.load(Ordering::SeqCst),
            2,
            "force-sync reads fresh"
        );
        let edited = store(serde_json::json!({"region": "eu-west-1"}));
        coalescer
            .get_secrets(&backend, &edited, &one, HOUR)
            .await
            .unwrap();
        assert_eq!(
            backend.calls.load(Ordering::SeqCst),
            3,
            "an edited store reads fresh"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        coalescer
            .get_secrets(&backend, &s, &one, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(
            backend.calls.load(Ordering::SeqCst),
            4,
            "older than the window"
        );
        let capped = Coalescer::new(Duration::from_millis(10));
        capped.get_secrets(&backend, &s, &one, HOUR).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        capped.get_secrets(&backend, &s, &one, HOUR).await.unwrap();
        assert_eq!(
            backend.calls.load(Ordering::SeqCst),
            6,
            "the cap bounds every window"
        );
    }

    #[tokio::test]
    async fn errors_are_never_reused_and_mixed_batches_read_only_what_is_missing() {
        let backend = Counting::default();
        let coalescer = Coalescer::default();
        let s = store(serde_json::json!({}));
        let first = coalescer
            .get_secrets(
                &backend,
                &s,
                &[RemoteRef::key("fail-1"), RemoteRef::key("a")],
                HOUR,
            )
            .await
            .unwrap();
        assert!(matches!(first[0], Err(ProviderError::Unavailable(_))));
        let second = coalescer
            .get_secrets(
                &backend,
                &s,
                &[
                    RemoteRef::key("fail-1"),
                    RemoteRef::key("a"),
                    RemoteRef::key("b"),
                ],
                HOUR,
            )
            .await
            .unwrap();
        assert!(second[0].is_err());
        assert_eq!(text(&second[1]), "value-of-a");
        assert_eq!(text(&second[2]), "value-of-b");
        assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            backend.refs.load(Ordering::SeqCst),
            4,
            "a is not read twice"
        );
    }

    #[tokio::test]
    async fn a_reader_whose_call_is_dropped_does_not_strand_the_others() {
        let backend = Arc::new(Counting::default());
        let coalescer = Arc::new(Coalescer::default());
        let s = store(serde_json::json!({}));
        let (b, c, s2) = (backend.clone(), coalescer.clone(), s.clone());
        let first = tokio::spawn(async move {
            c.get_secrets(b.as_ref(), &s2, &[RemoteRef::key("db")], HOUR)
                .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (b, c, s3) = (backend.clone(), coalescer.clone(), s.clone());
        let waiter = tokio::spawn(async move {
            c.get_secrets(b.as_ref(), &s3, &[RemoteRef::key("db")], HOUR)
                .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(text(&got[0]), "value-of-db");
        assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
    }
}
