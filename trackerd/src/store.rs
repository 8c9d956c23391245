//! The tracker's redb database: the log of changes and the state it produces.
//!
//! Tables (keys → JSON values unless noted):
//! - `log`: seq (u64) → [`LogRecord`]
//! - `request_ids`: request id → seq of the record it produced
//! - `users`: user id → [`UserRecord`]
//! - `sessions`: SHA-256 of the token (hex) → [`SessionRecord`]
//! - `groups`: group id → [`GroupRecord`]
//! - `files`: `{group}/{name}` → [`FileRecord`] (see [`file_key`])
//! - `secrets`: name → JSON string; `signing_key` is the hex of the trackers' ed25519 secret
//! - `meta`: name → u64 (`last_seq`, `last_epoch`, `epoch`, `leader`)

use crate::log::{LogEntry, LogRecord, apply};
use crate::records::{
    FileRecord, GroupRecord, SessionRecord, UserRecord, file_key, group_files_range,
};
use ed25519_dalek::SigningKey;
use p2p_proto::ErrorReply;
use p2p_proto::tracker::TrackerReply;
use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const REQUEST_IDS: TableDefinition<&str, u64> = TableDefinition::new("request_ids");
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub(crate) const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
pub(crate) const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");
pub(crate) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const LAST_SEQ: &str = "last_seq";
pub(crate) const LAST_EPOCH: &str = "last_epoch";
pub(crate) const EPOCH: &str = "epoch";
pub(crate) const LEADER: &str = "leader";
const SIGNING_KEY: &str = "signing_key";

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tracker.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot make {path} private (chmod 600): {source}")]
    Chmod {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
}

impl From<StoreError> for ErrorReply {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ErrorReply::internal(format!("tracker storage failure: {e}"))
    }
}

/// A counter of the `meta` table (0 when unset), in any transaction.
pub(crate) fn meta_value(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    Ok(meta
        .get(name)
        .map_err(db_err)?
        .map(|g| g.value())
        .unwrap_or(0))
}

pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

/// The state tables, open either in a read or in a write transaction.
pub struct TableSet<T> {
    users: T,
    sessions: T,
    groups: T,
    files: T,
    secrets: T,
}

/// The state tables of a write transaction.
pub type Tables<'txn> = TableSet<Table<'txn, &'static str, &'static [u8]>>;
/// The state tables of a read transaction.
pub type ReadTables = TableSet<ReadOnlyTable<&'static str, &'static [u8]>>;

fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(db_err)? {
        None => Ok(None),
        Some(guard) => parse_json(name, guard.value()).map(Some),
    }
}

pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing plain records of strings cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl<T: ReadableTable<&'static str, &'static [u8]>> TableSet<T> {
    pub fn user(&self, user: &str) -> Result<Option<UserRecord>, StoreError> {
        get_json(&self.users, "users", user)
    }

    pub fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        get_json(&self.sessions, "sessions", token_hash)
    }

    pub fn group(&self, group: &str) -> Result<Option<GroupRecord>, StoreError> {
        get_json(&self.groups, "groups", group)
    }

    /// Every group, ordered by id.
    pub fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.groups.iter().map_err(db_err)? {
            let (_, value) = item.map_err(db_err)?;
            out.push(parse_json("groups", value.value())?);
        }
        Ok(out)
    }

    pub fn file(&self, group: &str, name: &str) -> Result<Option<FileRecord>, StoreError> {
        get_json(&self.files, "files", &file_key(group, name))
    }

    /// Every file of `group`, ordered by name (bytewise).
    pub fn group_files(&self, group: &str) -> Result<Vec<FileRecord>, StoreError> {
        let (start, end) = group_files_range(group);
        let mut out = Vec::new();
        for item in self
            .files
            .range::<&str>(start.as_str()..end.as_str())
            .map_err(db_err)?
        {
            let (_, value) = item.map_err(db_err)?;
            out.push(parse_json("files", value.value())?);
        }
        Ok(out)
    }

    /// The trackers' signing key, once one was created.
    pub fn signing_key(&self) -> Result<Option<SigningKey>, StoreError> {
        let Some(secret) = get_json::<String>(&self.secrets, "secrets", SIGNING_KEY)? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = hex::decode(&secret)
            .ok()
            .and_then(|raw| raw.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt {
                table: "secrets",
                reason: "signing_key is not 64 hex characters".into(),
            })?;
        Ok(Some(SigningKey::from_bytes(&bytes)))
    }
}

