//! The tracker's redb database: the log of changes and the state it produces.
//!
//! Tables (keys → JSON values unless noted):
//! - `log`: seq (u64) → [`LogRecord`] (a bounded tail, see `compact`)
//! - `request_ids`: request id → seq of the record it produced
//! - `users`: user id → [`UserRecord`]
//! - `sessions`: SHA-256 of the token (hex) → [`SessionRecord`]
//! - `groups`: group id → [`GroupRecord`]
//! - `files`: `{group}/{name}` → [`FileRecord`] (see [`file_key`])
//! - `secrets`: name → JSON string; `signing_key` is the hex of the trackers' ed25519 secret
//! - `meta`: name → u64 (`last_seq`, `last_epoch`, `epoch`, `leader`, `log_bytes`)
//! - `local`: this tracker's own rows, never replicated (the other tracker's pinned key, the
//!   "must re-sync" marker)
//!
//! Submodules: `tables` (definitions and typed access), `apply` (a record's entries applied and
//! the record appended: the one way the state changes), `batch` (many requests' records in one
//! transaction and one commit), `writer` (the thread that batches the writes of client
//! requests: group commit), `compact` (the log's bounded tail),
//! `open` (opening with an integrity check, moving a corrupt file aside), `replica` (what
//! replication needs), `snapshot` (the whole state streamed in bounded chunks), `error`.
//!
//! **Faults.** A write that fails on the storage (full disk, I/O error) leaves redb refusing
//! every later write until it is reopened. The store then counts as *faulted*: no write is
//! tried, [`Store::subscribe_faults`] says so (the cluster steps down on it), and
//! [`Store::reopen`] tries to get a writable database back.

mod apply;
mod batch;
mod compact;
mod error;
mod migrate;
mod open;
mod replica;
mod snapshot;
mod tables;
mod writer;

pub use batch::{Decide, Request, Written};
pub use compact::{LogKeep, LogTail};
pub use error::StoreError;
pub use open::Resync;
pub use replica::RECORDS_READ_BYTES;
pub use snapshot::{SNAPSHOT_CHUNK_BYTES, SnapshotInstaller, SnapshotPart};
pub use tables::{ReadTables, TableSet, Tables};
pub use writer::MAX_BATCH;

pub(crate) use apply::append;
pub(crate) use error::db_err;
pub(crate) use tables::{
    EPOCH, FILES, GROUPS, LAST_EPOCH, LAST_SEQ, LEADER, LOG, META, REQUEST_IDS, SECRETS, SESSIONS,
    USERS, meta_value, open_tables,
};

use crate::log::LogEntry;
use ed25519_dalek::SigningKey;
use p2p_proto::ErrorReply;
use p2p_proto::tracker::TrackerReply;
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tokio::sync::watch;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tracker.redb";

/// What a write decided: the changes to log and apply, and the reply for the client.
pub struct Decision {
    pub entries: Vec<LogEntry>,
    pub reply: TrackerReply,
}

/// The tracker's database.
pub struct Store {
    path: PathBuf,
    /// `None` only while [`reopen`](Self::reopen) is replacing it.
    db: RwLock<Option<Arc<Database>>>,
    /// Why writes fail, while the store is faulted.
    fault: watch::Sender<Option<String>>,
    keep: LogKeep,
    /// The last applied sequence number, for the replication sender to wait on.
    pub(crate) last_seq: watch::Sender<u64>,
    /// The queue of the writer thread (see `writer`), once started.
    writer: Mutex<Option<tokio::sync::mpsc::Sender<writer::Job>>>,
    /// Batches the writer wrote, and the requests in them.
    batches: AtomicU64,
    batched: AtomicU64,
}

