//! `airlock provider …`: run a provider component against a store manifest without a
//! cluster, inspect a component, and move components to and from OCI registries.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use oci_client::Reference;

use crate::backend::{
    Backend, FindCriteria, RemoteRef, SecretValue, StoreContext, StoreInfo, StoreKind,
};
use crate::registry::{self, Registry, RegistryCredentials, RegistryOptions};
use crate::runtime::{EngineConfig, Grants, Limits, Runtime, StaticCredentials, TlsSettings};

/// Provider commands.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Run a provider component against a SecretStore manifest and print what it returns.
    Run(RunArgs),
    /// Print a component's metadata, capabilities, digest and configuration schema; the
    /// component is a file or an OCI reference.
    Inspect(InspectArgs),
    /// Push a component to an OCI registry as a Wasm artifact (wasm-pkg-tools layout) and
    /// print the reference pinned to its digest.
    Push(PushArgs),
    /// Pull a component from an OCI registry, verifying its digest (and signature with
    /// `--public-key`).
    Pull(PullArgs),
    /// Sign a component in a registry with a cosign-compatible ECDSA P-256 key pair.
    Sign(SignArgs),
    /// Run the conformance suite on a component: loading, imports, exports, metadata,
    /// schema, validate, get / absence / map / find / batched get, errors, capabilities
    /// and limits; one PASS/FAIL/SKIP line per check, non-zero exit on any failure.
    Test(super::conformance::TestArgs),
}

/// How to reach a registry.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Talk plain HTTP to the registry (local development registries only).
    #[arg(long)]
    insecure: bool,
    /// PEM CA certificates to trust for the registry (besides the system roots).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Registry user name (with `--password`).
    #[arg(long, env = "AIRLOCK_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Registry password or token.
    #[arg(long, env = "AIRLOCK_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A Docker config (`~/.docker/config.json`, or a pull Secret's `.dockerconfigjson`) to
    /// take the registry's credentials from.
    #[arg(long)]
    docker_config: Option<PathBuf>,
}

/// Arguments of `airlock provider push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The provider component (`.wasm`).
    module: PathBuf,
    /// Where to push: `registry/repository:tag`.
    reference: String,
    /// Also sign the pushed artifact with this PEM ECDSA P-256 private key.
    #[arg(long)]
    sign_key: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Arguments of `airlock provider pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: `registry/repository:tag`, `…@sha256:…` or both.
    reference: String,
    /// Write the component here (default: `<repository name>.wasm`).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Refuse the artifact unless it has a valid signature by this PEM public key.
    #[arg(long)]
    public_key: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Arguments of `airlock provider sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The artifact to sign: `registry/repository:tag` or `…@sha256:…`.
    reference: String,
    /// PEM ECDSA P-256 private key (unencrypted PKCS#8 or SEC1).
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
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
    /// The provider component: a `.wasm` file, or an OCI reference when no such file exists.
    module: String,
    /// Print only the configuration JSON Schema.
    #[arg(long)]
    schema: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Runs a provider subcommand.
pub async fn run(cmd: ProviderCommand) -> Result<()> {
    match cmd {
        ProviderCommand::Run(args) => run_provider(args).await,
        ProviderCommand::Inspect(args) => inspect(args).await,
        ProviderCommand::Push(args) => push(args).await,
        ProviderCommand::Pull(args) => pull(args).await,
        ProviderCommand::Sign(args) => sign(args).await,
        ProviderCommand::Test(args) => super::conformance::run(args).await,
    }
}

fn registry_client(args: &RegistryArgs, reference: &Reference) -> Result<Registry> {
    let credentials = match (&args.username, &args.password, &args.docker_config) {
        (Some(username), Some(password), _) => RegistryCredentials::Basic {
            username: username.clone(),
            password: password.clone().into(),
        },
        (Some(_), None, _) | (None, Some(_), _) => {
            bail!("--username and --password go together")
        }
        (None, None, Some(path)) => {
            let json = std::fs::read(path)
                .with_context(|| format!("cannot read Docker config {}", path.display()))?;
            RegistryCredentials::from_docker_config(&json, reference.registry())?
        }
        (None, None, None) => RegistryCredentials::Anonymous,
    };
    let ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read CA file {}", path.display()))?,
        ),
        None => None,
    };
    Ok(Registry::new(
        &RegistryOptions {
            credentials,
            ca_pem,
            insecure: args.insecure,
        },
        None,
    )?)
}

