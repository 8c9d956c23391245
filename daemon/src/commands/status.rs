//! `status`: the daemon, the user, the tracker in use, and how peers reach it.

use crate::daemon::Daemon;
use crate::reach::Reach;
use p2p_proto::ErrorReply;
use p2p_proto::control::{CtlReply, DaemonStatus, MappingStatus, ReachStatus};

pub async fn run(daemon: &Daemon) -> Result<CtlReply, ErrorReply> {
    let session = daemon.session.get();
    // Probe the link so `tracker:` names the tracker in use now, not an hour ago.
    let _ = daemon
        .tracker
        .call(None, p2p_proto::tracker::TrackerCall::Ping)
        .await;
    let link = daemon.tracker.status();
    Ok(CtlReply::Status(Box::new(DaemonStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        user: session.map(|s| s.user),
        fingerprint: daemon.tracker.identity().fingerprint().to_string(),
        tracker: link.current.map(|a| a.to_string()),
        tracker_fingerprint: link.current_key.map(|k| k.to_string()),
        last_tracker_error: link.last_error,
        socket: daemon.config.socket.clone(),
        state_dir: daemon.config.state_dir.clone(),
        reach: reach_status(&daemon.plane.reach),
    })))
}

fn reach_status(reach: &Reach) -> ReachStatus {
    let seen = reach.seen.get();
    let mapping = *reach.mapping.borrow();
    ReachStatus {
        listen: reach.listen.to_string(),
        observed: seen.as_ref().map(|s| s.observed.clone()),
        public_addr: seen.as_ref().map(|s| s.addr.clone()),
        reachable: seen.as_ref().and_then(|s| s.reachable),
        mapping: mapping.map(|m| MappingStatus {
            protocol: m.protocol.as_str().to_string(),
            external: m.external.to_string(),
            lifetime_secs: m.lifetime.as_secs(),
        }),
        ipv6: seen.map(|s| s.ipv6).unwrap_or_default(),
    }
}
