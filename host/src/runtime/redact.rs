//! Keeps the secret bytes a call touched out of the text it leaves behind.
//!
//! A guest sees secrets: the credentials the host hands it, the values it pushes and the
//! values it returns. What it writes to its log and its error messages ends up in the
//! operator's log and in resources' status, so before either leaves the call, every
//! occurrence of those bytes is replaced with `[redacted]`. Guest log lines are therefore
//! held until the call ends, when the last secret (a returned value) is known.
//!
//! Values shorter than [`MIN_LEN`] bytes are not looked for: replacing every `abc` in a
//! message would hide more than it protects. Only whole values are matched, in the form
//! the guest received or returned them.
//!
//! The guest chooses both the values and the text, so the work is bounded by the host:
//! all values are found in one linear pass (Aho–Corasick, leftmost-longest), a value is
//! looked for by at most its first [`MAX_PATTERN_LEN`] bytes, a call may remember at most
//! [`MAX_VALUES`] values and [`MAX_PATTERN_BYTES`] bytes of them, and it may have at most
//! [`MAX_WORK_BYTES`] of text scanned and patterns compiled. Past any of those the
//! redactor fails closed: it lets no text through at all.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// The shortest value looked for.
pub const MIN_LEN: usize = 4;
/// Values remembered per call at most.
pub const MAX_VALUES: usize = 4096;
/// The longest pattern. A longer value is looked for by its first this many bytes, and
/// where they occur the rest of the text is hidden too: what follows is the value's tail.
pub const MAX_PATTERN_LEN: usize = 4 << 10;
/// Pattern bytes one call may remember (what the matcher is built from).
pub const MAX_PATTERN_BYTES: usize = 256 << 10;
/// Bytes of text one call may have scanned plus pattern bytes compiled: the redactor's
/// whole work per call.
pub const MAX_WORK_BYTES: usize = 32 << 20;
/// The longest text a redacted message keeps (see [`Redactor::redact_string`]).
pub const MAX_TEXT: usize = 8 << 10;

pub(crate) const MARK: &[u8] = b"[redacted]";
/// What a text becomes once a call has touched more than the redactor looks for.
pub const WITHHELD: &str =
    "[withheld: this call touched more secrets or text than the host redacts]";

/// What to hide: the secret bytes one call touched.
#[derive(Default)]
pub struct Redactor {
    /// Patterns, each marked true when it is the prefix of a longer value.
    values: HashMap<Box<[u8]>, bool>,
    pattern_bytes: usize,
    /// More values than the bounds allow were added: nothing is let through.
    overflowed: bool,
    /// Built on first use after the last [`Redactor::add`].
    matcher: OnceLock<Option<Matcher>>,
    work: AtomicUsize,
}

struct Matcher {
    automaton: AhoCorasick,
    /// By pattern id: whether the pattern is a long value's prefix.
    prefix: Vec<bool>,
}

