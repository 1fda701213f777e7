//! AWS Secrets Manager and Parameter Store (`spec.provider.aws`) as an Airlock component.
//!
//! Requests are signed with SigV4 ([`sigv4`]) and sent through the host, which checks each
//! one against the Provider's grants. Credentials come from the store's `auth` ([`auth`]);
//! temporary ones are cached per store in the host. [`secretsmanager`] and
//! [`parameterstore`] map ESO's operations onto each service's API.

pub mod api;
pub mod auth;
pub mod config;
pub mod parameterstore;
pub mod secretsmanager;
pub mod sigv4;

use std::cell::OnceCell;

use airlock_provider_sdk::{
    Capabilities, Client, Error, Find, Provider, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value, json,
};
use base64::Engine as _;
use serde_json::Value as Json;

use crate::api::{AwsError, Target};
use crate::config::{Config, Service};
use crate::sigv4::Credentials;

/// The tag ESO puts on what it creates; secrets without it are never overwritten or
/// deleted.
pub const MANAGED_BY_KEY: &str = "managed-by";
/// The value of [`MANAGED_BY_KEY`].
pub const MANAGED_BY_VALUE: &str = "external-secrets";

/// The AWS provider.
#[derive(Debug)]
pub struct Aws;

impl Provider for Aws {
    type Client = AwsClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "aws".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "AWS Secrets Manager and Systems Manager Parameter Store".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadWrite
    }

    fn config_schema() -> String {
        config::SCHEMA.to_string()
    }
}

/// A store's client: its configuration and, once resolved, its credentials.
#[derive(Debug)]
pub struct AwsClient {
    config: Config,
    credentials: OnceCell<Credentials>,
}

impl AwsClient {
    /// A client for `config` (no backend contact).
    pub fn new(config: Config) -> Self {
        AwsClient {
            config,
            credentials: OnceCell::new(),
        }
    }

    fn credentials(&self) -> Result<&Credentials, Error> {
        if let Some(c) = self.credentials.get() {
            return Ok(c);
        }
        let resolved = auth::resolve(&self.config)?;
        Ok(self.credentials.get_or_init(|| resolved))
    }

    /// Calls a JSON 1.1 operation of the store's service with the store's credentials.
    pub fn call(&self, prefix: &str, operation: &str, body: Json) -> Result<Json, AwsError> {
        let credentials = self
            .credentials()
            .map_err(|e| api::transport(operation, e))?;
        let endpoint = self.config.service_endpoint();
        let target = Target {
            endpoint: &endpoint,
            region: &self.config.region,
            service: self.config.signing_name(),
        };
        let result = api::call_json(target, prefix, operation, &body, credentials);
        if let Err(e) = &result
            && e.is_bad_credentials()
            && !auth::role_chain(&self.config).is_empty()
        {
            auth::forget();
        }
        result
    }
}

/// Selects `property` inside a value, or returns it whole.
pub fn select(whole: Value, property: Option<&str>) -> Result<Value, Error> {
    match (whole, property) {
        (Some(value), Some(p)) if !p.is_empty() => json::select(&value, p),
        (whole, _) => Ok(whole),
    }
}

/// Tags as the JSON object `metadataPolicy: Fetch` returns.
pub fn metadata_json(tags: &[(String, String)]) -> Vec<u8> {
    let map: serde_json::Map<String, Json> = tags
        .iter()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect();
    Json::Object(map).to_string().into_bytes()
}

/// Standard base64.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64, `None` when malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

impl Client for AwsClient {
    fn open(config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Config::parse(config).map(AwsClient::new)
    }

    fn validate(&self) -> Result<Validation, Error> {
        let result = match self.config.service {
            Service::SecretsManager => secretsmanager::validate(self),
            Service::ParameterStore => parameterstore::validate(self),
        };
        match result {
            Ok(()) => Ok(Validation::Ready),
            // Signed correctly, but the policy does not allow listing: the credentials work.
            Err(e) if e.is("AccessDeniedException") => Ok(Validation::Unknown),
            Err(e) => Err(e.into_error()),
        }
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        match self.config.service {
            Service::SecretsManager => secretsmanager::get_secret(self, reference),
            Service::ParameterStore => parameterstore::get_secret(self, reference),
        }
    }

    fn get_secrets(&self, references: &[RemoteRef]) -> Vec<Result<Value, Error>> {
        // A credentials failure fails every ref with the same clear error.
        if let Err(e) = self.credentials() {
            return references.iter().map(|_| Err(e.clone())).collect();
        }
        match self.config.service {
            Service::SecretsManager => secretsmanager::get_secrets(self, references),
            Service::ParameterStore => parameterstore::get_secrets(self, references),
        }
    }

    fn get_all_secrets(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        match self.config.service {
            Service::SecretsManager => secretsmanager::get_all_secrets(self, criteria),
            Service::ParameterStore => parameterstore::get_all_secrets(self, criteria),
        }
    }

    fn push_secret(&self, request: &PushRequest) -> Result<(), Error> {
        match self.config.service {
            Service::SecretsManager => secretsmanager::push_secret(self, request),
            Service::ParameterStore => parameterstore::push_secret(self, request),
        }
    }

    fn delete_secret(&self, reference: &PushRef) -> Result<(), Error> {
        match self.config.service {
            Service::SecretsManager => secretsmanager::delete_secret(self, reference),
            Service::ParameterStore => parameterstore::delete_secret(self, reference),
        }
    }

    fn secret_exists(&self, reference: &PushRef) -> Result<bool, Error> {
        match self.config.service {
            Service::SecretsManager => secretsmanager::secret_exists(self, reference),
            Service::ParameterStore => parameterstore::secret_exists(self, reference),
        }
    }
}

airlock_provider_sdk::export_provider!(Aws);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_that_requires_service_and_region() {
        let schema: Json = serde_json::from_str(&Aws::config_schema()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["service", "region"]));
    }

    #[test]
    fn properties_select_inside_json_values_and_metadata_is_an_object() {
        let v = Some(br#"{"username":"admin","nested":{"a":1}}"#.to_vec());
        assert_eq!(
            select(v.clone(), Some("username")).unwrap(),
            Some(b"admin".to_vec())
        );
        assert_eq!(
            select(v.clone(), Some("nested.a")).unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(select(v.clone(), Some("missing")).unwrap(), None);
        assert_eq!(select(v.clone(), None).unwrap(), v);
        assert_eq!(
            metadata_json(&[("team".into(), "a".into())]),
            br#"{"team":"a"}"#.to_vec()
        );
    }
}
