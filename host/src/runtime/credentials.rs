//! Credentials for guests. A guest names a Secret key, ConfigMap key or ServiceAccount;
//! the host answers only when that selector appears in the store's own provider
//! configuration and obeys ESO's namespace rules, then fetches it from a
//! [`CredentialSource`] (the Kubernetes API in the operator, a file in the CLI, memory in
//! tests).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::backend::{StoreInfo, StoreKind};

/// Why a credential could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not allowed for this store.
    #[error("denied: {0}")]
    Denied(String),
    /// The object or key does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The source could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A service-account token.
#[derive(Clone)]
pub struct Token {
    /// The JWT.
    pub token: SecretString,
    /// Expiry in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// The boxed future a [`CredentialSource`] method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the host fetches credentials from, after the policy allowed the request.
pub trait CredentialSource: Send + Sync + 'static {
    /// One key of a Secret.
    fn secret_key<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<SecretSlice<u8>, CredentialError>>;

    /// One key of a ConfigMap.
    fn config_map_key<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<String, CredentialError>>;

    /// A TokenRequest token for a ServiceAccount.
    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Token, CredentialError>>;

    /// One annotation of a ServiceAccount; `None` when it has no such annotation.
    fn service_account_annotation<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        annotation: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialError>>;

    /// The operator's own token.
    fn operator_token<'a>(
        &'a self,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Token, CredentialError>>;
}

/// Credentials held in memory: for tests and for `airlock provider run` with a local file.
#[derive(Default)]
pub struct StaticCredentials {
    secrets: HashMap<(String, String, String), SecretSlice<u8>>,
    config_maps: HashMap<(String, String, String), String>,
    tokens: HashMap<(String, String), SecretString>,
    annotations: HashMap<(String, String, String), String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("secrets", &self.secrets.len())
            .field("config_maps", &self.config_maps.len())
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl StaticCredentials {
    /// Adds a Secret key.
    pub fn with_secret(mut self, namespace: &str, name: &str, key: &str, value: &[u8]) -> Self {
        self.secrets.insert(
            (namespace.into(), name.into(), key.into()),
            SecretSlice::from(value.to_vec()),
        );
        self
    }

    /// Adds a ConfigMap key.
    pub fn with_config_map(mut self, namespace: &str, name: &str, key: &str, value: &str) -> Self {
        self.config_maps
            .insert((namespace.into(), name.into(), key.into()), value.into());
        self
    }

    /// Adds an annotation of a ServiceAccount.
    pub fn with_annotation(mut self, namespace: &str, name: &str, key: &str, value: &str) -> Self {
        self.annotations
            .insert((namespace.into(), name.into(), key.into()), value.into());
        self
    }

    /// Adds a service-account token.
    pub fn with_token(mut self, namespace: &str, name: &str, token: &str) -> Self {
        self.tokens.insert(
            (namespace.into(), name.into()),
            SecretString::from(token.to_string()),
        );
        self
    }

    /// Loads credentials from a YAML file of
    /// `secrets: [{namespace, name, data: {key: value}}]`, `configMaps: [...]` and
    /// `serviceAccountTokens: [{namespace, name, token}]` (values are plain text).
    pub fn from_yaml(text: &str) -> Result<Self, serde_yaml::Error> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct File {
            #[serde(default)]
            secrets: Vec<Object>,
            #[serde(default)]
            config_maps: Vec<Object>,
            #[serde(default)]
            service_account_tokens: Vec<TokenEntry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            #[serde(default = "default_ns")]
            namespace: String,
            name: String,
            data: HashMap<String, String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TokenEntry {
            #[serde(default = "default_ns")]
            namespace: String,
            name: String,
            token: String,
        }
        fn default_ns() -> String {
            "default".into()
        }
        let file: File = serde_yaml::from_str(text)?;
        let mut out = StaticCredentials::default();
        for s in file.secrets {
            for (k, v) in s.data {
                out = out.with_secret(&s.namespace, &s.name, &k, v.as_bytes());
            }
        }
        for c in file.config_maps {
            for (k, v) in c.data {
                out = out.with_config_map(&c.namespace, &c.name, &k, &v);
            }
        }
        for t in file.service_account_tokens {
            out = out.with_token(&t.namespace, &t.name, &t.token);
        }
        Ok(out)
    }
}

fn far_future_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_millis() as u64).saturating_add(3600 * 1000)
}

