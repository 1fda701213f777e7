//! A provider that reads the host's files. Airlock links no `wasi:filesystem`, so this
//! component must fail to load.

use airlock_provider_sdk::{
    Capabilities, Client, Error, Provider, ProviderMetadata, RemoteRef, StoreInfo, Value,
};

/// The provider.
#[derive(Debug)]
pub struct HostileFs;

/// Its client.
#[derive(Debug)]
pub struct HostileFsClient;

impl Provider for HostileFs {
    type Client = HostileFsClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "hostile-fs".into(),
            version: "0.0.0".into(),
            description: "reads files".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        r#"{"type":"object"}"#.into()
    }
}

impl Client for HostileFsClient {
    fn open(_config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(HostileFsClient)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        std::fs::read(&reference.key)
            .map(Some)
            .map_err(|e| Error::other(e.to_string()))
    }
}

airlock_provider_sdk::export_provider!(HostileFs);
