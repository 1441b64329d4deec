//! Storage-key ranges for ordered scans: a whole partition, a partition key, or a
//! partition key with a sort-key condition (as DynamoDB's Query has them).

use std::ops::Bound;

use keel_net::{
    encode_sort_key, encode_sort_key_prefix, partition_prefix, prefix_upper_bound, KeyValue,
    ModelError, SortCondition,
};

/// A range of storage keys; bounds are encoded storage keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Where the range starts.
    pub lower: Bound<Vec<u8>>,
    /// Where it ends.
    pub upper: Bound<Vec<u8>>,
}

fn upper_of_prefix(mut prefix: Vec<u8>) -> Bound<Vec<u8>> {
    if prefix_upper_bound(&mut prefix) {
        Bound::Excluded(prefix)
    } else {
        Bound::Unbounded
    }
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    /// The keys of one partition key whose sort key meets `condition`.
    pub fn query(partition: &KeyValue, condition: &SortCondition) -> Result<KeyRange, ModelError> {
        let mut prefix = Vec::new();
        partition_prefix(partition, &mut prefix);
        let with = |sk: &KeyValue| {
            let mut k = prefix.clone();
            encode_sort_key(sk, &mut k);
            k
        };
        let whole_lower = Bound::Included(prefix.clone());
        let whole_upper = upper_of_prefix(prefix.clone());
        Ok(match condition {
            SortCondition::Any => KeyRange {
                lower: whole_lower,
                upper: whole_upper,
            },
            SortCondition::Eq(v) => KeyRange {
                lower: Bound::Included(with(v)),
                upper: Bound::Included(with(v)),
            },
            SortCondition::Lt(v) => KeyRange {
                lower: whole_lower,
                upper: Bound::Excluded(with(v)),
            },
            SortCondition::Le(v) => KeyRange {
                lower: whole_lower,
                upper: Bound::Included(with(v)),
            },
            SortCondition::Gt(v) => KeyRange {
                lower: Bound::Excluded(with(v)),
                upper: whole_upper,
            },
            SortCondition::Ge(v) => KeyRange {
                lower: Bound::Included(with(v)),
                upper: whole_upper,
            },
            SortCondition::Between(a, b) => KeyRange {
                lower: Bound::Included(with(a)),
                upper: Bound::Included(with(b)),
            },
            SortCondition::BeginsWith(p) => {
                let mut k = prefix.clone();
                encode_sort_key_prefix(p, &mut k)?;
                KeyRange {
                    lower: Bound::Included(k.clone()),
                    upper: upper_of_prefix(k),
                }
            }
        })
    }

    /// The part of this range after `resume` (exclusive) in the scan's direction.
    pub fn resumed(&self, resume: &[u8], reverse: bool) -> KeyRange {
        let mut r = self.clone();
        if reverse {
            r.upper = Bound::Excluded(resume.to_vec());
        } else {
            r.lower = Bound::Excluded(resume.to_vec());
        }
        r
    }
}
