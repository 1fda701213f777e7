//! `spec.provider.aws`, as ESO defines it, plus `endpoint` / `stsEndpoint` (an Airlock
//! extension; ESO reads the `AWS_*_ENDPOINT` environment instead, which a sandboxed
//! provider has not).

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// Which AWS service a store reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Service {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager Parameter Store.
    ParameterStore,
}

/// `spec.provider.aws`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The service.
    pub service: Service,
    /// The AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// A role ARN to assume (after `additionalRoles`).
    #[serde(default)]
    pub role: Option<String>,
    /// Roles assumed in order before `role`.
    #[serde(default)]
    pub additional_roles: Vec<String>,
    /// The external ID passed to AssumeRole.
    #[serde(default, rename = "externalID")]
    pub external_id: Option<String>,
    /// Session tags passed to AssumeRole.
    #[serde(default)]
    pub session_tags: Vec<Tag>,
    /// Session tag keys that are transitive.
    #[serde(default)]
    pub transitive_tag_keys: Vec<String>,
    /// Prepended to every key.
    #[serde(default)]
    pub prefix: String,
    /// How to authenticate; none means no credentials (refused: Airlock has no ambient
    /// AWS identity).
    #[serde(default)]
    pub auth: Auth,
    /// Secrets Manager options for deletes.
    #[serde(default)]
    pub secrets_manager: SecretsManagerOptions,
    /// Airlock extension: the service endpoint (`https://vpce-….secretsmanager…` or a test
    /// server). The Provider's grants must include its host.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Airlock extension: the STS endpoint for AssumeRole and web identity.
    #[serde(default)]
    pub sts_endpoint: Option<String>,
}

/// One session tag.
#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    /// The tag key.
    pub key: String,
    /// The tag value.
    #[serde(default)]
    pub value: String,
}

/// `auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Static keys from Kubernetes Secrets.
    #[serde(default)]
    pub secret_ref: Option<SecretRefAuth>,
    /// A service-account token exchanged through AssumeRoleWithWebIdentity.
    #[serde(default)]
    pub jwt: Option<JwtAuth>,
}

/// ESO's `SecretKeySelector`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key in it.
    pub key: String,
    /// Its namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `auth.secretRef`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRefAuth {
    /// The access key id.
    #[serde(rename = "accessKeyIDSecretRef")]
    pub access_key_id: KeySelector,
    /// The secret access key.
    pub secret_access_key_secret_ref: KeySelector,
    /// An optional session token.
    #[serde(default)]
    pub session_token_secret_ref: Option<KeySelector>,
}

/// `auth.jwt`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    /// The ServiceAccount whose token is exchanged.
    pub service_account_ref: ServiceAccountRef,
}

/// `serviceAccountRef`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccountRef {
    /// Its name.
    pub name: String,
    /// Its namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Extra audiences; `sts.amazonaws.com` is always asked for.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// `secretsManager`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretsManagerOptions {
    /// Delete without a recovery window.
    #[serde(default)]
    pub force_delete_without_recovery: bool,
    /// Days before a deleted secret is gone (7–30).
    #[serde(default)]
    pub recovery_window_in_days: Option<i64>,
}

impl Config {
    /// Parses and checks the configuration.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let config: Config = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.aws: {e}")))?;
        if !is_region(&config.region) {
            return Err(Error::invalid_config(format!(
                "spec.provider.aws.region {:?} is not an AWS region (expected e.g. us-east-1, eu-west-1, us-gov-west-1)",
                config.region
            )));
        }
        for (field, url) in [
            ("endpoint", &config.endpoint),
            ("stsEndpoint", &config.sts_endpoint),
        ] {
            if let Some(url) = url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(Error::invalid_config(format!(
                    "spec.provider.aws.{field} {url:?} must be an http:// or https:// URL"
                )));
            }
        }
        if config.auth.secret_ref.is_none() && config.auth.jwt.is_none() {
            return Err(Error::invalid_config(
                "spec.provider.aws.auth: set secretRef or jwt (Airlock providers have no ambient AWS identity)",
            ));
        }
        if let Some(days) = config.secrets_manager.recovery_window_in_days
            && !(7..=30).contains(&days)
        {
            return Err(Error::invalid_config(
                "spec.provider.aws.secretsManager.recoveryWindowInDays must be between 7 and 30",
            ));
        }
        Ok(config)
    }

    /// The service's endpoint: the override or `https://{service}.{region}.amazonaws.com`.
    pub fn service_endpoint(&self) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => default_endpoint(self.signing_name(), &self.region),
        }
    }

    /// STS's endpoint: the override or the regional `https://sts.{region}.amazonaws.com`.
    pub fn sts_endpoint(&self) -> String {
        match &self.sts_endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => default_endpoint("sts", &self.region),
        }
    }

    /// The SigV4 signing name of the service.
    pub fn signing_name(&self) -> &'static str {
        match self.service {
            Service::SecretsManager => "secretsmanager",
            Service::ParameterStore => "ssm",
        }
    }

    /// `prefix` + `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// `https://{service}.{region}.amazonaws.com` (`.amazonaws.com.cn` in China).
