//! The engine end to end: durable puts of 100-byte items with 1, 16 and 256 concurrent
//! writers on one shard (one partition), and gets served from the page cache and from
//! disk. Besides criterion's time per operation, each group prints the per-operation
//! latency distribution (p50, p99, p99.9, max) from an HDR histogram, and the WAL's
//! records per fdatasync.
//!
//! Knobs (environment): `KEEL_BENCH_SPIN_US` (the executor's spin before parking, default
//! 0), `KEEL_BENCH_CKPT_MIB` (WAL bytes between checkpoints, default 64; a large value
//! keeps checkpoint write-backs out of the put figures) and `KEEL_BENCH_CPU` (pin the
//! executor to that CPU; unpinned by default). For the WAL writer thread's batches it
//! also prints where a batch's time went: pickup (seal until the thread starts the
//! write), pwrite, and reap (until the executor takes the result).
//!
//! Expected figures, sketched first: a put costs a tree edit (~2-5 us in cache) plus its
//! share of one write + fdatasync (~90-300 us here); with n writers in lock step one
//! fdatasync serves ~n puts, so throughput approaches n / (fdatasync + n * edit) until the
//! single core is busy with edits. A get from cache is a descent of 2-3 cached pages
//! (~1-3 us); a get from disk adds one 16 KiB O_DIRECT read (~100-200 us).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use keel_engine::shard::{Condition, Engine, EngineOptions, OldItem, PartitionId};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, KeyValue, PrimaryKey, Value};

/// The allocator the `keel` binary runs on, so that the figures are the shipped engine's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const P: PartitionId = PartitionId(1);
const PUT_KEYS: u64 = 100_000;

fn item(i: u64, value_bytes: usize) -> Item {
    let mut it = Item::new();
    it.insert("id".into(), Value::S(format!("k{i:012}")));
    it.insert("v".into(), Value::B(vec![(i % 251) as u8; value_bytes]));
    it
}

/// Turns a writer's item into item `i` in place (as `item(i, ..)` builds it, without
/// allocating), so that the writers' own work stays small beside the engine's.
fn rekey(it: &mut Item, i: u64) {
    use std::fmt::Write as _;
    if let Some(Value::S(id)) = it.get_mut("id") {
        id.clear();
        write!(id, "k{i:012}").unwrap();
    }
    if let Some(Value::B(v)) = it.get_mut("v") {
        v.fill((i % 251) as u8);
    }
}

fn key(i: u64) -> PrimaryKey {
    PrimaryKey {
        partition: KeyValue::S(format!("k{i:012}")),
        sort: None,
    }
}

/// A knob from the environment, or its default.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn executor() -> LocalExecutor {
    let spin_us = env_or("KEEL_BENCH_SPIN_US", 0);
    let placement = match std::env::var("KEEL_BENCH_CPU")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .io_memory(8 << 20)
        .spin_before_park(Duration::from_micros(spin_us))
        .make()
        .unwrap()
}

fn open(ex: &LocalExecutor, dir: &std::path::Path, cache_bytes: usize) -> Engine {
    let path = dir.to_path_buf();
    ex.run(async move {
        let mut o = EngineOptions::new(path);
        o.cache_bytes = cache_bytes;
        o.wal_segment_bytes = 32 << 20;
        o.checkpoint_wal_bytes = env_or("KEEL_BENCH_CKPT_MIB", 64) << 20;
        let e = Engine::open(o).await.unwrap();
        if e.partitions().is_empty() {
            e.create_partition(
                P,
                KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
            )
            .await
            .unwrap();
        }
        e.spawn_checkpointer(None);
        e
    })
}

