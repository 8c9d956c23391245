//! The trackers' cluster port: only a tracker that proves the cluster key gets anything. Forged
//! and garbage cluster traffic, at the primary and at the standby, is refused the one way the
//! tracker refuses each kind of it, is counted, and changes nothing: no role change, no epoch
//! learned, no record written, and the pair still replicates.
//!
//! See [`p2p_e2e::failover`] for the starting state.

use p2p_e2e::failover::{CATCH_UP_TIMEOUT, settled_cluster};
use p2p_e2e::wire::{
    cluster_frame, cluster_hello, connect_tcp, error_of, json_frame, nothing_then_closed,
    one_frame_then_closed, pseudo_random_bytes, read_json_frame, request_id, tracker_request,
    write_lenient,
};
use p2p_e2e::{ROLE_AND_LOG_COUNTERS, TrackerStatus};
use serde_json::{Value, json};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Instant;

/// A connector nonce, hex.
fn nonce(seed: u64) -> String {
    hex::encode(pseudo_random_bytes(seed, 16))
}

/// Opens a connection to `addr` that says `cluster_hello` from `from`, and reads the
/// challenge; returns the stream and the challenge message.
#[track_caller]
fn hello(addr: SocketAddr, n: u64, from: u64, nonce_c: &str) -> (TcpStream, Value) {
    let mut s = connect_tcp(addr);
    s.write_all(&cluster_hello(n, json!(from), nonce_c))
        .unwrap();
    let challenge = read_json_frame(&mut s);
    assert_eq!(challenge["v"], 1, "{challenge}");
    let msg = challenge["msg"].clone();
    assert_eq!(
        msg["type"], "challenge",
        "answer to cluster_hello: {challenge}"
    );
    assert!(
        msg["nonce"].as_str().is_some_and(|n| !n.is_empty())
            && msg["proof"].as_str().is_some_and(|p| p.len() == 64),
        "a challenge carries a nonce and a 32-byte proof: {challenge}"
    );
    (s, msg)
}

/// An `auth` message with `proof` that claims a far newer epoch led by `leader`: were it
/// believed, the tracker would step down or take the attacker's log.
fn forged_auth(proof: &str, leader: u64, purpose: &str) -> Value {
    json!({
        "type": "auth",
        "proof": proof,
        "position": {"epoch": 999, "leader": leader, "last_seq": 1_000_000, "last_epoch": 999},
        "purpose": purpose,
    })
}

/// The tracker sends one cluster `refuse` saying `reason`, and closes.
#[track_caller]
fn refused_because(s: &mut TcpStream, case: &str, reason: &str) {
    let frame = one_frame_then_closed(s, case);
    assert_eq!(
        frame,
        json!({"v": 1, "msg": {"type": "refuse", "reason": reason}}),
        "{case}: expected a refuse frame saying {reason:?}"
    );
}

/// The tracker answers one `protocol` error for the frame it could not read (with the empty
/// request id: it could not read one), and closes.
#[track_caller]
fn refused_as_malformed(s: &mut TcpStream, case: &str) {
    let reply = one_frame_then_closed(s, case);
    assert_eq!(reply["id"], "", "{case}: {reply}");
    let error = error_of(&reply);
    assert_eq!(error["kind"], "protocol", "{case}: {reply}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("malformed tracker message: ")),
        "{case}: {reply}"
    );
}

/// How many connections of [`forge_everything_at`] fail to prove the key, and how many name
/// a tracker that is not the other one.
const BAD_PROOFS: u64 = 6;
const UNKNOWN_TRACKERS: u64 = 4;

