//! `spec.provider.onepassword` as ESO defines it.

use std::collections::BTreeMap;

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// `spec.provider.onepassword`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The Connect server's base URL (`http://onepassword-connect:8080`).
    pub connect_host: String,
    /// Vault name (or ID) → search priority, lowest first.
    pub vaults: BTreeMap<String, i64>,
    /// Where the Connect token is.
    pub auth: Auth,
}

/// `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// `auth.secretRef`.
    pub secret_ref: SecretRef,
}

/// `auth.secretRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret key holding the Connect token.
    pub connect_token_secret_ref: KeySelector,
}

/// ESO's `SecretKeySelector`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeySelector {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
}

impl Config {
    /// Parses and checks the store configuration as ESO's `ValidateStore` does.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let config: Config = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.onepassword: {e}")))?;
        let selector = &config.auth.secret_ref.connect_token_secret_ref;
        if selector.name.is_empty() || selector.key.is_empty() {
            return Err(Error::invalid_config(
                "spec.provider.onepassword.auth.secretRef.connectTokenSecretRef needs name and key",
            ));
        }
        if config.vaults.is_empty() {
            return Err(Error::invalid_config(
                "spec.provider.onepassword.vaults must name at least one vault",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if !config.vaults.values().all(|p| seen.insert(*p)) {
            return Err(Error::invalid_config(
                "spec.provider.onepassword.vaults: vault order numbers must be unique",
            ));
        }
        let host = config.connect_host.trim_end_matches('/');
        let authority = host
            .strip_prefix("https://")
            .or_else(|| host.strip_prefix("http://"));
        if !authority.is_some_and(|a| !a.is_empty() && !a.contains(['/', '?', '#', '@'])) {
            return Err(Error::invalid_config(format!(
                "spec.provider.onepassword.connectHost {:?} is not an http(s) URL of a server (scheme://host[:port])",
                config.connect_host
            )));
        }
        Ok(config)
    }

    /// The vault names in search order (lowest priority number first).
    pub fn vaults_in_order(&self) -> Vec<&str> {
        let mut list: Vec<(&str, i64)> =
            self.vaults.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        list.sort_by_key(|(_, p)| *p);
        list.into_iter().map(|(k, _)| k).collect()
    }

    /// The base URL without a trailing slash.
    pub fn host(&self) -> &str {
        self.connect_host.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str =
        r#""auth":{"secretRef":{"connectTokenSecretRef":{"name":"t","key":"token"}}}"#;

    fn parse(rest: &str) -> Result<Config, Error> {
        Config::parse(&format!("{{{AUTH},{rest}}}"))
    }

    #[test]
    fn vaults_are_searched_lowest_number_first() {
        let c = parse(r#""connectHost":"http://op:8080/","vaults":{"b":2,"a":3,"c":1}"#).unwrap();
        assert_eq!(c.vaults_in_order(), ["c", "b", "a"]);
        assert_eq!(c.host(), "http://op:8080");
    }

    #[test]
    fn a_store_without_vaults_or_with_duplicate_priorities_is_refused() {
        let none = parse(r#""connectHost":"http://op:8080","vaults":{}"#).unwrap_err();
        assert!(matches!(none, Error::InvalidConfig(m) if m.contains("at least one")));
        let dup = parse(r#""connectHost":"http://op:8080","vaults":{"a":1,"b":1}"#).unwrap_err();
        assert!(matches!(dup, Error::InvalidConfig(m) if m.contains("unique")));
    }

    #[test]
    fn a_connect_host_that_is_not_a_server_url_is_refused() {
        for bad in ["op:8080", "ftp://op", "http://", "http://op/v1?x"] {
            let e = parse(&format!(r#""connectHost":"{bad}","vaults":{{"a":1}}"#)).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidConfig(m) if m.contains("connectHost")),
                "{bad}: {e:?}"
            );
        }
    }
}
