//! The side-by-side table: for each workload and each target kind (`keel`, `redis`, ...),
//! the median over runs of the run phase's overall figures, and keel's ratio to the peer.
//!
//! Throughput ratio above 1 and latency ratio below 1 favour keel.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::RunReport;

/// The median of `xs` (the mean of the middle two for an even count); `None` if empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let m = if v.len() % 2 == 1 {
        v.get(mid).copied()?
    } else {
        (v.get(mid - 1).copied()? + v.get(mid).copied()?) / 2.0
    };
    Some(m)
}

/// The target kind of a report: its scheme (`keel`, `redis`).
pub fn target_kind(report: &RunReport) -> String {
    report
        .target
        .split_once("://")
        .map_or(report.target.as_str(), |(s, _)| s)
        .to_owned()
}

/// Figures compared, with whether higher is better.
const METRICS: [(&str, bool); 6] = [
    ("throughput ops/s", true),
    ("p50 µs", false),
    ("p99 µs", false),
    ("p99.9 µs", false),
    ("p99.99 µs", false),
    ("max µs", false),
];

fn metric(report: &RunReport, i: usize) -> Option<f64> {
    let f = &report.run.as_ref()?.overall;
    [
        f.throughput_ops_per_s,
        f.p50_us,
        f.p99_us,
        f.p999_us,
        f.p9999_us,
        f.max_us,
    ]
    .get(i)
    .copied()
}

/// The comparison table of `reports` (runs without a run phase are ignored), with
/// `baseline` (`redis`) as the denominator of the ratios.
pub fn compare_table(reports: &[RunReport], baseline: &str) -> String {
    // workload → target kind → runs
    let mut groups: BTreeMap<String, BTreeMap<String, Vec<&RunReport>>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.run.is_some()) {
        groups
            .entry(r.workload.clone())
            .or_default()
            .entry(target_kind(r))
            .or_default()
            .push(r);
    }
    let mut out = String::new();
    for (workload, targets) in &groups {
        let kinds: Vec<&String> = targets.keys().collect();
        let runs: Vec<String> = kinds
            .iter()
            .map(|k| format!("{k} {} runs", targets.get(*k).map_or(0, Vec::len)))
            .collect();
        let _ = writeln!(
            out,
            "workload {workload} (median of runs: {}; errors: {})",
            runs.join(", "),
            kinds
                .iter()
                .map(|k| {
                    let e: u64 = targets
                        .get(*k)
                        .map(|rs| {
                            rs.iter()
                                .filter_map(|r| r.run.as_ref())
                                .map(|p| p.overall.errors)
                                .sum()
                        })
                        .unwrap_or(0);
                    format!("{k} {e}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut header = format!("{:<18}", "figure");
        for k in &kinds {
            let _ = write!(header, " {:>12}", k);
        }
        let others: Vec<&&String> = kinds.iter().filter(|k| k.as_str() != baseline).collect();
        let has_baseline = targets.contains_key(baseline);
        if has_baseline {
            for k in &others {
                let _ = write!(header, " {:>14}", format!("{k}/{baseline}"));
            }
        }
        let _ = writeln!(out, "{header}");
        for (i, (name, higher_better)) in METRICS.iter().enumerate() {
            let medians: BTreeMap<&String, Option<f64>> = kinds
                .iter()
                .map(|k| {
                    let xs: Vec<f64> = targets
                        .get(*k)
                        .map(|rs| rs.iter().filter_map(|r| metric(r, i)).collect())
                        .unwrap_or_default();
                    (*k, median(&xs))
                })
                .collect();
            let mut line = format!("{name:<18}");
            for k in &kinds {
                let v = medians.get(k).copied().flatten();
                let _ = write!(
                    line,
                    " {:>12}",
                    v.map_or("-".to_owned(), |v| format!("{v:.1}"))
                );
            }
            if has_baseline {
                let base = targets
                    .keys()
                    .find(|k| k.as_str() == baseline)
                    .and_then(|k| medians.get(k).copied().flatten());
                for k in &others {
                    let v = medians.get(**k).copied().flatten();
                    let ratio = match (v, base) {
                        (Some(v), Some(b)) if b > 0.0 => {
                            let r = v / b;
                            let better = if *higher_better { r >= 1.0 } else { r <= 1.0 };
                            format!("{r:.2} {}", if better { "+" } else { "-" })
                        }
                        _ => "-".to_owned(),
                    };
                    let _ = write!(line, " {ratio:>14}");
                }
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    out.push_str(
        "ratios: + marks the figure where keel does better (throughput up, latency down)\n",
    );
    out
}