impl Store {
    /// Opens (or creates) the database in `dir`, creating `dir` (0700) when missing, with the
    /// default log tail.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, LogKeep::default())
    }

    /// Opens (or creates) the database in `dir`, keeping a log tail of `keep`. A file that
    /// fails the integrity check is [`StoreError::CorruptFile`].
    pub fn open_with(dir: &Path, keep: LogKeep) -> Result<Self, StoreError> {
        let path = open::prepare_dir(dir)?;
        let db = open::open_checked(&path)?;
        let store = Self {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            fault: watch::Sender::new(None),
            keep,
            last_seq: watch::Sender::new(0),
            writer: Mutex::new(None),
            batches: AtomicU64::new(0),
            batched: AtomicU64::new(0),
        };
        store.last_seq.send_replace(store.last_seq()?);
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Watches the last applied sequence number.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    /// Watches the fault state: `Some(why)` while writes fail.
    pub fn subscribe_faults(&self) -> watch::Receiver<Option<String>> {
        self.fault.subscribe()
    }

    /// Why writes fail, while the store is faulted.
    pub fn fault(&self) -> Option<String> {
        self.fault.borrow().clone()
    }

    /// Marks the store faulted (once): no write is tried until [`reopen`](Self::reopen).
    pub fn mark_faulted(&self, why: &StoreError) {
        let why = why.to_string();
        let newly = self.fault.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(why.clone());
            true
        });
        if newly {
            tracing::error!(
                error = %why,
                path = %self.path.display(),
                "storage failure: this tracker stops writing until its database can be reopened"
            );
        }
    }

    /// Notes `e`: a storage failure marks the store faulted.
    fn note(&self, e: StoreError) -> StoreError {
        if e.is_fault() && !matches!(e, StoreError::Faulted(_)) {
            self.mark_faulted(&e);
        }
        e
    }

    fn handle(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                StoreError::Faulted(self.fault().unwrap_or_else(|| "database closed".into()))
            })
    }

    /// A read transaction (reads go on while the store is faulted).
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.handle()?.begin_read().map_err(db_err)
    }

    /// A write transaction; refused while the store is faulted, and a storage failure faults it.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        if let Some(why) = self.fault() {
            return Err(StoreError::Faulted(why));
        }
        self.handle()?
            .begin_write()
            .map_err(db_err)
            .map_err(|e| self.note(e))
    }

    /// Commits `txn`; a storage failure faults the store.
    pub(crate) fn commit(&self, txn: WriteTransaction) -> Result<(), StoreError> {
        txn.commit().map_err(db_err).map_err(|e| self.note(e))
    }

    /// Runs the write `f`; a storage failure anywhere in it faults the store.
    pub(crate) fn writing<R>(
        &self,
        f: impl FnOnce() -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        f().map_err(|e| self.note(e))
    }

    /// Tries to get a writable database back after a fault: closes the database, opens it
    /// again (with the integrity check) and commits a test write. On success the fault is
    /// cleared; on failure the store stays faulted (and maybe closed: reads fail too).
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = slot.take() {
            match Arc::try_unwrap(db) {
                // The file and its lock are released here.
                Ok(db) => drop(db),
                Err(still_used) => {
                    *slot = Some(still_used);
                    return Err(StoreError::Faulted(
                        "the database is still in use; trying again".into(),
                    ));
                }
            }
        }
        let db = open::open_checked(&self.path)?;
        open::write_check(&db)?;
        *slot = Some(Arc::new(db));
        drop(slot);
        self.fault.send_replace(None);
        self.last_seq.send_replace(self.last_seq()?);
        tracing::info!(path = %self.path.display(), "database reopened and writable again");
        Ok(())
    }

    /// Runs `f` on a consistent snapshot of the state.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&ReadTables) -> Result<R, ErrorReply>,
    ) -> Result<R, ErrorReply> {
        let txn = self.begin_read()?;
        let tables = tables::open_read_tables(&txn)?;
        f(&tables)
    }

    /// Applies one client request as one log record, in one transaction (a batch of one; see
    /// [`Store::submit`] for the writes of client requests, which share commits).
    ///
    /// If `request_id` was applied before, its recorded reply is returned and nothing changes.
    /// Otherwise `decide` looks at the current state and returns the changes to make (or an
    /// error, and nothing changes); the changes are appended to the log with the next sequence
    /// number, applied, and committed together.
    pub fn write(
        &self,
        request_id: &str,
        decide: impl FnOnce(&Tables<'_>) -> Result<Decision, ErrorReply>,
    ) -> Result<TrackerReply, ErrorReply> {
        let request = Request {
            request_id: request_id.to_string(),
            decide: Box::new(decide),
        };
        self.write_batch(vec![request]).pop().map_or_else(
            || Err(ErrorReply::internal("a write went missing")),
            |w| w.result,
        )
    }

    /// Counts a batch of `requests` written by the writer.
    fn counted_batch(&self, requests: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched.fetch_add(requests as u64, Ordering::Relaxed);
    }

    /// Batches the writer has written, and the requests in them.
    pub fn batch_counts(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.batched.load(Ordering::Relaxed),
        )
    }

    /// Makes the trackers' shared secrets (the grant-signing key, the session secret) if they
    /// are missing, logged like any other change so the standby gets them too. The first
    /// primary does this; a secret that exists is never replaced.
    pub fn ensure_secrets(&self) -> Result<(), ErrorReply> {
        let (signing, session) =
            self.read(|t| Ok((t.signing_key()?.is_some(), t.session_secret()?.is_some())))?;
        if signing && session {
            return Ok(());
        }
        let signing_secret = hex::encode(p2p_proto::grant::new_signing_key().to_bytes());
        let session_secret = hex::encode(rand::random::<[u8; 32]>());
        self.write(&p2p_proto::token::new_request_id(), |t| {
            // Checked again inside the write transaction.
            let mut entries = Vec::new();
            if t.signing_key()?.is_none() {
                entries.push(LogEntry::SigningKeyCreated {
                    secret: signing_secret,
                });
            }
            if t.session_secret()?.is_none() {
                entries.push(LogEntry::SessionSecretCreated {
                    secret: session_secret,
                });
            }
            Ok(Decision {
                entries,
                reply: TrackerReply::Done,
            })
        })?;
        Ok(())
    }

    /// The trackers' signing key (after [`ensure_secrets`](Self::ensure_secrets)).
    pub fn signing_key(&self) -> Result<Option<SigningKey>, ErrorReply> {
        self.read(|t| Ok(t.signing_key()?))
    }

    /// A row of the tracker's own (never replicated) table.
    pub fn local(&self, name: &str) -> Result<Option<String>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(tables::LOCAL).map_err(db_err)?;
        Ok(table
            .get(name)
            .map_err(db_err)?
            .map(|v| v.value().to_string()))
    }

    /// Sets a row of the tracker's own table, durably.
    pub fn set_local(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        self.writing(|| {
            txn.open_table(tables::LOCAL)
                .map_err(db_err)?
                .insert(name, value)
                .map_err(db_err)?;
            Ok(())
        })?;
        self.commit(txn)
    }

    /// Removes a row of the tracker's own table, durably.
    pub fn remove_local(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        self.writing(|| {
            txn.open_table(tables::LOCAL)
                .map_err(db_err)?
                .remove(name)
                .map_err(db_err)?;
            Ok(())
        })?;
        self.commit(txn)
    }

    /// Sequence number of the last applied record (0 for an empty log).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = self.begin_read()?;
        meta_value(&txn.open_table(META).map_err(db_err)?, LAST_SEQ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::files::FileMeta;

    fn meta(name: &str) -> FileMeta {
        FileMeta {
            name: name.into(),
            size: 1,
            sha1: "a".repeat(40),
            pieces: vec!["b".repeat(40)],
        }
    }

    /// Applies `entries` as one logged request.
    fn log(store: &Store, entries: Vec<LogEntry>) {
        let request_id = p2p_proto::token::new_request_id();
        let reply = store.write(&request_id, |_| {
            Ok(Decision {
                entries,
                reply: TrackerReply::Done,
            })
        });
        assert_eq!(reply, Ok(TrackerReply::Done));
    }

    fn names(store: &Store, group: &str) -> Vec<String> {
        let files = store.read(|t| Ok(t.group_files(group)?)).unwrap();
        files.into_iter().map(|f| f.meta.name).collect()
    }

    #[test]
    fn files_are_listed_per_group_and_removed_with_their_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // "g0" and "g.x" sort right next to "g/..." keys: the range must not catch them.
        for group in ["g", "g0", "g.x"] {
            log(
                &store,
                vec![
                    LogEntry::GroupCreated {
                        group: group.into(),
                        owner: "alice".into(),
                        id: Some(crate::records::new_group_id()),
                    },
                    LogEntry::RequestAccepted {
                        group: group.into(),
                        user: "bob".into(),
                    },
                ],
            );
        }
        for (group, name) in [("g", "b"), ("g", "a"), ("g0", "c"), ("g.x", "d")] {
            log(
                &store,
                vec![LogEntry::FileAdded {
                    group: group.into(),
                    meta: meta(name),
                    user: "alice".into(),
                }],
            );
        }
        assert_eq!(names(&store, "g"), ["a", "b"]);
        let record = store.read(|t| Ok(t.file("g", "a")?)).unwrap().unwrap();
        assert_eq!(record.added_by, "alice");
        assert_eq!(record.meta, meta("a"));

        // The owner leaving keeps the group and its files.
        let left = |user: &str| LogEntry::MemberLeft {
            group: "g".into(),
            user: user.into(),
        };
        log(&store, vec![left("alice")]);
        assert_eq!(names(&store, "g"), ["a", "b"]);

        // The last member leaving removes the group's files, and only those.
        log(&store, vec![left("bob")]);
        assert!(store.read(|t| Ok(t.group("g")?)).unwrap().is_none());
        assert!(names(&store, "g").is_empty());
        assert!(store.read(|t| Ok(t.file("g", "a")?)).unwrap().is_none());
        assert_eq!(names(&store, "g0"), ["c"]);
        assert_eq!(names(&store, "g.x"), ["d"]);

        // A group created again under that name starts empty, also after a restart.
        log(
            &store,
            vec![LogEntry::GroupCreated {
                group: "g".into(),
                owner: "carol".into(),
                id: Some(crate::records::new_group_id()),
            }],
        );
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(names(&store, "g").is_empty());
        assert_eq!(names(&store, "g0"), ["c"]);
    }

    #[test]
    fn secrets_are_created_once_and_survive_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_seq().unwrap(), 0);
        assert!(store.signing_key().unwrap().is_none());
        store.ensure_secrets().unwrap();
        let key = store.signing_key().unwrap().unwrap();
        let secret = store.read(|t| Ok(t.session_secret()?)).unwrap().unwrap();
        assert_eq!(
            store.last_seq().unwrap(),
            1,
            "both secrets are one log record"
        );
        store.ensure_secrets().unwrap();
        assert_eq!(store.last_seq().unwrap(), 1, "and never made again");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.signing_key().unwrap(), Some(key));
        assert_eq!(
            store.read(|t| Ok(t.session_secret()?)).unwrap(),
            Some(secret)
        );
        assert_eq!(store.last_seq().unwrap(), 1);
    }
}
