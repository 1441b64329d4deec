//! The B-tree alone, every page cached, no WAL and no tasks: the floor under the engine
//! bench's puts. A tree of 100 000 items (`KEEL_BENCH_TREE_ITEMS`) of ~130 bytes under
//! storage keys as the engine makes them (hash-prefixed, so that consecutive keys land in
//! unrelated leaves), then:
//! - `seek`: one descent from the root to a random key's leaf;
//! - `overwrite`: a descent and an in-place overwrite of that key's value.
//!
//! What a durable put costs on top of `overwrite` is the engine's: the item's encoding,
//! the lock, the WAL record, and the task's wake-up when its batch is durable.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::rc::Rc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_lite::future::block_on;
use keel_engine::btree::{MemPageFile, Tree};
use keel_engine::page_cache::PageCache;
use keel_net::{encode_item, encode_storage_key, Item, KeyValue, PrimaryKey, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Items in the tree: `KEEL_BENCH_TREE_ITEMS`, default 100 000 (~23 MB of leaves, far
/// more than L2; 10 000 fit in ~2.3 MB).
fn items() -> u64 {
    std::env::var("KEEL_BENCH_TREE_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn item(i: u64) -> Item {
    let mut it = Item::new();
    it.insert("id".into(), Value::S(format!("k{i:012}")));
    it.insert("v".into(), Value::B(vec![(i % 251) as u8; 100]));
    it
}

fn storage_key(i: u64) -> Vec<u8> {
    let mut k = Vec::new();
    encode_storage_key(
        &PrimaryKey {
            partition: KeyValue::S(format!("k{i:012}")),
            sort: None,
        },
        &mut k,
    );
    k
}

/// A random walk over `n` items (an LCG), the same for every group.
struct Keys(u64, u64);

impl Keys {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 17) % self.1
    }
}

fn tree(c: &mut Criterion) {
    let n = items();
    let cache = PageCache::new(64 << 20);
    let t = block_on(Tree::open(cache, Rc::new(MemPageFile::new()), 1)).unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(storage_key).collect();
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut v = Vec::new();
            encode_item(&item(i), &mut v);
            v
        })
        .collect();
    let mut lsn = 0;
    for (k, v) in keys.iter().zip(&values) {
        lsn += 1;
        block_on(t.put(k, v, lsn)).unwrap();
    }
    let stats = t.stats();
    eprintln!("tree: {n} items, {stats:?}");

    let mut group = c.benchmark_group("tree_cached");
    group.throughput(Throughput::Elements(1));
    let mut walk = Keys(7, n);
    // The key is encoded afresh into a reused buffer each time (as `Engine::put_with`
    // does, ~40 ns here), not read from `keys`: a random one of 100 000 separate
    // allocations would add a cache miss the engine does not have. The value is one of a
    // few, for the same reason.
    let mut key = Vec::new();
    let mut next_key = move |key: &mut Vec<u8>| {
        let i = walk.next();
        key.clear();
        encode_storage_key(
            &PrimaryKey {
                partition: KeyValue::S(format!("k{i:012}")),
                sort: None,
            },
            key,
        );
        i as usize
    };
    group.bench_function("seek", |b| {
        b.iter(|| {
            next_key(&mut key);
            let seek = t.seek_cached(&key).unwrap().unwrap();
            assert!(seek.found());
        })
    });
    group.bench_function("overwrite", |b| {
        b.iter(|| {
            let i = next_key(&mut key);
            let seek = t.seek_cached(&key).unwrap().unwrap();
            lsn += 1;
            block_on(t.put_at(seek, &key, &values[i % 16], lsn)).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, tree);
criterion_main!(benches);
