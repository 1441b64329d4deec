//! A linearizability checker for a map of registers (one register per key).
//!
//! Each key is checked on its own (linearizability is compositional, Herlihy & Wing
//! 1990). For one key the checker searches for an order of the operations that respects
//! real time (an operation that completed before another was invoked comes first) and the
//! register's semantics (a read returns the last value written), in the manner of Wing &
//! Gong with Lowe's memoisation of (set of linearized operations, register value).
//! A write that never completed (its client gave up) may take effect at any point after
//! its invocation, or never.
//!
//! Times are event sequence numbers of the simulator, so "before" is exact.

use std::collections::{BTreeMap, HashSet};

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Wrote a value (values are unique across a history).
    Write(u64),
    /// Read the value, or nothing.
    Read(Option<u64>),
}

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    /// The register.
    pub key: u64,
    /// What it did.
    pub kind: OpKind,
    /// When the client invoked it.
    pub invoke: u64,
    /// When the client saw it complete; `None` for a write whose outcome is unknown.
    pub complete: Option<u64>,
}

/// A history that is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("history of key {key} is not linearizable ({ops} operations)")]
pub struct Violation {
    /// The key whose history fails.
    pub key: u64,
    /// Its number of operations.
    pub ops: usize,
}

/// What a check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Keys checked.
    pub keys: usize,
    /// Operations checked.
    pub ops: usize,
    /// Keys whose search ran out of budget (neither proven nor refuted).
    pub keys_unknown: usize,
}

/// Most search states explored per key before giving up on it.
pub const SEARCH_STATES_MAX: usize = 2_000_000;

/// Checks a whole history.
///
/// # Errors
/// The first key whose history has no linearization.
pub fn check(history: &[Op]) -> Result<CheckReport, Violation> {
    let mut by_key: BTreeMap<u64, Vec<Op>> = BTreeMap::new();
    for op in history {
        if let OpKind::Read(_) = op.kind {
            assert!(
                op.complete.is_some(),
                "a read without a result is not history"
            );
        }
        by_key.entry(op.key).or_default().push(*op);
    }
    let mut report = CheckReport::default();
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoke);
        report.keys += 1;
        report.ops += ops.len();
        match check_key(&ops) {
            Some(true) => {}
            Some(false) => {
                return Err(Violation {
                    key,
                    ops: ops.len(),
                })
            }
            None => report.keys_unknown += 1,
        }
    }
    Ok(report)
}

struct Search<'a> {
    ops: &'a [Op],
    seen: HashSet<(Vec<u64>, Option<u64>)>,
}

/// `Some(true)`: linearizable; `Some(false)`: not; `None`: budget exhausted.
fn check_key(ops: &[Op]) -> Option<bool> {
    let mut search = Search {
        ops,
        seen: HashSet::new(),
    };
    let done = vec![0u64; ops.len().div_ceil(64)];
    search.dfs(done, None)
}

