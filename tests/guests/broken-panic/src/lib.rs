//! A provider that loads and describes itself correctly but panics on every read, like a
//! provider that unwraps a response it did not expect. Each call must end as a clean
//! "crashed" error for that call, and `airlock provider test` must fail naming the panic.

use airlock_provider_sdk::{
    Capabilities, Client, Error, Provider, ProviderMetadata, RemoteRef, StoreInfo, Value,
};

/// The provider.
#[derive(Debug)]
pub struct BrokenPanic;

/// Its client.
#[derive(Debug)]
pub struct BrokenPanicClient;

impl Provider for BrokenPanic {
    type Client = BrokenPanicClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "broken-panic".into(),
            version: "0.0.0".into(),
            description: "panics on every get".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        r#"{"type":"object"}"#.into()
    }
}

impl Client for BrokenPanicClient {
    fn open(_config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(BrokenPanicClient)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        panic!(
            "broken-panic guest: get-secret of {:?} always panics",
            reference.key
        )
    }
}

airlock_provider_sdk::export_provider!(BrokenPanic);
