//! `poll`: what a logged-in daemon asks again and again: the invites waiting for it (to punch
//! towards a downloader, or to join a relay) and what the tracker knows about where it can be
//! reached. With none waiting, the answer is held up to [`POLL_HOLD`] and sent as soon as one
//! arrives, so an invite reaches its daemon at once rather than at its next poll. A poll does
//! not keep the session from idling out (see `authenticate`).

use super::{Caller, Ctx};
use p2p_proto::reach::POLL_HOLD;
use p2p_proto::tracker::TrackerReply;
use std::time::Instant;

pub async fn run(ctx: &Ctx, caller: &Caller) -> TrackerReply {
    let (user, key) = (caller.user.as_str(), caller.key);
    let waiting = ctx.reach(|r| r.invites.take(user, key, Instant::now()));
    let invites = if waiting.is_empty() {
        // Registered before the queue is looked at again: an invite pushed in between leaves
        // its wake-up with the waiter.
        let waiter = ctx.reach(|r| r.invites.waiter(user, key));
        let _ = tokio::time::timeout(POLL_HOLD, waiter.notified()).await;
        ctx.reach(|r| {
            r.invites.forget_waiter(user, key, &waiter);
            r.invites.take(user, key, Instant::now())
        })
    } else {
        waiting
    };
    ctx.reach(|r| {
        r.places.touch(user, key, Instant::now());
        TrackerReply::Polled {
            seen: r.places.seen(user, key),
            invites,
        }
    })
}
