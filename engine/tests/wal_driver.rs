//! The WAL driver on a real glommio executor and real files.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::RefCell;
use std::future::Future;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use keel_engine::wal::batch::BATCH_BYTES_MIN;
use keel_engine::wal::{
    probe_workaround, GroupId, LogIndex, Lsn, RecordKind, RecordMeta, Term, Wal, WalError,
    WalOptions,
};

/// Segments just big enough for one full batch plus a few blocks, so tests rotate often.
const SMALL_SEGMENT_BYTES: u64 = (4096 + BATCH_BYTES_MIN + 4 * 4096) as u64;

fn run<F, Fut>(test: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::Builder::new()
        .prefix("wal-test")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().to_path_buf();
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .unwrap()
        .run(async move {
            // glommio #605: the first file an executor opens must be non-empty.
            probe_workaround(&path).await.unwrap();
            test(path).await;
        });
    drop(dir);
}

fn options(dir: &Path) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        segment_bytes: SMALL_SEGMENT_BYTES,
        batch_bytes_max: BATCH_BYTES_MIN,
        segments_spare_max: 2,
        prewrite_spares: true,
    }
}

fn meta(i: u64) -> RecordMeta {
    RecordMeta {
        group: GroupId(i % 7),
        term: Term(1),
        index: LogIndex(i),
        kind: RecordKind::Data,
    }
}

fn payload(tag: u64, bytes: usize) -> Vec<u8> {
    let mut p = tag.to_le_bytes().to_vec();
    p.resize(bytes.max(8), (tag % 251) as u8);
    p
}

