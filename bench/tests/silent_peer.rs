//! A peer that accepts connections and never answers: every operation fails as a
//! timeout after the request timeout, the connections are re-opened, and the phase still
//! ends on time, whether each connection has a thread of its own (blocking reads) or
//! they share one (one poll for all).

use std::time::{Duration, Instant};

use keel_bench::run::{run_phase, Phase, Shape};
use keel_bench::target::{driver_for, DriverOptions};
use keel_bench::workload::WorkloadSpec;

mod common;

fn spec() -> WorkloadSpec {
    common::small_c(100)
}

#[test]
fn a_silent_peer_times_out_every_operation_and_the_phase_ends() {
    // Never accepted: the kernel completes each handshake into the backlog, and nothing
    // is ever read or answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let options = DriverOptions {
        request_timeout_ms: 150,
        table: "usertable".to_owned(),
        partitions: None,
    };
    let driver = driver_for(&format!("redis://{addr}"), &options).unwrap();
    for threads in [2, 1] {
        let shape = Shape {
            connections: 2,
            threads,
            depth: 4,
            rate_per_s: None,
            warmup: Duration::ZERO,
            duration: Some(Duration::from_millis(700)),
            operations: None,
            time_limit: Duration::from_secs(10),
            interval: Duration::from_millis(100),
            seed: 1,
            progress: false,
        };
        let began = Instant::now();
        let result = run_phase(driver.as_ref(), &spec(), &shape, Phase::Run, 100);
        let took = began.elapsed();
        let stats = result.recorder.overall();
        assert_eq!(stats.completed, 0, "{threads} threads");
        // Each connection times out at ~150 ms, ~300 ms, ... with 4 operations each.
        let timeouts = stats.errors.get("timeout").copied().unwrap_or(0);
        assert!(
            timeouts >= 8,
            "{threads} threads: errors {:?}",
            stats.errors
        );
        assert_eq!(stats.error_count(), timeouts, "{:?}", stats.errors);
        assert!(result.reconnects >= 2, "{threads} threads");
        assert!(!result.hit_time_limit, "{threads} threads");
        assert!(took < Duration::from_secs(5), "{threads} threads: {took:?}");
    }
    drop(listener);
}
