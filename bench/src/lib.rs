//! keel-bench: the load generator. It runs YCSB-style workloads against a keel node or a
//! peer (Redis) and reports throughput and latency, safe from coordinated omission.
//!
//! Pure parts (no clock, no I/O):
//! - [`prng`] — seeded random numbers.
//! - [`workload`] — workloads: key distributions, operation mixes, values.
//! - [`histogram`] — latency bookkeeping, the open-loop schedule and the summaries.
//! - [`target::resp`] — the Redis protocol codec.
//! - [`report`] — the final table, JSON, the latency chart and the comparison table.
//!
//! I/O:
//! - [`target`] — the [`target::Driver`] trait and its drivers (keel, Redis, a stub).
//! - [`run`] — the threads that issue operations, closed or open loop.

pub mod histogram;
pub mod prng;
pub mod report;
pub mod run;
pub mod target;
pub mod workload;
