//! The runner: std threads issuing operations on connections, closed or open loop, plus
//! a monitor thread for the progress bar and the latency-over-time series.
//!
//! By default each connection has a thread of its own that waits for answers with a
//! blocking read. With `threads` below `connections`, a thread drives several
//! connections (connection `c` on thread `c % threads`, as memtier_benchmark's
//! `--threads` × `--clients`) and waits for all of their sockets with one `poll(2)`:
//! one wake-up then takes the answers of every connection that has some, where one
//! thread per connection wakes once per connection. On a machine where the generator
//! shares the cores with the server, those wake-ups are CPU the server does not get.
//!
//! Why std threads and not glommio: the generator shares two cores with the server it
//! measures, so it should be simple and cheap rather than fast at any cost; blocking
//! sockets with pipelining need no runtime, behave the same for every driver, and the
//! keel client's blocking flavour is the one a user's program would most likely use.
//!
//! Each connection keeps up to `depth` operations in flight. Closed loop: it sends
//! whenever its window has room. Open loop: operation `k` is due at its
//! [`Schedule`] time and is sent when due and the window has room; its latency counts
//! from the due time (see [`crate::histogram::schedule`]), so a stalled server shows as
//! many slow operations, not one. A connection waits for the next answer, whichever
//! operation it completes, before it can send again once its window is full or nothing is
//! due yet; in an open loop a send that falls due meanwhile goes out late and its
//! lateness is charged to its latency. Operations complete in the order the target
//! answers them: a keel shard answers a read that is served from its cache while an older
//! write still waits for its WAL batch, and the read's slot in the window is free again
//! at once (Redis answers in order, so there the order is the send order).
//!
//! Bounds: a phase ends at `warmup + duration`, after `operations` operations, or, for the
//! load phase, after `records` inserts; and in every case by `time_limit`. A request
//! that gets no answer breaks its connection after the driver's request timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::histogram::schedule::{corrected_latency_ns, Schedule};
use crate::histogram::{new_histogram, record_clamped, Outcome, Recorder};
use crate::report::TimelinePoint;
use crate::target::{Connection, Driver, DriverError};
use crate::workload::{
    Generator, KeyChooser, KeySpace, OpKind, Operation, ValuePool, WorkloadSpec,
};

/// Which phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Insert records `0..records`, closed loop, no warm-up.
    Load,
    /// Issue the workload's mix.
    Run,
}

/// How load is offered.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Connections.
    pub connections: u32,
    /// Threads that drive them (connection `c` on thread `c % threads`); at most
    /// `connections`.
    pub threads: u32,
    /// Operations in flight per connection.
    pub depth: u32,
    /// Open loop at this many operations per second in total; `None`: closed loop.
    pub rate_per_s: Option<f64>,
    /// Time before measuring starts (operations due then are not recorded).
    pub warmup: Duration,
    /// Measured time; `None`: until `operations`.
    pub duration: Option<Duration>,
    /// Most operations to issue (warm-up included); `None`: no limit.
    pub operations: Option<u64>,
    /// Hard bound on the phase, whatever else is set.
    pub time_limit: Duration,
    /// Period of the progress bar and of the latency-over-time series.
    pub interval: Duration,
    /// Seed of the operation and value streams (connection `c` uses `seed + c`).
    pub seed: u64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Shape {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 || self.connections > 4096 {
            return Err(format!(
                "--connections {} must be in 1..=4096",
                self.connections
            ));
        }
        if self.threads == 0 || self.threads > self.connections {
            return Err(format!(
                "--threads {} must be in 1..=--connections ({})",
                self.threads, self.connections
            ));
        }
        if self.depth == 0 || self.depth > 4096 {
            return Err(format!("--depth {} must be in 1..=4096", self.depth));
        }
        if let Some(rate) = self.rate_per_s {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(format!("--rate {rate} must be positive"));
            }
        }
        if self.duration.is_none() && self.operations.is_none() {
            return Err("give --duration or --operations".to_owned());
        }
        if self.interval.is_zero() {
            return Err("--interval must be positive".to_owned());
        }
        Ok(())
    }
}

