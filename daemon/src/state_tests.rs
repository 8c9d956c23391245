//! Opening a damaged p2pd.redb: moved aside, never a panic.

use super::*;

fn sample_db(path: &Path) {
    let db = StateDb::open(path).unwrap();
    db.set_session(Some(&Session {
        user: "bob".into(),
        token: "t".repeat(64),
    }))
    .unwrap();
    for i in 0..200 {
        db.set_meta_value(&format!("k{i}"), &"v".repeat(300))
            .unwrap();
    }
}

fn asides(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect()
}

/// Overwrites `len` bytes at `at` with a pattern and opens the database again.
fn open_damaged(at: u64, len: usize) -> (tempfile::TempDir, Result<StateDb, StateError>) {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p2pd.redb");
    sample_db(&path);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&vec![0xA5; len], at).unwrap();
    drop(file);
    let opened = StateDb::open(&path);
    (dir, opened)
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_one_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p2pd.redb");
    std::fs::write(&path, vec![0x5Au8; 64 * 1024]).unwrap();
    let db = StateDb::open(&path).unwrap();
    assert_eq!(db.session().unwrap(), None);
    let aside = asides(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), vec![0x5Au8; 64 * 1024]);
}

#[test]
fn damage_anywhere_in_the_file_never_panics_and_leaves_a_usable_database() {
    let len = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p2pd.redb");
        sample_db(&path);
        std::fs::metadata(&path).unwrap().len()
    };
    let mut moved = 0;
    for at in (0..len).step_by(4096).chain([1, 100, 700]) {
        let (dir, opened) = open_damaged(at, 512);
        let db = opened.unwrap_or_else(|e| panic!("512 bytes at {at}: {e}"));
        // Whatever was found, the database works.
        db.set_meta_value("after", "x").unwrap();
        assert_eq!(db.meta_value("after").unwrap().as_deref(), Some("x"));
        let aside = asides(dir.path());
        if aside.is_empty() {
            // Not detected as damage: the data is still there (an unused page, say).
            continue;
        }
        moved += 1;
        assert_eq!(db.session().unwrap(), None, "a fresh database after {at}");
    }
    assert!(
        moved > 0,
        "no damage was ever detected in a {len}-byte file"
    );
}
