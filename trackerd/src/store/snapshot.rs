//! Whole-state snapshots for a standby too far behind (or diverged) to catch up from the log,
//! streamed in bounded chunks on both sides: the primary reads the rows from one read
//! transaction and hands them out a chunk at a time; the standby writes each chunk into one
//! write transaction as it arrives and commits once the last chunk is in, so the state is
//! replaced atomically (a snapshot broken off changes nothing). Neither side ever holds more
//! than a few chunks.

use super::compact::LOG_BYTES;
use super::replica::{corrupt, position_in};
use super::{
    EPOCH, FILES, GROUPS, LAST_EPOCH, LAST_SEQ, LEADER, LOG, META, REQUEST_IDS, SECRETS, SESSIONS,
    Store, StoreError, USERS, db_err,
};
use p2p_proto::cluster::{Position, SnapshotRow};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Largest chunk of a snapshot, in bytes of row data (a chunk's frame is at most a few times
/// this, with JSON escaping).
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks queued between the database and the link, on either side.
const QUEUED_CHUNKS: usize = 2;

/// The JSON-valued tables a snapshot carries besides `log` and `request_ids`.
const JSON_TABLES: [TableDefinition<&str, &[u8]>; 5] = [USERS, SESSIONS, GROUPS, FILES, SECRETS];

/// What a snapshot installer gets.
pub enum SnapshotPart {
    Rows(Vec<SnapshotRow>),
    /// The last chunk was sent: the state is the one of `Position`.
    Done(Position),
}

/// Collects rows into chunks of about `limit` bytes.
struct Chunker<F> {
    rows: Vec<SnapshotRow>,
    size: usize,
    limit: usize,
    emit: F,
}

impl<F: FnMut(Vec<SnapshotRow>) -> bool> Chunker<F> {
    /// Adds a row; returns false once the receiver is gone.
    fn push(&mut self, row: SnapshotRow) -> bool {
        let size = row.table.len() + row.key.len() + row.value.len() + 64;
        if !self.rows.is_empty() && self.size + size > self.limit && !self.flush() {
            return false;
        }
        self.size += size;
        self.rows.push(row);
        true
    }

    fn flush(&mut self) -> bool {
        self.size = 0;
        (self.emit)(std::mem::take(&mut self.rows))
    }
}

impl Store {
    /// Reads every row of the replicated tables from one read transaction, handing them to
    /// `emit` in chunks of at most `chunk_bytes` (a single larger row is a chunk of its own);
    /// the last chunk may be empty. `start` gets the position the rows represent first.
    /// Stops early when `emit` returns false.
    pub fn export_snapshot_chunks(
        &self,
        chunk_bytes: usize,
        start: impl FnOnce(Position),
        emit: impl FnMut(Vec<SnapshotRow>) -> bool,
    ) -> Result<Position, StoreError> {
        let txn = self.begin_read()?;
        let position = position_in(&txn.open_table(META).map_err(db_err)?)?;
        start(position);
        let mut out = Chunker {
            rows: Vec::new(),
            size: 0,
            limit: chunk_bytes,
            emit,
        };
        for def in JSON_TABLES {
            let table = txn.open_table(def).map_err(db_err)?;
            for item in table.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let row = SnapshotRow {
                    table: redb::TableHandle::name(&def).to_string(),
                    key: k.value().to_string(),
                    value: String::from_utf8_lossy(v.value()).into_owned(),
                };
                if !out.push(row) {
                    return Ok(position);
                }
            }
        }
        let ids = txn.open_table(REQUEST_IDS).map_err(db_err)?;
        for item in ids.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let row = SnapshotRow {
                table: "request_ids".into(),
                key: k.value().to_string(),
                value: v.value().to_string(),
            };
            if !out.push(row) {
                return Ok(position);
            }
        }
        let log = txn.open_table(LOG).map_err(db_err)?;
        for item in log.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let row = SnapshotRow {
                table: "log".into(),
                key: k.value().to_string(),
                value: String::from_utf8_lossy(v.value()).into_owned(),
            };
            if !out.push(row) {
                return Ok(position);
            }
        }
        out.flush();
        Ok(position)
    }

    /// Every row of the replicated tables at once (tests only: a real snapshot is streamed).
    #[cfg(test)]
    pub fn export_snapshot(&self) -> Result<(Vec<SnapshotRow>, Position), StoreError> {
        let mut rows = Vec::new();
        let position = self.export_snapshot_chunks(
            SNAPSHOT_CHUNK_BYTES,
            |_| {},
            |chunk| {
                rows.extend(chunk);
                true
            },
        )?;
        Ok((rows, position))
    }

    /// Replaces the whole replicated state with the parts read from `parts`, in one write
    /// transaction committed on [`SnapshotPart::Done`]. Returns `None`, changing nothing, when
    /// `parts` closes before that. Blocks: run it on a blocking thread.
    pub fn install_snapshot_parts(
        &self,
        parts: &mut mpsc::Receiver<SnapshotPart>,
    ) -> Result<Option<Position>, StoreError> {
        let txn = self.begin_write()?;
        let done = self.writing(|| {
            clear(&txn)?;
            let mut log_bytes = 0u64;
            loop {
                match parts.blocking_recv() {
                    None => return Ok(None),
                    Some(SnapshotPart::Rows(rows)) => {
                        for row in &rows {
                            log_bytes = log_bytes.saturating_add(insert_row(&txn, row)?);
                        }
                    }
                    Some(SnapshotPart::Done(position)) => {
                        let mut meta = txn.open_table(META).map_err(db_err)?;
                        meta.insert(LAST_SEQ, position.last_seq).map_err(db_err)?;
                        meta.insert(LAST_EPOCH, position.last_epoch)
                            .map_err(db_err)?;
                        meta.insert(EPOCH, position.epoch).map_err(db_err)?;
                        meta.insert(LEADER, position.leader as u64)
                            .map_err(db_err)?;
                        meta.insert(LOG_BYTES, log_bytes).map_err(db_err)?;
                        return Ok(Some(position));
                    }
                }
            }
        })?;
        let Some(position) = done else {
            // Dropping the transaction rolls it back.
            return Ok(None);
        };
        self.commit(txn)?;
        self.last_seq.send_replace(position.last_seq);
        Ok(Some(position))
    }
}

