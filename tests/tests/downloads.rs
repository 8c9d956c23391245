//! Downloads from several seeders, from a seeder whose file went bad, and across a kill -9 of
//! the downloading daemon. No timing is asserted: limits only make transfers slow enough to
//! observe (speed is measured in bench/).

use p2p_e2e::{
    Cluster, Daemon, assert_file_content, corrupt_every_piece_keep_mtime, make_group, piece_count,
    wait_for, write_test_file,
};
use serde_json::Value;

/// A little over 4 MiB: 9 pieces, the last one short.
const SIZE: usize = 4 * 1024 * 1024 + 12345;

/// The entry of `peer` in the `sources` of a download (every peer it connected to, with the
/// verified bytes it delivered), if it is there.
fn source_entry(download: &Value, peer: &str) -> Option<Value> {
    download["sources"]
        .as_array()?
        .iter()
        .find(|s| s["peer"] == peer)
        .cloned()
}

/// Verified bytes `peer` delivered to a download, as its `sources` show them.
#[track_caller]
fn bytes_from(download: &Value, peer: &str) -> u64 {
    let source = source_entry(download, peer)
        .unwrap_or_else(|| panic!("{peer} is not among the sources of {download}"));
    source["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("a source without bytes: {source}"))
}

#[test]
fn download_from_two_rate_limited_seeders() {
    let cluster = Cluster::start();
    let alice = cluster.user_with("alice", &["--upload-limit", "1M"]);
    let bob = cluster.user_with("bob", &["--upload-limit", "1M"]);
    let carol = cluster.user("carol");
    make_group(&alice, "g1", &[&bob, &carol]);

    // The same name and content from two users: two seeders.
    let content = write_test_file(&alice.dir().join("big.bin"), 2, SIZE);
    std::fs::write(bob.dir().join("big.bin"), &content).unwrap();
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("big.bin").to_string_lossy(),
    ]);
    bob.ok(&[
        "upload_file",
        "g1",
        &bob.dir().join("big.bin").to_string_lossy(),
    ]);
    carol.wait_seeders("g1", "big.bin", 2);

    let dest = carol.dir().join("big.bin");
    let out = carol.ok(&["download_file", "g1", "big.bin", &dest.to_string_lossy()]);
    assert!(out.contains("from 2 peer(s)"), "{out}");
    let mut most_peers = 0;
    let done = carol.wait_download_with("g1", "big.bin", |d| {
        most_peers = most_peers.max(d["peers"].as_u64().unwrap_or(0));
    });
    assert_file_content(&dest, &content);
    assert_eq!(done["pieces_done"], piece_count(SIZE as u64), "{done}");
    assert_eq!(done["banned"], serde_json::json!([]), "{done}");
    // With both seeders limited, the transfer takes a few seconds, during which the download
    // is connected to both: some poll must have seen it.
    assert_eq!(
        most_peers, 2,
        "show_downloads never showed the download connected to both seeders"
    );
    // And both seeders admitted carol's grant: each delivered verified pieces, as the
    // download's sources show (kept once it is complete); together, the whole file.
    let mut total = 0;
    for seeder in [&alice, &bob] {
        let peer = seeder.peer_addr().to_string();
        let bytes = bytes_from(&done, &peer);
        assert!(
            bytes > 0,
            "{} ({peer}) delivered nothing to carol: {done}",
            seeder.name()
        );
        total += bytes;
    }
    assert_eq!(total, SIZE as u64, "{done}");
    cluster.assert_no_panics();
}

