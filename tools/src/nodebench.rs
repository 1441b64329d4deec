//! `keel node-bench`: GetItem or PutItem requests/s and latency against a running node,
//! from the glommio native client (closed loop: `connections` clients, each with
//! `in_flight` requests outstanding), on one executor or split over `threads` executors
//! (thread `t` pinned to CPU `t`, so that on a small machine the generator does not crowd
//! onto one CPU beside one shard). The figure issue 3 asks for, beside
//! `keel tcp-pingpong` measured in the same session.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use keel_net::client::glommio::AsyncClient;
use keel_net::client::route::partition_shard;
use keel_net::client::ClientOptions;
use keel_net::codec::{
    CreateTable, ErrorCode, ExprArgs, GetItem, PartitionInfo, PutItem, Request, Response,
    ReturnValues,
};
use keel_net::model::{partition_hash, KeyValue};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, Value};

/// What to measure.
#[derive(Debug, Clone)]
pub struct NodeBenchSettings {
    /// The node.
    pub endpoint: String,
    /// `get` or `put`.
    pub op: String,
    /// Clients (each shard-aware, so up to one connection per shard each).
    pub connections: usize,
    /// Requests outstanding per client.
    pub in_flight: usize,
    /// Distinct keys (loaded first for `get`).
    pub items: u64,
    /// Bytes of the value attribute.
    pub value_bytes: usize,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Pin the generator to this CPU (one thread only).
    pub cpu: Option<usize>,
    /// Generator threads, each with its own executor and a share of the clients.
    pub threads: usize,
    /// Thread `t` asks only for keys of shard `t % shards` (the shard `keel start` pins to
    /// CPU `t`); otherwise every thread asks for keys of every shard.
    pub local_keys: bool,
}

const TABLE: &str = "node_bench";

fn item(k: u64, value_bytes: usize) -> Item {
    let mut i = Item::new();
    i.insert("id".into(), Value::S(key_name(k)));
    i.insert("v".into(), Value::B(vec![(k % 251) as u8; value_bytes]));
    i
}

