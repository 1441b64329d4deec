//! The engine end to end on real files: typed puts, gets, deletes, conditions, Query-style
//! ranges with resume keys in both directions, reopening, and a property test against a
//! model across checkpoints and reopenings.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

mod common;
use common::run;

use std::collections::BTreeMap;

use keel_engine::error::StorageError;
use keel_engine::shard::{
    Condition, Decision, Engine, EngineError, EngineOptions, KeyRange, OldItem, PartitionId,
    SortCondition,
};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, KeyValue, Number, PrimaryKey, Value};
use proptest::prelude::*;

const P: PartitionId = PartitionId(1);

fn options(dir: &std::path::Path) -> EngineOptions {
    let mut o = EngineOptions::new(dir);
    o.cache_bytes = 1 << 20;
    o.wal_segment_bytes = 4 << 20;
    o
}

fn schema() -> KeySchema {
    KeySchema::with_sort_key(
        KeyAttribute::new("user", KeyType::S),
        KeyAttribute::new("ts", KeyType::N),
    )
}

fn item(user: &str, ts: i64, note: &str) -> Item {
    let mut i = Item::new();
    i.insert("user".into(), Value::S(user.into()));
    i.insert("ts".into(), Value::N(Number::from(ts)));
    i.insert("note".into(), Value::S(note.into()));
    i
}

fn key(user: &str, ts: i64) -> PrimaryKey {
    PrimaryKey {
        partition: KeyValue::S(user.into()),
        sort: Some(KeyValue::N(Number::from(ts))),
    }
}

fn ts_of(i: &Item) -> i64 {
    match i.get("ts") {
        Some(Value::N(n)) => n.to_string().parse().unwrap(),
        other => panic!("ts {other:?}"),
    }
}

#[test]
fn put_get_delete_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        assert!(matches!(
            e.create_partition(P, schema()).await,
            Err(EngineError::PartitionExists(1))
        ));
        assert_eq!(
            e.put(P, &item("ann", 1, "a"), &Condition::Absent)
                .await
                .unwrap(),
            None
        );
        // A second put-if-absent fails and changes nothing.
        assert!(matches!(
            e.put(P, &item("ann", 1, "b"), &Condition::Absent).await,
            Err(EngineError::ConditionFailed)
        ));
        assert_eq!(
            e.get(P, &key("ann", 1)).await.unwrap(),
            Some(item("ann", 1, "a"))
        );
        // Put on an expected attribute value returns the replaced item.
        let expect_a = Condition::AttributeEquals {
            name: "note".into(),
            value: Value::S("a".into()),
        };
        let old = e.put(P, &item("ann", 1, "c"), &expect_a).await.unwrap();
        assert_eq!(old, Some(item("ann", 1, "a")));
        assert!(matches!(
            e.delete(P, &key("ann", 1), &expect_a).await,
            Err(EngineError::ConditionFailed)
        ));
        let gone = e
            .delete(P, &key("ann", 1), &Condition::Exists)
            .await
            .unwrap();
        assert_eq!(gone, Some(item("ann", 1, "c")));
        assert_eq!(e.get(P, &key("ann", 1)).await.unwrap(), None);
        assert!(matches!(
            e.delete(P, &key("ann", 1), &Condition::Exists).await,
            Err(EngineError::ConditionFailed)
        ));
        // Invalid input is a validation error, not a write.
        let mut bad = item("ann", 2, "x");
        bad.remove("ts");
        assert!(matches!(
            e.put(P, &bad, &Condition::Always).await,
            Err(EngineError::Validation(_))
        ));
        let mut huge = item("ann", 3, "x");
        huge.insert("blob".into(), Value::B(vec![0; 400 * 1024]));
        assert!(matches!(
            e.put(P, &huge, &Condition::Always).await,
            Err(EngineError::Validation(_))
        ));
        assert!(matches!(
            e.get(PartitionId(9), &key("ann", 1)).await,
            Err(EngineError::UnknownPartition(9))
        ));
        // The longest keys DynamoDB allows fit; an encoding past the tree's key limit (keys
        // full of 0x00 bytes) is refused before it is logged, and the engine goes on.
        let ss = PartitionId(3);
        e.create_partition(
            ss,
            KeySchema::with_sort_key(
                KeyAttribute::new("k", KeyType::S),
                KeyAttribute::new("s", KeyType::S),
            ),
        )
        .await
        .unwrap();
        let long = |pk: String, sk: String| {
            let mut i = Item::new();
            i.insert("k".into(), Value::S(pk));
            i.insert("s".into(), Value::S(sk));
            i
        };
        let longest = long("a".repeat(2048), "b".repeat(1024));
        e.put(ss, &longest, &Condition::Always).await.unwrap();
        let nul = long("\0".repeat(2048), "\0".repeat(1024));
        assert!(matches!(
            e.put(ss, &nul, &Condition::Always).await,
            Err(EngineError::Storage(StorageError::KeyTooLarge { .. }))
        ));
        e.put(ss, &long("c".into(), "d".into()), &Condition::Always)
            .await
            .unwrap();
        // A large item (overflow pages) round-trips.
        let mut big = item("bob", 1, "big");
        big.insert(
            "blob".into(),
            Value::B((0..300_000).map(|i| i as u8).collect()),
        );
        e.put(P, &big, &Condition::Always).await.unwrap();
        assert_eq!(e.get(P, &key("bob", 1)).await.unwrap(), Some(big.clone()));
        e.close().await.unwrap();
        let e = Engine::open(options(&path)).await.unwrap();
        assert_eq!(e.get(P, &key("bob", 1)).await.unwrap(), Some(big));
        e.close().await.unwrap();
        // A declared partition whose tree file vanished is refused, not recreated empty.
        std::fs::remove_file(path.join("partitions").join(format!("{:016x}.tree", 3))).unwrap();
        assert!(matches!(
            Engine::open(options(&path)).await.map(|_| ()),
            Err(EngineError::MissingTree { .. })
        ));
    });
}

