//! Running processes with deadlines, and polling for conditions.

use std::fs::File;
use std::io::Write;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long a process may take to become ready, or to exit when asked to.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one `p2pctl` command may run before the test calls it hung. Generous: it only
/// bounds a hang, it is not a performance assertion.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `check` every `interval` until it gives `Ok`; after `timeout`, the last `Err`.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => thread::sleep(interval),
        }
    }
}

/// Polls `check` every [`POLL_INTERVAL`] until it gives `Ok`, and returns that value; panics
/// with `what` and the last `Err` once `timeout` has passed.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    wait_for_every(what, timeout, POLL_INTERVAL, check)
}

/// Like [`wait_for`], polling every `interval`: for a check that is costly or that asks a
/// program which retries by itself (a `p2pctl` command), so the test does not add a retry
/// storm of its own.
#[track_caller]
pub fn wait_for_every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> T {
    poll_until(timeout, interval, check).unwrap_or_else(|last| {
        panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
    })
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running then.
pub fn deadline_wait(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll_until(timeout, POLL_INTERVAL, || {
        match child.try_wait().expect("try_wait failed") {
            Some(status) => Ok(status),
            None => Err(String::new()),
        }
    })
    .ok()
}

/// Waits up to [`READY_TIMEOUT`] for `child` to exit; kills it and panics if it does not.
pub fn wait_for_exit(child: &mut Child, what: &str) -> ExitStatus {
    match deadline_wait(child, READY_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {READY_TIMEOUT:?}");
        }
    }
}

/// Runs `cmd` to completion with `input` on its stdin (stdin is /dev/null when `None`),
/// capturing stdout and stderr through files so that a grandchild holding them open (a daemon
/// `p2pctl` started) cannot make us wait. Kills it and panics if it runs longer than
/// `timeout`.
pub fn run_bounded(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let out = tempfile::tempfile().expect("cannot create a temp file for stdout");
    let err = tempfile::tempfile().expect("cannot create a temp file for stderr");
    cmd.stdout(out.try_clone().expect("dup stdout file"))
        .stderr(err.try_clone().expect("dup stderr file"))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // The program may legitimately exit without reading everything.
        let _ = stdin.write_all(input);
    }
    let status = match deadline_wait(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {timeout:?}; stdout: {}; stderr: {}",
                read_all(out),
                read_all(err)
            );
        }
    };
    Output {
        status,
        stdout: read_all(out).into_bytes(),
        stderr: read_all(err).into_bytes(),
    }
}

fn read_all(mut file: File) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last `lines` lines of a log file, for failure reports.
pub(crate) fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