/// A snapshot being installed on a blocking thread, fed chunk by chunk with backpressure.
pub struct SnapshotInstaller {
    parts: mpsc::Sender<SnapshotPart>,
    task: tokio::task::JoinHandle<Result<Option<Position>, StoreError>>,
}

impl SnapshotInstaller {
    pub fn start(store: Arc<Store>) -> Self {
        let (parts, mut rx) = mpsc::channel(QUEUED_CHUNKS);
        let task = tokio::task::spawn_blocking(move || store.install_snapshot_parts(&mut rx));
        Self { parts, task }
    }

    /// Queues a chunk; waits while the installer is behind.
    pub async fn rows(&self, rows: Vec<SnapshotRow>) -> Result<(), String> {
        if self.parts.send(SnapshotPart::Rows(rows)).await.is_ok() {
            return Ok(());
        }
        // The installer stopped: say why.
        Err("the snapshot installer stopped".into())
    }

    /// Ends the snapshot at `position` and waits until it is committed.
    pub async fn finish(self, position: Position) -> Result<(), String> {
        let sent = self.parts.send(SnapshotPart::Done(position)).await;
        drop(self.parts);
        match self.task.await {
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => Err(format!(
                "snapshot not installed{}",
                if sent.is_err() {
                    " (installer gone)"
                } else {
                    ""
                }
            )),
            Ok(Err(e)) => Err(format!("cannot install snapshot: {e}")),
            Err(e) => Err(e.to_string()),
        }
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

/// Inserts one row; returns the bytes it added to the log (0 for other tables).
fn insert_row(txn: &WriteTransaction, row: &SnapshotRow) -> Result<u64, StoreError> {
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
            return Ok(row.value.len() as u64);
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
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogEntry;
    use crate::store::{Decision, LogKeep};
    use p2p_proto::tracker::TrackerReply;

    fn filled_store(dir: &std::path::Path, users: usize, pad: usize) -> Store {
        let store = Store::open(dir).unwrap();
        store.ensure_secrets().unwrap();
        for i in 0..users {
            store
                .write(&format!("req-{i}"), |_| {
                    Ok(Decision {
                        entries: vec![LogEntry::UserCreated {
                            user: format!("user-{i}"),
                            password_hash: "p".repeat(pad),
                        }],
                        reply: TrackerReply::Done,
                    })
                })
                .unwrap();
        }
        store
    }

    /// Exports `from` in chunks of `chunk_bytes` into an installer of `to`; returns the sizes
    /// of the chunks.
    fn copy(from: &Store, to: &Store, chunk_bytes: usize) -> Vec<usize> {
        let (tx, mut rx) = mpsc::channel(10_000);
        let mut sizes = Vec::new();
        let position = from
            .export_snapshot_chunks(
                chunk_bytes,
                |_| {},
                |rows| {
                    sizes.push(
                        rows.iter()
                            .map(|r| r.table.len() + r.key.len() + r.value.len() + 64)
                            .sum(),
                    );
                    tx.try_send(SnapshotPart::Rows(rows)).is_ok()
                },
            )
            .unwrap();
        tx.try_send(SnapshotPart::Done(position)).unwrap();
        drop(tx);
        assert_eq!(to.install_snapshot_parts(&mut rx).unwrap(), Some(position));
        sizes
    }

    #[test]
    fn a_snapshot_streams_in_bounded_chunks_and_installs_whole() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let from = filled_store(a.path(), 300, 200);
        let to = filled_store(b.path(), 5, 10);
        let sizes = copy(&from, &to, 8 * 1024);
        assert!(sizes.len() > 10, "a large state is many chunks: {sizes:?}");
        assert!(
            sizes.iter().all(|s| *s <= 8 * 1024),
            "every chunk within its bound: {sizes:?}"
        );
        let (rows_a, pos_a) = from.export_snapshot().unwrap();
        let (rows_b, pos_b) = to.export_snapshot().unwrap();
        assert_eq!(pos_a, pos_b);
        assert_eq!(rows_a, rows_b, "the copy holds exactly the original's rows");
        assert_eq!(to.last_seq().unwrap(), from.last_seq().unwrap());
        assert_eq!(to.log_tail().unwrap(), from.log_tail().unwrap());
        assert_eq!(to.signing_key().unwrap(), from.signing_key().unwrap());
    }

    #[test]
    fn a_snapshot_broken_off_changes_nothing() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let from = filled_store(a.path(), 50, 100);
        let to = filled_store(b.path(), 3, 10);
        let before = to.export_snapshot().unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        let mut sent = 0;
        from.export_snapshot_chunks(
            1024,
            |_| {},
            |rows| {
                sent += 1;
                // Two chunks, then the link "breaks".
                sent <= 2 && tx.try_send(SnapshotPart::Rows(rows)).is_ok()
            },
        )
        .unwrap();
        drop(tx);
        assert_eq!(to.install_snapshot_parts(&mut rx).unwrap(), None);
        assert_eq!(to.export_snapshot().unwrap(), before);
    }

