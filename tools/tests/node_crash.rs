//! SIGKILL during a write load: after a restart, every acknowledged write is there.
//!
//! Writers put unique keys and bump a counter per writer with UpdateItem ADD; each notes
//! what the node acknowledged. The node is killed with SIGKILL at a seeded, random point
//! of the load, restarted on the same data directory, and checked: every acknowledged
//! put is present with its value, and each counter holds at least its acknowledged
//! increments and at most one more per kill (the one in flight at each kill).
//! `KEEL_NODE_CRASH_ROUNDS` (default 3) and `KEEL_NODE_CRASH_SEED` (default 1) set the run.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{item, n, s, Node};
use keel_net::codec::UpdateItem;
use keel_net::codec::{CreateTable, ExprArgs, GetItem, PutItem, Request, Response, ReturnValues};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, Value};
use keel_tests::Prng;

const WRITERS: u64 = 8;

#[derive(Default)]
struct Acked {
    puts: Vec<String>,
}

fn value_of(key: &str) -> Value {
    Value::S(format!("value of {key}"))
}

fn get(c: &keel_net::client::Client, id: &str) -> Option<Item> {
    match c
        .call(Request::GetItem(GetItem {
            table: "crash".into(),
            key: item(&[("id", s(id))]),
            projection: None,
            args: ExprArgs::default(),
            consistent: true,
        }))
        .unwrap()
    {
        Response::Item(i) => i,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let rounds: u64 = std::env::var("KEEL_NODE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("KEEL_NODE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut prng = Prng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut counters_acked = vec![0u64; WRITERS as usize];
    {
        let node = Node::start(dir.path(), 2);
        let r = node
            .client()
            .call(Request::CreateTable(CreateTable {
                table: "crash".into(),
                schema: KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
                partitions: Some(8),
            }))
            .unwrap();
        assert!(matches!(r, Response::Table(_)), "{r:?}");
        node.stop();
    }
    for round in 0..rounds {
        let node = Node::start(dir.path(), 2);
        // Check everything acknowledged so far (in earlier rounds).
        {
            let c = node.client();
            let a = acked.lock().unwrap();
            for key in &a.puts {
                let got = get(&c, key).unwrap_or_else(|| panic!("round {round}: lost {key}"));
                assert_eq!(got.get("v"), Some(&value_of(key)), "{key}");
            }
            for (w, want) in counters_acked.iter().enumerate() {
                let got = get(&c, &format!("counter-{w}"))
                    .and_then(|i| i.get("hits").cloned())
                    .map_or(0, |v| match v {
                        Value::N(x) => x.to_string().parse::<u64>().unwrap(),
                        other => panic!("{other:?}"),
                    });
                // Each earlier kill may have cut off one increment after it was applied.
                assert!(
                    got >= *want && got <= *want + round,
                    "round {round}: counter-{w} holds {got}, {want} increments acknowledged"
                );
            }
        }
        // Load, and kill at a random point.
        let kill_after = 200 + prng.below(2000);
        let acks = Arc::new(AtomicU64::new(0));
        let (reached_tx, reached_rx) = std::sync::mpsc::channel::<()>();
        let mut handles = Vec::new();
        for w in 0..WRITERS {
            let c = node.client();
            let acked = acked.clone();
            let acks = acks.clone();
            let reached = reached_tx.clone();
            handles.push(std::thread::spawn(move || {
                let mut bumps = 0u64;
                for i in 0..1_000_000u64 {
                    let key = format!("r{round}-w{w}-{i}");
                    let put = Request::PutItem(PutItem {
                        table: "crash".into(),
                        item: item(&[("id", s(&key)), ("v", value_of(&key))]),
                        condition: None,
                        args: ExprArgs::default(),
                        return_values: ReturnValues::None,
                    });
                    match c.call(put) {
                        Ok(Response::Item(_)) => acked.lock().unwrap().puts.push(key),
                        _ => break,
                    }
                    let bump = Request::UpdateItem(UpdateItem {
                        table: "crash".into(),
                        key: item(&[("id", s(&format!("counter-{w}")))]),
                        update: "ADD hits :one".into(),
                        condition: None,
                        args: ExprArgs {
                            names: Default::default(),
                            values: [(":one".to_owned(), n(1))].into(),
                        },
                        return_values: ReturnValues::None,
                    });
                    match c.call(bump) {
                        Ok(Response::Item(_)) => bumps += 1,
                        _ => break,
                    }
                    let before = acks.fetch_add(2, Ordering::Relaxed);
                    if before < kill_after && before + 2 >= kill_after {
                        let _ = reached.send(());
                    }
                }
                bumps
            }));
        }
        // Wait (bounded) for the chosen number of acknowledgements, then kill.
        drop(reached_tx);
        reached_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the load reached the kill point");
        node.kill();
        for (w, h) in handles.into_iter().enumerate() {
            counters_acked[w] += h.join().unwrap();
        }
        let a = acked.lock().unwrap();
        eprintln!(
            "round {round}: killed after {kill_after}+ acks; {} puts acked",
            a.puts.len()
        );
    }
    // The last check.
    let node = Node::start(dir.path(), 2);
    let c = node.client();
    let a = acked.lock().unwrap();
    for key in &a.puts {
        assert!(get(&c, key).is_some(), "lost {key}");
    }
    node.stop();
}
