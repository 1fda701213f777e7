//! Registry credentials: a user name and password, from flags or from a Docker config
//! (`~/.docker/config.json`, the `.dockerconfigjson` key of a
//! `kubernetes.io/dockerconfigjson` Secret).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::RegistryError;

/// How to authenticate to a registry.
#[derive(Clone, Default)]
pub enum RegistryCredentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// HTTP basic credentials (also exchanged for a bearer token where the registry asks).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: SecretString,
    },
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryCredentials::Anonymous => f.write_str("Anonymous"),
            RegistryCredentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl RegistryCredentials {
    pub(super) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            RegistryCredentials::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            RegistryCredentials::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(
                    username.clone(),
                    password.expose_secret().to_string(),
                )
            }
        }
    }

    /// The credentials a Docker config JSON holds for `registry` (`host[:port]`); anonymous
    /// when it has none for that registry.
    pub fn from_docker_config(json: &[u8], registry: &str) -> Result<Self, RegistryError> {
        #[derive(Deserialize)]
        struct Config {
            #[serde(default)]
            auths: std::collections::HashMap<String, Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
        }
        let config: Config = serde_json::from_slice(json).map_err(|e| {
            RegistryError::InvalidCredentials(format!("the Docker config is not valid JSON: {e}"))
        })?;
        let wanted = normalize(registry);
        let Some(entry) = config
            .auths
            .iter()
            .find(|(k, _)| normalize(k) == wanted)
            .map(|(_, v)| v)
        else {
            return Ok(RegistryCredentials::Anonymous);
        };
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(RegistryCredentials::Basic {
                username: username.clone(),
                password: password.clone().into(),
            });
        }
        let auth = entry.auth.as_deref().ok_or_else(|| {
            RegistryError::InvalidCredentials(format!(
                "the Docker config entry for {registry} has neither auth nor username and password"
            ))
        })?;
        let decoded = STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                RegistryError::InvalidCredentials(format!(
                    "the auth of the Docker config entry for {registry} is not base64 of user:password"
                ))
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            RegistryError::InvalidCredentials(format!(
                "the auth of the Docker config entry for {registry} is not base64 of user:password"
            ))
        })?;
        Ok(RegistryCredentials::Basic {
            username: username.to_string(),
            password: password.to_string().into(),
        })
    }
}

/// A Docker config key as `host[:port]`: without scheme and path, Docker Hub's aliases
/// folded into one.
fn normalize(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(c: &RegistryCredentials) -> Option<(String, String)> {
        match c {
            RegistryCredentials::Basic { username, password } => {
                Some((username.clone(), password.expose_secret().to_string()))
            }
            RegistryCredentials::Anonymous => None,
        }
    }

    #[test]
    fn docker_config_entries_are_matched_by_registry_host() {
        let json = br#"{"auths": {
            "https://registry.corp:5000/v2/": {"auth": "YWxpY2U6czNjcjN0"},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}}"#;
        let c = RegistryCredentials::from_docker_config(json, "registry.corp:5000").expect("ok");
        assert_eq!(basic(&c), Some(("alice".into(), "s3cr3t".into())));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let hub = RegistryCredentials::from_docker_config(json, "docker.io").expect("ok");
        assert_eq!(basic(&hub), Some(("bob".into(), "pw".into())));
        let none = RegistryCredentials::from_docker_config(json, "ghcr.io").expect("ok");
        assert_eq!(basic(&none), None);
    }

    #[test]
    fn malformed_docker_configs_say_what_is_wrong() {
        let e = RegistryCredentials::from_docker_config(b"{", "r").expect_err("bad");
        assert_eq!(e.reason(), "InvalidPullSecret");
        let e =
            RegistryCredentials::from_docker_config(br#"{"auths": {"r": {"auth": "!!"}}}"#, "r")
                .expect_err("bad");
        assert!(e.to_string().contains("user:password"), "{e}");
    }
}
