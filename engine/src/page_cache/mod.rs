//! The per-shard page cache: a fixed number of page frames, allocated at start-up, shared
//! by every B-tree of the shard.
//!
//! Invariants:
//! - Memory is fixed: `frames` buffers of `PAGE_BYTES` each, never more.
//! - A frame is in the map iff it holds (or is loading) that page; a loading frame is
//!   never handed out until its read completed and the page passed its checksum, so a
//!   corrupt page is reported to every reader and never cached.
//! - A pinned frame is never evicted; a dirty frame is written back before it is reused.
//!   Write-back may happen at any time, so only pages that no durable checkpoint
//!   references may be dirty (the B-tree copies a page on write to guarantee it).
//!
//! Eviction is CLOCK (second chance). When every frame is pinned, a claimer waits for an
//! unpin rather than growing the cache.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::signal::Signal;

use crate::btree::file::PageFile;
use crate::btree::page::{self, PageId, PAGE_BYTES};
use crate::error::StorageError;

/// A hasher for page and file ids: integers this process allocates (no adversary picks
/// them), so a multiply-rotate mix (FxHash's) serves where SipHash costs a put's
/// lookups ~20 ns each. The multiplier is odd, so the low bits (the bucket) of
/// consecutive ids differ.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
}

/// The most pages [`PageCache::flush`] writes in one write (512 KiB).
pub const WRITE_RUN_PAGES_MAX: usize = 32;

/// A set of page ids hashed with [`IdHasher`].
pub type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// Identifies one file registered with the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(pub u32);

/// Counters of cache activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found the page in a frame.
    pub hits: u64,
    /// Lookups that read the page from disk.
    pub misses: u64,
    /// Frames taken from another page.
    pub evictions: u64,
    /// Dirty pages written back (by eviction, flush or the cleaner).
    pub writebacks: u64,
    /// Of those, pages written back by the background cleaner.
    pub cleaned: u64,
    /// Writes that carried those pages (a run of consecutive pages goes in one write).
    pub write_runs: u64,
}

#[derive(Default)]
struct FrameMeta {
    key: Option<(FileId, PageId)>,
    pins: u32,
    dirty: bool,
    referenced: bool,
    loading: bool,
    writing: bool,
    /// Freed while in use: leaves the cache, unwritten, once unpinned and idle.
    discarded: bool,
    /// The LSN stamped into the page when it is written.
    lsn: u64,
}

struct CacheState<F> {
    meta: Vec<FrameMeta>,
    map: HashMap<(FileId, PageId), usize, BuildHasherDefault<IdHasher>>,
    /// Frames that hold no page, taken before any page is evicted.
    free: Vec<usize>,
    files: HashMap<FileId, Rc<F>>,
    hand: usize,
    next_file: u32,
    stats: CacheStats,
}

/// A fixed-size cache of pages for every tree file of one shard.
pub struct PageCache<F: PageFile> {
    frames: Vec<RefCell<Box<[u8]>>>,
    state: RefCell<CacheState<F>>,
    /// Fired whenever a frame is unpinned, loaded or written back.
    changed: Signal,
    /// Fired when a claim passed over dirty frames: the cleaner should write some back.
    cleaner_kick: Signal,
    /// Whether a cleaner task is running (claims then prefer clean frames).
    cleaner_running: Cell<bool>,
    /// Asks the cleaner to stop.
    cleaner_stop: Cell<bool>,
}

/// What [`PageCache::claim`] found.
enum Claim {
    /// A frame now mapped to the page, pinned once, clean and empty.
    Frame(usize),
    /// The page was mapped by another task meanwhile: look it up again.
    Raced,
}

/// A pinned page: the frame stays put while this lives.
pub struct PageRef<F: PageFile> {
    cache: Rc<PageCache<F>>,
    frame: usize,
    id: PageId,
}

