//! Group membership and single-server changes (Raft dissertation §4.1).
//!
//! A membership lists the voters of a group and what each keeps: a *storage* replica
//! keeps the log and a state machine and may lead; a *log* replica keeps the log only,
//! votes and counts toward quorums, and never leads. A change adds one voter, removes
//! one, or promotes a log replica to storage (which does not change the voter set), so the
//! majorities of the old and new memberships always intersect. A membership takes effect
//! on a replica as soon as its entry is in the replica's log, committed or not; the leader
//! allows one uncommitted change at a time.
//!
//! This module does not decide *when* to change membership (that is the placement
//! policy's job); it validates and applies one change.

use crate::types::NodeId;
use thiserror::Error;

/// What a member keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberKind {
    /// Keeps the log and a state machine; may lead.
    Storage,
    /// Keeps the log only; votes, never leads, applies nothing.
    Log,
}

/// One voter of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The node the replica lives on.
    pub id: NodeId,
    /// What the replica keeps.
    pub kind: MemberKind,
}

/// The voters of a group, sorted by node id, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    members: Vec<Member>,
}

/// A single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigChange {
    /// Add a storage replica on the node.
    AddStorage(NodeId),
    /// Add a log replica on the node.
    AddLog(NodeId),
    /// Remove the node's replica, whatever it keeps.
    Remove(NodeId),
    /// Turn the node's log replica into a storage replica (it then installs a snapshot).
    Promote(NodeId),
}

/// Why a membership change cannot be applied.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    /// The node to add is already a member.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// The node to remove or promote is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// Only a log replica can be promoted.
    #[error("node {0} is not a log replica")]
    NotLogReplica(NodeId),
    /// The change would leave no storage replica to lead the group.
    #[error("the change leaves no storage replica")]
    NoStorageLeft,
    /// The membership would exceed the voter limit.
    #[error("the group would exceed {0} voters")]
    TooManyVoters(usize),
}

/// The most voters a group may have; keeps every quorum computation small and bounded.
pub const VOTERS_MAX: usize = 9;

impl Membership {
    /// A membership of the given members (sorted and checked for duplicates).
    ///
    /// # Errors
    /// A duplicate node, more than [`VOTERS_MAX`] members, or no storage replica.
    pub fn new(members: &[Member]) -> Result<Membership, MembershipError> {
        let mut m = Membership {
            members: Vec::with_capacity(members.len()),
        };
        for member in members {
            if m.contains(member.id) {
                return Err(MembershipError::AlreadyMember(member.id));
            }
            m.members.push(*member);
        }
        m.members.sort_unstable();
        m.check()?;
        Ok(m)
    }

    /// The empty membership of a replica that has not yet learnt its group.
    #[must_use]
    pub fn empty() -> Membership {
        Membership::default()
    }

    /// A membership of storage replicas only.
    ///
    /// # Errors
    /// As [`Membership::new`].
    pub fn storage(ids: &[NodeId]) -> Result<Membership, MembershipError> {
        let members: Vec<Member> = ids
            .iter()
            .map(|id| Member {
                id: *id,
                kind: MemberKind::Storage,
            })
            .collect();
        Membership::new(&members)
    }

    fn check(&self) -> Result<(), MembershipError> {
        if self.members.len() > VOTERS_MAX {
            return Err(MembershipError::TooManyVoters(VOTERS_MAX));
        }
        if !self.members.iter().any(|m| m.kind == MemberKind::Storage) {
            return Err(MembershipError::NoStorageLeft);
        }
        Ok(())
    }

    /// The members, sorted by node id.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The voter ids, sorted.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// The number of voters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True for the membership of a replica that has not learnt its group.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when the node is a voter.
    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.kind_of(id).is_some()
    }

    /// What the node's replica keeps, if it is a member.
    #[must_use]
    pub fn kind_of(&self, id: NodeId) -> Option<MemberKind> {
        self.members.iter().find(|m| m.id == id).map(|m| m.kind)
    }

    /// The membership after one change.
    ///
    /// # Errors
    /// The change does not fit this membership (see [`MembershipError`]).
    pub fn apply(&self, change: ConfigChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            ConfigChange::AddStorage(id) | ConfigChange::AddLog(id) => {
                if self.contains(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                let kind = if matches!(change, ConfigChange::AddStorage(_)) {
                    MemberKind::Storage
                } else {
                    MemberKind::Log
                };
                next.members.push(Member { id, kind });
                next.members.sort_unstable();
            }
            ConfigChange::Remove(id) => {
                if !self.contains(id) {
                    return Err(MembershipError::NotMember(id));
                }
                next.members.retain(|m| m.id != id);
            }
            ConfigChange::Promote(id) => match self.kind_of(id) {
                None => return Err(MembershipError::NotMember(id)),
                Some(MemberKind::Storage) => return Err(MembershipError::NotLogReplica(id)),
                Some(MemberKind::Log) => {
                    for m in &mut next.members {
                        if m.id == id {
                            m.kind = MemberKind::Storage;
                        }
                    }
                }
            },
        }
        next.check()?;
        // Single-server change: the voter sets differ by at most one node.
        let removed = self.voters().filter(|id| !next.contains(*id)).count();
        let added = next.voters().filter(|id| !self.contains(*id)).count();
        assert!(
            removed + added <= 1,
            "change {change:?} moved {removed}+{added} voters"
        );
        Ok(next)
    }
}

