//! What idle groups cost: messages and CPU per second for 1, 1,000 and 10,000 idle groups
//! on three nodes, with quiescence and coalesced heartbeats, and without (the baseline).
//!
//! The harness delivers instantly and persists instantly; time advances in 5 ms steps.
//! Message counts are asserted (they are deterministic); CPU time is only printed (no
//! timed assertions in tests). Run with `--nocapture` to see the table.

#![expect(
    clippy::unwrap_used,
    reason = "test harness: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::time::Instant;

use keel_consensus::multi::{Node, NodeActions, NodeConfig};
use keel_consensus::{Boot, Config, GroupId, Membership, NodeId, Replica, Role, Tick};

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    now_ms: u64,
    messages: u64,
    frames: u64,
}

impl Cluster {
    fn new(groups: u64, quiesce: bool) -> Cluster {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let membership = Membership::storage(&ids).unwrap();
        let mut nodes = BTreeMap::new();
        for id in ids {
            let mut node = Node::new(NodeConfig {
                id,
                epoch: 1,
                heartbeat_interval_ms: 30,
                peer_timeout_ms: 150,
                quiesce_after_ms: 100,
                quiesce,
            });
            for g in 0..groups {
                let mut config = Config::new(id, g * 31 + id.0);
                config.heartbeat_interval_ms = 30;
                let boot = Boot::bootstrap(membership.clone(), true);
                node.add_group(GroupId(g), Replica::new(config, boot, Tick(0)).unwrap());
            }
            nodes.insert(id, node);
        }
        Cluster {
            nodes,
            now_ms: 0,
            messages: 0,
            frames: 0,
        }
    }

    /// Persists instantly and routes everything until quiet.
    fn settle(&mut self, mut pending: Vec<(NodeId, NodeActions)>) {
        let now = Tick(self.now_ms);
        while let Some((from, mut out)) = pending.pop() {
            let node = self.nodes.get_mut(&from).unwrap();
            let mut persisted: Vec<GroupId> = out.persist.iter().map(|(g, _)| *g).collect();
            persisted.dedup();
            let mut more = NodeActions::default();
            for g in persisted {
                let r = node.replica(g).unwrap();
                let (index, term) = (r.log().last_index(), r.log().last_term());
                node.persisted(now, g, index, term, &mut more);
            }
            if !more.persist.is_empty() || !more.messages.is_empty() {
                pending.push((from, more));
            }
            for (to, batch) in std::mem::take(&mut out.messages) {
                self.frames += 1;
                self.messages += batch.len() as u64;
                let node = self.nodes.get_mut(&to).unwrap();
                let mut reply = NodeActions::default();
                for msg in batch {
                    node.on_message(now, from, msg, &mut reply);
                }
                pending.push((to, reply));
            }
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += 5;
            let now = Tick(self.now_ms);
            let mut pending = Vec::new();
            for (id, node) in &mut self.nodes {
                let mut out = NodeActions::default();
                node.tick(now, &mut out);
                pending.push((*id, out));
            }
            self.settle(pending);
        }
    }

    fn leaders(&self, groups: u64) -> u64 {
        (0..groups)
            .filter(|g| {
                self.nodes.values().any(|n| {
                    n.replica(GroupId(*g))
                        .is_some_and(|r| r.role() == Role::Leader)
                })
            })
            .count() as u64
    }
}

struct Figure {
    groups: u64,
    quiesce: bool,
    messages_per_s: f64,
    frames_per_s: f64,
    cpu_ms_per_s: f64,
    active: usize,
}

fn measure(groups: u64, quiesce: bool, window_ms: u64) -> Figure {
    let mut c = Cluster::new(groups, quiesce);
    c.run(3_000);
    assert_eq!(c.leaders(groups), groups, "every group elected a leader");
    let (m0, f0) = (c.messages, c.frames);
    let start = Instant::now();
    c.run(window_ms);
    let cpu = start.elapsed();
    let seconds = window_ms as f64 / 1000.0;
    let active = c.nodes.values().map(Node::active_count).sum();
    // Still serving: a write on every tenth group commits.
    let figure = Figure {
        groups,
        quiesce,
        messages_per_s: (c.messages - m0) as f64 / seconds,
        frames_per_s: (c.frames - f0) as f64 / seconds,
        cpu_ms_per_s: cpu.as_secs_f64() * 1000.0 / seconds,
        active,
    };
    let now = Tick(c.now_ms);
    let mut proposed = Vec::new();
    let mut outs = Vec::new();
    for g in (0..groups).step_by(10) {
        for (id, node) in &mut c.nodes {
            if node
                .replica(GroupId(g))
                .is_some_and(|r| r.role() == Role::Leader)
            {
                let mut out = NodeActions::default();
                let index = node
                    .propose(now, GroupId(g), b"w".to_vec(), &mut out)
                    .unwrap();
                proposed.push((*id, GroupId(g), index));
                outs.push((*id, out));
            }
        }
    }
    c.settle(outs);
    c.run(200);
    for (id, g, index) in proposed {
        assert!(
            c.nodes[&id].replica(g).unwrap().commit() >= index,
            "group {g} committed"
        );
    }
    figure
}