impl<F: PageFile> PageCache<F> {
    /// A cache of `bytes / PAGE_BYTES` frames (at least 8).
    pub fn new(bytes: usize) -> Rc<PageCache<F>> {
        let n = (bytes / PAGE_BYTES).max(8);
        let frames = (0..n)
            .map(|_| RefCell::new(vec![0u8; PAGE_BYTES].into_boxed_slice()))
            .collect();
        Rc::new(PageCache {
            frames,
            state: RefCell::new(CacheState {
                meta: (0..n).map(|_| FrameMeta::default()).collect(),
                map: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
                free: (0..n).rev().collect(),
                files: HashMap::new(),
                hand: 0,
                next_file: 0,
                stats: CacheStats::default(),
            }),
            changed: Signal::new(),
            cleaner_kick: Signal::new(),
            cleaner_running: Cell::new(false),
            cleaner_stop: Cell::new(false),
        })
    }

    /// Frames in the cache.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Activity counters.
    pub fn stats(&self) -> CacheStats {
        self.state.borrow().stats
    }

    /// Registers a file so that its pages can be cached (and written back on eviction).
    pub fn register(&self, file: Rc<F>) -> FileId {
        let mut s = self.state.borrow_mut();
        let id = FileId(s.next_file);
        s.next_file += 1;
        s.files.insert(id, file);
        id
    }

    /// Forgets a file; its pages must be clean (flushed) or no longer wanted.
    pub fn unregister(&self, file: FileId) {
        let mut s = self.state.borrow_mut();
        let frames: Vec<usize> = s
            .map
            .iter()
            .filter(|((f, _), _)| *f == file)
            .map(|(_, &i)| i)
            .collect();
        for i in frames {
            let m = &mut s.meta[i];
            assert_eq!(m.pins, 0, "unregister of a file with a pinned page");
            if let Some(k) = m.key.take() {
                s.map.remove(&k);
            }
            let m = &mut s.meta[i];
            m.dirty = false;
            if !m.writing && !m.loading {
                Self::free_frame(&mut s, i);
            }
        }
        s.files.remove(&file);
    }

    /// Forgets a file whose pages are no longer wanted (its tree is gone): idle frames are
    /// freed now, frames being read or written back leave when idle, and nothing of the
    /// file is written again.
    pub fn forget_file(&self, file: FileId) {
        let mut s = self.state.borrow_mut();
        let frames: Vec<usize> = s
            .map
            .iter()
            .filter(|((f, _), _)| *f == file)
            .map(|(_, &i)| i)
            .collect();
        for i in frames {
            s.meta[i].dirty = false;
            s.meta[i].discarded = true;
            Self::leave_if_discarded(&mut s, i);
        }
        s.files.remove(&file);
        drop(s);
        self.changed.notify();
    }

    fn file(&self, file: FileId) -> Rc<F> {
        match self.state.borrow().files.get(&file) {
            Some(f) => f.clone(),
            None => panic!("page cache: file {file:?} not registered"),
        }
    }

    /// Returns page `id` of `file` if a frame holds it ready, pinned; `None` (and no I/O,
    /// no wait) otherwise. The descent of a writer that holds its lock tries this first.
    pub fn try_get(self: &Rc<Self>, file: FileId, id: PageId) -> Option<PageRef<F>> {
        let mut s = self.state.borrow_mut();
        let i = s.map.get(&(file, id)).copied()?;
        let m = &mut s.meta[i];
        if m.loading || m.discarded {
            return None;
        }
        m.pins += 1;
        m.referenced = true;
        s.stats.hits += 1;
        Some(self.pin_ref(i, id))
    }

