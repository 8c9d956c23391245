//! The daemon's redb database: the login session, the shares and the downloads.
//!
//! Tables:
//! - `session`: `"current"` → JSON [`Session`]
//! - `shares`: `"{user}/{group}/{name}"` → JSON [`ShareRecord`]
//! - `downloads`: `"{user}/{group}/{name}"` → JSON [`DownloadRecord`]
//! - `bitmaps`: same key → the download's verified-pieces bitfield (wire format)
//! - `meta`: name → JSON (`schema`; `tracker_key`, the trackers' grant-verification key)
//! - `tracker_pins`: tracker address → the key fingerprint pinned for it (trust on first use)
//! - `part_files`: download key → JSON [`PartFileId`], the part file created for it
//!
//! Schema 1 (release 0.1.0, no `schema` row) is migrated in place at open: the grant key it
//! learned over plaintext is dropped (it is fetched again over TLS); everything else is kept.

use p2p_proto::files::FileMeta;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SESSION: TableDefinition<&str, &[u8]> = TableDefinition::new("session");
const CURRENT: &str = "current";
const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
const DOWNLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("downloads");
const BITMAPS: TableDefinition<&str, &[u8]> = TableDefinition::new("bitmaps");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const TRACKER_PINS: TableDefinition<&str, &str> = TableDefinition::new("tracker_pins");
const PART_FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("part_files");
/// The schema this release writes.
const CURRENT_SCHEMA: u64 = 2;
/// `meta` row of the trackers' grant-verification key.
pub const TRACKER_KEY: &str = "tracker_key";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot make {path} private (chmod 600): {source}")]
    Chmod {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("database {path}: corrupt {what}: {reason}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The file is damaged beyond what redb repairs; [`StateDb::open`] moves it aside.
    #[error("database {path} is corrupt: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error(
        "database {path} is corrupt ({reason}) and cannot be moved aside: {source}; move or \
         remove it by hand, then start p2pd again"
    )]
    MoveAside {
        path: PathBuf,
        reason: String,
        source: std::io::Error,
    },
}

impl From<StateError> for p2p_proto::ErrorReply {
    fn from(e: StateError) -> Self {
        tracing::error!(error = %e, "state failure");
        p2p_proto::ErrorReply::internal(e.to_string())
    }
}

/// The user logged in on this daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub token: String,
}

/// A file this daemon offers to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub user: String,
    pub group: String,
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Modification time (ns since the epoch) when the file was hashed; a different one means
    /// the file changed and is withdrawn.
    pub mtime_ns: i128,
    pub sha1: String,
    pub pieces: usize,
    /// The internal id of the group it is shared in, once the tracker said it (absent in
    /// 0.1.0 records; learned at the next announcement).
    #[serde(default)]
    pub group_id: Option<String>,
}

/// Where a download stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredState {
    Active,
    Complete,
    Failed,
}

/// A download, as stored. Its verified pieces are in the `bitmaps` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRecord {
    pub user: String,
    pub group: String,
    pub meta: FileMeta,
    pub destination: PathBuf,
    /// Where pieces are written until the whole file is verified.
    pub part_path: PathBuf,
    pub state: StoredState,
    pub error: Option<String>,
    /// The internal id of the group, once the tracker said it (absent in 0.1.0 records).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Peers banned from this download, with the reason (kept after it ends).
    #[serde(default)]
    pub banned: Vec<p2p_proto::control::BannedPeer>,
    /// The peers it got pieces from, and how much (kept after it ends).
    #[serde(default)]
    pub sources: Vec<p2p_proto::control::SourceInfo>,
}

/// A download's verified pieces, with the size and mtime its part file had when they were
/// committed: a restart trusts the bits only if the part file still has both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBitmap {
    /// The wire-format bitfield, hex.
    pub bits: String,
    pub part_size: u64,
    pub part_mtime_ns: i128,
}

