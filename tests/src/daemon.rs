//! One user's `p2pd` and the `p2pctl` commands that talk to it.

use crate::assert::{stderr_of, stdout_of};
use crate::bins::bin;
use crate::cluster::{Cluster, log_file, sandbox};
use crate::process::{COMMAND_TIMEOUT, READY_TIMEOUT, run_bounded, tail, wait_for, wait_for_exit};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// The password the harness gives user `user`: distinctive, so a test can look for its bytes.
pub fn password_of(user: &str) -> String {
    format!("Zq8-{user}-secret-771")
}

/// One `p2pd` in `<tmp>/<name>/`: socket `<name>/run/p2pd.sock` (the daemon creates `run/`, so
/// its mode is the daemon's doing), state in `<name>/state`, stderr in `<name>/p2pd.stderr`.
pub struct Daemon {
    name: String,
    dir: PathBuf,
    root: PathBuf,
    tracker_info: PathBuf,
    /// Extra `p2pd` arguments (e.g. `--upload-limit 1M`), used by every start.
    extra_args: Vec<String>,
    /// The network namespace `p2pd` runs in, if not the test's own (`p2pctl` always runs in
    /// the test's: the control socket is a file), and its `--listen`.
    netns: Option<crate::netns::Netns>,
    listen: String,
    child: Option<Child>,
}

impl Daemon {
    pub(crate) fn new(cluster: &Cluster, name: &str) -> Self {
        let dir = cluster.root().join(name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self {
            name: name.to_string(),
            dir,
            root: cluster.root().to_path_buf(),
            tracker_info: cluster.tracker_info().to_path_buf(),
            extra_args: Vec::new(),
            netns: None,
            listen: "127.0.0.1:0".into(),
            child: None,
        }
    }

    /// Runs `p2pd` in namespace `netns`, listening on `listen`, from the next start on.
    pub fn set_netns(&mut self, netns: &crate::netns::Netns, listen: &str) {
        self.netns = Some(netns.clone());
        self.listen = listen.to_string();
    }

    /// Replaces the extra `p2pd` arguments given from the next [`start`](Self::start) or
    /// [`restart`](Self::restart) on.
    pub fn set_extra_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Uses `path` as the tracker_info.txt of `p2pd` and `p2pctl` from the next start on
    /// (e.g. one that lists only one of the cluster's trackers).
    pub fn set_tracker_info(&mut self, path: &Path) {
        self.tracker_info = path.to_path_buf();
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn socket(&self) -> PathBuf {
        self.socket_dir().join("p2pd.sock")
    }

    /// Where a daemonized `p2pd` writes its pid: beside the socket.
    pub fn pid_file(&self) -> PathBuf {
        self.socket_dir().join("p2pd.pid")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join("p2pd.stderr")
    }

    /// What the foreground `p2pd` wrote on stderr (its log) so far.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.stderr_path()).unwrap_or_default()).into_owned()
    }

    /// The tail of the foreground `p2pd`'s stderr (its log), for failure messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr_path(), lines)
    }

    /// `p2pd --foreground` with this daemon's socket, state dir and the cluster's trackers,
    /// in the sandbox; stdio not set up.
    pub fn p2pd_command(&self) -> Command {
        self.p2pd_command_with_state(&self.state_dir())
    }

