//! The command layer driven through [`dispatch`], in-process: a real `Daemon` on a temporary
//! state directory, talking to a fake tracker that answers as each test scripts it.

use super::*;
use crate::config::Config;
use crate::state::{State, StateDb};
use crate::testing::{FakeTracker, client_of};
use crate::tracker_client::Timing;
use p2p_proto::ErrorKind;
use p2p_proto::files::FileMeta;
use p2p_proto::grant::Grant;
use p2p_proto::tracker::{PeerInfo, TrackerCall, TrackerReply, TrackerRequest};
use p2p_proto::tracker_info::TrackerInfo;
use p2p_proto::views::GroupInfo;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Fixture {
    daemon: Arc<Daemon>,
    tracker: FakeTracker,
    dir: tempfile::TempDir,
}

/// The session token the fake tracker hands out.
const TOKEN: &str = "5e55105e55105e55105e55105e55105e55105e55105e55105e55105e55105e55";

/// Answers every call the way a tracker that knows user `alice` (password `pw`) would; calls a
/// test does not care about get `done`.
fn friendly(request: &TrackerRequest) -> Option<Result<TrackerReply, ErrorReply>> {
    Some(match &request.call {
        TrackerCall::Login { user, password, .. } if user == "alice" && password == "pw" => {
            Ok(TrackerReply::LoggedIn {
                user: user.clone(),
                token: TOKEN.into(),
            })
        }
        TrackerCall::UploadFile { .. } => Ok(TrackerReply::Shared {
            group_id: "1d".into(),
        }),
        TrackerCall::Login { .. } => Err(ErrorReply::new(
            ErrorKind::AuthFailed,
            "wrong user id or password",
        )),
        TrackerCall::ListGroups { .. } => Ok(TrackerReply::Groups {
            groups: Vec::new(),
            more: false,
        }),
        _ => Ok(TrackerReply::Done),
    })
}

