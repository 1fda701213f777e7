//! What to do next when a call into a provider fails because of a grant the cluster admin
//! controls: which Provider field would let the request through, and its current value.
//!
//! The runtime's refusals are stable sentences (`outbound host … is not granted to provider
//! …`, `egress to … refused: … resolves to …`, `provider … is not granted the operator's
//! service-account token`) and its limit errors carry the provider and the limit as fields;
//! the advice is derived from those here, so the runtime's own messages stay as they are.

use std::net::IpAddr;

use super::Error;
use crate::backend::BackendError;
use crate::runtime::RuntimeError;

/// The Event note for a failed sync or store validation: the error, its stable reason and,
/// when a grant or limit is the cause, what to change (`…; to fix: add "https://h" to …`).
/// Built only from the error's (already redacted) text and fields, so it holds no secret.
/// `provider` is the Provider serving the store, when the caller knows it (a private-address
/// refusal does not name it).
pub(crate) fn failure_note(e: &Error, provider: Option<&str>) -> String {
    let mut note = format!("{e} ({})", e.reason());
    if let Some(wait) = e.retry_after() {
        note.push_str(&format!(
            "; the backend asked to retry after {} s (Retry-After), which the next attempt honours",
            wait.as_secs_f64()
        ));
    }
    let fixes = advice(e, provider);
    if !fixes.is_empty() {
        note.push_str("; to fix: ");
        note.push_str(&fixes.join("; "));
    }
    note
}

/// Each change that would let the failed call through, in the order the causes appear.
pub(crate) fn advice(e: &Error, provider: Option<&str>) -> Vec<String> {
    let runtime = match e {
        Error::Runtime(r) | Error::Backend(BackendError::Runtime(r)) => Some(r),
        _ => None,
    };
    match runtime {
        Some(RuntimeError::MemoryLimit { provider, limit }) => {
            return vec![format!(
                "raise spec.limits.memoryBytes of Provider {provider} (now {limit})"
            )];
        }
        Some(RuntimeError::CpuDeadline { provider, budget }) => {
            return vec![format!(
                "raise spec.limits.cpuMillisPerCall of Provider {provider} (now {})",
                budget.as_millis()
            )];
        }
        _ => {}
    }
    let text = e.to_string();
    let mut fixes = Vec::new();
    let mut push = |fix: String| {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    };
    for (url, named) in between(&text, "outbound host ", " is not granted to provider ") {
        let named = name_at(named);
        if let Some(origin) = origin(url) {
            push(format!(
                "add \"{origin}\" to spec.allowedOutboundHosts of Provider {named}"
            ));
        }
    }
    // `egress to <url> refused: <host> resolves to <ip>, a private … address` does not name
    // the provider: the caller's, else one named by another refusal of the message.
    for (_, rest) in between(&text, "egress to ", " refused: ") {
        let Some((_, after)) = rest.split_once(" resolves to ") else {
            continue;
        };
        let ip = after.split(',').next().unwrap_or_default();
        let Ok(ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        let cidr = match ip {
            IpAddr::V4(_) => format!("{ip}/32"),
            IpAddr::V6(_) => format!("{ip}/128"),
        };
        let whose = provider
            .or_else(|| provider_in(&text))
            .map(|p| format!("Provider {p}"))
            .unwrap_or_else(|| "the store's Provider".into());
        push(format!("add \"{cidr}\" to spec.allowedCidrs of {whose}"));
    }
    for (named, _) in between(
        &text,
        "provider ",
        " is not granted the operator's service-account token",
    ) {
        let named = last_word(named);
        push(format!(
            "set spec.credentials.allowOperatorServiceAccountToken: true on Provider \
             {named}, or name a secretRef or serviceAccountRef in the store's auth"
        ));
    }
    for (store, _) in between(
        &text,
        "SecretStore ",
        " may not use the operator's service-account token",
    ) {
        let store = last_word(store);
        push(format!(
            "name a secretRef or serviceAccountRef in the auth of SecretStore {store} (only \
             a ClusterSecretStore may use the operator's token)"
        ));
    }
    fixes
}

/// Every `(text before, text after)` around each occurrence of `start … end`: the part
/// between the markers and the rest of the message after `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(end) {
        let head = &rest[..at];
        let tail = &rest[at + end.len()..];
        if let Some(s) = head.rfind(start) {
            out.push((&head[s + start.len()..], tail));
        }
        rest = tail;
    }
    out
}

/// The Kubernetes object name at the start of `text`.
fn name_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '/'))
        .unwrap_or(text.len());
    text[..end].trim_end_matches('.')
}

