//! The I/O seam of a B-tree: whole pages and superblock slots of one file.
//!
//! [`PageFile`] has a glommio implementation ([`DmaPageFile`], direct I/O) and an in-memory
//! one ([`MemPageFile`]) that keeps live and durable bytes apart, so that tests can cut the
//! power: everything written since the last sync is lost.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};

use super::page::{PageId, PAGE_BYTES};
use super::superblock::SUPERBLOCK_BYTES;
use crate::error::{io_error, StorageError};

/// Whole-page I/O on one tree file.
pub trait PageFile {
    /// A page read from the file.
    type ReadBuf: Deref<Target = [u8]>;
    /// A buffer to fill and hand to [`PageFile::write_pages`].
    type WriteBuf: AsMut<[u8]>;
    /// The file's name, for errors.
    fn path(&self) -> &str;
    /// A buffer of `pages` whole pages for a write. Its bytes are unspecified: the caller
    /// overwrites all of them.
    fn write_buf(&self, pages: usize) -> Self::WriteBuf;
    /// Reads page `page` whole.
    fn read_page(&self, page: PageId) -> impl Future<Output = Result<Self::ReadBuf, StorageError>>;
    /// Writes the pages in `buf` to `first` and the pages after it, in one write (not
    /// durable until [`PageFile::sync`]).
    fn write_pages(
        &self,
        first: PageId,
        buf: Self::WriteBuf,
    ) -> impl Future<Output = Result<(), StorageError>>;
    /// Makes every completed write durable.
    fn sync(&self) -> impl Future<Output = Result<(), StorageError>>;
    /// Reads both superblock slots (zeros past the end of the file) and the file's length.
    fn read_superblocks(&self) -> impl Future<Output = Result<(Vec<u8>, u64), StorageError>>;
    /// Writes superblock slot `slot` (0 or 1); `bytes` is one slot.
    fn write_superblock(
        &self,
        slot: usize,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), StorageError>>;
}

/// A tree file on disk, read and written with O_DIRECT through glommio.
pub struct DmaPageFile {
    file: DmaFile,
    path: String,
}

impl DmaPageFile {
    /// Opens (creating if missing) the tree file at `path` for direct I/O.
    pub async fn open(path: &Path) -> Result<DmaPageFile, StorageError> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(path)
            .await
            .map_err(|e| io_error("open", &name, 0, e.into()))?;
        Ok(DmaPageFile { file, path: name })
    }
}

fn page_offset(page: PageId) -> u64 {
    page.0 * PAGE_BYTES as u64
}

impl PageFile for DmaPageFile {
    type ReadBuf = ReadResult;
    type WriteBuf = DmaBuffer;

    fn path(&self) -> &str {
        &self.path
    }

    fn write_buf(&self, pages: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(pages * PAGE_BYTES)
    }

