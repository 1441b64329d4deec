//! The simulated world: hosts (replica + storage + clock + state machine), the network,
//! clients, a nemesis and a placement policy, all driven by one seeded event queue.
//!
//! One seed decides everything: the shape of the run (swarm testing: which faults are on
//! and how hard), every delay, loss, crash and client choice. The run has a safety phase
//! (faults on, clients reading and writing, invariants checked after every event) and a
//! liveness phase (faults healed, every host restarted; a leader must emerge, a new write
//! must commit and every member must catch up within a budget). The client history is then
//! checked for linearizability.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::membership::{ConfigChange, Membership};
use crate::message::{Envelope, Payload};
use crate::multi::NodeMessage;
use crate::prng::Prng;
use crate::replica::{
    Actions, Apply, Boot, Config, Input, ProposeError, ReadConsistency, ReadError, ReadId, Replica,
    Role,
};
use crate::sim::core::Core;
use crate::sim::linearizability::{self, CheckReport, Op, OpKind};
use crate::sim::network::{Network, NetworkFaults};
use crate::sim::storage::{Durable, SimStorage};
use crate::types::{LogIndex, NodeId, Term, Tick};

/// The shape of one run, drawn from its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Replicas the group starts with (3 or 5).
    pub replicas: usize,
    /// Network faults during the safety phase.
    pub network: NetworkFaults,
    /// Partitions come and go.
    pub partitions: bool,
    /// Hosts crash (losing unsynced writes) and restart.
    pub crashes: bool,
    /// The placement policy changes membership (log replicas, promotion, replacement).
    pub reconfig: bool,
    /// Entries applied between compactions.
    pub compact_every: u64,
    /// Clients.
    pub clients: usize,
    /// Keys they use.
    pub keys: u64,
    /// Strong reads use leases (otherwise read-index only).
    pub lease_reads: bool,
    /// Clock drift bound, parts per million; each clock's rate is within it.
    pub drift_ppm: u64,
    /// fdatasync latency range, ms.
    pub sync_ms: (u64, u64),
    /// Mean time between nemesis actions, ms.
    pub nemesis_every_ms: u64,
    /// Buggify: chance per decision point that replicas take a rare legal branch (ppm).
    pub buggify_ppm: u64,
    /// Longest pause of a client between operations (long pauses let groups go idle).
    pub think_ms_max: u64,
    /// Run each replica inside the multi-group layer (quiescence, node heartbeats), with
    /// this quiet time before quiescing.
    pub multi_quiesce_after_ms: Option<u64>,
}

impl Shape {
    /// Draws a shape (swarm testing: each seed enables its own mix of faults).
    pub fn draw(prng: &mut Prng) -> Shape {
        let replicas = if prng.below(2) == 0 { 3 } else { 5 };
        let delay_min_ms = prng.range(1, 3);
        let network = NetworkFaults {
            loss_ppm: if prng.below(2) == 0 {
                0
            } else {
                prng.range(1_000, 100_000)
            },
            duplicate_ppm: if prng.below(2) == 0 {
                0
            } else {
                prng.range(1_000, 50_000)
            },
            delay_min_ms,
            delay_max_ms: delay_min_ms
                + [0, 2, 10, 40][usize::try_from(prng.below(4)).unwrap_or(0)],
            long_delay_ppm: if prng.below(3) == 0 {
                prng.range(1_000, 20_000)
            } else {
                0
            },
        };
        Shape {
            replicas,
            network,
            partitions: prng.below(3) != 0,
            crashes: prng.below(3) != 0,
            reconfig: prng.below(2) == 0,
            compact_every: [5, 20, 100, 1_000_000][usize::try_from(prng.below(4)).unwrap_or(0)],
            clients: usize::try_from(prng.range(1, 4)).unwrap_or(1),
            keys: prng.range(1, 4),
            lease_reads: prng.below(4) != 0,
            drift_ppm: [0, 10_000, 50_000, 100_000][usize::try_from(prng.below(4)).unwrap_or(0)],
            sync_ms: (prng.range(0, 2), prng.range(2, 8)),
            nemesis_every_ms: prng.range(50, 400),
            think_ms_max: if prng.below(2) == 0 { 20 } else { 300 },
            buggify_ppm: if prng.below(2) == 0 { 0 } else { 20_000 },
            multi_quiesce_after_ms: (prng.below(2) == 0).then(|| prng.range(10, 100)),
        }
    }
}

/// Options of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// Simulated time with faults, ms.
    pub safety_ms: u64,
    /// Simulated time allowed to converge after healing, ms.
    pub liveness_ms: u64,
}

impl RunOptions {
    /// The defaults CI uses for one seed.
    #[must_use]
    pub fn ci(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            safety_ms: 4_000,
            liveness_ms: 10_000,
        }
    }
}