/// Every forged or malformed cluster connection we can think of, at tracker `no`.
fn forge_everything_at(addr: SocketAddr, no: u64, base: u64) {
    let other = 3 - no;
    let mut n = base;
    let mut next = || {
        n += 1;
        n
    };

    // Well-formed auth messages with proofs that are not HMACs under the cluster key. The
    // `bad proof` reason shows the auth message itself was understood.
    let random_proof = hex::encode(pseudo_random_bytes(base + 7, 32));
    for (case, proof, purpose) in [
        ("all-zero proof", "0".repeat(64), "follow"),
        ("random proof", random_proof, "probe"),
        ("non-hex proof", "not a proof at all!".to_string(), "follow"),
        ("empty proof", String::new(), "follow"),
    ] {
        let case = format!("tracker {no}: {case}");
        let (mut s, _) = hello(addr, next(), other, &nonce(next()));
        s.write_all(&cluster_frame(forged_auth(&proof, other, purpose)))
            .unwrap();
        refused_because(&mut s, &case, "bad proof");
    }
    // The tracker's own proof reflected back.
    let (mut s, challenge) = hello(addr, next(), other, &nonce(next()));
    let reflected = challenge["proof"].as_str().unwrap().to_string();
    s.write_all(&cluster_frame(forged_auth(&reflected, other, "follow")))
        .unwrap();
    refused_because(
        &mut s,
        &format!("tracker {no}: reflected proof"),
        "bad proof",
    );
    // A long nonce changes nothing.
    let long_nonce = "a".repeat(64 * 1024);
    let (mut s, _) = hello(addr, next(), other, &long_nonce);
    s.write_all(&cluster_frame(forged_auth(
        &"1".repeat(64),
        other,
        "follow",
    )))
    .unwrap();
    refused_because(&mut s, &format!("tracker {no}: long nonce"), "bad proof");

    // A `from` that is not the other tracker: refused before any challenge.
    for from in [json!(no), json!(0), json!(3), json!(1000)] {
        let case = format!("tracker {no}: cluster_hello from {from}");
        let mut s = connect_tcp(addr);
        s.write_all(&cluster_hello(next(), from, &nonce(next())))
            .unwrap();
        refused_because(&mut s, &case, "unknown tracker");
    }
    // A `from` that is not a tracker number at all: a malformed request.
    for from in [json!(-1), json!("two"), json!(null)] {
        let case = format!("tracker {no}: cluster_hello from {from}");
        let mut s = connect_tcp(addr);
        s.write_all(&cluster_hello(next(), from, &nonce(next())))
            .unwrap();
        refused_as_malformed(&mut s, &case);
    }

    // After a good hello, anything but a well-formed auth message breaks the handshake off:
    // the tracker closes without a word.
    // Garbage (its first four bytes are a length over the 16 MiB limit).
    let (mut s, _) = hello(addr, next(), other, &nonce(next()));
    write_lenient(&mut s, &pseudo_random_bytes(base + 99, 8192));
    let _ = s.shutdown(Shutdown::Write);
    nothing_then_closed(&mut s, &format!("tracker {no}: random bytes after hello"));
    // Oversized frames: refused by their length prefix alone.
    for prefix in [(16u32 << 20) + 1, u32::MAX] {
        let (mut s, _) = hello(addr, next(), other, &nonce(next()));
        write_lenient(&mut s, &prefix.to_be_bytes());
        nothing_then_closed(
            &mut s,
            &format!("tracker {no}: {prefix}-byte frame after hello"),
        );
    }
    // Replication messages instead of the proof: a record, a snapshot, a heartbeat, an ack.
    for msg in [
        json!({"type": "record", "record": {"seq": 1_000_000, "epoch": 999, "request_id": request_id(1), "op": {"create_user": {"user": "mallory"}}}}),
        json!({"type": "snapshot", "rows": [{"table": "users", "key": "mallory", "value": "{}"}], "last": true,
               "position": {"epoch": 999, "leader": other, "last_seq": 1_000_000, "last_epoch": 999}}),
        json!({"type": "heartbeat", "position": {"epoch": 999, "leader": other, "last_seq": 1_000_000, "last_epoch": 999}}),
        json!({"type": "ack", "seq": 1_000_000}),
    ] {
        let case = format!("tracker {no}: {} instead of auth", msg["type"]);
        let (mut s, _) = hello(addr, next(), other, &nonce(next()));
        s.write_all(&cluster_frame(msg)).unwrap();
        nothing_then_closed(&mut s, &case);
    }
    // An auth message without a position; a cluster frame of another version.
    let (mut s, _) = hello(addr, next(), other, &nonce(next()));
    s.write_all(&cluster_frame(
        json!({"type": "auth", "proof": "00", "purpose": "follow"}),
    ))
    .unwrap();
    nothing_then_closed(&mut s, &format!("tracker {no}: auth without position"));
    let (mut s, _) = hello(addr, next(), other, &nonce(next()));
    s.write_all(&json_frame(
        &json!({"v": 2, "msg": forged_auth(&"0".repeat(64), other, "follow")}),
    ))
    .unwrap();
    nothing_then_closed(&mut s, &format!("tracker {no}: cluster frame v2"));
    // Silence: the tracker gives up on the handshake by itself.
    let (mut s, _) = hello(addr, next(), other, &nonce(next()));
    let since = Instant::now();
    nothing_then_closed(&mut s, &format!("tracker {no}: silence after hello"));
    println!(
        "tracker {no} closed a silent cluster handshake after {:?}",
        since.elapsed()
    );

    // A replication message with no hello at all, as the first frame: not a tracker request.
    let mut s = connect_tcp(addr);
    s.write_all(&cluster_frame(
        json!({"type": "record", "record": {"seq": 1}}),
    ))
    .unwrap();
    refused_as_malformed(&mut s, &format!("tracker {no}: record as first frame"));
    // cluster_hello after another request on the same connection: closed without a challenge.
    let mut s = connect_tcp(addr);
    s.write_all(&tracker_request(next(), None, json!({"op": "ping"})))
        .unwrap();
    // The primary (tracker 1) answers a ping; the standby redirects it to the primary.
    let pong = read_json_frame(&mut s);
    if no == 1 {
        assert_eq!(pong["result"]["Ok"]["reply"], "pong", "{pong}");
    } else {
        assert_eq!(error_of(&pong)["kind"], "not_primary", "{pong}");
    }
    s.write_all(&cluster_hello(next(), json!(other), &nonce(next())))
        .unwrap();
    nothing_then_closed(
        &mut s,
        &format!("tracker {no}: cluster_hello in the middle of a connection"),
    );
}