impl CredentialSource for StaticCredentials {
    fn secret_key<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<SecretSlice<u8>, CredentialError>> {
        let found = self
            .secrets
            .get(&(namespace.into(), name.into(), key.into()))
            .map(|v| SecretSlice::from(v.expose_secret().to_vec()))
            .ok_or_else(|| {
                CredentialError::NotFound(format!("secret {namespace}/{name} key {key}"))
            });
        Box::pin(async move { found })
    }

    fn config_map_key<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<String, CredentialError>> {
        let found = self
            .config_maps
            .get(&(namespace.into(), name.into(), key.into()))
            .cloned()
            .ok_or_else(|| {
                CredentialError::NotFound(format!("configmap {namespace}/{name} key {key}"))
            });
        Box::pin(async move { found })
    }

    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        _audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Token, CredentialError>> {
        let found = self
            .tokens
            .get(&(namespace.into(), name.into()))
            .map(|t| Token {
                token: t.clone(),
                expires_at_ms: far_future_ms(),
            })
            .ok_or_else(|| CredentialError::NotFound(format!("serviceaccount {namespace}/{name}")));
        Box::pin(async move { found })
    }

    fn service_account_annotation<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        annotation: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialError>> {
        let found = self
            .annotations
            .get(&(namespace.into(), name.into(), annotation.into()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn operator_token<'a>(
        &'a self,
        _audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Token, CredentialError>> {
        Box::pin(async {
            Err(CredentialError::NotFound(
                "no operator token in static credentials".into(),
            ))
        })
    }
}

/// A key selector found in a store configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyRef {
    name: String,
    key: String,
    namespace: Option<String>,
    config_map: bool,
}

/// A service-account selector found in a store configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountRef {
    name: String,
    namespace: Option<String>,
}

/// Which credentials one store's configuration names. A guest may ask only for these.
#[derive(Debug, Clone)]
pub struct CredentialPolicy {
    store: StoreInfo,
    keys: Vec<KeyRef>,
    accounts: Vec<AccountRef>,
    allow_operator_token: bool,
}

impl CredentialPolicy {
    /// Collects every selector in `config`: objects with string `name` and `key` are key
    /// selectors (ConfigMap ones when the object says `type: ConfigMap`, as ESO's
    /// `caProvider` does); objects under a `serviceAccountRef` key are ServiceAccounts.
    pub fn from_config(
        config: &serde_json::Value,
        store: &StoreInfo,
        allow_operator_token: bool,
    ) -> Self {
        let mut policy = CredentialPolicy {
            store: store.clone(),
            keys: Vec::new(),
            accounts: Vec::new(),
            allow_operator_token,
        };
        policy.walk(config, None);
        policy
    }

    fn walk(&mut self, value: &serde_json::Value, field: Option<&str>) {
        match value {
            serde_json::Value::Object(map) => {
                let text = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
                if let (Some(name), Some(key)) = (text("name"), text("key")) {
                    self.keys.push(KeyRef {
                        name,
                        key,
                        namespace: text("namespace"),
                        config_map: text("type").as_deref() == Some("ConfigMap"),
                    });
                }
                if field == Some("serviceAccountRef")
                    && let Some(name) = text("name")
                {
                    self.accounts.push(AccountRef {
                        name,
                        namespace: text("namespace"),
                    });
                }
                for (k, v) in map {
                    self.walk(v, Some(k));
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    self.walk(v, field);
                }
            }
            _ => {}
        }
    }

