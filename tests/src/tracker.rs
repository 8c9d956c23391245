//! One `trackerd` process of a [`Cluster`]: started with its logs in the cluster's directory,
//! asked for its `status` on stdin, stopped by `quit`, a signal or SIGKILL.

use crate::cluster::{Cluster, log_file};
use crate::process::{
    POLL_INTERVAL, READY_TIMEOUT, deadline_wait, poll_until, tail, wait_for, wait_for_exit,
};
use crate::status::TrackerStatus;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::time::Duration;

/// One `trackerd` process.
pub struct Tracker {
    no: usize,
    /// The namespace it runs in, if not the test's own.
    netns: Option<crate::netns::Netns>,
    addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
}

/// Every test user connects from 127.0.0.1: the per-address rates fit for the internet would
/// throttle the suite. A test of the throttles sets its own in `args`.
fn local_rates(args: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for flag in ["--logins-per-minute", "--accounts-per-hour"] {
        if !args.iter().any(|a| a == flag) {
            out.extend([flag, "100000"]);
        }
    }
    out
}

impl Tracker {
    pub(crate) fn spawn(cluster: &Cluster, no: usize, piped_stdin: bool) -> Self {
        let logs = cluster.root().join("logs");
        let stderr_path = logs.join(format!("tracker-{no}.stderr"));
        let stdout_path = logs.join(format!("tracker-{no}.stdout"));
        let mut cmd = cluster.trackerd();
        cmd.arg(cluster.tracker_info())
            .arg(no.to_string())
            .arg("--data-dir")
            .arg(cluster.tracker_data_dir(no))
            .args(local_rates(cluster.tracker_args()))
            .args(cluster.tracker_args())
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log_file(&stdout_path))
            .stderr(log_file(&stderr_path));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start trackerd: {e}"));
        let stdin = child.stdin.take();
        Self {
            no,
            netns: cluster.netns().cloned(),
            addr: cluster.tracker_addr(no),
            child,
            stdin,
            stderr_path,
            stdout_path,
        }
    }

    /// Polls a TCP connect to the tracker's port until it succeeds.
    pub(crate) fn wait_ready(&mut self) {
        let addr = self.addr;
        let no = self.no;
        let stderr_path = self.stderr_path.clone();
        let child = &mut self.child;
        let netns = self.netns.clone();
        wait_for(
            &format!("tracker {no} to listen on {addr}"),
            READY_TIMEOUT,
            || {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    panic!(
                        "tracker {no} exited with {status} before listening; stderr:\n{}",
                        tail(&stderr_path, 40)
                    );
                }
                let connect = || {
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                        .map(drop)
                        .map_err(|e| e.to_string())
                };
                match &netns {
                    Some(ns) => ns.enter(connect),
                    None => connect(),
                }
            },
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Writes `quit` on its stdin and waits for it to exit.
    pub fn quit(&mut self) -> ExitStatus {
        let stdin = self
            .stdin
            .as_mut()
            .expect("this tracker was started without a piped stdin");
        stdin.write_all(b"quit\n").expect("cannot write quit");
        stdin.flush().expect("cannot flush quit");
        wait_for_exit(&mut self.child, &format!("tracker {} after quit", self.no))
    }

    /// Sends `signal` and waits for it to exit.
    pub fn signal(&mut self, signal: Signal) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("cannot signal trackerd");
        wait_for_exit(
            &mut self.child,
            &format!("tracker {} after {signal}", self.no),
        )
    }

    /// Waits a bounded time for the process to exit by itself.
    pub fn try_wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        deadline_wait(&mut self.child, timeout)
    }

    /// The tail of its stderr (its log), for failure messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr_path, lines)
    }

    /// Sends `signal` without waiting for anything (SIGSTOP, SIGCONT, ...).
    pub fn send_signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to tracker {}: {e}", self.no));
    }

    /// SIGKILL, then reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.child.wait().expect("cannot reap trackerd");
    }

    /// Writes `status` on its stdin and returns the line it prints on stdout, parsed; `Err`
    /// if it cannot be asked or does not answer within `timeout` (e.g. it is stopped).
    pub fn try_status(&mut self, timeout: Duration) -> Result<TrackerStatus, String> {
        let no = self.no;
        let before = std::fs::metadata(&self.stdout_path).map_or(0, |m| m.len()) as usize;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("tracker {no} was started without a piped stdin"))?;
        stdin
            .write_all(b"status\n")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("cannot write `status` to tracker {no}: {e}"))?;
        let mut new = String::new();
        let found = poll_until(timeout, POLL_INTERVAL, || {
            let bytes = std::fs::read(&self.stdout_path).unwrap_or_default();
            new = String::from_utf8_lossy(bytes.get(before..).unwrap_or_default()).into_owned();
            // Only whole lines: the last one may still be being written.
            new.split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(str::trim)
                .find(|l| l.starts_with("role="))
                .map(TrackerStatus::parse)
                .ok_or_else(String::new)
        });
        found.map_err(|_| {
            format!(
                "tracker {no} printed no status line within {timeout:?}; stdout so far: {new:?}"
            )
        })?
    }

    /// Like [`try_status`](Self::try_status), panicking when it gets no answer in
    /// [`READY_TIMEOUT`].
    #[track_caller]
    pub fn status(&mut self) -> TrackerStatus {
        match self.try_status(READY_TIMEOUT) {
            Ok(status) => status,
            Err(e) => panic!("{e}; stderr:\n{}", tail(&self.stderr_path, 40)),
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- tracker {} stderr (tail) ---\n{}",
                self.no,
                tail(&self.stderr_path, 40)
            );
        }
    }
}