/// The last whitespace-separated word of `text`.
fn last_word(text: &str) -> &str {
    text.rsplit(' ').next().unwrap_or(text)
}

/// The provider a refusal message names (`… to provider <name>`).
fn provider_in(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(" to provider ")?;
    Some(name_at(rest)).filter(|n| !n.is_empty())
}

/// `scheme://host:port` as a grant pattern: the port left out when it is the scheme's own.
fn origin(url: &str) -> Option<String> {
    let (scheme, authority) = url.split_once("://")?;
    let (host, port) = authority.rsplit_once(':')?;
    if host.is_empty() || host.contains("[redacted]") {
        return None;
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let default = matches!((scheme, port), ("https", "443") | ("http", "80"));
    Some(if default {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ProviderError;
    use std::time::Duration;

    fn provider(e: ProviderError) -> Error {
        Error::Backend(BackendError::Provider(e))
    }

    #[test]
    fn a_refused_host_names_the_grant_to_add() {
        let e = provider(ProviderError::Unavailable(
            "GET https://vault.corp/v1: denied (host: outbound host https://vault.corp:443 is \
             not granted to provider vault; outbound host http://127.0.0.2:8200 is not granted \
             to provider vault)"
                .into(),
        ));
        assert_eq!(
            advice(&e, None),
            [
                "add \"https://vault.corp\" to spec.allowedOutboundHosts of Provider vault",
                "add \"http://127.0.0.2:8200\" to spec.allowedOutboundHosts of Provider vault",
            ]
        );
        let note = failure_note(&e, None);
        assert!(
            note.ends_with(
                "(ProviderUnavailable); to fix: add \"https://vault.corp\" to \
                 spec.allowedOutboundHosts of Provider vault; add \"http://127.0.0.2:8200\" to \
                 spec.allowedOutboundHosts of Provider vault"
            ),
            "{note}"
        );
    }

    #[test]
    fn a_refused_private_address_names_the_cidr_to_allow() {
        let e = provider(ProviderError::Unavailable(
            "connect failed (host: egress to https://db.internal:443 refused: db.internal \
             resolves to 10.1.2.3, a private, loopback, link-local or metadata address that is \
             not granted)"
                .into(),
        ));
        assert_eq!(
            advice(&e, None),
            ["add \"10.1.2.3/32\" to spec.allowedCidrs of the store's Provider"]
        );
        assert_eq!(
            advice(&e, Some("vault")),
            ["add \"10.1.2.3/32\" to spec.allowedCidrs of Provider vault"]
        );
    }

    #[test]
    fn a_refused_operator_token_names_the_provider_setting() {
        let e = provider(ProviderError::AccessDenied(
            "auth.kubernetes: provider vault-x is not granted the operator's service-account \
             token (the admin can set …)"
                .into(),
        ));
        assert_eq!(
            advice(&e, None),
            [
                "set spec.credentials.allowOperatorServiceAccountToken: true on Provider \
                 vault-x, or name a secretRef or serviceAccountRef in the store's auth"
            ]
        );
        let e = provider(ProviderError::AccessDenied(
            "SecretStore team/app may not use the operator's service-account token (only …)".into(),
        ));
        assert_eq!(
            advice(&e, None),
            [
                "name a secretRef or serviceAccountRef in the auth of SecretStore team/app \
                 (only a ClusterSecretStore may use the operator's token)"
            ]
        );
    }

    #[test]
    fn a_limit_trap_names_the_limit_field_and_its_value() {
        let e = Error::Backend(BackendError::Runtime(RuntimeError::MemoryLimit {
            provider: "hostile".into(),
            limit: 16_777_216,
        }));
        assert_eq!(
            advice(&e, None),
            ["raise spec.limits.memoryBytes of Provider hostile (now 16777216)"]
        );
        let e = Error::Runtime(RuntimeError::CpuDeadline {
            provider: "hostile".into(),
            budget: Duration::from_millis(250),
        });
        assert_eq!(
            advice(&e, None),
            ["raise spec.limits.cpuMillisPerCall of Provider hostile (now 250)"]
        );
    }

    #[test]
    fn other_failures_get_no_advice() {
        let e = provider(ProviderError::AccessDenied("permission denied".into()));
        assert!(advice(&e, None).is_empty());
        assert_eq!(
            failure_note(&e, None),
            "access denied: permission denied (AccessDenied)"
        );
        let redacted = provider(ProviderError::Unavailable(
            "outbound host https://[redacted].evil:443 is not granted to provider p".into(),
        ));
        assert!(advice(&redacted, None).is_empty());
    }
}
