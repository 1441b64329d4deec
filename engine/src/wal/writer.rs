//! The WAL driver: files, the flusher task and the reader. The only WAL file using glommio.
//!
//! Everything here runs on one glommio executor: state lives in an `Rc<Inner>` with a
//! `RefCell` that is never borrowed across an `.await`. Appenders and the flusher meet
//! through wakers kept in the state (no channels, no timers):
//! - an appender copies its record into the open batch, wakes the flusher, and waits until
//!   the generation of its batch is durable;
//! - the flusher takes the open batch as soon as the previous batch write returned (so the
//!   batch holds everything that arrived meanwhile), installs the second buffer as the open
//!   batch, writes it (segment files are O_DSYNC: the write returns once durable), then
//!   wakes the appenders of that generation;
//! - a batch of `EARLY_WRITE_RECORDS` or more is written by the writer thread
//!   (`io_thread.rs`) instead of the ring, and so is every later batch of at least
//!   `THREAD_STAY_RECORDS` until a smaller one goes through the ring again; an appender
//!   that finds such a batch and no write in flight seals and hands it over itself, taking
//!   the thread's finished write first if there is one. Either way one batch is in flight
//!   at a time (`in_flight`).
//!
//! Batch generation g's waiters sit in `waiters[g % 2]`: only generations g (in flight) and
//! g + 1 (open) can have waiters at any time. A waiter registers with the one generation
//! that holds its record (`sealed_last_lsn` tells them apart), so a batch's write wakes
//! only the tasks it made durable.
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use glommio::io::{DmaFile, OpenOptions, ReadResult};

use super::batch::{BatchBuilder, SealedBatch};
use super::io_thread::{AlignedBuf, Done, Job, LogWriter};
use super::record::{Lsn, Record, RecordMeta, RECORD_PAYLOAD_BYTES_MAX};
use super::recovery::{self, BatchCheck, Stop};
use super::segment::{
    parse_segment_file_name, segment_file_name, SegmentHeader, BLOCK_BYTES, SEGMENT_HEADER_BYTES,
};
use super::{WalError, WalOptions, WalStats};

const PROBE_FILE: &str = "glommio-probe";
const ZERO_CHUNK_BYTES: usize = 1 << 20;
/// An appender that finds this many records in the open batch and no write in flight
/// hands the batch to the writer thread at once instead of leaving it to the flusher.
const EARLY_WRITE_RECORDS: u32 = 32;
/// Once a batch went to the writer thread, batches of this many records or more go
/// there too, until one is smaller (hysteresis). Under many writers a small batch sent
/// through the ring between two of the thread's made about one thread write in ten take
/// 0.5-1 ms instead of ~60 µs (DEVELOPERS.md, Benchmarks); a lone writer's one-record
/// batches still take the ring, which costs it less than a hand-off.
const THREAD_STAY_RECORDS: u32 = 2;
/// Spares kept ready for rotation (see `provision_if_short`).
const SPARES_READY_MIN: usize = 2;

fn io_error<'a, T>(
    op: &'static str,
    path: &'a Path,
    offset: u64,
) -> impl FnOnce(glommio::GlommioError<T>) -> WalError + 'a {
    move |e| WalError::Io {
        op,
        path: path.to_path_buf(),
        offset,
        source: e.into(),
    }
}

fn std_io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        offset: 0,
        source,
    }
}

/// Gives a corruption error the full path of its segment.
fn locate(error: WalError, dir: &Path) -> WalError {
    match error {
        WalError::Corrupt {
            segment,
            offset,
            expected_crc,
            actual_crc,
        } => WalError::Corrupt {
            segment: dir.join(segment),
            offset,
            expected_crc,
            actual_crc,
        },
        WalError::LsnGap {
            segment,
            offset,
            expected,
            found,
        } => WalError::LsnGap {
            segment: dir.join(segment),
            offset,
            expected,
            found,
        },
        other => other,
    }
}

/// Works around glommio issue #605 (reads fail with EOPNOTSUPP unless the first file an
/// executor opens is non-empty): opens a 4 KiB file in `dir` with `DmaFile::open`. Call it
/// before any other file is opened on the executor; `Wal::open` calls it too.
pub async fn probe_workaround(dir: &Path) -> Result<(), WalError> {
    std::fs::create_dir_all(dir).map_err(std_io_error("create_dir", dir))?;
    let path = dir.join(PROBE_FILE);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size < BLOCK_BYTES as u64 {
        std::fs::write(&path, [0u8; BLOCK_BYTES]).map_err(std_io_error("write", &path))?;
    }
    let file = DmaFile::open(&path)
        .await
        .map_err(io_error("open", &path, 0))?;
    file.close().await.map_err(io_error("close", &path, 0))?;
    Ok(())
}

struct SegmentFile {
    slot: u32,
    path: PathBuf,
    file: Rc<DmaFile>,
    header: SegmentHeader,
}

struct SpareFile {
    slot: u32,
    path: PathBuf,
    file: Rc<DmaFile>,
    /// Reusable once a durable segment header has `retain_lsn >=` this. Until then a crash
    /// would make recovery look for this segment again (its release is not yet durable), so
    /// it must be neither overwritten nor deleted. `Lsn(0)`: reusable now.
    released_below: Lsn,
}

/// The batch being written, by the writer thread or through the executor's ring.
struct InFlight {
    sealed: SealedBatch,
    generation: u64,
    offset: u64,
    path: PathBuf,
    started: std::time::Instant,
}

struct State {
    open: BatchBuilder,
    open_buffer: Option<AlignedBuf>,
    spare_buffer: Option<AlignedBuf>,
    /// The batch being written, if any (at most one at a time).
    in_flight: Option<InFlight>,
    /// Whether the last batch went to the writer thread (see `THREAD_STAY_RECORDS`).
    last_to_thread: bool,
    next_lsn: Lsn,
    durable_lsn: Lsn,
    /// The last LSN of the batch in flight; `durable_lsn` when none is.
    sealed_last_lsn: Lsn,
    open_generation: u64,
    durable_generation: u64,
    waiters: [Vec<Waker>; 2],
    space_waiters: Vec<Waker>,
    flusher_waker: Option<Waker>,
    flusher_done: bool,
    close_waiters: Vec<Waker>,
    failed: Option<String>,
    closing: bool,
    chain: VecDeque<SegmentFile>,
    tail_offset: u64,
    spares: Vec<SpareFile>,
    next_slot: u32,
    retain_lsn: Lsn,
    provisioning: bool,
    /// A record did not fit the open batch: no more records go in until it is sealed.
    open_full: bool,
    /// Test-only fault injection: the next batch's durable write fails (FoundationDB's
    /// buggify).
    #[cfg(test)]
    fail_next_sync: bool,
    /// Test hook: no spare is pre-written in the background.
    #[cfg(test)]
    provision_paused: bool,
    stats: WalStats,
}

struct Inner {
    options: WalOptions,
    state: RefCell<State>,
    writer: LogWriter,
}

/// A shard's write-ahead log. Cheap to clone (`Rc`); use it on the executor that opened it.
#[derive(Clone)]
pub struct Wal {
    inner: Rc<Inner>,
}