#[test]
fn forged_and_garbage_cluster_traffic_changes_nothing() {
    let mut cluster = settled_cluster();
    let alice = cluster.user("alice");
    alice.ok(&["create_group", "g1"]);
    let (p0, s0) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    for no in [1u64, 2] {
        forge_everything_at(cluster.tracker_addr(no as usize), no, no * 1000);
        for t in [1, 2] {
            assert!(
                cluster.tracker(t).is_running(),
                "tracker {t} died after the forged traffic at tracker {no}:\n{}",
                cluster.tracker(t).stderr_tail(40)
            );
        }
    }

    // Same roles, same epoch, same log: nothing was learned, nothing was written.
    let (p1, s1) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let pairs: [(usize, &TrackerStatus, &TrackerStatus); 2] = [(1, &p0, &p1), (2, &s0, &s1)];
    for (no, before, after) in pairs {
        assert_eq!(
            (&before.role, before.epoch, before.leader, before.last_seq),
            (&after.role, after.epoch, after.leader, after.last_seq),
            "tracker {no}'s state changed: before {}, after {}",
            before.line,
            after.line
        );
        // Each refusal was counted as what it was ...
        assert_eq!(
            after.grown_since(before, "refused_bad_proof"),
            BAD_PROOFS,
            "tracker {no} counts the connections without a valid proof: before {}, after {}",
            before.line,
            after.line
        );
        assert_eq!(
            after.grown_since(before, "refused_unknown_tracker"),
            UNKNOWN_TRACKERS,
            "tracker {no} counts the connections from an unknown tracker: before {}, after {}",
            before.line,
            after.line
        );
        // ... and none of it moved a role or a log: no takeover, no step-down, no new
        // replication link, no snapshot.
        after.assert_unchanged_since(
            before,
            &ROLE_AND_LOG_COUNTERS,
            &format!("tracker {no} after the forged traffic"),
        );
    }
    // No user appeared: mallory (named in the forged record and snapshot) is free.
    let checker = cluster.daemon("checker");
    checker.create_user("mallory");
    // And the pair still replicates.
    assert_eq!(alice.ok(&["create_group", "g2"]), "created group g2");
    let (p2, s2) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    assert!(p2.last_seq > p1.last_seq, "{} / {}", p2.line, s2.line);
    assert_eq!(p2.epoch, 0, "{}", p2.line);
    cluster.assert_no_panics();
}
