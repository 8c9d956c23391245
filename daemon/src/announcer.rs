//! Tells the tracker which files this daemon holds: every share, and every download with at
//! least one verified piece. Runs every [`ANNOUNCE_EVERY`] and at once when something changed;
//! the tracker forgets a daemon that stops announcing within a minute.
//!
//! Between announcements a poll every [`POLL_EVERY`] brings the invites waiting for us (a
//! downloader that cannot reach us asks us to punch towards it or to join a relay) and what
//! the tracker sees of our reachability. It also notices a failover (the tracker client moves
//! to the other tracker), so the new primary, whose list of holders starts empty, hears from
//! us within seconds rather than at the next announcement.

use crate::holdings::Holding;
use crate::plane::Plane;
use crate::reach::invites;
use crate::tracker_client::TrackerClient;
use p2p_proto::reach::POLL_EVERY;
use p2p_proto::tracker::{Announced, ShareVerdict, TrackerCall, TrackerReply};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(20);

/// Announces for as long as the daemon runs, and polls the tracker between announcements.
/// `client` is the raw tracker client (it says which tracker answered, and wakes us when that
/// changes); `port` is the peer listener's.
pub async fn run(plane: Arc<Plane>, client: Arc<TrackerClient>, port: u16) {
    let turns = Arc::new(Semaphore::new(invites::MAX_MEETINGS));
    let mut last: Option<tokio::time::Instant> = None;
    let mut next_poll = tokio::time::Instant::now() + POLL_EVERY;
    loop {
        let now = tokio::select! {
            _ = plane.shutdown.cancelled() => return,
            _ = plane.announce.asked() => true,
            // A failover: the new primary's swarm starts empty, so tell it at once.
            _ = client.switched.notified() => true,
            _ = tokio::time::sleep_until(next_poll) => last.is_none_or(|l| l.elapsed() >= ANNOUNCE_EVERY),
        };
        if now {
            announce(&plane, port).await;
            last = Some(tokio::time::Instant::now());
            continue;
        }
        let started = tokio::time::Instant::now();
        next_poll = started + POLL_EVERY;
        if plane.tracker.session().is_some() {
            let brought = tokio::select! {
                _ = plane.shutdown.cancelled() => return,
                brought = poll(&plane, &client, &turns) => brought,
            };
            // More invites may be coming (a download that tries many ways): ask again at once.
            if brought {
                next_poll = tokio::time::Instant::now();
            }
        }
    }
}

/// Takes the invites waiting for us (and hands them to [`invites::handle`]) and what the
/// tracker sees of us; true when it brought invites. The tracker holds a poll until an invite
/// comes, up to `POLL_HOLD`. A poll also notices a failover: the client wakes `switched`.
async fn poll(plane: &Arc<Plane>, client: &Arc<TrackerClient>, turns: &Arc<Semaphore>) -> bool {
    match plane.tracker.call(TrackerCall::Poll).await {
        Ok(TrackerReply::Polled { seen, invites }) => {
            if seen.is_some() {
                plane.reach.seen.with(|s| *s = seen);
            }
            if invites.is_empty() {
                return false;
            }
            let tracker = client.status().current;
            invites::handle(plane, client, tracker, turns, invites);
            true
        }
        Ok(other) => {
            tracing::warn!(?other, "unexpected answer to a poll");
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "poll failed");
            false
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
            group_id: holding.group_id(),
            name: holding.meta.name.clone(),
            sha1: holding.meta.sha1.clone(),
            complete: holding.share_key.is_some(),
        });
    }
    let call = TrackerCall::Announce {
        port,
        shares,
        listening: plane.reach.listening(),
    };
    match plane.tracker.call(call).await {
        Ok(TrackerReply::Announced { verdicts, seen }) => {
            if seen.is_some() {
                plane.reach.seen.with(|s| *s = seen);
            }
            settle(plane, verdicts).await
        }
        Ok(other) => tracing::warn!(?other, "unexpected answer to an announcement"),
        Err(e) => tracing::warn!(error = %e, "announce failed"),
    }
}

/// Acts on the tracker's verdicts: a share accepted learns its group's id (and keeps it); a
/// share refused (its group is gone or another now, we left it, the file changed) is no longer
/// offered, and a download refused ends.
async fn settle(plane: &Plane, verdicts: Vec<ShareVerdict>) {
    for verdict in verdicts {
        let held = plane
            .holdings
            .all()
            .into_iter()
            .find(|h| h.group == verdict.group && h.meta.name == verdict.name);
        let Some(holding) = held else { continue };
        match (verdict.group_id, verdict.reason) {
            (Some(id), _) => {
                if holding.group_id().is_none() {
                    learn_group_id(plane, &holding, id).await;
                }
            }
            (None, reason) => {
                let reason = reason.unwrap_or_else(|| "refused by the tracker".into());
                crate::shares::stop_offering(plane, &holding, &reason).await;
            }
        }
    }
}

/// Records the group id of a share from 0.1.0 that did not know it.
async fn learn_group_id(plane: &Plane, holding: &Holding, id: String) {
    holding.set_group_id(Some(id.clone()));
    let Some(key) = holding.share_key.clone() else {
        return;
    };
    let saved = plane
        .state
        .run(move |s| match s.share(&key)? {
            Some(mut share) => {
                share.group_id = Some(id);
                s.put_share(&share)
            }
            None => Ok(()),
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "cannot record a share's group id");
    }
}
