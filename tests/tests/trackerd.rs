//! trackerd as a process: argument errors, stdin, signals.

use nix::sys::signal::Signal;
use p2p_e2e::tls::tls_to;
use p2p_e2e::wire::{json_frame, ok_of, read_json_frame, request_id};
use p2p_e2e::{Cluster, READY_TIMEOUT, assert_exit_code, assert_one_line, run_bounded, stderr_of};
use serde_json::json;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;

/// Runs trackerd with `args` and checks it exits 2; with `one_line`, that its stderr is one
/// line containing `needle`.
#[track_caller]
fn assert_usage_error(cluster: &Cluster, args: &[&str], one_line: bool, needle: &str) {
    let mut cmd = cluster.trackerd();
    cmd.args(args);
    let out = run_bounded(&mut cmd, None, READY_TIMEOUT);
    assert_exit_code(&out, 2);
    if one_line {
        let line = assert_one_line(&stderr_of(&out), &format!("stderr of trackerd {args:?}"));
        assert!(
            line.to_lowercase().contains(&needle.to_lowercase()),
            "trackerd {args:?}: the error should mention {needle:?}: {line}"
        );
    } else {
        assert!(
            !stderr_of(&out).trim().is_empty(),
            "trackerd {args:?} says why"
        );
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn argument_errors_exit_2() {
    let cluster = Cluster::new();
    let root = cluster.root();
    let info = s(cluster.tracker_info());
    let data = root.join("data");
    let data = s(&data);

    let missing = root.join("nope.txt");
    assert_usage_error(
        &cluster,
        &[s(&missing), "1", "--data-dir", data],
        true,
        "nope.txt",
    );

    let malformed = root.join("malformed.txt");
    std::fs::write(&malformed, "127.0.0.1:4000\nthis is not an address\n").unwrap();
    assert_usage_error(
        &cluster,
        &[s(&malformed), "1", "--data-dir", data],
        true,
        "malformed.txt",
    );

    let empty = root.join("empty.txt");
    std::fs::write(&empty, "# nothing here\n").unwrap();
    assert_usage_error(
        &cluster,
        &[s(&empty), "1", "--data-dir", data],
        true,
        "empty.txt",
    );

    for no in ["0", "3"] {
        assert_usage_error(&cluster, &[info, no, "--data-dir", data], true, no);
    }
    assert_usage_error(&cluster, &[info, "x", "--data-dir", data], false, "");
    assert_usage_error(&cluster, &[info], false, "");
    assert_usage_error(&cluster, &[], false, "");

    // A port someone else holds.
    let busy = TcpListener::bind(cluster.tracker_addr(1)).expect("bind tracker 1's port");
    assert_usage_error(
        &cluster,
        &[info, "1", "--data-dir", data],
        true,
        &cluster.tracker_addr(1).port().to_string(),
    );
    drop(busy);
}

#[test]
fn quit_on_stdin_stops_it_with_status_0() {
    let mut cluster = Cluster::start();
    assert_eq!(cluster.quit_tracker(1).code(), Some(0));
    assert_eq!(cluster.quit_tracker(2).code(), Some(0));
    // And it comes back on the same port.
    cluster.start_tracker(1);
    assert_eq!(cluster.quit_tracker(1).code(), Some(0));
}

#[test]
fn sigterm_and_sigint_stop_it_with_status_0() {
    let mut cluster = Cluster::start();
    assert_eq!(cluster.tracker(1).signal(Signal::SIGTERM).code(), Some(0));
    assert_eq!(cluster.tracker(2).signal(Signal::SIGINT).code(), Some(0));
}

#[test]
fn eof_on_stdin_does_not_stop_it() {
    let mut cluster = Cluster::new();
    cluster.start_tracker_stdin_null(1);
    cluster.start_tracker_stdin_null(2);

    // It serves: a raw ping, then a whole user session through a daemon.
    let mut s = tls_to(cluster.tracker_addr(1));
    s.write_all(&json_frame(
        &json!({"v": 2, "id": request_id(5), "call": {"op": "ping"}}),
    ))
    .unwrap();
    let reply = read_json_frame(&mut s);
    assert_eq!(ok_of(&reply)["reply"], "pong", "{reply}");
    drop(s);

    let alice = cluster.user("alice");
    assert_eq!(alice.ok(&["create_group", "g1"]), "created group g1");
    assert!(alice.group("g1").is_some());
    assert!(
        cluster.tracker(1).is_running(),
        "EOF on stdin stopped tracker 1"
    );
    assert!(
        cluster.tracker(2).is_running(),
        "EOF on stdin stopped tracker 2"
    );
    assert_eq!(cluster.sigterm_tracker(1).code(), Some(0));
    cluster.assert_no_panics();
}
