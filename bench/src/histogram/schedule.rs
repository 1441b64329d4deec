//! The open-loop schedule and the coordinated-omission correction.
//!
//! In an open-loop run every connection has a fixed timetable of *intended* send times,
//! and an operation's latency is measured from its intended send time, not from when it
//! was actually sent. If the server stalls, the connection cannot send on time (its window
//! of requests in flight is full, or it waits for an answer); the operations it should
//! have sent meanwhile go out late, and each one's latency includes the time it waited
//! to be sent. A stall of `S` at rate `R` thus shows as about `R·S` slow operations, as a
//! user arriving at that rate would see, rather than as one (Gil Tene, "How NOT to
//! measure latency"; wrk2). In a closed loop the intended time is the actual send time.
//!
//! Times are nanoseconds since the run's start; this module reads no clock.

/// The timetable of one connection in an open-loop run: operation `k` of connection `c`
/// of `C` at total rate `R` is due at `(k·C + c) / R` seconds, so the connections'
/// timetables interleave evenly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate_per_s: f64,
    connections: u64,
    connection: u64,
    start_ns: u64,
}

impl Schedule {
    /// Connection `connection` of `connections` sending a share of `rate_per_s` (> 0)
    /// operations per second, starting at `start_ns`.
    pub fn new(rate_per_s: f64, connections: u64, connection: u64, start_ns: u64) -> Schedule {
        assert!(rate_per_s > 0.0, "open-loop rate {rate_per_s}");
        assert!(
            connection < connections,
            "connection {connection} of {connections}"
        );
        Schedule {
            rate_per_s,
            connections,
            connection,
            start_ns,
        }
    }

    /// The intended send time of this connection's operation `k`.
    pub fn intended_ns(&self, k: u64) -> u64 {
        let slot = k as f64 * self.connections as f64 + self.connection as f64;
        self.start_ns + (slot * 1e9 / self.rate_per_s) as u64
    }
}

/// The latency charged to an operation: from its intended send time (never later than
/// its actual send) to its completion.
pub fn corrected_latency_ns(intended_ns: u64, sent_ns: u64, done_ns: u64) -> u64 {
    debug_assert!(intended_ns <= sent_ns.max(intended_ns));
    done_ns.saturating_sub(intended_ns.min(sent_ns))
}

/// The service time: from the actual send to the completion. It omits the time an
/// operation waited to be sent, which is exactly what a stalled server hides behind.
pub fn service_time_ns(sent_ns: u64, done_ns: u64) -> u64 {
    done_ns.saturating_sub(sent_ns)
}
