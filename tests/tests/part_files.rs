//! Part files against a local attacker: a name planted at the part file's path is never
//! followed, a part file swapped during the download never gives the destination the
//! attacker's bytes, part files are private until complete, an existing destination is never
//! replaced, and names too long for a part file are refused before anything is stored.

use p2p_e2e::{Cluster, Daemon, assert_file_content, make_group, wait_for, write_test_file};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// 6 pieces, the last one short.
const SIZE: usize = 5 * 512 * 1024 + 4321;

/// alice seeds `data.bin`; bob (downloading at 512 KiB/s, about a piece a second, so that a
/// test can act during the download) is in her group.
struct Setup {
    cluster: Cluster,
    bob: Daemon,
    _alice: Daemon,
    content: Vec<u8>,
}

fn setup() -> Setup {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user_with("bob", &["--download-limit", "512K"]);
    make_group(&alice, "g1", &[&bob]);
    let content = write_test_file(&alice.dir().join("data.bin"), 11, SIZE);
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("data.bin").to_string_lossy(),
    ]);
    bob.wait_seeders("g1", "data.bin", 1);
    Setup {
        cluster,
        bob,
        _alice: alice,
        content,
    }
}

fn part_of(dest: &Path) -> PathBuf {
    let mut part = dest.as_os_str().to_os_string();
    part.push(".p2p-part");
    PathBuf::from(part)
}

/// Polls until bob's download of data.bin has at least `pieces` verified pieces and is not
/// complete yet.
#[track_caller]
fn wait_pieces(bob: &Daemon, pieces: u64) -> Value {
    wait_for(
        "bob's download to be under way",
        p2p_e2e::DOWNLOAD_TIMEOUT,
        || {
            let d = bob
                .download("g1", "data.bin")
                .ok_or_else(|| "not in show_downloads".to_string())?;
            assert!(
                matches!(d["state"].as_str(), Some("waiting" | "downloading")),
                "the download ended too soon: {d}"
            );
            if d["pieces_done"].as_u64().unwrap_or(0) >= pieces {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        },
    )
}

/// Polls until bob's download of data.bin shows `state`; returns it.
#[track_caller]
fn wait_state(bob: &Daemon, state: &str) -> Value {
    let what = format!("bob's download to be {state}");
    wait_for(&what, p2p_e2e::DOWNLOAD_TIMEOUT, || {
        let d = bob
            .download("g1", "data.bin")
            .ok_or_else(|| "not in show_downloads".to_string())?;
        if d["state"] == state {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    })
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The umask of this process (p2pd inherits it), read without changing it.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask: in /proc/self/status");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

#[test]
fn a_symlink_planted_at_the_part_file_path_is_not_followed() {
    let s = setup();
    let victim = s.bob.dir().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let dest = s.bob.dir().join("data.bin");
    std::os::unix::fs::symlink(&victim, part_of(&dest)).unwrap();

    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    s.bob.wait_download("g1", "data.bin");
    assert_file_content(&dest, &s.content);
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious",
        "the symlink's target was written"
    );
    assert!(
        std::fs::symlink_metadata(part_of(&dest)).is_err(),
        "the part file's name is gone once the download is complete"
    );
    s.cluster.assert_no_panics();
}

#[test]
fn a_part_file_is_private_until_complete_then_gets_the_usual_mode() {
    let s = setup();
    let dest = s.bob.dir().join("data.bin");
    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_pieces(&s.bob, 1);
    assert_eq!(mode_of(&part_of(&dest)), 0o600, "part file mode");
    s.bob.wait_download("g1", "data.bin");
    assert_file_content(&dest, &s.content);
    assert_eq!(mode_of(&dest), 0o666 & !umask(), "complete file mode");
    s.cluster.assert_no_panics();
}

#[test]
fn a_part_file_renamed_away_and_replaced_does_not_give_the_destination_other_bytes() {
    let s = setup();
    let dest = s.bob.dir().join("data.bin");
    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_pieces(&s.bob, 2);
    // The attacker moves the part file away and puts its own bytes under its name.
    let part = part_of(&dest);
    std::fs::rename(&part, s.bob.dir().join("moved-away")).unwrap();
    let planted = vec![0x41u8; SIZE];
    std::fs::write(&part, &planted).unwrap();

    s.bob.wait_download("g1", "data.bin");
    assert_file_content(&dest, &s.content);
    assert_eq!(
        std::fs::read(&part).unwrap(),
        planted,
        "the planted file is left as it is"
    );
    s.cluster.assert_no_panics();
}

#[test]
fn a_part_file_removed_and_replaced_fails_the_download_without_a_destination() {
    let s = setup();
    let dest = s.bob.dir().join("data.bin");
    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_pieces(&s.bob, 2);
    // The download's own file loses its every name; the attacker's takes its place.
    let part = part_of(&dest);
    std::fs::remove_file(&part).unwrap();
    let planted = vec![0x41u8; SIZE];
    std::fs::write(&part, &planted).unwrap();

    let failed = wait_state(&s.bob, "failed");
    assert!(
        failed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("removed or replaced")),
        "{failed}"
    );
    assert!(
        std::fs::symlink_metadata(&dest).is_err(),
        "no destination was made of the planted bytes"
    );
    assert_eq!(std::fs::read(&part).unwrap(), planted);
    s.cluster.assert_no_panics();
}

#[test]
fn a_part_file_replaced_while_p2pd_was_down_is_refused() {
    let mut s = setup();
    let dest = s.bob.dir().join("data.bin");
    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_pieces(&s.bob, 1);
    s.bob.kill9();
    // A hard link to a victim file in place of the part file: same name, another inode.
    let part = part_of(&dest);
    let victim = s.bob.dir().join("victim.bin");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::remove_file(&part).unwrap();
    std::fs::hard_link(&victim, &part).unwrap();

    s.bob.restart();
    let refused = wait_state(&s.bob, "failed");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("was replaced by another file")),
        "{refused}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&dest).is_err());
    s.cluster.assert_no_panics();
}