impl StoredBitmap {
    pub fn new(bits: &p2p_proto::bitfield::Bitfield, stat: (u64, i128)) -> Self {
        Self {
            bits: hex::encode(bits.as_bytes()),
            part_size: stat.0,
            part_mtime_ns: stat.1,
        }
    }

    /// The bitfield, if it decodes for `pieces` pieces.
    pub fn bitfield(&self, pieces: usize) -> Option<p2p_proto::bitfield::Bitfield> {
        let raw = hex::decode(&self.bits).ok()?;
        p2p_proto::bitfield::Bitfield::from_bytes(&raw, pieces)
    }
}

/// Device, inode and (where the file system keeps one) birth time of a download's part file,
/// recorded when it is created: a restart writes only into that very file, never into
/// whatever else has its name by then. The birth time tells a new file that reuses a freed
/// inode number from the one recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFileId {
    pub dev: u64,
    pub ino: u64,
    #[serde(default)]
    pub born_ns: Option<i128>,
}

impl PartFileId {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let born_ns = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            born_ns,
        }
    }
}

/// The key of a share or download.
pub fn file_key(user: &str, group: &str, name: &str) -> String {
    format!("{user}/{group}/{name}")
}

pub struct StateDb {
    db: Database,
    path: PathBuf,
}

/// The database as the async code holds it: shared, with every call run on the blocking pool
/// so redb's disk I/O never stalls an async thread.
#[derive(Clone)]
pub struct State {
    db: Arc<StateDb>,
}

impl State {
    pub fn new(db: StateDb) -> Self {
        Self { db: Arc::new(db) }
    }

    /// Runs `op` on the blocking pool.
    pub async fn run<R, E>(
        &self,
        op: impl FnOnce(&StateDb) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<tokio::task::JoinError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || op(&db)).await?
    }

    /// The database itself, for code that already runs on the blocking pool.
    pub fn blocking(&self) -> &StateDb {
        &self.db
    }
}

