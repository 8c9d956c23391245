//! Tells the tracker which files this daemon holds: every share, and every download with at
//! least one verified piece. Runs every [`ANNOUNCE_EVERY`] and at once when something changed;
//! the tracker forgets a daemon that stops announcing within a minute.
//!
//! Between announcements a ping every [`CHECK_EVERY`] notices a failover (the tracker client
//! moves to the other tracker), so the new primary, whose list of holders starts empty, hears
//! from us within seconds rather than at the next announcement.

use crate::plane::Plane;
use crate::tracker_client::TrackerClient;
use p2p_proto::tracker::{Announced, TrackerCall};
use std::sync::Arc;
use std::time::Duration;

pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(20);
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Announces for as long as the daemon runs. `client` is the raw tracker client (for the pings
/// that notice a failover); `port` is the peer listener's.
pub async fn run(plane: Arc<Plane>, client: Arc<TrackerClient>, port: u16) {
    let mut last = tokio::time::Instant::now();
    loop {
        let now = tokio::select! {
            _ = plane.shutdown.cancelled() => return,
            _ = plane.announce.asked() => true,
            // A failover: the new primary's swarm starts empty, so tell it at once.
            _ = client.switched.notified() => true,
            _ = tokio::time::sleep(CHECK_EVERY) => last.elapsed() >= ANNOUNCE_EVERY,
        };
        if now {
            announce(&plane, port).await;
            last = tokio::time::Instant::now();
        } else if plane.tracker.session().is_some() {
            // Wakes `switched` above if the tracker in use changed.
            let _ = client.call(None, TrackerCall::Ping).await;
        }
    }
}

async fn announce(plane: &Plane, port: u16) {
    if plane.tracker.session().is_none() {
        return;
    }
    let mut shares = Vec::new();
    for holding in plane.holdings.all() {
        if let Some(key) = &holding.share_key
            && crate::shares::changed(&holding)
        {
            crate::shares::withdraw(plane, key, &holding).await;
            continue;
        }
        let count = holding.count();
        if count == 0 {
            continue;
        }
        shares.push(Announced {
            group: holding.group.clone(),
            name: holding.meta.name.clone(),
            complete: holding.share_key.is_some(),
        });
    }
    let call = TrackerCall::Announce { port, shares };
    if let Err(e) = plane.tracker.call(call).await {
        tracing::warn!(error = %e, "announce failed");
    }
}