/// Opens a segment file for direct I/O with O_DSYNC: a write returns only once its data
/// is durable (the kernel flushes the device's cache, as fdatasync would), so a batch
/// costs one I/O instead of a write and then an fdatasync.
async fn open_file(path: &Path) -> Result<DmaFile, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DSYNC)
        .dma_open(path)
        .await
        .map_err(io_error("open", path, 0))
}

async fn sync_dir(dir: &Path) -> Result<(), WalError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(io_error("open_dir", dir, 0))?;
    d.sync().await.map_err(io_error("fdatasync_dir", dir, 0))?;
    Ok(())
}

/// Writes zeros over `[from, to)` of `file` (4 KiB aligned), without fdatasync.
async fn write_zeros(file: &DmaFile, path: &Path, from: u64, to: u64) -> Result<(), WalError> {
    assert!(
        from % BLOCK_BYTES as u64 == 0 && to % BLOCK_BYTES as u64 == 0,
        "{from}..{to}"
    );
    let chunk = ZERO_CHUNK_BYTES.min((to - from) as usize).max(BLOCK_BYTES);
    let mut zeros = file.alloc_dma_buffer(chunk);
    zeros.as_bytes_mut().fill(0);
    let zeros = Rc::new(zeros);
    let mut at = from;
    while at < to {
        let n = (chunk as u64).min(to - at);
        let written = if n == chunk as u64 {
            file.write_rc_at(zeros.clone(), at).await
        } else {
            let mut part = file.alloc_dma_buffer(n as usize);
            part.as_bytes_mut().fill(0);
            file.write_at(part, at).await
        }
        .map_err(io_error("write_zeros", path, at))?;
        if written as u64 != n {
            return Err(short_write(path, at, written, n as usize));
        }
        at += n;
    }
    Ok(())
}

fn short_write(path: &Path, offset: u64, written: usize, wanted: usize) -> WalError {
    WalError::Io {
        op: "write",
        path: path.to_path_buf(),
        offset,
        source: std::io::Error::other(format!("short write: {written} of {wanted} bytes")),
    }
}

/// Creates the segment file of `slot` and makes it ready, then fdatasyncs it and its
/// directory. With `prewrite`, zeros are written over all of it. Without, its blocks are
/// only allocated (fallocate): ready in a few milliseconds where a pre-write takes tens
/// to hundreds, and its unwritten blocks read as zeros as a pre-written segment's do, so
/// recovery cannot tell the two apart; but the first write to each block also commits
/// its conversion to written, which made a 32 KiB write + fdatasync ~1.7× slower on this
/// project's disk (fio: 12.1k against 20.7k per second).
async fn make_segment(
    dir: &Path,
    slot: u32,
    segment_bytes: u64,
    prewrite: bool,
) -> Result<SpareFile, WalError> {
    let path = dir.join(segment_file_name(slot));
    let file = open_file(&path).await?;
    let prepared = async {
        if prewrite {
            write_zeros(&file, &path, 0, segment_bytes).await?;
        } else {
            file.pre_allocate(segment_bytes, false)
                .await
                .map_err(io_error("fallocate", &path, 0))?;
        }
        file.fdatasync()
            .await
            .map_err(io_error("fdatasync", &path, 0))?;
        sync_dir(dir).await
    }
    .await;
    if let Err(e) = prepared {
        // Best effort: a file left here holds nothing, and open drops one of the wrong size.
        let _ = file.remove().await;
        return Err(e);
    }
    Ok(SpareFile {
        released_below: Lsn(0),
        slot,
        path,
        file: Rc::new(file),
    })
}

/// A new spare segment in `slot`, made as `options.prewrite_spares` says; the caller
/// counts it with [`count_new_spare`].
async fn new_spare(options: &WalOptions, slot: u32) -> Result<SpareFile, WalError> {
    make_segment(
        &options.dir,
        slot,
        options.segment_bytes,
        options.prewrite_spares,
    )
    .await
}

/// Counts a spare [`new_spare`] made.
fn count_new_spare(stats: &mut WalStats, options: &WalOptions) {
    if options.prewrite_spares {
        stats.spares_prewritten += 1;
    } else {
        stats.spares_allocated += 1;
    }
}

async fn read_exact(
    file: &DmaFile,
    path: &Path,
    offset: u64,
    bytes: usize,
) -> Result<ReadResult, WalError> {
    file.read_at_aligned(offset, bytes)
        .await
        .map_err(io_error("read", path, offset))
}

