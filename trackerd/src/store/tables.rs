//! The tables of the tracker's database, and typed access to the state tables in a read or a
//! write transaction.

use super::error::{StoreError, db_err};
use crate::records::{
    FileRecord, GroupRecord, SessionRecord, UserRecord, file_key, group_files_range,
};
use ed25519_dalek::SigningKey;
use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
/// The tracker's own rows, never replicated or part of a snapshot (e.g. the other tracker's
/// pinned key).
pub(crate) const LOCAL: TableDefinition<&str, &str> = TableDefinition::new("local");
/// `meta` row: the schema the database is written in (absent in 0.1.0: schema 1).
pub(crate) const SCHEMA: &str = "schema";
pub(crate) const SIGNING_KEY: &str = "signing_key";
pub(crate) const SESSION_SECRET: &str = "session_secret";

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

    /// Every session, with the hash of its token.
    pub fn sessions(&self) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.sessions.iter().map_err(db_err)? {
            let (key, value) = item.map_err(db_err)?;
            out.push((
                key.value().to_string(),
                parse_json("sessions", value.value())?,
            ));
        }
        Ok(out)
    }

    pub(crate) fn users_is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.users.first().map_err(db_err)?.is_none())
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

    /// Up to `limit` groups named after `after` (from the first without it), ordered by name,
    /// and whether more follow.
    pub fn groups_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<GroupRecord>, bool), StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        let range = self
            .groups
            .range::<&str>((start, Unbounded))
            .map_err(db_err)?;
        page(range, "groups", limit)
    }

    /// Up to `limit` files of `group` named after `after`, ordered by name, and whether more
    /// follow.
    pub fn group_files_page(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<FileRecord>, bool), StoreError> {
        use std::ops::Bound::{Excluded, Included};
        let (start, end) = group_files_range(group);
        let first = after.map(|name| file_key(group, name));
        let start = first.as_deref().map_or(Included(start.as_str()), Excluded);
        let range = self
            .files
            .range::<&str>((start, std::ops::Bound::Excluded(end.as_str())))
            .map_err(db_err)?;
        page(range, "files", limit)
    }

    /// Who added each file of `group` (one entry per file), reading no piece list.
    pub fn group_file_adders(&self, group: &str) -> Result<Vec<String>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Adder {
            added_by: String,
        }
        let (start, end) = group_files_range(group);
        let mut out = Vec::new();
        for item in self
            .files
            .range::<&str>(start.as_str()..end.as_str())
            .map_err(db_err)?
        {
            let (_, value) = item.map_err(db_err)?;
            out.push(parse_json::<Adder>("files", value.value())?.added_by);
        }
        Ok(out)
    }

    /// The trackers' signing key, once one was created.
    pub fn signing_key(&self) -> Result<Option<SigningKey>, StoreError> {
        Ok(self
            .secret(SIGNING_KEY)?
            .map(|bytes| SigningKey::from_bytes(&bytes)))
    }

    /// The trackers' session secret, once one was created.
    pub fn session_secret(&self) -> Result<Option<[u8; 32]>, StoreError> {
        self.secret(SESSION_SECRET)
    }

    fn secret(&self, name: &'static str) -> Result<Option<[u8; 32]>, StoreError> {
        let Some(secret) = get_json::<String>(&self.secrets, "secrets", name)? else {
            return Ok(None);
        };
        hex::decode(&secret)
            .ok()
            .and_then(|raw| raw.try_into().ok())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                table: "secrets",
                reason: format!("{name} is not 64 hex characters"),
            })
    }
}

/// The first `limit` records of `range`, and whether another follows.
fn page<'a, T: DeserializeOwned>(
    range: redb::Range<'a, &'static str, &'static [u8]>,
    table: &'static str,
    limit: usize,
) -> Result<(Vec<T>, bool), StoreError> {
    let mut out = Vec::new();
    for item in range {
        let (_, value) = item.map_err(db_err)?;
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push(parse_json(table, value.value())?);
    }
    Ok((out, false))
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
    /// Stores the hex of one of the trackers' secrets.
    pub fn put_secret(&mut self, name: &str, secret_hex: &str) -> Result<(), StoreError> {
        self.secrets
            .insert(name, to_json(&secret_hex).as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Changes a session in place; a missing session is left alone.
    pub fn update_session(
        &mut self,
        token_hash: &str,
        change: impl FnOnce(&mut SessionRecord),
    ) -> Result<(), StoreError> {
        if let Some(mut record) = self.session(token_hash)? {
            change(&mut record);
            self.put_session(token_hash, &record)?;
        }
        Ok(())
    }

    /// Changes a user in place; a missing user is left alone.
    pub fn update_user(
        &mut self,
        user: &str,
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<(), StoreError> {
        if let Some(mut record) = self.user(user)? {
            change(&mut record);
            self.put_user(&record)?;
        }
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

pub(crate) fn open_read_tables(txn: &ReadTransaction) -> Result<ReadTables, StoreError> {
    Ok(TableSet {
        users: txn.open_table(USERS).map_err(db_err)?,
        sessions: txn.open_table(SESSIONS).map_err(db_err)?,
        groups: txn.open_table(GROUPS).map_err(db_err)?,
        files: txn.open_table(FILES).map_err(db_err)?,
        secrets: txn.open_table(SECRETS).map_err(db_err)?,
    })
}
