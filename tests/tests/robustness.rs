//! Garbage on the wire: trackers and the daemon answer bad frames with an error and a closed
//! connection, and keep serving everyone else.

use p2p_e2e::wire::{
    connect_tcp, connect_unix, error_of, frame, json_frame, ok_of, pseudo_random_bytes,
    read_json_frame, read_until_closed, request_id, write_lenient,
};
use p2p_e2e::{Cluster, Daemon, assert_fails_one_of, stderr_of};
use serde_json::json;
use std::io::Write;
use std::net::{Shutdown, SocketAddr};

/// The tracker answers a ping: the primary with a pong, the standby with a redirect to the
/// primary (so a client's liveness check finds the tracker that serves).
#[track_caller]
fn assert_pong(addr: SocketAddr, tracker_no: u64) {
    let mut s = connect_tcp(addr);
    let id = request_id(tracker_no);
    s.write_all(&json_frame(
        &json!({"v": 1, "id": id, "call": {"op": "ping"}}),
    ))
    .unwrap();
    let reply = read_json_frame(&mut s);
    assert_eq!(reply["v"], 1, "{reply}");
    assert_eq!(reply["id"], id.as_str(), "{reply}");
    if reply["result"]["Err"]["kind"] == "not_primary" {
        assert!(reply["result"]["Err"]["redirect"].is_string(), "{reply}");
        return;
    }
    let pong = ok_of(&reply);
    assert_eq!(pong["reply"], "pong", "{reply}");
    assert_eq!(pong["tracker_no"], tracker_no, "{reply}");
}

/// The tracker is alive and a p2pctl command through it works.
#[track_caller]
fn assert_serving(cluster: &mut Cluster, user: &Daemon, group: &str) {
    assert!(cluster.tracker(1).is_running(), "tracker 1 died");
    assert!(cluster.tracker(2).is_running(), "tracker 2 died");
    assert_pong(cluster.tracker_addr(1), 1);
    assert_eq!(
        user.ok(&["create_group", group]),
        format!("created group {group}")
    );
}

/// If the server sent anything before closing, it is one protocol error frame.
#[track_caller]
fn assert_error_or_nothing(got: &[u8]) {
    if got.len() < 4 {
        return;
    }
    let len = u32::from_be_bytes(got[..4].try_into().unwrap()) as usize;
    if got.len() < 4 + len {
        return; // cut by a reset; nothing to judge
    }
    let reply: serde_json::Value = serde_json::from_slice(&got[4..4 + len])
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", &got[4..4 + len]));
    assert_eq!(error_of(&reply)["kind"], "protocol", "{reply}");
}

#[test]
fn tracker_survives_random_bytes() {
    let mut cluster = Cluster::start();
    let alice = cluster.user("alice");
    for (i, seed) in [1u64, 0xdead_beef, 42, 7_777_777].into_iter().enumerate() {
        for no in [1, 2] {
            let mut s = connect_tcp(cluster.tracker_addr(no));
            write_lenient(&mut s, &pseudo_random_bytes(seed, 8192));
            let _ = s.shutdown(Shutdown::Write);
            let got = read_until_closed(&mut s);
            assert_error_or_nothing(&got);
        }
        assert_serving(&mut cluster, &alice, &format!("after-random-{i}"));
    }
    cluster.assert_no_panics();
}

