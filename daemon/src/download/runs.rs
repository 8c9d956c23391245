//! Writing verified pieces to the part file in runs of consecutive pieces.
//!
//! Each write is a request to the disk (and, in a virtual machine, an exit to the hypervisor);
//! one write of [`RUN`] pieces costs about what one of a single piece does. Pieces of one peer
//! arrive one after another, a few milliseconds apart, so a verified piece waits, up to
//! [`WAIT`], until [`RUN`] pieces wait: the first to arrive writes them all (it is the
//! *writer*), each run of consecutive ones in one write; the others join and return at once.
//! A download verifies only a few pieces at once, so pieces never wait for long, whether they
//! come from one peer or from several (each its own run).
//!
//! Every piece counts only once it is written (the writer settles each one), so nothing is
//! offered to peers or made durable before it is on disk. A second copy of a piece (the
//! endgame asks several peers) is never written: a copy that arrives while one waits, is being
//! written or was written is settled as a duplicate, all under one lock.

use super::storage::Storage;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Pieces written at once, at most (2 MiB); as many waiting make the writer write.
pub const RUN: usize = 4;
/// How long a verified piece waits for others.
pub const WAIT: Duration = Duration::from_millis(10);

/// A verified piece waiting to be written, told what became of it.
pub trait Verified: Send {
    /// Whether the piece is already verified and written (another copy won).
    fn is_done(&self) -> bool;
    /// The piece was written (or failed to be); a written piece is done when this returns.
    fn written(self, result: std::io::Result<()>);
    /// Another copy of the piece won: this one is not written.
    fn duplicate(self);
}

/// The pieces of one download waiting to be written.
pub struct Runs<T> {
    state: Mutex<State<T>>,
    /// Rung when [`RUN`] pieces wait (the writer need not wait longer).
    enough: Condvar,
}

struct State<T> {
    waiting: BTreeMap<usize, (Bytes, T)>,
    /// The pieces the writer is writing (and settling) now.
    in_write: Vec<usize>,
    /// Whether a thread is the writer now.
    writing: bool,
}

impl<T: Verified> Default for Runs<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: BTreeMap::new(),
                in_write: Vec::new(),
                writing: false,
            }),
            enough: Condvar::new(),
        }
    }
}

impl<T: Verified> Runs<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes piece `piece` (`data`, verified) into `storage` with the pieces around it, and
    /// settles `verified`; blocking, and on the blocking pool: the caller may become the
    /// writer, which waits for pieces and writes them until none is waiting.
    pub fn write(&self, storage: &Storage, piece: usize, data: Bytes, verified: T) {
        let mut state = self.lock();
        if state.waiting.contains_key(&piece)
            || state.in_write.contains(&piece)
            || verified.is_done()
        {
            drop(state);
            verified.duplicate();
            return;
        }
        state.waiting.insert(piece, (data, verified));
        if state.writing {
            if state.waiting.len() >= RUN {
                self.enough.notify_one();
            }
            return;
        }
        state.writing = true;
        let mut writer = Writer {
            runs: self,
            done: false,
        };
        self.write_waiting(storage, state, &mut writer);
    }

    /// The writer's loop: waits until [`RUN`] pieces wait (or [`WAIT`] passed), writes them
    /// all, and goes on while pieces wait; gives the role back, under the lock, when none is
    /// left.
    fn write_waiting<'a>(
        &'a self,
        storage: &Storage,
        mut state: MutexGuard<'a, State<T>>,
        writer: &mut Writer<'_, T>,
    ) {
        loop {
            let deadline = Instant::now() + WAIT;
            loop {
                let now = Instant::now();
                if state.waiting.len() >= RUN || now >= deadline {
                    break;
                }
                state = self
                    .enough
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let pieces = std::mem::take(&mut state.waiting);
            state.in_write = pieces.keys().copied().collect();
            drop(state);
            for run in runs_of(pieces) {
                write_run(storage, run);
            }
            state = self.lock();
            state.in_write.clear();
            if state.waiting.is_empty() {
                state.writing = false;
                writer.done = true;
                return;
            }
        }
    }
}

/// Gives the writer's role back if the writer ends without doing so (a panic), so that the
/// next piece becomes the writer of what is left.
struct Writer<'a, T: Verified> {
    runs: &'a Runs<T>,
    done: bool,
}

impl<T: Verified> Drop for Writer<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.runs.lock();
            state.in_write.clear();
            state.writing = false;
        }
    }
}

/// `pieces` cut into runs of consecutive pieces, at most [`RUN`] each, in order.
fn runs_of<V>(pieces: BTreeMap<usize, V>) -> Vec<Vec<(usize, V)>> {
    let mut runs: Vec<Vec<(usize, V)>> = Vec::new();
    for (piece, value) in pieces {
        match runs.last_mut() {
            Some(run)
                if run.len() < RUN && run.last().is_some_and(|(last, _)| last + 1 == piece) =>
            {
                run.push((piece, value));
            }
            _ => runs.push(vec![(piece, value)]),
        }
    }
    runs
}

