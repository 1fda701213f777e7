//! The PushSecret reconciler: copies keys of Kubernetes Secrets into the stores a PushSecret
//! names, and with `deletionPolicy: Delete` removes what it pushed when an entry, the source
//! Secret or the PushSecret itself goes.
//!
//! As ESO: the source Secret is not watched (changes are picked up at `refreshInterval`), the
//! outcome is one `Ready` condition with reason `Synced`, `Errored` or `SourceDeleted`, and
//! `status.syncedPushSecrets` records what was pushed where (`Kind/Name` → remote key →
//! entry) so that entries dropped later can be deleted. The providers refuse to overwrite or
//! delete a remote secret they did not create (the `managed-by` mark).

mod entries;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::external_secret::{resolve_store, selector_matches};
use super::secret_store::{kind_name, resolve_tls};
use super::{Context, Error, ModuleHost, find_ready, log_result, ready_condition};
use crate::backend::{Backend, Capabilities, PushRef, PushRequest, SecretValue, StoreContext};
use crate::crd::common::{SecretStoreRef, StoreKind as CrdKind};
use crate::crd::push_secret::{PushSecretData, PushSecretDeletionPolicy, PushSecretUpdatePolicy};
use crate::crd::{ClusterSecretStore, ConditionStatus, PushSecret, SecretStore};
use crate::template::{ENGINE_ANNOTATION, Engine, Sources};

/// The finalizer ESO puts on a PushSecret with `deletionPolicy: Delete`.
pub const FINALIZER: &str = "pushsecret.externalsecrets.io/finalizer";

/// Refresh interval used when `spec.refreshInterval` does not parse (ESO's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

// ESO's condition and event texts.
const MSG_SYNCED: &str = "PushSecret synced successfully";
const MSG_UNCHANGED: &str = ". Existing secrets in providers unchanged.";
const MSG_GET_SECRET: &str = "could not get source secret";
const MSG_SOURCE_DELETED: &str = "source secret deleted; provider secrets cleaned up";
const REASON_SYNCED: &str = "Synced";
const REASON_ERRORED: &str = "Errored";
const REASON_SOURCE_DELETED: &str = "SourceDeleted";

/// What was pushed: store (`Kind/Name`) → remote key (`key` or `key/property`) → entry.
pub type Synced = BTreeMap<String, BTreeMap<String, PushSecretData>>;

/// Runs the PushSecret controller. Like ESO it watches only PushSecrets.
pub async fn run<B: ModuleHost>(ctx: Arc<Context<B>>) {
    let api: Api<PushSecret> = super::scoped_api(&ctx);
    Controller::new(api, watcher::Config::default())
        .with_config(super::controller_config(&ctx))
        .shutdown_on_signal()
        .run(
            crate::metrics::instrument(
                crate::metrics::Kind::PushSecret,
                ctx.config.concurrency,
                reconcile,
            ),
            error_policy,
            ctx,
        )
        .for_each(|r| async move { log_result("pushsecret", r) })
        .await;
}

fn key(ps: &PushSecret) -> String {
    format!(
        "pushsecret/{}/{}",
        ps.namespace().unwrap_or_default(),
        ps.name_any()
    )
}

/// Backoff, and no sooner than a rate-limited backend's Retry-After (as for ExternalSecrets).
fn error_policy<B: ModuleHost>(ps: Arc<PushSecret>, e: &Error, ctx: Arc<Context<B>>) -> Action {
    ctx.backoff_after(key(&ps), e)
}

fn interval(ps: &PushSecret) -> Duration {
    ps.spec.refresh_interval.parse().unwrap_or(DEFAULT_INTERVAL)
}

/// `<generation>-<hash of labels and annotations>`, as for ExternalSecrets.
fn synced_resource_version(ps: &PushSecret) -> String {
    format!(
        "{}-{}",
        ps.meta().generation.unwrap_or_default(),
        super::external_secret::meta_hash(ps.labels(), ps.annotations())
    )
}

