//! `dataFrom.find` helpers shared by every provider that searches its backend.

use crate::{Error, Find};

/// The `find.name.regexp` of a search, compiled once. Matches every name when the search
/// has no regexp.
#[derive(Debug, Clone)]
pub struct NameMatcher(Option<regex_lite::Regex>);

impl NameMatcher {
    /// Compiles `criteria.name_regexp`; an invalid expression is an `invalid-request` error
    /// saying what is wrong with it.
    pub fn new(criteria: &Find) -> Result<Self, Error> {
        criteria
            .name_regexp
            .as_deref()
            .map(regex_lite::Regex::new)
            .transpose()
            .map(NameMatcher)
            .map_err(|e| Error::invalid_request(format!("find.name.regexp: {e}")))
    }

    /// Whether `name` matches the regexp (anywhere in it, as ESO's Go regexp does).
    pub fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|re| re.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(regexp: Option<&str>) -> Find {
        Find {
            path: None,
            name_regexp: regexp.map(str::to_string),
            tags: Vec::new(),
        }
    }

    #[test]
    fn no_regexp_matches_every_name() {
        let matcher = NameMatcher::new(&find(None)).expect("no regexp");
        assert!(matcher.matches("anything"));
        assert!(matcher.matches(""));
    }

    #[test]
    fn a_regexp_matches_anywhere_in_the_name_unless_anchored() {
        let matcher = NameMatcher::new(&find(Some("db"))).expect("valid");
        assert!(matcher.matches("app/db/password"));
        assert!(!matcher.matches("app/cache"));
        let anchored = NameMatcher::new(&find(Some("^app/.*db$"))).expect("valid");
        assert!(anchored.matches("app/main-db"));
        assert!(!anchored.matches("other/app/main-db"));
    }

    #[test]
    fn an_invalid_regexp_is_an_invalid_request_naming_the_field() {
        let Err(Error::InvalidRequest(message)) = NameMatcher::new(&find(Some("["))) else {
            panic!("expected an invalid-request error");
        };
        assert!(
            message.starts_with("find.name.regexp: ") && message.contains("unclosed"),
            "{message}"
        );
    }
}
