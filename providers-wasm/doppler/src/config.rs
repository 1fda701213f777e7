//! `spec.provider.doppler` as ESO defines it, plus `endpoint` (an Airlock extension; ESO
//! reads `DOPPLER_BASE_URL` from its environment, which a sandboxed provider has none of).

use airlock_provider_sdk::{Error, StoreInfo, StoreKind};
use serde::Deserialize;

/// Doppler's API when the store names no `endpoint`.
pub const DEFAULT_ENDPOINT: &str = "https://api.doppler.com";

/// `spec.provider.doppler`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// How to get a Doppler token.
    pub auth: Auth,
    /// The project; a service token's own when absent.
    #[serde(default)]
    pub project: Option<String>,
    /// The config; a service token's own when absent.
    #[serde(default)]
    pub config: Option<String>,
    /// Doppler's `name_transformer` for `dataFrom.find`.
    #[serde(default)]
    pub name_transformer: Option<String>,
    /// A download format returned whole under `DOPPLER_SECRETS_FILE`.
    #[serde(default)]
    pub format: Option<String>,
    /// The API base URL.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `auth`: exactly one of the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// A service (or personal) token in a Secret.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// A ServiceAccount token exchanged for a Doppler token.
    #[serde(default)]
    pub oidc_config: Option<Oidc>,
}

/// `auth.secretRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret key holding the token.
    pub doppler_token: KeySelector,
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

/// `auth.oidcConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    /// The Doppler service-account identity that trusts the cluster's issuer.
    pub identity: String,
    /// The ServiceAccount whose token is exchanged.
    pub service_account_ref: AccountSelector,
    /// ESO's requested token lifetime; the host mints tokens with its own bound.
    #[serde(default)]
    pub expiration_seconds: Option<u64>,
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
    /// Parses and checks the store configuration.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let config: Config = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.doppler: {e}")))?;
        match (&config.auth.secret_ref, &config.auth.oidc_config) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(Error::invalid_config(
                    "spec.provider.doppler.auth needs exactly one of secretRef and oidcConfig",
                ));
            }
        }
        if config.project.is_some() != config.config.is_some() {
            return Err(Error::invalid_config(
                "spec.provider.doppler: project and config go together (a service token knows both)",
            ));
        }
        Ok(config)
    }
}

/// ESO's audience for a Doppler OIDC token: bound to the store.
pub fn default_audience(store: &StoreInfo) -> String {
    match store.kind {
        StoreKind::SecretStore => format!("secretStore:{}:{}", store.namespace, store.name),
        StoreKind::ClusterSecretStore => format!("clusterSecretStore:{}", store.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_needs_exactly_one_auth_method() {
        let token = r#"{"auth":{"secretRef":{"dopplerToken":{"name":"t","key":"k"}}}}"#;
        assert!(Config::parse(token).is_ok());
        let none = Config::parse(r#"{"auth":{}}"#).unwrap_err();
        assert!(matches!(none, Error::InvalidConfig(m) if m.contains("exactly one")));
        let typo = Config::parse(
            r#"{"auth":{"secretRef":{"dopplerToken":{"name":"t","key":"k"}}},"projct":"p"}"#,
        );
        assert!(matches!(typo, Err(Error::InvalidConfig(m)) if m.contains("projct")));
    }

    #[test]
    fn project_without_config_is_refused() {
        let half =
            r#"{"auth":{"secretRef":{"dopplerToken":{"name":"t","key":"k"}}},"project":"p"}"#;
        assert!(
            matches!(Config::parse(half), Err(Error::InvalidConfig(m)) if m.contains("together"))
        );
    }

    #[test]
    fn the_default_audience_is_bound_to_the_store() {
        let store = |kind| StoreInfo {
            kind,
            name: "s".into(),
            namespace: "ns".into(),
        };
        assert_eq!(
            default_audience(&store(StoreKind::SecretStore)),
            "secretStore:ns:s"
        );
        assert_eq!(
            default_audience(&store(StoreKind::ClusterSecretStore)),
            "clusterSecretStore:s"
        );
    }
}
