//! Property tests of the B-tree against a `BTreeMap` model, over the in-memory file with
//! power cuts, and corruption tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use futures_lite::future::block_on;
use proptest::prelude::*;

use super::file::MemPageFile;
use super::page::PAGE_BYTES;
use super::tree::Tree;
use crate::error::StorageError;
use crate::page_cache::PageCache;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, usize, u8),
    Delete(Vec<u8>),
    Get(Vec<u8>),
    Scan(Vec<u8>, Vec<u8>, bool, usize),
    Checkpoint,
    Crash,
    /// Seek the first key, then put (`Some`) or delete (`None`) the second, then put or
    /// delete the first at its seek, which the second write made stale.
    SeekAcross(Vec<u8>, Option<(usize, u8)>, Vec<u8>, Option<(usize, u8)>),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xff]), 1..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key(), prop_oneof![0usize..64, 64usize..3000, 3000usize..40_000], any::<u8>())
            .prop_map(|(k, n, b)| Op::Put(k, n, b)),
        3 => key().prop_map(Op::Delete),
        3 => key().prop_map(Op::Get),
        2 => (key(), key(), any::<bool>(), 1usize..50)
            .prop_map(|(a, b, r, l)| Op::Scan(a, b, r, l)),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
        3 => (key(), write(), key(), write())
            .prop_map(|(a, wa, b, wb)| Op::SeekAcross(a, wa, b, wb)),
    ]
}

