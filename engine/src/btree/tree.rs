//! A copy-on-write B+tree over fixed-size pages, one per partition replica.
//!
//! Shape: leaves hold `(key, value)` cells in key order; branches hold `(separator,
//! child)` cells, where child `i` holds keys `>= separator[i]` and `< separator[i + 1]`
//! (a key below `separator[0]` goes to child 0). Values too large for a quarter page live
//! in a chain of overflow pages, referenced from the leaf.
//!
//! Durability: a checkpoint is a superblock naming a root. Pages that the last durable
//! checkpoint references are never written: the first edit of such a page in an epoch
//! copies it to a freshly allocated page (and the parent's pointer is edited, up to the
//! root). Pages allocated in the current epoch may be edited and written back any number
//! of times. A page freed in the epoch is reusable at once if the epoch allocated it, and
//! only after the next checkpoint is durable otherwise. So at every instant the last
//! durable checkpoint is intact on disk, whatever the cache has written back.
//!
//! Writes: a put or delete is one descent ([`Tree::seek`], which pins the leaf) and an
//! edit at it ([`Tree::put_at`], [`Tree::delete_at`]). In the steady state the way is the
//! epoch's and the edit fits, so the leaf is edited in place; anything else (a stale seek,
//! a page to copy, a split, an overflow value, a leaf that empties) takes the general path.
//!
//! Concurrency: the caller serialises writers (put, delete, checkpoint) against each
//! other and against readers (get, scan) of the same tree; the engine does it with a
//! per-partition lock. Readers may run together.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::rc::Rc;

use super::file::PageFile;
use super::page::{
    self, PageId, PageKind, Splice, CELL_BYTES_MAX, FREELIST_IDS_MAX, OVERFLOW_PAYLOAD_BYTES,
    PAGE_BYTES,
};
use super::superblock::{decide, Superblock, SuperblockCase, SUPERBLOCK_BYTES};
use crate::error::StorageError;
use crate::page_cache::{FileId, IdSet, PageCache, PageRef};

/// The longest key a tree accepts.
pub const KEY_BYTES_MAX: usize = 4056;
/// The longest value a tree accepts (an item of 400 KB plus its encoding overhead fits).
pub const VALUE_BYTES_MAX: usize = 1 << 20;
/// Slots of [`Tree::key_lsn`] (8 bytes each, per tree).
pub const KEY_LSN_SLOTS: usize = 1024;
/// Tag of a leaf value stored in the cell.
const VALUE_INLINE: u8 = 0;
/// Tag of a leaf value stored in overflow pages: then `len u32 | first page u64`.
const VALUE_OVERFLOW: u8 = 1;
const OVERFLOW_REF_BYTES: usize = 1 + 4 + 8;
const _: () = assert!(page::cell_bytes_max_fits(KEY_BYTES_MAX, OVERFLOW_REF_BYTES));
const _: () = assert!(page::cell_bytes_max_fits(KEY_BYTES_MAX, 8));

/// Which pages are free, and when they may be reused.
struct Allocator {
    /// Reusable now.
    free: BTreeSet<u64>,
    /// Freed in this epoch but referenced by the durable checkpoint: reusable after the
    /// next checkpoint is durable.
    pending: Vec<u64>,
    /// Allocated in this epoch: editable in place, reusable at once when freed.
    epoch: IdSet,
    /// Pages the file holds; new pages are appended here.
    page_count: u64,
    /// While a checkpoint is written: the pages it references that the epoch before it
    /// allocated. They are not edited (edits copy them) nor dropped from the cache.
    frozen: IdSet,
    /// While a checkpoint is written: pages freed before it began, reusable once it is
    /// durable.
    frozen_pending: Vec<u64>,
    /// Between the two phases of a checkpoint.
    checkpointing: bool,
}

impl Allocator {
    fn alloc(&mut self) -> PageId {
        let id = match self.free.pop_first() {
            Some(id) => id,
            None => {
                self.page_count += 1;
                self.page_count - 1
            }
        };
        assert!(id != 0, "page 0 holds the superblocks");
        let fresh = self.epoch.insert(id);
        assert!(fresh, "page {id} allocated twice in one epoch");
        PageId(id)
    }

    fn release(&mut self, id: PageId) {
        assert!(id.0 != 0 && id.0 < self.page_count, "release of {id}");
        if self.epoch.remove(&id.0) {
            let fresh = self.free.insert(id.0);
            assert!(fresh, "{id} freed twice");
        } else {
            self.pending.push(id.0);
        }
    }
}

struct Meta {
    root: Option<PageId>,
    entries: u64,
    applied_lsn: u64,
    durable: Superblock,
}

/// Counters describing a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeStats {
    /// Entries in the tree.
    pub entries: u64,
    /// Pages the file holds.
    pub page_count: u64,
    /// Pages free for reuse now.
    pub free_pages: u64,
    /// Pages freed since the last checkpoint, reusable after the next.
    pub pending_pages: u64,
    /// Pages allocated since the last checkpoint.
    pub epoch_pages: u64,
    /// The highest LSN applied.
    pub applied_lsn: u64,
    /// The LSN of the last durable checkpoint.
    pub checkpoint_lsn: u64,
    /// Puts and deletes done in place at their seek (no second descent, no copy).
    pub in_place_writes: u64,
}

/// One B-tree file.
pub struct Tree<F: PageFile> {
    cache: Rc<PageCache<F>>,
    io: Rc<F>,
    file: FileId,
    tree_id: u64,
    meta: RefCell<Meta>,
    alloc: RefCell<Allocator>,
    scratch: RefCell<Box<[u8]>>,
    /// Bumped by every change of the tree: a [`Seek`] taken at another version is stale.
    version: Cell<u64>,
    /// Writes done in place at their seek.
    in_place_writes: Cell<u64>,
    /// [`KEY_LSN_SLOTS`] slots, each the highest LSN that changed a key hashing to it.
    key_lsns: Box<[Cell<u64>]>,
    /// The stored form (tag and value) of an inline value being put, reused.
    stored: RefCell<Vec<u8>>,
}

