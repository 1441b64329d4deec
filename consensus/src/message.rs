//! Log entries, snapshots and the messages replicas exchange.
//!
//! Every message carries the sender's term. Appends and snapshots also carry the leader's
//! local send time and a round number, echoed back in the response: the send time builds
//! the leader's lease, the round releases read-index reads. Messages are plain values; a
//! wire codec lives with the transport, not here.

use crate::membership::Membership;
use crate::types::{LogIndex, NodeId, Term, Tick};

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// The no-op a new leader appends to commit the entries of past terms (Raft §5.4.2).
    Empty,
    /// An opaque command for the state machine.
    Data(Vec<u8>),
    /// A new membership; takes effect when appended (Raft dissertation §4.1).
    Membership(Membership),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Position in the log.
    pub index: LogIndex,
    /// Term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub payload: Payload,
}

/// What a snapshot covers: every entry up to and including `index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The membership in force at `index`.
    pub membership: Membership,
}

/// A snapshot: its metadata and, for a replica that keeps a state machine, the state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The state machine's bytes at `meta.index`; `None` on a log replica, which keeps no
    /// state machine.
    pub data: Option<Vec<u8>>,
}

/// The part of a replica's state that must be durable before it speaks (Raft Figure 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The latest term the replica has seen.
    pub term: Term,
    /// The candidate it voted for in `term`, if any.
    pub vote: Option<NodeId>,
}

/// A follower's hint for fast backtracking after a rejected append (Raft §5.3, the
/// optimisation the paper sketches, as etcd implements it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RejectHint {
    /// The follower's last index.
    pub last_index: LogIndex,
    /// The term of the follower's entry at the probed index, if it has one.
    pub conflict_term: Option<Term>,
    /// The first index of `conflict_term` in the follower's log, or `last_index + 1`.
    pub conflict_index: LogIndex,
}

/// A message between two replicas of one group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// Would you vote for me in `term`? Changes no state at the receiver (Raft
    /// dissertation §9.6): a partitioned node cannot raise the group's term.
    PreVote {
        /// The term the sender would campaign in.
        term: Term,
        /// The sender's last index.
        last_index: LogIndex,
        /// The sender's last term.
        last_term: Term,
    },
    /// Answer to a pre-vote.
    PreVoteResponse {
        /// The term asked about (echoed).
        term: Term,
        /// Whether the vote would be granted.
        granted: bool,
        /// The voter's own term: a pre-candidate behind it catches up (etcd does the same),
        /// or it could never win a pre-vote again.
        voter_term: Term,
    },
    /// Vote for me in `term`.
    Vote {
        /// The candidate's term.
        term: Term,
        /// The candidate's last index.
        last_index: LogIndex,
        /// The candidate's last term.
        last_term: Term,
    },
    /// Answer to a vote request.
    VoteResponse {
        /// The voter's term.
        term: Term,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// Entries to append after `prev_index`; with no entries, a heartbeat.
    Append {
        /// The leader's term.
        term: Term,
        /// The index before the first entry.
        prev_index: LogIndex,
        /// The term of the entry at `prev_index`.
        prev_term: Term,
        /// The entries, at `prev_index + 1` onwards.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
        /// The leader's round number (read-index), echoed.
        round: u64,
        /// The leader's clock when it sent this (lease), echoed.
        sent_at: Tick,
    },
    /// Answer to an append or a snapshot.
    AppendResponse {
        /// The follower's term.
        term: Term,
        /// On success, the highest index known to match the leader's log; on rejection
        /// the hint.
        result: Result<LogIndex, RejectHint>,
        /// The round echoed.
        round: u64,
        /// The send time echoed.
        sent_at: Tick,
        /// The follower must be sent a snapshot to build its state machine (a promoted
        /// log replica), or the one it was sent is older than its own log's start.
        needs_snapshot: bool,
    },
    /// A snapshot for a replica that is behind the leader's log start, or that has to
    /// build its state machine.
    InstallSnapshot {
        /// The leader's term.
        term: Term,
        /// The snapshot.
        snapshot: Snapshot,
        /// The leader's round number, echoed.
        round: u64,
        /// The leader's clock when it sent this, echoed.
        sent_at: Tick,
    },
}

impl Message {
    /// The term the message carries.
    #[must_use]
    pub fn term(&self) -> Term {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteResponse { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::Append { term, .. }
            | Message::AppendResponse { term, .. }
            | Message::InstallSnapshot { term, .. } => *term,
        }
    }

    /// True for an append without entries (a heartbeat).
    #[must_use]
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, Message::Append { entries, .. } if entries.is_empty())
    }
}

/// A message with its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}
