//! The WAL's writer thread: one plain OS thread per log that performs the batch writes
//! (`pwrite` on an O_DIRECT | O_DSYNC descriptor), so that a batch's write starts the
//! moment it is sealed instead of when the executor's run queue next drains.
//!
//! Why a thread and not the executor's ring: glommio hands queued I/O to the kernel only
//! when its run queue is empty (or on preemption). With many appenders the whole group
//! (say 256 writers) therefore ran its CPU work first and only then its write: the two
//! added up (DEVELOPERS.md, "What a direct write costs on this VM"). A job sent here is
//! written at once, while the executor goes on with the next appenders, and the
//! executor can take a finished job without waiting for its run queue to drain
//! ([`LogWriter::poll_done`] without a context, from an appender).
//!
//! Only big batches come here (`writer.rs`, `EARLY_WRITE_RECORDS`): a handoff wakes the
//! thread and, when the job is done, the executor, which cost a lone writer ~55 µs per put.
//!
//! The thread owns nothing but the descriptor of the segment it last wrote (re-opened
//! when a job names another file) and the buffers passing through. It ends when its
//! [`LogWriter`] is dropped. One job is in flight at a time: the caller sends the next
//! only after it took the previous one's [`Done`]. The thread inherits the CPU mask of the
//! executor that starts it: a node's shard is pinned, so its thread shares its CPU.
//!
//! Placement, measured (engine bench, 256 writers, one unpinned executor on 2 vCPUs):
//! when the scheduler put the thread on the executor's CPU it stayed there for 100-300 ms
//! at a time, and the bench ran at ~330k puts/s and p50 ~800 µs instead of ~640k and
//! ~410 µs (the whole bench under `taskset -c 0` gives the former). Keeping the thread off
//! the executor's CPU (an affinity mask without it) was worse: 450-506k puts/s and put
//! p99.9 ~6 ms, as the unpinned executor then came to that CPU too. So the scheduler
//! decides.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};
use std::time::Instant;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::segment::BLOCK_BYTES;

/// One 4 KiB block, aligned as O_DIRECT wants its memory.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK_BYTES]);

/// A batch buffer of whole 4 KiB blocks, 4 KiB aligned (plain heap memory, sendable to
/// the writer thread).
pub(super) struct AlignedBuf {
    blocks: Vec<Block>,
}

impl AlignedBuf {
    /// A zeroed buffer of `bytes` (a multiple of 4 KiB).
    pub(super) fn new(bytes: usize) -> AlignedBuf {
        assert!(
            bytes % BLOCK_BYTES == 0,
            "buffer of {bytes} bytes unaligned"
        );
        AlignedBuf {
            blocks: vec![Block([0; BLOCK_BYTES]); bytes / BLOCK_BYTES],
        }
    }

    /// The whole buffer as bytes.
    pub(super) fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.blocks.as_mut_bytes()
    }

    /// The whole buffer as bytes.
    pub(super) fn as_bytes(&self) -> &[u8] {
        self.blocks.as_bytes()
    }
}

/// A batch to write: `bytes` from the start of `buf` at `offset` of the file at `path`.
pub(super) struct Job {
    pub(super) path: PathBuf,
    pub(super) buf: AlignedBuf,
    pub(super) bytes: usize,
    pub(super) offset: u64,
}

/// A finished job: the buffer back, what the write returned, and when the thread began
/// and ended it (for [`super::WalStats`]; `None` for a write on the executor's ring).
pub(super) struct Done {
    pub(super) buf: AlignedBuf,
    pub(super) result: std::io::Result<usize>,
    pub(super) timing: Option<(Instant, Instant)>,
}

/// Where the thread leaves a finished job and finds the task to wake.
#[derive(Default)]
struct Slot {
    done: Option<Done>,
    waker: Option<Waker>,
}

/// The executor's end of the writer thread.
pub(super) struct LogWriter {
    jobs: flume::Sender<Job>,
    slot: Arc<Mutex<Slot>>,
}

impl LogWriter {
    /// Starts the thread (named `keel-wal`).
    pub(super) fn start() -> std::io::Result<LogWriter> {
        let (jobs, job_rx) = flume::bounded::<Job>(1);
        let slot = Arc::new(Mutex::new(Slot::default()));
        let theirs = slot.clone();
        std::thread::Builder::new()
            .name("keel-wal".into())
            .spawn(move || run(&job_rx, &theirs))?;
        Ok(LogWriter { jobs, slot })
    }

    /// Hands a job to the thread; `false` if the thread is gone.
    pub(super) fn send(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// The finished job, if there is one; otherwise `cx`'s task (if given) is woken when
    /// the job in flight finishes.
    pub(super) fn poll_done(&self, cx: Option<&Context<'_>>) -> Option<Done> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let done = slot.done.take();
        if done.is_none() {
            if let Some(cx) = cx {
                slot.waker = Some(cx.waker().clone());
            }
        }
        done
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
}

fn run(jobs: &flume::Receiver<Job>, slot: &Mutex<Slot>) {
    let mut file: Option<(PathBuf, File)> = None;
    while let Ok(job) = jobs.recv() {
        let began = Instant::now();
        let result = write(&mut file, &job);
        let ended = Instant::now();
        let waker = {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            assert!(
                slot.done.is_none(),
                "a job sent before the last one was taken"
            );
            slot.done = Some(Done {
                buf: job.buf,
                result,
                timing: Some((began, ended)),
            });
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

fn write(file: &mut Option<(PathBuf, File)>, job: &Job) -> std::io::Result<usize> {
    let same = file.as_ref().is_some_and(|(p, _)| *p == job.path);
    if !same {
        *file = Some((job.path.clone(), open(&job.path)?));
    }
    let Some((_, f)) = file.as_ref() else {
        unreachable!("opened above");
    };
    let Some(bytes) = job.buf.as_bytes().get(..job.bytes) else {
        return Err(std::io::Error::other("job longer than its buffer"));
    };
    f.write_at(bytes, job.offset)
}