    /// Returns page `id` of `file`, reading and verifying it on a miss.
    pub async fn get(
        self: &Rc<Self>,
        file: FileId,
        id: PageId,
    ) -> Result<PageRef<F>, StorageError> {
        if let Some(p) = self.try_get(file, id) {
            return Ok(p);
        }
        let i = loop {
            let listener = {
                let mut s = self.state.borrow_mut();
                match s.map.get(&(file, id)).copied() {
                    Some(i) if !s.meta[i].loading && !s.meta[i].discarded => {
                        s.meta[i].pins += 1;
                        s.meta[i].referenced = true;
                        s.stats.hits += 1;
                        return Ok(self.pin_ref(i, id));
                    }
                    Some(_) => Some(self.changed.listen()),
                    None => None,
                }
            };
            match listener {
                Some(l) => l.await,
                None => match self.claim(file, id).await? {
                    Claim::Frame(i) => break i,
                    // Another task mapped the page while this one waited: use theirs.
                    Claim::Raced => continue,
                },
            }
        };
        {
            let mut s = self.state.borrow_mut();
            s.meta[i].loading = true;
            s.stats.misses += 1;
        }
        let f = self.file(file);
        let read = f.read_page(id).await;
        let result = read.and_then(|buf| {
            page::verify(&buf, id).map_err(|source| StorageError::CorruptPage {
                path: f.path().to_owned(),
                source,
            })?;
            self.frames[i].borrow_mut().copy_from_slice(&buf);
            Ok(())
        });
        let mut s = self.state.borrow_mut();
        s.meta[i].loading = false;
        match result {
            Ok(()) => {
                self.changed.notify();
                Ok(self.pin_ref(i, id))
            }
            Err(e) => {
                // Never keep a page that failed: the next reader retries and fails again.
                s.map.remove(&(file, id));
                Self::free_frame(&mut s, i);
                self.changed.notify();
                Err(e)
            }
        }
    }

    /// A new zeroed page `id` of `file`, pinned and dirty; the caller fills it.
    pub async fn create(
        self: &Rc<Self>,
        file: FileId,
        id: PageId,
        lsn: u64,
    ) -> Result<PageRef<F>, StorageError> {
        let i = self.new_frame(file, id).await?;
        self.frames[i].borrow_mut().fill(0);
        Ok(self.new_dirty(i, id, lsn))
    }

    /// A new page `id` of `file` holding a copy of `from` (a copy on write), pinned and
    /// dirty: [`PageCache::create`] without zeroing a frame about to be overwritten.
    pub async fn create_copy(
        self: &Rc<Self>,
        file: FileId,
        id: PageId,
        lsn: u64,
        from: &PageRef<F>,
    ) -> Result<PageRef<F>, StorageError> {
        let i = self.new_frame(file, id).await?;
        self.frames[i].borrow_mut().copy_from_slice(&from.bytes());
        Ok(self.new_dirty(i, id, lsn))
    }

    /// A frame mapped to page `id` of `file` for a new page, pinned once.
    async fn new_frame(self: &Rc<Self>, file: FileId, id: PageId) -> Result<usize, StorageError> {
        // The id may still be cached from its previous life (a freed page): reuse that
        // frame when idle, wait while a reader or a write-back still holds it.
        loop {
            let l = self.changed.listen();
            let cached = {
                let s = self.state.borrow();
                s.map.get(&(file, id)).map(|&i| {
                    let m = &s.meta[i];
                    (i, m.pins == 0 && !m.writing && !m.loading)
                })
            };
            match cached {
                None => match self.claim(file, id).await? {
                    Claim::Frame(i) => return Ok(i),
                    Claim::Raced => continue,
                },
                Some((i, true)) => {
                    let mut s = self.state.borrow_mut();
                    s.meta[i] = FrameMeta {
                        key: Some((file, id)),
                        pins: 1,
                        ..FrameMeta::default()
                    };
                    return Ok(i);
                }
                Some((_, false)) => l.await,
            }
        }
    }

    /// Marks the new page in frame `i` dirty at `lsn` and hands out its pin.
    fn new_dirty(self: &Rc<Self>, i: usize, id: PageId, lsn: u64) -> PageRef<F> {
        let mut s = self.state.borrow_mut();
        s.meta[i].dirty = true;
        s.meta[i].lsn = lsn;
        drop(s);
        self.pin_ref(i, id)
    }

    /// Drops page `id` of `file` from the cache without writing it (it was freed).
    pub fn discard(&self, file: FileId, id: PageId) {
        let mut s = self.state.borrow_mut();
        if let Some(i) = s.map.get(&(file, id)).copied() {
            if s.meta[i].pins == 0 && !s.meta[i].writing && !s.meta[i].loading {
                s.map.remove(&(file, id));
                Self::free_frame(&mut s, i);
            } else {
                // Still in use by a reader or a write-back: it leaves once idle, and its
                // content is never written again.
                s.meta[i].dirty = false;
                s.meta[i].discarded = true;
            }
        }
    }

