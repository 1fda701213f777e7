//! Adapts the [`Provider`](crate::Provider) and [`Client`](crate::Client) traits to the
//! generated export traits.

use std::marker::PhantomData;

use crate::bindings::exports::airlock::provider::secrets as wit;
use crate::{
    Capabilities, Client, Error, Find, ProviderMetadata, PushRef, PushRequest, RemoteRef,
    SecretEntry, StoreInfo, Validation, Value,
};

/// What the SDK's panic hook writes before the message, at `error` level. The host puts
/// the line (redacted) into the call's error, so a crash says where and why.
pub const PANIC_PREFIX: &str = "panic: ";

/// Sends panics to the host's log instead of the discarded stderr. Each call runs in a
/// fresh instance, so this runs once per call.
fn report_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::log::log(crate::log::Level::Error, &format!("{PANIC_PREFIX}{info}"));
        }));
    });
}

/// The exported component for provider `P`; named by [`export_provider!`](crate::export_provider).
#[derive(Debug)]
pub struct Export<P>(PhantomData<P>);

/// The exported `client` resource wrapping a provider's [`Client`].
#[derive(Debug)]
pub struct ClientBox<C>(C);

impl<P: crate::Provider> wit::Guest for Export<P> {
    type Client = ClientBox<P::Client>;

    fn metadata() -> ProviderMetadata {
        report_panics();
        P::metadata()
    }

    fn capabilities() -> Capabilities {
        P::capabilities()
    }

    fn config_schema() -> String {
        P::config_schema()
    }
}

impl<C: Client> wit::GuestClient for ClientBox<C> {
    fn open(config: String, store: StoreInfo) -> Result<wit::Client, Error> {
        report_panics();
        C::open(&config, store).map(|c| wit::Client::new(ClientBox(c)))
    }

    fn validate(&self) -> Result<Validation, Error> {
        self.0.validate()
    }

    fn get_secret(&self, reference: RemoteRef) -> Result<Value, Error> {
        self.0.get_secret(&reference)
    }

    fn get_secrets(&self, references: Vec<RemoteRef>) -> Vec<Result<Value, Error>> {
        self.0.get_secrets(&references)
    }

    fn get_secret_map(&self, reference: RemoteRef) -> Result<Option<Vec<SecretEntry>>, Error> {
        self.0.get_secret_map(&reference)
    }

    fn get_all_secrets(&self, criteria: Find) -> Result<Vec<SecretEntry>, Error> {
        self.0.get_all_secrets(&criteria)
    }

    fn push_secret(&self, request: PushRequest) -> Result<(), Error> {
        self.0.push_secret(&request)
    }

    fn delete_secret(&self, reference: PushRef) -> Result<(), Error> {
        self.0.delete_secret(&reference)
    }

    fn secret_exists(&self, reference: PushRef) -> Result<bool, Error> {
        self.0.secret_exists(&reference)
    }
}
