//! keel's wire protocol: frames and the messages they carry. Pure code: no I/O.
//!
//! - [`message`] — [`Request`], [`Response`] and their parts.

pub mod message;

pub use message::*;

/// The partition of `count` (≥ 1) partitions that owns partition-key hash `hash`: the hash
/// space is cut into `count` contiguous ranges of (almost) equal width.
pub fn partition_index(hash: u64, count: u32) -> u32 {
    debug_assert!(count > 0);
    ((u128::from(hash) * u128::from(count)) >> 64) as u32
}

/// The lowest and highest hash (inclusive) of partition `index` of `count`.
pub fn partition_hash_range(index: u32, count: u32) -> (u64, u64) {
    let low = |i: u32| -> u128 {
        // The least h with h * count >> 64 >= i.
        (u128::from(i) << 64).div_ceil(u128::from(count))
    };
    let lo = low(index) as u64;
    let hi = if index + 1 >= count {
        u64::MAX
    } else {
        (low(index + 1) - 1) as u64
    };
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