impl Fixture {
    async fn new(
        script: impl Fn(&TrackerRequest) -> Option<Result<TrackerReply, ErrorReply>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tracker = FakeTracker::start(script).await;
        let info = TrackerInfo::parse(Path::new("t.txt"), &tracker.addr.to_string()).unwrap();
        let config = Config {
            socket: dir.path().join("p2pd.sock"),
            state_dir: dir.path().join("state"),
            trackers: info,
            listen: "127.0.0.1:0".parse().unwrap(),
            public_addr: None,
            port_mapping: crate::reach::PortMapping::Off,
            ways: crate::reach::dial::Ways::ALL,
            upload_limit: None,
            download_limit: None,
        };
        let db = StateDb::open(&config.db_file()).unwrap();
        let timing = Timing {
            deadline: Duration::from_millis(800),
            attempt: Duration::from_millis(300),
            ..Timing::default()
        };
        let client = client_of(&[&tracker], timing, dir.path()).await;
        let state = State::new(db);
        let pins = Arc::new(
            crate::tracker_pins::TrackerPins::load(state.clone(), &config.trackers.entries)
                .await
                .unwrap(),
        );
        let daemon = Daemon::new(
            config,
            state,
            client,
            pins,
            Arc::new(crate::reach::Reach::new(
                std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
                None,
                crate::reach::dial::Ways::ALL,
            )),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        Self {
            daemon: Arc::new(daemon),
            tracker,
            dir,
        }
    }

    async fn run(&self, cmd: CtlCommand) -> Result<CtlReply, ErrorReply> {
        dispatch(&self.daemon, cmd).await
    }

    async fn login(&self) {
        let reply = self
            .run(CtlCommand::Login {
                user: "alice".into(),
                password: "pw".into(),
            })
            .await;
        assert_eq!(reply, Ok(done("logged in as alice")));
    }

    /// The session as stored in the database (not the in-memory copy).
    fn stored_user(&self) -> Option<String> {
        self.daemon
            .plane
            .state
            .blocking()
            .session()
            .unwrap()
            .map(|s| s.user)
    }
}

#[tokio::test]
async fn login_keeps_the_trackers_token_in_the_database_and_uses_it() {
    let f = Fixture::new(friendly).await;
    f.login().await;
    assert_eq!(f.stored_user().as_deref(), Some("alice"));
    let stored = f.daemon.plane.state.blocking().session().unwrap().unwrap();
    assert_eq!(stored.token, TOKEN, "the token is the tracker's");
    f.run(CtlCommand::ListGroups {
        after: None,
        limit: None,
    })
    .await
    .unwrap();
    let sent = f.tracker.requests().last().unwrap().session.clone();
    assert_eq!(sent.as_deref(), Some(TOKEN));
}

#[tokio::test]
async fn a_wrong_password_leaves_the_daemon_logged_out() {
    let f = Fixture::new(friendly).await;
    let err = f
        .run(CtlCommand::Login {
            user: "alice".into(),
            password: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AuthFailed);
    assert_eq!(f.stored_user(), None);
}

#[tokio::test]
async fn another_user_must_log_the_first_out() {
    let f = Fixture::new(friendly).await;
    f.login().await;
    let before = f.tracker.requests().len();
    let err = f
        .run(CtlCommand::Login {
            user: "bob".into(),
            password: "pw".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(
        f.tracker.requests().len(),
        before,
        "the tracker is not asked"
    );
    assert_eq!(f.stored_user().as_deref(), Some("alice"));
}

#[tokio::test]
async fn commands_before_login_never_reach_the_tracker() {
    let f = Fixture::new(friendly).await;
    for cmd in [
        CtlCommand::ListGroups {
            after: None,
            limit: None,
        },
        CtlCommand::CreateGroup { group: "g".into() },
        CtlCommand::ShowDownloads,
        CtlCommand::Logout,
    ] {
        let err = f.run(cmd.clone()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotLoggedIn, "{cmd:?}");
    }
    assert!(f.tracker.requests().is_empty());
}

#[tokio::test]
async fn a_tracker_that_forgot_the_session_logs_the_daemon_out() {
    let f = Fixture::new(|request| {
        Some(match request.call {
            TrackerCall::ListGroups { .. } => Err(ErrorReply::new(
                ErrorKind::NotLoggedIn,
                "session expired or unknown; log in again",
            )),
            _ => friendly(request)?,
        })
    })
    .await;
    f.login().await;
    let err = f
        .run(CtlCommand::ListGroups {
            after: None,
            limit: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotLoggedIn);
    assert_eq!(f.stored_user(), None);
    assert!(f.daemon.session.get().is_none());
}

#[tokio::test]
async fn logout_closes_the_session_even_if_the_tracker_forgot_it() {
    let f = Fixture::new(|request| {
        Some(match request.call {
            TrackerCall::Logout => Err(ErrorReply::not_logged_in()),
            _ => friendly(request)?,
        })
    })
    .await;
    f.login().await;
    assert_eq!(
        f.run(CtlCommand::Logout).await,
        Ok(done("logged out alice"))
    );
    assert_eq!(f.stored_user(), None);
}

#[tokio::test]
async fn list_groups_hands_the_trackers_answer_on() {
    let group = GroupInfo {
        group: "g".into(),
        owner: "alice".into(),
        members: 1,
        membership: p2p_proto::views::Membership::Owner,
    };
    let answer = group.clone();
    let f = Fixture::new(move |request| {
        Some(match request.call {
            // The page asked for reaches the tracker unchanged, and `more` comes back.
            TrackerCall::ListGroups {
                after: Some(ref after),
                limit: Some(1),
            } if after == "f" => Ok(TrackerReply::Groups {
                groups: vec![answer.clone()],
                more: true,
            }),
            _ => friendly(request)?,
        })
    })
    .await;
    f.login().await;
    assert_eq!(
        f.run(CtlCommand::ListGroups {
            after: Some("f".into()),
            limit: Some(1),
        })
        .await,
        Ok(CtlReply::Groups {
            groups: vec![group],
            more: true,
        })
    );
    // A page size the tracker would refuse is refused before asking it.
    let err = f
        .run(CtlCommand::ListGroups {
            after: None,
            limit: Some(0),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn upload_hashes_the_file_registers_it_and_shares_it() {
    let f = Fixture::new(friendly).await;
    f.login().await;
    let path = f.dir.path().join("notes.txt");
    std::fs::write(&path, b"hello, group").unwrap();
    let reply = f
        .run(CtlCommand::UploadFile {
            group: "g".into(),
            path: path.clone(),
        })
        .await;
    assert_eq!(
        reply,
        Ok(done("shared notes.txt in g (12 bytes, 1 pieces)"))
    );
    let upload = f
        .tracker
        .requests()
        .into_iter()
        .find_map(|r| match r.call {
            TrackerCall::UploadFile { file, port, .. } => Some((file, port)),
            _ => None,
        })
        .expect("the tracker got the upload");
    assert_eq!(upload.1, 40000, "announced at the peer listener's port");
    assert_eq!(upload.0.name, "notes.txt");
    assert_eq!(upload.0.size, 12);
    assert_eq!(
        upload.0.sha1,
        crate::hashing::whole_file_sha1(&path).unwrap()
    );
    let shares = f.daemon.plane.state.blocking().shares().unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].path, path);
    assert_eq!(
        shares[0].group_id.as_deref(),
        Some("1d"),
        "the group's id is kept"
    );
    let held = f.daemon.plane.holdings.get("g", &upload.0.sha1).unwrap();
    assert_eq!(held.group_id().as_deref(), Some("1d"));
}

#[tokio::test]
async fn an_upload_the_tracker_refuses_is_not_shared() {
    let f = Fixture::new(|request| {
        Some(match request.call {
            TrackerCall::UploadFile { .. } => Err(ErrorReply::new(
                ErrorKind::Conflict,
                "a different file named notes.txt already exists in g",
            )),
            _ => friendly(request)?,
        })
    })
    .await;
    f.login().await;
    let path = f.dir.path().join("notes.txt");
    std::fs::write(&path, b"other content").unwrap();
    let err = f
        .run(CtlCommand::UploadFile {
            group: "g".into(),
            path,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(f.daemon.plane.state.blocking().shares().unwrap().is_empty());
    assert!(f.daemon.plane.holdings.all().is_empty());
}

#[tokio::test]
async fn download_refuses_an_existing_destination_before_asking_the_tracker() {
    let f = Fixture::new(friendly).await;
    f.login().await;
    let existing = f.dir.path().join("movie.mkv");
    std::fs::write(&existing, b"mine").unwrap();
    let before = f.tracker.requests().len();
    let err = f
        .run(CtlCommand::DownloadFile {
            group: "g".into(),
            file: "movie.mkv".into(),
            destination: f.dir.path().to_path_buf(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists);
    let err = f
        .run(CtlCommand::DownloadFile {
            group: "g".into(),
            file: "movie.mkv".into(),
            destination: f.dir.path().join("missing-dir/movie.mkv"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(f.tracker.requests().len(), before);
    assert_eq!(std::fs::read(&existing).unwrap(), b"mine");
}

fn details(peers: Vec<PeerInfo>) -> TrackerReply {
    TrackerReply::FileDetails {
        group: "g".into(),
        group_id: "1d".into(),
        meta: FileMeta {
            name: "movie.mkv".into(),
            size: 3,
            sha1: "a".repeat(40),
            pieces: vec!["b".repeat(40)],
        },
        peers,
        grant: Grant {
            key_id: String::new(),
            user: "alice".into(),
            group: "g".into(),
            group_id: "1d".into(),
            file_sha1: "a".repeat(40),
            downloader: p2p_proto::identity::Identity::ephemeral()
                .unwrap()
                .fingerprint(),
            expires: 0,
            signature: String::new(),
        },
    }
}

#[tokio::test]
async fn a_download_without_any_peer_online_is_refused_and_not_recorded() {
    let f = Fixture::new(|request| {
        Some(match request.call {
            TrackerCall::FetchFile { .. } => Ok(details(Vec::new())),
            _ => friendly(request)?,
        })
    })
    .await;
    f.login().await;
    let err = f
        .run(CtlCommand::DownloadFile {
            group: "g".into(),
            file: "movie.mkv".into(),
            destination: f.dir.path().to_path_buf(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        f.daemon
            .plane
            .state
            .blocking()
            .downloads()
            .unwrap()
            .is_empty()
    );
    assert!(!f.dir.path().join("movie.mkv.p2p-part").exists());
}

#[tokio::test]
async fn a_started_download_is_recorded_and_shown() {
    let peer = PeerInfo {
        user: "bob".into(),
        // Nobody listens there: the download waits, which is what this test looks at.
        addr: "127.0.0.1:9".into(),
        key: p2p_proto::identity::Identity::ephemeral()
            .unwrap()
            .fingerprint(),
        complete: true,
        reach: None,
        addr6: None,
    };
    let f = Fixture::new(move |request| {
        Some(match request.call {
            TrackerCall::FetchFile { .. } => Ok(details(vec![peer.clone()])),
            _ => friendly(request)?,
        })
    })
    .await;
    f.login().await;
    let reply = f
        .run(CtlCommand::DownloadFile {
            group: "g".into(),
            file: "movie.mkv".into(),
            destination: f.dir.path().to_path_buf(),
        })
        .await
        .unwrap();
    assert!(
        matches!(&reply, CtlReply::Done { message } if message.starts_with("downloading movie.mkv from 1 peer(s)")),
        "{reply:?}"
    );
    let records = f.daemon.plane.state.blocking().downloads().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].destination, f.dir.path().join("movie.mkv"));
    let Ok(CtlReply::Downloads { downloads }) = f.run(CtlCommand::ShowDownloads).await else {
        panic!("show_downloads failed");
    };
    assert_eq!(downloads.len(), 1);
    assert_eq!(downloads[0].file, "movie.mkv");
    assert_eq!(downloads[0].pieces_total, 1);
    let again = f
        .run(CtlCommand::DownloadFile {
            group: "g".into(),
            file: "movie.mkv".into(),
            destination: f.dir.path().join("copy.mkv"),
        })
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::Conflict, "one download per file");
    f.daemon.downloads.stop_all();
}

#[tokio::test]
async fn stop_share_of_a_file_not_shared_is_not_found() {
    let f = Fixture::new(friendly).await;
    f.login().await;
    let err = f
        .run(CtlCommand::StopShare {
            group: "g".into(),
            file: "nothing.txt".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn status_names_the_tracker_in_use_and_the_user() {
    let f = Fixture::new(friendly).await;
    f.login().await;
    let Ok(CtlReply::Status(status)) = f.run(CtlCommand::Status).await else {
        panic!("status failed");
    };
    assert_eq!(status.user.as_deref(), Some("alice"));
    assert_eq!(status.tracker, Some(f.tracker.addr.to_string()));
    assert_eq!(status.tracker_fingerprint, Some(f.tracker.key.to_string()));
    assert!(status.fingerprint.starts_with("sha256:"));
    assert_eq!(status.last_tracker_error, None);
}
