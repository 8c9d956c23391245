//! Keeping [`crate::reach::places`] current from an announcement, and starting the
//! connect-back checks it asks for; and describing peers with what the checks found.

use super::{Caller, Ctx};
use p2p_proto::reach::Listening;
use p2p_proto::tracker::PeerInfo;
use std::net::SocketAddr;
use std::time::Instant;

/// Records where the caller's daemon is and checks, in the background, the addresses due.
pub(super) fn update(
    ctx: &Ctx,
    caller: &Caller,
    from: SocketAddr,
    port: u16,
    listening: &Listening,
) {
    let now = Instant::now();
    let due = ctx.reach(|r| {
        r.places
            .update(&caller.user, caller.key, from.ip(), port, listening, now)
    });
    let Some(prober) = ctx.prober.clone() else {
        return;
    };
    for addr in due {
        let (ctx, prober, user, key) =
            (ctx.clone(), prober.clone(), caller.user.clone(), caller.key);
        tokio::spawn(async move {
            let reached = prober.reaches(addr, key).await;
            tracing::debug!(user, %addr, reached, "reachability check");
            ctx.reach(|r| r.places.record(&user, key, addr, reached, Instant::now()));
        });
    }
}

/// Fills in each peer's dial address, reachability and IPv6 address from its place.
pub(super) fn describe(ctx: &Ctx, peers: &mut [PeerInfo]) {
    ctx.reach(|r| {
        for peer in peers.iter_mut() {
            if let Some(dial) = r.places.dial(&peer.user, peer.key) {
                peer.addr = dial.addr.to_string();
                peer.reach = dial.reach;
                peer.addr6 = dial.addr6.map(|a| a.to_string());
            }
        }
    });
}
