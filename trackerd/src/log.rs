//! The ordered log of state changes.
//!
//! Every change to the tracker's state is a [`LogRecord`]: a sequence number, the request id
//! that caused it, the [`LogEntry`]s to apply and the reply the client got. A record is appended
//! and applied in one redb transaction, so the state is always exactly the log replayed. The
//! hot standby receives the same records and applies them the same way; request ids
//! let a retried request be answered from the log instead of being applied twice.
//!
//! This module holds the data only; `store::apply` turns each entry into table changes, and
//! must be deterministic and must not fail on a record the primary accepted: all validation
//! happens before a record is made.

use p2p_proto::files::FileMeta;
use p2p_proto::identity::Fingerprint;
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
    /// A login: the session is bound to `key` (absent in records from 0.1.0).
    SessionOpened {
        token_hash: String,
        user: String,
        #[serde(default)]
        key: Option<Fingerprint>,
        #[serde(default)]
        at: u64,
    },
    /// The session was used at `at` (logged at most hourly per session).
    SessionSeen {
        token_hash: String,
        at: u64,
    },
    /// A session from before keys existed was used by `key`, and is bound to it from now on.
    SessionBound {
        token_hash: String,
        key: Fingerprint,
    },
    SessionClosed {
        token_hash: String,
    },
    /// A new group; `id` is absent in records from 0.1.0 (see `records::legacy_group_id`).
    GroupCreated {
        group: String,
        owner: String,
        #[serde(default)]
        id: Option<String>,
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
    /// The trackers' session secret was created (hex of 32 bytes): logins derive tokens from
    /// it, so a retried login gets the same token from either tracker.
    SessionSecretCreated {
        secret: String,
    },
    /// `user` registered a new file in `group`.
    FileAdded {
        group: String,
        meta: FileMeta,
        user: String,
    },
}
