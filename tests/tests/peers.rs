//! Garbage at a seeder's peer port, and downloaders that vanish mid-transfer: the seeder gives
//! nothing away (never a WELCOME or a PIECE), refuses each bad opening with one ERROR frame
//! saying why, and keeps serving real members. Everything but the plaintext cases runs inside
//! TLS, from a client with a key of its own.

use p2p_e2e::adversary::Adversary;
use p2p_e2e::tls::tls_to;
use p2p_e2e::wire::{
    VERSION, connect_tcp, frame, nothing_then_closed, peer, peer_frame, pseudo_random_bytes,
    read_until_closed, split_peer_frames, write_lenient,
};
use p2p_e2e::{
    Cluster, Daemon, PIECE_SIZE, assert_file_content, make_group, piece_count, sha1_hex, wait_for,
    write_test_file,
};
use serde_json::{Value, json};
use std::net::SocketAddr;

const SIZE: usize = 3 * 1024 * 1024 + 12345;

/// Largest peer frame a seeder reads (`MAX_PEER_FRAME`: a piece and its header).
const MAX_PEER_FRAME: u32 = PIECE_SIZE as u32 + 16;

/// Sends `bytes` to the seeder at `addr` (then half-closes when `shutdown`), reads until the
/// seeder closes, and checks it sent exactly one frame, an ERROR whose reason contains `says`.
#[track_caller]
fn refused(addr: SocketAddr, bytes: &[u8], shutdown: bool, what: &str, says: &str) {
    let mut s = tls_to(addr);
    write_lenient(&mut s, bytes);
    if shutdown {
        s.shutdown_write();
    }
    let frames = split_peer_frames(&read_until_closed(&mut s));
    let reasons: Vec<(u8, String)> = frames
        .iter()
        .map(|(kind, payload)| (*kind, String::from_utf8_lossy(payload).into_owned()))
        .collect();
    assert!(
        reasons.len() == 1 && reasons[0].0 == peer::ERROR,
        "{what}: the seeder should answer one ERROR frame and close; it sent (type, payload) \
         {reasons:?}"
    );
    assert!(
        reasons[0].1.contains(says),
        "{what}: the ERROR should say {says:?}, it says {:?}",
        reasons[0].1
    );
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
    // The trackers' signing key's id, which a forged grant must name to be looked at.
    let mut mallory = Adversary::new(cluster.tracker_addr(1));
    let public = mallory.ok(json!({"op": "signing_key"}))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let key_id = p2p_proto::grant::key_id(&public);
    let too_large = |len: u32| format!("peer frame of {len} bytes exceeds the limit");
    let malformed = "malformed peer frame: ";

    // Random bytes, half-closed so a length that looks plausible could not keep us waiting.
    // These seeds all start with a length over the limit: refused before anything else is
    // read.
    for seed in [1u64, 0xdead_beef, 42, 7_777_777] {
        let garbage = pseudo_random_bytes(seed, 8192);
        let len = u32::from_be_bytes(garbage[..4].try_into().unwrap());
        assert!(len > MAX_PEER_FRAME, "seed {seed}: length {len}");
        refused(
            addr,
            &garbage,
            true,
            &format!("random bytes (seed {seed})"),
            &too_large(len),
        );
    }
    // Oversized length prefixes: refused before anything is read, the seeder closes by itself.
    for len in [MAX_PEER_FRAME + 1, 64 << 20, u32::MAX] {
        refused(
            addr,
            &len.to_be_bytes(),
            false,
            &format!("length {len}"),
            &too_large(len),
        );
    }
    // A HELLO of another protocol version: the error names it.
    refused(
        addr,
        &hello(&json!({"v": 1, "file": sha1, "grant": null})),
        false,
        "HELLO v1",
        &format!("peer protocol version mismatch: got 1, expected {VERSION}"),
    );
    // Well-formed HELLOs whose grant was not signed by the trackers, or is not a grant.
    let downloader = p2p_e2e::tls::new_identity().fingerprint().to_string();
    let grant_of = |user: &str, key_id: &str, signature: String| {
        json!({
            "key_id": key_id, "user": user, "group": "g1", "group_id": "00",
            "file_sha1": sha1, "downloader": downloader, "expires": far,
            "signature": signature,
        })
    };
    let forged = |user: &str, signature: String| json!({"v": VERSION, "file": sha1, "grant": grant_of(user, &key_id, signature)});
    let not_signed = "grant signature does not verify";
    let bad_hellos = [
        (
            "zero signature",
            hello(&forged("bob", "00".repeat(64))),
            not_signed,
        ),
        (
            "random signature",
            hello(&forged("mallory", hex::encode(pseudo_random_bytes(9, 64)))),
            not_signed,
        ),
        (
            "non-hex signature",
            hello(&forged("bob", "zz".repeat(64))),
            not_signed,
        ),
        (
            "short signature",
            hello(&forged("bob", "abcd".into())),
            not_signed,
        ),
        (
            "another signer",
            hello(&json!({"v": VERSION, "file": sha1,
                           "grant": grant_of("bob", "0123456789abcdef", "00".repeat(64))})),
            "grant is signed by another tracker key (0123456789abcdef)",
        ),
        (
            "garbage grant",
            hello(&json!({"v": VERSION, "file": sha1, "grant": "let me in"})),
            malformed,
        ),
        (
            "no grant",
            hello(&json!({"v": VERSION, "file": sha1})),
            malformed,
        ),
        (
            "not JSON",
            peer_frame(peer::HELLO, b"{\"v\":2, nope"),
            malformed,
        ),
    ];
    for (what, raw, says) in &bad_hellos {
        refused(addr, raw, false, what, says);
    }
    // Frames other than HELLO first, and a forged HELLO followed by requests for pieces.
    for (what, raw, says) in [
        (
            "REQUEST first",
            peer_frame(peer::REQUEST, &0u32.to_be_bytes()),
            "expected HELLO",
        ),
        (
            "KEEPALIVE first",
            peer_frame(peer::KEEPALIVE, b""),
            "expected HELLO",
        ),
        (
            "unknown type",
            peer_frame(42, b"x"),
            "malformed peer frame: unknown frame type 42",
        ),
        (
            "empty frame",
            frame(b""),
            "malformed peer frame: empty frame",
        ),
    ] {
        refused(addr, &raw, false, what, says);
    }
    let mut pushy = hello(&forged("bob", "00".repeat(64)));
    for piece in 0..piece_count(SIZE as u64) as u32 {
        pushy.extend(peer_frame(peer::REQUEST, &piece.to_be_bytes()));
    }
    refused(
        addr,
        &pushy,
        false,
        "forged HELLO then REQUESTs",
        not_signed,
    );
    // A half frame and a hang-up.
    let mut s = tls_to(addr);
    write_lenient(&mut s, &[0, 0, 0, 50, peer::HELLO, b'{']);
    drop(s);
    // A peer that does not speak TLS (an older release) is told so in plaintext.
    let mut s = connect_tcp(addr);
    write_lenient(
        &mut s,
        &hello(&json!({"v": 1, "file": sha1, "grant": null})),
    );
    let frames = split_peer_frames(&read_until_closed(&mut s));
    assert_eq!(
        frames,
        vec![(
            peer::ERROR,
            format!("this peer speaks peer protocol v{VERSION} inside TLS; upgrade p2pd")
                .into_bytes()
        )],
        "a plaintext HELLO gets one plaintext ERROR"
    );

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
    // Dropped at the seeder's handshake timeout, without a word: it never said what it wants.
    nothing_then_closed(&mut silent, "a silent connection");
    cluster.assert_no_panics();
}
