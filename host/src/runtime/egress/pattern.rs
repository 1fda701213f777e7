//! Outbound-host patterns, in the grammar Spin uses for `allowed_outbound_hosts`:
//! `scheme://host:port` where the scheme is `http`, `https` or `*`; the host is a name, an
//! IP literal (`[::1]` for IPv6), `*.domain` (any subdomain, not the domain itself), a
//! name with whole-label wildcards after its first label (`secretsmanager.*.amazonaws.com`:
//! each such `*` is exactly one DNS label, so a region but never `evil.com.`) or `*`; the port is a number, `*`, or omitted for the scheme's default (80, 443).

use std::fmt;
use std::net::IpAddr;

use super::super::RuntimeError;

/// One allowed `scheme://host:port` pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
    scheme: SchemePattern,
    host: HostMatch,
    port: PortMatch,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SchemePattern {
    Http,
    Https,
    Any,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum HostMatch {
    Exact(String),
    Ip(IpAddr),
    Subdomains(String),
    /// Labels where `None` is a `*` matching exactly one label.
    Labels(Vec<Option<String>>),
    Any,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PortMatch {
    Default,
    Exact(u16),
    Any,
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({})", self.text)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl HostPattern {
    /// Parses a pattern such as `https://*.amazonaws.com` or `http://127.0.0.1:*`.
    pub fn parse(text: &str) -> Result<Self, RuntimeError> {
        let bad = |why: &str| RuntimeError::InvalidGrant(format!("outbound host {text:?}: {why}"));
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port]"))?;
        let scheme = match scheme {
            "http" => SchemePattern::Http,
            "https" => SchemePattern::Https,
            "*" => SchemePattern::Any,
            _ => return Err(bad("scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("a pattern has no path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("malformed host or port"))?;
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(p.parse().map_err(|_| bad("port must be a number or *"))?),
        };
        if port == PortMatch::Default && scheme == SchemePattern::Any {
            return Err(bad("a * scheme needs an explicit port (or *)"));
        }
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(bad("only a leading *. wildcard is allowed"));
            }
            HostMatch::Subdomains(format!(".{domain}"))
        } else if host.contains('*') {
            let labels: Vec<&str> = host.split('.').collect();
            let whole_labels = labels.iter().all(|l| *l == "*" || !l.contains('*'));
            if !whole_labels || labels.iter().any(|l| l.is_empty()) || labels.len() < 3 {
                return Err(bad(
                    "a wildcard is a leading *. or a whole label inside a name (sts.*.amazonaws.com)",
                ));
            }
            // The registrable part stays fixed: `*.com`-like tails would grant everything.
            if labels[labels.len() - 2..].contains(&"*") {
                return Err(bad("the last two labels of a name cannot be wildcards"));
            }
            HostMatch::Labels(
                labels
                    .iter()
                    .map(|l| (*l != "*").then(|| l.to_string()))
                    .collect(),
            )
        } else if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            HostMatch::Ip(ip)
        } else if host.is_empty() {
            return Err(bad("empty host"));
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// The IP address this pattern names literally, if any.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            HostMatch::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// Whether a request to `scheme://host:port` matches. `host` is lower case without
    /// IPv6 brackets; `port` is explicit (defaults already applied).
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            SchemePattern::Http => scheme == "http",
            SchemePattern::Https => scheme == "https",
            SchemePattern::Any => scheme == "http" || scheme == "https",
        };
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
            PortMatch::Default => Some(port) == default_port(scheme),
        };
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
            HostMatch::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostMatch::Labels(labels) => {
                let parts: Vec<&str> = host.split('.').collect();
                parts.len() == labels.len()
                    && labels.iter().zip(&parts).all(|(want, got)| match want {
                        Some(w) => w == got,
                        None => !got.is_empty(),
                    })
            }
        };
        scheme_ok && port_ok && host_ok
    }
}

/// The default port of `http` and `https`.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn subdomain_wildcards_match_any_depth_but_not_the_domain() {
        let aws = p("https://*.amazonaws.com");
        assert!(aws.matches("https", "secretsmanager.us-west-2.amazonaws.com", 443));
        assert!(!aws.matches("https", "amazonaws.com", 443));
        assert!(!aws.matches("https", "evilamazonaws.com", 443));
        assert!(!aws.matches("http", "sts.amazonaws.com", 80));
        assert!(!aws.matches("https", "sts.amazonaws.com", 8443));
    }

    #[test]
    fn ports_are_exact_default_or_any() {
        assert!(p("https://vault.corp:8200").matches("https", "vault.corp", 8200));
        assert!(!p("https://vault.corp:8200").matches("https", "vault.corp", 443));
        assert!(p("http://127.0.0.1:*").matches("http", "127.0.0.1", 31337));
        assert!(!p("http://127.0.0.1:*").matches("http", "127.0.0.2", 31337));
        assert!(p("*://[::1]:*").matches("https", "::1", 1));
    }

    #[test]
    fn inner_wildcards_match_exactly_one_label() {
        let sm = p("https://secretsmanager.*.amazonaws.com");
        assert!(sm.matches("https", "secretsmanager.us-west-2.amazonaws.com", 443));
        assert!(!sm.matches("https", "secretsmanager.amazonaws.com", 443));
        assert!(!sm.matches("https", "secretsmanager.a.b.amazonaws.com", 443));
        assert!(!sm.matches("https", "ssm.us-west-2.amazonaws.com", 443));
        assert!(!sm.matches(
            "https",
            "secretsmanager.us-west-2.amazonaws.com.evil.io",
            443
        ));
        assert!(!sm.matches("http", "secretsmanager.us-west-2.amazonaws.com", 80));
    }

    #[test]
    fn malformed_patterns_are_rejected_with_the_reason() {
        for bad in [
            "vault.corp",
            "ftp://x",
            "https://a.*.com",
            "https://a.b*.example.com",
            "https://a..*.example.com",
            "https://x/path",
            "*://x",
            "https://x:port",
            "https://",
        ] {
            let err = HostPattern::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
