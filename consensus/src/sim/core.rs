//! What a simulated host runs: a bare replica, or the same replica inside the multi-group
//! layer (one group per node, quiescence on), so that the whole simulator — torn writes,
//! membership changes, the linearizability check — also covers quiescence and waking.
//!
//! [`Core`] offers the replica's own methods; in multi mode it translates them to the
//! [`Node`] calls and back, keeping the node-level messages (heartbeats, quiesce) apart:
//! they depend on no persistence and leave at once.

use std::ops::Deref;

use crate::membership::ConfigChange;
use crate::message::Envelope;
use crate::multi::{Node, NodeActions, NodeConfig, NodeMessage};
use crate::replica::{
    Actions, CompactError, Input, ProposeError, ReadConsistency, ReadError, ReadId, Replica,
};
use crate::types::{GroupId, LogIndex, NodeId, Tick};

/// The one group a multi-mode host runs.
pub const GROUP: GroupId = GroupId(0);

/// A replica, bare or inside a multi-group node.
#[derive(Clone, Debug)]
pub enum Core {
    /// The replica alone.
    Single(Box<Replica>),
    /// The replica as group [`GROUP`] of a node, with the node-level messages it produced.
    Multi(Box<Node>, Vec<(NodeId, NodeMessage)>),
}

impl Deref for Core {
    type Target = Replica;

    #[expect(
        clippy::expect_used,
        reason = "a multi-mode core always hosts its group"
    )]
    fn deref(&self) -> &Replica {
        match self {
            Core::Single(r) => r,
            Core::Multi(node, _) => node.replica(GROUP).expect("the group is hosted"),
        }
    }
}

impl Core {
    /// Wraps a replica in a node with one group.
    #[must_use]
    pub fn multi(replica: Replica, epoch: u64, quiesce_after_ms: u64) -> Core {
        let config = replica.config();
        let mut node = Node::new(NodeConfig {
            id: replica.id(),
            epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            peer_timeout_ms: config.election_timeout_min_ms,
            quiesce_after_ms,
            quiesce: true,
        });
        node.add_group(GROUP, replica);
        Core::Multi(Box::new(node), Vec::new())
    }

    /// Node-level messages to send now (multi mode only).
    pub fn take_node_messages(&mut self) -> Vec<(NodeId, NodeMessage)> {
        match self {
            Core::Single(_) => Vec::new(),
            Core::Multi(_, extra) => std::mem::take(extra),
        }
    }

    fn split(
        me: NodeId,
        na: NodeActions,
        out: &mut Actions,
        extra: &mut Vec<(NodeId, NodeMessage)>,
    ) {
        out.persist.extend(na.persist.into_iter().map(|(_, op)| op));
        for (to, batch) in na.messages {
            for msg in batch {
                match msg {
                    NodeMessage::Group { msg, .. } => {
                        out.messages.push(Envelope { from: me, to, msg })
                    }
                    other => extra.push((to, other)),
                }
            }
        }
        out.apply.extend(na.apply.into_iter().map(|(_, a)| a));
        out.reads.extend(na.reads.into_iter().map(|(_, r)| r));
        out.snapshot_wanted |= !na.snapshot_wanted.is_empty();
    }

    fn with_node<T>(
        &mut self,
        out: &mut Actions,
        f: impl FnOnce(&mut Node, &mut NodeActions) -> T,
    ) -> Option<T> {
        let Core::Multi(node, extra) = self else {
            return None;
        };
        let mut na = NodeActions::default();
        let result = f(node, &mut na);
        let me = node.replica(GROUP).map_or(NodeId(0), Replica::id);
        Core::split(me, na, out, extra);
        Some(result)
    }

    /// As [`Replica::step`].
    pub fn step(&mut self, now: Tick, input: Input, out: &mut Actions) {
        if let Core::Single(r) = self {
            r.step(now, input, out);
            return;
        }
        self.with_node(out, |node, na| match input {
            Input::Tick => node.tick(now, na),
            Input::Message(env) => {
                node.on_message(
                    now,
                    env.from,
                    NodeMessage::Group {
                        group: GROUP,
                        msg: env.msg,
                    },
                    na,
                );
            }
            Input::Persisted { index, term } => node.persisted(now, GROUP, index, term, na),
        });
    }

    /// A node-level message (multi mode only).
    pub fn on_node_message(
        &mut self,
        now: Tick,
        from: NodeId,
        msg: NodeMessage,
        out: &mut Actions,
    ) {
        self.with_node(out, |node, na| node.on_message(now, from, msg, na));
    }

    /// As [`Replica::propose`].
    ///
    /// # Errors
    /// As [`Replica::propose`].
    pub fn propose(
        &mut self,
        now: Tick,
        data: Vec<u8>,
        out: &mut Actions,
    ) -> Result<LogIndex, ProposeError> {
        match self {
            Core::Single(r) => r.propose(now, data, out),
            Core::Multi(..) => self
                .with_node(out, |node, na| node.propose(now, GROUP, data, na))
                .unwrap_or(Err(ProposeError::NotLeader { leader: None })),
        }
    }

    /// As [`Replica::read`].
    ///
    /// # Errors
    /// As [`Replica::read`].
    pub fn read(
        &mut self,
        now: Tick,
        id: ReadId,
        consistency: ReadConsistency,
        out: &mut Actions,
    ) -> Result<(), ReadError> {
        match self {
            Core::Single(r) => r.read(now, id, consistency, out),
            Core::Multi(..) => self
                .with_node(out, |node, na| node.read(now, GROUP, id, consistency, na))
                .unwrap_or(Err(ReadError::NotLeader { leader: None })),
        }
    }

    /// As [`Replica::change_membership`].
    ///
    /// # Errors
    /// As [`Replica::change_membership`].
    pub fn change_membership(
        &mut self,
        now: Tick,
        change: ConfigChange,
        out: &mut Actions,
    ) -> Result<LogIndex, ProposeError> {
        match self {
            Core::Single(r) => r.change_membership(now, change, out),
            Core::Multi(..) => self
                .with_node(out, |node, na| {
                    node.change_membership(now, GROUP, change, na)
                })
                .unwrap_or(Err(ProposeError::NotLeader { leader: None })),
        }
    }

    /// As [`Replica::compact`].
    ///
    /// # Errors
    /// As [`Replica::compact`].
    pub fn compact(
        &mut self,
        now: Tick,
        index: LogIndex,
        data: Option<Vec<u8>>,
        out: &mut Actions,
    ) -> Result<(), CompactError> {
        match self {
            Core::Single(r) => r.compact(index, data, out),
            Core::Multi(..) => self
                .with_node(out, |node, na| node.compact(now, GROUP, index, data, na))
                .unwrap_or(Err(CompactError::DataMismatch)),
        }
    }
}