    fn pin_ref(self: &Rc<Self>, frame: usize, id: PageId) -> PageRef<F> {
        PageRef {
            cache: self.clone(),
            frame,
            id,
        }
    }

    /// Takes a frame for (file, id), evicting (and writing back) another page if needed.
    /// The frame returned is mapped, pinned once, clean and not loading.
    async fn claim(self: &Rc<Self>, file: FileId, id: PageId) -> Result<Claim, StorageError> {
        loop {
            let (victim, listener) = {
                let mut s = self.state.borrow_mut();
                // A write-back below may have let another task map this page: one page
                // never has two frames (a second frame would hide the first from the map,
                // and evicting either would unmap the other).
                if s.map.contains_key(&(file, id)) {
                    return Ok(Claim::Raced);
                }
                let n = s.meta.len();
                let mut found = None;
                let mut dirty_seen = None;
                // A free frame first: while one is left, no page is evicted (a CLOCK
                // sweep would take the first cold page it met before an empty frame).
                while let Some(i) = s.free.pop() {
                    let m = &s.meta[i];
                    if m.key.is_none() && m.pins == 0 && !m.loading && !m.writing {
                        found = Some((i, false));
                        break;
                    }
                }
                if found.is_none() {
                    for _ in 0..2 * n {
                        let i = s.hand;
                        s.hand = (s.hand + 1) % n;
                        let m = &mut s.meta[i];
                        if m.key.is_none() {
                            found = Some((i, false));
                            break;
                        }
                        if m.pins > 0 || m.loading || m.writing {
                            continue;
                        }
                        if m.referenced {
                            m.referenced = false;
                            continue;
                        }
                        if m.dirty && self.cleaner_running.get() {
                            // Leave it to the cleaner: a claim should not wait for a write
                            // while a clean frame can be had.
                            dirty_seen.get_or_insert(i);
                            continue;
                        }
                        found = Some((i, m.dirty));
                        break;
                    }
                }
                if dirty_seen.is_some() {
                    self.cleaner_kick.notify();
                }
                if found.is_none() {
                    // Only dirty frames are free: write one back here after all.
                    found = dirty_seen.map(|i| (i, true));
                }
                match found {
                    Some((i, false)) => {
                        if let Some(k) = s.meta[i].key.take() {
                            s.map.remove(&k);
                            s.stats.evictions += 1;
                        }
                        s.meta[i] = FrameMeta {
                            key: Some((file, id)),
                            pins: 1,
                            ..FrameMeta::default()
                        };
                        s.map.insert((file, id), i);
                        return Ok(Claim::Frame(i));
                    }
                    Some((i, true)) => (Some(i), None),
                    None => (None, Some(self.changed.listen())),
                }
            };
            if let Some(i) = victim {
                self.write_back(i).await?;
            } else if let Some(l) = listener {
                l.await;
            }
        }
    }

    /// Writes the dirty page in frame `i` to its file; the frame stays cached, clean.
    async fn write_back(&self, i: usize) -> Result<(), StorageError> {
        self.write_back_run(&[i]).await.map(drop)
    }

