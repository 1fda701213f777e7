//! Locating (and, the first time, building) the control-plane binaries via `tests/k8s/build.sh`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::process::{DeathSignal, spawn_supervised};

/// Kubernetes version of the binaries (`kube-apiserver`, `kube-controller-manager`, `kubectl`).
pub const KUBERNETES_VERSION: &str = "v1.34.4";
/// etcd version of the binaries (`etcd`, `etcdctl`).
pub const ETCD_VERSION: &str = "v3.6.16";

/// Where the control-plane binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Directory with `kube-apiserver`, `kube-controller-manager` and `kubectl`.
    pub kubernetes_dir: PathBuf,
    /// Directory with `etcd` and `etcdctl`.
    pub etcd_dir: PathBuf,
}

/// Path of the build script in this repository.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/build.sh")
}

impl Binaries {
    /// Makes sure the binaries exist, building them with `tests/k8s/build.sh` the first time
    /// (several minutes; progress is printed to stderr) and returns where they are. When they
    /// are cached this takes milliseconds.
    pub fn ensure() -> Result<Binaries> {
        let script = build_script();
        if !script.is_file() {
            bail!("the build script {} is missing", script.display());
        }
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SIGTERM on our death lets the script's trap stop a go build in flight.
        let mut child = spawn_supervised(command, DeathSignal::Term)?;
        let stderr = child.stderr.take().context("build script stderr")?;
        let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
        let forward = {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                // Straight to fd 2 (not eprintln!, which the test harness captures), so a cold
                // build shows its progress while it runs.
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    let _ = writeln!(std::io::stderr(), "{line}");
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    tail.push_back(line);
                    if tail.len() > 400 {
                        tail.pop_front();
                    }
                }
            })
        };
        let output = child
            .wait_with_output()
            .context("waiting for the build script")?;
        let _ = forward.join();
        if !output.status.success() {
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
            bail!(
                "building the Kubernetes control-plane binaries failed ({}; script {}):\n{}",
                output.status,
                script.display(),
                lines.join("\n")
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| -> Result<PathBuf> {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(PathBuf::from)
                .with_context(|| format!("build script printed no {key}=... line: {stdout}"))
        };
        let binaries = Binaries {
            kubernetes_dir: value("AIRLOCK_K8S_BIN")?,
            etcd_dir: value("AIRLOCK_ETCD_BIN")?,
        };
        for path in [
            binaries.etcd(),
            binaries.kube_apiserver(),
            binaries.kube_controller_manager(),
            binaries.kubectl(),
        ] {
            if !path.is_file() {
                bail!("build script succeeded but {} is missing", path.display());
            }
        }
        Ok(binaries)
    }

    /// `etcd` server binary.
    pub fn etcd(&self) -> PathBuf {
        self.etcd_dir.join("etcd")
    }

    /// `kube-apiserver` binary.
    pub fn kube_apiserver(&self) -> PathBuf {
        self.kubernetes_dir.join("kube-apiserver")
    }

    /// `kube-controller-manager` binary.
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.kubernetes_dir.join("kube-controller-manager")
    }

    /// `kubectl` binary.
    pub fn kubectl(&self) -> PathBuf {
        self.kubernetes_dir.join("kubectl")
    }
}
