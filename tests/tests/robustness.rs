//! Garbage on the wire: trackers (inside TLS) and the daemon (on its control socket) answer a
//! frame they cannot read with one `protocol` error and a closed connection, and keep serving
//! everyone else. A client that does not speak TLS at all is told to upgrade.

use p2p_e2e::failover::CATCH_UP_TIMEOUT;
use p2p_e2e::tls::tls_to;
use p2p_e2e::wire::{
    connect_tcp, connect_unix, error_of, frame, json_frame, ok_of, one_frame_then_closed,
    pseudo_random_bytes, read_json_frame, request_id, write_lenient,
};
use p2p_e2e::{Cluster, Daemon, assert_fails, stderr_of};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::Shutdown;

/// Largest frame a tracker accepts before a session is proven on the connection
/// (`MAX_TRACKER_FRAME_UNAUTHENTICATED`); every raw connection here is such a one.
const MAX_TRACKER_FRAME: u32 = 64 << 10;
/// Largest frame the control socket accepts (`MAX_CONTROL_FRAME`).
const MAX_CONTROL_FRAME: u32 = 4 << 20;

/// The tracker answers a ping: the primary (tracker 1) with a pong, the standby with a redirect
/// to the primary (so a client's liveness check finds the tracker that serves).
#[track_caller]
fn assert_pong(cluster: &Cluster, tracker_no: usize) {
    let mut s = tls_to(cluster.tracker_addr(tracker_no));
    let id = request_id(tracker_no as u64);
    s.write_all(&json_frame(
        &json!({"v": 2, "id": id, "call": {"op": "ping"}}),
    ))
    .unwrap();
    let reply = read_json_frame(&mut s);
    assert_eq!(reply["v"], 2, "{reply}");
    assert_eq!(reply["id"], id.as_str(), "{reply}");
    if tracker_no == 1 {
        let pong = ok_of(&reply);
        assert_eq!(pong["reply"], "pong", "{reply}");
        assert_eq!(pong["tracker_no"], 1, "{reply}");
    } else {
        let error = error_of(&reply);
        assert_eq!(error["kind"], "not_primary", "{reply}");
        assert_eq!(
            error["redirect"],
            cluster.tracker_addr(1).to_string(),
            "{reply}"
        );
    }
}

/// A started pair whose standby follows the primary, so each answers as its role does.
fn settled() -> Cluster {
    let mut cluster = Cluster::start();
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    cluster
}

/// The tracker is alive and a p2pctl command through it works.
#[track_caller]
fn assert_serving(cluster: &mut Cluster, user: &Daemon, group: &str) {
    assert!(cluster.tracker(1).is_running(), "tracker 1 died");
    assert!(cluster.tracker(2).is_running(), "tracker 2 died");
    assert_pong(cluster, 1);
    assert_eq!(
        user.ok(&["create_group", group]),
        format!("created group {group}")
    );
}

/// The server sent exactly one frame before closing: a `protocol` error whose message says
/// `says`. (A tracker's reply carries the empty request id: it could not read one.)
#[track_caller]
fn one_protocol_error_then_closed(s: &mut impl Read, what: &str, says: &str) -> Value {
    let reply = one_frame_then_closed(s, what);
    assert_eq!(reply["v"], 2, "{what}: {reply}");
    let error = error_of(&reply);
    assert_eq!(error["kind"], "protocol", "{what}: {reply}");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(says)),
        "{what}: the error should say {says:?}: {reply}"
    );
    reply
}

/// What a server says about a length prefix over its limit `max`.
fn too_large(max: u32) -> String {
    format!("frame of more than {max} bytes refused")
}

/// The length prefix that the first four of `bytes` spell.
fn prefix_of(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[..4].try_into().unwrap())
}

#[test]
fn tracker_survives_random_bytes() {
    let mut cluster = settled();
    let alice = cluster.user("alice");
    for (i, seed) in [1u64, 0xdead_beef, 42, 7_777_777].into_iter().enumerate() {
        let garbage = pseudo_random_bytes(seed, 8192);
        // What the tracker does with garbage depends on its first four bytes, read as a length:
        // these seeds all start with one over the limit, refused before anything else is read.
        assert!(
            prefix_of(&garbage) > MAX_TRACKER_FRAME,
            "seed {seed}: prefix {}",
            prefix_of(&garbage)
        );
        for no in [1, 2] {
            let what = format!("seed {seed} at tracker {no}");
            let mut s = tls_to(cluster.tracker_addr(no));
            write_lenient(&mut s, &garbage);
            s.shutdown_write();
            let reply =
                one_protocol_error_then_closed(&mut s, &what, &too_large(MAX_TRACKER_FRAME));
            assert_eq!(reply["id"], "", "{what}: {reply}");
        }
        assert_serving(&mut cluster, &alice, &format!("after-random-{i}"));
    }
    cluster.assert_no_panics();
}

