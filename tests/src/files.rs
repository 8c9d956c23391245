//! The data plane: test files, groups with members, the file commands of a [`Daemon`], and
//! waiting for downloads.

use crate::daemon::Daemon;
use crate::process::{READY_TIMEOUT, wait_for};
use crate::wire::pseudo_random_bytes;
use serde_json::Value;
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Size of a piece, as the design fixes it.
pub const PIECE_SIZE: u64 = 512 * 1024;

/// How long a download of a few MiB may take before the test calls it stuck. Generous: it only
/// bounds a hang, it is not a performance assertion.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Number of pieces of a file of `size` bytes.
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_SIZE)
}

/// Writes `len` deterministic pseudo-random bytes (from `seed`) to `path`, creating its parent
/// directories, and returns them.
pub fn write_test_file(path: &Path, seed: u64, len: usize) -> Vec<u8> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    let bytes = pseudo_random_bytes(seed, len);
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    bytes
}

/// SHA-1 of `bytes`, hex.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// The file at `path` holds exactly `expected`; on a mismatch, says where they first differ
/// rather than printing megabytes.
#[track_caller]
pub fn assert_file_content(path: &Path, expected: &[u8]) {
    let actual =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{} differs from the uploaded file: {} bytes (expected {}), SHA-1 {} (expected {}), \
         first difference at byte {first} (piece {})",
        path.display(),
        actual.len(),
        expected.len(),
        sha1_hex(&actual),
        sha1_hex(expected),
        first as u64 / PIECE_SIZE
    );
}

/// Changes the file at `path` behind its sharer's back without changing its size or mtime:
/// the first byte of every piece is inverted, then the old mtime is put back.
pub fn corrupt_every_piece_keep_mtime(path: &Path) {
    let mtime: SystemTime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
    let mut bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let len = bytes.len() as u64;
    for piece in 0..piece_count(len) {
        let at = (piece * PIECE_SIZE) as usize;
        bytes[at] = !bytes[at];
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {} for writing: {e}", path.display()));
    use std::io::Write;
    (&file)
        .write_all(&bytes)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    file.set_modified(mtime)
        .unwrap_or_else(|e| panic!("cannot set the mtime of {}: {e}", path.display()));
    drop(file);
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(after.len(), len, "corruption kept the size");
    assert_eq!(
        after.modified().unwrap(),
        mtime,
        "corruption kept the mtime"
    );
}

/// `owner` creates `group` and accepts every one of `members` into it.
#[track_caller]
pub fn make_group(owner: &Daemon, group: &str, members: &[&Daemon]) {
    assert_eq!(
        owner.ok(&["create_group", group]),
        format!("created group {group}")
    );
    for member in members {
        member.ok(&["join_group", group]);
        owner.ok(&["accept_request", group, member.name()]);
    }
}

impl Daemon {
    /// The peer listener of the running `p2pd`, from the last `p2pd ready ... peers=ADDR` line
    /// of its stderr (restarts append to the log, so the last one is the current process's).
    #[track_caller]
    pub fn peer_addr(&self) -> SocketAddr {
        let what = format!(
            "the `p2pd ready` line of {} with its peer address",
            self.name()
        );
        wait_for(&what, READY_TIMEOUT, || {
            let log = self.stderr();
            let line = log
                .lines()
                .rfind(|l| l.contains("p2pd ready"))
                .ok_or_else(|| "no `p2pd ready` line yet".to_string())?;
            let addr = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("peers="))
                .ok_or_else(|| format!("no peers= in {line:?}"))?;
            addr.parse::<SocketAddr>()
                .map_err(|e| format!("bad peer address {addr:?} in {line:?}: {e}"))
        })
    }

    /// The files of `list_files <group> --json`.
    #[track_caller]
    pub fn files(&self, group: &str) -> Vec<Value> {
        let reply = self.json(&["list_files", group]);
        assert_eq!(reply["reply"], "files", "list_files reply: {reply}");
        assert_eq!(reply["group"], group, "list_files reply: {reply}");
        reply["files"]
            .as_array()
            .unwrap_or_else(|| panic!("list_files reply without files: {reply}"))
            .clone()
    }

    /// File `name` of `group` as `list_files --json` shows it, if it does.
    #[track_caller]
    pub fn file(&self, group: &str, name: &str) -> Option<Value> {
        self.files(group).into_iter().find(|f| f["name"] == name)
    }

    /// Polls `list_files` until file `name` of `group` has `seeders` seeders; returns it.
    #[track_caller]
    pub fn wait_seeders(&self, group: &str, name: &str, seeders: u64) -> Value {
        let what = format!(
            "{} to see {seeders} seeder(s) of {name} in {group}",
            self.name()
        );
        wait_for(&what, READY_TIMEOUT, || match self.file(group, name) {
            Some(f) if f["seeders"] == seeders => Ok(f),
            Some(f) => Err(f.to_string()),
            None => Err(format!("{name} not listed")),
        })
    }

    /// The downloads of `show_downloads --json`.
    #[track_caller]
    pub fn downloads(&self) -> Vec<Value> {
        let reply = self.json(&["show_downloads"]);
        assert_eq!(reply["reply"], "downloads", "show_downloads reply: {reply}");
        reply["downloads"]
            .as_array()
            .unwrap_or_else(|| panic!("show_downloads reply without downloads: {reply}"))
            .clone()
    }

    /// The download of `file` from `group`, as `show_downloads --json` shows it, if it does.
    #[track_caller]
    pub fn download(&self, group: &str, file: &str) -> Option<Value> {
        self.downloads()
            .into_iter()
            .find(|d| d["group"] == group && d["file"] == file)
    }

    /// Polls `show_downloads --json` until the download of `file` from `group` is complete and
    /// returns it; `each` sees every poll's entry. Panics at once if it failed.
    #[track_caller]
    pub fn wait_download_with(
        &self,
        group: &str,
        file: &str,
        mut each: impl FnMut(&Value),
    ) -> Value {
        let what = format!(
            "{}'s download of {file} from {group} to complete",
            self.name()
        );
        wait_for(&what, DOWNLOAD_TIMEOUT, || {
            let d = self
                .download(group, file)
                .ok_or_else(|| "not in show_downloads".to_string())?;
            each(&d);
            match d["state"].as_str() {
                Some("complete") => Ok(d),
                Some("failed") => panic!("{}'s download failed: {d}", self.name()),
                _ => Err(d.to_string()),
            }
        })
    }

    /// Like [`wait_download_with`](Self::wait_download_with) without a look at every poll.
    #[track_caller]
    pub fn wait_download(&self, group: &str, file: &str) -> Value {
        self.wait_download_with(group, file, |_| {})
    }
}
