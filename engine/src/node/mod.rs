//! A keel node: one shard per core, each a glommio executor that owns its engine, its
//! connections and its partitions; the binary protocol on TCP; the catalog of tables.
//!
//! - [`catalog`]: tables, partition maps and the catalog file (pure).
//! - [`ops`]: the item operations carried out on the shard that owns the partition.
//! - [`shard`]: a shard at run time: routing, forwarding over the channel mesh, table
//!   changes.
//! - [`conn`]: one client connection.
//!
//! [`run`] starts a node and blocks until it is told to stop. Start-up: lock the data
//! directory, read (or create) the catalog, start the shards in order (shard 0 binds the
//! shared port first so the others can share it), let each shard make its partitions
//! match the catalog, finish table changes a crash interrupted, then serve. Shutdown:
//! every shard stops taking requests and finishes those under way (forwarded ones
//! included), and only then does any shard close its engine.

pub mod catalog;
pub mod conn;
pub mod ops;
pub mod shard;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::signal::Signal;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::shard::{Engine, EngineOptions, CHECKPOINT_WAL_BYTES_DEFAULT};
use catalog::Catalog;
use shard::{save_catalog, Shard, ShardMsg};

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the node keeps its data: the catalog and a directory per shard.
    pub data_dir: PathBuf,
    /// Shards (executors); one per core by default.
    pub shards: u32,
    /// The shared listening address. Shard `k` also listens on port `port + 1 + k` of the
    /// same host, or on a port of the system's choosing when `port` is 0.
    pub listen: SocketAddr,
    /// Pin shard `k` to CPU `k % cpus`.
    pub pin: bool,
    /// Page cache bytes per shard.
    pub cache_bytes: usize,
    /// WAL bytes a shard writes between two checkpoints of its trees.
    pub checkpoint_wal_bytes: u64,
    /// Partitions of a table created without a count.
    pub default_partitions: u32,
    /// How long shutdown waits for requests under way.
    pub drain_timeout: Duration,
    /// How long an idle shard polls for work before its executor sleeps.
    pub spin_before_park: Duration,
}

impl NodeConfig {
    /// Defaults: one shard per CPU, pinned, 127.0.0.1:7070, 64 MiB of cache per shard,
    /// 8 partitions per table.
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            shards: cpus(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            pin: true,
            cache_bytes: 64 << 20,
            checkpoint_wal_bytes: CHECKPOINT_WAL_BYTES_DEFAULT,
            default_partitions: 8,
            drain_timeout: Duration::from_secs(10),
            spin_before_park: Duration::ZERO,
        }
    }
}

fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

/// Where a running node listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddrs {
    /// The shared port (every shard accepts on it).
    pub shared: SocketAddr,
    /// Each shard's own port, in shard order.
    pub shards: Vec<SocketAddr>,
}

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another process uses the data directory.
    #[error("the data directory {0} is in use by another keel process")]
    Locked(String),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The catalog file is unreadable.
    #[error("catalog {path}: {source}")]
    Catalog {
        /// The file.
        path: String,
        /// The decoder's finding.
        source: catalog::CatalogFileError,
    },
    /// A shard failed.
    #[error("shard {shard}: {message}")]
    Shard {
        /// The shard.
        shard: u32,
        /// What happened.
        message: String,
    },
}

/// Commands from the node's controlling thread to a shard.
enum Control {
    /// Every engine is open: listen, sharing this address (port 0: any).
    Bind(SocketAddr),
    /// Serve with this catalog; the shards' own addresses.
    Serve(Arc<Catalog>, Vec<String>),
    /// Stop taking requests and finish those under way.
    Drain,
    /// Close the engine and stop.
    Close,
}

/// Reports from a shard to the controlling thread.
enum Report {
    /// The engine is open.
    Opened,
    /// Listening; the shared and own addresses.
    Bound(SocketAddr, SocketAddr),
    /// Partitions match the catalog.
    Reconciled,
    /// Serving.
    Serving,
    /// No request under way.
    Drained,
    /// Something failed; the shard stops.
    Failed(String),
}

