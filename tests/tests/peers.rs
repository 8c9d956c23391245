//! Garbage at a seeder's peer port, and downloaders that vanish mid-transfer: the seeder gives
//! nothing away (never a WELCOME or a PIECE) and keeps serving real members.

use p2p_e2e::wire::{
    connect_tcp, frame, parse_peer_frames, peer, peer_frame, pseudo_random_bytes,
    read_until_closed, write_lenient,
};
use p2p_e2e::{
    Cluster, Daemon, assert_file_content, make_group, piece_count, sha1_hex, wait_for,
    write_test_file,
};
use serde_json::{Value, json};
use std::net::{Shutdown, SocketAddr};

const SIZE: usize = 3 * 1024 * 1024 + 12345;

/// Whatever the seeder sent before closing holds no WELCOME and no PIECE: only ERROR frames
/// (or nothing at all). Returns the ERROR reasons.
#[track_caller]
fn assert_nothing_useful(got: &[u8], what: &str) -> Vec<String> {
    let frames = parse_peer_frames(got);
    for (kind, payload) in &frames {
        assert_eq!(
            *kind,
            peer::ERROR,
            "{what}: the seeder answered with a frame of type {kind} ({} bytes); all it sent: \
             {:?}",
            payload.len(),
            String::from_utf8_lossy(got)
        );
    }
    frames
        .into_iter()
        .map(|(_, p)| String::from_utf8_lossy(&p).into_owned())
        .collect()
}

/// Sends `bytes` to the seeder at `addr` (then half-closes when `shutdown`), reads until the
/// seeder closes, and checks it gave nothing away. Returns the ERROR reasons.
#[track_caller]
fn poke(addr: SocketAddr, bytes: &[u8], shutdown: bool, what: &str) -> Vec<String> {
    let mut s = connect_tcp(addr);
    write_lenient(&mut s, bytes);
    if shutdown {
        let _ = s.shutdown(Shutdown::Write);
    }
    let got = read_until_closed(&mut s);
    assert_nothing_useful(&got, what)
}

/// A HELLO frame carrying `hello` as its JSON payload.
fn hello(hello: &Value) -> Vec<u8> {
    peer_frame(peer::HELLO, &serde_json::to_vec(hello).unwrap())
}

/// `downloader` fetches `name` of `group` into its directory; it completes byte-identical.
#[track_caller]
fn download_ok(downloader: &Daemon, group: &str, name: &str, content: &[u8]) {
    let dest = downloader.dir().join(name);
    downloader.ok(&["download_file", group, name, &dest.to_string_lossy()]);
    downloader.wait_download(group, name);
    assert_file_content(&dest, content);
}

