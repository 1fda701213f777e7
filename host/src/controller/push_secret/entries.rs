//! Which entries a PushSecret pushes to one store, as ESO v2.9 computes them: the store's
//! `dataTo[]` rules expanded into one entry per matched key (or one bundle of them), then
//! `data[]`, which wins over a rule for the same source key; no two entries may write the same
//! remote key and property. Errors name keys and patterns, never values.

use std::collections::{BTreeMap, BTreeSet};

use crate::controller::Error;
use crate::controller::external_secret::data::rewrite_key;
use crate::controller::external_secret::selector_matches;
use crate::crd::common::StoreKind;
use crate::crd::external_secret::ExternalSecretRewrite;
use crate::crd::push_secret::{
    PushSecretConversionStrategy, PushSecretData, PushSecretDataTo, PushSecretMatch,
    PushSecretRemoteRef, PushSecretStoreRef,
};
use crate::template::Engine;

/// A Secret's data: key → bytes.
pub type Data = BTreeMap<String, Vec<u8>>;

/// What ESO calls the source key of a bundle in its duplicate-key messages.
const BUNDLE_SOURCE_KEY: &str = "(bundle)";

/// One entry to push, with the data it is pushed from when that is not the whole source
/// (a bundle pushes only the keys its rule matched).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry, as recorded in `status.syncedPushSecrets`.
    pub data: PushSecretData,
    /// For a bundle: the matched keys (already converted).
    pub only: Option<Data>,
}

/// The identity of a store for matching `dataTo[].storeRef`.
pub struct StoreId<'a> {
    /// Kind.
    pub kind: StoreKind,
    /// Name.
    pub name: &'a str,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// Applies a push `conversionStrategy` to the keys of `data`; two keys becoming one is an
/// error, as in ESO.
pub fn reverse_keys(strategy: PushSecretConversionStrategy, data: &Data) -> Result<Data, Error> {
    let mut out = Data::new();
    for (k, v) in data {
        let key = reverse_key(strategy, k);
        if out.insert(key.clone(), v.clone()).is_some() {
            return Err(Error::InvalidData(format!(
                "secret name collision during conversion: {key}"
            )));
        }
    }
    Ok(out)
}

fn reverse_key(strategy: PushSecretConversionStrategy, key: &str) -> String {
    match strategy {
        PushSecretConversionStrategy::None => key.to_string(),
        PushSecretConversionStrategy::ReverseUnicode => super::reverse_unicode(key),
    }
}

fn kind_of(r: &PushSecretStoreRef) -> StoreKind {
    r.kind
}

/// ESO's check before anything is read: a `dataTo` rule naming a store by name must name one
/// of `secretStoreRefs` (by name and kind).
pub fn validate_store_refs(
    data_to: &[PushSecretDataTo],
    refs: &[PushSecretStoreRef],
) -> Result<(), Error> {
    for (i, d) in data_to.iter().enumerate() {
        let name = d.store_ref.name.as_deref().filter(|n| !n.is_empty());
        if name.is_none() && d.store_ref.label_selector.is_none() {
            return Err(Error::InvalidData(format!(
                "dataTo[{i}]: storeRef must have name or labelSelector"
            )));
        }
        if let Some(name) = name {
            let listed = refs
                .iter()
                .any(|r| r.name.as_deref() == Some(name) && kind_of(r) == kind_of(&d.store_ref));
            if !listed {
                return Err(Error::InvalidData(format!(
                    "dataTo[{i}]: storeRef {name:?} not found in secretStoreRefs"
                )));
            }
        }
    }
    Ok(())
}

