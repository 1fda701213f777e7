//! GitLab project and group CI/CD variables (ESO's `spec.provider.gitlab`) as an Airlock
//! component.
//!
//! Read-only, like ESO's provider: one variable by key (with `property` into a JSON value),
//! `dataFrom.extract`, and `dataFrom.find` by name regexp and `find.tags.environment_scope`
//! over paginated listings. Lookups go to the project first, then to `groupIDs` (or, with
//! `inheritFromGroups`, the project's ancestor groups) from the last to the first, for the
//! store's `environment` with `*` as fallback. Authenticates with a personal, project or
//! group access token in the `PRIVATE-TOKEN` header. The host makes the TLS connections
//! and applies the store's `caBundle` / `caProvider`.

pub mod api;
pub mod config;
pub mod variables;

use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, RemoteRef, SecretEntry,
    StoreInfo, Validation, Value,
};

use crate::api::Api;
use crate::config::Config;
use crate::variables::Variables;

/// The GitLab provider.
#[derive(Debug)]
pub struct GitLab;

/// The JSON Schema of `spec.provider.gitlab`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for GitLab {
    type Client = GitLabClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "gitlab".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "GitLab project and group CI/CD variables (REST API v4), read-only".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        SCHEMA.to_string()
    }
}

/// A store's client.
#[derive(Debug)]
pub struct GitLabClient {
    config: Config,
    api: Api,
}

impl GitLabClient {
    fn variables(&self) -> Variables<'_> {
        Variables::new(&self.api, &self.config)
    }
}

impl Client for GitLabClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        let config = Config::parse(config)?;
        let api = Api::new(&config);
        Ok(GitLabClient { config, api })
    }

    fn validate(&self) -> Result<Validation, Error> {
        self.variables().validate().map(|()| Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        self.variables().get(reference)
    }

    fn get_secrets(&self, references: &[RemoteRef]) -> Vec<Result<Value, Error>> {
        // One `Variables` for the batch, so the project's groups are listed once.
        let variables = self.variables();
        references.iter().map(|r| variables.get(r)).collect()
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        self.variables().find(criteria)
    }
}

airlock_provider_sdk::export_provider!(GitLab);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_requires_auth_under_the_capitalised_secret_ref() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["auth"]));
        assert_eq!(
            schema["properties"]["auth"]["required"],
            serde_json::json!(["SecretRef"])
        );
    }
}
