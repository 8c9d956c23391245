//! The invited side of a hole punch or a relay: a downloader that cannot reach us directly
//! asked the tracker to have us meet it, and our poll brought the invite. We connect (towards
//! the downloader from our listening port, or out to the tracker's relay) and then serve the
//! connection as the peer server serves any other, as the TLS server, to the invited key only.

use super::dial;
use super::relay;
use crate::plane::Plane;
use crate::tracker_client::TrackerClient;
use p2p_proto::reach::{Invite, InviteKind, PUNCH_WINDOW};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The invited side of a punch lets the downloader's first SYN leave before its own: a SYN
/// of ours that reached a downloader whose gateway forwards its port (a mapping) before the
/// downloader's own connect left would land on its listener instead of meeting its connect.
/// The downloader connects as soon as the tracker answers, well within this.
const PUNCH_HEAD_START: Duration = Duration::from_millis(100);

/// Invites handled at once; more wait for a turn (an invite is at most a few seconds of
/// connecting, then one served connection).
pub const MAX_MEETINGS: usize = 64;

/// Handles the invites of one poll of `tracker`, in the background.
pub fn handle(
    plane: &Arc<Plane>,
    client: &Arc<TrackerClient>,
    tracker: Option<SocketAddr>,
    turns: &Arc<Semaphore>,
    invites: Vec<Invite>,
) {
    for invite in invites {
        let Ok(turn) = Arc::clone(turns).try_acquire_owned() else {
            tracing::warn!(user = %invite.user, "too many meetings at once; ignoring an invite");
            continue;
        };
        let (plane, client) = (Arc::clone(plane), Arc::clone(client));
        tokio::spawn(async move {
            let user = invite.user.clone();
            let how = match invite.kind {
                InviteKind::Punch { .. } => "punched",
                InviteKind::Relay => "relayed",
            };
            tokio::select! {
                _ = plane.shutdown.cancelled() => {}
                ended = meet(&plane, &client, tracker, invite) => match ended {
                    Ok(()) => tracing::debug!(%user, how, "served a peer"),
                    Err(why) => tracing::info!(%user, how, %why, "meeting a peer failed"),
                }
            }
            drop(turn);
        });
    }
}

async fn meet(
    plane: &Arc<Plane>,
    client: &TrackerClient,
    tracker: Option<SocketAddr>,
    invite: Invite,
) -> Result<(), String> {
    match invite.kind {
        InviteKind::Punch { addr } => {
            let remote: SocketAddr = addr
                .parse()
                .map_err(|_| format!("the tracker gave a bad address {addr:?}"))?;
            tokio::time::sleep(PUNCH_HEAD_START).await;
            let stream = dial::punch(plane.reach.listen, remote, PUNCH_WINDOW)
                .await
                .map_err(|e| format!("punch to {remote}: {e}"))?;
            tracing::info!(user = %invite.user, %remote, "hole punched");
            crate::peer_server::serve_met(stream, remote, plane, invite.key).await
        }
        InviteKind::Relay => {
            let tracker = tracker.ok_or("no tracker in use for the relay")?;
            let session = plane.tracker.session().ok_or("not logged in")?;
            let stream = relay::accept(client, tracker, &session.token, &invite.id)
                .await
                .map_err(|e| format!("relay: {e}"))?;
            tracing::info!(user = %invite.user, %tracker, "relay joined");
            crate::peer_server::serve_met(stream, tracker, plane, invite.key).await
        }
    }
}
