//! The in-memory view of a replica's log: a snapshot prefix, then entries.
//!
//! ```text
//!   snapshot covers 1..=s      entries[0] is at s+1          last_index
//!   [ ......... s ]  [ s+1 | s+2 | ... | last ]
//!                      ^ persisted <= last      ^ commit <= last
//! ```
//! Invariants (asserted): entries are contiguous from `snapshot.index + 1`; terms never
//! decrease along the log; a truncation never removes an entry at or below the commit
//! index; the persisted mark never passes the last index. The log does not decide what to
//! persist; the replica records each change as a
//! [`PersistOp`](crate::replica::PersistOp) for the driver.

use crate::membership::Membership;
use crate::message::{Entry, Payload, Snapshot, SnapshotMeta};
use crate::types::{LogIndex, Term};

/// A log and the snapshot before it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    entries: Vec<Entry>,
    /// Highest index the driver reported durable (and still in the log).
    persisted: LogIndex,
    /// Highest index known committed.
    commit: LogIndex,
}

impl RaftLog {
    /// A log recovered from a snapshot (possibly the empty one at index 0) and the entries
    /// after it, all durable.
    #[must_use]
    pub fn recover(snapshot: SnapshotMeta, entries: Vec<Entry>) -> RaftLog {
        let mut log = RaftLog {
            persisted: snapshot.index,
            commit: snapshot.index,
            snapshot,
            entries: Vec::new(),
        };
        for e in entries {
            if e.index <= log.snapshot.index {
                continue;
            }
            assert_eq!(
                e.index,
                log.last_index().next(),
                "recovered entries have a gap"
            );
            log.entries.push(e);
        }
        log.persisted = log.last_index();
        log.check();
        log
    }

    fn check(&self) {
        if let Some(first) = self.entries.first() {
            assert_eq!(
                first.index,
                self.snapshot.index.next(),
                "first entry after snapshot"
            );
            assert!(first.term >= self.snapshot.term, "term below snapshot term");
        }
        debug_assert!(self
            .entries
            .windows(2)
            .all(|w| { w[1].index == w[0].index.next() && w[1].term >= w[0].term }));
        assert!(
            self.persisted <= self.last_index(),
            "persisted past last index"
        );
        assert!(
            self.commit <= self.last_index().max(self.snapshot.index),
            "commit past log"
        );
    }