pub fn default_endpoint(service: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{service}.{region}.{suffix}")
}

/// Whether `region` has the shape of an AWS region: `xx-name-N` or `xx-xxx-name-N`
/// (`us-east-1`, `ap-southeast-3`, `us-gov-west-1`, `eu-isoe-west-1`).
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    if !(3..=4).contains(&parts.len()) {
        return false;
    }
    let (last, words) = parts.split_last().expect("at least three parts");
    let lower = |w: &&str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase());
    words[0].len() == 2
        && words.iter().all(lower)
        && !last.is_empty()
        && last.len() <= 2
        && last.chars().all(|c| c.is_ascii_digit())
}

/// The JSON Schema of `spec.provider.aws`.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "aws provider",
  "description": "AWS Secrets Manager and Parameter Store (ESO's spec.provider.aws).",
  "type": "object",
  "required": ["service", "region"],
  "properties": {
    "service": {"enum": ["SecretsManager", "ParameterStore"]},
    "region": {"type": "string", "minLength": 1},
    "role": {"type": "string"},
    "additionalRoles": {"type": "array", "items": {"type": "string"}},
    "externalID": {"type": "string"},
    "sessionTags": {"type": "array", "items": {"type": "object", "required": ["key"],
      "properties": {"key": {"type": "string"}, "value": {"type": "string"}}}},
    "transitiveTagKeys": {"type": "array", "items": {"type": "string"}},
    "sessionTagsPolicy": {"type": "string"},
    "customSessionTags": {"type": "object"},
    "prefix": {"type": "string"},
    "secretsManager": {"type": "object", "properties": {
      "forceDeleteWithoutRecovery": {"type": "boolean"},
      "recoveryWindowInDays": {"type": "integer"}}},
    "auth": {"type": "object", "properties": {
      "secretRef": {"type": "object", "required": ["accessKeyIDSecretRef", "secretAccessKeySecretRef"]},
      "jwt": {"type": "object", "required": ["serviceAccountRef"]}}},
    "endpoint": {"type": "string", "description": "Airlock extension: override the service endpoint; its host must be granted"},
    "stsEndpoint": {"type": "string", "description": "Airlock extension: override the STS endpoint; its host must be granted"}
  }
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "service": "SecretsManager",
            "region": "us-west-2",
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-credentials", "key": "access-key"},
                "secretAccessKeySecretRef": {"name": "aws-credentials", "key": "secret-key"}}}
        })
    }

    #[test]
    fn the_seed_store_parses_with_default_endpoints() {
        let c = Config::parse(&base().to_string()).unwrap();
        assert_eq!(c.service, Service::SecretsManager);
        assert_eq!(
            c.service_endpoint(),
            "https://secretsmanager.us-west-2.amazonaws.com"
        );
        assert_eq!(c.sts_endpoint(), "https://sts.us-west-2.amazonaws.com");
        let mut ssm = base();
        ssm["service"] = "ParameterStore".into();
        let c = Config::parse(&ssm.to_string()).unwrap();
        assert_eq!(c.service_endpoint(), "https://ssm.us-west-2.amazonaws.com");
    }

    #[test]
    fn regions_must_look_like_aws_regions() {
        for good in [
            "us-east-1",
            "ap-southeast-3",
            "us-gov-west-1",
            "eu-isoe-west-1",
            "cn-north-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "mars-1",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "us-east-1.evil.com",
            "a-b-c-d-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
        let mut c = base();
        c["region"] = "moon-base-1".into();
        let err = Config::parse(&c.to_string()).unwrap_err();
        assert!(format!("{err:?}").contains("moon-base-1"), "{err:?}");
    }

    #[test]
    fn a_store_without_credentials_or_with_a_bad_endpoint_is_invalid() {
        let mut c = base();
        c["auth"] = serde_json::json!({});
        assert!(matches!(
            Config::parse(&c.to_string()),
            Err(Error::InvalidConfig(_))
        ));
        let mut c = base();
        c["endpoint"] = "ftp://x".into();
        assert!(matches!(
            Config::parse(&c.to_string()),
            Err(Error::InvalidConfig(_))
        ));
        let mut c = base();
        // Without `role`, the ServiceAccount's eks.amazonaws.com/role-arn annotation names
        // the role (read when credentials are needed), as in ESO.
        c["auth"] = serde_json::json!({"jwt": {"serviceAccountRef": {"name": "sa"}}});
        assert!(Config::parse(&c.to_string()).is_ok());
    }

    #[test]
    fn the_prefix_is_prepended_to_keys() {
        let mut c = base();
        c["prefix"] = "team-a/".into();
        assert_eq!(
            Config::parse(&c.to_string()).unwrap().key("db"),
            "team-a/db"
        );
    }
}