/// What a clean run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Its shape.
    pub shape: Shape,
    /// Events processed (the "steps" of the run).
    pub events: u64,
    /// Hash of the whole trace; a replay of the seed must give the same.
    pub trace_hash: u64,
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Strong reads answered.
    pub strong_reads: u64,
    /// Strong reads a leader answered from its lease, without a round trip.
    pub lease_reads: u64,
    /// Eventually consistent reads answered.
    pub eventual_reads: u64,
    /// Highest term reached.
    pub term_max: u64,
    /// Membership changes committed... proposed and accepted by a leader.
    pub membership_changes: u64,
    /// Log replicas added by the placement policy.
    pub log_replicas_added: u64,
    /// Log replicas promoted to storage.
    pub promotions: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Messages routed.
    pub messages: u64,
    /// Crashes.
    pub crashes: u64,
    /// The linearizability check.
    pub check: CheckReport,
    /// Coverage marks: how often each rare protocol path was taken (by the messages
    /// that show it).
    pub coverage: BTreeMap<&'static str, u64>,
}

/// A failed run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "seed {seed} failed: {what}\n  replay: KEEL_SIM_SEED={seed} cargo test -p keel-consensus \
     --release --test sim -- replay_one_seed --nocapture"
)]
pub struct RunFailure {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Event {
    Deliver(Envelope),
    DeliverNode(NodeId, NodeId, NodeMessage),
    Tick(usize, u64),
    Sync(usize, u64),
    Restart(usize),
    Nemesis,
    Placement,
    Client(usize),
    ClientTimeout(usize, u64),
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and the earliest event comes first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Host {
    id: NodeId,
    replica: Option<Core>,
    storage: SimStorage,
    clock_offset_ms: u64,
    clock_ppm: i64,
    incarnation: u64,
    state: BTreeMap<u64, u64>,
    applied: LogIndex,
    /// op id -> (client, client op seq)
    pending_writes: BTreeMap<u64, (usize, u64)>,
    /// read id -> (client, client op seq, key, invoke time, consistency)
    read_clients: BTreeMap<ReadId, (usize, u64, u64, u64, ReadConsistency)>,
    /// reads ready at an index, waiting for the state machine
    reads_waiting: Vec<(ReadId, LogIndex)>,
    down_since_ms: Option<u64>,
}

impl Host {
    fn local(&self, real_ms: u64) -> Tick {
        let real = i128::from(real_ms);
        let local =
            i128::from(self.clock_offset_ms) + real + real * i128::from(self.clock_ppm) / 1_000_000;
        Tick(u64::try_from(local).unwrap_or(0))
    }
}

struct Client {
    op_seq: u64,
    /// The op in flight: (seq, history index for a write).
    current: Option<(u64, Option<usize>)>,
    leader_guess: Option<usize>,
}

/// The simulated world of one run.
pub struct World {
    seed: u64,
    shape: Shape,
    prng: Prng,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    hosts: Vec<Host>,
    network: Network,
    clients: Vec<Client>,
    history: Vec<Op>,
    hist_clock: u64,
    next_op_id: u64,
    next_read_id: u64,
    /// index -> (term, payload hash) of every entry any replica applied.
    applied_entries: BTreeMap<u64, (Term, u64)>,
    /// term -> leader
    leaders: BTreeMap<Term, NodeId>,
    /// value -> key of every write proposed (to check eventual reads).
    written: BTreeMap<u64, u64>,
    trace: DefaultHasher,
    healed: bool,
    heal_write_acked: bool,
    report: RunReport,
    failure: Option<String>,
    hosts_max: usize,
    #[cfg(test)]
    bugs: crate::replica::Bugs,
}

const TICK_MS: u64 = 5;
const CLIENT_TIMEOUT_MS: u64 = 1_500;
const ELECTION_TIMEOUT_MIN_MS: u64 = 150;

fn encode_write(op_id: u64, key: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&op_id.to_le_bytes());
    v.extend_from_slice(&key.to_le_bytes());
    v
}

fn decode_write(data: &[u8]) -> Option<(u64, u64)> {
    let op = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let key = u64::from_le_bytes(data.get(8..16)?.try_into().ok()?);
    Some((op, key))
}

fn encode_state(state: &BTreeMap<u64, u64>) -> Vec<u8> {
    let mut v = Vec::with_capacity(state.len() * 16);
    for (k, val) in state {
        v.extend_from_slice(&k.to_le_bytes());
        v.extend_from_slice(&val.to_le_bytes());
    }
    v
}

fn decode_state(data: &[u8]) -> BTreeMap<u64, u64> {
    data.chunks_exact(16).filter_map(decode_write).collect()
}

/// The rare path a message shows, if any.
fn coverage_mark(msg: &crate::message::Message) -> Option<&'static str> {
    use crate::message::Message;
    match msg {
        Message::PreVoteResponse { granted: false, .. } => Some("pre-vote refused"),
        Message::VoteResponse { granted: false, .. } => Some("vote refused"),
        Message::Vote { .. } => Some("election"),
        Message::AppendResponse { result: Err(h), .. } if h.conflict_term.is_some() => {
            Some("append rejected: conflicting term (fast backtrack)")
        }
        Message::AppendResponse { result: Err(_), .. } => Some("append rejected: log too short"),
        Message::AppendResponse {
            needs_snapshot: true,
            ..
        } => Some("snapshot asked for"),
        Message::InstallSnapshot { .. } => Some("snapshot sent"),
        Message::Append { entries, .. } if entries.len() > 1 => Some("append batch"),
        _ => None,
    }
}

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

