//! ESO's fake provider (`spec.provider.fake`) as an Airlock component.
//!
//! Secrets come from the store configuration: `data[]` of `{key, value, version}`. Values
//! written with `push-secret` go to the host's per-store cache (every call runs in a fresh
//! instance, so the cache is the provider's only memory) and are read back before the
//! configured data. For demos and tests; it contacts nothing.

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value, cache, json,
};
use serde::Deserialize;

/// The fake provider.
#[derive(Debug)]
pub struct Fake;

/// `spec.provider.fake`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The secrets this store serves.
    #[serde(default)]
    pub data: Vec<Entry>,
    /// Forces the result of `validate`: 0 Ready, 1 Unknown, 2 Error (ESO's values).
    #[serde(default)]
    pub validation_result: Option<i64>,
}

/// One secret of the fake store.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The secret's name.
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
    /// Deprecated in ESO: a map served as a JSON object.
    #[serde(default)]
    pub value_map: Option<serde_json::Map<String, serde_json::Value>>,
    /// The version this value answers to; empty answers refs without a version.
    #[serde(default)]
    pub version: String,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Entry {
    fn bytes(&self) -> Vec<u8> {
        match &self.value_map {
            Some(map) if self.value.is_empty() => serde_json::Value::Object(map.clone())
                .to_string()
                .into_bytes(),
            _ => self.value.clone().into_bytes(),
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "fake provider",
  "description": "Static secrets for tests and demos (ESO's fake provider).",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "data": {
      "type": "array",
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["key"],
        "properties": {
          "key": {"type": "string", "minLength": 1},
          "value": {"type": "string"},
          "valueMap": {"type": "object"},
          "version": {"type": "string"}
        }
      }
    },
    "validationResult": {"type": "integer", "minimum": 0, "maximum": 2}
  }
}"#;

/// How long a pushed value stays in the host cache.
const PUSH_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

impl Provider for Fake {
    type Client = FakeClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "fake".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Static secrets from the store configuration, for tests and demos".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadWrite
    }

    fn config_schema() -> String {
        SCHEMA.to_string()
    }
}

/// A fake store opened from its configuration.
#[derive(Debug)]
pub struct FakeClient {
    config: Config,
}

fn pushed_key(key: &str) -> String {
    format!("pushed/{key}")
}

/// Each matching key once, with its latest version (the greatest version string, the
/// unversioned entry counting as the oldest), as ESO's fake provider finds secrets.
fn latest_versions(data: &[Entry], matches: impl Fn(&str) -> bool) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for entry in data.iter().filter(|e| matches(&e.key)) {
        match out.iter_mut().find(|(k, _)| *k == entry.key) {
            Some((_, version)) if *version < entry.version.as_str() => *version = &entry.version,
            Some(_) => {}
            None => out.push((&entry.key, &entry.version)),
        }
    }
    out
}

impl FakeClient {
    fn lookup(&self, key: &str, version: Option<&str>) -> Value {
        if version.is_none()
            && let Some(pushed) = cache::get(&pushed_key(key))
        {
            return Some(pushed);
        }
        let version = version.unwrap_or("");
        self.config
            .data
            .iter()
            .find(|e| e.key == key && e.version == version)
            .map(Entry::bytes)
    }
}

impl Client for FakeClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        let config: Config = serde_json::from_str(config)
            .map_err(|e| Error::invalid_config(format!("spec.provider.fake: {e}")))?;
        Ok(FakeClient { config })
    }

    fn validate(&self) -> Result<Validation, Error> {
        match self.config.validation_result {
            None | Some(0) => Ok(Validation::Ready),
            Some(1) => Ok(Validation::Unknown),
            Some(_) => Err(Error::other("validationResult forces an error")),
        }
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let Some(value) = self.lookup(&reference.key, reference.version.as_deref()) else {
            return Ok(None);
        };
        match &reference.property {
            Some(property) => json::select(&value, property),
            None => Ok(Some(value)),
        }
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        if !criteria.tags.is_empty() {
            return Err(Error::unsupported("the fake provider has no tags"));
        }
        let names = NameMatcher::new(criteria)?;
        let prefix = criteria.path.as_deref().unwrap_or("");
        let found = latest_versions(&self.config.data, |key| {
            key.starts_with(prefix) && names.matches(key)
        });
        Ok(found
            .into_iter()
            .map(|(key, version)| SecretEntry {
                key: key.to_string(),
                value: self
                    .lookup(key, Some(version).filter(|v| !v.is_empty()))
                    .unwrap_or_default(),
            })
            .collect())
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        let key = &request.remote.remote_key;
        let value = match &request.remote.property {
            Some(property) => {
                let existing = self.lookup(key, None);
                json::set_property(existing.as_deref(), property, &request.value)?
            }
            None => request.value.clone(),
        };
        cache::set(&pushed_key(key), &value, PUSH_TTL_MS);
        Ok(())
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        cache::delete(&pushed_key(&reference.remote_key));
        Ok(())
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        let value = self.lookup(&reference.remote_key, None);
        Ok(match (&reference.property, value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(property), Some(v)) => json::select(&v, property)?.is_some(),
        })
    }
}

airlock_provider_sdk::export_provider!(Fake);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_config_parses() {
        let _: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let c: Config =
            serde_json::from_str(r#"{"data":[{"key":"a","value":"1","version":"v1"}]}"#).unwrap();
        assert_eq!(c.data[0].version, "v1");
        assert!(serde_json::from_str::<Config>(r#"{"datum":[]}"#).is_err());
    }

    #[test]
    fn find_returns_each_key_once_at_its_latest_version_as_esos_fake_does() {
        let c: Config = serde_json::from_str(
            r#"{"data":[
                {"key":"a","value":"a0"},
                {"key":"a","value":"a2","version":"v2"},
                {"key":"a","value":"a1","version":"v1"},
                {"key":"only-versioned","value":"o1","version":"v1"},
                {"key":"other","value":"x"}]}"#,
        )
        .unwrap();
        let found = latest_versions(&c.data, |k| k != "other");
        assert_eq!(found, [("a", "v2"), ("only-versioned", "v1")]);
    }
}