/// Where a key is, found by one descent ([`Tree::seek`]): its leaf, pinned, and the cell
/// that holds the key or where it would go. [`Tree::put_at`] and [`Tree::delete_at`] edit
/// that leaf in place when nothing changed the tree since the seek, every page on the way
/// is the epoch's (no copy-on-write needed) and the edit fits; otherwise they take the
/// general path, which descends again.
pub struct Seek<F: PageFile> {
    version: u64,
    leaf: Option<PageRef<F>>,
    at: Result<usize, usize>,
    in_epoch: bool,
}

impl<F: PageFile> Seek<F> {
    /// Whether the key is in the tree.
    pub fn found(&self) -> bool {
        self.leaf.is_some() && self.at.is_ok()
    }
}

/// One step of a descent: the leaf's position for the key, or the child to visit.
enum Step {
    Leaf(Result<usize, usize>),
    Child(PageId),
}

/// A leaf value copied out of its page: the bytes, or the overflow chain still to read
/// (after the page's borrow ends).
enum CellValue {
    Bytes(Vec<u8>),
    Overflow { len: usize, first: PageId },
}

/// A leaf value as stored in its cell.
enum Stored<'a> {
    Inline(&'a [u8]),
    Overflow { len: usize, first: PageId },
}

fn decode_stored<'a>(v: &'a [u8], path: &str, page: PageId) -> Result<Stored<'a>, StorageError> {
    let malformed = |reason| StorageError::CorruptPage {
        path: path.to_owned(),
        source: page::PageError::Malformed { page, reason },
    };
    match v.split_first() {
        Some((&VALUE_INLINE, rest)) => Ok(Stored::Inline(rest)),
        Some((&VALUE_OVERFLOW, rest)) if rest.len() == OVERFLOW_REF_BYTES - 1 => {
            let (len, first) = rest.split_at(4);
            let len = u32::from_le_bytes(len.try_into().map_err(|_| malformed("ref"))?) as usize;
            let first = u64::from_le_bytes(first.try_into().map_err(|_| malformed("ref"))?);
            if len > VALUE_BYTES_MAX || first == 0 {
                return Err(malformed("overflow reference out of range"));
            }
            Ok(Stored::Overflow {
                len,
                first: PageId(first),
            })
        }
        _ => Err(malformed("unknown value tag")),
    }
}

/// The slot of [`Tree::key_lsn`] that `key` shares.
fn key_lsn_slot(key: &[u8]) -> usize {
    crc32c::crc32c(key) as usize % KEY_LSN_SLOTS
}

fn child_of(v: &[u8]) -> PageId {
    let b: [u8; 8] = v.try_into().unwrap_or([0; 8]);
    let id = u64::from_le_bytes(b);
    assert!(id != 0, "branch cell with child 0");
    PageId(id)
}

/// Asserts that `at` is `key`'s position in the leaf `b` (a seek used for another key
/// would break the key order): the cell holds the key, or its neighbours bracket it.
fn check_seek_position(b: &[u8], at: Result<usize, usize>, key: &[u8]) {
    match at {
        Ok(i) => assert!(
            page::cell(b, i).0 == key,
            "seek position {i} holds another key"
        ),
        Err(i) => {
            let n = page::count(b);
            assert!(i <= n, "seek position {i} past {n} cells");
            assert!(
                i == 0 || page::cell(b, i - 1).0 < key,
                "seek position {i} below its key"
            );
            assert!(
                i == n || key < page::cell(b, i).0,
                "seek position {i} above its key"
            );
        }
    }
}

/// The child of a branch that may hold `key`.
fn child_index(branch: &[u8], key: &[u8]) -> usize {
    match page::search(branch, key) {
        Ok(i) => i,
        Err(0) => 0,
        Err(i) => i - 1,
    }
}

impl<F: PageFile> Drop for Tree<F> {
    fn drop(&mut self) {
        // Nothing can use the tree's pages any more: let the cache reuse their frames.
        self.cache.forget_file(self.file);
    }
}

impl<F: PageFile> Tree<F> {
    /// Opens the tree in `io` (a fresh file becomes an empty tree with a first checkpoint).
    pub async fn open(
        cache: Rc<PageCache<F>>,
        io: Rc<F>,
        tree_id: u64,
    ) -> Result<Tree<F>, StorageError> {
        let (slots, len) = io.read_superblocks().await?;
        let (a, b) = slots.split_at(SUPERBLOCK_BYTES);
        let case = decide(a, b, len);
        let file = cache.register(io.clone());
        let fresh_sb = Superblock {
            generation: 0,
            lsn: 0,
            root: None,
            freelist_head: None,
            page_count: 1,
            entries: 0,
            tree_id,
        };
        let sb = match case {
            SuperblockCase::Fresh => fresh_sb,
            SuperblockCase::Use(sb) => sb,
            SuperblockCase::Corrupt => {
                cache.unregister(file);
                return Err(StorageError::CorruptSuperblock {
                    path: io.path().to_owned(),
                });
            }
        };
        if sb.tree_id != tree_id {
            cache.unregister(file);
            return Err(StorageError::WrongTree {
                path: io.path().to_owned(),
                expected: tree_id,
                found: sb.tree_id,
            });
        }
        let tree = Tree {
            cache,
            io,
            file,
            tree_id,
            meta: RefCell::new(Meta {
                root: sb.root,
                entries: sb.entries,
                applied_lsn: sb.lsn,
                durable: sb,
            }),
            alloc: RefCell::new(Allocator {
                free: BTreeSet::new(),
                pending: Vec::new(),
                epoch: IdSet::default(),
                page_count: sb.page_count.max(1),
                frozen: IdSet::default(),
                frozen_pending: Vec::new(),
                checkpointing: false,
            }),
            scratch: RefCell::new(vec![0u8; PAGE_BYTES].into_boxed_slice()),
            version: Cell::new(0),
            in_place_writes: Cell::new(0),
            key_lsns: (0..KEY_LSN_SLOTS).map(|_| Cell::new(0)).collect(),
            stored: RefCell::new(Vec::new()),
        };
        match case {
            SuperblockCase::Fresh => {
                tree.checkpoint().await?;
            }
            _ => {
                let result = tree.load_freelist(sb.freelist_head).await;
                if let Err(e) = result {
                    tree.cache.unregister(tree.file);
                    return Err(e);
                }
            }
        }
        Ok(tree)
    }

