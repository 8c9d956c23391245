//! The tracker protocol: `p2pd` asks, `trackerd` answers, one JSON frame each way.
//!
//! It runs inside TLS (see [`crate::tls`]): the daemon presents its key, which the tracker binds
//! sessions and grants to; the daemon accepts only the tracker's pinned key.
//!
//! Every request carries a request id chosen by the client. A write the tracker has applied is
//! remembered by its id, so a client that lost the answer and retries (possibly at the other
//! tracker) gets the first answer again instead of a second application. Requests that need a
//! logged-in user carry the session token the tracker made at login; the tracker keeps only its
//! hash, and refuses it on a connection with another key than the one that logged in.
//!
//! A frame that cannot be read (too large, wrong version, malformed) is answered with a
//! `protocol` error carrying the id `""` and the connection is closed.

use crate::ErrorReply;
use crate::files::FileMeta;
use crate::frame::Message;
use crate::grant::Grant;
use crate::identity::Fingerprint;
use crate::reach::{Invite, Listening, Reachability, Seen};
use crate::views::{FileInfo, GroupInfo, LeftGroup};
use serde::{Deserialize, Serialize};

/// Version of the tracker protocol.
pub const TRACKER_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerRequest {
    pub v: u32,
    /// Request id: the same on every retry of one request.
    pub id: String,
    /// Session token of the logged-in user, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub call: TrackerCall,
}

impl Message for TrackerRequest {
    const VERSION: u32 = TRACKER_VERSION;
    const PROTOCOL: &'static str = "tracker";
}

/// What a client asks the tracker to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TrackerCall {
    /// Liveness probe; answered with [`TrackerReply::Pong`].
    Ping,
    /// The first frame of a connection from the other tracker: from here on the connection
    /// speaks the cluster protocol ([`crate::cluster`]). `proof` proves the cluster key, bound
    /// to this TLS session.
    ClusterHello {
        from: usize,
        proof: String,
    },
    CreateUser {
        user: String,
        password: String,
    },
    /// Opens a session bound to the caller's key; answered with [`TrackerReply::LoggedIn`].
    Login {
        user: String,
        password: String,
    },
    Logout,
    /// Who the session belongs to.
    Whoami,
    CreateGroup {
        group: String,
    },
    JoinGroup {
        group: String,
    },
    LeaveGroup {
        group: String,
    },
    /// One page of the groups, ordered by name: those after `after` (the last name of the
    /// previous page), at most `limit` (default and most [`MAX_PAGE`](crate::views::MAX_PAGE)).
    ListGroups {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// One page of a group's pending join requests, in the order they were made: those after
    /// user `after`, at most `limit`.
    ListRequests {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    AcceptRequest {
        group: String,
        user: String,
    },
    /// The trackers' public key, which seeders use to check grants.
    SigningKey,
    /// Registers a file in a group (or checks it matches the one registered under that name)
    /// and makes the caller one of its seeders, reachable at `port` on the address the tracker
    /// sees the caller connect from. Answered with [`TrackerReply::Shared`].
    UploadFile {
        group: String,
        file: FileMeta,
        port: u16,
    },
    /// One page of a group's files, ordered by name: those after `after`, at most `limit`.
    ListFiles {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Everything needed to start downloading a file: its metadata (with every piece hash),
    /// the peers online with it and a fresh grant for the caller. A daemon asks for it once,
    /// when a download starts; a running download asks for [`TrackerCall::Peers`] instead.
    FetchFile {
        group: String,
        name: String,
    },
    /// What a running download asks for again and again: the peers online with the file and a
    /// fresh grant, without the metadata it already has.
    Peers {
        group: String,
        name: String,
    },
    /// Says which files the caller's daemon holds now (replacing its previous announcement).
    /// A daemon announces periodically; one that stops is forgotten within a minute. Answered
    /// with [`TrackerReply::Announced`]: a verdict per share.
    ///
    /// `listening` says where else than "the address the tracker sees, at `port`" the daemon
    /// can be reached; the tracker checks each address by connecting back before it lists it.
    Announce {
        port: u16,
        shares: Vec<Announced>,
        #[serde(default)]
        listening: Listening,
    },
    /// What a logged-in daemon asks every [`POLL_EVERY`](crate::reach::POLL_EVERY): the
    /// invites waiting for it and what the tracker knows of its reachability. Answered with
    /// [`TrackerReply::Polled`].
    Poll,
    /// Asks the tracker to have `peer` (a holder of `group`/`name`, named by its key) punch a
    /// hole towards the caller now; answered with [`TrackerReply::PunchAt`], the address the
    /// caller must connect to, from its listening port, at once.
    Punch {
        group: String,
        name: String,
        peer: Fingerprint,
    },
    /// Opens a relayed connection to `peer` (a holder of the grant's file, named by its key):
    /// the tracker invites the peer and, once it has connected too, answers
    /// [`TrackerReply::Relaying`]; from then on the connection carries the two daemons' bytes,
    /// both ways, until either side closes. `grant` must be the caller's own and unexpired.
    RelayOpen {
        name: String,
        peer: Fingerprint,
        grant: Grant,
    },
    /// The invited side of a relay: accepts the invite `invite`; answered with
    /// [`TrackerReply::Relaying`] once paired.
    RelayAccept {
        invite: String,
    },
    StopShare {
        group: String,
        name: String,
    },
}

/// One file a daemon announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    pub group: String,
    /// The internal id of the group the daemon shares it in, when it knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub name: String,
    /// SHA-1 of the whole file, hex.
    pub sha1: String,
    /// True when the daemon holds every piece.
    pub complete: bool,
}

/// What the tracker made of one announced share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareVerdict {
    pub group: String,
    pub name: String,
    /// `Some(id)`: offered to downloaders, in the group with that id. `None`: refused for
    /// `reason`, and the daemon should stop sharing it.
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The most peers one `fetch_file` or `peers` answer lists, chosen at random among those
/// online with the file: a download asks again every second, so over a few rounds it meets
/// many more, and the answer stays small however large the swarm.
pub const MAX_PEERS: usize = 200;

/// A peer holding a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub user: String,
    /// `ip:port` to connect to.
    pub addr: String,
    /// The key it connects to the tracker with: the only key a downloader accepts from it.
    pub key: Fingerprint,
    pub complete: bool,
    /// How `addr` reaches it, as the tracker's connect-back check found; absent while the
    /// check runs (and from older trackers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reachability>,
    /// An IPv6 address (`[ip]:port`) the check reached it at, for downloaders with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr6: Option<String>,
}

