//! The control protocol: `p2pctl` sends one command to `p2pd` over its Unix socket and reads
//! one answer. The first (and only) request frame carries the version, so a `p2pctl` talking to
//! a daemon of another version gets a clear "restart the daemon" instead of garbage.

use crate::ErrorReply;
use crate::frame::Message;
use crate::views::{FileInfo, GroupInfo, LeftGroup};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Version of the control protocol.
pub const CONTROL_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlRequest {
    pub v: u32,
    pub cmd: CtlCommand,
}

impl CtlRequest {
    pub fn new(cmd: CtlCommand) -> Self {
        Self {
            v: CONTROL_VERSION,
            cmd,
        }
    }
}

impl Message for CtlRequest {
    const VERSION: u32 = CONTROL_VERSION;
    const PROTOCOL: &'static str = "control";
}

/// One command of `p2pctl`. Paths are absolute: `p2pctl` resolves them against its own
/// working directory before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum CtlCommand {
    Status,
    CreateUser {
        user: String,
        password: String,
    },
    Login {
        user: String,
        password: String,
    },
    Logout,
    CreateGroup {
        group: String,
    },
    JoinGroup {
        group: String,
    },
    LeaveGroup {
        group: String,
    },
    /// One page of groups (see the tracker's `list_groups`).
    ListGroups {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
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
    UploadFile {
        group: String,
        path: PathBuf,
    },
    ListFiles {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    DownloadFile {
        group: String,
        file: String,
        destination: PathBuf,
    },
    ShowDownloads,
    StopShare {
        group: String,
        file: String,
    },
    /// Accepts `fingerprint` as the key of the tracker at `tracker` (an address of
    /// tracker_info.txt), replacing the key pinned for it.
    TrustTracker {
        tracker: String,
        fingerprint: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlResponse {
    pub v: u32,
    pub result: Result<CtlReply, ErrorReply>,
}

impl CtlResponse {
    pub fn new(result: Result<CtlReply, ErrorReply>) -> Self {
        Self {
            v: CONTROL_VERSION,
            result,
        }
    }
}

impl Message for CtlResponse {
    const VERSION: u32 = CONTROL_VERSION;
    const PROTOCOL: &'static str = "control";
}

/// A successful answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum CtlReply {
    /// The command did what it says; `message` is a line for people.
    Done {
        message: String,
    },
    Status(Box<DaemonStatus>),
    /// One page of groups; `more` when groups after the last one remain (ask again with
    /// `after` set to the last name).
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
    Files {
        group: String,
        files: Vec<FileInfo>,
        #[serde(default)]
        more: bool,
    },
    Downloads {
        downloads: Vec<DownloadInfo>,
    },
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Pieces are arriving.
    Downloading,
    /// No peer with a missing piece is online; the download goes on when one returns.
    Waiting,
    Complete,
    Failed,
}

/// One download as `show_downloads` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadInfo {
    pub group: String,
    pub file: String,
    pub destination: PathBuf,
    pub size: u64,
    pub state: DownloadState,
    pub pieces_done: u64,
    pub pieces_total: u64,
    pub bytes_done: u64,
    /// Bytes per second over the last few seconds.
    pub rate: u64,
    /// Peers this download is connected to now.
    pub peers: usize,
    /// Why the download failed, or what a waiting download waits for.
    pub detail: Option<String>,
    /// Peers banned from this download, with the reason.
    pub banned: Vec<BannedPeer>,
    /// Every peer this download connected to, and what it delivered.
    #[serde(default)]
    pub sources: Vec<SourceInfo>,
}

/// One peer of a download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `ip:port` of the peer.
    pub peer: String,
    /// Connected now.
    pub connected: bool,
    /// Bytes of verified pieces it delivered.
    pub bytes: u64,
    /// The peer's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How the connection was made: `direct`, `mapped`, `punched` or `relayed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<crate::reach::ConnectionKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BannedPeer {
    pub peer: String,
    pub reason: String,
}

/// What `p2pctl status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub user: Option<String>,
    /// This daemon's key, as peers and trackers know it.
    pub fingerprint: String,
    /// The tracker the daemon talks to now, if any answered.
    pub tracker: Option<String>,
    /// That tracker's key.
    pub tracker_fingerprint: Option<String>,
    /// The last error talking to a tracker.
    pub last_tracker_error: Option<String>,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// How peers reach this daemon.
    #[serde(default)]
    pub reach: ReachStatus,
}

/// How peers reach a daemon, as `p2pctl status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachStatus {
    /// The peer listener's address.
    pub listen: String,
    /// The address the tracker sees this daemon connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// The address peers are told to dial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_addr: Option<String>,
    /// What the tracker's connect-back check found: `direct`, `mapped` or `none`; absent
    /// until it has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<crate::reach::Reachability>,
    /// The gateway's port mapping, when one is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingStatus>,
    /// IPv6 addresses the check reached this daemon at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingStatus {
    /// `upnp`, `nat-pmp` or `pcp`.
    pub protocol: String,
    /// The public address and port the gateway forwards.
    pub external: String,
    /// Seconds the gateway keeps it unless renewed (it is renewed well before).
    pub lifetime_secs: u64,
}
