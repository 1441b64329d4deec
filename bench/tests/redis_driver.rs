//! The Redis driver against a real redis-server on 127.0.0.1 (skipped, with a message,
//! when redis-server is not installed: CI has none).
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_bench::run::{run_phase, Phase, Shape};
use keel_bench::target::{driver_for, DriverOptions};
use keel_bench::workload::{preset, OpKind, WorkloadSpec};

/// A redis-server child, killed by PID on drop.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn start_redis(dir: &std::path::Path) -> Option<(Redis, u16)> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((redis, port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn every_ycsb_workload_runs_against_redis_without_errors() {
    let dir = std::env::temp_dir().join(format!("keel-bench-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((_redis, port)) = start_redis(&dir) else {
        eprintln!("SKIPPED: redis-server is not installed or did not start");
        return;
    };
    let options = DriverOptions {
        request_timeout_ms: 5000,
        table: "usertable".to_owned(),
        partitions: None,
    };
    let driver = driver_for(&format!("redis://127.0.0.1:{port}"), &options).unwrap();
    for letter in ["a", "b", "c", "d", "e", "f"] {
        let (mix, distribution) = preset(letter).unwrap();
        let spec = WorkloadSpec {
            name: letter.to_owned(),
            mix,
            distribution,
            records: 500,
            field_count: 4,
            field_bytes: 20,
            scan_length_max: 10,
            write_all_fields: false,
        };
        driver.prepare(&spec).unwrap();
        // Half the workloads run both connections on one thread (one poll for both).
        let shape = Shape {
            connections: 2,
            threads: if matches!(letter, "a" | "c" | "e") {
                1
            } else {
                2
            },
            depth: 8,
            rate_per_s: None,
            warmup: Duration::ZERO,
            duration: None,
            operations: Some(2000),
            time_limit: Duration::from_secs(30),
            interval: Duration::from_millis(200),
            seed: 3,
            progress: false,
        };
        let load = run_phase(driver.as_ref(), &spec, &shape, Phase::Load, 0);
        assert_eq!(
            load.recorder.overall().completed,
            500,
            "workload {letter} load"
        );
        let run = run_phase(driver.as_ref(), &spec, &shape, Phase::Run, spec.records);
        let all = run.recorder.overall();
        assert_eq!(all.error_count(), 0, "workload {letter}: {:?}", all.errors);
        assert_eq!(all.completed, 2000, "workload {letter}");
        if letter == "c" {
            assert_eq!(all.misses, 0, "every loaded record is found");
        }
        if letter == "e" {
            assert!(run.recorder.stats(OpKind::Scan).unwrap().completed > 1500);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
