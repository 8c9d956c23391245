//! A short run of every fuzz target, so `cargo test --workspace` decodes a few thousand
//! generated and mutated inputs of each with no panic and no allocation over the limits. The
//! seed is fixed (the same inputs on every run); the long runs are `bench/fuzz`.

use p2p_fuzz::targets;

/// Inputs per target: a few thousand, keeping the whole file within seconds in a debug build.
const INPUTS: u64 = 3000;
const SEED: u64 = 20_261_202;

fn run(name: &str) {
    let target = p2p_fuzz::target(name).expect("a known target");
    let report = p2p_fuzz::fuzz(target, SEED, INPUTS);
    if let Some(found) = &report.found {
        let saved = p2p_fuzz::write_crash(
            &p2p_fuzz::crash_dir(),
            name,
            SEED,
            found.index,
            &found.input,
        );
        panic!(
            "{name} input #{} (seed {SEED}): {}; saved to {saved:?}\ninput: {}",
            found.index,
            found.failure,
            p2p_fuzz::hex_preview(&found.input, 512)
        );
    }
    assert_eq!(report.inputs, INPUTS);
}

#[test]
fn every_target_is_run_here() {
    let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "frame",
            "tracker",
            "control",
            "cluster",
            "peer",
            "grant",
            "tracker_info",
            "strings",
            "bitfield",
            "keyfile"
        ]
    );
}

#[test]
fn frame() {
    run("frame");
}

#[test]
fn tracker() {
    run("tracker");
}

#[test]
fn control() {
    run("control");
}

#[test]
fn cluster() {
    run("cluster");
}

#[test]
fn peer() {
    run("peer");
}

#[test]
fn grant() {
    run("grant");
}

#[test]
fn tracker_info() {
    run("tracker_info");
}

#[test]
fn strings() {
    run("strings");
}

#[test]
fn bitfield() {
    run("bitfield");
}

#[test]
fn keyfile() {
    run("keyfile");
}

#[test]
fn a_seed_and_an_index_give_the_same_input() {
    for t in targets::all() {
        for i in [0, 1, 77] {
            assert_eq!(
                p2p_fuzz::input(t, 5, i),
                p2p_fuzz::input(t, 5, i),
                "{}",
                t.name
            );
        }
        assert_ne!(
            (0..8).map(|i| p2p_fuzz::input(t, 5, i)).collect::<Vec<_>>(),
            (0..8).map(|i| p2p_fuzz::input(t, 6, i)).collect::<Vec<_>>(),
            "{}: another seed, other inputs",
            t.name
        );
    }
}

#[test]
fn a_panic_and_an_allocation_over_the_limit_are_caught_with_their_input() {
    fn gen_(_: &mut p2p_fuzz::Rng) -> Vec<u8> {
        vec![1, 2, 3]
    }
    fn boom(input: &[u8], meter: &mut p2p_fuzz::Meter) {
        meter.decode("greedy", 1000, || vec![0u8; 10_000].len());
        assert!(input.len() > 5, "boom");
    }
    fn greedy(_: &[u8], meter: &mut p2p_fuzz::Meter) {
        meter.decode("greedy", 1000, || vec![0u8; 10_000].len());
    }
    let mut t = p2p_fuzz::Target {
        name: "test",
        about: "",
        limit: "",
        generate: gen_,
        check: greedy,
    };
    let report = p2p_fuzz::fuzz(&t, 1, 10);
    let found = report.found.expect("an allocation over the limit fails");
    assert!(matches!(found.failure, p2p_fuzz::Failure::Allocation(_)));
    assert_eq!((found.index, found.input), (0, vec![1, 2, 3]));
    t.check = boom;
    let found = p2p_fuzz::fuzz(&t, 1, 10).found.expect("a panic fails");
    match found.failure {
        p2p_fuzz::Failure::Panic(m) => assert!(m.contains("boom"), "{m}"),
        other => panic!("{other:?}"),
    }
}
