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
    /// `None`: any key of the object (a webhook `secrets[].secretRef`, a whole Secret).
    key: Option<String>,
    namespace: Option<String>,
    config_map: bool,
}

/// A service-account selector found in a store configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountRef {
    name: String,
    namespace: Option<String>,
    /// The audiences a token for it may carry: the selector's own `audiences`, those of the
    /// object holding it, and ESO's default for where it sits. Empty means the API
    /// server's audience, which a guest gets only when the configuration names none.
    audiences: Vec<String>,
    /// Also any GKE identity pool `<project>.svc.id.goog`: ESO's `workloadIdentity`
    /// without `clusterProjectID` asks the metadata server for the project, which the host
    /// cannot know in advance.
    any_gke_pool: bool,
}

/// Whether `audience` is a GKE Workload Identity pool, `<project>.svc.id.goog`.
fn is_gke_pool(audience: &str) -> bool {
    audience
        .strip_suffix(".svc.id.goog")
        .is_some_and(|project| {
            !project.is_empty()
                && project
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
        })
}

/// ESO's fixed default audiences for a `serviceAccountRef` held under `field` (whose object
/// names no `audiences` of its own): what ESO's provider code asks for, so the guest may too.
fn default_audiences(field: Option<&str>, holder_names_audiences: bool) -> &'static [&'static str] {
    match field {
        // Vault `auth.jwt.kubernetesServiceAccountToken`: `audiences` defaults to `vault`.
        Some("kubernetesServiceAccountToken") if !holder_names_audiences => &["vault"],
        // AWS `auth.jwt` and Vault `auth.iam.jwt`: an STS web-identity token.
        Some("jwt") => &["sts.amazonaws.com"],
        _ => &[],
    }
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
                        key: Some(key),
                        namespace: text("namespace"),
                        config_map: text("type").as_deref() == Some("ConfigMap"),
                    });
                }
                // ESO's webhook `secrets: [{name, secretRef: {name}}]`: templates read
                // `.<name>.<key>` for every key of that Secret, so the guest may ask for any
                // of its keys (the provider asks only for those its templates name).
                if field == Some("secrets")
                    && map.get("name").is_some_and(|v| v.is_string())
                    && let Some(serde_json::Value::Object(secret)) = map.get("secretRef")
                    && let Some(name) = secret.get("name").and_then(|v| v.as_str())
                    && !secret.contains_key("key")
                {
                    self.keys.push(KeyRef {
                        name: name.to_string(),
                        key: None,
                        namespace: secret
                            .get("namespace")
                            .and_then(|v| v.as_str())
                            .map(str::to_string),
                        config_map: false,
                    });
                }
                if let Some(serde_json::Value::Object(account)) = map.get("serviceAccountRef")
                    && let Some(name) = account.get("name").and_then(|v| v.as_str())
                {
                    let list = |m: &serde_json::Map<String, serde_json::Value>| {
                        m.get("audiences")
                            .and_then(|v| v.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default()
                    };
                    let held = list(map);
                    let mut audiences = list(account);
                    audiences.extend(
                        default_audiences(field, !held.is_empty())
                            .iter()
                            .map(|a| a.to_string()),
                    );
                    audiences.extend(held);
                    // Azure Key Vault `authType: WorkloadIdentity`: ESO asks for Entra ID's
                    // federated-credential audience.
                    if map.get("authType").and_then(|v| v.as_str()) == Some("WorkloadIdentity")
                        && audiences.is_empty()
                    {
                        audiences.push("api://AzureADTokenExchange".to_string());
                    }
                    // Doppler `auth.oidcConfig`: ESO binds the token to the store itself.
                    if field == Some("oidcConfig") && audiences.is_empty() {
                        audiences.push(match self.store.kind {
                            StoreKind::SecretStore => {
                                format!("secretStore:{}:{}", self.store.namespace, self.store.name)
                            }
                            StoreKind::ClusterSecretStore => {
                                format!("clusterSecretStore:{}", self.store.name)
                            }
                        });
                    }
                    // ESO's `GCPWorkloadIdentity` (GCP Secret Manager `auth.workloadIdentity`):
                    // a token for the cluster's identity pool, before any `audiences`.
                    let mut any_gke_pool = false;
                    if field == Some("workloadIdentity") {
                        match text("clusterProjectID") {
                            Some(project) => audiences.push(format!("{project}.svc.id.goog")),
                            None => any_gke_pool = true,
                        }
                    }
                    self.accounts.push(AccountRef {
                        name: name.to_string(),
                        namespace: account
                            .get("namespace")
                            .and_then(|v| v.as_str())
                            .map(str::to_string),
                        audiences,
                        any_gke_pool,
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
                && k.key.as_deref().is_none_or(|k| k == key)
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

    /// The selectors of the store's configuration naming ServiceAccount `name` in `ns`.
    fn accounts_named<'a>(
        &'a self,
        name: &'a str,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a AccountRef> + 'a {
        self.accounts.iter().filter(move |a| {
            a.name == name && self.namespace(a.namespace.as_deref()).ok().as_deref() == Some(ns)
        })
    }

    /// Checks a request about a ServiceAccount (its annotations); returns the namespace.
    pub fn check_account(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<String, CredentialError> {
        let ns = self.namespace(namespace)?;
        if self.accounts_named(name, &ns).next().is_some() {
            Ok(ns)
        } else {
            Err(self.account_not_named(name, &ns))
        }
    }

    fn account_not_named(&self, name: &str, ns: &str) -> CredentialError {
        CredentialError::Denied(format!(
            "serviceaccount {ns}/{name} is not named in the configuration of store {}",
            self.store.name
        ))
    }

    /// Checks a ServiceAccount token request; returns the namespace. The audiences must all
    /// be ones a selector of that ServiceAccount names (see [`AccountRef`]); no audience at
    /// all (the API server's) only when that selector names none.
    pub fn check_account_token(
        &self,
        name: &str,
        namespace: Option<&str>,
        audiences: &[String],
    ) -> Result<String, CredentialError> {
        let ns = self.namespace(namespace)?;
        if self.accounts_named(name, &ns).next().is_none() {
            return Err(self.account_not_named(name, &ns));
        }
        let allowed = self.accounts_named(name, &ns).any(|a| {
            if audiences.is_empty() {
                a.audiences.is_empty() && !a.any_gke_pool
            } else {
                audiences
                    .iter()
                    .all(|x| a.audiences.contains(x) || (a.any_gke_pool && is_gke_pool(x)))
            }
        });
        if allowed {
            Ok(ns)
        } else {
            let asked = if audiences.is_empty() {
                "the API server's audience".to_string()
            } else {
                format!("audiences {audiences:?}")
            };
            Err(CredentialError::Denied(format!(
                "a token of serviceaccount {ns}/{name} for {asked} is not what the configuration \
                 of store {} names (set the audiences in its serviceAccountRef)",
                self.store.name
            )))
        }
    }

    /// Checks an operator-token request. Only a ClusterSecretStore, set up by the cluster
    /// admin, may use the operator's own token, and only when the Provider grants it: a
    /// namespaced store would send the operator's API-server token to a server its
    /// namespace user chose. The token is the operator's mounted one, so it is asked for
    /// with no audiences.
    pub fn check_operator_token(
        &self,
        provider: &str,
        audiences: &[String],
    ) -> Result<(), CredentialError> {
        if self.store.kind == StoreKind::SecretStore {
            return Err(CredentialError::Denied(format!(
                "SecretStore {}/{} may not use the operator's service-account token (only a \
                 ClusterSecretStore may); name a serviceAccountRef or secretRef in its auth",
                self.store.namespace, self.store.name
            )));
        }
        if !audiences.is_empty() {
            return Err(CredentialError::Denied(format!(
                "the operator's service-account token has only the API server's audience, not \
                 {audiences:?}"
            )));
        }
        if self.allow_operator_token {
            Ok(())
        } else {
            Err(CredentialError::Denied(format!(
                "provider {provider} is not granted the operator's service-account token (the \
                 admin can set spec.credentials.allowOperatorServiceAccountToken: true on the \
                 Provider, or the store can name a serviceAccountRef or secretRef)"
            )))
        }
    }
}

/// TokenRequest tokens one store holds at most; past this, new ones are not kept.
pub const MAX_CACHED_TOKENS: usize = 16;

/// The ServiceAccount tokens minted for one store, by namespace, name and audiences, so a
/// storm of calls does not create a token per call. A token is handed out again only
/// while more than half of its lifetime is left.
#[derive(Default)]
pub struct TokenCache {
    tokens: std::sync::Mutex<HashMap<TokenKey, (Token, u64)>>,
}

type TokenKey = (String, String, Vec<String>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn token_key(namespace: &str, name: &str, audiences: &[String]) -> TokenKey {
    let mut audiences = audiences.to_vec();
    audiences.sort();
    audiences.dedup();
    (namespace.into(), name.into(), audiences)
}

impl TokenCache {
    /// A token for the ServiceAccount from the cache, or minted by `source` and kept.
    pub async fn service_account_token(
        &self,
        source: &dyn CredentialSource,
        namespace: &str,
        name: &str,
        audiences: &[String],
    ) -> Result<Token, CredentialError> {
        let key = token_key(namespace, name, audiences);
        let now = now_ms();
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.retain(|_, (_, reuse_until)| *reuse_until > now);
            if let Some((token, _)) = tokens.get(&key) {
                return Ok(token.clone());
            }
        }
        let token = source
            .service_account_token(namespace, name, audiences)
            .await?;
        let reuse_until = now.saturating_add(token.expires_at_ms.saturating_sub(now) / 2);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() < MAX_CACHED_TOKENS || tokens.contains_key(&key) {
            tokens.insert(key, (token.clone(), reuse_until));
        }
        Ok(token)
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
    fn a_webhook_secrets_entry_grants_every_key_of_its_secret_and_nothing_else() {
        let config = json!({"url": "http://x/{{ .auth.token }}",
            "secrets": [{"name": "auth", "secretRef": {"name": "webhook-credentials"}}]});
        let policy = CredentialPolicy::from_config(&config, &store(StoreKind::SecretStore), false);
        assert!(
            policy
                .check_key("webhook-credentials", "token", None, false)
                .is_ok()
        );
        assert!(
            policy
                .check_key("webhook-credentials", "other", None, false)
                .is_ok()
        );
        assert!(
            policy
                .check_key("webhook-credentials", "token", None, true)
                .is_err()
        );
        assert!(policy.check_key("another", "token", None, false).is_err());
        assert!(
            policy
                .check_key("webhook-credentials", "token", Some("kube-system"), false)
                .is_err()
        );
        // A `secretRef` elsewhere still names one key only.
        let config = json!({"auth": {"secretRef": {"name": "s"}}});
        let policy = CredentialPolicy::from_config(&config, &store(StoreKind::SecretStore), false);
        assert!(policy.check_key("s", "token", None, false).is_err());
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
        assert!(p.check_operator_token("vault", &[]).is_err());
    }

    #[test]
    fn a_namespaced_store_never_gets_the_operators_token() {
        let config = json!({"auth": {"kubernetes": {"role": "r"}}});
        let p = CredentialPolicy::from_config(&config, &store(StoreKind::SecretStore), true);
        let err = p.check_operator_token("vault", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("name a serviceAccountRef or secretRef"),
            "{err}"
        );
        let p = CredentialPolicy::from_config(&config, &store(StoreKind::ClusterSecretStore), true);
        assert_eq!(p.check_operator_token("vault", &[]), Ok(()));
        assert!(p.check_operator_token("vault", &["other".into()]).is_err());
    }

    /// Counts TokenRequests; each token lives an hour.
    #[derive(Default)]
    struct Minting(std::sync::atomic::AtomicU32);

    impl CredentialSource for Minting {
        fn secret_key<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<SecretSlice<u8>, CredentialError>> {
            unreachable!()
        }
        fn config_map_key<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<String, CredentialError>> {
            unreachable!()
        }
        fn service_account_token<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a [String],
        ) -> BoxFuture<'a, Result<Token, CredentialError>> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                Ok(Token {
                    token: SecretString::from(format!("token-{n}")),
                    expires_at_ms: far_future_ms(),
                })
            })
        }
        fn service_account_annotation<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, CredentialError>> {
            unreachable!()
        }
        fn operator_token<'a>(
            &'a self,
            _: &'a [String],
        ) -> BoxFuture<'a, Result<Token, CredentialError>> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_storm_of_token_requests_mints_one_token_per_account_and_audiences() {
        let source = Minting::default();
        let cache = TokenCache::default();
        let aud = vec!["vault".to_string()];
        for _ in 0..50 {
            cache
                .service_account_token(&source, "ns", "sa", &aud)
                .await
                .unwrap();
        }
        cache
            .service_account_token(&source, "ns", "sa", &[])
            .await
            .unwrap();
        cache
            .service_account_token(&source, "ns", "other", &aud)
            .await
            .unwrap();
        assert_eq!(source.0.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn a_token_is_minted_only_for_the_audiences_the_store_config_names() {
        let p = |config: serde_json::Value| {
            CredentialPolicy::from_config(&config, &store(StoreKind::SecretStore), false)
        };
        let aud = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Vault kubernetes auth without audiences: the API server's, nothing else.
        let k8s = p(json!({"auth": {"kubernetes": {"serviceAccountRef": {"name": "sa"}}}}));
        assert!(k8s.check_account_token("sa", None, &[]).is_ok());
        assert!(
            k8s.check_account_token("sa", None, &aud(&["https://evil"]))
                .is_err()
        );
        // Named audiences: those (or some), never the API server's.
        let named = p(json!({"auth": {"kubernetes": {"serviceAccountRef":
            {"name": "sa", "audiences": ["vault-a", "vault-b"]}}}}));
        assert!(
            named
                .check_account_token("sa", None, &aud(&["vault-a", "vault-b"]))
                .is_ok()
        );
        assert!(
            named
                .check_account_token("sa", None, &aud(&["vault-b"]))
                .is_ok()
        );
        assert!(named.check_account_token("sa", None, &[]).is_err());
        assert!(
            named
                .check_account_token("sa", None, &aud(&["vault-a", "x"]))
                .is_err()
        );
        // Doppler OIDC: ESO's store-bound audience, and only that.
        let oidc = p(json!({"auth": {"oidcConfig": {"identity": "i",
            "serviceAccountRef": {"name": "sa"}}}}));
        assert!(
            oidc.check_account_token("sa", None, &aud(&["secretStore:team-a:s"]))
                .is_ok()
        );
        assert!(oidc.check_account_token("sa", None, &[]).is_err());
        assert!(
            oidc.check_account_token("sa", None, &aud(&["secretStore:team-b:s"]))
                .is_err()
        );
        // ESO's defaults where the selector sits: Vault JWT `vault`, AWS STS.
        let jwt = p(json!({"auth": {"jwt": {"kubernetesServiceAccountToken":
            {"serviceAccountRef": {"name": "sa"}}}}}));
        assert!(
            jwt.check_account_token("sa", None, &aud(&["vault"]))
                .is_ok()
        );
        assert!(jwt.check_account_token("sa", None, &[]).is_err());
        let jwt = p(json!({"auth": {"jwt": {"kubernetesServiceAccountToken":
            {"serviceAccountRef": {"name": "sa", "audiences": ["a"]}, "audiences": ["b"]}}}}));
        assert!(
            jwt.check_account_token("sa", None, &aud(&["a", "b"]))
                .is_ok()
        );
        assert!(
            jwt.check_account_token("sa", None, &aud(&["vault"]))
                .is_err()
        );
        let aws = p(json!({"auth": {"jwt": {"serviceAccountRef": {"name": "sa"}}}}));
        assert!(
            aws.check_account_token("sa", None, &aud(&["sts.amazonaws.com"]))
                .is_ok()
        );
        assert!(aws.check_account_token("sa", None, &[]).is_err());
    }

    // Azure Key Vault (issue 16).
    #[test]
    fn an_azure_workload_identity_store_may_ask_for_the_federated_audience_only() {
        let config = json!({"vaultUrl": "https://kv.vault.azure.net", "authType": "WorkloadIdentity",
                            "serviceAccountRef": {"name": "sa"}});
        let p = CredentialPolicy::from_config(&config, &store(StoreKind::SecretStore), false);
        let aud = ["api://AzureADTokenExchange".to_string()];
        assert!(p.check_account_token("sa", None, &aud).is_ok());
        assert!(p.check_account_token("sa", None, &[]).is_err());
    }

    // GCP Secret Manager Workload Identity (issue 16).
    #[test]
    fn a_gke_workload_identity_store_may_ask_for_its_identity_pool_only() {
        let aud = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let named = json!({"projectID": "secrets-project", "auth": {"workloadIdentity": {
            "clusterProjectID": "cluster-project", "clusterLocation": "us-central1",
            "clusterName": "c", "serviceAccountRef": {"name": "sa", "audiences": ["extra"]}}}});
        let p = CredentialPolicy::from_config(&named, &store(StoreKind::SecretStore), false);
        assert!(
            p.check_account_token("sa", None, &aud(&["cluster-project.svc.id.goog", "extra"]))
                .is_ok()
        );
        assert!(
            p.check_account_token("sa", None, &aud(&["other-project.svc.id.goog"]))
                .is_err()
        );
        assert!(p.check_account_token("sa", None, &[]).is_err());
        // The seed's store names no clusterProjectID: any identity pool, nothing else.
        let seed = json!({"projectID": "my-gcp-project", "auth": {"workloadIdentity": {
            "clusterLocation": "us-central1", "clusterName": "my-cluster",
            "serviceAccountRef": {"name": "external-secrets-sa"}}}});
        let p = CredentialPolicy::from_config(&seed, &store(StoreKind::SecretStore), false);
        let sa = "external-secrets-sa";
        assert!(
            p.check_account_token(sa, None, &aud(&["my-gcp-project.svc.id.goog"]))
                .is_ok()
        );
        assert!(p.check_account_token(sa, None, &[]).is_err());
        assert!(
            p.check_account_token(sa, None, &aud(&["https://vault.example"]))
                .is_err()
        );
        assert!(
            p.check_account_token(sa, None, &aud(&["a/b.svc.id.goog"]))
                .is_err()
        );
    }
}
