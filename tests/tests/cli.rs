//! Process-level behaviour of p2pctl and p2pd: usage errors, autostart, one daemon per socket,
//! socket permissions.

use p2p_e2e::{
    Cluster, READY_TIMEOUT, assert_exit_code, assert_fails, assert_one_line, password_of,
    run_bounded, stderr_of,
};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

#[test]
fn unknown_command_prints_usage() {
    let cluster = Cluster::new();
    let d = cluster.daemon_unstarted("alice");
    for args in [
        vec!["frobnicate"],
        vec!["frobnicate", "g1"],
        vec!["createuser", "alice", "pw"],
        vec![],
    ] {
        let out = d.ctl(&args);
        assert_exit_code(&out, 2);
        assert!(
            stderr_of(&out).to_lowercase().contains("usage"),
            "p2pctl {args:?} prints usage on stderr:\n{}",
            stderr_of(&out)
        );
    }
    // A usage error starts no daemon.
    assert!(!d.socket().exists(), "a usage error started p2pd");
    assert!(!d.pid_file().exists(), "a usage error started p2pd");
}

#[test]
fn status_without_a_daemon_fails_and_starts_none() {
    let cluster = Cluster::start();
    let d = cluster.daemon_unstarted("alice");
    let out = d.ctl(&["status"]);
    assert_fails(&out, "no p2pd is running");
    let err = d.json_err(&["status"]);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no p2pd is running"),
        "{err}"
    );
    assert!(!d.socket().exists(), "status started p2pd");
    assert!(!d.pid_file().exists(), "status started p2pd");
}

#[test]
fn p2pctl_autostarts_p2pd() {
    let cluster = Cluster::start();
    let d = cluster.daemon_unstarted("alice");
    assert!(!d.socket().exists());

    let pw = password_of("alice");
    assert_eq!(d.ok(&["create_user", "alice", &pw]), "created user alice");

    // It daemonized and wrote its pid beside the socket; that process is a p2pd.
    let pid_text = std::fs::read_to_string(d.pid_file())
        .unwrap_or_else(|e| panic!("no pid file {}: {e}", d.pid_file().display()));
    let pid: u32 = pid_text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid file holds {pid_text:?}: {e}"));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap_or_else(|e| panic!("process {pid} of the pid file is not running: {e}"));
    assert!(
        exe.file_name().is_some_and(|n| n == "p2pd"),
        "pid {pid} runs {}",
        exe.display()
    );
    let meta = std::fs::symlink_metadata(d.socket()).expect("the socket exists");
    assert!(meta.file_type().is_socket());

    // The same daemon answers the next commands, with the trackers of P2P_TRACKER_INFO and
    // its state in P2PD_STATE_DIR.
    assert_eq!(d.ok(&["login", "alice", &pw]), "logged in as alice");
    let status = d.status();
    assert_eq!(status["user"], "alice", "{status}");
    assert_eq!(status["pid"], pid, "{status}");
    assert!(
        cluster
            .tracker_addrs()
            .contains(&status["tracker"].as_str().unwrap_or_default().to_string()),
        "{status}"
    );
    let state: Vec<_> = std::fs::read_dir(d.state_dir())
        .unwrap_or_else(|e| panic!("P2PD_STATE_DIR {} not used: {e}", d.state_dir().display()))
        .collect();
    assert!(!state.is_empty(), "p2pd keeps nothing in its state dir");
    assert_eq!(d.ok(&["create_group", "g1"]), "created group g1");
    // Dropping `d` kills the autostarted daemon through its pid file.
}

#[test]
fn second_p2pd_on_the_same_socket_is_refused() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    let other_state = alice.dir().join("other-state");
    let mut second = alice.p2pd_command_with_state(&other_state);
    let out = run_bounded(&mut second, None, READY_TIMEOUT);
    assert!(
        !out.status.success(),
        "a second p2pd on the same socket started: {out:?}"
    );
    let line = assert_one_line(&stderr_of(&out), "the second p2pd's stderr");
    let socket = alice.socket().to_string_lossy().into_owned();
    assert_eq!(
        line,
        format!("p2pd: another p2pd is already running with socket {socket} (pid file is locked)"),
        "the refusal says a daemon runs on that socket (it holds the lock on the pid file \
         beside the socket, which a second p2pd takes first)"
    );

    // The first one is untouched.
    assert!(alice.is_running());
    assert!(alice.socket().exists());
    assert_eq!(alice.status()["user"], "alice");
    assert_eq!(alice.ok(&["create_group", "g1"]), "created group g1");
    cluster.assert_no_panics();
}

#[test]
fn control_socket_is_private() {
    let cluster = Cluster::start();
    let d = cluster.daemon("alice");
    let socket = std::fs::symlink_metadata(d.socket()).expect("socket exists");
    assert!(socket.file_type().is_socket(), "{:?}", socket.file_type());
    assert_eq!(
        socket.permissions().mode() & 0o777,
        0o600,
        "socket mode is {:o}",
        socket.permissions().mode() & 0o777
    );
    let dir = std::fs::metadata(d.socket_dir()).expect("socket dir exists");
    assert!(dir.is_dir());
    assert_eq!(
        dir.permissions().mode() & 0o777,
        0o700,
        "socket dir mode is {:o}",
        dir.permissions().mode() & 0o777
    );
}