/// ESO's check once the stores are known: a rule selecting stores by labels must select at
/// least one of them (else it would silently push nothing).
pub fn validate_selectors_match(
    data_to: &[PushSecretDataTo],
    stores: &[StoreId<'_>],
) -> Result<(), Error> {
    for (i, d) in data_to.iter().enumerate() {
        if d.store_ref.name.as_deref().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        let Some(selector) = &d.store_ref.label_selector else {
            continue;
        };
        let any = stores
            .iter()
            .any(|s| s.kind == kind_of(&d.store_ref) && selector_matches(selector, s.labels));
        if !any {
            return Err(Error::InvalidData(format!(
                "dataTo[{i}]: labelSelector does not match any store in secretStoreRefs"
            )));
        }
    }
    Ok(())
}

fn targets(d: &PushSecretDataTo, store: &StoreId<'_>) -> bool {
    if kind_of(&d.store_ref) != store.kind {
        return false;
    }
    match (
        d.store_ref.name.as_deref().filter(|n| !n.is_empty()),
        &d.store_ref.label_selector,
    ) {
        (Some(name), _) => name == store.name,
        (None, Some(selector)) => selector_matches(selector, store.labels),
        (None, None) => false,
    }
}

/// Everything pushed to `store` from a source Secret's `data`: the expanded `dataTo` rules
/// that target it, then `data[]`.
pub fn for_store(
    data_to: &[PushSecretDataTo],
    explicit: &[PushSecretData],
    store: &StoreId<'_>,
    data: &Data,
    engine: Engine,
) -> Result<Vec<Entry>, Error> {
    let rules: Vec<(usize, &PushSecretDataTo)> = data_to
        .iter()
        .enumerate()
        .filter(|(_, d)| targets(d, store))
        .collect();
    let expanded = expand(&rules, data, engine)
        .map_err(|e| Error::InvalidData(format!("failed to expand dataTo: {e}")))?;
    merge(expanded, explicit, data)
        .map_err(|e| Error::InvalidData(format!("failed to merge data entries: {e}")))
}

fn expand(
    rules: &[(usize, &PushSecretDataTo)],
    data: &Data,
    engine: Engine,
) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    // remote key → "dataTo[i]:sourceKey", for ESO's duplicate message.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, rule) in rules {
        let (entries, key_map) = expand_one(rule, data, engine)
            .map_err(|e| Error::InvalidData(format!("dataTo[{i}]: {e}")))?;
        for (source, remote) in key_map {
            if let Some(existing) = seen.get(&remote) {
                return Err(Error::InvalidData(format!(
                    "dataTo[{i}]: duplicate remote key {remote:?} from source key {source:?} (conflicts with {existing})"
                )));
            }
            seen.insert(remote, format!("dataTo[{i}]:{source}"));
        }
        out.extend(entries);
    }
    Ok(out)
}

/// Source key → remote key, in order.
type KeyMap = Vec<(String, String)>;

/// One rule: its entries and its source key → remote key map.
fn expand_one(
    rule: &PushSecretDataTo,
    data: &Data,
    engine: Engine,
) -> Result<(Vec<Entry>, KeyMap), Error> {
    let rewrites = rule.rewrite.as_deref().unwrap_or_default();
    let bundle = rule.remote_key.as_deref().filter(|k| !k.is_empty());
    if bundle.is_some() && !rewrites.is_empty() {
        return Err(Error::InvalidData(
            "remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)".into(),
        ));
    }
    let converted = reverse_keys(rule.conversion_strategy, data)
        .map_err(|e| Error::InvalidData(format!("conversion failed: {e}")))?;
    let original: BTreeMap<String, String> = data
        .keys()
        .map(|k| (reverse_key(rule.conversion_strategy, k), k.clone()))
        .collect();
    let pattern = rule
        .match_
        .as_ref()
        .and_then(|m| m.regexp.as_deref())
        .filter(|p| !p.is_empty());
    let matched: Data = match pattern {
        None => converted,
        Some(p) => {
            let re = regex::Regex::new(p).map_err(|e| {
                Error::InvalidData(format!(
                    "match failed: failed to compile regexp pattern {p:?}: {e}"
                ))
            })?;
            converted
                .into_iter()
                .filter(|(k, _)| re.is_match(k))
                .collect()
        }
    };
    if matched.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let entry = |secret_key: Option<String>, remote_key: String| PushSecretData {
        match_: PushSecretMatch {
            secret_key,
            remote_ref: PushSecretRemoteRef {
                remote_key,
                property: None,
            },
        },
        metadata: rule.metadata.clone(),
        conversion_strategy: PushSecretConversionStrategy::None,
    };
    if let Some(remote) = bundle {
        let bundled = Entry {
            data: entry(None, remote.to_string()),
            only: Some(matched),
        };
        return Ok((
            vec![bundled],
            vec![(BUNDLE_SOURCE_KEY.to_string(), remote.to_string())],
        ));
    }
    let steps: Vec<ExternalSecretRewrite> = rewrites
        .iter()
        .map(|r| ExternalSecretRewrite {
            regexp: r.regexp.clone(),
            transform: r.transform.clone(),
            merge: None,
        })
        .collect();
    let mut entries = Vec::new();
    let mut key_map = Vec::new();
    for key in matched.keys() {
        let remote = rewrite_key(key, &steps, "rewrite failed", engine)?;
        if remote.is_empty() {
            return Err(Error::InvalidData(format!(
                "empty remote key produced for source key {key:?}"
            )));
        }
        let source = original.get(key).cloned().unwrap_or_else(|| key.clone());
        entries.push(Entry {
            data: entry(Some(source), remote.clone()),
            only: None,
        });
        key_map.push((key.clone(), remote));
    }
    Ok((entries, key_map))
}