/// ESO's `shouldRefresh`, plus: a PushSecret that is not `Ready=True` retries (with the
/// controller's backoff) instead of waiting for its interval.
fn should_refresh(ps: &PushSecret) -> bool {
    let status = ps.status.as_ref();
    let ready = find_ready(status.and_then(|s| s.conditions.as_deref()))
        .is_some_and(|c| c.status == ConditionStatus::True);
    let synced = status.and_then(|s| s.synced_resource_version.as_deref());
    if !ready || synced != Some(synced_resource_version(ps).as_str()) {
        return true;
    }
    let every = interval(ps);
    if every.is_zero() {
        return false;
    }
    match status.and_then(|s| s.refresh_time.as_ref()) {
        None => true,
        Some(t) => {
            let age = k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second();
            age < 0 || age as u64 >= every.as_secs()
        }
    }
}

/// Why a push failed: the condition message (ESO's text, with the detail where ESO puts it
/// there) and what is known to be pushed so far.
struct Failure {
    message: String,
    error: Error,
    synced: Option<Synced>,
}

impl Failure {
    fn new(message: impl Into<String>, error: Error) -> Self {
        Failure {
            message: message.into(),
            error,
            synced: None,
        }
    }

    /// A failure whose message is the error itself (ESO puts it in the condition).
    fn of(error: Error) -> Self {
        Failure::new(error.to_string(), error)
    }
}

async fn reconcile<B: ModuleHost>(
    ps: Arc<PushSecret>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let namespace = ps.namespace().unwrap_or_default();
    let name = ps.name_any();
    let api: Api<PushSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let has_finalizer = ps.finalizers().iter().any(|f| f == FINALIZER);
    let delete = ps.spec.deletion_policy == PushSecretDeletionPolicy::Delete;

    if ps.meta().deletion_timestamp.is_some() {
        if has_finalizer {
            // Everything recorded goes: nothing is wanted any more.
            if let Err(f) = delete_unwanted(&ctx, &ps, &Synced::new()).await {
                let message = format!("Failed to Delete Secrets from Provider: {}", f.message);
                return Err(fail(&ctx, &ps, Failure { message, ..f }).await?);
            }
            super::remove_finalizer(&api, &ps, FINALIZER).await?;
        }
        return Ok(Action::await_change());
    }
    if delete && !has_finalizer {
        let mut finalizers = ps.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": ps.resource_version(),
        }});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        // The patch triggers the next reconcile, with the finalizer in place.
        return Ok(Action::await_change());
    }
    if !delete && has_finalizer {
        super::remove_finalizer(&api, &ps, FINALIZER).await?;
    }

    if !should_refresh(&ps) {
        let every = interval(&ps);
        if every.is_zero() {
            return Ok(Action::await_change());
        }
        let age = ps
            .status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .map(|t| (k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second()).max(0))
            .unwrap_or_default();
        let next = every.saturating_sub(Duration::from_secs(age as u64));
        return Ok(Action::requeue(next.max(Duration::from_secs(1))));
    }

    let started = super::now();
    match push(&ctx, &ps).await {
        Ok(Outcome::Pushed(synced)) => {
            let mut message = MSG_SYNCED.to_string();
            if ps.spec.update_policy == PushSecretUpdatePolicy::IfNotExists {
                message.push_str(MSG_UNCHANGED);
            }
            let previous = ps.status.as_ref().and_then(|s| s.conditions.as_deref());
            let condition =
                ready_condition(previous, ConditionStatus::True, REASON_SYNCED, &message);
            let status = json!({"status": {
                "conditions": [condition],
                "refreshTime": started,
                "syncedResourceVersion": synced_resource_version(&ps),
                "syncedPushSecrets": synced_patch(old_synced(&ps), &synced),
            }});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            crate::metrics::global().condition(
                crate::metrics::Kind::PushSecret,
                &namespace,
                &name,
                &condition,
            );
            ctx.event(ps.as_ref(), EventType::Normal, REASON_SYNCED, message)
                .await;
            ctx.succeeded(&key(&ps));
            let every = interval(&ps);
            Ok(if every.is_zero() {
                Action::await_change()
            } else {
                Action::requeue(every)
            })
        }
        Ok(Outcome::SourceDeleted) => {
            let previous = ps.status.as_ref().and_then(|s| s.conditions.as_deref());
            let condition = ready_condition(
                previous,
                ConditionStatus::False,
                REASON_SOURCE_DELETED,
                MSG_SOURCE_DELETED,
            );
            let status = json!({"status": {
                "conditions": [condition],
                "syncedPushSecrets": synced_patch(old_synced(&ps), &Synced::new()),
            }});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            crate::metrics::global().condition(
                crate::metrics::Kind::PushSecret,
                &namespace,
                &name,
                &condition,
            );
            ctx.event(
                ps.as_ref(),
                EventType::Normal,
                REASON_SOURCE_DELETED,
                MSG_SOURCE_DELETED.into(),
            )
            .await;
            ctx.succeeded(&key(&ps));
            Ok(Action::requeue(interval(&ps).max(Duration::from_secs(1))))
        }
        Ok(Outcome::OtherControllerClass) => Ok(Action::await_change()),
        Err(failure) => {
            let retry = failure.error.is_retryable();
            let error = fail(&ctx, &ps, failure).await?;
            if retry {
                Err(error)
            } else {
                Ok(Action::await_change())
            }
        }
    }
}

