//! Durable appends of 100-byte records with 1, 16 and 256 concurrent appenders.
//!
//! Expected figure, sketched first: one fdatasync costs ~90 us on blocks written once
//! (measured on this machine), so 1 appender tops out near 1 / (write + fdatasync) ~ 8-10k
//! appends/s, and n appenders in lock step approach n times that until the batch copy,
//! the crc32c and the 4 KiB-aligned write of n * 160 bytes start to count.
//! Time per iteration is the inverse throughput; the latency of one append is about
//! `concurrency * time per iteration` (Little's law), printed at the end of each run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::{LocalExecutorBuilder, Placement};
use keel_engine::wal::{
    probe_workaround, GroupId, LogIndex, RecordKind, RecordMeta, Term, Wal, WalOptions,
};

fn appends(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("wal-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(8 << 20)
        .make()
        .unwrap();
    let path = dir.path().to_path_buf();
    let wal = ex.run(async move {
        probe_workaround(&path).await.unwrap();
        let mut options = WalOptions::new(path);
        options.segment_bytes = 16 << 20;
        Wal::open(options).await.unwrap()
    });
    let meta = RecordMeta {
        group: GroupId(1),
        term: Term(1),
        index: LogIndex(1),
        kind: RecordKind::Data,
    };
    let payload = [0x5Au8; 100];
    // The physical floor in the same run: one 4 KiB O_DIRECT write + fdatasync on blocks
    // already written once, back to back, on this executor.
    let floor_path = dir.path().join("floor");
    let floor = ex.run(async move {
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(&floor_path)
            .await
            .unwrap();
        for i in 0..256u64 {
            let mut buf = file.alloc_dma_buffer(4096);
            buf.as_bytes_mut().fill(0);
            file.write_at(buf, i * 4096).await.unwrap();
        }
        file.fdatasync().await.unwrap();
        Rc::new(file)
    });
    c.bench_function("floor_write_4KiB_fdatasync", |b| {
        b.iter_custom(|iters| {
            let file = floor.clone();
            ex.run(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let mut buf = file.alloc_dma_buffer(4096);
                    buf.as_bytes_mut().fill(1);
                    file.write_at(buf, (i % 256) * 4096).await.unwrap();
                    file.fdatasync().await.unwrap();
                }
                start.elapsed()
            })
        });
    });
    let mut group = c.benchmark_group("wal_append_100B_durable");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for concurrency in [1u64, 16, 256] {
        let before = wal.stats();
        group.bench_with_input(
            BenchmarkId::from_parameter(concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter_custom(|iters| {
                    let wal = wal.clone();
                    ex.run(async move {
                        let per_task = iters.div_ceil(concurrency);
                        let done = Rc::new(Cell::new(0u64));
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..concurrency)
                            .map(|_| {
                                let wal = wal.clone();
                                let done = done.clone();
                                glommio::spawn_local(async move {
                                    for _ in 0..per_task {
                                        wal.append(meta, &payload).await.unwrap();
                                        done.set(done.get() + 1);
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await;
                        }
                        let elapsed = start.elapsed();
                        wal.release_before(wal.last_lsn());
                        // Scale to `iters` appends (the tasks did a few more).
                        elapsed.mul_f64(iters as f64 / done.get() as f64)
                    })
                });
            },
        );
        let after = wal.stats();
        let records = after.records - before.records;
        let syncs = after.syncs - before.syncs;
        eprintln!(
            "concurrency {concurrency}: {records} records, {} batches, {syncs} fdatasyncs \
             ({:.3} syncs per record), {} rotations, {} stalls",
            after.batches - before.batches,
            syncs as f64 / records.max(1) as f64,
            after.rotations - before.rotations,
            after.rotation_stalls - before.rotation_stalls,
        );
    }
    group.finish();
    ex.run(async move { wal.close().await.unwrap() });
}

criterion_group!(benches, appends);
criterion_main!(benches);
