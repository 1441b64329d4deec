//! The shard write-ahead log: one per shard, shared by the partition replicas on it.
//!
//! # Design
//! - **Segments** (`segment.rs`): fixed-size files opened with O_DIRECT, pre-written with
//!   zeros once or recycled from released segments, so that a durable write does not
//!   allocate blocks (a rotation that finds no such spare ready takes one only allocated
//!   with fallocate rather than wait, see Rotation). They are opened O_DSYNC: a write
//!   returns once durable, with the conversion of any unwritten block it filled. Block 0
//!   is a header (sequence, first LSN, retained LSN); batches follow.
//! - **Records** (`record.rs`): header (crc32c, length, LSN, batch LSN, group, term, index,
//!   frame, kind) and payload, packed at 8-byte alignment. LSNs count records, +1 each.
//! - **Group commit** (`batch.rs`, `writer.rs`): appenders copy their record into the open
//!   batch (a 4 KiB-aligned buffer allocated at open) and wait; one flusher task seals the
//!   batch (adds a `BatchEnd` frame, pads to 4 KiB), writes it with one O_DSYNC direct
//!   write (no separate fdatasync: one I/O round trip per batch), then wakes its
//!   appenders. While a flush is in flight the next batch fills; the flusher takes it as
//!   soon as the write returns. No timers. At most two batch buffers exist; when the open
//!   batch is full, appenders wait for it to be taken.
//! - **The writer thread** (`io_thread.rs`): a batch of `EARLY_WRITE_RECORDS` (32)
//!   records or more is written by a plain thread instead of the executor's ring, and an
//!   appender that finds such a batch and no write in flight seals and hands it over
//!   itself. glommio submits ring I/O only when its run queue drains, so under many
//!   appenders the write would otherwise wait for all their CPU work; on the thread it
//!   overlaps with it. Smaller batches stay on the ring (a handoff costs a lone writer
//!   ~55 µs).
//! - **Rotation**: a batch that does not fit the current segment goes to a spare, whose new
//!   header is written and fdatasynced first. Spares are kept ready in the background,
//!   pre-written (or only allocated, `WalOptions::prewrite_spares`); a rotation that finds
//!   none ready takes a segment that is only allocated (fallocate) rather than wait for a
//!   pre-write (`WalStats::rotation_stalls`, `WalStats::rotations_unwritten`).
//! - **Release**: `release_before` turns whole segments below the LSN into spares. The
//!   release becomes durable with the next segment header (its `retain_lsn`); until then a
//!   released segment is neither overwritten nor deleted, since recovery after a crash
//!   would still look for it. Spares beyond `segments_spare_max` are deleted after that.
//! - **Recovery** (`recovery.rs`): order segments by header, scan the last one window by
//!   window to the first bad batch, tell a torn tail (dropped whole, then the rest of the
//!   segment zeroed) from mid-log corruption (an error) by looking for a newer batch past
//!   the damage. See its decision table. Open reads the tail segment once (in windows of
//!   `2 * batch_bytes_max`) and, when anything but zeros follows the end, writes zeros
//!   over the rest of it (up to `segment_bytes`, once per open).
//!
//! # Invariants
//! - Batch n+1 is written only after the durable write of batch n returned (whichever of
//!   the ring or the writer thread wrote it); an append resolves only once its batch's
//!   write returned.
//! - LSNs are assigned at append time, in order, +1 each; a durable LSN is never reused.
//! - After a failed write or fdatasync the WAL is failed for good (no fsync retry: an
//!   error may have dropped dirty pages): every pending and later append returns an error.
//!
//! # Not done here
//! - Archiving sealed segments (DESIGN.md).
//! - Reader pins on segments: a reader whose segment is released and recycled under it
//!   returns an error (`Released` or `Corrupt`), never wrong records.
//! - Dropping every `Wal` handle without `close` leaves the flusher task parked (and the
//!   files open) until the executor ends: call `close`.
//! - An append future dropped after its record entered the batch still writes the record.
//! - The I/O seam is `writer.rs` itself; a `LogStorage` trait with a simulated backend (for
//!   the engine simulation) is the next step: the cores are already pure.

