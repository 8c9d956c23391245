//! Which pieces of a complete file a seeder hands out, so that simultaneous downloaders feed
//! each other instead of each taking a whole copy from the seeder.
//!
//! Each piece may go out at most `max(FLOOR, level + 1)` times, where `level` is the fewest
//! copies any piece has had. While some pieces have not gone out twice, a request for a piece
//! that already has is refused (REJECT): the downloader takes it from a peer that got it, and
//! asks the seeder for a rarer one. Once every piece has gone out twice the limit rises, so a
//! lone downloader is never starved, only steered. Pure logic, unit-tested.

/// Copies of every piece a seeder hands out before it starts steering.
const FLOOR: u32 = 2;

#[derive(Debug)]
pub struct UploadSpread {
    sent: Vec<u32>,
    /// The fewest copies any piece has had, and how many pieces have exactly that many.
    level: u32,
    at_level: usize,
}

impl UploadSpread {
    pub fn new(pieces: usize) -> Self {
        Self {
            sent: vec![0; pieces],
            level: 0,
            at_level: pieces,
        }
    }

    /// Whether `piece` may be sent now.
    pub fn allows(&self, piece: usize) -> bool {
        self.sent
            .get(piece)
            .is_some_and(|&s| s < FLOOR.max(self.level + 1))
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
    fn each_piece_goes_out_twice_before_any_goes_out_three_times() {
        let mut s = UploadSpread::new(3);
        for _ in 0..2 {
            assert!(s.allows(0));
            s.sent(0);
        }
        assert!(
            !s.allows(0),
            "piece 0 went out twice while others never did"
        );
        assert!(s.allows(1));
        for p in [1, 1, 2, 2] {
            s.sent(p);
        }
        assert!(s.allows(0), "every piece went out twice: the limit rises");
        assert!(!s.allows(3), "out of range");
    }

    #[test]
    fn a_lone_downloader_is_never_refused() {
        let mut s = UploadSpread::new(4);
        for p in 0..4 {
            assert!(s.allows(p));
            s.sent(p);
        }
        for p in 0..4 {
            assert!(s.allows(p), "a second full copy is allowed");
            s.sent(p);
        }
        for p in 0..4 {
            assert!(s.allows(p), "and a third");
        }
    }
}
