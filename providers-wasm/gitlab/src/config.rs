//! `spec.provider.gitlab` as ESO defines it.

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// GitLab.com, ESO's default `url`.
pub const DEFAULT_URL: &str = "https://gitlab.com";

/// `spec.provider.gitlab`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The instance's base URL without a trailing `/` or `/api/v4`.
    pub url: String,
    /// Where the access token is.
    pub token: KeySelector,
    /// The project whose variables come first.
    pub project_id: Option<String>,
    /// Groups whose variables are looked up after the project's; the last one wins.
    pub group_ids: Vec<String>,
    /// Use the project's ancestor groups as `group_ids`.
    pub inherit_from_groups: bool,
    /// The environment scope to read; `None` reads without a filter.
    pub environment: Option<String>,
}

/// ESO's `SecretKeySelector`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KeySelector {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    #[serde(default)]
    pub key: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    url: Option<String>,
    auth: RawAuth,
    #[serde(default, rename = "projectID")]
    project_id: Option<String>,
    #[serde(default, rename = "groupIDs")]
    group_ids: Vec<String>,
    #[serde(default)]
    inherit_from_groups: bool,
    #[serde(default)]
    environment: Option<String>,
    // Applied by the host to this store's TLS connections.
    #[serde(default)]
    #[allow(dead_code)]
    ca_bundle: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    ca_provider: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawAuth {
    #[serde(rename = "SecretRef")]
    secret_ref: RawSecretRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSecretRef {
    access_token: KeySelector,
}

impl Config {
    /// Parses and checks the store's configuration.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("spec.provider.gitlab: {e}")))?;
        let url = normalise_url(raw.url.as_deref().unwrap_or(DEFAULT_URL))?;
        let project_id = raw.project_id.filter(|p| !p.trim().is_empty());
        if project_id.is_none() && raw.group_ids.is_empty() {
            return Err(Error::invalid_config(
                "spec.provider.gitlab: set projectID, groupIDs or both",
            ));
        }
        if raw.inherit_from_groups && project_id.is_none() {
            return Err(Error::invalid_config(
                "spec.provider.gitlab: inheritFromGroups needs projectID (the groups are the project's ancestors)",
            ));
        }
        if raw.inherit_from_groups && !raw.group_ids.is_empty() {
            return Err(Error::invalid_config(
                "spec.provider.gitlab: set either groupIDs or inheritFromGroups, not both",
            ));
        }
        if raw.auth.secret_ref.access_token.key.is_empty() {
            return Err(Error::invalid_config(
                "spec.provider.gitlab.auth.SecretRef.accessToken.key is empty",
            ));
        }
        Ok(Config {
            url,
            token: raw.auth.secret_ref.access_token,
            project_id,
            group_ids: raw.group_ids,
            inherit_from_groups: raw.inherit_from_groups,
            environment: raw.environment.filter(|e| !e.is_empty()),
        })
    }
}

/// `https://gitlab.example.com/`, `.../api/v4` → `https://gitlab.example.com`, keeping a
/// relative-URL prefix (`https://example.com/gitlab`).
fn normalise_url(url: &str) -> Result<String, Error> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api/v4").unwrap_or(trimmed);
    let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
        Error::invalid_config(format!(
            "spec.provider.gitlab.url {url:?} is not an absolute URL"
        ))
    })?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['?', '#']) {
        return Err(Error::invalid_config(format!(
            "spec.provider.gitlab.url {url:?} must be http(s)://host[:port][/prefix]"
        )));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = r#""auth":{"SecretRef":{"accessToken":{"name":"gl","key":"token"}}}"#;

    fn parse(fields: &str) -> Result<Config, Error> {
        Config::parse(&format!("{{{AUTH}{fields}}}"))
    }

    #[test]
    fn the_url_defaults_to_gitlab_com_and_loses_a_trailing_api_v4() {
        let c = parse(r#","projectID":"42""#).unwrap();
        assert_eq!(c.url, "https://gitlab.com");
        assert_eq!(c.token.name, "gl");
        let c = parse(r#","projectID":"42","url":"https://git.corp:8443/gitlab/api/v4/""#).unwrap();
        assert_eq!(c.url, "https://git.corp:8443/gitlab");
        assert!(matches!(
            parse(r#","projectID":"1","url":"git.corp""#),
            Err(Error::InvalidConfig(m)) if m.contains("absolute")
        ));
    }

    #[test]
    fn a_store_needs_a_project_or_groups_and_inherits_only_from_a_project() {
        assert!(matches!(parse(""), Err(Error::InvalidConfig(m)) if m.contains("projectID")));
        assert!(parse(r#","groupIDs":["7"]"#).is_ok());
        assert!(matches!(
            parse(r#","groupIDs":["7"],"inheritFromGroups":true"#),
            Err(Error::InvalidConfig(m)) if m.contains("needs projectID")
        ));
        assert!(matches!(
            parse(r#","projectID":"1","groupIDs":["7"],"inheritFromGroups":true"#),
            Err(Error::InvalidConfig(m)) if m.contains("not both")
        ));
    }

    #[test]
    fn the_token_is_under_the_capitalised_secret_ref() {
        let lower =
            r#"{"auth":{"secretRef":{"accessToken":{"name":"gl","key":"t"}}},"projectID":"1"}"#;
        assert!(
            matches!(Config::parse(lower), Err(Error::InvalidConfig(m)) if m.contains("SecretRef"))
        );
    }
}
