//! A full disk: a download that does not fit waits, says why (path and "no space left on
//! device") in `show_downloads`, keeps everything else, and completes by itself once there is
//! space. Needs root (a small tmpfs is mounted as the download directory); without root the
//! test says so and passes, unless P2P_REQUIRE_ROOT=1.

use p2p_e2e::{Cluster, PIECE_SIZE, assert_file_content, make_group, wait_for, write_test_file};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let opts = format!("size={size},mode=0755");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir));
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let opts = format!("remount,size={size}");
        run(Command::new("mount").args(["-o", &opts]).arg(&self.dir));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a p2pd still holding a file there must not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[track_caller]
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True if the test can mount; otherwise says why in one line (or fails when root is required).
fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("P2P_REQUIRE_ROOT").as_deref() != Ok("1"),
        "P2P_REQUIRE_ROOT=1 but not running as root"
    );
    println!("full_disk: skipped (mounting a tmpfs needs root)");
    false
}

#[test]
fn a_download_that_does_not_fit_waits_with_the_reason_and_completes_once_there_is_space() {
    if !root_or_skip() {
        return;
    }
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let small = write_test_file(&alice.dir().join("small.bin"), 51, 2 * PIECE_SIZE as usize);
    let big = write_test_file(&alice.dir().join("big.bin"), 52, 12 * 1024 * 1024 + 17);
    for name in ["small.bin", "big.bin"] {
        alice.ok(&[
            "upload_file",
            "g1",
            &alice.dir().join(name).to_string_lossy(),
        ]);
        bob.wait_seeders("g1", name, 1);
    }
    let disk = Tmpfs::mount(&bob.dir().join("disk"), "8m");

    // A file that fits: complete, and it stays so.
    let small_dest = disk.dir.join("small.bin");
    bob.ok(&[
        "download_file",
        "g1",
        "small.bin",
        &small_dest.to_string_lossy(),
    ]);
    bob.wait_download("g1", "small.bin");

    // One that does not: it waits, and says why.
    let big_dest = disk.dir.join("big.bin");
    bob.ok(&[
        "download_file",
        "g1",
        "big.bin",
        &big_dest.to_string_lossy(),
    ]);
    let part = format!("{}.p2p-part", big_dest.display());
    let waiting = wait_for(
        "the big download to wait for space",
        p2p_e2e::READY_TIMEOUT,
        || {
            let d = bob.download("g1", "big.bin").ok_or("not shown")?;
            assert_ne!(d["state"], "failed", "a full disk fails nothing: {d}");
            assert_ne!(d["state"], "complete", "{d}");
            let detail = d["detail"].as_str().unwrap_or_default();
            if d["state"] == "waiting"
                && detail.contains("no space left on device")
                && detail.contains(&part)
            {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        },
    );
    // Also in the human output.
    let text = bob.ok(&["show_downloads"]);
    assert!(text.contains("no space left on device"), "{text}");
    // Nothing else was lost.
    let small_now = bob.download("g1", "small.bin").unwrap();
    assert_eq!(small_now["state"], "complete", "{small_now}");
    assert_file_content(&small_dest, &small);
    alice.wait_seeders("g1", "small.bin", 2);
    assert_eq!(bob.status()["user"], "bob");

    // Space: it goes on by itself and completes, byte-identical.
    disk.resize("64m");
    let done = bob.wait_download("g1", "big.bin");
    assert_eq!(done["pieces_done"], done["pieces_total"], "{done}");
    assert!(
        done["pieces_done"].as_u64() >= waiting["pieces_done"].as_u64(),
        "{waiting} then {done}"
    );
    assert_file_content(&big_dest, &big);
    assert_file_content(&small_dest, &small);
    cluster.assert_no_panics();
}
