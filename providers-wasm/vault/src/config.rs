//! `spec.provider.vault` as ESO defines it, and where a remote key lives on the server.

use std::collections::BTreeMap;

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// The KV secrets engine version of the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum KvVersion {
    /// KV v1: `<mount>/<key>`, no versions, no metadata.
    #[serde(rename = "v1")]
    V1,
    /// KV v2 (the default): `<mount>/data/<key>` and `<mount>/metadata/<key>`.
    #[default]
    #[serde(rename = "v2")]
    V2,
}

impl KvVersion {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            KvVersion::V1 => "v1",
            KvVersion::V2 => "v2",
        }
    }
}

/// `spec.provider.vault`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The server URL, `https://vault.corp:8200`.
    pub server: String,
    /// The KV mount; when absent the first segment of every key is the mount.
    #[serde(default)]
    pub path: Option<String>,
    /// The KV engine version.
    #[serde(default)]
    pub version: KvVersion,
    /// Vault Enterprise / OpenBao namespace for reads and writes.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Send the last `X-Vault-Index` seen, so reads see this store's own writes.
    #[serde(default)]
    pub read_your_writes: bool,
    /// Ask standbys to forward inconsistent reads to the active node.
    #[serde(default)]
    pub forward_inconsistent: bool,
    /// Base64 PEM CA bundle; applied by the host to this store's connections.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// A Secret or ConfigMap key with the CA bundle; applied by the host.
    #[serde(default)]
    pub ca_provider: Option<serde_json::Value>,
    /// Client certificate for every connection; applied by the host.
    #[serde(default)]
    pub tls: Option<serde_json::Value>,
    /// How to obtain a Vault token.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Check-and-set for KV v2 writes.
    #[serde(default)]
    pub check_and_set: Option<CheckAndSet>,
}

/// `checkAndSet`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckAndSet {
    /// Every write carries `options.cas` with the version it replaces.
    #[serde(default)]
    pub required: bool,
}

/// ESO's `SecretKeySelector`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KeySelector {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// ESO's `ServiceAccountSelector`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AccountSelector {
    /// ServiceAccount name.
    pub name: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Token audiences.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// `auth`: exactly one method, plus the namespace to log in to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Vault namespace for the login request (default: the store's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// A static token.
    #[serde(default)]
    pub token_secret_ref: Option<KeySelector>,
    /// AppRole login.
    #[serde(default)]
    pub app_role: Option<AppRole>,
    /// Kubernetes login.
    #[serde(default)]
    pub kubernetes: Option<Kubernetes>,
    /// JWT/OIDC login.
    #[serde(default)]
    pub jwt: Option<Jwt>,
    /// Username and password login.
    #[serde(default)]
    pub user_pass: Option<UserPass>,
    /// TLS certificate login.
    #[serde(default)]
    pub cert: Option<Cert>,
    /// LDAP login (not supported).
    #[serde(default)]
    pub ldap: Option<serde_json::Value>,
    /// AWS IAM login (not supported).
    #[serde(default)]
    pub iam: Option<serde_json::Value>,
    /// GCP login (not supported).
    #[serde(default)]
    pub gcp: Option<serde_json::Value>,
}

/// `auth.appRole`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    /// Mount path of the AppRole method.
    #[serde(default = "default_approle")]
    pub path: String,
    /// The role ID, written inline.
    #[serde(default)]
    pub role_id: Option<String>,
    /// The role ID, from a Secret.
    #[serde(default)]
    pub role_ref: Option<KeySelector>,
    /// The secret ID.
    pub secret_ref: KeySelector,
}

/// `auth.kubernetes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kubernetes {
    /// Mount path of the Kubernetes method.
    #[serde(default = "default_kubernetes")]
    pub mount_path: String,
    /// The Vault role.
    pub role: String,
    /// Log in with a TokenRequest token of this ServiceAccount.
    #[serde(default)]
    pub service_account_ref: Option<AccountSelector>,
    /// Log in with a token stored in a Secret.
    #[serde(default)]
    pub secret_ref: Option<KeySelector>,
}

