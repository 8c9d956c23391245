//! A counting global allocator: a thin wrapper around the system allocator that tracks, per
//! thread, the bytes currently allocated and the peak since the last [`measure`] began.
//!
//! Counting per thread keeps parallel tests (and the watchdog thread) out of each other's
//! numbers. Memory freed on another thread than the one that allocated it skews the counts of
//! both; the decoders under test run on one thread, so that does not happen inside a
//! measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated by the whole process now (what the watchdog of the binary watches).
static PROCESS: AtomicUsize = AtomicUsize::new(0);

/// Bytes the whole process holds now.
pub fn process_bytes() -> usize {
    PROCESS.load(Ordering::Relaxed)
}

pub struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    PROCESS.fetch_add(bytes, Ordering::Relaxed);
    // `try_with`: the counters may already be gone while a thread is being torn down.
    let _ = CURRENT.try_with(|c| {
        let now = c.get().saturating_add(bytes as isize);
        c.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
}

fn shrank(bytes: usize) {
    PROCESS.fetch_sub(bytes, Ordering::Relaxed);
    let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(bytes as isize)));
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Count the new block before the old one goes: a moving realloc holds both.
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the most heap it held at once beyond what the thread
/// held when `f` started, in bytes.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = CURRENT.with(Cell::get);
    let outer_peak = PEAK.with(|p| p.replace(start));
    let result = f();
    let peak = PEAK.with(|p| p.replace(p.get().max(outer_peak)));
    (result, peak.saturating_sub(start).max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_a_closure_holds_at_its_peak() {
        let ((), peak) = measure(|| {
            let a = vec![0u8; 100_000];
            drop(a);
            let b = vec![0u8; 10_000];
            drop(b);
        });
        assert!((100_000..110_000).contains(&peak), "{peak}");
        let ((), nothing) = measure(|| {});
        assert_eq!(nothing, 0);
    }

    #[test]
    fn nested_measurements_do_not_hide_the_outer_peak() {
        let ((), outer) = measure(|| {
            let a = vec![0u8; 50_000];
            let ((), inner) = measure(|| drop(vec![0u8; 1000]));
            assert!((1000..2000).contains(&inner), "{inner}");
            drop(a);
        });
        assert!(outer >= 51_000, "{outer}");
    }
}
