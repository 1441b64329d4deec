//! The `keel` command: start a node, work with tables and items, load an engine.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use keel_tools::cli::{self, Action};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers
/// (decoded items, frames), and glibc spent ~10% of a node's CPU on them (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// keel: a partitioned, replicated key-value and document store.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The node to talk to (for the table and item commands).
    #[arg(
        long,
        global = true,
        env = "KEEL_ENDPOINT",
        default_value = "127.0.0.1:7070"
    )]
    endpoint: String,
    /// Print answers as JSON (DynamoDB's typed form) for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node in the foreground (stops cleanly on SIGTERM or SIGINT).
    Start {
        /// Data directory (created if missing).
        #[arg(long, default_value = "keel-data/node")]
        data_dir: PathBuf,
        /// Shards, one executor each; default: one per CPU.
        #[arg(long)]
        shards: Option<u32>,
        /// Shared listening address; shard k also listens on port + 1 + k.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        /// Page cache per shard, MiB.
        #[arg(long, default_value_t = 64)]
        cache_mib: usize,
        /// WAL a shard writes between two checkpoints of its trees, MiB. More: fewer page
        /// writes per update (a page dirtied twice in one interval is written once), a
        /// longer WAL replay at start-up and more WAL on disk.
        #[arg(
            long,
            default_value_t = keel_engine::shard::CHECKPOINT_WAL_BYTES_DEFAULT >> 20,
            value_parser = clap::value_parser!(u64).range(1..=1 << 20)
        )]
        checkpoint_mib: u64,
        /// Partitions of a table created without --partitions.
        #[arg(long, default_value_t = 8)]
        default_partitions: u32,
        /// Do not pin shards to CPUs.
        #[arg(long)]
        no_pin: bool,
        /// How long an idle shard polls for work before it sleeps, microseconds (waking a
        /// sleeping executor costs ~60 us here, which cross-shard hops wait for; polling
        /// costs CPU the clients could use). 0: sleep at once.
        #[arg(long, default_value_t = 0)]
        spin_us: u64,
    },
    /// Table and item commands.
    #[command(flatten)]
    Data(Action),
    /// Measure GetItem or PutItem requests/s and latency against a running node.
    NodeBench {
        /// get or put.
        #[arg(long, default_value = "get")]
        op: String,
        /// Clients (shard-aware, one connection per shard each).
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Requests outstanding per client.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Distinct keys (loaded first for get).
        #[arg(long, default_value_t = 100_000)]
        items: u64,
        /// Bytes of each item's value.
        #[arg(long, default_value_t = 100)]
        value_bytes: usize,
        /// Seconds of warm-up.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Seconds measured.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Pin the generator to this CPU (one thread only).
        #[arg(long)]
        cpu: Option<usize>,
        /// Generator threads (thread t pinned to CPU t), sharing the clients.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Thread t asks only for keys of the shard on its own CPU (shard t mod shards),
        /// so that it takes turns with that shard instead of preempting it.
        #[arg(long)]
        local_keys: bool,
    },
    /// Measure a plain TCP ping-pong over 127.0.0.1 (the floor under request latency).
    TcpPingpong {
        /// Bytes sent per round trip.
        #[arg(long, default_value_t = 64)]
        request_bytes: usize,
        /// Bytes answered per round trip.
        #[arg(long, default_value_t = 64)]
        response_bytes: usize,
        /// Seconds to measure (after 1 s of warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Measure how often and how long this machine stops a running thread (one pinned
    /// thread per CPU reading the clock): the floor under any tail latency here.
    Hiccup {
        /// Seconds to measure.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Shortest gap recorded, microseconds.
        #[arg(long, default_value_t = 500)]
        threshold_us: u64,
        /// CPUs to watch (0..N); default: all.
        #[arg(long)]
        cpus: Option<usize>,
    },
    /// Load items into one shard's storage engine, read them back, report speed and memory.
    EngineLoad {
        /// Data directory (created if missing).
        #[arg(long, default_value = "keel-data/engine-load")]
        dir: PathBuf,
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
    let args = Cli::parse();
    match args.command {
        Command::Start {
            data_dir,
            shards,
            listen,
            cache_mib,
            checkpoint_mib,
            default_partitions,
            no_pin,
            spin_us,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .init();
            keel_tools::start::start(keel_tools::start::StartSettings {
                data_dir,
                shards,
                listen,
                cache_mib,
                checkpoint_mib,
                default_partitions,
                no_pin,
                spin_us,
            })
        }
        Command::NodeBench {
            op,
            connections,
            in_flight,
            items,
            value_bytes,
            warmup,
            seconds,
            cpu,
            threads,
            local_keys,
        } => keel_tools::nodebench::run(keel_tools::nodebench::NodeBenchSettings {
            endpoint: args.endpoint.clone(),
            op,
            connections,
            in_flight,
            items,
            value_bytes,
            warmup: std::time::Duration::from_secs(warmup),
            duration: std::time::Duration::from_secs(seconds),
            cpu,
            threads,
            local_keys,
        }),
        Command::TcpPingpong {
            request_bytes,
            response_bytes,
            seconds,
        } => {
            let r = keel_tools::pingpong::run(&keel_tools::pingpong::PingPongSettings {
                request_bytes,
                response_bytes,
                duration: std::time::Duration::from_secs(seconds),
            })?;
            println!(
                "tcp ping-pong {request_bytes} B / {response_bytes} B over 127.0.0.1: \
                 {:.0} round trips/s, p50 {} us, p99 {} us, p99.9 {} us",
                r.round_trips_per_s, r.p50_us, r.p99_us, r.p999_us
            );
            Ok(())
        }
        Command::Hiccup {
            seconds,
            threshold_us,
            cpus,
        } => {
            let cpus = cpus.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let gaps = keel_tools::hiccup::run(&keel_tools::hiccup::HiccupSettings {
                duration: std::time::Duration::from_secs(seconds),
                threshold: std::time::Duration::from_micros(threshold_us),
                cpus,
            })?;
            let s = keel_tools::hiccup::summarize(&gaps, cpus);
            println!("hiccup over {seconds} s, one pinned thread on each of CPUs 0..{cpus}:");
            for (cpu, (over1, over2, over4, longest)) in s.per_cpu.iter().enumerate() {
                println!(
                    "  CPU {cpu}: gaps over 1 ms {over1}, over 2 ms {over2}, over 4 ms {over4}, \
                     longest {:.2} ms",
                    longest.as_secs_f64() * 1e3
                );
            }
            println!(
                "  every CPU stopped at once (gaps over 1 ms): {}",
                s.all_at_once
            );
            let mut longest: Vec<_> = gaps.iter().collect();
            longest.sort_by_key(|g| std::cmp::Reverse(g.length));
            for g in longest.iter().take(5) {
                println!(
                    "  longest: CPU {} at {:.3} s, {:.2} ms",
                    g.cpu,
                    g.end.as_secs_f64(),
                    g.length.as_secs_f64() * 1e3
                );
            }
            Ok(())
        }
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
        Command::Data(action) => match cli::execute(&args.endpoint, action) {
            Ok(out) => {
                if args.json {
                    println!("{}", out.json);
                } else if !out.text.is_empty() {
                    println!("{}", out.text);
                }
                Ok(())
            }
            Err(e) => {
                eprintln!("keel: {e}");
                std::process::exit(e.exit_code());
            }
        },
    }
}