#[test]
fn seeder_gives_nothing_to_garbage_and_forged_grants() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let path = alice.dir().join("data.bin");
    let content = write_test_file(&path, 6, SIZE);
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    let addr = alice.peer_addr();
    let sha1 = sha1_hex(&content);
    let far = 4_000_000_000u64;

    // Random bytes, half-closed so a length that looks plausible cannot keep us waiting.
    for seed in [1u64, 0xdead_beef, 42, 7_777_777] {
        poke(
            addr,
            &pseudo_random_bytes(seed, 8192),
            true,
            &format!("random bytes (seed {seed})"),
        );
    }
    // Oversized length prefixes: refused before anything is read, the seeder closes by itself.
    for len in [(512u32 << 10) + 17, 64 << 20, u32::MAX] {
        let errors = poke(addr, &len.to_be_bytes(), false, &format!("length {len}"));
        assert!(
            errors.iter().all(|e| !e.is_empty()),
            "length {len}: {errors:?}"
        );
    }
    // A HELLO of another protocol version.
    let errors = poke(
        addr,
        &hello(&json!({"v": 2, "file": sha1, "grant": null})),
        false,
        "HELLO v2",
    );
    assert!(
        errors.iter().any(|e| e.contains("version")),
        "a version mismatch is answered with an error naming it: {errors:?}"
    );
    // Well-formed HELLOs whose grant was not signed by the trackers, or is not a grant.
    let forged = |user: &str, signature: String| {
        json!({"v": 1, "file": sha1, "grant": {
            "user": user, "group": "g1", "file_sha1": sha1, "expires": far,
            "signature": signature,
        }})
    };
    let bad_hellos = [
        ("zero signature", hello(&forged("bob", "00".repeat(64)))),
        (
            "random signature",
            hello(&forged("mallory", hex::encode(pseudo_random_bytes(9, 64)))),
        ),
        ("non-hex signature", hello(&forged("bob", "zz".repeat(64)))),
        ("short signature", hello(&forged("bob", "abcd".into()))),
        (
            "garbage grant",
            hello(&json!({"v": 1, "file": sha1, "grant": "let me in"})),
        ),
        ("no grant", hello(&json!({"v": 1, "file": sha1}))),
        ("not JSON", peer_frame(peer::HELLO, b"{\"v\":1, nope")),
    ];
    for (what, raw) in &bad_hellos {
        let errors = poke(addr, raw, false, what);
        assert!(!errors.is_empty(), "{what}: refused without an ERROR frame");
    }
    // Frames other than HELLO first, and a forged HELLO followed by requests for pieces.
    for (what, raw) in [
        (
            "REQUEST first",
            peer_frame(peer::REQUEST, &0u32.to_be_bytes()),
        ),
        ("KEEPALIVE first", peer_frame(peer::KEEPALIVE, b"")),
        ("unknown type", peer_frame(42, b"x")),
        ("empty frame", frame(b"")),
    ] {
        poke(addr, &raw, false, what);
    }
    let mut pushy = hello(&forged("bob", "00".repeat(64)));
    for piece in 0..piece_count(SIZE as u64) as u32 {
        pushy.extend(peer_frame(peer::REQUEST, &piece.to_be_bytes()));
    }
    poke(addr, &pushy, false, "forged HELLO then REQUESTs");
    // A half frame and a hang-up.
    let mut s = connect_tcp(addr);
    write_lenient(&mut s, &[0, 0, 0, 50, peer::HELLO, b'{']);
    drop(s);

    // The seeder is alive and serves a real member.
    assert!(alice.is_running(), "the seeder died");
    download_ok(&bob, "g1", "data.bin", &content);
    cluster.assert_no_panics();
}

#[test]
fn a_downloader_killed_mid_transfer_does_not_stop_the_seeder() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    let mut bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    let carol = cluster.user("carol");
    make_group(&alice, "g1", &[&bob, &carol]);
    let path = alice.dir().join("data.bin");
    let content = write_test_file(&path, 7, SIZE);
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    bob.wait_seeders("g1", "data.bin", 1);

    bob.ok(&[
        "download_file",
        "g1",
        "data.bin",
        &bob.dir().join("data.bin").to_string_lossy(),
    ]);
    wait_for(
        "bob's download to be part way",
        p2p_e2e::DOWNLOAD_TIMEOUT,
        || {
            let d = bob
                .download("g1", "data.bin")
                .ok_or_else(|| "not listed".to_string())?;
            assert_ne!(d["state"], "complete", "finished too soon: {d}");
            assert_ne!(d["state"], "failed", "{d}");
            if d["pieces_done"].as_u64().unwrap_or(0) >= 1 {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    );
    bob.kill9();

    // carol's download completes from alice, although the tracker may still list bob's
    // dead daemon as a holder of some pieces.
    download_ok(&carol, "g1", "data.bin", &content);
    assert!(alice.is_running(), "the seeder died");
    // ... and bob, restarted, finishes too (from alice or carol).
    bob.set_extra_args(&[]);
    bob.restart();
    let done = bob.wait_download("g1", "data.bin");
    assert_eq!(done["pieces_done"], piece_count(SIZE as u64), "{done}");
    assert_file_content(&bob.dir().join("data.bin"), &content);
    cluster.assert_no_panics();
}

#[test]
fn a_connection_that_sends_nothing_is_dropped() {
    // Not a timing assertion: the test only needs the seeder to close a silent connection at
    // some point (its handshake timeout) while it keeps serving others.
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let path = alice.dir().join("data.bin");
    let content = write_test_file(&path, 8, SIZE);
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    let mut silent = connect_tcp(alice.peer_addr());
    download_ok(&bob, "g1", "data.bin", &content);
    let got = read_until_closed(&mut silent);
    assert_nothing_useful(&got, "a silent connection");
    cluster.assert_no_panics();
}
