//! One network namespace of the test internet, by name: commands run inside it, processes
//! spawned inside it (killed on drop), and code of the test itself run inside it on a thread
//! of its own, so that the sockets it makes belong to the namespace.

use crate::process::{READY_TIMEOUT, deadline_wait, tail};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A network namespace made by `ip netns add` (so it is `/run/netns/<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub(crate) fn new(name: String) -> Self {
        Self { name }
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: add arguments and run it. `ip` execs the program, so
    /// the child's pid is the program's.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args` inside the namespace, bounded by `timeout`, and checks it exits 0;
    /// returns its stdout.
    #[track_caller]
    pub fn run_ok(&self, program: &str, args: &[&str], timeout: std::time::Duration) -> String {
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = crate::process::run_bounded(&mut cmd, None, timeout);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{program} {args:?} in {} exited with {}; stdout: {stdout}; stderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Starts `program args` inside the namespace as a long-running process, its stdout and
    /// stderr in `log`; killed when the returned value is dropped.
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: &[S],
        log: &Path,
    ) -> NsProcess {
        let mut cmd = self.command(program);
        cmd.args(args);
        NsProcess::spawn(cmd, log)
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns what it returns:
    /// sockets made in `f` stay in the namespace for their whole life, wherever they are used.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path)
                        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                    // Only this thread moves: a network namespace is per thread.
                    setns(&file, CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("cannot enter {}: {e}", self.name));
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Writes one sysctl of the namespace (`net/ipv4/ip_forward`…): files under
    /// /proc/sys/net are those of the network namespace of the thread that opens them.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = Path::new("/proc/sys").join(key);
        self.enter(|| std::fs::write(&path, value))
            .unwrap_or_else(|e| panic!("cannot set {} in {}: {e}", path.display(), self.name));
    }

    pub(crate) fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

/// A process started inside a namespace; SIGKILLed and reaped when dropped.
pub struct NsProcess {
    child: Child,
    what: String,
    log: PathBuf,
}

impl NsProcess {
    /// Spawns `cmd` with stdin from /dev/null and stdout and stderr in `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Self {
        let file =
            File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", log.display()));
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let what = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self {
            child,
            what,
            log: log.to_path_buf(),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with its exit status and the end of its log if it has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited with {status}: {}",
                self.what,
                tail(&self.log, 20)
            )),
            Err(e) => Err(format!("cannot wait for {}: {e}", self.what)),
        }
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Kills it and waits for it (up to [`READY_TIMEOUT`]).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = deadline_wait(&mut self.child, READY_TIMEOUT);
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
