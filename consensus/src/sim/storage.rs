//! Simulated durable storage for one replica: durable bytes apart from writes in flight.
//!
//! The replica's in-memory log is the live state. Persist ops wait in a queue of batches
//! until their simulated fdatasync completes; only then are they applied to the durable
//! state, the batch's messages released and the replica told. A crash applies a random
//! prefix of the waiting ops (a torn tail: the WAL keeps a prefix of what was written) and
//! forgets the rest, with their messages — as FoundationDB's AsyncFileNonDurable and
//! TigerBeetle's simulated storage do.

use std::collections::VecDeque;

use crate::message::{Entry, Envelope, HardState, Snapshot};
use crate::prng::Prng;
use crate::replica::{Boot, PersistOp};
use crate::types::{LogIndex, Term};

/// What survives a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    /// Term and vote.
    pub hard_state: HardState,
    /// Latest snapshot.
    pub snapshot: Snapshot,
    /// Entries after it.
    pub entries: Vec<Entry>,
}

impl Durable {
    /// The durable state a replica boots with.
    #[must_use]
    pub fn from_boot(boot: &Boot) -> Durable {
        Durable {
            hard_state: boot.hard_state,
            snapshot: boot.snapshot.clone(),
            entries: boot.entries.clone(),
        }
    }

    /// The state to boot a replica from.
    #[must_use]
    pub fn to_boot(&self) -> Boot {
        Boot {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }

    /// The last durable index and its term.
    #[must_use]
    pub fn last(&self) -> (LogIndex, Term) {
        self.entries
            .last()
            .map_or((self.snapshot.meta.index, self.snapshot.meta.term), |e| {
                (e.index, e.term)
            })
    }

    fn offset(&self, index: LogIndex) -> Option<usize> {
        let first = self.snapshot.meta.index.0 + 1;
        if index.0 < first {
            return None;
        }
        usize::try_from(index.0 - first).ok()
    }

    /// Applies one op with the semantics [`PersistOp`] documents.
    pub fn apply(&mut self, op: &PersistOp) {
        match op {
            PersistOp::HardState(hs) => self.hard_state = *hs,
            PersistOp::Entries(entries) => {
                let Some(first) = entries.first() else {
                    return;
                };
                let at = self.offset(first.index).unwrap_or(0);
                assert!(
                    at <= self.entries.len(),
                    "durable log gap at {}",
                    first.index
                );
                self.entries.truncate(at);
                self.entries.extend(entries.iter().cloned());
            }
            PersistOp::Compact(snapshot) => {
                let drop = self.offset(snapshot.meta.index.next()).unwrap_or(0);
                self.entries.drain(..drop.min(self.entries.len()));
                self.snapshot = snapshot.clone();
            }
            PersistOp::Install(snapshot) => {
                let at = snapshot.meta.index;
                let same_start =
                    at == self.snapshot.meta.index && snapshot.meta.term == self.snapshot.meta.term;
                let keep = same_start
                    || self
                        .offset(at)
                        .and_then(|o| self.entries.get(o))
                        .is_some_and(|e| e.term == snapshot.meta.term);
                if same_start {
                    // Nothing to drop: the log already starts there.
                } else if keep {
                    let drop = self.offset(at.next()).unwrap_or(0);
                    self.entries.drain(..drop.min(self.entries.len()));
                } else {
                    self.entries.clear();
                }
                self.snapshot = snapshot.clone();
            }
        }
    }
}

/// A batch of ops and the messages that wait for them.
#[derive(Clone, Debug)]
struct Batch {
    ops: Vec<PersistOp>,
    messages: Vec<Envelope>,
    sync_at_ms: u64,
}

/// One replica's storage.
#[derive(Clone, Debug)]
pub struct SimStorage {
    /// What survives a crash.
    pub durable: Durable,
    queue: VecDeque<Batch>,
    /// Simulated fdatasync latency range.
    pub sync_ms: (u64, u64),
    /// Batches made durable.
    pub syncs: u64,
}

impl SimStorage {
    /// Storage holding `durable`.
    #[must_use]
    pub fn new(durable: Durable, sync_ms: (u64, u64)) -> SimStorage {
        SimStorage {
            durable,
            queue: VecDeque::new(),
            sync_ms,
            syncs: 0,
        }
    }

    /// Queues ops and the messages that must wait for them. Returns the messages that may
    /// leave at once (nothing is waiting) and, if a batch was queued, when it syncs.
    pub fn submit(
        &mut self,
        prng: &mut Prng,
        now_ms: u64,
        ops: Vec<PersistOp>,
        messages: Vec<Envelope>,
    ) -> (Vec<Envelope>, Option<u64>) {
        if ops.is_empty() && self.queue.is_empty() {
            return (messages, None);
        }
        let prev = self.queue.back().map_or(0, |b| b.sync_at_ms);
        let sync_at_ms = prev.max(now_ms + prng.range(self.sync_ms.0, self.sync_ms.1));
        self.queue.push_back(Batch {
            ops,
            messages,
            sync_at_ms,
        });
        (Vec::new(), Some(sync_at_ms))
    }

    /// Completes every batch due by `now_ms`: returns their messages and whether anything
    /// became durable.
    pub fn sync(&mut self, now_ms: u64) -> (Vec<Envelope>, bool) {
        let mut messages = Vec::new();
        let mut any = false;
        while self.queue.front().is_some_and(|b| b.sync_at_ms <= now_ms) {
            let Some(batch) = self.queue.pop_front() else {
                break;
            };
            for op in &batch.ops {
                self.durable.apply(op);
            }
            any |= !batch.ops.is_empty();
            self.syncs += 1;
            messages.extend(batch.messages);
        }
        (messages, any)
    }

    /// A crash: a random prefix of the waiting ops reaches the disk, the rest and every
    /// waiting message is lost.
    pub fn crash(&mut self, prng: &mut Prng) {
        let ops: Vec<PersistOp> = self.queue.drain(..).flat_map(|b| b.ops).collect();
        let survive = usize::try_from(prng.below(ops.len() as u64 + 1)).unwrap_or(0);
        for op in ops.iter().take(survive) {
            self.durable.apply(op);
        }
    }
}