/// Writes `run` (consecutive pieces) in one write where it can, else piece by piece, and
/// settles every piece with its result.
fn write_run<T: Verified>(storage: &Storage, run: Vec<(usize, (Bytes, T))>) {
    let Some(&(first, _)) = run.first() else {
        return;
    };
    let slices: Vec<&[u8]> = run.iter().map(|(_, (data, _))| &data[..]).collect();
    let together = run.len() > 1 && matches!(storage.write_run_blocking(first, &slices), Ok(true));
    for (piece, (data, verified)) in run {
        let result = if together {
            Ok(())
        } else {
            storage.write_piece_blocking(piece, &data)
        };
        drop(data);
        verified.written(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::files::PIECE_SIZE;
    use std::sync::Arc;

    /// What became of each piece, as the writer settled it.
    #[derive(Clone, Default)]
    struct Settled(Arc<Mutex<Vec<(usize, &'static str)>>>);

    struct Piece(usize, Settled);

    impl Verified for Piece {
        fn is_done(&self) -> bool {
            let written = |(i, what): &(usize, &str)| *i == self.0 && *what == "written";
            self.1.0.lock().unwrap().iter().any(written)
        }
        fn written(self, result: std::io::Result<()>) {
            let what = if result.is_ok() { "written" } else { "failed" };
            self.1.0.lock().unwrap().push((self.0, what));
        }
        fn duplicate(self) {
            self.1.0.lock().unwrap().push((self.0, "duplicate"));
        }
    }

    /// A whole piece of `fill`, at an aligned address (so that it may go in a direct write).
    fn piece(fill: u8) -> Bytes {
        let len = PIECE_SIZE as usize;
        let raw = Bytes::from(vec![fill; len + 4096]);
        let start = raw.as_ptr().align_offset(4096);
        raw.slice(start..start + len)
    }

    #[test]
    fn pieces_written_together_or_alone_all_land_and_are_settled_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let storage = Storage::create(&path, 6 * PIECE_SIZE).unwrap();
        let runs: Arc<Runs<Piece>> = Arc::default();
        let settled = Settled::default();
        // Pieces 0..4 and 5 from threads of their own, as verification jobs run; piece 2 twice.
        let threads: Vec<_> = [0usize, 1, 2, 3, 5, 2]
            .into_iter()
            .map(|i| {
                let (runs, storage, settled) =
                    (Arc::clone(&runs), storage.clone(), settled.clone());
                std::thread::spawn(move || {
                    runs.write(&storage, i, piece(i as u8 + 1), Piece(i, settled));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Whoever was the writer last returned only once nothing was waiting.
        assert!(runs.lock().waiting.is_empty());
        assert!(!runs.lock().writing);
        let mut got = settled.0.lock().unwrap().clone();
        got.sort();
        let written: Vec<usize> = got
            .iter()
            .filter(|(_, what)| *what == "written")
            .map(|(i, _)| *i)
            .collect();
        // The second copy of piece 2 is settled as a duplicate, whenever it came: beside the
        // first, while it was written, or after.
        assert_eq!(written, [0, 1, 2, 3, 5]);
        assert_eq!(got.len(), 6);
        assert!(got.contains(&(2, "duplicate")));
        assert!(got.iter().all(|(_, what)| *what != "failed"));
        let back = std::fs::read(&path).unwrap();
        for i in [0usize, 1, 2, 3, 5] {
            let at = i * PIECE_SIZE as usize;
            assert!(
                back[at..at + PIECE_SIZE as usize]
                    .iter()
                    .all(|&b| b == i as u8 + 1)
            );
        }
        assert!(
            back[4 * PIECE_SIZE as usize..5 * PIECE_SIZE as usize]
                .iter()
                .all(|&b| b == 0)
        );
    }

    #[test]
    fn waiting_pieces_are_cut_into_runs_of_consecutive_ones() {
        let cut = |pieces: &[usize]| -> Vec<Vec<usize>> {
            let map: BTreeMap<usize, ()> = pieces.iter().map(|&p| (p, ())).collect();
            runs_of(map)
                .into_iter()
                .map(|run| run.into_iter().map(|(p, ())| p).collect())
                .collect()
        };
        assert_eq!(
            cut(&[3, 4, 5, 7, 8, 20]),
            [vec![3, 4, 5], vec![7, 8], vec![20]]
        );
        assert_eq!(cut(&[10, 11, 12, 13, 14]), [vec![10, 11, 12, 13], vec![14]]);
        assert!(cut(&[]).is_empty());
    }
}
