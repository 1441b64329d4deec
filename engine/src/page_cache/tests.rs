//! Tests of the page cache's write-back over the in-memory file.

use std::rc::Rc;

use futures_lite::future::block_on;

use super::{PageCache, WRITE_RUN_PAGES_MAX};
use crate::btree::file::{MemPageFile, PageFile};
use crate::btree::page::{self, PageId, PAGE_BYTES};
use crate::error::StorageError;

/// A cache of `frames` frames over a new in-memory file.
fn setup(frames: usize) -> (MemPageFile, Rc<PageCache<MemPageFile>>, super::FileId) {
    let file = MemPageFile::new();
    let cache = PageCache::<MemPageFile>::new(frames * PAGE_BYTES);
    let f = cache.register(Rc::new(file.clone()));
    (file, cache, f)
}

/// Creates page `id` as a freelist page naming `id * 7`: valid, and its own.
async fn create<F: PageFile>(cache: &Rc<PageCache<F>>, file: super::FileId, id: u64) {
    let p = cache.create(file, PageId(id), id).await.unwrap();
    page::build_freelist(&mut p.bytes_mut(id), &[id * 7], 0);
}

/// Reads every page of `ids` through a fresh cache: each must verify and be its own.
async fn check_pages(file: &MemPageFile, ids: impl Iterator<Item = u64>) {
    let cache = PageCache::<MemPageFile>::new(64 * PAGE_BYTES);
    let f = cache.register(Rc::new(file.clone()));
    for id in ids {
        let p = cache.get(f, PageId(id)).await.unwrap();
        let named: Vec<u64> = page::freelist_ids(&p.bytes()).collect();
        assert_eq!(named, vec![id * 7], "page {id}");
    }
}

#[test]
fn a_flush_writes_consecutive_pages_in_one_write_each() {
    block_on(async {
        let (file, cache, f) = setup(256);
        // Pages 1..=40 (a run longer than one write takes) and 50..=52, created out of
        // order; page 45 is flushed on its own first.
        create(&cache, f, 45).await;
        cache.flush(f, |_| true).await.unwrap();
        assert_eq!(file.io_counts().1, 1);
        for id in (50..=52).chain((1..=40).rev()) {
            create(&cache, f, id).await;
        }
        cache.flush(f, |_| true).await.unwrap();
        let runs = 40usize.div_ceil(WRITE_RUN_PAGES_MAX) as u64 + 1;
        assert_eq!(file.io_counts().1, 1 + runs, "one write per run of pages");
        assert_eq!(cache.dirty_pages(f), 0);
        assert_eq!(cache.stats().writebacks, 44);
        file.sync().await.unwrap();
        check_pages(&file, (1..=40).chain(45..=45).chain(50..=52)).await;
    });
}

#[test]
fn a_clean_page_splits_a_run_and_the_flush_picks_only_what_it_is_asked() {
    block_on(async {
        let (file, cache, f) = setup(256);
        for id in 1..=20 {
            create(&cache, f, id).await;
        }
        // Page 10 alone first: then 1..=9 and 11..=20 are two runs.
        cache.flush(f, |id| id.0 == 10).await.unwrap();
        assert_eq!(file.io_counts().1, 1);
        assert_eq!(cache.dirty_pages(f), 19);
        // Only pages up to 15: 1..=9 and 11..=15.
        cache.flush(f, |id| id.0 <= 15).await.unwrap();
        assert_eq!(file.io_counts().1, 3);
        assert_eq!(cache.dirty_pages(f), 5);
        cache.flush(f, |_| true).await.unwrap();
        assert_eq!(file.io_counts().1, 4);
        file.sync().await.unwrap();
        check_pages(&file, 1..=20).await;
    });
}