pub mod batch;
mod io_thread;
pub mod record;
pub mod recovery;
pub mod segment;
mod writer;

use std::io;
use std::path::PathBuf;

pub use record::{
    GroupId, LogIndex, Lsn, Record, RecordKind, RecordMeta, Term, RECORD_PAYLOAD_BYTES_MAX,
};
pub use writer::{probe_workaround, Wal, WalReader};

/// Configuration of a WAL; validated by `Wal::open`.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// Size of each segment file: a multiple of 4096, at least 4096 + `batch_bytes_max`.
    pub segment_bytes: u64,
    /// Capacity of one batch (one write): a multiple of 4096, at least
    /// `batch::BATCH_BYTES_MIN` so that a record of `RECORD_PAYLOAD_BYTES_MAX` fits.
    pub batch_bytes_max: usize,
    /// Released segments kept for reuse; more are deleted. At least 1.
    pub segments_spare_max: usize,
    /// How new segments are made ready: pre-written with zeros in the background (`true`,
    /// the default), or only allocated with fallocate (`false`), so that no zeros are
    /// written but the first write to each block of a new segment also commits its
    /// allocation (a 32 KiB write + fdatasync ~1.7× slower on this project's disk).
    /// Either way released segments are recycled, and a rotation that finds no spare
    /// ready takes an allocated one rather than wait.
    pub prewrite_spares: bool,
}

impl WalOptions {
    /// Defaults: 64 MiB segments, 1 MiB batches, 4 spares, pre-written.
    #[must_use]
    pub fn new(dir: PathBuf) -> WalOptions {
        WalOptions {
            dir,
            segment_bytes: 64 << 20,
            batch_bytes_max: 1 << 20,
            segments_spare_max: 4,
            prewrite_spares: true,
        }
    }

    /// Checks the limits.
    pub fn validate(&self) -> Result<(), WalError> {
        let block = segment::BLOCK_BYTES;
        if self.batch_bytes_max % block != 0 || self.batch_bytes_max < batch::BATCH_BYTES_MIN {
            return Err(WalError::InvalidOptions {
                reason: "batch_bytes_max must be a multiple of 4096 and >= BATCH_BYTES_MIN",
            });
        }
        let needed = (segment::SEGMENT_HEADER_BYTES + self.batch_bytes_max) as u64;
        if self.segment_bytes % block as u64 != 0 || self.segment_bytes < needed {
            return Err(WalError::InvalidOptions {
                reason: "segment_bytes must be a multiple of 4096 and >= 4096 + batch_bytes_max",
            });
        }
        if self.segments_spare_max == 0 {
            return Err(WalError::InvalidOptions {
                reason: "segments_spare_max must be >= 1",
            });
        }
        Ok(())
    }
}

