//! Recovery: from the bytes of the segments, find the valid log and its end (pure).
//!
//! Three steps, each a function the driver (`writer.rs`) calls with bytes it read:
//!
//! 1. [`plan_chain`]: from the header of every segment file, the chain of segments that
//!    holds the log. The chain runs down from the highest `sequence` through consecutive
//!    sequences until the segment holding the tail's `retain_lsn`; every other file is a
//!    spare (zeroed, damaged header, or released). A needed sequence that is missing is
//!    [`WalError::MissingSegment`], never a shorter log.
//! 2. [`TailScanner`] (window by window; [`scan_tail`] on a whole image): walk the batches
//!    of the last segment; where the walk stops, look ahead for the start of a newer batch,
//!    and decide with [`TAIL_CASES`].
//! 3. [`spare_has_newer_batch`]: a spare whose first batch is newer than the log end means
//!    the header of a needed segment was lost: [`WalError::Corrupt`].
//!
//! Why the look-ahead tells a torn tail from corruption: the flusher writes batch n+1 only
//! after the durable write of batch n returned. So if a batch starting past the stop point
//! exists (its first record, at a 4 KiB boundary, has `batch_lsn == lsn >= expected`),
//! every batch before it was durable and acknowledged, and the damage is corruption. A
//! torn *multi-block* last batch, whose later blocks landed and earlier ones did not, holds
//! records with `batch_lsn < lsn` past the stop point, which the look-ahead ignores: that
//! is a torn tail. A torn batch is dropped whole, even its valid first records: the
//! truncation point is then always a batch boundary, and the driver zeroes the segment from
//! there so that no leftover of the torn write can be mistaken for a newer record later
//! (its LSNs are reused by the next appends).
//!
//! LSNs never repeat across segment lives: a recycled segment keeps records of an earlier
//! life, all with LSNs below the current ones, so the walk stops at them ("stale").
//!
//! What this cannot detect: bit rot in the very last durable batch (nothing newer follows
//! it) looks exactly like a torn tail and is truncated; those records were acknowledged.
//! Mirroring or consensus replicas cover that case. The converse false alarm: a payload
//! that embeds a valid frame (`batch_lsn == lsn >= expected`) at a 4 KiB file boundary and
//! lies past the end (in a torn write or in stale data of a recycled segment) makes open
//! report `Corrupt`: it refuses to start, it never loses data.
//!
//! Non-tail segments are not scanned at open (their end is the next segment's
//! `first_lsn`); their checksums are verified when they are read back (`WalReader`), which
//! reports [`WalError::Corrupt`].
#![deny(clippy::indexing_slicing)]

use std::path::PathBuf;

use super::record::{
    decode_frame, frame_crcs, DecodeError, Frame, Lsn, Record, RECORD_HEADER_BYTES,
    RECORD_PAYLOAD_BYTES_MAX,
};
use super::segment::SEGMENT_HEADER_BYTES;
use super::segment::{segment_file_name, HeaderError, SegmentHeader, BLOCK_BYTES};
use super::WalError;

/// Why a walk of batches stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stop {
    /// No bytes left: the segment is full.
    SegmentEnd,
    /// The block where the next batch would start is all zeros.
    Zeroed,
    /// A valid frame that does not start the expected batch and is not newer: data of an
    /// earlier life of a recycled segment.
    Stale {
        /// Its LSN.
        lsn: Lsn,
    },
    /// A valid first record of a batch with an LSN past the expected one: records are missing.
    Gap {
        /// Its LSN.
        lsn: Lsn,
    },
    /// The expected batch is damaged: a frame fails its checksum or is out of sequence, or
    /// the bytes end inside it.
    Damaged {
        /// Offset of the bad frame, relative to the bytes given.
        offset: usize,
        /// The crc32c stored in the bad frame.
        expected_crc: u32,
        /// The crc32c computed (equal to `expected_crc` for a valid frame out of sequence).
        actual_crc: u32,
    },
}

/// The outcome of checking the batch at the start of some bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BatchCheck {
    /// A whole batch of records `first..=last`.
    Valid {
        /// Bytes of the batch, padding included (a multiple of `BLOCK_BYTES`).
        bytes: usize,
        /// LSN of its last record.
        last_lsn: Lsn,
    },
    /// The batch starts as expected but runs past the bytes given (read more).
    Incomplete,
    /// No valid batch here.
    Stop(Stop),
}

fn damaged(bytes: &[u8], offset: usize) -> BatchCheck {
    let (expected_crc, actual_crc) = frame_crcs(bytes.get(offset..).unwrap_or(&[]));
    BatchCheck::Stop(Stop::Damaged {
        offset,
        expected_crc,
        actual_crc,
    })
}

