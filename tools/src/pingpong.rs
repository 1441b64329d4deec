//! `keel tcp-pingpong`: the floor under every request/response figure. One connection over
//! 127.0.0.1 sends `request_bytes`, waits for `response_bytes` back, and sends again; an
//! echo thread answers. Benchmarks quote keel's requests/s beside this run's round
//! trips/s, measured in the same session on the same CPUs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// What to measure.
#[derive(Debug, Clone)]
pub struct PingPongSettings {
    /// Bytes the client sends each round trip.
    pub request_bytes: usize,
    /// Bytes the server answers each round trip.
    pub response_bytes: usize,
    /// How long to measure (after a 1 s warm-up).
    pub duration: Duration,
}

/// Round trips per second and latency of one run.
#[derive(Debug, Clone)]
pub struct PingPongResult {
    /// Round trips completed per second.
    pub round_trips_per_s: f64,
    /// Median round trip, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile, microseconds.
    pub p999_us: u64,
}

/// Runs the ping-pong and returns its figures.
pub fn run(s: &PingPongSettings) -> anyhow::Result<PingPongResult> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (req, resp) = (s.request_bytes.max(1), s.response_bytes.max(1));
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut c, _) = listener.accept()?;
        c.set_nodelay(true)?;
        let mut inb = vec![0u8; req];
        let out = vec![7u8; resp];
        loop {
            if c.read_exact(&mut inb).is_err() {
                return Ok(());
            }
            c.write_all(&out)?;
        }
    });
    let mut c = TcpStream::connect(addr).context("connecting")?;
    c.set_nodelay(true)?;
    let out = vec![3u8; req];
    let mut inb = vec![0u8; resp];
    let mut hist = crate::latency_histogram_us()?;
    let warm_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm_until {
        c.write_all(&out)?;
        c.read_exact(&mut inb)?;
    }
    let start = Instant::now();
    let end = start + s.duration;
    let mut n = 0u64;
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        c.write_all(&out)?;
        c.read_exact(&mut inb)?;
        hist.record(t.elapsed().as_micros().max(1) as u64)?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(c);
    let _ = server.join();
    Ok(PingPongResult {
        round_trips_per_s: n as f64 / secs,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
    })
}