#[test]
fn tracker_survives_an_http_request() {
    let mut cluster = Cluster::start();
    let alice = cluster.user("alice");
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: e2e\r\nAccept: */*\r\n\r\n";
    for no in [1, 2] {
        let mut s = connect_tcp(cluster.tracker_addr(no));
        write_lenient(&mut s, request);
        // No shutdown: the tracker must close by itself ("GET " is a length far over the limit).
        let got = read_until_closed(&mut s);
        assert_error_or_nothing(&got);
    }
    assert_serving(&mut cluster, &alice, "after-http");
    cluster.assert_no_panics();
}

#[test]
fn tracker_refuses_a_huge_length_prefix() {
    let mut cluster = Cluster::start();
    let alice = cluster.user("alice");
    // Just over the 16 MiB limit, and the largest u32.
    for prefix in [(16u32 << 20) + 1, u32::MAX] {
        let mut s = connect_tcp(cluster.tracker_addr(1));
        s.write_all(&prefix.to_be_bytes()).unwrap();
        let reply = read_json_frame(&mut s);
        assert_eq!(reply["v"], 1, "{reply}");
        assert_eq!(reply["id"], "", "{reply}");
        assert_eq!(error_of(&reply)["kind"], "protocol", "{reply}");
        read_until_closed(&mut s);
    }
    assert_serving(&mut cluster, &alice, "after-huge");
    cluster.assert_no_panics();
}

#[test]
fn tracker_refuses_wrong_version_and_malformed_frames() {
    let mut cluster = Cluster::start();
    let alice = cluster.user("alice");
    assert_pong(cluster.tracker_addr(1), 1);
    assert_pong(cluster.tracker_addr(2), 2);

    let bad_frames = [
        json_frame(&json!({"v": 999, "id": request_id(1), "call": {"op": "ping"}})),
        json_frame(&json!({"v": 1, "id": request_id(2), "call": {"op": "no_such_op"}})),
        json_frame(&json!({"hello": "world"})),
        frame(b"{\"v\":1, this is not json"),
        frame(b""),
    ];
    for (i, raw) in bad_frames.iter().enumerate() {
        let mut s = connect_tcp(cluster.tracker_addr(1));
        s.write_all(raw).unwrap();
        let reply = read_json_frame(&mut s);
        let error = error_of(&reply);
        assert_eq!(error["kind"], "protocol", "bad frame #{i}: {reply}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "bad frame #{i}: {reply}"
        );
        if i == 0 {
            assert!(
                error["message"].as_str().unwrap().contains("999"),
                "the version mismatch names the version received: {reply}"
            );
        }
        // The tracker closes the connection after the error.
        read_until_closed(&mut s);
    }
    assert_serving(&mut cluster, &alice, "after-bad-frames");
    cluster.assert_no_panics();
}

#[test]
fn daemon_survives_bad_control_frames() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    let bad_frames = [
        json_frame(&json!({"v": 999, "cmd": {"cmd": "status"}})),
        json_frame(&json!({"v": 1, "cmd": {"cmd": "no_such_command"}})),
        frame(b"\xff\xfe not json at all"),
        u32::MAX.to_be_bytes().to_vec(),
    ];
    for (i, raw) in bad_frames.iter().enumerate() {
        let mut s = connect_unix(&alice.socket());
        s.write_all(raw).unwrap();
        let reply = read_json_frame(&mut s);
        assert_eq!(reply["v"], 1, "bad control frame #{i}: {reply}");
        assert_eq!(
            error_of(&reply)["kind"],
            "protocol",
            "bad control frame #{i}: {reply}"
        );
        read_until_closed(&mut s);
    }
    // Random bytes, then a half frame and a hang-up.
    let mut s = connect_unix(&alice.socket());
    write_lenient(&mut s, &pseudo_random_bytes(99, 4096));
    let _ = s.shutdown(Shutdown::Write);
    assert_error_or_nothing(&read_until_closed(&mut s));
    let mut s = connect_unix(&alice.socket());
    write_lenient(&mut s, &[0, 0, 0, 50, b'{']);
    drop(s);

    assert!(alice.is_running(), "p2pd died on bad control frames");
    assert_eq!(alice.status()["user"], "alice");
    assert_eq!(alice.ok(&["create_group", "g1"]), "created group g1");
    // A well-formed control request works through the raw socket too.
    let mut s = connect_unix(&alice.socket());
    s.write_all(&json_frame(&json!({"v": 1, "cmd": {"cmd": "status"}})))
        .unwrap();
    let reply = read_json_frame(&mut s);
    assert_eq!(ok_of(&reply)["user"], "alice", "{reply}");
    cluster.assert_no_panics();
}

#[test]
fn huge_user_id_is_refused_by_ctl_daemon_and_tracker() {
    let mut cluster = Cluster::start();
    let huge = "u".repeat(100_000);
    let alice = cluster.user("alice");
    let fresh = cluster.daemon("fresh");

    // p2pctl: one short line, no echo of the id, invalid_argument.
    for args in [
        vec!["create_user", huge.as_str(), "pw-123456"],
        vec!["login", huge.as_str(), "pw-123456"],
    ] {
        let out = fresh.ctl(&args);
        assert_fails_one_of(&out, &["user", "id", "long", "invalid"]);
        assert!(
            stderr_of(&out).len() < 1000,
            "the error line stays short ({} bytes)",
            stderr_of(&out).len()
        );
        let err = fresh.expect_kind(&args, &["invalid_argument"]);
        assert!(err["message"].as_str().unwrap().len() < 1000, "{err}");
    }
    for args in [
        vec!["create_group", huge.as_str()],
        vec!["join_group", huge.as_str()],
        vec!["accept_request", "g", huge.as_str()],
    ] {
        let out = alice.ctl(&args);
        assert_fails_one_of(&out, &["id", "long", "invalid"]);
        assert!(stderr_of(&out).len() < 1000);
        alice.expect_kind(&args, &["invalid_argument"]);
    }

    // p2pd, sent the request directly (p2pctl may check ids itself).
    let mut s = connect_unix(&fresh.socket());
    s.write_all(&json_frame(&json!({
        "v": 1,
        "cmd": {"cmd": "create_user", "user": huge, "password": "pw-123456"},
    })))
    .unwrap();
    let reply = read_json_frame(&mut s);
    let error = error_of(&reply);
    assert_eq!(error["kind"], "invalid_argument", "{error}");
    assert!(error["message"].as_str().unwrap().len() < 1000, "{error}");
    drop(s);

    // trackerd, sent the request directly (p2pd may check ids itself).
    let mut s = connect_tcp(cluster.tracker_addr(1));
    s.write_all(&json_frame(&json!({
        "v": 1,
        "id": request_id(77),
        "call": {"op": "create_user", "user": huge, "password": "pw-123456"},
    })))
    .unwrap();
    let reply = read_json_frame(&mut s);
    let error = error_of(&reply);
    assert_eq!(error["kind"], "invalid_argument", "{error}");
    assert!(error["message"].as_str().unwrap().len() < 1000, "{error}");
    drop(s);

    // Everyone is still up.
    assert_eq!(fresh.status()["user"], serde_json::Value::Null);
    fresh.create_user("fresh");
    assert_serving(&mut cluster, &alice, "after-huge-id");
    cluster.assert_no_panics();
}
