//! Entry points for fuzzing the inputs Airlock takes from people and from guests: manifests
//! and store configurations, the grant grammar, the template engine, and the host imports a
//! provider calls. Each takes arbitrary bytes and must return, never panic, hang or grow
//! without bound; they hold no state between calls.
//!
//! Two drivers call them: the cargo-fuzz targets in `host/fuzz` (libFuzzer, `make fuzz`)
//! and the bounded mutational run in `host/tests/fuzz.rs` that `make test` runs on stable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{StoreInfo, StoreKind};
use crate::crd::{
    ClusterSecretStore, ExternalSecret, Provider, PushSecret, SecretStore, common::GoDuration,
};
use crate::runtime::credentials::CredentialPolicy;
use crate::runtime::{CacheBudget, Grants, HostPattern, StoreCache};
use crate::template::{self, Engine, Sources, Value};

/// A fuzz target: arbitrary bytes in, no result.
pub type Target = fn(&[u8]);

/// The targets, by name: what `host/fuzz` and the stable driver run.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("grant", grant),
    ("template", template),
    ("host_imports", host_imports),
];

/// The credential policy `config` gives a store of each kind named `fuzz` in `namespace`.
fn policies(
    config: &serde_json::Value,
    namespace: &str,
) -> impl Iterator<Item = (StoreKind, CredentialPolicy)> {
    [StoreKind::SecretStore, StoreKind::ClusterSecretStore]
        .map(|kind| {
            let store = StoreInfo {
                kind,
                name: "fuzz".into(),
                namespace: namespace.into(),
            };
            (kind, CredentialPolicy::from_config(config, &store, false))
        })
        .into_iter()
}

/// Lines of `input` (lossy UTF-8), at most `max` of them.
fn lines(input: &[u8], max: usize) -> Vec<String> {
    String::from_utf8_lossy(input)
        .lines()
        .take(max)
        .map(str::to_string)
        .collect()
}

/// A manifest as a user applies it: YAML (or JSON) for each kind the operator reads, then
/// what the controllers derive from a parsed object: durations, templates, grants, the
/// credential policy of a store's provider configuration.
pub fn manifest(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(es) = serde_yaml::from_str::<ExternalSecret>(text) {
        let _ = es.spec.refresh_interval.parse();
        if let Some(template) = es.spec.target.template.as_ref() {
            let fetched = BTreeMap::from([("password".to_string(), b"s3cr3t".to_vec())]);
            let _ = template::apply(template, Engine::Go, &fetched, &Sources::default());
        }
    }
    for config in [
        serde_yaml::from_str::<SecretStore>(text)
            .ok()
            .map(|s| serde_json::to_value(&s.spec.provider)),
        serde_yaml::from_str::<ClusterSecretStore>(text)
            .ok()
            .map(|s| serde_json::to_value(&s.spec.provider)),
    ]
    .into_iter()
    .flatten()
    .flatten()
    {
        for (_, policy) in policies(&config, "fuzz") {
            let _ = policy.check_key("a", "b", None, false);
        }
    }
    if let Ok(provider) = serde_yaml::from_str::<Provider>(text) {
        let _ = crate::controller::provider::grants(&provider.spec);
    }
    let _ = serde_yaml::from_str::<PushSecret>(text);
    let _ = GoDuration(text.to_string()).parse();
}