/// Checks the batch that should start at `bytes[0]` (a 4 KiB boundary) with record `expected`.
#[must_use]
pub fn check_batch(bytes: &[u8], expected: Lsn) -> BatchCheck {
    if bytes.is_empty() {
        return BatchCheck::Stop(Stop::SegmentEnd);
    }
    let first_block = bytes.get(..BLOCK_BYTES.min(bytes.len())).unwrap_or(&[]);
    if first_block.iter().all(|b| *b == 0) {
        return BatchCheck::Stop(Stop::Zeroed);
    }
    match decode_frame(bytes) {
        Err(DecodeError::Truncated) => return BatchCheck::Incomplete,
        Err(_) => return damaged(bytes, 0),
        Ok(Frame::BatchEnd { lsn, .. }) => return BatchCheck::Stop(Stop::Stale { lsn }),
        Ok(Frame::Record { lsn, batch_lsn, .. }) => {
            if batch_lsn != lsn || lsn < expected {
                return BatchCheck::Stop(Stop::Stale { lsn });
            }
            if lsn > expected {
                return BatchCheck::Stop(Stop::Gap { lsn });
            }
        }
    }
    let mut offset = 0usize;
    let mut next = expected;
    loop {
        let rest = bytes.get(offset..).unwrap_or(&[]);
        match decode_frame(rest) {
            Err(DecodeError::Truncated) => return BatchCheck::Incomplete,
            Err(_) => return damaged(bytes, offset),
            Ok(frame @ Frame::Record { lsn, batch_lsn, .. }) => {
                if lsn != next || batch_lsn != expected {
                    return damaged(bytes, offset);
                }
                // A record at LSN u64::MAX leaves no LSN for the batch end: damage, not a
                // panic in `Lsn::next`.
                let Some(after) = next.0.checked_add(1) else {
                    return damaged(bytes, offset);
                };
                next = Lsn(after);
                offset += frame.bytes();
            }
            Ok(frame @ Frame::BatchEnd { lsn, batch_lsn }) => {
                if lsn != next.prev() || batch_lsn != expected || next == expected {
                    return damaged(bytes, offset);
                }
                let end = (offset + frame.bytes()).next_multiple_of(BLOCK_BYTES);
                if end > bytes.len() {
                    return BatchCheck::Incomplete;
                }
                return BatchCheck::Valid {
                    bytes: end,
                    last_lsn: lsn,
                };
            }
        }
    }
}

/// The records of a batch that `check_batch` found valid, in order.
pub fn batch_records(bytes: &[u8]) -> impl Iterator<Item = Record> + '_ {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        let frame = decode_frame(bytes.get(offset..)?).ok()?;
        offset += frame.bytes();
        match frame {
            Frame::Record {
                lsn, meta, payload, ..
            } => Some(Record {
                lsn,
                meta,
                payload: payload.to_vec(),
            }),
            Frame::BatchEnd { .. } => None,
        }
    })
}

/// The first 4 KiB boundary at or past `from` in `segment` where a batch with first LSN
/// `>= expected` starts (a valid record with `batch_lsn == lsn`), if any.
#[must_use]
pub fn find_newer_batch(segment: &[u8], from: usize, expected: Lsn) -> Option<usize> {
    let mut at = from.next_multiple_of(BLOCK_BYTES);
    while at < segment.len() {
        if let Some(Ok(Frame::Record { lsn, batch_lsn, .. })) = segment.get(at..).map(decode_frame)
        {
            if lsn == batch_lsn && lsn >= expected {
                return Some(at);
            }
        }
        at += BLOCK_BYTES;
    }
    None
}

/// The result of walking the batches of one segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentWalk {
    /// Offset where the walk stopped (a batch boundary).
    pub end_offset: usize,
    /// LSN the next record would have.
    pub next_lsn: Lsn,
    /// Why it stopped.
    pub stop: Stop,
}

/// Walks the batches of a whole segment image from its first batch.
#[must_use]
pub fn walk_segment(segment: &[u8], header: &SegmentHeader) -> SegmentWalk {
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut next_lsn = header.first_lsn;
    loop {
        let rest = segment.get(offset..).unwrap_or(&[]);
        match check_batch(rest, next_lsn) {
            BatchCheck::Valid { bytes, last_lsn } => {
                assert!(
                    last_lsn >= next_lsn,
                    "batch ends at {last_lsn} before {next_lsn}"
                );
                offset += bytes;
                next_lsn = last_lsn.next();
            }
            BatchCheck::Incomplete => {
                // The segment ends inside the batch: only a torn write or damage does that.
                let (expected_crc, actual_crc) = frame_crcs(rest);
                let stop = Stop::Damaged {
                    offset,
                    expected_crc,
                    actual_crc,
                };
                return SegmentWalk {
                    end_offset: offset,
                    next_lsn,
                    stop,
                };
            }
            BatchCheck::Stop(stop) => {
                let stop = match stop {
                    Stop::Damaged {
                        offset: inner,
                        expected_crc,
                        actual_crc,
                    } => Stop::Damaged {
                        offset: offset + inner,
                        expected_crc,
                        actual_crc,
                    },
                    other => other,
                };
                return SegmentWalk {
                    end_offset: offset,
                    next_lsn,
                    stop,
                };
            }
        }
    }
}

/// What is found where the walk of the tail segment stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AtStop {
    /// The segment is full.
    SegmentEnd,
    /// Zeros.
    Zeroed,
    /// Valid frames of an earlier life.
    Stale,
    /// A damaged (torn or corrupt) batch.
    Damaged,
    /// A batch newer than expected: records are missing.
    Gap,
}

/// What recovery does with the tail.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TailDecision {
    /// The log ends here; nothing to repair (the driver still zeroes the rest of the segment).
    CleanEnd,
    /// The last batch was torn by a crash before its durable write returned: drop it.
    TornTail,
    /// An acknowledged batch is damaged: report `WalError::Corrupt`.
    Corrupt,
    /// Records are missing before a valid batch: report `WalError::LsnGap`.
    Gap,
}

/// One row of the tail decision table.
#[derive(Clone, Copy, Debug)]
pub struct TailCase {
    /// The case's name, for logs and tests.
    pub label: &'static str,
    /// What the walk found where it stopped.
    pub at: &'static [AtStop],
    /// Whether a newer batch starts further on; `None` for "either".
    pub newer_ahead: Option<bool>,
    /// The decision.
    pub decision: TailDecision,
}

