//! Valid messages of every type, made with the real types and encoded by the real encoders:
//! the seeds every mutation starts from. Everything here is deterministic (fixed keys, fixed
//! values), so a seed and an input number always give the same input.

use ed25519_dalek::SigningKey;
use p2p_proto::cluster::{ClusterFrame, ClusterMsg, Position, Purpose, Role, SnapshotRow};
use p2p_proto::control::{
    BannedPeer, CtlCommand, CtlReply, CtlRequest, CtlResponse, DaemonStatus, DownloadInfo,
    DownloadState, SourceInfo,
};
use p2p_proto::error::{ErrorKind, ErrorReply};
use p2p_proto::files::FileMeta;
use p2p_proto::grant::{Grant, GrantTerms};
use p2p_proto::identity::Fingerprint;
use p2p_proto::tracker::{
    Announced, PeerInfo, ShareVerdict, TrackerCall, TrackerReply, TrackerRequest, TrackerResponse,
};
use p2p_proto::views::{FileInfo, GroupInfo, LeftGroup, Membership};
use trackerd::log::{LogEntry, LogRecord};

/// The trackers' signing key of every seed grant.
pub fn grant_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// Its public half, hex, as seeders know it.
pub fn grant_public_hex() -> String {
    p2p_proto::grant::public_key_hex(&grant_key())
}

/// The key fingerprint seed grants are issued to.
pub fn downloader() -> Fingerprint {
    Fingerprint::of_spki(b"downloader")
}

pub const FILE_SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

/// "Now" for grant checks: seed grants expire after it.
pub const NOW: u64 = 1_800_000_000;

/// The seed grants (signed once: signing is slow in a debug build).
pub fn grants() -> Vec<Grant> {
    static GRANTS: std::sync::OnceLock<Vec<Grant>> = std::sync::OnceLock::new();
    GRANTS.get_or_init(issue_grants).clone()
}

fn issue_grants() -> Vec<Grant> {
    let key = grant_key();
    let mut out = vec![Grant::issue(
        &key,
        GrantTerms {
            user: "bob",
            group: "g1",
            group_id: "00ff00ff00ff00ff",
            file_sha1: FILE_SHA1,
            downloader: downloader(),
            expires: NOW + 90,
        },
    )];
    out.push(Grant::issue(
        &key,
        GrantTerms {
            user: "a",
            group: "é",
            group_id: "",
            file_sha1: "",
            downloader: Fingerprint::of_spki(b""),
            expires: u64::MAX,
        },
    ));
    out
}

pub fn file_meta(pieces: usize) -> FileMeta {
    FileMeta {
        name: "movie.mkv".into(),
        size: (pieces as u64) * p2p_proto::files::PIECE_SIZE,
        sha1: FILE_SHA1.into(),
        pieces: (0..pieces).map(|i| format!("{i:040x}")).collect(),
    }
}

fn position() -> Position {
    Position {
        epoch: 3,
        leader: 1,
        last_seq: 41,
        last_epoch: 2,
    }
}

fn peers() -> Vec<PeerInfo> {
    vec![PeerInfo {
        user: "alice".into(),
        addr: "127.0.0.1:4000".into(),
        key: downloader(),
        complete: true,
        reach: Some(p2p_proto::reach::Reachability::Mapped),
        addr6: Some("[2001:db8::2]:4000".into()),
    }]
}