/// A put of a value of that length and seed byte, or a delete.
fn write() -> impl Strategy<Value = Option<(usize, u8)>> {
    prop::option::of((
        prop_oneof![0usize..64, 64usize..3000, 3000usize..40_000],
        any::<u8>(),
    ))
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Applies a put (`Some`) or delete (`None`) at `seek` to the tree and the model.
async fn write_at(
    tree: &Tree<MemPageFile>,
    model: &mut Model,
    seek: super::Seek<MemPageFile>,
    k: Vec<u8>,
    w: Option<(usize, u8)>,
    lsn: u64,
) {
    match w {
        Some((n, b)) => {
            let v = value(n, b);
            let replaced = tree.put_at(seek, &k, &v, lsn).await.unwrap();
            assert_eq!(replaced, model.insert(k, v).is_some());
        }
        None => {
            let existed = tree.delete_at(seek, &k, lsn).await.unwrap();
            assert_eq!(existed, model.remove(&k).is_some());
        }
    }
}

async fn open(file: &MemPageFile, frames: usize) -> Result<Tree<MemPageFile>, StorageError> {
    let cache = PageCache::new(frames * PAGE_BYTES);
    Tree::open(cache, Rc::new(file.clone()), 1).await
}

fn value(n: usize, b: u8) -> Vec<u8> {
    (0..n).map(|i| b.wrapping_add(i as u8)).collect()
}

async fn run(ops: Vec<Op>) {
    let file = MemPageFile::new();
    let mut tree = open(&file, 8).await.unwrap();
    let mut model = Model::new();
    let mut durable = Model::new();
    let mut plan = None;
    let mut lsn = 0;
    for op in ops {
        lsn += 1;
        match op {
            Op::Put(k, n, b) => {
                let v = value(n, b);
                let replaced = tree.put(&k, &v, lsn).await.unwrap();
                assert_eq!(replaced, model.insert(k, v).is_some());
            }
            Op::Delete(k) => {
                let existed = tree.delete(&k, lsn).await.unwrap();
                assert_eq!(existed, model.remove(&k).is_some());
            }
            Op::Get(k) => {
                assert_eq!(tree.get(&k).await.unwrap(), model.get(&k).cloned());
            }
            Op::Scan(a, b, reverse, limit) => {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let mut got = Vec::new();
                tree.scan(
                    Bound::Included(&lo),
                    Bound::Excluded(&hi),
                    reverse,
                    limit,
                    usize::MAX,
                    &mut got,
                )
                .await
                .unwrap();
                let range = model.range::<Vec<u8>, _>((Bound::Included(&lo), Bound::Excluded(&hi)));
                let want: Vec<_> = if reverse {
                    range
                        .rev()
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                } else {
                    range
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                };
                assert_eq!(got, want);
            }
            Op::Checkpoint => match plan.take() {
                // A checkpoint runs in two phases with writes in between: it holds the
                // tree as it was when it began.
                None => {
                    plan = Some((tree.begin_checkpoint().await.unwrap(), model.clone()));
                }
                Some((p, snapshot)) => {
                    tree.complete_checkpoint(p).await.unwrap();
                    durable = snapshot;
                }
            },
            // A write at a seek taken before another write: the seek is stale (the tree
            // changed), so the edit must take the general path, never the old position.
            Op::SeekAcross(a, wa, b, wb) => {
                let seek_a = tree.seek(&a).await.unwrap();
                let found = seek_a.found();
                assert_eq!(found, model.contains_key(&a));
                let value_a = tree.seek_value(&seek_a, <[u8]>::to_vec).await.unwrap();
                assert_eq!(value_a.as_ref(), model.get(&a));
                let seek_b = tree.seek(&b).await.unwrap();
                write_at(&tree, &mut model, seek_b, b, wb, lsn).await;
                lsn += 1;
                write_at(&tree, &mut model, seek_a, a, wa, lsn).await;
            }
            Op::Crash => {
                plan = None;
                file.crash();
                tree = open(&file, 8).await.unwrap();
                model = durable.clone();
            }
        }
        tree.check().await.unwrap();
    }
    // Everything left agrees, in both directions.
    let mut all = Vec::new();
    tree.scan(
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        usize::MAX,
        usize::MAX,
        &mut all,
    )
    .await
    .unwrap();
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all, want);
    let mut back = Vec::new();
    tree.scan(
        Bound::Unbounded,
        Bound::Unbounded,
        true,
        usize::MAX,
        usize::MAX,
        &mut back,
    )
    .await
    .unwrap();
    back.reverse();
    assert_eq!(back, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn tree_agrees_with_model_across_checkpoints_and_power_cuts(
        ops in prop::collection::vec(op(), 1..300)
    ) {
        block_on(run(ops));
    }
}

/// Regression: a lock-free prefetch could map a freed page id while a writer, suspended
/// in an eviction write-back, was creating a new page with that id; the page then had two
/// frames, evicting one unmapped the other, and a stale version was read back ("keys out
/// of order" from a page whose checksum was fine). Claims now re-check the map after
/// every suspension. Here prefetches of random keys run beside a writer on a tiny cache.
#[test]
fn prefetches_racing_a_writer_never_corrupt_the_tree() {
    block_on(async {
        let file = MemPageFile::new();
        let tree = Rc::new(open(&file, 8).await.unwrap());
        let done = Rc::new(std::cell::Cell::new(false));
        let writer = {
            let (tree, done) = (tree.clone(), done.clone());
            async move {
                let mut model = BTreeMap::new();
                for i in 0u64..6000 {
                    let k = (i.wrapping_mul(0x9E37_79B9) % 1500).to_be_bytes();
                    if i % 5 == 4 {
                        tree.delete(&k, i + 1).await.unwrap();
                        model.remove(k.as_slice());
                    } else {
                        let v = value(200 + (i % 700) as usize, i as u8);
                        tree.put(&k, &v, i + 1).await.unwrap();
                        model.insert(k.to_vec(), v);
                    }
                    if i % 1000 == 999 {
                        tree.checkpoint().await.unwrap();
                    }
                }
                done.set(true);
                model
            }
        };
        let prefetcher = {
            let (tree, done) = (tree.clone(), done.clone());
            async move {
                let mut x = 1u64;
                while !done.get() {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    tree.prefetch(&((x >> 33) % 1500).to_be_bytes()).await;
                    // All hits never suspend: yield so that the writer runs.
                    futures_lite::future::yield_now().await;
                }
            }
        };
        let (model, ()) = futures_lite::future::zip(writer, prefetcher).await;
        tree.check().await.unwrap();
        for (k, v) in &model {
            assert_eq!(tree.get(k).await.unwrap().as_ref(), Some(v));
        }
    });
}

/// Once the way to a leaf is the epoch's, a put or delete at a current seek edits the leaf
/// in place; the first write after a checkpoint copies the way instead.
#[test]
fn writes_at_a_current_seek_are_done_in_place() {
    block_on(async {
        let file = MemPageFile::new();
        let tree = open(&file, 64).await.unwrap();
        for i in 0u32..3_000 {
            tree.put(&i.to_be_bytes(), &[1u8; 100], u64::from(i) + 1)
                .await
                .unwrap();
        }
        tree.checkpoint().await.unwrap();
        let before = tree.stats().in_place_writes;
        // The first put after the checkpoint copies its way (general path).
        let k = 1234u32.to_be_bytes();
        assert!(tree.put(&k, &[2u8; 100], 5_000).await.unwrap());
        assert_eq!(tree.stats().in_place_writes, before);
        // The way is now the epoch's: overwrite, delete and insert again in place.
        assert!(tree.put(&k, &[3u8; 90], 5_001).await.unwrap());
        assert!(tree.delete(&k, 5_002).await.unwrap());
        assert!(!tree.put(&k, &[4u8; 110], 5_003).await.unwrap());
        assert_eq!(tree.stats().in_place_writes, before + 3);
        assert_eq!(tree.get(&k).await.unwrap(), Some(vec![4u8; 110]));
        assert_eq!(tree.check().await.unwrap(), 3_000);
    });
}

#[test]
fn many_keys_build_a_deep_tree_and_free_pages_are_reused() {
    block_on(async {
        let file = MemPageFile::new();
        let tree = open(&file, 16).await.unwrap();
        let v = vec![7u8; 500];
        for i in 0u32..20_000 {
            tree.put(&i.to_be_bytes(), &v, u64::from(i) + 1)
                .await
                .unwrap();
        }
        tree.checkpoint().await.unwrap();
        assert_eq!(tree.check().await.unwrap(), 20_000);
        let grown = tree.stats().page_count;
        // Delete all, checkpoint twice (frees become reusable), and fill again: the
        // file must not grow much past its first size.
        for i in 0u32..20_000 {
            assert!(tree
                .delete(&i.to_be_bytes(), 30_000 + u64::from(i))
                .await
                .unwrap());
        }
        tree.checkpoint().await.unwrap();
        tree.checkpoint().await.unwrap();
        assert_eq!(tree.stats().entries, 0);
        for i in 0u32..20_000 {
            tree.put(&i.to_be_bytes(), &v, 60_000 + u64::from(i))
                .await
                .unwrap();
        }
        tree.checkpoint().await.unwrap();
        let regrown = tree.stats().page_count;
        assert!(
            regrown <= grown + grown / 10,
            "file grew from {grown} to {regrown} pages: freed pages not reused"
        );
    });
}

#[test]
fn a_corrupt_page_is_reported_never_served() {
    block_on(async {
        let file = MemPageFile::new();
        let tree = open(&file, 8).await.unwrap();
        for i in 0u32..2_000 {
            tree.put(&i.to_be_bytes(), &[1u8; 200], u64::from(i) + 1)
                .await
                .unwrap();
        }
        tree.checkpoint().await.unwrap();
        drop(tree);
        // Flip a byte in every data page in turn: each read that touches it fails with
        // CorruptPage, and no read returns a wrong value.
        let (_, writes) = file.io_counts();
        assert!(writes > 0);
        let pages = tree_pages(&file).await;
        for p in pages.iter().take(8) {
            let f2 = MemPageFile::new();
            copy_file(&file, &f2).await;
            f2.corrupt(*p, 100);
            let t = open(&f2, 8).await.unwrap();
            let mut errors = 0;
            for i in 0u32..2_000 {
                match t.get(&i.to_be_bytes()).await {
                    Ok(Some(v)) => assert_eq!(v, vec![1u8; 200]),
                    Ok(None) => panic!("key {i} lost without an error"),
                    Err(StorageError::CorruptPage { .. }) => errors += 1,
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            assert!(errors > 0, "corruption of {p} went unnoticed");
        }
    });
}

async fn tree_pages(file: &MemPageFile) -> Vec<super::PageId> {
    let t = open(file, 8).await.unwrap();
    let n = t.stats().page_count;
    drop(t);
    (1..n).map(super::PageId).collect::<Vec<_>>()
}

async fn copy_file(from: &MemPageFile, to: &MemPageFile) {
    to.copy_from(from);
}
