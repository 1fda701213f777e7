//! `airlock provider …`: run a provider component against a store manifest without a
//! cluster, and inspect a component.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::backend::{
    Backend, FindCriteria, RemoteRef, SecretValue, StoreContext, StoreInfo, StoreKind,
};
use crate::runtime::{EngineConfig, Grants, Limits, Runtime, StaticCredentials, TlsSettings};

/// Provider commands.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Run a provider component against a SecretStore manifest and print what it returns.
    Run(RunArgs),
    /// Print a component's metadata, capabilities, digest and configuration schema.
    Inspect(InspectArgs),
}

/// Arguments of `airlock provider run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The provider component (`.wasm`).
    module: PathBuf,
    /// A SecretStore or ClusterSecretStore manifest (YAML); its single
    /// `spec.provider.<key>` is the configuration.
    #[arg(long)]
    store: PathBuf,
    /// Local credentials the store's selectors resolve to: YAML with `secrets`,
    /// `configMaps` and `serviceAccountTokens` lists.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Namespace of the store (or, for a ClusterSecretStore, of the caller).
    #[arg(long)]
    namespace: Option<String>,
    /// Outbound host the provider may reach (repeatable), e.g. `https://*.amazonaws.com`.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Private IP or CIDR the provider may connect to (repeatable).
    #[arg(long = "allow-cidr")]
    allow_cidrs: Vec<String>,
    #[command(flatten)]
    what: What,
}

/// What to read.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct What {
    /// Read one secret by key (like `data[].remoteRef.key`).
    #[arg(long)]
    key: Option<String>,
    /// Read one JSON secret as keys (like `dataFrom[].extract.key`).
    #[arg(long)]
    extract: Option<String>,
    /// Find secrets whose names match this regular expression (`dataFrom[].find`).
    #[arg(long)]
    find_name: Option<String>,
    /// Check the store configuration against the backend (`validate`).
    #[arg(long)]
    validate: bool,
}

/// Arguments of `airlock provider inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The provider component (`.wasm`).
    module: PathBuf,
    /// Print only the configuration JSON Schema.
    #[arg(long)]
    schema: bool,
}

/// Runs a provider subcommand.
pub async fn run(cmd: ProviderCommand) -> Result<()> {
    match cmd {
        ProviderCommand::Run(args) => run_provider(args).await,
        ProviderCommand::Inspect(args) => inspect(args).await,
    }
}

fn read_module(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read provider module {}", path.display()))
}

async fn inspect(args: InspectArgs) -> Result<()> {
    let wasm = read_module(&args.module)?;
    let runtime = Runtime::new(
        &EngineConfig::default(),
        Arc::new(StaticCredentials::default()),
    )?;
    let provider = runtime
        .install("inspect", &wasm, Grants::none())
        .await
        .with_context(|| format!("{} is not a usable Airlock provider", args.module.display()))?;
    let info = &provider.info;
    let mut out = std::io::stdout().lock();
    if args.schema {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&info.config_schema)?
        )?;
        return Ok(());
    }
    writeln!(out, "world:        airlock:provider/provider@0.1.0")?;
    writeln!(out, "name:         {}", info.name)?;
    writeln!(out, "version:      {}", info.version)?;
    writeln!(out, "description:  {}", info.description)?;
    writeln!(out, "capabilities: {}", info.capabilities.as_str())?;
    writeln!(out, "digest:       {}", provider.digest)?;
    writeln!(out, "size:         {} bytes", provider.size)?;
    writeln!(
        out,
        "config keys:  {}",
        info.config_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    )?;
    Ok(())
}

/// Reads a store manifest into the provider key, its config and the store identity.
pub fn store_from_manifest(
    text: &str,
    namespace: Option<&str>,
) -> Result<(String, serde_json::Value, StoreInfo)> {
    let doc: serde_json::Value =
        serde_yaml::from_str(text).context("the store manifest is not valid YAML")?;
    let kind = match doc.get("kind").and_then(|k| k.as_str()) {
        Some("SecretStore") => StoreKind::SecretStore,
        Some("ClusterSecretStore") => StoreKind::ClusterSecretStore,
        Some(other) => {
            bail!("the store manifest is a {other}, expected SecretStore or ClusterSecretStore")
        }
        None => bail!("the store manifest has no kind"),
    };
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .context("the store manifest has no metadata.name")?
        .to_string();
    let namespace = namespace
        .map(str::to_string)
        .or_else(|| {
            meta.and_then(|m| m.get("namespace"))
                .and_then(|n| n.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "default".to_string());
    let providers = doc
        .pointer("/spec/provider")
        .and_then(|p| p.as_object())
        .context("the store manifest has no spec.provider")?;
    if providers.len() != 1 {
        bail!(
            "spec.provider must have exactly one key naming the provider, found {}",
            providers.len()
        );
    }
    let (key, config) = providers.iter().next().expect("one entry");
    Ok((
        key.clone(),
        config.clone(),
        StoreInfo {
            kind,
            name,
            namespace,
        },
    ))
}

fn printable(value: &SecretValue) -> String {
    String::from_utf8_lossy(value.expose()).into_owned()
}

async fn run_provider(args: RunArgs) -> Result<()> {
    let wasm = read_module(&args.module)?;
    let manifest = std::fs::read_to_string(&args.store)
        .with_context(|| format!("cannot read store manifest {}", args.store.display()))?;
    let (provider, config, info) = store_from_manifest(&manifest, args.namespace.as_deref())?;
    let credentials = match &args.credentials {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read credentials file {}", path.display()))?;
            StaticCredentials::from_yaml(&text)
                .with_context(|| format!("credentials file {} is malformed", path.display()))?
        }
        None => StaticCredentials::default(),
    };
    let grants = Grants::parse(&args.allow_hosts, &args.allow_cidrs, Limits::default())?;
    let runtime = Runtime::new(&EngineConfig::default(), Arc::new(credentials))?;
    runtime
        .install(&provider, &wasm, grants)
        .await
        .with_context(|| format!("cannot load {}", args.module.display()))?;
    let store = StoreContext {
        provider,
        config,
        info,
        tls: TlsSettings::default(),
    };
    let mut out = std::io::stdout().lock();
    let what = args.what;
    if let Some(key) = what.key {
        let result = runtime
            .get_secrets(&store, &[RemoteRef::key(key.clone())])
            .await?
            .pop()
            .context("provider returned no result")?;
        match result? {
            Some(v) => {
                out.write_all(v.expose())?;
                writeln!(out)?;
            }
            None => bail!("secret {key:?} does not exist at the provider"),
        }
    } else if let Some(key) = what.extract {
        let map = runtime
            .get_secret_map(&store, &RemoteRef::key(key.clone()))
            .await?
            .with_context(|| format!("secret {key:?} does not exist at the provider"))?;
        let map: BTreeMap<_, _> = map.iter().map(|(k, v)| (k.clone(), printable(v))).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&map)?)?;
    } else if let Some(regexp) = what.find_name {
        let criteria = FindCriteria {
            name_regexp: Some(regexp),
            ..Default::default()
        };
        let map = runtime.get_all_secrets(&store, &criteria).await?;
        let map: BTreeMap<_, _> = map.iter().map(|(k, v)| (k.clone(), printable(v))).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&map)?)?;
    } else if what.validate {
        let v = runtime.validate(&store).await?;
        writeln!(out, "{v:?}")?;
    }
    Ok(())
}