#[test]
fn idle_groups_cost_about_what_one_group_does() {
    let mut figures = Vec::new();
    for groups in [1u64, 1_000, 10_000] {
        figures.push(measure(groups, true, 10_000));
    }
    // KEEL_IDLE_BASELINE_MAX=10000 also measures the naive baseline at 10,000 groups.
    let baseline_max: u64 = std::env::var("KEEL_IDLE_BASELINE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    for groups in [1u64, 1_000, 10_000]
        .into_iter()
        .filter(|g| *g <= baseline_max)
    {
        figures.push(measure(groups, false, 2_000));
    }
    eprintln!("groups  quiesce  messages/s  frames/s  cpu ms/s  active groups");
    for f in &figures {
        eprintln!(
            "{:>6}  {:>7}  {:>10.0}  {:>8.0}  {:>8.2}  {:>6}",
            f.groups, f.quiesce, f.messages_per_s, f.frames_per_s, f.cpu_ms_per_s, f.active
        );
    }
    let one = &figures[0];
    let ten_thousand = &figures[2];
    assert_eq!(ten_thousand.active, 0, "every idle group quiesced");
    assert!(
        ten_thousand.messages_per_s <= one.messages_per_s * 1.5 + 1.0,
        "10,000 idle groups send {} msg/s, one group {}",
        ten_thousand.messages_per_s,
        one.messages_per_s
    );
}

#[test]
fn a_quiesced_group_elects_a_new_leader_when_its_leaders_node_dies() {
    let mut c = Cluster::new(20, true);
    c.run(3_000);
    assert_eq!(c.nodes.values().map(Node::active_count).sum::<usize>(), 0);
    // Node 1 dies: its peers stop hearing its coalesced heartbeat.
    let led_by_1: Vec<GroupId> = (0..20)
        .map(GroupId)
        .filter(|g| c.nodes[&NodeId(1)].replica(*g).unwrap().role() == Role::Leader)
        .collect();
    c.nodes.remove(&NodeId(1));
    // Messages to the dead node vanish.
    let mut alive = Cluster {
        nodes: std::mem::take(&mut c.nodes),
        ..c
    };
    alive.nodes.insert(
        NodeId(1),
        Node::new(NodeConfig {
            id: NodeId(1),
            epoch: 2,
            heartbeat_interval_ms: 1_000_000,
            peer_timeout_ms: 150,
            quiesce_after_ms: 100,
            quiesce: true,
        }),
    );
    alive.run(3_000);
    for g in led_by_1 {
        let leader = [NodeId(2), NodeId(3)]
            .iter()
            .any(|n| alive.nodes[n].replica(g).unwrap().role() == Role::Leader);
        assert!(leader, "group {g} found a new leader");
    }
}

/// Regression: a leader woken from quiescence by a proposal after a long idle spell saw its
/// followers' last answers as seconds old, failed check-quorum at its next tick (before any
/// answer could arrive) and stepped down, losing the write. Waking now restarts the
/// check-quorum window.
#[test]
fn a_leader_woken_after_a_long_idle_spell_keeps_leading() {
    let mut c = Cluster::new(1, true);
    c.run(3_000);
    assert_eq!(c.nodes.values().map(Node::active_count).sum::<usize>(), 0);
    c.run(10_000);
    let (leader, _) = c
        .nodes
        .iter()
        .find(|(_, n)| n.replica(GroupId(0)).unwrap().role() == Role::Leader)
        .map(|(id, n)| (*id, n.replica(GroupId(0)).unwrap().term()))
        .unwrap();
    let now = Tick(c.now_ms);
    let node = c.nodes.get_mut(&leader).unwrap();
    let mut out = NodeActions::default();
    node.propose(now, GroupId(0), b"late".to_vec(), &mut out)
        .unwrap();
    // Its next tick comes before any answer.
    let mut tick_out = NodeActions::default();
    node.tick(Tick(c.now_ms + 5), &mut tick_out);
    assert_eq!(
        node.replica(GroupId(0)).unwrap().role(),
        Role::Leader,
        "stepped down on wake"
    );
}
