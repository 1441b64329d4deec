//! WAL record: identifiers, the on-disk frame, encode and decode (pure).
//!
//! A batch (see `batch.rs`) is a run of *frames* packed at 8-byte alignment: one frame per
//! record, then one `BatchEnd` frame, then zero padding to the next 4 KiB boundary. Every
//! frame has the same 56-byte header:
//!
//! ```text
//!  offset  size  field
//!  ┌──────┬─────┬──────────────────────────────────────────────────────────────┐
//!  │    0 │   4 │ crc32c        over bytes [4, 56 + payload_bytes)              │
//!  │    4 │   4 │ payload_bytes u32, <= RECORD_PAYLOAD_BYTES_MAX; 0 for BatchEnd │
//!  │    8 │   8 │ lsn           record: its LSN; BatchEnd: the batch's last LSN  │
//!  │   16 │   8 │ batch_lsn     LSN of the first record of the same batch        │
//!  │   24 │   8 │ group         GroupId (0 for BatchEnd)                         │
//!  │   32 │   8 │ term          Term (0 for BatchEnd)                            │
//!  │   40 │   8 │ index         LogIndex (0 for BatchEnd)                        │
//!  │   48 │   1 │ frame         1 = Record, 2 = BatchEnd; other = error          │
//!  │   49 │   1 │ kind          RecordKind tag; 0 for BatchEnd                    │
//!  │   50 │   6 │ reserved      zero                                             │
//!  │   56 │   n │ payload       payload_bytes bytes                              │
//!  │ 56+n │ pad │ zero up to the next multiple of 8                              │
//!  └──────┴─────┴──────────────────────────────────────────────────────────────┘
//! ```
//! All integers are little-endian. `batch_lsn` is known when a record enters its batch, so
//! every record is encoded (crc included) by its appender; the flusher adds only the
//! `BatchEnd` frame. `batch_lsn == lsn` marks the first record of a batch: recovery uses it to
//! recognise the start of a later batch when it looks past a bad record (`recovery.rs`).
//!
//! LSNs count records: +1 per record, starting at 1, never reused for a durable record.
#![deny(clippy::indexing_slicing)]

use std::fmt;

/// A log sequence number: the position of a record in the WAL, +1 per record, from 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Lsn(pub u64);

/// The id of a consensus group (a partition replica) whose log this record belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct GroupId(pub u64);

/// A consensus term (Raft §5.1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Term(pub u64);

/// The index of an entry in a consensus group's log (Raft §5.3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LogIndex(pub u64);

