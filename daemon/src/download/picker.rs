//! Which piece to ask a peer for next. Pure logic, no I/O; see `PIECES.md` beside this file
//! for the invariants.
//!
//! - Rarest first: among missing pieces nobody has been asked for, the one the fewest
//!   connected peers hold. Ties go in index order from a random starting point, so downloaders
//!   of one seeder spread over the file instead of all asking for piece 0.
//! - Endgame: when every missing piece the peer holds is already requested elsewhere, the
//!   piece is requested again from this peer (at most [`MAX_DUPLICATES`] requests per piece);
//!   whichever copy arrives first wins and the others are cancelled.
//!
//! Cost: [`Picker::pick`] scans every piece, so the peer connections call it only when a request
//! slot is free and something changed that could give it a result (see `peer.rs`); everything
//! a single frame can cause (`peer_has`, `pick_piece`, `release`, `arrived`) is O(1).

use p2p_proto::bitfield::Bitfield;

/// Most simultaneous requests for one piece in the endgame.
pub const MAX_DUPLICATES: u8 = 3;

#[derive(Debug)]
pub struct Picker {
    done: Bitfield,
    /// How many connected peers hold each piece.
    availability: Vec<u32>,
    /// Connected peers that held every piece when they connected (seeders).
    seeds: u32,
    /// How many requests are outstanding for each piece.
    in_flight: Vec<u8>,
    /// A copy arrived and is being verified: never request it again unless it fails.
    arrived: Vec<bool>,
    start: usize,
}

impl Picker {
    pub fn new(done: Bitfield, start: usize) -> Self {
        let n = done.len();
        Self {
            done,
            availability: vec![0; n],
            seeds: 0,
            in_flight: vec![0; n],
            arrived: vec![false; n],
            start: if n == 0 { 0 } else { start % n },
        }
    }

