//! The trackers' cluster port: only the other tracker (its pinned key) proving the cluster key
//! over this very TLS session gets anything. Forged and garbage cluster traffic, at the
//! primary and at the standby, from TLS clients with keys of their own, is refused the one way
//! the tracker refuses each kind of it, is counted, and changes nothing: no role change, no
//! epoch learned, no record written, and the pair stays paired and still replicates.
//!
//! See [`p2p_e2e::failover`] for the starting state.

use p2p_e2e::failover::{CATCH_UP_TIMEOUT, settled_cluster};
use p2p_e2e::tls::{TlsConn, tls_to};
use p2p_e2e::wire::{
    VERSION, cluster_frame, cluster_hello, cluster_proof, error_of, nothing_then_closed,
    one_frame_then_closed, pseudo_random_bytes, read_json_frame, tracker_request,
};
use p2p_e2e::{ROLE_AND_LOG_COUNTERS, TrackerStatus};
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

/// A random proof, hex.
fn random_proof(seed: u64) -> String {
    hex::encode(pseudo_random_bytes(seed, 32))
}

/// The tracker sends one cluster `refuse` saying `reason`, and closes.
#[track_caller]
fn refused_because(s: &mut TlsConn, case: &str, reason: &str) {
    let frame = one_frame_then_closed(s, case);
    assert_eq!(
        frame,
        json!({"v": VERSION, "msg": {"type": "refuse", "reason": reason}}),
        "{case}: expected a refuse frame saying {reason:?}"
    );
}