    async fn load_freelist(&self, head: Option<PageId>) -> Result<(), StorageError> {
        let mut next = head;
        let mut hops = 0u64;
        while let Some(id) = next {
            hops += 1;
            let page_count = self.alloc.borrow().page_count;
            if id.0 >= page_count || hops > page_count {
                return Err(self.malformed(id, "freelist chain out of range"));
            }
            let p = self.cache.get(self.file, id).await?;
            let (ids, n) = {
                let b = p.bytes();
                if page::kind(&b) != Some(PageKind::Freelist) {
                    return Err(self.malformed(id, "expected a freelist page"));
                }
                (page::freelist_ids(&b).collect::<Vec<_>>(), page::next(&b))
            };
            drop(p);
            self.cache.discard(self.file, id);
            let mut a = self.alloc.borrow_mut();
            // The chain itself is referenced by the durable superblock.
            a.pending.push(id.0);
            for x in ids {
                if x == 0 || x >= a.page_count {
                    drop(a);
                    return Err(self.malformed(id, "free page id out of range"));
                }
                a.free.insert(x);
            }
            next = (n != 0).then_some(PageId(n));
        }
        Ok(())
    }

    fn malformed(&self, page: PageId, reason: &'static str) -> StorageError {
        StorageError::CorruptPage {
            path: self.io.path().to_owned(),
            source: page::PageError::Malformed { page, reason },
        }
    }

    /// The tree's identity.
    pub fn tree_id(&self) -> u64 {
        self.tree_id
    }

    /// Counters describing the tree.
    pub fn stats(&self) -> TreeStats {
        let m = self.meta.borrow();
        let a = self.alloc.borrow();
        TreeStats {
            entries: m.entries,
            page_count: a.page_count,
            free_pages: a.free.len() as u64,
            pending_pages: a.pending.len() as u64,
            epoch_pages: a.epoch.len() as u64,
            applied_lsn: m.applied_lsn,
            checkpoint_lsn: m.durable.lsn,
            in_place_writes: self.in_place_writes.get(),
        }
    }

    /// The highest LSN applied to the tree.
    pub fn applied_lsn(&self) -> u64 {
        self.meta.borrow().applied_lsn
    }

    /// The LSN of the last durable checkpoint.
    pub fn checkpoint_lsn(&self) -> u64 {
        self.meta.borrow().durable.lsn
    }

    /// Records that every change up to `lsn` is applied (also for records that changed
    /// nothing, so that a checkpoint covers them).
    pub fn note_applied(&self, lsn: u64) {
        let mut m = self.meta.borrow_mut();
        m.applied_lsn = m.applied_lsn.max(lsn);
    }

    /// An LSN at or above that of every change applied to `key` (at most
    /// [`Tree::applied_lsn`]): a read of `key` may answer once the log is durable up to it,
    /// without waiting for changes of other keys. Keys share [`KEY_LSN_SLOTS`] slots, so a
    /// change of another key can raise it (a wait longer than needed, never shorter).
    pub fn key_lsn(&self, key: &[u8]) -> u64 {
        self.key_lsns
            .get(key_lsn_slot(key))
            .map_or_else(|| self.applied_lsn(), Cell::get)
    }

    /// Records the change of `key` at `lsn` as applied.
    fn note_change(&self, key: &[u8], lsn: u64) {
        self.note_applied(lsn);
        if let Some(slot) = self.key_lsns.get(key_lsn_slot(key)) {
            slot.set(slot.get().max(lsn));
        }
    }

    /// Loads tree page `id`: a leaf comes back alone; for a branch, `pick` chooses the
    /// child index to follow, returned with the child's id. Every descent goes through here.
    async fn step(
        &self,
        id: PageId,
        pick: impl FnOnce(&[u8]) -> usize,
    ) -> Result<(PageRef<F>, Option<(usize, PageId)>), StorageError> {
        let p = self.cache.get(self.file, id).await?;
        let down = {
            let b = p.bytes();
            match page::kind(&b) {
                Some(PageKind::Leaf) => None,
                Some(PageKind::Branch) => {
                    let idx = pick(&b);
                    Some((idx, child_of(page::cell(&b, idx).1)))
                }
                _ => return Err(self.malformed(id, "expected a tree page")),
            }
        };
        Ok((p, down))
    }

    async fn leaf_for(&self, key: &[u8]) -> Result<Option<PageRef<F>>, StorageError> {
        let Some(mut id) = self.meta.borrow().root else {
            return Ok(None);
        };
        loop {
            match self.step(id, |b| child_index(b, key)).await? {
                (p, None) => return Ok(Some(p)),
                (_, Some((_, child))) => id = child,
            }
        }
    }

    /// Reads the pages on the way to `key`'s leaf into the cache, without any lock and
    /// ignoring errors: a hint taken before a writer takes its lock, so that the page I/O
    /// of many writers overlaps instead of queueing behind the lock. Pages are always
    /// whole between awaits (single-threaded), so a racing edit can only make the hint
    /// miss, never mislead anything.
    pub async fn prefetch(&self, key: &[u8]) {
        let _ = self.leaf_for(key).await;
    }

    /// Where `key`'s leaf leads: the cell position, or the child to visit next.
    fn step_sync(&self, p: &PageRef<F>, key: &[u8]) -> Result<Step, StorageError> {
        let b = p.bytes();
        match page::kind(&b) {
            Some(PageKind::Leaf) => Ok(Step::Leaf(page::search(&b, key))),
            Some(PageKind::Branch) => {
                let idx = child_index(&b, key);
                Ok(Step::Child(child_of(page::cell(&b, idx).1)))
            }
            _ => Err(self.malformed(p.id(), "expected a tree page")),
        }
    }

    fn empty_seek(&self) -> Seek<F> {
        Seek {
            version: self.version.get(),
            leaf: None,
            at: Err(0),
            in_epoch: false,
        }
    }

