//! A synthetic in-process server, for tests and for measuring the generator itself.
//!
//! It models one server thread shared by every connection: requests are served one after
//! another in arrival order, each taking `service_us`, and during the stall window
//! `[stall_at_ms, stall_at_ms + stall_ms)` after the driver was built the server serves
//! nothing. A connection's `recv` sleeps until its oldest request's modelled completion,
//! so a stall blocks the connections exactly as a stalled server blocks its clients.
//! Reads always succeed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use crate::histogram::Outcome;
use crate::target::{Connection, Driver, DriverError};
use crate::workload::{Operation, ValuePool, WorkloadSpec};

/// The stub server's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StubConfig {
    /// Service time per operation, µs.
    pub service_us: u64,
    /// When the stall begins, ms after the driver was built.
    pub stall_at_ms: u64,
    /// How long the stall lasts, ms (0: no stall).
    pub stall_ms: u64,
}

impl StubConfig {
    /// Parses `service_us=50,stall_at_ms=500,stall_ms=300` (any subset; empty is fine).
    pub fn parse(text: &str) -> Result<StubConfig, String> {
        let mut config = StubConfig::default();
        for part in text.split([',', '&', '?']).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("stub option `{part}`: expected NAME=VALUE"))?;
            let value: u64 = value
                .parse()
                .map_err(|e| format!("stub option `{part}`: {e}"))?;
            match name {
                "service_us" => config.service_us = value,
                "stall_at_ms" => config.stall_at_ms = value,
                "stall_ms" => config.stall_ms = value,
                other => return Err(format!("unknown stub option `{other}`")),
            }
        }
        Ok(config)
    }
}

/// The modelled server: when it is next free.
#[derive(Debug)]
struct Server {
    epoch: Instant,
    config: StubConfig,
    free_at: Mutex<Duration>,
}

impl Server {
    /// Admits a request arriving at `arrival` (since the epoch); returns its completion.
    fn admit(&self, arrival: Duration) -> Duration {
        let mut free_at = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
        let mut start = arrival.max(*free_at);
        let stall_from = Duration::from_millis(self.config.stall_at_ms);
        let stall_to = stall_from + Duration::from_millis(self.config.stall_ms);
        if start >= stall_from && start < stall_to {
            start = stall_to;
        }
        let done = start + Duration::from_micros(self.config.service_us);
        *free_at = done;
        done
    }
}

/// A driver for the modelled server.
#[derive(Debug, Clone)]
pub struct StubDriver {
    server: Arc<Server>,
}

impl StubDriver {
    /// A modelled server whose clock starts now.
    pub fn new(config: StubConfig) -> StubDriver {
        StubDriver {
            server: Arc::new(Server {
                epoch: Instant::now(),
                config,
                free_at: Mutex::new(Duration::ZERO),
            }),
        }
    }
}

impl Driver for StubDriver {
    fn describe(&self) -> String {
        let c = self.server.config;
        format!(
            "stub://service_us={},stall_at_ms={},stall_ms={}",
            c.service_us, c.stall_at_ms, c.stall_ms
        )
    }

    /// The modelled server always answers.
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }

    fn prepare(&self, _spec: &WorkloadSpec) -> Result<(), DriverError> {
        Ok(())
    }

    fn connect(
        &self,
        _spec: &WorkloadSpec,
        _values: Arc<ValuePool>,
        _seed: u64,
    ) -> Result<Box<dyn Connection>, DriverError> {
        Ok(Box::new(StubConnection {
            server: Arc::clone(&self.server),
            queued: Vec::new(),
            in_flight: VecDeque::new(),
        }))
    }
}

struct StubConnection {
    server: Arc<Server>,
    /// Operations queued and not yet flushed, by `seq`.
    queued: Vec<u64>,
    /// Operations admitted, in order: `seq` and when the server finishes it.
    in_flight: VecDeque<(u64, Duration)>,
}

impl Connection for StubConnection {
    fn send(&mut self, seq: u64, _op: &Operation) -> Result<(), DriverError> {
        self.queued.push(seq);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        let arrival = self.server.epoch.elapsed();
        for seq in self.queued.drain(..) {
            let done = self.server.admit(arrival);
            self.in_flight.push_back((seq, done));
        }
        Ok(())
    }

    fn poll_fds<'a>(&'a self, _out: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        let &(_, done) = self.in_flight.front()?;
        Some(self.server.epoch + done)
    }

    fn read_polled(&mut self, _revents: &[PollFlags]) -> Result<(), DriverError> {
        Ok(())
    }

    fn recv_ready(&mut self) -> Result<Option<(u64, Outcome)>, DriverError> {
        match self.in_flight.front() {
            Some(&(seq, done)) if done <= self.server.epoch.elapsed() => {
                self.in_flight.pop_front();
                Ok(Some((seq, Outcome::Ok)))
            }
            _ => Ok(None),
        }
    }

    fn recv(&mut self) -> Result<(u64, Outcome), DriverError> {
        let Some((seq, done)) = self.in_flight.pop_front() else {
            return Err(DriverError::Protocol {
                addr: "stub".to_owned(),
                message: "recv with nothing in flight".to_owned(),
            });
        };
        let now = self.server.epoch.elapsed();
        if done > now {
            std::thread::sleep(done - now);
        }
        Ok((seq, Outcome::Ok))
    }
}
