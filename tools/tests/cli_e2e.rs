//! The `keel` CLI against a real node process: every command as a user types it, human
//! and `--json` output, and clear errors with non-zero exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

mod common;

use std::process::{Command, Output};

use common::Node;
use serde_json::Value as Json;

fn keel(node: &Node, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("--endpoint")
        .arg(node.addr.to_string())
        .args(args)
        .output()
        .expect("run keel")
}

fn ok(node: &Node, args: &[&str]) -> String {
    let out = keel(node, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "keel {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn json(node: &Node, args: &[&str]) -> Json {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(node, &all)).unwrap()
}

fn fails(node: &Node, args: &[&str], code: i32, message: &str) {
    let out = keel(node, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "keel {args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "keel {args:?}: {stderr:?} lacks {message:?}"
    );
}

#[test]
fn the_cli_tour_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);

    // The forms the issue names, exactly.
    let out = ok(&node, &["create-table", "users", "--partition-key", "id:S"]);
    assert!(out.contains("ACTIVE"), "{out}");
    ok(&node, &["put", "users", r#"{"id":"u1","n":1}"#]);
    let got = json(&node, &["get", "users", r#"{"id":"u1"}"#]);
    assert_eq!(got["Item"]["id"]["S"], "u1");
    assert_eq!(got["Item"]["n"]["N"], "1");
    // Human output is the plain item.
    let human = ok(&node, &["get", "users", r#"{"id":"u1"}"#]);
    let plain: Json = serde_json::from_str(&human).unwrap();
    assert_eq!(plain["n"], 1);
    assert_eq!(
        ok(&node, &["get", "users", r#"{"id":"zz"}"#]).trim(),
        "(no item)"
    );

    // A table with a sort key, the typed form, query and scan.
    ok(
        &node,
        &[
            "create-table",
            "events",
            "--partition-key",
            "id:S",
            "--sort-key",
            "ts:N",
        ],
    );
    for ts in 1..=5 {
        let item = format!(r#"{{"id":{{"S":"u1"}},"ts":{{"N":"{ts}"}},"tags":{{"SS":["a"]}}}}"#);
        ok(&node, &["put", "events", &item]);
    }
    let q = json(
        &node,
        &[
            "query",
            "events",
            "id = :id AND ts BETWEEN :a AND :b",
            "--values",
            r#"{":id":"u1",":a":2,":b":4}"#,
            "--reverse",
        ],
    );
    let ts: Vec<&str> = q["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ts"]["N"].as_str().unwrap())
        .collect();
    assert_eq!(ts, vec!["4", "3", "2"]);
    let paged = ok(
        &node,
        &[
            "query",
            "events",
            "id = :id",
            "--values",
            r#"{":id":"u1"}"#,
            "--limit",
            "2",
        ],
    );
    assert!(paged.contains("more after"), "{paged}");
    let all = json(
        &node,
        &[
            "query",
            "events",
            "id = :id",
            "--values",
            r#"{":id":"u1"}"#,
            "--limit",
            "2",
            "--all",
        ],
    );
    assert_eq!(all["Count"], 5);
    let scan = json(&node, &["scan", "events", "--all", "--limit", "3"]);
    assert_eq!(scan["Count"], 5);
    let seg = json(
        &node,
        &["scan", "events", "--segment", "1", "--total-segments", "2"],
    );
    assert!(seg["Count"].as_u64().unwrap() <= 5);

    // Update with return values, a counter, and a condition that fails.
    let up = json(
        &node,
        &[
            "update",
            "users",
            r#"{"id":"u1"}"#,
            "SET n = n + :one",
            "--values",
            r#"{":one":1}"#,
        ],
    );
    assert_eq!(up["Attributes"]["n"]["N"], "2");
    fails(
        &node,
        &[
            "put",
            "users",
            r#"{"id":"u1"}"#,
            "--condition",
            "attribute_not_exists(id)",
        ],
        1,
        "ConditionalCheckFailed",
    );
    let old = json(
        &node,
        &["delete", "users", r#"{"id":"u1"}"#, "--return-old"],
    );
    assert_eq!(old["Attributes"]["n"]["N"], "2");

    // Tables.
    let list = json(&node, &["list-tables"]);
    assert_eq!(list["TableNames"], serde_json::json!(["events", "users"]));
    let d = json(&node, &["describe-table", "events"]);
    assert_eq!(d["key_schema"][1]["name"], "ts");
    ok(&node, &["delete-table", "users"]);
    fails(
        &node,
        &["get", "users", r#"{"id":"u1"}"#],
        1,
        "ResourceNotFound",
    );

    // Bad input: clear messages and distinct exit codes.
    fails(&node, &["put", "events", "{not json"], 2, "invalid JSON");
    fails(
        &node,
        &["create-table", "t_x", "--partition-key", "id:Q"],
        2,
        "not S, N or B",
    );
    fails(&node, &["query", "events", "id = "], 1, "syntax error");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--endpoint", "127.0.0.1:1", "list-tables"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    node.stop();
}

#[test]
fn node_bench_drives_a_node_from_two_generator_threads() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    // A short run of 4 clients over 2 threads, with `extra` flags.
    let bench = |extra: &[&str]| {
        let mut args = vec!["node-bench", "--op", "get", "--items", "200"];
        args.extend(["--connections", "4", "--in-flight", "2", "--threads", "2"]);
        args.extend(["--warmup", "0", "--seconds", "1"]);
        args.extend(extra);
        ok(&node, &args)
    };
    let out = bench(&[]);
    assert!(out.contains("loaded 200 items"), "{out}");
    let line = out.lines().last().unwrap();
    assert!(line.contains("(2 generator threads)"), "{line}");
    assert!(line.ends_with("errors 0"), "{line}");
    let rate: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line}"));
    assert!(rate > 0.0, "{line}");
    // Each thread asking only for the keys of the shard on its CPU.
    let out = bench(&["--local-keys"]);
    let line = out.lines().last().unwrap();
    assert!(line.contains("(2 generator threads, local keys)"), "{line}");
    assert!(line.ends_with("errors 0"), "{line}");
    // A thread count the clients cannot be shared over is refused.
    fails(
        &node,
        &["node-bench", "--connections", "1", "--threads", "2"],
        1,
        "--threads",
    );
    node.stop();
}
