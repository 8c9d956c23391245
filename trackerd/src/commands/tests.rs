//! The file commands driven through [`dispatch`] on a temporary store, without sockets.
//! Sessions are logged directly, so no password is hashed.

use super::*;
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::files::FileMeta;
use p2p_proto::grant::unix_now;
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{Announced, PeerInfo};

struct Fixture {
    ctx: Ctx,
    _dir: tempfile::TempDir,
}

/// The session token of `user` in these tests.
fn token(user: &str) -> String {
    hex::encode(Sha256::digest(user.as_bytes()))
}

fn ip_of(user: &str) -> SocketAddr {
    match user {
        "alice" => "10.0.0.1:40001",
        "bob" => "10.0.0.2:40002",
        _ => "10.0.0.3:40003",
    }
    .parse()
    .unwrap()
}

fn meta(name: &str, sha1_char: char) -> FileMeta {
    FileMeta {
        name: name.into(),
        size: 10,
        sha1: sha1_char.to_string().repeat(40),
        pieces: vec!["0".repeat(40)],
    }
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for user in ["alice", "bob", "carol"] {
            store
                .write(&new_request_id(), |_| {
                    Ok(Decision {
                        entries: vec![LogEntry::SessionOpened {
                            token_hash: token_hash(&token(user)),
                            user: user.into(),
                        }],
                        reply: TrackerReply::Done,
                    })
                })
                .unwrap();
        }
        let fixture = Self {
            ctx: {
                let store = Arc::new(store);
                store.signing_key().unwrap();
                Ctx::new(store, 1, 1)
            },
            _dir: dir,
        };
        // alice owns g, bob is a member, carol is not.
        fixture
            .ok("alice", TrackerCall::CreateGroup { group: "g".into() })
            .await;
        fixture
            .ok("bob", TrackerCall::JoinGroup { group: "g".into() })
            .await;
        fixture
            .ok(
                "alice",
                TrackerCall::AcceptRequest {
                    group: "g".into(),
                    user: "bob".into(),
                },
            )
            .await;
        fixture
    }

    async fn call_with_id(
        &self,
        user: &str,
        id: &str,
        call: TrackerCall,
    ) -> Result<TrackerReply, ErrorReply> {
        let request = TrackerRequest::new(id, Some(token(user)), call);
        dispatch(&self.ctx, ip_of(user), request).await
    }

    async fn call(&self, user: &str, call: TrackerCall) -> Result<TrackerReply, ErrorReply> {
        self.call_with_id(user, &new_request_id(), call).await
    }

    async fn ok(&self, user: &str, call: TrackerCall) -> TrackerReply {
        let what = format!("{call:?}");
        match self.call(user, call).await {
            Ok(reply) => reply,
            Err(e) => panic!("{user}: {what}: {e:?}"),
        }
    }

    async fn err(&self, user: &str, call: TrackerCall) -> ErrorReply {
        self.call(user, call).await.unwrap_err()
    }

    async fn peers(&self, user: &str, name: &str) -> Vec<PeerInfo> {
        match self.ok(user, fetch("g", name)).await {
            TrackerReply::FileDetails { peers, .. } => peers,
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn seeders(&self, user: &str) -> Vec<(String, u64, usize)> {
        match self
            .ok(user, TrackerCall::ListFiles { group: "g".into() })
            .await
        {
            TrackerReply::Files { files, .. } => files
                .into_iter()
                .map(|f| (f.name, f.size, f.seeders))
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn upload(group: &str, file: FileMeta, port: u16) -> TrackerCall {
    TrackerCall::UploadFile {
        group: group.into(),
        file,
        port,
    }
}

fn fetch(group: &str, name: &str) -> TrackerCall {
    TrackerCall::FetchFile {
        group: group.into(),
        name: name.into(),
    }
}

fn share(group: &str, name: &str, complete: bool) -> Announced {
    Announced {
        group: group.into(),
        name: name.into(),
        complete,
    }
}

#[tokio::test]
async fn upload_list_fetch_and_grant() {
    let f = Fixture::new().await;
    let id = new_request_id();
    let reply = f
        .call_with_id("alice", &id, upload("g", meta("a.bin", 'a'), 7000))
        .await;
    assert_eq!(reply, Ok(TrackerReply::Done));
    // A retried upload (same request id) is answered from the log.
    let reply = f
        .call_with_id("alice", &id, upload("g", meta("a.bin", 'a'), 7000))
        .await;
    assert_eq!(reply, Ok(TrackerReply::Done));

    assert_eq!(f.seeders("bob").await, [("a.bin".to_string(), 10, 1)]);

    let TrackerReply::FileDetails {
        group,
        meta: got,
        peers,
        grant,
    } = f.ok("bob", fetch("g", "a.bin")).await
    else {
        panic!("not file details");
    };
    assert_eq!(group, "g");
    assert_eq!(got, meta("a.bin", 'a'));
    assert_eq!(
        peers,
        [PeerInfo {
            user: "alice".into(),
            addr: "10.0.0.1:7000".into(),
            complete: true,
        }]
    );
    assert_eq!(grant.user, "bob");
    // The public key needs no session.
    let anonymous = TrackerRequest::new(new_request_id(), None, TrackerCall::SigningKey);
    let Ok(TrackerReply::SigningKey { public_key }) =
        dispatch(&f.ctx, ip_of("carol"), anonymous).await
    else {
        panic!("no signing key");
    };
    assert_eq!(
        grant.verify(&public_key, &"a".repeat(40), unix_now()),
        Ok(())
    );

    // The caller is not offered itself.
    assert!(f.peers("alice", "a.bin").await.is_empty());

    // Same name, same content: bob becomes a second seeder.
    f.ok("bob", upload("g", meta("a.bin", 'a'), 7001)).await;
    assert_eq!(f.seeders("alice").await, [("a.bin".to_string(), 10, 2)]);
    // Same name, other content: refused.
    let e = f.err("bob", upload("g", meta("a.bin", 'b'), 7001)).await;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(
        e.message,
        "a different file named a.bin already exists in g"
    );

    // Files are listed by name.
    f.ok("bob", upload("g", meta("0-first", 'c'), 7001)).await;
    let names: Vec<String> = f.seeders("alice").await.into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["0-first", "a.bin"]);
}

#[tokio::test]
async fn outsiders_and_bad_arguments_are_refused() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    for call in [
        upload("g", meta("b", 'b'), 7000),
        TrackerCall::ListFiles { group: "g".into() },
        fetch("g", "a"),
        TrackerCall::StopShare {
            group: "g".into(),
            name: "a".into(),
        },
    ] {
        let e = f.err("carol", call).await;
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert_eq!(e.message, "you are not a member of g");
    }
    let e = f
        .err(
            "alice",
            TrackerCall::ListFiles {
                group: "nope".into(),
            },
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = f.err("alice", upload("nope", meta("a", 'a'), 7000)).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = f.err("alice", fetch("g", "missing")).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.message, "no file named missing in g");

    let mut bad = meta("a", 'a');
    bad.pieces.clear();
    let e = f.err("alice", upload("g", bad, 7000)).await;
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    let e = f.err("alice", upload("g", meta("../x", 'a'), 7000)).await;
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    let e = f.err("alice", upload("g", meta("a", 'a'), 0)).await;
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    let e = f.err("alice", fetch("g", "a/b")).await;
    assert_eq!(e.kind, ErrorKind::InvalidArgument);

    // Without a session only the public calls answer.
    let anonymous = TrackerRequest::new(new_request_id(), None, TrackerCall::ListGroups);
    let e = dispatch(&f.ctx, ip_of("carol"), anonymous)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotLoggedIn);
}

#[tokio::test]
async fn announce_replaces_and_skips_what_the_caller_may_not_offer() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    f.ok("alice", upload("g", meta("b", 'b'), 7000)).await;
    f.ok("carol", TrackerCall::CreateGroup { group: "h".into() })
        .await;
    f.ok("carol", upload("h", meta("c", 'c'), 7003)).await;

    f.ok(
        "bob",
        TrackerCall::Announce {
            port: 9000,
            shares: vec![
                share("g", "a", false),
                share("g", "b", true),
                share("g", "unregistered", true),
                share("h", "c", true),
                share("gone", "x", true),
                share("bad/group", "x", true),
                share("g", "../bad", true),
            ],
        },
    )
    .await;
    let peers = f.peers("alice", "a").await;
    assert_eq!(
        peers,
        [PeerInfo {
            user: "bob".into(),
            addr: "10.0.0.2:9000".into(),
            complete: false,
        }]
    );
    assert_eq!(f.peers("alice", "b").await.len(), 1);
    assert_eq!(
        f.ctx
            .swarm(|s| s.count("h", "c", std::time::Instant::now())),
        1
    );
    assert_eq!(
        f.ctx
            .swarm(|s| s.count("g", "unregistered", std::time::Instant::now())),
        0
    );

    // Alice's uploads are replaced by her announcement too.
    f.ok(
        "alice",
        TrackerCall::Announce {
            port: 7000,
            shares: vec![share("g", "b", true)],
        },
    )
    .await;
    assert!(f.peers("bob", "a").await.is_empty());
    assert_eq!(f.peers("bob", "b").await.len(), 1);

    // The next announcement of bob replaces the first.
    f.ok(
        "bob",
        TrackerCall::Announce {
            port: 9001,
            shares: vec![share("g", "a", true)],
        },
    )
    .await;
    assert_eq!(f.peers("alice", "a").await[0].addr, "10.0.0.2:9001");
    assert!(f.peers("alice", "b").await.is_empty());
}

