//! The replica: one member of a replication group, as a sans-IO state machine.
//!
//! The driver feeds it [`Input`]s (ticks, messages, persistence completions) and client
//! requests, each with the current reading of the local monotonic clock, and carries out
//! the [`Actions`] it writes (raft-rs's Ready, flattened):
//!
//! 1. `persist` ops, in order, made durable (one write and one fdatasync per batch);
//! 2. then `messages` sent: **no message may leave before every persist op handed out so
//!    far is durable** (a vote or an acknowledgement speaks for durable state);
//! 3. `apply` in order to the state machine (a snapshot replaces it), `reads` answered
//!    once the state machine has applied the index each names;
//! 4. then report durability back with [`Input::Persisted`].
//!
//! Protocol: Raft (Ongaro & Ousterhout 2014, and Ongaro's dissertation) with pre-vote
//! (§9.6), leader stickiness (a replica that heard from a leader within the minimum
//! election timeout ignores votes: the basis of leases, §6.4), check-quorum (a leader that
//! has not heard from a majority for the minimum election timeout steps down), fast
//! backtracking with conflict-term hints, single-server membership changes (§4.1) and
//! log replicas (voters that keep no state machine and never campaign).
//!
//! Safety invariants asserted in code: terms never decrease; a vote is given at most once
//! per term; the commit index never decreases and never passes the log; only entries of
//! the leader's current term are committed by counting replicas (§5.4.2); a committed
//! entry is never truncated.
//!
//! What it does not do: I/O, clocks, serialization, or choosing when to change
//! membership (see [`Replica::lagging_peers`] for the signal a placement policy uses).

use std::collections::BTreeMap;

use thiserror::Error;

use crate::lease::lease_ms;
use crate::log::RaftLog;
use crate::membership::{ConfigChange, MemberKind, Membership, MembershipError};
use crate::message::{
    Entry, Envelope, HardState, Message, Payload, RejectHint, Snapshot, SnapshotMeta,
};
use crate::prng::Prng;
use crate::quorum::{majority, majority_value};
use crate::types::{LogIndex, NodeId, Term, Tick};

/// Static configuration of one replica. All durations are on the replica's own clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// The node this replica lives on.
    pub id: NodeId,
    /// The shortest election timeout; timeouts are drawn from `[min, 2 * min)`. A replica
    /// that heard from a leader this recently ignores votes, which is what makes a lease
    /// safe.
    pub election_timeout_min_ms: u64,
    /// How often a leader sends heartbeats; well below the election timeout.
    pub heartbeat_interval_ms: u64,
    /// The bound on clock rate drift between any two nodes, in parts per million; the
    /// lease is shortened by it (see [`crate::lease`]).
    pub clock_drift_max_ppm: u64,
    /// Serve strong reads from a lease when one is held (otherwise always read-index).
    pub lease_reads: bool,
    /// Most entries in one append message.
    pub append_entries_max: usize,
    /// Most entries sent to a follower and not yet acknowledged.
    pub inflight_entries_max: u64,
    /// Seed of the replica's own random stream (election timeouts).
    pub seed: u64,
    /// Simulation only (FoundationDB's buggify): the chance, in parts per million, that
    /// the replica takes a legal but rare branch at a decision point (a snapshot sent
    /// where entries would do; replication falling back to probing). Always 0 in
    /// production.
    pub buggify_ppm: u64,
    /// Deliberate bugs, for showing that the simulator and the model checker catch them.
    #[cfg(test)]
    pub(crate) bugs: Bugs,
}

/// Deliberate protocol bugs, compiled into test builds only.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Bugs {
    /// Commit an entry once any single follower (a minority) has it.
    pub commit_on_minority: bool,
    /// Grant votes and pre-votes while still hearing from a leader (no stickiness), which
    /// is what a lease relies on.
    pub vote_ignores_lease: bool,
}

/// A configuration that cannot work.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The election timeout must be positive.
    #[error("election_timeout_min_ms must be positive")]
    ElectionTimeoutZero,
    /// Heartbeats must come more often than elections.
    #[error("heartbeat_interval_ms {heartbeat} must be below election_timeout_min_ms {election}")]
    HeartbeatTooSlow {
        /// The heartbeat interval given.
        heartbeat: u64,
        /// The minimum election timeout given.
        election: u64,
    },
    /// The drift bound must be below 100 %.
    #[error("clock_drift_max_ppm {0} must be below 1,000,000")]
    DriftTooLarge(u64),
    /// Appends must be able to carry an entry.
    #[error("append_entries_max and inflight_entries_max must be positive")]
    BatchZero,
}

impl Config {
    /// A configuration with the defaults used in tests: 150 ms minimum election timeout,
    /// 30 ms heartbeats, 5 % drift bound, leases on.
    #[must_use]
    pub fn new(id: NodeId, seed: u64) -> Config {
        Config {
            id,
            election_timeout_min_ms: 150,
            heartbeat_interval_ms: 30,
            clock_drift_max_ppm: 50_000,
            lease_reads: true,
            append_entries_max: 64,
            inflight_entries_max: 256,
            seed,
            buggify_ppm: 0,
            #[cfg(test)]
            bugs: Bugs::default(),
        }
    }

    /// Checks the relations between the settings.
    ///
    /// # Errors
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.election_timeout_min_ms == 0 {
            return Err(ConfigError::ElectionTimeoutZero);
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_min_ms
        {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat_interval_ms,
                election: self.election_timeout_min_ms,
            });
        }
        if self.clock_drift_max_ppm >= crate::lease::PPM {
            return Err(ConfigError::DriftTooLarge(self.clock_drift_max_ppm));
        }
        if self.append_entries_max == 0 || self.inflight_entries_max == 0 {
            return Err(ConfigError::BatchZero);
        }
        Ok(())
    }
}