impl StateDb {
    /// Opens (or creates) the database at `path`, creating its directory (0700) if needed.
    ///
    /// A database that is corrupt (redb reports it, its integrity check fails, or redb panics
    /// on it) is renamed to `<path>.corrupt-<unix time>` and an empty one is started, with one
    /// line on stderr and in the log saying so: the user logs in and shares again; downloaded
    /// files are not touched. Any other failure (permissions, a newer schema, a lock) is an
    /// error, the file left as it is.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StateError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        match Self::open_checked(path) {
            Err(StateError::Unusable { reason, .. }) => {
                let aside = move_aside(path, &reason)?;
                let line = format!(
                    "database {} was corrupt ({reason}); moved it to {} and started with an \
                     empty one: log in and share your files again (downloaded files are untouched)",
                    path.display(),
                    aside.display()
                );
                eprintln!("p2pd: {line}");
                tracing::warn!("{line}");
                Self::open_checked(path)
            }
            other => other,
        }
    }

    /// Opens the database at `path` and checks it whole; redb panics are caught and reported as
    /// [`StateError::Unusable`].
    fn open_checked(path: &Path) -> Result<Self, StateError> {
        match catch_panic(|| Self::open_unchecked(path)) {
            Ok(opened) => opened,
            Err(panic) => Err(StateError::Unusable {
                path: path.to_path_buf(),
                reason: format!("redb failed on it: {panic}"),
            }),
        }
    }

    fn open_unchecked(path: &Path) -> Result<Self, StateError> {
        let unusable = |reason: String| StateError::Unusable {
            path: path.to_path_buf(),
            reason,
        };
        let mut db = match Database::create(path) {
            Ok(db) => db,
            Err(e) if is_corruption(&e) => return Err(unusable(e.to_string())),
            Err(source) => {
                return Err(StateError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // A page whose checksum fails makes redb panic or error later, at some read; checking
        // every page now (a small file: milliseconds) finds it at start, where it is handled.
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(path = %path.display(), "database repaired"),
            Err(e) if is_corruption(&e) => return Err(unusable(e.to_string())),
            Err(source) => {
                return Err(StateError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        // The session token lives here: owner only, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StateError::Chmod {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let state = Self {
            db,
            path: path.to_path_buf(),
        };
        let txn = state.db.begin_write().map_err(|e| state.err(e))?;
        for table in [SESSION, SHARES, DOWNLOADS, BITMAPS, META, PART_FILES] {
            txn.open_table(table).map_err(|e| match e {
                // Tables of the wrong shape: not a database this program wrote.
                redb::TableError::TableTypeMismatch { .. }
                | redb::TableError::TableIsMultimap(_)
                | redb::TableError::Storage(redb::StorageError::Corrupted(_)) => {
                    unusable(e.to_string())
                }
                other => state.err(other),
            })?;
        }
        txn.open_table(TRACKER_PINS).map_err(|e| match e {
            redb::TableError::TableTypeMismatch { .. } => unusable(e.to_string()),
            other => state.err(other),
        })?;
        state.migrate(&txn)?;
        txn.commit().map_err(|e| state.err(e))?;
        Ok(state)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    pub fn session(&self) -> Result<Option<Session>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(SESSION).map_err(|e| self.err(e))?;
        let Some(raw) = table.get(CURRENT).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(raw.value())
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                what: "session",
                reason: e.to_string(),
            })
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(table).map_err(|e| self.err(e))?;
        let Some(raw) = table.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(raw.value())
            .map(Some)
            .map_err(|e| self.corrupt(e))
    }

    fn all<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (_, raw) = item.map_err(|e| self.err(e))?;
            out.push(serde_json::from_slice(raw.value()).map_err(|e| self.corrupt(e))?);
        }
        Ok(out)
    }

    fn put(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(table).map_err(|e| self.err(e))?;
            match value {
                Some(v) => {
                    t.insert(key, v).map_err(|e| self.err(e))?;
                }
                None => {
                    t.remove(key).map_err(|e| self.err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn corrupt(&self, e: serde_json::Error) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            what: "record",
            reason: e.to_string(),
        }
    }

    pub fn shares(&self) -> Result<Vec<ShareRecord>, StateError> {
        self.all(SHARES)
    }

    pub fn share(&self, key: &str) -> Result<Option<ShareRecord>, StateError> {
        self.get(SHARES, key)
    }

    pub fn put_share(&self, share: &ShareRecord) -> Result<(), StateError> {
        let key = file_key(&share.user, &share.group, &share.name);
        let raw = serde_json::to_vec(share).unwrap_or_default();
        self.put(SHARES, &key, Some(&raw))
    }

    pub fn remove_share(&self, key: &str) -> Result<(), StateError> {
        self.put(SHARES, key, None)
    }

    pub fn downloads(&self) -> Result<Vec<DownloadRecord>, StateError> {
        self.all(DOWNLOADS)
    }

    pub fn put_download(&self, record: &DownloadRecord) -> Result<(), StateError> {
        let key = file_key(&record.user, &record.group, &record.meta.name);
        let raw = serde_json::to_vec(record).unwrap_or_default();
        self.put(DOWNLOADS, &key, Some(&raw))
    }

    /// The stored bitfield of a download (`None` when none was stored yet).
    pub fn bitmap(&self, key: &str) -> Result<Option<StoredBitmap>, StateError> {
        self.get(BITMAPS, key)
    }

    /// Commits a download's verified pieces. Call only after the pieces' data is on disk.
    pub fn put_bitmap(&self, key: &str, bitmap: &StoredBitmap) -> Result<(), StateError> {
        let raw = serde_json::to_vec(bitmap).unwrap_or_default();
        self.put(BITMAPS, key, Some(&raw))
    }

    /// The part file recorded for download `key`, if one was.
    pub fn part_file(&self, key: &str) -> Result<Option<PartFileId>, StateError> {
        self.get(PART_FILES, key)
    }

    /// Records the part file created for download `key`, durably, before anything is written
    /// into it.
    pub fn put_part_file(&self, key: &str, id: PartFileId) -> Result<(), StateError> {
        let raw = serde_json::to_vec(&id).unwrap_or_default();
        self.put(PART_FILES, key, Some(&raw))
    }

    /// Brings a database of an earlier release up to [`CURRENT_SCHEMA`], in `txn`.
    fn migrate(&self, txn: &redb::WriteTransaction) -> Result<(), StateError> {
        let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let schema: u64 = match meta.get("schema").map_err(|e| self.err(e))? {
            Some(raw) => serde_json::from_slice(raw.value()).map_err(|e| self.corrupt(e))?,
            None => 1,
        };
        if schema > CURRENT_SCHEMA {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                what: "schema",
                reason: format!(
                    "schema {schema} is newer than this p2pd supports ({CURRENT_SCHEMA}); run \
                     the release that wrote it"
                ),
            });
        }
        if schema < 2 {
            // Learned over a plaintext link: not to be trusted; fetched again over TLS.
            meta.remove(TRACKER_KEY).map_err(|e| self.err(e))?;
            tracing::info!(path = %self.path.display(), from = schema, to = CURRENT_SCHEMA, "database migrated");
        }
        let raw = serde_json::to_vec(&CURRENT_SCHEMA).unwrap_or_default();
        meta.insert("schema", raw.as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every pinned tracker key, by tracker address.
    pub fn tracker_pins(&self) -> Result<Vec<(String, String)>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TRACKER_PINS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Pins `fingerprint` for the tracker at `addr`, durably.
    pub fn set_tracker_pin(&self, addr: &str, fingerprint: &str) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(TRACKER_PINS)
            .map_err(|e| self.err(e))?
            .insert(addr, fingerprint)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn meta_value(&self, name: &str) -> Result<Option<String>, StateError> {
        self.get(META, name)
    }

    pub fn set_meta_value(&self, name: &str, value: &str) -> Result<(), StateError> {
        let raw = serde_json::to_vec(value).unwrap_or_default();
        self.put(META, name, Some(&raw))
    }

    /// Stores the session (or clears it with `None`), durably.
    pub fn set_session(&self, session: Option<&Session>) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SESSION).map_err(|e| self.err(e))?;
            match session {
                Some(s) => {
                    let raw = serde_json::to_vec(s).unwrap_or_default();
                    table
                        .insert(CURRENT, raw.as_slice())
                        .map_err(|e| self.err(e))?;
                }
                None => {
                    table.remove(CURRENT).map_err(|e| self.err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

/// True for what redb says of a damaged file (as opposed to a lock, permissions, a full disk).
fn is_corruption(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        // "Not a redb database: magic number mismatch", and the like.
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        _ => false,
    }
}

/// Renames the corrupt database at `path` to `<path>.corrupt-<unix time>` and returns the new
/// name.
fn move_aside(path: &Path, reason: &str) -> Result<PathBuf, StateError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_os_string();
    aside.push(format!(".corrupt-{now}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(|source| StateError::MoveAside {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source,
    })?;
    Ok(aside)
}

thread_local! {
    /// Set while [`catch_panic`] runs on this thread: the panic hook stores the message here
    /// instead of printing it.
    static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `op`, turning a panic into `Err(message)`. The panic is not printed (it is reported by
/// the caller, as one line); panics elsewhere still reach the previous hook.
fn catch_panic<R>(op: impl FnOnce() -> R) -> Result<R, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let quiet = CAUGHT.with(|c| match c.try_borrow_mut() {
                Ok(mut slot) if slot.is_some() => {
                    *slot = Some(info.payload_as_str().unwrap_or("panic").to_string());
                    true
                }
                _ => false,
            });
            if !quiet {
                previous(info);
            }
        }));
    });
    CAUGHT.with(|c| *c.borrow_mut() = Some(String::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(op));
    let message = CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_default();
    result.map_err(|_| message)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
