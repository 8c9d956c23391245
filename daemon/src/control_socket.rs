//! The control socket: created safely, served one command per request frame.
//!
//! The socket's directory is made 0700 and the socket's mode is set to 0600 between `bind` and
//! `listen`, so there is no moment when another user could connect. Each connection's peer uid
//! is checked (SO_PEERCRED) and must be ours; its first frame must arrive within
//! [`HANDSHAKE_TIMEOUT`] and carry the control protocol's version.

use crate::commands;
use crate::daemon::Daemon;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};
use p2p_proto::control::{CtlRequest, CtlResponse};
use p2p_proto::limits::{HANDSHAKE_TIMEOUT, MAX_CONTROL_FRAME, TRACKER_IDLE_TIMEOUT};
use p2p_proto::paths::{self, DirError};
use p2p_proto::{ErrorKind, ErrorReply, FrameError, MessageStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("another p2pd is already answering at {0}")]
    InUse(std::path::PathBuf),
    #[error("cannot remove stale socket {path}: {source}")]
    Stale {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot {op} control socket {path}: {source}")]
    Sys {
        op: &'static str,
        path: std::path::PathBuf,
        source: nix::Error,
    },
}

/// Makes the socket's directory (0700) when it is missing, and refuses one that is not ours
/// alone: a symlink, owned by another user, or writable by group or others. Under
/// `$XDG_RUNTIME_DIR`, the runtime dir is held to the same rule.
pub fn ensure_socket_dir(socket: &Path) -> Result<(), SocketError> {
    let Some(dir) = paths::socket_dir(socket) else {
        return Ok(());
    };
    paths::ensure_private_dir(dir)?;
    paths::check_socket_location(socket)?;
    Ok(())
}

/// Binds the control socket at `path` with mode 0600 and returns a std listener (usable before
/// and after daemonizing). A socket file nobody answers on is left over from a killed daemon
/// and is replaced; one that answers belongs to a live daemon and is refused.
pub fn bind_control_socket(path: &Path) -> Result<std::os::unix::net::UnixListener, SocketError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|source| SocketError::Stale {
            path: path.to_path_buf(),
            source,
        })?;
        tracing::info!(path = %path.display(), "removed stale control socket");
    }
    let sys = |op| {
        move |source| SocketError::Sys {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys("create"))?;
    let addr = UnixAddr::new(path).map_err(sys("address"))?;
    bind(fd.as_raw_fd(), &addr).map_err(sys("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        SocketError::Sys {
            op: "chmod",
            path: path.to_path_buf(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
        }
    })?;
    listen(&fd, Backlog::MAXCONN).map_err(sys("listen"))?;
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(|e| SocketError::Sys {
            op: "configure",
            path: path.to_path_buf(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    Ok(listener)
}

/// Accepts `p2pctl` connections until `shutdown`, then waits for the ones in progress.
pub async fn serve(listener: UnixListener, daemon: Arc<Daemon>, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == my_uid => {}
            Ok(cred) => {
                tracing::warn!(
                    uid = cred.uid(),
                    "refused control connection from another user"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read control peer credentials");
                continue;
            }
        }
        let daemon = Arc::clone(&daemon);
        let shutdown = shutdown.clone();
        tasks.spawn(async move { connection(stream, daemon, shutdown).await });
    }
    tasks.close();
    tasks.wait().await;
}

async fn connection(stream: UnixStream, daemon: Arc<Daemon>, shutdown: CancellationToken) {
    let mut conn = MessageStream::new(stream, MAX_CONTROL_FRAME);
    let mut wait = HANDSHAKE_TIMEOUT;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = conn.recv_timeout::<CtlRequest>(wait) => next,
        };
        wait = TRACKER_IDLE_TIMEOUT;
        let request = match next {
            Ok(Some(request)) => request,
            Ok(None) | Err(FrameError::Timeout(_)) | Err(FrameError::Io(_)) => return,
            Err(e) => {
                tracing::info!(error = %e, "bad control frame; closing connection");
                let reply =
                    CtlResponse::new(Err(ErrorReply::new(ErrorKind::Protocol, e.to_string())));
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.send(&reply)).await;
                return;
            }
        };
        let result = commands::dispatch(&daemon, request.cmd).await;
        // A p2pctl that stopped reading (suspended, say) does not pin this task.
        let sent =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.send(&CtlResponse::new(result))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}
