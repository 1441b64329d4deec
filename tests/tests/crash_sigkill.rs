//! Power-off test with real processes: a child writes with 32 concurrent writers (puts,
//! deletes, and attribute sets logged as `Mutation::Set`) and reports each acknowledged
//! write; it is killed with SIGKILL at a random moment; the next child reopens the same
//! directory and must find every acknowledged write, intact, before it writes on.
//! Rounds: 50 by default (`KEEL_CRASH_ROUNDS` for more), seed 1 (`KEEL_CRASH_SEED`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use keel_tests::crash::Ledger;
use keel_tests::Prng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn acked_writes_survive_sigkill() {
    let rounds = env_u64("KEEL_CRASH_ROUNDS", 50);
    let seed = env_u64("KEEL_CRASH_SEED", 1);
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger.txt");
    let data = dir.path().join("data");
    let mut ledger = Ledger::default();
    let mut rng = Prng::new(seed);
    let mut acked_total = 0u64;
    for round in 0..rounds {
        std::fs::write(&ledger_path, ledger.to_text()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&data)
            .arg((seed * 100_000 + round).to_string())
            .arg(&ledger_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("writer exited before verifying")
            .unwrap();
        assert!(
            first.starts_with("VERIFIED"),
            "round {round} (seed {seed}): recovery check failed: {first}"
        );
        // Kill after a random number of acknowledged events: sometimes at once, sometimes
        // across checkpoints.
        let kill_after = rng.below(3000);
        let mut events = 0u64;
        let mut killed = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            ledger.record(&line);
            events += 1;
            if events >= kill_after {
                child.kill().unwrap();
                killed = true;
                break;
            }
        }
        // What the child printed before it died was acknowledged too.
        for line in lines {
            match line {
                Ok(l) => ledger.record(&l),
                Err(_) => break,
            }
        }
        let status = child.wait().unwrap();
        assert!(
            killed || status.success(),
            "round {round} (seed {seed}): writer failed: {status}"
        );
        acked_total += events;
    }
    // A last clean open must see everything too.
    std::fs::write(&ledger_path, ledger.to_text()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(&data)
        .arg("0")
        .arg(&ledger_path)
        .arg("--verify-only")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("VERIFIED"),
        "final check failed (seed {seed}): {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        acked_total > rounds,
        "the writer acknowledged almost nothing"
    );
    eprintln!(
        "{rounds} rounds, {acked_total} acknowledged events, {} live keys",
        ledger.present()
    );
}
