//! Password hashing with argon2id and a random salt. Hashing is deliberately slow and
//! memory-hungry, so a semaphore bounds how many run at once.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use p2p_proto::ErrorReply;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Runs password hashing on the blocking pool, a few at a time.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
}

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
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

    /// True when `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ErrorReply> {
        self.run(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| {
                ErrorReply::internal(format!("stored password hash unreadable: {e}"))
            })?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ErrorReply> + Send + 'static,
    ) -> Result<T, ErrorReply> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ErrorReply::internal("tracker is shutting down"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ErrorReply::internal(format!("password task failed: {e}")))?
    }
}
