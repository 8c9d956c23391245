//! `status`: the daemon, the user, the tracker in use.

use crate::daemon::Daemon;
use p2p_proto::ErrorReply;
use p2p_proto::control::{CtlReply, DaemonStatus};

pub async fn run(daemon: &Daemon) -> Result<CtlReply, ErrorReply> {
    let session = daemon.session.get();
    // Probe the link so `tracker:` names the tracker in use now, not an hour ago.
    let _ = daemon
        .tracker
        .call(None, p2p_proto::tracker::TrackerCall::Ping)
        .await;
    let link = daemon.tracker.status();
    Ok(CtlReply::Status(DaemonStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        user: session.map(|s| s.user),
        fingerprint: daemon.tracker.identity().fingerprint().to_string(),
        tracker: link.current.map(|a| a.to_string()),
        tracker_fingerprint: link.current_key.map(|k| k.to_string()),
        last_tracker_error: link.last_error,
        socket: daemon.config.socket.clone(),
        state_dir: daemon.config.state_dir.clone(),
    }))
}
