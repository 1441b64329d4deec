//! Newtypes for the positions and identities consensus deals in.
//!
//! Terms and log indexes are never mixed with each other or with counts; each is a
//! distinct type so that the compiler catches a swapped argument. Time is a reading of
//! the replica's own monotonic clock in milliseconds, handed in by the driver: the core
//! never reads a clock.

use core::fmt;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

newtype!(
    /// A node (process) in the cluster; one replica of a group lives on a node.
    NodeId
);
newtype!(
    /// A Raft term: each term has at most one leader (Raft §5.2).
    Term
);
newtype!(
    /// A position in the replicated log; the first entry is at index 1 and index 0
    /// stands for "before the first entry".
    LogIndex
);
newtype!(
    /// A replication group (one per partition).
    GroupId
);
newtype!(
    /// A reading of the local monotonic clock, in milliseconds. Readings of different
    /// nodes are not comparable: clocks drift within a bound the configuration names.
    Tick
);

impl Term {
    /// The next term.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl LogIndex {
    /// The index after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one, saturating at zero.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Tick {
    /// This reading plus a duration in milliseconds.
    #[must_use]
    pub fn add_ms(self, ms: u64) -> Tick {
        Tick(self.0.saturating_add(ms))
    }
}