/// The tail decision table; exactly one row matches each situation.
pub const TAIL_CASES: [TailCase; 6] = [
    TailCase {
        label: "segment full: clean end",
        at: &[AtStop::SegmentEnd],
        newer_ahead: None,
        decision: TailDecision::CleanEnd,
    },
    TailCase {
        label: "zeroed block: clean end",
        at: &[AtStop::Zeroed],
        newer_ahead: Some(false),
        decision: TailDecision::CleanEnd,
    },
    TailCase {
        label: "stale records of a recycled segment: clean end",
        at: &[AtStop::Stale],
        newer_ahead: Some(false),
        decision: TailDecision::CleanEnd,
    },
    TailCase {
        label: "damaged last batch, nothing newer: torn tail",
        at: &[AtStop::Damaged],
        newer_ahead: Some(false),
        decision: TailDecision::TornTail,
    },
    TailCase {
        label: "batch lost before a newer batch: mid-log corruption",
        at: &[AtStop::Zeroed, AtStop::Stale, AtStop::Damaged],
        newer_ahead: Some(true),
        decision: TailDecision::Corrupt,
    },
    TailCase {
        label: "newer batch where the next was expected: LSN gap",
        at: &[AtStop::Gap],
        newer_ahead: None,
        decision: TailDecision::Gap,
    },
];

/// Looks up the table; panics unless exactly one row matches (the table is total).
#[must_use]
pub fn decide_tail(at: AtStop, newer_ahead: bool) -> &'static TailCase {
    let mut found: Option<&'static TailCase> = None;
    for case in &TAIL_CASES {
        let matches = case.at.contains(&at) && case.newer_ahead.is_none_or(|n| n == newer_ahead);
        if matches {
            assert!(
                found.is_none(),
                "two tail cases match {at:?}, newer {newer_ahead}"
            );
            found = Some(case);
        }
    }
    found.unwrap_or_else(|| panic!("no tail case matches {at:?}, newer {newer_ahead}"))
}

/// The recovered tail of the log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TailScan {
    /// Where the next batch goes (a batch boundary).
    pub end_offset: usize,
    /// The LSN of the next record.
    pub next_lsn: Lsn,
    /// The case of the decision table that applied.
    pub label: &'static str,
    /// Whether a torn batch was dropped.
    pub torn: bool,
    /// Whether bytes past `end_offset` are not all zero (the driver zeroes them).
    pub dirty: bool,
    /// Whether the file is shorter than its header says (the driver pre-writes the rest).
    pub short: bool,
}

fn corrupt_at(slot: u32, offset: usize, segment: &[u8]) -> WalError {
    let (expected_crc, actual_crc) = frame_crcs(segment.get(offset..).unwrap_or(&[]));
    WalError::Corrupt {
        segment: PathBuf::from(segment_file_name(slot)),
        offset: offset as u64,
        expected_crc,
        actual_crc,
    }
}

/// The error for a spare that holds newer records than the log: its header was lost.
#[must_use]
pub fn lost_header(slot: u32, header_block: &[u8]) -> WalError {
    let (expected_crc, actual_crc) = match SegmentHeader::decode(header_block) {
        Err(HeaderError::Checksum { expected, actual }) => (expected, actual),
        _ => (0, 0),
    };
    WalError::Corrupt {
        segment: PathBuf::from(segment_file_name(slot)),
        offset: 0,
        expected_crc,
        actual_crc,
    }
}

/// Scans the tail segment (its whole image) and applies the decision table.
pub fn scan_tail(segment: &[u8], header: &SegmentHeader, slot: u32) -> Result<TailScan, WalError> {
    scan_tail_windowed(segment, header, slot, segment.len().max(BLOCK_BYTES))
}

/// `scan_tail` through a [`TailScanner`] reading windows of `window_bytes` (tests).
pub fn scan_tail_windowed(
    segment: &[u8],
    header: &SegmentHeader,
    slot: u32,
    window_bytes: usize,
) -> Result<TailScan, WalError> {
    let mut scanner = TailScanner::new(*header, slot, segment.len(), window_bytes);
    loop {
        let (offset, bytes) = scanner.next_read();
        let window = segment.get(offset..offset + bytes).unwrap_or(&[]);
        if let Some(result) = scanner.feed(offset, window) {
            return result;
        }
    }
}

/// Bytes a look-ahead window holds past its own range, so that any frame starting in its
/// range can be checked whole.
pub const LOOK_OVERLAP_BYTES: usize =
    (RECORD_HEADER_BYTES + RECORD_PAYLOAD_BYTES_MAX).next_multiple_of(BLOCK_BYTES);

#[derive(Clone, Copy, Debug)]
enum Phase {
    Walk {
        offset: usize,
        next_lsn: Lsn,
        read_bytes: usize,
    },
    Look {
        walk: SegmentWalk,
        /// Stored and computed crc32c of the frame at the stop point.
        crcs: (u32, u32),
        from: usize,
        dirty: bool,
    },
}

/// Scans the tail segment window by window, so that open holds at most one window (plus
/// `LOOK_OVERLAP_BYTES`) in memory: first the walk of its batches, then the look-ahead
/// past the stop point. The driver asks `next_read`, reads, and calls `feed` until it
/// returns the outcome.
#[derive(Clone, Debug)]
pub struct TailScanner {
    header: SegmentHeader,
    slot: u32,
    segment_bytes: usize,
    window_bytes: usize,
    phase: Phase,
}