/// What a replica recovers from (or starts with): its durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// Term and vote.
    pub hard_state: HardState,
    /// The latest snapshot; the one at index 0 holds the initial membership.
    pub snapshot: Snapshot,
    /// The durable entries after the snapshot.
    pub entries: Vec<Entry>,
}

impl Boot {
    /// A founding member of a new group. `keeps_state` is false for a log replica.
    #[must_use]
    pub fn bootstrap(membership: Membership, keeps_state: bool) -> Boot {
        Boot {
            hard_state: HardState::default(),
            snapshot: Snapshot {
                meta: SnapshotMeta {
                    index: LogIndex(0),
                    term: Term(0),
                    membership,
                },
                data: keeps_state.then(Vec::new),
            },
            entries: Vec::new(),
        }
    }

    /// A replica about to be added to an existing group: it learns the membership from the
    /// leader.
    #[must_use]
    pub fn join(keeps_state: bool) -> Boot {
        Boot::bootstrap(Membership::empty(), keeps_state)
    }
}

/// The replica's role in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without raising its term.
    PreCandidate,
    /// Campaigns in its term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// What the driver feeds a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed; the driver calls this often (every few milliseconds).
    Tick,
    /// A message from another replica of the group.
    Message(Envelope),
    /// Every persist op handed out so far, up to the entry at `index` of `term`, is
    /// durable.
    Persisted {
        /// The last durable index.
        index: LogIndex,
        /// Its term (a report about a replaced entry is ignored).
        term: Term,
    },
}

/// A change to durable state, carried out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistOp {
    /// Store term and vote.
    HardState(HardState),
    /// Write these entries from `entries[0].index`, dropping any stored at or after it.
    Entries(Vec<Entry>),
    /// Store the snapshot and drop the entries it covers (local compaction).
    Compact(Snapshot),
    /// Store the snapshot from the leader; keep the entries after it only if the stored
    /// log has the snapshot's last entry with the same term, otherwise drop them all.
    Install(Snapshot),
}

/// One thing for the state machine, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Apply a committed entry.
    Entry(Entry),
    /// Replace the state machine with the snapshot's data.
    Snapshot(Snapshot),
}

/// Consistency asked of a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadConsistency {
    /// Linearizable: leader only, from a lease or after a read-index round.
    Strong,
    /// Whatever this replica has applied; any replica with a state machine.
    Eventual,
}

/// The driver's name for a read request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadId(pub u64);

/// A read that may be served (once the state machine has applied `index`) or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The request.
    pub id: ReadId,
    /// The index the state machine must have applied before answering, or why not.
    pub result: Result<LogIndex, ReadError>,
}

/// Why a proposal was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposeError {
    /// Only the leader takes proposals; `leader` is the one this replica knows of.
    #[error("not the leader (leader is {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A membership change needs an entry of the leader's term committed first (the
    /// single-server change bug fix of the dissertation's errata).
    #[error("the leader has not committed an entry in its term yet")]
    LeaderNotSettled,
    /// A membership change is already in flight.
    #[error("a membership change at index {0} is not committed yet")]
    ChangePending(LogIndex),
    /// The change does not fit the membership.
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

/// Why a read cannot be served here.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Strong reads are served by the leader; this replica is not it (or stopped being
    /// it while the read waited).
    #[error("not the leader (leader is {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A log replica keeps no state machine.
    #[error("this replica keeps no state machine")]
    NoStateMachine,
}

/// Why a compaction was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactError {
    /// The log already starts after `index`.
    #[error("index {index} is not past the snapshot at {snapshot}")]
    Stale {
        /// The index asked for.
        index: LogIndex,
        /// The current snapshot index.
        snapshot: LogIndex,
    },
    /// Only applied (or, on a log replica, committed and durable) entries may be compacted.
    #[error("index {index} is past the compactable index {limit}")]
    NotApplied {
        /// The index asked for.
        index: LogIndex,
        /// The highest compactable index.
        limit: LogIndex,
    },
    /// A replica with a state machine must hand its state; a log replica must not.
    #[error("snapshot data must be given exactly when the replica keeps a state machine")]
    DataMismatch,
}

/// What a replica asks its driver to do. Cleared by the driver after carrying it out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// Durable changes, in order, before any message below leaves.
    pub persist: Vec<PersistOp>,
    /// Messages to send once everything persisted so far is durable.
    pub messages: Vec<Envelope>,
    /// Committed entries and snapshots for the state machine, in order.
    pub apply: Vec<Apply>,
    /// Reads that may now be served, or that failed.
    pub reads: Vec<ReadOutcome>,
    /// A follower needs a newer snapshot than this leader holds: compact at the applied
    /// index soon.
    pub snapshot_wanted: bool,
}

impl Actions {
    /// True when there is nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && !self.snapshot_wanted
    }

    /// Empties every list, keeping the allocations.
    pub fn clear(&mut self) {
        self.persist.clear();
        self.messages.clear();
        self.apply.clear();
        self.reads.clear();
        self.snapshot_wanted = false;
    }
}

