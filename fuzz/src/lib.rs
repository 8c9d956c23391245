//! Fuzzing of every decoder that reads untrusted bytes, on stable Rust.
//!
//! Each [`Target`] generates inputs from a seeded RNG (structured values encoded by the real
//! encoders, then mutated at the JSON and the byte level) and feeds them to one family of
//! decoders. An input fails when a decoder panics, when one decode holds more heap than the
//! target's documented limit (measured by the counting allocator of [`alloc`]), or when a
//! property check of the target (round trips, split invariance, unforgeable grants) does not
//! hold. Hangs are caught by the watchdog of the `p2p-fuzz` binary.
//!
//! Input `i` of a run is made from an RNG seeded with `(seed, target, i)` alone, so a seed and
//! an input number reproduce it exactly.

pub mod alloc;
pub mod corpus;
pub mod json;
pub mod mutate;
pub mod stream;
pub mod targets;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use fastrand::Rng;

/// One family of decoders under test.
pub struct Target {
    pub name: &'static str,
    /// What it feeds to which decoders, for `--list`.
    pub about: &'static str,
    /// The allocation limit of one decode, in words (the code is in `check`).
    pub limit: &'static str,
    pub generate: fn(&mut Rng) -> Vec<u8>,
    /// Decodes one input; panics (an `assert!`) when a property does not hold.
    pub check: fn(&[u8], &mut Meter),
}

/// Measures the decodes of one input against their allocation limits.
#[derive(Debug, Default)]
pub struct Meter {
    peak: usize,
    over: Option<String>,
}

impl Meter {
    /// Runs one decode, recording the most heap it held; more than `limit` bytes fails the
    /// input.
    pub fn decode<R>(&mut self, what: &str, limit: usize, f: impl FnOnce() -> R) -> R {
        self.decode_then_limit(what, f, |_| limit)
    }

    /// Like [`decode`](Self::decode), with a limit that depends on what was decoded (how many
    /// items a stream held).
    pub fn decode_then_limit<R>(
        &mut self,
        what: &str,
        f: impl FnOnce() -> R,
        limit: impl FnOnce(&R) -> usize,
    ) -> R {
        let (result, peak) = alloc::measure(f);
        let limit = limit(&result);
        self.peak = self.peak.max(peak);
        if peak > limit && self.over.is_none() {
            self.over = Some(format!(
                "{what} held {peak} bytes of heap, over its limit of {limit}"
            ));
        }
        result
    }
}

/// Why an input failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Panic(String),
    Allocation(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panic(m) => write!(f, "panic: {m}"),
            Failure::Allocation(m) => write!(f, "allocation: {m}"),
        }
    }
}

thread_local! {
    static IN_FUZZ: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a fuzzed decode are recorded, not printed; any other panic is reported as
/// usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_FUZZ.with(std::cell::Cell::get) {
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{text}{place}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Feeds one input to a target: the most heap one of its decodes held, or why it failed.
pub fn run_one(target: &Target, input: &[u8]) -> Result<usize, Failure> {
    install_panic_hook();
    IN_FUZZ.with(|f| f.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut meter = Meter::default();
        (target.check)(input, &mut meter);
        meter
    }));
    IN_FUZZ.with(|f| f.set(false));
    match outcome {
        Ok(Meter { over: Some(m), .. }) => Err(Failure::Allocation(m)),
        Ok(meter) => Ok(meter.peak),
        Err(_) => Err(Failure::Panic(
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "(no message)".into()),
        )),
    }
}

fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The RNG input `index` of `target` is made from, under `seed`.
pub fn input_rng(seed: u64, target: &str, index: u64) -> Rng {
    // splitmix64 of the three, so neighbouring indices get unrelated streams.
    let mut z = seed ^ fnv(target) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Rng::with_seed(z ^ (z >> 31))
}

