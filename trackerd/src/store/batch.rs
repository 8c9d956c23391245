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

use super::apply::LogTables;
use super::{
    Decision, EPOCH, LAST_SEQ, Store, StoreError, Tables, append, db_err, meta_value, open_tables,
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
        let mut written = Vec::with_capacity(requests.len());
        // This batch's records, to apply again if the transaction has to be started over.
        let mut records: Vec<LogRecord> = Vec::new();
        let mut requests = requests.into_iter();
        loop {
            let txn = self.begin_write()?;
            let done = {
                let mut open = Open::new(&txn)?;
                for record in &records {
                    // They applied before on the same state; applying is deterministic.
                    append(&mut open.state, &mut open.log, record, &self.keep)?;
                }
                self.run(&mut open, &mut requests, &mut written, &mut records)?
            };
            if done {
                let last = records.last().map(|r| r.seq);
                self.commit(txn)?;
                if let Some(seq) = last {
                    self.advance_last_seq(seq);
                }
                return Ok(written);
            }
            // A record could not be applied and part of it may be in `txn`: dropping the
            // transaction rolls it back, and the batch starts over without it.
        }
    }

    /// Runs `requests` in the open transaction until they are all done (`true`) or one left
    /// the transaction broken (`false`: it failed, and the others go on in a new one).
    fn run<'a>(
        &self,
        open: &mut Open<'_>,
        requests: &mut impl Iterator<Item = Request<'a>>,
        written: &mut Vec<Written>,
        records: &mut Vec<LogRecord>,
    ) -> Result<bool, StoreError> {
        for request in requests {
            match self.one(open, request) {
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
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// One request inside the batch's transaction.
    fn one(&self, open: &mut Open<'_>, request: Request<'_>) -> Result<Step, Failure> {
        if let Some((seq, reply)) =
            replay(&open.log, &request.request_id).map_err(Failure::reading)?
        {
            return Ok(Step::Answered(Written {
                result: Ok(reply),
                seq,
            }));
        }
        let last = meta_value(&open.log.meta, LAST_SEQ).map_err(Failure::reading)?;
        let decide = request.decide;
        let state = &open.state;
        // A request that panics fails alone; `decide` only reads, so nothing is half done.
        let decided = catch_unwind(AssertUnwindSafe(|| decide(state))).unwrap_or_else(|_| {
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
        let epoch = meta_value(&open.log.meta, EPOCH).map_err(Failure::reading)?;
        let record = LogRecord {
            seq,
            epoch,
            request_id: request.request_id,
            entries: decision.entries,
            reply: decision.reply,
        };
        append(&mut open.state, &mut open.log, &record, &self.keep).map_err(Failure::writing)?;
        Ok(Step::Appended(record))
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
    log: &LogTables<'_>,
    request_id: &str,
) -> Result<Option<(u64, TrackerReply)>, StoreError> {
    let Some(seq) = log.ids.get(request_id).map_err(db_err)?.map(|g| g.value()) else {
        return Ok(None);
    };
    let Some(raw) = log.log.get(seq).map_err(db_err)? else {
        return Ok(None);
    };
    let record: LogRecord =
        serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt {
            table: "log",
            reason: e.to_string(),
        })?;
    Ok(Some((seq, record.reply)))
}

/// The tables a batch works on, open once for all its requests.
struct Open<'txn> {
    state: Tables<'txn>,
    log: LogTables<'txn>,
}

impl<'txn> Open<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            state: open_tables(txn)?,
            log: LogTables::open(txn)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::USERS;
    use super::*;
    use crate::log::LogEntry;
    use p2p_proto::ErrorKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn created(user: &str) -> Decision {
        Decision {
            entries: vec![LogEntry::UserCreated {
                user: user.into(),
                password_hash: "h".into(),
            }],
            reply: TrackerReply::User { user: user.into() },
        }
    }

    /// A request creating `user`, answered with its name.
    fn create(id: &str, user: &str) -> Request<'static> {
        let user = user.to_string();
        Request {
            request_id: id.into(),
            decide: Box::new(move |_| Ok(created(&user))),
        }
    }

    fn refused(id: &str) -> Request<'static> {
        Request {
            request_id: id.into(),
            decide: Box::new(|_| Err(ErrorReply::invalid("no such thing"))),
        }
    }

    fn user_reply(user: &str) -> Result<TrackerReply, ErrorReply> {
        Ok(TrackerReply::User { user: user.into() })
    }

    /// The request ids of the log's records, in order.
    fn logged_ids(store: &Store) -> Vec<String> {
        store
            .records_from(1, 1000, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| serde_json::from_value::<LogRecord>(r).unwrap().request_id)
            .collect()
    }

    fn has_user(store: &Store, user: &str) -> bool {
        store.read(|t| Ok(t.user(user)?)).unwrap().is_some()
    }

    #[test]
    fn each_request_of_a_batch_is_its_own_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let batch = vec![create("r1", "a"), create("r2", "b"), create("r3", "c")];
        let written = store.write_batch(batch);
        let seqs: Vec<u64> = written.iter().map(|w| w.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        let replies: Vec<_> = written.into_iter().map(|w| w.result).collect();
        assert_eq!(replies, [user_reply("a"), user_reply("b"), user_reply("c")]);
        assert_eq!(logged_ids(&store), ["r1", "r2", "r3"]);
        assert_eq!(*store.subscribe().borrow(), 3);
        // Each decided on the state the ones before it left.
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&seen);
        let count_users = Request {
            request_id: "r5".into(),
            decide: Box::new(move |t| {
                let n = ["a", "b", "c", "d"]
                    .iter()
                    .filter(|u| t.user(u).unwrap().is_some())
                    .count();
                counted.store(n, Ordering::Relaxed);
                Ok(created("e"))
            }),
        };
        store.write_batch(vec![create("r4", "d"), count_users]);
        assert_eq!(seen.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_request_id_met_earlier_in_its_batch_or_before_is_answered_from_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let decided = std::sync::Arc::new(AtomicUsize::new(0));
        let counting = |id: &str, user: &str| {
            let (decided, user) = (std::sync::Arc::clone(&decided), user.to_string());
            Request {
                request_id: id.into(),
                decide: Box::new(move |_| {
                    decided.fetch_add(1, Ordering::Relaxed);
                    Ok(created(&user))
                }),
            }
        };
        // A retry queued behind the original, in the same batch: "b" is never created.
        let written = store.write_batch(vec![
            counting("r1", "a"),
            counting("r2", "x"),
            counting("r1", "b"),
        ]);
        assert_eq!(
            decided.load(Ordering::Relaxed),
            2,
            "the retry is not decided"
        );
        assert_eq!(written[2].result, user_reply("a"), "the original's reply");
        assert_eq!(written[2].seq, 1, "and its record");
        assert!(!has_user(&store, "b"));
        // And in a later batch.
        let written = store.write_batch(vec![counting("r2", "y"), counting("r3", "c")]);
        assert_eq!(
            written,
            [
                Written {
                    result: user_reply("x"),
                    seq: 2
                },
                Written {
                    result: user_reply("c"),
                    seq: 3
                }
            ]
        );
        assert_eq!(logged_ids(&store), ["r1", "r2", "r3"]);
        assert!(!has_user(&store, "y"));
    }

    #[test]
    fn a_failing_decide_in_the_middle_of_a_batch_writes_nothing_and_spares_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let panics = Request {
            request_id: "r4".into(),
            decide: Box::new(|_| panic!("a bug in one command")),
        };
        let empty = Request {
            request_id: "r5".into(),
            decide: Box::new(|_| {
                Ok(Decision {
                    entries: Vec::new(),
                    reply: TrackerReply::Done,
                })
            }),
        };
        let written = store.write_batch(vec![
            create("r1", "a"),
            refused("r2"),
            create("r3", "c"),
            panics,
            empty,
            create("r6", "f"),
        ]);
        let kinds: Vec<_> = written
            .iter()
            .map(|w| w.result.as_ref().map_err(|e| e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                Ok(&TrackerReply::User { user: "a".into() }),
                Err(ErrorKind::InvalidArgument),
                Ok(&TrackerReply::User { user: "c".into() }),
                Err(ErrorKind::Internal),
                Ok(&TrackerReply::Done),
                Ok(&TrackerReply::User { user: "f".into() }),
            ]
        );
        // The refused ones rest on the state they were decided on; records are numbered
        // without gaps.
        let seqs: Vec<u64> = written.iter().map(|w| w.seq).collect();
        assert_eq!(seqs, [1, 1, 2, 2, 2, 3]);
        assert_eq!(logged_ids(&store), ["r1", "r3", "r6"]);
        // Nothing remembers the refused request ids: a retry is decided again.
        let written = store.write_batch(vec![create("r2", "b")]);
        assert_eq!(written[0].result, user_reply("b"));
        assert_eq!(written[0].seq, 4);
    }

    #[test]
    fn a_record_that_cannot_be_applied_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A damaged user row: a group it creates is put, then its owner cannot be updated.
        let txn = store.begin_write().unwrap();
        txn.open_table(USERS)
            .unwrap()
            .insert("broken", b"not json".as_slice())
            .unwrap();
        store.commit(txn).unwrap();
        let group = Request {
            request_id: "r2".into(),
            decide: Box::new(|_| {
                Ok(Decision {
                    entries: vec![LogEntry::GroupCreated {
                        group: "g".into(),
                        owner: "broken".into(),
                        id: Some(crate::records::new_group_id()),
                    }],
                    reply: TrackerReply::Done,
                })
            }),
        };
        let written = store.write_batch(vec![create("r1", "a"), group, create("r3", "c")]);
        assert_eq!(written[0].result, user_reply("a"));
        assert_eq!(
            written[1].result.as_ref().map_err(|e| e.kind),
            Err(ErrorKind::Internal)
        );
        assert_eq!(written[2].result, user_reply("c"));
        assert_eq!((written[0].seq, written[2].seq), (1, 2));
        assert!(has_user(&store, "a") && has_user(&store, "c"));
        assert!(
            store.read(|t| Ok(t.group("g")?)).unwrap().is_none(),
            "its half-applied record was rolled back"
        );
        assert_eq!(logged_ids(&store), ["r1", "r3"]);
        assert_eq!(store.last_seq().unwrap(), 2);
        assert!(
            store.fault().is_none(),
            "a damaged row is not a storage fault"
        );
    }

    #[test]
    fn a_storage_fault_fails_every_request_of_the_batch_alike() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write_batch(vec![create("r1", "a")]);
        store.mark_faulted(&StoreError::Faulted("disk full".into()));
        let written = store.write_batch(vec![create("r2", "b"), refused("r3"), create("r1", "x")]);
        assert_eq!(written.len(), 3);
        for w in &written {
            assert_eq!(w, &written[0], "the same error for each");
            assert_eq!(w.seq, 0);
        }
        let e = written[0].result.as_ref().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("disk full"), "{e}");
        assert_eq!(store.last_seq().unwrap(), 1);
    }
}