/// The leader's view of one follower.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Progress {
    /// Highest index known to match the leader's log.
    match_index: LogIndex,
    /// Next index to send.
    next_index: LogIndex,
    /// Sending one batch at a time until a success says where the logs meet.
    probing: bool,
    /// Newest leader send time the follower acknowledged this term (lease), + 1; 0 = none.
    ack_sent_at_plus1: u64,
    /// Newest round acknowledged (read-index).
    ack_round: u64,
    /// When the follower last answered (check-quorum, lagging-peer report).
    last_active: Tick,
    /// The follower asked for a snapshot.
    needs_snapshot: bool,
    /// When a snapshot was last sent (throttle).
    snapshot_sent_at: Option<Tick>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead {
    id: ReadId,
    round: u64,
}

/// One replica of one group. See the module documentation for the contract.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    config: Config,
    lease_ms: u64,
    prng: Prng,
    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    /// Membership in force (the last membership entry in the log, or the snapshot's).
    membership: Membership,
    membership_index: LogIndex,
    /// The state machine's bytes at the snapshot, when this replica keeps one.
    snapshot_data: Option<Vec<u8>>,
    /// Whether this replica keeps a state machine that is current up to `applied`.
    has_state: bool,
    applied: LogIndex,
    election_deadline: Tick,
    heartbeat_deadline: Tick,
    /// Last time a current leader was heard from (or boot, or stepping down): votes are
    /// ignored until `election_timeout_min_ms` after it.
    leader_contact_at: Tick,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    round: u64,
    pending_reads: Vec<PendingRead>,
}

impl Replica {
    /// A replica recovered from durable state (or bootstrapped, or joining) at `now`.
    ///
    /// # Errors
    /// The configuration does not validate.
    pub fn new(config: Config, boot: Boot, now: Tick) -> Result<Replica, ConfigError> {
        config.validate()?;
        let has_state = boot.snapshot.data.is_some();
        let log = RaftLog::recover(boot.snapshot.meta.clone(), boot.entries);
        let mut r = Replica {
            lease_ms: if !config.lease_reads {
                0
            } else {
                lease_ms(config.election_timeout_min_ms, config.clock_drift_max_ppm)
            },
            prng: Prng::new(config.seed),
            term: boot.hard_state.term,
            vote: boot.hard_state.vote,
            role: Role::Follower,
            leader: None,
            membership: Membership::empty(),
            membership_index: LogIndex(0),
            applied: log.snapshot().index,
            snapshot_data: boot.snapshot.data,
            has_state,
            log,
            election_deadline: now,
            heartbeat_deadline: now,
            // A restarted replica forgot which leader it heard from: refuse votes for a
            // whole timeout, as if it had just heard from one (leases stay safe).
            leader_contact_at: now,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            round: 0,
            pending_reads: Vec::new(),
            config,
        };
        r.refresh_membership(now);
        r.reset_election_deadline(now);
        Ok(r)
    }

    // ----- observers -----

    /// This replica's node.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader of the current term, if known.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The log.
    #[must_use]
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// Commit index.
    #[must_use]
    pub fn commit(&self) -> LogIndex {
        self.log.commit()
    }

    /// Highest index handed to the state machine.
    #[must_use]
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Membership in force and the index of its entry.
    #[must_use]
    pub fn membership(&self) -> (&Membership, LogIndex) {
        (&self.membership, self.membership_index)
    }

    /// Whether this replica keeps a current state machine.
    #[must_use]
    pub fn has_state(&self) -> bool {
        self.has_state
    }