    pub fn len(&self) -> usize {
        self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    pub fn is_complete(&self) -> bool {
        self.done.is_complete()
    }

    pub fn is_done(&self, piece: usize) -> bool {
        self.done.get(piece)
    }

    pub fn missing(&self) -> usize {
        self.done.len() - self.done.count()
    }

    /// A peer connected holding `has`; returns whether it counts as a seeder, which the
    /// caller passes back to [`peer_removed`](Self::peer_removed).
    pub fn peer_added(&mut self, has: &Bitfield) -> bool {
        let seed = has.is_complete();
        if seed {
            self.seeds += 1;
        }
        for i in has.iter_set() {
            if let Some(a) = self.availability.get_mut(i) {
                *a += 1;
            }
        }
        seed
    }

    /// A peer left; `seed` is what [`peer_added`](Self::peer_added) returned for it (a peer
    /// that completed through HAVEs was never counted as a seeder).
    pub fn peer_removed(&mut self, has: &Bitfield, seed: bool) {
        if seed {
            self.seeds = self.seeds.saturating_sub(1);
        }
        for i in has.iter_set() {
            if let Some(a) = self.availability.get_mut(i) {
                *a = a.saturating_sub(1);
            }
        }
    }

    /// A connected peer announced a new piece.
    pub fn peer_has(&mut self, piece: usize) {
        if let Some(a) = self.availability.get_mut(piece) {
            *a += 1;
        }
    }

    /// The next piece to request from a peer holding `has`; pieces in `exclude` (already
    /// requested from it, or refused by it a moment ago) are not picked. Marks the piece as in
    /// flight.
    ///
    /// With `spare_seed`, the peer is a seeder and pieces that some other, partial peer holds are
    /// left to that peer: what a seeder uploads should be what nobody else can give. (The
    /// endgame still may ask a seeder for anything.)
    pub fn pick(&mut self, has: &Bitfield, exclude: &[usize], spare_seed: bool) -> Option<usize> {
        let n = self.len();
        let mut best: Option<(u32, usize)> = None;
        for k in 0..n {
            let i = (self.start + k) % n;
            if self.done.get(i) || self.in_flight[i] > 0 || !has.get(i) || exclude.contains(&i) {
                continue;
            }
            if spare_seed && self.availability[i] > self.seeds {
                continue;
            }
            let a = self.availability[i];
            if best.is_none_or(|(b, _)| a < b) {
                best = Some((a, i));
                if a <= 1 {
                    break;
                }
            }
        }
        let piece = match best {
            Some((_, i)) => i,
            // Sparing a seeder, duplicate requests only in the true endgame: while some
            // missing piece has not been requested at all, a partial peer will be asked for it.
            None if spare_seed && self.some_unrequested() => return None,
            None => self.endgame_pick(has, exclude)?,
        };
        self.in_flight[piece] = self.in_flight[piece].saturating_add(1);
        Some(piece)
    }

    /// Requests `piece` from a peer holding `has` if a full [`pick`](Self::pick) could choose it
    /// outside the endgame: missing, asked of nobody, not excluded, and (with `spare_seed`) held
    /// by no partial peer. O(1): for a piece a peer just announced, when its last full pick
    /// found nothing for it. Marks the piece as in flight.
    pub fn pick_piece(
        &mut self,
        piece: usize,
        has: &Bitfield,
        exclude: &[usize],
        spare_seed: bool,
    ) -> bool {
        let wanted = piece < self.len()
            && has.get(piece)
            && !self.done.get(piece)
            && !self.arrived[piece]
            && self.in_flight[piece] == 0
            && !exclude.contains(&piece)
            && !(spare_seed && self.availability[piece] > self.seeds);
        if wanted {
            self.in_flight[piece] = 1;
        }
        wanted
    }

    fn some_unrequested(&self) -> bool {
        (0..self.len()).any(|i| !self.done.get(i) && self.in_flight[i] == 0 && !self.arrived[i])
    }

    fn endgame_pick(&self, has: &Bitfield, exclude: &[usize]) -> Option<usize> {
        (0..self.len())
            .filter(|&i| {
                !self.done.get(i)
                    && !self.arrived[i]
                    && has.get(i)
                    && self.in_flight[i] < MAX_DUPLICATES
                    && !exclude.contains(&i)
            })
            .min_by_key(|&i| self.in_flight[i])
    }

    /// A request ended without the piece (rejected, timed out, peer gone).
    pub fn release(&mut self, piece: usize) {
        if let Some(f) = self.in_flight.get_mut(piece) {
            *f = f.saturating_sub(1);
        }
    }

    /// A copy of `piece` arrived and goes to verification.
    pub fn arrived(&mut self, piece: usize) {
        if let Some(a) = self.arrived.get_mut(piece) {
            *a = true;
        }
    }

    /// A piece arrived and verified; returns false if another copy was first.
    pub fn complete(&mut self, piece: usize) -> bool {
        self.release(piece);
        self.done.set(piece)
    }

    /// A piece that arrived failed verification: it is missing again.
    pub fn failed(&mut self, piece: usize) {
        self.release(piece);
        if let Some(a) = self.arrived.get_mut(piece) {
            *a = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: usize) -> Bitfield {
        Bitfield::full(n)
    }

    #[test]
    fn rarest_piece_first() {
        let mut p = Picker::new(Bitfield::new(4), 0);
        let mut common = all(4);
        common.clear(3);
        p.peer_added(&all(4));
        p.peer_added(&common);
        // Piece 3 is held by one peer only.
        assert_eq!(p.pick(&all(4), &[], false), Some(3));
    }

    #[test]
    fn ties_start_at_the_random_offset_and_each_piece_is_asked_once() {
        let mut p = Picker::new(Bitfield::new(4), 2);
        p.peer_added(&all(4));
        let order: Vec<_> = (0..4).map_while(|_| p.pick(&all(4), &[], false)).collect();
        assert_eq!(order, vec![2, 3, 0, 1]);
    }

    #[test]
    fn endgame_duplicates_requests_but_not_to_the_same_peer() {
        let mut p = Picker::new(Bitfield::new(2), 0);
        p.peer_added(&all(2));
        p.peer_added(&all(2));
        assert_eq!(p.pick(&all(2), &[], false), Some(0));
        assert_eq!(p.pick(&all(2), &[], false), Some(1));
        // Second peer: nothing unrequested is left, so it duplicates, but never a piece it
        // was already asked for.
        assert_eq!(p.pick(&all(2), &[0], false), Some(1));
        assert_eq!(p.pick(&all(2), &[0, 1], false), None);
        assert!(p.complete(1));
        assert!(!p.complete(1), "the second copy is not counted");
        assert_eq!(p.missing(), 1);
    }

    #[test]
    fn a_piece_being_verified_is_not_requested_again() {
        let mut p = Picker::new(Bitfield::new(1), 0);
        p.peer_added(&all(1));
        assert_eq!(p.pick(&all(1), &[], false), Some(0));
        // The copy arrived (no longer outstanding at the peer) and is being verified.
        p.arrived(0);
        assert_eq!(
            p.pick(&all(1), &[], false),
            None,
            "no endgame duplicate of an arrived piece"
        );
        p.failed(0);
        assert_eq!(
            p.pick(&all(1), &[], false),
            Some(0),
            "a bad copy makes it wanted again"
        );
    }

    #[test]
    fn a_seeder_is_spared_what_a_partial_peer_holds() {
        let mut p = Picker::new(Bitfield::new(2), 0);
        let mut partial = Bitfield::new(2);
        partial.set(0);
        p.peer_added(&all(2));
        p.peer_added(&partial);
        assert_eq!(
            p.pick(&all(2), &[], true),
            Some(1),
            "piece 0 is left to the partial peer"
        );
        assert_eq!(p.pick(&partial, &[], false), Some(0));
        p.release(1);
        assert_eq!(p.pick(&all(2), &[], true), Some(1));
    }

    #[test]
    fn excluded_pieces_are_not_picked() {
        let mut p = Picker::new(Bitfield::new(2), 0);
        p.peer_added(&all(2));
        assert_eq!(p.pick(&all(2), &[0], false), Some(1));
    }

    #[test]
    fn released_and_failed_pieces_are_picked_again() {
        let mut p = Picker::new(Bitfield::new(1), 0);
        p.peer_added(&all(1));
        assert_eq!(p.pick(&all(1), &[], false), Some(0));
        p.failed(0);
        assert_eq!(p.pick(&all(1), &[], false), Some(0));
        p.release(0);
        assert!(p.complete(0));
        assert!(p.is_complete());
        assert_eq!(p.pick(&all(1), &[], false), None);
    }

    #[test]
    fn a_single_announced_piece_is_picked_only_when_a_full_pick_could() {
        let mut done = Bitfield::new(4);
        done.set(0);
        let mut p = Picker::new(done, 0);
        let mut has = Bitfield::new(4);
        for piece in [0, 1, 2] {
            has.set(piece);
            p.peer_has(piece);
        }
        p.peer_added(&Bitfield::new(4));
        assert!(!p.pick_piece(0, &has, &[], false), "piece 0 is done");
        assert!(!p.pick_piece(3, &has, &[], false), "the peer lacks piece 3");
        assert!(!p.pick_piece(9, &has, &[], false), "out of range");
        assert!(!p.pick_piece(2, &has, &[2], false), "excluded");
        assert!(p.pick_piece(1, &has, &[], false));
        assert!(!p.pick_piece(1, &has, &[], false), "in flight already");
        // The full pick agrees: only piece 2 is left to ask for.
        assert_eq!(p.pick(&has, &[1], false), Some(2));
    }

    #[test]
    fn a_seeder_counted_at_connect_is_uncounted_when_it_leaves() {
        let mut p = Picker::new(Bitfield::new(2), 0);
        let mut partial = Bitfield::new(2);
        partial.set(0);
        let seed = p.peer_added(&all(2));
        assert!(seed);
        assert!(!p.peer_added(&partial));
        // The partial peer completes through a HAVE, then leaves: still one seeder.
        partial.set(1);
        p.peer_has(1);
        p.peer_removed(&partial, false);
        assert_eq!(p.seeds, 1);
        p.peer_removed(&all(2), seed);
        assert_eq!(p.seeds, 0);
    }

    #[test]
    fn a_peer_without_wanted_pieces_gets_nothing() {
        let mut done = Bitfield::new(2);
        done.set(0);
        let mut p = Picker::new(done, 0);
        let mut only_first = Bitfield::new(2);
        only_first.set(0);
        assert_eq!(p.pick(&only_first, &[], false), None);
    }
}