/// Input `index` of `target` under `seed`.
pub fn input(target: &Target, seed: u64, index: u64) -> Vec<u8> {
    (target.generate)(&mut input_rng(seed, target.name, index))
}

/// Which input is being decoded now, and since when: what the watchdog looks at.
pub struct Progress {
    pub index: AtomicU64,
    /// Nanoseconds since [`Progress::epoch`] at which the current input started; 0 when idle.
    pub started: AtomicU64,
}

pub static PROGRESS: Progress = Progress {
    index: AtomicU64::new(0),
    started: AtomicU64::new(0),
};

impl Progress {
    /// The instant `started` counts from.
    pub fn epoch() -> Instant {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    fn begin(&self, index: u64) {
        let now = Progress::epoch().elapsed().as_nanos() as u64;
        self.index.store(index, Ordering::Relaxed);
        self.started.store(now.max(1), Ordering::Release);
    }

    fn end(&self) {
        self.started.store(0, Ordering::Release);
    }

    /// The input running for longer than `limit`, if one is.
    pub fn stuck(&self, limit: Duration) -> Option<u64> {
        let started = self.started.load(Ordering::Acquire);
        let now = Progress::epoch().elapsed().as_nanos() as u64;
        (started != 0 && now.saturating_sub(started) > limit.as_nanos() as u64)
            .then(|| self.index.load(Ordering::Relaxed))
    }
}

/// The first failing input of a run.
#[derive(Debug, Clone)]
pub struct Found {
    pub index: u64,
    pub failure: Failure,
    pub input: Vec<u8>,
}

/// What a run of one target did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    /// Inputs decoded (up to and including a failing one).
    pub inputs: u64,
    pub elapsed: Duration,
    /// The longest one input took (generation not included).
    pub slowest: Duration,
    /// The most heap one decode held.
    pub peak: usize,
    pub found: Option<Found>,
}

/// Runs inputs `0..inputs` of `target` under `seed`, stopping at the first failure.
pub fn fuzz(target: &Target, seed: u64, inputs: u64) -> Report {
    Progress::epoch();
    let start = Instant::now();
    let mut peak = 0;
    let mut found = None;
    let mut done = 0;
    let mut slowest = Duration::ZERO;
    for index in 0..inputs {
        let data = input(target, seed, index);
        PROGRESS.begin(index);
        let began = Instant::now();
        let outcome = run_one(target, &data);
        slowest = slowest.max(began.elapsed());
        PROGRESS.end();
        done = index + 1;
        match outcome {
            Ok(p) => peak = peak.max(p),
            Err(failure) => {
                found = Some(Found {
                    index,
                    failure,
                    input: data,
                });
                break;
            }
        }
    }
    Report {
        target: target.name,
        seed,
        inputs: done,
        elapsed: start.elapsed(),
        slowest,
        peak,
        found,
    }
}

/// Where failing inputs are written: `fuzz/crashes/` of the source tree.
pub fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes")
}

/// Writes a failing input to `dir` as `<target>-<seed>-<index>.bin`.
pub fn write_crash(
    dir: &Path,
    target: &str,
    seed: u64,
    index: u64,
    input: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{target}-{seed}-{index}.bin"));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// The input as hex, cut to `max` bytes (the whole input is in the crash file).
pub fn hex_preview(input: &[u8], max: usize) -> String {
    let shown = &input[..input.len().min(max)];
    let mut text = hex::encode(shown);
    if input.len() > max {
        text.push_str(&format!("… ({} bytes in all)", input.len()));
    }
    text
}

/// A target by name.
pub fn target(name: &str) -> Option<&'static Target> {
    targets::all().iter().find(|t| t.name == name)
}

/// A fresh directory for the targets that read files: in /dev/shm when there is one (a file
/// system in memory: a disk would make those targets wait on writes), else in the temp dir.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("p2p-fuzz").tempdir_in(shm)
    {
        return Ok(dir);
    }
    tempfile::Builder::new().prefix("p2p-fuzz").tempdir()
}
