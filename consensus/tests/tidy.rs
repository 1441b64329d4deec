//! Tidy (TigerBeetle's tidy.zig): the crate's sources stay within the house rules.
//!
//! - No glommio, async, clock or OS randomness in the crate at all: keel-consensus is
//!   pure; only tests may read a clock (to print CPU time, never to assert on it).
//! - No line over 100 columns; no `dbg!` or `todo!` anywhere.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn sources_are_tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let core_files = files.len();
    sources(&root.join("tests"), &mut files);
    assert!(core_files > 10, "found the sources");
    // Spelled in pieces so that this file does not trip itself.
    let banned_in_core = [
        ["glom", "mio"].concat(),
        ["Instant", "::now"].concat(),
        ["System", "Time"].concat(),
        ["thread", "_rng"].concat(),
        ["async ", "fn"].concat(),
        ["std::", "net"].concat(),
        ["std::", "fs"].concat(),
        ["std::", "thread"].concat(),
    ];
    let banned_everywhere = [["db", "g!("].concat(), ["to", "do!("].concat()];
    let mut problems = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            if line.chars().count() > 100 {
                problems.push(format!("{name}:{}: longer than 100 columns", n + 1));
            }
            for banned in &banned_everywhere {
                if line.contains(banned.as_str()) {
                    problems.push(format!("{name}:{}: {banned}", n + 1));
                }
            }
            if i < core_files {
                for banned in &banned_in_core {
                    if line.contains(banned.as_str()) {
                        problems.push(format!("{name}:{}: {banned} in a pure module", n + 1));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}
