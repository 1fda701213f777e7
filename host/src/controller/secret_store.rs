//! The SecretStore and ClusterSecretStore reconciler: asks the provider to validate the store
//! and reports `Ready` (`Valid`, `ValidationUnknown` or `InvalidProviderConfig`) and the
//! provider's capabilities, then re-validates at the store's `refreshInterval`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::external_secret::{Failure, Step};
use super::{Context, Error, ModuleHost, find_ready, log_result, ready_condition};
use crate::backend::{Capabilities, StoreContext, StoreInfo, StoreKind, Validation};
use crate::crd::{
    ClusterSecretStore, ConditionStatus, GoDuration, Provider, SecretStore, SecretStoreSpec,
};
use crate::runtime::TlsSettings;

// ESO's fixed `Ready` messages for stores (`pkg/controllers/secretstore/common.go`): users grep
// and alert on them, so the detail goes to the Warning event instead.
const MSG_VALIDATED: &str = "store validated";
const MSG_VALIDATION_UNKNOWN: &str = "could not determine validation status";
const MSG_CREATE_CLIENT: &str = "unable to create client";
const MSG_VALIDATE: &str = "unable to validate store";

/// Builds what the backend needs to serve a store: the Provider's name (the key under
/// `spec.provider`, lowercased), its configuration and the store's identity. `namespace` is
/// the SecretStore's namespace, or for a ClusterSecretStore the namespace it is used from.
pub fn store_context(
    spec: &SecretStoreSpec,
    kind: StoreKind,
    name: &str,
    namespace: &str,
) -> Result<StoreContext, Error> {
    let (key, config) = spec.provider_config().ok_or_else(|| {
        Error::InvalidStore(format!(
            "{} {name:?}: spec.provider must have exactly one key naming the provider",
            kind_name(kind)
        ))
    })?;
    Ok(StoreContext {
        provider: key.to_lowercase(),
        config: serde_json::Value::Object(config.clone()),
        info: StoreInfo {
            kind,
            name: name.into(),
            namespace: namespace.into(),
        },
        tls: TlsSettings::default(),
    })
}

/// Where a store's provider config says its CA certificates are (ESO's `caBundle` and
/// `caProvider`, at the top of the provider config or under `server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// Base64 PEM written in the config.
    Inline(String),
    /// A key of a Secret or ConfigMap.
    Object {
        /// `true` for a ConfigMap.
        config_map: bool,
        /// Object name.
        name: String,
        /// Key (default `ca.crt`).
        key: String,
        /// Namespace named in the config (honoured for ClusterSecretStores only).
        namespace: Option<String>,
    },
}

/// Finds the CA settings of a provider config.
pub fn ca_source(config: &serde_json::Value) -> Option<CaSource> {
    let scopes = [Some(config), config.get("server")];
    for scope in scopes.into_iter().flatten() {
        if let Some(b) = scope
            .get("caBundle")
            .and_then(|v| v.as_str())
            .filter(|b| !b.is_empty())
        {
            return Some(CaSource::Inline(b.to_string()));
        }
        if let Some(p) = scope.get("caProvider") {
            let text = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
            return Some(CaSource::Object {
                config_map: text("type").as_deref() == Some("ConfigMap"),
                name: text("name").unwrap_or_default(),
                key: text("key").unwrap_or_else(|| "ca.crt".into()),
                namespace: text("namespace"),
            });
        }
    }
    None
}

/// A key of a Secret named in a provider config (ESO's `SecretKeySelector`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Where in the config it was written, for messages (`tls.certSecretRef`).
    pub field: &'static str,
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
    /// Namespace named in the config.
    pub namespace: Option<String>,
}

