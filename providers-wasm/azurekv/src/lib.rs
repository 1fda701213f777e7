//! Azure Key Vault (ESO's `spec.provider.azurekv`) as an Airlock component.
//!
//! Reads secrets (`secret/` or no prefix), certificates (`cert/`: the DER) and keys
//! (`key/`: the public JWK) by name and version, with `property` into JSON values and
//! `metadataPolicy: Fetch` returning tags; finds secrets by name regexp and tags over
//! `nextLink` pages; pushes and deletes secrets tagged `managed-by: external-secrets`,
//! refusing to touch others. Tokens come from Entra ID (client secret, or a federated
//! ServiceAccount token for workload identity) or from IMDS (managed identity) and are
//! kept in the host's per-store cache until shortly before they expire.

pub mod auth;
pub mod certificate;
pub mod config;
pub mod import;
pub mod vault;

use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value,
};

use crate::config::Config;
use crate::vault::Vault;

/// The Azure Key Vault provider.
#[derive(Debug)]
pub struct AzureKeyVault;

/// The JSON Schema of `spec.provider.azurekv`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for AzureKeyVault {
    type Client = AzureClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "azurekv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Azure Key Vault secrets, certificates and keys (REST API 7.4)".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadWrite
    }

    fn config_schema() -> String {
        SCHEMA.to_string()
    }
}

/// A store's client.
#[derive(Debug)]
pub struct AzureClient {
    config: Config,
}

impl Client for AzureClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(AzureClient {
            config: Config::parse(config)?,
        })
    }

    fn validate(&self) -> Result<Validation, Error> {
        Vault::new(&self.config)
            .validate()
            .map(|()| Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        Vault::new(&self.config).get(reference)
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        Vault::new(&self.config).find(criteria)
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        Vault::new(&self.config).push(request)
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        Vault::new(&self.config).delete(reference)
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        Vault::new(&self.config).exists(reference)
    }
}

airlock_provider_sdk::export_provider!(AzureKeyVault);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_requires_the_vault_url() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["vaultUrl"]));
    }
}
