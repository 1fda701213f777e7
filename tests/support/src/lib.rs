//! A real Kubernetes control plane for Airlock's tests and local demo.
//!
//! [`ControlPlane::start`] runs **etcd v3.6.16**, **kube-apiserver v1.34.4** and
//! **kube-controller-manager v1.34.4** (garbage collector, namespace, service-account and
//! service-account-token controllers) on free `127.0.0.1` ports, with generated certificates,
//! a service-account signing key, RBAC authorization and an admin token in `system:masters`.
//! The binaries are built from the Go module proxy by `tests/k8s/build.sh` on first use and
//! cached (see that script).
//!
//! Tests normally share one control plane per test binary through [`ControlPlane::shared`] (or
//! the free functions [`client`], [`new_namespace`], [`kubectl`], ...) and isolate themselves in
//! namespaces of their own.
//!
//! No process outlives the test run: children are forked with a parent-death signal from a
//! thread that lives as long as the process (see [`process`]), so they die with the process
//! whether it exits normally, panics, gets Ctrl-C/SIGTERM or is SIGKILLed. Set
//! `AIRLOCK_TESTENV_KEEP=1` to keep the temporary directory (logs, etcd data) for debugging.

pub mod binaries;
pub mod fakes;
pub mod fault_proxy;
mod pki;
pub mod process;
pub mod tools;

use std::fmt::Write as _;
use std::fs;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

pub use binaries::{Binaries, ETCD_VERSION, KUBERNETES_VERSION};
use process::{DeathSignal, Janitor, spawn_supervised};

/// How long [`ControlPlane::start`] waits for the servers to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Name of the admin user in the token file (member of `system:masters`).
pub const ADMIN_USER: &str = "airlock-admin";

/// A running etcd + kube-apiserver + kube-controller-manager.
///
/// Dropping it kills the processes and removes its temporary directory.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    keep_dir: bool,
    binaries: Binaries,
    server: String,
    etcd_url: String,
    controller_manager_port: u16,
    ca_cert_pem: String,
    ca_cert_der: Vec<u8>,
    admin_token: String,
    startup: Duration,
    processes: Mutex<Vec<Server>>,
    janitor: Mutex<Option<Janitor>>,
}

#[derive(Debug)]
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