fn request(op: &str, k: u64, value_bytes: usize) -> Request {
    if op == "put" {
        Request::PutItem(PutItem {
            table: TABLE.into(),
            item: item(k, value_bytes),
            condition: None,
            args: ExprArgs::default(),
            return_values: ReturnValues::None,
        })
    } else {
        let mut key = Item::new();
        key.insert("id".into(), Value::S(key_name(k)));
        Request::GetItem(GetItem {
            table: TABLE.into(),
            key,
            projection: None,
            args: ExprArgs::default(),
            consistent: true,
        })
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(s: NodeBenchSettings) -> anyhow::Result<()> {
    anyhow::ensure!(s.op == "get" || s.op == "put", "--op is get or put");
    anyhow::ensure!(
        s.threads >= 1 && s.threads <= s.connections,
        "--threads is between 1 and --connections"
    );
    anyhow::ensure!(
        s.threads == 1 || s.cpu.is_none(),
        "--cpu pins a single generator thread"
    );
    let partitions = executor(s.cpu)?.run(setup(s.clone()))?;
    let measure_from = Instant::now() + s.warmup;
    // Every thread's keys first, so that a refusal comes before any thread starts.
    let shard_of = shard_map(&s, &partitions);
    let keys: Vec<Keys> = (0..s.threads)
        .map(|t| Keys::new(&s, &partitions, shard_of.as_ref(), t))
        .collect::<anyhow::Result<_>>()?;
    let threads: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(t, keys)| {
            let s = s.clone();
            let clients: Vec<usize> = (0..s.connections).filter(|c| c % s.threads == t).collect();
            let cpu = if s.threads > 1 { Some(t) } else { s.cpu };
            std::thread::Builder::new()
                .name(format!("keel-node-bench-{t}"))
                .spawn(move || executor(cpu)?.run(measure(s, clients, keys, measure_from)))
        })
        .collect::<Result<_, _>>()?;
    let mut hist = crate::latency_histogram_us()?;
    let mut errors = 0;
    for t in threads {
        let (h, e) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a generator thread panicked"))??;
        hist.add(&h)?;
        errors += e;
    }
    let secs = s.duration.as_secs_f64();
    println!(
        "{} {} B values, {} clients x {} in flight ({} generator threads{}): {:.0} requests/s, \
         p50 {} us, p99 {} us, p99.9 {} us, max {} us, errors {}",
        s.op,
        s.value_bytes,
        s.connections,
        s.in_flight,
        s.threads,
        if s.local_keys { ", local keys" } else { "" },
        hist.len() as f64 / secs,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max(),
        errors
    );
    Ok(())
}

fn executor(cpu: Option<usize>) -> anyhow::Result<glommio::LocalExecutor> {
    let placement = match cpu {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    glommio::LocalExecutorBuilder::new(placement)
        .name("keel-node-bench")
        .io_memory(1 << 20)
        .make()
        .map_err(|e| anyhow::anyhow!("executor: {e}"))
}

/// The keys one generator thread asks for: all of them, or those of one shard.
#[derive(Debug, Clone)]
struct Keys {
    items: u64,
    /// With `--local-keys`: the shard of each key, and the one this thread wants.
    only: Option<(Arc<Vec<u32>>, u32)>,
}

/// With `--local-keys`, the shard of each of the items' keys, hashed once for every
/// generator thread; `None` otherwise.
fn shard_map(s: &NodeBenchSettings, partitions: &[PartitionInfo]) -> Option<Arc<Vec<u32>>> {
    s.local_keys.then(|| {
        let shard_of = (0..s.items).map(|k| {
            let hash = partition_hash(&KeyValue::S(key_name(k)));
            partition_shard(partitions, hash).unwrap_or(0)
        });
        Arc::new(shard_of.collect())
    })
}

impl Keys {
    /// The keys of generator thread `thread`, given the table's `partitions` and their
    /// [`shard_map`]; an error if, with `--local-keys`, its shard owns none of the items.
    fn new(
        s: &NodeBenchSettings,
        partitions: &[PartitionInfo],
        shard_of: Option<&Arc<Vec<u32>>>,
        thread: usize,
    ) -> anyhow::Result<Keys> {
        let shards = partitions.iter().map(|p| p.shard + 1).max().unwrap_or(1);
        let only = match shard_of {
            Some(shard_of) => {
                let want = thread as u32 % shards;
                anyhow::ensure!(
                    shard_of.contains(&want),
                    "--local-keys: none of the {} items belongs to shard {want}; give more \
                     --items",
                    s.items
                );
                Some((Arc::clone(shard_of), want))
            }
            None => None,
        };
        Ok(Keys {
            items: s.items.max(1),
            only,
        })
    }

    /// The key for the random draw `x` (advancing `x` past the keys of other shards).
    fn pick(&self, x: &mut u64) -> u64 {
        loop {
            *x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (*x >> 16) % self.items;
            match &self.only {
                Some((shard_of, want)) if shard_of.get(k as usize) != Some(want) => {}
                _ => return k,
            }
        }
    }
}

fn key_name(k: u64) -> String {
    format!("k{k:010}")
}

/// Creates the table and, for `get`, loads the items; the table's partitions.
async fn setup(s: NodeBenchSettings) -> anyhow::Result<Vec<PartitionInfo>> {
    let setup = AsyncClient::connect(&s.endpoint, ClientOptions::default())
        .await
        .with_context(|| format!("connecting to {}", s.endpoint))?;
    let create = Request::CreateTable(CreateTable {
        table: TABLE.into(),
        schema: KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
        partitions: Some(8),
    });
    match setup.call(create).await? {
        Response::Table(_) => {}
        Response::Error(e) if e.code == ErrorCode::ResourceInUse => {}
        other => anyhow::bail!("creating the table: {other:?}"),
    }
    let partitions = match setup
        .call(Request::DescribeTable {
            table: TABLE.into(),
        })
        .await?
    {
        Response::Table(t) => t.partitions,
        other => anyhow::bail!("describing the table: {other:?}"),
    };
    if s.op == "get" {
        let started = Instant::now();
        for chunk in (0..s.items).collect::<Vec<_>>().chunks(256) {
            let mut pending = Vec::with_capacity(chunk.len());
            for &k in chunk {
                pending.push(setup.send(request("put", k, s.value_bytes)).await?);
            }
            for p in pending {
                match p.wait().await? {
                    Response::Item(_) => {}
                    other => anyhow::bail!("loading: {other:?}"),
                }
            }
        }
        println!(
            "loaded {} items in {:.1} s",
            s.items,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(partitions)
}

/// Drives `clients` (indexes into the settings' clients) from `measure_from` for the
/// measured time; the latencies and the count of errors.
async fn measure(
    s: NodeBenchSettings,
    clients: Vec<usize>,
    keys: Keys,
    measure_from: Instant,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let keys = Rc::new(keys);
    let hist = Rc::new(RefCell::new(crate::latency_histogram_us()?));
    let errors = Rc::new(RefCell::new(0u64));
    let end = measure_from + s.duration;
    let mut tasks = Vec::new();
    for c in clients {
        let client = Rc::new(AsyncClient::connect(&s.endpoint, ClientOptions::default()).await?);
        for f in 0..s.in_flight {
            let client = client.clone();
            let hist = hist.clone();
            let errors = errors.clone();
            let (op, keys, vb) = (s.op.clone(), keys.clone(), s.value_bytes);
            let mut k = (c * 7919 + f * 104_729) as u64;
            tasks.push(glommio::spawn_local(async move {
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let r = client.call(request(&op, keys.pick(&mut k), vb)).await;
                    if t >= measure_from {
                        match r {
                            Ok(Response::Item(_)) => {
                                let us = t.elapsed().as_micros().max(1) as u64;
                                let _ = hist.borrow_mut().record(us);
                            }
                            _ => *errors.borrow_mut() += 1,
                        }
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await;
    }
    let h = hist.borrow().clone();
    let e = *errors.borrow();
    Ok((h, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(local_keys: bool) -> NodeBenchSettings {
        NodeBenchSettings {
            endpoint: String::new(),
            op: "get".into(),
            connections: 2,
            in_flight: 1,
            items: 1000,
            value_bytes: 1,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            cpu: None,
            threads: 2,
            local_keys,
        }
    }

    /// Two shards, each owning half of the hash space.
    fn halves() -> Vec<PartitionInfo> {
        vec![
            PartitionInfo {
                hash_low: 0,
                hash_high: u64::MAX / 2,
                shard: 0,
            },
            PartitionInfo {
                hash_low: u64::MAX / 2 + 1,
                hash_high: u64::MAX,
                shard: 1,
            },
        ]
    }

    fn shard_of(k: u64) -> u32 {
        partition_shard(&halves(), partition_hash(&KeyValue::S(key_name(k)))).unwrap()
    }

    /// Thread `thread`'s keys over [`halves`].
    fn keys_of(s: &NodeBenchSettings, thread: usize) -> anyhow::Result<Keys> {
        Keys::new(s, &halves(), shard_map(s, &halves()).as_ref(), thread)
    }

    #[test]
    fn with_local_keys_a_thread_asks_only_for_its_shards_keys() {
        for thread in [0usize, 1, 2, 3] {
            let keys = keys_of(&settings(true), thread).unwrap();
            let mut x = 7;
            let picked: Vec<u64> = (0..500).map(|_| keys.pick(&mut x)).collect();
            assert!(picked.iter().all(|&k| k < 1000));
            assert!(
                picked.iter().all(|&k| shard_of(k) == thread as u32 % 2),
                "thread {thread}"
            );
        }
        // Without it, a thread asks for keys of both shards.
        let keys = keys_of(&settings(false), 0).unwrap();
        let mut x = 7;
        let shards: std::collections::BTreeSet<u32> =
            (0..500).map(|_| shard_of(keys.pick(&mut x))).collect();
        assert_eq!(shards.len(), 2);
        // A shard that owns none of the items is refused rather than searched forever.
        let one = NodeBenchSettings {
            items: 1,
            ..settings(true)
        };
        let empty = 1 - shard_of(0) as usize;
        let error = keys_of(&one, empty).unwrap_err().to_string();
        assert!(error.contains("none of the 1 items"), "{error}");
        assert!(keys_of(&one, 1 - empty).is_ok());
    }
}
