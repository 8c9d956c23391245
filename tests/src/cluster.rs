//! A tracker pair on loopback, in a temp dir of its own, and the sandbox every process of a
//! test runs in.

use crate::bins::bin;
use crate::daemon::Daemon;
use crate::netns::Netns;
use crate::process::{READY_TIMEOUT, poll_until, tail};
use crate::status::TrackerStatus;
use crate::tracker::Tracker;
use nix::sys::signal::Signal;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tempfile::TempDir;

/// How often a tracker is asked for its `status` while waiting for one.
const STATUS_POLL: Duration = Duration::from_millis(100);

/// Two trackers listed in a `tracker_info.txt`, their data dirs and logs, all under one temp
/// dir that goes away with the cluster. Daemons made from a cluster live in the same dir.
pub struct Cluster {
    // Fields drop in order: the trackers must be gone before their directory is.
    trackers: [Option<Tracker>; 2],
    tracker_info: PathBuf,
    addrs: [SocketAddr; 2],
    /// Extra `trackerd` arguments (e.g. `--grant-lifetime 3s`), given to every tracker start.
    tracker_args: Vec<String>,
    /// The network namespace the trackers run in (the test internet's public network), if
    /// not the test's own.
    netns: Option<Netns>,
    dir: TempDir,
}

impl Cluster {
    /// Prepares the directory and `tracker_info.txt`; starts no process.
    pub fn new() -> Self {
        Self::with_addrs(free_ports(), None)
    }

    /// A cluster whose trackers run in namespace `netns` (the test internet's public network)
    /// at `addrs`; starts no process.
    pub fn in_netns(netns: &Netns, addrs: [SocketAddr; 2]) -> Self {
        Self::with_addrs(addrs, Some(netns.clone()))
    }