    /// The snapshot metadata the log starts after.
    #[must_use]
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The first index held as an entry (the snapshot index + 1).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    /// The last index, in the snapshot or the entries.
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }

    /// The term of the last entry.
    #[must_use]
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term at `index`, if the log knows it (compacted indexes below the snapshot
    /// do not have one).
    #[must_use]
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        let offset = usize::try_from(index.0 - self.snapshot.index.0 - 1).ok()?;
        self.entries.get(offset)
    }

    /// Entries from `lo` on, at most `count_max` of them (empty if `lo` is compacted or
    /// past the end).
    #[must_use]
    pub fn entries_from(&self, lo: LogIndex, count_max: usize) -> &[Entry] {
        if lo <= self.snapshot.index || lo > self.last_index() {
            return &[];
        }
        let start = usize::try_from(lo.0 - self.snapshot.index.0 - 1).unwrap_or(usize::MAX);
        let end = start.saturating_add(count_max).min(self.entries.len());
        self.entries.get(start..end).unwrap_or(&[])
    }

    /// The durable mark.
    #[must_use]
    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// The commit index.
    #[must_use]
    pub fn commit(&self) -> LogIndex {
        self.commit
    }

    /// True when this log is at least as up to date as (last_index, last_term) says
    /// another is (Raft §5.4.1).
    #[must_use]
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends one entry at the end (leader path).
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "push must extend the log"
        );
        assert!(
            entry.term >= self.last_term(),
            "push must not lower the term"
        );
        self.entries.push(entry);
    }

    /// Merges entries a leader sent after a matching `prev`: entries already present with
    /// the same term are kept, the first conflicting one and everything after it is
    /// replaced (Raft §5.3). Returns the entries that must be written, starting at the
    /// first changed index.
    pub fn merge(&mut self, entries: &[Entry]) -> Vec<Entry> {
        let mut first_new = None;
        for (i, e) in entries.iter().enumerate() {
            if e.index <= self.snapshot.index {
                continue;
            }
            match self.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    assert!(
                        e.index > self.commit,
                        "conflict at {} at or below commit {}",
                        e.index,
                        self.commit
                    );
                    self.truncate_from(e.index);
                    first_new = Some(i);
                    break;
                }
                None => {
                    first_new = Some(i);
                    break;
                }
            }
        }
        let Some(first_new) = first_new else {
            return Vec::new();
        };
        let fresh: Vec<Entry> = entries.get(first_new..).unwrap_or(&[]).to_vec();
        for e in &fresh {
            self.push(e.clone());
        }
        self.check();
        fresh
    }

    fn truncate_from(&mut self, index: LogIndex) {
        assert!(index > self.snapshot.index, "truncate into snapshot");
        assert!(
            index > self.commit,
            "truncate at {index} would lose commit {}",
            self.commit
        );
        let keep = usize::try_from(index.0 - self.snapshot.index.0 - 1).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(index.prev());
    }

    /// Records that the driver made everything up to `index` (whose entry has `term`)
    /// durable. A report about an entry that has since been replaced is ignored.
    pub fn persisted_to(&mut self, index: LogIndex, term: Term) {
        if index > self.persisted && self.term(index) == Some(term) {
            self.persisted = index;
        }
    }

    /// Raises the commit index.
    pub fn commit_to(&mut self, index: LogIndex) {
        assert!(
            index <= self.last_index(),
            "commit {index} past last {}",
            self.last_index()
        );
        if index > self.commit {
            self.commit = index;
        }
    }

    /// Drops the entries up to `meta.index`, which a snapshot now covers.
    pub fn compact(&mut self, meta: SnapshotMeta) {
        assert!(
            meta.index > self.snapshot.index,
            "compaction must move forward"
        );
        assert!(meta.index <= self.commit, "compaction past commit");
        assert_eq!(
            self.term(meta.index),
            Some(meta.term),
            "compaction term mismatch"
        );
        let drop = usize::try_from(meta.index.0 - self.snapshot.index.0).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = meta;
        self.check();
    }

    /// Installs a snapshot from the leader: keeps the entries after it when the log holds
    /// the snapshot's last entry (log matching then says the suffix agrees), otherwise
    /// discards the log.
    pub fn install(&mut self, snapshot: &Snapshot) {
        let meta = &snapshot.meta;
        assert!(
            meta.index >= self.snapshot.index,
            "install must not move backward"
        );
        if self.term(meta.index) == Some(meta.term) && meta.index > self.snapshot.index {
            let drop = usize::try_from(meta.index.0 - self.snapshot.index.0).unwrap_or(usize::MAX);
            self.entries.drain(..drop.min(self.entries.len()));
        } else if meta.index != self.snapshot.index || meta.term != self.snapshot.term {
            self.entries.clear();
        }
        self.snapshot = meta.clone();
        self.commit = self.commit.max(meta.index);
        self.persisted = self.persisted.clamp(meta.index, self.last_index());
        self.check();
    }

    /// The membership in force at the end of the log: the last membership entry, or the
    /// snapshot's.
    #[must_use]
    pub fn membership(&self) -> (LogIndex, &Membership) {
        self.membership_at(self.last_index())
    }

    /// The membership in force at `index` (at or after the snapshot).
    #[must_use]
    pub fn membership_at(&self, index: LogIndex) -> (LogIndex, &Membership) {
        for e in self.entries.iter().rev() {
            if e.index > index {
                continue;
            }
            if let Payload::Membership(m) = &e.payload {
                return (e.index, m);
            }
        }
        (self.snapshot.index, &self.snapshot.membership)
    }

    /// The last index of `term` in the log, if the log holds an entry of that term.
    #[must_use]
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term == term)
            .map(|e| e.index)
    }

    /// The first index of the run of `term` that ends at or before `index`.
    #[must_use]
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > self.first_index() && self.term(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    fn e(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            payload: Payload::Empty,
        }
    }

    fn meta0() -> SnapshotMeta {
        SnapshotMeta {
            index: LogIndex(0),
            term: Term(0),
            membership: Membership::storage(&[NodeId(1)]).unwrap(),
        }
    }

    #[test]
    fn merge_keeps_matching_and_replaces_conflict() {
        let mut log = RaftLog::recover(meta0(), vec![e(1, 1), e(2, 1), e(3, 2)]);
        assert!(
            log.merge(&[e(1, 1), e(2, 1)]).is_empty(),
            "a stale duplicate changes nothing"
        );
        assert_eq!(log.last_index(), LogIndex(3));
        let written = log.merge(&[e(2, 1), e(3, 3), e(4, 3)]);
        assert_eq!(written, vec![e(3, 3), e(4, 3)]);
        assert_eq!(log.term(LogIndex(3)), Some(Term(3)));
        assert_eq!(
            log.persisted(),
            LogIndex(2),
            "persisted mark falls back on truncation"
        );
    }

    #[test]
    fn compact_then_install() {
        let mut log = RaftLog::recover(meta0(), vec![e(1, 1), e(2, 1), e(3, 2)]);
        log.commit_to(LogIndex(2));
        log.compact(SnapshotMeta {
            index: LogIndex(2),
            term: Term(1),
            ..meta0()
        });
        assert_eq!(log.first_index(), LogIndex(3));
        assert_eq!(log.term(LogIndex(2)), Some(Term(1)));
        assert_eq!(log.entry(LogIndex(2)), None);
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(3),
                term: Term(2),
                ..meta0()
            },
            data: None,
        };
        log.install(&snap);
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.commit(), LogIndex(3));
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(5),
                term: Term(4),
                ..meta0()
            },
            data: None,
        };
        log.install(&snap);
        assert_eq!(log.last_index(), LogIndex(5));
        assert_eq!(log.last_term(), Term(4));
    }

    #[test]
    #[should_panic(expected = "at or below commit")]
    fn truncating_a_committed_entry_panics() {
        let mut log = RaftLog::recover(meta0(), vec![e(1, 1), e(2, 1)]);
        log.commit_to(LogIndex(2));
        log.merge(&[e(2, 2)]);
    }
}
