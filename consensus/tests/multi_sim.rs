//! The multi-group layer under faults: three nodes, several groups each, quiescence on,
//! with loss, duplication, delay, isolation of a node, node restarts (new epoch) and clock
//! drift within the bound, while clients propose and read. Checked after every step, per
//! group: one leader per term, no lease held by a deposed leader once a newer leader
//! exists, and every node applies the same entry at each index; each group is a register
//! whose history of strong reads and writes must be linearizable. After healing every group
//! must have a leader, converge and quiesce again.
//!
//! Persistence is instant here (the single-group simulator covers torn writes); seeds are
//! replayable: `KEEL_MULTI_SEEDS=N` runs more.

#![expect(
    clippy::unwrap_used,
    reason = "test harness: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;

use keel_consensus::multi::{Node, NodeActions, NodeConfig, NodeMessage};
use keel_consensus::prng::Prng;
use keel_consensus::sim::linearizability::{self, Op, OpKind};
use keel_consensus::{
    Apply, Boot, Config, GroupId, LogIndex, Membership, NodeId, Payload, ReadConsistency, ReadId,
    Replica, Role, Snapshot, Term, Tick,
};

const GROUPS: u64 = 6;
const NODES: u64 = 3;

struct Host {
    node: Option<Node>,
    epoch: u64,
    rate_ppm: u64,
    offset_ms: u64,
}

struct World {
    prng: Prng,
    hosts: BTreeMap<NodeId, Host>,
    real_ms: u64,
    /// (deliver at, seq, from, to, message)
    wire: Vec<(u64, u64, NodeId, NodeId, NodeMessage)>,
    seq: u64,
    isolated: Option<NodeId>,
    loss_ppm: u64,
    dup_ppm: u64,
    delay_max_ms: u64,
    /// (group, index) -> (term, payload hash)
    applied: BTreeMap<(GroupId, LogIndex), (Term, u64)>,
    leaders: BTreeMap<(GroupId, Term), NodeId>,
    next_read: u64,
    restarts: u64,
    /// Per (node, group): the register and the applied index.
    registers: BTreeMap<(NodeId, GroupId), (Option<u64>, LogIndex)>,
    /// Writes waiting to be applied on the node that proposed them: value -> history index.
    writes_pending: BTreeMap<(NodeId, u64), usize>,
    /// Reads waiting: read id -> (node, group, invoke); then the index to reach.
    reads_pending: BTreeMap<ReadId, (NodeId, GroupId, u64, Option<LogIndex>)>,
    history: Vec<Op>,
    clock: u64,
}

fn config(id: NodeId, g: u64, seed: u64) -> Config {
    Config::new(id, seed ^ (g * 1_000 + id.0))
}

fn node_config(id: NodeId, epoch: u64) -> NodeConfig {
    NodeConfig {
        id,
        epoch,
        heartbeat_interval_ms: 30,
        peer_timeout_ms: 150,
        quiesce_after_ms: 100,
        quiesce: true,
    }
}

fn hash_of(p: &Payload) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

impl World {
    fn new(seed: u64) -> World {
        let mut prng = Prng::new(seed);
        let ids: Vec<NodeId> = (1..=NODES).map(NodeId).collect();
        let membership = Membership::storage(&ids).unwrap();
        let mut hosts = BTreeMap::new();
        for id in &ids {
            let rate_ppm = prng.range(950_000, 1_050_000);
            let offset_ms = prng.range(0, 100_000);
            let mut node = Node::new(node_config(*id, 1));
            for g in 0..GROUPS {
                let boot = Boot::bootstrap(membership.clone(), true);
                let now = Tick(offset_ms);
                node.add_group(
                    GroupId(g),
                    Replica::new(config(*id, g, seed), boot, now).unwrap(),
                );
            }
            hosts.insert(
                *id,
                Host {
                    node: Some(node),
                    epoch: 1,
                    rate_ppm,
                    offset_ms,
                },
            );
        }
        World {
            loss_ppm: [0, 20_000, 100_000][prng.below(3) as usize],
            dup_ppm: [0, 20_000][prng.below(2) as usize],
            delay_max_ms: [2, 10, 40][prng.below(3) as usize],
            prng,
            hosts,
            real_ms: 0,
            wire: Vec::new(),
            seq: 0,
            isolated: None,
            applied: BTreeMap::new(),
            leaders: BTreeMap::new(),
            next_read: 0,
            restarts: 0,
            registers: BTreeMap::new(),
            writes_pending: BTreeMap::new(),
            reads_pending: BTreeMap::new(),
            history: Vec::new(),
            clock: 0,
        }
    }

