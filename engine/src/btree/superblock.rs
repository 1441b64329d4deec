//! The double superblock of a B-tree file: which checkpoint is the tree.
//!
//! Page 0 of a tree file holds two superblock slots, one per 4 KiB sector. A checkpoint
//! writes the slot that does not hold the newest valid copy, then syncs; so a crash in the
//! middle of a superblock write always leaves the previous checkpoint readable.
//!
//! ```text
//! slot (SUPERBLOCK_BYTES = 4096, at offset 0 or 4096)
//! +-------+-----+--------+------------+------+----------------+---------------+
//! | magic | ver | crc32c | generation | lsn  | root           | freelist_head |
//! | u64   | u32 | u32    | u64        | u64  | u64 (0: empty) | u64 (0: none) |
//! +-------+-----+--------+------------+------+----------------+---------------+
//! 0       8     12       16           24     32               40             48
//! | page_count | entries | tree_id | zero...                                    |
//! | u64        | u64     | u64     |                                            |
//! 48           56        64        72                                      4096
//! ```
//! The crc32c covers bytes 16..4096.
#![deny(clippy::indexing_slicing)]

use super::page::{PageId, SECTOR_BYTES};

/// Bytes of one superblock slot.
pub const SUPERBLOCK_BYTES: usize = SECTOR_BYTES;
/// "KEELTREE" in ASCII, read as a big-endian u64 (stored little-endian like every field,
/// so the bytes on disk read "EERTLEEK").
pub const SUPERBLOCK_MAGIC: u64 = u64::from_be_bytes(*b"KEELTREE");
/// The superblock format version.
pub const SUPERBLOCK_VERSION: u32 = 1;
const FIELDS_BYTES: usize = 72;
const _: () = assert!(FIELDS_BYTES <= SUPERBLOCK_BYTES);

/// One checkpoint of a tree: everything needed to find it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Increases by one per checkpoint; the valid slot with the highest wins.
    pub generation: u64,
    /// Every WAL record of this tree with an LSN up to this one is in the checkpoint.
    pub lsn: u64,
    /// The root page, or `None` for an empty tree.
    pub root: Option<PageId>,
    /// The first freelist page, or `None` when nothing was free.
    pub freelist_head: Option<PageId>,
    /// Pages the file holds (allocated high-water mark) at the checkpoint.
    pub page_count: u64,
    /// Entries in the tree at the checkpoint.
    pub entries: u64,
    /// The tree's identity (its partition), checked on open.
    pub tree_id: u64,
}

impl Superblock {
    /// The slot (0 or 1) this superblock is written to.
    pub fn slot(&self) -> usize {
        (self.generation % 2) as usize
    }

    /// Encodes into a 4 KiB slot.
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), SUPERBLOCK_BYTES, "superblock buffer size");
        out.fill(0);
        let fields: [(usize, u64); 8] = [
            (16, self.generation),
            (24, self.lsn),
            (32, self.root.map_or(0, |p| p.0)),
            (40, self.freelist_head.map_or(0, |p| p.0)),
            (48, self.page_count),
            (56, self.entries),
            (64, self.tree_id),
            (0, SUPERBLOCK_MAGIC),
        ];
        for (at, v) in fields {
            if let Some(s) = out.get_mut(at..at + 8) {
                s.copy_from_slice(&v.to_le_bytes());
            }
        }
        if let Some(s) = out.get_mut(8..12) {
            s.copy_from_slice(&SUPERBLOCK_VERSION.to_le_bytes());
        }
        let crc = crc32c::crc32c(out.get(16..).unwrap_or_default());
        if let Some(s) = out.get_mut(12..16) {
            s.copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// Decodes a slot; `None` when it is not a valid superblock (torn, zero, foreign).
    pub fn decode(slot: &[u8]) -> Option<Superblock> {
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(slot.get(at..at + 8)?.try_into().ok()?))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(slot.get(at..at + 4)?.try_into().ok()?))
        };
        if slot.len() != SUPERBLOCK_BYTES
            || u64_at(0)? != SUPERBLOCK_MAGIC
            || u32_at(8)? != SUPERBLOCK_VERSION
            || u32_at(12)? != crc32c::crc32c(slot.get(16..)?)
        {
            return None;
        }
        let page = |v: u64| (v != 0).then_some(PageId(v));
        Some(Superblock {
            generation: u64_at(16)?,
            lsn: u64_at(24)?,
            root: page(u64_at(32)?),
            freelist_head: page(u64_at(40)?),
            page_count: u64_at(48)?,
            entries: u64_at(56)?,
            tree_id: u64_at(64)?,
        })
    }
}