/// CPU time this thread (the executor's) has used so far, from the scheduler's own
/// account (`/proc/thread-self/schedstat`, nanoseconds on the CPU); zero where the kernel
/// does not keep it (the CPU figure then reads 0).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn report(name: &str, h: &Histogram<u64>) {
    eprintln!(
        "{name}: {} ops, latency us p50 {} p99 {} p99.9 {} max {}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn puts(c: &mut Criterion) {
    // The engine's log lines (checkpoints, WAL rotations that waited) on stderr, with
    // `RUST_LOG=keel_engine=info`; nothing without it.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = tempfile::Builder::new()
        .prefix("engine-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let ex = executor();
    let engine = open(&ex, dir.path(), 64 << 20);
    let next = Rc::new(RefCell::new(0u64));
    let mut group = c.benchmark_group("engine_put_100B_durable");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for writers in [1u64, 16, 256] {
        let hist = Rc::new(RefCell::new(Histogram::<u64>::new(3).unwrap()));
        let before = engine.wal_stats();
        let cache_before = engine.cache_stats();
        let in_place_before = engine.tree_stats(P).unwrap().in_place_writes;
        // Executor CPU inside the timed runs only (criterion's analysis runs on this
        // thread too).
        let cpu = Rc::new(RefCell::new(Duration::ZERO));
        group.bench_with_input(
            BenchmarkId::from_parameter(writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let (engine, hist, next) = (engine.clone(), hist.clone(), next.clone());
                    let cpu_before = thread_cpu();
                    let elapsed = ex.run(async move {
                        let per_task = iters.div_ceil(writers);
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..writers)
                            .map(|_| {
                                let (engine, hist, next) =
                                    (engine.clone(), hist.clone(), next.clone());
                                glommio::spawn_local(async move {
                                    let mut it = item(0, 100);
                                    for _ in 0..per_task {
                                        // A working set of PUT_KEYS keys (inserts, then
                                        // overwrites) that the cache holds: this measures
                                        // the write path and group commit, not eviction.
                                        let i = {
                                            let mut n = next.borrow_mut();
                                            *n += 1;
                                            *n % PUT_KEYS
                                        };
                                        rekey(&mut it, i);
                                        let t = Instant::now();
                                        // A blind put (PutItem without a condition or
                                        // ReturnValues): the replaced item is not decoded.
                                        engine
                                            .put_with(P, &it, &Condition::Always, OldItem::Skip)
                                            .await
                                            .unwrap();
                                        let us = t.elapsed().as_micros() as u64;
                                        hist.borrow_mut().record(us.max(1)).unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await;
                        }
                        start
                            .elapsed()
                            .mul_f64(iters as f64 / (per_task * writers) as f64)
                    });
                    *cpu.borrow_mut() += thread_cpu() - cpu_before;
                    elapsed
                });
            },
        );
        if hist.borrow().is_empty() {
            // Left out by a filter: nothing to report.
            continue;
        }
        let after = engine.wal_stats();
        let cache_after = engine.cache_stats();
        let cpu = *cpu.borrow();
        let ops = hist.borrow().len().max(1);
        eprintln!(
            "put writers={writers}: cache misses {}, evictions {}, write-backs {}",
            cache_after.misses - cache_before.misses,
            cache_after.evictions - cache_before.evictions,
            cache_after.writebacks - cache_before.writebacks,
        );
        // The others took the general path: a leaf copied on write after a checkpoint
        // began, or a split (criterion's warm-up puts are in the count too).
        let in_place = engine.tree_stats(P).unwrap().in_place_writes - in_place_before;
        eprintln!(
            "put writers={writers}: {:.2}% of puts (warm-up included) edited their leaf in place",
            100.0 * in_place as f64 / (after.records - before.records).max(1) as f64
        );
        report(&format!("put writers={writers}"), &hist.borrow());
        eprintln!(
            "put writers={writers}: {:.2} us of executor CPU per put",
            cpu.as_secs_f64() * 1e6 / ops as f64
        );
        let batches = (after.batches - before.batches).max(1) as f64;
        let thread_batches = (after.thread_batches - before.thread_batches).max(1) as f64;
        let per_thread_batch = |a: u64, b: u64| (a - b) as f64 / thread_batches;
        eprintln!(
            "put writers={writers}: writer-thread batches {}, each (us): pickup {:.0}, \
             pwrite {:.0}, reap {:.0}",
            after.thread_batches - before.thread_batches,
            per_thread_batch(after.thread_pickup_us, before.thread_pickup_us),
            per_thread_batch(after.thread_pwrite_us, before.thread_pwrite_us),
            per_thread_batch(after.thread_reap_us, before.thread_reap_us),
        );
        eprintln!(
            "put writers={writers}: {:.1} records per batch, {:.0} us per durable batch write, \
             {} rotations ({} found no pre-written spare, {:.1} ms getting one; {} took an \
             allocated segment)",
            (after.records - before.records) as f64 / batches,
            (after.write_us - before.write_us) as f64 / batches,
            after.rotations - before.rotations,
            after.rotation_stalls - before.rotation_stalls,
            (after.rotation_stall_us - before.rotation_stall_us) as f64 / 1e3,
            after.rotations_unwritten - before.rotations_unwritten,
        );
    }
    group.finish();
    ex.run(async move { engine.close().await.unwrap() });
}

fn load(ex: &LocalExecutor, engine: &Engine, items: u64, value_bytes: usize) {
    let engine = engine.clone();
    ex.run(async move {
        let next = Rc::new(RefCell::new(0u64));
        let tasks: Vec<_> = (0..256)
            .map(|_| {
                let (engine, next) = (engine.clone(), next.clone());
                glommio::spawn_local(async move {
                    loop {
                        let i = {
                            let mut n = next.borrow_mut();
                            if *n >= items {
                                break;
                            }
                            *n += 1;
                            *n - 1
                        };
                        engine
                            .put(P, &item(i, value_bytes), &Condition::Always)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        engine.checkpoint().await.unwrap();
    });
}

fn gets(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_get");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    // (name, items, value bytes, cache bytes): a set that fits the cache, and one ~40x
    // larger than its cache so that nearly every get reads its leaf from disk.
    for (name, items, value_bytes, cache) in [
        ("from_cache", 20_000u64, 100usize, 64usize << 20),
        ("from_disk", 200_000, 100, 1 << 20),
    ] {
        let dir = tempfile::Builder::new()
            .prefix("engine-bench")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let ex = executor();
        let engine = open(&ex, dir.path(), cache);
        let hist = Rc::new(RefCell::new(Histogram::<u64>::new(3).unwrap()));
        // Loaded on the first call only: a criterion filter that leaves this benchmark
        // out then skips the load too (a profile of the puts should not take it in).
        let mut misses_before = None;
        let mut seed = 0x1234_5678u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            if misses_before.is_none() {
                load(&ex, &engine, items, value_bytes);
                misses_before = Some(engine.cache_stats().misses);
            }
            b.iter_custom(|iters| {
                let (engine, hist) = (engine.clone(), hist.clone());
                let start_seed = seed;
                seed = seed.wrapping_add(iters);
                ex.run(async move {
                    let mut x = start_seed;
                    let start = Instant::now();
                    for _ in 0..iters {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let i = (x >> 17) % items;
                        let t = Instant::now();
                        let got = engine.get(P, &key(i)).await.unwrap();
                        let us = t.elapsed().as_nanos() as u64 / 1000;
                        hist.borrow_mut().record(us.max(1)).unwrap();
                        assert!(got.is_some());
                    }
                    start.elapsed()
                })
            });
        });
        let h = hist.borrow();
        if let Some(misses_before) = misses_before {
            report(&format!("get {name}"), &h);
            eprintln!(
                "get {name}: {:.2} page reads per get",
                (engine.cache_stats().misses - misses_before) as f64 / h.len().max(1) as f64
            );
        }
        ex.run(async move { engine.close().await.unwrap() });
    }
    group.finish();
}

criterion_group!(benches, puts, gets);
criterion_main!(benches);
