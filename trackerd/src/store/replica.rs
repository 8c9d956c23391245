//! The parts of [`Store`] that replication needs: the tracker's position, reading the log from
//! a sequence number, and applying a record received from the primary. (Snapshots, for a
//! standby too far behind or diverged, are in `snapshot`.)

use super::apply::LogTables;
use super::{
    EPOCH, LAST_EPOCH, LAST_SEQ, LEADER, LOG, META, Store, StoreError, append, db_err, meta_value,
    open_tables,
};
use crate::log::LogRecord;
use p2p_proto::cluster::Position;
use redb::ReadableTable;

/// Most bytes of records [`Store::records_from`] reads at once (at least one record is read).
pub const RECORDS_READ_BYTES: usize = 8 * 1024 * 1024;

pub(super) fn corrupt(table: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// The position recorded in a `meta` table.
pub(super) fn position_in(
    meta: &impl ReadableTable<&'static str, u64>,
) -> Result<Position, StoreError> {
    Ok(Position {
        epoch: meta_value(meta, EPOCH)?,
        // Epoch 0 is led by the first tracker, the preferred primary.
        leader: meta_value(meta, LEADER)?.max(1) as usize,
        last_seq: meta_value(meta, LAST_SEQ)?,
        last_epoch: meta_value(meta, LAST_EPOCH)?,
    })
}

impl Store {
    /// Epoch, leader and last record of this tracker.
    pub fn position(&self) -> Result<Position, StoreError> {
        let txn = self.begin_read()?;
        position_in(&txn.open_table(META).map_err(db_err)?)
    }

    /// Records who leads which epoch (durably, before acting on it).
    pub fn set_leadership(&self, epoch: u64, leader: usize) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        self.writing(|| {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(EPOCH, epoch).map_err(db_err)?;
            meta.insert(LEADER, leader as u64).map_err(db_err)?;
            Ok(())
        })?;
        self.commit(txn)
    }

    /// The epoch of record `seq`, if the log holds it.
    pub fn record_epoch(&self, seq: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.record(seq)?.map(|r| r.epoch))
    }

    fn record(&self, seq: u64) -> Result<Option<LogRecord>, StoreError> {
        let txn = self.begin_read()?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        match log.get(seq).map_err(db_err)? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(raw.value())
                .map(Some)
                .map_err(|e| corrupt("log", e)),
        }
    }

    /// Up to `limit` records from `from` on, as stored, and no more than `max_bytes` of them
    /// (but always the first one).
    pub fn records_from(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let txn = self.begin_read()?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in log.range(from..).map_err(db_err)?.take(limit) {
            let (_, raw) = item.map_err(db_err)?;
            bytes = bytes.saturating_add(raw.value().len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(serde_json::from_slice(raw.value()).map_err(|e| corrupt("log", e))?);
        }
        Ok(out)
    }

    /// Applies a record received from the primary, in one transaction. It must be the next one.
    pub fn apply_replicated(&self, record: &LogRecord) -> Result<(), StoreError> {
        self.apply_replicated_batch(std::slice::from_ref(record))
    }

    /// Applies records received from the primary, in order, in one transaction (one commit for
    /// all of them). Each must follow the one before it, the first our last.
    pub fn apply_replicated_batch(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        let Some(newest) = records.last() else {
            return Ok(());
        };
        let txn = self.begin_write()?;
        self.writing(|| {
            let mut log = LogTables::open(&txn)?;
            let mut tables = open_tables(&txn)?;
            for record in records {
                let last = meta_value(&log.meta, LAST_SEQ)?;
                if last.checked_add(1) != Some(record.seq) {
                    return Err(corrupt(
                        "log",
                        format!("replicated record {} does not follow {last}", record.seq),
                    ));
                }
                append(&mut tables, &mut log, record, &self.keep)?;
            }
            Ok(())
        })?;
        self.commit(txn)?;
        self.last_seq.send_replace(newest.seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Decision, Request};
    use super::*;
    use crate::log::LogEntry;
    use p2p_proto::tracker::TrackerReply;

    fn records(store: &Store) -> Vec<LogRecord> {
        store
            .records_from(1, 1000, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| serde_json::from_value(r).unwrap())
            .collect()
    }

    #[test]
    fn records_are_applied_in_one_batch_or_not_at_all() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (primary, standby) = (
            Store::open(a.path()).unwrap(),
            Store::open(b.path()).unwrap(),
        );
        let requests = (0..5)
            .map(|i| Request {
                request_id: format!("r{i}"),
                decide: Box::new(move |_| {
                    Ok(Decision {
                        entries: vec![LogEntry::UserCreated {
                            user: format!("u{i}"),
                            password_hash: "h".into(),
                        }],
                        reply: TrackerReply::Done,
                    })
                }),
            })
            .collect();
        primary.write_batch(requests);
        let log = records(&primary);
        standby.apply_replicated_batch(&log[..3]).unwrap();
        assert_eq!(standby.last_seq().unwrap(), 3);
        // A gap in the middle: nothing of the batch is applied.
        let gapped = [log[3].clone(), log[3].clone()];
        assert!(standby.apply_replicated_batch(&gapped).is_err());
        assert_eq!(standby.last_seq().unwrap(), 3);
        assert!(standby.read(|t| Ok(t.user("u3")?)).unwrap().is_none());
        standby.apply_replicated_batch(&log[3..]).unwrap();
        assert_eq!(records(&standby), log);
        assert_eq!(*standby.subscribe().borrow(), 5);
    }
}