impl TailScanner {
    /// A scanner over the first `segment_bytes` of a segment (a multiple of `BLOCK_BYTES`;
    /// less than the full size when the file was cut), reading `window_bytes` at a time.
    #[must_use]
    pub fn new(
        header: SegmentHeader,
        slot: u32,
        segment_bytes: usize,
        window_bytes: usize,
    ) -> Self {
        assert!(
            segment_bytes % BLOCK_BYTES == 0,
            "segment_bytes {segment_bytes} unaligned"
        );
        assert!(
            segment_bytes >= SEGMENT_HEADER_BYTES,
            "segment_bytes {segment_bytes} short"
        );
        assert!(
            window_bytes % BLOCK_BYTES == 0 && window_bytes > 0,
            "window {window_bytes}"
        );
        let phase = Phase::Walk {
            offset: SEGMENT_HEADER_BYTES,
            next_lsn: header.first_lsn,
            read_bytes: window_bytes,
        };
        TailScanner {
            header,
            slot,
            segment_bytes,
            window_bytes,
            phase,
        }
    }

    /// The next range to read: `(offset, bytes)`, within the segment.
    #[must_use]
    pub fn next_read(&self) -> (usize, usize) {
        match self.phase {
            Phase::Walk {
                offset, read_bytes, ..
            } => (offset, read_bytes.min(self.segment_bytes - offset)),
            Phase::Look { from, .. } => {
                let bytes = self.window_bytes + LOOK_OVERLAP_BYTES;
                (from, bytes.min(self.segment_bytes - from))
            }
        }
    }

    /// Feeds the bytes read at `offset` (as asked by `next_read`); `Some` when done.
    pub fn feed(&mut self, offset: usize, window: &[u8]) -> Option<Result<TailScan, WalError>> {
        match self.phase {
            Phase::Walk {
                offset: walk_offset,
                next_lsn,
                read_bytes,
            } => {
                assert!(offset == walk_offset, "fed {offset}, asked {walk_offset}");
                self.feed_walk(offset, window, next_lsn, read_bytes)
            }
            Phase::Look {
                walk,
                crcs,
                from,
                dirty,
            } => {
                assert!(offset == from, "fed {offset}, asked {from}");
                self.feed_look(offset, window, walk, crcs, dirty)
            }
        }
    }

    fn feed_walk(
        &mut self,
        offset: usize,
        window: &[u8],
        mut next_lsn: Lsn,
        read_bytes: usize,
    ) -> Option<Result<TailScan, WalError>> {
        let reaches_end = offset + window.len() >= self.segment_bytes;
        let mut at = 0usize;
        let stop = loop {
            let rest = window.get(at..).unwrap_or(&[]);
            if rest.is_empty() && !reaches_end {
                self.phase = Phase::Walk {
                    offset: offset + at,
                    next_lsn,
                    read_bytes: self.window_bytes,
                };
                return None;
            }
            match check_batch(rest, next_lsn) {
                BatchCheck::Valid { bytes, last_lsn } => {
                    assert!(
                        last_lsn >= next_lsn,
                        "batch ends at {last_lsn} before {next_lsn}"
                    );
                    at += bytes;
                    next_lsn = last_lsn.next();
                }
                BatchCheck::Incomplete if !reaches_end => {
                    // Grow the window when the batch alone does not fit in it.
                    let read_bytes = if at == 0 {
                        read_bytes * 2
                    } else {
                        self.window_bytes
                    };
                    self.phase = Phase::Walk {
                        offset: offset + at,
                        next_lsn,
                        read_bytes,
                    };
                    return None;
                }
                BatchCheck::Incomplete => {
                    // The segment ends inside the batch: only a torn write or damage does that.
                    let (expected_crc, actual_crc) = frame_crcs(rest);
                    break Stop::Damaged {
                        offset: offset + at,
                        expected_crc,
                        actual_crc,
                    };
                }
                BatchCheck::Stop(Stop::Damaged {
                    offset: inner,
                    expected_crc,
                    actual_crc,
                }) => {
                    break Stop::Damaged {
                        offset: offset + at + inner,
                        expected_crc,
                        actual_crc,
                    };
                }
                BatchCheck::Stop(stop) => break stop,
            }
        };
        let end_offset = offset + at;
        let crcs = frame_crcs(window.get(at..).unwrap_or(&[]));
        let walk = SegmentWalk {
            end_offset,
            next_lsn,
            stop,
        };
        self.phase = Phase::Look {
            walk,
            crcs,
            from: end_offset,
            dirty: false,
        };
        if end_offset >= self.segment_bytes {
            return Some(self.decide(walk, crcs, false, false));
        }
        None
    }

    fn feed_look(
        &mut self,
        offset: usize,
        window: &[u8],
        walk: SegmentWalk,
        crcs: (u32, u32),
        dirty: bool,
    ) -> Option<Result<TailScan, WalError>> {
        let own_end = (offset + self.window_bytes).min(self.segment_bytes);
        let own = window.get(..own_end - offset).unwrap_or(window);
        let dirty = dirty || own.iter().any(|b| *b != 0);
        let first_candidate = (walk.end_offset + BLOCK_BYTES).max(offset);
        let mut at = first_candidate;
        while at < own_end {
            let candidate = window.get(at - offset..).unwrap_or(&[]);
            if spare_has_newer_batch(candidate, walk.next_lsn) {
                return Some(self.decide(walk, crcs, true, dirty));
            }
            at += BLOCK_BYTES;
        }
        if own_end >= self.segment_bytes {
            return Some(self.decide(walk, crcs, false, dirty));
        }
        self.phase = Phase::Look {
            walk,
            crcs,
            from: own_end,
            dirty,
        };
        None
    }

