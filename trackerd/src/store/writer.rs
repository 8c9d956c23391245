//! The store's write side for client requests: one thread that owns it. Requests queue their
//! writes through a bounded channel ([`Store::submit`]); the writer takes everything queued
//! (up to [`MAX_BATCH`]) and writes it as one batch, one commit (see `batch`), so concurrent
//! writes share an fdatasync and writes/s grow with the number of clients. Nothing waits on a
//! timer: what queues up while a commit runs is the next batch.
//!
//! The thread starts with the first write and holds the store only weakly: it ends once the
//! store is dropped.

use super::batch::{Request, Written};
use super::{Decision, Store, Tables};
use p2p_proto::ErrorReply;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError, Weak};
use tokio::sync::{mpsc, oneshot};

/// Most requests written in one batch.
pub const MAX_BATCH: usize = 256;
/// Requests that may wait for the writer; more wait to queue (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;

/// A request's decision, sent to the writer thread.
type QueuedDecide = Box<dyn FnOnce(&Tables<'_>) -> Result<Decision, ErrorReply> + Send>;

/// A request's write, waiting for the writer.
pub(super) struct Job {
    request_id: String,
    decide: QueuedDecide,
    done: oneshot::Sender<Written>,
}

impl Store {
    /// Applies one request as one log record, like [`Store::write`], but through the writer
    /// thread: it shares a commit with the requests queued with it. Returns how it ended once
    /// its batch is committed.
    pub async fn submit(
        self: &Arc<Self>,
        request_id: &str,
        decide: impl FnOnce(&Tables<'_>) -> Result<Decision, ErrorReply> + Send + 'static,
    ) -> Written {
        let queue = match self.queue() {
            Ok(q) => q,
            Err(e) => return Written::failed(e),
        };
        let (done, answer) = oneshot::channel();
        let job = Job {
            request_id: request_id.to_string(),
            decide: Box::new(decide),
            done,
        };
        if queue.send(job).await.is_err() {
            return Written::failed(ErrorReply::internal("the tracker's writer has stopped"));
        }
        answer.await.unwrap_or_else(|_| {
            Written::failed(ErrorReply::internal(
                "the tracker's writer stopped during the request",
            ))
        })
    }

    /// The writer's queue, starting the writer with the first write.
    fn queue(self: &Arc<Self>) -> Result<mpsc::Sender<Job>, ErrorReply> {
        let mut slot = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = slot.as_ref() {
            return Ok(queue.clone());
        }
        let (queue, jobs) = mpsc::channel(QUEUE);
        let store = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("trackerd-writer".into())
            .spawn(move || run(&store, jobs))
            .map_err(|e| ErrorReply::internal(format!("cannot start the tracker's writer: {e}")))?;
        *slot = Some(queue.clone());
        Ok(queue)
    }

    /// Requests waiting for the writer (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        let slot = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .map_or(0, |q| q.max_capacity().saturating_sub(q.capacity()))
    }
}

/// The writer: one batch of whatever is queued at a time, until the store is gone.
fn run(store: &Weak<Store>, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Gone: dropping the jobs tells their requests.
        let Some(store) = store.upgrade() else {
            return;
        };
        let mut waiting = Vec::with_capacity(batch.len());
        let requests: Vec<Request<'_>> = batch
            .into_iter()
            .map(|job| {
                waiting.push(job.done);
                Request {
                    request_id: job.request_id,
                    decide: job.decide,
                }
            })
            .collect();
        let count = requests.len();
        let written = catch_unwind(AssertUnwindSafe(|| store.write_batch(requests)))
            .unwrap_or_else(|_| {
                tracing::error!(count, "a batch of writes failed inside the tracker");
                let e = ErrorReply::internal("the tracker failed while writing the request");
                vec![Written::failed(e); count]
            });
        store.counted_batch(count);
        // Not held while the requests are answered: the store may be dropped after that.
        drop(store);
        for (done, written) in waiting.into_iter().zip(written) {
            // A request that gave up waiting no longer listens.
            let _ = done.send(written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogEntry, LogRecord};
    use p2p_proto::tracker::TrackerReply;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(10);

    fn created(user: &str) -> Decision {
        Decision {
            entries: vec![LogEntry::UserCreated {
                user: user.into(),
                password_hash: "h".into(),
            }],
            reply: TrackerReply::User { user: user.into() },
        }
    }

    /// Polls `ok` until it holds, failing the test after [`DEADLINE`].
    async fn poll_until(what: &str, ok: impl Fn() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_one_commit_and_each_get_their_own_reply_and_seq() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        // The first write holds the writer inside its decide until released, so the next ones
        // queue up behind it.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .submit("first", move |_| {
                        let _ = started_tx.send(());
                        held.recv_timeout(DEADLINE).expect("released");
                        Ok(created("first"))
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started.recv_timeout(DEADLINE))
            .await
            .unwrap()
            .expect("the first write is being decided");
        const N: usize = 40;
        let mut writes = Vec::new();
        for i in 0..N {
            let store = Arc::clone(&store);
            let user = format!("u{i}");
            writes.push(tokio::spawn(async move {
                let id = format!("id{i}");
                let w = store.submit(&id, move |_| Ok(created(&user))).await;
                (id, w)
            }));
        }
        // A retry of one of them, queued with the original: answered from its record.
        let retry = {
            let store = Arc::clone(&store);
            poll_until("the writes to queue", || store.queued() == N).await;
            tokio::spawn(async move { store.submit("id7", |_| Ok(created("never"))).await })
        };
        poll_until("the retry to queue", || store.queued() == N + 1).await;
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().seq, 1);
        let mut seq_of = BTreeMap::new();
        for (i, write) in writes.into_iter().enumerate() {
            let (id, w) = write.await.unwrap();
            let user = format!("u{i}");
            assert_eq!(w.result, Ok(TrackerReply::User { user }), "{id}");
            seq_of.insert(w.seq, id);
        }
        let seqs: Vec<u64> = seq_of.keys().copied().collect();
        assert_eq!(seqs, (2..=N as u64 + 1).collect::<Vec<_>>(), "one seq each");
        let retried = retry.await.unwrap();
        assert_eq!(retried.result, Ok(TrackerReply::User { user: "u7".into() }));
        assert_eq!(seq_of.get(&retried.seq).map(String::as_str), Some("id7"));
        // Two commits: the first write alone, then everything that queued behind it.
        assert_eq!(store.batch_counts(), (2, N as u64 + 2));
        // The log holds each record under its own seq, in the order of application.
        let log: Vec<LogRecord> = store
            .records_from(1, 1000, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| serde_json::from_value(r).unwrap())
            .collect();
        assert_eq!(log.len(), N + 1);
        for record in &log[1..] {
            assert_eq!(seq_of.get(&record.seq), Some(&record.request_id));
        }
        assert!(
            store.read(|t| Ok(t.user("never")?)).unwrap().is_none(),
            "the retry was not applied"
        );
    }

    #[tokio::test]
    async fn the_writer_ends_with_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let w = store.submit("r1", |_| Ok(created("a"))).await;
        assert_eq!(w.seq, 1);
        drop(store);
        // The database file is free again: the writer held no handle on it.
        let store = Arc::new(Store::open(dir.path()).unwrap());
        assert_eq!(store.last_seq().unwrap(), 1);
    }
}