pub fn tracker_calls() -> Vec<TrackerCall> {
    let user = || "alice".to_string();
    let group = || "g1".to_string();
    vec![
        TrackerCall::Ping,
        TrackerCall::ClusterHello {
            from: 2,
            proof: "ab".repeat(32),
        },
        TrackerCall::CreateUser {
            user: user(),
            password: "hunter2".into(),
        },
        TrackerCall::Login {
            user: user(),
            password: "hunter2".into(),
        },
        TrackerCall::Logout,
        TrackerCall::Whoami,
        TrackerCall::CreateGroup { group: group() },
        TrackerCall::JoinGroup { group: group() },
        TrackerCall::LeaveGroup { group: group() },
        TrackerCall::ListGroups {
            after: None,
            limit: None,
        },
        TrackerCall::ListGroups {
            after: Some("g0".into()),
            limit: Some(10),
        },
        TrackerCall::ListRequests {
            group: group(),
            after: Some(user()),
            limit: Some(1000),
        },
        TrackerCall::AcceptRequest {
            group: group(),
            user: user(),
        },
        TrackerCall::SigningKey,
        TrackerCall::UploadFile {
            group: group(),
            file: file_meta(3),
            port: 4000,
        },
        TrackerCall::ListFiles {
            group: group(),
            after: None,
            limit: Some(1),
        },
        TrackerCall::FetchFile {
            group: group(),
            name: "movie.mkv".into(),
        },
        TrackerCall::Peers {
            group: group(),
            name: "movie.mkv".into(),
        },
        TrackerCall::Announce {
            port: 4000,
            shares: vec![
                Announced {
                    group: group(),
                    group_id: Some("00ff00ff00ff00ff".into()),
                    name: "movie.mkv".into(),
                    sha1: FILE_SHA1.into(),
                    complete: true,
                },
                Announced {
                    group: group(),
                    group_id: None,
                    name: "b".into(),
                    sha1: FILE_SHA1.into(),
                    complete: false,
                },
            ],
            listening: p2p_proto::reach::Listening {
                public: Some(p2p_proto::reach::PublicClaim {
                    addr: std::net::SocketAddr::from(([11, 0, 0, 20], 4000)),
                    how: p2p_proto::reach::Reachability::Mapped,
                }),
                ipv6: vec![std::net::Ipv6Addr::LOCALHOST],
            },
        },
        TrackerCall::StopShare {
            group: group(),
            name: "movie.mkv".into(),
        },
    ]
}

pub fn tracker_requests() -> Vec<TrackerRequest> {
    tracker_calls()
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let session = (i % 2 == 0).then(|| "cd".repeat(32));
            TrackerRequest::new(format!("{i:032x}"), session, call)
        })
        .collect()
}

pub fn tracker_replies() -> Vec<TrackerReply> {
    let grant = grants().remove(0);
    vec![
        TrackerReply::Pong { tracker_no: 1 },
        TrackerReply::Done,
        TrackerReply::User {
            user: "alice".into(),
        },
        TrackerReply::LoggedIn {
            user: "alice".into(),
            token: "cd".repeat(32),
        },
        TrackerReply::Groups {
            groups: vec![GroupInfo {
                group: "g1".into(),
                owner: "alice".into(),
                members: 2,
                membership: Membership::Owner,
            }],
            more: true,
        },
        TrackerReply::Requests {
            group: "g1".into(),
            users: vec!["bob".into(), "carol".into()],
            more: false,
        },
        TrackerReply::Left(LeftGroup {
            group: "g1".into(),
            new_owner: Some("bob".into()),
            removed: false,
        }),
        TrackerReply::SigningKey {
            public_key: grant_public_hex(),
        },
        TrackerReply::Shared {
            group_id: "00ff00ff00ff00ff".into(),
        },
        TrackerReply::Files {
            group: "g1".into(),
            files: vec![FileInfo {
                name: "movie.mkv".into(),
                size: 1 << 30,
                seeders: 3,
            }],
            more: false,
        },
        TrackerReply::FileDetails {
            group: "g1".into(),
            group_id: "00ff00ff00ff00ff".into(),
            meta: file_meta(2),
            peers: peers(),
            grant: grant.clone(),
        },
        TrackerReply::Peers {
            group_id: "00ff00ff00ff00ff".into(),
            peers: peers(),
            grant,
        },
        TrackerReply::Announced {
            verdicts: vec![
                ShareVerdict {
                    group: "g1".into(),
                    name: "movie.mkv".into(),
                    group_id: Some("00ff00ff00ff00ff".into()),
                    reason: None,
                },
                ShareVerdict {
                    group: "g1".into(),
                    name: "b".into(),
                    group_id: None,
                    reason: Some("no such group".into()),
                },
            ],
            seen: Some(p2p_proto::reach::Seen {
                observed: "11.0.0.20".into(),
                addr: "11.0.0.20:4000".into(),
                reachable: Some(p2p_proto::reach::Reachability::None),
                ipv6: Vec::new(),
            }),
        },
    ]
}

