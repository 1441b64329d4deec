//! The hash-range partition map.

use crate::codec::{partition_hash_range, partition_index};

#[test]
fn hash_ranges_tile_the_hash_space_and_agree_with_partition_index() {
    for count in [1u32, 2, 3, 7, 8, 100, 1000] {
        let mut next = 0u64;
        for i in 0..count {
            let (lo, hi) = partition_hash_range(i, count);
            assert_eq!(lo, next, "count {count} partition {i}");
            assert!(lo <= hi);
            assert_eq!(partition_index(lo, count), i);
            assert_eq!(partition_index(hi, count), i);
            next = hi.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last range ends at u64::MAX");
    }
}