/// The grant grammar: `allowedOutboundHosts` patterns, CIDRs and host aliases from the
/// first lines, then every later line as a `scheme host port` request checked against them.
pub fn grant(input: &[u8]) {
    let lines = lines(input, 64);
    let (rules, requests) = lines.split_at(lines.len().min(8));
    let hosts: Vec<String> = rules.iter().filter(|l| !l.contains('/')).cloned().collect();
    let cidrs: Vec<String> = rules.iter().filter(|l| l.contains('/')).cloned().collect();
    let _ = Grants::parse(&hosts, &cidrs, Default::default());
    let _ = crate::runtime::HostAlias::parse(&hosts, rules.first().map_or("", |s| s));
    let patterns: Vec<HostPattern> = hosts
        .iter()
        .filter_map(|h| HostPattern::parse(h).ok())
        .collect();
    for request in requests {
        let mut parts = request.splitn(3, ' ');
        let scheme = parts.next().unwrap_or_default();
        let host = parts.next().unwrap_or_default();
        let port = parts.next().and_then(|p| p.parse().ok()).unwrap_or(443);
        for pattern in &patterns {
            let _ = pattern.matches(scheme, host, port);
        }
    }
}

/// ESO's Go-template dialect (and Tera): parse and render over a small context, and the
/// `KeysAndValues` map form.
pub fn template(input: &[u8]) {
    let Ok(source) = std::str::from_utf8(input) else {
        return;
    };
    let data = Value::Map(BTreeMap::from([
        ("username".to_string(), Value::str("admin")),
        ("password".to_string(), Value::str("s3cr3t")),
        (
            "json".to_string(),
            Value::str("{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}"),
        ),
        ("bin".to_string(), Value::Str(vec![0, 255, 10, 123, 123])),
    ]));
    for engine in [Engine::Go, Engine::Tera] {
        let _ = template::render(engine, "fuzz", source, &data);
        let _ = template::render_map(engine, "fuzz", source, &data);
    }
}

/// The host imports a guest calls with values it chooses: the cache (keys, values and TTLs
/// against the per-store and global bounds), the credentials interface's policy checks,
/// and the redaction of its log lines. Input: `key\0value\0selector-name\0selector-key\0
/// namespace\0log line`, each part optional.
pub fn host_imports(input: &[u8]) {
    let mut parts = input.split(|b| *b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (key, value) = (
        String::from_utf8_lossy(next()).into_owned(),
        next().to_vec(),
    );
    let (name, selector_key, namespace) = (
        String::from_utf8_lossy(next()).into_owned(),
        String::from_utf8_lossy(next()).into_owned(),
        String::from_utf8_lossy(next()).into_owned(),
    );
    let line = String::from_utf8_lossy(next()).into_owned();

    let cache = StoreCache::new(Arc::new(CacheBudget::new(1 << 20)));
    let ttl = Duration::from_millis(u64::from(value.first().copied().unwrap_or(1)) * 100);
    if cache.set(&key, &value, ttl).is_ok() {
        assert_eq!(
            cache.get(&key).as_deref(),
            Some(value.as_slice()),
            "a value the cache accepted reads back"
        );
    }

    let config = serde_json::json!({
        "auth": {"secretRef": {"token": {"name": "creds", "key": "token"}}},
        "serviceAccountRef": {"name": "sa", "audiences": ["sts"]},
    });
    for (kind, policy) in policies(&config, "team-a") {
        let ns = (!namespace.is_empty()).then_some(namespace.as_str());
        if let Ok(read) = policy.check_key(&name, &selector_key, ns, false) {
            assert!(
                name == "creds" && selector_key == "token",
                "only the selector the configuration names is answered"
            );
            if kind == StoreKind::SecretStore {
                assert_eq!(read, "team-a", "a SecretStore reads its own namespace only");
            }
        }
        let _ = policy.check_account(&name, ns);
    }

    let mut redactor = crate::runtime::redact::Redactor::default();
    redactor.add(&value);
    let out = redactor.redact_cut(line, 4096);
    // A secret sharing no character with the marker cannot be re-formed around it.
    let marker = String::from_utf8_lossy(crate::runtime::redact::MARK);
    if let Ok(secret) = std::str::from_utf8(&value)
        && secret.len() >= crate::runtime::redact::MIN_LEN
        && !secret.chars().any(|c| marker.contains(c))
    {
        assert!(
            !out.contains(secret),
            "a redacted line still holds the secret"
        );
    }
}
