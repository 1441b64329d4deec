//! Segment files: the header block and file naming (pure).
//!
//! A segment is a fixed-size file of `segment_bytes` (a multiple of 4 KiB), pre-written with
//! zeros once or recycled from a released segment, so that appends never allocate blocks.
//! Block 0 holds the header; batches follow from offset `SEGMENT_HEADER_BYTES`.
//!
//! ```text
//!  offset  size  field
//!  ┌──────┬─────┬───────────────────────────────────────────────────────────────┐
//!  │    0 │   4 │ crc32c          over bytes [4, 64)                            │
//!  │    4 │   4 │ version         1                                             │
//!  │    8 │   8 │ magic           "KEELWAL\0"                                   │
//!  │   16 │   8 │ sequence        +1 per segment started, from 1                │
//!  │   24 │   8 │ first_lsn       LSN of the segment's first record             │
//!  │   32 │   8 │ retain_lsn      oldest LSN still needed when it was started   │
//!  │   40 │   8 │ segment_bytes   file size                                     │
//!  │   48 │   8 │ batch_bytes_max of the writer that started it                 │
//!  │   56 │   8 │ reserved        zero                                          │
//!  │   64 │4032 │ zero                                                          │
//!  └──────┴─────┴───────────────────────────────────────────────────────────────┘
//! ```
//! The header is written alone and fdatasynced when a segment is started (at rotation),
//! before any batch goes into it: a segment with a valid header is part of the log.
//! Files are named by a slot number that never changes (`segment-000003.wal`); the order of
//! the log comes from `sequence` in the headers, so a rotation renames nothing.
#![deny(clippy::indexing_slicing)]

use super::record::Lsn;

/// Bytes of the header block; also the alignment of every write (direct I/O).
pub const BLOCK_BYTES: usize = 4096;
/// Bytes of the segment header block; batches start at this offset.
pub const SEGMENT_HEADER_BYTES: usize = BLOCK_BYTES;
/// The magic at offset 8.
pub const SEGMENT_MAGIC: [u8; 8] = *b"KEELWAL\0";
/// The format version.
pub const SEGMENT_VERSION: u32 = 1;
const HEADER_COVERED_BYTES: usize = 64;

/// The header of a segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentHeader {
    /// +1 per segment started; orders the segments of the log.
    pub sequence: u64,
    /// The LSN of the first record in the segment.
    pub first_lsn: Lsn,
    /// The oldest LSN still needed when the segment was started (older ones were released).
    pub retain_lsn: Lsn,
    /// The file size.
    pub segment_bytes: u64,
    /// The batch limit of the writer that started the segment.
    pub batch_bytes_max: u64,
}

/// Why a header block does not parse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HeaderError {
    /// Too few bytes.
    Truncated,
    /// All zero: a pre-written segment never started.
    Zeroed,
    /// The crc32c does not match.
    Checksum {
        /// Stored.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// Checksum fine but magic or version unknown.
    Format,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

impl SegmentHeader {
    /// Writes the header block into `out` (at least `SEGMENT_HEADER_BYTES`, zero-filled past 64).
    pub fn encode(&self, out: &mut [u8]) {
        assert!(
            out.len() >= SEGMENT_HEADER_BYTES,
            "header block of {} bytes",
            out.len()
        );
        assert!(self.first_lsn >= Lsn::FIRST, "first_lsn {}", self.first_lsn);
        assert!(
            self.retain_lsn <= self.first_lsn,
            "retain {} > first",
            self.retain_lsn
        );
        let Some(block) = out.get_mut(..SEGMENT_HEADER_BYTES) else {
            unreachable!("asserted above");
        };
        block.fill(0);
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(d) = block.get_mut(at..at + bytes.len()) {
                d.copy_from_slice(bytes);
            }
        };
        put(4, &SEGMENT_VERSION.to_le_bytes());
        put(8, &SEGMENT_MAGIC);
        put(16, &self.sequence.to_le_bytes());
        put(24, &self.first_lsn.0.to_le_bytes());
        put(32, &self.retain_lsn.0.to_le_bytes());
        put(40, &self.segment_bytes.to_le_bytes());
        put(48, &self.batch_bytes_max.to_le_bytes());
        let crc = crc32c::crc32c(block.get(4..HEADER_COVERED_BYTES).unwrap_or(&[]));
        if let Some(d) = block.get_mut(0..4) {
            d.copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// Parses a header block.
    pub fn decode(block: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let covered = block
            .get(..HEADER_COVERED_BYTES)
            .ok_or(HeaderError::Truncated)?;
        if covered.iter().all(|b| *b == 0) {
            return Err(HeaderError::Zeroed);
        }
        let expected = u32_at(covered, 0);
        let actual = crc32c::crc32c(covered.get(4..).unwrap_or(&[]));
        if expected != actual {
            return Err(HeaderError::Checksum { expected, actual });
        }
        if u32_at(covered, 4) != SEGMENT_VERSION
            || covered.get(8..16) != Some(&SEGMENT_MAGIC[..])
            || u64_at(covered, 56) != 0
        {
            return Err(HeaderError::Format);
        }
        let header = SegmentHeader {
            sequence: u64_at(covered, 16),
            first_lsn: Lsn(u64_at(covered, 24)),
            retain_lsn: Lsn(u64_at(covered, 32)),
            segment_bytes: u64_at(covered, 40),
            batch_bytes_max: u64_at(covered, 48),
        };
        if header.first_lsn < Lsn::FIRST || header.retain_lsn > header.first_lsn {
            return Err(HeaderError::Format);
        }
        Ok(header)
    }
}

/// The file name of the segment in `slot`.
#[must_use]
pub fn segment_file_name(slot: u32) -> String {
    format!("segment-{slot:06}.wal")
}

/// The slot of a segment file name; `None` for other files.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".wal")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            sequence: 3,
            first_lsn: Lsn(100),
            retain_lsn: Lsn(40),
            segment_bytes: 1 << 20,
            batch_bytes_max: 1 << 19,
        }
    }

    #[test]
    fn header_round_trips() {
        let mut block = vec![0xFFu8; SEGMENT_HEADER_BYTES];
        header().encode(&mut block);
        assert_eq!(SegmentHeader::decode(&block), Ok(header()));
    }

    /// The golden vector pins the header format (testdata/segment_header_v1.hex, 64 bytes;
    /// the rest of the block is zero).
    #[test]
    fn golden_vector() {
        let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
        header().encode(&mut block);
        assert!(block[64..].iter().all(|b| *b == 0));
        let hex: String = block[..64].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, include_str!("testdata/segment_header_v1.hex").trim());
    }

    #[test]
    fn damaged_or_zero_header_is_rejected() {
        let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
        assert_eq!(SegmentHeader::decode(&block), Err(HeaderError::Zeroed));
        header().encode(&mut block);
        for bit in 0..HEADER_COVERED_BYTES * 8 {
            let mut bad = block.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(3), "segment-000003.wal");
        assert_eq!(parse_segment_file_name("segment-000003.wal"), Some(3));
        assert_eq!(parse_segment_file_name("segment-3.wal"), None);
        assert_eq!(parse_segment_file_name("other"), None);
    }
}
