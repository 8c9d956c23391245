//! Reaching p2pd's control socket, and starting p2pd when no daemon answers.
//!
//! "No daemon" means the socket file is missing or nobody listens on it (a stale socket left by
//! a killed daemon); only then is a daemon started. Any other failure (permission denied, a
//! daemon that accepts nothing) is reported, since starting a second daemon would not help.
//! Nothing is sent on a socket before it is known to be the user's own daemon's (see
//! [`try_connect`]).

use crate::failure::{fail, io_reason};
use anyhow::Result;
use p2p_proto::ErrorKind;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::process::Child;
use tokio::time::Instant;

/// A local socket either accepts at once or the daemon is wedged; waiting longer helps nobody.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a freshly started daemon may take to open its socket (it opens redb first).
const START_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// After our p2pd failed to start, how long to keep looking for a daemon anyway: a p2pctl
/// running at the same moment may have started one, which made ours give up.
const FAILED_START_GRACE: Duration = Duration::from_secs(1);
/// How much of a failed p2pd's stderr is read, and for how long (a daemonized grandchild could
/// hold the pipe open).
const STDERR_LIMIT: u64 = 64 * 1024;
const STDERR_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a missing daemon is started or reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autostart {
    Yes,
    No,
}

/// Connects to the daemon at `socket`, starting one first if `autostart` says so.
pub async fn connect(socket: &Path, autostart: Autostart) -> Result<UnixStream> {
    match try_connect(socket).await {
        Ok(stream) => Ok(stream),
        Err(Attempt::NoDaemon(_)) if autostart == Autostart::Yes => start_and_connect(socket).await,
        Err(Attempt::NoDaemon(_)) => Err(fail(
            ErrorKind::Unavailable,
            format!("no p2pd is running at {}", socket.display()),
        )),
        Err(Attempt::Failed(err)) => Err(err),
    }
}

enum Attempt {
    /// Nobody answers: the socket is missing or refuses. Starting a daemon is the cure.
    NoDaemon(io::Error),
    Failed(anyhow::Error),
}

/// Connects to `socket` only if it is the user's own daemon: the socket's directory must be
/// private (ours, not writable by others, not a symlink) and the process listening must run as
/// our uid (SO_PEERCRED). Both are checked before a single byte is sent, so a password never
/// reaches a socket someone else planted.
async fn try_connect(socket: &Path) -> Result<UnixStream, Attempt> {
    // A missing directory means no daemon yet; the one we start makes it (0700).
    p2p_proto::paths::check_socket_location(socket)
        .map_err(|err| Attempt::Failed(fail(ErrorKind::PermissionDenied, err.to_string())))?;
    let stream = connect_socket(socket).await?;
    check_peer_uid(&stream, socket).map_err(Attempt::Failed)?;
    Ok(stream)
}

/// Refuses a socket whose listening process runs as another user (root included: p2pd runs as
/// the user it serves).
fn check_peer_uid(stream: &UnixStream, socket: &Path) -> Result<()> {
    let uid = p2p_proto::paths::current_uid();
    let cred = stream.peer_cred().map_err(|err| {
        fail(
            ErrorKind::PermissionDenied,
            format!(
                "cannot check who serves {}: {}",
                socket.display(),
                io_reason(&err)
            ),
        )
    })?;
    if cred.uid() != uid {
        return Err(fail(
            ErrorKind::PermissionDenied,
            format!(
                "refusing {}: it is served by uid {}, not by uid {uid} (not your p2pd); nothing \
                 was sent",
                socket.display(),
                cred.uid()
            ),
        ));
    }
    Ok(())
}

async fn connect_socket(socket: &Path) -> Result<UnixStream, Attempt> {
    match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) if means_no_daemon(&err) => Err(Attempt::NoDaemon(err)),
        Ok(Err(err)) => Err(Attempt::Failed(fail(
            ErrorKind::Unavailable,
            format!(
                "cannot connect to {}: {}",
                socket.display(),
                io_reason(&err)
            ),
        ))),
        Err(_) => Err(Attempt::Failed(fail(
            ErrorKind::Unavailable,
            format!(
                "p2pd at {} did not accept the connection within {}s",
                socket.display(),
                CONNECT_TIMEOUT.as_secs()
            ),
        ))),
    }
}

