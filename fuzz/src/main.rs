//! `p2p-fuzz`: runs the fuzz targets of the `p2p_fuzz` library and prints a table of what each
//! did. See bench/README.md, "Fuzzing".

use anyhow::{Context, bail};
use clap::Parser;
use p2p_fuzz::{PROGRESS, Report, Target, targets};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Fuzz every decoder of untrusted bytes: generated and mutated inputs, no panic, bounded allocation, no hang"
)]
struct Args {
    /// Inputs per target.
    #[arg(long, default_value_t = 1_000_000)]
    inputs: u64,
    /// Seed of the run [default: from the clock]; printed, so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// A single decode that takes longer than this is a hang: the input is saved and the
    /// program aborts.
    #[arg(long, default_value_t = 1000)]
    hang_ms: u64,
    /// The process holding more heap than this (MiB) aborts, naming the input (a guard
    /// against a runaway far over any target's limit, before the system runs out).
    #[arg(long, default_value_t = 2048)]
    memory_mb: usize,
    /// Where failing inputs are written [default: fuzz/crashes of the source tree].
    #[arg(long)]
    crashes: Option<PathBuf>,
    /// Feed this file (a saved failing input) to the one target named, and report.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Print the targets and their allocation limits, and exit.
    #[arg(long)]
    list: bool,
    /// Targets to run [default: all].
    targets: Vec<String>,
}

/// What the watchdog needs to rebuild the input that hangs.
static CURRENT_TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static CURRENT_SEED: AtomicU64 = AtomicU64::new(0);

fn watchdog(limit: Duration, memory: usize, crashes: PathBuf) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let held = p2p_fuzz::alloc::process_bytes();
            if held > memory {
                // Said first: making the input again may take as much memory.
                eprintln!(
                    "MEMORY: the process holds {held} bytes, over {memory}, at {} input #{} (seed {})",
                    targets::all()
                        .get(CURRENT_TARGET.load(Ordering::Relaxed))
                        .map_or("(replay)", |t| t.name),
                    PROGRESS.index.load(Ordering::Relaxed),
                    CURRENT_SEED.load(Ordering::Relaxed),
                );
                std::process::abort();
            }
            let Some(index) = PROGRESS.stuck(limit) else {
                continue;
            };
            let seed = CURRENT_SEED.load(Ordering::Relaxed);
            let Some(target) = targets::all().get(CURRENT_TARGET.load(Ordering::Relaxed)) else {
                eprintln!("HANG: a replayed input ran for more than {limit:?}");
                std::process::abort();
            };
            let input = p2p_fuzz::input(target, seed, index);
            let saved = p2p_fuzz::write_crash(&crashes, target.name, seed, index, &input);
            eprintln!(
                "HANG: {} input #{index} (seed {seed}) ran for more than {limit:?}; saved to {}\ninput: {}",
                target.name,
                saved.map_or_else(|e| format!("(not saved: {e})"), |p| p.display().to_string()),
                p2p_fuzz::hex_preview(&input, 512),
            );
            std::process::abort();
        }
    });
}

fn selected(names: &[String]) -> anyhow::Result<Vec<(usize, &'static Target)>> {
    let all = targets::all();
    if names.is_empty() {
        return Ok(all.iter().enumerate().collect());
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .enumerate()
                .find(|(_, t)| t.name == n)
                .with_context(|| {
                    let known: Vec<&str> = all.iter().map(|t| t.name).collect();
                    format!("no target {n:?}; targets: {}", known.join(", "))
                })
        })
        .collect()
}

fn replay(path: &PathBuf, targets: &[(usize, &'static Target)]) -> anyhow::Result<bool> {
    let [(_, target)] = targets else {
        bail!("--replay takes exactly one target");
    };
    let input = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    PROGRESS.index.store(0, Ordering::Relaxed);
    match p2p_fuzz::run_one(target, &input) {
        Ok(peak) => {
            println!(
                "{}: ok, most heap held by one decode {peak} bytes",
                target.name
            );
            Ok(true)
        }
        Err(f) => {
            println!("{}: FAILED: {f}", target.name);
            Ok(false)
        }
    }
}

fn row(r: &Report, crash: &str) -> String {
    let secs = r.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        r.inputs as f64 / secs
    } else {
        0.0
    };
    let result = match &r.found {
        None => "ok".to_string(),
        Some(f) => format!("FAILED at input #{}: {} ({crash})", f.index, f.failure),
    };
    format!(
        "| {} | {} | {:.1} | {:.0} | {} | {:.1} | {} |",
        r.target,
        r.inputs,
        secs,
        rate,
        r.peak,
        r.slowest.as_secs_f64() * 1000.0,
        result
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let chosen = selected(&args.targets)?;
    if args.list {
        for (_, t) in &chosen {
            println!("{:<13} {}\n{:<13} limit: {}", t.name, t.about, "", t.limit);
        }
        return Ok(());
    }
    let crashes = args.crashes.clone().unwrap_or_else(p2p_fuzz::crash_dir);
    watchdog(
        Duration::from_millis(args.hang_ms),
        args.memory_mb << 20,
        crashes.clone(),
    );
    if let Some(path) = &args.replay {
        let ok = replay(path, &chosen)?;
        std::process::exit(if ok { 0 } else { 1 });
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "seed {seed} ({} inputs per target; repeat with --seed {seed})",
        args.inputs
    );
    println!();
    println!(
        "| target | inputs | seconds | inputs/s | max bytes allocated | slowest input (ms) | result |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut failed = false;
    for (i, target) in chosen {
        CURRENT_SEED.store(seed, Ordering::Relaxed);
        CURRENT_TARGET.store(i, Ordering::Relaxed);
        let report = p2p_fuzz::fuzz(target, seed, args.inputs);
        let crash = match &report.found {
            None => String::new(),
            Some(f) => {
                failed = true;
                let saved = p2p_fuzz::write_crash(&crashes, target.name, seed, f.index, &f.input);
                eprintln!(
                    "{} input #{} (seed {seed}): {}\ninput: {}",
                    target.name,
                    f.index,
                    f.failure,
                    p2p_fuzz::hex_preview(&f.input, 512)
                );
                saved.map_or_else(|e| format!("not saved: {e}"), |p| p.display().to_string())
            }
        };
        println!("{}", row(&report, &crash));
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