    /// Writes the dirty pages in `frames` to their file in one write; the frames stay
    /// cached, clean. They must hold consecutive pages of one file, in order; a frame that
    /// is no longer dirty (or is being written) ends the run there. Returns the pages
    /// written.
    async fn write_back_run(&self, frames: &[usize]) -> Result<usize, StorageError> {
        let (file, first, taken) = {
            let mut s = self.state.borrow_mut();
            let Some((file, first)) = frames.first().and_then(|&i| s.meta[i].key) else {
                return Ok(0);
            };
            let mut taken: Vec<(usize, u64)> = Vec::with_capacity(frames.len());
            for (k, &i) in frames.iter().enumerate() {
                let m = &mut s.meta[i];
                let expected = (file, PageId(first.0 + k as u64));
                if m.key != Some(expected) || !m.dirty || m.writing {
                    break;
                }
                m.dirty = false;
                m.writing = true;
                taken.push((i, m.lsn));
            }
            (file, first, taken)
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let f = self.file(file);
        let mut buf = f.write_buf(taken.len());
        for ((i, lsn), (k, dst)) in taken
            .iter()
            .zip(buf.as_mut().chunks_exact_mut(PAGE_BYTES).enumerate())
        {
            dst.copy_from_slice(&self.frames[*i].borrow());
            page::seal(dst, PageId(first.0 + k as u64), *lsn);
        }
        let result = f.write_pages(first, buf).await;
        let mut s = self.state.borrow_mut();
        s.stats.write_runs += 1;
        for &(i, _) in &taken {
            s.meta[i].writing = false;
            s.stats.writebacks += 1;
            if result.is_err() && !s.meta[i].discarded {
                // The content is still only here: keep it dirty.
                s.meta[i].dirty = true;
            }
            Self::leave_if_discarded(&mut s, i);
        }
        drop(s);
        self.changed.notify();
        result.map(|()| taken.len())
    }

    /// Writes back every dirty page of `file` that `pick` selects and waits for their
    /// write-backs in flight, so that a following sync covers all of them.
    pub async fn flush(
        &self,
        file: FileId,
        pick: impl Fn(PageId) -> bool,
    ) -> Result<(), StorageError> {
        loop {
            let (dirty, writing): (Vec<(FileId, PageId, usize)>, bool) = {
                let s = self.state.borrow();
                let mine = |m: &&FrameMeta| m.key.is_some_and(|(f, id)| f == file && pick(id));
                let dirty = s
                    .meta
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| mine(m) && m.dirty && !m.writing)
                    .filter_map(|(i, m)| m.key.map(|(f, id)| (f, id, i)))
                    .collect();
                (dirty, s.meta.iter().any(|m| mine(&m) && m.writing))
            };
            if dirty.is_empty() && !writing {
                return Ok(());
            }
            if dirty.is_empty() {
                let l = self.changed.listen();
                if self
                    .state
                    .borrow()
                    .meta
                    .iter()
                    .any(|m| m.writing && m.key.is_some_and(|(f, _)| f == file))
                {
                    l.await;
                }
                continue;
            }
            self.write_back_runs(dirty).await?;
        }
    }

    /// Writes back the dirty frames `(file, page, frame)`, pages of consecutive ids in one
    /// write each (up to [`WRITE_RUN_PAGES_MAX`]): a checkpoint's pages mostly come from a
    /// few runs of the allocator, and a write costs a system call, an exit of the virtual
    /// machine and an interrupt whatever its size. Stops at the first error. Returns the
    /// pages written.
    async fn write_back_runs(
        &self,
        mut frames: Vec<(FileId, PageId, usize)>,
    ) -> Result<usize, StorageError> {
        frames.sort_unstable_by_key(|&(f, id, _)| (f.0, id));
        let mut run: Vec<usize> = Vec::with_capacity(WRITE_RUN_PAGES_MAX);
        let mut next = None;
        let mut written = 0;
        for (file, id, i) in frames {
            if next != Some((file, id)) || run.len() == WRITE_RUN_PAGES_MAX {
                written += self.write_back_run(&run).await?;
                run.clear();
            }
            run.push(i);
            next = Some((file, PageId(id.0 + 1)));
        }
        Ok(written + self.write_back_run(&run).await?)
    }

