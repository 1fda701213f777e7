//! The host-side cache a provider keeps for one store across calls (tokens, temporary
//! credentials, ETags). Fresh instances per call keep no memory; this does, bounded and
//! scoped: one [`StoreCache`] per provider, store and configuration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretSlice};

/// Entries one store may hold.
pub const MAX_ENTRIES: usize = 64;
/// Bytes one value may hold.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Bytes one store may hold in all.
pub const MAX_TOTAL_BYTES: usize = 512 << 10;

/// One store's cache.
#[derive(Default)]
pub struct StoreCache {
    entries: Mutex<HashMap<String, (SecretSlice<u8>, Instant)>>,
}

impl std::fmt::Debug for StoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        write!(f, "StoreCache({n} entries)")
    }
}

impl StoreCache {
    /// The live value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((_, expires)) if *expires <= Instant::now() => {
                entries.remove(key);
                None
            }
            Some((value, _)) => Some(value.expose_secret().to_vec()),
            None => None,
        }
    }

    /// Stores a value; returns false (and stores nothing) when a bound would be exceeded.
    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        if value.len() > MAX_VALUE_BYTES || key.len() > 512 {
            return false;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        let now = Instant::now();
        entries.retain(|_, (_, expires)| *expires > now);
        let others: usize = entries
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, (v, _))| k.len() + v.expose_secret().len())
            .sum();
        let replacing = entries.contains_key(key);
        if (!replacing && entries.len() >= MAX_ENTRIES)
            || others + key.len() + value.len() > MAX_TOTAL_BYTES
        {
            return false;
        }
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(3600 * 24 * 365));
        entries.insert(
            key.to_string(),
            (SecretSlice::from(value.to_vec()), expires),
        );
        true
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_after_their_ttl() {
        let cache = StoreCache::default();
        assert!(cache.set("token", b"abc", Duration::from_millis(30)));
        assert_eq!(cache.get("token").as_deref(), Some(&b"abc"[..]));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("token"), None);
    }

    #[test]
    fn bounds_refuse_oversized_values_and_too_many_entries() {
        let cache = StoreCache::default();
        assert!(!cache.set(
            "big",
            &vec![0; MAX_VALUE_BYTES + 1],
            Duration::from_secs(60)
        ));
        for i in 0..MAX_ENTRIES {
            assert!(cache.set(&format!("k{i}"), b"v", Duration::from_secs(60)));
        }
        assert!(!cache.set("one-more", b"v", Duration::from_secs(60)));
        assert!(cache.set("k0", b"replaced", Duration::from_secs(60)));
        cache.delete("k0");
        assert_eq!(cache.get("k0"), None);
    }
}