/// The tracker answers one `protocol` error for the frame it could not read (with the empty
/// request id: it could not read one), and closes.
#[track_caller]
fn refused_as_malformed(s: &mut TlsConn, case: &str) {
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

/// How many connections of [`forge_everything_at`] fail to prove the key (or prove it from a
/// key that is not the other tracker's), and how many name a tracker that is not the other one.
const BAD_PROOFS: u64 = 7;
const UNKNOWN_TRACKERS: u64 = 4;

/// Every forged or malformed cluster connection we can think of, at tracker `no`. Each comes
/// from a TLS client with a key of its own; `cluster_key` is the pair's real cluster key.
fn forge_everything_at(addr: SocketAddr, no: u64, base: u64, cluster_key: &[u8]) {
    let other = 3 - no;
    let mut n = base;
    let mut next = || {
        n += 1;
        n
    };
    let bad = "bad proof of the cluster key";

    // Proofs that are not HMACs under the cluster key over this TLS session.
    for (case, proof) in [
        ("all-zero proof", "0".repeat(64)),
        ("random proof", random_proof(base + 7)),
        ("non-hex proof", "not a proof at all!".to_string()),
        ("empty proof", String::new()),
        // As long as a frame before authentication may be (64 KiB).
        ("long proof", "a".repeat(60 * 1024)),
    ] {
        let case = format!("tracker {no}: {case}");
        let mut s = tls_to(addr);
        s.write_all(&cluster_hello(next(), json!(other), &proof))
            .unwrap();
        refused_because(&mut s, &case, bad);
    }
    // A real proof, made with the real cluster key for another TLS session: a captured proof
    // replayed (or relayed by a man in the middle) proves nothing.
    let captured = tls_to(addr);
    let replayed = cluster_proof(cluster_key, "connector", &captured.exporter);
    let mut s = tls_to(addr);
    s.write_all(&cluster_hello(next(), json!(other), &replayed))
        .unwrap();
    refused_because(
        &mut s,
        &format!("tracker {no}: proof of another session"),
        bad,
    );
    drop(captured);
    // The cluster key itself is not enough: the other tracker's key is pinned, and ours is not
    // it.
    let mut s = tls_to(addr);
    let proof = cluster_proof(cluster_key, "connector", &s.exporter);
    s.write_all(&cluster_hello(next(), json!(other), &proof))
        .unwrap();
    let frame = one_frame_then_closed(&mut s, &format!("tracker {no}: unpinned key"));
    let reason = frame["msg"]["reason"].as_str().unwrap_or_default();
    assert!(
        frame["msg"]["type"] == "refuse"
            && reason.starts_with("your key sha256:")
            && reason.ends_with("is not the one expected here"),
        "tracker {no}: a connection with the cluster key but another TLS key: {frame}"
    );

    // A `from` that is not the other tracker: refused before the proof is looked at.
    for from in [json!(no), json!(0), json!(3), json!(1000)] {
        let case = format!("tracker {no}: cluster_hello from {from}");
        let mut s = tls_to(addr);
        s.write_all(&cluster_hello(next(), from, &random_proof(next())))
            .unwrap();
        refused_because(&mut s, &case, "unknown tracker");
    }
    // A `from` that is not a tracker number at all: a malformed request.
    for from in [json!(-1), json!("two"), json!(null)] {
        let case = format!("tracker {no}: cluster_hello from {from}");
        let mut s = tls_to(addr);
        s.write_all(&cluster_hello(next(), from, &random_proof(next())))
            .unwrap();
        refused_as_malformed(&mut s, &case);
    }
    // A replication message as the first frame: not a tracker request.
    for msg in [
        json!({"type": "record", "record": {"seq": 1_000_000, "epoch": 999}}),
        json!({"type": "hello", "position": {"epoch": 999, "leader": other, "last_seq": 1_000_000, "last_epoch": 999}, "purpose": "follow"}),
        json!({"type": "ack", "seq": 1_000_000}),
    ] {
        let case = format!("tracker {no}: {} as the first frame", msg["type"]);
        let mut s = tls_to(addr);
        s.write_all(&cluster_frame(msg)).unwrap();
        refused_as_malformed(&mut s, &case);
    }
    // cluster_hello after another request on the same connection: closed without a word.
    let mut s = tls_to(addr);
    s.write_all(&tracker_request(next(), None, json!({"op": "ping"})))
        .unwrap();
    // The primary (tracker 1) answers a ping; the standby redirects it to the primary.
    let pong = read_json_frame(&mut s);
    if no == 1 {
        assert_eq!(pong["result"]["Ok"]["reply"], "pong", "{pong}");
    } else {
        assert_eq!(error_of(&pong)["kind"], "not_primary", "{pong}");
    }
    s.write_all(&cluster_hello(next(), json!(other), &random_proof(next())))
        .unwrap();
    nothing_then_closed(
        &mut s,
        &format!("tracker {no}: cluster_hello in the middle of a connection"),
    );
    // Silence after the TLS handshake: the tracker gives up on it by itself.
    let mut s = tls_to(addr);
    let since = Instant::now();
    nothing_then_closed(&mut s, &format!("tracker {no}: silence after TLS"));
    println!(
        "tracker {no} closed a silent connection after {:?}",
        since.elapsed()
    );
}

#[test]
fn forged_and_garbage_cluster_traffic_changes_nothing() {
    let mut cluster = settled_cluster();
    let alice = cluster.user("alice");
    alice.ok(&["create_group", "g1"]);
    let (p0, s0) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    let key_hex = std::fs::read_to_string(cluster.root().join("cluster.key")).unwrap();
    let cluster_key = hex::decode(key_hex.trim()).unwrap();
    for no in [1u64, 2] {
        forge_everything_at(
            cluster.tracker_addr(no as usize),
            no,
            no * 1000,
            &cluster_key,
        );
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
    // The pair is still paired, and still replicates.
    assert_eq!(p1.counter("paired"), 1, "{}", p1.line);
    assert_eq!(s1.counter("paired"), 1, "{}", s1.line);
    assert_eq!(alice.ok(&["create_group", "g2"]), "created group g2");
    let (p2, s2) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    assert!(p2.last_seq > p1.last_seq, "{} / {}", p2.line, s2.line);
    assert_eq!(p2.epoch, 0, "{}", p2.line);
    cluster.assert_no_panics();
}
