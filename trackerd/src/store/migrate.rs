//! Bringing a database written by an earlier release up to the current schema, in place, in
//! one write transaction at start-up.
//!
//! Schema 1 (release 0.1.0, no `schema` row) → 2:
//! - every group gets its id, derived from its name (`records::legacy_group_id`), the same one
//!   a standby gets when it replays the group's old creation record;
//! - every session is kept, unbound (no key yet: it is bound to the first daemon key that uses
//!   it) and seen now, so it expires like a fresh one if nobody uses it.
//!
//! Schema 2 → 3: the counters the limits are checked against (groups owned and files added per
//! user, files per group) are counted once from the tables; `store::apply` keeps them from
//! then on.
//!
//! Everything else (users and password hashes, files, the signing key, the log and request
//! ids) is read as it is.

use super::error::{StoreError, db_err};
use super::tables::{META, SCHEMA, TableSet, meta_value, open_tables};
use crate::records::{GroupRecord, SessionRecord, legacy_group_id};
use redb::{ReadableTable, WriteTransaction};

/// The schema this release writes.
pub const CURRENT_SCHEMA: u64 = 3;

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
    recount(&mut tables)?;
    meta.insert(SCHEMA, CURRENT_SCHEMA).map_err(db_err)?;
    Ok(Some(done))
}

/// Sets every counter of users and groups from what the tables hold. Users who own no group
/// and added no file keep the serde default, 0.
fn recount(tables: &mut super::Tables<'_>) -> Result<(), StoreError> {
    use std::collections::HashMap;
    let mut owned: HashMap<String, u64> = HashMap::new();
    let mut added: HashMap<String, u64> = HashMap::new();
    for mut group in tables.groups()? {
        *owned.entry(group.owner.clone()).or_default() += 1;
        let adders = tables.group_file_adders(&group.group)?;
        group.files = adders.len() as u64;
        for adder in adders {
            *added.entry(adder).or_default() += 1;
        }
        tables.put_group(&group)?;
    }
    let users: std::collections::BTreeSet<String> =
        owned.keys().chain(added.keys()).cloned().collect();
    for user in users {
        let (groups, files) = (owned.get(&user), added.get(&user));
        tables.update_user(&user, |u| {
            u.groups_owned = groups.copied().unwrap_or(0);
            u.files_added = files.copied().unwrap_or(0);
        })?;
    }
    Ok(())
}

impl<T: ReadableTable<&'static str, &'static [u8]>> TableSet<T> {
    /// True when no user and no group exists (a database just created).
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.users_is_empty()? && self.groups()?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Decision, Store};
    use super::*;
    use crate::log::LogEntry;
    use crate::records::UserRecord;
    use p2p_proto::files::FileMeta;
    use p2p_proto::tracker::TrackerReply;

    fn log(store: &Store, entries: Vec<LogEntry>) {
        let id = p2p_proto::token::new_request_id();
        let reply = store.write(&id, |_| {
            Ok(Decision {
                entries,
                reply: TrackerReply::Done,
            })
        });
        assert_eq!(reply, Ok(TrackerReply::Done));
    }

    fn user(store: &Store, name: &str) -> UserRecord {
        store.read(|t| Ok(t.user(name)?)).unwrap().unwrap()
    }

    #[test]
    fn a_schema_2_database_gets_its_counters_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let file = |name: &str| FileMeta {
            name: name.into(),
            size: 1,
            sha1: "a".repeat(40),
            pieces: vec!["b".repeat(40)],
        };
        for name in ["alice", "bob"] {
            log(
                &store,
                vec![LogEntry::UserCreated {
                    user: name.into(),
                    password_hash: "x".into(),
                }],
            );
        }
        for group in ["g1", "g2"] {
            log(
                &store,
                vec![LogEntry::GroupCreated {
                    group: group.into(),
                    owner: "alice".into(),
                    id: None,
                }],
            );
        }
        for (name, by) in [("a", "alice"), ("b", "bob"), ("c", "bob")] {
            log(
                &store,
                vec![LogEntry::FileAdded {
                    group: "g1".into(),
                    meta: file(name),
                    user: by.into(),
                }],
            );
        }
        // What a schema 2 tracker wrote: the same rows without counters.
        {
            let txn = store.begin_write().unwrap();
            {
                let mut tables = open_tables(&txn).unwrap();
                for name in ["alice", "bob"] {
                    let mut record = tables.user(name).unwrap().unwrap();
                    (record.groups_owned, record.files_added) = (0, 0);
                    tables.put_user(&record).unwrap();
                }
                let mut group = tables.group("g1").unwrap().unwrap();
                group.files = 0;
                tables.put_group(&group).unwrap();
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(SCHEMA, 2).unwrap();
            }
            txn.commit().unwrap();
        }
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let alice = user(&store, "alice");
        assert_eq!((alice.groups_owned, alice.files_added), (2, 1));
        let bob = user(&store, "bob");
        assert_eq!((bob.groups_owned, bob.files_added), (0, 2));
        let g1 = store.read(|t| Ok(t.group("g1")?)).unwrap().unwrap();
        assert_eq!(g1.files, 3);
    }

    #[test]
    fn a_release_0_1_0_database_is_counted_on_upgrade() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/v0.1.0/tracker-1/tracker.redb"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture, dir.path().join(super::super::DB_FILE)).unwrap();
        let store = Store::open(dir.path()).unwrap();
        // friends (alice's, holiday.bin by alice) and solo (carol's, notes.txt by carol).
        for (name, owned, added) in [("alice", 1, 1), ("bob", 0, 0), ("carol", 1, 1)] {
            let record = user(&store, name);
            assert_eq!(
                (record.groups_owned, record.files_added),
                (owned, added),
                "{name}"
            );
        }
        for group in ["friends", "solo"] {
            let record = store.read(|t| Ok(t.group(group)?)).unwrap().unwrap();
            assert_eq!(record.files, 1, "{group}");
        }
    }
}