fn io_err(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NodeError {
    let path = path.display().to_string();
    move |source| NodeError::Io { op, path, source }
}

/// Runs a node until `stop` receives a message (or its sender is dropped). `ready` is
/// called once every shard serves, with the addresses it listens on.
pub fn run(
    config: NodeConfig,
    ready: impl FnOnce(&NodeAddrs),
    stop: flume::Receiver<()>,
) -> Result<(), NodeError> {
    if config.shards == 0 || config.shards > 256 {
        return Err(NodeError::Config(format!(
            "shards must be within 1..=256, not {}",
            config.shards
        )));
    }
    if !(1..=catalog::PARTITIONS_MAX).contains(&config.default_partitions) {
        return Err(NodeError::Config(format!(
            "default partitions must be within 1..={}",
            catalog::PARTITIONS_MAX
        )));
    }
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(io_err("create_dir", dir))?;
    let dir = dir.canonicalize().map_err(io_err("canonicalize", dir))?;
    let lock_path = dir.join("LOCK");
    let lock = std::fs::File::create(&lock_path).map_err(io_err("create", &lock_path))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(NodeError::Locked(dir.display().to_string()));
    }
    let catalog_path = dir.join("catalog");
    let catalog = match std::fs::read(&catalog_path) {
        Ok(bytes) => catalog::decode(&bytes).map_err(|source| NodeError::Catalog {
            path: catalog_path.display().to_string(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let c = Catalog::new(config.shards);
            save_catalog(&catalog_path, &c).map_err(io_err("write", &catalog_path))?;
            c
        }
        Err(e) => return Err(io_err("read", &catalog_path)(e)),
    };
    if catalog.shards != config.shards {
        return Err(NodeError::Config(format!(
            "the data directory {} was created with {} shards; start the node with \
             --shards {} (moving partitions between shards is not supported yet)",
            dir.display(),
            catalog.shards,
            catalog.shards
        )));
    }
    let catalog = Arc::new(catalog);
    let n = config.shards as usize;
    let mesh: MeshBuilder<ShardMsg, Full> = MeshBuilder::full(n, 1024);
    let (report_tx, report_rx) = flume::unbounded::<(u32, Report)>();
    let mut controls = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    let mut shared = config.listen;
    let mut own_addrs = Vec::with_capacity(n);
    let wait = |want: &dyn Fn(&Report) -> bool| -> Result<(), NodeError> {
        let (shard, report) = report_rx.recv().map_err(|_| NodeError::Shard {
            shard: 0,
            message: "a shard stopped without reporting".into(),
        })?;
        match report {
            Report::Failed(message) => Err(NodeError::Shard { shard, message }),
            r if want(&r) => Ok(()),
            _ => Err(NodeError::Shard {
                shard,
                message: "reported out of order".into(),
            }),
        }
    };
    let mut result = Ok(());
    // Every shard opens its engine at once (recovery and filling the page cache run in
    // parallel); only when all are open do they bind, one after the other (the next
    // shares the port the first was given), so that nothing listens on the node's
    // address while a shard is still opening: a client that connects early would wait
    // for its Hello answer until every shard serves.
    for k in 0..config.shards {
        let (ctl_tx, ctl_rx) = flume::unbounded();
        controls.push(ctl_tx);
        let setup = ShardSetup {
            index: k,
            config: config.clone(),
            dir: dir.clone(),
            catalog: catalog.clone(),
            mesh: mesh.clone(),
            control: ctl_rx,
            report: report_tx.clone(),
        };
        let placement = if config.pin {
            Placement::Fixed(k as usize % cpus() as usize)
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("keel-shard-{k}"))
            .io_memory(8 << 20)
            .spin_before_park(config.spin_before_park)
            .spawn(move || shard_main(setup));
        match handle {
            Ok(h) => handles.push(h),
            Err(e) => {
                result = Err(NodeError::Shard {
                    shard: k,
                    message: format!("starting its executor: {e}"),
                });
                break;
            }
        }
    }
    if result.is_ok() {
        result = (0..n).try_for_each(|_| wait(&|r| matches!(r, Report::Opened)));
    }
    if result.is_ok() {
        for (k, ctl) in controls.iter().enumerate() {
            let _ = ctl.send(Control::Bind(shared));
            // The shard reports where it listens; the next ones share its shared port.
            match report_rx.recv() {
                Ok((_, Report::Bound(s, own))) => {
                    shared = s;
                    own_addrs.push(own);
                }
                Ok((shard, Report::Failed(message))) => {
                    result = Err(NodeError::Shard { shard, message });
                    break;
                }
                _ => {
                    result = Err(NodeError::Shard {
                        shard: k as u32,
                        message: "stopped while starting".into(),
                    });
                    break;
                }
            }
        }
    }
    if result.is_ok() {
        result = (|| {
            for _ in 0..n {
                wait(&|r| matches!(r, Report::Reconciled))?;
            }
            // Every shard's partitions match the catalog: finish interrupted changes.
            let mut c = (*catalog).clone();
            let names: Vec<String> = c.tables.keys().cloned().collect();
            for name in names {
                match c.tables.get(&name).map(|t| t.status) {
                    Some(keel_net::codec::TableStatus::Creating) => c.finish_create(&name),
                    Some(keel_net::codec::TableStatus::Deleting) => c.finish_delete(&name),
                    _ => {}
                }
            }
            save_catalog(&catalog_path, &c).map_err(io_err("write", &catalog_path))?;
            let c = Arc::new(c);
            let addrs: Vec<String> = own_addrs.iter().map(SocketAddr::to_string).collect();
            for ctl in &controls {
                let _ = ctl.send(Control::Serve(c.clone(), addrs.clone()));
            }
            for _ in 0..n {
                wait(&|r| matches!(r, Report::Serving))?;
            }
            Ok(())
        })();
    }
    if result.is_err() {
        // Start-up failed. A shard still waiting for Bind sees its control channel close
        // and closes its engine; one that bound may be waiting in the mesh for a peer that
        // will never join, so it cannot be drained. Nothing was served and everything the
        // engines recovered is durable: leave the threads to the process's exit.
        drop(controls);
        return result;
    }
    {
        ready(&NodeAddrs {
            shared,
            shards: own_addrs,
        });
        // Serve until told to stop, or until a shard fails.
        flume::Selector::new()
            .recv(&stop, |_| ())
            .recv(&report_rx, |r| {
                if let Ok((shard, Report::Failed(message))) = r {
                    result = Err(NodeError::Shard { shard, message });
                }
            })
            .wait();
    }
    // Shut down: drain every shard, then close every engine.
    for ctl in &controls {
        let _ = ctl.send(Control::Drain);
    }
    for _ in 0..handles.len() {
        if let Err(e) = wait(&|r| matches!(r, Report::Drained)) {
            tracing::warn!(error = %e, "while draining");
        }
    }
    for ctl in &controls {
        let _ = ctl.send(Control::Close);
    }
    for (k, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                result = result.and(Err(NodeError::Shard {
                    shard: k as u32,
                    message,
                }))
            }
            Err(e) => {
                result = result.and(Err(NodeError::Shard {
                    shard: k as u32,
                    message: format!("executor: {e}"),
                }))
            }
        }
    }
    drop(lock);
    result
}