    fn with_addrs(addrs: [SocketAddr; 2], netns: Option<Netns>) -> Self {
        // Resolve the binaries first: a missing build should fail before anything else.
        crate::bins::bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("p2p-e2e-")
            .tempdir()
            .expect("cannot create a temp dir");
        let root = dir.path();
        for sub in ["home", "xdg-state", "xdg-config", "xdg-runtime", "logs"] {
            std::fs::create_dir_all(root.join(sub)).expect("cannot create sandbox dirs");
        }
        std::fs::set_permissions(
            root.join("xdg-runtime"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod xdg-runtime");
        let tracker_info = root.join("tracker_info.txt");
        std::fs::write(&tracker_info, format!("{}\n{}\n", addrs[0], addrs[1]))
            .expect("cannot write tracker_info.txt");
        Self {
            dir,
            tracker_info,
            addrs,
            tracker_args: Vec::new(),
            netns,
            trackers: [None, None],
        }
    }

    /// The namespace the trackers run in, if not the test's own.
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// A cluster whose trackers are started with the extra `trackerd` arguments `args`
    /// (e.g. `["--grant-lifetime", "3s"]`); starts no process.
    pub fn with_tracker_args(args: &[&str]) -> Self {
        let mut cluster = Self::new();
        cluster.set_tracker_args(args);
        cluster
    }

    /// Like [`start`](Self::start), both trackers started with the extra arguments `args`.
    pub fn start_with_tracker_args(args: &[&str]) -> Self {
        let mut cluster = Self::with_tracker_args(args);
        cluster.start_tracker(1);
        cluster.start_tracker(2);
        cluster
    }

    /// Replaces the extra `trackerd` arguments given from the next tracker start on.
    pub fn set_tracker_args(&mut self, args: &[&str]) {
        self.tracker_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// The extra `trackerd` arguments every tracker start gets.
    pub fn tracker_args(&self) -> &[String] {
        &self.tracker_args
    }

    /// A cluster whose `tracker_info.txt` names each tracker's key fingerprint (as
    /// `trackerd --fingerprint` prints it, asked before the tracker first starts), so daemons
    /// accept only those keys; both trackers started.
    pub fn start_fingerprinted() -> Self {
        let mut cluster = Self::new();
        cluster.write_fingerprinted_tracker_info();
        cluster.start_tracker(1);
        cluster.start_tracker(2);
        cluster
    }

    /// Rewrites `tracker_info.txt` with each tracker's fingerprint after its address (making
    /// the trackers' keys if they have none yet).
    pub fn write_fingerprinted_tracker_info(&self) {
        let lines: Vec<String> = (1..=2)
            .map(|no| {
                format!(
                    "{} {}\n",
                    self.tracker_addr(no),
                    self.tracker_fingerprint(no)
                )
            })
            .collect();
        std::fs::write(&self.tracker_info, lines.concat()).expect("cannot write tracker_info.txt");
    }

    /// Tracker `no`'s key fingerprint, from `trackerd <info> <no> --data-dir <dir>
    /// --fingerprint` (which makes the key if there is none yet).
    #[track_caller]
    pub fn tracker_fingerprint(&self, no: usize) -> String {
        let mut cmd = self.trackerd();
        cmd.arg(self.tracker_info())
            .arg(no.to_string())
            .arg("--data-dir")
            .arg(self.tracker_data_dir(no))
            .arg("--fingerprint");
        let out = crate::process::run_bounded(&mut cmd, None, READY_TIMEOUT);
        crate::assert_ok(&out);
        let line = crate::assert_one_line(
            &crate::stdout_of(&out),
            "the output of trackerd --fingerprint",
        );
        assert!(
            line.starts_with("sha256:") && line.len() == 7 + 64,
            "trackerd --fingerprint printed {line:?}"
        );
        line
    }

    /// A cluster with both trackers started and accepting connections.
    pub fn start() -> Self {
        let mut cluster = Self::new();
        cluster.start_tracker(1);
        cluster.start_tracker(2);
        cluster
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn tracker_info(&self) -> &Path {
        &self.tracker_info
    }

    /// Address of tracker `no` (1 or 2).
    pub fn tracker_addr(&self, no: usize) -> SocketAddr {
        self.addrs[no - 1]
    }

    /// Both tracker addresses, as strings.
    pub fn tracker_addrs(&self) -> Vec<String> {
        self.addrs.iter().map(|a| a.to_string()).collect()
    }

    /// The `--data-dir` given to tracker `no`.
    pub fn tracker_data_dir(&self, no: usize) -> PathBuf {
        self.root().join(format!("tracker-{no}"))
    }

    /// A `trackerd` command inside the sandbox (working dir and environment), no arguments.
    pub fn trackerd(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => ns.command(bin("trackerd")),
            None => Command::new(bin("trackerd")),
        };
        sandbox(&mut cmd, self.root());
        cmd
    }

    /// Starts tracker `no` with a piped stdin and waits until it accepts connections.
    pub fn start_tracker(&mut self, no: usize) {
        self.start_tracker_with(no, true);
    }

    /// Starts tracker `no` with stdin at /dev/null (EOF at once) and waits until it is ready.
    pub fn start_tracker_stdin_null(&mut self, no: usize) {
        self.start_tracker_with(no, false);
    }

    fn start_tracker_with(&mut self, no: usize, piped_stdin: bool) {
        if let Some(old) = self.trackers[no - 1].as_mut() {
            assert!(!old.is_running(), "tracker {no} is running already");
        }
        self.trackers[no - 1] = None;
        let tracker = Tracker::spawn(self, no, piped_stdin);
        self.trackers[no - 1] = Some(tracker);
        self.tracker(no).wait_ready();
    }

    /// The running (or exited) tracker `no`. Panics if it was never started.
    pub fn tracker(&mut self, no: usize) -> &mut Tracker {
        self.trackers[no - 1]
            .as_mut()
            .unwrap_or_else(|| panic!("tracker {no} was not started"))
    }

    /// Writes `quit` to tracker `no`'s stdin and returns its exit status.
    pub fn quit_tracker(&mut self, no: usize) -> ExitStatus {
        self.tracker(no).quit()
    }

    /// Sends SIGTERM to tracker `no` and returns its exit status.
    pub fn sigterm_tracker(&mut self, no: usize) -> ExitStatus {
        self.tracker(no).signal(Signal::SIGTERM)
    }

    /// A `p2pd` for `name`, started and answering `status`.
    pub fn daemon(&self, name: &str) -> Daemon {
        let mut daemon = Daemon::new(self, name);
        daemon.start();
        daemon
    }

    /// A started daemon for a new user `name` whose `p2pd` runs in namespace `netns` and
    /// listens on `listen`, with the extra arguments `args`; created and logged in.
    pub fn user_in(&self, name: &str, netns: &Netns, listen: &str, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::new(self, name);
        daemon.set_netns(netns, listen);
        daemon.set_extra_args(args);
        daemon.start();
        daemon.create_user(name);
        daemon.login(name);
        daemon
    }

    /// A daemon handle for `name` whose `p2pd` is not started: `p2pctl` through it talks to an
    /// empty socket path, with the environment that lets `p2pctl` autostart one.
    pub fn daemon_unstarted(&self, name: &str) -> Daemon {
        Daemon::new(self, name)
    }

    /// A started daemon for a new user `name`, created and logged in with
    /// [`password_of`](crate::password_of)`(name)`.
    pub fn user(&self, name: &str) -> Daemon {
        let daemon = self.daemon(name);
        daemon.create_user(name);
        daemon.login(name);
        daemon
    }

    /// Like [`user`](Self::user), with `p2pd` started with the extra arguments `args`
    /// (e.g. `["--upload-limit", "1M"]`).
    pub fn user_with(&self, name: &str, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::new(self, name);
        daemon.set_extra_args(args);
        daemon.start();
        daemon.create_user(name);
        daemon.login(name);
        daemon
    }

    /// SIGKILL tracker `no` (no clean shutdown) and reap it.
    pub fn kill9_tracker(&mut self, no: usize) {
        self.tracker(no).kill9();
    }

    /// Freezes tracker `no` with SIGSTOP: it keeps its port (the kernel still accepts
    /// connections) but answers nothing.
    pub fn freeze_tracker(&mut self, no: usize) {
        self.tracker(no).send_signal(Signal::SIGSTOP);
    }

    /// Continues a tracker frozen by [`freeze_tracker`](Self::freeze_tracker).
    pub fn thaw_tracker(&mut self, no: usize) {
        self.tracker(no).send_signal(Signal::SIGCONT);
    }

    /// The `status` line of tracker `no`, parsed.
    #[track_caller]
    pub fn tracker_status(&mut self, no: usize) -> TrackerStatus {
        self.tracker(no).status()
    }

    /// Polls `status` of tracker `no` until `ok` holds, for at most `timeout`; returns it.
    #[track_caller]
    pub fn wait_tracker_status(
        &mut self,
        no: usize,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&TrackerStatus) -> bool,
    ) -> TrackerStatus {
        let tracker = self.tracker(no);
        let polled = poll_until(timeout, STATUS_POLL, || {
            assert!(
                tracker.is_running(),
                "tracker {no} exited while waiting for {what}; stderr:\n{}",
                tracker.stderr_tail(40)
            );
            match tracker.try_status(READY_TIMEOUT) {
                Ok(status) if ok(&status) => Ok(status),
                Ok(status) => Err(status.line),
                Err(e) => Err(e),
            }
        });
        polled.unwrap_or_else(|last| {
            panic!(
                "timed out after {timeout:?} waiting for tracker {no}: {what}; last status: \
                 {last}\n--- tracker {no} stderr (tail) ---\n{}",
                tracker.stderr_tail(40)
            )
        })
    }

    /// Polls both trackers' `status` until `standby` follows `primary` and holds everything
    /// it has: standby `role=standby ... (following the primary)`, primary `role=primary ...
    /// (standby attached, acknowledged N, lag 0)`, equal `last_seq` and epoch. Returns
    /// (primary, standby) status.
    #[track_caller]
    pub fn wait_caught_up(
        &mut self,
        primary: usize,
        standby: usize,
        timeout: Duration,
    ) -> (TrackerStatus, TrackerStatus) {
        let polled = poll_until(timeout, STATUS_POLL, || {
            for no in [primary, standby] {
                let tracker = self.tracker(no);
                assert!(
                    tracker.is_running(),
                    "tracker {no} exited while waiting for tracker {standby} to catch up; \
                     stderr:\n{}",
                    tracker.stderr_tail(40)
                );
            }
            let p = self.tracker(primary).try_status(READY_TIMEOUT);
            let s = self.tracker(standby).try_status(READY_TIMEOUT);
            match (p, s) {
                (Ok(p), Ok(s))
                    if p.has_standby_caught_up()
                        && s.is_following()
                        && p.last_seq == s.last_seq
                        && p.epoch == s.epoch =>
                {
                    Ok((p, s))
                }
                (p, s) => Err(format!(
                    "tracker {primary}: {}; tracker {standby}: {}",
                    p.map(|x| x.line).unwrap_or_else(|e| e),
                    s.map(|x| x.line).unwrap_or_else(|e| e)
                )),
            }
        });
        polled.unwrap_or_else(|last| {
            panic!(
                "timed out after {timeout:?} waiting for tracker {standby} to follow tracker \
                 {primary} and catch up; last: {last}\n--- tracker {primary} stderr (tail) \
                 ---\n{}\n--- tracker {standby} stderr (tail) ---\n{}",
                self.tracker(primary).stderr_tail(30),
                self.tracker(standby).stderr_tail(30)
            )
        })
    }

    /// Panics if a log of any process of this cluster reports a panic.
    pub fn assert_no_panics(&self) {
        let mut logs = Vec::new();
        collect_files(self.root(), &mut logs);
        for path in logs {
            let is_log = path
                .extension()
                .is_some_and(|e| e == "stderr" || e == "stdout" || e == "log");
            if !is_log {
                continue;
            }
            let text =
                String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
            assert!(
                !text.contains("panicked at"),
                "{} reports a panic:\n{}",
                path.display(),
                tail(&path, 40)
            );
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

/// Every regular file under `dir`, recursively.
pub(crate) fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Two distinct free loopback ports: both are bound at once so they differ, then released for
/// the trackers.
fn free_ports() -> [SocketAddr; 2] {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    [a.local_addr().unwrap(), b.local_addr().unwrap()]
}

/// Points every location a program could default to into the sandbox, and drops the variables
/// of the environment that would change how the programs behave.
pub(crate) fn sandbox(cmd: &mut Command, root: &Path) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![crate::bins::bin_dir().to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    cmd.current_dir(root)
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .env("HOME", root.join("home"))
        .env("XDG_STATE_HOME", root.join("xdg-state"))
        .env("XDG_CONFIG_HOME", root.join("xdg-config"))
        .env("XDG_RUNTIME_DIR", root.join("xdg-runtime"))
        // No daemon of a test asks this machine's gateway for a port mapping (one that
        // p2pctl starts listens on every address); the port mapping tests give the flag.
        .env("P2PD_PORT_MAPPING", "off")
        .env_remove("P2PD_SOCKET")
        .env_remove("P2PD_STATE_DIR")
        .env_remove("P2P_TRACKER_INFO")
        .env_remove("STATE_DIRECTORY")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("RUST_BACKTRACE");
}

/// Opens a log file for appending, so restarts add to it.
pub(crate) fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}