impl World {
    /// A world for the seed, with its shape drawn from it.
    #[must_use]
    pub fn new(seed: u64) -> World {
        let mut prng = Prng::new(seed);
        let shape = Shape::draw(&mut prng);
        World::with_shape(seed, shape, prng)
    }

    fn with_shape(seed: u64, shape: Shape, prng: Prng) -> World {
        #[cfg(test)]
        {
            World::with_shape_bugs(seed, shape, prng, crate::replica::Bugs::default())
        }
        #[cfg(not(test))]
        {
            World::build(seed, shape, prng)
        }
    }

    #[cfg(test)]
    fn with_shape_bugs(seed: u64, shape: Shape, prng: Prng, bugs: crate::replica::Bugs) -> World {
        World::build(seed, shape, prng, bugs)
    }

    fn build(
        seed: u64,
        shape: Shape,
        prng: Prng,
        #[cfg(test)] bugs: crate::replica::Bugs,
    ) -> World {
        let mut w = World {
            seed,
            report: RunReport {
                seed,
                shape: shape.clone(),
                events: 0,
                trace_hash: 0,
                writes_acked: 0,
                strong_reads: 0,
                lease_reads: 0,
                eventual_reads: 0,
                term_max: 0,
                membership_changes: 0,
                log_replicas_added: 0,
                promotions: 0,
                snapshots_installed: 0,
                messages: 0,
                crashes: 0,
                check: CheckReport::default(),
                coverage: BTreeMap::new(),
            },
            network: Network::new(shape.network),
            hosts_max: shape.replicas + 6,
            shape,
            prng,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            hosts: Vec::new(),
            clients: Vec::new(),
            history: Vec::new(),
            hist_clock: 0,
            next_op_id: 1,
            next_read_id: 1,
            applied_entries: BTreeMap::new(),
            leaders: BTreeMap::new(),
            written: BTreeMap::new(),
            trace: DefaultHasher::new(),
            healed: false,
            heal_write_acked: false,
            failure: None,
            #[cfg(test)]
            bugs,
        };
        let ids: Vec<NodeId> = (1..=w.shape.replicas as u64).map(NodeId).collect();
        let membership = Membership::storage(&ids).unwrap_or_default();
        for _ in 0..w.shape.replicas {
            w.add_host(Boot::bootstrap(membership.clone(), true));
        }
        for c in 0..w.shape.clients {
            w.clients.push(Client {
                op_seq: 0,
                current: None,
                leader_guess: None,
            });
            let at = w.prng.range(100, 400);
            w.schedule(at, Event::Client(c));
        }
        let at = w.shape.nemesis_every_ms;
        w.schedule(at, Event::Nemesis);
        w.schedule(500, Event::Placement);
        w
    }

    fn config_for(&mut self, id: NodeId) -> Config {
        let mut c = Config::new(id, self.prng.next_u64());
        c.election_timeout_min_ms = ELECTION_TIMEOUT_MIN_MS;
        c.heartbeat_interval_ms = 30;
        c.clock_drift_max_ppm = self.shape.drift_ppm;
        c.lease_reads = self.shape.lease_reads;
        c.append_entries_max = 16;
        c.inflight_entries_max = 64;
        c.buggify_ppm = self.shape.buggify_ppm;
        #[cfg(test)]
        {
            c.bugs = self.bugs;
        }
        c
    }

    fn core(&self, replica: Option<Replica>, incarnation: u64) -> Option<Core> {
        let replica = replica?;
        Some(match self.shape.multi_quiesce_after_ms {
            None => Core::Single(Box::new(replica)),
            Some(after) => Core::multi(replica, incarnation + 1, after),
        })
    }

