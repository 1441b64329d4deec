//! The `keel` command.

use clap::{Parser, Subcommand};

/// keel: a partitioned, replicated key-value and document store.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load items into one shard's storage engine, read them back, report speed and memory.
    EngineLoad {
        /// Data directory (created if missing).
        #[arg(long, default_value = "keel-data/engine-load")]
        dir: std::path::PathBuf,
        /// Items to write.
        #[arg(long, default_value_t = 100_000)]
        items: u64,
        /// Bytes of each item's value.
        #[arg(long, default_value_t = 1000)]
        value_bytes: usize,
        /// Page cache size in MiB.
        #[arg(long, default_value_t = 64)]
        cache_mib: usize,
        /// Concurrent writers.
        #[arg(long, default_value_t = 64)]
        writers: u64,
        /// Skip reading every item back.
        #[arg(long)]
        no_verify: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::EngineLoad {
            dir,
            items,
            value_bytes,
            cache_mib,
            writers,
            no_verify,
        } => keel_tools::load::run(keel_tools::load::LoadSettings {
            dir,
            items,
            value_bytes,
            cache_bytes: cache_mib << 20,
            writers,
            verify: !no_verify,
        }),
    }
}
