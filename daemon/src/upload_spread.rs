//! Which pieces of a complete file a seeder hands out, so that simultaneous downloaders feed
//! each other instead of each taking a whole copy from the seeder.
//!
//! Steering applies only while at least two downloaders are connected. Each piece may then go
//! out at most `max(FLOOR, level + 1)` times, where `level` is the fewest copies any piece has
//! had. While some pieces have not gone out at all, a request for a piece that already has is
//! refused (REJECT): the downloader takes it from a peer that got it, and asks the seeder for a
//! rarer one. Once every piece has gone out once the limit rises. Counts start over every
//! [`WINDOW`], so pieces that nobody asks for any more (everyone has them) cannot hold the
//! limit down for long: a downloader is steered, never starved. Pure logic, unit-tested.

use std::time::{Duration, Instant};

/// Copies of every piece a seeder hands out before it starts steering (measured: 1 gives
/// eight simultaneous downloaders 2.5 copies from the seeder, 2 gives 3.2).
const FLOOR: u32 = 1;
/// How long upload counts are kept before they start over.
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct UploadSpread {
    sent: Vec<u32>,
    /// The fewest copies any piece has had, and how many pieces have exactly that many.
    level: u32,
    at_level: usize,
    since: Instant,
}

impl UploadSpread {
    pub fn new(pieces: usize, now: Instant) -> Self {
        Self {
            sent: vec![0; pieces],
            level: 0,
            at_level: pieces,
            since: now,
        }
    }

    /// Whether `piece` may be sent now to one of `downloaders` connected peers.
    pub fn allows(&mut self, piece: usize, downloaders: usize, now: Instant) -> bool {
        if now.saturating_duration_since(self.since) >= WINDOW {
            *self = Self::new(self.sent.len(), now);
        }
        let Some(&sent) = self.sent.get(piece) else {
            return false;
        };
        downloaders < 2 || sent < FLOOR.max(self.level + 1)
    }

    /// Records that `piece` was sent.
    pub fn sent(&mut self, piece: usize) {
        let Some(count) = self.sent.get_mut(piece) else {
            return;
        };
        if *count == self.level {
            self.at_level -= 1;
        }
        *count += 1;
        while self.at_level == 0 && !self.sent.is_empty() {
            self.level += 1;
            let level = self.level;
            self.at_level = self.sent.iter().filter(|&&s| s == level).count();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_piece_goes_out_once_before_any_goes_out_twice() {
        let now = Instant::now();
        let mut s = UploadSpread::new(3, now);
        assert!(s.allows(0, 8, now));
        s.sent(0);
        assert!(!s.allows(0, 8, now), "piece 0 went out, others never did");
        assert!(s.allows(1, 8, now));
        s.sent(1);
        s.sent(2);
        assert!(
            s.allows(0, 8, now),
            "every piece went out once: the limit rises"
        );
        s.sent(0);
        assert!(!s.allows(0, 8, now), "but not twice over");
        assert!(!s.allows(3, 8, now), "out of range");
    }

    #[test]
    fn a_lone_downloader_is_never_refused() {
        let now = Instant::now();
        let mut s = UploadSpread::new(4, now);
        for _ in 0..3 {
            for p in 0..4 {
                assert!(s.allows(p, 1, now));
                s.sent(p);
            }
        }
        assert!(s.allows(0, 1, now));
    }

    #[test]
    fn counts_start_over_so_unwanted_pieces_cannot_block_the_rest() {
        let now = Instant::now();
        let mut s = UploadSpread::new(2, now);
        // Piece 0 went out; piece 1 never did, and nobody asks for it.
        s.sent(0);
        assert!(!s.allows(0, 2, now), "steered while counts are fresh");
        assert!(
            s.allows(0, 2, now + WINDOW),
            "allowed once the window has passed"
        );
    }
}