    fn add_host(&mut self, boot: Boot) -> usize {
        let h = self.hosts.len();
        let id = NodeId(h as u64 + 1);
        let drift = self.shape.drift_ppm;
        let clock_ppm = i64::try_from(self.prng.range(0, 2 * drift)).unwrap_or(0)
            - i64::try_from(drift).unwrap_or(0);
        let mut host = Host {
            id,
            replica: None,
            storage: SimStorage::new(Durable::from_boot(&boot), self.shape.sync_ms),
            clock_offset_ms: self.prng.range(1_000, 1_000_000),
            clock_ppm,
            incarnation: 0,
            state: BTreeMap::new(),
            applied: LogIndex(0),
            pending_writes: BTreeMap::new(),
            read_clients: BTreeMap::new(),
            reads_waiting: Vec::new(),
            down_since_ms: None,
        };
        let config = self.config_for(id);
        let local = host.local(self.now_ms);
        host.replica = self.core(Replica::new(config, boot, local).ok(), 0);
        self.hosts.push(host);
        let at = self.now_ms + self.prng.range(1, TICK_MS);
        self.schedule(at, Event::Tick(h, 0));
        h
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            self.failure = Some(format!("at {} ms: {what}", self.now_ms));
        }
    }

    /// Runs the seed to the end.
    ///
    /// # Errors
    /// A safety invariant broke, the history is not linearizable, or the group did not
    /// converge after healing.
    pub fn run(mut self, options: RunOptions) -> Result<RunReport, RunFailure> {
        let heal_at = options.safety_ms;
        let end_at = options.safety_ms + options.liveness_ms;
        while let Some(next) = self.queue.pop() {
            if !self.healed && next.at >= heal_at {
                self.queue.push(next);
                self.now_ms = heal_at;
                self.heal();
                continue;
            }
            if next.at > end_at {
                break;
            }
            self.now_ms = next.at;
            self.report.events += 1;
            next.at.hash(&mut self.trace);
            next.event.hash(&mut self.trace);
            self.handle(next.event);
            self.check_global();
            if self.failure.is_some() {
                break;
            }
            if self.healed && self.converged() {
                break;
            }
        }
        if self.failure.is_none() && !(self.healed && self.converged()) {
            let state = self.describe();
            self.fail(format!(
                "no convergence within {} ms after healing: {state}",
                options.liveness_ms
            ));
        }
        if self.failure.is_none() {
            match linearizability::check(&self.history) {
                Ok(check) => self.report.check = check,
                Err(v) => self.fail(format!("{v}")),
            }
        }
        if let Some(what) = self.failure.take() {
            return Err(RunFailure {
                seed: self.seed,
                what,
            });
        }
        self.report.trace_hash = self.trace.finish();
        self.report.messages = self.network.sent;
        Ok(self.report)
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for h in &self.hosts {
            if let Some(r) = &h.replica {
                s.push_str(&format!(
                    "[{} {:?} t{} last{} commit{} members{:?}] ",
                    h.id,
                    r.role(),
                    r.term(),
                    r.log().last_index(),
                    r.commit(),
                    r.membership().0.voters().map(|v| v.0).collect::<Vec<_>>()
                ));
            } else {
                s.push_str(&format!("[{} down] ", h.id));
            }
        }
        s
    }

    fn heal(&mut self) {
        self.healed = true;
        self.network.heal();
        self.network.faults = NetworkFaults {
            loss_ppm: 0,
            duplicate_ppm: 0,
            long_delay_ppm: 0,
            ..self.network.faults
        };
        for h in 0..self.hosts.len() {
            if self.hosts.get(h).is_some_and(|x| x.replica.is_none()) {
                self.restart(h);
            }
        }
    }

    /// A leader with an entry of its term committed, a write acknowledged since healing,
    /// and every up member of its membership caught up.
    fn converged(&self) -> bool {
        if !self.heal_write_acked {
            return false;
        }
        let Some(leader) = self
            .hosts
            .iter()
            .filter_map(|h| h.replica.as_ref())
            .find(|r| r.role() == Role::Leader && r.committed_in_term())
        else {
            return false;
        };
        leader.membership().0.voters().all(|v| {
            self.hosts
                .get(usize::try_from(v.0 - 1).unwrap_or(usize::MAX))
                .and_then(|h| h.replica.as_ref())
                .is_some_and(|r| {
                    r.commit() == leader.commit() && (!r.has_state() || r.applied() == r.commit())
                })
        })
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver(env) => {
                let h = usize::try_from(env.to.0 - 1).unwrap_or(usize::MAX);
                if !self.network.connected(env.from, env.to) {
                    return;
                }
                if let Some(mark) = coverage_mark(&env.msg) {
                    *self.report.coverage.entry(mark).or_insert(0) += 1;
                }
                self.with_replica(h, |r, now, out| r.step(now, Input::Message(env), out));
            }
            Event::DeliverNode(from, to, msg) => {
                let h = usize::try_from(to.0 - 1).unwrap_or(usize::MAX);
                if !self.network.connected(from, to) {
                    return;
                }
                if matches!(msg, NodeMessage::Quiesce { .. }) {
                    *self
                        .report
                        .coverage
                        .entry("quiesce (multi-group layer)")
                        .or_insert(0) += 1;
                }
                self.with_replica(h, |r, now, out| r.on_node_message(now, from, msg, out));
            }
            Event::Tick(h, inc) => {
                if self
                    .hosts
                    .get(h)
                    .is_some_and(|x| x.incarnation == inc && x.replica.is_some())
                {
                    self.with_replica(h, |r, now, out| r.step(now, Input::Tick, out));
                    let at = self.now_ms + TICK_MS;
                    self.schedule(at, Event::Tick(h, inc));
                }
            }
            Event::Sync(h, inc) => self.sync(h, inc),
            Event::Restart(h) => {
                if self.hosts.get(h).is_some_and(|x| x.replica.is_none()) {
                    self.restart(h);
                }
            }
            Event::Nemesis => self.nemesis(),
            Event::Placement => self.placement(),
            Event::Client(c) => self.client_start(c),
            Event::ClientTimeout(c, seq) => {
                if let Some(client) = self.clients.get_mut(c) {
                    if client.current.is_some_and(|(s, _)| s == seq) {
                        client.current = None;
                        client.leader_guess = None;
                        let at = self.now_ms + 1;
                        self.schedule(at, Event::Client(c));
                    }
                }
            }
        }
    }

    fn with_replica(&mut self, h: usize, f: impl FnOnce(&mut Core, Tick, &mut Actions)) {
        let mut out = Actions::default();
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        let now = host.local(self.now_ms);
        let Some(replica) = host.replica.as_mut() else {
            return;
        };
        f(replica, now, &mut out);
        self.carry_out(h, out);
    }

    fn sync(&mut self, h: usize, inc: u64) {
        let now_ms = self.now_ms;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.incarnation != inc || host.replica.is_none() {
            return;
        }
        let (messages, any) = host.storage.sync(now_ms);
        let (index, term) = host.storage.durable.last();
        self.send_all(messages);
        if any {
            self.with_replica(h, |r, now, out| {
                r.step(now, Input::Persisted { index, term }, out)
            });
        }
    }

    fn send_all(&mut self, messages: Vec<Envelope>) {
        for env in messages {
            let delays = self.network.route(&mut self.prng, env.from, env.to);
            for d in delays {
                let at = self.now_ms + d;
                self.schedule(at, Event::Deliver(env.clone()));
            }
        }
    }

    fn carry_out(&mut self, h: usize, mut out: Actions) {
        loop {
            let now_ms = self.now_ms;
            let Some(host) = self.hosts.get_mut(h) else {
                return;
            };
            let from = host.id;
            let node_messages = host.replica.as_mut().map(Core::take_node_messages);
            for (to, msg) in node_messages.unwrap_or_default() {
                for d in self.network.route(&mut self.prng, from, to) {
                    let at = self.now_ms + d;
                    self.schedule(at, Event::DeliverNode(from, to, msg.clone()));
                }
            }
            let Some(host) = self.hosts.get_mut(h) else {
                return;
            };
            // Persist, then (after the simulated sync) send.
            let ops = std::mem::take(&mut out.persist);
            let messages = std::mem::take(&mut out.messages);
            let (ready, sync_at) = host.storage.submit(&mut self.prng, now_ms, ops, messages);
            let inc = host.incarnation;
            if let Some(at) = sync_at {
                self.schedule(at, Event::Sync(h, inc));
            }
            self.send_all(ready);
            for apply in std::mem::take(&mut out.apply) {
                self.apply(h, apply);
            }
            for read in std::mem::take(&mut out.reads) {
                self.read_outcome(h, read.id, read.result);
            }
            self.serve_reads(h);
            // Compaction policy.
            let Some(host) = self.hosts.get_mut(h) else {
                return;
            };
            let local = host.local(now_ms);
            let Some(replica) = host.replica.as_mut() else {
                return;
            };
            let snapshot_index = replica.log().snapshot().index;
            let mut next = Actions::default();
            if replica.has_state() {
                let due = replica.applied().0 >= snapshot_index.0 + self.shape.compact_every;
                if (due || out.snapshot_wanted) && replica.applied() > snapshot_index {
                    let data = encode_state(&host.state);
                    let applied = replica.applied();
                    if replica
                        .compact(local, applied, Some(data), &mut next)
                        .is_err()
                    {
                        self.failure
                            .get_or_insert_with(|| "compaction refused".to_string());
                    }
                }
            } else {
                let limit = replica.commit().min(replica.log().persisted());
                let due = limit.0 >= snapshot_index.0 + self.shape.compact_every * 2;
                if due && replica.compact(local, limit, None, &mut next).is_err() {
                    self.failure
                        .get_or_insert_with(|| "log replica compaction refused".to_string());
                }
            }
            if next.is_empty() {
                return;
            }
            out = next;
        }
    }

    fn apply(&mut self, h: usize, apply: Apply) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        match apply {
            Apply::Snapshot(s) => {
                host.state = decode_state(s.data.as_deref().unwrap_or(&[]));
                host.applied = s.meta.index;
                self.report.snapshots_installed += 1;
            }
            Apply::Entry(e) => {
                assert_eq!(
                    e.index,
                    host.applied.next(),
                    "applies are in order on {}",
                    host.id
                );
                host.applied = e.index;
                let fingerprint = (e.term, hash_of(&e.payload));
                let known = *self.applied_entries.entry(e.index.0).or_insert(fingerprint);
                if known != fingerprint {
                    let what = format!(
                        "state machine safety: {} applied {:?} at {} where another applied term {}",
                        host.id, e.term, e.index, known.0
                    );
                    self.fail(what);
                    return;
                }
                let Payload::Data(data) = &e.payload else {
                    return;
                };
                let Some((op_id, key)) = decode_write(data) else {
                    return;
                };
                host.state.insert(key, op_id);
                if let Some((c, seq)) = host.pending_writes.remove(&op_id) {
                    self.complete_write(c, seq);
                }
            }
        }
    }

    fn complete_write(&mut self, c: usize, seq: u64) {
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        let Some((cur, Some(hidx))) = client.current else {
            return;
        };
        if cur != seq {
            return;
        }
        client.current = None;
        self.hist_clock += 1;
        if let Some(op) = self.history.get_mut(hidx) {
            op.complete = Some(self.hist_clock);
        }
        self.report.writes_acked += 1;
        if self.healed {
            self.heal_write_acked = true;
        }
        let at = self.now_ms + self.prng.range(0, self.shape.think_ms_max);
        self.schedule(at, Event::Client(c));
    }

    fn read_outcome(&mut self, h: usize, id: ReadId, result: Result<LogIndex, ReadError>) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        match result {
            Ok(index) => host.reads_waiting.push((id, index)),
            Err(_) => {
                if let Some((c, seq, ..)) = host.read_clients.remove(&id) {
                    self.client_failed(c, seq, None);
                }
            }
        }
    }

    fn serve_reads(&mut self, h: usize) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        let applied = host.applied;
        let mut served = Vec::new();
        host.reads_waiting.retain(|(id, index)| {
            if *index <= applied {
                served.push(*id);
                false
            } else {
                true
            }
        });
        for id in served {
            let Some(host) = self.hosts.get_mut(h) else {
                return;
            };
            let Some((c, seq, key, invoke, consistency)) = host.read_clients.remove(&id) else {
                continue;
            };
            let value = host.state.get(&key).copied();
            let Some(client) = self.clients.get_mut(c) else {
                continue;
            };
            if client.current.is_none_or(|(s, _)| s != seq) {
                continue;
            }
            client.current = None;
            self.hist_clock += 1;
            match consistency {
                ReadConsistency::Strong => {
                    self.history.push(Op {
                        key,
                        kind: OpKind::Read(value),
                        invoke,
                        complete: Some(self.hist_clock),
                    });
                    self.report.strong_reads += 1;
                }
                ReadConsistency::Eventual => {
                    // Eventual reads may be stale, but only ever show a value written to
                    // that key.
                    if let Some(v) = value {
                        if self.written.get(&v) != Some(&key) {
                            self.fail(format!(
                                "eventual read of key {key} saw {v}, never written there"
                            ));
                        }
                    }
                    self.report.eventual_reads += 1;
                }
            }
            let at = self.now_ms + self.prng.range(0, self.shape.think_ms_max);
            self.schedule(at, Event::Client(c));
        }
    }

    fn client_failed(&mut self, c: usize, seq: u64, leader: Option<NodeId>) {
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        if client.current.is_some_and(|(s, _)| s == seq) {
            client.current = None;
        }
        client.leader_guess = leader.map(|l| usize::try_from(l.0 - 1).unwrap_or(0));
        let at = self.now_ms + self.prng.range(5, 30);
        self.schedule(at, Event::Client(c));
    }

    fn client_start(&mut self, c: usize) {
        let hosts = self.hosts.len() as u64;
        let key = self.prng.below(self.shape.keys);
        let roll = self.prng.below(10);
        let random_target = usize::try_from(self.prng.below(hosts)).unwrap_or(0);
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        if client.current.is_some() {
            return;
        }
        client.op_seq += 1;
        let seq = client.op_seq;
        // Eventually consistent reads (roll 9) go to any replica, leader or not.
        let target = client
            .leader_guess
            .filter(|_| roll != 0 && roll != 9)
            .unwrap_or(random_target);
        let Some(host) = self.hosts.get_mut(target) else {
            return;
        };
        let now = host.local(self.now_ms);
        let Some(replica) = host.replica.as_mut() else {
            self.client_failed(c, seq, None);
            return;
        };
        let mut out = Actions::default();
        if roll < 5 {
            let op_id = self.next_op_id;
            self.next_op_id += 1;
            match replica.propose(now, encode_write(op_id, key), &mut out) {
                Ok(_) => {
                    host.pending_writes.insert(op_id, (c, seq));
                    self.written.insert(op_id, key);
                    self.hist_clock += 1;
                    self.history.push(Op {
                        key,
                        kind: OpKind::Write(op_id),
                        invoke: self.hist_clock,
                        complete: None,
                    });
                    let hidx = self.history.len() - 1;
                    if let Some(client) = self.clients.get_mut(c) {
                        client.current = Some((seq, Some(hidx)));
                        client.leader_guess = Some(target);
                    }
                }
                Err(ProposeError::NotLeader { leader }) => {
                    self.client_failed(c, seq, leader);
                    return;
                }
                Err(e) => {
                    self.fail(format!("unexpected propose error {e}"));
                    return;
                }
            }
        } else {
            let consistency = if roll < 9 {
                ReadConsistency::Strong
            } else {
                ReadConsistency::Eventual
            };
            let id = ReadId(self.next_read_id);
            self.next_read_id += 1;
            self.hist_clock += 1;
            let invoke = self.hist_clock;
            if consistency == ReadConsistency::Strong
                && replica.role() == Role::Leader
                && replica.committed_in_term()
                && replica.lease_valid(now)
            {
                self.report.lease_reads += 1;
            }
            match replica.read(now, id, consistency, &mut out) {
                Ok(()) => {
                    host.read_clients
                        .insert(id, (c, seq, key, invoke, consistency));
                    if let Some(client) = self.clients.get_mut(c) {
                        client.current = Some((seq, None));
                        if consistency == ReadConsistency::Strong {
                            client.leader_guess = Some(target);
                        }
                    }
                }
                Err(ReadError::NotLeader { leader }) => {
                    self.client_failed(c, seq, leader);
                    return;
                }
                Err(_) => {
                    self.client_failed(c, seq, None);
                    return;
                }
            }
        }
        let at = self.now_ms + CLIENT_TIMEOUT_MS;
        self.schedule(at, Event::ClientTimeout(c, seq));
        self.carry_out(target, out);
    }

    fn crash(&mut self, h: usize) {
        let now_ms = self.now_ms;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.replica.is_none() {
            return;
        }
        host.replica = None;
        host.storage.crash(&mut self.prng);
        host.incarnation += 1;
        host.pending_writes.clear();
        host.reads_waiting.clear();
        host.down_since_ms = Some(now_ms);
        let reads: Vec<(usize, u64)> = host.read_clients.values().map(|r| (r.0, r.1)).collect();
        host.read_clients.clear();
        self.report.crashes += 1;
        for (c, seq) in reads {
            self.client_failed(c, seq, None);
        }
        let at = self.now_ms + self.prng.range(50, 2_000);
        self.schedule(at, Event::Restart(h));
    }

    fn restart(&mut self, h: usize) {
        let Some(host) = self.hosts.get(h) else {
            return;
        };
        let id = host.id;
        let config = self.config_for(id);
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        let boot = host.storage.durable.to_boot();
        host.state = decode_state(boot.snapshot.data.as_deref().unwrap_or(&[]));
        host.applied = boot.snapshot.meta.index;
        host.down_since_ms = None;
        let local = host.local(self.now_ms);
        let inc = host.incarnation;
        let replica = Replica::new(config, boot, local).ok();
        let core = self.core(replica, inc);
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        host.replica = core;
        let at = self.now_ms + TICK_MS;
        self.schedule(at, Event::Tick(h, inc));
    }

    fn nemesis(&mut self) {
        if self.healed {
            return;
        }
        let n = self.hosts.len();
        let roll = self.prng.below(10);
        if self.shape.partitions && roll < 3 {
            if self.network.is_partitioned() && self.prng.below(2) == 0 {
                self.network.heal();
            } else if self.prng.below(2) == 0 {
                // Cut one link: a non-transitive partition (A and C both reach B, not each
                // other), the shape that tests leader stickiness.
                let a = self.prng.below(n as u64) + 1;
                let b = self.prng.below(n as u64) + 1;
                if a != b {
                    self.network.partition(&[NodeId(a)], &[NodeId(b)]);
                }
            } else {
                self.network.heal();
                let ids: Vec<NodeId> = self.hosts.iter().map(|x| x.id).collect();
                let mut a = Vec::new();
                let mut b = Vec::new();
                for id in ids {
                    if self.prng.below(2) == 0 {
                        a.push(id);
                    } else {
                        b.push(id);
                    }
                }
                self.network.partition(&a, &b);
            }
        } else if self.shape.crashes && roll < 5 {
            let h = usize::try_from(self.prng.below(n as u64)).unwrap_or(0);
            self.crash(h);
        }
        let at = self.now_ms + self.prng.range(1, 2 * self.shape.nemesis_every_ms);
        self.schedule(at, Event::Nemesis);
    }

    /// The placement policy: replace a lost storage replica with a log replica, later
    /// promote it; keep the group at its size; sometimes move a replica for the sake of it.
    fn placement(&mut self) {
        let at = self.now_ms + 200;
        self.schedule(at, Event::Placement);
        if !self.shape.reconfig || self.healed {
            return;
        }
        let now_ms = self.now_ms;
        let Some(lh) = self.hosts.iter().position(|x| {
            x.replica
                .as_ref()
                .is_some_and(|r| r.role() == Role::Leader && r.committed_in_term())
        }) else {
            return;
        };
        let Some(leader) = self.hosts.get(lh).and_then(|x| x.replica.as_ref()) else {
            return;
        };
        let (membership, index) = leader.membership();
        if index > leader.commit() {
            return;
        }
        let membership = membership.clone();
        let local = self.hosts.get(lh).map_or(Tick(0), |x| x.local(now_ms));
        let roll = self.prng.below(10);
        let spare =
            (self.hosts.len() < self.hosts_max).then(|| NodeId(self.hosts.len() as u64 + 1));
        let mut change = leader.placement_step(local, 1_000, self.shape.replicas, spare);
        match change {
            Some(ConfigChange::AddLog(id) | ConfigChange::AddStorage(id)) => {
                let storage = matches!(change, Some(ConfigChange::AddStorage(_)));
                let h = self.add_host(Boot::join(storage));
                assert_eq!(NodeId(h as u64 + 1), id, "spare ids are host positions");
            }
            // Promote "later": not on every placement round.
            Some(ConfigChange::Promote(_)) if roll >= 4 => change = None,
            None if roll == 9 && membership.len() > 3 => {
                // Move a replica for the sake of it (5-replica groups only).
                let others: Vec<NodeId> = membership
                    .voters()
                    .filter(|v| v.0 != lh as u64 + 1)
                    .collect();
                let pick = usize::try_from(self.prng.below(others.len() as u64)).unwrap_or(0);
                change = others.get(pick).copied().map(ConfigChange::Remove);
            }
            _ => {}
        }
        let Some(change) = change else {
            return;
        };
        let mut out = Actions::default();
        let Some(host) = self.hosts.get_mut(lh) else {
            return;
        };
        let local = host.local(now_ms);
        let Some(replica) = host.replica.as_mut() else {
            return;
        };
        if replica.change_membership(local, change, &mut out).is_ok() {
            self.report.membership_changes += 1;
            match change {
                ConfigChange::AddLog(_) => self.report.log_replicas_added += 1,
                ConfigChange::Promote(_) => self.report.promotions += 1,
                _ => {}
            }
        }
        self.carry_out(lh, out);
    }

    fn check_global(&mut self) {
        let now_ms = self.now_ms;
        let mut leases: Vec<(NodeId, Term)> = Vec::new();
        let mut leaders: Vec<(NodeId, Term)> = Vec::new();
        for host in &self.hosts {
            let Some(r) = &host.replica else {
                continue;
            };
            self.report.term_max = self.report.term_max.max(r.term().0);
            if r.role() == Role::Leader {
                leaders.push((host.id, r.term()));
                if !r.has_state() {
                    self.failure.get_or_insert_with(|| {
                        format!("{} leads without a state machine", host.id)
                    });
                }
                if r.lease_valid(host.local(now_ms)) {
                    leases.push((host.id, r.term()));
                }
            }
        }
        for (id, term) in &leaders {
            let known = *self.leaders.entry(*term).or_insert(*id);
            if known != *id {
                self.fail(format!("two leaders in term {term}: {known} and {id}"));
            }
        }
        for (holder, lease_term) in &leases {
            for (leader, term) in &leaders {
                if term > lease_term {
                    let what = format!(
                        "{holder} holds a lease of term {lease_term} while {leader} leads \
                         term {term}"
                    );
                    self.fail(what);
                }
            }
        }
    }
}