/// What opening a tree file finds, decided from its two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperblockCase {
    /// A file with no superblock ever written: a new tree.
    Fresh,
    /// The newest valid slot.
    Use(Superblock),
    /// The file has content but neither slot is valid: the tree cannot be trusted.
    Corrupt,
}

/// Recovery decision table for the superblock pair. Each row is one case; exactly one
/// row matches (asserted), so no combination is left to chance.
pub fn decide(slot_a: &[u8], slot_b: &[u8], file_bytes: u64) -> SuperblockCase {
    let a = Superblock::decode(slot_a);
    let b = Superblock::decode(slot_b);
    let all_zero = slot_a.iter().chain(slot_b).all(|&x| x == 0);
    // A file created but never checkpointed (a crash during creation) is still fresh. A
    // valid slot is never ignored, not even beside a length of 0 (read as zeros by callers).
    let empty = file_bytes == 0 || (all_zero && file_bytes <= super::page::PAGE_BYTES as u64);
    let fresh = a.is_none() && b.is_none() && empty;
    let rows: [(&str, bool, SuperblockCase); 5] = [
        ("empty file", fresh, SuperblockCase::Fresh),
        (
            "only A valid",
            a.is_some() && b.is_none(),
            a.map_or(SuperblockCase::Corrupt, SuperblockCase::Use),
        ),
        (
            "only B valid",
            a.is_none() && b.is_some(),
            b.map_or(SuperblockCase::Corrupt, SuperblockCase::Use),
        ),
        (
            "both valid: newer generation wins",
            a.is_some() && b.is_some(),
            match (a, b) {
                (Some(a), Some(b)) if a.generation >= b.generation => SuperblockCase::Use(a),
                (_, Some(b)) => SuperblockCase::Use(b),
                _ => SuperblockCase::Corrupt,
            },
        ),
        (
            "neither valid in a written file",
            a.is_none() && b.is_none() && !fresh,
            SuperblockCase::Corrupt,
        ),
    ];
    let mut matched = rows.iter().filter(|(_, when, _)| *when);
    let first = matched.next();
    // "empty file" and a one-sided row cannot both hold: "empty file" needs no valid slot.
    assert!(
        matched.next().is_none(),
        "superblock decision table: two rows match"
    );
    match first {
        Some((_, _, case)) => *case,
        None => panic!("superblock decision table: no row matches"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(generation: u64) -> Superblock {
        Superblock {
            generation,
            lsn: 10 * generation,
            root: Some(PageId(3)),
            freelist_head: None,
            page_count: 9,
            entries: 100,
            tree_id: 1,
        }
    }

    fn slot(s: Option<Superblock>) -> Vec<u8> {
        let mut out = vec![0u8; SUPERBLOCK_BYTES];
        if let Some(s) = s {
            s.encode(&mut out);
        }
        out
    }

    #[test]
    fn round_trip() {
        let s = sb(4);
        assert_eq!(Superblock::decode(&slot(Some(s))), Some(s));
    }

    #[test]
    fn decision_table() {
        let z = slot(None);
        assert_eq!(decide(&z, &z, 0), SuperblockCase::Fresh);
        assert_eq!(
            decide(&slot(Some(sb(2))), &z, 16384),
            SuperblockCase::Use(sb(2))
        );
        assert_eq!(
            decide(&z, &slot(Some(sb(3))), 16384),
            SuperblockCase::Use(sb(3))
        );
        assert_eq!(
            decide(&slot(Some(sb(2))), &slot(Some(sb(3))), 16384),
            SuperblockCase::Use(sb(3))
        );
        let mut torn = slot(Some(sb(4)));
        torn[100] ^= 1;
        assert_eq!(
            decide(&torn, &slot(Some(sb(3))), 16384),
            SuperblockCase::Use(sb(3))
        );
        assert_eq!(decide(&torn, &z, 65536), SuperblockCase::Corrupt);
        assert_eq!(decide(&z, &z, 65536), SuperblockCase::Corrupt);
    }
}
