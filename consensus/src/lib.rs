//! keel-consensus: the sans-IO replication group and its deterministic simulator.
//!
//! A [`Replica`] is one member of a replication group (Raft with pre-vote, leases, log
//! replicas, single-server membership changes and snapshots). It is fed ticks, messages
//! and persistence completions and hands back [`Actions`]: what to persist, what to send,
//! what to apply. [`multi::Node`] runs many groups on one node with heartbeats coalesced
//! per node pair. [`sim`] is the deterministic simulator that proves it.
//!
//! | module | holds |
//! | --- | --- |
//! | [`types`] | `NodeId`, `Term`, `LogIndex`, `GroupId`, `Tick` |
//! | [`message`] | entries, snapshots, messages |
//! | [`log`] | the in-memory log view and its invariants |
//! | [`quorum`] | majority arithmetic |
//! | [`lease`] | the lease bound from election timeout and clock drift |
//! | [`membership`] | voters, log replicas, single-server changes |
//! | [`replica`] | the core state machine |
//! | [`multi`] | many groups per node, coalesced heartbeats, quiescence |
//! | [`prng`] | the seeded random stream |
//! | [`sim`] | simulator, linearizability checker, exhaustive model checker |
//!
//! A single-replica group, driven by hand:
//!
//! ```
//! use keel_consensus::*;
//!
//! let membership = Membership::storage(&[NodeId(1)]).unwrap();
//! let boot = Boot::bootstrap(membership, true);
//! let mut r = Replica::new(Config::new(NodeId(1), 42), boot, Tick(0)).unwrap();
//! let mut out = Actions::default();
//! r.step(Tick(400), Input::Tick, &mut out); // the election timeout fires
//! assert_eq!(r.role(), Role::Leader);
//! let index = r.propose(Tick(401), b"put k v".to_vec(), &mut out).unwrap();
//! // The driver makes out.persist durable, sends out.messages, then reports:
//! let (last, term) = (r.log().last_index(), r.log().last_term());
//! out.clear();
//! r.step(Tick(402), Input::Persisted { index: last, term }, &mut out);
//! assert_eq!(r.commit(), index);
//! assert!(matches!(out.apply.last(), Some(Apply::Entry(e)) if e.index == index));
//! ```

pub mod lease;
pub mod log;
pub mod membership;
pub mod message;
pub mod multi;
pub mod prng;
pub mod quorum;
pub mod replica;
pub mod sim;
pub mod types;

pub use membership::{ConfigChange, Member, MemberKind, Membership, MembershipError};
pub use message::{Entry, Envelope, HardState, Message, Payload, Snapshot, SnapshotMeta};
pub use replica::{
    Actions, Apply, Boot, CompactError, Config, ConfigError, Input, PersistOp, ProposeError,
    ReadConsistency, ReadError, ReadId, ReadOutcome, Replica, Role,
};
pub use types::{GroupId, LogIndex, NodeId, Term, Tick};
