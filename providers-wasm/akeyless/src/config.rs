//! `spec.provider.akeyless` as ESO defines it.

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// Akeyless's SaaS API when the store names no `akeylessGWApiURL`.
pub const DEFAULT_URL: &str = "https://api.akeyless.io";

/// `spec.provider.akeyless`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The SaaS API or a Gateway's `/v2` URL.
    #[serde(default, rename = "akeylessGWApiURL")]
    pub url: Option<String>,
    /// Ask a Gateway to bypass its cache.
    #[serde(default)]
    pub ignore_cache: bool,
    /// How to log in.
    #[serde(rename = "authSecretRef")]
    pub auth: Auth,
    /// Base64 PEM CA bundle; applied by the host to this store's connections.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// A Secret or ConfigMap key with the CA bundle; applied by the host.
    #[serde(default)]
    pub ca_provider: Option<serde_json::Value>,
}

/// `authSecretRef`: a Secret with the access id, type and parameter, or Kubernetes auth.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// `accessID`, `accessType`, `accessTypeParam` from Secrets.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// Kubernetes auth with a ServiceAccount token.
    #[serde(default)]
    pub kubernetes_auth: Option<KubernetesAuth>,
    /// ESO's Azure workload-identity ServiceAccount (only for `azure_ad`, unsupported here).
    #[serde(default)]
    pub service_account_ref: Option<AccountSelector>,
}

/// `authSecretRef.secretRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The access id (`p-…`).
    #[serde(rename = "accessID")]
    pub access_id: KeySelector,
    /// `access_key` / `api_key`, `k8s`, or a cloud identity type.
    pub access_type: KeySelector,
    /// The access key, or the Kubernetes auth config name for `k8s`.
    #[serde(default)]
    pub access_type_param: Option<KeySelector>,
}

/// `authSecretRef.kubernetesAuth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesAuth {
    /// The Kubernetes auth method's access id.
    #[serde(rename = "accessID")]
    pub access_id: String,
    /// The Gateway's Kubernetes auth config name.
    pub k8s_conf_name: String,
    /// The ServiceAccount whose token is sent.
    #[serde(default)]
    pub service_account_ref: Option<AccountSelector>,
    /// A Secret key holding a ServiceAccount token (key `token` when empty).
    #[serde(default)]
    pub secret_ref: Option<KeySelector>,
}

/// ESO's `SecretKeySelector`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeySelector {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key in the Secret.
    #[serde(default)]
    pub key: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// ESO's `ServiceAccountSelector`.
#[derive(Debug, Clone, Deserialize)]
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

impl Config {
    /// Parses and checks the store configuration, as ESO's `ValidateStore` does.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let config: Config = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.akeyless: {e}")))?;
        let url = config.url();
        let authority = url
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
            .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
        if authority.is_none_or(str::is_empty) {
            return Err(Error::invalid_config(format!(
                "spec.provider.akeyless.akeylessGWApiURL {url:?} is not an http(s) URL with a host"
            )));
        }
        match (&config.auth.secret_ref, &config.auth.kubernetes_auth) {
            (_, Some(k8s)) => {
                if k8s.access_id.is_empty() {
                    return Err(Error::invalid_config(
                        "missing kubernetes auth-method access-id (authSecretRef.kubernetesAuth.accessID)",
                    ));
                }
                if k8s.k8s_conf_name.is_empty() {
                    return Err(Error::invalid_config(
                        "missing kubernetes config name (authSecretRef.kubernetesAuth.k8sConfName)",
                    ));
                }
                if k8s.service_account_ref.is_none() && k8s.secret_ref.is_none() {
                    return Err(Error::invalid_config(
                        "authSecretRef.kubernetesAuth needs serviceAccountRef or secretRef (the operator's own mounted token is not handed to providers)",
                    ));
                }
            }
            (Some(secret), None) => {
                if secret.access_id.name.is_empty() {
                    return Err(Error::invalid_config("missing akeyless accessID name"));
                }
                if secret.access_id.key.is_empty() {
                    return Err(Error::invalid_config("missing akeyless accessID key"));
                }
            }
            (None, None) => {
                return Err(Error::invalid_config(
                    "spec.provider.akeyless.authSecretRef needs secretRef or kubernetesAuth",
                ));
            }
        }
        Ok(config)
    }

    /// The API base URL without a trailing `/`.
    pub fn url(&self) -> &str {
        self.url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_URL)
            .trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = r#"{"secretRef":{"accessID":{"name":"c","key":"id"},"accessType":{"name":"c","key":"type"},"accessTypeParam":{"name":"c","key":"param"}}}"#;

    #[test]
    fn the_url_defaults_to_the_saas_api_and_loses_its_trailing_slash() {
        let config = Config::parse(&format!(r#"{{"authSecretRef":{KEYS}}}"#)).unwrap();
        assert_eq!(config.url(), "https://api.akeyless.io");
        let gw = Config::parse(&format!(
            r#"{{"akeylessGWApiURL":"https://gw:8080/v2/","authSecretRef":{KEYS}}}"#
        ))
        .unwrap();
        assert_eq!(gw.url(), "https://gw:8080/v2");
        let bad = Config::parse(&format!(
            r#"{{"akeylessGWApiURL":"gw:8080","authSecretRef":{KEYS}}}"#
        ));
        assert!(matches!(bad, Err(Error::InvalidConfig(m)) if m.contains("not an http(s) URL")));
    }

    #[test]
    fn kubernetes_auth_needs_its_access_id_config_name_and_a_token_source() {
        let k8s = |body: &str| {
            Config::parse(&format!(
                r#"{{"authSecretRef":{{"kubernetesAuth":{body}}}}}"#
            ))
        };
        assert!(
            k8s(r#"{"accessID":"p-1","k8sConfName":"c","serviceAccountRef":{"name":"sa"}}"#)
                .is_ok()
        );
        assert!(
            matches!(k8s(r#"{"accessID":"","k8sConfName":"c","serviceAccountRef":{"name":"sa"}}"#),
            Err(Error::InvalidConfig(m)) if m.contains("access-id"))
        );
        assert!(
            matches!(k8s(r#"{"accessID":"p-1","k8sConfName":"","serviceAccountRef":{"name":"sa"}}"#),
            Err(Error::InvalidConfig(m)) if m.contains("config name"))
        );
        assert!(matches!(k8s(r#"{"accessID":"p-1","k8sConfName":"c"}"#),
            Err(Error::InvalidConfig(m)) if m.contains("serviceAccountRef or secretRef")));
    }

    #[test]
    fn a_store_without_auth_or_with_a_typo_is_refused() {
        assert!(matches!(Config::parse(r#"{"authSecretRef":{}}"#),
            Err(Error::InvalidConfig(m)) if m.contains("secretRef or kubernetesAuth")));
        assert!(
            matches!(Config::parse(&format!(r#"{{"authSecretRef":{KEYS},"ignorCache":true}}"#)),
            Err(Error::InvalidConfig(m)) if m.contains("ignorCache"))
        );
    }
}
