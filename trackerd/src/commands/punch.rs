//! `punch <group> <name> <peer>`: a downloader asks that `peer`, a holder of the file that
//! cannot be reached directly, open a connection towards it at the same time as it opens one
//! towards the peer, both from their listening ports (a TCP simultaneous open through both
//! NATs). The peer learns of it at its next poll, within [`POLL_EVERY`].
//!
//! Only a member of the group may ask, and only about a live holder of that file: the tracker
//! never tells anyone else where a daemon is, nor makes a daemon connect anywhere but to a
//! downloader of a file it shares.
//!
//! [`POLL_EVERY`]: p2p_proto::reach::POLL_EVERY

use super::{Caller, Ctx, check_member_file};
use p2p_proto::identity::Fingerprint;
use p2p_proto::reach::{Invite, InviteKind};
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};
use std::net::SocketAddr;
use std::time::Instant;

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    from: SocketAddr,
    group: String,
    name: String,
    peer: Fingerprint,
) -> Result<TrackerReply, ErrorReply> {
    check_member_file(ctx, &caller.user, &group, &name).await?;
    let now = Instant::now();
    let holder = ctx
        .swarm(|s| s.peers(&group, &name, now))
        .into_iter()
        .find(|p| p.key == peer && p.user != caller.user)
        .ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::NotFound,
                format!("no peer with key {peer} holds {name} in {group} now"),
            )
        })?;
    ctx.reach(|r| {
        let peer_at = r.places.dial(&holder.user, holder.key).ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::NotFound,
                "that peer has not said where it listens",
            )
        })?;
        // The caller is reached at its listening port on the address it connects from (a NAT
        // that keeps ports keeps that one too), or at the public address it announced.
        let caller_at = r
            .places
            .dial(&caller.user, caller.key)
            .filter(|d| d.addr.ip() == from.ip().to_canonical())
            .ok_or_else(|| {
                ErrorReply::new(
                    ErrorKind::Unavailable,
                    "announce where you listen before asking for a punch",
                )
            })?;
        let invite = Invite {
            id: p2p_proto::token::new_request_id(),
            user: caller.user.clone(),
            key: caller.key,
            kind: InviteKind::Punch {
                addr: caller_at.addr.to_string(),
            },
        };
        r.invites
            .push(&holder.user, holder.key, invite, now)
            .map_err(|e| ErrorReply::new(ErrorKind::Unavailable, e.to_string()))?;
        Ok(TrackerReply::PunchAt {
            addr: peer_at.addr.to_string(),
        })
    })
}
