//! Bringing a database written by an earlier release up to the current schema, in place, in
//! one write transaction at start-up.
//!
//! Schema 1 (release 0.1.0, no `schema` row) → 2:
//! - every group gets its id, derived from its name (`records::legacy_group_id`), the same one
//!   a standby gets when it replays the group's old creation record;
//! - every session is kept, unbound (no key yet: it is bound to the first daemon key that uses
//!   it) and seen now, so it expires like a fresh one if nobody uses it.
//!
//! Everything else (users and password hashes, files, the signing key, the log and request
//! ids) is read as it is.

use super::error::{StoreError, db_err};
use super::tables::{META, SCHEMA, TableSet, meta_value, open_tables};
use crate::records::{GroupRecord, SessionRecord, legacy_group_id};
use redb::{ReadableTable, WriteTransaction};

/// The schema this release writes.
pub const CURRENT_SCHEMA: u64 = 2;

/// What a migration did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    pub from: u64,
    pub groups: usize,
    pub sessions: usize,
}

/// Migrates the database of `txn` to [`CURRENT_SCHEMA`]; `None` when it is current already.
/// A database of a newer schema is refused: an older release must not guess at it.
pub fn migrate(txn: &WriteTransaction, now: u64) -> Result<Option<Migrated>, StoreError> {
    let mut meta = txn.open_table(META).map_err(db_err)?;
    let schema = meta_value(&meta, SCHEMA)?;
    let fresh = {
        let tables = open_tables(txn)?;
        schema == 0 && tables.is_empty()?
    };
    if schema == CURRENT_SCHEMA || fresh {
        meta.insert(SCHEMA, CURRENT_SCHEMA).map_err(db_err)?;
        return Ok(None);
    }
    if schema > CURRENT_SCHEMA {
        return Err(StoreError::NewerSchema {
            found: schema,
            supported: CURRENT_SCHEMA,
        });
    }
    let mut tables = open_tables(txn)?;
    let mut done = Migrated {
        from: schema.max(1),
        ..Migrated::default()
    };
    let groups: Vec<GroupRecord> = tables.groups()?;
    for mut group in groups.into_iter().filter(|g| g.id.is_empty()) {
        group.id = legacy_group_id(&group.group);
        tables.put_group(&group)?;
        done.groups += 1;
    }
    let sessions: Vec<(String, SessionRecord)> = tables.sessions()?;
    for (hash, mut session) in sessions {
        if session.seen == 0 {
            session.seen = now;
            session.opened = session.opened.max(now);
            tables.put_session(&hash, &session)?;
            done.sessions += 1;
        }
    }
    meta.insert(SCHEMA, CURRENT_SCHEMA).map_err(db_err)?;
    Ok(Some(done))
}

impl<T: ReadableTable<&'static str, &'static [u8]>> TableSet<T> {
    /// True when no user and no group exists (a database just created).
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.users_is_empty()? && self.groups()?.is_empty())
    }
}