fn parse_json<T: DeserializeOwned>(table: &'static str, raw: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

impl Tables<'_> {
    pub fn put_user(&mut self, record: &UserRecord) -> Result<(), StoreError> {
        self.users
            .insert(record.user.as_str(), to_json(record).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn put_session(
        &mut self,
        token_hash: &str,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.sessions
            .insert(token_hash, to_json(record).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn remove_session(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.sessions.remove(token_hash).map_err(db_err)?;
        Ok(())
    }

    pub fn put_group(&mut self, record: &GroupRecord) -> Result<(), StoreError> {
        self.groups
            .insert(record.group.as_str(), to_json(record).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn remove_group(&mut self, group: &str) -> Result<(), StoreError> {
        self.groups.remove(group).map_err(db_err)?;
        Ok(())
    }

    pub fn put_file(&mut self, record: &FileRecord) -> Result<(), StoreError> {
        let key = file_key(&record.group, &record.meta.name);
        self.files
            .insert(key.as_str(), to_json(record).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Removes every file of `group`.
    pub fn remove_group_files(&mut self, group: &str) -> Result<(), StoreError> {
        let (start, end) = group_files_range(group);
        self.files
            .retain_in::<&str, _>(start.as_str()..end.as_str(), |_, _| false)
            .map_err(db_err)?;
        Ok(())
    }

    /// Stores the hex of the trackers' signing key.
    pub fn put_signing_key(&mut self, secret_hex: &str) -> Result<(), StoreError> {
        self.secrets
            .insert(SIGNING_KEY, to_json(&secret_hex).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Changes a group in place; a missing group is left alone.
    pub fn update_group(
        &mut self,
        group: &str,
        change: impl FnOnce(&mut GroupRecord),
    ) -> Result<(), StoreError> {
        if let Some(mut record) = self.group(group)? {
            change(&mut record);
            self.put_group(&record)?;
        }
        Ok(())
    }
}

pub(crate) fn open_tables(txn: &WriteTransaction) -> Result<Tables<'_>, StoreError> {
    Ok(TableSet {
        users: txn.open_table(USERS).map_err(db_err)?,
        sessions: txn.open_table(SESSIONS).map_err(db_err)?,
        groups: txn.open_table(GROUPS).map_err(db_err)?,
        files: txn.open_table(FILES).map_err(db_err)?,
        secrets: txn.open_table(SECRETS).map_err(db_err)?,
    })
}

/// Applies `record` to the state tables and appends it to the log, advancing `meta`: the one
/// way the state changes, on the primary (`Store::write`) and on the standby alike.
pub(crate) fn append(
    txn: &WriteTransaction,
    tables: &mut Tables<'_>,
    meta: &mut Table<'_, &'static str, u64>,
    record: &LogRecord,
) -> Result<(), StoreError> {
    for entry in &record.entries {
        apply(tables, entry)?;
    }
    txn.open_table(LOG)
        .map_err(db_err)?
        .insert(record.seq, to_json(record).as_slice())
        .map_err(db_err)?;
    txn.open_table(REQUEST_IDS)
        .map_err(db_err)?
        .insert(record.request_id.as_str(), record.seq)
        .map_err(db_err)?;
    meta.insert(LAST_SEQ, record.seq).map_err(db_err)?;
    meta.insert(LAST_EPOCH, record.epoch).map_err(db_err)?;
    Ok(())
}

/// What a write decided: the changes to log and apply, and the reply for the client.
pub struct Decision {
    pub entries: Vec<LogEntry>,
    pub reply: TrackerReply,
}

/// The tracker's database.
pub struct Store {
    pub(crate) db: Database,
    /// The last applied sequence number, for the replication sender to wait on.
    pub(crate) last_seq: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// Opens (or creates) the database in `dir`, creating `dir` (0700) when missing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        // Password hashes, session hashes and the signing key live here: owner only, whatever
        // the umask or the directory's mode.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StoreError::Chmod {
                path: path.clone(),
                source,
            },
        )?;
        // Create every table up front so read transactions never meet a missing one.
        let txn = db.begin_write().map_err(db_err)?;
        {
            open_tables(&txn)?;
            txn.open_table(LOG).map_err(db_err)?;
            txn.open_table(REQUEST_IDS).map_err(db_err)?;
            txn.open_table(META).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let store = Self {
            db,
            last_seq: tokio::sync::watch::Sender::new(0),
        };
        store.last_seq.send_replace(store.last_seq()?);
        Ok(store)
    }

    /// Watches the last applied sequence number.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    /// Runs `f` on a consistent snapshot of the state.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&ReadTables) -> Result<R, ErrorReply>,
    ) -> Result<R, ErrorReply> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let tables = TableSet {
            users: txn.open_table(USERS).map_err(db_err)?,
            sessions: txn.open_table(SESSIONS).map_err(db_err)?,
            groups: txn.open_table(GROUPS).map_err(db_err)?,
            files: txn.open_table(FILES).map_err(db_err)?,
            secrets: txn.open_table(SECRETS).map_err(db_err)?,
        };
        f(&tables)
    }

    /// Applies one client request as one log record, in one transaction.
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
        let txn = self.db.begin_write().map_err(db_err)?;
        if let Some(earlier) = self.replay(&txn, request_id)? {
            return Ok(earlier);
        }
        let reply = {
            let mut tables = open_tables(&txn)?;
            let decision = decide(&tables)?;
            if decision.entries.is_empty() {
                return Ok(decision.reply);
            }
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let seq = meta_value(&meta, LAST_SEQ)? + 1;
            let epoch = meta_value(&meta, EPOCH)?;
            let record = LogRecord {
                seq,
                epoch,
                request_id: request_id.to_string(),
                entries: decision.entries,
                reply: decision.reply,
            };
            append(&txn, &mut tables, &mut meta, &record)?;
            (seq, record.reply)
        };
        txn.commit().map_err(db_err)?;
        self.last_seq.send_replace(reply.0);
        Ok(reply.1)
    }

    /// The reply recorded for `request_id`, if it was applied before.
    fn replay(
        &self,
        txn: &WriteTransaction,
        request_id: &str,
    ) -> Result<Option<TrackerReply>, StoreError> {
        let ids = txn.open_table(REQUEST_IDS).map_err(db_err)?;
        let Some(seq) = ids.get(request_id).map_err(db_err)?.map(|g| g.value()) else {
            return Ok(None);
        };
        let log = txn.open_table(LOG).map_err(db_err)?;
        let Some(raw) = log.get(seq).map_err(db_err)? else {
            return Ok(None);
        };
        let record: LogRecord =
            serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt {
                table: "log",
                reason: e.to_string(),
            })?;
        Ok(Some(record.reply))
    }

    /// The trackers' signing key, created (and logged like any other change, so the standby
    /// gets it too) the first time the tracker starts, and the same on every later start.
    pub fn signing_key(&self) -> Result<SigningKey, ErrorReply> {
        if let Some(key) = self.read(|t| Ok(t.signing_key()?))? {
            return Ok(key);
        }
        let secret = hex::encode(p2p_proto::grant::new_signing_key().to_bytes());
        self.write(&p2p_proto::token::new_request_id(), |t| {
            // Checked again inside the write transaction, so a key is never replaced.
            let entries = if t.signing_key()?.is_some() {
                Vec::new()
            } else {
                vec![LogEntry::SigningKeyCreated { secret }]
            };
            Ok(Decision {
                entries,
                reply: TrackerReply::Done,
            })
        })?;
        self.read(|t| Ok(t.signing_key()?))?
            .ok_or_else(|| ErrorReply::internal("signing key missing right after it was stored"))
    }

    /// Sequence number of the last applied record (0 for an empty log).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
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
            }],
        );
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(names(&store, "g").is_empty());
        assert_eq!(names(&store, "g0"), ["c"]);
    }

    #[test]
    fn signing_key_is_created_once_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_seq().unwrap(), 0);
        let key = store.signing_key().unwrap();
        assert_eq!(store.last_seq().unwrap(), 1, "the key is one log record");
        assert_eq!(store.signing_key().unwrap(), key);
        assert_eq!(store.last_seq().unwrap(), 1);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.signing_key().unwrap(), key);
        assert_eq!(store.last_seq().unwrap(), 1);
    }
}