#[test]
fn a_seeder_with_a_corrupted_file_is_banned_and_the_download_completes() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    // bob is the good seeder, limited so that alice surely gets requests too.
    let bob = cluster.user_with("bob", &["--upload-limit", "512K"]);
    let carol = cluster.user("carol");
    make_group(&alice, "g1", &[&bob, &carol]);

    let content = write_test_file(&alice.dir().join("data.bin"), 3, SIZE);
    std::fs::write(bob.dir().join("data.bin"), &content).unwrap();
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("data.bin").to_string_lossy(),
    ]);
    bob.ok(&[
        "upload_file",
        "g1",
        &bob.dir().join("data.bin").to_string_lossy(),
    ]);
    carol.wait_seeders("g1", "data.bin", 2);

    // alice's copy goes bad behind her daemon's back: same size, same mtime.
    corrupt_every_piece_keep_mtime(&alice.dir().join("data.bin"));
    let bad_peer = alice.peer_addr().to_string();

    let dest = carol.dir().join("data.bin");
    carol.ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    // The ban shows while the download runs (bob's limit makes it last a few seconds)...
    let mut ban_seen: Option<Value> = None;
    let done = carol.wait_download_with("g1", "data.bin", |d| {
        if ban_seen.is_none() {
            ban_seen = banned_entry(d, &bad_peer);
        }
    });
    assert_file_content(&dest, &content);
    let ban = ban_seen.unwrap_or_else(|| {
        panic!("show_downloads never listed alice ({bad_peer}) as banned; at the end: {done}")
    });
    assert_eq!(
        ban["reason"], "sent a piece that failed SHA-1 verification",
        "the ban says why: {ban}"
    );
    // ... and stays visible once the download is complete: it is part of its history.
    let banned = done["banned"]
        .as_array()
        .unwrap_or_else(|| panic!("no banned list: {done}"));
    assert!(
        banned_entry(&done, &bad_peer).is_some(),
        "the completed download no longer lists alice ({bad_peer}) as banned: {done}"
    );
    assert_eq!(banned.len(), 1, "only alice is banned: {done}");
    // Nothing of alice's counted; bob delivered the whole file.
    assert_eq!(bytes_from(&done, &bad_peer), 0, "{done}");
    assert_eq!(
        bytes_from(&done, &bob.peer_addr().to_string()),
        SIZE as u64,
        "{done}"
    );
    cluster.assert_no_panics();
}

/// The entry of `peer` in the `banned` list of a download, if it is there.
fn banned_entry(download: &Value, peer: &str) -> Option<Value> {
    download["banned"]
        .as_array()?
        .iter()
        .find(|b| b["peer"] == peer)
        .cloned()
}

/// Polls `show_downloads` until `pred` holds for the download of `file` from `group`.
#[track_caller]
fn wait_progress(d: &Daemon, group: &str, file: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let what = format!("the progress wanted of {}'s download of {file}", d.name());
    wait_for(&what, p2p_e2e::DOWNLOAD_TIMEOUT, || {
        let info = d
            .download(group, file)
            .ok_or_else(|| "not in show_downloads".to_string())?;
        assert_ne!(info["state"], "failed", "{info}");
        assert_ne!(info["state"], "complete", "finished too soon: {info}");
        if pred(&info) {
            Ok(info)
        } else {
            Err(info.to_string())
        }
    })
}

#[test]
fn a_killed_downloader_resumes_where_it_stopped() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    // 512 KiB/s: one piece at once, then about one a second.
    let mut bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    make_group(&alice, "g1", &[&bob]);
    let content = write_test_file(&alice.dir().join("data.bin"), 4, SIZE);
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("data.bin").to_string_lossy(),
    ]);
    bob.wait_seeders("g1", "data.bin", 1);
    let total = piece_count(SIZE as u64);

    let dest = bob.dir().join("data.bin");
    bob.ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    // Four pieces shown means the first was verified some three seconds ago, so at least one
    // flush (about every second) has made it durable.
    let before = wait_progress(&bob, "g1", "data.bin", |d| {
        d["pieces_done"].as_u64().unwrap_or(0) >= 4
    });
    bob.kill9();

    // Restarted with a download limit so low that, after the one piece its burst allows, no
    // piece arrives during the test: what show_downloads reports is what was durable.
    bob.set_extra_args(&["--download-limit", "1K"]);
    bob.restart();
    assert_eq!(bob.status()["user"], "bob", "still logged in after kill -9");
    let after = bob
        .download("g1", "data.bin")
        .unwrap_or_else(|| panic!("the download is gone after kill -9: {:?}", bob.downloads()));
    for field in ["group", "file", "destination", "size", "pieces_total"] {
        assert_eq!(after[field], before[field], "{field}: {after} vs {before}");
    }
    assert!(
        matches!(after["state"].as_str(), Some("downloading" | "waiting")),
        "the download resumed by itself: {after}"
    );
    let resumed = after["pieces_done"].as_u64().unwrap();
    assert!(
        resumed >= 2,
        "the restarted download kept its verified pieces (had {} when killed): {after}",
        before["pieces_done"]
    );
    assert!(resumed < total, "{after}");

    // Without the limit (and after a second kill -9) it completes, byte-identical.
    bob.kill9();
    bob.set_extra_args(&[]);
    bob.restart();
    let done = bob.wait_download("g1", "data.bin");
    assert_file_content(&dest, &content);
    assert_eq!(done["pieces_done"], total, "{done}");
    alice.wait_seeders("g1", "data.bin", 2);
    cluster.assert_no_panics();
}
