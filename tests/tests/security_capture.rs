//! What an on-path observer sees (docs/SECURITY.md, "TLS everywhere"): a packet capture of
//! every byte between the daemons and the trackers, and between the daemons, during a whole
//! session of use holds no password, no token, no secret of the trackers, no frame of any
//! protocol and no stretch of the file that was downloaded.
//!
//! The capture is `tcpdump` on loopback: it needs the Debian package `tcpdump` and root. Where
//! it cannot run the test says so in one line and returns, unless `P2P_REQUIRE_CAPTURE=1`.

use p2p_e2e::capture::{
    Capture, hex64_strings, needles_found, tcp_streams, tokens_in, windows_found,
};
use p2p_e2e::wire::{connect_tcp, read_until_closed, write_lenient};
use p2p_e2e::{Cluster, assert_file_content, make_group, password_of, write_test_file};
use std::collections::BTreeSet;

/// Several MiB of non-repeating bytes.
const SIZE: usize = 5 * 1024 * 1024 + 777;

/// Every check stride of the file's 32-byte windows: a run of 63 of its bytes is found.
const STRIDE: usize = 32;

#[test]
fn the_wire_carries_no_secret_and_no_plaintext() {
    let cluster = Cluster::start();
    let alice = cluster.daemon("alice");
    let bob = cluster.daemon("bob");
    let mut ports: Vec<u16> = (1..=2).map(|no| cluster.tracker_addr(no).port()).collect();
    ports.extend([alice.peer_addr().port(), bob.peer_addr().port()]);
    let file = cluster.root().join("scenario.pcap");
    let Some(capture) = Capture::start_or_skip(&file, &ports) else {
        return;
    };

    // The whole life of two users, on the wire.
    for daemon in [&alice, &bob] {
        daemon.create_user(daemon.name());
        daemon.login(daemon.name());
    }
    make_group(&alice, "g1", &[&bob]);
    let path = alice.dir().join("big.bin");
    let content = write_test_file(&path, 31, SIZE);
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    bob.wait_seeders("g1", "big.bin", 1);
    let dest = bob.dir().join("big.bin");
    bob.ok(&["download_file", "g1", "big.bin", &dest.to_string_lossy()]);
    bob.wait_download("g1", "big.bin");
    assert_file_content(&dest, &content);
    let mut tokens = BTreeSet::new();
    for daemon in [&alice, &bob] {
        let found = tokens_in(&daemon.state_dir().join("p2pd.redb"));
        assert!(
            !found.is_empty(),
            "no session token in {}'s database",
            daemon.name()
        );
        tokens.extend(found);
    }
    alice.ok(&["logout"]);
    bob.ok(&["logout"]);
    // A control: plaintext on the wire is seen. A client that is not TLS sends a canary and
    // gets the tracker's plaintext refusal.
    let canary = b"plaintext canary 5f1d-visible-on-the-wire";
    let refusal = "speaks tracker protocol v2 inside TLS; upgrade p2pd";
    let mut plain = connect_tcp(cluster.tracker_addr(1));
    write_lenient(&mut plain, canary);
    let answer = read_until_closed(&mut plain);
    assert!(
        String::from_utf8_lossy(&answer).contains(refusal),
        "{answer:?}"
    );
    capture.wait_for(refusal.as_bytes());
    let pcap = capture.stop();

    // What must not be seen, by name.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for user in ["alice", "bob"] {
        secrets.push((format!("{user}'s password"), password_of(user).into_bytes()));
    }
    for token in &tokens {
        secrets.push((format!("session token {token}"), token.clone().into_bytes()));
    }
    let mut tracker_hex = BTreeSet::new();
    for no in 1..=2 {
        let db = cluster.tracker_data_dir(no).join("tracker.redb");
        tracker_hex.extend(hex64_strings(&std::fs::read(&db).unwrap()));
    }
    tracker_hex.extend(hex64_strings(
        &std::fs::read(cluster.root().join("cluster.key")).unwrap(),
    ));
    assert!(
        tracker_hex.len() >= 3,
        "the trackers' signing key, session secret and cluster key are stored as hex: \
         {tracker_hex:?}"
    );
    for hex in tracker_hex {
        secrets.push((format!("tracker secret {hex}"), hex.into_bytes()));
    }
    for marker in [
        "\"signature\"",
        "\"file_sha1\"",
        "\"password\"",
        "\"call\"",
        "\"op\"",
    ] {
        secrets.push((
            format!("the frame marker {marker}"),
            marker.as_bytes().to_vec(),
        ));
    }

    // The capture as written and as the byte streams of its connections (a secret split
    // between two packets is whole there).
    let streams = tcp_streams(&pcap);
    let carried: usize = streams.iter().map(Vec::len).sum();
    assert!(
        carried > SIZE,
        "the capture saw the traffic: {carried} bytes of TCP payload in {} streams for a file \
         of {SIZE} bytes",
        streams.len()
    );
    let control: [&[u8]; 2] = [canary, refusal.as_bytes()];
    assert_eq!(
        needles_found(&pcap, &control).len(),
        2,
        "the capture shows the plaintext exchange"
    );
    assert!(
        streams
            .iter()
            .any(|s| needles_found(s, &control[..1]).len() == 1),
        "a stream shows the canary"
    );
    let needles: Vec<&[u8]> = secrets.iter().map(|(_, bytes)| bytes.as_slice()).collect();
    for (what, haystack) in
        std::iter::once(("the capture file", &pcap)).chain(streams.iter().map(|s| ("a stream", s)))
    {
        let seen: Vec<&str> = needles_found(haystack, &needles)
            .into_iter()
            .map(|i| secrets[i].0.as_str())
            .collect();
        assert!(seen.is_empty(), "{what} shows {seen:?}");
        let leaked = windows_found(haystack, &content, STRIDE);
        assert!(
            leaked.is_empty(),
            "{what} holds {} 32-byte windows of the file, the first at offset {:?}",
            leaked.len(),
            leaked.first()
        );
    }
}
