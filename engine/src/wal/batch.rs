//! Building one group-commit batch into a caller-owned, 4 KiB-aligned buffer (pure).
//!
//! A batch is what one DMA write carries: records packed at 8-byte alignment, then a
//! `BatchEnd` frame naming the batch's first and last LSN, then zeros up to a multiple of
//! `BLOCK_BYTES`. Records enter in LSN order (+1 each); the first sets `batch_lsn`. The
//! builder reserves room for the `BatchEnd` frame, so a record accepted by `fits` always
//! leaves a sealable batch. A batch never spans two segments.
#![deny(clippy::indexing_slicing)]

use super::record::{
    encode_batch_end, encode_record, record_bytes, Lsn, RecordMeta, BATCH_END_BYTES,
    RECORD_PAYLOAD_BYTES_MAX,
};
use super::segment::BLOCK_BYTES;

/// The smallest `batch_bytes_max`: one record of `RECORD_PAYLOAD_BYTES_MAX` must fit.
pub const BATCH_BYTES_MIN: usize =
    (record_bytes_const(RECORD_PAYLOAD_BYTES_MAX) + BATCH_END_BYTES).next_multiple_of(BLOCK_BYTES);

const fn record_bytes_const(payload_bytes: usize) -> usize {
    (super::record::RECORD_HEADER_BYTES + payload_bytes)
        .next_multiple_of(super::record::RECORD_ALIGN_BYTES)
}

/// The open batch: where the next record goes and which LSNs it holds.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    capacity_bytes: usize,
    used_bytes: usize,
    batch_lsn: Lsn,
    records: u32,
}

/// A sealed batch, ready to be written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SealedBatch {
    /// Bytes to write: a multiple of `BLOCK_BYTES`.
    pub bytes: usize,
    /// LSN of its first record.
    pub first_lsn: Lsn,
    /// LSN of its last record.
    pub last_lsn: Lsn,
    /// Number of records.
    pub records: u32,
    /// Bytes of frames before padding (records and `BatchEnd`).
    pub used_bytes: usize,
}

impl BatchBuilder {
    /// An empty batch over a buffer of `capacity_bytes` (a multiple of `BLOCK_BYTES`).
    #[must_use]
    pub fn new(capacity_bytes: usize) -> BatchBuilder {
        assert!(
            capacity_bytes % BLOCK_BYTES == 0,
            "capacity {capacity_bytes} unaligned"
        );
        assert!(
            capacity_bytes >= BATCH_BYTES_MIN,
            "capacity {capacity_bytes} too small"
        );
        BatchBuilder {
            capacity_bytes,
            used_bytes: 0,
            batch_lsn: Lsn(0),
            records: 0,
        }
    }

    /// True when no record was pushed since the last seal.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records pushed since the last seal.
    #[must_use]
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Whether a record with `payload_bytes` of payload fits in the rest of the batch.
    #[must_use]
    pub fn fits(&self, payload_bytes: usize) -> bool {
        payload_bytes <= RECORD_PAYLOAD_BYTES_MAX
            && self.used_bytes + record_bytes(payload_bytes) + BATCH_END_BYTES
                <= self.capacity_bytes
    }

    /// Appends the record `lsn`; the caller assigns LSNs +1 per record, across batches.
    pub fn push(&mut self, buffer: &mut [u8], lsn: Lsn, meta: &RecordMeta, payload: &[u8]) {
        assert!(
            self.fits(payload.len()),
            "push of {} bytes does not fit",
            payload.len()
        );
        assert!(
            buffer.len() >= self.capacity_bytes,
            "buffer {} short",
            buffer.len()
        );
        if self.records == 0 {
            self.batch_lsn = lsn;
        }
        let expected = Lsn(self.batch_lsn.0 + u64::from(self.records));
        assert!(lsn == expected, "lsn {lsn} pushed, expected {expected}");
        let Some(out) = buffer.get_mut(self.used_bytes..) else {
            unreachable!("used_bytes within capacity");
        };
        self.used_bytes += encode_record(out, lsn, self.batch_lsn, meta, payload);
        self.records += 1;
    }

