//! Tells the tracker which files this daemon holds: every share, and every download with at
//! least one verified piece. Runs every [`ANNOUNCE_EVERY`] and at once when something changed;
//! the tracker forgets a daemon that stops announcing within a minute.
//!
//! Between announcements a ping every [`CHECK_EVERY`] notices a failover (the tracker client
//! moves to the other tracker), so the new primary, whose list of holders starts empty, hears
//! from us within seconds rather than at the next announcement.

use crate::daemon::Daemon;
use p2p_proto::tracker::{Announced, TrackerCall};
use std::sync::Arc;
use std::time::Duration;

pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(20);
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

pub async fn run(daemon: Arc<Daemon>) {
    let mut last = tokio::time::Instant::now();
    loop {
        let now = tokio::select! {
            _ = daemon.shutdown.cancelled() => return,
            _ = daemon.announce_now.notified() => true,
            // A failover: the new primary's swarm starts empty, so tell it at once.
            _ = daemon.tracker.switched.notified() => true,
            _ = tokio::time::sleep(CHECK_EVERY) => last.elapsed() >= ANNOUNCE_EVERY,
        };
        if now {
            announce(&daemon).await;
            last = tokio::time::Instant::now();
        } else if daemon.session().await.ok().flatten().is_some() {
            // Wakes `switched` above if the tracker in use changed.
            let _ = daemon
                .tracker
                .call(None, p2p_proto::tracker::TrackerCall::Ping)
                .await;
        }
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