/// Where a provider config says its TLS client certificate and key are: ESO's
/// `tls.certSecretRef` / `tls.keySecretRef`, or Vault's `auth.cert.clientCert` /
/// `auth.cert.secretRef` (certificate login), which wins because the login needs it.
pub fn client_cert_source(config: &serde_json::Value) -> Option<(SecretKeyRef, SecretKeyRef)> {
    let selector = |v: Option<&serde_json::Value>, field: &'static str| {
        let v = v?;
        Some(SecretKeyRef {
            field,
            name: v.get("name")?.as_str()?.to_string(),
            key: v
                .get("key")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string(),
            namespace: v
                .get("namespace")
                .and_then(|n| n.as_str())
                .map(str::to_string),
        })
    };
    let cert_auth = config.pointer("/auth/cert");
    let from_auth = cert_auth.and_then(|c| {
        Some((
            selector(c.get("clientCert"), "auth.cert.clientCert")?,
            selector(c.get("secretRef"), "auth.cert.secretRef")?,
        ))
    });
    from_auth.or_else(|| {
        let tls = config.get("tls")?;
        Some((
            selector(tls.get("certSecretRef"), "tls.certSecretRef")?,
            selector(tls.get("keySecretRef"), "tls.keySecretRef")?,
        ))
    })
}

/// The namespace a store reads a selector from: its own for a SecretStore, the named one
/// (or the namespace in use) for a ClusterSecretStore.
fn selector_namespace(
    store: &StoreContext,
    field: &str,
    named: Option<&str>,
) -> Result<String, Error> {
    match (store.info.kind, named) {
        (StoreKind::SecretStore, Some(ns)) if ns != store.info.namespace => {
            Err(Error::InvalidStore(format!(
                "{field}: a SecretStore may only read its own namespace {:?}, not {ns:?}; \
                 remove {field}.namespace, or use a ClusterSecretStore",
                store.info.namespace
            )))
        }
        (StoreKind::ClusterSecretStore, Some(ns)) => Ok(ns.to_string()),
        _ => Ok(store.info.namespace.clone()),
    }
}

/// Reads one Secret key for a store's TLS settings, with a condition-ready error.
async fn tls_secret_key<B>(
    ctx: &Context<B>,
    store: &StoreContext,
    selector: &SecretKeyRef,
) -> Result<Vec<u8>, Error> {
    use k8s_openapi::api::core::v1::Secret;
    let ns = selector_namespace(store, selector.field, selector.namespace.as_deref())?;
    let SecretKeyRef {
        field, name, key, ..
    } = selector;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = api.get_opt(name).await?.ok_or_else(|| {
        Error::InvalidStore(format!("{field}: Secret {ns}/{name} does not exist"))
    })?;
    secret
        .data
        .and_then(|mut d| d.remove(key.as_str()))
        .map(|v| v.0)
        .ok_or_else(|| {
            Error::InvalidStore(format!("{field}: Secret {ns}/{name} has no key {key:?}"))
        })
}

/// Checks that `pem` holds at least one certificate (or, for a key, a private key), so a
/// bad Secret is reported where it is configured rather than as a TLS failure later.
fn check_pem(field: &str, pem: &[u8], private_key: bool) -> Result<(), Error> {
    let ok = if private_key {
        matches!(rustls_pemfile::private_key(&mut &pem[..]), Ok(Some(_)))
    } else {
        let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
        certs.is_ok_and(|c| !c.is_empty())
    };
    if ok {
        Ok(())
    } else {
        let what = if private_key {
            "a PEM private key"
        } else {
            "a PEM certificate"
        };
        Err(Error::InvalidStore(format!("{field} does not hold {what}")))
    }
}

/// Fills in the store's TLS settings: the CA bundle from `caBundle` or `caProvider`, and
/// the client certificate from `tls` or Vault's `auth.cert`.
pub async fn resolve_tls<B>(ctx: &Context<B>, store: &mut StoreContext) -> Result<(), Error> {
    if let Some(source) = ca_source(&store.config) {
        let pem = ca_bundle(ctx, store, source).await?;
        check_pem("the CA bundle (caBundle / caProvider)", &pem, false)?;
        store.tls.ca_bundle_pem = Some(pem);
    }
    if let Some((cert_ref, key_ref)) = client_cert_source(&store.config) {
        let cert = tls_secret_key(ctx, store, &cert_ref).await?;
        check_pem(cert_ref.field, &cert, false)?;
        let key = tls_secret_key(ctx, store, &key_ref).await?;
        check_pem(key_ref.field, &key, true)?;
        store.tls.client_cert_pem = Some(cert);
        store.tls.client_key_pem = Some(secrecy::SecretSlice::from(key));
    }
    Ok(())
}