    /// The bytes [`BatchBuilder::seal`] would produce now (records, batch end, padding).
    #[must_use]
    pub fn sealed_bytes(&self) -> usize {
        (self.used_bytes + BATCH_END_BYTES).next_multiple_of(BLOCK_BYTES)
    }

    /// Closes the batch: writes the `BatchEnd` frame and the zero padding, and returns what
    /// to write. The builder is then empty, ready for the next batch.
    pub fn seal(&mut self, buffer: &mut [u8]) -> SealedBatch {
        assert!(self.records > 0, "sealing an empty batch");
        let last_lsn = Lsn(self.batch_lsn.0 + u64::from(self.records) - 1);
        let Some(out) = buffer.get_mut(self.used_bytes..) else {
            unreachable!("used_bytes within capacity");
        };
        let used_bytes = self.used_bytes + encode_batch_end(out, last_lsn, self.batch_lsn);
        let bytes = used_bytes.next_multiple_of(BLOCK_BYTES);
        debug_assert_eq!(bytes, self.sealed_bytes(), "sealed_bytes foretells seal");
        assert!(bytes <= self.capacity_bytes, "sealed {bytes} > capacity");
        if let Some(pad) = buffer.get_mut(used_bytes..bytes) {
            pad.fill(0);
        }
        let sealed = SealedBatch {
            bytes,
            first_lsn: self.batch_lsn,
            last_lsn,
            records: self.records,
            used_bytes,
        };
        self.used_bytes = 0;
        self.records = 0;
        sealed
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{decode_frame, Frame, GroupId, LogIndex, RecordKind, Term};
    use super::*;

    fn meta(i: u64) -> RecordMeta {
        RecordMeta {
            group: GroupId(i % 3),
            term: Term(1),
            index: LogIndex(i),
            kind: RecordKind::Data,
        }
    }

    #[test]
    fn batch_is_aligned_and_ends_with_batch_end() {
        let mut buf = vec![0xEEu8; BATCH_BYTES_MIN];
        let mut b = BatchBuilder::new(BATCH_BYTES_MIN);
        for i in 0..10u64 {
            b.push(&mut buf, Lsn(5 + i), &meta(i), &[i as u8; 100]);
        }
        let sealed = b.seal(&mut buf);
        assert_eq!(sealed.bytes % BLOCK_BYTES, 0);
        assert_eq!(
            (sealed.first_lsn, sealed.last_lsn, sealed.records),
            (Lsn(5), Lsn(14), 10)
        );
        let mut at = 0;
        for i in 0..10u64 {
            let f = decode_frame(&buf[at..]).unwrap();
            assert!(matches!(f, Frame::Record { lsn, batch_lsn: Lsn(5), .. } if lsn == Lsn(5 + i)));
            at += f.bytes();
        }
        let end = decode_frame(&buf[at..]).unwrap();
        assert_eq!(
            end,
            Frame::BatchEnd {
                lsn: Lsn(14),
                batch_lsn: Lsn(5)
            }
        );
        assert!(buf[at + end.bytes()..sealed.bytes].iter().all(|b| *b == 0));
        assert!(b.is_empty());
    }

    #[test]
    fn largest_record_fits_an_empty_minimal_batch() {
        let b = BatchBuilder::new(BATCH_BYTES_MIN);
        assert!(b.fits(RECORD_PAYLOAD_BYTES_MAX));
        assert!(!b.fits(RECORD_PAYLOAD_BYTES_MAX + 1));
    }

    #[test]
    fn full_batch_refuses() {
        let mut buf = vec![0u8; BATCH_BYTES_MIN];
        let mut b = BatchBuilder::new(BATCH_BYTES_MIN);
        b.push(
            &mut buf,
            Lsn(1),
            &meta(0),
            &vec![0u8; RECORD_PAYLOAD_BYTES_MAX],
        );
        assert!(!b.fits(BLOCK_BYTES * 2));
    }
}