fn errors() -> Vec<ErrorReply> {
    vec![
        ErrorReply::new(ErrorKind::AuthFailed, "wrong password"),
        ErrorReply::not_primary("127.0.0.1:8081".into()),
        ErrorReply::new(ErrorKind::RateLimited, "try again in 2 s"),
        ErrorReply::limit_reached("at most 100 groups"),
    ]
}

pub fn tracker_responses() -> Vec<TrackerResponse> {
    let mut out: Vec<TrackerResponse> = tracker_replies()
        .into_iter()
        .map(|r| TrackerResponse::new("00112233445566778899aabbccddeeff", Ok(r)))
        .collect();
    out.extend(
        errors()
            .into_iter()
            .map(|e| TrackerResponse::new("", Err(e))),
    );
    out
}

pub fn ctl_requests() -> Vec<CtlRequest> {
    let group = || "g1".to_string();
    [
        CtlCommand::Status,
        CtlCommand::CreateUser {
            user: "alice".into(),
            password: "hunter2".into(),
        },
        CtlCommand::Login {
            user: "alice".into(),
            password: "hunter2".into(),
        },
        CtlCommand::Logout,
        CtlCommand::CreateGroup { group: group() },
        CtlCommand::JoinGroup { group: group() },
        CtlCommand::LeaveGroup { group: group() },
        CtlCommand::ListGroups {
            after: Some("a".into()),
            limit: Some(5),
        },
        CtlCommand::ListRequests {
            group: group(),
            after: None,
            limit: None,
        },
        CtlCommand::AcceptRequest {
            group: group(),
            user: "bob".into(),
        },
        CtlCommand::UploadFile {
            group: group(),
            path: "/home/alice/movie.mkv".into(),
        },
        CtlCommand::ListFiles {
            group: group(),
            after: None,
            limit: Some(2),
        },
        CtlCommand::DownloadFile {
            group: group(),
            file: "movie.mkv".into(),
            destination: "/tmp/out".into(),
        },
        CtlCommand::ShowDownloads,
        CtlCommand::StopShare {
            group: group(),
            file: "movie.mkv".into(),
        },
        CtlCommand::TrustTracker {
            tracker: "127.0.0.1:8080".into(),
            fingerprint: downloader().to_string(),
        },
    ]
    .into_iter()
    .map(CtlRequest::new)
    .collect()
}

pub fn ctl_responses() -> Vec<CtlResponse> {
    let replies = vec![
        CtlReply::Done {
            message: "logged in as alice".into(),
        },
        CtlReply::Status(Box::new(DaemonStatus {
            version: "0.1.0".into(),
            pid: 4242,
            user: Some("alice".into()),
            fingerprint: downloader().to_string(),
            tracker: Some("127.0.0.1:8080".into()),
            tracker_fingerprint: None,
            last_tracker_error: Some("connection refused".into()),
            socket: "/run/user/1000/p2pd/p2pd.sock".into(),
            state_dir: "/home/alice/.local/state/p2pd".into(),
            reach: p2p_proto::control::ReachStatus {
                listen: "[::]:4000".into(),
                observed: Some("11.0.0.20".into()),
                public_addr: Some("11.0.0.20:4000".into()),
                reachable: Some(p2p_proto::reach::Reachability::None),
                mapping: None,
                ipv6: Vec::new(),
            },
        })),
        CtlReply::Groups {
            groups: vec![GroupInfo {
                group: "g1".into(),
                owner: "alice".into(),
                members: 1,
                membership: Membership::Pending,
            }],
            more: false,
        },
        CtlReply::Requests {
            group: "g1".into(),
            users: vec!["bob".into()],
            more: true,
        },
        CtlReply::Left(LeftGroup {
            group: "g1".into(),
            new_owner: None,
            removed: true,
        }),
        CtlReply::Files {
            group: "g1".into(),
            files: vec![FileInfo {
                name: "a".into(),
                size: 0,
                seeders: 0,
            }],
            more: false,
        },
        CtlReply::Downloads {
            downloads: vec![DownloadInfo {
                group: "g1".into(),
                file: "movie.mkv".into(),
                destination: "/tmp/out/movie.mkv".into(),
                size: 3 << 20,
                state: DownloadState::Downloading,
                pieces_done: 2,
                pieces_total: 6,
                bytes_done: 1 << 20,
                rate: 12345,
                peers: 2,
                detail: None,
                banned: vec![BannedPeer {
                    peer: "127.0.0.2:4000".into(),
                    reason: "sent a piece that does not match its hash".into(),
                }],
                sources: vec![SourceInfo {
                    peer: "127.0.0.1:4000".into(),
                    connected: true,
                    bytes: 1 << 20,
                    user: Some("bob".into()),
                    via: Some(p2p_proto::reach::ConnectionKind::Punched),
                }],
            }],
        },
    ];
    let mut out: Vec<CtlResponse> = replies
        .into_iter()
        .map(|r| CtlResponse::new(Ok(r)))
        .collect();
    out.extend(errors().into_iter().map(|e| CtlResponse::new(Err(e))));
    out
}