    fn local(&self, id: NodeId) -> Tick {
        let h = &self.hosts[&id];
        Tick(h.offset_ms + self.real_ms * h.rate_ppm / 1_000_000)
    }

    /// Carries out a node's actions: persistence is instant, so report it, then send.
    fn carry_out(&mut self, id: NodeId, mut out: NodeActions) {
        for _ in 0..100 {
            let now = self.local(id);
            let Some(node) = self.hosts.get_mut(&id).and_then(|h| h.node.as_mut()) else {
                return;
            };
            let mut groups: Vec<GroupId> = out.persist.iter().map(|(g, _)| *g).collect();
            groups.sort();
            groups.dedup();
            let mut more = NodeActions::default();
            for g in groups {
                let r = node.replica(g).unwrap();
                let (index, term) = (r.log().last_index(), r.log().last_term());
                node.persisted(now, g, index, term, &mut more);
            }
            for (_, read) in out.reads.drain(..) {
                match read.result {
                    Ok(index) => {
                        if let Some(r) = self.reads_pending.get_mut(&read.id) {
                            r.3 = Some(index);
                        }
                    }
                    Err(_) => {
                        self.reads_pending.remove(&read.id);
                    }
                }
            }
            for (g, apply) in out.apply.drain(..) {
                if let Apply::Entry(e) = apply {
                    let reg = self.registers.entry((id, g)).or_insert((None, LogIndex(0)));
                    reg.1 = e.index;
                    if let Payload::Data(d) = &e.payload {
                        let value = u64::from_le_bytes(d.as_slice().try_into().unwrap());
                        reg.0 = Some(value);
                        if let Some(h) = self.writes_pending.remove(&(id, value)) {
                            self.clock += 1;
                            self.history[h].complete = Some(self.clock);
                        }
                    }
                    let fp = (e.term, hash_of(&e.payload));
                    let known = *self.applied.entry((g, e.index)).or_insert(fp);
                    assert_eq!(
                        known, fp,
                        "group {g} index {}: nodes applied different entries",
                        e.index
                    );
                }
            }
            for (to, batch) in std::mem::take(&mut out.messages) {
                for msg in batch {
                    let cut = self.isolated.is_some_and(|i| i == id || i == to);
                    if cut || self.prng.chance_ppm(self.loss_ppm) {
                        continue;
                    }
                    let copies = if self.prng.chance_ppm(self.dup_ppm) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        self.seq += 1;
                        let at = self.real_ms + self.prng.range(1, self.delay_max_ms);
                        self.wire.push((at, self.seq, id, to, msg.clone()));
                    }
                }
            }
            self.serve_reads(id);
            if more.persist.is_empty()
                && more.messages.is_empty()
                && more.apply.is_empty()
                && more.reads.is_empty()
            {
                return;
            }
            out = more;
        }
    }

    fn step(&mut self, faults: bool) {
        self.real_ms += 1;
        // Deliver what is due, in order.
        self.wire.sort_by_key(|m| (m.0, m.1));
        let due = self.wire.iter().take_while(|m| m.0 <= self.real_ms).count();
        let batch: Vec<_> = self.wire.drain(..due).collect();
        for (_, _, from, to, msg) in batch {
            if self.isolated.is_some_and(|i| i == from || i == to) {
                continue;
            }
            let now = self.local(to);
            let Some(node) = self.hosts.get_mut(&to).and_then(|h| h.node.as_mut()) else {
                continue;
            };
            let mut out = NodeActions::default();
            node.on_message(now, from, msg, &mut out);
            self.carry_out(to, out);
        }
        if self.real_ms % 5 == 0 {
            for id in self.hosts.keys().copied().collect::<Vec<_>>() {
                let now = self.local(id);
                let Some(node) = self.hosts.get_mut(&id).and_then(|h| h.node.as_mut()) else {
                    continue;
                };
                let mut out = NodeActions::default();
                node.tick(now, &mut out);
                self.carry_out(id, out);
            }
        }
        if self.real_ms % 7 == 0 {
            self.client();
        }
        if faults && self.prng.below(1_000) == 0 {
            self.nemesis();
        }
        self.check();
    }

    fn serve_reads(&mut self, id: NodeId) {
        let ready: Vec<ReadId> = self
            .reads_pending
            .iter()
            .filter(|(_, r)| {
                r.0 == id
                    && r.3.is_some_and(|index| {
                        self.registers
                            .get(&(id, r.1))
                            .map_or(LogIndex(0), |reg| reg.1)
                            >= index
                    })
            })
            .map(|(read, _)| *read)
            .collect();
        for read in ready {
            let (node, g, invoke, _) = self.reads_pending.remove(&read).unwrap();
            let value = self.registers.get(&(node, g)).and_then(|reg| reg.0);
            self.clock += 1;
            let kind = OpKind::Read(value);
            self.history.push(Op {
                key: g.0,
                kind,
                invoke,
                complete: Some(self.clock),
            });
        }
    }

    fn client(&mut self) {
        let id = NodeId(self.prng.range(1, NODES));
        let g = GroupId(self.prng.below(GROUPS));
        // Mostly idle groups: touch a few of them.
        if g.0 >= 2 && self.prng.below(20) != 0 {
            return;
        }
        // Bound the concurrency per register so that the checker's search stays small.
        let in_flight = self
            .history
            .iter()
            .filter(|o| o.key == g.0 && o.complete.is_none());
        if in_flight.count() >= 3 {
            return;
        }
        let now = self.local(id);
        let value = self.prng.next_u64();
        self.next_read += 1;
        let read = ReadId(self.next_read);
        let write = self.prng.below(2) == 0;
        let Some(node) = self.hosts.get_mut(&id).and_then(|h| h.node.as_mut()) else {
            return;
        };
        let mut out = NodeActions::default();
        self.clock += 1;
        let invoke = self.clock;
        if write {
            if node
                .propose(now, g, value.to_le_bytes().to_vec(), &mut out)
                .is_ok()
            {
                let op = Op {
                    key: g.0,
                    kind: OpKind::Write(value),
                    invoke,
                    complete: None,
                };
                self.history.push(op);
                self.writes_pending
                    .insert((id, value), self.history.len() - 1);
            }
        } else if node
            .read(now, g, read, ReadConsistency::Strong, &mut out)
            .is_ok()
        {
            self.reads_pending.insert(read, (id, g, invoke, None));
        }
        self.carry_out(id, out);
    }

    fn nemesis(&mut self) {
        match self.prng.below(3) {
            0 => self.isolated = Some(NodeId(self.prng.range(1, NODES))),
            1 => self.isolated = None,
            _ => {
                // Restart a node from its durable state (everything it persisted).
                let id = NodeId(self.prng.range(1, NODES));
                let now = self.local(id);
                let host = self.hosts.get_mut(&id).unwrap();
                let old = host.node.take().unwrap();
                host.epoch += 1;
                let mut node = Node::new(node_config(id, host.epoch));
                for g in 0..GROUPS {
                    let r = old.replica(GroupId(g)).unwrap();
                    let log = r.log();
                    let boot = Boot {
                        hard_state: r.hard_state(),
                        snapshot: Snapshot {
                            meta: log.snapshot().clone(),
                            data: Some(Vec::new()),
                        },
                        entries: log.entries_from(log.first_index(), usize::MAX).to_vec(),
                    };
                    let replica = Replica::new(r.config().clone(), boot, now).unwrap();
                    node.add_group(GroupId(g), replica);
                }
                host.node = Some(node);
                self.restarts += 1;
                // Its state machines start again from the beginning of the log; its
                // waiting writes become indeterminate and its reads are lost.
                self.registers.retain(|(n, _), _| *n != id);
                self.writes_pending.retain(|(n, _), _| *n != id);
                self.reads_pending.retain(|_, r| r.0 != id);
                // Its in-flight messages die with it.
                self.wire.retain(|m| m.3 != id);
            }
        }
    }

    fn check(&mut self) {
        for g in (0..GROUPS).map(GroupId) {
            let mut leaders = Vec::new();
            let mut leases = Vec::new();
            for (id, host) in &self.hosts {
                let Some(r) = host.node.as_ref().and_then(|n| n.replica(g)) else {
                    continue;
                };
                if r.role() == Role::Leader {
                    leaders.push((*id, r.term()));
                    if r.lease_valid(self.local(*id)) {
                        leases.push((*id, r.term()));
                    }
                }
            }
            for (id, term) in &leaders {
                let known = *self.leaders.entry((g, *term)).or_insert(*id);
                assert_eq!(known, *id, "group {g}: two leaders in term {term}");
            }
            for (holder, lt) in &leases {
                for (leader, t) in &leaders {
                    assert!(
                        t <= lt,
                        "group {g}: {holder} holds a lease of term {lt}, {leader} leads {t}"
                    );
                }
            }
        }
    }

    fn converged(&self) -> bool {
        (0..GROUPS).map(GroupId).all(|g| {
            let rs: Vec<&Replica> = self
                .hosts
                .values()
                .filter_map(|h| h.node.as_ref()?.replica(g))
                .collect();
            let Some(leader) = rs
                .iter()
                .find(|r| r.role() == Role::Leader && r.committed_in_term())
            else {
                return false;
            };
            rs.iter().all(|r| r.commit() == leader.commit())
        })
    }
}

