//! What the storage fault tests need: a small tmpfs to fill up (root only), a file system
//! filled to the last byte and freed again, and a database file with bytes overwritten.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process may mount file systems. When it may not, a test that needs it prints
/// one line and returns early, unless `P2P_REQUIRE_ROOT=1` (as in CI), where it fails.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("P2P_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{test} needs root (to mount a tmpfs), and P2P_REQUIRE_ROOT=1 requires it to run"
    );
    println!("skipping {test}: needs root to mount a tmpfs (set P2P_REQUIRE_ROOT=1 to require it)");
    false
}

/// A tmpfs of a few MiB mounted on a directory; unmounted (lazily, so a process still using it
/// does not keep it) when dropped.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. "8m") on `dir`, which is
    /// created if missing.
    pub fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("cannot create the mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills the file system to the last byte with a file of its own; returns it.
    pub fn fill(&self) -> Filler {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("cannot create the filler file");
        let block = vec![0x5a_u8; 64 * 1024];
        let mut small = false;
        loop {
            let chunk: &[u8] = if small { &block[..512] } else { &block };
            match f.write(chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                    if small {
                        break;
                    }
                    // Then the last bits, in small writes.
                    small = true;
                }
                Err(e) => panic!("cannot fill {}: {e}", self.dir.display()),
            }
        }
        let _ = f.sync_all();
        Filler { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The file that fills a [`Tmpfs`]; [`free`](Filler::free) gives the space back.
pub struct Filler {
    path: PathBuf,
}

impl Filler {
    pub fn free(self) {
        std::fs::remove_file(&self.path).expect("cannot remove the filler file");
    }
}

/// Overwrites `len` bytes of `path` at `offset` (the file must be longer).
pub fn overwrite_bytes(path: &Path, offset: u64, len: usize) {
    let size = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    assert!(
        offset + len as u64 <= size,
        "{} has {size} bytes, cannot overwrite {len} at {offset}",
        path.display()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&vec![0xa5; len]).expect("cannot overwrite");
    f.sync_all().expect("fsync");
}

/// The database of a tracker whose data dir is `data_dir`.
pub fn tracker_db(data_dir: &Path) -> PathBuf {
    data_dir.join("tracker.redb")
}

/// Files in `dir` whose name starts with `prefix`.
pub fn files_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