/// Counters of a WAL since open.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WalStats {
    /// Batches written (one DMA write each).
    pub batches: u64,
    /// Records made durable.
    pub records: u64,
    /// Bytes written for batches, padding included.
    pub bytes: u64,
    /// Durability points: batch writes (O_DSYNC) and fdatasyncs (segment headers, zeroing).
    pub syncs: u64,
    /// Segments started by rotation.
    pub rotations: u64,
    /// Rotations that found no pre-written spare ready (and took a segment only allocated,
    /// or, where that failed, waited for the pre-write under way or pre-wrote one inline).
    pub rotation_stalls: u64,
    /// Wall time those rotations spent getting a segment, in microseconds (each also logs
    /// a warning): every append of the shard waited with them.
    pub rotation_stall_us: u64,
    /// Of those rotations, the ones that took a segment only allocated (not pre-written):
    /// its batches' fdatasyncs cost more until it is recycled.
    pub rotations_unwritten: u64,
    /// Spare segments made ready by writing zeros over them (at open or in the
    /// background), as `WalOptions::prewrite_spares` asks.
    pub spares_prewritten: u64,
    /// Spare segments made ready by allocating them only, as `prewrite_spares: false`
    /// asks (rotations that took an allocated segment are counted apart).
    pub spares_allocated: u64,
    /// Wall time spent in batch writes, in microseconds, from submission until durable.
    pub write_us: u64,
    /// Batches handed to the WAL's writer thread (written the moment they were sealed;
    /// see `writer::goes_to_thread` for which); the others went through the executor's
    /// ring.
    pub thread_batches: u64,
    /// Of `write_us`, for the writer thread's batches: from sealing until the thread
    /// began the write (handing over and waking the thread), in microseconds.
    pub thread_pickup_us: u64,
    /// Of `write_us`, for the writer thread's batches: the write itself, in microseconds.
    pub thread_pwrite_us: u64,
    /// Of `write_us`, for the writer thread's batches: from the end of the write until
    /// the executor took the result (noticing it, and waking if parked), in microseconds.
    pub thread_reap_us: u64,
}

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O operation failed.
    #[error("wal: {op} of {path:?} at offset {offset} failed: {source}")]
    Io {
        /// The operation ("write", "fdatasync", "read", "open", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The byte offset in the file (0 when not applicable).
        offset: u64,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A checksum failed inside the log (not at a torn tail): acknowledged records are damaged.
    #[error(
        "wal: corrupt record in segment {segment:?} at offset {offset}: \
         crc32c stored {expected_crc:#010x}, computed {actual_crc:#010x}"
    )]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// The byte offset of the bad frame or header in it.
        offset: u64,
        /// The crc32c stored (equal to `actual_crc` when a valid frame is out of sequence).
        expected_crc: u32,
        /// The crc32c computed.
        actual_crc: u32,
    },
    /// Valid records whose LSN does not follow the previous one: records are missing.
    #[error(
        "wal: lsn gap in segment {segment:?} at offset {offset}: \
         expected {expected}, found {found}"
    )]
    LsnGap {
        /// The segment file.
        segment: PathBuf,
        /// The byte offset.
        offset: u64,
        /// The LSN expected.
        expected: Lsn,
        /// The LSN found.
        found: Lsn,
    },
    /// A segment the log needs (records from `needed` on) is missing or its header is unreadable.
    #[error(
        "wal: segment with sequence {sequence} is missing; records from lsn {needed} are needed"
    )]
    MissingSegment {
        /// The sequence of the missing segment.
        sequence: u64,
        /// The oldest LSN the log must hold.
        needed: Lsn,
    },
    /// Two segment files claim the same sequence.
    #[error("wal: segments {segments:?} both have sequence {sequence}")]
    SegmentConflict {
        /// The sequence.
        sequence: u64,
        /// The two files.
        segments: [PathBuf; 2],
    },
    /// The options are invalid.
    #[error("wal: invalid options: {reason}")]
    InvalidOptions {
        /// Which limit is broken.
        reason: &'static str,
    },
    /// The payload exceeds `RECORD_PAYLOAD_BYTES_MAX`.
    #[error("wal: payload of {bytes} bytes exceeds {max}")]
    PayloadTooLarge {
        /// The payload length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or fdatasync failed; the WAL accepts nothing more (no fsync retry).
    #[error("wal: failed earlier and stopped: {reason}")]
    Failed {
        /// The first error, as text.
        reason: String,
    },
    /// The WAL was closed.
    #[error("wal: closed")]
    Closed,
    /// The records asked for were released (below `first_lsn`) or recycled while reading.
    #[error("wal: records from lsn {from} were released; the log starts at {first}")]
    Released {
        /// The LSN asked for.
        from: Lsn,
        /// The first LSN the log holds now.
        first: Lsn,
    },
}
