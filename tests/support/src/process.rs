//! Child-process supervision that cannot leak processes.
//!
//! Every long-lived child (etcd, kube-apiserver, kube-controller-manager, the build script) is
//! forked from one dedicated *spawner thread* that lives for the whole process, with
//! `PR_SET_PDEATHSIG` set in the child before `exec`. Linux delivers that signal when the thread
//! that forked the child dies, so because the spawner thread only dies with the process, the
//! children are killed however the process ends: normal exit (statics are never dropped), a
//! panic, Ctrl-C, SIGTERM or even SIGKILL. Each child also gets its own process group, so a
//! terminal's Ctrl-C reaches only our process, which then takes the children down with it.
//!
//! Temporary directories are removed by a tiny *janitor* (`sh`) that blocks reading a pipe whose
//! write end only this process holds: when the process ends for any reason the kernel closes the
//! pipe and the janitor deletes the directory and exits.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use anyhow::{Context, Result};

/// Signal a supervised child receives when this process goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathSignal {
    /// Immediate, uncatchable kill (servers whose state is throw-away).
    Kill,
    /// Polite termination, so a shell script can run its traps and stop its own children.
    Term,
}

impl DeathSignal {
    fn raw(self) -> libc::c_int {
        match self {
            DeathSignal::Kill => libc::SIGKILL,
            DeathSignal::Term => libc::SIGTERM,
        }
    }
}

struct SpawnRequest {
    command: Command,
    signal: DeathSignal,
    reply: mpsc::Sender<io::Result<Child>>,
}

static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();

fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // The sender lives in a static and is never dropped, so `rx.recv()` never fails and
        // this thread lives exactly as long as the process: the parent-death signal of the
        // children it forks fires only when the process itself ends.
        std::thread::Builder::new()
            .name("airlock-testenv-spawner".into())
            .spawn(move || {
                while let Ok(mut request) = rx.recv() {
                    let result = spawn_here(&mut request.command, request.signal);
                    let _ = request.reply.send(result);
                }
            })
            .expect("cannot start the airlock-testenv spawner thread");
        tx
    })
}

fn spawn_here(command: &mut Command, signal: DeathSignal) -> io::Result<Child> {
    let parent = std::process::id();
    let raw = signal.raw();
    command.process_group(0);
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only calls the
    // async-signal-safe functions prctl(2) and getppid(2); it allocates nothing, takes no lock
    // and touches no state shared with other threads.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, raw as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Spawns `command` so that it is signalled with `signal` when this process ends, however it
/// ends. The child is put in its own process group.
pub fn spawn_supervised(command: Command, signal: DeathSignal) -> Result<Child> {
    let program = command.get_program().to_string_lossy().into_owned();
    let (reply, answer) = mpsc::channel();
    spawner()
        .send(SpawnRequest {
            command,
            signal,
            reply,
        })
        .map_err(|_| anyhow::anyhow!("the airlock-testenv spawner thread is gone"))?;
    answer
        .recv()
        .context("the airlock-testenv spawner thread dropped a request")?
        .with_context(|| format!("cannot start {program}"))
}

/// Removes a directory when this process ends, even when no destructor runs.
#[derive(Debug)]
pub struct Janitor {
    child: Child,
    pipe: Option<ChildStdin>,
}

const JANITOR_SCRIPT: &str = r#"trap '' INT TERM HUP
cat >/dev/null 2>&1
rm -rf -- "$1" 2>/dev/null || { sleep 1; rm -rf -- "$1" 2>/dev/null; }
exit 0"#;

impl Janitor {
    /// Starts a janitor for `dir`.
    pub fn watch(dir: &Path) -> Result<Janitor> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(JANITOR_SCRIPT)
            .arg("airlock-testenv-janitor")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start the temp-dir janitor (sh)")?;
        let pipe = child.stdin.take();
        Ok(Janitor { child, pipe })
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}