// Never print the values themselves.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    /// Remembers `value` as secret.
    pub fn add(&mut self, value: &[u8]) {
        if value.len() < MIN_LEN || self.overflowed {
            return;
        }
        let prefix = value.len() > MAX_PATTERN_LEN;
        let pattern = &value[..value.len().min(MAX_PATTERN_LEN)];
        if let Some(known) = self.values.get_mut(pattern) {
            if prefix && !*known {
                *known = true;
                self.matcher = OnceLock::new();
            }
            return;
        }
        if self.values.len() >= MAX_VALUES || self.pattern_bytes + pattern.len() > MAX_PATTERN_BYTES
        {
            self.overflowed = true;
            self.values = HashMap::new();
            self.matcher = OnceLock::new();
            return;
        }
        self.pattern_bytes += pattern.len();
        self.values.insert(pattern.into(), prefix);
        self.matcher = OnceLock::new();
    }

    /// Whether nothing is to be hidden.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && !self.overflowed
    }

    /// Bytes of text scanned and patterns compiled so far.
    #[cfg(test)]
    pub fn work(&self) -> usize {
        self.work.load(Ordering::Relaxed)
    }

    /// Heap bytes of the matcher, once built.
    #[cfg(test)]
    pub fn matcher_bytes(&self) -> usize {
        self.matcher
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |m| m.automaton.memory_usage())
    }

    /// Bytes of the values remembered (as patterns).
    #[cfg(test)]
    pub fn pattern_bytes(&self) -> usize {
        self.pattern_bytes
    }

    /// `text` with every remembered value replaced, cut to at most [`MAX_TEXT`] bytes.
    pub fn redact_string(&self, text: String) -> String {
        self.redact_cut(text, MAX_TEXT)
    }

    /// `text` with every remembered value replaced, then cut to at most `max` bytes
    /// (marked `…` when cut). The scan reaches [`MAX_PATTERN_LEN`] bytes past the cut, so
    /// a value that starts before it is found whole.
    pub fn redact_cut(&self, text: String, max: usize) -> String {
        if self.overflowed {
            return WITHHELD.to_string();
        }
        let scan = floor_boundary(&text, max.saturating_add(MAX_PATTERN_LEN));
        let built = self.matcher.get().is_some();
        let cost = scan + if built { 0 } else { self.pattern_bytes };
        if self.work.fetch_add(cost, Ordering::Relaxed) + cost > MAX_WORK_BYTES {
            return WITHHELD.to_string();
        }
        let Some(matcher) = self.matcher.get_or_init(|| self.build()) else {
            return WITHHELD.to_string();
        };
        let haystack = &text.as_bytes()[..scan];
        let mut found = matcher.automaton.find_iter(haystack).peekable();
        if found.peek().is_none() {
            return cut(text, max);
        }
        let mut out = Vec::with_capacity(scan.min(max) + MARK.len());
        let mut at = 0;
        let mut rest_hidden = false;
        for m in found {
            out.extend_from_slice(&haystack[at..m.start()]);
            out.extend_from_slice(MARK);
            at = m.end();
            if matcher.prefix[m.pattern().as_usize()] {
                rest_hidden = true;
                break;
            }
        }
        if !rest_hidden {
            out.extend_from_slice(&haystack[at..]);
        }
        let mut redacted = String::from_utf8_lossy(&out).into_owned();
        if !rest_hidden && scan < text.len() && redacted.len() <= max {
            redacted.push('…');
        }
        cut(redacted, max)
    }

    fn build(&self) -> Option<Matcher> {
        let (patterns, prefix): (Vec<&[u8]>, Vec<bool>) =
            self.values.iter().map(|(v, p)| (&**v, *p)).unzip();
        // Always the contiguous NFA: for few long patterns the crate would pick a DFA, a
        // kilobyte per pattern byte (256 MiB for 64 random 4 KiB values); the NFA stays
        // under 8 MiB at the bounds above.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns)
            .ok()?;
        Some(Matcher { automaton, prefix })
    }
}