impl Wal {
    /// Opens (creating if empty) the log in `options.dir`, runs recovery (truncating a torn
    /// tail and zeroing the rest of the last segment), and starts the flusher task on the
    /// current executor.
    pub async fn open(options: WalOptions) -> Result<Wal, WalError> {
        options.validate()?;
        let dir = options.dir.clone();
        probe_workaround(&dir).await?;
        let mut slots: Vec<u32> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(std_io_error("read_dir", &dir))? {
            let entry = entry.map_err(std_io_error("read_dir", &dir))?;
            if let Some(slot) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                slots.push(slot);
            }
        }
        slots.sort_unstable();
        let next_slot = slots.last().map_or(0, |s| s + 1);
        let mut files: Vec<(u32, PathBuf, Rc<DmaFile>, u64)> = Vec::new();
        let mut headers = Vec::new();
        for slot in slots {
            let path = dir.join(segment_file_name(slot));
            let file = open_file(&path).await?;
            let size = file.file_size().await.map_err(io_error("stat", &path, 0))?;
            let header = if size >= SEGMENT_HEADER_BYTES as u64 {
                let block = read_exact(&file, &path, 0, SEGMENT_HEADER_BYTES).await?;
                SegmentHeader::decode(&block)
            } else {
                Err(super::segment::HeaderError::Truncated)
            };
            if size != options.segment_bytes && header.is_err() {
                // A spare of another size (or cut short by a crash while pre-written): drop it.
                file.remove().await.map_err(io_error("remove", &path, 0))?;
                continue;
            }
            headers.push((slot, header));
            files.push((slot, path, Rc::new(file), size));
        }
        let plan = recovery::plan_chain(&headers).map_err(|e| locate(e, &dir))?;
        for (i, (slot, header)) in plan.chain.iter().enumerate() {
            let size = files.iter().find(|f| f.0 == *slot).map_or(0, |f| f.3);
            let is_tail = i + 1 == plan.chain.len();
            // Only the tail may be short (cut by hand or by a file system): recovery scans
            // what is left and pre-writes the rest again.
            let size_ok = if is_tail {
                size <= options.segment_bytes
            } else {
                size == options.segment_bytes
            };
            if header.segment_bytes != options.segment_bytes || !size_ok {
                return Err(WalError::InvalidOptions {
                    reason: "a segment of the log has another size than segment_bytes",
                });
            }
        }
        let mut tail_size = options.segment_bytes;
        let mut files: Vec<(u32, PathBuf, Rc<DmaFile>)> = files
            .into_iter()
            .map(|(slot, path, file, size)| {
                if plan.chain.last().is_some_and(|t| t.0 == slot) {
                    tail_size = size;
                }
                (slot, path, file)
            })
            .collect();
        let take = |slot: u32, files: &mut Vec<(u32, PathBuf, Rc<DmaFile>)>| {
            let at = files.iter().position(|(s, _, _)| *s == slot);
            at.map(|i| files.swap_remove(i))
        };
        let mut chain = VecDeque::new();
        for (slot, header) in &plan.chain {
            if let Some((slot, path, file)) = take(*slot, &mut files) {
                chain.push_back(SegmentFile {
                    slot,
                    path,
                    file,
                    header: *header,
                });
            }
        }
        let mut spares: Vec<SpareFile> = files
            .into_iter()
            .map(|(slot, path, file)| SpareFile {
                slot,
                path,
                file,
                released_below: Lsn(0),
            })
            .collect();
        let mut stats = WalStats::default();
        let (next_lsn, tail_offset) = if let Some(tail) = chain.back() {
            let readable = tail_size - tail_size % BLOCK_BYTES as u64;
            // Window by window: open holds at most 2 * batch_bytes_max + one record.
            let window = 2 * options.batch_bytes_max;
            let mut scanner =
                recovery::TailScanner::new(tail.header, tail.slot, readable as usize, window);
            let scan = loop {
                let (offset, bytes) = scanner.next_read();
                let read = read_exact(&tail.file, &tail.path, offset as u64, bytes).await?;
                if read.len() != bytes {
                    return Err(WalError::Io {
                        op: "read",
                        path: tail.path.clone(),
                        offset: offset as u64,
                        source: std::io::Error::other("short read"),
                    });
                }
                if let Some(result) = scanner.feed(offset, &read) {
                    break result.map_err(|e| locate(e, &dir))?;
                }
            };
            if scan.torn {
                let offset = scan.end_offset;
                tracing::warn!(segment = ?tail.path, offset, "wal: torn tail truncated");
            }
            if scan.dirty || scan.short || tail_size != options.segment_bytes {
                // Leftovers of a torn batch hold LSNs the next appends reuse: erase them.
                write_zeros(
                    &tail.file,
                    &tail.path,
                    scan.end_offset as u64,
                    options.segment_bytes,
                )
                .await?;
                tail.file
                    .fdatasync()
                    .await
                    .map_err(io_error("fdatasync", &tail.path, 0))?;
                stats.syncs += 1;
            }
            (scan.next_lsn, scan.end_offset as u64)
        } else {
            (Lsn::FIRST, SEGMENT_HEADER_BYTES as u64)
        };
        let window = options
            .batch_bytes_max
            .min(options.segment_bytes as usize - SEGMENT_HEADER_BYTES);
        for spare in &spares {
            let first = read_exact(
                &spare.file,
                &spare.path,
                SEGMENT_HEADER_BYTES as u64,
                window,
            )
            .await?;
            if recovery::spare_has_newer_batch(&first, next_lsn) {
                let block = read_exact(&spare.file, &spare.path, 0, SEGMENT_HEADER_BYTES).await?;
                return Err(locate(recovery::lost_header(spare.slot, &block), &dir));
            }
        }
        let mut next_slot = next_slot;
        if chain.is_empty() {
            let first = match spares.pop() {
                Some(spare) => spare,
                None => {
                    next_slot += 1;
                    let spare = new_spare(&options, next_slot - 1).await?;
                    count_new_spare(&mut stats, &options);
                    spare
                }
            };
            let header = SegmentHeader {
                sequence: 1,
                first_lsn: Lsn::FIRST,
                retain_lsn: Lsn::FIRST,
                segment_bytes: options.segment_bytes,
                batch_bytes_max: options.batch_bytes_max as u64,
            };
            write_header(&first.file, &first.path, &header).await?;
            stats.syncs += 1;
            chain.push_back(SegmentFile {
                slot: first.slot,
                path: first.path,
                file: first.file,
                header,
            });
        }
        while spares.len() > options.segments_spare_max {
            if let Some(extra) = spares.pop() {
                extra
                    .file
                    .remove()
                    .await
                    .map_err(io_error("remove", &extra.path, 0))?;
            }
        }
        if spares.is_empty() {
            next_slot += 1;
            spares.push(new_spare(&options, next_slot - 1).await?);
            count_new_spare(&mut stats, &options);
        }
        let retain_lsn = chain.back().map_or(Lsn::FIRST, |t| t.header.retain_lsn);
        let state = State {
            open: BatchBuilder::new(options.batch_bytes_max),
            open_buffer: Some(AlignedBuf::new(options.batch_bytes_max)),
            spare_buffer: Some(AlignedBuf::new(options.batch_bytes_max)),
            in_flight: None,
            last_to_thread: false,
            next_lsn,
            durable_lsn: next_lsn.prev(),
            sealed_last_lsn: next_lsn.prev(),
            open_generation: 1,
            durable_generation: 0,
            waiters: [Vec::with_capacity(256), Vec::with_capacity(256)],
            space_waiters: Vec::with_capacity(256),
            flusher_waker: None,
            flusher_done: false,
            close_waiters: Vec::new(),
            failed: None,
            closing: false,
            chain,
            tail_offset,
            spares,
            next_slot,
            retain_lsn,
            provisioning: false,
            open_full: false,
            #[cfg(test)]
            fail_next_sync: false,
            #[cfg(test)]
            provision_paused: false,
            stats,
        };
        let writer = LogWriter::start().map_err(std_io_error("spawn_wal_thread", &dir))?;
        let inner = Rc::new(Inner {
            options,
            state: RefCell::new(state),
            writer,
        });
        glommio::spawn_local(flusher(inner.clone())).detach();
        provision_if_short(&inner, &mut inner.state.borrow_mut());
        Ok(Wal { inner })
    }

    /// The first LSN the log retains (records below it were released).
    #[must_use]
    pub fn first_lsn(&self) -> Lsn {
        let st = self.inner.state.borrow();
        st.chain.front().map_or(Lsn::FIRST, |s| s.header.first_lsn)
    }

    /// The last durable LSN (`Lsn(first_lsn - 1)` when the log holds no record).
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        self.inner.state.borrow().durable_lsn
    }

    /// Counters since open.
    #[must_use]
    pub fn stats(&self) -> WalStats {
        self.inner.state.borrow().stats
    }

    /// Appends one record; resolves with its LSN once it is durable (its batch's write
    /// returned). LSNs are assigned in the order appends enter the open batch. Waits while
    /// the open batch is full. After a write or fdatasync error every append fails.
    pub async fn append(&self, meta: RecordMeta, payload: &[u8]) -> Result<Lsn, WalError> {
        let lsn = self.submit(meta, payload).await?;
        self.wait_durable(lsn).await?;
        Ok(lsn)
    }

    /// Puts one record in the open batch and resolves with its LSN as soon as it is there
    /// (waiting only while the open batch is full); it is not yet durable: await
    /// [`Wal::wait_durable`] before acknowledging it. This split lets a caller fix the
    /// order of its changes under its own lock and wait for durability outside it, so
    /// that the writers behind it join the same batch.
    pub async fn submit(&self, meta: RecordMeta, payload: &[u8]) -> Result<Lsn, WalError> {
        if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
            return Err(WalError::PayloadTooLarge {
                bytes: payload.len(),
                max: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        poll_fn(|cx| {
            let mut guard = self.inner.state.borrow_mut();
            let st = &mut *guard;
            if let Some(reason) = &st.failed {
                return Poll::Ready(Err(WalError::Failed {
                    reason: reason.clone(),
                }));
            }
            if st.closing {
                return Poll::Ready(Err(WalError::Closed));
            }
            match st.open_buffer.as_mut() {
                Some(buffer) if !st.open_full && st.open.fits(payload.len()) => {
                    let lsn = st.next_lsn;
                    st.open.push(buffer.as_bytes_mut(), lsn, &meta, payload);
                    st.next_lsn = lsn.next();
                    // Start the write now if the writer thread is idle (taking the batch
                    // it finished, if any): the batch leaves while later appenders run.
                    if st.in_flight.is_some() {
                        if let Some(done) = self.inner.writer.poll_done(None) {
                            complete(st, done);
                        }
                    }
                    if st.in_flight.is_none() && for_thread(st) {
                        start_write(&self.inner, st);
                    }
                    if let Some(waker) = st.flusher_waker.take() {
                        waker.wake();
                    }
                    Poll::Ready(Ok(lsn))
                }
                _ => {
                    // Close the batch to later arrivals too, so that a large record waiting
                    // here is not overtaken forever by small ones.
                    st.open_full = !st.open.is_empty();
                    st.space_waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Resolves once every record up to `lsn` is durable; an error if the WAL failed first.
    pub async fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        poll_fn(|cx| {
            let mut st = self.inner.state.borrow_mut();
            if st.durable_lsn >= lsn {
                return Poll::Ready(Ok(()));
            }
            if let Some(reason) = &st.failed {
                return Poll::Ready(Err(WalError::Failed {
                    reason: reason.clone(),
                }));
            }
            assert!(
                lsn < st.next_lsn,
                "wait for LSN {lsn} that was never assigned (next {})",
                st.next_lsn
            );
            if st.flusher_done {
                return Poll::Ready(Err(WalError::Closed));
            }
            // The record is in the batch in flight or in the open one; each list is woken
            // when its generation is durable.
            let generation = if lsn <= st.sealed_last_lsn {
                st.open_generation - 1
            } else {
                st.open_generation
            };
            if let Some(list) = st.waiters.get_mut((generation % 2) as usize) {
                list.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// The LSN of the last record put in a batch (durable or not).
    pub fn last_assigned_lsn(&self) -> Lsn {
        self.inner.state.borrow().next_lsn.prev()
    }

    /// Reads back the records with LSN >= `from` that are durable now, in order, one batch
    /// in memory at a time. `from` below `first_lsn()` is `WalError::Released`.
    pub async fn reader(&self, from: Lsn) -> Result<WalReader, WalError> {
        let st = self.inner.state.borrow();
        let first = st.chain.front().map_or(Lsn::FIRST, |s| s.header.first_lsn);
        if from < first {
            return Err(WalError::Released { from, first });
        }
        let segments: Vec<ReaderSegment> = st
            .chain
            .iter()
            .map(|s| ReaderSegment {
                path: s.path.clone(),
                file: s.file.clone(),
                first_lsn: s.header.first_lsn,
                window_bytes: (s.header.batch_bytes_max as usize)
                    .max(self.inner.options.batch_bytes_max),
            })
            .collect();
        let index = segments
            .iter()
            .rposition(|s| s.first_lsn <= from)
            .unwrap_or(0);
        let next_lsn = segments.get(index).map_or(Lsn::FIRST, |s| s.first_lsn);
        Ok(WalReader {
            inner: self.inner.clone(),
            segments,
            index,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_lsn,
            from,
            last_lsn: st.durable_lsn,
            window: None,
            pending: VecDeque::new(),
        })
    }

    /// Declares every record with LSN < `lsn` no longer needed: whole segments below it
    /// become spares (recycled by later rotations; beyond `segments_spare_max` deleted).
    /// Persisted with the header of the next segment started.
    pub fn release_before(&self, lsn: Lsn) {
        let mut st = self.inner.state.borrow_mut();
        let bound = lsn.min(st.durable_lsn.next());
        st.retain_lsn = st.retain_lsn.max(bound);
        while let Some(next_first) = st.chain.get(1).map(|s| s.header.first_lsn) {
            if next_first > st.retain_lsn {
                break;
            }
            let Some(old) = st.chain.pop_front() else {
                break;
            };
            st.spares.insert(
                0,
                SpareFile {
                    slot: old.slot,
                    path: old.path,
                    file: old.file,
                    released_below: next_first,
                },
            );
        }
    }

    /// Stops accepting appends, waits for the flusher to write every pending one, and stops it.
    /// Returns `WalError::Failed` if the WAL had failed.
    pub async fn close(self) -> Result<(), WalError> {
        {
            let mut st = self.inner.state.borrow_mut();
            st.closing = true;
            if let Some(w) = st.flusher_waker.take() {
                w.wake();
            }
        }
        poll_fn(|cx| {
            let mut st = self.inner.state.borrow_mut();
            if st.flusher_done && !st.provisioning {
                return Poll::Ready(());
            }
            st.close_waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let st = self.inner.state.borrow();
        match &st.failed {
            Some(reason) => Err(WalError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

async fn write_header(file: &DmaFile, path: &Path, header: &SegmentHeader) -> Result<(), WalError> {
    let mut block = file.alloc_dma_buffer(SEGMENT_HEADER_BYTES);
    header.encode(block.as_bytes_mut());
    let written = file
        .write_at(block, 0)
        .await
        .map_err(io_error("write_header", path, 0))?;
    if written != SEGMENT_HEADER_BYTES {
        return Err(short_write(path, 0, written, SEGMENT_HEADER_BYTES));
    }
    file.fdatasync()
        .await
        .map_err(io_error("fdatasync", path, 0))?;
    Ok(())
}

fn wake_all(list: &mut Vec<Waker>) {
    for w in list.drain(..) {
        w.wake();
    }
}

/// What the flusher does next.
enum Step {
    /// Take the writer thread's finished batch.
    Complete(Done),
    /// Write the open batch (rotating first if it does not fit the tail segment).
    Start,
    /// Stop: the WAL failed, or it is closing with nothing left to write.
    Exit,
}

async fn flusher(inner: Rc<Inner>) {
    loop {
        let step = poll_fn(|cx| {
            let mut st = inner.state.borrow_mut();
            if st.in_flight.is_some() {
                if let Some(done) = inner.writer.poll_done(Some(cx)) {
                    return Poll::Ready(Step::Complete(done));
                }
                // An appender may take the finished batch first and start the next.
                st.flusher_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if st.failed.is_some() {
                return Poll::Ready(Step::Exit);
            }
            if !st.open.is_empty() {
                return Poll::Ready(Step::Start);
            }
            if st.closing {
                return Poll::Ready(Step::Exit);
            }
            st.flusher_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        match step {
            Step::Complete(done) => complete(&mut inner.state.borrow_mut(), done),
            Step::Start => {
                let (needs_rotation, first_lsn) = {
                    let st = inner.state.borrow();
                    (!open_fits_tail(inner.as_ref(), &st), st.durable_lsn.next())
                };
                if needs_rotation {
                    if let Err(error) = rotate(&inner, first_lsn).await {
                        fail(&mut inner.state.borrow_mut(), &error);
                        continue;
                    }
                }
                let big = for_thread(&inner.state.borrow());
                if big {
                    start_write(&inner, &mut inner.state.borrow_mut());
                } else {
                    write_on_ring(&inner).await;
                }
            }
            Step::Exit => break,
        }
    }
    let mut st = inner.state.borrow_mut();
    st.flusher_done = true;
    wake_appenders(&mut st);
    wake_all(&mut st.close_waiters);
}

/// Wakes every appender: those waiting for durability and those waiting for room.
fn wake_appenders(st: &mut State) {
    let [a, b] = &mut st.waiters;
    wake_all(a);
    wake_all(b);
    wake_all(&mut st.space_waiters);
}

/// Marks the WAL failed for good (no retry: a failed write may have dropped dirty pages).
fn fail(st: &mut State, error: &WalError) {
    tracing::error!(%error, "wal: a write failed; the WAL stops");
    if st.failed.is_none() {
        st.failed = Some(error.to_string());
    }
    wake_appenders(st);
    if let Some(waker) = st.flusher_waker.take() {
        waker.wake();
    }
}

/// Whether the open batch, sealed now, fits the rest of the tail segment (if not, the
/// flusher rotates before writing it).
fn open_fits_tail(inner: &Inner, st: &State) -> bool {
    st.tail_offset + st.open.sealed_bytes() as u64 <= inner.options.segment_bytes
}

/// Seals the open batch for writing if no batch is in flight, it holds records and fits
/// the tail segment (otherwise the flusher rotates first): returns the job and the tail's
/// file, and the batch is then in flight.
fn seal_for_write(inner: &Inner, st: &mut State) -> Option<(Job, Rc<DmaFile>)> {
    if st.in_flight.is_some() || st.open.is_empty() || st.failed.is_some() {
        return None;
    }
    if !open_fits_tail(inner, st) {
        return None;
    }
    let segment_bytes = inner.options.segment_bytes;
    let Some(mut buffer) = st.open_buffer.take() else {
        unreachable!("the open batch has a buffer when no batch is in flight");
    };
    let sealed = st.open.seal(buffer.as_bytes_mut());
    st.open_buffer = st.spare_buffer.take();
    let generation = st.open_generation;
    st.open_generation += 1;
    st.sealed_last_lsn = sealed.last_lsn;
    st.open_full = false;
    wake_all(&mut st.space_waiters);
    let offset = st.tail_offset;
    assert!(
        offset % BLOCK_BYTES as u64 == 0,
        "batch offset {offset} unaligned"
    );
    assert!(
        offset + sealed.bytes as u64 <= segment_bytes,
        "batch past the segment end"
    );
    let Some(tail) = st.chain.back() else {
        unreachable!("the log always has a tail segment");
    };
    let path = tail.path.clone();
    let file = tail.file.clone();
    let job = Job {
        path: path.clone(),
        buf: buffer,
        bytes: sealed.bytes,
        offset,
    };
    st.in_flight = Some(InFlight {
        sealed,
        generation,
        offset,
        path,
        started: std::time::Instant::now(),
    });
    Some((job, file))
}

/// Whether the open batch goes to the writer thread: `EARLY_WRITE_RECORDS` or more, or
/// `THREAD_STAY_RECORDS` or more right after a batch that went there.
fn for_thread(st: &State) -> bool {
    goes_to_thread(st.open.records(), st.last_to_thread)
}

/// [`for_thread`]'s rule, for a batch of `records` after one that did (or did not) go to
/// the thread.
fn goes_to_thread(records: u32, last_to_thread: bool) -> bool {
    records >= EARLY_WRITE_RECORDS || (last_to_thread && records >= THREAD_STAY_RECORDS)
}

/// Hands the open batch to the writer thread if [`seal_for_write`] lets it go now.
fn start_write(inner: &Inner, st: &mut State) {
    let Some((job, _)) = seal_for_write(inner, st) else {
        return;
    };
    st.last_to_thread = true;
    if inner.writer.send(job) {
        st.stats.thread_batches += 1;
    } else {
        // Nothing is in flight after all (the flusher must not wait for it).
        st.in_flight = None;
        let error = WalError::Failed {
            reason: "the WAL's writer thread is gone".into(),
        };
        fail(st, &error);
    }
}

/// Writes the open batch through the executor's own ring (a copy into a DMA buffer) and
/// takes the result, if [`seal_for_write`] lets it go now.
async fn write_on_ring(inner: &Inner) {
    let Some((job, file)) = seal_for_write(inner, &mut inner.state.borrow_mut()) else {
        return;
    };
    inner.state.borrow_mut().last_to_thread = false;
    let mut dma = file.alloc_dma_buffer(job.bytes);
    if let Some(bytes) = job.buf.as_bytes().get(..job.bytes) {
        dma.as_bytes_mut().copy_from_slice(bytes);
    }
    let result = file
        .write_at(dma, job.offset)
        .await
        .map_err(std::io::Error::from);
    complete(
        &mut inner.state.borrow_mut(),
        Done {
            buf: job.buf,
            result,
            timing: None,
        },
    );
}

/// Takes a finished batch write (the writer thread's or the ring's): on success its
/// records are durable and their appenders are woken; on failure the WAL stops.
fn complete(st: &mut State, done: Done) {
    let Some(batch) = st.in_flight.take() else {
        unreachable!("a finished write without a batch in flight");
    };
    // The written buffer comes back as the spare (at most two exist).
    if st.open_buffer.is_none() {
        st.open_buffer = Some(done.buf);
        wake_all(&mut st.space_waiters);
    } else {
        st.spare_buffer = Some(done.buf);
    }
    #[cfg(test)]
    let done_result = if std::mem::take(&mut st.fail_next_sync) {
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    } else {
        done.result
    };
    #[cfg(not(test))]
    let done_result = done.result;
    let sealed = batch.sealed;
    let result = match done_result {
        Ok(written) if written == sealed.bytes => Ok(()),
        Ok(written) => Err(short_write(
            &batch.path,
            batch.offset,
            written,
            sealed.bytes,
        )),
        Err(source) => Err(WalError::Io {
            op: "write",
            path: batch.path.clone(),
            offset: batch.offset,
            source,
        }),
    };
    match result {
        Ok(()) => {
            assert!(
                sealed.first_lsn == st.durable_lsn.next(),
                "batch {} after {}",
                sealed.first_lsn,
                st.durable_lsn
            );
            // The file is O_DSYNC: the write returned once the batch is durable.
            st.tail_offset = batch.offset + sealed.bytes as u64;
            st.durable_lsn = sealed.last_lsn;
            st.durable_generation = batch.generation;
            st.stats.batches += 1;
            st.stats.records += u64::from(sealed.records);
            st.stats.bytes += sealed.bytes as u64;
            st.stats.syncs += 1;
            let now = std::time::Instant::now();
            st.stats.write_us += now.duration_since(batch.started).as_micros() as u64;
            if let Some((began, ended)) = done.timing {
                let us = |from: std::time::Instant, to: std::time::Instant| {
                    to.saturating_duration_since(from).as_micros() as u64
                };
                st.stats.thread_pickup_us += us(batch.started, began);
                st.stats.thread_pwrite_us += us(began, ended);
                st.stats.thread_reap_us += us(ended, now);
            }
            if let Some(list) = st.waiters.get_mut((batch.generation % 2) as usize) {
                wake_all(list);
            }
            if let Some(waker) = st.flusher_waker.take() {
                waker.wake();
            }
        }
        Err(error) => fail(st, &error),
    }
}

/// Starts a new segment for the batch starting at `first_lsn`: takes a spare (waiting for
/// the one being pre-written, or pre-writing one inline, if none is ready), writes and
/// fdatasyncs its header, makes it the tail.
async fn rotate(inner: &Rc<Inner>, first_lsn: Lsn) -> Result<(), WalError> {
    // Set when the first look finds no spare ready: the rotation waits from then on.
    let mut stalled: Option<std::time::Instant> = None;
    let spare = loop {
        let (found, provisioning) = {
            let mut st = inner.state.borrow_mut();
            let persisted = st.chain.back().map_or(Lsn(0), |t| t.header.retain_lsn);
            let at = st
                .spares
                .iter()
                .rposition(|s| s.released_below <= persisted);
            (at.map(|i| st.spares.remove(i)), st.provisioning)
        };
        if let Some(spare) = found {
            break spare;
        }
        if stalled.is_none() {
            stalled = Some(std::time::Instant::now());
            inner.state.borrow_mut().stats.rotation_stalls += 1;
            // Rather than wait for a pre-write (tens of ms with every append of the shard
            // waiting), take a segment that is only allocated: its batches' fdatasyncs
            // cost more until it is recycled, but nothing stops.
            let slot = take_slot(&mut inner.state.borrow_mut());
            match make_segment(&inner.options.dir, slot, inner.options.segment_bytes, false).await {
                Ok(spare) => {
                    inner.state.borrow_mut().stats.rotations_unwritten += 1;
                    break spare;
                }
                // A file system without fallocate: wait for a pre-written one instead.
                Err(error) => tracing::warn!(
                    %error,
                    "wal: allocating a segment failed; waiting for a pre-written one"
                ),
            }
        }
        if provisioning {
            // The spare being pre-written is nearer done than a new one would be.
            poll_fn(|cx| {
                let mut st = inner.state.borrow_mut();
                if !st.provisioning {
                    return Poll::Ready(());
                }
                st.close_waiters.push(cx.waker().clone());
                Poll::Pending
            })
            .await;
            continue;
        }
        let slot = take_slot(&mut inner.state.borrow_mut());
        break make_segment(&inner.options.dir, slot, inner.options.segment_bytes, true).await?;
    };
    let header = {
        let st = inner.state.borrow();
        let Some(tail) = st.chain.back() else {
            unreachable!("the log always has a tail segment");
        };
        SegmentHeader {
            sequence: tail.header.sequence + 1,
            first_lsn,
            retain_lsn: st.retain_lsn.min(first_lsn),
            segment_bytes: inner.options.segment_bytes,
            batch_bytes_max: inner.options.batch_bytes_max as u64,
        }
    };
    if let Some(began) = stalled {
        let waited = began.elapsed();
        inner.state.borrow_mut().stats.rotation_stall_us += waited.as_micros() as u64;
        // Every append of the shard waited this long: say so where an operator looks.
        tracing::warn!(
            dir = %inner.options.dir.display(),
            waited_ms = waited.as_secs_f64() * 1e3,
            "WAL rotation found no pre-written spare segment ready"
        );
    }
    write_header(&spare.file, &spare.path, &header).await?;
    let mut st = inner.state.borrow_mut();
    st.chain.push_back(SegmentFile {
        slot: spare.slot,
        path: spare.path,
        file: spare.file,
        header,
    });
    st.tail_offset = SEGMENT_HEADER_BYTES as u64;
    st.stats.rotations += 1;
    st.stats.syncs += 1;
    // The new header made older releases durable: trim spares beyond the limit.
    while st.spares.len() > inner.options.segments_spare_max {
        let Some(at) = st
            .spares
            .iter()
            .position(|s| s.released_below <= header.retain_lsn)
        else {
            break;
        };
        let extra = st.spares.remove(at);
        glommio::spawn_local(async move {
            if let Err(e) = extra.file.remove().await {
                tracing::warn!(path = ?extra.path, error = %e, "wal: removing a spare failed");
            }
        })
        .detach();
    }
    provision_if_short(inner, &mut st);
    Ok(())
}

/// The slot number for a new segment file (never reused while the WAL is open).
fn take_slot(st: &mut State) -> u32 {
    st.next_slot += 1;
    st.next_slot - 1
}

/// Starts making a spare in the background ([`new_spare`]: pre-written, or allocated
/// with `prewrite_spares: false`) when fewer than [`SPARES_READY_MIN`] (at most
/// `segments_spare_max`) spares are reusable now and none is being made.
///
/// Two, not one: a segment released by a checkpoint becomes reusable only at the rotation
/// after its release (the next segment header makes the release durable), and under a
/// heavy write load pre-writing a segment took about as long as filling one (250-280 ms
/// for 32 MiB against ~370 ms), so with one ready spare every few rotations waited for a
/// pre-write inline (30-50 ms with no write going out). With two, about one rotation in
/// 25 still waits, now only for the rest of the pre-write under way (three kept the
/// disk busier and raised the put p99 in two runs).
fn provision_if_short(inner: &Rc<Inner>, st: &mut State) {
    if st.provisioning || st.closing || st.failed.is_some() {
        return;
    }
    #[cfg(test)]
    if st.provision_paused {
        return;
    }
    let persisted = st.chain.back().map_or(Lsn(0), |t| t.header.retain_lsn);
    let ready = st
        .spares
        .iter()
        .filter(|s| s.released_below <= persisted)
        .count();
    if ready >= SPARES_READY_MIN.min(inner.options.segments_spare_max) {
        return;
    }
    st.provisioning = true;
    let slot = take_slot(st);
    glommio::spawn_local(provision(inner.clone(), slot)).detach();
}

/// Makes a spare segment in the background (pre-written or allocated, as the options say),
/// and then another if still short.
async fn provision(inner: Rc<Inner>, slot: u32) {
    let result = new_spare(&inner.options, slot).await;
    let mut st = inner.state.borrow_mut();
    st.provisioning = false;
    match result {
        Ok(spare) => {
            st.spares.push(spare);
            count_new_spare(&mut st.stats, &inner.options);
            provision_if_short(&inner, &mut st);
        }
        Err(error) => tracing::warn!(%error, "wal: making a spare segment failed"),
    }
    wake_all(&mut st.close_waiters);
}

struct ReaderSegment {
    path: PathBuf,
    file: Rc<DmaFile>,
    first_lsn: Lsn,
    window_bytes: usize,
}

/// Reads records back in LSN order (see `Wal::reader`).
pub struct WalReader {
    inner: Rc<Inner>,
    segments: Vec<ReaderSegment>,
    index: usize,
    offset: u64,
    next_lsn: Lsn,
    from: Lsn,
    last_lsn: Lsn,
    window: Option<(u64, ReadResult)>,
    pending: VecDeque<Record>,
}

impl WalReader {
    /// The next record with LSN >= `from`, or `None` after the last durable one.
    pub async fn next(&mut self) -> Result<Option<Record>, WalError> {
        loop {
            while let Some(record) = self.pending.pop_front() {
                if record.lsn >= self.from {
                    return Ok(Some(record));
                }
            }
            if self.next_lsn > self.last_lsn {
                return Ok(None);
            }
            while self
                .segments
                .get(self.index + 1)
                .is_some_and(|s| s.first_lsn <= self.next_lsn)
            {
                self.index += 1;
                self.offset = SEGMENT_HEADER_BYTES as u64;
                self.window = None;
            }
            self.read_batch().await?;
        }
    }

    async fn read_batch(&mut self) -> Result<(), WalError> {
        let segment_bytes = self.inner.options.segment_bytes;
        let Some(segment) = self.segments.get(self.index) else {
            unreachable!("index within segments");
        };
        for attempt in 0..2 {
            let covered = self.window.as_ref().is_some_and(|(start, w)| {
                *start <= self.offset && self.offset < *start + w.len() as u64
            });
            if !covered || attempt == 1 {
                let bytes = (segment.window_bytes as u64).min(segment_bytes - self.offset) as usize;
                let w = read_exact(&segment.file, &segment.path, self.offset, bytes).await?;
                self.window = Some((self.offset, w));
            }
            let Some((start, window)) = self.window.as_ref() else {
                unreachable!("window just read");
            };
            let rest = window.get((self.offset - start) as usize..).unwrap_or(&[]);
            match recovery::check_batch(rest, self.next_lsn) {
                BatchCheck::Valid { bytes, last_lsn } => {
                    self.pending
                        .extend(recovery::batch_records(rest.get(..bytes).unwrap_or(&[])));
                    self.offset += bytes as u64;
                    self.next_lsn = last_lsn.next();
                    return Ok(());
                }
                BatchCheck::Incomplete if attempt == 0 && *start != self.offset => {}
                other => return Err(self.read_error(other, rest)),
            }
        }
        Err(self.read_error(BatchCheck::Incomplete, &[]))
    }

    fn read_error(&self, check: BatchCheck, rest: &[u8]) -> WalError {
        let first = {
            let st = self.inner.state.borrow();
            st.chain.front().map_or(Lsn::FIRST, |s| s.header.first_lsn)
        };
        if first > self.next_lsn {
            return WalError::Released {
                from: self.next_lsn,
                first,
            };
        }
        let path = self
            .segments
            .get(self.index)
            .map(|s| s.path.clone())
            .unwrap_or_default();
        match check {
            BatchCheck::Stop(Stop::Gap { lsn }) => WalError::LsnGap {
                segment: path,
                offset: self.offset,
                expected: self.next_lsn,
                found: lsn,
            },
            BatchCheck::Stop(Stop::Damaged {
                offset,
                expected_crc,
                actual_crc,
            }) => WalError::Corrupt {
                segment: path,
                offset: self.offset + offset as u64,
                expected_crc,
                actual_crc,
            },
            _ => {
                let (expected_crc, actual_crc) = super::record::frame_crcs(rest);
                WalError::Corrupt {
                    segment: path,
                    offset: self.offset,
                    expected_crc,
                    actual_crc,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GroupId, LogIndex, RecordKind, Term};
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};

    fn meta() -> RecordMeta {
        RecordMeta {
            group: GroupId(1),
            term: Term(1),
            index: LogIndex(1),
            kind: RecordKind::Data,
        }
    }

    /// Runs `test` on a fresh executor with small WAL options in a temporary directory
    /// (the glommio #605 probe done first).
    fn with_wal_options<F, Fut>(test: F)
    where
        F: FnOnce(WalOptions) -> Fut + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let dir = tempfile::Builder::new()
            .prefix("wal-unit")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let path = dir.path().to_path_buf();
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(2 << 20)
            .make()
            .unwrap()
            .run(async move {
                probe_workaround(&path).await.unwrap();
                let mut options = WalOptions::new(path);
                options.segment_bytes = 2 << 20;
                options.batch_bytes_max = super::super::batch::BATCH_BYTES_MIN;
                test(options).await;
            });
    }

    /// Reopens the WAL and checks that it holds exactly `expected`, in order, then closes it.
    async fn reopen_and_read_back(options: WalOptions, expected: &[(Lsn, Vec<u8>)]) {
        let wal = Wal::open(options).await.unwrap();
        let mut reader = wal.reader(Lsn::FIRST).await.unwrap();
        for (lsn, payload) in expected {
            let record = reader.next().await.unwrap().unwrap();
            assert_eq!(record.lsn, *lsn);
            assert_eq!(&record.payload, payload);
        }
        assert!(reader.next().await.unwrap().is_none());
        wal.close().await.unwrap();
    }

    /// Appends `n` records from `n` tasks at once and checks that every one fails with
    /// [`WalError::Failed`].
    async fn appends_all_fail(wal: &Wal, n: usize) {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let wal = wal.clone();
                glommio::spawn_local(async move { wal.append(meta(), b"x").await })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await, Err(WalError::Failed { .. })));
        }
    }

    /// fsyncgate: after a failed durable write (O_DSYNC, or an fdatasync) the kernel may
    /// have dropped the dirty pages and a retry would report success. So the WAL never
    /// retries: the failed batch's appends and every later one fail, and close reports it.
    #[test]
    fn failed_fdatasync_fails_the_wal_for_good() {
        with_wal_options(|options| async move {
            let wal = Wal::open(options.clone()).await.unwrap();
            assert_eq!(wal.append(meta(), b"one").await.unwrap(), Lsn(1));
            wal.inner.state.borrow_mut().fail_next_sync = true;
            appends_all_fail(&wal, 8).await;
            assert_eq!(wal.last_lsn(), Lsn(1));
            assert!(matches!(
                wal.append(meta(), b"later").await,
                Err(WalError::Failed { .. })
            ));
            assert!(matches!(
                wal.clone().close().await,
                Err(WalError::Failed { .. })
            ));
            // Restart: the log recovers; the failed batch may or may not be there.
            let wal = Wal::open(options).await.unwrap();
            assert!(wal.last_lsn() >= Lsn(1));
            let next = wal.append(meta(), b"after").await.unwrap();
            assert_eq!(next, wal.last_lsn());
            wal.close().await.unwrap();
        });
    }

    /// A waiter registers with the generation that holds its record only: the write of the
    /// batch in flight does not wake the waiters of the open batch.
    #[test]
    fn a_waiter_waits_on_its_own_batch_only() {
        with_wal_options(|options| async move {
            let wal = Wal::open(options).await.unwrap();
            let first = wal.submit(meta(), b"in flight").await.unwrap();
            // Let the flusher take the first record's batch and start writing it.
            for _ in 0..1000 {
                if wal.inner.state.borrow().sealed_last_lsn >= first {
                    break;
                }
                futures_lite::future::yield_now().await;
            }
            let second = wal.submit(meta(), b"open").await.unwrap();
            let (in_flight, open) = {
                let st = wal.inner.state.borrow();
                assert!(st.sealed_last_lsn >= first && st.sealed_last_lsn < second);
                (st.open_generation - 1, st.open_generation)
            };
            let mut wait_second = Box::pin(wal.wait_durable(second));
            assert!(futures_lite::future::poll_once(&mut wait_second)
                .await
                .is_none());
            {
                let st = wal.inner.state.borrow();
                assert_eq!(st.waiters[(open % 2) as usize].len(), 1);
                assert!(st.waiters[(in_flight % 2) as usize].is_empty());
            }
            wal.wait_durable(first).await.unwrap();
            wait_second.await.unwrap();
            wal.close().await.unwrap();
        });
    }

    /// Many appenders: batches of 32 records or more go to the writer thread as soon as
    /// they are sealed, smaller ones through the ring, across rotations; every record is
    /// durable once acknowledged, with its own LSN, and reads back in order after a reopen.
    #[test]
    fn many_appenders_use_the_writer_thread_and_every_record_reads_back() {
        with_wal_options(|options| async move {
            let wal = Wal::open(options.clone()).await.unwrap();
            let (writers, rounds) = (200u32, 30u32);
            let payload =
                |w: u32, r: u32| format!("writer {w} round {r} ").repeat(1 + (w % 80) as usize);
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let wal = wal.clone();
                    glommio::spawn_local(async move {
                        let mut lsns = Vec::new();
                        for r in 0..rounds {
                            let lsn = wal.append(meta(), payload(w, r).as_bytes()).await.unwrap();
                            assert!(wal.last_lsn() >= lsn, "acknowledged before durable");
                            lsns.push((lsn, w, r));
                        }
                        lsns
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await);
            }
            // One appender alone: batches of one record, through the ring.
            for r in 0..3 {
                let lsn = wal
                    .append(meta(), payload(writers, r).as_bytes())
                    .await
                    .unwrap();
                all.push((lsn, writers, r));
            }
            all.sort_unstable();
            let total = u64::from(writers * rounds + 3);
            let lsns: Vec<u64> = all.iter().map(|(l, _, _)| l.0).collect();
            assert_eq!(lsns, (1..=total).collect::<Vec<_>>());
            let stats = wal.stats();
            assert!(stats.rotations > 0, "{stats:?}");
            assert!(
                stats.thread_batches > 0 && stats.thread_batches < stats.batches,
                "both paths used: {stats:?}"
            );
            // The thread's batches split their time into pickup, pwrite and reap, each a
            // part of `write_us` (every part is rounded down, so the sum cannot exceed it).
            assert!(stats.thread_pwrite_us > 0, "{stats:?}");
            assert!(
                stats.thread_pickup_us + stats.thread_pwrite_us + stats.thread_reap_us
                    <= stats.write_us,
                "{stats:?}"
            );
            wal.close().await.unwrap();
            let wal = Wal::open(options.clone()).await.unwrap();
            assert_eq!(wal.last_lsn(), Lsn(total));
            wal.close().await.unwrap();
            let expected: Vec<_> = all
                .iter()
                .map(|(lsn, w, r)| (*lsn, payload(*w, *r).into_bytes()))
                .collect();
            reopen_and_read_back(options, &expected).await;
        });
    }

    /// A rotation that finds no pre-written spare takes a segment that is only allocated,
    /// at once, instead of waiting for a pre-write; its records are durable, and read back
    /// after a reopen like any others (its unwritten blocks read as zeros).
    #[test]
    fn a_rotation_without_a_spare_takes_an_allocated_segment() {
        with_wal_options(|options| async move {
            let wal = Wal::open(options.clone()).await.unwrap();
            // No pre-written spare from here on: pause the background pre-writes, let the
            // one started at open finish, and drop every spare.
            wal.inner.state.borrow_mut().provision_paused = true;
            poll_fn(|cx| {
                let mut st = wal.inner.state.borrow_mut();
                if !st.provisioning {
                    return Poll::Ready(());
                }
                st.close_waiters.push(cx.waker().clone());
                Poll::Pending
            })
            .await;
            wal.inner.state.borrow_mut().spares.clear();
            let payload = |i: u32| format!("record {i} ").repeat(40).into_bytes();
            let mut written = Vec::new();
            let mut i = 0;
            while wal.stats().rotations < 2 {
                let lsn = wal.append(meta(), &payload(i)).await.unwrap();
                written.push((lsn, i));
                i += 1;
                assert!(i < 100_000, "no rotation: {:?}", wal.stats());
            }
            let stats = wal.stats();
            assert_eq!(stats.rotations_unwritten, 2, "{stats:?}");
            assert_eq!(stats.rotation_stalls, 2, "{stats:?}");
            // The spares made before the pause were pre-written (the default).
            assert!(stats.spares_prewritten >= 1, "{stats:?}");
            assert_eq!(stats.spares_allocated, 0, "{stats:?}");
            // Records after the rotation land in the allocated segments too.
            for _ in 0..10 {
                let lsn = wal.append(meta(), &payload(i)).await.unwrap();
                written.push((lsn, i));
                i += 1;
            }
            wal.close().await.unwrap();
            let wal = Wal::open(options.clone()).await.unwrap();
            assert_eq!(wal.last_lsn(), written.last().unwrap().0);
            wal.close().await.unwrap();
            let expected: Vec<_> = written.iter().map(|(lsn, i)| (*lsn, payload(*i))).collect();
            reopen_and_read_back(options, &expected).await;
        });
    }

    /// With `prewrite_spares: false` every new segment is only allocated, no zeros are
    /// written, and the records in those segments read back after a reopen.
    #[test]
    fn spares_are_only_allocated_when_asked() {
        with_wal_options(|mut options| async move {
            options.prewrite_spares = false;
            let wal = Wal::open(options.clone()).await.unwrap();
            let payload = |i: u32| format!("record {i} ").repeat(60).into_bytes();
            let mut written = Vec::new();
            for i in 0..20_000u32 {
                if wal.stats().rotations >= 3 {
                    break;
                }
                written.push((wal.append(meta(), &payload(i)).await.unwrap(), i));
            }
            let stats = wal.stats();
            assert!(stats.rotations >= 3, "{stats:?}");
            assert!(stats.spares_allocated >= 1, "{stats:?}");
            assert_eq!(stats.spares_prewritten, 0, "{stats:?}");
            wal.close().await.unwrap();
            let expected: Vec<_> = written.iter().map(|(lsn, i)| (*lsn, payload(*i))).collect();
            reopen_and_read_back(options, &expected).await;
        });
    }

    /// A failed write of a batch the writer thread wrote fails the WAL for good, as one
    /// through the ring does (the fault is injected where either path's result is taken).
    #[test]
    fn a_failed_write_on_the_writer_thread_fails_the_wal() {
        with_wal_options(|options| async move {
            let wal = Wal::open(options).await.unwrap();
            wal.inner.state.borrow_mut().fail_next_sync = true;
            appends_all_fail(&wal, 64).await;
            let stats = wal.stats();
            assert_eq!((stats.thread_batches, stats.batches), (1, 0), "{stats:?}");
            assert!(matches!(
                wal.clone().close().await,
                Err(WalError::Failed { .. })
            ));
        });
    }

    #[test]
    fn batches_stay_with_the_writer_thread_until_one_is_a_lone_record() {
        // From the ring, only a big batch moves to the thread.
        assert!(!goes_to_thread(EARLY_WRITE_RECORDS - 1, false));
        assert!(goes_to_thread(EARLY_WRITE_RECORDS, false));
        // After a thread batch, any batch of two or more stays there: a small batch on
        // the ring between two thread writes slowed the thread's next writes.
        assert!(goes_to_thread(THREAD_STAY_RECORDS, true));
        assert!(goes_to_thread(EARLY_WRITE_RECORDS - 1, true));
        // A lone record goes back to the ring, cheaper for a lone writer.
        assert!(!goes_to_thread(1, true));
    }

    #[test]
    fn append_after_close_is_refused() {
        with_wal_options(|options| async move {
            let wal = Wal::open(options).await.unwrap();
            let other = wal.clone();
            wal.close().await.unwrap();
            assert!(matches!(
                other.append(meta(), b"late").await,
                Err(WalError::Closed)
            ));
        });
    }
}