    fn decide(
        &self,
        walk: SegmentWalk,
        crcs: (u32, u32),
        newer: bool,
        dirty: bool,
    ) -> Result<TailScan, WalError> {
        let at = match walk.stop {
            Stop::SegmentEnd => AtStop::SegmentEnd,
            Stop::Zeroed => AtStop::Zeroed,
            Stop::Stale { .. } => AtStop::Stale,
            Stop::Damaged { .. } => AtStop::Damaged,
            Stop::Gap { .. } => AtStop::Gap,
        };
        let case = decide_tail(at, newer);
        let segment = PathBuf::from(segment_file_name(self.slot));
        match case.decision {
            TailDecision::CleanEnd | TailDecision::TornTail => Ok(TailScan {
                end_offset: walk.end_offset,
                next_lsn: walk.next_lsn,
                label: case.label,
                torn: case.decision == TailDecision::TornTail,
                dirty,
                short: self.segment_bytes < self.header.segment_bytes as usize,
            }),
            TailDecision::Corrupt => {
                let (offset, expected_crc, actual_crc) = match walk.stop {
                    Stop::Damaged {
                        offset,
                        expected_crc,
                        actual_crc,
                    } => (offset, expected_crc, actual_crc),
                    _ => (walk.end_offset, crcs.0, crcs.1),
                };
                Err(WalError::Corrupt {
                    segment,
                    offset: offset as u64,
                    expected_crc,
                    actual_crc,
                })
            }
            TailDecision::Gap => Err(WalError::LsnGap {
                segment,
                offset: walk.end_offset as u64,
                expected: walk.next_lsn,
                found: match walk.stop {
                    Stop::Gap { lsn } => lsn,
                    _ => walk.next_lsn,
                },
            }),
        }
    }
}

/// Whether the first batch of a spare segment (bytes from its first batch offset) is at
/// least as new as the log end: then the spare was a needed segment whose header was lost.
#[must_use]
pub fn spare_has_newer_batch(first_batch: &[u8], next_lsn: Lsn) -> bool {
    matches!(
        decode_frame(first_batch),
        Ok(Frame::Record { lsn, batch_lsn, .. }) if lsn == batch_lsn && lsn >= next_lsn
    )
}

/// The segments of the log, from the headers of the segment files.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ChainPlan {
    /// Slots of the log's segments, oldest first, with their headers.
    pub chain: Vec<(u32, SegmentHeader)>,
    /// Slots of every other segment file (reusable).
    pub spares: Vec<u32>,
}

/// Orders the segments into the log; see the module docs.
pub fn plan_chain(
    files: &[(u32, Result<SegmentHeader, HeaderError>)],
) -> Result<ChainPlan, WalError> {
    let mut valid: Vec<(u32, SegmentHeader)> = files
        .iter()
        .filter_map(|(slot, h)| h.ok().map(|h| (*slot, h)))
        .collect();
    valid.sort_by_key(|(_, h)| h.sequence);
    for pair in valid.windows(2) {
        if let [(slot_a, a), (slot_b, b)] = pair {
            if a.sequence == b.sequence {
                return Err(WalError::SegmentConflict {
                    sequence: a.sequence,
                    segments: [
                        PathBuf::from(segment_file_name(*slot_a)),
                        PathBuf::from(segment_file_name(*slot_b)),
                    ],
                });
            }
        }
    }
    let mut plan = ChainPlan::default();
    if let Some(&(tail_slot, tail)) = valid.last() {
        let mut chain = vec![(tail_slot, tail)];
        let mut current = tail;
        while current.first_lsn > tail.retain_lsn {
            let wanted = current.sequence - 1;
            let prev = valid.iter().find(|(_, h)| h.sequence == wanted);
            let Some(&(slot, header)) = prev else {
                return Err(WalError::MissingSegment {
                    sequence: wanted,
                    needed: tail.retain_lsn,
                });
            };
            if header.first_lsn >= current.first_lsn {
                return Err(WalError::LsnGap {
                    segment: PathBuf::from(segment_file_name(slot)),
                    offset: 0,
                    expected: current.first_lsn,
                    found: header.first_lsn,
                });
            }
            chain.push((slot, header));
            current = header;
        }
        chain.reverse();
        plan.chain = chain;
    }
    for (slot, _) in files {
        if !plan.chain.iter().any(|(s, _)| s == slot) {
            plan.spares.push(*slot);
        }
    }
    plan.spares.sort_unstable();
    Ok(plan)
}

/// The result of recovering whole in-memory images (tests and tools).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Recovered {
    /// The chain of segments.
    pub plan: ChainPlan,
    /// The tail, if the log has any segment.
    pub tail: Option<TailScan>,
    /// The records of the log, in order.
    pub records: Vec<Record>,
}

