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

/// A request's write, waiting for the writer.
pub(super) struct Job {
    request_id: String,
    decide: Box<dyn FnOnce(&Tables<'_>) -> Result<Decision, ErrorReply> + Send>,
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
        for (done, written) in waiting.into_iter().zip(written) {
            // A request that gave up waiting no longer listens.
            let _ = done.send(written);
        }
    }
}