#[test]
fn tracker_survives_an_http_request() {
    let mut cluster = settled();
    let alice = cluster.user("alice");
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: e2e\r\nAccept: */*\r\n\r\n";
    // "GET " read as a length is far over the limit.
    assert!(prefix_of(request) > MAX_TRACKER_FRAME);
    for no in [1, 2] {
        let what = format!("HTTP request at tracker {no}");
        let mut s = tls_to(cluster.tracker_addr(no));
        write_lenient(&mut s, request);
        // No shutdown: the tracker must close by itself.
        let reply = one_protocol_error_then_closed(&mut s, &what, &too_large(MAX_TRACKER_FRAME));
        assert_eq!(reply["id"], "", "{what}: {reply}");
    }
    assert_serving(&mut cluster, &alice, "after-http");
    cluster.assert_no_panics();
}

#[test]
fn tracker_refuses_a_huge_length_prefix() {
    let mut cluster = settled();
    let alice = cluster.user("alice");
    // Just over the limit, and the largest u32.
    for prefix in [MAX_TRACKER_FRAME + 1, u32::MAX] {
        let what = format!("length prefix {prefix}");
        let mut s = tls_to(cluster.tracker_addr(1));
        s.write_all(&prefix.to_be_bytes()).unwrap();
        let reply = one_protocol_error_then_closed(&mut s, &what, &too_large(MAX_TRACKER_FRAME));
        assert_eq!(reply["id"], "", "{what}: {reply}");
    }
    assert_serving(&mut cluster, &alice, "after-huge");
    cluster.assert_no_panics();
}

#[test]
fn tracker_refuses_wrong_version_and_malformed_frames() {
    let mut cluster = settled();
    let alice = cluster.user("alice");
    assert_pong(&cluster, 1);
    assert_pong(&cluster, 2);

    // Each bad frame with what the refusal says: the version mismatch names the version
    // received; anything else that is not a tracker request is malformed.
    let malformed = "malformed tracker message: ";
    let bad_frames = [
        (
            json_frame(&json!({"v": 999, "id": request_id(1), "call": {"op": "ping"}})),
            "tracker protocol version mismatch: got 999, expected 2",
        ),
        (
            json_frame(&json!({"v": 2, "id": request_id(2), "call": {"op": "no_such_op"}})),
            malformed,
        ),
        (json_frame(&json!({"hello": "world"})), malformed),
        (frame(b"{\"v\":2, this is not json"), malformed),
        (frame(b""), malformed),
    ];
    for (i, (raw, says)) in bad_frames.iter().enumerate() {
        let what = format!("bad frame #{i}");
        let mut s = tls_to(cluster.tracker_addr(1));
        s.write_all(raw).unwrap();
        // One error, then the tracker closes the connection.
        let reply = one_protocol_error_then_closed(&mut s, &what, says);
        assert_eq!(reply["id"], "", "{what}: {reply}");
    }
    assert_serving(&mut cluster, &alice, "after-bad-frames");
    cluster.assert_no_panics();
}

#[test]
fn daemon_survives_bad_control_frames() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    let malformed = "malformed control message: ";
    let bad_frames = [
        (
            json_frame(&json!({"v": 999, "cmd": {"cmd": "status"}})),
            "control protocol version mismatch: got 999, expected 2".to_string(),
        ),
        (
            json_frame(&json!({"v": 2, "cmd": {"cmd": "no_such_command"}})),
            malformed.to_string(),
        ),
        (frame(b"\xff\xfe not json at all"), malformed.to_string()),
        (
            u32::MAX.to_be_bytes().to_vec(),
            too_large(MAX_CONTROL_FRAME),
        ),
    ];
    for (i, (raw, says)) in bad_frames.iter().enumerate() {
        let mut s = connect_unix(&alice.socket());
        s.write_all(raw).unwrap();
        one_protocol_error_then_closed(&mut s, &format!("bad control frame #{i}"), says);
    }
    // Random bytes (a length over the limit), then a half frame and a hang-up.
    let garbage = pseudo_random_bytes(99, 4096);
    assert!(prefix_of(&garbage) > MAX_CONTROL_FRAME);
    let mut s = connect_unix(&alice.socket());
    write_lenient(&mut s, &garbage);
    let _ = s.shutdown(Shutdown::Write);
    one_protocol_error_then_closed(
        &mut s,
        "random bytes on the control socket",
        &too_large(MAX_CONTROL_FRAME),
    );
    let mut s = connect_unix(&alice.socket());
    write_lenient(&mut s, &[0, 0, 0, 50, b'{']);
    drop(s);

    assert!(alice.is_running(), "p2pd died on bad control frames");
    assert_eq!(alice.status()["user"], "alice");
    assert_eq!(alice.ok(&["create_group", "g1"]), "created group g1");
    // A well-formed control request works through the raw socket too.
    let mut s = connect_unix(&alice.socket());
    s.write_all(&json_frame(&json!({"v": 2, "cmd": {"cmd": "status"}})))
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
    let huge_user_id = "user id is 100000 bytes long; at most 64 characters are allowed";
    let huge_group_id = "group id is 100000 bytes long; at most 64 characters are allowed";
    for args in [
        vec!["create_user", huge.as_str(), "pw-123456"],
        vec!["login", huge.as_str(), "pw-123456"],
    ] {
        let out = fresh.ctl(&args);
        assert_fails(&out, huge_user_id);
        assert!(
            stderr_of(&out).len() < 1000,
            "the error line stays short ({} bytes)",
            stderr_of(&out).len()
        );
        let err = fresh.expect_error(&args, "invalid_argument", huge_user_id);
        assert!(err["message"].as_str().unwrap().len() < 1000, "{err}");
    }
    for (args, says) in [
        (vec!["create_group", huge.as_str()], huge_group_id),
        (vec!["join_group", huge.as_str()], huge_group_id),
        (vec!["accept_request", "g", huge.as_str()], huge_user_id),
    ] {
        let out = alice.ctl(&args);
        assert_fails(&out, says);
        assert!(stderr_of(&out).len() < 1000);
        alice.expect_error(&args, "invalid_argument", says);
    }

    // p2pd, sent the request directly (p2pctl may check ids itself).
    let mut s = connect_unix(&fresh.socket());
    s.write_all(&json_frame(&json!({
        "v": 2,
        "cmd": {"cmd": "create_user", "user": huge, "password": "pw-123456"},
    })))
    .unwrap();
    let reply = read_json_frame(&mut s);
    let error = error_of(&reply);
    assert_eq!(error["kind"], "invalid_argument", "{error}");
    assert_eq!(error["message"], huge_user_id, "{error}");
    drop(s);

    // trackerd, sent the request directly (p2pd may check ids itself), in a frame under the
    // limit of a connection without a session.
    let mut s = tls_to(cluster.tracker_addr(1));
    s.write_all(&json_frame(&json!({
        "v": 2,
        "id": request_id(77),
        "call": {"op": "create_user", "user": "u".repeat(60_000), "password": "pw-123456"},
    })))
    .unwrap();
    let reply = read_json_frame(&mut s);
    let error = error_of(&reply);
    assert_eq!(error["kind"], "invalid_argument", "{error}");
    assert_eq!(
        error["message"], "user id is 60000 bytes long; at most 64 characters are allowed",
        "{error}"
    );
    drop(s);

    // Everyone is still up.
    assert_eq!(fresh.status()["user"], serde_json::Value::Null);
    fresh.create_user("fresh");
    assert_serving(&mut cluster, &alice, "after-huge-id");
    cluster.assert_no_panics();
}

#[test]
fn a_plaintext_client_is_told_to_upgrade() {
    let mut cluster = settled();
    let alice = cluster.user("alice");
    for no in [1, 2] {
        // What a 0.1.0 p2pd sends: a plaintext frame of the tracker protocol v1.
        let what = format!("plaintext ping at tracker {no}");
        let mut s = connect_tcp(cluster.tracker_addr(no));
        s.write_all(&json_frame(
            &json!({"v": 1, "id": request_id(5), "call": {"op": "ping"}}),
        ))
        .unwrap();
        // In the shape every release reads: v1, the empty request id, a protocol error.
        let reply = one_frame_then_closed(&mut s, &what);
        assert_eq!(reply["v"], 1, "{what}: {reply}");
        assert_eq!(reply["id"], "", "{what}: {reply}");
        let error = error_of(&reply);
        assert_eq!(error["kind"], "protocol", "{what}: {reply}");
        assert_eq!(
            error["message"], "this tracker speaks tracker protocol v2 inside TLS; upgrade p2pd",
            "{what}: {reply}"
        );
    }
    assert_serving(&mut cluster, &alice, "after-plaintext");
    cluster.assert_no_panics();
}