    /// Like [`p2pd_command`](Self::p2pd_command) with another state dir.
    pub fn p2pd_command_with_state(&self, state_dir: &Path) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => ns.command(bin("p2pd")),
            None => Command::new(bin("p2pd")),
        };
        sandbox(&mut cmd, &self.root);
        cmd.arg("--foreground")
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--tracker-info")
            .arg(&self.tracker_info)
            .arg("--listen")
            .arg(&self.listen)
            .args(&self.extra_args);
        cmd
    }

    /// Starts `p2pd --foreground` and waits until `p2pctl status` answers.
    pub fn start(&mut self) {
        assert!(
            !self.is_running(),
            "p2pd of {} is running already",
            self.name
        );
        let mut cmd = self.p2pd_command();
        cmd.stdin(Stdio::null())
            .stdout(log_file(&self.dir.join("p2pd.stdout")))
            .stderr(log_file(&self.stderr_path()));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start p2pd: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let what = format!("p2pd of {} to answer `p2pctl status`", self.name);
        wait_for(&what, READY_TIMEOUT, || {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("try_wait")
            {
                panic!(
                    "p2pd of {} exited with {status} before it was ready; stderr:\n{}",
                    self.name,
                    tail(&self.stderr_path(), 40)
                );
            }
            let out = self.ctl(&["status"]);
            if out.status.success() {
                Ok(())
            } else {
                Err(stderr_of(&out))
            }
        });
    }

    /// True while the foreground `p2pd` started by [`start`](Self::start) runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Pid of the foreground `p2pd`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap the foreground `p2pd`.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("p2pd was not started");
        child.kill().expect("cannot kill p2pd");
        child.wait().expect("cannot reap p2pd");
    }

    /// Starts the foreground `p2pd` again after it stopped.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = child.try_wait().expect("try_wait");
            assert!(status.is_some(), "restart of a p2pd that still runs");
        }
        self.start();
    }

    /// Sends SIGTERM to the foreground `p2pd` and waits for it to exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("p2pd was not started");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("cannot signal p2pd");
        wait_for_exit(&mut child, "p2pd after SIGTERM")
    }

    /// `p2pctl --socket <socket>` in the sandbox, with `P2PD_STATE_DIR` and `P2P_TRACKER_INFO`
    /// set so that a daemon `p2pctl` autostarts lands in this daemon's directory.
    pub fn ctl_command(&self) -> Command {
        let mut cmd = Command::new(bin("p2pctl"));
        sandbox(&mut cmd, &self.root);
        cmd.env("P2PD_STATE_DIR", self.state_dir())
            .env("P2P_TRACKER_INFO", &self.tracker_info)
            .arg("--socket")
            .arg(self.socket());
        cmd
    }

    /// Runs `p2pctl --socket <socket> <args...>` with stdin at /dev/null.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = self.ctl_command();
        cmd.args(args);
        run_bounded(&mut cmd, None, COMMAND_TIMEOUT)
    }

    /// Runs `p2pctl --socket <socket> <args...>` with `dir` as its working directory, so that
    /// relative paths in `args` are relative to `dir`.
    pub fn ctl_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = self.ctl_command();
        cmd.current_dir(dir).args(args);
        run_bounded(&mut cmd, None, COMMAND_TIMEOUT)
    }

    /// Runs `p2pctl --socket <socket> <args...>` with `input` on stdin.
    pub fn ctl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut cmd = self.ctl_command();
        cmd.args(args);
        run_bounded(&mut cmd, Some(input.as_bytes()), COMMAND_TIMEOUT)
    }

    /// Runs `p2pctl --json <args...>` and parses the one JSON object it prints.
    pub fn ctl_json(&self, args: &[&str]) -> (Output, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        let stdout = stdout_of(&out);
        let value: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "p2pctl --json {args:?} printed no single JSON object ({e}); status {:?}\n\
                 --- stdout ---\n{stdout}\n--- stderr ---\n{}",
                out.status,
                stderr_of(&out)
            )
        });
        assert_eq!(
            value["v"], 1,
            "--json output carries \"v\":1 ({args:?}): {value}"
        );
        (out, value)
    }

    /// Runs `p2pctl --json <args...>`, checks success, and returns the `reply` object.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let (out, value) = self.ctl_json(args);
        assert!(
            out.status.success() && value["ok"] == true,
            "p2pctl --json {args:?} failed: status {:?}; stdout {value}; stderr {}",
            out.status,
            stderr_of(&out)
        );
        value["reply"].clone()
    }

    /// Runs `p2pctl --json <args...>`, checks that it failed with exit status 1, and returns
    /// the `error` object (`kind`, `message`).
    #[track_caller]
    pub fn json_err(&self, args: &[&str]) -> Value {
        let (out, value) = self.ctl_json(args);
        assert!(
            out.status.code() == Some(1) && value["ok"] == false,
            "p2pctl --json {args:?} should have failed with status 1: status {:?}; \
             stdout {value}; stderr {}",
            out.status,
            stderr_of(&out)
        );
        let error = value["error"].clone();
        assert!(
            error["kind"].is_string() && error["message"].is_string(),
            "error object has a kind and a message: {value}"
        );
        error
    }

    /// Like [`json_err`](Self::json_err), and checks that `error.kind` is `kind`.
    #[track_caller]
    pub fn expect_kind(&self, args: &[&str], kind: &str) -> Value {
        let error = self.json_err(args);
        assert_eq!(
            error["kind"], kind,
            "p2pctl {args:?} should fail with kind {kind}, got {error}"
        );
        error
    }

    /// Like [`expect_kind`](Self::expect_kind), and checks that `error.message` contains
    /// `phrase`.
    #[track_caller]
    pub fn expect_error(&self, args: &[&str], kind: &str, phrase: &str) -> Value {
        let error = self.expect_kind(args, kind);
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(phrase)),
            "p2pctl {args:?} should say {phrase:?}, got {error}"
        );
        error
    }

    /// Runs a human-mode command that must succeed; returns its stdout without the final
    /// newline.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        crate::assert_ok(&out);
        let stdout = stdout_of(&out);
        stdout.strip_suffix('\n').unwrap_or(&stdout).to_string()
    }

    /// The groups of `list_groups --json`.
    #[track_caller]
    pub fn groups(&self) -> Vec<Value> {
        let reply = self.json(&["list_groups"]);
        assert_eq!(reply["reply"], "groups", "list_groups reply: {reply}");
        reply["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("list_groups reply without groups: {reply}"))
            .clone()
    }

    /// Group `group` as `list_groups --json` shows it, if it does.
    #[track_caller]
    pub fn group(&self, group: &str) -> Option<Value> {
        self.groups().into_iter().find(|g| g["group"] == group)
    }

    /// Group `group` as `list_groups --json` shows it; panics if it is not listed.
    #[track_caller]
    pub fn expect_group(&self, group: &str) -> Value {
        self.group(group).unwrap_or_else(|| {
            panic!(
                "{} does not see group {group}: {:?}",
                self.name,
                self.groups()
            )
        })
    }

    /// The users of `list_requests <group> --json`.
    #[track_caller]
    pub fn requests(&self, group: &str) -> Vec<String> {
        let reply = self.json(&["list_requests", group]);
        assert_eq!(reply["reply"], "requests", "list_requests reply: {reply}");
        assert_eq!(reply["group"], group, "list_requests reply: {reply}");
        reply["users"]
            .as_array()
            .unwrap_or_else(|| panic!("list_requests reply without users: {reply}"))
            .iter()
            .map(|u| u.as_str().expect("user ids are strings").to_string())
            .collect()
    }

    /// `create_user <user> <password_of(user)>`, which must succeed.
    #[track_caller]
    pub fn create_user(&self, user: &str) {
        let out = self.ctl(&["create_user", user, &password_of(user)]);
        crate::assert_ok(&out);
    }

    /// `login <user> <password_of(user)>`, which must succeed.
    #[track_caller]
    pub fn login(&self, user: &str) {
        let out = self.ctl(&["login", user, &password_of(user)]);
        crate::assert_ok(&out);
    }

    /// The `reply` of `p2pctl --json status`.
    #[track_caller]
    pub fn status(&self) -> Value {
        self.json(&["status"])
    }

    /// Kills the `p2pd` named in the pid file beside the socket, if that process is one of
    /// this daemon's (its command line or environment names this daemon's directory).
    fn kill_pid_file_daemon(&self) {
        let Ok(text) = std::fs::read_to_string(self.pid_file()) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        if pid <= 1 || Some(pid as u32) == self.pid() {
            return;
        }
        let marker = self.dir.to_string_lossy().into_owned();
        let ours = ["cmdline", "environ"].iter().any(|f| {
            std::fs::read(format!("/proc/{pid}/{f}"))
                .map(|b| String::from_utf8_lossy(&b).contains(&marker))
                .unwrap_or(false)
        });
        if ours {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.kill_pid_file_daemon();
        if std::thread::panicking() && self.stderr_path().exists() {
            eprintln!(
                "--- p2pd of {} stderr (tail) ---\n{}",
                self.name,
                tail(&self.stderr_path(), 40)
            );
        }
    }
}