/// Writes `Ready=False` (reason `Errored`), the entries known to be pushed, and a Warning
/// event; returns the error for the backoff.
async fn fail<B>(ctx: &Context<B>, ps: &PushSecret, failure: Failure) -> Result<Error, Error> {
    let namespace = ps.namespace().unwrap_or_default();
    let name = ps.name_any();
    tracing::warn!(pushsecret = %format!("{namespace}/{name}"), reason = failure.error.reason(), error = %failure.error, "push failed");
    let previous = ps.status.as_ref().and_then(|s| s.conditions.as_deref());
    let condition = ready_condition(
        previous,
        ConditionStatus::False,
        REASON_ERRORED,
        &failure.message,
    );
    let mut status = json!({"conditions": [condition]});
    if let Some(synced) = &failure.synced {
        status["syncedPushSecrets"] = synced_patch(old_synced(ps), synced);
    }
    let api: Api<PushSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    match api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
    {
        Ok(_) => {}
        // Gone while failing (its finalizer was just removed): nothing to report on.
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    crate::metrics::global().condition(
        crate::metrics::Kind::PushSecret,
        &namespace,
        &name,
        &condition,
    );
    ctx.event(ps, EventType::Warning, REASON_ERRORED, failure.message)
        .await;
    Ok(failure.error)
}

fn old_synced(ps: &PushSecret) -> Synced {
    ps.status
        .as_ref()
        .and_then(|s| s.synced_push_secrets.clone())
        .unwrap_or_default()
}

/// A JSON merge patch turning `old` into `new`: entries that went are set to null (a merge
/// patch of the map alone would keep them).
fn synced_patch(old: Synced, new: &Synced) -> Value {
    let mut out = serde_json::Map::new();
    for (store, entries) in &old {
        match new.get(store) {
            None => {
                out.insert(store.clone(), Value::Null);
            }
            Some(now) => {
                let gone: serde_json::Map<String, Value> = entries
                    .keys()
                    .filter(|k| !now.contains_key(*k))
                    .map(|k| (k.clone(), Value::Null))
                    .collect();
                if !gone.is_empty() {
                    out.insert(store.clone(), Value::Object(gone));
                }
            }
        }
    }
    for (store, entries) in new {
        let mut value = serde_json::to_value(entries).unwrap_or_default();
        if let (Some(Value::Object(nulls)), Value::Object(map)) = (out.get(store), &mut value) {
            for (k, v) in nulls {
                map.insert(k.clone(), v.clone());
            }
        }
        out.insert(store.clone(), value);
    }
    Value::Object(out)
}

/// How a push ended without an error.
enum Outcome {
    /// Everything was pushed: the new `syncedPushSecrets`.
    Pushed(Synced),
    /// The named source Secret is gone and (deletionPolicy Delete) what was pushed was
    /// deleted.
    SourceDeleted,
    /// Every named store belongs to an operator of another controller class.
    OtherControllerClass,
}

/// One source of values: a Secret's data.
struct Source {
    data: BTreeMap<String, Vec<u8>>,
}

async fn push<B: ModuleHost>(ctx: &Context<B>, ps: &PushSecret) -> Result<Outcome, Failure> {
    let data_to = ps.spec.data_to.as_deref().unwrap_or_default();
    entries::validate_store_refs(data_to, &ps.spec.secret_store_refs).map_err(Failure::of)?;
    let sources = match sources(ctx, ps).await {
        Ok(s) => s,
        Err(SourceError::Missing(why)) => {
            let delete = ps.spec.deletion_policy == PushSecretDeletionPolicy::Delete;
            if delete && !old_synced(ps).is_empty() {
                tracing::info!(pushsecret = %key(ps), "source secret gone, deleting what was pushed");
                delete_unwanted(ctx, ps, &Synced::new())
                    .await
                    .map_err(|f| Failure {
                        message: format!("failed to cleanup provider secrets: {}", f.message),
                        ..f
                    })?;
                return Ok(Outcome::SourceDeleted);
            }
            return Err(Failure::new(
                format!("{MSG_GET_SECRET}: {why}"),
                Error::SecretNotFoundAtProvider(why),
            ));
        }
        Err(SourceError::Other(e)) => return Err(Failure::new(MSG_GET_SECRET, e)),
    };
    let stores = stores(ctx, ps).await.map_err(Failure::of)?;
    if stores.is_empty() {
        return Ok(Outcome::OtherControllerClass);
    }
    let ids: Vec<entries::StoreId<'_>> = stores.values().map(Target::id).collect();
    entries::validate_selectors_match(data_to, &ids).map_err(Failure::of)?;
    let engine =
        Engine::from_annotation(ps.annotations().get(ENGINE_ANNOTATION).map(String::as_str))
            .map_err(|e| Failure::of(e.into()))?;
    let mut synced = Synced::new();
    for source in sources {
        let data = match &ps.spec.template {
            Some(template) => render(template, engine, source.data).map_err(Failure::of)?,
            None => source.data,
        };
        for (store_key, target) in &stores {
            let entries = synced.entry(store_key.clone()).or_default();
            if let Err((message, error)) =
                push_to_store(ctx, ps, target, engine, &data, entries).await
            {
                let mut all = synced.clone();
                for (k, v) in old_synced(ps) {
                    let merged = all.entry(k).or_default();
                    for (kk, vv) in v {
                        merged.entry(kk).or_insert(vv);
                    }
                }
                return Err(Failure {
                    message: format!("set secret failed: {message}"),
                    error,
                    synced: Some(all),
                });
            }
        }
    }
    if ps.spec.deletion_policy == PushSecretDeletionPolicy::Delete {
        delete_unwanted(ctx, ps, &synced)
            .await
            .map_err(|f| Failure {
                message: format!("Failed to Delete Secrets from Provider: {}", f.message),
                ..f
            })?;
    }
    Ok(Outcome::Pushed(synced))
}

/// Renders the PushSecret's template over a source Secret's data (redacting the values
/// from any error text).
fn render(
    template: &crate::crd::external_secret::ExternalSecretTemplate,
    engine: Engine,
    data: BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    match crate::template::apply(template, engine, &data, &Sources::default()) {
        Ok(rendered) => Ok(rendered.data),
        Err(e) => {
            let mut redactor = crate::runtime::redact::Redactor::default();
            for v in data.values() {
                redactor.add(v);
            }
            Err(e.redact_with(|t| redactor.redact_string(t)).into())
        }
    }
}

/// `key` or `key/property`: how ESO names an entry in `syncedPushSecrets`.
fn status_ref(data: &PushSecretData) -> String {
    let remote = &data.match_.remote_ref;
    match remote.property.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => format!("{}/{p}", remote.remote_key),
        None => remote.remote_key.clone(),
    }
}

