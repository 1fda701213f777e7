//! The seam between the controllers and the providers. Controllers call [`Backend`];
//! the Wasm [`Runtime`](crate::runtime::Runtime) implements it, and tests can implement it
//! in memory. Values cross this seam as [`SecretValue`], which never prints its bytes.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice};

use crate::runtime::{RuntimeError, TlsSettings};

/// Secret bytes. `Debug` shows only the length; the bytes are zeroed on drop.
#[derive(Clone)]
pub struct SecretValue(SecretSlice<u8>);

impl SecretValue {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(SecretSlice::from(bytes))
    }

    /// The bytes, for writing them into a Secret.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue([redacted; {} bytes])", self.len())
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// Keys and values returned by extract and find.
pub type SecretMap = Vec<(String, SecretValue)>;

/// ESO's `remoteRef.metadataPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetadataPolicy {
    /// The value.
    #[default]
    None,
    /// The metadata (tags, labels) as a JSON object.
    Fetch,
}

/// One remote secret to read (ESO's `remoteRef`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteRef {
    /// Name or path at the provider.
    pub key: String,
    /// A JSON path inside the value.
    pub property: Option<String>,
    /// A provider-specific version.
    pub version: Option<String>,
    /// Value or metadata.
    pub metadata_policy: MetadataPolicy,
}

impl RemoteRef {
    /// A ref to the current value of `key`.
    pub fn key(key: impl Into<String>) -> Self {
        RemoteRef {
            key: key.into(),
            ..Default::default()
        }
    }

    /// The same ref with a property.
    pub fn property(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }
}

/// ESO's `dataFrom[].find`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindCriteria {
    /// Path or name prefix.
    pub path: Option<String>,
    /// Regular expression on names.
    pub name_regexp: Option<String>,
    /// Tags that must all match.
    pub tags: BTreeMap<String, String>,
}

/// Where a pushed value goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushRef {
    /// Remote name or path.
    pub remote_key: String,
    /// A property inside a JSON object.
    pub property: Option<String>,
}

/// One value to push.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// Where.
    pub remote: PushRef,
    /// What.
    pub value: SecretValue,
    /// Provider-specific metadata (ESO's `data[].metadata`).
    pub metadata: Option<serde_json::Value>,
}

/// What a provider supports (printed on the store's status as ESO does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capabilities {
    /// Reads only.
    ReadOnly,
    /// Writes only.
    WriteOnly,
    /// Both.
    ReadWrite,
}

impl Capabilities {
    /// ESO's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Capabilities::ReadOnly => "ReadOnly",
            Capabilities::WriteOnly => "WriteOnly",
            Capabilities::ReadWrite => "ReadWrite",
        }
    }
}

/// Result of a successful `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The backend accepted the configuration.
    Ready,
    /// The provider could not tell.
    Unknown,
}

/// Namespaced or cluster store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// `SecretStore`.
    SecretStore,
    /// `ClusterSecretStore`.
    ClusterSecretStore,
}

/// Which store a call is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreInfo {
    /// Kind of store.
    pub kind: StoreKind,
    /// Store name.
    pub name: String,
    /// SecretStore: its namespace. ClusterSecretStore: the namespace being reconciled.
    pub namespace: String,
}

/// Everything a backend needs to serve one store.
#[derive(Debug, Clone)]
pub struct StoreContext {
    /// The Provider serving it: the key under `spec.provider`.
    pub provider: String,
    /// The object under `spec.provider.<key>`.
    pub config: serde_json::Value,
    /// The store's identity.
    pub info: StoreInfo,
    /// TLS settings for this store's connections.
    pub tls: TlsSettings,
}

/// An error the provider itself reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The store's provider configuration is wrong.
    #[error("invalid provider config: {0}")]
    InvalidConfig(String),
    /// The request (a ref, a search criterion) is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend refused the credentials or operation.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The backend asked to slow down.
    #[error("rate limited: {message}")]
    RateLimited {
        /// How long to wait, when known.
        retry_after: Option<Duration>,
        /// The backend's message.
        message: String,
    },
    /// The backend could not be reached.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Not implemented by the provider.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl ProviderError {
    /// A stable, PascalCase reason for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ProviderError::InvalidConfig(_) => "InvalidProviderConfig",
            ProviderError::InvalidRequest(_) => "InvalidRequest",
            ProviderError::AccessDenied(_) => "AccessDenied",
            ProviderError::RateLimited { .. } => "RateLimited",
            ProviderError::Unavailable(_) => "ProviderUnavailable",
            ProviderError::Unsupported(_) => "Unsupported",
            ProviderError::Other(_) => "ProviderError",
        }
    }

    /// Whether retrying soon may help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Unavailable(_)
                | ProviderError::Other(_)
        )
    }
}

/// Why a backend call failed: the provider said so, or the sandbox stopped it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The provider returned an error.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The runtime could not run the call (load, limits, traps).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl BackendError {
    /// A stable, PascalCase reason for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            BackendError::Provider(e) => e.reason(),
            BackendError::Runtime(e) => e.reason(),
        }
    }
}

/// One result of a batched get.
pub type GetResult = Result<Option<SecretValue>, ProviderError>;

/// What the controllers need from a secret backend.
pub trait Backend: Send + Sync + 'static {
    /// The capabilities of the provider serving `store`.
    fn capabilities(&self, store: &StoreContext) -> Result<Capabilities, BackendError>;

    /// Checks the store's configuration against the backend.
    fn validate(
        &self,
        store: &StoreContext,
    ) -> impl Future<Output = Result<Validation, BackendError>> + Send;

    /// Reads several refs in one call; one result per ref, in order.
    fn get_secrets(
        &self,
        store: &StoreContext,
        refs: &[RemoteRef],
    ) -> impl Future<Output = Result<Vec<GetResult>, BackendError>> + Send;

    /// Reads a JSON object secret as keys (`dataFrom.extract`).
    fn get_secret_map(
        &self,
        store: &StoreContext,
        reference: &RemoteRef,
    ) -> impl Future<Output = Result<Option<SecretMap>, BackendError>> + Send;

    /// Finds secrets (`dataFrom.find`).
    fn get_all_secrets(
        &self,
        store: &StoreContext,
        criteria: &FindCriteria,
    ) -> impl Future<Output = Result<SecretMap, BackendError>> + Send;

    /// Writes a value (PushSecret).
    fn push_secret(
        &self,
        store: &StoreContext,
        request: &PushRequest,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Deletes a pushed value.
    fn delete_secret(
        &self,
        store: &StoreContext,
        reference: &PushRef,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Whether a remote value exists.
    fn secret_exists(
        &self,
        store: &StoreContext,
        reference: &PushRef,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}
