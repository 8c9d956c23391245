//! `trust_tracker <host:port> <fingerprint>`: accepts a new key for a tracker whose key
//! changed (a reinstalled tracker), as `ssh` users edit known_hosts. Only for trackers of
//! tracker_info.txt whose line names no fingerprint (a listed one is changed by editing the
//! file).

use super::done;
use crate::daemon::Daemon;
use crate::tracker_pins::TrustError;
use p2p_proto::control::CtlReply;
use p2p_proto::identity::Fingerprint;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn tracker(
    daemon: &Daemon,
    tracker: String,
    fingerprint: String,
) -> Result<CtlReply, ErrorReply> {
    let key: Fingerprint = fingerprint
        .parse()
        .map_err(|e: p2p_proto::identity::BadFingerprint| ErrorReply::invalid(e.to_string()))?;
    let addr = daemon
        .pins
        .trust(&tracker, key, daemon.tracker.trackers())
        .await
        .map_err(|e| match e {
            TrustError::NotListed { .. } => ErrorReply::new(ErrorKind::NotFound, e.to_string()),
            TrustError::Configured { .. } => ErrorReply::new(ErrorKind::Conflict, e.to_string()),
            TrustError::State(e) => e.into(),
        })?;
    daemon.tracker.forget(addr);
    Ok(done(format!("tracker {addr} is trusted with key {key}")))
}