async fn read_all(wal: &Wal, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    let mut reader = wal.reader(from).await.unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next().await.unwrap() {
        out.push((r.lsn, r.payload));
    }
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn wal_concurrent_appends_share_fdatasyncs_and_survive_reopen() {
    run(|dir| async move {
        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!(wal.last_lsn(), Lsn(0));
        let acked = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..256u64)
            .map(|t| {
                let wal = wal.clone();
                let acked = acked.clone();
                glommio::spawn_local(async move {
                    for i in 0..8u64 {
                        let tag = t * 1000 + i;
                        let lsn = wal.append(meta(tag), &payload(tag, 100)).await.unwrap();
                        // Durable means at most the durable end.
                        assert!(
                            lsn <= wal.last_lsn(),
                            "{lsn} acked above {}",
                            wal.last_lsn()
                        );
                        acked.borrow_mut().push((lsn, tag));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let stats = wal.stats();
        let records = 256 * 8;
        assert_eq!(stats.records, records);
        assert!(
            stats.batches * 8 < records,
            "group commit: {} batches for {records} records",
            stats.batches
        );
        eprintln!("256 appenders: {stats:?}");
        assert_eq!(wal.last_lsn(), Lsn(records));
        wal.close().await.unwrap();

        let mut acked = acked.borrow().clone();
        acked.sort();
        let lsns: Vec<Lsn> = acked.iter().map(|a| a.0).collect();
        assert_eq!(lsns, (1..=records).map(Lsn).collect::<Vec<_>>());

        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!((wal.first_lsn(), wal.last_lsn()), (Lsn(1), Lsn(records)));
        let back = read_all(&wal, Lsn(1)).await;
        assert_eq!(back.len(), acked.len());
        for ((lsn, p), (alsn, tag)) in back.iter().zip(&acked) {
            assert_eq!((lsn, p), (alsn, &payload(*tag, 100)));
        }
        // A reader from the middle starts there.
        let tail = read_all(&wal, Lsn(1000)).await;
        assert_eq!(tail.first().unwrap().0, Lsn(1000));
        assert_eq!(tail.len() as u64, records - 999);
        wal.close().await.unwrap();
    });
}

#[test]
fn wal_appends_rotate_across_small_segments_and_read_back() {
    run(|dir| async move {
        let wal = Wal::open(options(&dir)).await.unwrap();
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let wal = wal.clone();
                glommio::spawn_local(async move {
                    for i in 0..60u64 {
                        let tag = t * 1000 + i;
                        wal.append(meta(tag), &payload(tag, 2000 + (tag as usize % 3000)))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        // One record of the largest size still fits a batch.
        let big = vec![7u8; keel_engine::wal::RECORD_PAYLOAD_BYTES_MAX];
        let big_lsn = wal.append(meta(1), &big).await.unwrap();
        let too_big = vec![7u8; keel_engine::wal::RECORD_PAYLOAD_BYTES_MAX + 1];
        assert!(matches!(
            wal.append(meta(1), &too_big).await,
            Err(WalError::PayloadTooLarge { .. })
        ));
        let stats = wal.stats();
        assert!(stats.rotations >= 3, "{stats:?}");
        // A rotation that waited for a spare counts its wait (a pre-write takes time).
        assert_eq!(
            stats.rotation_stalls == 0,
            stats.rotation_stall_us == 0,
            "{stats:?}"
        );
        let last = wal.last_lsn();
        assert_eq!(last, big_lsn);
        wal.close().await.unwrap();

        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!(wal.last_lsn(), last);
        let back = read_all(&wal, Lsn(1)).await;
        assert_eq!(back.len() as u64, last.0);
        assert!(back
            .iter()
            .enumerate()
            .all(|(i, r)| r.0 == Lsn(i as u64 + 1)));
        assert_eq!(back.last().unwrap().1, big);
        let next = wal.append(meta(0), b"after reopen").await.unwrap();
        assert_eq!(next, Lsn(last.0 + 1));
        wal.close().await.unwrap();
    });
}

#[test]
fn wal_released_segments_are_recycled_and_reopen_works() {
    run(|dir| async move {
        let wal = Wal::open(options(&dir)).await.unwrap();
        let mut max_files = 0;
        for round in 0..6u64 {
            for i in 0..150u64 {
                let tag = round * 1000 + i;
                wal.append(meta(tag), &payload(tag, 3000)).await.unwrap();
            }
            // Checkpointed everything but the last 10 records.
            wal.release_before(Lsn(wal.last_lsn().0 - 10));
            max_files = max_files.max(segment_files(&dir).len());
        }
        let stats = wal.stats();
        assert!(stats.rotations >= 6, "{stats:?}");
        // Tail, maybe the one before, spares (2) and one being pre-written.
        assert!(max_files <= 6, "{max_files} segment files");
        let first = wal.first_lsn();
        assert!(
            first > Lsn(1) && first <= Lsn(wal.last_lsn().0 - 9),
            "first {first}"
        );
        assert!(matches!(
            wal.reader(Lsn(1)).await,
            Err(WalError::Released { .. })
        ));
        let last = wal.last_lsn();
        wal.close().await.unwrap();

        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!(wal.last_lsn(), last);
        assert!(
            wal.first_lsn() <= Lsn(last.0 - 9),
            "reopened first {}",
            wal.first_lsn()
        );
        let back = read_all(&wal, Lsn(last.0 - 9)).await;
        assert_eq!(back.len(), 10);
        assert_eq!(back.last().unwrap().0, last);
        wal.close().await.unwrap();
    });
}

/// Each sequential append is its own batch of one 4 KiB block: batch k at 4096 * k.
async fn sequential_log(dir: &Path, n: u64) -> Wal {
    let wal = Wal::open(options(dir)).await.unwrap();
    for i in 1..=n {
        assert_eq!(wal.append(meta(i), &payload(i, 100)).await.unwrap(), Lsn(i));
    }
    assert_eq!(wal.stats().batches, n);
    wal
}

fn first_segment(dir: &Path) -> PathBuf {
    segment_files(dir).into_iter().next().unwrap()
}

#[test]
fn wal_torn_tail_is_truncated_and_appends_continue() {
    run(|dir| async move {
        sequential_log(&dir, 10).await.close().await.unwrap();
        // Garbage over the last batch (record 10) as a torn write would leave.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(first_segment(&dir))
            .unwrap();
        f.seek(SeekFrom::Start(4096 * 10 + 20)).unwrap();
        f.write_all(&[0xA5; 64]).unwrap();
        f.sync_all().unwrap();
        drop(f);

        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!(wal.last_lsn(), Lsn(9));
        assert_eq!(wal.append(meta(0), b"new ten").await.unwrap(), Lsn(10));
        wal.close().await.unwrap();

        let wal = Wal::open(options(&dir)).await.unwrap();
        let back = read_all(&wal, Lsn(1)).await;
        assert_eq!(back.len(), 10);
        assert_eq!(back[8].1, payload(9, 100));
        assert_eq!(back[9].1, b"new ten");
        wal.close().await.unwrap();
    });
}

#[test]
fn wal_cut_segment_file_is_truncated_at_the_last_whole_batch() {
    run(|dir| async move {
        sequential_log(&dir, 10).await.close().await.unwrap();
        // Cut the file inside batch 8 (block 8 holds record 8).
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(first_segment(&dir))
            .unwrap();
        f.set_len(4096 * 8 + 100).unwrap();
        f.sync_all().unwrap();
        drop(f);

        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!(wal.last_lsn(), Lsn(7));
        assert_eq!(
            std::fs::metadata(first_segment(&dir)).unwrap().len(),
            SMALL_SEGMENT_BYTES
        );
        assert_eq!(wal.append(meta(0), b"eight").await.unwrap(), Lsn(8));
        wal.close().await.unwrap();
        let wal = Wal::open(options(&dir)).await.unwrap();
        assert_eq!(wal.last_lsn(), Lsn(8));
        assert_eq!(read_all(&wal, Lsn(8)).await[0].1, b"eight");
        wal.close().await.unwrap();
    });
}

#[test]
fn wal_damaged_batch_before_newer_ones_fails_open_with_corrupt() {
    run(|dir| async move {
        sequential_log(&dir, 10).await.close().await.unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(first_segment(&dir))
            .unwrap();
        f.seek(SeekFrom::Start(4096 * 4 + 60)).unwrap();
        f.write_all(&[0xFF]).unwrap();
        f.sync_all().unwrap();
        drop(f);
        match Wal::open(options(&dir)).await {
            Err(WalError::Corrupt {
                segment,
                offset,
                expected_crc,
                actual_crc,
            }) => {
                assert_eq!(offset, 4096 * 4);
                assert_eq!(segment, first_segment(&dir));
                assert_ne!(expected_crc, actual_crc);
            }
            other => panic!("expected Corrupt, got {:?}", other.err()),
        }
    });
}

#[test]
fn wal_reader_reports_corruption_in_a_sealed_segment() {
    run(|dir| async move {
        let wal = Wal::open(options(&dir)).await.unwrap();
        for i in 0..400u64 {
            wal.append(meta(i), &payload(i, 3000)).await.unwrap();
        }
        assert!(wal.stats().rotations >= 2);
        wal.close().await.unwrap();
        // Find the segment holding LSN 1 (sequence 1) and damage its second batch.
        let oldest = segment_files(&dir)
            .into_iter()
            .find(|p| {
                let bytes = std::fs::read(p).unwrap();
                bytes[16..24] == 1u64.to_le_bytes() && bytes[8..16] == *b"KEELWAL\0"
            })
            .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&oldest)
            .unwrap();
        f.seek(SeekFrom::Start(8192 + 100)).unwrap();
        f.write_all(&[0x42; 8]).unwrap();
        f.sync_all().unwrap();
        drop(f);
        // Open scans only the tail segment; the damage shows when the records are read.
        let wal = Wal::open(options(&dir)).await.unwrap();
        let mut reader = wal.reader(Lsn(1)).await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap().lsn, Lsn(1));
        match reader.next().await {
            Err(WalError::Corrupt {
                segment, offset, ..
            }) => {
                assert_eq!((segment, offset), (oldest, 8192));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        wal.close().await.unwrap();
    });
}

#[test]
fn wal_full_batches_make_appenders_wait_and_large_records_get_through() {
    run(|dir| async move {
        let wal = Wal::open(options(&dir)).await.unwrap();
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let wal = wal.clone();
                glommio::spawn_local(async move {
                    let mut lsns = Vec::new();
                    for i in 0..6u64 {
                        let tag = t * 100 + i;
                        // A few records of the largest size among many of 20 KiB.
                        let bytes = if t % 16 == 0 && i == 3 {
                            keel_engine::wal::RECORD_PAYLOAD_BYTES_MAX
                        } else {
                            20_000
                        };
                        lsns.push((
                            wal.append(meta(tag), &payload(tag, bytes)).await.unwrap(),
                            tag,
                            bytes,
                        ));
                    }
                    lsns
                })
            })
            .collect();
        let mut acked = Vec::new();
        for t in tasks {
            acked.extend(t.await);
        }
        acked.sort();
        let stats = wal.stats();
        // Every batch was bounded by batch_bytes_max.
        assert!(
            stats.bytes <= stats.batches * BATCH_BYTES_MIN as u64,
            "{stats:?}"
        );
        wal.close().await.unwrap();
        let wal = Wal::open(options(&dir)).await.unwrap();
        let back = read_all(&wal, Lsn(1)).await;
        assert_eq!(back.len(), acked.len());
        for ((lsn, p), (alsn, tag, bytes)) in back.iter().zip(&acked) {
            assert_eq!(lsn, alsn);
            assert!(*p == payload(*tag, *bytes), "payload of {lsn}");
        }
        wal.close().await.unwrap();
    });
}
