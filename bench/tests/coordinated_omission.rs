//! The coordinated-omission correction against a synthetic server that stalls on purpose.
//!
//! The stub server serves each request in 100 µs but serves nothing for 300 ms, 400 ms
//! into the run. An open-loop run at 2000 ops/s must then record about 2000 × 0.3 = 600
//! operations that waited for the stall, with latencies from 300 ms down to 0, because each
//! latency counts from the operation's intended send time. The service time (from the
//! actual send) of the same run shows what a closed-loop measurement would report: only the
//! few operations on the wire when the stall began see it.

use std::time::Duration;

use keel_bench::run::{run_phase, Phase, Shape};
use keel_bench::target::stub::{StubConfig, StubDriver};
use keel_bench::workload::WorkloadSpec;

mod common;

fn spec() -> WorkloadSpec {
    common::small_c(1000)
}

fn shape(rate_per_s: Option<f64>) -> Shape {
    Shape {
        connections: 2,
        threads: 2,
        depth: 1,
        rate_per_s,
        warmup: Duration::ZERO,
        duration: Some(Duration::from_millis(1200)),
        operations: None,
        time_limit: Duration::from_secs(20),
        interval: Duration::from_millis(100),
        seed: 1,
        progress: false,
    }
}

#[test]
fn open_loop_charges_a_stall_to_every_operation_it_delayed() {
    open_loop_stall(2);
}

/// The same with both connections on one thread, which waits for the stub's modelled
/// answers and for the next due time with one poll.
#[test]
fn open_loop_charges_a_stall_with_connections_sharing_a_thread() {
    open_loop_stall(1);
}

fn open_loop_stall(threads: u32) {
    let stub = StubDriver::new(StubConfig {
        service_us: 100,
        stall_at_ms: 400,
        stall_ms: 300,
    });
    let mut s = shape(Some(2000.0));
    s.threads = threads;
    let result = run_phase(&stub, &spec(), &s, Phase::Run, 1000);
    let stats = result.recorder.overall();
    let total = stats.completed;
    // About 2400 operations are due in 1.2 s; allow for a slow machine.
    assert!(total > 1500, "only {total} operations completed");
    let over =
        |h: &hdrhistogram::Histogram<u64>, ms: u64| h.count_between(ms * 1_000_000, u64::MAX);
    // Operations due during the stall wait for its end: due at 400 + x ms, done at
    // about 700 ms, latency 300 - x. Those due in its first 200 ms wait more than 100 ms:
    // about 2000 × 0.2 = 400 of them. Ask for half, as the test may run on a busy machine.
    let slow = over(&stats.latency, 100);
    assert!(
        slow >= 200,
        "{slow} operations over 100 ms; expected about 400"
    );
    assert!(
        stats.latency.max() >= 250_000_000,
        "max {} ns",
        stats.latency.max()
    );
    // The uncorrected service time hides the stall behind a handful of operations: one
    // per connection was on the wire when it began.
    let hidden = over(&stats.service, 100);
    assert!(hidden <= 10, "{hidden} service times over 100 ms");
    assert!(slow > hidden * 20, "corrected {slow} vs service {hidden}");
}

#[test]
fn closed_loop_without_a_stall_records_every_operation_once() {
    let stub = StubDriver::new(StubConfig {
        service_us: 50,
        stall_at_ms: 0,
        stall_ms: 0,
    });
    for (connections, threads) in [(2, 2), (3, 1), (5, 2)] {
        let mut s = shape(None);
        s.duration = None;
        s.operations = Some(3000);
        s.connections = connections;
        s.threads = threads;
        let result = run_phase(&stub, &spec(), &s, Phase::Run, 1000);
        let stats = result.recorder.overall();
        assert_eq!(stats.completed, 3000, "{connections} on {threads} threads");
        assert_eq!(stats.error_count(), 0);
        assert_eq!(stats.latency.len(), 3000);
    }
}

#[test]
fn load_phase_inserts_each_record_once() {
    let stub = StubDriver::new(StubConfig::default());
    for threads in [3, 1] {
        let mut s = shape(None);
        s.connections = 3;
        s.threads = threads;
        s.depth = 4;
        let result = run_phase(&stub, &spec(), &s, Phase::Load, 0);
        let insert = result
            .recorder
            .stats(keel_bench::workload::OpKind::Insert)
            .unwrap();
        assert_eq!(insert.completed, 1000, "on {threads} threads");
    }
}
