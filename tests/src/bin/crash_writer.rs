//! The child process of the SIGKILL crash test.
//!
//! `crash_writer DIR SEED LEDGER`: opens the engine in DIR, checks that it holds exactly
//! what LEDGER (the acknowledged writes of earlier rounds) says, prints `VERIFIED <n>`,
//! then writes until it is killed (or, bounded, after 200 000 operations or 60 s),
//! printing `P`/`I`/`D`/`T`/`M` lines (see `keel_tests::crash`) as writes are issued and
//! acknowledged. `crash_writer DIR SEED LEDGER --verify-only` stops after the check.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keel_engine::shard::{Condition, Engine, EngineOptions, KeyRange, PartitionId};
use keel_net::{KeyAttribute, KeySchema, KeyType, KeyValue, PrimaryKey};
use keel_tests::crash::{item_for, mark_for, marked_item_for, Expect, Ledger, Mark};
use keel_tests::Prng;

const PARTITION: PartitionId = PartitionId(1);
const WRITERS: u64 = 32;
const OPS_MAX: u64 = 200_000;
const RUN_MAX: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, seed, ledger_path, rest @ ..] = args.as_slice() else {
        bail!("usage: crash_writer DIR SEED LEDGER [--verify-only]");
    };
    let seed: u64 = seed.parse().context("SEED")?;
    let verify_only = rest.iter().any(|a| a == "--verify-only");
    let text = std::fs::read_to_string(ledger_path).unwrap_or_default();
    let mut ledger = Ledger::default();
    text.lines().for_each(|l| ledger.record(l));
    let dir = std::path::PathBuf::from(dir);
    keel_tests::run_on_executor("crash-writer", 4 << 20, async move {
        run(dir, seed, ledger, verify_only).await
    })?
}

fn key_of(id: &str) -> PrimaryKey {
    PrimaryKey {
        partition: KeyValue::S(id.to_owned()),
        sort: None,
    }
}

async fn run(
    dir: std::path::PathBuf,
    seed: u64,
    ledger: Ledger,
    verify_only: bool,
) -> anyhow::Result<()> {
    let mut options = EngineOptions::new(&dir);
    // Small budgets so that a short run crosses checkpoints, segment rotations and
    // page-cache eviction: the kill lands in each of them.
    options.cache_bytes = 1 << 20;
    options.wal_segment_bytes = 4 << 20;
    options.checkpoint_wal_bytes = 2 << 20;
    // Every other round makes new WAL segments by allocating them only, so that kills
    // also land in segments whose blocks were never written before.
    options.wal_prewrite_spares = seed % 2 == 0;
    let engine = Engine::open(options).await.context("open")?;
    if engine.partitions().is_empty() {
        let schema = KeySchema::partition_only(KeyAttribute::new("id", KeyType::S));
        engine.create_partition(PARTITION, schema).await?;
    }
    verify(&engine, &ledger).await?;
    println!("VERIFIED {}", ledger.present());
    std::io::stdout().flush()?;
    if verify_only {
        engine.close().await?;
        return Ok(());
    }
    engine.spawn_checkpointer(None);
    let out = Rc::new(RefCell::new(std::io::stdout()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let engine = engine.clone();
        let out = out.clone();
        let mut rng = Prng::new(seed.wrapping_mul(1000) + w);
        tasks.push(glommio::spawn_local(async move {
            // Keys this writer put and has not deleted, and whether it marked them.
            let mut mine: Vec<(String, bool)> = Vec::new();
            for n in 0..OPS_MAX / WRITERS {
                if started.elapsed() > RUN_MAX {
                    break;
                }
                let roll = rng.below(8);
                let pick = (!mine.is_empty()).then(|| rng.below(mine.len() as u64) as usize);
                match pick {
                    Some(i) if roll < 2 => {
                        let (k, _) = mine.swap_remove(i);
                        emit(&out, "I", &k);
                        engine
                            .delete(PARTITION, &key_of(&k), &Condition::Exists)
                            .await?;
                        emit(&out, "D", &k);
                    }
                    Some(i) if roll < 4 && !mine[i].1 => {
                        let k = mine[i].0.clone();
                        emit(&out, "T", &k);
                        let set = engine
                            .set_attributes(PARTITION, &key_of(&k), &mark_for(&k))
                            .await?;
                        if !set {
                            bail!("set of {k}: the item is not there");
                        }
                        emit(&out, "M", &k);
                        mine[i].1 = true;
                    }
                    _ => {
                        let k = format!("s{seed}-w{w}-{n}");
                        engine
                            .put(PARTITION, &item_for(&k), &Condition::Absent)
                            .await?;
                        emit(&out, "P", &k);
                        mine.push((k, false));
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    engine.close().await?;
    Ok(())
}

fn emit(out: &RefCell<std::io::Stdout>, tag: &str, key: &str) {
    let mut o = out.borrow_mut();
    // A failed print means the parent is gone: stop at once.
    if writeln!(o, "{tag} {key}").and_then(|_| o.flush()).is_err() {
        std::process::exit(3);
    }
}

async fn verify(engine: &Engine, ledger: &Ledger) -> anyhow::Result<()> {
    // One ordered pass over everything stored: every item is whole (its value matches
    // its key, marked or not), acknowledged or not.
    let mut stored: HashMap<String, bool> = HashMap::new();
    let mut resume: Option<Vec<u8>> = None;
    loop {
        let page = engine
            .scan(PARTITION, &KeyRange::all(), false, 1000, resume.as_deref())
            .await?;
        for item in &page.items {
            let Some(keel_net::Value::S(id)) = item.get("id") else {
                bail!("stored item without its key: {item:?}");
            };
            let marked = *item == marked_item_for(id);
            if !marked && *item != item_for(id) {
                bail!("stored item {id} is corrupt");
            }
            stored.insert(id.clone(), marked);
        }
        match page.resume {
            Some(r) => resume = Some(r),
            None => break,
        }
    }
    // Every acknowledged put and set is there, every acknowledged delete is not, and no
    // item carries a mark that was never set.
    for (key, expect, mark) in ledger.keys() {
        match (expect, stored.get(key)) {
            (Expect::Present, None) => bail!("acknowledged put of {key} is lost"),
            (Expect::Absent, Some(_)) => bail!("acknowledged delete of {key} is undone"),
            (_, Some(false)) if mark == Mark::Yes => bail!("acknowledged set of {key} is lost"),
            (_, Some(true)) if mark == Mark::No => bail!("{key} is marked, never set"),
            _ => {}
        }
    }
    // Point reads agree with the scan, on a sample of keys.
    for (key, _, _) in ledger.keys().take(200) {
        let got = engine.get(PARTITION, &key_of(key)).await?;
        if got.map(|i| i == marked_item_for(key)) != stored.get(key).copied() {
            bail!("get and scan disagree on {key}");
        }
    }
    let checked = engine.check(PARTITION).await?;
    if checked != stored.len() as u64 {
        bail!("tree holds {checked} entries, scan saw {}", stored.len());
    }
    Ok(())
}