/// A read waits for the changes of its own key to be durable, not for other keys':
/// while a put of one key waits for its WAL batch, a get of another key answers at once
/// and a get of the same key waits, then sees the put.
#[test]
fn a_read_waits_only_for_its_own_keys_changes() {
    use futures_lite::future::poll_once;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        for ts in 0..2 {
            e.put(P, &item("ann", ts, "old"), &Condition::Always)
                .await
                .unwrap();
        }
        let (new, k0, k1) = (item("ann", 1, "new"), key("ann", 0), key("ann", 1));
        let mut put = Box::pin(e.put(P, &new, &Condition::Always));
        // The put is logged and applied, and waits for its batch: nothing else runs until
        // this task yields, so the WAL cannot have written it.
        assert!(poll_once(&mut put).await.is_none());
        let other = poll_once(Box::pin(e.get(P, &k0))).await;
        assert_eq!(other.map(Result::unwrap), Some(Some(item("ann", 0, "old"))));
        let mut same = Box::pin(e.get(P, &k1));
        assert!(poll_once(&mut same).await.is_none());
        assert_eq!(put.await.unwrap(), Some(item("ann", 1, "old")));
        assert_eq!(same.await.unwrap(), Some(item("ann", 1, "new")));
    });
}

#[test]
fn modify_reads_decides_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        // A counter incremented by concurrent read-modify-writes loses no increment.
        let bump = |e: Engine| async move {
            e.modify(P, &key("c", 1), |old| {
                let n = match old.and_then(|i| i.get("note")) {
                    Some(Value::S(s)) => s.parse::<u64>().unwrap(),
                    _ => 0,
                };
                Ok(Decision::Put(item("c", 1, &(n + 1).to_string())))
            })
            .await
            .unwrap()
        };
        let tasks: Vec<_> = (0..50)
            .map(|_| glommio::spawn_local(bump(e.clone())))
            .collect();
        for t in tasks {
            t.await;
        }
        assert_eq!(
            e.get(P, &key("c", 1)).await.unwrap(),
            Some(item("c", 1, "50"))
        );
        // A refusal writes nothing and comes back as the closure's error.
        let r = e
            .modify(P, &key("c", 1), |_| Err(EngineError::Refused("no".into())))
            .await;
        assert!(matches!(r, Err(EngineError::Refused(m)) if m == "no"));
        // Keep writes nothing and returns the stored item.
        let old = e.modify(P, &key("c", 1), |_| Ok(Decision::Keep)).await;
        assert_eq!(old.unwrap(), Some(item("c", 1, "50")));
        // A new item under another key is refused before anything is logged.
        let r = e
            .modify(P, &key("c", 1), |_| Ok(Decision::Put(item("c", 2, "x"))))
            .await;
        assert!(matches!(r, Err(EngineError::KeyChanged)));
        // An invalid item is refused too.
        let mut bad = item("c", 1, "x");
        bad.insert("empty".into(), Value::Ss(Default::default()));
        let r = e.modify(P, &key("c", 1), |_| Ok(Decision::Put(bad))).await;
        assert!(matches!(r, Err(EngineError::Validation(_))));
        // Delete removes and returns the old item.
        let old = e.modify(P, &key("c", 1), |_| Ok(Decision::Delete)).await;
        assert_eq!(old.unwrap(), Some(item("c", 1, "50")));
        assert_eq!(e.get(P, &key("c", 1)).await.unwrap(), None);
        e.close().await.unwrap();
        // What modify wrote survives a reopen (replayed or checkpointed).
        let e = Engine::open(options(&path)).await.unwrap();
        assert_eq!(e.get(P, &key("c", 1)).await.unwrap(), None);
        e.close().await.unwrap();
    });
}

