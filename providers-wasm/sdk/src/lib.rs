//! The Rust SDK for Airlock providers.
//!
//! A provider is a WebAssembly component that implements the `airlock:provider/provider`
//! world (see `wit/` in the repository). This crate hides the generated bindings behind
//! two traits: [`Provider`] says what the provider is, [`Client`] talks to the backend for
//! one store. [`export_provider!`] turns an implementation into the component's exports.
//!
//! ```text
//! struct Echo;
//! struct EchoClient;
//! impl airlock_provider_sdk::Provider for Echo { /* metadata, capabilities, schema */ }
//! impl airlock_provider_sdk::Client for EchoClient { /* open, get_secret, … */ }
//! airlock_provider_sdk::export_provider!(Echo);
//! ```
//!
//! Inside a provider, [`http`] sends requests through the host (which enforces the
//! Provider's outbound-host grant), [`credentials`] asks the host for Secret keys and
//! tokens named in the store configuration, [`cache`] keeps small values between calls and
//! [`log`] writes to the operator's log. [`find::NameMatcher`] and
//! [`paging::for_each_page`] are the pieces every searching provider needs.

pub mod bindings;
mod export;
pub mod find;
pub mod http;
pub mod json;
pub mod paging;
pub mod time;

pub use bindings::airlock::provider::types::{
    Error, Find, MetadataPolicy, ProviderMetadata, PushRef, PushRequest, RateLimit, RemoteRef,
    SecretEntry, StoreCapabilities as Capabilities, StoreInfo, StoreKind, Validation,
};
pub use bindings::airlock::provider::{cache, credentials, log};
pub use export::{ClientBox, Export, PANIC_PREFIX};

/// The error for a credential the host did not hand over, naming the store-config `field`
/// that asked for it: a denial is access denied, a missing Secret or key the store's
/// configuration to fix, an unavailable API server retryable.
pub fn credential_error(field: &str, e: credentials::CredentialError) -> Error {
    use credentials::CredentialError;
    match e {
        CredentialError::Denied(m) => Error::access_denied(format!("{field}: {m}")),
        CredentialError::NotFound(m) => Error::invalid_config(format!("{field}: {m}")),
        CredentialError::Unavailable(m) => Error::unavailable(format!("{field}: {m}")),
    }
}

/// A value read from a backend, or `None` when it does not exist.
pub type Value = Option<Vec<u8>>;

/// What a provider is: its name, what it can do and the shape of its configuration.
pub trait Provider: 'static {
    /// The client type opened for each store.
    type Client: Client;

    /// Name, version and a one-sentence description.
    fn metadata() -> ProviderMetadata;

    /// What the provider supports.
    fn capabilities() -> Capabilities;

    /// The JSON Schema (draft 2020-12) of `spec.provider.<key>`.
    fn config_schema() -> String;
}

/// A connection to the backend for one store. Every method runs in a fresh instance, so a
/// client holds nothing between calls; keep tokens in [`cache`].
///
/// Only [`Client::open`] and [`Client::get_secret`] are required. The defaults answer
/// `unsupported` for writes and searches, fetch batches one ref at a time and explode a
/// JSON object for [`Client::get_secret_map`].
pub trait Client: Sized + 'static {
    /// Parses the store's provider configuration (JSON text). Should not contact the
    /// backend.
    fn open(config: &str, store: StoreInfo) -> Result<Self, Error>;

    /// Checks the configuration against the backend.
    fn validate(&self) -> Result<Validation, Error> {
        Ok(Validation::Unknown)
    }

    /// Reads one secret; `Ok(None)` when it, its version or its property is absent.
    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error>;

    /// Reads several secrets, one result per ref in order.
    fn get_secrets(&self, references: &[RemoteRef]) -> Vec<Result<Value, Error>> {
        references.iter().map(|r| self.get_secret(r)).collect()
    }

    /// Reads one secret holding a JSON object and returns its top-level keys.
    fn get_secret_map(&self, reference: &RemoteRef) -> Result<Option<Vec<SecretEntry>>, Error> {
        let whole = RemoteRef {
            property: None,
            ..reference.clone()
        };
        let Some(value) = self.get_secret(&whole)? else {
            return Ok(None);
        };
        let value = match &reference.property {
            Some(property) => match json::select(&value, property)? {
                Some(inner) => inner,
                None => return Ok(None),
            },
            None => value,
        };
        json::object_entries(&value).map(Some)
    }

    /// Finds secrets by path, name or tags.
    fn get_all_secrets(&self, _criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        Err(Error::unsupported(
            "this provider cannot search (dataFrom.find)",
        ))
    }

    /// Writes a value.
    fn push_secret(&self, _request: &PushRequest) -> Result<(), Error> {
        Err(Error::unsupported("this provider cannot push secrets"))
    }

    /// Deletes a pushed value.
    fn delete_secret(&self, _reference: &PushRef) -> Result<(), Error> {
        Err(Error::unsupported("this provider cannot delete secrets"))
    }

    /// Whether a remote secret exists.
    fn secret_exists(&self, _reference: &PushRef) -> Result<bool, Error> {
        Err(Error::unsupported("this provider cannot check for secrets"))
    }
}

impl Error {
    /// The store configuration is wrong.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Error::InvalidConfig(message.into())
    }
    /// The request (a ref, a search criterion) is malformed.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Error::InvalidRequest(message.into())
    }
    /// The backend refused the credentials or the operation.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Error::AccessDenied(message.into())
    }
    /// The backend could not be reached or failed transiently.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }
    /// The operation is not implemented.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::Unsupported(message.into())
    }
    /// Anything else.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }
    /// The backend asked to slow down.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Error::RateLimited(RateLimit {
            retry_after_ms,
            message: message.into(),
        })
    }
}

/// Exports a [`Provider`] implementation as the component's `airlock:provider/provider`
/// interface. Use once, at the root of the provider crate.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        // Component exports exist only in the wasm build; a native build (unit tests of a
        // provider's config and auth code) links without them.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __AirlockExport = $crate::Export<$provider>;
            $crate::bindings::__export_provider_world!(__AirlockExport with_types_in $crate::bindings);
        };
    };
}