    /// The namespace a selector resolves to, or why the store may not use it.
    fn namespace(&self, requested: Option<&str>) -> Result<String, CredentialError> {
        match self.store.kind {
            StoreKind::SecretStore => match requested {
                Some(ns) if ns != self.store.namespace => Err(CredentialError::Denied(format!(
                    "SecretStore {}/{} may only read its own namespace, not {ns:?}",
                    self.store.namespace, self.store.name
                ))),
                _ => Ok(self.store.namespace.clone()),
            },
            StoreKind::ClusterSecretStore => Ok(requested
                .map(str::to_string)
                .unwrap_or_else(|| self.store.namespace.clone())),
        }
    }

    /// Checks a key request; returns the namespace to read.
    pub fn check_key(
        &self,
        name: &str,
        key: &str,
        namespace: Option<&str>,
        config_map: bool,
    ) -> Result<String, CredentialError> {
        let ns = self.namespace(namespace)?;
        let named = self.keys.iter().any(|k| {
            k.name == name
                && k.key == key
                && k.config_map == config_map
                && self.namespace(k.namespace.as_deref()).ok().as_deref() == Some(ns.as_str())
        });
        if named {
            Ok(ns)
        } else {
            let kind = if config_map { "configmap" } else { "secret" };
            Err(CredentialError::Denied(format!(
                "{kind} {ns}/{name} key {key:?} is not named in the configuration of store {}",
                self.store.name
            )))
        }
    }

    /// Checks a ServiceAccount token request; returns the namespace.
    pub fn check_account(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<String, CredentialError> {
        let ns = self.namespace(namespace)?;
        let named = self.accounts.iter().any(|a| {
            a.name == name
                && self.namespace(a.namespace.as_deref()).ok().as_deref() == Some(ns.as_str())
        });
        if named {
            Ok(ns)
        } else {
            Err(CredentialError::Denied(format!(
                "serviceaccount {ns}/{name} is not named in the configuration of store {}",
                self.store.name
            )))
        }
    }

    /// Checks an operator-token request.
    pub fn check_operator_token(&self, provider: &str) -> Result<(), CredentialError> {
        if self.allow_operator_token {
            Ok(())
        } else {
            Err(CredentialError::Denied(format!(
                "provider {provider} is not granted the operator's service-account token"
            )))
        }
    }
}

/// Shared handle to a credential source.
pub type Credentials = Arc<dyn CredentialSource>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(kind: StoreKind) -> StoreInfo {
        StoreInfo {
            kind,
            name: "s".into(),
            namespace: "team-a".into(),
        }
    }

    fn seed_aws_config() -> serde_json::Value {
        json!({"service": "SecretsManager", "region": "us-west-2", "auth": {"secretRef": {
            "accessKeyIDSecretRef": {"name": "aws-credentials", "key": "access-key"},
            "secretAccessKeySecretRef": {"name": "aws-credentials", "key": "secret-key"}}}})
    }

    #[test]
    fn a_secret_store_reads_only_selectors_in_its_config_and_namespace() {
        let p = CredentialPolicy::from_config(
            &seed_aws_config(),
            &store(StoreKind::SecretStore),
            false,
        );
        assert_eq!(
            p.check_key("aws-credentials", "access-key", None, false)
                .unwrap(),
            "team-a"
        );
        assert!(
            p.check_key("aws-credentials", "other", None, false)
                .is_err()
        );
        assert!(
            p.check_key("aws-credentials", "access-key", None, true)
                .is_err()
        );
        let err = p
            .check_key("aws-credentials", "access-key", Some("kube-system"), false)
            .unwrap_err();
        assert!(
            err.to_string().contains("only read its own namespace"),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_store_reads_the_namespace_its_selector_names() {
        let config = json!({"auth": {"secretRef": {"name": "x", "key": "k", "namespace": "vault"},
            "kubernetes": {"serviceAccountRef": {"name": "eso"}}}});
        let p =
            CredentialPolicy::from_config(&config, &store(StoreKind::ClusterSecretStore), false);
        assert_eq!(
            p.check_key("x", "k", Some("vault"), false).unwrap(),
            "vault"
        );
        assert!(p.check_key("x", "k", None, false).is_err());
        assert_eq!(p.check_account("eso", None).unwrap(), "team-a");
        assert!(p.check_account("default", None).is_err());
        assert!(p.check_operator_token("vault").is_err());
    }
}
