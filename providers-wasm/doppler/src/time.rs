//! The little clock arithmetic OIDC token caching needs.

use std::time::{SystemTime, UNIX_EPOCH};

/// The cache life of a token without a readable expiry.
const FALLBACK_TTL_MS: u64 = 5 * 60 * 1000;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC, as Doppler writes `expires_at`) in epoch milliseconds.
pub use airlock_provider_sdk::time::parse_rfc3339_ms;

/// How long to cache a token expiring at `expires_ms`: until a tenth of its remaining life
/// (at most a minute) before expiry, or a fallback when the expiry is unknown.
pub fn ttl_ms(expires_ms: Option<u64>, now_ms: u64) -> u64 {
    let Some(expires) = expires_ms else {
        return FALLBACK_TTL_MS;
    };
    let left = expires.saturating_sub(now_ms);
    left.saturating_sub((left / 10).min(60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doppler_expiry_times_parse_to_epoch_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:30:15.250Z"),
            Some(1_709_209_815_250)
        );
        assert_eq!(parse_rfc3339_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn tokens_are_cached_until_shortly_before_they_expire() {
        assert_eq!(ttl_ms(Some(1_000_000), 0), 940_000);
        assert_eq!(ttl_ms(Some(10_000), 0), 9_000);
        assert_eq!(ttl_ms(Some(5), 10), 0);
        assert_eq!(ttl_ms(None, 0), FALLBACK_TTL_MS);
    }
}
