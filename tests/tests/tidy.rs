//! Tidy: house rules that a compiler does not check (TigerBeetle's tidy.zig).
//! - Pure modules (cores) use no glommio, no wall clock and no unseeded randomness.
//! - No line over 100 columns; no `dbg!` or `todo!` anywhere.

use std::path::{Path, PathBuf};

/// The pure cores: they must stay free of I/O runtimes, clocks and ambient randomness.
const PURE: &[&str] = &[
    "engine/src/btree/page.rs",
    "engine/src/btree/superblock.rs",
    "engine/src/btree/tree.rs",
    "engine/src/page_cache/mod.rs",
    "engine/src/shard/mutation.rs",
    "engine/src/shard/condition.rs",
    "engine/src/shard/range.rs",
    "engine/src/shard/partition_meta.rs",
    "engine/src/wal/record.rs",
    "engine/src/wal/segment.rs",
    "engine/src/wal/batch.rs",
    "engine/src/wal/recovery.rs",
    "engine/src/fuzz.rs",
    "engine/src/fuzz",
    "net/src/model",
    "net/src/fuzz_input.rs",
    "net/src/codec",
    "net/src/client/route.rs",
    "net/src/client/typed.rs",
    "consensus/src",
    "bench/src/prng.rs",
    "bench/src/workload",
    "bench/src/histogram",
    "bench/src/report",
    "bench/src/target/resp.rs",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn pure_cores_use_no_runtime_clock_or_ambient_randomness() {
    let mut files = Vec::new();
    for p in PURE {
        rust_files(&root().join(p), &mut files);
    }
    assert!(
        files.len() > 12,
        "tidy found only {} pure files",
        files.len()
    );
    let banned = [
        "glommio",
        "Instant::now",
        "SystemTime::now",
        "thread_rng",
        "rand::random",
    ];
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for b in banned {
                if line.contains(b) {
                    bad.push(format!("{}:{}: {b}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "pure modules touch I/O, clocks or randomness:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_long_lines_no_dbg_no_todo() {
    let mut files = Vec::new();
    for d in ["engine", "net", "consensus", "bench", "tools", "tests"] {
        rust_files(&root().join(d), &mut files);
    }
    let mut bad = Vec::new();
    // Built so that this file does not match itself.
    let dbg = format!("{}!(", "dbg");
    let todo = format!("{}!(", "todo");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if line.chars().count() > 100 {
                bad.push(format!("{}:{}: over 100 columns", f.display(), n + 1));
            }
            if line.contains(&dbg) || line.contains(&todo) {
                bad.push(format!("{}:{}: dbg!/todo!", f.display(), n + 1));
            }
        }
    }
    assert!(bad.is_empty(), "tidy:\n{}", bad.join("\n"));
}