    async fn read_page(&self, page: PageId) -> Result<ReadResult, StorageError> {
        let at = page_offset(page);
        let r = self
            .file
            .read_at_aligned(at, PAGE_BYTES)
            .await
            .map_err(|e| io_error("read", &self.path, at, e.into()))?;
        if r.len() != PAGE_BYTES {
            return Err(io_error(
                "read",
                &self.path,
                at,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("short read of {} bytes", r.len()),
                ),
            ));
        }
        Ok(r)
    }

    async fn write_pages(&self, first: PageId, buf: DmaBuffer) -> Result<(), StorageError> {
        let at = page_offset(first);
        let len = buf.len();
        let n = self
            .file
            .write_at(buf, at)
            .await
            .map_err(|e| io_error("write", &self.path, at, e.into()))?;
        if n != len {
            return Err(io_error(
                "write",
                &self.path,
                at,
                std::io::Error::new(std::io::ErrorKind::WriteZero, format!("short write {n}")),
            ));
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), StorageError> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| io_error("fdatasync", &self.path, 0, e.into()))
    }

    async fn read_superblocks(&self) -> Result<(Vec<u8>, u64), StorageError> {
        let len = self
            .file
            .file_size()
            .await
            .map_err(|e| io_error("stat", &self.path, 0, e.into()))?;
        let mut out = vec![0u8; 2 * SUPERBLOCK_BYTES];
        if len > 0 {
            let r = self
                .file
                .read_at_aligned(0, 2 * SUPERBLOCK_BYTES)
                .await
                .map_err(|e| io_error("read", &self.path, 0, e.into()))?;
            let n = r.len().min(out.len());
            if let (Some(dst), Some(src)) = (out.get_mut(..n), r.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
        Ok((out, len))
    }

    async fn write_superblock(&self, slot: usize, bytes: &[u8]) -> Result<(), StorageError> {
        assert!(slot < 2, "superblock slot {slot}");
        assert_eq!(bytes.len(), SUPERBLOCK_BYTES, "superblock size");
        let at = (slot * SUPERBLOCK_BYTES) as u64;
        let mut b = self.file.alloc_dma_buffer(SUPERBLOCK_BYTES);
        b.as_bytes_mut().copy_from_slice(bytes);
        self.file
            .write_at(b, at)
            .await
            .map_err(|e| io_error("write superblock", &self.path, at, e.into()))?;
        Ok(())
    }
}

/// The state of an in-memory tree file.
#[derive(Default, Clone)]
struct MemState {
    live: HashMap<u64, Vec<u8>>,
    durable: HashMap<u64, Vec<u8>>,
    reads: u64,
    writes: u64,
}

/// An in-memory tree file for tests: keeps what was written and what was synced apart, so
/// that [`MemPageFile::crash`] can drop every unsynced write, and [`MemPageFile::corrupt`]
/// can flip a byte of a stored page.
#[derive(Clone, Default)]
pub struct MemPageFile {
    state: Rc<RefCell<MemState>>,
}

/// Key of the superblock page in [`MemState`]: page 0 holds both slots.
const MEM_SUPERBLOCK: u64 = 0;

impl MemPageFile {
    /// A new empty file.
    pub fn new() -> MemPageFile {
        MemPageFile::default()
    }

    /// Cuts the power: every write since the last sync is lost.
    pub fn crash(&self) {
        let mut s = self.state.borrow_mut();
        s.live = s.durable.clone();
    }

    /// Flips one byte of a stored page (live and durable copies).
    pub fn corrupt(&self, page: PageId, offset: usize) {
        let mut guard = self.state.borrow_mut();
        let s = &mut *guard;
        for map in [&mut s.live, &mut s.durable] {
            if let Some(b) = map.get_mut(&page.0).and_then(|p| p.get_mut(offset)) {
                *b ^= 0x40;
            }
        }
    }

    /// Makes this file an exact copy of `other` (live and durable bytes).
    pub fn copy_from(&self, other: &MemPageFile) {
        let copy = other.state.borrow().clone();
        *self.state.borrow_mut() = copy;
    }

    /// Pages read and written so far.
    pub fn io_counts(&self) -> (u64, u64) {
        let s = self.state.borrow();
        (s.reads, s.writes)
    }
}

/// A page read from a [`MemPageFile`].
pub struct MemBuf(Vec<u8>);

impl Deref for MemBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for MemBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl PageFile for MemPageFile {
    type ReadBuf = MemBuf;
    type WriteBuf = MemBuf;

    fn path(&self) -> &str {
        "<memory>"
    }

    fn write_buf(&self, pages: usize) -> MemBuf {
        MemBuf(vec![0u8; pages * PAGE_BYTES])
    }

    async fn read_page(&self, page: PageId) -> Result<MemBuf, StorageError> {
        // Suspend like real I/O, so that concurrent tasks interleave here.
        futures_lite::future::yield_now().await;
        let mut s = self.state.borrow_mut();
        s.reads += 1;
        match s.live.get(&page.0) {
            Some(p) => Ok(MemBuf(p.clone())),
            None => Err(io_error(
                "read",
                "<memory>",
                page_offset(page),
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "page never written"),
            )),
        }
    }

    async fn write_pages(&self, first: PageId, buf: MemBuf) -> Result<(), StorageError> {
        futures_lite::future::yield_now().await;
        assert_ne!(first.0, MEM_SUPERBLOCK, "page 0 holds the superblocks");
        assert_eq!(buf.0.len() % PAGE_BYTES, 0, "a write of part of a page");
        let mut s = self.state.borrow_mut();
        s.writes += 1;
        for (k, page) in buf.0.chunks_exact(PAGE_BYTES).enumerate() {
            s.live.insert(first.0 + k as u64, page.to_vec());
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), StorageError> {
        let mut s = self.state.borrow_mut();
        s.durable = s.live.clone();
        Ok(())
    }

    async fn read_superblocks(&self) -> Result<(Vec<u8>, u64), StorageError> {
        let s = self.state.borrow();
        let len = s
            .live
            .keys()
            .max()
            .map_or(0, |m| (m + 1) * PAGE_BYTES as u64);
        let mut out = vec![0u8; 2 * SUPERBLOCK_BYTES];
        if let Some(p) = s.live.get(&MEM_SUPERBLOCK) {
            out.copy_from_slice(p.get(..2 * SUPERBLOCK_BYTES).unwrap_or_default());
        }
        Ok((out, len))
    }

    async fn write_superblock(&self, slot: usize, bytes: &[u8]) -> Result<(), StorageError> {
        let mut s = self.state.borrow_mut();
        let p = s
            .live
            .entry(MEM_SUPERBLOCK)
            .or_insert_with(|| vec![0u8; PAGE_BYTES]);
        if let Some(dst) = p.get_mut(slot * SUPERBLOCK_BYTES..(slot + 1) * SUPERBLOCK_BYTES) {
            dst.copy_from_slice(bytes);
        }
        Ok(())
    }
}