macro_rules! display_newtype {
    ($($t:ident),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_newtype!(Lsn, GroupId, Term, LogIndex);

impl Lsn {
    /// The LSN of the first record ever written to a WAL.
    pub const FIRST: Lsn = Lsn(1);

    /// The next LSN.
    #[must_use]
    pub fn next(self) -> Lsn {
        Lsn(self
            .0
            .checked_add(1)
            .unwrap_or_else(|| panic!("lsn overflow at {}", self.0)))
    }

    /// The previous LSN (saturating at 0, which names "no record").
    #[must_use]
    pub fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

/// What a record holds; a `u8` tag on disk. An unknown tag is an error, never skipped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum RecordKind {
    /// An engine mutation (put, delete, ...) to apply to a partition's B-tree.
    Data = 1,
    /// A consensus log entry (reserved for keel-consensus).
    Entry = 2,
    /// A consensus hard state: term, vote, commit (reserved for keel-consensus).
    HardState = 3,
    /// A consensus snapshot marker or metadata (reserved for keel-consensus).
    Snapshot = 4,
    /// A checkpoint marker: the B-tree of a group is durable up to this record.
    Checkpoint = 5,
}

impl RecordKind {
    /// The on-disk tag.
    #[must_use]
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk tag; `None` for an unknown tag.
    #[must_use]
    pub fn from_tag(tag: u8) -> Option<RecordKind> {
        match tag {
            1 => Some(RecordKind::Data),
            2 => Some(RecordKind::Entry),
            3 => Some(RecordKind::HardState),
            4 => Some(RecordKind::Snapshot),
            5 => Some(RecordKind::Checkpoint),
            _ => None,
        }
    }
}

/// The fields of a record besides its LSN and payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordMeta {
    /// The consensus group the record belongs to.
    pub group: GroupId,
    /// The consensus term of the entry.
    pub term: Term,
    /// The consensus log index of the entry.
    pub index: LogIndex,
    /// What the payload holds.
    pub kind: RecordKind,
}

/// A record read back from the WAL.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its group, term, index and kind.
    pub meta: RecordMeta,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Bytes of a frame header.
pub const RECORD_HEADER_BYTES: usize = 56;
/// Frames start at multiples of this within a batch.
pub const RECORD_ALIGN_BYTES: usize = 8;
/// The largest payload of one record.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 512 * 1024;
/// Bytes of the `BatchEnd` frame that closes every batch.
pub const BATCH_END_BYTES: usize = RECORD_HEADER_BYTES;

const OFFSET_CRC: usize = 0;
const OFFSET_PAYLOAD_BYTES: usize = 4;
const OFFSET_LSN: usize = 8;
const OFFSET_BATCH_LSN: usize = 16;
const OFFSET_GROUP: usize = 24;
const OFFSET_TERM: usize = 32;
const OFFSET_INDEX: usize = 40;
const OFFSET_FRAME: usize = 48;
const OFFSET_KIND: usize = 49;
const OFFSET_RESERVED: usize = 50;
const _: () = assert!(OFFSET_RESERVED + 6 == RECORD_HEADER_BYTES);
const _: () = assert!(RECORD_HEADER_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX <= u32::MAX as usize);

const FRAME_RECORD: u8 = 1;
const FRAME_BATCH_END: u8 = 2;

/// Bytes a record with `payload_bytes` of payload takes in a batch (header, payload, padding).
#[must_use]
pub fn record_bytes(payload_bytes: usize) -> usize {
    (RECORD_HEADER_BYTES + payload_bytes).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// A decoded frame, borrowing its payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Frame<'a> {
    /// A record.
    Record {
        /// Its LSN.
        lsn: Lsn,
        /// The LSN of the first record of its batch.
        batch_lsn: Lsn,
        /// Its meta fields.
        meta: RecordMeta,
        /// Its payload.
        payload: &'a [u8],
    },
    /// The frame closing a batch.
    BatchEnd {
        /// The LSN of the batch's last record.
        lsn: Lsn,
        /// The LSN of the batch's first record.
        batch_lsn: Lsn,
    },
}

impl Frame<'_> {
    /// Bytes this frame takes in its batch, padding included.
    #[must_use]
    pub fn bytes(&self) -> usize {
        match self {
            Frame::Record { payload, .. } => record_bytes(payload.len()),
            Frame::BatchEnd { .. } => BATCH_END_BYTES,
        }
    }
}

/// Why bytes do not decode as a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// Fewer bytes than the header, or than the header's payload length, are available.
    Truncated,
    /// The payload length exceeds `RECORD_PAYLOAD_BYTES_MAX`.
    PayloadTooLong {
        /// The length read.
        payload_bytes: u32,
    },
    /// The crc32c does not match.
    Checksum {
        /// The crc32c stored in the frame.
        expected: u32,
        /// The crc32c computed over the frame's bytes.
        actual: u32,
    },
    /// The checksum matches but a field is invalid (unknown frame or kind tag, nonzero
    /// reserved bytes, a BatchEnd with a payload): a format this version does not know.
    Format(&'static str),
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        word.copy_from_slice(src);
    }
    u64::from_le_bytes(word)
}