#[test]
fn blind_writes_skip_the_old_item_but_not_its_existence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        let put = |note: &'static str, c: Condition| {
            let e = e.clone();
            async move { e.put_with(P, &item("b", 1, note), &c, OldItem::Skip).await }
        };
        // A blind put writes and returns nothing, replacing or not.
        assert_eq!(put("one", Condition::Always).await.unwrap(), None);
        assert_eq!(put("two", Condition::Always).await.unwrap(), None);
        assert_eq!(
            e.get(P, &key("b", 1)).await.unwrap(),
            Some(item("b", 1, "two"))
        );
        // A condition still sees the stored item, though the answer leaves it out.
        let r = put("three", Condition::Absent).await;
        assert!(matches!(r, Err(EngineError::ConditionFailed)), "{r:?}");
        let equals = |v: &str| Condition::AttributeEquals {
            name: "note".into(),
            value: Value::S(v.into()),
        };
        assert_eq!(put("three", equals("two")).await.unwrap(), None);
        assert!(matches!(
            put("four", equals("two")).await,
            Err(EngineError::ConditionFailed)
        ));
        // A blind delete removes what exists, and logs nothing when nothing does.
        let delete = || {
            let e = e.clone();
            async move {
                e.modify_with(P, &key("b", 1), OldItem::Skip, |old| {
                    assert_eq!(old, None, "a skipped old item is not shown");
                    Ok(Decision::Delete)
                })
                .await
            }
        };
        assert_eq!(delete().await.unwrap(), None);
        assert_eq!(e.get(P, &key("b", 1)).await.unwrap(), None);
        let logged = e.wal_stats().records;
        assert_eq!(delete().await.unwrap(), None);
        assert_eq!(
            e.wal_stats().records,
            logged,
            "a delete of nothing logs nothing"
        );
        e.close().await.unwrap();
        let e = Engine::open(options(&path)).await.unwrap();
        assert_eq!(e.get(P, &key("b", 1)).await.unwrap(), None);
        e.close().await.unwrap();
    });
}