/// What a phase measured.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Operations recorded in the measured window, per kind.
    pub recorder: Recorder,
    /// Length of the measured window, ns.
    pub measured_ns: u64,
    /// Latency over time, one point per interval (warm-up included, flagged).
    pub timeline: Vec<TimelinePoint>,
    /// Connections that broke and were re-opened.
    pub reconnects: u64,
    /// The phase was cut short by its time limit.
    pub hit_time_limit: bool,
    /// A connection could not be opened (or re-opened); the message says why.
    pub connect_failure: Option<String>,
}

/// State shared by the threads of a phase.
struct Shared<'a> {
    driver: &'a dyn Driver,
    spec: &'a WorkloadSpec,
    shape: &'a Shape,
    phase: Phase,
    start: Instant,
    warmup_ns: u64,
    end_ns: u64,
    limit_ns: u64,
    /// How long a connection waits for an answer before it counts as broken, ns.
    request_timeout_ns: u64,
    keys: KeySpace,
    chooser: KeyChooser,
    values: Arc<ValuePool>,
    /// Load phase: the next record to insert. Run phase: operations claimed.
    claimed: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
    hit_time_limit: AtomicBool,
    interval: Vec<Mutex<Histogram<u64>>>,
}

impl Shared<'_> {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// What one connection's thread returns.
struct WorkerResult {
    recorder: Recorder,
    last_done_ns: u64,
    reconnects: u64,
    connect_failure: Option<String>,
}

/// An operation in flight: kind, due time, send time.
struct InFlight {
    kind: OpKind,
    intended_ns: u64,
    sent_ns: u64,
}

/// Runs one phase of `spec` against `driver` with `shape`; `records_now` records exist.
pub fn run_phase(
    driver: &dyn Driver,
    spec: &WorkloadSpec,
    shape: &Shape,
    phase: Phase,
    records_now: u64,
) -> PhaseResult {
    let (warmup, duration) = match phase {
        Phase::Load => (Duration::ZERO, None),
        Phase::Run => (shape.warmup, shape.duration),
    };
    let warmup_ns = warmup.as_nanos() as u64;
    let end_ns = duration.map_or(u64::MAX, |d| warmup_ns + d.as_nanos() as u64);
    let connections = shape.connections as usize;
    let shared = Shared {
        driver,
        spec,
        shape,
        phase,
        start: Instant::now(),
        warmup_ns,
        end_ns,
        limit_ns: shape.time_limit.as_nanos() as u64,
        request_timeout_ns: driver.request_timeout().as_nanos() as u64,
        keys: KeySpace::new(records_now),
        chooser: KeyChooser::new(spec.distribution, records_now.max(1)),
        values: Arc::new(ValuePool::new(shape.seed ^ 0x5eed)),
        claimed: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        hit_time_limit: AtomicBool::new(false),
        interval: (0..connections)
            .map(|_| Mutex::new(new_histogram()))
            .collect(),
    };
    let done = AtomicBool::new(false);
    let (results, timeline) = std::thread::scope(|scope| {
        let monitor = scope.spawn(|| monitor(&shared, &done));
        let threads = (shape.threads as usize).clamp(1, connections.max(1));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                let cs: Vec<usize> = (t..connections).step_by(threads).collect();
                scope.spawn(move || worker(shared, &cs))
            })
            .collect();
        let results: Vec<WorkerResult> =
            workers.into_iter().filter_map(|w| w.join().ok()).collect();
        done.store(true, Ordering::Release);
        let timeline = monitor.join().unwrap_or_default();
        (results, timeline)
    });
    let mut recorder = Recorder::new();
    let mut last_done_ns = warmup_ns;
    let mut reconnects = 0;
    let mut connect_failure = None;
    for r in &results {
        recorder.merge(&r.recorder);
        last_done_ns = last_done_ns.max(r.last_done_ns);
        reconnects += r.reconnects;
        if connect_failure.is_none() {
            connect_failure.clone_from(&r.connect_failure);
        }
    }
    let measured_end = if end_ns == u64::MAX {
        last_done_ns
    } else {
        end_ns.min(last_done_ns.max(warmup_ns + 1))
    };
    PhaseResult {
        recorder,
        measured_ns: measured_end.saturating_sub(warmup_ns).max(1),
        timeline,
        reconnects,
        hit_time_limit: shared.hit_time_limit.load(Ordering::Relaxed),
        connect_failure,
    }
}