fn means_no_daemon(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Starts `p2pd --socket <socket>` and waits until it answers.
///
/// p2pd daemonizes itself: its first process exits 0 once the daemon is forked, or non-zero
/// with the reason on stderr. The socket is polled meanwhile rather than after that exit, so a
/// p2pd that stays in the foreground still works.
async fn start_and_connect(socket: &Path) -> Result<UnixStream> {
    let program = p2pd_program();
    let mut child = tokio::process::Command::new(&program)
        .arg("--socket")
        .arg(socket)
        // The daemon must not hold our terminal or the pipe a password came from, and must not
        // write into our stdout, which may be a `--json` consumer's pipe.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_error(&program, &err))?;

    let deadline = Instant::now() + START_TIMEOUT;
    let mut launcher_running = true;
    let mut failure: Option<(Instant, String)> = None;
    loop {
        let last_error = match try_connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(Attempt::NoDaemon(err)) => io_reason(&err),
            // Transient while the daemon sets its socket up; reported only if it persists.
            Err(Attempt::Failed(err)) => format!("{err:#}"),
        };
        if launcher_running && let Ok(Some(status)) = child.try_wait() {
            launcher_running = false;
            if !status.success() {
                let reason = launcher_stderr(&mut child)
                    .await
                    .unwrap_or_else(|| format!("p2pd exited with {status}"));
                failure = Some((Instant::now() + FAILED_START_GRACE, reason));
            }
        }
        let now = Instant::now();
        if let Some((give_up, reason)) = &failure
            && now >= *give_up
        {
            return Err(fail(
                ErrorKind::Unavailable,
                format!("cannot start p2pd: {reason}"),
            ));
        }
        if now >= deadline {
            return Err(fail(
                ErrorKind::Unavailable,
                format!(
                    "p2pd did not come up at {} within {}s (last error: {last_error})",
                    socket.display(),
                    START_TIMEOUT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `p2pd` beside our own executable (an installed or freshly built pair belongs together),
/// else whatever `p2pd` PATH finds.
fn p2pd_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("p2pd")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("p2pd"))
}

fn spawn_error(program: &Path, err: &io::Error) -> anyhow::Error {
    let reason = if err.kind() == io::ErrorKind::NotFound {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.display().to_string()))
            .unwrap_or_else(|| "p2pctl's directory".to_owned());
        format!("p2pd is neither in {beside} nor in PATH")
    } else {
        format!("cannot run {}: {}", program.display(), io_reason(err))
    };
    fail(
        ErrorKind::Unavailable,
        format!("cannot start p2pd: {reason}"),
    )
}

/// The last line p2pd wrote on stderr before it failed.
async fn launcher_stderr(child: &mut Child) -> Option<String> {
    let stderr = child.stderr.take()?;
    let mut buf = Vec::new();
    // A timeout keeps what was read so far in `buf`.
    let _ = tokio::time::timeout(
        STDERR_TIMEOUT,
        stderr.take(STDERR_LIMIT).read_to_end(&mut buf),
    )
    .await;
    last_line(&buf)
}

/// The last non-empty line of `output`, without a leading program name or "Error:" that
/// would repeat what "cannot start p2pd:" already says.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).rfind(|line| !line.is_empty())?;
    let line = line.strip_prefix("p2pd:").unwrap_or(line).trim_start();
    let line = line.strip_prefix("Error:").unwrap_or(line).trim_start();
    (!line.is_empty()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_of_stderr() {
        assert_eq!(
            last_line(b"starting\np2pd: cannot open /x/state.redb: permission denied\n\n"),
            Some("cannot open /x/state.redb: permission denied".into())
        );
        assert_eq!(
            last_line(b"Error: no tracker_info.txt found\r\n"),
            Some("no tracker_info.txt found".into())
        );
        assert_eq!(
            last_line(b"\xffbad bytes\n"),
            Some("\u{fffd}bad bytes".into())
        );
        assert_eq!(last_line(b""), None);
        assert_eq!(last_line(b"\n  \n"), None);
    }

    #[test]
    fn only_missing_or_refusing_sockets_start_a_daemon() {
        assert!(means_no_daemon(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(means_no_daemon(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
        assert!(!means_no_daemon(&io::Error::from(
            io::ErrorKind::PermissionDenied
        )));
    }

    #[tokio::test]
    async fn missing_socket_without_autostart_says_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p2pd.sock");
        let err = connect(&socket, Autostart::No).await.unwrap_err();
        let reply = crate::failure::describe(&err);
        assert_eq!(reply.kind, ErrorKind::Unavailable);
        assert_eq!(
            reply.message,
            format!("no p2pd is running at {}", socket.display())
        );
    }

    #[tokio::test]
    async fn stale_socket_without_autostart_says_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p2pd.sock");
        // Binding and dropping a std listener leaves the file behind with nobody listening.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let err = connect(&socket, Autostart::No).await.unwrap_err();
        assert!(format!("{err:#}").starts_with("no p2pd is running at"));
    }

    #[tokio::test]
    async fn a_socket_in_a_dir_others_can_write_is_not_even_connected_to() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
        let socket = run.join("p2pd.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let err = connect(&socket, Autostart::Yes).await.unwrap_err();
        let reply = crate::failure::describe(&err);
        assert_eq!(reply.kind, ErrorKind::PermissionDenied);
        assert!(
            reply.message.contains(&run.display().to_string()),
            "{reply:?}"
        );
        assert!(reply.message.contains("0777"), "{reply:?}");
        // Nobody connected: the check comes before `connect` (a queued connection would be
        // accepted at the first poll).
        let accepted = tokio::time::timeout(Duration::ZERO, listener.accept()).await;
        assert!(accepted.is_err(), "p2pctl connected to the planted socket");
    }

    #[tokio::test]
    async fn connects_to_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p2pd.sock");
        let _listener = tokio::net::UnixListener::bind(&socket).unwrap();
        assert!(connect(&socket, Autostart::No).await.is_ok());
    }
}