fn push_ref(data: &PushSecretData) -> PushRef {
    PushRef {
        remote_key: data.match_.remote_ref.remote_key.clone(),
        property: data
            .match_
            .remote_ref
            .property
            .clone()
            .filter(|p| !p.is_empty()),
    }
}

/// Pushes the store's entries (its `dataTo` rules expanded, then `data[]`) to one store,
/// recording each in `entries`.
async fn push_to_store<B: Backend>(
    ctx: &Context<B>,
    ps: &PushSecret,
    target: &Target,
    engine: Engine,
    data: &BTreeMap<String, Vec<u8>>,
    entries: &mut BTreeMap<String, PushSecretData>,
) -> Result<(), (String, Error)> {
    let store = &target.store;
    let store_name = &store.info.name;
    let wanted = entries::for_store(
        ps.spec.data_to.as_deref().unwrap_or_default(),
        ps.spec.data.as_deref().unwrap_or_default(),
        &target.id(),
        data,
        engine,
    )
    .map_err(|e| (e.to_string(), e))?;
    for entries::Entry { data: entry, only } in wanted {
        let data = entries::reverse_keys(entry.conversion_strategy, only.as_ref().unwrap_or(data))
            .map_err(|e| {
                let message = format!("could not apply conversion strategy to keys: {e}");
                (message, e)
            })?;
        let secret_key = entry.match_.secret_key.as_deref().filter(|k| !k.is_empty());
        let value = match secret_key {
            Some(k) => data
                .get(k)
                .cloned()
                .ok_or_else(|| Error::InvalidData(format!("secret key {k} does not exist")))
                .map_err(|e| (e.to_string(), e))?,
            None => whole_secret(&data).map_err(|e| (e.to_string(), e))?,
        };
        let reference = push_ref(&entry);
        if ps.spec.update_policy == PushSecretUpdatePolicy::IfNotExists {
            let exists = ctx
                .backend
                .secret_exists(store, &reference)
                .await
                .map_err(|e| {
                    let message = format!(
                        "could not verify if secret exists in store: {e} ({})",
                        e.reason()
                    );
                    (message, Error::from(e))
                })?;
            if exists {
                entries.insert(status_ref(&entry), entry);
                continue;
            }
        }
        let request = PushRequest {
            remote: reference,
            value: SecretValue::new(value),
            metadata: entry.metadata.clone(),
        };
        if let Err(e) = ctx.backend.push_secret(store, &request).await {
            let message = format!(
                "could not write remote ref {} to target secretstore {store_name}: {e} ({})",
                secret_key.unwrap_or_default(),
                e.reason()
            );
            return Err((message, e.into()));
        }
        entries.insert(status_ref(&entry), entry);
    }
    Ok(())
}

