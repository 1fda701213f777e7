//! What to do next when a call into a provider fails because of a grant the cluster admin
//! controls: which Provider field would let the request through, and its current value.
//!
//! The runtime's refusals are stable sentences (`outbound host … is not granted to provider
//! …`, `egress to … refused: … resolves to …`, `provider … is not granted the operator's
//! service-account token`) and its limit errors carry the provider and the limit as fields;
//! the advice is derived from those here, so the runtime's own messages stay as they are.
//!
//! A Provider whose module does not load gets the same kind of advice on its own `Ready`
//! condition ([`load_failure_message`]): which field of the Provider, or what about its
//! module, to change.

use std::net::IpAddr;

use super::Error;
use crate::backend::BackendError;
use crate::registry::RegistryError;
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
    with_fixes(note, &advice(e, provider))
}

/// The `Ready` message of Provider `provider` whose module did not load: `message` (the
/// error, and which module keeps serving meanwhile) and, when the cause is one the admin can
/// change, what to change (`…; to fix: raise spec.limits.memoryBytes of Provider p …`).
pub(crate) fn load_failure_message(e: &Error, provider: &str, message: String) -> String {
    with_fixes(message, &load_advice(e, provider))
}

/// `text`, then `; to fix: ` and the fixes joined by `; ` when there are any.
fn with_fixes(mut text: String, fixes: &[String]) -> String {
    if !fixes.is_empty() {
        text.push_str("; to fix: ");
        text.push_str(&fixes.join("; "));
    }
    text
}

/// What would let Provider `p`'s module load: a field of the Provider, or the module itself.
pub(crate) fn load_advice(e: &Error, p: &str) -> Vec<String> {
    let fix = match e {
        Error::Registry(r) => match r {
            RegistryError::DigestMismatch(m) => digest_advice(m, p),
            RegistryError::NotFound(_) => format!(
                "push the module to the reference in spec.module.oci of Provider {p} \
                 (`airlock provider push MODULE.wasm REFERENCE`), or correct that reference"
            ),
            RegistryError::Unreachable { registry, message } => {
                let mut fix = format!(
                    "check that the operator can reach registry {registry} (host and port, \
                     DNS, a NetworkPolicy's egress)"
                );
                let lower = message.to_ascii_lowercase();
                if ["tls", "certificate", "handshake", "ssl"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    fix.push_str(&format!(
                        "; set spec.module.caBundle of Provider {p} to the CA of the registry's \
                         certificate, or spec.module.insecure: true if it serves plain HTTP"
                    ));
                }
                fix
            }
            RegistryError::Unauthorized { registry, .. } => format!(
                "set spec.module.pullSecretRef of Provider {p} to a \
                 kubernetes.io/dockerconfigjson Secret whose credentials for {registry} may \
                 pull the repository"
            ),
            RegistryError::InvalidCredentials(_) => format!(
                "create the Secret spec.module.pullSecretRef of Provider {p} names with \
                 `kubectl create secret docker-registry NAME --docker-server=REGISTRY \
                 --docker-username=… --docker-password=…`, in the namespace it names"
            ),
            RegistryError::InvalidCaBundle(_) => format!(
                "set spec.module.caBundle of Provider {p} to base64-encoded PEM \
                 certificates (`base64 -w0 ca.pem`)"
            ),
            RegistryError::NotAWasmArtifact(_) => format!(
                "push the provider as a Wasm component artifact (`airlock provider push \
                 MODULE.wasm REFERENCE`) and name that in spec.module.oci of Provider {p}"
            ),
            RegistryError::SignatureMissing(_) => format!(
                "sign the artifact (`airlock provider sign REFERENCE --key cosign.key`), or \
                 remove spec.signature from Provider {p}"
            ),
            RegistryError::SignatureInvalid(_) => format!(
                "sign the artifact with the private key of spec.signature.publicKey \
                 (`airlock provider sign REFERENCE --key cosign.key`), or set \
                 spec.signature.publicKey of Provider {p} to the signer's public key"
            ),
            _ => return Vec::new(),
        },
        Error::Runtime(RuntimeError::Compile(_)) => format!(
            "point spec.module of Provider {p} at a WebAssembly component built for \
             wasm32-wasip2 (a core module needs `wasm-tools component new`)"
        ),
        Error::Runtime(RuntimeError::Link(m)) => contract_advice(m, p),
        Error::Runtime(RuntimeError::InvalidGrant(m)) => grant_advice(m, p),
        Error::ModuleRead { .. } => format!(
            "set spec.module.path of Provider {p} to a module in the operator's providers \
             directory (the image bundles airlock_provider_<name>.wasm), or name an OCI \
             artifact in spec.module.oci"
        ),
        other => return advice(other, Some(p)),
    };
    vec![fix]
}