    #[test]
    fn an_empty_state_is_one_empty_last_chunk_and_a_compacted_log_travels_as_is() {
        let a = tempfile::tempdir().unwrap();
        let from = Store::open(a.path()).unwrap();
        let mut chunks = Vec::new();
        from.export_snapshot_chunks(
            1024,
            |_| {},
            |rows| {
                chunks.push(rows);
                true
            },
        )
        .unwrap();
        assert_eq!(chunks, vec![Vec::new()]);

        let c = tempfile::tempdir().unwrap();
        let keep = LogKeep {
            records: 5,
            bytes: u64::MAX,
        };
        let small = Store::open_with(c.path(), keep).unwrap();
        for i in 0..20 {
            small
                .write(&format!("r{i}"), |_| {
                    Ok(Decision {
                        entries: vec![LogEntry::UserCreated {
                            user: format!("u{i}"),
                            password_hash: "x".into(),
                        }],
                        reply: TrackerReply::Done,
                    })
                })
                .unwrap();
        }
        let d = tempfile::tempdir().unwrap();
        let to = Store::open(d.path()).unwrap();
        copy(&small, &to, 512);
        let tail = to.log_tail().unwrap();
        assert_eq!((tail.records, tail.first_seq), (5, 16));
        assert_eq!(tail, small.log_tail().unwrap());
    }
}
