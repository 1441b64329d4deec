//! Acknowledged appends survive a SIGKILL of the process in the middle of a load.
//!
//! The test re-runs its own binary as a child (`WAL_CRASH_CHILD=dir`) that appends from 64
//! tasks and prints `lsn tag` for every acknowledged append; the parent kills it mid-run,
//! reopens the WAL, and checks that every acknowledged record is there with its payload and
//! that the log is a gapless prefix 1..=last. The second of its three rounds makes new
//! segments by allocating them only (`prewrite_spares: false`), so that the kill lands
//! in a segment whose blocks were never written before.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use keel_engine::wal::batch::BATCH_BYTES_MIN;
use keel_engine::wal::{
    probe_workaround, GroupId, LogIndex, Lsn, RecordKind, RecordMeta, Term, Wal, WalOptions,
};

const CHILD_ENV: &str = "WAL_CRASH_CHILD";
/// Set (to anything) in a child that only allocates its new segments.
const ALLOCATE_ENV: &str = "WAL_CRASH_ALLOCATE";

fn options(dir: &Path, prewrite_spares: bool) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        segment_bytes: (4096 + BATCH_BYTES_MIN + 16 * 4096) as u64,
        batch_bytes_max: BATCH_BYTES_MIN,
        segments_spare_max: 2,
        prewrite_spares,
    }
}

fn payload(tag: u64) -> Vec<u8> {
    let mut p = tag.to_le_bytes().to_vec();
    p.resize(64 + (tag % 2000) as usize, (tag % 251) as u8);
    p
}

fn meta(tag: u64) -> RecordMeta {
    RecordMeta {
        group: GroupId(tag % 5),
        term: Term(1),
        index: LogIndex(tag),
        kind: RecordKind::Data,
    }
}

fn executor() -> glommio::LocalExecutor {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .unwrap()
}

fn child(dir: PathBuf) {
    executor().run(async move {
        probe_workaround(&dir).await.unwrap();
        let prewrite = std::env::var_os(ALLOCATE_ENV).is_none();
        let wal = Wal::open(options(&dir, prewrite)).await.unwrap();
        println!("ready");
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let wal = wal.clone();
                glommio::spawn_local(async move {
                    for i in 0.. {
                        let tag = t * 1_000_000 + i;
                        let lsn = wal.append(meta(tag), &payload(tag)).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{} {tag}", lsn.0).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
}

#[test]
fn wal_acked_appends_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(PathBuf::from(dir));
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("wal-crash")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "wal_acked_appends_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path());
        if round == 1 {
            child.env(ALLOCATE_ENV, "1");
        }
        let mut child = child.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut this_round = 0;
        for line in lines {
            let mut parts = line.split_whitespace();
            let (Some(lsn), Some(tag)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(lsn), Ok(tag)) = (lsn.parse::<u64>(), tag.parse::<u64>()) else {
                continue;
            };
            // An LSN acknowledged in an earlier round cannot be acknowledged again.
            assert!(
                acked.insert(lsn, tag).is_none(),
                "lsn {lsn} acknowledged twice"
            );
            this_round += 1;
        }
        eprintln!("round {round}: {this_round} acked in {:?}", start.elapsed());
        assert!(this_round > 0, "the child acknowledged nothing");

        let path = dir.path().to_path_buf();
        let acked_now = acked.clone();
        executor().run(async move {
            probe_workaround(&path).await.unwrap();
            let wal = Wal::open(options(&path, true)).await.unwrap();
            let mut reader = wal.reader(Lsn(1)).await.unwrap();
            let mut expected = Lsn(1);
            let mut found = 0;
            while let Some(record) = reader.next().await.unwrap() {
                assert_eq!(record.lsn, expected, "the log is a gapless prefix");
                if let Some(tag) = acked_now.get(&record.lsn.0) {
                    assert_eq!(record.payload, payload(*tag), "payload of {}", record.lsn);
                    found += 1;
                }
                expected = expected.next();
            }
            let last_acked = acked_now.keys().next_back().copied().unwrap_or(0);
            assert!(
                wal.last_lsn().0 >= last_acked,
                "acked {last_acked} > {}",
                wal.last_lsn()
            );
            assert_eq!(found, acked_now.len(), "every acknowledged record survives");
            wal.close().await.unwrap();
        });
    }
}
