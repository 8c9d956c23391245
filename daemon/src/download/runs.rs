//! Writing verified pieces to the part file in runs of consecutive pieces.
//!
//! Each write is a request to the disk (and, in a virtual machine, an exit to the hypervisor);
//! one write of [`RUN`] pieces costs about what one of a single piece does. Pieces of one peer
//! arrive one after another, a few milliseconds apart, so a verified piece waits up to [`WAIT`]
//! for the ones after it: the first to arrive writes the run (it is the *writer*), the others
//! join it and return at once. Every piece counts only once its run is written (the writer
//! settles each one), so nothing is offered to peers or made durable before it is on disk.

use super::storage::Storage;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most pieces written at once (2 MiB).
pub const RUN: usize = 4;
/// How long a verified piece waits for the pieces after it.
pub const WAIT: Duration = Duration::from_millis(10);

/// A verified piece waiting to be written, told what became of it.
pub trait Verified: Send {
    /// The piece's run was written (or failed to be).
    fn written(self, result: std::io::Result<()>);
    /// Another copy of the piece was waiting already: this one is not written.
    fn duplicate(self);
}

/// The pieces of one download waiting to be written.
pub struct Runs<T> {
    state: Mutex<State<T>>,
    /// Rung when a whole run is waiting (the writer need not wait longer).
    run_ready: Condvar,
}

struct State<T> {
    waiting: BTreeMap<usize, (Bytes, T)>,
    /// Whether a thread is the writer now.
    writing: bool,
}

impl<T: Verified> Default for Runs<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: BTreeMap::new(),
                writing: false,
            }),
            run_ready: Condvar::new(),
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
        if state.waiting.contains_key(&piece) {
            drop(state);
            verified.duplicate();
            return;
        }
        state.waiting.insert(piece, (data, verified));
        if state.writing {
            if first_run(&state.waiting).len() >= RUN {
                self.run_ready.notify_one();
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

    /// The writer's loop: waits for a run (or [`WAIT`]), writes it, and goes on while pieces
    /// wait; gives the role back, under the lock, when none is left.
    fn write_waiting<'a>(
        &'a self,
        storage: &Storage,
        mut state: MutexGuard<'a, State<T>>,
        writer: &mut Writer<'_, T>,
    ) {
        let mut deadline = Instant::now() + WAIT;
        loop {
            loop {
                let now = Instant::now();
                if first_run(&state.waiting).len() >= RUN || now >= deadline {
                    break;
                }
                state = self
                    .run_ready
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let run: Vec<(usize, (Bytes, T))> = first_run(&state.waiting)
                .into_iter()
                .filter_map(|p| state.waiting.remove(&p).map(|entry| (p, entry)))
                .collect();
            drop(state);
            write_run(storage, run);
            state = self.lock();
            if state.waiting.is_empty() {
                state.writing = false;
                writer.done = true;
                return;
            }
            deadline = Instant::now() + WAIT;
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
            self.runs.lock().writing = false;
        }
    }
}

/// The lowest waiting piece and those right after it that wait too, at most [`RUN`].
fn first_run<T>(waiting: &BTreeMap<usize, T>) -> Vec<usize> {
    let mut run: Vec<usize> = Vec::with_capacity(RUN);
    for &piece in waiting.keys().take(RUN) {
        if run.last().is_some_and(|&last| last + 1 != piece) {
            break;
        }
        run.push(piece);
    }
    run
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
        let mut written: Vec<usize> = got
            .iter()
            .filter(|(_, what)| *what == "written")
            .map(|(i, _)| *i)
            .collect();
        written.dedup();
        assert_eq!(written, [0, 1, 2, 3, 5]);
        // Each copy settled once: the second copy of piece 2 either waited beside the first (a
        // duplicate) or came after it was written (written again, with the same bytes).
        assert_eq!(got.len(), 6);
        assert_eq!(got.iter().filter(|(i, _)| *i == 2).count(), 2);
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
    fn a_run_is_the_lowest_waiting_piece_and_those_right_after_it() {
        let waiting: BTreeMap<usize, ()> = [3, 4, 5, 7, 8].into_iter().map(|p| (p, ())).collect();
        assert_eq!(first_run(&waiting), [3, 4, 5]);
        let long: BTreeMap<usize, ()> = (10..20).map(|p| (p, ())).collect();
        assert_eq!(first_run(&long), [10, 11, 12, 13]);
        assert!(first_run(&BTreeMap::<usize, ()>::new()).is_empty());
    }
}