#[test]
fn a_symlink_at_the_part_file_path_at_restart_is_refused() {
    let mut s = setup();
    let dest = s.bob.dir().join("data.bin");
    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_pieces(&s.bob, 1);
    s.bob.kill9();
    let part = part_of(&dest);
    let victim = s.bob.dir().join("victim.bin");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::remove_file(&part).unwrap();
    std::os::unix::fs::symlink(&victim, &part).unwrap();

    s.bob.restart();
    let refused = wait_state(&s.bob, "failed");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is a symbolic link")),
        "{refused}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    s.cluster.assert_no_panics();
}

#[test]
fn a_destination_created_during_the_download_is_not_replaced() {
    let s = setup();
    let dest = s.bob.dir().join("data.bin");
    s.bob
        .ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    wait_pieces(&s.bob, 1);
    std::fs::write(&dest, b"the user's own file").unwrap();

    let failed = wait_state(&s.bob, "failed");
    assert!(
        failed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is not the downloaded file")),
        "{failed}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"the user's own file");
    s.cluster.assert_no_panics();
}

#[test]
fn a_destination_name_too_long_for_its_part_file_is_refused_before_anything_is_stored() {
    let s = setup();
    // 250 bytes: a valid name, but not with ".p2p-part" (9 bytes) added.
    let dest = s.bob.dir().join("n".repeat(250));
    let error = s.bob.expect_error(
        &["download_file", "g1", "data.bin", &dest.to_string_lossy()],
        "invalid_argument",
        "too long",
    );
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("255")),
        "{error}"
    );
    assert!(s.bob.downloads().is_empty(), "{:?}", s.bob.downloads());
    // The CLI says it in one line.
    let out = s
        .bob
        .ctl(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    p2p_e2e::assert_fails(&out, "too long");
    // 246 bytes fit exactly.
    let fits = s.bob.dir().join("f".repeat(246));
    s.bob
        .ok(&["download_file", "g1", "data.bin", &fits.to_string_lossy()]);
    s.bob.wait_download("g1", "data.bin");
    assert_file_content(&fits, &s.content);
    s.cluster.assert_no_panics();
}