async fn ca_bundle<B>(
    ctx: &Context<B>,
    store: &StoreContext,
    source: CaSource,
) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    Ok(match source {
        CaSource::Inline(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| Error::InvalidStore(format!("caBundle is not base64: {e}")))?,
        CaSource::Object {
            config_map,
            name,
            key,
            namespace,
        } => {
            let ns = match store.info.kind {
                // A SecretStore naming another namespace is refused before anything is read,
                // as ESO does since GHSA-wv26-88m5-6h59: reading its own namespace instead
                // would quietly use a different CA than the one the user wrote.
                StoreKind::SecretStore => {
                    selector_namespace(store, "caProvider", namespace.as_deref())?
                }
                StoreKind::ClusterSecretStore => namespace.ok_or_else(|| {
                    Error::InvalidStore(
                        "caProvider.namespace is required in a ClusterSecretStore".into(),
                    )
                })?,
            };
            let kind = if config_map { "ConfigMap" } else { "Secret" };
            let absent =
                || Error::InvalidStore(format!("caProvider: {kind} {ns}/{name} does not exist"));
            let missing = || {
                Error::InvalidStore(format!("caProvider: {kind} {ns}/{name} has no key {key:?}"))
            };
            if config_map {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                let map = api.get_opt(&name).await?.ok_or_else(absent)?;
                map.data
                    .and_then(|mut d| d.remove(&key))
                    .map(String::into_bytes)
                    .ok_or_else(missing)?
            } else {
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
                let secret = api.get_opt(&name).await?.ok_or_else(absent)?;
                secret
                    .data
                    .and_then(|mut d| d.remove(&key))
                    .map(|v| v.0)
                    .ok_or_else(missing)?
            }
        }
    })
}

/// `SecretStore` or `ClusterSecretStore`.
pub fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::SecretStore => "SecretStore",
        StoreKind::ClusterSecretStore => "ClusterSecretStore",
    }
}

/// The two store kinds, for one generic reconciler.
pub trait StoreResource:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
    /// Which kind.
    const KIND: StoreKind;
    /// The spec.
    fn spec(&self) -> &SecretStoreSpec;
    /// The current conditions.
    fn conditions(&self) -> Option<&[crate::crd::Condition]>;
    /// The API for this object.
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
    /// The API the controller watches.
    fn watched<B>(ctx: &Context<B>) -> Api<Self>;
}

