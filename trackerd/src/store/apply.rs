//! The one way the state changes: a log record's entries applied to the state tables and the
//! record appended to the log, in the caller's write transaction, on the primary and on the
//! standby alike.

use super::compact::{LogKeep, trim};
use super::error::{StoreError, db_err};
use super::tables::{LAST_EPOCH, LAST_SEQ, LOG, META, REQUEST_IDS, Tables, to_json};
use super::tables::{SESSION_SECRET, SIGNING_KEY};
use crate::log::{LogEntry, LogRecord};
use crate::records::{FileRecord, GroupRecord, SessionRecord, UserRecord, legacy_group_id};
use redb::{Table, WriteTransaction};

/// The log's tables, open in a write transaction: opened once for every record of a batch.
pub(crate) struct LogTables<'txn> {
    pub(crate) log: Table<'txn, u64, &'static [u8]>,
    pub(crate) ids: Table<'txn, &'static str, u64>,
    pub(crate) meta: Table<'txn, &'static str, u64>,
}

impl<'txn> LogTables<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            log: txn.open_table(LOG).map_err(db_err)?,
            ids: txn.open_table(REQUEST_IDS).map_err(db_err)?,
            meta: txn.open_table(META).map_err(db_err)?,
        })
    }
}

/// Applies `record` to the state tables and appends it to the log, advancing `meta`, and trims
/// the log to `keep`: the one way the state changes, on the primary (`Store::write`) and on
/// the standby alike.
pub(crate) fn append(
    tables: &mut Tables<'_>,
    log: &mut LogTables<'_>,
    record: &LogRecord,
    keep: &LogKeep,
) -> Result<(), StoreError> {
    for entry in &record.entries {
        apply(tables, entry)?;
    }
    let raw = to_json(record);
    log.log.insert(record.seq, raw.as_slice()).map_err(db_err)?;
    log.ids
        .insert(record.request_id.as_str(), record.seq)
        .map_err(db_err)?;
    log.meta.insert(LAST_SEQ, record.seq).map_err(db_err)?;
    log.meta.insert(LAST_EPOCH, record.epoch).map_err(db_err)?;
    trim(log, keep, raw.len() as u64)?;
    Ok(())
}

/// Applies one entry to the state tables of a write transaction.
fn apply(tables: &mut Tables<'_>, entry: &LogEntry) -> Result<(), StoreError> {
    match entry {
        LogEntry::UserCreated {
            user,
            password_hash,
        } => tables.put_user(&UserRecord {
            user: user.clone(),
            password_hash: password_hash.clone(),
            groups_owned: 0,
            files_added: 0,
        }),
        LogEntry::SessionOpened {
            token_hash,
            user,
            key,
            at,
        } => tables.put_session(
            token_hash,
            &SessionRecord {
                user: user.clone(),
                key: *key,
                opened: *at,
                seen: *at,
            },
        ),
        LogEntry::SessionSeen { token_hash, at } => tables.update_session(token_hash, |s| {
            s.seen = s.seen.max(*at);
        }),
        LogEntry::SessionBound { token_hash, key } => {
            tables.update_session(token_hash, |s| s.key = Some(*key))
        }
        LogEntry::SessionClosed { token_hash } => tables.remove_session(token_hash),
        LogEntry::GroupCreated { group, owner, id } => {
            tables.put_group(&GroupRecord {
                id: id.clone().unwrap_or_else(|| legacy_group_id(group)),
                group: group.clone(),
                owner: owner.clone(),
                members: vec![owner.clone()],
                requests: Vec::new(),
                files: 0,
            })?;
            tables.update_user(owner, |u| u.groups_owned = u.groups_owned.saturating_add(1))
        }
        LogEntry::JoinRequested { group, user } => tables.update_group(group, |g| {
            if !g.has_requested(user) && !g.is_member(user) {
                g.requests.push(user.clone());
            }
        }),
        LogEntry::RequestAccepted { group, user } => tables.update_group(group, |g| {
            g.requests.retain(|r| r != user);
            if !g.is_member(user) {
                g.members.push(user.clone());
            }
        }),
        LogEntry::MemberLeft { group, user } => {
            let Some(mut record) = tables.group(group)? else {
                return Ok(());
            };
            record.members.retain(|m| m != user);
            match record.members.first() {
                None => {
                    // The files go with the group: each adder has one file fewer.
                    for adder in tables.group_file_adders(group)? {
                        tables.update_user(&adder, |u| {
                            u.files_added = u.files_added.saturating_sub(1)
                        })?;
                    }
                    tables.update_user(&record.owner, |u| {
                        u.groups_owned = u.groups_owned.saturating_sub(1)
                    })?;
                    tables.remove_group_files(group)?;
                    tables.remove_group(group)
                }
                Some(first) => {
                    if record.owner == *user {
                        record.owner = first.clone();
                        tables.update_user(user, |u| {
                            u.groups_owned = u.groups_owned.saturating_sub(1)
                        })?;
                        tables.update_user(first, |u| {
                            u.groups_owned = u.groups_owned.saturating_add(1)
                        })?;
                    }
                    tables.put_group(&record)
                }
            }
        }
        LogEntry::SigningKeyCreated { secret } => tables.put_secret(SIGNING_KEY, secret),
        LogEntry::SessionSecretCreated { secret } => tables.put_secret(SESSION_SECRET, secret),
        LogEntry::FileAdded { group, meta, user } => {
            // Counted only when new, so the counters stay right whatever the log holds.
            if tables.file(group, &meta.name)?.is_none() {
                tables.update_group(group, |g| g.files = g.files.saturating_add(1))?;
                tables.update_user(user, |u| u.files_added = u.files_added.saturating_add(1))?;
            }
            tables.put_file(&FileRecord {
                group: group.clone(),
                meta: meta.clone(),
                added_by: user.clone(),
            })
        }
    }
}