    /// The background cleaner: whenever a claim passes over dirty frames, writes back up
    /// to `batch_pages` dirty, unpinned frames (in CLOCK order), so that foreground claims
    /// find clean frames and rarely wait for a write. Runs until [`PageCache::stop_cleaner`].
    /// A write error stops the cleaner (claims then write back inline and see the error).
    pub async fn run_cleaner(self: Rc<Self>, batch_pages: usize) {
        self.cleaner_running.set(true);
        loop {
            let l = self.cleaner_kick.listen();
            if self.cleaner_stop.get() {
                break;
            }
            l.await;
            if self.cleaner_stop.get() {
                break;
            }
            let picked: Vec<(FileId, PageId, usize)> = {
                let s = self.state.borrow();
                let n = s.meta.len();
                (0..n)
                    .map(|k| (s.hand + k) % n)
                    .filter_map(|i| {
                        let m = &s.meta[i];
                        let idle = m.pins == 0 && !m.writing && !m.loading && !m.discarded;
                        let (file, id) = m.key?;
                        (m.dirty && idle).then_some((file, id, i))
                    })
                    .take(batch_pages)
                    .collect()
            };
            match self.write_back_runs(picked).await {
                Ok(n) => self.state.borrow_mut().stats.cleaned += n as u64,
                Err(e) => {
                    tracing::error!(error = %e, "page cache cleaner: write-back failed; stopping");
                    break;
                }
            }
        }
        self.cleaner_running.set(false);
    }

    /// Asks the cleaner to stop (it ends at its next wake-up, which this triggers).
    pub fn stop_cleaner(&self) {
        self.cleaner_stop.set(true);
        self.cleaner_kick.notify();
    }

    /// Dirty frames of `file` right now.
    pub fn dirty_pages(&self, file: FileId) -> usize {
        let s = self.state.borrow();
        s.meta
            .iter()
            .filter(|m| m.dirty && m.key.is_some_and(|(f, _)| f == file))
            .count()
    }

    fn leave_if_discarded(s: &mut CacheState<F>, i: usize) {
        let m = &s.meta[i];
        if m.discarded && m.pins == 0 && !m.writing && !m.loading {
            if let Some(k) = m.key {
                s.map.remove(&k);
            }
            Self::free_frame(s, i);
        }
    }

    /// Empties frame `i` (no page, no pin) and lists it as free.
    fn free_frame(s: &mut CacheState<F>, i: usize) {
        s.meta[i] = FrameMeta::default();
        s.free.push(i);
    }

    fn unpin(&self, i: usize) {
        let mut s = self.state.borrow_mut();
        assert!(s.meta[i].pins > 0, "unpin of an unpinned frame {i}");
        s.meta[i].pins -= 1;
        Self::leave_if_discarded(&mut s, i);
        if s.meta[i].pins == 0 {
            self.changed.notify();
        }
    }
}

impl<F: PageFile> PageRef<F> {
    /// The page's id.
    pub fn id(&self) -> PageId {
        self.id
    }

    /// The page's bytes. Do not hold across an `.await`.
    pub fn bytes(&self) -> Ref<'_, [u8]> {
        Ref::map(self.cache.frames[self.frame].borrow(), |b| &b[..])
    }

    /// The page's bytes for an edit at `lsn`; marks the page dirty. Do not hold across an
    /// `.await`.
    pub fn bytes_mut(&self, lsn: u64) -> RefMut<'_, [u8]> {
        {
            let mut s = self.cache.state.borrow_mut();
            let m = &mut s.meta[self.frame];
            m.dirty = true;
            m.lsn = m.lsn.max(lsn);
        }
        RefMut::map(self.cache.frames[self.frame].borrow_mut(), |b| &mut b[..])
    }

    /// Replaces the page's bytes by `buf`'s (an edit at `lsn`), handing the old bytes back
    /// in `buf`: a pointer swap, where a copy would move a whole page.
    pub fn swap_in(&self, buf: &mut Box<[u8]>, lsn: u64) {
        assert_eq!(buf.len(), PAGE_BYTES, "swap of a buffer that is not a page");
        {
            let mut s = self.cache.state.borrow_mut();
            let m = &mut s.meta[self.frame];
            m.dirty = true;
            m.lsn = m.lsn.max(lsn);
        }
        std::mem::swap(&mut *self.cache.frames[self.frame].borrow_mut(), buf);
    }
}

impl<F: PageFile> Drop for PageRef<F> {
    fn drop(&mut self) {
        self.cache.unpin(self.frame);
    }
}

#[cfg(test)]
mod tests;
