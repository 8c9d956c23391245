//! The log's bounded tail. Every append removes a few of the oldest records (and their request
//! ids) while the log holds more than [`LogKeep`] allows, so the log stays bounded in records
//! and bytes however long the tracker runs, without a pause to compact. Both trackers trim the
//! same way; a standby that needs a record the primary no longer holds gets a snapshot, and a
//! request retried after its record left the tail is treated as new.

use super::apply::LogTables;
use super::error::{StoreError, db_err};
use super::tables::{LOG, meta_value};
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::Deserialize;

/// `meta` row: the bytes of the records in the log.
pub(crate) const LOG_BYTES: &str = "log_bytes";
/// Most records removed by one append: small steps, and a log over the bound (a smaller
/// `--log-keep`, an old database) still shrinks faster than it grows.
const BATCH: usize = 64;

/// How much of the log to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKeep {
    /// Records kept (at least 1).
    pub records: u64,
    /// Bytes of records kept (the newest record is kept whatever its size).
    pub bytes: u64,
}

impl Default for LogKeep {
    fn default() -> Self {
        Self {
            records: 50_000,
            bytes: 256 * 1024 * 1024,
        }
    }
}

/// Fills in `log_bytes` for a database that has none yet (created before the log was
/// bounded): one pass over the log, once.
pub(super) fn init_log_bytes(
    txn: &WriteTransaction,
    meta: &mut Table<'_, &'static str, u64>,
) -> Result<(), StoreError> {
    if meta.get(LOG_BYTES).map_err(db_err)?.is_some() {
        return Ok(());
    }
    let log = txn.open_table(LOG).map_err(db_err)?;
    let mut bytes = 0u64;
    for item in log.iter().map_err(db_err)? {
        let (_, raw) = item.map_err(db_err)?;
        bytes = bytes.saturating_add(raw.value().len() as u64);
    }
    meta.insert(LOG_BYTES, bytes).map_err(db_err)?;
    Ok(())
}

#[derive(Deserialize)]
struct RequestIdOnly {
    request_id: String,
}

/// After a record of `added` bytes was appended to `log`: removes the oldest records beyond
/// `keep` (at most [`BATCH`]) with their request ids. Returns how many it removed.
pub(crate) fn trim(
    tables: &mut LogTables<'_>,
    keep: &LogKeep,
    added: u64,
) -> Result<usize, StoreError> {
    let LogTables { log, ids, meta } = tables;
    let mut bytes = meta_value(meta, LOG_BYTES)?.saturating_add(added);
    let mut removed = 0;
    while removed < BATCH {
        let len = log.len().map_err(db_err)?;
        if len <= 1 || (len <= keep.records.max(1) && bytes <= keep.bytes) {
            break;
        }
        let (seq, size, request_id) = {
            let Some((seq, raw)) = log.pop_first().map_err(db_err)? else {
                break;
            };
            let raw = raw.value();
            let request_id = serde_json::from_slice::<RequestIdOnly>(raw)
                .ok()
                .map(|r| r.request_id);
            (seq.value(), raw.len() as u64, request_id)
        };
        bytes = bytes.saturating_sub(size);
        if let Some(id) = request_id {
            let points_here = ids.get(id.as_str()).map_err(db_err)?.map(|g| g.value()) == Some(seq);
            if points_here {
                ids.remove(id.as_str()).map_err(db_err)?;
            }
        }
        removed += 1;
    }
    meta.insert(LOG_BYTES, bytes).map_err(db_err)?;
    Ok(removed)
}

/// How much the log holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTail {
    pub records: u64,
    /// Sequence number of the oldest record kept (0 for an empty log).
    pub first_seq: u64,
    pub bytes: u64,
}