    /// Term and vote (as last handed out for persistence).
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
        }
    }

    /// The lease length this replica uses, in milliseconds (0: no leases).
    #[must_use]
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// True when this replica is leader and holds a lease at `now`: no other replica can
    /// be elected before it runs out.
    #[must_use]
    pub fn lease_valid(&self, now: Tick) -> bool {
        self.lease_expiry().is_some_and(|expiry| now < expiry)
    }

    /// When the leader's lease runs out (local clock), if it holds one at all.
    #[must_use]
    pub fn lease_expiry(&self) -> Option<Tick> {
        if self.role != Role::Leader || self.lease_ms == 0 {
            return None;
        }
        let mut values: Vec<u64> = self
            .membership
            .voters()
            .map(|v| {
                if v == self.config.id {
                    // The leader counts itself as acknowledging "now"; it refuses votes
                    // while it leads and for a timeout after stepping down.
                    u64::MAX
                } else {
                    self.progress.get(&v).map_or(0, |p| p.ack_sent_at_plus1)
                }
            })
            .collect();
        let acked_plus1 = majority_value(&mut values)?;
        if acked_plus1 == 0 || acked_plus1 == u64::MAX {
            // No majority acknowledged anything yet (u64::MAX only when the leader is
            // the sole voter: a single-voter group needs no lease, everything is local).
            return (acked_plus1 == u64::MAX).then_some(Tick(u64::MAX));
        }
        Some(Tick(acked_plus1 - 1).add_ms(self.lease_ms))
    }

    /// True when an entry of the current term is committed (a new leader must reach this
    /// before serving reads or changing membership).
    #[must_use]
    pub fn committed_in_term(&self) -> bool {
        self.log.term(self.log.commit()) == Some(self.term)
    }

    /// On a leader: the voters that have not answered for `silent_ms` (a placement policy
    /// replaces such a storage replica with a log replica).
    #[must_use]
    pub fn lagging_peers(&self, now: Tick, silent_ms: u64) -> Vec<NodeId> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        self.progress
            .iter()
            .filter(|(_, p)| p.last_active.add_ms(silent_ms) <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// On a settled leader with no change in flight: the next membership change of the
    /// placement policy ([`crate::membership::repair`]), treating voters silent for
    /// `lost_after_ms` as lost. The driver proposes it with [`Replica::change_membership`]
    /// (after starting `spare`'s replica when the change adds it).
    #[must_use]
    pub fn placement_step(
        &self,
        now: Tick,
        lost_after_ms: u64,
        voters_target: usize,
        spare: Option<NodeId>,
    ) -> Option<ConfigChange> {
        if self.role != Role::Leader
            || !self.committed_in_term()
            || self.membership_index > self.log.commit()
        {
            return None;
        }
        let lost = self.lagging_peers(now, lost_after_ms);
        crate::membership::repair(&self.membership, &lost, voters_target, spare)
    }

    /// The leader's current round (every append carries it; read-index counts on it).
    #[must_use]
    pub fn round(&self) -> u64 {
        self.round
    }

    /// On a leader: the highest index known to be stored on `peer`.
    #[must_use]
    pub fn match_index(&self, peer: NodeId) -> Option<LogIndex> {
        self.progress.get(&peer).map(|p| p.match_index)
    }

    /// True when the replica is idle: a leader whose followers all hold its whole log and
    /// know it is committed, with no read waiting (the multi-group layer may quiesce it).
    #[must_use]
    pub fn is_quiet(&self) -> bool {
        self.role == Role::Leader
            && self.pending_reads.is_empty()
            && self.log.commit() == self.log.last_index()
            && self.log.persisted() == self.log.last_index()
            && self
                .progress
                .values()
                .all(|p| p.match_index == self.log.last_index())
    }

    // ----- inputs -----

    /// The driver resumes ticking this replica after a pause (the multi-group layer's
    /// quiescence). A leader restarts its check-quorum window from `now` (its followers
    /// were caught up and silent by agreement, not lost) and heartbeats at once; leases
    /// are untouched (they only ever come from acknowledgements).
    pub fn resume(&mut self, now: Tick) {
        if self.role != Role::Leader {
            return;
        }
        for p in self.progress.values_mut() {
            p.last_active = p.last_active.max(now);
        }
        self.heartbeat_deadline = now;
    }

    /// The driver learnt that this follower's leader was alive at `at` on this replica's
    /// clock (a heartbeat coalesced per node pair, for a quiesced group). Refusing votes
    /// for longer is always safe; it also pushes back the election timer.
    pub fn leader_alive(&mut self, at: Tick) {
        if self.role != Role::Follower || self.leader.is_none() {
            return;
        }
        if at > self.leader_contact_at {
            self.leader_contact_at = at;
            self.reset_election_deadline(at);
        }
    }

    /// Feeds one input.
    pub fn step(&mut self, now: Tick, input: Input, out: &mut Actions) {
        match input {
            Input::Tick => self.tick(now, out),
            Input::Message(env) => self.on_message(now, env, out),
            Input::Persisted { index, term } => {
                self.log.persisted_to(index, term);
                if self.role == Role::Leader {
                    self.maybe_commit(now, out);
                }
                self.emit_applies(out);
            }
        }
        self.check_invariants();
    }

    /// Proposes a command. Returns the index it will have if committed.
    ///
    /// # Errors
    /// Not the leader.
    pub fn propose(
        &mut self,
        now: Tick,
        data: Vec<u8>,
        out: &mut Actions,
    ) -> Result<LogIndex, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.append_own(now, Payload::Data(data), out);
        Ok(index)
    }

    /// Proposes a single-server membership change.
    ///
    /// # Errors
    /// Not the leader, no entry of this term committed yet, a change already pending, or
    /// a change that does not fit.
    pub fn change_membership(
        &mut self,
        now: Tick,
        change: ConfigChange,
        out: &mut Actions,
    ) -> Result<LogIndex, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if !self.committed_in_term() {
            return Err(ProposeError::LeaderNotSettled);
        }
        if self.membership_index > self.log.commit() {
            return Err(ProposeError::ChangePending(self.membership_index));
        }
        let next = self.membership.apply(change)?;
        Ok(self.append_own(now, Payload::Membership(next), out))
    }

    /// Asks to read. A strong read on the leader is answered at once under a lease, or
    /// after a heartbeat round otherwise; the outcome arrives in `out.reads`.
    ///
    /// # Errors
    /// A strong read on a replica that is not leader; any read on a log replica.
    pub fn read(
        &mut self,
        now: Tick,
        id: ReadId,
        consistency: ReadConsistency,
        out: &mut Actions,
    ) -> Result<(), ReadError> {
        if !self.has_state {
            return Err(ReadError::NoStateMachine);
        }
        match consistency {
            ReadConsistency::Eventual => {
                out.reads.push(ReadOutcome {
                    id,
                    result: Ok(self.applied),
                });
                Ok(())
            }
            ReadConsistency::Strong => {
                if self.role != Role::Leader {
                    return Err(ReadError::NotLeader {
                        leader: self.leader,
                    });
                }
                if self.committed_in_term() && self.lease_valid(now) {
                    out.reads.push(ReadOutcome {
                        id,
                        result: Ok(self.log.commit()),
                    });
                    return Ok(());
                }
                self.round += 1;
                self.pending_reads.push(PendingRead {
                    id,
                    round: self.round,
                });
                self.broadcast(now, true, out);
                self.release_reads(out);
                Ok(())
            }
        }
    }

    /// Records that the state machine's state at `index` is `data` (a log replica gives
    /// `None`) and drops the log up to it.
    ///
    /// # Errors
    /// An index already compacted or not yet applied; data given when none is kept or
    /// the reverse.
    pub fn compact(
        &mut self,
        index: LogIndex,
        data: Option<Vec<u8>>,
        out: &mut Actions,
    ) -> Result<(), CompactError> {
        let snapshot_index = self.log.snapshot().index;
        if index <= snapshot_index {
            return Err(CompactError::Stale {
                index,
                snapshot: snapshot_index,
            });
        }
        if data.is_some() != self.has_state {
            return Err(CompactError::DataMismatch);
        }
        let limit = if self.has_state {
            self.applied
        } else {
            self.log.commit().min(self.log.persisted())
        };
        if index > limit {
            return Err(CompactError::NotApplied { index, limit });
        }
        let Some(term) = self.log.term(index) else {
            return Err(CompactError::Stale {
                index,
                snapshot: snapshot_index,
            });
        };
        let meta = SnapshotMeta {
            index,
            term,
            membership: self.log.membership_at(index).1.clone(),
        };
        self.log.compact(meta.clone());
        self.snapshot_data.clone_from(&data);
        out.persist
            .push(PersistOp::Compact(Snapshot { meta, data }));
        Ok(())
    }

    // ----- time -----

    fn tick(&mut self, now: Tick, out: &mut Actions) {
        match self.role {
            Role::Leader => {
                if now >= self.heartbeat_deadline {
                    self.broadcast(now, true, out);
                }
                self.check_quorum(now, out);
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                if now >= self.election_deadline {
                    if self.can_campaign() {
                        self.start_pre_vote(now, out);
                    } else {
                        self.reset_election_deadline(now);
                    }
                }
            }
        }
    }

    fn can_campaign(&self) -> bool {
        // A log replica (and a promoted one that has no state machine yet) never leads.
        self.has_state && self.membership.kind_of(self.config.id) == Some(MemberKind::Storage)
    }

    fn reset_election_deadline(&mut self, now: Tick) {
        let min = self.config.election_timeout_min_ms;
        self.election_deadline = now.add_ms(min + self.prng.below(min));
    }

    fn in_lockout(&self, now: Tick) -> bool {
        #[cfg(test)]
        if self.config.bugs.vote_ignores_lease && self.role != Role::Leader {
            return false;
        }
        self.role == Role::Leader
            || now
                < self
                    .leader_contact_at
                    .add_ms(self.config.election_timeout_min_ms)
    }

    fn check_quorum(&mut self, now: Tick, out: &mut Actions) {
        let window = self.config.election_timeout_min_ms;
        let me = self.config.id;
        let active = self
            .membership
            .voters()
            .filter(|v| {
                *v == me
                    || self
                        .progress
                        .get(v)
                        .is_some_and(|p| p.last_active.add_ms(window) > now)
            })
            .count();
        if active < majority(self.membership.len()) {
            self.become_follower(now, self.term, None, out);
        }
    }

    // ----- elections -----

    fn start_pre_vote(&mut self, now: Tick, out: &mut Actions) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_deadline(now);
        let msg = Message::PreVote {
            term: self.term.next(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.send_to_voters(msg, out);
        self.tally(now, out);
    }

    fn start_election(&mut self, now: Tick, out: &mut Actions) {
        self.role = Role::Candidate;
        self.term = self.term.next();
        self.vote = Some(self.config.id);
        self.leader = None;
        self.persist_hard_state(out);
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_deadline(now);
        let msg = Message::Vote {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.send_to_voters(msg, out);
        self.tally(now, out);
    }

    fn tally(&mut self, now: Tick, out: &mut Actions) {
        let need = majority(self.membership.len());
        let granted = self
            .membership
            .voters()
            .filter(|v| self.votes.get(v) == Some(&true))
            .count();
        let rejected = self
            .membership
            .voters()
            .filter(|v| self.votes.get(v) == Some(&false))
            .count();
        if granted >= need {
            match self.role {
                Role::PreCandidate => self.start_election(now, out),
                Role::Candidate => self.become_leader(now, out),
                Role::Follower | Role::Leader => {}
            }
        } else if rejected >= need {
            self.become_follower(now, self.term, None, out);
        }
    }

    fn become_follower(
        &mut self,
        now: Tick,
        term: Term,
        leader: Option<NodeId>,
        out: &mut Actions,
    ) {
        assert!(
            term >= self.term,
            "term must not go back: {} -> {term}",
            self.term
        );
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state(out);
        }
        if self.role == Role::Leader {
            // The lease this leader may hold runs on this clock; refusing votes for a
            // full timeout from now outlasts it.
            self.leader_contact_at = now;
            self.progress.clear();
            for read in self.pending_reads.drain(..) {
                out.reads.push(ReadOutcome {
                    id: read.id,
                    result: Err(ReadError::NotLeader { leader }),
                });
            }
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_deadline(now);
    }

    fn become_leader(&mut self, now: Tick, out: &mut Actions) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate becomes leader"
        );
        assert!(self.can_campaign(), "a replica that cannot campaign won");
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.progress.clear();
        self.sync_progress(now);
        // Commit the entries of past terms by committing one of this term (§5.4.2).
        self.append_own(now, Payload::Empty, out);
        self.broadcast(now, true, out);
    }

    fn handle_pre_vote(&mut self, now: Tick, from: NodeId, msg: &Message, out: &mut Actions) {
        let Message::PreVote {
            term,
            last_index,
            last_term,
        } = *msg
        else {
            return;
        };
        let granted = term > self.term
            && !self.in_lockout(now)
            && self.membership.contains(from)
            && self.log.is_up_to_date(last_index, last_term);
        let voter_term = self.term;
        self.send(
            from,
            Message::PreVoteResponse {
                term,
                granted,
                voter_term,
            },
            out,
        );
    }

    fn handle_vote(&mut self, now: Tick, from: NodeId, msg: &Message, out: &mut Actions) {
        let Message::Vote {
            term,
            last_index,
            last_term,
        } = *msg
        else {
            return;
        };
        if self.in_lockout(now) || !self.membership.contains(from) {
            // Stickiness: a replica that hears from a live leader does not help depose it,
            // and does not even adopt the higher term (that is what keeps leases safe and
            // lets a removed member not disrupt the group).
            if term > self.term {
                return;
            }
            self.send(
                from,
                Message::VoteResponse {
                    term: self.term,
                    granted: false,
                },
                out,
            );
            return;
        }
        if term > self.term {
            self.become_follower(now, term, None, out);
        }
        let granted = term == self.term
            && (self.vote.is_none() || self.vote == Some(from))
            && self.log.is_up_to_date(last_index, last_term);
        if granted {
            self.vote = Some(from);
            self.persist_hard_state(out);
            self.reset_election_deadline(now);
        }
        self.send(
            from,
            Message::VoteResponse {
                term: self.term,
                granted,
            },
            out,
        );
    }

    // ----- replication -----

    fn on_message(&mut self, now: Tick, env: Envelope, out: &mut Actions) {
        assert_eq!(
            env.to,
            self.config.id,
            "message for {} delivered to {}",
            env.to,
            self.id()
        );
        let from = env.from;
        let mt = env.msg.term();
        match &env.msg {
            Message::PreVote { .. } => self.handle_pre_vote(now, from, &env.msg, out),
            Message::PreVoteResponse {
                term,
                granted,
                voter_term,
            } => {
                if self.role == Role::PreCandidate && !*granted && *voter_term > self.term {
                    self.become_follower(now, *voter_term, None, out);
                } else if self.role == Role::PreCandidate && *term == self.term.next() {
                    self.votes.insert(from, *granted);
                    self.tally(now, out);
                }
            }
            Message::Vote { .. } => self.handle_vote(now, from, &env.msg, out),
            Message::VoteResponse { term, granted } => {
                if *term > self.term {
                    self.become_follower(now, *term, None, out);
                } else if *term == self.term && self.role == Role::Candidate {
                    self.votes.insert(from, *granted);
                    self.tally(now, out);
                }
            }
            Message::Append { .. } | Message::InstallSnapshot { .. } => {
                if mt < self.term {
                    // A stale leader: tell it the term so it steps down.
                    let result = Err(self.reject_hint(self.log.last_index().next()));
                    let reply = Message::AppendResponse {
                        term: self.term,
                        result,
                        round: 0,
                        sent_at: Tick(0),
                        needs_snapshot: false,
                    };
                    self.send(from, reply, out);
                    return;
                }
                if mt > self.term || self.role != Role::Follower {
                    assert!(
                        self.role != Role::Leader || mt > self.term,
                        "two leaders in term {mt}: {} and {from}",
                        self.id()
                    );
                    self.become_follower(now, mt, Some(from), out);
                }
                self.leader = Some(from);
                self.leader_contact_at = now;
                self.reset_election_deadline(now);
                if let Message::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                    round,
                    sent_at,
                    ..
                } = env.msg
                {
                    self.handle_append(
                        now,
                        from,
                        prev_index,
                        prev_term,
                        &entries,
                        commit,
                        (round, sent_at),
                        out,
                    );
                } else if let Message::InstallSnapshot {
                    snapshot,
                    round,
                    sent_at,
                    ..
                } = env.msg
                {
                    self.handle_snapshot(now, from, snapshot, (round, sent_at), out);
                }
            }
            Message::AppendResponse {
                term,
                result,
                round,
                sent_at,
                needs_snapshot,
            } => {
                if *term > self.term {
                    self.become_follower(now, *term, None, out);
                } else if *term == self.term && self.role == Role::Leader {
                    self.handle_append_response(
                        now,
                        from,
                        *result,
                        *round,
                        *sent_at,
                        *needs_snapshot,
                        out,
                    );
                }
            }
        }
    }

    fn reject_hint(&self, probe: LogIndex) -> RejectHint {
        let last_index = self.log.last_index();
        if probe > last_index {
            return RejectHint {
                last_index,
                conflict_term: None,
                conflict_index: last_index.next(),
            };
        }
        RejectHint {
            last_index,
            conflict_term: self.log.term(probe),
            conflict_index: self.log.first_index_of_term_at(probe),
        }
    }

    fn needs_snapshot(&self) -> bool {
        !self.has_state && self.membership.kind_of(self.config.id) == Some(MemberKind::Storage)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one append message"
    )]
    fn handle_append(
        &mut self,
        now: Tick,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: &[Entry],
        leader_commit: LogIndex,
        echo: (u64, Tick),
        out: &mut Actions,
    ) {
        let snapshot_index = self.log.snapshot().index;
        // Below our snapshot everything is committed and so matches the leader.
        let prev_matches =
            prev_index < snapshot_index || self.log.term(prev_index) == Some(prev_term);
        let result = if prev_matches {
            let written = self.log.merge(entries);
            if !written.is_empty() {
                out.persist.push(PersistOp::Entries(written));
                self.refresh_membership(now);
            }
            let last_new = LogIndex(prev_index.0 + entries.len() as u64);
            self.log
                .commit_to(leader_commit.min(last_new).min(self.log.last_index()));
            Ok(last_new)
        } else {
            Err(self.reject_hint(prev_index))
        };
        self.reply_append(from, result, echo, out);
        self.emit_applies(out);
    }

    fn reply_append(
        &mut self,
        to: NodeId,
        result: Result<LogIndex, RejectHint>,
        echo: (u64, Tick),
        out: &mut Actions,
    ) {
        let reply = Message::AppendResponse {
            term: self.term,
            result,
            round: echo.0,
            sent_at: echo.1,
            needs_snapshot: self.needs_snapshot(),
        };
        self.send(to, reply, out);
    }

    fn handle_snapshot(
        &mut self,
        now: Tick,
        from: NodeId,
        snapshot: Snapshot,
        echo: (u64, Tick),
        out: &mut Actions,
    ) {
        let index = snapshot.meta.index;
        let needs = self.needs_snapshot();
        let stale = if needs {
            // A promoted log replica builds its state machine from this snapshot and
            // replays its own log after it, so the snapshot must reach its log start.
            index < self.log.snapshot().index || snapshot.data.is_none()
        } else {
            index <= self.log.commit()
        };
        if stale {
            let at = self.log.commit();
            self.reply_append(from, Ok(at), echo, out);
            return;
        }
        self.log.install(&snapshot);
        let keeps_state = self.has_state || needs;
        let kept = Snapshot {
            meta: snapshot.meta.clone(),
            data: if keeps_state { snapshot.data } else { None },
        };
        if keeps_state {
            self.has_state = true;
            self.applied = index;
            self.snapshot_data.clone_from(&kept.data);
            out.apply.push(Apply::Snapshot(kept.clone()));
        } else {
            self.snapshot_data = None;
        }
        out.persist.push(PersistOp::Install(kept));
        self.refresh_membership(now);
        self.reply_append(from, Ok(index), echo, out);
        self.emit_applies(out);
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one response message"
    )]
    fn handle_append_response(
        &mut self,
        now: Tick,
        from: NodeId,
        result: Result<LogIndex, RejectHint>,
        round: u64,
        sent_at: Tick,
        needs_snapshot: bool,
        out: &mut Actions,
    ) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.last_active = now;
        pr.ack_round = pr.ack_round.max(round);
        pr.ack_sent_at_plus1 = pr.ack_sent_at_plus1.max(sent_at.0 + 1);
        if needs_snapshot && !pr.needs_snapshot {
            pr.needs_snapshot = true;
        } else if needs_snapshot && pr.snapshot_sent_at.is_some() {
            // It got our snapshot and it was too old for it.
            out.snapshot_wanted = true;
        } else if !needs_snapshot {
            pr.needs_snapshot = false;
        }
        match result {
            Ok(matched) => {
                let matched = matched.min(last_index);
                if matched > pr.match_index {
                    pr.match_index = matched;
                }
                if pr.next_index <= pr.match_index {
                    pr.next_index = pr.match_index.next();
                }
                pr.probing = false;
                if !needs_snapshot {
                    // (While it still needs one, resending stays throttled to a heartbeat.)
                    pr.snapshot_sent_at = None;
                }
                if self.config.buggify_ppm > 0 && self.prng.chance_ppm(self.config.buggify_ppm) {
                    // Forget the optimism: probe again from the match.
                    pr.next_index = pr.match_index.next();
                    pr.probing = true;
                }
            }
            Err(hint) => {
                let mut next = match hint.conflict_term {
                    Some(ct) => self
                        .log
                        .last_index_of_term(ct)
                        .map_or(hint.conflict_index, LogIndex::next),
                    None => hint.conflict_index,
                };
                next = next.min(hint.last_index.next()).min(last_index.next());
                next = next.max(pr.match_index.next());
                pr.next_index = next;
                pr.probing = true;
            }
        }
        let more = pr.next_index <= last_index || pr.needs_snapshot || pr.probing;
        self.maybe_commit(now, out);
        self.release_reads(out);
        if more && self.role == Role::Leader {
            self.send_append(now, from, false, out);
        }
    }

    fn maybe_commit(&mut self, now: Tick, out: &mut Actions) {
        if self.role != Role::Leader {
            return;
        }
        let me = self.config.id;
        let mut values: Vec<u64> = self
            .membership
            .voters()
            .map(|v| {
                if v == me {
                    self.log.persisted().0
                } else {
                    self.progress.get(&v).map_or(0, |p| p.match_index.0)
                }
            })
            .collect();
        #[cfg(test)]
        let candidate = if self.config.bugs.commit_on_minority {
            // The injected bug: commit at whatever the best-stored replica has.
            values.iter().copied().max().map(LogIndex)
        } else {
            majority_value(&mut values).map(LogIndex)
        };
        #[cfg(not(test))]
        let candidate = majority_value(&mut values).map(LogIndex);
        let Some(candidate) = candidate else {
            return;
        };
        // Only an entry of the current term is committed by counting (§5.4.2); earlier
        // ones are committed with it by log matching.
        if candidate > self.log.commit() && self.log.term(candidate) == Some(self.term) {
            self.log.commit_to(candidate);
            self.emit_applies(out);
            self.release_reads(out);
            if self.membership_index <= self.log.commit() && !self.membership.contains(me) {
                // Our own removal is committed: stop leading (§4.2.2).
                self.become_follower(now, self.term, None, out);
                return;
            }
            // Tell the followers promptly.
            self.broadcast(now, false, out);
        }
    }

    fn release_reads(&mut self, out: &mut Actions) {
        if self.role != Role::Leader || self.pending_reads.is_empty() || !self.committed_in_term() {
            return;
        }
        let me = self.config.id;
        let mut rounds: Vec<u64> = self
            .membership
            .voters()
            .map(|v| {
                if v == me {
                    self.round
                } else {
                    self.progress.get(&v).map_or(0, |p| p.ack_round)
                }
            })
            .collect();
        let Some(confirmed) = majority_value(&mut rounds) else {
            return;
        };
        let commit = self.log.commit();
        self.pending_reads.retain(|read| {
            if read.round <= confirmed {
                out.reads.push(ReadOutcome {
                    id: read.id,
                    result: Ok(commit),
                });
                false
            } else {
                true
            }
        });
    }

    fn append_own(&mut self, now: Tick, payload: Payload, out: &mut Actions) -> LogIndex {
        assert_eq!(
            self.role,
            Role::Leader,
            "only the leader appends its own entries"
        );
        let entry = Entry {
            index: self.log.last_index().next(),
            term: self.term,
            payload,
        };
        let index = entry.index;
        let is_membership = matches!(entry.payload, Payload::Membership(_));
        self.log.push(entry.clone());
        out.persist.push(PersistOp::Entries(vec![entry]));
        if is_membership {
            self.refresh_membership(now);
        }
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            if self.progress.get(&peer).is_some_and(|p| !p.probing) {
                self.send_append(now, peer, false, out);
            }
        }
        index
    }

    fn broadcast(&mut self, now: Tick, new_round: bool, out: &mut Actions) {
        if new_round {
            self.round += 1;
            self.heartbeat_deadline = now.add_ms(self.config.heartbeat_interval_ms);
        }
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(now, peer, true, out);
        }
    }

    fn send_append(&mut self, now: Tick, to: NodeId, allow_empty: bool, out: &mut Actions) {
        let term = self.term;
        let round = self.round;
        let commit = self.log.commit();
        let snapshot_index = self.log.snapshot().index;
        let last_index = self.log.last_index();
        let heartbeat_ms = self.config.heartbeat_interval_ms;
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        let prev_index = pr.next_index.prev();
        let buggify = self.config.buggify_ppm > 0
            && snapshot_index > LogIndex(0)
            && self.prng.chance_ppm(self.config.buggify_ppm);
        if pr.needs_snapshot || prev_index < snapshot_index || buggify {
            if pr
                .snapshot_sent_at
                .is_some_and(|t| now < t.add_ms(heartbeat_ms))
            {
                return;
            }
            let Some(data) = self.snapshot_data.clone() else {
                return;
            };
            pr.snapshot_sent_at = Some(now);
            let snapshot = Snapshot {
                meta: self.log.snapshot().clone(),
                data: Some(data),
            };
            let msg = Message::InstallSnapshot {
                term,
                snapshot,
                round,
                sent_at: now,
            };
            self.send(to, msg, out);
            return;
        }
        let Some(prev_term) = self.log.term(prev_index) else {
            return;
        };
        let inflight = pr.next_index.0.saturating_sub(pr.match_index.0 + 1);
        let room = if pr.probing {
            self.config.append_entries_max as u64
        } else {
            self.config.inflight_entries_max.saturating_sub(inflight)
        };
        let count_max = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(self.config.append_entries_max);
        let entries = self.log.entries_from(pr.next_index, count_max).to_vec();
        if entries.is_empty() && !allow_empty {
            return;
        }
        if !pr.probing {
            pr.next_index = LogIndex(prev_index.0 + entries.len() as u64 + 1);
            assert!(pr.next_index <= last_index.next(), "next past the log");
        }
        let msg = Message::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            round,
            sent_at: now,
        };
        self.send(to, msg, out);
    }

    // ----- membership -----

    fn refresh_membership(&mut self, now: Tick) {
        let (index, membership) = self.log.membership();
        if index == self.membership_index && *membership == self.membership {
            return;
        }
        self.membership = membership.clone();
        self.membership_index = index;
        if self.role == Role::Leader {
            self.sync_progress(now);
        }
    }

    fn sync_progress(&mut self, now: Tick) {
        let me = self.config.id;
        let next = self.log.last_index().next();
        let voters: Vec<NodeId> = self.membership.voters().filter(|v| *v != me).collect();
        self.progress.retain(|id, _| voters.contains(id));
        for v in voters {
            self.progress.entry(v).or_insert(Progress {
                match_index: LogIndex(0),
                next_index: next,
                probing: true,
                ack_sent_at_plus1: 0,
                ack_round: 0,
                last_active: now,
                needs_snapshot: false,
                snapshot_sent_at: None,
            });
        }
    }

    // ----- output helpers -----

    fn emit_applies(&mut self, out: &mut Actions) {
        if !self.has_state {
            return;
        }
        let hi = self.log.commit().min(self.log.persisted());
        while self.applied < hi {
            let next = self.applied.next();
            let Some(entry) = self.log.entry(next) else {
                break;
            };
            out.apply.push(Apply::Entry(entry.clone()));
            self.applied = next;
        }
    }

    fn persist_hard_state(&mut self, out: &mut Actions) {
        out.persist.push(PersistOp::HardState(self.hard_state()));
    }

    fn send(&self, to: NodeId, msg: Message, out: &mut Actions) {
        out.messages.push(Envelope {
            from: self.config.id,
            to,
            msg,
        });
    }

    fn send_to_voters(&self, msg: Message, out: &mut Actions) {
        for v in self.membership.voters() {
            if v != self.config.id {
                self.send(v, msg.clone(), out);
            }
        }
    }

    fn check_invariants(&self) {
        assert!(
            self.applied <= self.log.commit().max(self.log.snapshot().index),
            "applied past commit"
        );
        if self.role == Role::Leader {
            assert_eq!(self.vote, Some(self.config.id), "a leader voted for itself");
            assert_eq!(self.leader, Some(self.config.id), "a leader knows it leads");
        }
        if self.role == Role::Candidate {
            assert_eq!(
                self.vote,
                Some(self.config.id),
                "a candidate voted for itself"
            );
        }
    }
}
