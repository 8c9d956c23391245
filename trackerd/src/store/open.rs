//! Opening the database: redb's integrity check on every open (a file damaged outside redb is
//! reported, not trusted), a panic inside redb caught and reported the same way, and a corrupt
//! file replaced by an empty database that must re-sync from the other tracker.

use super::error::{StoreError, db_err};
use super::migrate;
use super::tables::{self, LOG, META, REQUEST_IDS, open_tables};
use super::{DB_FILE, Store, compact};
use redb::Database;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Row of the local table: this tracker must catch up from the other one before it may lead.
const RESYNC: &str = "resync";
/// Row of the local table written by the test write after a reopen.
const WRITE_CHECK: &str = "write_check";

/// Why this tracker must catch up from the other tracker before it may lead again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// Its database was corrupt and replaced by an empty one: only the other tracker's state
    /// (a snapshot, or its whole log) may end it.
    Corrupt,
    /// It could not write for a while (full disk, I/O error), so the other tracker may have
    /// taken over: catching up ends it, and so does finding that the other tracker has not led
    /// since (it is not primary, does not outrank us and holds nothing we lack).
    Fault,
}

impl Resync {
    fn as_str(self) -> &'static str {
        match self {
            Self::Corrupt => "corrupt",
            Self::Fault => "fault",
        }
    }

    fn parse(s: &str) -> Self {
        // Anything unknown is taken as the strict kind.
        if s == "fault" {
            Self::Fault
        } else {
            Self::Corrupt
        }
    }
}

/// Creates `dir` (0700) when missing; returns the database path in it.
pub(super) fn prepare_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(dir.join(DB_FILE))
}

/// Opens (or creates) the database at `path` with the integrity check, makes it private,
/// creates every table and migrates it. Corruption, whether redb reports it or panics on it,
/// is [`StoreError::CorruptFile`].
pub(super) fn open_checked(path: &Path) -> Result<Database, StoreError> {
    let opened = quiet_catch_unwind(|| open_and_prepare(path));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(classify(path, e)),
        Err(panic) => Err(StoreError::CorruptFile {
            path: path.to_path_buf(),
            reason: one_line(&format!("opening it panicked: {panic}")),
        }),
    }
}

/// What a failure to open means: a damaged file, or something else (permissions, I/O).
fn classify(path: &Path, e: StoreError) -> StoreError {
    let corrupt = match &e {
        StoreError::Open {
            source: redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)),
            ..
        } => Some(why.clone()),
        // A file that is not (or no longer) a redb database at all, e.g. a damaged header.
        StoreError::Open {
            source: redb::DatabaseError::Storage(redb::StorageError::Io(io)),
            ..
        } if io.kind() == std::io::ErrorKind::InvalidData => Some(io.to_string()),
        StoreError::Db(redb::Error::Corrupted(why)) => Some(why.clone()),
        StoreError::Corrupt { table, reason } => Some(format!("table {table}: {reason}")),
        _ => None,
    };
    match corrupt {
        Some(reason) => StoreError::CorruptFile {
            path: path.to_path_buf(),
            reason: one_line(&reason),
        },
        None => e,
    }
}

/// `s` on one line, for the one-line error a corrupt file gets.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn open_and_prepare(path: &Path) -> Result<Database, StoreError> {
    let db = Database::builder()
        .set_check_integrity_on_open(true)
        .create(path)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    // Password hashes, session hashes and the signing key live here: owner only, whatever
    // the umask or the directory's mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StoreError::Chmod {
            path: path.to_path_buf(),
            source,
        }
    })?;
    // Create every table up front so read transactions never meet a missing one, and bring
    // a database of an earlier release up to date.
    let txn = db.begin_write().map_err(db_err)?;
    let migrated = {
        open_tables(&txn)?;
        txn.open_table(LOG).map_err(db_err)?;
        txn.open_table(REQUEST_IDS).map_err(db_err)?;
        txn.open_table(tables::LOCAL).map_err(db_err)?;
        compact::init_log_bytes(&txn, &mut txn.open_table(META).map_err(db_err)?)?;
        migrate::migrate(&txn, p2p_proto::grant::unix_now())?
    };
    txn.commit().map_err(db_err)?;
    if let Some(m) = migrated {
        tracing::info!(
            from = m.from,
            to = migrate::CURRENT_SCHEMA,
            groups = m.groups,
            sessions = m.sessions,
            path = %path.display(),
            "database migrated"
        );
    }
    Ok(db)
}

/// A small durable write: proves that the reopened database can be written again.
pub(super) fn write_check(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    txn.open_table(tables::LOCAL)
        .map_err(db_err)?
        .insert(
            WRITE_CHECK,
            p2p_proto::grant::unix_now().to_string().as_str(),
        )
        .map_err(db_err)?;
    txn.commit().map_err(db_err)
}

