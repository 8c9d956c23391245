//! Crash windows: p2pd killed with SIGKILL at any point of its downloads comes back to a state
//! it completes by itself, with no verified piece lost beyond those not yet flushed; the
//! windows between linking the final name, removing the part file and recording completion
//! are recovered; a corrupt p2pd.redb is moved aside and p2pd starts.

use p2p_e2e::{
    Cluster, Daemon, PIECE_SIZE, assert_file_content, make_group, wait_for, write_test_file,
};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Verified pieces are flushed about every second; a count shown this long before a kill was
/// surely durable when it came.
const FLUSHED_AFTER: Duration = Duration::from_secs(3);

/// The files of the many-kills test: name, seed, size (5 + 4 + 2 pieces).
const FILES: [(&str, u64, usize); 3] = [
    ("a.bin", 21, 4 * PIECE_SIZE as usize + 100),
    ("b.bin", 22, 3 * PIECE_SIZE as usize + 7),
    ("c.bin", 23, 2 * PIECE_SIZE as usize),
];

/// What `show_downloads` said of one download at one poll.
#[derive(Clone, Copy, Debug)]
struct Seen {
    pieces: u64,
    complete: bool,
}

fn snapshot(bob: &Daemon) -> BTreeMap<String, Seen> {
    bob.downloads()
        .into_iter()
        .map(|d| {
            assert_ne!(d["state"], "failed", "{d}");
            let name = d["file"].as_str().unwrap_or_default().to_string();
            let seen = Seen {
                pieces: d["pieces_done"].as_u64().unwrap_or(0),
                complete: d["state"] == "complete",
            };
            (name, seen)
        })
        .collect()
}

fn total(s: &BTreeMap<String, Seen>) -> u64 {
    s.values().map(|v| v.pieces).sum()
}

fn completed(s: &BTreeMap<String, Seen>) -> usize {
    s.values().filter(|v| v.complete).count()
}

fn part_of(dest: &Path) -> PathBuf {
    let mut part = dest.as_os_str().to_os_string();
    part.push(".p2p-part");
    PathBuf::from(part)
}

#[test]
fn sigkill_at_many_points_of_many_downloads_loses_no_flushed_piece_and_every_file_completes() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    // About a piece a second in all: a kill lands between pieces, during one, during a flush,
    // or right after a completion, at every round somewhere else.
    let mut bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    make_group(&alice, "g1", &[&bob]);
    let mut contents = BTreeMap::new();
    for (name, seed, size) in FILES {
        let path = alice.dir().join(name);
        contents.insert(name.to_string(), write_test_file(&path, seed, size));
        alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    }
    for (name, _, _) in FILES {
        bob.wait_seeders("g1", name, 1);
        let dest = bob.dir().join(name);
        bob.ok(&["download_file", "g1", name, &dest.to_string_lossy()]);
    }

    let mut history: Vec<(Instant, BTreeMap<String, Seen>)> = Vec::new();
    let mut kills = 0;
    let mut kill_at = 2;
    let mut done_before = 0;
    loop {
        // Run until a few more pieces are verified, or a download has just completed.
        let now = wait_for(
            "bob's downloads to progress",
            p2p_e2e::DOWNLOAD_TIMEOUT,
            || {
                let s = snapshot(&bob);
                history.push((Instant::now(), s.clone()));
                if total(&s) >= kill_at || completed(&s) > done_before {
                    Ok(s)
                } else {
                    Err(format!("{s:?}"))
                }
            },
        );
        bob.kill9();
        kills += 1;
        let killed = Instant::now();
        // The seeder goes too, so that whatever bob shows after the restart is what it kept.
        alice.kill9();
        bob.restart();
        for (name, _, _) in FILES {
            let kept = history
                .iter()
                .filter(|(at, _)| *at + FLUSHED_AFTER <= killed)
                .filter_map(|(_, s)| s.get(name))
                .map(|v| v.pieces)
                .max()
                .unwrap_or(0);
            // Shown complete means recorded complete: it stays so.
            let was_complete = now.get(name).is_some_and(|v| v.complete);
            let what =
                format!("bob to show {name} with the {kept} pieces flushed before kill {kills}");
            wait_for(&what, p2p_e2e::READY_TIMEOUT, || {
                let d = bob
                    .download("g1", name)
                    .ok_or_else(|| "not in show_downloads".to_string())?;
                assert_ne!(d["state"], "failed", "{d}");
                if was_complete {
                    assert_eq!(d["state"], "complete", "completed before the kill: {d}");
                }
                if d["pieces_done"].as_u64().unwrap_or(0) >= kept {
                    Ok(())
                } else {
                    Err(d.to_string())
                }
            });
        }
        done_before = completed(&now);
        if done_before == FILES.len() {
            break;
        }
        alice.restart();
        kill_at = total(&now) + 2;
        history.clear();
        assert!(kills < 40, "no end in sight after {kills} kills");
    }
    assert!(kills >= 4, "only {kills} kills");
    for (name, content) in &contents {
        let d = bob.wait_download("g1", name);
        assert_eq!(d["pieces_done"], d["pieces_total"], "{d}");
        assert_file_content(&bob.dir().join(name), content);
        assert!(
            !part_of(&bob.dir().join(name)).exists(),
            "{name}: part file left"
        );
    }
    cluster.assert_no_panics();
}

