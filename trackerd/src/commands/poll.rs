//! `poll`: what a logged-in daemon asks every few seconds: the invites waiting for it (to
//! punch towards a downloader, or to join a relay) and what the tracker knows about where it
//! can be reached.

use super::{Caller, Ctx};
use p2p_proto::tracker::TrackerReply;
use std::time::Instant;

pub fn run(ctx: &Ctx, caller: &Caller) -> TrackerReply {
    let now = Instant::now();
    ctx.reach(|r| {
        r.places.touch(&caller.user, caller.key, now);
        TrackerReply::Polled {
            seen: r.places.seen(&caller.user, caller.key),
            invites: r.invites.take(&caller.user, caller.key, now),
        }
    })
}
