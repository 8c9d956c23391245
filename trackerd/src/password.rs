//! Password hashing with argon2id and a random salt. Hashing is deliberately slow and
//! memory-hungry (19 MiB a hash), so it runs on a few threads of its own, and at most
//! [`MAX_WAITING`] more checks wait for a turn: past that a request is told to come back later,
//! so a flood of logins costs the flood its answers, not everyone else theirs.
//!
//! Own threads rather than the runtime's blocking pool: the allocator keeps an arena per
//! thread, and argon2's 19 MiB, freed on whichever of dozens of blocking threads ran it,
//! stayed resident in each (a tracker under login churn grew to 270 MiB). A fixed set of
//! threads bounds that to one hash's memory per thread.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use p2p_proto::{ErrorKind, ErrorReply};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

/// One hashing job, run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs password hashing on its own threads, a few at a time.
#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: SyncSender<Job>,
    /// A hash of a random password, checked for unknown users so they cost the same time.
    decoy: Arc<str>,
}

/// Most password checks waiting for a hashing slot.
pub const MAX_WAITING: usize = 64;

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> Self {
        let random: [u8; 16] = rand::random();
        let decoy = Argon2::default()
            .hash_password(&random)
            .map(|h| h.to_string())
            .unwrap_or_default();
        let (jobs, queue) = sync_channel::<Job>(MAX_WAITING);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            jobs,
            decoy: decoy.into(),
        }
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, ErrorReply> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| ErrorReply::internal(format!("cannot hash password: {e}")))
        })
        .await
    }

    /// True when `password` matches the PHC string `hash`; with no hash (an unknown user),
    /// checks it against the decoy, in the same time, and says false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ErrorReply> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash).map_err(|e| {
                    ErrorReply::internal(format!("stored password hash unreadable: {e}"))
                })?;
                Ok(Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(matches && known)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ErrorReply> + Send + 'static,
    ) -> Result<T, ErrorReply> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ErrorReply::new(
                    ErrorKind::RateLimited,
                    "the tracker is busy checking passwords; try again in a few seconds",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ErrorReply::internal(
                    "no password hashing thread is running",
                ));
            }
        }
        result
            .await
            .map_err(|_| ErrorReply::internal("the password check was lost"))?
    }
}

/// A hashing thread: runs jobs until every sender is gone.
fn hashing_thread(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running it.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            // A panicking job loses its answer (the caller is told), not the thread.
            Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
            Err(_) => return,
        }
    }
}
