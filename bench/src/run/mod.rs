//! The runner: one std thread per connection issuing operations, closed or open loop,
//! plus a monitor thread for the progress bar and the latency-over-time series.
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
    /// Connections (one thread each).
    pub connections: u32,
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
        let workers: Vec<_> = (0..connections)
            .map(|c| {
                let shared = &shared;
                scope.spawn(move || worker(shared, c))
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

fn worker(shared: &Shared<'_>, c: usize) -> WorkerResult {
    let shape = shared.shape;
    let seed = shape.seed.wrapping_add(c as u64);
    let mut result = WorkerResult {
        recorder: Recorder::new(),
        last_done_ns: 0,
        reconnects: 0,
        connect_failure: None,
    };
    let mut conn = match connect(shared, seed) {
        Ok(conn) => conn,
        Err(e) => {
            result.connect_failure = Some(e.to_string());
            return result;
        }
    };
    let mut generator = Generator::new(shared.spec, shared.chooser.clone(), seed);
    let schedule = match (shared.phase, shape.rate_per_s) {
        (Phase::Run, Some(rate)) => Some(Schedule::new(
            rate,
            u64::from(shape.connections),
            c as u64,
            0,
        )),
        _ => None,
    };
    let depth = shape.depth as usize;
    let mut k: u64 = 0;
    let mut in_flight: HashMap<u64, InFlight> = HashMap::with_capacity(depth);
    // The operations queued in this pass, to stamp with their send time once flushed.
    let mut fresh: Vec<u64> = Vec::with_capacity(depth);
    let mut stopping = false;
    loop {
        let now = shared.now_ns();
        if now >= shared.limit_ns {
            shared.hit_time_limit.store(true, Ordering::Relaxed);
            stopping = true;
        }
        if now >= shared.end_ns {
            stopping = true;
        }
        fresh.clear();
        let mut broken: Option<DriverError> = None;
        while !stopping && in_flight.len() < depth {
            let intended_ns = match schedule {
                Some(s) => {
                    let due = s.intended_ns(k);
                    if due > shared.now_ns() {
                        break;
                    }
                    if due >= shared.end_ns {
                        stopping = true;
                        break;
                    }
                    due
                }
                None => shared.now_ns(),
            };
            let Some(op) = next_operation(shared, &mut generator) else {
                stopping = true;
                break;
            };
            let sent = conn.send(k, &op);
            in_flight.insert(
                k,
                InFlight {
                    kind: op.kind(),
                    intended_ns,
                    sent_ns: intended_ns,
                },
            );
            fresh.push(k);
            k += 1;
            if let Err(e) = sent {
                broken = Some(e);
                break;
            }
        }
        if !fresh.is_empty() && broken.is_none() {
            if let Err(e) = conn.flush() {
                broken = Some(e);
            }
            let sent_ns = shared.now_ns();
            for seq in &fresh {
                if let Some(f) = in_flight.get_mut(seq) {
                    f.sent_ns = sent_ns;
                }
            }
        }
        if broken.is_none() && !in_flight.is_empty() {
            // Wait for one answer, then take every other one already read, so that the
            // next pass refills the window with one write.
            let mut next = conn.recv().map(Some);
            loop {
                match next {
                    Ok(Some((seq, outcome))) => {
                        let done_ns = shared.now_ns();
                        let Some(f) = in_flight.remove(&seq) else {
                            broken = Some(DriverError::Protocol {
                                addr: shared.driver.describe(),
                                message: format!("an outcome for operation {seq}, not in flight"),
                            });
                            break;
                        };
                        record(shared, c, &mut result, &f, &outcome, done_ns);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
                if in_flight.is_empty() {
                    break;
                }
                next = conn.recv_ready();
            }
        }
        if let Some(e) = broken {
            // Everything in flight on the broken connection failed.
            let done_ns = shared.now_ns();
            let outcome = Outcome::Error(e.kind().to_owned());
            for (_, f) in in_flight.drain() {
                record(shared, c, &mut result, &f, &outcome, done_ns);
            }
            if stopping {
                break;
            }
            result.reconnects += 1;
            match connect(shared, seed.wrapping_add(result.reconnects << 32)) {
                Ok(new) => conn = new,
                Err(e) => {
                    result.connect_failure = Some(e.to_string());
                    break;
                }
            }
            continue;
        }
        if in_flight.is_empty() {
            if stopping {
                break;
            }
            if let Some(s) = schedule {
                let due = s.intended_ns(k);
                let now = shared.now_ns();
                if due > now {
                    std::thread::sleep(Duration::from_nanos((due - now).min(50_000_000)));
                }
            }
        }
    }
    result
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