    /// [`Tree::seek`] from the cache alone: `Ok(None)`, with no I/O and no wait, if a page
    /// on the way is not cached. A writer holding its lock tries this first, and reads a
    /// missing page with [`Tree::prefetch`] after releasing the lock.
    pub fn seek_cached(&self, key: &[u8]) -> Result<Option<Seek<F>>, StorageError> {
        let Some(mut id) = self.meta.borrow().root else {
            return Ok(Some(self.empty_seek()));
        };
        let mut in_epoch = true;
        loop {
            let Some(p) = self.cache.try_get(self.file, id) else {
                return Ok(None);
            };
            in_epoch &= self.alloc.borrow().epoch.contains(&id.0);
            match self.step_sync(&p, key)? {
                Step::Leaf(at) => {
                    return Ok(Some(Seek {
                        version: self.version.get(),
                        leaf: Some(p),
                        at,
                        in_epoch,
                    }))
                }
                Step::Child(child) => id = child,
            }
        }
    }

    /// Finds `key`: one descent, reading pages as needed. The caller serialises it with
    /// writers (it holds the writers' lock until it edits at the seek or drops it).
    pub async fn seek(&self, key: &[u8]) -> Result<Seek<F>, StorageError> {
        let Some(mut id) = self.meta.borrow().root else {
            return Ok(self.empty_seek());
        };
        let mut in_epoch = true;
        loop {
            let p = self.cache.get(self.file, id).await?;
            in_epoch &= self.alloc.borrow().epoch.contains(&id.0);
            match self.step_sync(&p, key)? {
                Step::Leaf(at) => {
                    return Ok(Seek {
                        version: self.version.get(),
                        leaf: Some(p),
                        at,
                        in_epoch,
                    })
                }
                Step::Child(child) => id = child,
            }
        }
    }

