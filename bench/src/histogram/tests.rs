//! Histogram bookkeeping and the open-loop schedule.

use super::schedule::{corrected_latency_ns, Schedule};
use super::*;

#[test]
fn percentiles_of_a_known_set_are_within_the_histogram_precision() {
    let mut r = Recorder::new();
    // 1..=1000 µs, once each.
    for i in 1..=1000u64 {
        r.record(OpKind::Read, &Outcome::Ok, 0, 0, i * 1000);
    }
    let f = r.summary(1_000_000_000).per_op["read"].clone();
    assert_eq!(f.operations, 1000);
    assert_eq!(f.throughput_ops_per_s, 1000.0);
    let close = |got: f64, want: f64| (got / want - 1.0).abs() < 0.002;
    assert!(close(f.p50_us, 500.0), "p50 {}", f.p50_us);
    assert!(close(f.p90_us, 900.0), "p90 {}", f.p90_us);
    assert!(close(f.p99_us, 990.0), "p99 {}", f.p99_us);
    assert!(close(f.p999_us, 999.0), "p999 {}", f.p999_us);
    assert!(close(f.max_us, 1000.0), "max {}", f.max_us);
    assert!(close(f.mean_us, 500.5), "mean {}", f.mean_us);
}

#[test]
fn merged_recorders_equal_one_recorder_of_everything() {
    let mut parts = [Recorder::new(), Recorder::new(), Recorder::new()];
    let mut whole = Recorder::new();
    for i in 0..3000u64 {
        let kind = if i % 3 == 0 {
            OpKind::Update
        } else {
            OpKind::Read
        };
        let outcome = match i % 100 {
            7 => Outcome::Error("timeout".to_owned()),
            8 => Outcome::Throttled,
            9 => Outcome::Miss,
            _ => Outcome::Ok,
        };
        let done = 1000 + (i * 7919) % 5_000_000;
        parts[(i % 3) as usize].record(kind, &outcome, 10, 10, done);
        whole.record(kind, &outcome, 10, 10, done);
    }
    let mut merged = Recorder::new();
    for p in &parts {
        merged.merge(p);
    }
    assert_eq!(merged.summary(1_000_000), whole.summary(1_000_000));
    let overall = whole.overall();
    assert_eq!(
        overall.completed + overall.error_count() + overall.throttles,
        3000
    );
    assert_eq!(overall.errors["timeout"], 30);
    assert_eq!(overall.throttles, 30);
    assert_eq!(overall.misses, 30);
}

#[test]
fn errors_and_throttles_do_not_enter_the_latency_histogram() {
    let mut r = Recorder::new();
    r.record(
        OpKind::Update,
        &Outcome::Error("server:Internal".into()),
        0,
        0,
        5_000_000,
    );
    r.record(OpKind::Update, &Outcome::Throttled, 0, 0, 5_000_000);
    r.record(OpKind::Update, &Outcome::Ok, 0, 0, 1_000);
    let f = &r.summary(1_000_000_000).per_op["update"];
    assert_eq!(f.operations, 1);
    assert_eq!(f.max_us, 1.0);
    assert_eq!(f.errors, 1);
    assert_eq!(f.errors_by_kind["server:Internal"], 1);
    assert_eq!(f.throttles, 1);
}

#[test]
fn latencies_beyond_the_range_are_clamped_and_counted() {
    let mut r = Recorder::new();
    r.record(OpKind::Read, &Outcome::Ok, 0, 0, LATENCY_NS_MAX * 2);
    let s = r.stats(OpKind::Read).unwrap();
    assert_eq!(s.clamped, 1);
    assert_eq!(s.completed, 1);
    assert!(s.latency.max() >= LATENCY_NS_MAX * 999 / 1000);
}

#[test]
fn latency_counts_from_the_intended_send_time() {
    // Due at 1 ms, sent late at 50 ms (the connection was blocked), done at 51 ms.
    assert_eq!(
        corrected_latency_ns(1_000_000, 50_000_000, 51_000_000),
        50_000_000
    );
    // Closed loop: intended = sent.
    assert_eq!(corrected_latency_ns(7, 7, 10), 3);
    let mut r = Recorder::new();
    r.record(
        OpKind::Read,
        &Outcome::Ok,
        1_000_000,
        50_000_000,
        51_000_000,
    );
    let f = &r.summary(1_000_000_000).per_op["read"];
    assert!((f.p50_us / 50_000.0 - 1.0).abs() < 0.001, "{}", f.p50_us);
    assert!(
        (f.service_p50_us / 1_000.0 - 1.0).abs() < 0.001,
        "{}",
        f.service_p50_us
    );
}

#[test]
fn connection_timetables_interleave_at_the_total_rate() {
    let rate = 1000.0;
    let schedules: Vec<Schedule> = (0..4).map(|c| Schedule::new(rate, 4, c, 5)).collect();
    let mut times: Vec<u64> = schedules
        .iter()
        .flat_map(|s| (0..250).map(move |k| s.intended_ns(k)))
        .collect();
    times.sort_unstable();
    assert_eq!(times.len(), 1000);
    for (i, t) in times.iter().enumerate() {
        assert_eq!(*t, 5 + i as u64 * 1_000_000, "slot {i}");
    }
}