/// Recovers a log from whole segment images `(slot, bytes)`: the chain, the tail, and every
/// record (all segments are walked and checked, not only the tail).
pub fn recover_images(images: &[(u32, &[u8])]) -> Result<Recovered, WalError> {
    let files: Vec<(u32, Result<SegmentHeader, HeaderError>)> = images
        .iter()
        .map(|(slot, bytes)| (*slot, SegmentHeader::decode(bytes)))
        .collect();
    let plan = plan_chain(&files)?;
    let image = |slot: u32| {
        images
            .iter()
            .find(|(s, _)| *s == slot)
            .map_or(&[][..], |(_, b)| b)
    };
    let mut records = Vec::new();
    let mut tail = None;
    for (i, (slot, header)) in plan.chain.iter().enumerate() {
        let bytes = image(*slot);
        let (end_offset, end_lsn) = if let Some((_, next)) = plan.chain.get(i + 1) {
            let walk = walk_segment(bytes, header);
            if walk.next_lsn != next.first_lsn {
                return Err(match walk.stop {
                    Stop::Damaged { offset, .. } => corrupt_at(*slot, offset, bytes),
                    _ => WalError::LsnGap {
                        segment: PathBuf::from(segment_file_name(*slot)),
                        offset: walk.end_offset as u64,
                        expected: walk.next_lsn,
                        found: next.first_lsn,
                    },
                });
            }
            (walk.end_offset, walk.next_lsn)
        } else {
            let scan = scan_tail(bytes, header, *slot)?;
            tail = Some(scan);
            (scan.end_offset, scan.next_lsn)
        };
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut lsn = header.first_lsn;
        while offset < end_offset && lsn < end_lsn {
            let rest = bytes.get(offset..).unwrap_or(&[]);
            let BatchCheck::Valid { bytes: n, last_lsn } = check_batch(rest, lsn) else {
                unreachable!("walked batches are valid");
            };
            records.extend(batch_records(rest.get(..n).unwrap_or(&[])));
            offset += n;
            lsn = last_lsn.next();
        }
    }
    let next_lsn = tail.map_or(Lsn::FIRST, |t| t.next_lsn);
    for slot in &plan.spares {
        let first = image(*slot).get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
        if spare_has_newer_batch(first, next_lsn) {
            return Err(lost_header(*slot, image(*slot)));
        }
    }
    Ok(Recovered {
        plan,
        tail,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::super::batch::BatchBuilder;
    use super::super::batch::BATCH_BYTES_MIN;
    use super::super::record::{
        GroupId, LogIndex, RecordKind, RecordMeta, Term, RECORD_HEADER_BYTES,
    };
    use super::*;
    use proptest::prelude::*;

    /// A model writer over in-memory segment images, following the driver's protocol:
    /// rotation writes the new header first; batches are 4 KiB aligned; released segments
    /// are recycled with their old content.
    struct Sim {
        segment_bytes: usize,
        images: Vec<Vec<u8>>,
        chain: Vec<u32>,
        spares: Vec<u32>,
        sequence: u64,
        tail_offset: usize,
        next_lsn: Lsn,
        retain_lsn: Lsn,
        builder: BatchBuilder,
        buffer: Vec<u8>,
        /// Per batch: (slot, offset, bytes, records).
        batches: Vec<(u32, usize, usize, Vec<Record>)>,
    }

    impl Sim {
        fn new(segment_bytes: usize) -> Sim {
            let mut sim = Sim {
                segment_bytes,
                images: vec![vec![0u8; segment_bytes]],
                chain: vec![0],
                spares: Vec::new(),
                sequence: 1,
                tail_offset: SEGMENT_HEADER_BYTES,
                next_lsn: Lsn::FIRST,
                retain_lsn: Lsn::FIRST,
                builder: BatchBuilder::new(BATCH_BYTES_MIN),
                buffer: vec![0u8; BATCH_BYTES_MIN],
                batches: Vec::new(),
            };
            sim.write_header(0, Lsn::FIRST);
            sim
        }

        fn write_header(&mut self, slot: u32, first_lsn: Lsn) {
            let header = SegmentHeader {
                sequence: self.sequence,
                first_lsn,
                retain_lsn: self.retain_lsn.min(first_lsn),
                segment_bytes: self.segment_bytes as u64,
                batch_bytes_max: BATCH_BYTES_MIN as u64,
            };
            header.encode(&mut self.images[slot as usize]);
        }

        fn append_batch(&mut self, payloads: &[Vec<u8>]) {
            let mut records = Vec::new();
            for (i, payload) in payloads.iter().enumerate() {
                let meta = RecordMeta {
                    group: GroupId(i as u64 % 4),
                    term: Term(2),
                    index: LogIndex(self.next_lsn.0),
                    kind: RecordKind::Data,
                };
                self.builder
                    .push(&mut self.buffer, self.next_lsn, &meta, payload);
                records.push(Record {
                    lsn: self.next_lsn,
                    meta,
                    payload: payload.clone(),
                });
                self.next_lsn = self.next_lsn.next();
            }
            let sealed = self.builder.seal(&mut self.buffer);
            if self.tail_offset + sealed.bytes > self.segment_bytes {
                let slot = self.spares.pop().unwrap_or_else(|| {
                    self.images.push(vec![0u8; self.segment_bytes]);
                    (self.images.len() - 1) as u32
                });
                self.sequence += 1;
                self.write_header(slot, sealed.first_lsn);
                self.chain.push(slot);
                self.tail_offset = SEGMENT_HEADER_BYTES;
            }
            let slot = *self.chain.last().unwrap();
            let at = self.tail_offset;
            self.images[slot as usize][at..at + sealed.bytes]
                .copy_from_slice(&self.buffer[..sealed.bytes]);
            self.batches.push((slot, at, sealed.bytes, records));
            self.tail_offset += sealed.bytes;
        }

        fn release_before(&mut self, lsn: Lsn) {
            self.retain_lsn = self.retain_lsn.max(lsn);
            while self.chain.len() > 1 {
                let next_first = SegmentHeader::decode(&self.images[self.chain[1] as usize])
                    .unwrap()
                    .first_lsn;
                if next_first > self.retain_lsn {
                    break;
                }
                self.spares.insert(0, self.chain.remove(0));
            }
        }

        fn recover(&self) -> Result<Recovered, WalError> {
            let images: Vec<(u32, &[u8])> = self
                .images
                .iter()
                .enumerate()
                .map(|(i, b)| (i as u32, &b[..]))
                .collect();
            recover_images(&images)
        }

        fn records(&self, batches: std::ops::Range<usize>, from: Lsn) -> Vec<Record> {
            self.batches[batches]
                .iter()
                .flat_map(|b| b.3.iter().cloned())
                .filter(|r| r.lsn >= from)
                .collect()
        }
    }

    fn payloads(sizes: &[usize], seed: u8) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| vec![seed.wrapping_add(i as u8) | 1; *n])
            .collect()
    }

    const SEGMENT_BYTES: usize = 256 * 1024;

    #[test]
    fn clean_log_recovers_every_record() {
        let mut sim = Sim::new(SEGMENT_BYTES);
        for b in 0..200u8 {
            sim.append_batch(&payloads(&[100, 3000, 7], b));
        }
        assert!(sim.chain.len() > 2, "the test must rotate");
        let got = sim.recover().unwrap();
        assert!(got.records == sim.records(0..sim.batches.len(), Lsn::FIRST));
        assert_eq!(got.tail.unwrap().next_lsn, sim.next_lsn);
    }

    #[test]
    fn empty_directory_is_a_new_log() {
        let got = recover_images(&[]).unwrap();
        assert!(got.plan.chain.is_empty() && got.tail.is_none() && got.records.is_empty());
        let zeros = vec![0u8; SEGMENT_BYTES];
        let got = recover_images(&[(0, &zeros[..])]).unwrap();
        assert_eq!(got.plan.spares, vec![0]);
    }

    #[test]
    fn torn_multi_block_tail_is_truncated_not_corrupt() {
        let mut sim = Sim::new(SEGMENT_BYTES);
        sim.append_batch(&payloads(&[100], 1));
        // 4040 + 56 = 4096: the later records start on block boundaries, where the
        // look-ahead searches.
        sim.append_batch(&payloads(&[4040, 4040, 5000], 2));
        let (slot, at, bytes, _) = sim.batches[1].clone();
        assert!(bytes >= 3 * BLOCK_BYTES);
        // The first block of the last write never landed; the later ones did.
        sim.images[slot as usize][at..at + BLOCK_BYTES].fill(0);
        let got = sim.recover().unwrap();
        assert!(got.records == sim.records(0..1, Lsn::FIRST));
        let tail = got.tail.unwrap();
        assert!(
            tail.label.contains("clean end") || tail.torn,
            "{}",
            tail.label
        );
        assert_eq!((tail.end_offset, tail.next_lsn), (at, Lsn(2)));
        // Garbage instead of zeros in that block: a torn tail too.
        sim.images[slot as usize][at..at + BLOCK_BYTES].fill(0x5A);
        let tail = sim.recover().unwrap().tail.unwrap();
        assert!(tail.torn, "{}", tail.label);
    }

    #[test]
    fn a_segment_that_ends_inside_a_batch_is_corrupt_at_that_batch() {
        let mut sim = Sim::new(SEGMENT_BYTES);
        let mut b = 0u8;
        while sim.chain.len() < 2 {
            sim.append_batch(&payloads(&[200, 200], b));
            b = b.wrapping_add(1);
        }
        // The last batch of the first segment, cut inside its first record.
        let first = sim.chain[0];
        let (slot, at, _, _) = sim
            .batches
            .iter()
            .rev()
            .find(|(s, ..)| *s == first)
            .cloned()
            .unwrap();
        sim.images[slot as usize].truncate(at + 100);
        match sim.recover() {
            Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, at as u64),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn damaged_batch_before_a_newer_one_is_corrupt() {
        let mut sim = Sim::new(SEGMENT_BYTES);
        for b in 0..3u8 {
            sim.append_batch(&payloads(&[200, 200], b));
        }
        let (slot, at, _, _) = sim.batches[1].clone();
        sim.images[slot as usize][at + 70] ^= 0x10;
        match sim.recover() {
            Err(WalError::Corrupt {
                offset,
                expected_crc,
                actual_crc,
                ..
            }) => {
                assert_eq!(offset, at as u64);
                assert_ne!(expected_crc, actual_crc);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn stale_records_of_a_recycled_segment_are_not_replayed() {
        let mut sim = Sim::new(SEGMENT_BYTES);
        for b in 0..150u8 {
            sim.append_batch(&payloads(&[2000, 2000], b));
        }
        let n = sim.batches.len();
        sim.release_before(sim.next_lsn);
        assert!(!sim.spares.is_empty());
        // The next rotations reuse released segments full of older records.
        for b in 0..12u8 {
            sim.append_batch(&payloads(&[3000], b));
        }
        assert!(sim
            .chain
            .iter()
            .any(|s| sim.batches[..n].iter().any(|b| b.0 == *s)));
        let got = sim.recover().unwrap();
        let first = got.plan.chain.first().unwrap().1.first_lsn;
        assert!(got.records == sim.records(0..sim.batches.len(), first));
        assert!(got.records.iter().all(|r| r.lsn >= first));
    }

    #[test]
    fn lost_header_of_a_needed_segment_is_reported() {
        let mut sim = Sim::new(SEGMENT_BYTES);
        for b in 0..200u8 {
            sim.append_batch(&payloads(&[3000], b));
        }
        let middle = sim.chain[1];
        sim.images[middle as usize][20] ^= 1;
        assert!(matches!(
            sim.recover(),
            Err(WalError::MissingSegment { .. })
        ));
        let mut sim2 = Sim::new(SEGMENT_BYTES);
        for b in 0..200u8 {
            sim2.append_batch(&payloads(&[3000], b));
        }
        let tail = *sim2.chain.last().unwrap();
        sim2.images[tail as usize][20] ^= 1;
        assert!(matches!(
            sim2.recover(),
            Err(WalError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn decision_table_is_total_and_unambiguous() {
        let all = [
            AtStop::SegmentEnd,
            AtStop::Zeroed,
            AtStop::Stale,
            AtStop::Damaged,
            AtStop::Gap,
        ];
        for at in all {
            for newer in [false, true] {
                let _ = decide_tail(at, newer);
            }
        }
        assert_eq!(
            decide_tail(AtStop::Damaged, false).decision,
            TailDecision::TornTail
        );
        assert_eq!(
            decide_tail(AtStop::Damaged, true).decision,
            TailDecision::Corrupt
        );
    }

    #[derive(Clone, Copy, Debug)]
    enum BlockFate {
        Landed,
        Lost,
        Zeroed,
        Garbage(u8),
    }

    fn fate() -> impl Strategy<Value = BlockFate> {
        prop_oneof![
            3 => Just(BlockFate::Landed),
            2 => Just(BlockFate::Lost),
            1 => Just(BlockFate::Zeroed),
            1 => any::<u8>().prop_map(BlockFate::Garbage),
        ]
    }

    fn batches() -> impl Strategy<Value = Vec<Vec<usize>>> {
        let size = prop_oneof![8 => 0usize..300, 2 => 300usize..9000, 1 => Just(4040usize)];
        prop::collection::vec(prop::collection::vec(size, 1..12), 1..25)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Tearing the final batch (any mix of landed, lost, zeroed and garbage blocks)
        /// recovers exactly the batches before it, or all of them; never an error.
        #[test]
        fn torn_final_batch_recovers_a_prefix(
            sizes in batches(),
            fates in prop::collection::vec(fate(), 64),
            release in any::<bool>(),
            window_blocks in 1usize..40,
        ) {
            let mut sim = Sim::new(SEGMENT_BYTES);
            let n = sizes.len();
            for (i, s) in sizes.iter().enumerate() {
                if release && i == n / 2 {
                    sim.release_before(sim.next_lsn);
                }
                let before: Vec<Vec<u8>> = sim.images.clone();
                sim.append_batch(&payloads(s, i as u8));
                if i + 1 == n {
                    let (slot, at, bytes, _) = sim.batches[i].clone();
                    let image = &mut sim.images[slot as usize];
                    let old = before
                        .get(slot as usize)
                        .cloned()
                        .unwrap_or_else(|| vec![0; SEGMENT_BYTES]);
                    for (k, block) in (at..at + bytes).step_by(BLOCK_BYTES).enumerate() {
                        let range = block..block + BLOCK_BYTES;
                        match fates[k % fates.len()] {
                            BlockFate::Landed => {}
                            BlockFate::Lost => image[range.clone()].copy_from_slice(&old[range]),
                            BlockFate::Zeroed => image[range].fill(0),
                            BlockFate::Garbage(g) => image[range].fill(g),
                        }
                    }
                }
            }
            let got = sim.recover();
            prop_assert!(got.is_ok(), "{:?}", got.err());
            let got = got.unwrap();
            // Scanning window by window (as the driver does) decides the same.
            let (tail_slot, tail_header) = *got.plan.chain.last().unwrap();
            let image = &sim.images[tail_slot as usize];
            let windowed = scan_tail_windowed(image, &tail_header, tail_slot, window_blocks * 4096);
            prop_assert_eq!(windowed.ok(), got.tail);
            let first = got.plan.chain.first().unwrap().1.first_lsn;
            let without = sim.records(0..n - 1, first);
            let with = sim.records(0..n, first);
            prop_assert!(got.records == without || got.records == with,
                "recovered {} records, expected {} or {}",
                got.records.len(),
                without.len(),
                with.len());
        }

        /// A flipped bit in the records of any batch but the last is reported as corruption.
        #[test]
        fn flipped_bit_before_the_last_batch_is_corrupt(
            sizes in batches().prop_filter("two batches", |b| b.len() >= 2),
            pick in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut sim = Sim::new(SEGMENT_BYTES);
            for (i, s) in sizes.iter().enumerate() {
                sim.append_batch(&payloads(s, i as u8));
            }
            let victim = pick.index(sim.batches.len() - 1);
            let (slot, at, _, records) = sim.batches[victim].clone();
            // Bytes covered by a checksum: each frame's header and payload, not its padding.
            let mut covered = Vec::new();
            let mut frame_at = at;
            for r in &records {
                covered.extend(frame_at..frame_at + RECORD_HEADER_BYTES + r.payload.len());
                frame_at += super::super::record::record_bytes(r.payload.len());
            }
            covered.extend(frame_at..frame_at + super::super::record::BATCH_END_BYTES);
            let offset = covered[byte.index(covered.len())];
            sim.images[slot as usize][offset] ^= 1 << bit;
            let got = sim.recover();
            let corrupt = matches!(got, Err(WalError::Corrupt { .. }));
            let (tail_slot, tail_header) = {
                let files: Vec<_> = sim.images.iter().enumerate()
                    .map(|(i, b)| (i as u32, SegmentHeader::decode(b))).collect();
                *plan_chain(&files).unwrap().chain.last().unwrap()
            };
            let image = &sim.images[tail_slot as usize];
            let whole = scan_tail(image, &tail_header, tail_slot);
            let windowed = scan_tail_windowed(image, &tail_header, tail_slot, 3 * 4096);
            prop_assert_eq!(format!("{whole:?}"), format!("{windowed:?}"));
            prop_assert!(corrupt, "{:?}", got.map(|r| r.records.len()));
        }
    }
}
