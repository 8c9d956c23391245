//! The 0.1.0 upgrade fixtures (`tests/fixtures/v0.1.0/`, see its README.md): what they hold,
//! and putting them in place for the current programs.
//!
//! The databases record absolute paths under the fixed root [`ROOT`], so the user files are
//! regenerated there. [`FixtureRoot::claim`] takes an exclusive lock beside that root (held
//! until the value is dropped) so that two runs of a test binary cannot use it at once, and
//! wipes the root when taken and when dropped. The databases are copied, never used in place.

use crate::cluster::Cluster;
use crate::daemon::Daemon;
use crate::files::sha1_hex;
use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The root every path recorded in the fixtures is under.
pub const ROOT: &str = "/tmp/p2p-upgrade-fixture";

/// The lock file of [`ROOT`]: beside it, not inside, so wiping the root never removes a lock
/// file that another run waits on (it would then lock a file nobody else sees).
const LOCK: &str = "/tmp/p2p-upgrade-fixture.lock";

/// The fixtures' directory in the source tree.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v0.1.0")
}

/// `manifest.json` of the fixtures.
pub fn manifest() -> Value {
    let path = fixture_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `v` as a string; panics naming `what` if it is none.
#[track_caller]
pub fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("manifest: {what} is not a string: {v}"))
}

/// `v` as a number; panics naming `what` if it is none.
#[track_caller]
pub fn u64_of(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("manifest: {what} is not a number: {v}"))
}

/// The exclusive use of [`ROOT`], for as long as the value lives.
pub struct FixtureRoot {
    _lock: Flock<File>,
}

impl FixtureRoot {
    /// Waits for the lock, then wipes [`ROOT`] and makes it again, empty.
    pub fn claim() -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .unwrap_or_else(|e| panic!("cannot open {LOCK}: {e}"));
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("cannot lock {LOCK}: {e}"));
        wipe().unwrap_or_else(|e| panic!("cannot remove {ROOT}: {e}"));
        std::fs::create_dir_all(ROOT).unwrap_or_else(|e| panic!("cannot create {ROOT}: {e}"));
        Self { _lock: lock }
    }

    pub fn path(&self) -> &Path {
        Path::new(ROOT)
    }
}

impl Drop for FixtureRoot {
    fn drop(&mut self) {
        // Never a panic in a drop (a failing test is unwinding through it).
        if let Err(e) = wipe() {
            eprintln!("cannot remove {ROOT}: {e}");
        }
    }
}

fn wipe() -> std::io::Result<()> {
    match std::fs::remove_dir_all(ROOT) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The bytes of a shared file of the scenario, from its formula (README.md): `holiday.bin`,
/// byte i = (i × 131 + 7) mod 251; `notes.txt`, a line 1000 times.
pub fn content_of(name: &str, size: u64) -> Vec<u8> {
    match name {
        "holiday.bin" => (0..size).map(|i| ((i * 131 + 7) % 251) as u8).collect(),
        "notes.txt" => b"notes of carol\n".repeat(1000),
        other => panic!("the scenario has no file {other}"),
    }
}

/// The manifest's file `name`.
#[track_caller]
pub fn file_entry<'a>(manifest: &'a Value, name: &str) -> &'a Value {
    manifest["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("manifest lists no file {name}"))
}

/// Regenerates every shared file of the manifest at its recorded path, checks it against the
/// recorded size and SHA-1, and gives it the recorded mtime; returns (name, bytes) of each.
pub fn write_user_files(manifest: &Value) -> Vec<(String, Vec<u8>)> {
    let files = manifest["files"].as_array().expect("manifest: files");
    files
        .iter()
        .map(|f| {
            let name = str_of(&f["name"], "file name");
            let size = u64_of(&f["size"], "file size");
            let bytes = content_of(name, size);
            assert_eq!(bytes.len() as u64, size, "regenerated {name}: size");
            assert_eq!(
                sha1_hex(&bytes),
                str_of(&f["sha1"], "file sha1"),
                "regenerated {name}: SHA-1"
            );
            let path = Path::new(str_of(&f["path"], "file path"));
            make_dirs(path.parent().expect("a file path has a parent"));
            std::fs::write(path, &bytes)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            let mtime = u64_of(&f["mtime_ns"], "file mtime_ns");
            let file = File::options()
                .write(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime))
                .unwrap_or_else(|e| panic!("cannot set the mtime of {}: {e}", path.display()));
            (name.to_string(), bytes)
        })
        .collect()
}

/// Copies every interrupted download's part file to its recorded `part_path` (its
/// `Downloads/` directory made as the user had it).
pub fn install_part_files(manifest: &Value) {
    let Some(users) = manifest["downloads"].as_object() else {
        panic!("manifest: downloads");
    };
    for download in users
        .values()
        .flat_map(|d| d.as_array().cloned().unwrap_or_default())
    {
        let part = Path::new(str_of(&download["part_path"], "part_path"));
        make_dirs(part.parent().expect("a part path has a parent"));
        let from = fixture_dir().join(str_of(&download["fixture"], "part fixture"));
        copy_private(&from, part);
        let len = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len,
            u64_of(&download["part_size"], "part_size"),
            "{}",
            part.display()
        );
    }
}

/// Copies tracker `no`'s fixture database into the cluster's data dir for it, and the
/// fixtures' cluster key beside the cluster's tracker_info.txt (where trackerd looks for it).
pub fn install_tracker(cluster: &Cluster, manifest: &Value, no: usize) {
    let entry = &manifest["trackers"][no.to_string()];
    let from = fixture_dir().join(str_of(&entry["fixture"], "tracker fixture"));
    let dir = cluster.tracker_data_dir(no);
    make_private_dir(&dir);
    copy_private(&from, &dir.join("tracker.redb"));
    let key = fixture_dir().join(str_of(&manifest["cluster_key"]["fixture"], "cluster key"));
    let info_dir = cluster
        .tracker_info()
        .parent()
        .expect("tracker_info.txt has a dir");
    copy_private(&key, &info_dir.join("cluster.key"));
}

/// Copies `user`'s fixture `p2pd.redb` into the state dir of `daemon` (not started).
pub fn install_daemon(daemon: &Daemon, manifest: &Value, user: &str) {
    let entry = &manifest["daemons"][user];
    let from = fixture_dir().join(str_of(&entry["fixture"], "daemon fixture"));
    let dir = daemon.state_dir();
    make_private_dir(&dir);
    copy_private(&from, &dir.join("p2pd.redb"));
}

fn make_dirs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
}

fn make_private_dir(dir: &Path) {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
}

/// Copies `from` to a new file `to` (mode 0600): the fixture itself is never opened for writing.
fn copy_private(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", to.display()));
}