/// `auth.jwt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Jwt {
    /// Mount path of the JWT method.
    #[serde(default = "default_jwt")]
    pub path: String,
    /// The Vault role.
    #[serde(default)]
    pub role: Option<String>,
    /// A JWT stored in a Secret.
    #[serde(default)]
    pub secret_ref: Option<KeySelector>,
    /// A TokenRequest token of a ServiceAccount.
    #[serde(default)]
    pub kubernetes_service_account_token: Option<ServiceAccountToken>,
}

/// `auth.jwt.kubernetesServiceAccountToken`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountToken {
    /// The ServiceAccount.
    pub service_account_ref: AccountSelector,
    /// Audiences (default `vault`).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Requested lifetime (the host decides; kept for ESO compatibility).
    #[serde(default)]
    pub expiration_seconds: Option<i64>,
}

/// `auth.userPass`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPass {
    /// Mount path of the userpass method.
    #[serde(default = "default_userpass")]
    pub path: String,
    /// The user.
    pub username: String,
    /// The password.
    pub secret_ref: KeySelector,
}

/// `auth.cert`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cert {
    /// Mount path of the cert method.
    #[serde(default = "default_cert")]
    pub path: String,
    /// The client certificate (applied by the host to the TLS connection).
    #[serde(default)]
    pub client_cert: Option<KeySelector>,
    /// The client key (applied by the host).
    #[serde(default)]
    pub secret_ref: Option<KeySelector>,
    /// The certificate role to log in with; any matching role when empty.
    #[serde(default)]
    pub vault_role: Option<String>,
}

fn default_approle() -> String {
    "approle".into()
}
fn default_kubernetes() -> String {
    "kubernetes".into()
}
fn default_jwt() -> String {
    "jwt".into()
}
fn default_userpass() -> String {
    "userpass".into()
}
fn default_cert() -> String {
    "cert".into()
}

impl Config {
    /// Parses and checks the configuration.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let mut config: Config = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.vault: {e}")))?;
        let server = config.server.trim_end_matches('/');
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(Error::invalid_config(format!(
                "spec.provider.vault.server {:?} must be an http:// or https:// URL",
                config.server
            )));
        }
        config.server = server.to_string();
        if let Some(path) = &mut config.path {
            *path = path.trim_matches('/').to_string();
            if path.is_empty() {
                config.path = None;
            }
        }
        let auth = config.auth.as_ref().ok_or_else(|| {
            Error::invalid_config("spec.provider.vault.auth: no authentication method is set")
        })?;
        auth.method()?;
        Ok(config)
    }

    /// Where `key` lives: its mount and its path inside the mount (ESO's `buildPath`).
    pub fn locate(&self, key: &str) -> Result<Location, Error> {
        let key = key.trim_matches('/');
        if key.is_empty() {
            return Err(Error::invalid_request("remoteRef.key is empty"));
        }
        let strip_data = |rest: &str| -> String {
            match (self.version, rest.strip_prefix("data/")) {
                (KvVersion::V2, Some(inner)) => inner.to_string(),
                _ => rest.to_string(),
            }
        };
        let (mount, path) = match &self.path {
            Some(mount) => {
                let rest = key
                    .strip_prefix(mount.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .map(strip_data)
                    .unwrap_or_else(|| key.to_string());
                (mount.clone(), rest)
            }
            None => {
                let (mount, rest) = key.split_once('/').ok_or_else(|| {
                    Error::invalid_request(format!(
                        "remoteRef.key {key:?} names no secret below a mount: set spec.provider.vault.path or write <mount>/<path>"
                    ))
                })?;
                (mount.to_string(), strip_data(rest))
            }
        };
        if path.is_empty() {
            return Err(Error::invalid_request(format!(
                "remoteRef.key {key:?} names a mount, not a secret"
            )));
        }
        Ok(Location {
            mount,
            path,
            version: self.version,
        })
    }
}

/// A secret's place on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The KV mount, without slashes.
    pub mount: String,
    /// The secret's path inside the mount.
    pub path: String,
    /// The engine version.
    pub version: KvVersion,
}

impl Location {
    /// The API path of the secret's data (without `/v1/`).
    pub fn data_path(&self) -> String {
        match self.version {
            KvVersion::V1 => format!("{}/{}", self.mount, self.path),
            KvVersion::V2 => format!("{}/data/{}", self.mount, self.path),
        }
    }