/// The next step of the leader's placement policy (DynamoDB's log replicas): a storage
/// replica that has been `lost` (silent past the driver's threshold, see
/// `Replica::lagging_peers`) is removed; while the group is below `voters_target`, a
/// `spare` node joins, first as a log replica (it needs no state machine, so the write
/// quorum is whole again in seconds) and, once a log replica is there, as storage; with
/// the group whole, a log replica is promoted to storage (it then installs a snapshot),
/// which replaces the lost storage replica for good. One change at a time; `None` when
/// nothing is to be done.
#[must_use]
pub fn repair(
    membership: &Membership,
    lost: &[NodeId],
    voters_target: usize,
    spare: Option<NodeId>,
) -> Option<ConfigChange> {
    if membership.len() >= 3 {
        if let Some(id) = lost.iter().find(|id| membership.contains(**id)) {
            return Some(ConfigChange::Remove(*id));
        }
    }
    let log_replica = membership
        .members()
        .iter()
        .find(|m| m.kind == MemberKind::Log)
        .map(|m| m.id);
    if membership.len() < voters_target {
        let spare = spare.filter(|id| !membership.contains(*id))?;
        return Some(if log_replica.is_none() {
            ConfigChange::AddLog(spare)
        } else {
            ConfigChange::AddStorage(spare)
        });
    }
    if lost.is_empty() {
        return log_replica.map(ConfigChange::Promote);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_replaces_a_lost_storage_replica_through_a_log_replica() {
        let (a, b, c, d) = (NodeId(1), NodeId(2), NodeId(3), NodeId(4));
        let m = Membership::storage(&[a, b, c]).unwrap();
        // c is lost: remove it, add d as a log replica, then promote d.
        let step = repair(&m, &[c], 3, Some(d)).unwrap();
        assert_eq!(step, ConfigChange::Remove(c));
        let m = m.apply(step).unwrap();
        let step = repair(&m, &[], 3, Some(d)).unwrap();
        assert_eq!(step, ConfigChange::AddLog(d));
        let m = m.apply(step).unwrap();
        let step = repair(&m, &[], 3, None).unwrap();
        assert_eq!(step, ConfigChange::Promote(d));
        let m = m.apply(step).unwrap();
        assert_eq!(repair(&m, &[], 3, None), None);
        assert_eq!(m.kind_of(d), Some(MemberKind::Storage));
    }

    fn ids(m: &Membership) -> Vec<u64> {
        m.voters().map(|n| n.0).collect()
    }

    #[test]
    fn add_remove_promote() {
        let m = Membership::storage(&[NodeId(3), NodeId(1), NodeId(2)]).unwrap();
        assert_eq!(ids(&m), vec![1, 2, 3]);
        let m = m.apply(ConfigChange::AddLog(NodeId(4))).unwrap();
        assert_eq!(m.kind_of(NodeId(4)), Some(MemberKind::Log));
        let m = m.apply(ConfigChange::Remove(NodeId(2))).unwrap();
        assert_eq!(ids(&m), vec![1, 3, 4]);
        let m = m.apply(ConfigChange::Promote(NodeId(4))).unwrap();
        assert_eq!(m.kind_of(NodeId(4)), Some(MemberKind::Storage));
    }

    #[test]
    fn invalid_changes_are_errors() {
        let m = Membership::storage(&[NodeId(1)]).unwrap();
        assert_eq!(
            m.apply(ConfigChange::AddLog(NodeId(1))),
            Err(MembershipError::AlreadyMember(NodeId(1)))
        );
        assert_eq!(
            m.apply(ConfigChange::Remove(NodeId(1))),
            Err(MembershipError::NoStorageLeft)
        );
        assert_eq!(
            m.apply(ConfigChange::Promote(NodeId(1))),
            Err(MembershipError::NotLogReplica(NodeId(1)))
        );
        assert_eq!(
            m.apply(ConfigChange::Remove(NodeId(9))),
            Err(MembershipError::NotMember(NodeId(9)))
        );
    }
}
