//! Logging refused connections without letting a flood flood the log: the first refusal is
//! logged at once, later ones are counted and summed up in one line at most every 10 s.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(10);

pub struct RefusalLog {
    what: &'static str,
    state: Mutex<Option<(Instant, u64)>>,
}

impl RefusalLog {
    /// `what` names the listener in the log ("tracker", "peer").
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            state: Mutex::new(None),
        }
    }

    /// Notes one refused connection from `peer` for `reason`.
    pub fn refused(&self, peer: std::net::SocketAddr, reason: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            Some((since, count)) if now.duration_since(*since) < EVERY => *count += 1,
            last => {
                let earlier = last.map_or(0, |(_, count)| count);
                tracing::warn!(
                    listener = self.what,
                    %peer,
                    %reason,
                    refused_since_last_line = earlier,
                    "connection refused"
                );
                *last = Some((now, 0));
            }
        }
    }
}