fn write_u32(out: &mut [u8], at: usize, value: u32) {
    if let Some(dst) = out.get_mut(at..at + 4) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

fn write_u64(out: &mut [u8], at: usize, value: u64) {
    if let Some(dst) = out.get_mut(at..at + 8) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

fn encode_frame(
    out: &mut [u8],
    lsn: Lsn,
    batch_lsn: Lsn,
    fields: (GroupId, Term, LogIndex),
    frame: u8,
    kind: u8,
    payload: &[u8],
) -> usize {
    let bytes = record_bytes(payload.len());
    assert!(
        payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
        "payload {} too long",
        payload.len()
    );
    assert!(
        out.len() >= bytes,
        "frame of {bytes} bytes into {} bytes",
        out.len()
    );
    assert!(batch_lsn <= lsn, "batch_lsn {batch_lsn} > lsn {lsn}");
    let Some(frame_out) = out.get_mut(..bytes) else {
        unreachable!("asserted above");
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "payload length asserted above"
    )]
    write_u32(frame_out, OFFSET_PAYLOAD_BYTES, payload.len() as u32);
    write_u64(frame_out, OFFSET_LSN, lsn.0);
    write_u64(frame_out, OFFSET_BATCH_LSN, batch_lsn.0);
    write_u64(frame_out, OFFSET_GROUP, fields.0 .0);
    write_u64(frame_out, OFFSET_TERM, fields.1 .0);
    write_u64(frame_out, OFFSET_INDEX, fields.2 .0);
    if let Some(tags) = frame_out.get_mut(OFFSET_FRAME..RECORD_HEADER_BYTES) {
        tags.fill(0);
        if let [f, k, ..] = tags {
            *f = frame;
            *k = kind;
        }
    }
    let end = RECORD_HEADER_BYTES + payload.len();
    if let Some(dst) = frame_out.get_mut(RECORD_HEADER_BYTES..end) {
        dst.copy_from_slice(payload);
    }
    if let Some(pad) = frame_out.get_mut(end..) {
        pad.fill(0);
    }
    let crc = crc32c::crc32c(frame_out.get(OFFSET_PAYLOAD_BYTES..end).unwrap_or(&[]));
    write_u32(frame_out, OFFSET_CRC, crc);
    bytes
}

/// Encodes a record at the start of `out`; returns the bytes written (`record_bytes`).
///
/// Panics if `out` is too short or the payload too long (callers check `fits` first).
pub fn encode_record(
    out: &mut [u8],
    lsn: Lsn,
    batch_lsn: Lsn,
    meta: &RecordMeta,
    payload: &[u8],
) -> usize {
    let fields = (meta.group, meta.term, meta.index);
    encode_frame(
        out,
        lsn,
        batch_lsn,
        fields,
        FRAME_RECORD,
        meta.kind.tag(),
        payload,
    )
}

/// Encodes the frame closing a batch whose records are `batch_lsn..=last_lsn`.
pub fn encode_batch_end(out: &mut [u8], last_lsn: Lsn, batch_lsn: Lsn) -> usize {
    let fields = (GroupId(0), Term(0), LogIndex(0));
    encode_frame(out, last_lsn, batch_lsn, fields, FRAME_BATCH_END, 0, &[])
}

/// The stored and computed crc32c of the frame header at the start of `bytes`, for error
/// reports when a frame does not decode (the payload is included when its length is sane).
#[must_use]
pub fn frame_crcs(bytes: &[u8]) -> (u32, u32) {
    let expected = read_u32(bytes, OFFSET_CRC);
    let payload_bytes = read_u32(bytes, OFFSET_PAYLOAD_BYTES) as usize;
    let end = if payload_bytes <= RECORD_PAYLOAD_BYTES_MAX {
        (RECORD_HEADER_BYTES + payload_bytes).min(bytes.len())
    } else {
        RECORD_HEADER_BYTES.min(bytes.len())
    };
    let actual = crc32c::crc32c(bytes.get(OFFSET_PAYLOAD_BYTES..end).unwrap_or(&[]));
    (expected, actual)
}

/// Decodes the frame at the start of `bytes` (which may extend past it).
pub fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let header = bytes
        .get(..RECORD_HEADER_BYTES)
        .ok_or(DecodeError::Truncated)?;
    let payload_bytes = read_u32(header, OFFSET_PAYLOAD_BYTES);
    if payload_bytes as usize > RECORD_PAYLOAD_BYTES_MAX {
        return Err(DecodeError::PayloadTooLong { payload_bytes });
    }
    let end = RECORD_HEADER_BYTES + payload_bytes as usize;
    let covered = bytes
        .get(OFFSET_PAYLOAD_BYTES..end)
        .ok_or(DecodeError::Truncated)?;
    let expected = read_u32(header, OFFSET_CRC);
    let actual = crc32c::crc32c(covered);
    if expected != actual {
        return Err(DecodeError::Checksum { expected, actual });
    }
    let payload = bytes
        .get(RECORD_HEADER_BYTES..end)
        .ok_or(DecodeError::Truncated)?;
    let lsn = Lsn(read_u64(header, OFFSET_LSN));
    let batch_lsn = Lsn(read_u64(header, OFFSET_BATCH_LSN));
    if header
        .get(OFFSET_RESERVED..)
        .is_some_and(|r| r.iter().any(|b| *b != 0))
    {
        return Err(DecodeError::Format("reserved header bytes are not zero"));
    }
    if batch_lsn > lsn || lsn == Lsn(0) {
        return Err(DecodeError::Format("batch_lsn above lsn, or lsn 0"));
    }
    let frame = header.get(OFFSET_FRAME).copied().unwrap_or(0);
    let kind = header.get(OFFSET_KIND).copied().unwrap_or(0);
    match frame {
        FRAME_RECORD => {
            let kind = RecordKind::from_tag(kind).ok_or(DecodeError::Format("unknown kind"))?;
            let meta = RecordMeta {
                group: GroupId(read_u64(header, OFFSET_GROUP)),
                term: Term(read_u64(header, OFFSET_TERM)),
                index: LogIndex(read_u64(header, OFFSET_INDEX)),
                kind,
            };
            Ok(Frame::Record {
                lsn,
                batch_lsn,
                meta,
                payload,
            })
        }
        FRAME_BATCH_END => {
            let zero_fields = read_u64(header, OFFSET_GROUP) == 0
                && read_u64(header, OFFSET_TERM) == 0
                && read_u64(header, OFFSET_INDEX) == 0;
            if kind != 0 || payload_bytes != 0 || !zero_fields {
                return Err(DecodeError::Format("batch end with fields set"));
            }
            Ok(Frame::BatchEnd { lsn, batch_lsn })
        }
        _ => Err(DecodeError::Format("unknown frame tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            group: GroupId(7),
            term: Term(3),
            index: LogIndex(42),
            kind: RecordKind::Entry,
        }
    }

    #[test]
    fn record_round_trips() {
        for len in [0usize, 1, 7, 8, 100, 4096, RECORD_PAYLOAD_BYTES_MAX] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut buf = vec![0xAAu8; record_bytes(len) + 16];
            let n = encode_record(&mut buf, Lsn(9), Lsn(5), &meta(), &payload);
            assert_eq!(n, record_bytes(len));
            assert_eq!(n % RECORD_ALIGN_BYTES, 0);
            let frame = decode_frame(&buf).unwrap();
            assert_eq!(
                frame,
                Frame::Record {
                    lsn: Lsn(9),
                    batch_lsn: Lsn(5),
                    meta: meta(),
                    payload: &payload
                }
            );
            assert_eq!(frame.bytes(), n);
        }
    }

    #[test]
    fn batch_end_round_trips() {
        let mut buf = [0u8; BATCH_END_BYTES];
        assert_eq!(encode_batch_end(&mut buf, Lsn(10), Lsn(4)), BATCH_END_BYTES);
        assert_eq!(
            decode_frame(&buf).unwrap(),
            Frame::BatchEnd {
                lsn: Lsn(10),
                batch_lsn: Lsn(4)
            }
        );
    }

    /// The golden vector pins the format: a change shows in review (testdata/record_v1.hex).
    #[test]
    fn golden_vector() {
        let mut buf = vec![0u8; record_bytes(5)];
        encode_record(&mut buf, Lsn(1), Lsn(1), &meta(), b"hello");
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        let golden = include_str!("testdata/record_v1.hex").trim();
        assert_eq!(hex, golden);
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let mut buf = vec![0u8; record_bytes(13)];
        let n = encode_record(&mut buf, Lsn(3), Lsn(2), &meta(), b"thirteen byte");
        for bit in 0..(RECORD_HEADER_BYTES + 13) * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_frame(&bad[..n]).is_err(),
                "bit {bit} flipped still decodes"
            );
        }
    }

    #[test]
    fn zeros_and_truncation_are_rejected() {
        assert!(decode_frame(&[0u8; 64]).is_err());
        let mut buf = vec![0u8; record_bytes(100)];
        encode_record(&mut buf, Lsn(3), Lsn(2), &meta(), &[1u8; 100]);
        for cut in 0..RECORD_HEADER_BYTES + 100 {
            assert!(decode_frame(&buf[..cut]).is_err(), "cut at {cut} decodes");
        }
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut buf = vec![0u8; record_bytes(0)];
        encode_frame(
            &mut buf,
            Lsn(1),
            Lsn(1),
            (GroupId(0), Term(0), LogIndex(0)),
            1,
            99,
            &[],
        );
        assert_eq!(decode_frame(&buf), Err(DecodeError::Format("unknown kind")));
        encode_frame(
            &mut buf,
            Lsn(1),
            Lsn(1),
            (GroupId(0), Term(0), LogIndex(0)),
            9,
            1,
            &[],
        );
        assert_eq!(
            decode_frame(&buf),
            Err(DecodeError::Format("unknown frame tag"))
        );
    }
}