/// Runs one seed.
///
/// # Errors
/// See [`World::run`].
pub fn run_seed(options: RunOptions) -> Result<RunReport, RunFailure> {
    World::new(options.seed).run(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::Bugs;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Runs seeds with a bug injected (from the first host on) until one fails.
    fn first_failing_seed(bugs: Bugs, seeds: u64) -> Option<(u64, String)> {
        for seed in 0..seeds {
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut prng = Prng::new(seed);
                let shape = Shape::draw(&mut prng);
                let mut w = World::with_shape_bugs(seed, shape, prng, bugs);
                w.bugs = bugs;
                w.run(RunOptions::ci(seed))
            }));
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(f)) => return Some((seed, f.what)),
                Err(_) => return Some((seed, "a replica assertion fired".to_string())),
            }
        }
        None
    }

    #[test]
    fn simulator_catches_commit_on_minority() {
        let bugs = Bugs {
            commit_on_minority: true,
            ..Bugs::default()
        };
        let found = first_failing_seed(bugs, 300);
        assert!(found.is_some(), "300 seeds missed a minority commit");
        eprintln!("commit_on_minority caught: {found:?}");
    }

    #[test]
    fn simulator_catches_votes_granted_under_a_lease() {
        let bugs = Bugs {
            vote_ignores_lease: true,
            ..Bugs::default()
        };
        let found = first_failing_seed(bugs, 3_000);
        assert!(
            found.is_some(),
            "3,000 seeds missed votes granted under a lease"
        );
        eprintln!("vote_ignores_lease caught: {found:?}");
    }
}
