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
    /// What to read when `latest` is disabled or destroyed.
    #[serde(default)]
    pub secret_version_selection_policy: VersionPolicy,
}

/// `secretVersionSelectionPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum VersionPolicy {
    /// Read `latest`, or fail when it is disabled or destroyed (ESO's default).
    #[default]
    LatestOrFail,
    /// When `latest` is disabled or destroyed, read the newest enabled version.
    LatestOrFetch,
}

/// `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// A service-account key file in a Secret.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// GKE Workload Identity.
    #[serde(default)]
    pub workload_identity: Option<WorkloadIdentity>,
    /// Workload Identity Federation (with a Kubernetes ServiceAccount as the subject).
    #[serde(default)]
    pub workload_identity_federation: Option<Federation>,
}

/// `auth.secretRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret key holding the service-account key JSON.
    pub secret_access_key_secret_ref: KeySelector,
}

/// `auth.workloadIdentity`: the ServiceAccount whose token is exchanged, and the cluster
/// whose identity pool trusts it. Missing cluster facts come from the GKE metadata server,
/// as in ESO.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadIdentity {
    /// The Kubernetes ServiceAccount.
    pub service_account_ref: AccountSelector,
    /// The cluster's location (region or zone).
    #[serde(default)]
    pub cluster_location: Option<String>,
    /// The cluster's name.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// The project the cluster runs in (its identity pool is `<project>.svc.id.goog`).
    #[serde(default, rename = "clusterProjectID")]
    pub cluster_project_id: Option<String>,
}

/// `auth.workloadIdentityFederation`: a ServiceAccount token exchanged at Google's STS for
/// the pool provider named by `audience`, optionally impersonating a service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Federation {
    /// The ServiceAccount whose token is the subject token.
    #[serde(default)]
    pub service_account_ref: Option<AccountSelector>,
    /// An external-account credential file in a ConfigMap (not supported).
    #[serde(default)]
    pub cred_config: Option<serde_json::Value>,
    /// AWS credentials as the subject (not supported).
    #[serde(default)]
    pub aws_security_credentials: Option<serde_json::Value>,
    /// The STS audience: `//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Checked against a credConfig's token source (unused without credConfig).
    #[serde(default)]
    pub external_token_endpoint: Option<String>,
    /// The Google service account to impersonate (wins over the ServiceAccount annotation).
    #[serde(default)]
    pub gcp_service_account_email: Option<String>,
}

/// ESO's `ServiceAccountSelector`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSelector {
    /// ServiceAccount name.
    pub name: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Extra audiences of the token, after the identity pool.
    #[serde(default)]
    pub audiences: Vec<String>,
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
        if let Some(f) = &config.auth.workload_identity_federation {
            let field = "spec.provider.gcpsm.auth.workloadIdentityFederation";
            let sources = [
                f.service_account_ref.is_some(),
                f.cred_config.is_some(),
                f.aws_security_credentials.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(Error::invalid_config(format!(
                    "{field}: exactly one of credConfig, awsSecurityCredentials or serviceAccountRef must be provided"
                )));
            }
            if f.service_account_ref.is_none() {
                return Err(Error::unsupported(format!(
                    "{field}: only serviceAccountRef is supported (not credConfig or awsSecurityCredentials)"
                )));
            }
            match f.audience.as_deref() {
                None | Some("") => {
                    return Err(Error::invalid_config(format!(
                        "{field}: audience must be provided, when serviceAccountRef or awsSecurityCredentials is provided"
                    )));
                }
                Some(a) if a.contains(char::is_whitespace) => {
                    return Err(Error::invalid_config(format!(
                        "{field}.audience {a:?} is not a workload identity pool provider"
                    )));
                }
                Some(_) => {}
            }
            if let Some(email) = &f.gcp_service_account_email
                && !email.ends_with(".iam.gserviceaccount.com")
            {
                return Err(Error::invalid_config(format!(
                    "{field}.gcpServiceAccountEmail {email:?} is not a service-account email"
                )));
            }
        }
        if let Some(wi) = &config.auth.workload_identity {
            if wi.service_account_ref.name.is_empty() {
                return Err(Error::invalid_config(
                    "spec.provider.gcpsm.auth.workloadIdentity.serviceAccountRef.name is empty",
                ));
            }
            // These end up in the STS audience and in metadata-server paths.
            for (field, value) in [
                ("clusterLocation", &wi.cluster_location),
                ("clusterName", &wi.cluster_name),
                ("clusterProjectID", &wi.cluster_project_id),
            ] {
                if let Some(v) = value
                    && !is_name(v)
                {
                    return Err(Error::invalid_config(format!(
                        "spec.provider.gcpsm.auth.workloadIdentity.{field} {v:?} is not a Google Cloud name"
                    )));
                }
            }
        }
        if config.auth.secret_ref.is_none()
            && config.auth.workload_identity.is_none()
            && config.auth.workload_identity_federation.is_none()
        {
            // ESO falls back to the pod's default credentials, which a sandboxed provider has none of.
            return Err(Error::invalid_config(
                "spec.provider.gcpsm.auth needs secretRef.secretAccessKeySecretRef, workloadIdentity or workloadIdentityFederation",
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

/// A project, location or cluster name: lowercase letters, digits, `-`, `.` and `:` (domain
/// projects), nothing that could leave a URL path segment or an STS audience.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:_".contains(c))
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

    #[test]
    fn the_seeds_workload_identity_store_parses_and_bad_cluster_names_are_refused() {
        let seed = Config::parse(
            r#"{"projectID":"my-gcp-project","auth":{"workloadIdentity":{
                "clusterLocation":"us-central1","clusterName":"my-cluster",
                "serviceAccountRef":{"name":"external-secrets-sa"}}}}"#,
        )
        .unwrap();
        let wi = seed.auth.workload_identity.unwrap();
        assert_eq!(wi.service_account_ref.name, "external-secrets-sa");
        assert_eq!(wi.cluster_project_id, None);
        assert_eq!(
            seed.secret_version_selection_policy,
            VersionPolicy::LatestOrFail
        );
        assert!(matches!(
            Config::parse(
                r#"{"projectID":"p","auth":{"workloadIdentity":{"clusterName":"a/b",
                    "serviceAccountRef":{"name":"sa"}}}}"#
            ),
            Err(Error::InvalidConfig(m)) if m.contains("clusterName")
        ));
    }
}
