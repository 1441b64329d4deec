//! `keel node-bench`: GetItem or PutItem requests/s and latency against a running node,
//! from the glommio native client (closed loop: `connections` clients, each with
//! `in_flight` requests outstanding), on one executor or split over `threads` executors
//! (thread `t` pinned to CPU `t`, so that on a small machine the generator does not crowd
//! onto one CPU beside one shard). The figure issue 3 asks for, beside
//! `keel tcp-pingpong` measured in the same session.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use keel_net::client::glommio::AsyncClient;
use keel_net::client::ClientOptions;
use keel_net::codec::{
    CreateTable, ErrorCode, ExprArgs, GetItem, PutItem, Request, Response, ReturnValues,
};
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
}

const TABLE: &str = "node_bench";

fn item(k: u64, value_bytes: usize) -> Item {
    let mut i = Item::new();
    i.insert("id".into(), Value::S(format!("k{k:010}")));
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
        key.insert("id".into(), Value::S(format!("k{k:010}")));
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
    executor(s.cpu)?.run(setup(s.clone()))?;
    let measure_from = Instant::now() + s.warmup;
    let threads: Vec<_> = (0..s.threads)
        .map(|t| {
            let s = s.clone();
            let clients: Vec<usize> = (0..s.connections).filter(|c| c % s.threads == t).collect();
            let cpu = if s.threads > 1 { Some(t) } else { s.cpu };
            std::thread::Builder::new()
                .name(format!("keel-node-bench-{t}"))
                .spawn(move || executor(cpu)?.run(measure(s, clients, measure_from)))
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
        "{} {} B values, {} clients x {} in flight ({} generator threads): {:.0} requests/s, \
         p50 {} us, p99 {} us, p99.9 {} us, max {} us, errors {}",
        s.op,
        s.value_bytes,
        s.connections,
        s.in_flight,
        s.threads,
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

/// Creates the table and, for `get`, loads the items.
async fn setup(s: NodeBenchSettings) -> anyhow::Result<()> {
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
    Ok(())
}

/// Drives `clients` (indexes into the settings' clients) from `measure_from` for the
/// measured time; the latencies and the count of errors.
async fn measure(
    s: NodeBenchSettings,
    clients: Vec<usize>,
    measure_from: Instant,
) -> anyhow::Result<(Histogram<u64>, u64)> {
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
            let (op, items, vb) = (s.op.clone(), s.items, s.value_bytes);
            let mut k = (c * 7919 + f * 104_729) as u64;
            tasks.push(glommio::spawn_local(async move {
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    k = k
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = client
                        .call(request(&op, (k >> 16) % items.max(1), vb))
                        .await;
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