/// Prints transfer progress to stderr: in place on a terminal, else one line at the end.
fn progress(verb: &'static str, what: String) -> impl Fn(u64, Option<u64>) + Send + Sync {
    let terminal = std::io::stderr().is_terminal();
    move |done, total| {
        let finished = total.is_some_and(|t| done >= t);
        if !terminal && !finished {
            return;
        }
        let total = total.map(|t| format!("/{t}")).unwrap_or_default();
        let end = if finished { "\n" } else { "" };
        eprint!("\r{verb} {what}: {done}{total} bytes{end}");
    }
}

async fn push(args: PushArgs) -> Result<()> {
    let wasm = read_module(&args.module)?;
    let reference = registry::parse_reference(&args.reference)?;
    if reference.digest().is_some() {
        bail!("push to a tag (registry/repository:tag), not a digest");
    }
    let client = registry_client(&args.registry, &reference)?;
    let report = progress("pushed", args.module.display().to_string());
    let report: registry::Progress<'_> = &report;
    let pinned = client
        .push(&reference, &wasm, Some(report))
        .await
        .with_context(|| format!("cannot push to {}", args.reference))?;
    if let Some(key) = &args.sign_key {
        let pem = std::fs::read_to_string(key)
            .with_context(|| format!("cannot read private key {}", key.display()))?;
        let digest = pinned.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let sig = client.push_signature(&reference, digest, &pem).await?;
        eprintln!("signed: {sig}");
    }
    println!("{pinned}");
    Ok(())
}

async fn pull_component(
    reference_text: &str,
    registry_args: &RegistryArgs,
    public_key: Option<&PathBuf>,
) -> Result<registry::Pulled> {
    let reference = registry::parse_reference(reference_text)?;
    let client = registry_client(registry_args, &reference)?;
    let report = progress("pulled", reference_text.to_string());
    let report: registry::Progress<'_> = &report;
    let pulled = client
        .pull(&reference, Some(report))
        .await
        .with_context(|| format!("cannot pull {reference_text}"))?;
    if let Some(key) = public_key {
        let pem = std::fs::read_to_string(key)
            .with_context(|| format!("cannot read public key {}", key.display()))?;
        client
            .verify_signature(&reference, &pulled.manifest_digest, &pem)
            .await?;
        eprintln!("signature verified with {}", key.display());
    }
    Ok(pulled)
}

async fn pull(args: PullArgs) -> Result<()> {
    let pulled = pull_component(&args.reference, &args.registry, args.public_key.as_ref()).await?;
    let output = args.output.unwrap_or_else(|| {
        let reference = registry::parse_reference(&args.reference).ok();
        let name = reference
            .as_ref()
            .and_then(|r| r.repository().rsplit('/').next().map(str::to_string))
            .unwrap_or_else(|| "provider".into());
        PathBuf::from(format!("{name}.wasm"))
    });
    std::fs::write(&output, &pulled.wasm)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("{}", pulled.reference);
    eprintln!("wrote {} ({} bytes)", output.display(), pulled.wasm.len());
    Ok(())
}

async fn sign(args: SignArgs) -> Result<()> {
    let reference = registry::parse_reference(&args.reference)?;
    let client = registry_client(&args.registry, &reference)?;
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read private key {}", args.key.display()))?;
    let digest = match reference.digest() {
        Some(d) => d.to_string(),
        None => client.resolve(&reference).await?,
    };
    let sig = client.push_signature(&reference, &digest, &pem).await?;
    println!("{sig}");
    Ok(())
}

fn read_module(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read provider module {}", path.display()))
}

async fn inspect(args: InspectArgs) -> Result<()> {
    let path = PathBuf::from(&args.module);
    let (wasm, pulled) = if path.exists() || args.module.ends_with(".wasm") {
        (read_module(&path)?, None)
    } else {
        let pulled = pull_component(&args.module, &args.registry, None).await?;
        (pulled.wasm.clone(), Some(pulled))
    };
    let runtime = Runtime::new(
        &EngineConfig::default(),
        Arc::new(StaticCredentials::default()),
    )?;
    let provider = runtime
        .install("inspect", &wasm, Grants::none())
        .await
        .with_context(|| format!("{} is not a usable Airlock provider", args.module))?;
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
    if let Some(pulled) = &pulled {
        writeln!(out, "reference:    {}", pulled.reference)?;
        writeln!(
            out,
            "artifact:     {} (config {})",
            pulled.manifest.artifact_type.as_deref().unwrap_or("-"),
            pulled.manifest.config.media_type
        )?;
    }
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