impl TrackerCall {
    /// The command's name as users know it, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            TrackerCall::Ping => "ping",
            TrackerCall::ClusterHello { .. } => "cluster_hello",
            TrackerCall::CreateUser { .. } => "create_user",
            TrackerCall::Login { .. } => "login",
            TrackerCall::Logout => "logout",
            TrackerCall::Whoami => "whoami",
            TrackerCall::CreateGroup { .. } => "create_group",
            TrackerCall::JoinGroup { .. } => "join_group",
            TrackerCall::LeaveGroup { .. } => "leave_group",
            TrackerCall::ListGroups { .. } => "list_groups",
            TrackerCall::ListRequests { .. } => "list_requests",
            TrackerCall::AcceptRequest { .. } => "accept_request",
            TrackerCall::SigningKey => "signing_key",
            TrackerCall::UploadFile { .. } => "upload_file",
            TrackerCall::ListFiles { .. } => "list_files",
            TrackerCall::FetchFile { .. } => "fetch_file",
            TrackerCall::Peers { .. } => "peers",
            TrackerCall::Announce { .. } => "announce",
            TrackerCall::StopShare { .. } => "stop_share",
            TrackerCall::Poll => "poll",
            TrackerCall::Punch { .. } => "punch",
            TrackerCall::RelayOpen { .. } => "relay_open",
            TrackerCall::RelayAccept { .. } => "relay_accept",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerResponse {
    pub v: u32,
    /// The id of the request answered; `""` when the request could not be read.
    pub id: String,
    pub result: Result<TrackerReply, ErrorReply>,
}

impl Message for TrackerResponse {
    const VERSION: u32 = TRACKER_VERSION;
    const PROTOCOL: &'static str = "tracker";
}

impl TrackerResponse {
    pub fn new(id: impl Into<String>, result: Result<TrackerReply, ErrorReply>) -> Self {
        Self {
            v: TRACKER_VERSION,
            id: id.into(),
            result,
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum TrackerReply {
    Pong {
        tracker_no: usize,
    },
    Done,
    User {
        user: String,
    },
    /// A new session: `token` goes with every request of this user, from this daemon's key.
    LoggedIn {
        user: String,
        token: String,
    },
    /// One page of groups; `more` when groups after the last one remain.
    Groups {
        groups: Vec<GroupInfo>,
        #[serde(default)]
        more: bool,
    },
    Requests {
        group: String,
        users: Vec<String>,
        #[serde(default)]
        more: bool,
    },
    Left(LeftGroup),
    SigningKey {
        public_key: String,
    },
    /// The file is registered and the caller is one of its seeders.
    Shared {
        group_id: String,
    },
    Files {
        group: String,
        files: Vec<FileInfo>,
        #[serde(default)]
        more: bool,
    },
    FileDetails {
        group: String,
        group_id: String,
        meta: FileMeta,
        peers: Vec<PeerInfo>,
        grant: Grant,
    },
    Peers {
        group_id: String,
        peers: Vec<PeerInfo>,
        grant: Grant,
    },
    Announced {
        verdicts: Vec<ShareVerdict>,
        /// Where the tracker sees the daemon, and what its reachability check found.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen: Option<Seen>,
    },
    Polled {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen: Option<Seen>,
        #[serde(default)]
        invites: Vec<Invite>,
    },
    /// Connect to `addr` now, from the listening port: the peer is connecting to you.
    PunchAt {
        addr: String,
    },
    /// The relay is paired: the rest of the connection is the other daemon's bytes.
    Relaying,
}

impl TrackerRequest {
    pub fn new(id: impl Into<String>, session: Option<String>, call: TrackerCall) -> Self {
        Self {
            v: TRACKER_VERSION,
            id: id.into(),
            session,
            call,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_from_before_pages_still_parse() {
        // A request without a page asks for the first one; a reply without `more` has none.
        let call: TrackerCall = serde_json::from_str(r#"{"op":"list_groups"}"#).unwrap();
        assert_eq!(
            call,
            TrackerCall::ListGroups {
                after: None,
                limit: None
            }
        );
        let call: TrackerCall =
            serde_json::from_str(r#"{"op":"list_files","group":"g1"}"#).unwrap();
        assert!(matches!(
            call,
            TrackerCall::ListFiles {
                after: None,
                limit: None,
                ..
            }
        ));
        let reply: TrackerReply =
            serde_json::from_str(r#"{"reply":"groups","groups":[]}"#).unwrap();
        assert_eq!(
            reply,
            TrackerReply::Groups {
                groups: Vec::new(),
                more: false
            }
        );
        // And the first page is sent as before.
        let sent = serde_json::to_string(&TrackerCall::ListGroups {
            after: None,
            limit: None,
        })
        .unwrap();
        assert_eq!(sent, r#"{"op":"list_groups"}"#);
    }
}