impl ControlPlane {
    /// The control plane shared by every test of this process, started on first use.
    ///
    /// It is never dropped; its processes and directory are cleaned up when the process
    /// ends (see the crate docs).
    ///
    /// # Panics
    /// If it cannot be started (for example the binaries cannot be built), with the reason;
    /// every later call panics with the same reason, so each test fails loudly.
    pub fn shared() -> &'static ControlPlane {
        match SHARED.get_or_init(|| ControlPlane::start().map_err(|e| format!("{e:#}"))) {
            Ok(cp) => cp,
            Err(e) => panic!("airlock-testenv: cannot start the Kubernetes control plane: {e}"),
        }
    }

    /// Builds the binaries if needed, starts a new control plane and waits until the
    /// apiserver's `/readyz` and the controller manager's `/healthz` answer `ok`.
    ///
    /// Blocking; may be called from inside or outside a Tokio runtime.
    pub fn start() -> Result<ControlPlane> {
        let t0 = Instant::now();
        let binaries = Binaries::ensure()?;
        // Free ports are found by binding port 0 and releasing it, so another process can take
        // one before our server binds it: retry the start-up a few times in that case.
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, t0) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(binaries: &Binaries, t0: Instant) -> Result<ControlPlane> {
        let binaries = binaries.clone();
        let keep_dir = std::env::var_os("AIRLOCK_TESTENV_KEEP").is_some_and(|v| !v.is_empty());
        let dir = tempfile::Builder::new()
            .prefix("airlock-testenv-")
            .tempdir()
            .context("creating the control plane's temporary directory")?
            .keep();
        let janitor = if keep_dir {
            None
        } else {
            match Janitor::watch(&dir) {
                Ok(j) => Some(j),
                Err(e) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        };
        let [
            etcd_port,
            etcd_peer_port,
            apiserver_port,
            controller_manager_port,
        ] = free_ports()?;
        let mut cp = ControlPlane {
            dir,
            keep_dir,
            binaries,
            server: format!("https://127.0.0.1:{apiserver_port}"),
            etcd_url: format!("http://127.0.0.1:{etcd_port}"),
            controller_manager_port,
            ca_cert_pem: String::new(),
            ca_cert_der: Vec::new(),
            admin_token: random_hex(32),
            startup: Duration::ZERO,
            processes: Mutex::new(Vec::new()),
            janitor: Mutex::new(janitor),
        };
        // From here on, an error drops `cp`, which kills whatever was started.
        cp.boot(etcd_peer_port, apiserver_port)?;
        cp.startup = t0.elapsed();
        Ok(cp)
    }

    fn boot(&mut self, etcd_peer_port: u16, apiserver_port: u16) -> Result<()> {
        let dir = self.dir.clone();
        let pki = pki::Pki::generate()?;
        self.ca_cert_pem = pki.ca_cert_pem.clone();
        self.ca_cert_der = pki.ca_cert_der.clone();
        let pki_dir = dir.join("pki");
        fs::create_dir_all(&pki_dir)?;
        let write = |name: &str, contents: &str| -> Result<PathBuf> {
            let path = pki_dir.join(name);
            fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let ca_crt = write("ca.crt", &pki.ca_cert_pem)?;
        write("ca.key", &pki.ca_key_pem)?;
        let serving_crt = write("apiserver.crt", &pki.serving_cert_pem)?;
        let serving_key = write("apiserver.key", &pki.serving_key_pem)?;
        let sa_key = write("service-account.key", &pki.service_account_key_pem)?;
        let sa_pub = write("service-account.pub", &pki.service_account_public_key_pem)?;
        let tokens = write(
            "tokens.csv",
            &format!(
                "{},{ADMIN_USER},airlock-admin-uid,\"system:masters\"\n",
                self.admin_token
            ),
        )?;
        fs::write(self.kubeconfig_path(), self.kubeconfig_yaml(&ca_crt))
            .context("writing the kubeconfig")?;

        let etcd_peer = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd_args = vec![
            "--name=airlock".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={}", self.etcd_url),
            format!("--advertise-client-urls={}", self.etcd_url),
            format!("--listen-peer-urls={etcd_peer}"),
            format!("--initial-advertise-peer-urls={etcd_peer}"),
            format!("--initial-cluster=airlock={etcd_peer}"),
            "--unsafe-no-fsync=true".to_string(),
            "--log-level=warn".to_string(),
        ];
        self.spawn_server("etcd", &self.binaries.etcd(), &etcd_args)?;

        let apiserver_args = vec![
            format!("--etcd-servers={}", self.etcd_url),
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            format!("--secure-port={apiserver_port}"),
            format!("--tls-cert-file={}", serving_crt.display()),
            format!("--tls-private-key-file={}", serving_key.display()),
            format!("--client-ca-file={}", ca_crt.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC".to_string(),
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            "--allow-privileged=true".to_string(),
            "--disable-admission-plugins=ServiceAccount".to_string(),
            "--endpoint-reconciler-type=none".to_string(),
            format!("--service-account-issuer={}", self.server),
            format!("--service-account-key-file={}", sa_pub.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            "--profiling=false".to_string(),
        ];
        self.spawn_server(
            "kube-apiserver",
            &self.binaries.kube_apiserver(),
            &apiserver_args,
        )?;

        let kubeconfig = self.kubeconfig_path();
        let controller_manager_args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kubeconfig.display()),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={}", self.controller_manager_port),
            format!("--cert-dir={}", dir.join("controller-manager").display()),
            "--controllers=garbagecollector,namespace,serviceaccount-token,serviceaccount"
                .to_string(),
            format!("--service-account-private-key-file={}", sa_key.display()),
            format!("--root-ca-file={}", ca_crt.display()),
            "--leader-elect=false".to_string(),
            "--kube-api-qps=200".to_string(),
            "--kube-api-burst=400".to_string(),
        ];
        self.spawn_server(
            "kube-controller-manager",
            &self.binaries.kube_controller_manager(),
            &controller_manager_args,
        )?;

        block_on(self.wait_ready())
    }

    fn spawn_server(&self, name: &'static str, binary: &Path, args: &[String]) -> Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = spawn_supervised(command, DeathSignal::Kill)?;
        self.lock_processes().push(Server {
            name,
            child,
            log,
            binary: binary.to_path_buf(),
            args: args.to_vec(),
        });
        Ok(())
    }

    /// SIGKILLs the server `name` (`etcd`, `kube-apiserver`, `kube-controller-manager`) and
    /// waits for it to exit, so a test can see what its clients do while it is gone.
    ///
    /// Blocking.
    pub fn kill_server(&self, name: &str) -> Result<()> {
        let mut processes = self.lock_processes();
        let server = processes
            .iter_mut()
            .find(|s| s.name == name)
            .with_context(|| format!("no server {name}"))?;
        server.child.kill()?;
        server.child.wait()?;
        Ok(())
    }

    /// Freezes (`SIGSTOP`, `pause == true`) or thaws (`SIGCONT`) the server `name`: its
    /// sockets stay open but nothing answers, as with a stalled disk or a paused VM.
    #[allow(unsafe_code)]
    pub fn pause_server(&self, name: &str, pause: bool) -> Result<()> {
        let processes = self.lock_processes();
        let server = processes
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("no server {name}"))?;
        let pid = libc::pid_t::try_from(server.child.id())?;
        let signal = if pause { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a plain kill(2) on our own child's pid.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("signalling {name}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Starts the server `name` again, after [`kill_server`](Self::kill_server), with the
    /// same binary, arguments and ports, and waits until every server is ready again.
    ///
    /// Blocking; may be called from inside or outside a Tokio runtime.
    pub fn restart_server(&self, name: &str) -> Result<()> {
        let (name, binary, args) = {
            let mut processes = self.lock_processes();
            let index = processes
                .iter()
                .position(|s| s.name == name)
                .with_context(|| format!("no server {name}"))?;
            if processes[index].child.try_wait()?.is_none() {
                bail!("{name} is still running");
            }
            let server = processes.remove(index);
            (server.name, server.binary, server.args)
        };
        self.spawn_server(name, &binary, &args)?;
        block_on(self.wait_ready())
    }

    fn lock_processes(&self) -> std::sync::MutexGuard<'_, Vec<Server>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails if a server process has exited, with the tail of its log.
    fn check_alive(&self) -> Result<()> {
        let mut processes = self.lock_processes();
        for server in processes.iter_mut() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); last lines of {}:\n{}",
                    server.name,
                    server.log.display(),
                    log_tail(&server.log, 30)
                );
            }
        }
        Ok(())
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let admin = kube::Client::try_from(self.config())?;
        let mut controller_manager_config = kube::Config::new(
            format!("https://127.0.0.1:{}", self.controller_manager_port).parse()?,
        );
        controller_manager_config.accept_invalid_certs = true;
        controller_manager_config.connect_timeout = Some(Duration::from_secs(2));
        let controller_manager = kube::Client::try_from(controller_manager_config)?;
        for (what, client, path) in [
            ("kube-apiserver /readyz", &admin, "/readyz"),
            (
                "kube-controller-manager /healthz",
                &controller_manager,
                "/healthz",
            ),
        ] {
            loop {
                self.check_alive()?;
                let request = http::Request::get(path).body(Vec::new())?;
                let last_answer = match client.request_text(request).await {
                    Ok(body) if body.trim() == "ok" => break,
                    Ok(body) => body,
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    let logs: String = self
                        .lock_processes()
                        .iter()
                        .map(|s| format!("\n--- {} ---\n{}", s.log.display(), log_tail(&s.log, 20)))
                        .collect();
                    bail!(
                        "{what} not ready after {READY_TIMEOUT:?}: last answer: {last_answer}{logs}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn kubeconfig_yaml(&self, ca_crt: &Path) -> String {
        // JSON strings are valid YAML scalars: safe quoting for paths and tokens.
        let q = |s: &str| serde_json::Value::from(s).to_string();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: airlock-testenv\n  cluster:\n    \
             server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {ADMIN_USER}\n  \
             user:\n    token: {token}\ncontexts:\n- name: airlock-testenv\n  context:\n    \
             cluster: airlock-testenv\n    user: {ADMIN_USER}\n    namespace: default\n\
             current-context: airlock-testenv\n",
            server = q(&self.server),
            ca = q(&ca_crt.display().to_string()),
            token = q(&self.admin_token),
        )
    }

    /// Path of the admin kubeconfig (token auth, user [`ADMIN_USER`] in `system:masters`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The apiserver URL, `https://127.0.0.1:PORT`. Also the service-account token issuer.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The etcd client URL, `http://127.0.0.1:PORT`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// PEM of the CA that signed the apiserver's serving certificate.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The admin bearer token (user [`ADMIN_USER`], group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Where the binaries are (`kubectl` is in [`Binaries::kubernetes_dir`]).
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The temporary directory with the kubeconfig, certificates, etcd data and server logs
    /// (`etcd.log`, `kube-apiserver.log`, `kube-controller-manager.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Process ids of the running servers, by name (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`); empty once stopped.
    pub fn process_ids(&self) -> Vec<(&'static str, u32)> {
        self.lock_processes()
            .iter()
            .map(|s| (s.name, s.child.id()))
            .collect()
    }

    /// Wall time [`ControlPlane::start`] took (including the binary check or build).
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// A `kube::Config` for the admin, with default namespace `default`.
    pub fn config(&self) -> kube::Config {
        self.config_with_token(&self.admin_token)
    }

    /// A `kube::Config` for the apiserver authenticating with `token`.
    pub fn config_with_token(&self, token: &str) -> kube::Config {
        let mut config = kube::Config::new(self.server.parse().expect("server URL is valid"));
        config.root_cert = Some(vec![self.ca_cert_der.clone()]);
        config.auth_info.token = Some(token.to_string().into());
        config.connect_timeout = Some(Duration::from_secs(5));
        config
    }

    /// An admin client. Must be called inside a Tokio runtime; create one per runtime (per
    /// `#[tokio::test]`), since a client's connections belong to the runtime that made it.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("building the admin kube client")
    }

    /// A client that authenticates with `token` (for example a service-account token).
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        kube::Client::try_from(self.config_with_token(token)).expect("building a kube client")
    }

    /// An admin client that impersonates `user` with `groups` (RBAC then applies to that
    /// identity). For a service account use user `system:serviceaccount:NS:NAME` and groups
    /// `system:serviceaccounts`, `system:serviceaccounts:NS`, `system:authenticated`, or use
    /// [`ControlPlane::client_for_service_account`] for a real token.
    pub fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let mut config = self.config();
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        kube::Client::try_from(config).expect("building an impersonating kube client")
    }

    /// Requests a token for service account `namespace/name` through the TokenRequest API
    /// (audience: the apiserver, i.e. the issuer [`ControlPlane::server_url`]).
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        expiration_seconds: Option<i64>,
    ) -> Result<String> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request = TokenRequest {
            metadata: ObjectMeta::default(),
            spec: TokenRequestSpec {
                expiration_seconds,
                ..TokenRequestSpec::default()
            },
            status: None,
        };
        let answer = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("TokenRequest for service account {namespace}/{name}"))?;
        Ok(answer
            .status
            .context("TokenRequest answered without status")?
            .token)
    }

    /// A client authenticated as service account `namespace/name` with a real token from
    /// [`ControlPlane::service_account_token`]. The service account must exist.
    pub async fn client_for_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client> {
        let token = self.service_account_token(namespace, name, None).await?;
        Ok(self.client_with_token(&token))
    }

    /// Creates a namespace named `PREFIX-XXXXXXXX` (random suffix; the prefix is sanitised to
    /// a DNS label) labelled `airlock-testenv=true`, and returns its name.
    pub async fn new_namespace(&self, prefix: &str) -> Result<String> {
        let name = unique_name(prefix);
        let namespaces: Api<Namespace> = Api::all(self.client());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("airlock-testenv".to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }

    /// A `kubectl` command preset with this control plane's kubeconfig (`KUBECONFIG`).
    pub fn kubectl_command(&self) -> Command {
        let mut command = Command::new(self.binaries.kubectl());
        command.env("KUBECONFIG", self.kubeconfig_path());
        command
    }

    /// Runs `kubectl ARGS...` as the admin and returns its stdout; fails with its stderr if it
    /// exits non-zero. Blocking.
    pub fn kubectl<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = self.kubectl_command();
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let rendered = format!("{command:?}");
        let output = spawn_supervised(command, DeathSignal::Kill)?
            .wait_with_output()
            .with_context(|| format!("running {rendered}"))?;
        if !output.status.success() {
            bail!(
                "{rendered} failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the servers (controller manager, apiserver, etcd) and removes the directory
    /// (unless `AIRLOCK_TESTENV_KEEP` is set). Idempotent; also done on drop.
    pub fn stop(&self) {
        let mut processes = self.lock_processes();
        while let Some(mut server) = processes.pop() {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        drop(processes);
        if !self.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
        drop(
            self.janitor
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The process-wide control plane ([`ControlPlane::shared`]).
pub fn shared() -> &'static ControlPlane {
    ControlPlane::shared()
}

/// An admin client for the shared control plane (see [`ControlPlane::client`]).
pub fn client() -> kube::Client {
    ControlPlane::shared().client()
}

/// An impersonating client for the shared control plane (see [`ControlPlane::client_as`]).
pub fn client_as(user: &str, groups: &[&str]) -> kube::Client {
    ControlPlane::shared().client_as(user, groups)
}

/// The shared control plane's admin kubeconfig path.
pub fn kubeconfig_path() -> PathBuf {
    ControlPlane::shared().kubeconfig_path()
}

/// Creates a uniquely named namespace in the shared control plane.
pub async fn new_namespace(prefix: &str) -> Result<String> {
    ControlPlane::shared().new_namespace(prefix).await
}

/// Runs `kubectl` against the shared control plane (see [`ControlPlane::kubectl`]).
pub fn kubectl<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    ControlPlane::shared().kubectl(args)
}

/// Runs a future to completion on a fresh current-thread runtime in a helper thread, so it
/// works whether or not the caller is inside a runtime.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a Tokio runtime")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Four distinct free TCP ports on 127.0.0.1.
fn free_ports() -> Result<[u16; 4]> {
    let listeners = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports on 127.0.0.1")?;
    let mut ports = [0u16; 4];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn random_hex(len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let _ = write!(out, "{:016x}", random_u64());
    }
    out.truncate(len);
    out
}

/// `prefix` sanitised to a DNS label plus `-` and 8 random hex digits.
fn unique_name(prefix: &str) -> String {
    let mut base: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(50);
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "test" } else { base };
    format!("{base}-{}", random_hex(8))
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_dns_labels_with_the_prefix() {
        let a = unique_name("My_Test.Case");
        let b = unique_name("My_Test.Case");
        assert_ne!(a, b);
        assert!(a.starts_with("my-test-case-"), "{a}");
        assert!(a.len() <= 63);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(unique_name("---").starts_with("test-"));
    }
}
