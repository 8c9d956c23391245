//! `upload_file <group> <file>`: registers a file in a group and makes the caller a seeder.
//!
//! The same name with the same content (SHA-1 and size) makes the caller one more seeder of
//! the registered file and logs nothing; the same name with other content is refused. A retry
//! of an upload that was applied is answered from the log (request id), so it never meets its
//! own file as a "different file". The reply names the group's internal id, which the daemon
//! keeps with its share (grants name it). A new file counts against the uploader's and the
//! group's limits ([`Limits::add_file`](super::Limits::add_file)); another seeder of a file
//! already registered adds nothing and is never refused for them.

use super::{Caller, Ctx, member_group, validate_port};
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::files::FileMeta;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};
use std::net::SocketAddr;
use std::time::Instant;

pub async fn run(
    ctx: &Ctx,
    id: &str,
    caller: Caller,
    peer: SocketAddr,
    group: String,
    file: FileMeta,
    port: u16,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    file.validate()?;
    validate_port(port)?;
    let (user, key) = (caller.user.clone(), caller.key);
    let (g, name) = (group.clone(), file.name.clone());
    let limits = ctx.limits;
    let reply = ctx
        .write(id, move |t| {
            let record = member_group(t, &group, &caller.user)?;
            let reply = TrackerReply::Shared {
                group_id: record.id.clone(),
            };
            if let Some(existing) = t.file(&group, &file.name)? {
                if existing.meta.sha1 != file.sha1 || existing.meta.size != file.size {
                    return Err(ErrorReply::new(
                        ErrorKind::Conflict,
                        format!(
                            "a different file named {} already exists in {group}",
                            file.name
                        ),
                    ));
                }
                // Same content: the caller just becomes another seeder.
                return Ok(Decision {
                    entries: Vec::new(),
                    reply,
                });
            }
            limits.add_file(&caller.user, t.user(&caller.user)?.as_ref(), &record)?;
            Ok(Decision {
                entries: vec![LogEntry::FileAdded {
                    group: group.clone(),
                    meta: file.clone(),
                    user: caller.user.clone(),
                }],
                reply,
            })
        })
        .await?;
    let reply = match reply {
        // Recorded by 0.1.0, which answered `done`: look the id up now.
        TrackerReply::Done => {
            let lookup = (g.clone(), user.clone());
            let record = ctx
                .store(move |s| s.read(|t| member_group(t, &lookup.0, &lookup.1)))
                .await?;
            TrackerReply::Shared {
                group_id: record.id,
            }
        }
        other => other,
    };
    let addr = SocketAddr::new(peer.ip().to_canonical(), port);
    ctx.swarm(|s| s.add(&user, &g, &name, addr, key, true, Instant::now()));
    Ok(reply)
}