/// The whole Secret as one JSON object of strings (ESO's push without `secretKey`).
fn whole_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, Error> {
    let mut object = serde_json::Map::new();
    for (k, v) in data {
        let text = String::from_utf8(v.clone()).map_err(|_| {
            Error::InvalidData(format!(
                "secret key {k} is not UTF-8 text: pushing the whole Secret writes a JSON object of strings; push the key on its own with match.secretKey"
            ))
        })?;
        object.insert(k.clone(), Value::String(text));
    }
    Ok(serde_json::to_vec(&Value::Object(object)).unwrap_or_default())
}

/// Turns `_Uxxxx_` escapes (ExternalSecret's `conversionStrategy: Unicode`) back into
/// characters; anything that is not a valid escape is kept as written.
pub fn reverse_unicode(key: &str) -> String {
    let re = regex::Regex::new(r"_U([0-9a-fA-F]{4,6})_").expect("a valid pattern");
    re.replace_all(key, |c: &regex::Captures<'_>| {
        u32::from_str_radix(&c[1], 16)
            .ok()
            .and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_else(|| c[0].to_string())
    })
    .into_owned()
}

/// Why the source values could not be read.
enum SourceError {
    /// The named Secret does not exist.
    Missing(String),
    /// Anything else.
    Other(Error),
}