/// Opens a connection, retrying a few times (a node may be busy accepting).
fn connect(shared: &Shared<'_>, seed: u64) -> Result<Box<dyn Connection>, DriverError> {
    let mut attempt = 0;
    loop {
        match shared
            .driver
            .connect(shared.spec, Arc::clone(&shared.values), seed)
        {
            Ok(c) => return Ok(c),
            Err(e) if attempt >= 4 => return Err(e),
            Err(_) => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
        }
    }
}

/// One connection's state: its window of operations in flight and its stream of
/// operations.
struct Lane {
    c: usize,
    seed: u64,
    conn: Box<dyn Connection>,
    generator: Generator,
    schedule: Option<Schedule>,
    depth: usize,
    /// The number of the next operation.
    k: u64,
    in_flight: HashMap<u64, InFlight>,
    /// The operations queued in this pass, to stamp with their send time once flushed.
    fresh: Vec<u64>,
    stopping: bool,
    /// Several connections on one thread: when the wait for an answer times out, ns.
    deadline_ns: u64,
}

impl Lane {
    /// Opens connection `c`; a failure is noted in `result`.
    fn open(shared: &Shared<'_>, c: usize, result: &mut WorkerResult) -> Option<Lane> {
        let shape = shared.shape;
        let seed = shape.seed.wrapping_add(c as u64);
        let conn = match connect(shared, seed) {
            Ok(conn) => conn,
            Err(e) => {
                result.connect_failure = Some(e.to_string());
                return None;
            }
        };
        let schedule = match (shared.phase, shape.rate_per_s) {
            (Phase::Run, Some(rate)) => Some(Schedule::new(
                rate,
                u64::from(shape.connections),
                c as u64,
                0,
            )),
            _ => None,
        };
        Some(Lane {
            c,
            seed,
            conn,
            generator: Generator::new(shared.spec, shared.chooser.clone(), seed),
            schedule,
            depth: shape.depth as usize,
            k: 0,
            in_flight: HashMap::with_capacity(shape.depth as usize),
            fresh: Vec::with_capacity(shape.depth as usize),
            stopping: false,
            deadline_ns: u64::MAX,
        })
    }

    /// Checks the clock, queues what the window (and, open loop, the schedule) allows
    /// and flushes; a broken connection is returned.
    fn fill(&mut self, shared: &Shared<'_>) -> Option<DriverError> {
        let now = shared.now_ns();
        if now >= shared.limit_ns {
            shared.hit_time_limit.store(true, Ordering::Relaxed);
            self.stopping = true;
        }
        if now >= shared.end_ns {
            self.stopping = true;
        }
        self.fresh.clear();
        while !self.stopping && self.in_flight.len() < self.depth {
            let intended_ns = match self.schedule {
                Some(s) => {
                    let due = s.intended_ns(self.k);
                    if due > shared.now_ns() {
                        break;
                    }
                    if due >= shared.end_ns {
                        self.stopping = true;
                        break;
                    }
                    due
                }
                None => shared.now_ns(),
            };
            let Some(op) = next_operation(shared, &mut self.generator) else {
                self.stopping = true;
                break;
            };
            let sent = self.conn.send(self.k, &op);
            self.in_flight.insert(
                self.k,
                InFlight {
                    kind: op.kind(),
                    intended_ns,
                    sent_ns: intended_ns,
                },
            );
            self.fresh.push(self.k);
            self.k += 1;
            if let Err(e) = sent {
                return Some(e);
            }
        }
        if self.fresh.is_empty() {
            return None;
        }
        if let Err(e) = self.conn.flush() {
            return Some(e);
        }
        let sent_ns = shared.now_ns();
        if self.in_flight.len() == self.fresh.len() {
            self.deadline_ns = sent_ns.saturating_add(shared.request_timeout_ns);
        }
        for seq in &self.fresh {
            if let Some(f) = self.in_flight.get_mut(seq) {
                f.sent_ns = sent_ns;
            }
        }
        None
    }

