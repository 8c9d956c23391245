//! The ordered log of state changes.
//!
//! Every change to the tracker's state is a [`LogRecord`]: a sequence number, the request id
//! that caused it, the [`LogEntry`]s to apply and the reply the client got. A record is appended
//! and applied in one redb transaction, so the state is always exactly the log replayed. The
//! hot standby receives the same records and applies them with the same [`apply`]; request ids
//! let a retried request be answered from the log instead of being applied twice.
//!
//! `apply` must be deterministic and must not fail on a record the primary accepted: all
//! validation happens before a record is made.

use crate::records::{FileRecord, GroupRecord, SessionRecord, UserRecord};
use crate::store::{StoreError, Tables};
use p2p_proto::files::FileMeta;
use p2p_proto::tracker::TrackerReply;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub seq: u64,
    /// The epoch of the primary that wrote it (see `cluster`).
    #[serde(default)]
    pub epoch: u64,
    pub request_id: String,
    pub entries: Vec<LogEntry>,
    pub reply: TrackerReply,
}

/// One change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum LogEntry {
    UserCreated {
        user: String,
        password_hash: String,
    },
    SessionOpened {
        token_hash: String,
        user: String,
    },
    SessionClosed {
        token_hash: String,
    },
    GroupCreated {
        group: String,
        owner: String,
    },
    JoinRequested {
        group: String,
        user: String,
    },
    RequestAccepted {
        group: String,
        user: String,
    },
    /// A member left: the longest-standing remaining member becomes owner if the owner left,
    /// and a group left without members is removed together with its files.
    MemberLeft {
        group: String,
        user: String,
    },
    /// The trackers' ed25519 signing key was created; `secret` is the hex of its 32 secret
    /// bytes. Logged like any change so the standby signs grants with the same key.
    SigningKeyCreated {
        secret: String,
    },
    /// `user` registered a new file in `group`.
    FileAdded {
        group: String,
        meta: FileMeta,
        user: String,
    },
}

/// Applies one entry to the state tables of a write transaction.
pub fn apply(tables: &mut Tables<'_>, entry: &LogEntry) -> Result<(), StoreError> {
    match entry {
        LogEntry::UserCreated {
            user,
            password_hash,
        } => tables.put_user(&UserRecord {
            user: user.clone(),
            password_hash: password_hash.clone(),
        }),
        LogEntry::SessionOpened { token_hash, user } => {
            tables.put_session(token_hash, &SessionRecord { user: user.clone() })
        }
        LogEntry::SessionClosed { token_hash } => tables.remove_session(token_hash),
        LogEntry::GroupCreated { group, owner } => tables.put_group(&GroupRecord {
            group: group.clone(),
            owner: owner.clone(),
            members: vec![owner.clone()],
            requests: Vec::new(),
        }),
        LogEntry::JoinRequested { group, user } => tables.update_group(group, |g| {
            if !g.has_requested(user) && !g.is_member(user) {
                g.requests.push(user.clone());
            }
        }),
        LogEntry::RequestAccepted { group, user } => tables.update_group(group, |g| {
            g.requests.retain(|r| r != user);
            if !g.is_member(user) {
                g.members.push(user.clone());
            }
        }),
        LogEntry::MemberLeft { group, user } => {
            let Some(mut record) = tables.group(group)? else {
                return Ok(());
            };
            record.members.retain(|m| m != user);
            match record.members.first() {
                None => {
                    tables.remove_group_files(group)?;
                    tables.remove_group(group)
                }
                Some(first) => {
                    if record.owner == *user {
                        record.owner = first.clone();
                    }
                    tables.put_group(&record)
                }
            }
        }
        LogEntry::SigningKeyCreated { secret } => tables.put_signing_key(secret),
        LogEntry::FileAdded { group, meta, user } => tables.put_file(&FileRecord {
            group: group.clone(),
            meta: meta.clone(),
            added_by: user.clone(),
        }),
    }
}