/// The largest char boundary of `text` at or below `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut end = text.len().min(at);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        text.truncate(floor_boundary(&text, max));
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(r: &Redactor, text: &str) -> String {
        r.redact_string(text.to_string())
    }

    #[test]
    fn every_occurrence_of_a_value_is_hidden() {
        let mut r = Redactor::default();
        r.add(b"hunter22");
        assert_eq!(
            redact(&r, "login with hunter22 failed; hunter22 is wrong"),
            "login with [redacted] failed; [redacted] is wrong"
        );
        assert_eq!(redact(&r, "nothing here"), "nothing here");
    }

    #[test]
    fn a_value_containing_another_is_hidden_whole() {
        let mut r = Redactor::default();
        r.add(b"pass");
        r.add(b"password-1234");
        assert_eq!(redact(&r, "got password-1234"), "got [redacted]");
        assert_eq!(redact(&r, "a pass"), "a [redacted]");
    }

    #[test]
    fn short_values_are_not_looked_for_and_debug_shows_no_value() {
        let mut r = Redactor::default();
        r.add(b"abc");
        assert!(r.is_empty());
        r.add(b"s3cr3t-token");
        r.add(b"s3cr3t-token");
        assert_eq!(format!("{r:?}"), "Redactor(1 values)");
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_value_that_is_not_text_is_hidden_too() {
        let mut r = Redactor::default();
        r.add(&[0xff, 0xfe, b'k', b'e', b'y']);
        let text = String::from_utf8_lossy(&[b'x', 0xff, 0xfe, b'k', b'e', b'y']).into_owned();
        // The guest's text is UTF-8: invalid bytes arrive already replaced, so only a
        // valid-UTF-8 value can occur in it; this one cannot, and the text is unchanged.
        assert_eq!(redact(&r, &text), text);
        r.add("clé-secrète".as_bytes());
        assert_eq!(redact(&r, "voici clé-secrète."), "voici [redacted].");
    }

    #[test]
    fn a_long_value_hides_the_rest_of_the_text_from_where_it_starts() {
        let mut r = Redactor::default();
        let long: String = (0..MAX_PATTERN_LEN * 2)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        r.add(long.as_bytes());
        assert_eq!(r.pattern_bytes(), MAX_PATTERN_LEN);
        let text = format!("cert: {long} (end of cert) and more");
        assert_eq!(redact(&r, &text), "cert: [redacted]");
    }

    #[test]
    fn a_value_across_the_cut_is_hidden_before_the_text_is_cut() {
        let mut r = Redactor::default();
        r.add(b"0123456789-secret");
        let text = format!("{}0123456789-secret tail", "x".repeat(15));
        let out = r.redact_cut(text, 20);
        assert_eq!(out, "xxxxxxxxxxxxxxx[reda…");
        assert!(!out.contains("0123"));
    }

    #[test]
    fn past_the_value_bounds_no_text_is_let_through() {
        let mut r = Redactor::default();
        for i in 0..MAX_PATTERN_BYTES / 1024 {
            r.add(format!("{i:08}{}", "v".repeat(1016)).as_bytes());
        }
        assert_eq!(redact(&r, "fine"), "fine");
        r.add(&[b'w'; 1024]);
        assert_eq!(redact(&r, "a line the guest wrote"), WITHHELD);
        let mut many = Redactor::default();
        for i in 0..=MAX_VALUES {
            many.add(format!("value-{i}").as_bytes());
        }
        assert_eq!(redact(&many, "value-1"), WITHHELD);
    }

    // Values that all match deep into every window of the text made the former
    // window-by-window scan cost text × values × value length.
    #[test]
    fn adversarial_values_cost_work_linear_in_text_and_values() {
        let mut r = Redactor::default();
        for i in 0..16u8 {
            let mut value = vec![b'a'; 255];
            value.push(b'0' + i);
            r.add(&value);
        }
        let text = "a".repeat(4096);
        for _ in 0..4 {
            assert_eq!(redact(&r, &text).len(), text.len());
        }
        let scanned = 4 * text.len();
        assert!(
            r.work() <= scanned + 16 * 256,
            "{} bytes of work for {scanned} bytes of text",
            r.work()
        );
    }

    #[test]
    fn the_matcher_stays_small_for_few_long_random_values() {
        let mut r = Redactor::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..MAX_PATTERN_BYTES / MAX_PATTERN_LEN {
            let value: Vec<u8> = (0..MAX_PATTERN_LEN)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 26) as u8 + b'a'
                })
                .collect();
            r.add(&value);
        }
        assert_eq!(redact(&r, "a line"), "a line");
        assert!(r.matcher_bytes() > 0);
        assert!(
            r.matcher_bytes() < 16 << 20,
            "{} bytes for {} bytes of patterns",
            r.matcher_bytes(),
            r.pattern_bytes()
        );
    }

    #[test]
    fn the_work_budget_is_counted_and_fails_closed() {
        let mut r = Redactor::default();
        r.add(b"hunter22");
        let text = "x".repeat(MAX_TEXT);
        let per_text = MAX_TEXT;
        let mut passed = 0;
        while redact(&r, &text) != WITHHELD {
            passed += 1;
            assert!(passed <= MAX_WORK_BYTES / per_text, "never withheld");
        }
        assert!(passed >= MAX_WORK_BYTES / per_text - 1, "{passed}");
    }
}
