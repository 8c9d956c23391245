//! Password hashing with argon2id and a random salt. Hashing is deliberately slow and
//! memory-hungry, so a semaphore bounds how many run at once, and at most [`MAX_WAITING`] more
//! wait for a turn: past that a request is told to come back later, so a flood of logins
//! costs the flood its answers, not everyone else theirs.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use p2p_proto::{ErrorKind, ErrorReply};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

/// Runs password hashing on the blocking pool, a few at a time.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
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
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::default(),
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
        let queued = Queued::join(&self.waiting).ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::RateLimited,
                "the tracker is busy checking passwords; try again in a few seconds",
            )
        })?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ErrorReply::internal("tracker is shutting down"))?;
        drop(queued);
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ErrorReply::internal(format!("password task failed: {e}")))?
    }
}

/// A place in the queue for a hashing slot, given up when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WAITING).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