/// Runs `f`, turning a panic into its message, without the panic hook's report on stderr for
/// this thread (a corrupt file gets one clear error line instead).
fn quiet_catch_unwind<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let me = std::thread::current().id();
    let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(std::panic::take_hook());
    let others = Arc::clone(&previous);
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            others(info);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(Box::new(move |info| previous(info)));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

/// Keeps the corrupt file at `path` as `<path>.corrupt-<unix time>` and puts an empty
/// database with the re-sync marker in its place. The marker is in the new file before it
/// takes the name, so no crash leaves an empty database without it.
pub(super) fn replace_corrupt(path: &Path) -> Result<PathBuf, StoreError> {
    let aside = PathBuf::from(format!(
        "{}.corrupt-{}",
        path.display(),
        p2p_proto::grant::unix_now()
    ));
    let fresh = PathBuf::from(format!("{}.new", path.display()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::MoveAside { path, source }
    };
    match std::fs::remove_file(&fresh) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&fresh)(e)),
    }
    {
        let db = open_checked(&fresh)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(tables::LOCAL)
            .map_err(db_err)?
            .insert(RESYNC, Resync::Corrupt.as_str())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)?;
    }
    // A second name for the corrupt file, then the new file takes the first one in one step.
    std::fs::hard_link(path, &aside).map_err(io(path))?;
    std::fs::rename(&fresh, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(aside)
}

impl Store {
    /// Opens the database in `dir`; a corrupt one is moved aside and replaced by an empty
    /// database marked "must re-sync" (for a tracker with a partner to re-sync from). Returns
    /// where the corrupt file went, if it was.
    pub fn open_replacing_corrupt(
        dir: &Path,
        keep: compact::LogKeep,
    ) -> Result<(Self, Option<PathBuf>), StoreError> {
        match Self::open_with(dir, keep) {
            Ok(store) => Ok((store, None)),
            Err(StoreError::CorruptFile { path, reason }) => {
                let aside = replace_corrupt(&path)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    %reason,
                    "corrupt database moved aside; starting empty, to re-sync from the other \
                     tracker before this one may lead"
                );
                Ok((Self::open_with(dir, keep)?, Some(aside)))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether (and why) this tracker must catch up before it may lead.
    pub fn resync(&self) -> Result<Option<Resync>, StoreError> {
        Ok(self.local(RESYNC)?.map(|s| Resync::parse(&s)))
    }

    /// Records, durably, that this tracker must catch up before it may lead. A stricter
    /// reason already recorded is kept.
    pub fn set_resync(&self, why: Resync) -> Result<(), StoreError> {
        if self.resync()? == Some(Resync::Corrupt) {
            return Ok(());
        }
        self.set_local(RESYNC, why.as_str())
    }

    /// This tracker caught up: it may lead again.
    pub fn clear_resync(&self) -> Result<(), StoreError> {
        self.remove_local(RESYNC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogKeep;

    /// A database with some state, closed, then 512 bytes of its live pages overwritten.
    fn corrupt_db(dir: &Path) -> PathBuf {
        let store = Store::open(dir).unwrap();
        store.ensure_secrets().unwrap();
        store.set_local("peer_key", "kept").unwrap();
        let path = store.path().to_path_buf();
        drop(store);
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&[0xA5; 512]).unwrap();
        path
    }

    #[test]
    fn a_corrupt_database_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = corrupt_db(dir.path());
        match Store::open(dir.path()) {
            Err(StoreError::CorruptFile { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(!reason.contains('\n'));
            }
            Err(e) => panic!("expected CorruptFile, got {e}"),
            Ok(_) => panic!("a corrupt database opened"),
        }
        // Nothing was changed or moved.
        assert!(path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_database_is_kept_aside_and_replaced_by_one_that_must_resync() {
        let dir = tempfile::tempdir().unwrap();
        let path = corrupt_db(dir.path());
        let corrupt_bytes = std::fs::read(&path).unwrap();
        let (store, aside) = Store::open_replacing_corrupt(dir.path(), LogKeep::default()).unwrap();
        let aside = aside.expect("moved aside");
        assert!(
            aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tracker.redb.corrupt-")
        );
        assert_eq!(std::fs::read(&aside).unwrap(), corrupt_bytes);
        assert_eq!(store.resync().unwrap(), Some(Resync::Corrupt));
        assert_eq!(store.last_seq().unwrap(), 0, "it starts empty");
        // A fault marker does not weaken it; catching up clears it, durably.
        store.set_resync(Resync::Fault).unwrap();
        assert_eq!(store.resync().unwrap(), Some(Resync::Corrupt));
        store.clear_resync().unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.resync().unwrap(), None);
    }

    #[test]
    fn a_healthy_database_reopens_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_secrets().unwrap();
        let key = store.signing_key().unwrap();
        store.mark_faulted(&StoreError::Faulted("test".into()));
        assert!(store.fault().is_some());
        assert!(store.set_local("x", "y").is_err(), "no write while faulted");
        store.reopen().unwrap();
        assert!(store.fault().is_none());
        store.set_local("x", "y").unwrap();
        assert_eq!(store.signing_key().unwrap(), key);
    }
}