/// alice seeds data.bin; bob (slow) has downloaded some of it when he is killed. Returns the
/// content and bob's destination.
fn killed_during_download(
    cluster: &Cluster,
    alice: &Daemon,
    bob: &mut Daemon,
) -> (Vec<u8>, PathBuf) {
    let _ = cluster;
    make_group(alice, "g1", &[bob]);
    let content = write_test_file(
        &alice.dir().join("data.bin"),
        31,
        5 * PIECE_SIZE as usize + 99,
    );
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("data.bin").to_string_lossy(),
    ]);
    bob.wait_seeders("g1", "data.bin", 1);
    let dest = bob.dir().join("data.bin");
    bob.ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_for(
        "bob's download to get a piece",
        p2p_e2e::DOWNLOAD_TIMEOUT,
        || {
            let d = bob.download("g1", "data.bin").ok_or("not shown")?;
            assert_ne!(d["state"], "complete", "{d}");
            if d["pieces_done"].as_u64().unwrap_or(0) >= 2 {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    );
    bob.kill9();
    (content, dest)
}

/// Writes the whole `content` into the part file in place (same file, so it stays the one
/// recorded): the state p2pd leaves once every piece is written.
fn fill_part_file(dest: &Path, content: &[u8]) {
    let part = std::fs::OpenOptions::new()
        .write(true)
        .open(part_of(dest))
        .unwrap();
    part.write_all_at(content, 0).unwrap();
    part.sync_all().unwrap();
}

#[test]
fn a_crash_between_linking_the_destination_and_removing_the_part_file_is_completed_at_start() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let mut bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    let (content, dest) = killed_during_download(&cluster, &alice, &mut bob);
    // The window: the final name links the part file, which is still there too.
    fill_part_file(&dest, &content);
    std::fs::hard_link(part_of(&dest), &dest).unwrap();

    bob.set_extra_args(&[]);
    bob.restart();
    let done = bob.wait_download("g1", "data.bin");
    assert_eq!(done["pieces_done"], done["pieces_total"], "{done}");
    assert_file_content(&dest, &content);
    assert!(!part_of(&dest).exists(), "the part file's name is removed");
    alice.wait_seeders("g1", "data.bin", 2);
    // And it stays complete across another start.
    bob.kill9();
    bob.restart();
    assert_eq!(bob.download("g1", "data.bin").unwrap()["state"], "complete");
    cluster.assert_no_panics();
}

#[test]
fn a_crash_after_removing_the_part_file_before_recording_completion_is_completed_at_start() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let mut bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    let (content, dest) = killed_during_download(&cluster, &alice, &mut bob);
    // The window: the part file has its final name only; nothing recorded it complete.
    fill_part_file(&dest, &content);
    std::fs::rename(part_of(&dest), &dest).unwrap();

    bob.restart();
    let done = bob.wait_download("g1", "data.bin");
    assert_eq!(done["pieces_done"], done["pieces_total"], "{done}");
    assert_file_content(&dest, &content);
    alice.wait_seeders("g1", "data.bin", 2);
    cluster.assert_no_panics();
}

#[test]
fn a_file_put_at_the_destination_while_p2pd_was_down_is_not_taken_for_the_download() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let mut bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    let (content, dest) = killed_during_download(&cluster, &alice, &mut bob);
    // The right bytes, but another file than the download's: left alone.
    std::fs::remove_file(part_of(&dest)).unwrap();
    std::fs::write(&dest, &content).unwrap();

    bob.restart();
    let failed = wait_for("the download to be failed", p2p_e2e::READY_TIMEOUT, || {
        let d = bob.download("g1", "data.bin").ok_or("not shown")?;
        if d["state"] == "failed" {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    });
    assert!(
        failed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is not the downloaded file")),
        "{failed}"
    );
    assert_file_content(&dest, &content);
    cluster.assert_no_panics();
}

#[test]
fn a_corrupt_database_is_moved_aside_and_the_downloaded_files_are_kept() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let mut bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let content = write_test_file(&alice.dir().join("data.bin"), 41, 3 * PIECE_SIZE as usize);
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("data.bin").to_string_lossy(),
    ]);
    bob.wait_seeders("g1", "data.bin", 1);
    let dest = bob.dir().join("data.bin");
    bob.ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    bob.wait_download("g1", "data.bin");
    bob.sigterm();

    // 512 bytes of garbage over the header.
    let db = bob.state_dir().join("p2pd.redb");
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.write_all_at(&[0xA5; 512], 0).unwrap();
    drop(file);
    let damaged = std::fs::read(&db).unwrap();

    bob.restart();
    assert!(
        bob.status()["user"].is_null(),
        "a fresh database has no session"
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(bob.state_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("p2pd.redb.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), damaged, "kept as it was");
    assert_file_content(&dest, &content);
    // The fresh database works: bob logs in again and shares the file he has.
    bob.login("bob");
    bob.ok(&["upload_file", "g1", &dest.to_string_lossy()]);
    alice.wait_seeders("g1", "data.bin", 2);
    cluster.assert_no_panics();
}