    /// Calls `f` on the value stored at the seek's key (reading its overflow chain if it
    /// has one); `None` if the key is absent. Inline values are read in the page, uncopied.
    pub async fn seek_value<R>(
        &self,
        seek: &Seek<F>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StorageError> {
        let (Some(leaf), Ok(i)) = (&seek.leaf, seek.at) else {
            return Ok(None);
        };
        assert_eq!(seek.version, self.version.get(), "read at a stale seek");
        let (len, first) = {
            let b = leaf.bytes();
            match decode_stored(page::cell(&b, i).1, self.io.path(), leaf.id())? {
                Stored::Inline(v) => return Ok(Some(f(v))),
                Stored::Overflow { len, first } => (len, first),
            }
        };
        let v = self.read_overflow(len, first).await?;
        Ok(Some(f(&v)))
    }

    /// The value stored under `key`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(leaf) = self.leaf_for(key).await? else {
            return Ok(None);
        };
        let found = {
            let b = leaf.bytes();
            match page::search(&b, key) {
                Ok(i) => Some(self.value_or_ref(&b, leaf.id(), i)?),
                Err(_) => None,
            }
        };
        match found {
            None => Ok(None),
            Some(CellValue::Bytes(v)) => Ok(Some(v)),
            Some(CellValue::Overflow { len, first }) => {
                Ok(Some(self.read_overflow(len, first).await?))
            }
        }
    }

    /// The value of cell `i`: the bytes if inline, or the overflow reference to read.
    fn value_or_ref(&self, b: &[u8], page: PageId, i: usize) -> Result<CellValue, StorageError> {
        Ok(
            match decode_stored(page::cell(b, i).1, self.io.path(), page)? {
                Stored::Inline(v) => CellValue::Bytes(v.to_vec()),
                Stored::Overflow { len, first } => CellValue::Overflow { len, first },
            },
        )
    }

    async fn read_overflow(&self, len: usize, first: PageId) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::with_capacity(len);
        let mut next = Some(first);
        while let Some(id) = next {
            if out.len() >= len || id.0 >= self.alloc.borrow().page_count {
                return Err(self.malformed(id, "overflow chain longer than its value"));
            }
            let p = self.cache.get(self.file, id).await?;
            let b = p.bytes();
            if page::kind(&b) != Some(PageKind::Overflow) {
                return Err(self.malformed(id, "expected an overflow page"));
            }
            out.extend_from_slice(page::overflow_payload(&b));
            let n = page::next(&b);
            next = (n != 0).then_some(PageId(n));
        }
        if out.len() != len {
            return Err(self.malformed(first, "overflow chain shorter than its value"));
        }
        Ok(out)
    }

    async fn write_overflow(&self, value: &[u8], lsn: u64) -> Result<PageId, StorageError> {
        let chunks: Vec<&[u8]> = value.chunks(OVERFLOW_PAYLOAD_BYTES).collect();
        let ids: Vec<PageId> = {
            let mut a = self.alloc.borrow_mut();
            chunks.iter().map(|_| a.alloc()).collect()
        };
        for (k, chunk) in chunks.iter().enumerate() {
            let next = ids.get(k + 1).map_or(0, |p| p.0);
            let id = ids.get(k).copied().unwrap_or(PageId(0));
            let p = self.cache.create(self.file, id, lsn).await?;
            page::build_overflow(&mut p.bytes_mut(lsn), chunk, next);
        }
        ids.first()
            .copied()
            .ok_or_else(|| self.malformed(PageId(0), "empty overflow value"))
    }

    async fn free_overflow(&self, first: PageId) -> Result<(), StorageError> {
        let mut next = Some(first);
        while let Some(id) = next {
            let p = self.cache.get(self.file, id).await?;
            let n = page::next(&p.bytes());
            drop(p);
            self.free_page(id);
            next = (n != 0).then_some(PageId(n));
        }
        Ok(())
    }

    fn free_page(&self, id: PageId) {
        let mut a = self.alloc.borrow_mut();
        a.release(id);
        // A page of the checkpoint being written must still reach the disk.
        if !a.frozen.contains(&id.0) {
            drop(a);
            self.cache.discard(self.file, id);
        }
    }

    /// Makes page `id` editable in this epoch: itself if the epoch allocated it, else a
    /// copy on a new page (the original is freed once the next checkpoint is durable).
    async fn writable(&self, id: PageId, lsn: u64) -> Result<PageId, StorageError> {
        if self.alloc.borrow().epoch.contains(&id.0) {
            return Ok(id);
        }
        let src = self.cache.get(self.file, id).await?;
        let new = self.alloc.borrow_mut().alloc();
        let dst = self.cache.create_copy(self.file, new, lsn, &src).await?;
        drop(src);
        drop(dst);
        self.free_page(id);
        Ok(new)
    }

    /// Makes the path from the root to the leaf for `key` editable; returns the branches
    /// on the way as (page, child index) and the leaf.
    async fn writable_path(
        &self,
        key: &[u8],
        lsn: u64,
    ) -> Result<(Vec<(PageId, usize)>, PageId), StorageError> {
        let Some(root) = self.meta.borrow().root else {
            return Err(self.malformed(PageId(0), "writable path of an empty tree"));
        };
        let mut id = self.writable(root, lsn).await?;
        self.meta.borrow_mut().root = Some(id);
        let mut path = Vec::new();
        loop {
            let (p, down) = self.step(id, |b| child_index(b, key)).await?;
            let Some((idx, child)) = down else {
                return Ok((path, id));
            };
            let new_child = self.writable(child, lsn).await?;
            if new_child != child {
                let key_copy = page::cell(&p.bytes(), idx).0.to_vec();
                let v = new_child.0.to_le_bytes();
                let split = self
                    .edit(&p, PageKind::Branch, idx, 1, &[(&key_copy, &v)], lsn)
                    .await?;
                assert!(split.is_none(), "a same-size edit split a page");
            }
            path.push((id, idx));
            id = new_child;
        }
    }

    /// Replaces cells `at..at + removed` of page `p` by `inserted`. Returns the separator
    /// and new right sibling if the page had to split.
    async fn edit(
        &self,
        p: &PageRef<F>,
        kind: PageKind,
        at: usize,
        removed: usize,
        inserted: &[(&[u8], &[u8])],
        lsn: u64,
    ) -> Result<Option<(Vec<u8>, PageId)>, StorageError> {
        if page::splice_in_place(&mut p.bytes_mut(lsn), at, removed, inserted) {
            return Ok(None);
        }
        // It does not fit: split, building both halves anew.
        let (n, cut) = {
            let b = p.bytes();
            let s = Splice {
                page: Some(&b),
                at,
                removed,
                inserted,
            };
            (s.len(), s.split_point())
        };
        let right = {
            let id = self.alloc.borrow_mut().alloc();
            self.cache.create(self.file, id, lsn).await?
        };
        let mut scratch = self.scratch.borrow_mut();
        let separator = {
            let b = p.bytes();
            let s = Splice {
                page: Some(&b),
                at,
                removed,
                inserted,
            };
            page::build(&mut scratch, kind, &s, 0..cut);
            page::build(&mut right.bytes_mut(lsn), kind, &s, cut..n);
            s.get(cut).0.to_vec()
        };
        p.swap_in(&mut scratch, lsn);
        Ok(Some((separator, right.id())))
    }

    /// Stores `value` under `key` as the change at `lsn`; returns whether a value was
    /// replaced.
    pub async fn put(&self, key: &[u8], value: &[u8], lsn: u64) -> Result<bool, StorageError> {
        let seek = self.seek(key).await?;
        self.put_at(seek, key, value, lsn).await
    }

    /// [`Tree::put`] at `seek`, which must come from a seek of `key`: in place in the
    /// sought leaf when the seek is current, the way is the epoch's and the cell fits;
    /// otherwise by the general path.
    pub async fn put_at(
        &self,
        seek: Seek<F>,
        key: &[u8],
        value: &[u8],
        lsn: u64,
    ) -> Result<bool, StorageError> {
        if key.len() <= KEY_BYTES_MAX && value.len() <= VALUE_BYTES_MAX {
            if let Some(replaced) = self.put_in_place(&seek, key, value, lsn)? {
                return Ok(replaced);
            }
        }
        drop(seek);
        self.put_general(key, value, lsn).await
    }

    /// The fast put: `Some(replaced)` if done, `None` (nothing changed) if the general path
    /// must do it.
    fn put_in_place(
        &self,
        seek: &Seek<F>,
        key: &[u8],
        value: &[u8],
        lsn: u64,
    ) -> Result<Option<bool>, StorageError> {
        let Some(leaf) = &seek.leaf else {
            return Ok(None);
        };
        if seek.version != self.version.get()
            || !seek.in_epoch
            || page::cell_bytes(key, value) >= CELL_BYTES_MAX
        {
            return Ok(None);
        }
        let (at, removed) = {
            let b = leaf.bytes();
            check_seek_position(&b, seek.at, key);
            match seek.at {
                Ok(i) => {
                    // An old overflow chain is freed by the general path.
                    match decode_stored(page::cell(&b, i).1, self.io.path(), leaf.id())? {
                        Stored::Inline(_) => (i, 1),
                        Stored::Overflow { .. } => return Ok(None),
                    }
                }
                Err(i) => (i, 0),
            }
        };
        let mut stored = self.stored.borrow_mut();
        stored.clear();
        stored.push(VALUE_INLINE);
        stored.extend_from_slice(value);
        let cell: [(&[u8], &[u8]); 1] = [(key, &stored)];
        if !page::splice_in_place(&mut leaf.bytes_mut(lsn), at, removed, &cell) {
            return Ok(None);
        }
        self.changed();
        self.in_place_writes.set(self.in_place_writes.get() + 1);
        self.note_change(key, lsn);
        if removed == 0 {
            self.meta.borrow_mut().entries += 1;
        }
        Ok(Some(removed == 1))
    }

    /// Records a change of the tree: seeks taken before it are stale.
    fn changed(&self) {
        self.version.set(self.version.get() + 1);
    }

    /// The general put: copies the way on write, writes overflow chains, splits.
    async fn put_general(&self, key: &[u8], value: &[u8], lsn: u64) -> Result<bool, StorageError> {
        // Before and after: a seek taken while this awaits is stale too.
        self.changed();
        let result = self.put_general_inner(key, value, lsn).await;
        self.changed();
        result
    }

    async fn put_general_inner(
        &self,
        key: &[u8],
        value: &[u8],
        lsn: u64,
    ) -> Result<bool, StorageError> {
        if key.len() > KEY_BYTES_MAX {
            return Err(StorageError::KeyTooLarge {
                len: key.len(),
                max: KEY_BYTES_MAX,
            });
        }
        if value.len() > VALUE_BYTES_MAX {
            return Err(StorageError::ValueTooLarge {
                len: value.len(),
                max: VALUE_BYTES_MAX,
            });
        }
        self.note_change(key, lsn);
        let stored: Vec<u8> = if page::cell_bytes(key, value) < CELL_BYTES_MAX {
            let mut v = Vec::with_capacity(1 + value.len());
            v.push(VALUE_INLINE);
            v.extend_from_slice(value);
            v
        } else {
            let first = self.write_overflow(value, lsn).await?;
            let mut v = Vec::with_capacity(OVERFLOW_REF_BYTES);
            v.push(VALUE_OVERFLOW);
            v.extend_from_slice(&(value.len() as u32).to_le_bytes());
            v.extend_from_slice(&first.0.to_le_bytes());
            v
        };
        let root = self.meta.borrow().root;
        if root.is_none() {
            let id = self.alloc.borrow_mut().alloc();
            let p = self.cache.create(self.file, id, lsn).await?;
            let ins: [(&[u8], &[u8]); 1] = [(key, &stored)];
            let s = Splice {
                page: None,
                at: 0,
                removed: 0,
                inserted: &ins,
            };
            page::build(&mut p.bytes_mut(lsn), PageKind::Leaf, &s, 0..1);
            let mut m = self.meta.borrow_mut();
            m.root = Some(id);
            m.entries += 1;
            return Ok(false);
        }
        let (path, leaf_id) = self.writable_path(key, lsn).await?;
        let leaf = self.cache.get(self.file, leaf_id).await?;
        let (at, old) = {
            let b = leaf.bytes();
            match page::search(&b, key) {
                Ok(i) => (
                    i,
                    Some(decode_stored(page::cell(&b, i).1, self.io.path(), leaf_id)?.overflow()),
                ),
                Err(i) => (i, None),
            }
        };
        let ins: [(&[u8], &[u8]); 1] = [(key, &stored)];
        let split = self
            .edit(
                &leaf,
                PageKind::Leaf,
                at,
                usize::from(old.is_some()),
                &ins,
                lsn,
            )
            .await?;
        drop(leaf);
        self.propagate(path, split, lsn).await?;
        if old.is_none() {
            self.meta.borrow_mut().entries += 1;
        }
        if let Some(Some(first)) = old {
            self.free_overflow(first).await?;
        }
        Ok(old.is_some())
    }

    /// Carries a split up the path: inserts each new sibling into its parent, growing a
    /// new root when the root split.
    async fn propagate(
        &self,
        mut path: Vec<(PageId, usize)>,
        mut split: Option<(Vec<u8>, PageId)>,
        lsn: u64,
    ) -> Result<(), StorageError> {
        while let Some((sep, right)) = split.take() {
            let right_v = right.0.to_le_bytes();
            match path.pop() {
                Some((parent_id, idx)) => {
                    let parent = self.cache.get(self.file, parent_id).await?;
                    let ins: [(&[u8], &[u8]); 1] = [(&sep, &right_v)];
                    split = self
                        .edit(&parent, PageKind::Branch, idx + 1, 0, &ins, lsn)
                        .await?;
                }
                None => {
                    let Some(old_root) = self.meta.borrow().root else {
                        return Err(self.malformed(right, "split of an empty tree"));
                    };
                    let id = self.alloc.borrow_mut().alloc();
                    let p = self.cache.create(self.file, id, lsn).await?;
                    let left_v = old_root.0.to_le_bytes();
                    let ins: [(&[u8], &[u8]); 2] = [(b"", &left_v), (&sep, &right_v)];
                    let s = Splice {
                        page: None,
                        at: 0,
                        removed: 0,
                        inserted: &ins,
                    };
                    page::build(&mut p.bytes_mut(lsn), PageKind::Branch, &s, 0..2);
                    self.meta.borrow_mut().root = Some(id);
                }
            }
        }
        Ok(())
    }

    /// Removes `key` as the change at `lsn`; returns whether it was there.
    pub async fn delete(&self, key: &[u8], lsn: u64) -> Result<bool, StorageError> {
        let seek = self.seek(key).await?;
        self.delete_at(seek, key, lsn).await
    }

    /// [`Tree::delete`] at `seek`, which must come from a seek of `key`: in place in the
    /// sought leaf when the seek is current, the way is the epoch's and the leaf keeps a
    /// cell; otherwise by the general path.
    pub async fn delete_at(
        &self,
        seek: Seek<F>,
        key: &[u8],
        lsn: u64,
    ) -> Result<bool, StorageError> {
        self.note_change(key, lsn);
        if seek.version == self.version.get() {
            let Some(leaf) = &seek.leaf else {
                return Ok(false);
            };
            let i = {
                let b = leaf.bytes();
                check_seek_position(&b, seek.at, key);
                let Ok(i) = seek.at else {
                    return Ok(false);
                };
                let inline = matches!(
                    decode_stored(page::cell(&b, i).1, self.io.path(), leaf.id())?,
                    Stored::Inline(_)
                );
                (seek.in_epoch && inline && page::count(&b) > 1).then_some(i)
            };
            if let Some(i) = i {
                let done = page::splice_in_place(&mut leaf.bytes_mut(lsn), i, 1, &[]);
                assert!(done, "a removal did not fit its page");
                self.changed();
                self.in_place_writes.set(self.in_place_writes.get() + 1);
                self.meta.borrow_mut().entries -= 1;
                return Ok(true);
            }
        } else {
            let exists = self.seek(key).await?.found();
            if !exists {
                return Ok(false);
            }
        }
        drop(seek);
        self.changed();
        let result = self.delete_general(key, lsn).await;
        self.changed();
        result
    }

    /// The general delete of a key that is there: copies the way on write, unlinks pages
    /// it empties, frees an overflow chain.
    async fn delete_general(&self, key: &[u8], lsn: u64) -> Result<bool, StorageError> {
        let (mut path, leaf_id) = self.writable_path(key, lsn).await?;
        let leaf = self.cache.get(self.file, leaf_id).await?;
        let (at, n, old) = {
            let b = leaf.bytes();
            let Ok(i) = page::search(&b, key) else {
                return Err(self.malformed(leaf_id, "key vanished from its leaf"));
            };
            let old = decode_stored(page::cell(&b, i).1, self.io.path(), leaf_id)?.overflow();
            (i, page::count(&b), old)
        };
        if n > 1 {
            let split = self.edit(&leaf, PageKind::Leaf, at, 1, &[], lsn).await?;
            assert!(split.is_none(), "a removal split a page");
            drop(leaf);
        } else {
            // The leaf empties: unlink it, and every ancestor it leaves empty.
            drop(leaf);
            self.free_page(leaf_id);
            let mut emptied = true;
            while let Some((parent_id, idx)) = path.pop() {
                let parent = self.cache.get(self.file, parent_id).await?;
                let count = page::count(&parent.bytes());
                if count > 1 {
                    let split = self
                        .edit(&parent, PageKind::Branch, idx, 1, &[], lsn)
                        .await?;
                    assert!(split.is_none(), "a removal split a page");
                    emptied = false;
                    break;
                }
                drop(parent);
                self.free_page(parent_id);
            }
            if emptied {
                self.meta.borrow_mut().root = None;
            }
            self.collapse_root().await?;
        }
        self.meta.borrow_mut().entries -= 1;
        if let Some(first) = old {
            self.free_overflow(first).await?;
        }
        Ok(true)
    }

    /// While the root is a branch with one child, the child becomes the root.
    async fn collapse_root(&self) -> Result<(), StorageError> {
        loop {
            let Some(root) = self.meta.borrow().root else {
                return Ok(());
            };
            let p = self.cache.get(self.file, root).await?;
            let only_child = {
                let b = p.bytes();
                (page::kind(&b) == Some(PageKind::Branch) && page::count(&b) == 1)
                    .then(|| child_of(page::cell(&b, 0).1))
            };
            drop(p);
            match only_child {
                Some(child) => {
                    self.free_page(root);
                    self.meta.borrow_mut().root = Some(child);
                }
                None => return Ok(()),
            }
        }
    }

    /// Appends to `out` up to `limit` entries with keys within (`lower`, `upper`), in
    /// ascending order, or descending if `reverse`; stops early once the values appended
    /// reach `bytes_max` bytes.
    pub async fn scan(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        bytes_max: usize,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let mut bytes = 0usize;
        let Some(root) = self.meta.borrow().root else {
            return Ok(());
        };
        let target = if reverse { upper } else { lower };
        // Descend to the first leaf position, remembering (branch, child index).
        let mut stack: Vec<(PageId, usize)> = Vec::new();
        let mut id = root;
        let first_child = |b: &[u8]| match (target, reverse) {
            (Bound::Unbounded, false) => 0,
            (Bound::Unbounded, true) => page::count(b) - 1,
            (Bound::Included(k), _) | (Bound::Excluded(k), false) => child_index(b, k),
            (Bound::Excluded(k), true) => match page::search(b, k) {
                Ok(i) | Err(i) => i.saturating_sub(1),
            },
        };
        let mut leaf = loop {
            match self.step(id, first_child).await? {
                (p, None) => break p,
                (_, Some((idx, child))) => {
                    stack.push((id, idx));
                    id = child;
                }
            }
        };
        // Position within the leaf: `pos` is the next cell to look at (as isize for reverse).
        let mut pos: isize = {
            let b = leaf.bytes();
            let n = page::count(&b) as isize;
            match (target, reverse) {
                (Bound::Unbounded, false) => 0,
                (Bound::Unbounded, true) => n - 1,
                (Bound::Included(k), false) => match page::search(&b, k) {
                    Ok(i) | Err(i) => i as isize,
                },
                (Bound::Excluded(k), false) => match page::search(&b, k) {
                    Ok(i) => i as isize + 1,
                    Err(i) => i as isize,
                },
                (Bound::Included(k), true) => match page::search(&b, k) {
                    Ok(i) => i as isize,
                    Err(i) => i as isize - 1,
                },
                (Bound::Excluded(k), true) => match page::search(&b, k) {
                    Ok(i) | Err(i) => i as isize - 1,
                },
            }
        };
        while out.len() < limit && bytes < bytes_max {
            let n = page::count(&leaf.bytes()) as isize;
            if pos < 0 || pos >= n {
                // Move to the neighbouring leaf through the stack.
                let mut next_leaf = None;
                while let Some((bid, idx)) = stack.pop() {
                    let b = self.cache.get(self.file, bid).await?;
                    let count = page::count(&b.bytes());
                    let sibling = if reverse {
                        idx.checked_sub(1)
                    } else {
                        (idx + 1 < count).then_some(idx + 1)
                    };
                    if let Some(s) = sibling {
                        stack.push((bid, s));
                        let mut child = child_of(page::cell(&b.bytes(), s).1);
                        drop(b);
                        // Descend to the edge leaf of that subtree.
                        let edge = |pb: &[u8]| if reverse { page::count(pb) - 1 } else { 0 };
                        loop {
                            match self.step(child, edge).await? {
                                (p, None) => {
                                    next_leaf = Some(p);
                                    break;
                                }
                                (_, Some((i, c))) => {
                                    stack.push((child, i));
                                    child = c;
                                }
                            }
                        }
                        break;
                    }
                }
                match next_leaf {
                    None => return Ok(()),
                    Some(l) => {
                        let n = page::count(&l.bytes()) as isize;
                        pos = if reverse { n - 1 } else { 0 };
                        leaf = l;
                        continue;
                    }
                }
            }
            let (key, value) = {
                let b = leaf.bytes();
                let i = pos as usize;
                let key = page::cell(&b, i).0;
                let inside = if reverse {
                    match lower {
                        Bound::Unbounded => true,
                        Bound::Included(l) => key >= l,
                        Bound::Excluded(l) => key > l,
                    }
                } else {
                    match upper {
                        Bound::Unbounded => true,
                        Bound::Included(u) => key <= u,
                        Bound::Excluded(u) => key < u,
                    }
                };
                if !inside {
                    return Ok(());
                }
                (key.to_vec(), self.value_or_ref(&b, leaf.id(), i)?)
            };
            let value = match value {
                CellValue::Bytes(v) => v,
                CellValue::Overflow { len, first } => self.read_overflow(len, first).await?,
            };
            bytes += value.len();
            out.push((key, value));
            pos += if reverse { -1 } else { 1 };
        }
        Ok(())
    }

    /// Makes everything applied so far durable in the tree file: both phases of a
    /// checkpoint back to back. Returns the new durable checkpoint.
    pub async fn checkpoint(&self) -> Result<Superblock, StorageError> {
        let plan = self.begin_checkpoint().await?;
        self.complete_checkpoint(plan).await
    }

    /// Phase one, under the writers' lock: freezes the tree as it is now. The pages of
    /// the epoch become the checkpoint's (any later edit copies them), the free list is
    /// written to new pages, and the superblock to write is decided. Writers may run
    /// again as soon as this returns.
    pub async fn begin_checkpoint(&self) -> Result<CheckpointPlan, StorageError> {
        assert!(
            !self.alloc.borrow().checkpointing,
            "a checkpoint is already in progress"
        );
        self.changed();
        let lsn = self.meta.borrow().applied_lsn;
        let (fl_pages, ids) = {
            let mut a = self.alloc.borrow_mut();
            let mut fl_pages: Vec<PageId> = Vec::new();
            loop {
                let total = a.free.len() + a.pending.len();
                if fl_pages.len() >= total.div_ceil(FREELIST_IDS_MAX) {
                    break;
                }
                let id = a.alloc();
                fl_pages.push(id);
            }
            let mut ids: Vec<u64> = a.free.iter().chain(a.pending.iter()).copied().collect();
            ids.sort_unstable();
            (fl_pages, ids)
        };
        for (k, id) in fl_pages.iter().enumerate() {
            let chunk = ids.chunks(FREELIST_IDS_MAX).nth(k).unwrap_or_default();
            let next = fl_pages.get(k + 1).map_or(0, |p| p.0);
            let p = self.cache.create(self.file, *id, lsn).await?;
            page::build_freelist(&mut p.bytes_mut(lsn), chunk, next);
        }
        let sb = {
            let m = self.meta.borrow();
            Superblock {
                generation: m.durable.generation + 1,
                lsn,
                root: m.root,
                freelist_head: fl_pages.first().copied(),
                page_count: self.alloc.borrow().page_count,
                entries: m.entries,
                tree_id: self.tree_id,
            }
        };
        let mut a = self.alloc.borrow_mut();
        a.frozen = std::mem::take(&mut a.epoch);
        a.frozen_pending = std::mem::take(&mut a.pending);
        a.checkpointing = true;
        Ok(CheckpointPlan { sb, fl_pages })
    }

    /// Phase two, without the writers' lock: writes the frozen pages, syncs, flips the
    /// superblock and syncs again. The caller must first make the WAL durable up to
    /// `plan.lsn()`: a checkpoint never holds a change the log could lose. On error the
    /// tree must not be used further (fail-stop).
    pub async fn complete_checkpoint(
        &self,
        plan: CheckpointPlan,
    ) -> Result<Superblock, StorageError> {
        let pages: IdSet = self.alloc.borrow().frozen.clone();
        self.cache
            .flush(self.file, |id| pages.contains(&id.0))
            .await?;
        self.io.sync().await?;
        let sb = plan.sb;
        let mut slot = vec![0u8; SUPERBLOCK_BYTES];
        sb.encode(&mut slot);
        self.io.write_superblock(sb.slot(), &slot).await?;
        self.io.sync().await?;
        // The new checkpoint is durable: what the old one referenced and the frozen epoch
        // freed is free now; the new free list is referenced until the next checkpoint.
        {
            let mut a = self.alloc.borrow_mut();
            let freed = std::mem::take(&mut a.frozen_pending);
            a.free.extend(freed);
            a.pending.extend(plan.fl_pages.iter().map(|p| p.0));
            a.frozen.clear();
            a.checkpointing = false;
        }
        for id in &plan.fl_pages {
            self.cache.discard(self.file, *id);
        }
        self.meta.borrow_mut().durable = sb;
        self.changed();
        Ok(sb)
    }

    /// Checks the structure of the whole tree (debug and tests): key order across pages,
    /// separators, entry count, and that no page is both reachable and free.
    pub async fn check(&self) -> Result<u64, StorageError> {
        let Some(root) = self.meta.borrow().root else {
            assert_eq!(self.meta.borrow().entries, 0, "empty tree with entries");
            return Ok(0);
        };
        let mut seen = HashSet::new();
        let mut entries = 0u64;
        let mut last: Option<Vec<u8>> = None;
        // (page, lower bound from the parent separator)
        let mut todo: Vec<(PageId, Vec<u8>)> = vec![(root, Vec::new())];
        while let Some((id, low)) = todo.pop() {
            assert!(seen.insert(id.0), "{id} reachable twice");
            {
                let a = self.alloc.borrow();
                assert!(!a.free.contains(&id.0), "{id} reachable and free");
                assert!(
                    !a.pending.contains(&id.0),
                    "{id} reachable and pending free"
                );
            }
            let p = self.cache.get(self.file, id).await?;
            let b = p.bytes();
            let n = page::count(&b);
            assert!(n > 0, "{id} is empty");
            match page::kind(&b) {
                Some(PageKind::Leaf) => {
                    for i in 0..n {
                        let k = page::cell(&b, i).0;
                        assert!(k >= &low[..], "{id}: key below its separator");
                        if let Some(l) = &last {
                            assert!(&l[..] < k, "{id}: keys out of order across leaves");
                        }
                        last = Some(k.to_vec());
                        entries += 1;
                    }
                }
                Some(PageKind::Branch) => {
                    // Depth first, left to right: push children in reverse.
                    for i in (0..n).rev() {
                        let (k, v) = page::cell(&b, i);
                        let l = if i == 0 { low.clone() } else { k.to_vec() };
                        todo.push((child_of(v), l));
                    }
                }
                _ => panic!("{id}: not a tree page"),
            }
        }
        assert_eq!(entries, self.meta.borrow().entries, "entry count");
        Ok(entries)
    }
}

/// A checkpoint begun by [`Tree::begin_checkpoint`], to finish with
/// [`Tree::complete_checkpoint`].
#[must_use = "a begun checkpoint must be completed"]
pub struct CheckpointPlan {
    sb: Superblock,
    fl_pages: Vec<PageId>,
}

impl CheckpointPlan {
    /// The LSN the checkpoint covers: the WAL must be durable up to it first.
    pub fn lsn(&self) -> u64 {
        self.sb.lsn
    }
}

impl Stored<'_> {
    fn overflow(&self) -> Option<PageId> {
        match self {
            Stored::Inline(_) => None,
            Stored::Overflow { first, .. } => Some(*first),
        }
    }
}
