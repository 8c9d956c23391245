//! The one way p2pd shares mutable state between tasks: a lock that is taken for the length of
//! a closure and never across an `.await`, and that stays usable after a panic elsewhere
//! (poisoning is handled here, once, instead of at every call site).

use std::sync::{Mutex, PoisonError, RwLock};

/// A value behind a mutex, reached only through [`Locked::with`].
#[derive(Debug, Default)]
pub struct Locked<T>(Mutex<T>);

impl<T> Locked<T> {
    pub fn new(value: T) -> Self {
        Self(Mutex::new(value))
    }

    /// Runs `op` on the value under the lock. `op` is synchronous, so the lock cannot be held
    /// across an `.await`; a panic in another holder does not make the value unreachable.
    pub fn with<R>(&self, op: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        op(&mut guard)
    }
}

impl<T: Clone> Locked<T> {
    /// A copy of the value.
    pub fn get(&self) -> T {
        self.with(|v| v.clone())
    }
}

/// A value read often and written rarely, reached only through [`Shared::read`] and
/// [`Shared::write`].
#[derive(Debug, Default)]
pub struct Shared<T>(RwLock<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(value))
    }

    pub fn read<R>(&self, op: impl FnOnce(&T) -> R) -> R {
        let guard = self.0.read().unwrap_or_else(PoisonError::into_inner);
        op(&guard)
    }

    pub fn write<R>(&self, op: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        op(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_panic_while_holding_the_lock_does_not_lose_the_value() {
        let value = Arc::new(Locked::new(1));
        let holder = Arc::clone(&value);
        let result = std::thread::spawn(move || {
            holder.with(|v| {
                *v = 2;
                panic!("boom");
            })
        })
        .join();
        assert!(result.is_err());
        assert_eq!(value.get(), 2);
        let shared = Arc::new(Shared::new(vec![1]));
        let writer = Arc::clone(&shared);
        let _ = std::thread::spawn(move || writer.write(|_| panic!("boom"))).join();
        assert_eq!(shared.read(|v| v.len()), 1);
    }
}