    /// Records `first` (an answer, or none) and every answer already read after it, so
    /// that the next pass refills the window with one write; a broken connection is
    /// returned.
    fn take(
        &mut self,
        shared: &Shared<'_>,
        result: &mut WorkerResult,
        first: Result<Option<(u64, Outcome)>, DriverError>,
    ) -> Option<DriverError> {
        let mut next = first;
        loop {
            match next {
                Ok(Some((seq, outcome))) => {
                    let done_ns = shared.now_ns();
                    let Some(f) = self.in_flight.remove(&seq) else {
                        return Some(DriverError::Protocol {
                            addr: shared.driver.describe(),
                            message: format!("an outcome for operation {seq}, not in flight"),
                        });
                    };
                    record(shared, self.c, result, &f, &outcome, done_ns);
                    self.deadline_ns = done_ns.saturating_add(shared.request_timeout_ns);
                }
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
            if self.in_flight.is_empty() {
                return None;
            }
            next = self.conn.recv_ready();
        }
    }

    /// After the connection broke with `e`: every operation in flight on it failed, and
    /// unless the lane is stopping a new connection replaces it. Whether the lane goes on.
    fn mend(&mut self, shared: &Shared<'_>, result: &mut WorkerResult, e: DriverError) -> bool {
        self.fail_in_flight(shared, result, &e);
        if self.stopping {
            return false;
        }
        result.reconnects += 1;
        match connect(shared, self.seed.wrapping_add(result.reconnects << 32)) {
            Ok(new) => {
                self.conn = new;
                true
            }
            Err(e) => {
                result.connect_failure = Some(e.to_string());
                false
            }
        }
    }

    /// Counts every operation in flight as failed with `e`'s kind.
    fn fail_in_flight(&mut self, shared: &Shared<'_>, result: &mut WorkerResult, e: &DriverError) {
        let done_ns = shared.now_ns();
        let outcome = Outcome::Error(e.kind().to_owned());
        for (_, f) in self.in_flight.drain() {
            record(shared, self.c, result, &f, &outcome, done_ns);
        }
    }

    /// Open loop: when the next operation is due, if the window has room for it.
    fn next_due_ns(&self) -> Option<u64> {
        let s = self.schedule?;
        (!self.stopping && self.in_flight.len() < self.depth).then(|| s.intended_ns(self.k))
    }
}

/// Drives connections `cs` on this thread: with one, by blocking reads on it; with
/// several, by polling all of their sockets at once.
fn worker(shared: &Shared<'_>, cs: &[usize]) -> WorkerResult {
    let mut result = WorkerResult {
        recorder: Recorder::new(),
        last_done_ns: 0,
        reconnects: 0,
        connect_failure: None,
    };
    let lanes: Vec<Lane> = cs
        .iter()
        .filter_map(|&c| Lane::open(shared, c, &mut result))
        .collect();
    match <[Lane; 1]>::try_from(lanes) {
        Ok([lane]) => drive_one(shared, lane, &mut result),
        Err(lanes) => drive_many(shared, lanes, &mut result),
    }
    result
}

/// One connection on this thread: it waits for each answer with a blocking read.
fn drive_one(shared: &Shared<'_>, mut lane: Lane, result: &mut WorkerResult) {
    loop {
        let mut broken = lane.fill(shared);
        if broken.is_none() && !lane.in_flight.is_empty() {
            let first = lane.conn.recv().map(Some);
            broken = lane.take(shared, result, first);
        }
        if let Some(e) = broken {
            if !lane.mend(shared, result, e) {
                break;
            }
            continue;
        }
        if lane.in_flight.is_empty() {
            if lane.stopping {
                break;
            }
            if let Some(due) = lane.next_due_ns() {
                let now = shared.now_ns();
                if due > now {
                    std::thread::sleep(Duration::from_nanos((due - now).min(50_000_000)));
                }
            }
        }
    }
}

/// Several connections on this thread: one `poll(2)` waits for the sockets of all of
/// them (and for the next due time of an open loop), so that one wake-up takes the
/// answers of every connection that has some.
fn drive_many(shared: &Shared<'_>, mut lanes: Vec<Lane>, result: &mut WorkerResult) {
    let mut revents: Vec<PollFlags> = Vec::new();
    // Per lane: its first poll entry and how many it has.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    loop {
        let mut i = 0;
        while let Some(lane) = lanes.get_mut(i) {
            let live = match lane.fill(shared) {
                Some(e) => lane.mend(shared, result, e),
                None => !(lane.stopping && lane.in_flight.is_empty()),
            };
            if live {
                i += 1;
            } else {
                lanes.swap_remove(i);
            }
        }
        if lanes.is_empty() {
            break;
        }
        let now = shared.now_ns();
        let mut wake_ns = now.saturating_add(50_000_000);
        // Borrows the lanes until the poll returns, so it is made anew for each wait.
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2 * lanes.len());
        spans.clear();
        for lane in &lanes {
            let first = fds.len();
            if !lane.in_flight.is_empty() {
                if let Some(at) = lane.conn.poll_fds(&mut fds) {
                    let at_ns = at.saturating_duration_since(shared.start).as_nanos() as u64;
                    wake_ns = wake_ns.min(at_ns);
                }
                wake_ns = wake_ns.min(lane.deadline_ns);
            }
            if let Some(due) = lane.next_due_ns() {
                wake_ns = wake_ns.min(due);
            }
            spans.push((first, fds.len() - first));
        }
        let wait = Duration::from_nanos(wake_ns.saturating_sub(now));
        let polled = match Timespec::try_from(wait) {
            Ok(limit) => poll(&mut fds, Some(&limit)),
            Err(_) => Ok(0),
        };
        revents.clear();
        revents.extend(fds.iter().map(PollFd::revents));
        drop(fds);
        if let Err(e) = polled {
            if e != Errno::INTR {
                let e = DriverError::from_socket("poll", &shared.driver.describe(), 0, e.into());
                for lane in &mut lanes {
                    lane.fail_in_flight(shared, result, &e);
                }
                result.connect_failure = Some(e.to_string());
                break;
            }
        }
        for (lane, &(first, n)) in lanes.iter_mut().zip(&spans) {
            if lane.in_flight.is_empty() {
                continue;
            }
            let ready = revents.get(first..first + n).unwrap_or_default();
            let mut broken = None;
            if ready.iter().any(|r| !r.is_empty()) {
                broken = lane.conn.read_polled(ready).err();
            }
            if broken.is_none() {
                let first = lane.conn.recv_ready();
                broken = lane.take(shared, result, first);
            }
            if broken.is_none() && !lane.in_flight.is_empty() && shared.now_ns() >= lane.deadline_ns
            {
                broken = Some(DriverError::Timeout {
                    addr: shared.driver.describe(),
                    timeout_ms: (shared.request_timeout_ns / 1_000_000),
                });
            }
            if let Some(e) = broken {
                if !lane.mend(shared, result, e) {
                    lane.stopping = true;
                }
            }
        }
    }
}