pub fn log_records() -> Vec<LogRecord> {
    let entries = vec![
        LogEntry::UserCreated {
            user: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        },
        LogEntry::SessionOpened {
            token_hash: "ef".repeat(32),
            user: "alice".into(),
            key: Some(downloader()),
            at: NOW,
        },
        LogEntry::SessionSeen {
            token_hash: "ef".repeat(32),
            at: NOW + 3600,
        },
        LogEntry::SessionBound {
            token_hash: "ef".repeat(32),
            key: downloader(),
        },
        LogEntry::SessionClosed {
            token_hash: "ef".repeat(32),
        },
        LogEntry::GroupCreated {
            group: "g1".into(),
            owner: "alice".into(),
            id: Some("00ff00ff00ff00ff".into()),
        },
        LogEntry::JoinRequested {
            group: "g1".into(),
            user: "bob".into(),
        },
        LogEntry::RequestAccepted {
            group: "g1".into(),
            user: "bob".into(),
        },
        LogEntry::MemberLeft {
            group: "g1".into(),
            user: "alice".into(),
        },
        LogEntry::SigningKeyCreated {
            secret: "07".repeat(32),
        },
        LogEntry::SessionSecretCreated {
            secret: "08".repeat(32),
        },
        LogEntry::FileAdded {
            group: "g1".into(),
            meta: file_meta(2),
            user: "alice".into(),
        },
    ];
    let replies = tracker_replies();
    entries
        .into_iter()
        .zip(replies.into_iter().cycle())
        .enumerate()
        .map(|(i, (entry, reply))| LogRecord {
            seq: i as u64 + 1,
            epoch: 2,
            request_id: format!("{i:032x}"),
            entries: vec![entry],
            reply,
        })
        .collect()
}

pub fn cluster_frames() -> Vec<ClusterFrame> {
    let mut msgs = vec![
        ClusterMsg::Accepted {
            proof: "ab".repeat(32),
        },
        ClusterMsg::Hello {
            position: position(),
            purpose: Purpose::Follow,
        },
        ClusterMsg::Hello {
            position: position(),
            purpose: Purpose::Probe,
        },
        ClusterMsg::Status {
            role: Role::Primary,
            position: position(),
        },
        ClusterMsg::Status {
            role: Role::Standby,
            position: position(),
        },
        ClusterMsg::Snapshot {
            rows: vec![SnapshotRow {
                table: "users".into(),
                key: "alice".into(),
                value: r#"{"user":"alice","password_hash":"x"}"#.into(),
            }],
            last: true,
            position: position(),
        },
        ClusterMsg::Heartbeat {
            position: position(),
        },
        ClusterMsg::Ack { seq: 41 },
        ClusterMsg::Refuse {
            reason: "wrong cluster key".into(),
        },
    ];
    for record in log_records() {
        if let Ok(record) = serde_json::to_value(&record) {
            msgs.push(ClusterMsg::Record { record });
        }
    }
    msgs.into_iter().map(ClusterFrame::new).collect()
}

/// `messages` as frame bodies, the way the real encoder writes them.
pub fn encoded<T: p2p_proto::Message>(messages: &[T]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .filter_map(|m| p2p_proto::frame::encode(m).ok().map(|b| b.to_vec()))
        .collect()
}
