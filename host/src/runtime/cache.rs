//! The host-side cache a provider keeps for one store across calls (tokens, temporary
//! credentials, ETags). Fresh instances per call keep no memory; this does, bounded and
//! scoped: one [`StoreCache`] per provider, store and configuration, and one
//! [`CacheBudget`] shared by all of them, so ten thousand stores cannot each fill theirs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretSlice};

/// Entries one store may hold.
pub const MAX_ENTRIES: usize = 64;
/// Bytes one value may hold.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Bytes one store may hold in all.
pub const MAX_TOTAL_BYTES: usize = 512 << 10;
/// Longest key.
const MAX_KEY_BYTES: usize = 512;
/// Bytes the caches of all stores may hold together, by default.
pub const DEFAULT_ALL_STORES_BYTES: usize = 64 << 20;

/// Why a value was not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The value or its key is over the size of one entry.
    #[error("the entry is over {MAX_VALUE_BYTES} bytes or its key over {MAX_KEY_BYTES}")]
    EntryTooLarge,
    /// The store holds as many entries as it may.
    #[error("the store's cache holds {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// The store's cache would hold more bytes than it may.
    #[error("the store's cache would hold more than {MAX_TOTAL_BYTES} bytes")]
    StoreFull,
    /// The caches of all stores together would hold more than the runtime allows.
    #[error("the caches of all stores would hold more than {0} bytes")]
    AllStoresFull(usize),
}

/// The bytes the caches of all stores hold, and how many they may.
#[derive(Debug)]
pub struct CacheBudget {
    limit: usize,
    used: AtomicUsize,
}

impl CacheBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        CacheBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes, unless that would pass the limit.
    fn take(&self, n: usize) -> Result<(), Refused> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| Refused::AllStoresFull(self.limit))
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes held across stores.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Default for CacheBudget {
    /// The budget of a lone store: [`MAX_TOTAL_BYTES`].
    fn default() -> Self {
        CacheBudget::new(MAX_TOTAL_BYTES)
    }
}

/// One store's cache.
#[derive(Default)]
pub struct StoreCache {
    entries: Mutex<HashMap<String, (SecretSlice<u8>, Instant)>>,
    budget: Arc<CacheBudget>,
}

impl std::fmt::Debug for StoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        write!(f, "StoreCache({n} entries)")
    }
}

/// What an entry costs: its key and its value.
fn size(key: &str, value: &SecretSlice<u8>) -> usize {
    key.len() + value.expose_secret().len()
}

impl StoreCache {
    /// An empty cache drawing on `budget`, shared with other stores.
    pub fn new(budget: Arc<CacheBudget>) -> Self {
        StoreCache {
            entries: Mutex::default(),
            budget,
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((_, expires)) if *expires <= Instant::now() => {
                if let Some((value, _)) = entries.remove(key) {
                    self.budget.give_back(size(key, &value));
                }
                None
            }
            Some((value, _)) => Some(value.expose_secret().to_vec()),
            None => None,
        }
    }

    /// Stores a value, or says which bound it would exceed (and stores nothing).
    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Refused> {
        if value.len() > MAX_VALUE_BYTES || key.len() > MAX_KEY_BYTES {
            return Err(Refused::EntryTooLarge);
        }
        let Ok(mut entries) = self.entries.lock() else {
            return Err(Refused::StoreFull);
        };
        let now = Instant::now();
        let mut expired = 0;
        entries.retain(|k, (v, expires)| {
            let live = *expires > now;
            if !live {
                expired += size(k, v);
            }
            live
        });
        self.budget.give_back(expired);
        let others: usize = entries
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, (v, _))| size(k, v))
            .sum();
        let replaced = entries.get(key).map_or(0, |(v, _)| size(key, v));
        if replaced == 0 && entries.len() >= MAX_ENTRIES {
            return Err(Refused::TooManyEntries);
        }
        let new = key.len() + value.len();
        if others + new > MAX_TOTAL_BYTES {
            return Err(Refused::StoreFull);
        }
        if new > replaced {
            self.budget.take(new - replaced)?;
        } else {
            self.budget.give_back(replaced - new);
        }
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(3600 * 24 * 365));
        entries.insert(
            key.to_string(),
            (SecretSlice::from(value.to_vec()), expires),
        );
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some((value, _)) = entries.remove(key)
        {
            self.budget.give_back(size(key, &value));
        }
    }
}

// A store whose configuration is forgotten gives its bytes back to the other stores.
impl Drop for StoreCache {
    fn drop(&mut self) {
        let held: usize = self
            .entries
            .get_mut()
            .map(|e| e.iter().map(|(k, (v, _))| size(k, v)).sum())
            .unwrap_or(0);
        self.budget.give_back(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn values_expire_after_their_ttl() {
        let cache = StoreCache::default();
        assert!(
            cache
                .set("token", b"abc", Duration::from_millis(30))
                .is_ok()
        );
        assert_eq!(cache.get("token").as_deref(), Some(&b"abc"[..]));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("token"), None);
    }

    #[test]
    fn bounds_refuse_oversized_values_and_too_many_entries() {
        let cache = StoreCache::default();
        assert_eq!(
            cache.set("big", &vec![0; MAX_VALUE_BYTES + 1], MINUTE),
            Err(Refused::EntryTooLarge)
        );
        for i in 0..MAX_ENTRIES {
            assert!(cache.set(&format!("k{i}"), b"v", MINUTE).is_ok());
        }
        assert_eq!(
            cache.set("one-more", b"v", MINUTE),
            Err(Refused::TooManyEntries)
        );
        assert!(cache.set("k0", b"replaced", MINUTE).is_ok());
        cache.delete("k0");
        assert_eq!(cache.get("k0"), None);
    }

    #[test]
    fn the_caches_of_all_stores_share_one_budget_and_give_it_back() {
        let budget = Arc::new(CacheBudget::new(3 * 1000));
        let value = vec![b'v'; 996];
        let a = StoreCache::new(budget.clone());
        let b = StoreCache::new(budget.clone());
        assert!(a.set("a1", &value, MINUTE).is_ok());
        assert!(a.set("a2", &value, MINUTE).is_ok());
        assert!(b.set("b1", &value, MINUTE).is_ok());
        assert_eq!(budget.used(), 3 * 998);
        assert_eq!(
            b.set("b2", &value, MINUTE),
            Err(Refused::AllStoresFull(3000))
        );
        // Replacing with a smaller value, deleting, and forgetting a store give bytes back.
        assert!(a.set("a1", b"tiny", MINUTE).is_ok());
        assert_eq!(budget.used(), 2 * 998 + 6);
        b.delete("b1");
        assert!(b.set("b2", &value, MINUTE).is_ok());
        drop(a);
        assert_eq!(budget.used(), 998);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
