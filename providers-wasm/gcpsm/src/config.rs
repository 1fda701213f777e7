//! `spec.provider.gcpsm` as ESO defines it.

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// `spec.provider.gcpsm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The project holding the secrets.
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// A region for regional secrets and the regional endpoint.
    #[serde(default)]
    pub location: Option<String>,
    /// How to authenticate.
    pub auth: Auth,
}

/// `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// A service-account key file in a Secret.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// GKE Workload Identity (not supported yet).
    #[serde(default)]
    pub workload_identity: Option<serde_json::Value>,
    /// Workload Identity Federation (not supported).
    #[serde(default)]
    pub workload_identity_federation: Option<serde_json::Value>,
}

/// `auth.secretRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret key holding the service-account key JSON.
    pub secret_access_key_secret_ref: KeySelector,
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
    /// Parses and checks the store configuration.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let config: Config = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.gcpsm: {e}")))?;
        if config.project_id.is_empty() {
            return Err(Error::invalid_config(
                "spec.provider.gcpsm.projectID is empty",
            ));
        }
        if let Some(location) = &config.location
            && !location
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Error::invalid_config(format!(
                "spec.provider.gcpsm.location {location:?} is not a region name"
            )));
        }
        if config.auth.workload_identity.is_some() {
            return Err(Error::unsupported(
                "spec.provider.gcpsm.auth.workloadIdentity is not supported yet; use auth.secretRef",
            ));
        }
        if config.auth.workload_identity_federation.is_some() {
            return Err(Error::unsupported(
                "spec.provider.gcpsm.auth.workloadIdentityFederation is not supported; use auth.secretRef",
            ));
        }
        if config.auth.secret_ref.is_none() {
            // ESO falls back to the pod's default credentials, which a sandboxed provider has none of.
            return Err(Error::invalid_config(
                "spec.provider.gcpsm.auth needs secretRef.secretAccessKeySecretRef",
            ));
        }
        Ok(config)
    }

    /// The API base: `https://<endpoint>/v1/projects/<p>[/locations/<l>]`.
    pub fn base(&self) -> String {
        match &self.location {
            Some(l) => format!(
                "https://secretmanager.{l}.rep.googleapis.com/v1/projects/{}/locations/{l}",
                self.project_id
            ),
            None => format!(
                "https://secretmanager.googleapis.com/v1/projects/{}",
                self.project_id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = r#""auth":{"secretRef":{"secretAccessKeySecretRef":{"name":"s","key":"k"}}}"#;

    #[test]
    fn a_location_selects_the_regional_endpoint() {
        let global = Config::parse(&format!(r#"{{"projectID":"p",{KEY}}}"#)).unwrap();
        assert_eq!(
            global.base(),
            "https://secretmanager.googleapis.com/v1/projects/p"
        );
        let regional = Config::parse(&format!(
            r#"{{"projectID":"p","location":"europe-west1",{KEY}}}"#
        ))
        .unwrap();
        assert_eq!(
            regional.base(),
            "https://secretmanager.europe-west1.rep.googleapis.com/v1/projects/p/locations/europe-west1"
        );
    }

    #[test]
    fn a_store_without_a_key_or_with_a_bad_location_is_refused() {
        assert!(matches!(
            Config::parse(r#"{"projectID":"p","auth":{}}"#),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            Config::parse(&format!(r#"{{"projectID":"p","location":"a.b/c",{KEY}}}"#)),
            Err(Error::InvalidConfig(m)) if m.contains("region")
        ));
    }
}
