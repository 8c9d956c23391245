//! The cluster protocol between the two trackers.
//!
//! It runs inside TLS, each tracker presenting its own key (pinned by the other). A connection
//! opens as a tracker connection whose first request is `TrackerCall::ClusterHello` (of the
//! tracker protocol) carrying the connector's number and its proof of the cluster key bound to
//! this TLS session: `HMAC-SHA256(key, "connector" ‖ exporter)`, where the exporter value is
//! one both ends of this TLS session share and nobody else can (see [`crate::tls`]). The
//! acceptor checks it and answers [`ClusterMsg::Accepted`] with its own proof
//! (`"acceptor" ‖ exporter`); the connector checks that and sends [`ClusterMsg::Hello`] with
//! its position and what it wants (follow the log, or just probe). A wrong proof or an
//! unexpected key is refused ([`ClusterMsg::Refuse`]) and the connection closed.
//!
//! The acceptor then answers [`ClusterMsg::Status`] (its role and position). For a follower the
//! primary then sends either a snapshot (a series of [`ClusterMsg::Snapshot`] chunks, the last
//! one flagged) or nothing, followed by every [`ClusterMsg::Record`] after the follower's
//! position, and a [`ClusterMsg::Heartbeat`] twice a second. The follower answers each record
//! and heartbeat with an [`ClusterMsg::Ack`] of the last sequence number it holds durably.

use crate::frame::Message;
use serde::{Deserialize, Serialize};

pub const CLUSTER_VERSION: u32 = 2;

/// Largest snapshot chunk, in bytes of row data.
pub const SNAPSHOT_CHUNK: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFrame {
    pub v: u32,
    pub msg: ClusterMsg,
}

impl ClusterFrame {
    pub fn new(msg: ClusterMsg) -> Self {
        Self {
            v: CLUSTER_VERSION,
            msg,
        }
    }
}

impl Message for ClusterFrame {
    const VERSION: u32 = CLUSTER_VERSION;
    const PROTOCOL: &'static str = "cluster";
}

/// Where a tracker's state stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The highest epoch this tracker knows of; a takeover starts a new one.
    pub epoch: u64,
    /// The tracker (1-based number) that is primary in `epoch`.
    pub leader: usize,
    /// Sequence number of the last log record applied.
    pub last_seq: u64,
    /// Epoch in which that record was written (tells diverged logs apart).
    pub last_epoch: u64,
}

impl Position {
    /// Orders claims to leadership: the higher epoch wins.
    pub fn outranks(&self, other: &Position) -> bool {
        (self.epoch, self.leader) > (other.epoch, other.leader)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Deciding its role at start-up.
    Starting,
    Primary,
    Standby,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Stream the log to me: I am the standby.
    Follow,
    /// Only tell me your role and position.
    Probe,
}

/// One row of one table, in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub table: String,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterMsg {
    /// The acceptor took the connector's proof; this is its own.
    Accepted {
        proof: String,
    },
    /// The connector took the acceptor's proof: where it stands and what it wants.
    Hello {
        position: Position,
        purpose: Purpose,
    },
    Status {
        role: Role,
        position: Position,
    },
    Snapshot {
        rows: Vec<SnapshotRow>,
        /// True on the last chunk; `position` is then the state the snapshot represents.
        last: bool,
        position: Position,
    },
    /// One log record, as the tracker stores it (JSON).
    Record {
        record: serde_json::Value,
    },
    Heartbeat {
        position: Position,
    },
    Ack {
        seq: u64,
    },
    Refuse {
        reason: String,
    },
}