/// The source key of an explicit entry in the Secret's own key space: with a conversion, its
/// `secretKey` names a converted key.
fn original_key(entry: &PushSecretData, data: &Data) -> String {
    let key = entry.match_.secret_key.clone().unwrap_or_default();
    if entry.conversion_strategy == PushSecretConversionStrategy::None {
        return key;
    }
    data.keys()
        .find(|k| reverse_key(entry.conversion_strategy, k) == key)
        .cloned()
        .unwrap_or(key)
}

fn merge(
    expanded: Vec<Entry>,
    explicit: &[PushSecretData],
    data: &Data,
) -> Result<Vec<Entry>, Error> {
    let taken: BTreeSet<String> = explicit.iter().map(|e| original_key(e, data)).collect();
    let mut out: Vec<Entry> = expanded
        .into_iter()
        .filter(|e| !taken.contains(e.data.match_.secret_key.as_deref().unwrap_or_default()))
        .collect();
    out.extend(explicit.iter().map(|e| Entry {
        data: e.clone(),
        only: None,
    }));
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in &out {
        let remote = &e.data.match_.remote_ref;
        let at = (
            remote.remote_key.clone(),
            remote.property.clone().unwrap_or_default(),
        );
        let source = e.data.match_.secret_key.clone().unwrap_or_default();
        if let Some(existing) = seen.get(&at) {
            return Err(Error::InvalidData(if at.1.is_empty() {
                format!(
                    "duplicate remote key {:?}: source keys {existing:?} and {source:?} both map to the same destination",
                    at.0
                )
            } else {
                format!(
                    "duplicate remote key {:?} with property {:?}: source keys {existing:?} and {source:?} both map to the same destination",
                    at.0, at.1
                )
            }));
        }
        seen.insert(at, source);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(keys: &[&str]) -> Data {
        keys.iter()
            .map(|k| (k.to_string(), format!("v-{k}").into_bytes()))
            .collect()
    }

    fn rule(v: serde_json::Value) -> PushSecretDataTo {
        serde_json::from_value(v).expect("dataTo")
    }

    fn explicit(v: serde_json::Value) -> PushSecretData {
        serde_json::from_value(v).expect("data")
    }

    fn store<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> StoreId<'a> {
        StoreId {
            kind: StoreKind::SecretStore,
            name,
            labels,
        }
    }

    fn remote_keys(entries: &[Entry]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| {
                (
                    e.data.match_.secret_key.clone().unwrap_or_default(),
                    e.data.match_.remote_ref.remote_key.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_rule_pushes_every_matching_key_renamed_by_its_rewrites() {
        let labels = BTreeMap::new();
        let rules = [rule(json!({"storeRef": {"name": "aws"},
            "match": {"regexp": "^db-"},
            "rewrite": [{"regexp": {"source": "^db-", "target": "app/"}},
                        {"transform": {"template": "{{ .value | upper }}"}}],
            "metadata": {"tags": {"a": "b"}}}))];
        let entries = for_store(
            &rules,
            &[],
            &store("aws", &labels),
            &data(&["db-user", "db-pass", "api-token"]),
            Engine::Go,
        )
        .unwrap();
        assert_eq!(
            remote_keys(&entries),
            [
                ("db-pass".to_string(), "APP/PASS".to_string()),
                ("db-user".to_string(), "APP/USER".to_string())
            ]
        );
        assert!(entries.iter().all(|e| e.only.is_none()));
        assert_eq!(entries[0].data.metadata, Some(json!({"tags": {"a": "b"}})));
        // Another store is not this rule's.
        let other = for_store(
            &rules,
            &[],
            &store("vault", &labels),
            &data(&["db-user"]),
            Engine::Go,
        )
        .unwrap();
        assert!(other.is_empty());
    }

    #[test]
    fn the_rules_of_eso_s_data_to_snippets_expand_as_documented() {
        let labels = BTreeMap::new();
        let s = store("secret-store", &labels);
        let source = data(&["db-host", "db-user", "api-key"]);
        let expand = |rules: serde_json::Value, explicit: serde_json::Value| {
            let rules: Vec<PushSecretDataTo> = serde_json::from_value(rules).unwrap();
            let explicit: Vec<PushSecretData> = serde_json::from_value(explicit).unwrap();
            remote_keys(&for_store(&rules, &explicit, &s, &source, Engine::Go).unwrap())
                .into_iter()
                .map(|(_, remote)| remote)
                .collect::<Vec<_>>()
        };
        // pushsecret-datato-chained.yaml
        assert_eq!(
            expand(
                json!([{"storeRef": {"name": "secret-store"}, "match": {"regexp": "^db-.*"},
                        "rewrite": [{"regexp": {"source": "^db-", "target": ""}},
                                    {"regexp": {"source": "^", "target": "prod/"}}]}]),
                json!([])
            ),
            ["prod/host", "prod/user"]
        );
        // pushsecret-datato-template.yaml
        assert_eq!(
            expand(
                json!([{"storeRef": {"name": "secret-store"},
                        "rewrite": [{"transform": {"template": "secrets/{{ .value | upper }}"}}]}]),
                json!([])
            ),
            ["secrets/API-KEY", "secrets/DB-HOST", "secrets/DB-USER"]
        );
        // pushsecret-datato-override.yaml
        assert_eq!(
            expand(
                json!([{"storeRef": {"name": "secret-store"}}]),
                json!([{"match": {"secretKey": "db-host", "remoteRef": {"remoteKey": "custom/database/hostname"}}},
                       {"match": {"secretKey": "api-key", "remoteRef": {"remoteKey": "custom/api/secret-key"}}}])
            ),
            [
                "db-user",
                "custom/database/hostname",
                "custom/api/secret-key"
            ]
        );
    }

    #[test]
    fn a_rule_with_a_remote_key_bundles_only_the_matched_keys() {
        let labels = BTreeMap::from([("tier".to_string(), "prod".to_string())]);
        let rules = [rule(
            json!({"storeRef": {"labelSelector": {"matchLabels": {"tier": "prod"}}},
            "remoteKey": "bundle", "match": {"regexp": "^db-"}}),
        )];
        let entries = for_store(
            &rules,
            &[],
            &store("any", &labels),
            &data(&["db-user", "db-pass", "api-token"]),
            Engine::Go,
        )
        .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].data.match_.secret_key, None);
        assert_eq!(entries[0].data.match_.remote_ref.remote_key, "bundle");
        let only = entries[0].only.as_ref().expect("the matched keys");
        assert_eq!(only.keys().collect::<Vec<_>>(), ["db-pass", "db-user"]);
    }

    #[test]
    fn explicit_data_wins_over_a_rule_for_the_same_source_key() {
        let labels = BTreeMap::new();
        let rules = [rule(json!({"storeRef": {"name": "aws"}}))];
        let entries = for_store(
            &rules,
            &[explicit(
                json!({"match": {"secretKey": "a", "remoteRef": {"remoteKey": "special/a"}}}),
            )],
            &store("aws", &labels),
            &data(&["a", "b"]),
            Engine::Go,
        )
        .unwrap();
        assert_eq!(
            remote_keys(&entries),
            [
                ("b".to_string(), "b".to_string()),
                ("a".to_string(), "special/a".to_string())
            ]
        );
    }

    #[test]
    fn keys_converted_back_from_unicode_escapes_are_matched_and_pushed_from_the_original_key() {
        let labels = BTreeMap::new();
        let rules = [rule(
            json!({"storeRef": {"name": "aws"}, "conversionStrategy": "ReverseUnicode",
            "match": {"regexp": "^app/"}}),
        )];
        let entries = for_store(
            &rules,
            &[],
            &store("aws", &labels),
            &data(&["app_U002f_db", "other"]),
            Engine::Go,
        )
        .unwrap();
        assert_eq!(
            remote_keys(&entries),
            [("app_U002f_db".to_string(), "app/db".to_string())]
        );
    }

    #[test]
    fn bad_rules_are_refused_with_eso_s_messages() {
        let labels = BTreeMap::new();
        let s = store("aws", &labels);
        let fails = |rules: &[PushSecretDataTo], explicit: &[PushSecretData]| {
            for_store(rules, explicit, &s, &data(&["a-x", "b-x"]), Engine::Go)
                .unwrap_err()
                .to_string()
        };
        let e = fails(
            &[rule(json!({"storeRef": {"name": "aws"},
                "rewrite": [{"regexp": {"source": "-x$", "target": ""}}, {"regexp": {"source": "^.+$", "target": "same"}}]}))],
            &[],
        );
        assert!(
            e.contains("failed to expand dataTo: dataTo[0]: duplicate remote key \"same\""),
            "{e}"
        );
        let e = fails(
            &[rule(
                json!({"storeRef": {"name": "aws"}, "rewrite": [{"regexp": {"source": ".*", "target": ""}}]}),
            )],
            &[],
        );
        assert!(
            e.contains("empty remote key produced for source key"),
            "{e}"
        );
        let e = fails(
            &[rule(
                json!({"storeRef": {"name": "aws"}, "match": {"regexp": "("}}),
            )],
            &[],
        );
        assert!(
            e.contains("match failed: failed to compile regexp pattern \"(\""),
            "{e}"
        );
        let e = fails(
            &[rule(
                json!({"storeRef": {"name": "aws"}, "match": {"regexp": "^a"}}),
            )],
            &[explicit(
                json!({"match": {"secretKey": "b-x", "remoteRef": {"remoteKey": "a-x"}}}),
            )],
        );
        assert!(
            e.contains("failed to merge data entries: duplicate remote key \"a-x\": source keys \"a-x\" and \"b-x\""),
            "{e}"
        );
        let collide = data(&["a_U002f_", "a/"]);
        let e = reverse_keys(PushSecretConversionStrategy::ReverseUnicode, &collide)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("secret name collision during conversion: a/"),
            "{e}"
        );
    }

    #[test]
    fn rules_must_name_a_listed_store_and_selectors_must_select_one() {
        let refs: Vec<PushSecretStoreRef> = serde_json::from_value(
            json!([{"name": "aws"}, {"name": "vault", "kind": "ClusterSecretStore"}]),
        )
        .unwrap();
        assert!(validate_store_refs(&[rule(json!({"storeRef": {"name": "aws"}}))], &refs).is_ok());
        let e = validate_store_refs(&[rule(json!({"storeRef": {"name": "vault"}}))], &refs)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataTo[0]: storeRef \"vault\" not found in secretStoreRefs"),
            "{e}"
        );
        let labels = BTreeMap::from([("tier".to_string(), "prod".to_string())]);
        let stores = [store("aws", &labels)];
        let good = rule(json!({"storeRef": {"labelSelector": {"matchLabels": {"tier": "prod"}}}}));
        let bad = rule(json!({"storeRef": {"labelSelector": {"matchLabels": {"tier": "dev"}}}}));
        assert!(validate_selectors_match(std::slice::from_ref(&good), &stores).is_ok());
        let e = validate_selectors_match(&[good, bad], &stores)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataTo[1]: labelSelector does not match any store in secretStoreRefs"),
            "{e}"
        );
    }
}