/// A pinned digest the registry does not serve: pin what the tag is now, if trusted, or push
/// what the pin names; content that does not match its digest: push it again.
fn digest_advice(message: &str, p: &str) -> String {
    // `<repository>:<tag> is <actual>, but the reference pins <pinned> which is not in …`
    let pins = message
        .split_once(" is sha256:")
        .and_then(|(_, rest)| rest.split_once(", but the reference pins "))
        .map(|(actual, rest)| (actual, rest.split(' ').next().unwrap_or_default()));
    match pins {
        Some((actual, pinned)) => format!(
            "if sha256:{actual}, what the tag holds now, is the module you trust, pin it in \
             spec.module.oci of Provider {p} (…@sha256:{actual}); otherwise push the module \
             whose manifest digest is {pinned}"
        ),
        None => format!(
            "the registry serves other content than the digest in spec.module.oci of \
             Provider {p}: push the module again, or correct the digest if it is wrong; \
             do not drop the digest"
        ),
    }
}

/// A module that does not satisfy the provider contract (WIT world
/// `airlock:provider/provider@0.1.0`).
fn contract_advice(message: &str, p: &str) -> String {
    for forbidden in ["wasi:filesystem", "wasi:sockets"] {
        if message.contains(&format!("it imports {forbidden}")) {
            return format!(
                "rebuild the module of Provider {p} without {forbidden} (providers reach \
                 the network only through wasi:http and the cluster's Secrets only through \
                 airlock:provider/credentials)"
            );
        }
    }
    format!(
        "rebuild the module of Provider {p} against the world airlock:provider/provider@0.1.0 \
         (the wit/ folder of Airlock, or the airlock-provider-sdk crate), importing only \
         wasi:http, wasi:io, wasi:clocks, wasi:random, wasi:cli and airlock:provider"
    )
}

