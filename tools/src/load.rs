//! `keel engine-load`: loads items into one shard's engine with concurrent writers, reads
//! every item back and checks it, and reports throughput, ack latency, read-back speed and
//! peak memory. Bounded by item count; stops by itself.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use keel_engine::shard::{Condition, Engine, EngineOptions, KeyRange, PartitionId};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, Value};

/// Settings of one load run.
#[derive(Clone, Debug)]
pub struct LoadSettings {
    /// Data directory.
    pub dir: PathBuf,
    /// Items to write.
    pub items: u64,
    /// Bytes of each item's value attribute.
    pub value_bytes: usize,
    /// Page cache budget.
    pub cache_bytes: usize,
    /// Concurrent writer tasks.
    pub writers: u64,
    /// Whether to read every item back and check it.
    pub verify: bool,
}

const PARTITION: PartitionId = PartitionId(1);

fn item(i: u64, value_bytes: usize) -> Item {
    let mut it = Item::new();
    it.insert("id".into(), Value::S(format!("item{i:012}")));
    let fill = (i % 251) as u8;
    it.insert("v".into(), Value::B(vec![fill; value_bytes]));
    it
}

fn us(h: &Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

/// Runs the load on a glommio executor on this thread and prints a report.
pub fn run(s: LoadSettings) -> anyhow::Result<()> {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("keel-load")
        .io_memory(8 << 20)
        .make()
        .map_err(|e| anyhow::anyhow!("executor: {e}"))?;
    ex.run(load(s))
}

async fn load(s: LoadSettings) -> anyhow::Result<()> {
    let mut options = EngineOptions::new(&s.dir);
    options.cache_bytes = s.cache_bytes;
    let engine = Engine::open(options).await.context("opening the engine")?;
    if engine.partitions().is_empty() {
        engine
            .create_partition(
                PARTITION,
                KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
            )
            .await?;
    }
    engine.spawn_checkpointer(None);
    let hist = Rc::new(RefCell::new(Histogram::<u64>::new(3)?));
    let next = Rc::new(RefCell::new(0u64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..s.writers.max(1) {
        let (engine, hist, next) = (engine.clone(), hist.clone(), next.clone());
        let (items, value_bytes) = (s.items, s.value_bytes);
        tasks.push(glommio::spawn_local(async move {
            loop {
                let i = {
                    let mut n = next.borrow_mut();
                    if *n >= items {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                let it = item(i, value_bytes);
                let t = Instant::now();
                engine.put(PARTITION, &it, &Condition::Always).await?;
                let _ = hist.borrow_mut().record(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(())
        }));
    }
    let mut last_report = Instant::now();
    for t in tasks {
        t.await?;
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
        }
    }
    let load_s = started.elapsed().as_secs_f64();
    let h = hist.borrow().clone();
    let bytes = s.items * s.value_bytes as u64;
    println!(
        "loaded {} items of {} B ({:.1} MiB) with {} writers in {:.1} s: {:.0} puts/s, {:.1} MiB/s",
        s.items,
        s.value_bytes,
        bytes as f64 / (1 << 20) as f64,
        s.writers,
        load_s,
        s.items as f64 / load_s,
        bytes as f64 / (1 << 20) as f64 / load_s
    );
    println!(
        "put ack latency us: p50 {} p99 {} p99.9 {} max {}",
        us(&h, 0.5),
        us(&h, 0.99),
        us(&h, 0.999),
        h.max()
    );
    let w = engine.wal_stats();
    println!(
        "wal: {} records in {} batches ({:.1} records/fdatasync), {} rotations",
        w.records,
        w.batches,
        w.records as f64 / w.batches.max(1) as f64,
        w.rotations
    );
    if s.verify {
        let t = Instant::now();
        let mut resume: Option<Vec<u8>> = None;
        let mut seen = 0u64;
        loop {
            let page = engine
                .scan(PARTITION, &KeyRange::all(), false, 1000, resume.as_deref())
                .await?;
            for it in &page.items {
                let Some(Value::S(id)) = it.get("id") else {
                    bail!("item without id");
                };
                let i: u64 = id.trim_start_matches("item").parse()?;
                if *it != item(i, s.value_bytes) {
                    bail!("item {i} reads back altered");
                }
                seen += 1;
            }
            match page.resume {
                Some(r) => resume = Some(r),
                None => break,
            }
        }
        if seen < s.items {
            bail!("read back {seen} items of {}", s.items);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "read back and checked {seen} items in {secs:.1} s ({:.0} items/s)",
            seen as f64 / secs
        );
    }
    let c = engine.cache_stats();
    println!(
        "page cache: {} MiB, {} hits, {} misses, {} evictions, {} write-backs",
        s.cache_bytes >> 20,
        c.hits,
        c.misses,
        c.evictions,
        c.writebacks
    );
    engine.close().await?;
    if let Some(rss) = crate::peak_rss_bytes() {
        println!("peak RSS: {:.1} MiB", rss as f64 / (1 << 20) as f64);
    }
    Ok(())
}