async fn sources<B>(ctx: &Context<B>, ps: &PushSecret) -> Result<Vec<Source>, SourceError> {
    let namespace = ps.namespace().unwrap_or_default();
    let selector = &ps.spec.selector;
    if let Some(generator) = &selector.generator_ref {
        let data = crate::controller::generator::generate_for_push(ctx, ps, generator)
            .await
            .map_err(SourceError::Other)?;
        return Ok(vec![Source { data }]);
    }
    let Some(secret) = &selector.secret else {
        return Err(SourceError::Other(Error::InvalidData(
            "spec.selector names neither a secret nor a generatorRef".into(),
        )));
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let data_of = |s: &Secret| -> BTreeMap<String, Vec<u8>> {
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    };
    if let Some(name) = secret.name.as_deref().filter(|n| !n.is_empty()) {
        return match api.get_opt(name).await {
            Ok(Some(s)) => Ok(vec![Source { data: data_of(&s) }]),
            Ok(None) => Err(SourceError::Missing(format!(
                "Secret {name:?} not found in namespace {namespace:?}"
            ))),
            Err(e) => Err(SourceError::Other(e.into())),
        };
    }
    let Some(labels) = &secret.selector else {
        return Err(SourceError::Other(Error::InvalidData(
            "spec.selector.secret names neither a name nor a selector".into(),
        )));
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| SourceError::Other(e.into()))?;
    Ok(list
        .items
        .iter()
        .filter(|s| selector_matches(labels, s.labels()))
        .map(|s| Source { data: data_of(s) })
        .collect())
}

/// A store to push to, with what `dataTo[].storeRef` matches on.
struct Target {
    store: StoreContext,
    kind: CrdKind,
    labels: BTreeMap<String, String>,
}

impl Target {
    fn id(&self) -> entries::StoreId<'_> {
        entries::StoreId {
            kind: self.kind,
            name: &self.store.info.name,
            labels: &self.labels,
        }
    }
}

/// The labels of a store named in `secretStoreRefs`, read only when a `dataTo` rule selects
/// stores by labels.
async fn store_labels<B>(
    ctx: &Context<B>,
    ps: &PushSecret,
    kind: CrdKind,
    name: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let by_labels = ps
        .spec
        .data_to
        .iter()
        .flatten()
        .any(|d| d.store_ref.label_selector.is_some());
    if !by_labels {
        return Ok(BTreeMap::new());
    }
    let labels = match kind {
        CrdKind::SecretStore => {
            let api: Api<SecretStore> =
                Api::namespaced(ctx.client.clone(), &ps.namespace().unwrap_or_default());
            api.get_opt(name).await?.map(|s| s.labels().clone())
        }
        CrdKind::ClusterSecretStore => {
            let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
            api.get_opt(name).await?.map(|s| s.labels().clone())
        }
    };
    Ok(labels.unwrap_or_default())
}

