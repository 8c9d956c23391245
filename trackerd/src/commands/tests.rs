//! The commands driven through [`dispatch`] on a temporary store, without sockets. Sessions are
//! logged directly (bound to each user's key), so no password is hashed.

use super::*;
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::files::FileMeta;
use p2p_proto::grant::{public_key_hex, unix_now};
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{Announced, PeerInfo, ShareVerdict};
use p2p_proto::views::MAX_PAGE;

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

/// The key of `user`'s daemon in these tests.
fn key_of(user: &str) -> Fingerprint {
    Fingerprint::of_spki(format!("the key of {user}'s daemon").as_bytes())
}

fn origin(user: &str) -> Origin {
    Origin {
        addr: ip_of(user),
        key: key_of(user),
    }
}

fn meta(name: &str, sha1_char: char) -> FileMeta {
    FileMeta {
        name: name.into(),
        size: 10,
        sha1: sha1_char.to_string().repeat(40),
        pieces: vec!["0".repeat(40)],
    }
}

/// An account `user` (its password never checked here) with a session from its key.
fn add_user(store: &Store, user: &str) {
    store
        .write(&new_request_id(), |_| {
            Ok(Decision {
                entries: vec![
                    LogEntry::UserCreated {
                        user: user.into(),
                        password_hash: "not checked in these tests".into(),
                    },
                    LogEntry::SessionOpened {
                        token_hash: token_hash(&token(user)),
                        user: user.into(),
                        key: Some(key_of(user)),
                        at: unix_now(),
                    },
                ],
                reply: TrackerReply::Done,
            })
        })
        .unwrap();
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for user in ["alice", "bob", "carol"] {
            add_user(&store, user);
        }
        let fixture = Self {
            ctx: {
                let store = Arc::new(store);
                store.ensure_secrets().unwrap();
                Ctx::new(store, 1, 1, Policy::default())
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
        dispatch(&self.ctx, origin(user), request).await
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
        match self.ok(user, list_files("g")).await {
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

/// The first page of the groups.
fn list_groups() -> TrackerCall {
    TrackerCall::ListGroups {
        after: None,
        limit: None,
    }
}

/// The first page of `group`'s files.
fn list_files(group: &str) -> TrackerCall {
    TrackerCall::ListFiles {
        group: group.into(),
        after: None,
        limit: None,
    }
}

fn fetch(group: &str, name: &str) -> TrackerCall {
    TrackerCall::FetchFile {
        group: group.into(),
        name: name.into(),
    }
}

fn share(group: &str, name: &str, complete: bool) -> Announced {
    // The test files' SHA-1 is their name's first letter, forty times (see `meta`).
    let first = name.chars().next().unwrap_or('0');
    Announced {
        group: group.into(),
        group_id: None,
        name: name.into(),
        sha1: first.to_string().repeat(40),
        complete,
    }
}

impl Fixture {
    async fn group_id(&self, user: &str, group: &str) -> String {
        match self.ok(user, fetch(group, "a")).await {
            TrackerReply::FileDetails { group_id, .. } => group_id,
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn announce(&self, user: &str, port: u16, shares: Vec<Announced>) -> Vec<ShareVerdict> {
        match self
            .ok(
                user,
                TrackerCall::Announce {
                    port,
                    shares,
                    listening: Default::default(),
                },
            )
            .await
        {
            TrackerReply::Announced { verdicts, .. } => verdicts,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn upload_list_fetch_and_grant() {
    let f = Fixture::new().await;
    let id = new_request_id();
    let reply = f
        .call_with_id("alice", &id, upload("g", meta("a.bin", 'a'), 7000))
        .await;
    let Ok(TrackerReply::Shared { group_id }) = reply else {
        panic!("upload answered {reply:?}");
    };
    // A retried upload (same request id) is answered from the log.
    let reply = f
        .call_with_id("alice", &id, upload("g", meta("a.bin", 'a'), 7000))
        .await;
    assert_eq!(
        reply,
        Ok(TrackerReply::Shared {
            group_id: group_id.clone()
        })
    );

    assert_eq!(f.seeders("bob").await, [("a.bin".to_string(), 10, 1)]);

    let TrackerReply::FileDetails {
        group,
        group_id: fetched_id,
        meta: got,
        peers,
        grant,
    } = f.ok("bob", fetch("g", "a.bin")).await
    else {
        panic!("not file details");
    };
    assert_eq!(group, "g");
    assert_eq!(fetched_id, group_id);
    assert_eq!(got, meta("a.bin", 'a'));
    assert_eq!(
        peers,
        [PeerInfo {
            user: "alice".into(),
            addr: "10.0.0.1:7000".into(),
            key: key_of("alice"),
            complete: true,
            reach: None,
            addr6: None,
        }],
        "a peer comes with the key a downloader must accept from it"
    );
    assert_eq!(grant.user, "bob");
    assert_eq!(grant.group_id, group_id);
    // The public key needs no session.
    let anonymous = TrackerRequest::new(new_request_id(), None, TrackerCall::SigningKey);
    let Ok(TrackerReply::SigningKey { public_key }) =
        dispatch(&f.ctx, origin("carol"), anonymous).await
    else {
        panic!("no signing key");
    };
    let now = unix_now();
    assert_eq!(
        grant.verify(&public_key, &"a".repeat(40), key_of("bob"), now),
        Ok(())
    );
    assert_eq!(
        grant.verify(&public_key, &"a".repeat(40), key_of("carol"), now),
        Err(p2p_proto::grant::GrantError::WrongKey),
        "the grant is bob's daemon's only"
    );
    let lifetime = f.ctx.policy.grant_lifetime;
    assert!(grant.expires <= now + lifetime && grant.expires + 5 >= now + lifetime);
    // `peers` gives the same peers and a grant, without the piece hashes.
    let TrackerReply::Peers {
        group_id: peers_id,
        peers: again,
        grant: renewed,
    } = f
        .ok(
            "bob",
            TrackerCall::Peers {
                group: "g".into(),
                name: "a.bin".into(),
            },
        )
        .await
    else {
        panic!("not peers");
    };
    assert_eq!((peers_id, again), (group_id, peers));
    assert_eq!(
        renewed.verify(&public_key, &"a".repeat(40), key_of("bob"), now),
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
        list_files("g"),
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
    let e = f.err("alice", list_files("nope")).await;
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
    let anonymous = TrackerRequest::new(new_request_id(), None, list_groups());
    let e = dispatch(&f.ctx, origin("carol"), anonymous)
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

    let g = f.group_id("alice", "g").await;
    let mut other_content = share("g", "b", true);
    other_content.sha1 = "f".repeat(40);
    let mut stale = share("g", "a", true);
    stale.group_id = Some("0".repeat(32));
    let verdicts = f
        .announce(
            "bob",
            9000,
            vec![
                share("g", "a", false),
                share("g", "b", true),
                share("g", "unregistered", true),
                share("h", "c", true),
                share("gone", "x", true),
                share("bad/group", "x", true),
                share("g", "../bad", true),
                other_content,
                stale,
            ],
        )
        .await;
    let said: Vec<(Option<&str>, Option<&str>)> = verdicts
        .iter()
        .map(|v| (v.group_id.as_deref(), v.reason.as_deref()))
        .collect();
    assert_eq!(
        said,
        [
            (Some(g.as_str()), None),
            (Some(g.as_str()), None),
            (None, Some("the file is not registered in the group")),
            (None, Some("you are not a member of the group")),
            (None, Some("the group no longer exists")),
            (None, Some("malformed group or file name")),
            (None, Some("malformed group or file name")),
            (
                None,
                Some("the group's file of this name has other content")
            ),
            (None, Some("the group was removed and created again")),
        ]
    );
    let peers = f.peers("alice", "a").await;
    assert_eq!(
        peers,
        [PeerInfo {
            user: "bob".into(),
            addr: "10.0.0.2:9000".into(),
            key: key_of("bob"),
            complete: false,
            reach: None,
            addr6: None,
        }]
    );
    assert_eq!(f.peers("alice", "b").await.len(), 1);
    assert_eq!(
        f.ctx
            .swarm(|s| s.count("h", "c", std::time::Instant::now())),
        1,
        "only carol, who is a member of h"
    );
    assert_eq!(
        f.ctx
            .swarm(|s| s.count("g", "unregistered", std::time::Instant::now())),
        0
    );

    // Alice's uploads are replaced by her announcement too.
    f.announce("alice", 7000, vec![share("g", "b", true)]).await;
    assert!(f.peers("bob", "a").await.is_empty());
    assert_eq!(f.peers("bob", "b").await.len(), 1);

    // The next announcement of bob replaces the first.
    f.announce("bob", 9001, vec![share("g", "a", true)]).await;
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
async fn a_group_created_again_is_another_group() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    let old_id = f.group_id("alice", "g").await;
    f.ok("alice", TrackerCall::LeaveGroup { group: "g".into() })
        .await;
    f.ok("bob", TrackerCall::LeaveGroup { group: "g".into() })
        .await;
    f.ok("carol", TrackerCall::CreateGroup { group: "g".into() })
        .await;
    assert!(f.seeders("carol").await.is_empty());
    let e = f.err("carol", fetch("g", "a")).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    // carol registers a file of the same name and content: alice, who still holds it, is not
    // offered as a seeder, and the new group has a new id.
    f.ok("carol", upload("g", meta("a", 'a'), 7003)).await;
    assert_ne!(f.group_id("carol", "g").await, old_id);
    assert!(f.peers("carol", "a").await.is_empty());
    let mut old_share = share("g", "a", true);
    old_share.group_id = Some(old_id);
    let verdicts = f.announce("alice", 7000, vec![old_share]).await;
    assert_eq!(verdicts[0].group_id, None);
    assert!(f.peers("carol", "a").await.is_empty());
}

#[tokio::test]
async fn a_session_works_only_from_the_key_that_opened_it() {
    let f = Fixture::new().await;
    let alices_token_from_bobs_key =
        TrackerRequest::new(new_request_id(), Some(token("alice")), list_groups());
    let e = dispatch(&f.ctx, origin("bob"), alices_token_from_bobs_key)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotLoggedIn);
    assert!(e.message.contains("another daemon's key"), "{e:?}");
    assert!(matches!(
        f.call("alice", list_groups()).await,
        Ok(TrackerReply::Groups { .. })
    ));
}

#[tokio::test]
async fn an_idle_session_expires_and_is_closed() {
    let mut f = Fixture::new().await;
    f.ctx.policy.session_idle = 1;
    // Seen long ago.
    f.ctx
        .store
        .write(&new_request_id(), |_| {
            Ok(Decision {
                entries: vec![LogEntry::SessionOpened {
                    token_hash: token_hash(&token("carol")),
                    user: "carol".into(),
                    key: Some(key_of("carol")),
                    at: unix_now() - 10,
                }],
                reply: TrackerReply::Done,
            })
        })
        .unwrap();
    let e = f.err("carol", list_groups()).await;
    assert_eq!(e.kind, ErrorKind::NotLoggedIn);
    assert!(e.message.contains("without use"), "{e:?}");
    let hash = token_hash(&token("carol"));
    let gone = f.ctx.store.read(|t| Ok(t.session(&hash)?)).unwrap();
    assert_eq!(gone, None, "an expired session is closed");
}

#[tokio::test]
async fn a_session_from_before_keys_is_bound_to_its_first_key() {
    let f = Fixture::new().await;
    f.ctx
        .store
        .write(&new_request_id(), |_| {
            Ok(Decision {
                entries: vec![LogEntry::SessionOpened {
                    token_hash: token_hash(&token("dora")),
                    user: "dora".into(),
                    key: None,
                    at: unix_now(),
                }],
                reply: TrackerReply::Done,
            })
        })
        .unwrap();
    let whoami = || TrackerRequest::new(new_request_id(), Some(token("dora")), TrackerCall::Whoami);
    assert_eq!(
        dispatch(&f.ctx, origin("dora"), whoami()).await,
        Ok(TrackerReply::User {
            user: "dora".into()
        })
    );
    let e = dispatch(&f.ctx, origin("mallory"), whoami())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotLoggedIn, "bound to dora's key now");
}

#[tokio::test]
async fn login_makes_the_token_and_a_retry_gets_the_same_one() {
    let f = Fixture::new().await;
    let hash = f.ctx.hasher.hash("pw-of-erin".into()).await.unwrap();
    f.ctx
        .store
        .write(&new_request_id(), |_| {
            Ok(Decision {
                entries: vec![LogEntry::UserCreated {
                    user: "erin".into(),
                    password_hash: hash,
                }],
                reply: TrackerReply::Done,
            })
        })
        .unwrap();
    let login = TrackerCall::Login {
        user: "erin".into(),
        password: "pw-of-erin".into(),
    };
    let id = new_request_id();
    let ask =
        |call: TrackerCall, user: &str| (origin(user), TrackerRequest::new(id.clone(), None, call));
    let (o, r) = ask(login.clone(), "erin");
    let Ok(TrackerReply::LoggedIn { token, .. }) = dispatch(&f.ctx, o, r).await else {
        panic!("login failed");
    };
    assert!(p2p_proto::token::is_session_token(&token));
    let (o, r) = ask(login.clone(), "erin");
    let Ok(TrackerReply::LoggedIn { token: again, .. }) = dispatch(&f.ctx, o, r).await else {
        panic!("retried login failed");
    };
    assert_eq!(token, again, "a retried login gets the same session");
    // The token works from erin's key, and nowhere is it stored in clear.
    let whoami = TrackerRequest::new(new_request_id(), Some(token.clone()), TrackerCall::Whoami);
    assert!(dispatch(&f.ctx, origin("erin"), whoami).await.is_ok());
    let (rows, _) = f.ctx.store.export_snapshot().unwrap();
    assert!(
        rows.iter()
            .all(|r| !r.value.contains(&token) && !r.key.contains(&token))
    );
    let key = f.ctx.store.signing_key().unwrap().unwrap();
    assert!(!public_key_hex(&key).is_empty());
}

/// Tighter limits than the defaults, so a test reaches each in a few calls.
fn small_limits() -> Limits {
    Limits {
        groups_per_user: 3,
        files_per_user: 2,
        files_per_group: 3,
        members_per_group: 3,
        requests_per_group: 2,
    }
}

impl Fixture {
    /// A fixture whose tracker enforces `limits`.
    async fn with_limits(limits: Limits) -> Self {
        let mut f = Self::new().await;
        f.ctx.limits = limits;
        f
    }

    /// (groups owned, files added) as `user`'s record counts them.
    fn counters(&self, user: &str) -> (u64, u64) {
        let record = self.ctx.store.read(|t| Ok(t.user(user)?)).unwrap().unwrap();
        (record.groups_owned, record.files_added)
    }

    fn group_files(&self, group: &str) -> u64 {
        let record = self.ctx.store.read(|t| Ok(t.group(group)?)).unwrap();
        record.map_or(0, |g| g.files)
    }

    async fn create(&self, user: &str, group: &str) -> Result<TrackerReply, ErrorReply> {
        self.call(
            user,
            TrackerCall::CreateGroup {
                group: group.into(),
            },
        )
        .await
    }

    async fn leave(&self, user: &str, group: &str) {
        self.ok(
            user,
            TrackerCall::LeaveGroup {
                group: group.into(),
            },
        )
        .await;
    }

    async fn accept(
        &self,
        owner: &str,
        group: &str,
        user: &str,
    ) -> Result<TrackerReply, ErrorReply> {
        self.call(
            owner,
            TrackerCall::AcceptRequest {
                group: group.into(),
                user: user.into(),
            },
        )
        .await
    }

    async fn join(&self, user: &str, group: &str) -> Result<TrackerReply, ErrorReply> {
        self.call(
            user,
            TrackerCall::JoinGroup {
                group: group.into(),
            },
        )
        .await
    }
}

#[track_caller]
fn assert_limit(result: Result<TrackerReply, ErrorReply>, message: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::LimitReached, "{e:?}");
            assert_eq!(e.message, message);
        }
        Ok(reply) => panic!("expected limit_reached ({message}), got {reply:?}"),
    }
}

#[tokio::test]
async fn a_user_owns_at_most_the_group_limit_and_counts_follow_ownership() {
    let f = Fixture::with_limits(small_limits()).await;
    // alice owns g already.
    f.create("alice", "g2").await.unwrap();
    f.create("alice", "g3").await.unwrap();
    assert_eq!(f.counters("alice").0, 3);
    assert_limit(
        f.create("alice", "g4").await,
        "alice owns 3 groups, the most one user may own; leave one first",
    );
    assert!(f.ctx.store.read(|t| Ok(t.group("g4")?)).unwrap().is_none());
    // Others are not held back by alice's groups.
    f.create("bob", "b1").await.unwrap();

    // A group removed (its last member left) no longer counts.
    f.leave("alice", "g3").await;
    assert_eq!(f.counters("alice").0, 2);
    f.create("alice", "g4").await.unwrap();

    // Ownership handed on moves the count, and what is inherited is kept even past the
    // limit; only creating is refused.
    f.create("bob", "b2").await.unwrap();
    f.create("bob", "b3").await.unwrap();
    assert_eq!(f.counters("bob").0, 3);
    f.leave("alice", "g").await;
    assert_eq!(f.counters("alice").0, 2);
    assert_eq!(f.counters("bob").0, 4);
    assert_limit(
        f.create("bob", "b4").await,
        "bob owns 4 groups, the most one user may own; leave one first",
    );
}

#[tokio::test]
async fn files_are_bounded_per_user_and_per_group() {
    let f = Fixture::with_limits(small_limits()).await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    f.ok("alice", upload("g", meta("b", 'b'), 7000)).await;
    assert_eq!(f.counters("alice").1, 2);
    assert_limit(
        f.call("alice", upload("g", meta("c", 'c'), 7000)).await,
        "alice has added 2 files, the most one user may add; files count until their group is \
         removed",
    );
    // Becoming one more seeder of a registered file adds nothing, so it is never refused.
    f.ok("alice", upload("g", meta("a", 'a'), 7001)).await;
    f.ok("bob", upload("g", meta("a", 'a'), 7002)).await;
    assert_eq!(f.counters("alice").1, 2);
    assert_eq!(f.counters("bob").1, 0);
    f.ok("bob", upload("g", meta("c", 'c'), 7002)).await;
    assert_eq!(f.group_files("g"), 3);
    assert_limit(
        f.call("bob", upload("g", meta("d", 'd'), 7002)).await,
        "g holds 3 files, the most one group may hold",
    );
    // The refused uploads registered nothing.
    assert_eq!(f.seeders("alice").await.len(), 3);

    // A removed group takes its files off every adder's count.
    f.ok("bob", TrackerCall::CreateGroup { group: "h".into() })
        .await;
    f.ok("bob", upload("h", meta("e", 'e'), 7002)).await;
    assert_eq!(f.counters("bob").1, 2);
    f.leave("alice", "g").await;
    f.leave("bob", "g").await;
    assert_eq!(f.counters("alice").1, 0);
    assert_eq!(f.counters("bob").1, 1);
    f.ok("bob", upload("h", meta("f", 'f'), 7002)).await;
}

#[tokio::test]
async fn members_and_waiting_requests_are_bounded_per_group() {
    let f = Fixture::with_limits(small_limits()).await;
    for user in ["dave", "erin"] {
        add_user(&f.ctx.store, user);
    }
    // g has alice and bob; two may wait.
    f.join("carol", "g").await.unwrap();
    f.join("dave", "g").await.unwrap();
    assert_limit(
        f.join("erin", "g").await,
        "g has 2 join requests waiting, the most one group may have; ask again once its owner \
         has answered some",
    );
    f.accept("alice", "g", "carol").await.unwrap();
    // carol's place in the queue is free again, but the group is full.
    f.join("erin", "g").await.unwrap();
    assert_limit(
        f.accept("alice", "g", "dave").await,
        "g has 3 members, the most one group may have",
    );
    // A member leaving makes room.
    f.leave("bob", "g").await;
    f.accept("alice", "g", "dave").await.unwrap();
}

#[tokio::test]
async fn listings_come_in_pages_and_every_entry_once() {
    let f = Fixture::new().await;
    for user in ["bob", "carol"] {
        for i in 0..4 {
            f.create(user, &format!("{user}{i}")).await.unwrap();
        }
    }
    // Nine groups in pages of two: every one once, in order, and `more` until the last.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let call = TrackerCall::ListGroups {
            after: after.clone(),
            limit: Some(2),
        };
        let TrackerReply::Groups { groups, more } = f.ok("alice", call).await else {
            panic!("list_groups answered something else");
        };
        assert!(groups.len() <= 2);
        seen.extend(groups.iter().map(|g| g.group.clone()));
        after = groups.last().map(|g| g.group.clone());
        if !more {
            break;
        }
    }
    let mut all: Vec<String> = ["bob", "carol"]
        .iter()
        .flat_map(|u| (0..4).map(move |i| format!("{u}{i}")))
        .chain(["g".to_string()])
        .collect();
    all.sort();
    assert_eq!(seen, all);
    // A page that ends exactly at the last group says there is no more.
    let call = TrackerCall::ListGroups {
        after: Some("carol3".into()),
        limit: Some(1),
    };
    let reply = f.ok("alice", call).await;
    assert!(
        matches!(&reply, TrackerReply::Groups { groups, more: false } if groups.len() == 1),
        "{reply:?}"
    );
    for limit in [0, MAX_PAGE + 1] {
        let call = TrackerCall::ListGroups {
            after: None,
            limit: Some(limit),
        };
        assert_eq!(f.err("alice", call).await.kind, ErrorKind::InvalidArgument);
    }

    // Files, by name.
    for name in ["c", "a", "b"] {
        f.ok("alice", upload("g", meta(name, 'a'), 7000)).await;
    }
    let page = |after: Option<&str>| TrackerCall::ListFiles {
        group: "g".into(),
        after: after.map(Into::into),
        limit: Some(2),
    };
    let names = |reply: TrackerReply| match reply {
        TrackerReply::Files { files, more, .. } => {
            (files.into_iter().map(|f| f.name).collect::<Vec<_>>(), more)
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        names(f.ok("bob", page(None)).await),
        (vec!["a".into(), "b".into()], true)
    );
    assert_eq!(
        names(f.ok("bob", page(Some("b"))).await),
        (vec!["c".into()], false)
    );

    // Requests, in the order they were made.
    for user in ["dave", "erin"] {
        add_user(&f.ctx.store, user);
    }
    for user in ["erin", "carol", "dave"] {
        f.join(user, "g").await.unwrap();
    }
    let page = |after: Option<&str>| TrackerCall::ListRequests {
        group: "g".into(),
        after: after.map(Into::into),
        limit: Some(2),
    };
    let users = |reply: TrackerReply| match reply {
        TrackerReply::Requests { users, more, .. } => (users, more),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        users(f.ok("alice", page(None)).await),
        (vec!["erin".into(), "carol".into()], true)
    );
    assert_eq!(
        users(f.ok("alice", page(Some("carol"))).await),
        (vec!["dave".into()], false)
    );
    // A cursor that is no longer waiting cannot be continued from.
    f.accept("alice", "g", "carol").await.unwrap();
    let e = f.err("alice", page(Some("carol"))).await;
    assert_eq!(e.kind, ErrorKind::Conflict, "{e:?}");
}

#[tokio::test]
async fn a_peer_list_is_bounded_and_keeps_the_piece_hashes_out_of_peers() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a", 'a'), 7000)).await;
    let now = std::time::Instant::now();
    let many = p2p_proto::tracker::MAX_PEERS + 50;
    f.ctx.swarm(|s| {
        for i in 0..many {
            let addr: SocketAddr = format!("10.1.{}.{}:7000", i / 250, i % 250)
                .parse()
                .unwrap();
            let user = format!("u{i}");
            s.add(&user, "g", "a", addr, key_of(&user), i % 2 == 0, now);
        }
    });
    let peers = f.peers("bob", "a").await;
    assert_eq!(peers.len(), p2p_proto::tracker::MAX_PEERS);
    let distinct: std::collections::HashSet<_> = peers.iter().map(|p| &p.user).collect();
    assert_eq!(distinct.len(), peers.len(), "each peer once");
    assert!(peers.iter().all(|p| p.user != "bob"));
    // Complete peers first.
    let first_partial = peers
        .iter()
        .position(|p| !p.complete)
        .unwrap_or(peers.len());
    assert!(peers[first_partial..].iter().all(|p| !p.complete));

    let call = TrackerCall::Peers {
        group: "g".into(),
        name: "a".into(),
    };
    match f.ok("bob", call).await {
        TrackerReply::Peers { peers, .. } => {
            assert_eq!(peers.len(), p2p_proto::tracker::MAX_PEERS)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn punch_at(peer: &str) -> TrackerCall {
    TrackerCall::Punch {
        group: "g".into(),
        name: "a.bin".into(),
        peer: key_of(peer),
    }
}

#[tokio::test]
async fn a_punch_invites_the_holder_and_only_it() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a.bin", 'a'), 7000)).await;
    f.announce("alice", 7000, vec![share("g", "a.bin", true)])
        .await;
    // bob has not said where he listens yet: nobody could punch towards him.
    let early = f.call("bob", punch_at("alice")).await.unwrap_err();
    assert_eq!(early.kind, ErrorKind::Unavailable, "{early}");
    f.announce("bob", 7001, Vec::new()).await;
    assert_eq!(
        f.ok("bob", punch_at("alice")).await,
        TrackerReply::PunchAt {
            addr: "10.0.0.1:7000".into()
        }
    );
    let TrackerReply::Polled { invites, .. } = f.ok("alice", TrackerCall::Poll).await else {
        panic!("not polled");
    };
    assert_eq!(invites.len(), 1, "{invites:?}");
    assert_eq!(invites[0].user, "bob");
    assert_eq!(invites[0].key, key_of("bob"));
    assert_eq!(
        invites[0].kind,
        p2p_proto::reach::InviteKind::Punch {
            addr: "10.0.0.2:7001".into()
        }
    );
    // Taken once, and by alice only.
    for user in ["alice", "bob"] {
        let TrackerReply::Polled { invites, .. } = f.ok(user, TrackerCall::Poll).await else {
            panic!("not polled");
        };
        assert!(invites.is_empty(), "{user}: {invites:?}");
    }
}

#[tokio::test]
async fn a_punch_is_refused_to_non_members_and_towards_non_holders() {
    let f = Fixture::new().await;
    f.ok("alice", upload("g", meta("a.bin", 'a'), 7000)).await;
    f.announce("alice", 7000, vec![share("g", "a.bin", true)])
        .await;
    f.announce("carol", 7003, Vec::new()).await;
    let outsider = f.call("carol", punch_at("alice")).await.unwrap_err();
    assert_eq!(outsider.kind, ErrorKind::PermissionDenied, "{outsider}");
    f.announce("bob", 7001, Vec::new()).await;
    // carol's key holds nothing: bob cannot make the tracker send anyone towards him.
    let nobody = f.call("bob", punch_at("carol")).await.unwrap_err();
    assert_eq!(nobody.kind, ErrorKind::NotFound, "{nobody}");
    let TrackerReply::Polled { invites, .. } = f.ok("carol", TrackerCall::Poll).await else {
        panic!("not polled");
    };
    assert!(invites.is_empty(), "{invites:?}");
}

#[tokio::test]
async fn an_announcement_is_answered_with_where_the_tracker_sees_the_daemon() {
    let f = Fixture::new().await;
    let reply = f
        .ok(
            "alice",
            TrackerCall::Announce {
                port: 7000,
                shares: Vec::new(),
                listening: Default::default(),
            },
        )
        .await;
    let TrackerReply::Announced {
        seen: Some(seen), ..
    } = reply
    else {
        panic!("no seen in {reply:?}");
    };
    assert_eq!(seen.observed, "10.0.0.1");
    assert_eq!(seen.addr, "10.0.0.1:7000");
    // Nothing checks here (no prober): the answer says the check has not run.
    assert_eq!(seen.reachable, None);
}