#[test]
fn set_attributes_logs_only_what_it_sets_and_replays_onto_the_stored_item() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        let mut sets = Item::new();
        sets.insert("note".into(), Value::S("set".into()));
        sets.insert("added".into(), Value::B(vec![7; 10]));
        // Nothing stored: nothing written, and the caller takes the general path.
        let logged = e.wal_stats().records;
        assert!(!e.set_attributes(P, &key("c", 1), &sets).await.unwrap());
        assert_eq!(e.wal_stats().records, logged, "nothing logged");
        let mut big = item("c", 1, "stored");
        big.insert("pad".into(), Value::B(vec![1; 4000]));
        let before_put = e.wal_stats().bytes;
        e.put(P, &big, &Condition::Always).await.unwrap();
        let bytes_before = e.wal_stats().bytes;
        let put_bytes = bytes_before - before_put;
        assert!(e.set_attributes(P, &key("c", 1), &sets).await.unwrap());
        let mut want = big.clone();
        want.extend(sets.clone());
        assert_eq!(e.get(P, &key("c", 1)).await.unwrap(), Some(want.clone()));
        // A record of the attributes set, not of the 4 KB item they went into: the batch
        // takes one 4 KiB block where the put's took two.
        let set_bytes = e.wal_stats().bytes - bytes_before;
        assert!(
            set_bytes < put_bytes,
            "set {set_bytes} bytes, put {put_bytes}"
        );
        // Replay: dropped without a checkpoint, the set is applied again onto the put.
        drop(e);
        let e = Engine::open(options(&path)).await.unwrap();
        assert_eq!(e.stats().replayed, 2);
        assert_eq!(e.get(P, &key("c", 1)).await.unwrap(), Some(want.clone()));
        // Replay onto a checkpointed item.
        e.checkpoint().await.unwrap();
        sets.insert("note".into(), Value::S("again".into()));
        assert!(e.set_attributes(P, &key("c", 1), &sets).await.unwrap());
        drop(e);
        let e = Engine::open(options(&path)).await.unwrap();
        assert_eq!(e.stats().replayed, 1);
        want.extend(sets);
        assert_eq!(e.get(P, &key("c", 1)).await.unwrap(), Some(want));
        e.close().await.unwrap();
    });
}

#[test]
fn dropped_partition_is_gone_and_its_log_records_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let first = path.clone();
    run(async move {
        let path = first;
        let q = PartitionId(2);
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        e.create_partition(q, schema()).await.unwrap();
        for ts in 0..200 {
            e.put(P, &item("a", ts, "keep"), &Condition::Always)
                .await
                .unwrap();
            e.put(q, &item("a", ts, "drop"), &Condition::Always)
                .await
                .unwrap();
        }
        // Concurrent readers of the dropped partition see it vanish, never a panic.
        let reader = {
            let e = e.clone();
            glommio::spawn_local(async move {
                for ts in 0..100_000 {
                    match e.get(q, &key("a", ts % 200)).await {
                        Ok(_) => {}
                        Err(EngineError::UnknownPartition(2)) => return true,
                        Err(other) => panic!("{other}"),
                    }
                    futures_lite::future::yield_now().await;
                }
                false
            })
        };
        futures_lite::future::yield_now().await;
        e.drop_partition(q).await.unwrap();
        assert!(reader.await, "the reader saw the partition vanish");
        assert!(matches!(
            e.get(q, &key("a", 1)).await,
            Err(EngineError::UnknownPartition(2))
        ));
        assert!(matches!(
            e.put(q, &item("a", 1, "x"), &Condition::Always).await,
            Err(EngineError::UnknownPartition(2))
        ));
        // Its id is not reused while the log may hold its records.
        assert!(matches!(
            e.create_partition(q, schema()).await,
            Err(EngineError::PartitionExists(2))
        ));
        assert_eq!(e.partitions().len(), 1);
        // No close: the reopen replays a log that still names the dropped partition.
        drop(e);
    });
    let tombstone = path.join("partitions").join(format!("{:016x}.dropped", 2));
    assert!(tombstone.exists());
    assert!(!path
        .join("partitions")
        .join(format!("{:016x}.tree", 2))
        .exists());
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        assert_eq!(e.partitions().len(), 1);
        assert_eq!(
            e.get(P, &key("a", 199)).await.unwrap(),
            Some(item("a", 199, "keep"))
        );
        assert!(matches!(
            e.get(PartitionId(2), &key("a", 1)).await,
            Err(EngineError::UnknownPartition(2))
        ));
        e.close().await.unwrap();
    });
}

