//! The log's bounded tail. Every append removes a few of the oldest records (and their request
//! ids) while the log holds more than [`LogKeep`] allows, so the log stays bounded in records
//! and bytes however long the tracker runs, without a pause to compact. Both trackers trim the
//! same way; a standby that needs a record the primary no longer holds gets a snapshot, and a
//! request retried after its record left the tail is treated as new.

use super::error::{StoreError, db_err};
use super::tables::{LOG, REQUEST_IDS, meta_value};
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

/// After a record of `added` bytes was appended in `txn`: removes the oldest records beyond
/// `keep` (at most [`BATCH`]) with their request ids. Returns how many it removed.
pub(crate) fn trim(
    txn: &WriteTransaction,
    meta: &mut Table<'_, &'static str, u64>,
    keep: &LogKeep,
    added: u64,
) -> Result<usize, StoreError> {
    let mut bytes = meta_value(meta, LOG_BYTES)?.saturating_add(added);
    let mut log = txn.open_table(LOG).map_err(db_err)?;
    let mut ids = txn.open_table(REQUEST_IDS).map_err(db_err)?;
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