impl super::Store {
    /// How much the log holds now.
    pub fn log_tail(&self) -> Result<LogTail, StoreError> {
        let txn = self.begin_read()?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        let meta = txn.open_table(super::META).map_err(db_err)?;
        let first_seq = log.first().map_err(db_err)?.map_or(0, |(k, _)| k.value());
        Ok(LogTail {
            records: log.len().map_err(db_err)?,
            first_seq,
            bytes: meta_value(&meta, LOG_BYTES)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogEntry;
    use crate::store::{Decision, REQUEST_IDS, Store};
    use p2p_proto::tracker::TrackerReply;

    fn create_user(store: &Store, request_id: &str, user: &str, pad: usize) -> TrackerReply {
        store
            .write(request_id, |_| {
                Ok(Decision {
                    entries: vec![LogEntry::UserCreated {
                        user: user.into(),
                        password_hash: "h".repeat(pad),
                    }],
                    reply: TrackerReply::Done,
                })
            })
            .unwrap()
    }

    /// The bytes of the records actually in the log, counted the slow way.
    fn counted_bytes(store: &Store) -> u64 {
        let txn = store.begin_read().unwrap();
        let log = txn.open_table(LOG).unwrap();
        log.iter()
            .unwrap()
            .map(|i| i.unwrap().1.value().len() as u64)
            .sum()
    }

    fn request_ids(store: &Store) -> u64 {
        let txn = store.begin_read().unwrap();
        txn.open_table(REQUEST_IDS).unwrap().len().unwrap()
    }

    #[test]
    fn the_log_keeps_only_its_newest_records_and_their_request_ids() {
        let dir = tempfile::tempdir().unwrap();
        let keep = LogKeep {
            records: 10,
            bytes: u64::MAX,
        };
        let store = Store::open_with(dir.path(), keep).unwrap();
        for i in 1..=100 {
            create_user(&store, &format!("req-{i}"), &format!("u{i}"), 10);
        }
        let tail = store.log_tail().unwrap();
        assert_eq!((tail.records, tail.first_seq), (10, 91));
        assert_eq!(tail.bytes, counted_bytes(&store));
        assert_eq!(
            request_ids(&store),
            10,
            "request ids leave with their records"
        );
        assert_eq!(store.last_seq().unwrap(), 100);
        // The state is whole: compaction removes history, never state.
        for i in 1..=100 {
            let user = format!("u{i}");
            assert!(store.read(|t| Ok(t.user(&user)?)).unwrap().is_some());
        }
        // A request retried within the tail is answered from the log, without a new record.
        create_user(&store, "req-95", "someone-else", 10);
        assert_eq!(store.last_seq().unwrap(), 100);
    }

    #[test]
    fn the_log_stays_under_its_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        let keep = LogKeep {
            records: 1_000,
            bytes: 4_000,
        };
        let store = Store::open_with(dir.path(), keep).unwrap();
        for i in 1..=60 {
            create_user(&store, &format!("req-{i}"), &format!("u{i}"), 300);
            let tail = store.log_tail().unwrap();
            assert!(
                tail.bytes <= 4_000,
                "log of {} bytes after {i} writes",
                tail.bytes
            );
            assert_eq!(tail.bytes, counted_bytes(&store));
        }
        // The newest record stays even if it alone is over the bound.
        create_user(&store, "huge", "big", 10_000);
        let tail = store.log_tail().unwrap();
        assert_eq!((tail.records, tail.first_seq), (1, 61));
    }

    #[test]
    fn a_log_over_the_bound_shrinks_in_small_steps_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 1..=200 {
            create_user(&store, &format!("req-{i}"), &format!("u{i}"), 10);
        }
        assert_eq!(store.log_tail().unwrap().records, 200);
        drop(store);
        let keep = LogKeep {
            records: 10,
            bytes: u64::MAX,
        };
        let store = Store::open_with(dir.path(), keep).unwrap();
        create_user(&store, "req-201", "u201", 10);
        let tail = store.log_tail().unwrap();
        assert_eq!(tail.records, 201 - BATCH as u64, "one batch per append");
        for i in 202..=210 {
            create_user(&store, &format!("req-{i}"), &format!("u{i}"), 10);
        }
        let tail = store.log_tail().unwrap();
        assert_eq!((tail.records, tail.first_seq), (10, 201));
        assert_eq!(tail.bytes, counted_bytes(&store));
        drop(store);
        let store = Store::open_with(dir.path(), keep).unwrap();
        assert_eq!(store.log_tail().unwrap(), tail);
    }
}
