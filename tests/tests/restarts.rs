//! Durability: a killed p2pd keeps its session; stopped trackers keep every acknowledged write;
//! a daemon reconnects to restarted trackers by itself; no password reaches a tracker's disk.

use p2p_e2e::{Cluster, READY_TIMEOUT, assert_fails, password_of, wait_for};
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn killed_p2pd_restarts_logged_in() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    alice.ok(&["create_group", "g1"]);

    alice.kill9();
    assert!(
        std::fs::symlink_metadata(alice.socket()).is_ok(),
        "kill -9 leaves the socket file behind (the restart must clean it up)"
    );
    // A stale socket is no daemon: status says so and starts none.
    assert_fails(&alice.ctl(&["status"]), "no p2pd is running");
    alice.restart();

    let status = alice.status();
    assert_eq!(
        status["user"], "alice",
        "still logged in after kill -9: {status}"
    );
    let text = alice.ok(&["status"]);
    assert!(
        text.lines().any(|l| l.trim() == "user: alice"),
        "status:\n{text}"
    );
    // Commands that need the session work without a new login.
    assert_eq!(alice.expect_group("g1")["membership"], "owner");
    assert_eq!(alice.ok(&["create_group", "g2"]), "created group g2");

    // Twice in a row, for good measure, and the session survives a logout-free restart only:
    // after logout and kill -9 the daemon comes back logged out.
    alice.kill9();
    alice.restart();
    assert_eq!(alice.status()["user"], "alice");
    alice.ok(&["logout"]);
    alice.kill9();
    alice.restart();
    assert!(alice.status()["user"].is_null(), "{}", alice.status());
    alice.expect_kind(&["list_groups"], "not_logged_in");
    cluster.assert_no_panics();
}

#[test]
fn stopped_trackers_restart_with_everything() {
    let mut cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    let carol = cluster.user("carol");
    let erin = cluster.daemon("erin");
    erin.create_user("erin");

    alice.ok(&["create_group", "g1"]);
    bob.ok(&["join_group", "g1"]);
    alice.ok(&["accept_request", "g1", "bob"]);
    carol.ok(&["join_group", "g1"]);
    bob.ok(&["create_group", "g2"]);

    for no in [1, 2] {
        let status = cluster.sigterm_tracker(no);
        assert_eq!(status.code(), Some(0), "tracker {no} exits 0 on SIGTERM");
    }

    // With both trackers gone, a command that needs one fails cleanly.
    let out = alice.ctl(&["list_groups"]);
    assert_fails(&out, "no tracker answered");
    alice.expect_error(&["list_groups"], "unavailable", "no tracker answered");

    cluster.start_tracker(1);
    cluster.start_tracker(2);

    // The daemon reconnects by itself, with its session: no restart, no login.
    let groups = wait_for(
        "alice's daemon to reach the restarted trackers",
        READY_TIMEOUT,
        || {
            let (out, value) = alice.ctl_json(&["list_groups"]);
            if out.status.success() && value["ok"] == true {
                Ok(value["reply"]["groups"].clone())
            } else {
                Err(value.to_string())
            }
        },
    );
    let g1 = groups
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["group"] == "g1"))
        .unwrap_or_else(|| panic!("g1 is gone after the restart: {groups}"));
    assert_eq!(g1["owner"], "alice", "{g1}");
    assert_eq!(g1["members"], 2, "{g1}");
    assert_eq!(g1["membership"], "owner", "{g1}");

    let g2 = alice.expect_group("g2");
    assert_eq!(g2["owner"], "bob", "{g2}");
    assert_eq!(g2["membership"], "none", "{g2}");

    // Every logged-in daemon still works without a login.
    assert_eq!(bob.expect_group("g1")["membership"], "member");
    assert_eq!(bob.expect_group("g2")["membership"], "owner");
    assert_eq!(carol.expect_group("g1")["membership"], "pending");
    assert_eq!(alice.status()["user"], "alice");

    // The pending request survived and is real.
    assert_eq!(alice.requests("g1"), ["carol"]);
    assert_eq!(
        alice.ok(&["accept_request", "g1", "carol"]),
        "accepted carol into g1"
    );
    assert_eq!(carol.expect_group("g1")["members"], 3);

    // Users survived: erin logs in with her old password; a wrong one is still refused;
    // alice's name is still taken.
    erin.expect_kind(&["login", "erin", "not-her-password"], "auth_failed");
    erin.login("erin");
    assert_eq!(erin.status()["user"], "erin");
    erin.expect_kind(&["create_user", "alice", "whatever-99"], "already_exists");

    let status = alice.status();
    assert!(
        cluster
            .tracker_addrs()
            .contains(&status["tracker"].as_str().unwrap_or_default().to_string()),
        "status names the tracker in use again: {status}"
    );
    cluster.assert_no_panics();
}

#[test]
fn no_password_bytes_in_tracker_data() {
    let mut cluster = Cluster::start();
    let users = ["alice", "bob"];
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    alice.ok(&["create_group", "g1"]);
    bob.ok(&["join_group", "g1"]);
    alice.ok(&["accept_request", "g1", "bob"]);
    // A second session of bob, and a failed login with alice's password, give the tracker
    // more chances to leak.
    bob.ok(&["logout"]);
    bob.expect_kind(&["login", "bob", &password_of("alice")], "auth_failed");
    bob.login("bob");
    drop(alice);
    drop(bob);

    // `quit` rather than SIGTERM: this test is about the data, signals are tested elsewhere.
    assert_eq!(cluster.quit_tracker(1).code(), Some(0));
    assert_eq!(cluster.quit_tracker(2).code(), Some(0));

    for no in [1, 2] {
        let dir = cluster.tracker_data_dir(no);
        let mut files = Vec::new();
        files_under(&dir, &mut files);
        assert!(
            !files.is_empty(),
            "tracker {no} persisted nothing in {}",
            dir.display()
        );
        let logs = cluster.root().join("logs");
        files.push(logs.join(format!("tracker-{no}.stderr")));
        files.push(logs.join(format!("tracker-{no}.stdout")));
        for file in files {
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            for user in users {
                let password = password_of(user);
                assert!(
                    !contains(&bytes, password.as_bytes()),
                    "{} holds the password of {user} in clear",
                    file.display()
                );
            }
        }
    }
}
