//! Corruption on disk is detected and reported, never served: bit flips in tree pages,
//! a bit flip inside the WAL (not at its tail), a truncated WAL segment.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

mod common;
use common::run;

use keel_engine::error::StorageError;
use keel_engine::shard::{Condition, Engine, EngineError, EngineOptions, PartitionId};
use keel_engine::wal::WalError;
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, KeyValue, PrimaryKey, Value};

const P: PartitionId = PartitionId(1);
const ITEMS: u32 = 3000;

fn options(dir: &std::path::Path) -> EngineOptions {
    let mut o = EngineOptions::new(dir);
    o.cache_bytes = 1 << 20;
    o.wal_segment_bytes = (1 << 20) + 4096;
    o
}

fn item(i: u32) -> Item {
    let mut it = Item::new();
    it.insert("id".into(), Value::S(format!("k{i:06}")));
    it.insert("v".into(), Value::B(vec![(i % 251) as u8; 300]));
    it
}

fn key(i: u32) -> PrimaryKey {
    PrimaryKey {
        partition: KeyValue::S(format!("k{i:06}")),
        sort: None,
    }
}

/// Writes ITEMS items one by one (one WAL batch each); closes cleanly if `close`.
fn load(path: &std::path::Path, close: bool) {
    let path = path.to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(
            P,
            KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
        )
        .await
        .unwrap();
        for i in 0..ITEMS {
            e.put(P, &item(i), &Condition::Always).await.unwrap();
        }
        if close {
            e.close().await.unwrap();
        }
    });
}

fn flip(path: &std::path::Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x20;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn flipped_tree_pages_are_reported_never_served() {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), true);
    let tree = dir
        .path()
        .join("partitions")
        .join(format!("{:016x}.tree", 1));
    let pages = std::fs::metadata(&tree).unwrap().len() / 16384;
    assert!(pages > 10, "tree of {pages} pages");
    // Flip one byte in each of several pages (skipping the superblock page).
    for p in (1..pages).step_by((pages / 8).max(1) as usize) {
        flip(&tree, p * 16384 + 5000);
    }
    let path = dir.path().to_owned();
    let errors = run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        let mut errors = 0;
        for i in 0..ITEMS {
            match e.get(P, &key(i)).await {
                Ok(Some(it)) => assert_eq!(it, item(i), "item {i} served altered"),
                Ok(None) => panic!("item {i} silently missing"),
                Err(EngineError::Storage(StorageError::CorruptPage { .. })) => errors += 1,
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        errors
    });
    assert!(errors > 0, "no corruption detected");
}

#[test]
fn a_flipped_bit_inside_the_wal_is_an_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // Not closed: the trees hold nothing, every item lives in the WAL only.
    load(dir.path(), false);
    let segment = dir.path().join("wal").join("segment-000000.wal");
    // Inside the second batch of the first segment: many batches follow it.
    flip(&segment, 4096 * 2 + 60);
    let path = dir.path().to_owned();
    let result = run(async move { Engine::open(options(&path)).await.map(|_| ()) });
    match result {
        Err(EngineError::Wal(WalError::Corrupt { .. })) => {}
        other => panic!("expected a WAL corruption error, got {other:?}"),
    }
}

#[test]
fn a_truncated_wal_segment_is_an_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), false);
    let wal = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .unwrap();
    f.set_len(64 * 1024).unwrap();
    let path = dir.path().to_owned();
    let result = run(async move { Engine::open(options(&path)).await.map(|_| ()) });
    assert!(
        matches!(result, Err(EngineError::Wal(_))),
        "expected a WAL error, got {result:?}"
    );
}
