//! Latency bookkeeping: one HdrHistogram per operation kind, counts of misses, errors and
//! throttles by kind, merging across connections, and summaries in microseconds.
//!
//! - [`schedule`] — intended send times and the coordinated-omission correction.
//!
//! Pure: times are nanoseconds passed in by the caller. Latencies are recorded in
//! nanoseconds with 3 significant digits, from 1 ns to [`LATENCY_NS_MAX`]; a longer one
//! is clamped to the maximum (and counted in `clamped`), never dropped.

pub mod schedule;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::OpKind;

/// The longest latency a histogram holds: 100 s.
pub const LATENCY_NS_MAX: u64 = 100_000_000_000;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It succeeded but the record was absent (a read racing its insert).
    Miss,
    /// The target refused it for load; retry later.
    Throttled,
    /// It failed; the text names the kind (`timeout`, `connection`, `server:Validation`).
    Error(String),
}

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts.
        Err(e) => unreachable!("histogram bounds: {e}"),
    }
}

/// Records `value_ns` into `h`, clamped to the histogram's range; returns whether it was
/// clamped.
pub fn record_clamped(h: &mut Histogram<u64>, value_ns: u64) -> bool {
    let clamped = value_ns.clamp(1, LATENCY_NS_MAX);
    // In range by construction, so `record` cannot fail.
    let _ = h.record(clamped);
    clamped != value_ns.max(1)
}

/// What one operation kind saw.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of completed operations (Ok and Miss), from the intended send time.
    pub latency: Histogram<u64>,
    /// Service time of the same operations, from the actual send.
    pub service: Histogram<u64>,
    /// Operations that completed without error (misses included).
    pub completed: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Throttled operations.
    pub throttles: u64,
    /// Failed operations by kind of error.
    pub errors: BTreeMap<String, u64>,
    /// Latencies beyond [`LATENCY_NS_MAX`], recorded as the maximum.
    pub clamped: u64,
}

impl Default for OpStats {
    fn default() -> OpStats {
        OpStats {
            latency: new_histogram(),
            service: new_histogram(),
            completed: 0,
            misses: 0,
            throttles: 0,
            errors: BTreeMap::new(),
            clamped: 0,
        }
    }
}

impl OpStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &OpStats) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        self.completed += other.completed;
        self.misses += other.misses;
        self.throttles += other.throttles;
        self.clamped += other.clamped;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// Failed operations of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What one connection (or a whole run, once merged) saw, per operation kind.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    ops: [Option<OpStats>; 5],
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The stats of `kind`, created on first use.
    fn stats_mut(&mut self, kind: OpKind) -> &mut OpStats {
        self.ops[kind.index()].get_or_insert_with(OpStats::default)
    }

    /// The stats of `kind`, if any operation of that kind was recorded.
    pub fn stats(&self, kind: OpKind) -> Option<&OpStats> {
        self.ops[kind.index()].as_ref()
    }

    /// Records one operation: intended and actual send time and completion, in ns.
    pub fn record(
        &mut self,
        kind: OpKind,
        outcome: &Outcome,
        intended_ns: u64,
        sent_ns: u64,
        done_ns: u64,
    ) {
        let stats = self.stats_mut(kind);
        match outcome {
            Outcome::Ok | Outcome::Miss => {
                let latency = schedule::corrected_latency_ns(intended_ns, sent_ns, done_ns);
                let service = schedule::service_time_ns(sent_ns, done_ns);
                if record_clamped(&mut stats.latency, latency) {
                    stats.clamped += 1;
                }
                record_clamped(&mut stats.service, service);
                stats.completed += 1;
                if *outcome == Outcome::Miss {
                    stats.misses += 1;
                }
            }
            Outcome::Throttled => stats.throttles += 1,
            Outcome::Error(kind) => {
                if let Some(n) = stats.errors.get_mut(kind.as_str()) {
                    *n += 1;
                } else {
                    stats.errors.insert(kind.clone(), 1);
                }
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Recorder) {
        for kind in OpKind::ALL {
            if let Some(theirs) = other.stats(kind) {
                self.stats_mut(kind).merge(theirs);
            }
        }
    }

    /// Every kind's stats merged into one.
    pub fn overall(&self) -> OpStats {
        let mut all = OpStats::default();
        for stats in self.ops.iter().flatten() {
            all.merge(stats);
        }
        all
    }

    /// Completed operations of every kind.
    pub fn completed(&self) -> u64 {
        self.ops.iter().flatten().map(|s| s.completed).sum()
    }

    /// The figures of each kind and overall over `elapsed_ns` of measured time.
    pub fn summary(&self, elapsed_ns: u64) -> Summary {
        let per_op = OpKind::ALL
            .iter()
            .filter_map(|&k| {
                let stats = self.stats(k)?;
                Some((k.name().to_owned(), Figures::of(stats, elapsed_ns)))
            })
            .collect();
        Summary {
            overall: Figures::of(&self.overall(), elapsed_ns),
            per_op,
        }
    }
}

/// The figures of one operation kind (or of all), as reported.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Figures {
    /// Completed operations (misses included).
    pub operations: u64,
    /// Completed operations per second of measured time.
    pub throughput_ops_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// 99.99th percentile, µs.
    pub p9999_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Median service time (from the actual send, without the correction), µs.
    pub service_p50_us: f64,
    /// 99.9th percentile of the service time, µs.
    pub service_p999_us: f64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Throttled operations.
    pub throttles: u64,
    /// Reads that found nothing.
    pub misses: u64,
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 1000.0 * 10.0).round() / 10.0
}

impl Figures {
    /// The figures of `stats` over `elapsed_ns` (> 0) of measured time.
    pub fn of(stats: &OpStats, elapsed_ns: u64) -> Figures {
        let h = &stats.latency;
        let empty = h.is_empty();
        let q = |q: f64| {
            if empty {
                0.0
            } else {
                us(h.value_at_quantile(q))
            }
        };
        let s = &stats.service;
        let sq = |q: f64| {
            if s.is_empty() {
                0.0
            } else {
                us(s.value_at_quantile(q))
            }
        };
        let seconds = elapsed_ns.max(1) as f64 / 1e9;
        Figures {
            operations: stats.completed,
            throughput_ops_per_s: (stats.completed as f64 / seconds * 10.0).round() / 10.0,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: if empty { 0.0 } else { us(h.max()) },
            mean_us: if empty {
                0.0
            } else {
                (h.mean() / 100.0).round() / 10.0
            },
            service_p50_us: sq(0.5),
            service_p999_us: sq(0.999),
            errors: stats.error_count(),
            errors_by_kind: stats.errors.clone(),
            throttles: stats.throttles,
            misses: stats.misses,
        }
    }
}

/// A run's figures overall and per operation kind.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    /// All kinds together.
    pub overall: Figures,
    /// Each kind that ran, by name.
    pub per_op: BTreeMap<String, Figures>,
}
