//! Group commit: the writes of many requests in one redb write transaction, so one commit (one
//! fdatasync) serves them all.
//!
//! Each request is still its own log record with its own sequence number, decided on the
//! state the requests before it in the batch left: the log's order is the order of
//! application, and a request id met earlier (in an earlier batch or earlier in this one) is
//! answered from its record, never applied twice. A request whose `decide` fails writes
//! nothing and leaves the others alone; one whose record cannot be applied (a damaged row)
//! fails alone too: the transaction is started over with the batch's other records. A storage
//! failure anywhere, or a failed commit, fails every request of the batch with the same error
//! and faults the store, as a single write does.

use super::{
    Decision, EPOCH, LAST_SEQ, LOG, META, REQUEST_IDS, Store, StoreError, Tables, append, db_err,
    meta_value, open_tables,
};
use crate::log::LogRecord;
use p2p_proto::ErrorReply;
use p2p_proto::tracker::TrackerReply;
use redb::{ReadableTable, WriteTransaction};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a request writes: looks at the state and decides the changes and the reply (or an
/// error, and nothing changes).
pub type Decide<'a> = Box<dyn FnOnce(&Tables<'_>) -> Result<Decision, ErrorReply> + 'a>;

/// One request of a batch.
pub struct Request<'a> {
    pub request_id: String,
    pub decide: Decide<'a>,
}

/// How one request of a batch ended, once the batch is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The reply, or why nothing was written.
    pub result: Result<TrackerReply, ErrorReply>,
    /// The log position the result rests on: the request's own record, the record that
    /// answered its request id first, or else the last record there was when it was decided
    /// (0: none, or nothing was decided). The client may be answered once the standby holds
    /// it.
    pub seq: u64,
}

impl Written {
    pub(crate) fn failed(e: ErrorReply) -> Self {
        Self {
            result: Err(e),
            seq: 0,
        }
    }
}

/// How one request went inside the batch's transaction.
enum Step {
    /// Answered without a record (a replay, a failed or empty decision).
    Answered(Written),
    /// Its record is applied and appended in the transaction.
    Appended(LogRecord),
}

/// Why one request could not go on inside the transaction.
enum Failure {
    /// Nothing of it is in the transaction: only this request fails.
    Refused(StoreError),
    /// Part of its record may be in the transaction: it must be started over without it.
    Broken(StoreError),
    /// The storage failed: the whole batch fails.
    Fault(StoreError),
}

impl Failure {
    /// A failure before anything of the request was written.
    fn reading(e: StoreError) -> Self {
        if e.is_fault() {
            Self::Fault(e)
        } else {
            Self::Refused(e)
        }
    }

    /// A failure while its record was being applied.
    fn writing(e: StoreError) -> Self {
        if e.is_fault() {
            Self::Fault(e)
        } else {
            Self::Broken(e)
        }
    }
}

impl Store {
    /// Applies `requests`, in order, each as its own log record, in one write transaction
    /// and one commit; returns how each ended, in the same order.
    pub fn write_batch(&self, requests: Vec<Request<'_>>) -> Vec<Written> {
        let count = requests.len();
        if count == 0 {
            return Vec::new();
        }
        match self.try_batch(requests) {
            Ok(written) => written,
            Err(e) => {
                let e = self.note(e);
                // Converted once: the conversion logs the failure.
                vec![Written::failed(ErrorReply::from(e)); count]
            }
        }
    }

    fn try_batch(&self, requests: Vec<Request<'_>>) -> Result<Vec<Written>, StoreError> {
        let mut txn = self.begin_write()?;
        let mut written = Vec::with_capacity(requests.len());
        // This batch's records in `txn`, to apply again if it has to be started over.
        let mut records: Vec<LogRecord> = Vec::new();
        for request in requests {
            match self.one(&txn, request) {
                Ok(Step::Answered(w)) => written.push(w),
                Ok(Step::Appended(record)) => {
                    written.push(Written {
                        result: Ok(record.reply.clone()),
                        seq: record.seq,
                    });
                    records.push(record);
                }
                Err(Failure::Refused(e)) => written.push(Written::failed(e.into())),
                Err(Failure::Fault(e)) => return Err(e),
                Err(Failure::Broken(e)) => {
                    tracing::error!(
                        error = %e,
                        "a write could not be applied; the others of its batch go on without it"
                    );
                    written.push(Written::failed(e.into()));
                    // Dropping the transaction rolls it back.
                    drop(txn);
                    txn = self.begin_write()?;
                    self.reapply(&txn, &records)?;
                }
            }
        }
        let last = records.last().map(|r| r.seq);
        self.commit(txn)?;
        if let Some(seq) = last {
            self.advance_last_seq(seq);
        }
        Ok(written)
    }

    /// One request inside the batch's transaction.
    fn one(&self, txn: &WriteTransaction, request: Request<'_>) -> Result<Step, Failure> {
        if let Some((seq, reply)) = replay(txn, &request.request_id).map_err(Failure::reading)? {
            return Ok(Step::Answered(Written {
                result: Ok(reply),
                seq,
            }));
        }
        let mut tables = open_tables(txn).map_err(Failure::reading)?;
        let mut meta = txn
            .open_table(META)
            .map_err(db_err)
            .map_err(Failure::reading)?;
        let last = meta_value(&meta, LAST_SEQ).map_err(Failure::reading)?;
        let decide = request.decide;
        // A request that panics fails alone; `decide` only reads, so nothing is half done.
        let decided = catch_unwind(AssertUnwindSafe(|| decide(&tables))).unwrap_or_else(|_| {
            Err(ErrorReply::internal(
                "the tracker failed while deciding the request",
            ))
        });
        let answered = |result| Ok(Step::Answered(Written { result, seq: last }));
        let decision = match decided {
            Err(e) => return answered(Err(e)),
            Ok(d) if d.entries.is_empty() => return answered(Ok(d.reply)),
            Ok(d) => d,
        };
        let Some(seq) = last.checked_add(1) else {
            return answered(Err(ErrorReply::internal(
                "the log's sequence numbers are used up",
            )));
        };
        let epoch = meta_value(&meta, EPOCH).map_err(Failure::reading)?;
        let record = LogRecord {
            seq,
            epoch,
            request_id: request.request_id,
            entries: decision.entries,
            reply: decision.reply,
        };
        append(txn, &mut tables, &mut meta, &record, &self.keep).map_err(Failure::writing)?;
        Ok(Step::Appended(record))
    }

    /// Applies `records` again in a new transaction (the batch is started over without a
    /// record that could not be applied). They applied before on the same state, and applying
    /// is deterministic.
    fn reapply(&self, txn: &WriteTransaction, records: &[LogRecord]) -> Result<(), StoreError> {
        let mut tables = open_tables(txn)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        for record in records {
            append(txn, &mut tables, &mut meta, record, &self.keep)?;
        }
        Ok(())
    }

    /// Moves the last applied sequence number forward (never back: commits of this side are
    /// in order, but their notices may race).
    pub(super) fn advance_last_seq(&self, seq: u64) {
        self.last_seq.send_if_modified(|last| {
            let newer = seq > *last;
            if newer {
                *last = seq;
            }
            newer
        });
    }
}

/// The record that answered `request_id` (its seq and reply), if it was applied before and
/// its record is still in the log's tail; this transaction's own records count.
fn replay(
    txn: &WriteTransaction,
    request_id: &str,
) -> Result<Option<(u64, TrackerReply)>, StoreError> {
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
    Ok(Some((seq, record.reply)))
}