#[test]
fn a_drop_interrupted_after_its_tombstone_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let parts = path.join("partitions");
    let saved = tempfile::tempdir().unwrap();
    let saved_path = saved.path().to_owned();
    run({
        let path = path.clone();
        let parts = parts.clone();
        async move {
            let e = Engine::open(options(&path)).await.unwrap();
            e.create_partition(P, schema()).await.unwrap();
            e.put(P, &item("a", 1, "x"), &Condition::Always)
                .await
                .unwrap();
            // Keep copies of the declaration and tree, as a crash right after the
            // tombstone was written would have left them.
            for ext in ["part", "tree"] {
                let name = format!("{:016x}.{ext}", 1);
                std::fs::copy(parts.join(&name), saved_path.join(&name)).unwrap();
            }
            e.drop_partition(P).await.unwrap();
            drop(e);
        }
    });
    for ext in ["part", "tree"] {
        let name = format!("{:016x}.{ext}", 1);
        std::fs::copy(saved.path().join(&name), parts.join(&name)).unwrap();
    }
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        assert!(e.partitions().is_empty());
        assert!(!parts.join(format!("{:016x}.part", 1)).exists());
        assert!(!parts.join(format!("{:016x}.tree", 1)).exists());
        e.close().await.unwrap();
    });
}