struct ShardSetup {
    index: u32,
    config: NodeConfig,
    dir: PathBuf,
    catalog: Arc<Catalog>,
    mesh: MeshBuilder<ShardMsg, Full>,
    control: flume::Receiver<Control>,
    report: flume::Sender<(u32, Report)>,
}

async fn shard_main(s: ShardSetup) -> Result<(), String> {
    let index = s.index;
    let report = s.report.clone();
    let result = shard_run(s).await;
    if let Err(e) = &result {
        let _ = report.send((index, Report::Failed(e.clone())));
    }
    result
}

async fn shard_run(s: ShardSetup) -> Result<(), String> {
    let k = s.index;
    let send = |r: Report| {
        let _ = s.report.send((k, r));
    };
    // The engine opens the shard's first file (glommio's polled-I/O probe workaround).
    let mut options = EngineOptions::new(s.dir.join(format!("shard-{k}")));
    options.cache_bytes = s.config.cache_bytes;
    options.checkpoint_wal_bytes = s.config.checkpoint_wal_bytes;
    let engine = Engine::open(options)
        .await
        .map_err(|e| format!("opening the engine: {e}"))?;
    engine.spawn_checkpointer(None);
    send(Report::Opened);
    let Ok(Control::Bind(shared_bind)) = s.control.recv_async().await else {
        // Another shard failed to start.
        return close(engine).await;
    };
    let shared =
        TcpListener::bind(shared_bind).map_err(|e| format!("binding {shared_bind}: {e}"))?;
    let shared_addr = shared
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    let own_port = match s.config.listen.port() {
        0 => 0,
        p => p
            .checked_add(1 + k as u16)
            .ok_or_else(|| format!("port {p} + {} is out of range", 1 + k))?,
    };
    let own_bind = SocketAddr::new(s.config.listen.ip(), own_port);
    let own = TcpListener::bind(own_bind).map_err(|e| format!("binding {own_bind}: {e}"))?;
    let own_addr = own
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    send(Report::Bound(shared_addr, own_addr));
    let (senders, mut receivers) = s
        .mesh
        .join()
        .await
        .map_err(|_| "joining the shard mesh".to_owned())?;
    if senders.peer_id() != k as usize {
        return Err(format!(
            "mesh peer id {} differs from shard index {k}",
            senders.peer_id()
        ));
    }
    let shard = Rc::new(Shard {
        index: k,
        shards: s.config.shards,
        engine: engine.clone(),
        catalog: RefCell::new(s.catalog.clone()),
        senders,
        shard_addrs: RefCell::new(Vec::new()),
        catalog_path: s.dir.join("catalog"),
        default_partitions: s.config.default_partitions,
        ddl_lock: glommio::sync::Semaphore::new(1),
        in_flight: Cell::new(0),
        closing: Cell::new(false),
        idle: Signal::new(),
        hung_up: Cell::new(false),
        hang_up: Signal::new(),
        connections: Cell::new(0),
        connection_ended: Signal::new(),
    });
    for (_, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                let shard = shard.clone();
                glommio::spawn_local(async move { shard.on_message(msg).await }).detach();
            }
        })
        .detach();
    }
    shard.reconcile(&s.catalog).await?;
    send(Report::Reconciled);
    let Ok(Control::Serve(catalog, addrs)) = s.control.recv_async().await else {
        return close(engine).await;
    };
    *shard.catalog.borrow_mut() = catalog;
    *shard.shard_addrs.borrow_mut() = addrs;
    let closing = Rc::new(Signal::new());
    for listener in [shared, own] {
        let shard = shard.clone();
        let closing = closing.clone();
        glommio::spawn_local(accept_loop(shard, listener, closing)).detach();
    }
    send(Report::Serving);
    // Wait for Drain.
    loop {
        match s.control.recv_async().await {
            Ok(Control::Drain) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shard.closing.set(true);
    closing.notify();
    let drained = wait_until(&shard.idle, || shard.in_flight.get() == 0);
    let timeout = glommio::timer::sleep(s.config.drain_timeout);
    futures_lite::future::or(drained, timeout).await;
    send(Report::Drained);
    loop {
        match s.control.recv_async().await {
            Ok(Control::Close) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Every shard is drained: hang up on the clients (they see the end of the stream, not
    // a silent socket), then close the engine.
    shard.hung_up.set(true);
    shard.hang_up.notify();
    let hung_up = wait_until(&shard.connection_ended, || shard.connections.get() == 0);
    futures_lite::future::or(hung_up, glommio::timer::sleep(s.config.drain_timeout)).await;
    let (e, w) = (engine.stats(), engine.wal_stats());
    tracing::info!(
        shard = k,
        checkpoints = e.checkpoints,
        patched = e.patched,
        wal_batches = w.batches,
        wal_records = w.records,
        wal_thread_batches = w.thread_batches,
        wal_rotations = w.rotations,
        wal_rotation_stalls = w.rotation_stalls,
        wal_rotation_stall_ms = w.rotation_stall_us / 1000,
        wal_rotations_unwritten = w.rotations_unwritten,
        wal_write_ms = w.write_us / 1000,
        wal_thread_pickup_ms = w.thread_pickup_us / 1000,
        wal_thread_pwrite_ms = w.thread_pwrite_us / 1000,
        wal_thread_reap_ms = w.thread_reap_us / 1000,
        "shard counters since open"
    );
    close(engine).await
}

/// Resolves once `done` holds, checking it again whenever `changed` fires.
async fn wait_until(changed: &Signal, done: impl Fn() -> bool) {
    loop {
        let l = changed.listen();
        if done() {
            return;
        }
        l.await;
    }
}

async fn close(engine: Engine) -> Result<(), String> {
    engine
        .close()
        .await
        .map_err(|e| format!("closing the engine: {e}"))
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, closing: Rc<Signal>) {
    loop {
        let stop = closing.listen();
        if shard.closing.get() {
            break;
        }
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                glommio::spawn_local(conn::serve(shard.clone(), stream)).detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "accept failed");
                // Too many open files and the like: back off instead of spinning.
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
