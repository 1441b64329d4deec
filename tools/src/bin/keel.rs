//! The `keel` command: start a node, work with tables and items, load an engine.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use keel_tools::cli::{self, Action, ExprOptions};

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

#[derive(Args, Clone, Default)]
struct Expr {
    /// Expression attribute names, as JSON: '{"#n": "name"}'.
    #[arg(long)]
    names: Option<String>,
    /// Expression attribute values, as JSON (plain or typed): '{":v": 1}'.
    #[arg(long)]
    values: Option<String>,
}

impl From<Expr> for ExprOptions {
    fn from(e: Expr) -> ExprOptions {
        ExprOptions {
            names: e.names,
            values: e.values,
        }
    }
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
        /// Partitions of a table created without --partitions.
        #[arg(long, default_value_t = 8)]
        default_partitions: u32,
        /// Do not pin shards to CPUs.
        #[arg(long)]
        no_pin: bool,
    },
    /// Create a table: create-table users --partition-key id:S [--sort-key ts:N].
    CreateTable {
        /// Table name.
        table: String,
        /// Partition key as name:TYPE (S, N or B).
        #[arg(long)]
        partition_key: String,
        /// Sort key as name:TYPE.
        #[arg(long)]
        sort_key: Option<String>,
        /// Partitions (default: the node's).
        #[arg(long)]
        partitions: Option<u32>,
    },
    /// Delete a table and all its items.
    DeleteTable {
        /// Table name.
        table: String,
    },
    /// Show a table's key schema, status and partitions.
    DescribeTable {
        /// Table name.
        table: String,
    },
    /// List the tables.
    ListTables,
    /// Store an item: put users '{"id":"u1","n":1}'.
    Put {
        /// Table name.
        table: String,
        /// The item as JSON (plain or DynamoDB's typed form).
        item: String,
        /// Condition expression, e.g. 'attribute_not_exists(id)'.
        #[arg(long)]
        condition: Option<String>,
        /// Print the item it replaced.
        #[arg(long)]
        return_old: bool,
        #[command(flatten)]
        expr: Expr,
    },
    /// Read an item: get users '{"id":"u1"}'.
    Get {
        /// Table name.
        table: String,
        /// The key as JSON.
        key: String,
        /// Projection expression, e.g. 'n, tags[0]'.
        #[arg(long)]
        projection: Option<String>,
        #[command(flatten)]
        expr: Expr,
    },
    /// Delete an item: delete users '{"id":"u1"}'.
    Delete {
        /// Table name.
        table: String,
        /// The key as JSON.
        key: String,
        /// Condition expression.
        #[arg(long)]
        condition: Option<String>,
        /// Print the item it removed.
        #[arg(long)]
        return_old: bool,
        #[command(flatten)]
        expr: Expr,
    },
    /// Update an item: update users '{"id":"u1"}' 'SET n = n + :one' --values '{":one":1}'.
    Update {
        /// Table name.
        table: String,
        /// The key as JSON.
        key: String,
        /// Update expression (SET, REMOVE, ADD, DELETE).
        update: String,
        /// Condition expression.
        #[arg(long)]
        condition: Option<String>,
        /// none, all-old, updated-old, all-new or updated-new.
        #[arg(long, default_value = "all-new")]
        return_values: String,
        #[command(flatten)]
        expr: Expr,
    },
    /// Query one partition key: query users 'id = :id AND ts > :t' --values '{...}'.
    Query {
        /// Table name.
        table: String,
        /// Key condition expression.
        key_condition: String,
        /// Filter expression.
        #[arg(long)]
        filter: Option<String>,
        /// Projection expression.
        #[arg(long)]
        projection: Option<String>,
        /// Descending sort-key order.
        #[arg(long)]
        reverse: bool,
        /// Items evaluated per page.
        #[arg(long)]
        limit: Option<u32>,
        /// Read every page.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        expr: Expr,
    },
    /// Scan a table (or one segment of it).
    Scan {
        /// Table name.
        table: String,
        /// Filter expression.
        #[arg(long)]
        filter: Option<String>,
        /// Projection expression.
        #[arg(long)]
        projection: Option<String>,
        /// Items evaluated per page.
        #[arg(long)]
        limit: Option<u32>,
        /// Read every page.
        #[arg(long)]
        all: bool,
        /// This segment of a parallel scan.
        #[arg(long, default_value_t = 0)]
        segment: u32,
        /// Segments of a parallel scan.
        #[arg(long, default_value_t = 1)]
        total_segments: u32,
        #[command(flatten)]
        expr: Expr,
    },
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
        /// Pin the generator to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
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

fn action(command: Command) -> Option<Action> {
    Some(match command {
        Command::CreateTable {
            table,
            partition_key,
            sort_key,
            partitions,
        } => Action::CreateTable {
            table,
            partition_key,
            sort_key,
            partitions,
        },
        Command::DeleteTable { table } => Action::DeleteTable { table },
        Command::DescribeTable { table } => Action::DescribeTable { table },
        Command::ListTables => Action::ListTables,
        Command::Put {
            table,
            item,
            condition,
            return_old,
            expr,
        } => Action::Put {
            table,
            item,
            condition,
            return_old,
            expr: expr.into(),
        },
        Command::Get {
            table,
            key,
            projection,
            expr,
        } => Action::Get {
            table,
            key,
            projection,
            expr: expr.into(),
        },
        Command::Delete {
            table,
            key,
            condition,
            return_old,
            expr,
        } => Action::Delete {
            table,
            key,
            condition,
            return_old,
            expr: expr.into(),
        },
        Command::Update {
            table,
            key,
            update,
            condition,
            return_values,
            expr,
        } => Action::Update {
            table,
            key,
            update,
            condition,
            return_values,
            expr: expr.into(),
        },
        Command::Query {
            table,
            key_condition,
            filter,
            projection,
            reverse,
            limit,
            all,
            expr,
        } => Action::Query {
            table,
            key_condition,
            filter,
            projection,
            reverse,
            limit,
            all,
            expr: expr.into(),
        },
        Command::Scan {
            table,
            filter,
            projection,
            limit,
            all,
            segment,
            total_segments,
            expr,
        } => Action::Scan {
            table,
            filter,
            projection,
            limit,
            all,
            segment,
            total_segments,
            expr: expr.into(),
        },
        Command::Start { .. }
        | Command::EngineLoad { .. }
        | Command::TcpPingpong { .. }
        | Command::NodeBench { .. } => return None,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Cli::parse();
    match args.command {
        Command::Start {
            data_dir,
            shards,
            listen,
            cache_mib,
            default_partitions,
            no_pin,
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
                default_partitions,
                no_pin,
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
        command => {
            let Some(action) = action(command) else {
                return Ok(());
            };
            match cli::execute(&args.endpoint, action) {
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
            }
        }
    }
}