/// The next operation, or `None` when the phase's count is exhausted.
fn next_operation(shared: &Shared<'_>, generator: &mut Generator) -> Option<Operation> {
    match shared.phase {
        Phase::Load => {
            let n = shared.claimed.fetch_add(1, Ordering::Relaxed);
            (n < shared.spec.records).then_some(Operation::Insert { key: n })
        }
        Phase::Run => {
            if let Some(max) = shared.shape.operations {
                if shared.claimed.fetch_add(1, Ordering::Relaxed) >= max {
                    return None;
                }
            }
            Some(generator.next(&shared.keys))
        }
    }
}

fn record(
    shared: &Shared<'_>,
    c: usize,
    result: &mut WorkerResult,
    f: &InFlight,
    outcome: &Outcome,
    done_ns: u64,
) {
    match outcome {
        Outcome::Ok | Outcome::Miss => {
            shared.completed.fetch_add(1, Ordering::Relaxed);
            if let Some(h) = shared.interval.get(c) {
                let latency = corrected_latency_ns(f.intended_ns, f.sent_ns, done_ns);
                let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
                record_clamped(&mut h, latency);
            }
        }
        Outcome::Throttled => {
            shared.throttled.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Error(_) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    if f.intended_ns >= shared.warmup_ns && f.intended_ns < shared.end_ns {
        result
            .recorder
            .record(f.kind, outcome, f.intended_ns, f.sent_ns, done_ns);
        result.last_done_ns = result.last_done_ns.max(done_ns);
    }
}

fn progress_bar(shared: &Shared<'_>) -> ProgressBar {
    if !shared.shape.progress {
        return ProgressBar::hidden();
    }
    let (len, unit) = match (shared.phase, shared.shape.duration) {
        (Phase::Run, Some(d)) => ((shared.shape.warmup + d).as_secs().max(1), "s"),
        (Phase::Run, None) => (shared.shape.operations.unwrap_or(0), "ops"),
        (Phase::Load, _) => (shared.spec.records, "records"),
    };
    let bar = ProgressBar::new(len);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Samples the interval histograms every `interval` until `done`.
fn monitor(shared: &Shared<'_>, done: &AtomicBool) -> Vec<TimelinePoint> {
    let bar = progress_bar(shared);
    let interval = shared.shape.interval;
    let mut timeline = Vec::new();
    let mut merged = new_histogram();
    let mut last_at = Duration::ZERO;
    let mut last_completed = 0;
    let mut last_failed = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        if !finished {
            // Sleep in small steps so the end of the phase is noticed quickly.
            let next = last_at + interval;
            while !done.load(Ordering::Acquire) && shared.start.elapsed() < next {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let at = shared.start.elapsed();
        merged.reset();
        for h in &shared.interval {
            let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
            let _ = merged.add(&*h);
            h.reset();
        }
        let completed = shared.completed.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        let seconds = (at - last_at).as_secs_f64().max(1e-9);
        let point = TimelinePoint::of(
            at.as_secs_f64(),
            seconds,
            &merged,
            failed - last_failed,
            at.as_nanos() as u64 <= shared.warmup_ns,
        );
        if completed > last_completed || failed > last_failed {
            timeline.push(point.clone());
        }
        let position = match (shared.phase, shared.shape.duration) {
            (Phase::Run, Some(_)) => at.as_secs(),
            _ => completed,
        };
        bar.set_position(position);
        bar.set_message(format!(
            "{:.0} ops/s  p99 {:.0} µs  errors {}  throttles {}{}",
            (completed - last_completed) as f64 / seconds,
            point.p99_us,
            failed,
            shared.throttled.load(Ordering::Relaxed),
            if point.warmup { "  (warm-up)" } else { "" }
        ));
        last_at = at;
        last_completed = completed;
        last_failed = failed;
        if finished {
            break;
        }
    }
    bar.finish_and_clear();
    timeline
}
