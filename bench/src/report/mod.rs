//! Reports: the final table, the JSON file, the latency-over-time chart and the
//! side-by-side comparison. Pure: values in, text out (the binary writes the files).
//!
//! - [`chart`] — the latency-over-time SVG.
//! - [`compare`] — medians over runs and the keel/peer ratio table.

pub mod chart;
pub mod compare;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::histogram::Figures;

/// One interval of the latency-over-time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// End of the interval, seconds since the phase began.
    pub t_s: f64,
    /// Completed operations per second in the interval.
    pub ops_per_s: f64,
    /// Median latency in the interval, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// Failed operations in the interval.
    pub errors: u64,
    /// The interval ended during the warm-up.
    pub warmup: bool,
}

impl TimelinePoint {
    /// The point for an interval of `seconds` ending at `t_s` whose latencies are `h`.
    pub fn of(t_s: f64, seconds: f64, h: &Histogram<u64>, errors: u64, warmup: bool) -> Self {
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(q))
            }
        };
        TimelinePoint {
            t_s: (t_s * 1000.0).round() / 1000.0,
            ops_per_s: (h.len() as f64 / seconds.max(1e-9)).round(),
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0.0 } else { us(h.max()) },
            errors,
            warmup,
        }
    }
}

/// The figures of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Measured time, seconds.
    pub elapsed_s: f64,
    /// All operations.
    pub overall: Figures,
    /// Per operation kind.
    pub per_op: BTreeMap<String, Figures>,
    /// Connections that broke and were re-opened.
    pub reconnects: u64,
    /// The phase stopped at its time limit.
    pub hit_time_limit: bool,
    /// Latency over time.
    pub timeline: Vec<TimelinePoint>,
}

/// Everything one `keel-bench` invocation measured, as written by `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The target (`keel://127.0.0.1:7000`).
    pub target: String,
    /// Workload name (`a`..`f`, `custom`).
    pub workload: String,
    /// Operation proportions.
    pub mix: String,
    /// Key distribution.
    pub distribution: String,
    /// Records loaded.
    pub records: u64,
    /// Fields per record.
    pub field_count: u32,
    /// Bytes per field.
    pub field_bytes: u32,
    /// Connections.
    pub connections: u32,
    /// Generator threads driving them.
    pub threads: u32,
    /// Requests in flight per connection.
    pub depth: u32,
    /// Open-loop rate, or `None` for a closed loop.
    pub rate_per_s: Option<f64>,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Where the processes ran (CPUs), as given and as seen.
    pub placement: String,
    /// The command line.
    pub command: String,
    /// The load phase, if it ran.
    pub load: Option<PhaseReport>,
    /// The run phase, if it ran.
    pub run: Option<PhaseReport>,
}

fn cell(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The final table of one phase: one row per operation kind and one overall.
pub fn phase_table(title: &str, phase: &PhaseReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title} ({:.1} s measured)", phase.elapsed_s);
    let _ = writeln!(
        out,
        "{:<18} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "op",
        "ops",
        "ops/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "p99.99",
        "max µs",
        "errors",
        "throttles"
    );
    let rows = phase.per_op.iter().map(|(k, f)| (k.as_str(), f));
    for (name, f) in rows.chain(std::iter::once(("overall", &phase.overall))) {
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
            name,
            f.operations,
            cell(f.throughput_ops_per_s),
            cell(f.p50_us),
            cell(f.p90_us),
            cell(f.p99_us),
            cell(f.p999_us),
            cell(f.p9999_us),
            cell(f.max_us),
            f.errors,
            f.throttles
        );
    }
    let mut notes = Vec::new();
    for (kind, n) in &phase.overall.errors_by_kind {
        notes.push(format!("{n} × {kind}"));
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "errors by kind: {}", notes.join(", "));
    }
    if phase.overall.misses > 0 {
        let _ = writeln!(out, "reads that found nothing: {}", phase.overall.misses);
    }
    if phase.reconnects > 0 {
        let _ = writeln!(out, "connections re-opened: {}", phase.reconnects);
    }
    if phase.hit_time_limit {
        let _ = writeln!(out, "stopped by the time limit");
    }
    out
}
