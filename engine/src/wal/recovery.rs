//! Recovery: from the bytes of the segments, find the valid log and its end (pure).
//!
//! Three steps, each a function the driver (`writer.rs`) calls with bytes it read:
//!
//! 1. [`plan_chain`]: from the header of every segment file, the chain of segments that
//!    holds the log. The chain runs down from the highest `sequence` through consecutive
//!    sequences until the segment holding the tail's `retain_lsn`; every other file is a
//!    spare (zeroed, damaged header, or released). A needed sequence that is missing is
//!    [`WalError::MissingSegment`], never a shorter log.
//! 2. [`scan_tail`]: walk the batches of the last segment; where the walk stops, look ahead
//!    for the start of a newer batch, and decide with [`TAIL_CASES`].
//! 3. [`spare_has_newer_batch`]: a spare whose first batch is newer than the log end means
//!    the header of a needed segment was lost: [`WalError::Corrupt`].
//!
//! Why the look-ahead tells a torn tail from corruption: the flusher writes batch n+1 only
//! after the fdatasync of batch n returned. So if a batch starting past the stop point
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
//! Mirroring or consensus replicas cover that case. Non-tail segments are not scanned at
//! open (their end is the next segment's `first_lsn`); their checksums are verified when
//! they are read back (`WalReader`), which reports [`WalError::Corrupt`].
#![deny(clippy::indexing_slicing)]

use std::path::PathBuf;

use super::record::{decode_frame, frame_crcs, DecodeError, Frame, Lsn, Record};
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
                next = next.next();
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
                    offset: 0,
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
    /// The last batch was torn by a crash before its fdatasync returned: drop it.
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
    let walk = walk_segment(segment, header);
    let at = match walk.stop {
        Stop::SegmentEnd => AtStop::SegmentEnd,
        Stop::Zeroed => AtStop::Zeroed,
        Stop::Stale { .. } => AtStop::Stale,
        Stop::Damaged { .. } => AtStop::Damaged,
        Stop::Gap { .. } => AtStop::Gap,
    };
    let newer = find_newer_batch(segment, walk.end_offset + BLOCK_BYTES, walk.next_lsn);
    let case = decide_tail(at, newer.is_some());
    match case.decision {
        TailDecision::CleanEnd | TailDecision::TornTail => Ok(TailScan {
            end_offset: walk.end_offset,
            next_lsn: walk.next_lsn,
            label: case.label,
            torn: case.decision == TailDecision::TornTail,
        }),
        TailDecision::Corrupt => Err(match walk.stop {
            Stop::Damaged {
                offset,
                expected_crc,
                actual_crc,
            } => WalError::Corrupt {
                segment: PathBuf::from(segment_file_name(slot)),
                offset: offset as u64,
                expected_crc,
                actual_crc,
            },
            _ => corrupt_at(slot, walk.end_offset, segment),
        }),
        TailDecision::Gap => Err(WalError::LsnGap {
            segment: PathBuf::from(segment_file_name(slot)),
            offset: walk.end_offset as u64,
            expected: walk.next_lsn,
            found: match walk.stop {
                Stop::Gap { lsn } => lsn,
                _ => walk.next_lsn,
            },
        }),
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