#[test]
fn an_edit_after_a_write_back_is_written_by_the_next_flush() {
    block_on(async {
        let (file, cache, f) = setup(64);
        for id in 1..=3 {
            create(&cache, f, id).await;
        }
        cache.flush(f, |_| true).await.unwrap();
        {
            let p = cache.get(f, PageId(2)).await.unwrap();
            page::build_freelist(&mut p.bytes_mut(9), &[99], 0);
        }
        assert_eq!(cache.dirty_pages(f), 1);
        cache.flush(f, |_| true).await.unwrap();
        file.sync().await.unwrap();
        let fresh = PageCache::<MemPageFile>::new(64 * PAGE_BYTES);
        let g = fresh.register(Rc::new(file.clone()));
        let p = fresh.get(g, PageId(2)).await.unwrap();
        assert_eq!(page::freelist_ids(&p.bytes()).collect::<Vec<_>>(), vec![99]);
        drop(p);
        check_pages(&file, [1, 3].into_iter()).await;
    });
}

/// A [`MemPageFile`] whose writes fail while `fail` is set.
struct FailingFile {
    inner: MemPageFile,
    fail: std::cell::Cell<bool>,
}

impl PageFile for FailingFile {
    type ReadBuf = <MemPageFile as PageFile>::ReadBuf;
    type WriteBuf = <MemPageFile as PageFile>::WriteBuf;

    fn path(&self) -> &str {
        "<failing>"
    }

    fn write_buf(&self, pages: usize) -> Self::WriteBuf {
        self.inner.write_buf(pages)
    }

    async fn read_page(&self, page: PageId) -> Result<Self::ReadBuf, StorageError> {
        self.inner.read_page(page).await
    }

    async fn write_pages(&self, first: PageId, buf: Self::WriteBuf) -> Result<(), StorageError> {
        if self.fail.get() {
            let e = std::io::Error::other("injected write failure");
            return Err(crate::error::io_error("write", "<failing>", first.0, e));
        }
        self.inner.write_pages(first, buf).await
    }

    async fn sync(&self) -> Result<(), StorageError> {
        self.inner.sync().await
    }

    async fn read_superblocks(&self) -> Result<(Vec<u8>, u64), StorageError> {
        self.inner.read_superblocks().await
    }

    async fn write_superblock(&self, slot: usize, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner.write_superblock(slot, bytes).await
    }
}

#[test]
fn a_failed_run_write_keeps_every_page_of_the_run_dirty() {
    block_on(async {
        let mem = MemPageFile::new();
        let file = Rc::new(FailingFile {
            inner: mem.clone(),
            fail: std::cell::Cell::new(true),
        });
        let cache = PageCache::<FailingFile>::new(64 * PAGE_BYTES);
        let f = cache.register(file.clone());
        for id in 1..=10 {
            create(&cache, f, id).await;
        }
        let err = cache.flush(f, |_| true).await.unwrap_err();
        assert!(matches!(err, StorageError::Io { op: "write", .. }), "{err}");
        // Nothing reached the file, and nothing was forgotten.
        assert_eq!(mem.io_counts().1, 0);
        assert_eq!(cache.dirty_pages(f), 10);
        file.fail.set(false);
        cache.flush(f, |_| true).await.unwrap();
        assert_eq!(cache.dirty_pages(f), 0);
        assert_eq!(mem.io_counts().1, 1, "the ten pages go out as one write");
        mem.sync().await.unwrap();
        check_pages(&mem, 1..=10).await;
    });
}

#[test]
fn no_page_is_evicted_while_a_frame_is_free() {
    block_on(async {
        let (file, cache, f) = setup(8);
        // Fill every frame, write the pages back (clean, unreferenced: the first pages a
        // CLOCK sweep would take), then free the frames of the last four.
        for id in 1..=8 {
            create(&cache, f, id).await;
        }
        cache.flush(f, |_| true).await.unwrap();
        file.sync().await.unwrap();
        for id in 5..=8 {
            cache.discard(f, PageId(id));
        }
        for id in 11..=14 {
            create(&cache, f, id).await;
        }
        assert_eq!(cache.stats().evictions, 0);
        for id in 1..=4 {
            assert!(
                cache.try_get(f, PageId(id)).is_some(),
                "page {id} was evicted"
            );
        }
        // With no frame free, a claim evicts.
        create(&cache, f, 15).await;
        assert_eq!(cache.stats().evictions, 1);
    });
}
