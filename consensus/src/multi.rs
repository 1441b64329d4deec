//! Many groups on one node: heartbeats coalesced per node pair, idle groups quiesced.
//!
//! A node hosts thousands of replicas (one per partition it holds). Run naively, each
//! group's leader sends a heartbeat to each follower every interval and every replica's
//! timer is ticked, so idle groups cost messages and CPU in proportion to their number.
//! This layer makes an idle group cost nothing (CockroachDB's quiescence, TiKV's
//! hibernate regions):
//!
//! - A leader whose group has been quiet (everything replicated and committed, no read
//!   waiting) for `quiesce_after_ms` sends its followers a `Quiesce` and stops ticking;
//!   a follower that is caught up with that leader in that term stops ticking too.
//! - Nodes exchange one heartbeat per node pair per interval, carrying the sender's boot
//!   epoch. That is all the traffic idle groups make, whatever their number.
//! - A quiesced group wakes when a message for it arrives, when it gets a proposal or a
//!   read, when its leader's node falls silent for the election timeout, or when that
//!   node restarts (a new epoch). A follower that wakes first learns from the coalesced
//!   heartbeats when its leader's node was last alive ([`Replica::leader_alive`]): it keeps
//!   refusing votes as if it had heard from the leader itself, so leases stay safe.
//! - A quiesced leader holds no lease: its first strong read after waking takes the
//!   read-index path (one round trip), after which it holds a lease until it quiesces
//!   again. (Renewing leases from node heartbeats would need the follower's group state
//!   in every heartbeat.)
//!
//! Ticking costs O(active groups + peers); a message costs O(log groups) to route.
//! Messages for the same peer are handed out together (`NodeActions::messages` is keyed
//! by destination): one frame per peer per step.

use std::collections::{BTreeMap, BTreeSet};

use crate::membership::ConfigChange;
use crate::message::Message;
use crate::replica::{
    Actions, Apply, Input, PersistOp, ProposeError, ReadConsistency, ReadError, ReadId,
    ReadOutcome, Replica, Role,
};
use crate::types::{GroupId, LogIndex, NodeId, Term, Tick};

/// What travels between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeMessage {
    /// A message of one group.
    Group {
        /// The group.
        group: GroupId,
        /// Its message.
        msg: Message,
    },
    /// The group's leader stops heartbeating; followers caught up to `commit` in `term`
    /// stop ticking.
    Quiesce {
        /// The group.
        group: GroupId,
        /// The leader's term.
        term: Term,
        /// The leader's commit (= last) index.
        commit: LogIndex,
        /// The leader's last round: heartbeats of this round or older, still in flight,
        /// do not wake a quiesced follower.
        round: u64,
    },
    /// The coalesced heartbeat: the sender is alive.
    Heartbeat {
        /// The sender's boot epoch; a new one means it restarted.
        epoch: u64,
    },
}

/// Configuration of the multi-group layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// Boot epoch (increases on every restart; the driver keeps it durable).
    pub epoch: u64,
    /// Node heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Silence after which a peer node is presumed down (use the groups' minimum election
    /// timeout).
    pub peer_timeout_ms: u64,
    /// A leader quiet this long quiesces its group.
    pub quiesce_after_ms: u64,
    /// Quiesce idle groups (off: every group ticks and heartbeats, the naive baseline).
    pub quiesce: bool,
}

/// What the node asks its driver to do (the per-group [`Actions`], tagged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeActions {
    /// Durable changes, in order (one shard WAL for every group).
    pub persist: Vec<(GroupId, PersistOp)>,
    /// Messages by destination, sent after everything persisted so far is durable.
    pub messages: BTreeMap<NodeId, Vec<NodeMessage>>,
    /// For the state machines, in order per group.
    pub apply: Vec<(GroupId, Apply)>,
    /// Reads that may be served or failed.
    pub reads: Vec<(GroupId, ReadOutcome)>,
    /// Groups whose leader wants a fresh snapshot.
    pub snapshot_wanted: Vec<GroupId>,
}