    /// The API path of a KV v2 secret's metadata.
    pub fn metadata_path(&self) -> String {
        format!("{}/metadata/{}", self.mount, self.path)
    }
}

/// The login method an `auth` block selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `tokenSecretRef`.
    Token,
    /// `appRole`.
    AppRole,
    /// `kubernetes`.
    Kubernetes,
    /// `jwt`.
    Jwt,
    /// `userPass`.
    UserPass,
    /// `cert`.
    Cert,
}

impl Auth {
    /// The one method configured.
    pub fn method(&self) -> Result<Method, Error> {
        let mut set = Vec::new();
        if self.token_secret_ref.is_some() {
            set.push(Method::Token);
        }
        if self.app_role.is_some() {
            set.push(Method::AppRole);
        }
        if self.kubernetes.is_some() {
            set.push(Method::Kubernetes);
        }
        if self.jwt.is_some() {
            set.push(Method::Jwt);
        }
        if self.user_pass.is_some() {
            set.push(Method::UserPass);
        }
        if self.cert.is_some() {
            set.push(Method::Cert);
        }
        for (field, value) in [("ldap", &self.ldap), ("iam", &self.iam), ("gcp", &self.gcp)] {
            if value.is_some() {
                return Err(Error::invalid_config(format!(
                    "spec.provider.vault.auth.{field} is not supported by this provider yet; use tokenSecretRef, appRole, kubernetes, jwt, userPass or cert"
                )));
            }
        }
        match set.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::invalid_config(
                "spec.provider.vault.auth: no authentication method is set (tokenSecretRef, appRole, kubernetes, jwt, userPass or cert)",
            )),
            _ => Err(Error::invalid_config(
                "spec.provider.vault.auth: set exactly one authentication method",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(&format!(
            r#"{{"server":"https://vault.corp:8200/","auth":{{"tokenSecretRef":{{"name":"t","key":"k"}}}}{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn keys_are_placed_below_the_mount_as_eso_does() {
        let v2 = config(r#","path":"secret","version":"v2""#);
        assert_eq!(v2.server, "https://vault.corp:8200");
        assert_eq!(v2.locate("myapp").unwrap().data_path(), "secret/data/myapp");
        assert_eq!(
            v2.locate("secret/data/myapp").unwrap().data_path(),
            "secret/data/myapp"
        );
        assert_eq!(
            v2.locate("secret/myapp/db").unwrap().metadata_path(),
            "secret/metadata/myapp/db"
        );
        let v1 = config(r#","path":"kv","version":"v1""#);
        assert_eq!(v1.locate("kv/a/b").unwrap().data_path(), "kv/a/b");
        let no_mount = config("");
        assert_eq!(
            no_mount.locate("secret/data/myapp").unwrap().data_path(),
            "secret/data/myapp"
        );
        assert_eq!(
            no_mount.locate("secret/myapp").unwrap().data_path(),
            "secret/data/myapp"
        );
        assert!(no_mount.locate("myapp").is_err());
    }

    #[test]
    fn exactly_one_supported_auth_method_is_required() {
        let base = r#"{"server":"https://v","auth":"#;
        assert!(Config::parse(&format!("{base}{{}}}}")).is_err());
        assert!(Config::parse(r#"{"server":"https://v"}"#).is_err());
        let err = Config::parse(&format!(
            r#"{base}{{"ldap":{{"username":"u","secretRef":{{"name":"a","key":"b"}}}}}}}}"#
        ))
        .unwrap_err();
        assert!(format!("{err:?}").contains("ldap"), "{err:?}");
        let k8s = Config::parse(&format!(
            r#"{base}{{"kubernetes":{{"role":"external-secrets"}}}}}}"#
        ))
        .unwrap();
        let k = k8s.auth.unwrap().kubernetes.unwrap();
        assert_eq!(k.mount_path, "kubernetes");
        assert!(
            Config::parse(
                r#"{"server":"vault.corp","auth":{"tokenSecretRef":{"name":"a","key":"b"}}}"#
            )
            .is_err()
        );
    }
}
