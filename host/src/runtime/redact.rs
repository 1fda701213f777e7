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

use std::borrow::Cow;

/// The shortest value looked for.
pub const MIN_LEN: usize = 4;
/// Values remembered per call at most; a call touching more keeps the first ones.
const MAX_VALUES: usize = 4096;

/// What to hide: the secret bytes one call touched.
#[derive(Default)]
pub struct Redactor {
    values: Vec<Vec<u8>>,
}

// Never print the values themselves.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

const MARK: &[u8] = b"[redacted]";

impl Redactor {
    /// Remembers `value` as secret.
    pub fn add(&mut self, value: &[u8]) {
        if value.len() >= MIN_LEN
            && self.values.len() < MAX_VALUES
            && !self.values.iter().any(|v| v == value)
        {
            self.values.push(value.to_vec());
        }
    }

    /// Whether nothing is to be hidden.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every remembered value replaced; longer values first, so a secret that
    /// contains another is hidden whole.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut values: Vec<&[u8]> = self
            .values
            .iter()
            .map(Vec::as_slice)
            .filter(|v| v.len() <= text.len() && contains(text.as_bytes(), v))
            .collect();
        if values.is_empty() {
            return Cow::Borrowed(text);
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut bytes = text.as_bytes().to_vec();
        for value in values {
            bytes = replace(&bytes, value);
        }
        Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `text` redacted in place.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(redacted) => redacted,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while rest.len() >= needle.len() {
        if rest.starts_with(needle) {
            out.extend_from_slice(MARK);
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_of_a_value_is_hidden() {
        let mut r = Redactor::default();
        r.add(b"hunter22");
        assert_eq!(
            r.redact("login with hunter22 failed; hunter22 is wrong"),
            "login with [redacted] failed; [redacted] is wrong"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_value_containing_another_is_hidden_whole() {
        let mut r = Redactor::default();
        r.add(b"pass");
        r.add(b"password-1234");
        assert_eq!(r.redact("got password-1234"), "got [redacted]");
        assert_eq!(r.redact("a pass"), "a [redacted]");
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
        assert_eq!(r.redact(&text), text);
        r.add("clé-secrète".as_bytes());
        assert_eq!(r.redact("voici clé-secrète."), "voici [redacted].");
    }
}
