//! Report formatting, medians and the comparison table.

use super::compare::{compare_table, median};
use super::*;
use crate::histogram::{Outcome, Recorder};
use crate::workload::OpKind;

fn report(target: &str, workload: &str, throughput_scale: u64, latency_us: u64) -> RunReport {
    let mut r = Recorder::new();
    for _ in 0..throughput_scale {
        r.record(OpKind::Read, &Outcome::Ok, 0, 0, latency_us * 1000);
    }
    let s = r.summary(1_000_000_000);
    RunReport {
        target: target.to_owned(),
        workload: workload.to_owned(),
        mix: "read=1".to_owned(),
        distribution: "zipfian(0.99)".to_owned(),
        records: 10,
        field_count: 10,
        field_bytes: 100,
        connections: 1,
        threads: 1,
        depth: 1,
        rate_per_s: None,
        warmup_s: 0.0,
        placement: String::new(),
        command: String::new(),
        load: None,
        run: Some(PhaseReport {
            elapsed_s: 1.0,
            overall: s.overall,
            per_op: s.per_op,
            reconnects: 0,
            hit_time_limit: false,
            timeline: vec![],
        }),
    }
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(&[]), None);
}

#[test]
fn comparison_takes_medians_and_ratios_against_the_baseline() {
    let reports = vec![
        report("keel://a", "a", 300, 100),
        report("keel://a", "a", 100, 100),
        report("keel://a", "a", 200, 100),
        report("redis://b", "a", 100, 400),
        report("redis://b", "a", 100, 400),
        report("redis://b", "a", 100, 400),
    ];
    let table = compare_table(&reports, "redis");
    let line = table.lines().find(|l| l.starts_with("throughput")).unwrap();
    assert!(line.contains("200.0"), "{table}");
    assert!(line.contains("2.00 +"), "{table}");
    let p50 = table.lines().find(|l| l.starts_with("p50")).unwrap();
    assert!(p50.contains("0.25 +"), "{table}");
    assert!(table.contains("keel 3 runs, redis 3 runs"), "{table}");
}

#[test]
fn json_report_round_trips() {
    let r = report("keel://a", "c", 10, 50);
    let text = serde_json::to_string(&r).unwrap();
    for field in [
        "throughput_ops_per_s",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
    ] {
        assert!(text.contains(field), "{field} missing");
    }
    let back: RunReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}

#[test]
fn chart_is_an_svg_with_one_line_per_series() {
    let mut h = crate::histogram::new_histogram();
    h.record(1_000_000).unwrap();
    let points: Vec<TimelinePoint> = (1..=5)
        .map(|i| TimelinePoint::of(i as f64, 1.0, &h, 0, i == 1))
        .collect();
    let svg = chart::latency_svg("a <test>", &points);
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 5);
    assert!(svg.contains("a &lt;test&gt;"));
}

#[test]
fn phase_table_lists_each_kind_and_overall() {
    let r = report("keel://a", "c", 10, 50);
    let t = phase_table("run", r.run.as_ref().unwrap());
    assert!(t.lines().any(|l| l.starts_with("read")));
    assert!(t.lines().any(|l| l.starts_with("overall")));
}
