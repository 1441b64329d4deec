//! Targets: the stores a run drives, behind one [`Driver`] trait (redb's BenchDatabase).
//!
//! - [`resp`] — the Redis protocol codec (pure).
//! - [`redis`] — a Redis driver over RESP, pipelined.
//! - [`keel`] — keel's wire protocol, pipelined and shard-aware, on the connection's own
//!   thread.
//! - [`stub`] — an in-process synthetic server with a configurable service time and
//!   stall, for tests and for checking the generator itself.
//!
//! A [`Connection`] is used by one thread. It pipelines: [`Connection::send`] queues an
//! operation, [`Connection::flush`] puts queued operations on the wire, and
//! [`Connection::recv`] returns the next operation to complete, with the number the runner
//! gave it, in the order the target answers (send order for Redis, whatever order the
//! shards finish in for keel). A [`DriverError`] means the connection is unusable: the
//! runner counts every operation in flight on it as failed and opens a new one.

pub mod keel;
pub mod redis;
pub mod resp;
pub mod stub;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use crate::histogram::Outcome;
use crate::workload::{Operation, ValuePool, WorkloadSpec};

/// Why a connection became unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A socket operation failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// The operation (`connect`, `write`, `read`).
        op: &'static str,
        /// The peer.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No answer within the request timeout.
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout {
        /// The peer.
        addr: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The peer sent something the driver cannot read.
    #[error("protocol error from {addr}: {message}")]
    Protocol {
        /// The peer.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// Setting up the target (creating a table) failed.
    #[error("preparing {target}: {message}")]
    Prepare {
        /// The target.
        target: String,
        /// What failed.
        message: String,
    },
}

impl DriverError {
    /// A socket error of `op` against `addr`: a read that timed out (`timeout_ms`) is a
    /// [`DriverError::Timeout`], anything else [`DriverError::Io`].
    pub fn from_socket(
        op: &'static str,
        addr: &str,
        timeout_ms: u64,
        source: std::io::Error,
    ) -> DriverError {
        match source.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => DriverError::Timeout {
                addr: addr.to_owned(),
                timeout_ms,
            },
            _ => DriverError::Io {
                op,
                addr: addr.to_owned(),
                source,
            },
        }
    }

    /// The error kind counted for the operations it failed.
    pub fn kind(&self) -> &'static str {
        match self {
            DriverError::Io { .. } => "connection",
            DriverError::Timeout { .. } => "timeout",
            DriverError::Protocol { .. } => "protocol",
            DriverError::Prepare { .. } => "prepare",
        }
    }
}

/// One pipelined connection to a target, used by one thread.
pub trait Connection: Send {
    /// Queues `op` as operation `seq` (the caller's number for it, unique among the
    /// operations in flight); it may stay buffered until [`Connection::flush`].
    fn send(&mut self, seq: u64, op: &Operation) -> Result<(), DriverError>;
    /// Sends every queued operation.
    fn flush(&mut self) -> Result<(), DriverError>;
    /// Waits for the next operation in flight to complete and returns its `seq` and
    /// outcome. Operations complete in the order the target answers them: a target that
    /// answers out of order (keel) has a fast answer counted when it arrives, not when
    /// the older ones are in.
    fn recv(&mut self) -> Result<(u64, Outcome), DriverError>;
    /// [`Connection::recv`] without waiting: an operation whose answers are already read
    /// (in the order `recv` would return it), or `None`. The runner takes these before it
    /// refills its window, so that one write carries the requests that replace a burst
    /// of answers.
    fn recv_ready(&mut self) -> Result<Option<(u64, Outcome)>, DriverError>;
    /// For a thread that drives several connections: pushes a readable [`PollFd`] for
    /// each socket with answers due, always in the same order, and returns the time by
    /// which an answer will be ready with no socket to wait on (the stub's modelled
    /// server), if there is one.
    fn poll_fds<'a>(&'a self, out: &mut Vec<PollFd<'a>>) -> Option<Instant>;
    /// Reads, without waiting, what the sockets [`Connection::poll_fds`] pushed hold:
    /// `revents` are theirs after a poll, in the same order; one with none is not read.
    /// The answers are then taken with [`Connection::recv_ready`].
    fn read_polled(&mut self, revents: &[PollFlags]) -> Result<(), DriverError>;
}

/// A target: how to prepare it and open connections to it.
pub trait Driver: Send + Sync {
    /// The target's address as given (`keel://127.0.0.1:7000`).
    fn describe(&self) -> String;
    /// How long a connection waits for an answer before it counts as broken.
    fn request_timeout(&self) -> Duration;
    /// Makes the target ready for `spec` (creates the table if needed).
    fn prepare(&self, spec: &WorkloadSpec) -> Result<(), DriverError>;
    /// Opens a connection; `seed` feeds the values it writes.
    fn connect(
        &self,
        spec: &WorkloadSpec,
        values: Arc<ValuePool>,
        seed: u64,
    ) -> Result<Box<dyn Connection>, DriverError>;
}

/// Settings shared by the drivers.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// How long an answer may take before the connection is declared broken, ms.
    pub request_timeout_ms: u64,
    /// keel: the table the workload uses.
    pub table: String,
    /// keel: partitions of the table when it is created (`None`: the node decides).
    pub partitions: Option<u32>,
}

/// Builds the driver for `target`: `keel://HOST:PORT`, `redis://HOST:PORT` or `stub://`.
pub fn driver_for(target: &str, options: &DriverOptions) -> Result<Box<dyn Driver>, String> {
    let (scheme, rest) = target
        .split_once("://")
        .ok_or_else(|| format!("target `{target}`: expected SCHEME://HOST:PORT"))?;
    let addr = rest.trim_end_matches('/');
    match scheme {
        "redis" => Ok(Box::new(redis::RedisDriver::new(addr, options))),
        "keel" => Ok(Box::new(keel::KeelDriver::new(addr, options))),
        "stub" => Ok(Box::new(stub::StubDriver::new(stub::StubConfig::parse(
            addr,
        )?))),
        other => Err(format!(
            "unknown target scheme `{other}` (keel, redis, stub)"
        )),
    }
}