impl Search<'_> {
    fn dfs(&mut self, done: Vec<u64>, value: Option<u64>) -> Option<bool> {
        let is_done = |d: &[u64], i: usize| d.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
        // The earliest completion among operations not yet linearized: any operation
        // linearized next must have been invoked before it.
        let mut horizon = u64::MAX;
        let mut remaining = false;
        for (i, op) in self.ops.iter().enumerate() {
            if !is_done(&done, i) {
                if let Some(c) = op.complete {
                    horizon = horizon.min(c);
                    remaining = true;
                }
            }
        }
        if !remaining {
            return Some(true);
        }
        if !self.seen.insert((done.clone(), value)) {
            return Some(false);
        }
        if self.seen.len() > SEARCH_STATES_MAX {
            return None;
        }
        let mut unknown = false;
        for (i, op) in self.ops.iter().enumerate() {
            if op.invoke > horizon {
                break;
            }
            if is_done(&done, i) {
                continue;
            }
            let next_value = match op.kind {
                OpKind::Write(v) => Some(v),
                OpKind::Read(r) => {
                    if r != value {
                        continue;
                    }
                    value
                }
            };
            let mut next = done.clone();
            if let Some(w) = next.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
            match self.dfs(next, next_value) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => unknown = true,
            }
        }
        if unknown {
            None
        } else {
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: u64, v: u64, invoke: u64, complete: Option<u64>) -> Op {
        Op {
            key,
            kind: OpKind::Write(v),
            invoke,
            complete,
        }
    }
    fn r(key: u64, v: Option<u64>, invoke: u64, complete: u64) -> Op {
        Op {
            key,
            kind: OpKind::Read(v),
            invoke,
            complete: Some(complete),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            w(1, 10, 0, Some(1)),
            r(1, Some(10), 2, 3),
            w(1, 11, 4, Some(5)),
            r(1, Some(11), 6, 7),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn stale_read_after_completed_write_is_caught() {
        let h = [
            w(1, 10, 0, Some(1)),
            w(1, 11, 2, Some(3)),
            r(1, Some(10), 4, 5),
        ];
        assert_eq!(check(&h), Err(Violation { key: 1, ops: 3 }));
    }

    #[test]
    fn concurrent_write_may_be_seen_either_way() {
        let h = [
            w(1, 10, 0, Some(1)),
            w(1, 11, 2, Some(6)),
            r(1, Some(11), 3, 4),
            r(1, Some(10), 5, 6),
        ];
        // 11 was read (so it took effect before 4), then 10 read after 5: not linearizable.
        assert!(check(&h).is_err());
        let h = [
            w(1, 10, 0, Some(1)),
            w(1, 11, 2, Some(6)),
            r(1, Some(10), 3, 4),
            r(1, Some(11), 3, 5),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn unfinished_write_may_or_may_not_take_effect() {
        let h = [w(1, 10, 0, None), r(1, None, 1, 2), r(1, Some(10), 3, 4)];
        assert!(check(&h).is_ok());
        let h = [w(1, 10, 0, None), r(1, Some(10), 1, 2), r(1, None, 3, 4)];
        assert!(check(&h).is_err(), "once seen, a write cannot vanish");
    }

    #[test]
    fn read_of_never_written_value_is_caught() {
        let h = [r(2, Some(99), 0, 1)];
        assert!(check(&h).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The slow oracle: try every order of every subset of unfinished writes plus all
    /// finished operations.
    fn brute_force(ops: &[Op]) -> bool {
        fn search(ops: &[Op], used: &mut Vec<bool>, order: &mut Vec<usize>) -> bool {
            // Complete if every finished op is placed; check the order.
            let done = ops
                .iter()
                .enumerate()
                .all(|(i, o)| o.complete.is_none() || used[i]);
            if done && valid(ops, order) {
                return true;
            }
            for i in 0..ops.len() {
                if !used[i] {
                    used[i] = true;
                    order.push(i);
                    if search(ops, used, order) {
                        return true;
                    }
                    order.pop();
                    used[i] = false;
                }
            }
            false
        }
        fn valid(ops: &[Op], order: &[usize]) -> bool {
            // Real time: if a completed before b was invoked, a comes first.
            for (x, &a) in order.iter().enumerate() {
                for &b in order.iter().skip(x + 1) {
                    if ops[b].complete.is_some_and(|cb| cb < ops[a].invoke) {
                        return false;
                    }
                }
            }
            // Unplaced ops that completed must not be needed (all completed are placed).
            let mut value = None;
            for &i in order {
                match ops[i].kind {
                    OpKind::Write(v) => value = Some(v),
                    OpKind::Read(r) => {
                        if r != value {
                            return false;
                        }
                    }
                }
            }
            true
        }
        let mut used = vec![false; ops.len()];
        search(ops, &mut used, &mut Vec::new())
    }

    fn history() -> impl Strategy<Value = Vec<Op>> {
        // Up to 6 operations on one key; times from a small range so that they overlap.
        prop::collection::vec((0u8..3, 0u64..12, 1u64..6, 0u8..4, any::<bool>()), 1..6).prop_map(
            |raw| {
                let mut ops = Vec::new();
                for (i, (kind, invoke, len, value, finished)) in raw.into_iter().enumerate() {
                    let complete = invoke + len;
                    let op = if kind == 0 {
                        Op {
                            key: 0,
                            kind: OpKind::Write(100 + i as u64),
                            invoke,
                            complete: finished.then_some(complete),
                        }
                    } else {
                        let v = (value > 0).then_some(100 + u64::from(value) - 1);
                        Op {
                            key: 0,
                            kind: OpKind::Read(v),
                            invoke,
                            complete: Some(complete),
                        }
                    };
                    ops.push(op);
                }
                ops
            },
        )
    }

    proptest! {
        #[test]
        fn checker_agrees_with_brute_force(ops in history()) {
            let fast = check(&ops).is_ok();
            prop_assert_eq!(fast, brute_force(&ops), "history {:?}", ops);
        }
    }
}
