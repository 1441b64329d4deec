//! Majority arithmetic shared by the commit rule, leases and read-index.
//!
//! A group of `n` voters has a majority of `n / 2 + 1`. Given one value per voter (the
//! highest index it has stored, the newest send time it acknowledged), the value that a
//! majority has reached is the `(n / 2 + 1)`-th largest. Any two majorities of the same
//! configuration intersect, and so do majorities of two configurations that differ by
//! one voter (Raft dissertation §4.1); that intersection is what every rule relies on.

/// The number of voters that make a majority of `voters`.
#[must_use]
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The largest value that at least a majority of `values` has reached. `values` is
/// sorted in place. An empty slice has no majority and returns `None`.
pub fn majority_value(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(majority(values.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data-driven cases: (values, the value a majority reached).
    const CASES: &[(&[u64], Option<u64>)] = &[
        (&[], None),
        (&[5], Some(5)),
        (&[5, 1], Some(1)),
        (&[5, 3, 1], Some(3)),
        (&[1, 3, 5], Some(3)),
        (&[9, 9, 1, 1], Some(1)),
        (&[9, 9, 9, 1], Some(9)),
        (&[7, 0, 7, 0, 7], Some(7)),
        (&[7, 0, 7, 0, 0], Some(0)),
    ];

    #[test]
    fn majority_value_table() {
        for (values, want) in CASES {
            let mut v = values.to_vec();
            assert_eq!(majority_value(&mut v), *want, "values {values:?}");
        }
    }

    #[test]
    fn majorities_of_adjacent_sizes_intersect() {
        for n in 1..10usize {
            assert!(majority(n) * 2 > n);
            // One voter added: old majority + new majority > n + 1 members in all.
            assert!(majority(n) + majority(n + 1) > n + 1);
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The value a majority reached is reached by a majority, and nothing higher is.
        #[test]
        fn majority_value_is_the_highest_value_a_majority_reached(
            values in prop::collection::vec(0u64..20, 1..10)
        ) {
            let n = values.len();
            let v = majority_value(&mut values.clone()).unwrap();
            let at_least = |x: u64| values.iter().filter(|y| **y >= x).count();
            prop_assert!(at_least(v) >= majority(n));
            prop_assert!(at_least(v + 1) < majority(n));
        }
    }
}
