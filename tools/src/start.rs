//! `keel start`: runs a node in the foreground until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use keel_engine::node::{run, NodeAddrs, NodeConfig};

/// What `keel start` was asked for.
#[derive(Debug, Clone)]
pub struct StartSettings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Shards; `None`: one per CPU.
    pub shards: Option<u32>,
    /// Shared listening address.
    pub listen: SocketAddr,
    /// Page cache MiB per shard.
    pub cache_mib: usize,
    /// WAL MiB a shard writes between two checkpoints.
    pub checkpoint_mib: u64,
    /// Partitions of a table created without a count.
    pub default_partitions: u32,
    /// Leave shards unpinned.
    pub no_pin: bool,
    /// Microseconds an idle shard polls before it sleeps.
    pub spin_us: u64,
}

/// The line `keel start` prints once it serves; tests and scripts read the ports from it.
pub fn ready_line(addrs: &NodeAddrs) -> String {
    let shards: Vec<String> = addrs.shards.iter().map(SocketAddr::to_string).collect();
    format!(
        "keel node ready: listening on {} (shards: {})",
        addrs.shared,
        shards.join(" ")
    )
}

/// Runs the node until SIGTERM or SIGINT, then shuts it down cleanly.
pub fn start(s: StartSettings) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(&s.data_dir);
    if let Some(n) = s.shards {
        config.shards = n;
    }
    config.listen = s.listen;
    config.cache_bytes = s.cache_mib << 20;
    config.checkpoint_wal_bytes = s.checkpoint_mib << 20;
    config.default_partitions = s.default_partitions;
    config.pin = !s.no_pin;
    config.spin_before_park = std::time::Duration::from_micros(s.spin_us);
    let (stop_tx, stop_rx) = flume::bounded(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers")?;
    let handle = signals.handle();
    let waiter = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("keel: signal {sig}: shutting down");
            let _ = stop_tx.send(());
        }
    });
    let shards = config.shards;
    let data_dir = s.data_dir.display().to_string();
    let result = run(
        config,
        |addrs| {
            println!("{}", ready_line(addrs));
            println!("data directory {data_dir}, {shards} shards");
        },
        stop_rx,
    );
    handle.close();
    let _ = waiter.join();
    result.context("keel node")?;
    eprintln!("keel: stopped cleanly");
    Ok(())
}
