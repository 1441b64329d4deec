//! keel-tools: the pieces behind the `keel` binary.
//!
//! - [`load`]: `keel engine-load`, which drives one shard's engine with a bounded load and
//!   reports throughput, latency and memory.
//! - [`start`]: `keel start`, a node in the foreground until SIGTERM or SIGINT.
//! - [`cli`]: the table and item commands, through the native client.
//! - [`nodebench`]: `keel node-bench`, GetItem/PutItem requests/s against a node.
//! - [`pingpong`]: `keel tcp-pingpong`, the TCP round-trip floor benchmarks are quoted beside.
//! - [`json`]: items as JSON (DynamoDB's typed form and a plain shorthand) for the CLI.

pub mod cli;
pub mod hiccup;
pub mod json;
pub mod load;
pub mod nodebench;
pub mod pingpong;
pub mod start;

/// The peak resident set size of this process in bytes (Linux `VmHWM`), if readable.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An empty latency histogram in microseconds, 1 µs to 60 s at 3 significant digits: the
/// one `node-bench` and `tcp-pingpong` record into, so their figures compare.
pub fn latency_histogram_us() -> Result<hdrhistogram::Histogram<u64>, hdrhistogram::CreationError> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
}