impl NodeActions {
    /// The number of messages waiting.
    #[must_use]
    pub fn message_count(&self) -> usize {
        self.messages.values().map(Vec::len).sum()
    }

    /// Empties every list.
    pub fn clear(&mut self) {
        self.persist.clear();
        self.messages.clear();
        self.apply.clear();
        self.reads.clear();
        self.snapshot_wanted.clear();
    }
}

#[derive(Clone, Debug)]
struct Slot {
    replica: Replica,
    quiesced: bool,
    quiet_since: Option<Tick>,
    /// The leader's round when the group quiesced.
    quiesce_round: u64,
}

#[derive(Clone, Debug, Default)]
struct Peer {
    last_heard: Option<Tick>,
    epoch: Option<u64>,
    /// Quiesced follower groups whose leader is on this peer.
    led_quiesced: BTreeSet<GroupId>,
}

/// The groups of one node.
#[derive(Clone, Debug)]
pub struct Node {
    config: NodeConfig,
    groups: BTreeMap<GroupId, Slot>,
    active: BTreeSet<GroupId>,
    peers: BTreeMap<NodeId, Peer>,
    next_heartbeat: Tick,
    scratch: Actions,
}

impl Node {
    /// A node with no groups.
    #[must_use]
    pub fn new(config: NodeConfig) -> Node {
        Node {
            config,
            groups: BTreeMap::new(),
            active: BTreeSet::new(),
            peers: BTreeMap::new(),
            next_heartbeat: Tick(0),
            scratch: Actions::default(),
        }
    }

    /// Hosts a group's replica (bootstrapped, recovered or joining) on this node.
    pub fn add_group(&mut self, group: GroupId, replica: Replica) {
        assert_eq!(replica.id(), self.config.id, "replica of another node");
        for v in replica.membership().0.voters() {
            if v != self.config.id {
                self.peers.entry(v).or_default();
            }
        }
        let slot = Slot {
            replica,
            quiesced: false,
            quiet_since: None,
            quiesce_round: 0,
        };
        self.groups.insert(group, slot);
        self.active.insert(group);
    }

    /// The group's replica.
    #[must_use]
    pub fn replica(&self, group: GroupId) -> Option<&Replica> {
        self.groups.get(&group).map(|s| &s.replica)
    }