#[tokio::test]
async fn stop_share_leave_and_logout_withdraw_offers() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    f.ok("bob", upload("g", meta("a", 'a'), 7001)).await;
    f.ok("bob", upload("g", meta("b", 'b'), 7001)).await;

    f.ok(
        "bob",
        TrackerCall::StopShare {
            group: "g".into(),
            name: "a".into(),
        },
    )
    .await;
    assert_eq!(
        f.seeders("alice").await,
        [("a".to_string(), 10, 1), ("b".to_string(), 10, 1)]
    );
    let e = f
        .err(
            "bob",
            TrackerCall::StopShare {
                group: "g".into(),
                name: "zzz".into(),
            },
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound);

    f.ok("bob", TrackerCall::LeaveGroup { group: "g".into() })
        .await;
    assert_eq!(
        f.seeders("alice").await,
        [("a".to_string(), 10, 1), ("b".to_string(), 10, 0)]
    );

    f.ok("alice", TrackerCall::Logout).await;
    assert_eq!(
        f.ctx
            .swarm(|s| s.count("g", "a", std::time::Instant::now())),
        0
    );
}

#[tokio::test]
async fn a_group_created_again_has_no_files() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    f.ok("alice", TrackerCall::LeaveGroup { group: "g".into() })
        .await;
    f.ok("bob", TrackerCall::LeaveGroup { group: "g".into() })
        .await;
    f.ok("carol", TrackerCall::CreateGroup { group: "g".into() })
        .await;
    assert!(f.seeders("carol").await.is_empty());
    let e = f.err("carol", fetch("g", "a")).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
}
