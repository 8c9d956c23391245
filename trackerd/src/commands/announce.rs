//! `announce`: the caller's daemon says which files it offers now, replacing what it said
//! before. Daemons announce periodically; an entry not refreshed within
//! [`crate::swarm::SEEDER_TTL`] is no longer offered.
//!
//! An announcement is a report, not a command: each share gets a verdict. A share is offered
//! if the caller is a member of the group, the file is registered there with the same SHA-1,
//! and (when the daemon names the group's id) the group is still the one the daemon shared
//! into, not another created later under the same name. Every other share is refused with the
//! reason, and the daemon stops sharing it.

use super::{Caller, Ctx, validate_port};
use crate::records::GroupRecord;
use crate::store::ReadTables;
use crate::swarm::MAX_ANNOUNCED;
use p2p_proto::ErrorReply;
use p2p_proto::files::validate_file_name;
use p2p_proto::ids::validate_id;
use p2p_proto::reach::Listening;
use p2p_proto::tracker::{Announced, ShareVerdict, TrackerReply};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    peer: SocketAddr,
    port: u16,
    mut shares: Vec<Announced>,
    listening: Listening,
) -> Result<TrackerReply, ErrorReply> {
    if !shares.is_empty() {
        validate_port(port)?;
    }
    if shares.len() > MAX_ANNOUNCED {
        tracing::warn!(
            user = caller.user,
            count = shares.len(),
            "announcement lists too many files; ignoring those past {MAX_ANNOUNCED}"
        );
        shares.truncate(MAX_ANNOUNCED);
    }
    let user = caller.user.clone();
    let judged = ctx
        .store(move |s| s.read(|t| Ok(judge(t, &user, shares)?)))
        .await?;
    let accepted: Vec<Announced> = judged
        .iter()
        .filter(|(_, v)| v.group_id.is_some())
        .map(|(share, _)| share.clone())
        .collect();
    let ip = peer.ip().to_canonical();
    ctx.swarm(|s| {
        s.announce(
            &caller.user,
            ip,
            port,
            caller.key,
            &accepted,
            Instant::now(),
        )
    });
    let seen = if port == 0 {
        None
    } else {
        super::reachability::update(ctx, &caller, peer, port, &listening);
        ctx.reach(|r| r.places.seen(&caller.user, caller.key))
    };
    Ok(TrackerReply::Announced {
        verdicts: judged.into_iter().map(|(_, v)| v).collect(),
        seen,
    })
}

/// A verdict for each share, reading each group once.
fn judge(
    t: &ReadTables,
    user: &str,
    shares: Vec<Announced>,
) -> Result<Vec<(Announced, ShareVerdict)>, crate::store::StoreError> {
    let mut groups: HashMap<String, Option<GroupRecord>> = HashMap::new();
    let mut out = Vec::with_capacity(shares.len());
    for share in shares {
        let refuse = |why: &str| ShareVerdict {
            group: share.group.clone(),
            name: share.name.clone(),
            group_id: None,
            reason: Some(why.to_string()),
        };
        if validate_id("group id", &share.group).is_err()
            || validate_file_name(&share.name).is_err()
        {
            let verdict = refuse("malformed group or file name");
            out.push((share, verdict));
            continue;
        }
        if !groups.contains_key(&share.group) {
            groups.insert(share.group.clone(), t.group(&share.group)?);
        }
        let verdict = match groups.get(&share.group).and_then(Option::as_ref) {
            None => refuse("the group no longer exists"),
            Some(g) if share.group_id.as_ref().is_some_and(|id| *id != g.id) => {
                refuse("the group was removed and created again")
            }
            Some(g) if !g.is_member(user) => refuse("you are not a member of the group"),
            Some(g) => match t.file(&share.group, &share.name)? {
                None => refuse("the file is not registered in the group"),
                Some(f) if f.meta.sha1 != share.sha1 => {
                    refuse("the group's file of this name has other content")
                }
                Some(_) => ShareVerdict {
                    group: share.group.clone(),
                    name: share.name.clone(),
                    group_id: Some(g.id.clone()),
                    reason: None,
                },
            },
        };
        out.push((share, verdict));
    }
    Ok(out)
}