#[test]
fn query_ranges_pages_and_directions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(async move {
        let e = Engine::open(options(&path)).await.unwrap();
        e.create_partition(P, schema()).await.unwrap();
        for user in ["ann", "bob", "cy"] {
            for ts in -50..150 {
                e.put(P, &item(user, ts, "n"), &Condition::Always)
                    .await
                    .unwrap();
            }
        }
        let n = |v: i64| KeyValue::N(Number::from(v));
        let pk = KeyValue::S("bob".into());
        let cases: Vec<(SortCondition, Vec<i64>)> = vec![
            (SortCondition::Any, (-50..150).collect()),
            (SortCondition::Eq(n(7)), vec![7]),
            (SortCondition::Lt(n(-45)), (-50..-45).collect()),
            (SortCondition::Le(n(-45)), (-50..=-45).collect()),
            (SortCondition::Gt(n(145)), (146..150).collect()),
            (SortCondition::Ge(n(145)), (145..150).collect()),
            (SortCondition::Between(n(-3), n(12)), (-3..=12).collect()),
        ];
        for (cond, want) in cases {
            let range = KeyRange::query(&pk, &cond).unwrap();
            for reverse in [false, true] {
                // Pages of 7 with resume keys reassemble the whole answer.
                let mut got = Vec::new();
                let mut resume: Option<Vec<u8>> = None;
                loop {
                    let page = e
                        .scan(P, &range, reverse, 7, resume.as_deref())
                        .await
                        .unwrap();
                    assert!(page.items.len() <= 7);
                    got.extend(page.items.iter().map(ts_of));
                    assert!(page
                        .items
                        .iter()
                        .all(|i| i.get("user") == Some(&Value::S("bob".into()))));
                    match page.resume {
                        Some(r) => resume = Some(r),
                        None => break,
                    }
                }
                let mut w = want.clone();
                if reverse {
                    w.reverse();
                }
                assert_eq!(got, w, "{cond:?} reverse={reverse}");
            }
        }
        // begins_with on a string sort key.
        let e2 = PartitionId(2);
        e.create_partition(
            e2,
            KeySchema::with_sort_key(
                KeyAttribute::new("k", KeyType::S),
                KeyAttribute::new("s", KeyType::S),
            ),
        )
        .await
        .unwrap();
        for s in ["a", "ab", "abc", "abd", "ac", "b"] {
            let mut i = Item::new();
            i.insert("k".into(), Value::S("x".into()));
            i.insert("s".into(), Value::S(s.into()));
            e.put(e2, &i, &Condition::Always).await.unwrap();
        }
        let range = KeyRange::query(
            &KeyValue::S("x".into()),
            &SortCondition::BeginsWith(KeyValue::S("ab".into())),
        )
        .unwrap();
        let page = e.scan(e2, &range, false, 100, None).await.unwrap();
        let got: Vec<_> = page.items.iter().map(|i| i["s"].clone()).collect();
        let want: Vec<_> = ["ab", "abc", "abd"]
            .iter()
            .map(|s| Value::S((*s).into()))
            .collect();
        assert_eq!(got, want);
        e.close().await.unwrap();
    });
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16, u16),
    Delete(u8, u16),
    Set(u8, u16, u16),
    Checkpoint,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 0u16..300, 0u16..3000).prop_map(|(u, t, n)| Op::Put(u, t, n)),
        3 => (0u8..4, 0u16..300).prop_map(|(u, t)| Op::Delete(u, t)),
        3 => (0u8..4, 0u16..300, 0u16..300).prop_map(|(u, t, n)| Op::Set(u, t, n)),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn engine_agrees_with_model_across_checkpoints_and_reopens(
        ops in prop::collection::vec(op(), 1..400)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        run(async move {
            let mut e = Engine::open(options(&path)).await.unwrap();
            e.create_partition(P, schema()).await.unwrap();
            let mut model: BTreeMap<(String, i64), Item> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(u, t, n) => {
                        let user = format!("u{u}");
                        let mut it = item(&user, i64::from(t), "x");
                        it.insert("pad".into(), Value::B(vec![u; usize::from(n)]));
                        e.put(P, &it, &Condition::Always).await.unwrap();
                        model.insert((user, i64::from(t)), it);
                    }
                    Op::Delete(u, t) => {
                        let user = format!("u{u}");
                        let got = e.delete(P, &key(&user, i64::from(t)), &Condition::Always)
                            .await
                            .unwrap();
                        assert_eq!(got, model.remove(&(user, i64::from(t))));
                    }
                    Op::Set(u, t, n) => {
                        let user = format!("u{u}");
                        let mut sets = Item::new();
                        sets.insert("note".into(), Value::S(format!("n{n}")));
                        sets.insert(format!("a{}", n % 3), Value::B(vec![u; usize::from(n)]));
                        let done = e.set_attributes(P, &key(&user, i64::from(t)), &sets)
                            .await
                            .unwrap();
                        let stored = model.get_mut(&(user, i64::from(t)));
                        assert_eq!(done, stored.is_some());
                        if let Some(it) = stored {
                            it.extend(sets);
                        }
                    }
                    Op::Checkpoint => e.checkpoint().await.unwrap(),
                    Op::Reopen => {
                        // Drop without closing: recovery replays the WAL after the
                        // trees' last checkpoints.
                        drop(e);
                        e = Engine::open(options(&path)).await.unwrap();
                    }
                }
            }
            for u in 0..4u8 {
                let user = format!("u{u}");
                let pk = KeyValue::S(user.clone());
                let range = KeyRange::query(&pk, &SortCondition::Any).unwrap();
                let page = e.scan(P, &range, false, 1000, None).await.unwrap();
                let want: Vec<Item> = model
                    .range((user.clone(), i64::MIN)..=(user.clone(), i64::MAX))
                    .map(|(_, v)| v.clone())
                    .collect();
                assert_eq!(page.items, want);
            }
            assert_eq!(e.check(P).await.unwrap(), model.len() as u64);
            e.close().await.unwrap();
        });
    }
}
