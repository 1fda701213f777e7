//! HashiCorp Vault and OpenBao KV secrets (ESO's `spec.provider.vault`) as an Airlock
//! component.
//!
//! Reads and writes KV v1 and v2 mounts with ESO's semantics: `property` selection,
//! `version` on v2, `dataFrom.extract`, `dataFrom.find` (name regexp over a recursive LIST,
//! path, tags from v2 `custom_metadata`), `metadataPolicy: Fetch`, push with check-and-set
//! and the `managed-by: external-secrets` mark, delete. Authenticates with a static token,
//! AppRole, Kubernetes, JWT, userpass or a TLS client certificate; login tokens are kept in
//! the host's per-store cache until shortly before they expire (see [`auth`]). The host
//! makes the TLS connections and applies the store's `caBundle`, `caProvider`, `tls` and
//! `auth.cert` certificates.

pub mod api;
pub mod auth;
pub mod config;
pub mod kv;

use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value,
};

use crate::api::Api;
use crate::config::Config;
use crate::kv::Kv;

/// The Vault provider.
#[derive(Debug)]
pub struct Vault;

/// The JSON Schema of `spec.provider.vault`.
pub const SCHEMA: &str = include_str!("schema.json");

impl Provider for Vault {
    type Client = VaultClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "vault".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "HashiCorp Vault and OpenBao KV v1/v2 secrets engines".into(),
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
pub struct VaultClient {
    config: Config,
    api: Api,
}

impl VaultClient {
    fn kv(&self) -> Kv<'_> {
        Kv::new(&self.api, &self.config)
    }
}

impl Client for VaultClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        let config = Config::parse(config)?;
        let api = Api::new(&config);
        Ok(VaultClient { config, api })
    }

    fn validate(&self) -> Result<Validation, Error> {
        self.kv().validate().map(|()| Validation::Ready)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        self.kv().get(reference)
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        self.kv().find(criteria)
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        self.kv().push(request)
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        self.kv().delete(reference)
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        self.kv().exists(reference)
    }
}

airlock_provider_sdk::export_provider!(Vault);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_requires_server_and_auth() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["server", "auth"]));
    }
}
