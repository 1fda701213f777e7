//! A provider that opens raw TCP sockets around the host's HTTP policy. Airlock links no
//! `wasi:sockets`, so this component must fail to load.

use std::io::{Read, Write};

use airlock_provider_sdk::{
    Capabilities, Client, Error, Provider, ProviderMetadata, RemoteRef, StoreInfo, Value,
};

/// The provider.
#[derive(Debug)]
pub struct HostileNet;

/// Its client.
#[derive(Debug)]
pub struct HostileNetClient;

impl Provider for HostileNet {
    type Client = HostileNetClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "hostile-net".into(),
            version: "0.0.0".into(),
            description: "opens sockets".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        r#"{"type":"object"}"#.into()
    }
}

impl Client for HostileNetClient {
    fn open(_config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(HostileNetClient)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let mut stream = std::net::TcpStream::connect(reference.key.as_str())
            .map_err(|e| Error::other(e.to_string()))?;
        stream
            .write_all(b"GET / HTTP/1.0\r\n\r\n")
            .map_err(|e| Error::other(e.to_string()))?;
        let mut out = Vec::new();
        stream
            .read_to_end(&mut out)
            .map_err(|e| Error::other(e.to_string()))?;
        Ok(Some(out))
    }
}

airlock_provider_sdk::export_provider!(HostileNet);