/// A grant the runtime cannot parse, by the field its message names.
fn grant_advice(message: &str, p: &str) -> String {
    if message.starts_with("outbound host ") {
        format!(
            "correct spec.allowedOutboundHosts of Provider {p}: scheme://host[:port] with `*` \
             for a whole label, scheme or port (https://vault.corp:8200, \
             https://*.amazonaws.com)"
        )
    } else if message.contains("is not an IP or CIDR") {
        format!(
            "correct spec.allowedCidrs of Provider {p}: IP addresses or CIDRs (10.20.0.0/16, \
             127.0.0.1)"
        )
    } else if message.contains("spec.caBundle") {
        format!(
            "set spec.caBundle of Provider {p} to base64-encoded PEM certificates \
             (`base64 -w0 ca.pem`)"
        )
    } else if message.starts_with("host alias") {
        format!(
            "correct spec.hostAliases of Provider {p}: each entry names hostnames and an \
             address IP, IP:port or [IPv6]:port"
        )
    } else {
        format!("correct the grants in the spec of Provider {p}")
    }
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
        Some(RuntimeError::ProviderNotFound(name)) => {
            return vec![format!(
                "create Provider {name}, or read why it is not Ready: kubectl get \
                 providers.airlock.dev {name}"
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
    fn a_provider_that_does_not_load_is_told_which_field_or_module_to_change() {
        let load = |e: Error| load_failure_message(&e, "vault", e.to_string());
        assert_eq!(
            load(Error::Runtime(RuntimeError::MemoryLimit {
                provider: "vault".into(),
                limit: 1_048_576,
            })),
            "provider vault exceeded its memory limit of 1048576 bytes; to fix: raise \
             spec.limits.memoryBytes of Provider vault (now 1048576)"
        );
        assert_eq!(
            load(Error::Runtime(RuntimeError::InvalidGrant(
                "spec.caBundle is not base64: Invalid symbol 32, offset 3.".into()
            ))),
            "invalid grant: spec.caBundle is not base64: Invalid symbol 32, offset 3.; to fix: \
             set spec.caBundle of Provider vault to base64-encoded PEM certificates \
             (`base64 -w0 ca.pem`)"
        );
        let pinned = format!("sha256:{}", "2".repeat(64));
        let actual = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            load_advice(
                &Error::Registry(RegistryError::DigestMismatch(format!(
                    "providers/fake:1.0 is {actual}, but the reference pins {pinned} which is \
                     not in the repository"
                ))),
                "vault"
            ),
            [format!(
                "if {actual}, what the tag holds now, is the module you trust, pin it in \
                 spec.module.oci of Provider vault (…@{actual}); otherwise push the module \
                 whose manifest digest is {pinned}"
            )]
        );
        let fs = load_advice(
            &Error::Runtime(RuntimeError::Link(
                "it imports wasi:filesystem, which Airlock never grants to providers (…)".into(),
            )),
            "vault",
        );
        assert_eq!(
            fs,
            [
                "rebuild the module of Provider vault without wasi:filesystem (providers reach the \
              network only through wasi:http and the cluster's Secrets only through \
              airlock:provider/credentials)"
            ]
        );
        let export = load_advice(
            &Error::Runtime(RuntimeError::Link(
                "it does not export airlock:provider/secrets@0.1.0 (…)".into(),
            )),
            "vault",
        );
        assert!(
            export[0].contains("against the world airlock:provider/provider@0.1.0"),
            "{export:?}"
        );
        let tls = load_advice(
            &Error::Registry(RegistryError::Unreachable {
                registry: "registry.corp:5000".into(),
                message: "error sending request: invalid peer certificate: UnknownIssuer".into(),
            }),
            "vault",
        );
        assert!(
            tls[0].starts_with("check that the operator can reach registry registry.corp:5000")
                && tls[0].contains("set spec.module.caBundle of Provider vault"),
            "{tls:?}"
        );
        let missing = load(Error::ModuleRead {
            path: "vault.wasm".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert!(
            missing.contains("; to fix: set spec.module.path of Provider vault to a module"),
            "{missing}"
        );
        for (e, field) in [
            (
                RegistryError::SignatureMissing("x is not signed".into()),
                "remove spec.signature from Provider vault",
            ),
            (
                RegistryError::Unauthorized {
                    registry: "ghcr.io".into(),
                    message: "401".into(),
                },
                "set spec.module.pullSecretRef of Provider vault",
            ),
        ] {
            let fix = load_advice(&Error::Registry(e), "vault");
            assert!(fix[0].contains(field), "{fix:?}");
        }
        // Nothing to add when the message already says what to do.
        let path = Error::ModulePath("spec.module.path \"/x\" must be relative".into());
        assert_eq!(load(path), "spec.module.path \"/x\" must be relative");
    }

    #[test]
    fn a_store_whose_provider_is_not_installed_is_told_to_look_at_the_provider() {
        let e = Error::Backend(BackendError::Runtime(RuntimeError::ProviderNotFound(
            "nosuch".into(),
        )));
        assert_eq!(
            advice(&e, None),
            [
                "create Provider nosuch, or read why it is not Ready: kubectl get \
              providers.airlock.dev nosuch"
            ]
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
