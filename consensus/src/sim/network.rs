//! The simulated network: per-message loss, duplication, delay (which reorders) and
//! partitions, all drawn from the simulation's seeded stream.

use std::collections::BTreeSet;

use crate::prng::Prng;
use crate::types::NodeId;

/// How the network misbehaves in one run (drawn per seed: swarm testing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkFaults {
    /// Chance a message is lost, in parts per million.
    pub loss_ppm: u64,
    /// Chance a message is delivered twice, in parts per million.
    pub duplicate_ppm: u64,
    /// Shortest one-way delay.
    pub delay_min_ms: u64,
    /// Longest one-way delay; a wide range reorders messages.
    pub delay_max_ms: u64,
    /// Chance a message is held back far longer (0.2–2 s, past election timeouts), in
    /// parts per million: stale messages from old terms arrive late.
    pub long_delay_ppm: u64,
}

impl NetworkFaults {
    /// A perfect network with 1 ms delay.
    #[must_use]
    pub fn none() -> NetworkFaults {
        NetworkFaults {
            loss_ppm: 0,
            duplicate_ppm: 0,
            delay_min_ms: 1,
            delay_max_ms: 1,
            long_delay_ppm: 0,
        }
    }
}

/// The network between the simulated nodes.
#[derive(Clone, Debug)]
pub struct Network {
    /// The faults in force.
    pub faults: NetworkFaults,
    /// Ordered pairs (from, to) whose messages are dropped.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Messages routed.
    pub sent: u64,
    /// Messages dropped (loss or partition).
    pub dropped: u64,
}

impl Network {
    /// A network with the given faults and no partition.
    #[must_use]
    pub fn new(faults: NetworkFaults) -> Network {
        Network {
            faults,
            blocked: BTreeSet::new(),
            sent: 0,
            dropped: 0,
        }
    }

    /// Cuts every link between the two sides (both directions).
    pub fn partition(&mut self, side_a: &[NodeId], side_b: &[NodeId]) {
        for a in side_a {
            for b in side_b {
                self.blocked.insert((*a, *b));
                self.blocked.insert((*b, *a));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// True when a partition is in force.
    #[must_use]
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// True when `from` can reach `to` now.
    #[must_use]
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Decides the fate of one message: the delays of each copy delivered (none, one or
    /// two).
    pub fn route(&mut self, prng: &mut Prng, from: NodeId, to: NodeId) -> Vec<u64> {
        self.sent += 1;
        if !self.connected(from, to) || prng.chance_ppm(self.faults.loss_ppm) {
            self.dropped += 1;
            return Vec::new();
        }
        let mut delays = vec![self.delay(prng)];
        if prng.chance_ppm(self.faults.duplicate_ppm) {
            delays.push(self.delay(prng));
        }
        delays
    }

    fn delay(&self, prng: &mut Prng) -> u64 {
        let d = prng.range(self.faults.delay_min_ms, self.faults.delay_max_ms);
        if self.faults.long_delay_ppm > 0 && prng.chance_ppm(self.faults.long_delay_ppm) {
            return d + prng.range(200, 2_000);
        }
        d
    }
}