/// The stores to push to, by `Kind/Name`, resolved for the PushSecret's namespace, with the
/// controller-class rule (other classes' stores are skipped, as ESO does) and a read-only
/// provider refused. An empty result means every store is another operator's.
async fn stores<B: ModuleHost>(
    ctx: &Context<B>,
    ps: &PushSecret,
) -> Result<BTreeMap<String, Target>, Error> {
    let namespace = ps.namespace().unwrap_or_default();
    // Kind, name, and the labels when the store was found by them.
    type Named = (CrdKind, String, Option<BTreeMap<String, String>>);
    let mut names: Vec<Named> = Vec::new();
    for (i, r) in ps.spec.secret_store_refs.iter().enumerate() {
        if let Some(selector) = &r.label_selector {
            let found: Vec<(String, BTreeMap<String, String>)> = match r.kind {
                CrdKind::SecretStore => {
                    let api: Api<SecretStore> = Api::namespaced(ctx.client.clone(), &namespace);
                    api.list(&ListParams::default())
                        .await?
                        .items
                        .into_iter()
                        .filter(|s| s.meta().deletion_timestamp.is_none())
                        .filter(|s| selector_matches(selector, s.labels()))
                        .map(|s| (s.name_any(), s.labels().clone()))
                        .collect()
                }
                CrdKind::ClusterSecretStore => {
                    let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
                    api.list(&ListParams::default())
                        .await?
                        .items
                        .into_iter()
                        .filter(|s| s.meta().deletion_timestamp.is_none())
                        .filter(|s| selector_matches(selector, s.labels()))
                        .map(|s| (s.name_any(), s.labels().clone()))
                        .collect()
                }
            };
            if found.is_empty() && r.name.is_none() {
                return Err(Error::StoreNotFound(format!(
                    "no {} matches the labelSelector of spec.secretStoreRefs[{i}]",
                    kind_name(backend_kind(r.kind))
                )));
            }
            names.extend(found.into_iter().map(|(n, l)| (r.kind, n, Some(l))));
        } else if let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) {
            names.push((r.kind, name.to_string(), None));
        } else {
            return Err(Error::StoreNotFound(format!(
                "spec.secretStoreRefs[{i}] names no store: set name or labelSelector"
            )));
        }
    }
    let mut out = BTreeMap::new();
    for (kind, name, labels) in names {
        let reference = SecretStoreRef {
            name: name.clone(),
            kind: Some(kind),
        };
        let mut store = match resolve_store(ctx, &namespace, &reference).await {
            Ok(s) => s,
            Err(Error::OtherControllerClass(why)) => {
                tracing::debug!(pushsecret = %key(ps), %why, "store left to another controller class");
                continue;
            }
            Err(e) => return Err(e),
        };
        resolve_tls(ctx, &mut store).await?;
        let store_key = format!("{}/{name}", kind_name(store.info.kind));
        match ctx.backend.capabilities(&store) {
            Ok(Capabilities::ReadOnly) => {
                return Err(Error::Unsupported {
                    reason: "ReadOnlyStore",
                    message: format!(
                        "{store_key} is served by the read-only provider {:?}: it cannot receive pushed secrets",
                        store.provider
                    ),
                });
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let labels = match labels {
            Some(l) => l,
            None => store_labels(ctx, ps, kind, &name).await?,
        };
        out.insert(
            store_key,
            Target {
                store,
                kind,
                labels,
            },
        );
    }
    Ok(out)
}

fn backend_kind(kind: CrdKind) -> crate::backend::StoreKind {
    match kind {
        CrdKind::SecretStore => crate::backend::StoreKind::SecretStore,
        CrdKind::ClusterSecretStore => crate::backend::StoreKind::ClusterSecretStore,
    }
}

/// With `deletionPolicy: Delete`: deletes the remote entries recorded in the status that
/// are not in `wanted`.
async fn delete_unwanted<B: ModuleHost>(
    ctx: &Context<B>,
    ps: &PushSecret,
    wanted: &Synced,
) -> Result<(), Failure> {
    let namespace = ps.namespace().unwrap_or_default();
    let old = old_synced(ps);
    // What stays recorded if a delete fails: the wanted entries and the ones not yet gone.
    let mut remaining = wanted.clone();
    for (store, entries) in &old {
        let merged = remaining.entry(store.clone()).or_default();
        for (k, v) in entries {
            merged.entry(k.clone()).or_insert(v.clone());
        }
    }
    for (store_key, entries) in &old {
        let gone: Vec<(&String, &PushSecretData)> = entries
            .iter()
            .filter(|(k, _)| wanted.get(store_key).is_none_or(|w| !w.contains_key(*k)))
            .collect();
        if gone.is_empty() {
            continue;
        }
        let (kind, name) = match store_key.split_once('/') {
            Some(("ClusterSecretStore", n)) => (CrdKind::ClusterSecretStore, n),
            Some((_, n)) => (CrdKind::SecretStore, n),
            None => (CrdKind::SecretStore, store_key.as_str()),
        };
        let reference = SecretStoreRef {
            name: name.to_string(),
            kind: Some(kind),
        };
        let store = async {
            let mut s = resolve_store(ctx, &namespace, &reference).await?;
            resolve_tls(ctx, &mut s).await?;
            Ok::<_, Error>(s)
        }
        .await
        .map_err(|e| Failure {
            message: format!("could not get secrets client for store {name}: {e}"),
            error: e,
            synced: Some(remaining.clone()),
        })?;
        for (status_key, entry) in gone {
            if let Err(e) = ctx.backend.delete_secret(&store, &push_ref(entry)).await {
                return Err(Failure {
                    message: format!("{e} ({})", e.reason()),
                    error: e.into(),
                    synced: Some(remaining),
                });
            }
            if let Some(m) = remaining.get_mut(store_key) {
                m.remove(status_key);
                if m.is_empty() && !wanted.contains_key(store_key) {
                    remaining.remove(store_key);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, property: Option<&str>) -> PushSecretData {
        serde_json::from_value(json!({"match": {"secretKey": "k", "remoteRef": {"remoteKey": key, "property": property}}})).unwrap()
    }

    #[test]
    fn synced_entries_are_named_by_remote_key_and_property() {
        assert_eq!(status_ref(&entry("db", None)), "db");
        assert_eq!(status_ref(&entry("db", Some("password"))), "db/password");
    }

    #[test]
    fn the_status_patch_removes_entries_that_went() {
        let old: Synced = BTreeMap::from([
            (
                "SecretStore/a".to_string(),
                BTreeMap::from([
                    ("x".to_string(), entry("x", None)),
                    ("y".to_string(), entry("y", None)),
                ]),
            ),
            (
                "SecretStore/b".to_string(),
                BTreeMap::from([("z".to_string(), entry("z", None))]),
            ),
        ]);
        let new: Synced = BTreeMap::from([(
            "SecretStore/a".to_string(),
            BTreeMap::from([("x".to_string(), entry("x", None))]),
        )]);
        let patch = synced_patch(old, &new);
        assert_eq!(patch["SecretStore/b"], Value::Null);
        assert_eq!(patch["SecretStore/a"]["y"], Value::Null);
        assert_eq!(
            patch["SecretStore/a"]["x"]["match"]["remoteRef"]["remoteKey"],
            "x"
        );
    }

    #[test]
    fn reverse_unicode_undoes_the_unicode_key_conversion() {
        assert_eq!(reverse_unicode("a_U002f_b"), "a/b");
        assert_eq!(reverse_unicode("plain_key"), "plain_key");
        assert_eq!(reverse_unicode("_Uzzzz_"), "_Uzzzz_");
    }

    #[test]
    fn a_whole_secret_is_pushed_as_a_json_object_of_strings() {
        let data = BTreeMap::from([
            ("user".to_string(), b"admin".to_vec()),
            ("pass".to_string(), b"s3cr3t".to_vec()),
        ]);
        let value: Value = serde_json::from_slice(&whole_secret(&data).unwrap()).unwrap();
        assert_eq!(value, json!({"user": "admin", "pass": "s3cr3t"}));
        let binary = BTreeMap::from([("bin".to_string(), vec![0xff, 0xfe])]);
        let e = whole_secret(&binary).unwrap_err().to_string();
        assert!(e.contains("secret key bin is not UTF-8"), "{e}");
    }
}