impl StoreResource for SecretStore {
    const KIND: StoreKind = StoreKind::SecretStore;
    fn spec(&self) -> &SecretStoreSpec {
        &self.spec
    }
    fn conditions(&self) -> Option<&[crate::crd::Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
    fn watched<B>(ctx: &Context<B>) -> Api<Self> {
        super::scoped_api(ctx)
    }
}

impl StoreResource for ClusterSecretStore {
    const KIND: StoreKind = StoreKind::ClusterSecretStore;
    fn spec(&self) -> &SecretStoreSpec {
        &self.spec
    }
    fn conditions(&self) -> Option<&[crate::crd::Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
    fn watched<B>(ctx: &Context<B>) -> Api<Self> {
        Api::all(ctx.client.clone())
    }
}

/// Runs the SecretStore controller.
pub async fn run_namespaced<B: ModuleHost>(ctx: Arc<Context<B>>) {
    run::<SecretStore, B>(ctx).await
}

/// Runs the ClusterSecretStore controller.
pub async fn run_cluster<B: ModuleHost>(ctx: Arc<Context<B>>) {
    run::<ClusterSecretStore, B>(ctx).await
}

async fn run<S: StoreResource, B: ModuleHost>(ctx: Arc<Context<B>>) {
    let api = S::watched(&ctx);
    let controller = Controller::new(api, watcher::Config::default());
    let stores = controller.store();
    // A store using a Provider is re-validated as soon as that Provider (re)loads.
    let providers: Api<Provider> = Api::all(ctx.client.clone());
    controller
        .watches(providers, watcher::Config::default(), move |p: Provider| {
            let name = p.name_any();
            stores
                .state()
                .into_iter()
                .filter(|s| {
                    s.spec()
                        .provider_config()
                        .is_some_and(|(key, _)| key.to_lowercase() == name)
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(
            crate::metrics::instrument(
                crate::metrics::Kind::of_store(S::KIND),
                ctx.config.concurrency,
                reconcile::<S, B>,
            ),
            error_policy::<S, B>,
            ctx,
        )
        .for_each(|r| async move { log_result(kind_name(S::KIND), r) })
        .await;
}

fn key<S: StoreResource>(s: &S) -> String {
    format!(
        "{}/{}/{}",
        kind_name(S::KIND),
        s.namespace().unwrap_or_default(),
        s.name_any()
    )
}

fn error_policy<S: StoreResource, B: ModuleHost>(
    s: Arc<S>,
    e: &Error,
    ctx: Arc<Context<B>>,
) -> Action {
    ctx.backoff_after(key(s.as_ref()), e)
}

/// The store's re-validation interval: `spec.refreshInterval` (seconds or a duration), else
/// the operator default.
fn requeue_interval(spec: &SecretStoreSpec, default: Duration) -> Duration {
    let parsed = match &spec.refresh_interval {
        Some(IntOrString::Int(secs)) => u64::try_from(*secs).ok().map(Duration::from_secs),
        Some(IntOrString::String(text)) => GoDuration::new(text.clone()).parse().ok(),
        None => None,
    };
    parsed.filter(|d| !d.is_zero()).unwrap_or(default)
}

fn capabilities_name(c: Capabilities) -> &'static str {
    c.as_str()
}

async fn reconcile<S: StoreResource, B: ModuleHost>(
    s: Arc<S>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    if !ctx.config.serves(s.spec().controller.as_deref()) {
        return Ok(Action::await_change());
    }
    let name = s.name_any();
    let namespace = s.namespace().unwrap_or_default();
    let previous = s.conditions();
    // ESO's two failing steps: building the client (here: the store's config, TLS material
    // and the provider's module) and validating the store.
    let mut provider = None;
    let outcome = async {
        let mut store =
            store_context(s.spec(), S::KIND, &name, &namespace).step(MSG_CREATE_CLIENT)?;
        provider = Some(store.provider.clone());
        resolve_tls(&ctx, &mut store)
            .await
            .step(MSG_CREATE_CLIENT)?;
        let capabilities = ctx.backend.capabilities(&store).step(MSG_CREATE_CLIENT)?;
        let validation = ctx.backend.validate(&store).await.map_err(|e| {
            // A config the provider's schema or its `open` refuses is ESO's `NewClient`
            // failing; anything else is the validation itself.
            let message = match e.reason() {
                "InvalidProviderConfig" => MSG_CREATE_CLIENT,
                _ => MSG_VALIDATE,
            };
            Failure {
                message,
                error: e.into(),
            }
        })?;
        Ok::<_, Failure>((capabilities, validation))
    }
    .await;
    let (condition, capabilities) = match &outcome {
        Ok((caps, Validation::Ready)) => (
            ready_condition(previous, ConditionStatus::True, "Valid", MSG_VALIDATED),
            Some(*caps),
        ),
        Ok((caps, Validation::Unknown)) => (
            ready_condition(
                previous,
                ConditionStatus::True,
                "ValidationUnknown",
                MSG_VALIDATION_UNKNOWN,
            ),
            Some(*caps),
        ),
        Err(Failure { message, .. }) => (
            ready_condition(
                previous,
                ConditionStatus::False,
                "InvalidProviderConfig",
                *message,
            ),
            None,
        ),
    };
    crate::metrics::global().condition(
        crate::metrics::Kind::of_store(S::KIND),
        &namespace,
        &name,
        &condition,
    );
    let old = find_ready(previous);
    let transitioned = old.map(|c| (c.status, c.message.clone()))
        != Some((condition.status, condition.message.clone()));
    match &outcome {
        // As ESO: the condition keeps its fixed message, the detail goes to a Warning event
        // (sent at every failed validation; identical ones fold into one event's count).
        Err(Failure { error, .. }) => {
            let note = super::advice::failure_note(error, provider.as_deref());
            tracing::warn!(store = %key(s.as_ref()), reason = error.reason(), error = %note, "store validation failed");
            ctx.event(
                s.as_ref(),
                EventType::Warning,
                "InvalidProviderConfig",
                note,
            )
            .await;
        }
        Ok((_, Validation::Unknown)) if transitioned => {
            ctx.event(
                s.as_ref(),
                EventType::Warning,
                "ValidationUnknown",
                "the provider cannot tell whether the store is valid".into(),
            )
            .await;
        }
        Ok(_) if transitioned => {
            ctx.event(s.as_ref(), EventType::Normal, "Valid", MSG_VALIDATED.into())
                .await;
        }
        Ok(_) => {}
    }
    let patch = json!({"status": {
        "conditions": [condition],
        "capabilities": capabilities.map(capabilities_name),
    }});
    S::api(ctx.client.clone(), s.namespace().as_deref())
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    match outcome {
        Ok(_) => {
            ctx.succeeded(&key(s.as_ref()));
            Ok(Action::requeue(requeue_interval(
                s.spec(),
                ctx.config.store_requeue_interval,
            )))
        }
        Err(Failure { error, .. }) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_certificates_come_from_tls_or_vault_cert_auth() {
        assert_eq!(client_cert_source(&json!({"server": "https://v"})), None);
        let tls = json!({"tls": {"certSecretRef": {"name": "c", "key": "tls.crt"},
                                 "keySecretRef": {"name": "c", "key": "tls.key"}}});
        let (cert, key) = client_cert_source(&tls).unwrap();
        assert_eq!(
            (cert.field, cert.key.as_str()),
            ("tls.certSecretRef", "tls.crt")
        );
        assert_eq!(key.key, "tls.key");
        let mut both = tls.clone();
        both["auth"] = json!({"cert": {"clientCert": {"name": "login", "key": "crt"},
                                       "secretRef": {"name": "login", "key": "key"}}});
        let (cert, _) = client_cert_source(&both).unwrap();
        assert_eq!(
            (cert.field, cert.name.as_str()),
            ("auth.cert.clientCert", "login")
        );
    }

    #[test]
    fn bad_pem_is_reported_by_field() {
        let err = check_pem("tls.certSecretRef", b"not pem", false).unwrap_err();
        assert!(
            err.to_string()
                .contains("tls.certSecretRef does not hold a PEM certificate"),
            "{err}"
        );
        assert!(
            check_pem(
                "tls.keySecretRef",
                b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
                true
            )
            .is_err()
        );
    }

    #[test]
    fn ca_settings_are_found_where_eso_providers_put_them() {
        assert_eq!(ca_source(&json!({"server": "https://vault"})), None);
        assert_eq!(
            ca_source(&json!({"caBundle": "UEVN"})),
            Some(CaSource::Inline("UEVN".into()))
        );
        assert_eq!(
            ca_source(&json!({"server": {"caProvider": {"type": "ConfigMap", "name": "ca"}}})),
            Some(CaSource::Object {
                config_map: true,
                name: "ca".into(),
                key: "ca.crt".into(),
                namespace: None
            })
        );
    }
}
