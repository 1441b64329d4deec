//! `keel-bench`: runs a YCSB-style workload against a keel node or a Redis server and
//! reports throughput and latency (see bench/README.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};

use keel_bench::report::{self, chart, compare, PhaseReport, RunReport};
use keel_bench::run::{run_phase, Phase, PhaseResult, Shape};
use keel_bench::target::{driver_for, DriverOptions};
use keel_bench::workload::{preset, Distribution, Mix, WorkloadSpec, ZIPFIAN_THETA_DEFAULT};

/// mimalloc, as in the `keel` binary: the drivers allocate and free small buffers for every
/// request and answer (keel's decoded items, redis's reply strings), and glibc's malloc and
/// free were ~7% of the generator's samples. Both drivers run on it, so a comparison stays
/// even.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "keel-bench",
    about = "YCSB-style load generator for keel and its peers",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the side-by-side table (medians, ratios) of JSON reports of earlier runs.
    CompareTable {
        /// JSON files written by `--json`.
        files: Vec<PathBuf>,
        /// The target kind whose figures are the denominators of the ratios.
        #[arg(long, default_value = "redis")]
        baseline: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum PhaseArg {
    /// Insert the records only.
    Load,
    /// Run the workload only (the records must be there).
    Run,
    /// Load, then run.
    Both,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DistributionArg {
    Uniform,
    Zipfian,
    Latest,
    Hotspot,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// keel://HOST:PORT, redis://HOST:PORT or stub://[service_us=N,stall_at_ms=N,stall_ms=N].
    #[arg(long)]
    target: Option<String>,
    /// YCSB core workload a..f, or `custom` (then give --mix).
    #[arg(long, default_value = "a")]
    workload: String,
    /// Operation proportions, e.g. `read=0.8,update=0.1,insert=0.05,scan=0.03,rmw=0.02`;
    /// overrides the workload's.
    #[arg(long)]
    mix: Option<String>,
    /// Key distribution; default: the workload's.
    #[arg(long, value_enum)]
    distribution: Option<DistributionArg>,
    /// The zipfian constant θ (zipfian and latest).
    #[arg(long, default_value_t = ZIPFIAN_THETA_DEFAULT)]
    zipfian_constant: f64,
    /// Hotspot: fraction of the records that are hot.
    #[arg(long, default_value_t = 0.2)]
    hot_fraction: f64,
    /// Hotspot: fraction of the operations that go to the hot records.
    #[arg(long, default_value_t = 0.8)]
    hot_op_fraction: f64,
    /// Records loaded (and the key space of the run phase).
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Fields per record.
    #[arg(long, default_value_t = 10)]
    fields: u32,
    /// Bytes per field (10 fields × 100 bytes is YCSB's 1 KiB record).
    #[arg(long, default_value_t = 100)]
    field_bytes: u32,
    /// Longest scan in records (lengths uniform in 1..=N).
    #[arg(long, default_value_t = 100)]
    scan_length_max: u32,
    /// Updates write every field instead of one.
    #[arg(long)]
    write_all_fields: bool,
    /// Which phases run.
    #[arg(long, value_enum, default_value = "both")]
    phase: PhaseArg,
    /// Connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Generator threads that drive the connections (default: one per connection); with
    /// fewer, each thread waits for all of its connections with one poll(2).
    #[arg(long)]
    threads: Option<u32>,
    /// Requests in flight per connection (pipelining).
    #[arg(long, default_value_t = 4)]
    depth: u32,
    /// Open loop at this total rate (operations per second); default: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds measured (after the warm-up).
    #[arg(long)]
    duration: Option<f64>,
    /// Operations to issue in the run phase (warm-up included).
    #[arg(long)]
    operations: Option<u64>,
    /// Hard limit on the run phase, seconds (default: warm-up + duration + 60, or 600).
    #[arg(long)]
    time_limit: Option<f64>,
    /// Hard limit on the load phase, seconds.
    #[arg(long, default_value_t = 1800.0)]
    load_time_limit: f64,
    /// Connections for the load phase (default: --connections).
    #[arg(long)]
    load_connections: Option<u32>,
    /// Seconds per point of the latency-over-time series and progress updates.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Seed of the operation streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency-over-time chart here (default: the --json path with .svg).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// keel: the table.
    #[arg(long, default_value = "usertable")]
    table: String,
    /// keel: partitions of the table if it is created.
    #[arg(long)]
    partitions: Option<u32>,
    /// Milliseconds an answer may take before its connection counts as broken.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Free text recorded with the figures: where the server and generator ran.
    #[arg(long, default_value = "")]
    placement: String,
}

fn seconds(s: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("--{name} {s}"))
}

fn spec_of(a: &RunArgs) -> anyhow::Result<WorkloadSpec> {
    let (mut mix, mut distribution) = match preset(&a.workload) {
        Some(p) => p,
        None if a.workload == "custom" => (
            Mix::of(&[]),
            Distribution::Zipfian {
                theta: a.zipfian_constant,
            },
        ),
        None => bail!("--workload {}: expected a..f or custom", a.workload),
    };
    if let Some(text) = &a.mix {
        mix = Mix::parse(text).map_err(anyhow::Error::msg)?;
    }
    if let Some(d) = a.distribution {
        distribution = match d {
            DistributionArg::Uniform => Distribution::Uniform,
            DistributionArg::Zipfian => Distribution::Zipfian {
                theta: a.zipfian_constant,
            },
            DistributionArg::Latest => Distribution::Latest {
                theta: a.zipfian_constant,
            },
            DistributionArg::Hotspot => Distribution::Hotspot {
                hot_fraction: a.hot_fraction,
                hot_op_fraction: a.hot_op_fraction,
            },
        };
    } else if let Distribution::Zipfian { .. } = distribution {
        distribution = Distribution::Zipfian {
            theta: a.zipfian_constant,
        };
    } else if let Distribution::Latest { .. } = distribution {
        distribution = Distribution::Latest {
            theta: a.zipfian_constant,
        };
    }
    let spec = WorkloadSpec {
        name: a.workload.to_ascii_lowercase(),
        mix,
        distribution,
        records: a.records,
        field_count: a.fields,
        field_bytes: a.field_bytes,
        scan_length_max: a.scan_length_max,
        write_all_fields: a.write_all_fields,
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    Ok(spec)
}

fn phase_report(result: &PhaseResult) -> PhaseReport {
    let summary = result.recorder.summary(result.measured_ns);
    PhaseReport {
        elapsed_s: result.measured_ns as f64 / 1e9,
        overall: summary.overall,
        per_op: summary.per_op,
        reconnects: result.reconnects,
        hit_time_limit: result.hit_time_limit,
        timeline: result.timeline.clone(),
    }
}

/// The CPUs this process may run on, from /proc (Linux).
fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn run(a: &RunArgs) -> anyhow::Result<()> {
    let Some(target) = &a.target else {
        bail!("--target is required (keel://HOST:PORT, redis://HOST:PORT or stub://)");
    };
    let spec = spec_of(a)?;
    let duration = a.duration.map(|d| seconds(d, "duration")).transpose()?;
    let warmup = seconds(a.warmup, "warmup")?;
    let time_limit = match a.time_limit {
        Some(t) => seconds(t, "time-limit")?,
        None => match duration {
            Some(d) => warmup + d + Duration::from_secs(60),
            None => Duration::from_secs(600),
        },
    };
    let threads = a.threads.unwrap_or(a.connections);
    let shape = Shape {
        connections: a.connections,
        threads,
        depth: a.depth,
        rate_per_s: a.rate,
        warmup,
        duration,
        operations: a.operations,
        time_limit,
        interval: seconds(a.interval, "interval")?,
        seed: a.seed,
        progress: !a.no_progress,
    };
    if a.phase != PhaseArg::Load {
        shape.validate().map_err(anyhow::Error::msg)?;
    }
    let options = DriverOptions {
        request_timeout_ms: a.request_timeout_ms,
        table: a.table.clone(),
        partitions: a.partitions,
    };
    let driver = driver_for(target, &options).map_err(anyhow::Error::msg)?;
    driver.prepare(&spec).context("preparing the target")?;
    let placement = format!(
        "{}{}generator allowed CPUs {} of {}",
        a.placement,
        if a.placement.is_empty() { "" } else { "; " },
        cpus_allowed(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "keel-bench: {} workload {} ({}; {}), {} records of {} × {} bytes",
        driver.describe(),
        spec.name,
        spec.mix.label(),
        spec.distribution.label(),
        spec.records,
        spec.field_count,
        spec.field_bytes
    );
    println!("placement: {placement}");
    let mut load = None;
    if a.phase != PhaseArg::Run {
        let load_connections = a.load_connections.unwrap_or(a.connections);
        let load_shape = Shape {
            connections: load_connections,
            threads: threads.min(load_connections),
            rate_per_s: None,
            time_limit: seconds(a.load_time_limit, "load-time-limit")?,
            ..shape.clone()
        };
        let result = run_phase(driver.as_ref(), &spec, &load_shape, Phase::Load, 0);
        if let Some(e) = &result.connect_failure {
            bail!("load phase: {e}");
        }
        let phase = phase_report(&result);
        print!("{}", report::phase_table("load phase", &phase));
        load = Some(phase);
    }
    let mut run_report = None;
    if a.phase != PhaseArg::Load {
        let result = run_phase(driver.as_ref(), &spec, &shape, Phase::Run, spec.records);
        if let Some(e) = &result.connect_failure {
            eprintln!("keel-bench: warning: {e}");
        }
        let phase = phase_report(&result);
        let open = a.rate.map_or("closed loop".to_owned(), |r| {
            format!("open loop at {r} ops/s")
        });
        let title = format!(
            "run phase, {open}, {} connections × {} in flight, {} threads",
            a.connections, a.depth, threads
        );
        print!("{}", report::phase_table(&title, &phase));
        run_report = Some(phase);
    }
    let report = RunReport {
        target: driver.describe(),
        workload: spec.name.clone(),
        mix: spec.mix.label(),
        distribution: spec.distribution.label(),
        records: spec.records,
        field_count: spec.field_count,
        field_bytes: spec.field_bytes,
        connections: a.connections,
        threads,
        depth: a.depth,
        rate_per_s: a.rate,
        warmup_s: a.warmup,
        placement,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        load,
        run: run_report,
    };
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    let svg_path = a
        .svg
        .clone()
        .or_else(|| a.json.as_ref().map(|p| p.with_extension("svg")));
    if let Some(path) = svg_path {
        let phase = report.run.as_ref().or(report.load.as_ref());
        if let Some(phase) = phase {
            let title = format!(
                "{} workload {}: latency over time",
                report.target, report.workload
            );
            write_file(&path, &chart::latency_svg(&title, &phase.timeline))?;
            println!("latency chart written to {}", path.display());
        }
    }
    let failed = report
        .run
        .as_ref()
        .or(report.load.as_ref())
        .map_or(0, |p: &PhaseReport| p.overall.errors);
    if failed > 0 {
        eprintln!("keel-bench: {failed} operations failed");
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn compare_files(files: &[PathBuf], baseline: &str) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let r: RunReport =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        reports.push(r);
    }
    print!("{}", compare::compare_table(&reports, baseline));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CompareTable { files, baseline }) => compare_files(files, baseline),
        None => run(&cli.run),
    }
}
