//! A real OCI registry (Debian's `docker-registry`, CNCF distribution) on 127.0.0.1 for
//! the tests: plain HTTP, or TLS with an rcgen CA and htpasswd (bcrypt) basic auth.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_testenv::process::{DeathSignal, spawn_supervised};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// User name of the TLS registry.
pub const USER: &str = "airlock";
/// Password of the TLS registry.
pub const PASSWORD: &str = "s3cr3t-registry";

/// A running registry; killed when dropped.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its storage and config directory.
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM) of a TLS registry.
    pub ca_pem: Option<String>,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn ca_and_cert() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("serving certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

impl Registry {
    /// A plain-HTTP registry.
    pub fn start() -> Registry {
        Self::start_with(false)
    }

    /// A TLS registry requiring [`USER`]/[`PASSWORD`].
    pub fn start_tls() -> Registry {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        let mut ca_pem = None;
        if tls {
            let (ca, cert, key) = ca_and_cert();
            std::fs::write(dir.path().join("cert.pem"), cert).expect("cert");
            std::fs::write(dir.path().join("key.pem"), key).expect("key");
            let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
            std::fs::write(dir.path().join("htpasswd"), format!("{USER}:{hash}\n"))
                .expect("htpasswd");
            config.push_str(&format!(
                "  tls:\n    certificate: {d}/cert.pem\n    key: {d}/key.pem\nauth:\n  htpasswd:\n    realm: airlock-test\n    path: {d}/htpasswd\n",
                d = dir.path().display()
            ));
            ca_pem = Some(ca);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let mut command = Command::new(airlock_testenv::tools::docker_registry());
        command
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = spawn_supervised(command, DeathSignal::Kill).expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {host}: {}",
                std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            host,
            dir,
            ca_pem,
            child,
        }
    }

    /// The CA file of a TLS registry.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, self.ca_pem.as_deref().expect("a TLS registry")).expect("ca");
        path
    }

    /// The file the registry stores blob `digest` in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// Runs the built `airlock` binary.
pub fn airlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env_remove("AIRLOCK_REGISTRY_USERNAME")
        .env_remove("AIRLOCK_REGISTRY_PASSWORD")
        .output()
        .expect("run airlock")
}

/// Runs `airlock` and returns its stdout, failing with its stderr when it fails.
pub fn airlock_ok(args: &[&str]) -> String {
    let out = airlock(args);
    assert!(
        out.status.success(),
        "airlock {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Runs `airlock`, expecting failure; returns its stderr.
pub fn airlock_err(args: &[&str]) -> String {
    let out = airlock(args);
    assert!(
        !out.status.success(),
        "airlock {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Pushes `wasm` (a path) to `registry` as `repo:tag` over plain HTTP; returns the pinned
/// reference.
pub fn push(registry: &Registry, wasm: &str, repo_tag: &str) -> String {
    let reference = format!("{}/{repo_tag}", registry.host);
    airlock_ok(&["provider", "push", wasm, &reference, "--insecure"])
}

/// The digest part of a pinned reference.
pub fn digest_of(pinned: &str) -> &str {
    pinned.rsplit_once('@').expect("pinned").1
}

/// Writes a file into `dir`.
pub fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}
