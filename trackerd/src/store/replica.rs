//! The parts of [`Store`] that replication needs: the tracker's position, reading the log from
//! a sequence number, applying a record received from the primary, and whole-state snapshots
//! for a standby too far behind (or diverged) to catch up from the log.

use super::{
    EPOCH, FILES, GROUPS, LAST_EPOCH, LAST_SEQ, LEADER, LOG, META, REQUEST_IDS, SECRETS, SESSIONS,
    Store, StoreError, USERS, append, db_err, meta_value, open_tables,
};
use crate::log::LogRecord;
use p2p_proto::cluster::{Position, SnapshotRow};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

/// The JSON-valued tables a snapshot carries besides `log` and `request_ids`.
const JSON_TABLES: [TableDefinition<&str, &[u8]>; 5] = [USERS, SESSIONS, GROUPS, FILES, SECRETS];

fn corrupt(table: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// The position recorded in a `meta` table.
fn position_in(meta: &impl ReadableTable<&'static str, u64>) -> Result<Position, StoreError> {
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
        let txn = self.db.begin_read().map_err(db_err)?;
        position_in(&txn.open_table(META).map_err(db_err)?)
    }

    /// Records who leads which epoch (durably, before acting on it).
    pub fn set_leadership(&self, epoch: u64, leader: usize) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(EPOCH, epoch).map_err(db_err)?;
            meta.insert(LEADER, leader as u64).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// The epoch of record `seq`, if the log holds it.
    pub fn record_epoch(&self, seq: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.record(seq)?.map(|r| r.epoch))
    }

    fn record(&self, seq: u64) -> Result<Option<LogRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        match log.get(seq).map_err(db_err)? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(raw.value())
                .map(Some)
                .map_err(|e| corrupt("log", e)),
        }
    }

    /// Up to `limit` records from `from` on, as stored.
    pub fn records_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        let mut out = Vec::new();
        for item in log.range(from..).map_err(db_err)?.take(limit) {
            let (_, raw) = item.map_err(db_err)?;
            out.push(serde_json::from_slice(raw.value()).map_err(|e| corrupt("log", e))?);
        }
        Ok(out)
    }

    /// Applies a record received from the primary, in one transaction. It must be the next one.
    pub fn apply_replicated(&self, record: &LogRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let last = meta_value(&meta, LAST_SEQ)?;
            if record.seq != last + 1 {
                return Err(corrupt(
                    "log",
                    format!("replicated record {} does not follow {last}", record.seq),
                ));
            }
            append(&txn, &mut open_tables(&txn)?, &mut meta, record)?;
        }
        txn.commit().map_err(db_err)?;
        self.last_seq.send_replace(record.seq);
        Ok(())
    }

    /// Every row of the replicated tables, and the position they represent.
    pub fn export_snapshot(&self) -> Result<(Vec<SnapshotRow>, Position), StoreError> {
        // Position and rows from one read transaction, so they describe the same state.
        let txn = self.db.begin_read().map_err(db_err)?;
        let position = position_in(&txn.open_table(META).map_err(db_err)?)?;
        let mut rows = Vec::new();
        for def in JSON_TABLES {
            let table = txn.open_table(def).map_err(db_err)?;
            for item in table.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                rows.push(SnapshotRow {
                    table: redb::TableHandle::name(&def).to_string(),
                    key: k.value().to_string(),
                    value: String::from_utf8_lossy(v.value()).into_owned(),
                });
            }
        }
        let ids = txn.open_table(REQUEST_IDS).map_err(db_err)?;
        for item in ids.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            rows.push(SnapshotRow {
                table: "request_ids".into(),
                key: k.value().to_string(),
                value: v.value().to_string(),
            });
        }
        let log = txn.open_table(LOG).map_err(db_err)?;
        for item in log.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            rows.push(SnapshotRow {
                table: "log".into(),
                key: k.value().to_string(),
                value: String::from_utf8_lossy(v.value()).into_owned(),
            });
        }
        Ok((rows, position))
    }

    /// Replaces the whole replicated state with a snapshot, in one transaction.
    pub fn install_snapshot(
        &self,
        rows: &[SnapshotRow],
        position: Position,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        clear(&txn)?;
        for row in rows {
            insert_row(&txn, row)?;
        }
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(LAST_SEQ, position.last_seq).map_err(db_err)?;
            meta.insert(LAST_EPOCH, position.last_epoch)
                .map_err(db_err)?;
            meta.insert(EPOCH, position.epoch).map_err(db_err)?;
            meta.insert(LEADER, position.leader as u64)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        self.last_seq.send_replace(position.last_seq);
        Ok(())
    }
}

fn clear(txn: &WriteTransaction) -> Result<(), StoreError> {
    for def in JSON_TABLES {
        txn.open_table(def)
            .map_err(db_err)?
            .retain(|_, _| false)
            .map_err(db_err)?;
    }
    txn.open_table(REQUEST_IDS)
        .map_err(db_err)?
        .retain(|_, _| false)
        .map_err(db_err)?;
    txn.open_table(LOG)
        .map_err(db_err)?
        .retain(|_, _| false)
        .map_err(db_err)?;
    Ok(())
}

fn insert_row(txn: &WriteTransaction, row: &SnapshotRow) -> Result<(), StoreError> {
    match row.table.as_str() {
        "request_ids" => {
            let seq: u64 = row.value.parse().map_err(|e| corrupt("request_ids", e))?;
            txn.open_table(REQUEST_IDS)
                .map_err(db_err)?
                .insert(row.key.as_str(), seq)
                .map_err(db_err)?;
        }
        "log" => {
            let seq: u64 = row.key.parse().map_err(|e| corrupt("log", e))?;
            txn.open_table(LOG)
                .map_err(db_err)?
                .insert(seq, row.value.as_bytes())
                .map_err(db_err)?;
        }
        name => {
            let def = JSON_TABLES
                .into_iter()
                .find(|d| redb::TableHandle::name(d) == name)
                .ok_or_else(|| corrupt("snapshot", format!("unknown table {name:?}")))?;
            txn.open_table(def)
                .map_err(db_err)?
                .insert(row.key.as_str(), row.value.as_bytes())
                .map_err(db_err)?;
        }
    }
    Ok(())
}
