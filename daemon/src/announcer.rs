//! Tells the tracker which files this daemon holds: every share, and every download with at
//! least one verified piece. Runs every [`ANNOUNCE_EVERY`] and at once when something changed;
//! the tracker forgets a daemon that stops announcing within a minute.

use crate::daemon::Daemon;
use p2p_proto::tracker::{Announced, TrackerCall};
use std::sync::Arc;
use std::time::Duration;

pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(20);

pub async fn run(daemon: Arc<Daemon>) {
    loop {
        tokio::select! {
            _ = daemon.shutdown.cancelled() => return,
            _ = daemon.announce_now.notified() => {}
            // A failover: the new primary's swarm starts empty, so tell it at once.
            _ = daemon.tracker.switched.notified() => {}
            _ = tokio::time::sleep(ANNOUNCE_EVERY) => {}
        }
        announce(&daemon).await;
    }
}

async fn announce(daemon: &Arc<Daemon>) {
    let Ok(Some(session)) = daemon.session().await else {
        return;
    };
    let mut shares = Vec::new();
    for holding in daemon.holdings.all() {
        if let Some(key) = &holding.share_key
            && crate::shares::changed(&holding)
        {
            crate::shares::withdraw(daemon, key, &holding).await;
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
    let call = TrackerCall::Announce {
        port: daemon.peer_port,
        shares,
    };
    if let Err(e) = daemon.tracker.call(Some(&session.token), call).await {
        tracing::warn!(error = %e, "announce failed");
    }
}