    /// Groups hosted.
    #[must_use]
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Groups ticking (not quiesced).
    #[must_use]
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Time passed.
    pub fn tick(&mut self, now: Tick, out: &mut NodeActions) {
        if now >= self.next_heartbeat {
            self.next_heartbeat = now.add_ms(self.config.heartbeat_interval_ms);
            let epoch = self.config.epoch;
            for peer in self.peers.keys() {
                out.messages
                    .entry(*peer)
                    .or_default()
                    .push(NodeMessage::Heartbeat { epoch });
            }
        }
        // Peers silent too long: wake the groups they lead here.
        let timeout = self.config.peer_timeout_ms;
        let silent: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.led_quiesced.is_empty() && p.last_heard.is_none_or(|t| t.add_ms(timeout) <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in silent {
            self.wake_led_by(now, peer);
        }
        let active: Vec<GroupId> = self.active.iter().copied().collect();
        for group in active {
            self.with_group(now, group, out, |r, now, a| r.step(now, Input::Tick, a));
            self.maybe_quiesce(now, group, out);
        }
    }

    /// A message from another node.
    pub fn on_message(&mut self, now: Tick, from: NodeId, msg: NodeMessage, out: &mut NodeActions) {
        match msg {
            NodeMessage::Heartbeat { epoch } => {
                let peer = self.peers.entry(from).or_default();
                let restarted = peer.epoch.is_some_and(|e| e != epoch);
                peer.epoch = Some(epoch);
                peer.last_heard = Some(now);
                if restarted {
                    self.wake_led_by(now, from);
                }
            }
            NodeMessage::Quiesce {
                group,
                term,
                commit,
                round,
            } => {
                let Some(slot) = self.groups.get_mut(&group) else {
                    return;
                };
                let r = &slot.replica;
                let caught_up = r.role() == Role::Follower
                    && r.leader() == Some(from)
                    && r.term() == term
                    && r.commit() == commit
                    && r.log().last_index() == commit;
                if self.config.quiesce && caught_up && !slot.quiesced {
                    slot.quiesced = true;
                    slot.quiesce_round = round;
                    self.active.remove(&group);
                    self.peers
                        .entry(from)
                        .or_default()
                        .led_quiesced
                        .insert(group);
                }
            }
            NodeMessage::Group { group, msg } => {
                let Some(slot) = self.groups.get(&group) else {
                    return;
                };
                if slot.quiesced && Self::sent_before_quiescing(slot, from, &msg) {
                    // A heartbeat or acknowledgement overtaken by the quiescence: it
                    // carries nothing the group needs, and must not wake it.
                    return;
                }
                self.wake(now, group);
                let env = crate::message::Envelope {
                    from,
                    to: self.config.id,
                    msg,
                };
                self.with_group(now, group, out, |r, now, a| {
                    r.step(now, Input::Message(env), a)
                });
            }
        }
    }

    /// The driver made a group's entries durable.
    pub fn persisted(
        &mut self,
        now: Tick,
        group: GroupId,
        index: LogIndex,
        term: Term,
        out: &mut NodeActions,
    ) {
        self.with_group(now, group, out, |r, now, a| {
            r.step(now, Input::Persisted { index, term }, a)
        });
    }

    /// Proposes a command to a group.
    ///
    /// # Errors
    /// As [`Replica::propose`]; an unknown group is "not leader".
    pub fn propose(
        &mut self,
        now: Tick,
        group: GroupId,
        data: Vec<u8>,
        out: &mut NodeActions,
    ) -> Result<LogIndex, ProposeError> {
        if !self.groups.contains_key(&group) {
            return Err(ProposeError::NotLeader { leader: None });
        }
        self.wake(now, group);
        self.with_group(now, group, out, |r, now, a| r.propose(now, data, a))
            .unwrap_or(Err(ProposeError::NotLeader { leader: None }))
    }

    /// Proposes a membership change to a group.
    ///
    /// # Errors
    /// As [`Replica::change_membership`].
    pub fn change_membership(
        &mut self,
        now: Tick,
        group: GroupId,
        change: ConfigChange,
        out: &mut NodeActions,
    ) -> Result<LogIndex, ProposeError> {
        if !self.groups.contains_key(&group) {
            return Err(ProposeError::NotLeader { leader: None });
        }
        self.wake(now, group);
        if let ConfigChange::AddLog(id) | ConfigChange::AddStorage(id) = change {
            self.peers.entry(id).or_default();
        }
        self.with_group(now, group, out, |r, now, a| {
            r.change_membership(now, change, a)
        })
        .unwrap_or(Err(ProposeError::NotLeader { leader: None }))
    }

    /// Reads from a group.
    ///
    /// # Errors
    /// As [`Replica::read`].
    pub fn read(
        &mut self,
        now: Tick,
        group: GroupId,
        id: ReadId,
        consistency: ReadConsistency,
        out: &mut NodeActions,
    ) -> Result<(), ReadError> {
        if !self.groups.contains_key(&group) {
            return Err(ReadError::NotLeader { leader: None });
        }
        self.wake(now, group);
        if let Some(slot) = self.groups.get_mut(&group) {
            // A group being read is not idle, even when its reads need no messages.
            slot.quiet_since = None;
        }
        self.with_group(now, group, out, |r, now, a| r.read(now, id, consistency, a))
            .unwrap_or(Err(ReadError::NotLeader { leader: None }))
    }

    /// Compacts a group's log up to `index` (see [`Replica::compact`]).
    ///
    /// # Errors
    /// As [`Replica::compact`]; an unknown group is a stale compaction.
    pub fn compact(
        &mut self,
        now: Tick,
        group: GroupId,
        index: LogIndex,
        data: Option<Vec<u8>>,
        out: &mut NodeActions,
    ) -> Result<(), crate::replica::CompactError> {
        let unknown = crate::replica::CompactError::Stale {
            index,
            snapshot: LogIndex(0),
        };
        self.with_group(now, group, out, |r, _, a| r.compact(index, data, a))
            .unwrap_or(Err(unknown))
    }

    fn sent_before_quiescing(slot: &Slot, from: NodeId, msg: &Message) -> bool {
        let r = &slot.replica;
        match msg {
            Message::Append {
                term,
                entries,
                round,
                commit,
                ..
            } => {
                entries.is_empty()
                    && *term == r.term()
                    && r.leader() == Some(from)
                    && *round <= slot.quiesce_round
                    && *commit <= r.commit()
            }
            Message::AppendResponse {
                term,
                result: Ok(_),
                round,
                needs_snapshot,
                ..
            } => {
                *term == r.term()
                    && r.role() == Role::Leader
                    && *round <= slot.quiesce_round
                    && !*needs_snapshot
            }
            _ => false,
        }
    }

    fn wake_led_by(&mut self, now: Tick, peer: NodeId) {
        let groups: Vec<GroupId> = self
            .peers
            .get_mut(&peer)
            .map(|p| std::mem::take(&mut p.led_quiesced).into_iter().collect())
            .unwrap_or_default();
        for g in groups {
            self.wake(now, g);
        }
    }

    fn wake(&mut self, now: Tick, group: GroupId) {
        let Some(slot) = self.groups.get_mut(&group) else {
            return;
        };
        if !slot.quiesced {
            return;
        }
        slot.quiet_since = None;
        slot.quiesced = false;
        self.active.insert(group);
        slot.replica.resume(now);
        if let Some(leader) = slot.replica.leader() {
            if let Some(peer) = self.peers.get_mut(&leader) {
                peer.led_quiesced.remove(&group);
                // Evidence that the leader was alive: the last coalesced heartbeat.
                if let Some(at) = peer.last_heard {
                    slot.replica.leader_alive(at);
                }
            }
        }
    }

    fn maybe_quiesce(&mut self, now: Tick, group: GroupId, out: &mut NodeActions) {
        if !self.config.quiesce {
            return;
        }
        let after = self.config.quiesce_after_ms;
        let Some(slot) = self.groups.get_mut(&group) else {
            return;
        };
        if !slot.replica.is_quiet() {
            slot.quiet_since = None;
            return;
        }
        let since = *slot.quiet_since.get_or_insert(now);
        if now < since.add_ms(after) {
            return;
        }
        slot.quiesced = true;
        slot.quiesce_round = slot.replica.round();
        self.active.remove(&group);
        let (term, commit, round) = (
            slot.replica.term(),
            slot.replica.commit(),
            slot.replica.round(),
        );
        let me = self.config.id;
        for v in slot.replica.membership().0.voters() {
            if v != me {
                out.messages
                    .entry(v)
                    .or_default()
                    .push(NodeMessage::Quiesce {
                        group,
                        term,
                        commit,
                        round,
                    });
            }
        }
    }

    fn with_group<T>(
        &mut self,
        now: Tick,
        group: GroupId,
        out: &mut NodeActions,
        f: impl FnOnce(&mut Replica, Tick, &mut Actions) -> T,
    ) -> Option<T> {
        let slot = self.groups.get_mut(&group)?;
        let a = &mut self.scratch;
        a.clear();
        let result = f(&mut slot.replica, now, a);
        for op in a.persist.drain(..) {
            out.persist.push((group, op));
        }
        for env in a.messages.drain(..) {
            out.messages
                .entry(env.to)
                .or_default()
                .push(NodeMessage::Group {
                    group,
                    msg: env.msg,
                });
        }
        for apply in a.apply.drain(..) {
            out.apply.push((group, apply));
        }
        for read in a.reads.drain(..) {
            out.reads.push((group, read));
        }
        if a.snapshot_wanted {
            out.snapshot_wanted.push(group);
        }
        Some(result)
    }
}
