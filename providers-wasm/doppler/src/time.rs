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
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let total = ((days * 24 + h) * 60 + min) * 60 + s;
    u64::try_from(total * 1000 + millis).ok()
}

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
