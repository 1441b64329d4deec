//! The deterministic simulator as a test: a fixed seed budget in CI, any number on demand.
//!
//! - `KEEL_SIM_SEEDS=N` runs N seeds (default 1000), from `KEEL_SIM_SEED_START` (default 0).
//! - `KEEL_SIM_STEPS=N` runs seeds until N events (steps) in all have run.
//! - `KEEL_SIM_SEED=S` with `replay_one_seed` replays one seed and prints its report.
//! - `KEEL_SIM_SAFETY_MS=T` lengthens each run's fault phase (default 4000 ms simulated).

use keel_consensus::sim::{run_seed, RunOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options(seed: u64) -> RunOptions {
    let mut o = RunOptions::ci(seed);
    o.safety_ms = env_u64("KEEL_SIM_SAFETY_MS", o.safety_ms);
    o
}

#[test]
fn seeds_run_clean() {
    let start = env_u64("KEEL_SIM_SEED_START", 0);
    // KEEL_SIM_STEPS=N: keep running seeds until N events (steps) have run.
    let steps = env_u64("KEEL_SIM_STEPS", 0);
    let seeds = if steps > 0 {
        u64::MAX - start
    } else {
        env_u64("KEEL_SIM_SEEDS", 1000)
    };
    let mut events = 0u64;
    let mut writes = 0u64;
    let mut reads = 0u64;
    let mut changes = 0u64;
    let mut snapshots = 0u64;
    let mut promotions = 0u64;
    let mut lease_reads = 0u64;
    let mut coverage: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut failures = Vec::new();
    let mut ran = 0u64;
    for seed in start..start + seeds {
        if steps > 0 && events >= steps {
            break;
        }
        ran += 1;
        let result = std::panic::catch_unwind(|| run_seed(options(seed)));
        match result {
            Ok(Ok(report)) => {
                events += report.events;
                writes += report.writes_acked;
                reads += report.strong_reads;
                changes += report.membership_changes;
                snapshots += report.snapshots_installed;
                promotions += report.promotions;
                lease_reads += report.lease_reads;
                for (mark, n) in &report.coverage {
                    *coverage.entry(mark).or_insert(0) += n;
                }
            }
            Ok(Err(failure)) => {
                eprintln!("{failure}");
                failures.push(seed);
            }
            Err(_) => {
                eprintln!(
                    "seed {seed} panicked\n  replay: KEEL_SIM_SEED={seed} cargo test -p \
                     keel-consensus --release --test sim -- replay_one_seed --nocapture"
                );
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "simulator: {ran} seeds from {start}, {events} events, {writes} acked writes, \
         {reads} strong reads ({lease_reads} from a lease), {changes} membership changes, \
         {snapshots} snapshots installed, {promotions} log replicas promoted, \
         failures {failures:?}"
    );
    eprintln!("coverage marks: {coverage:?}");
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    if failures.is_empty() && ran >= 200 {
        // Every rare path was taken somewhere in the budget.
        for mark in [
            "pre-vote refused",
            "vote refused",
            "append rejected: conflicting term (fast backtrack)",
            "append rejected: log too short",
            "snapshot asked for",
            "snapshot sent",
            "quiesce (multi-group layer)",
        ] {
            assert!(
                coverage.get(mark).is_some_and(|n| *n > 0),
                "never hit: {mark}"
            );
        }
    }
}

#[test]
fn a_seed_replays_to_the_same_trace() {
    for seed in [3u64, 17, 101] {
        let a = run_seed(options(seed)).expect("seed runs clean");
        let b = run_seed(options(seed)).expect("seed runs clean");
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} did not replay");
        assert_eq!(a, b);
    }
}

#[test]
fn replay_one_seed() {
    let Ok(seed) = std::env::var("KEEL_SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("KEEL_SIM_SEED is a number");
    match run_seed(options(seed)) {
        Ok(report) => eprintln!("{report:#?}"),
        Err(failure) => panic!("{failure}"),
    }
}