fn run(seed: u64) -> (u64, usize, usize) {
    let mut w = World::new(seed);
    for _ in 0..20_000 {
        w.step(true);
    }
    w.isolated = None;
    w.loss_ppm = 0;
    w.dup_ppm = 0;
    let mut ok = false;
    for _ in 0..20_000 {
        w.step(false);
        if w.converged() {
            ok = true;
            break;
        }
    }
    assert!(ok, "seed {seed}: groups did not converge after healing");
    // Left alone, idle groups quiesce again.
    for _ in 0..3_000 {
        w.real_ms += 1;
        if w.real_ms % 5 == 0 {
            for id in w.hosts.keys().copied().collect::<Vec<_>>() {
                let now = w.local(id);
                let node = w.hosts.get_mut(&id).unwrap().node.as_mut().unwrap();
                let mut out = NodeActions::default();
                node.tick(now, &mut out);
                w.carry_out(id, out);
            }
        }
        w.wire.sort_by_key(|m| (m.0, m.1));
        let due = w.wire.iter().take_while(|m| m.0 <= w.real_ms).count();
        for (_, _, from, to, msg) in w.wire.drain(..due).collect::<Vec<_>>() {
            if std::env::var_os("KEEL_MULTI_TRACE").is_some() && w.real_ms % 100_000 > 0 {
                let show = match &msg {
                    NodeMessage::Group { group, .. } | NodeMessage::Quiesce { group, .. } => {
                        group.0 == 0
                    }
                    NodeMessage::Heartbeat { .. } => false,
                };
                if show {
                    eprintln!("{} {from}->{to} {msg:?}", w.real_ms);
                }
            }
            let now = w.local(to);
            let node = w.hosts.get_mut(&to).unwrap().node.as_mut().unwrap();
            let mut out = NodeActions::default();
            node.on_message(now, from, msg, &mut out);
            w.carry_out(to, out);
        }
        w.check();
    }
    let active: usize = w
        .hosts
        .values()
        .map(|h| h.node.as_ref().unwrap().active_count())
        .sum();
    if std::env::var_os("KEEL_MULTI_VERBOSE").is_some() && active > 0 {
        for (id, h) in &w.hosts {
            let n = h.node.as_ref().unwrap();
            for g in (0..GROUPS).map(GroupId) {
                let r = n.replica(g).unwrap();
                eprintln!(
                    "seed {seed} node {id} group {g}: {:?} t{} leader {:?} last {} commit {} \
                     quiet {}",
                    r.role(),
                    r.term(),
                    r.leader(),
                    r.log().last_index(),
                    r.commit(),
                    r.is_quiet()
                );
            }
            eprintln!("  active {}", n.active_count());
        }
    }
    if let Err(v) = linearizability::check(&w.history) {
        panic!("seed {seed}: {v}");
    }
    let ops = w.history.len();
    (w.restarts, active, ops)
}

#[test]
fn many_groups_stay_safe_and_quiesce_under_faults() {
    let seeds: u64 = std::env::var("KEEL_MULTI_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut restarts = 0;
    let mut still_active = 0;
    let mut ops = 0;
    for seed in 0..seeds {
        let (r, active, n) = run(seed);
        ops += n;
        restarts += r;
        still_active += active;
    }
    eprintln!(
        "multi: {seeds} seeds, {restarts} node restarts, {ops} operations linearizable, \
         {still_active} groups active at the end"
    );
    assert!(
        still_active <= (seeds as usize) * 3,
        "idle groups did not quiesce again"
    );
}
