//! A real node process on 127.0.0.1, driven through the native client: tables, every
//! item operation, expressions, Query and Scan pagination, batches, shard-aware and
//! forwarded routing, a clean restart.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

mod common;

use std::collections::BTreeSet;

use common::{call, error_code, item, n, s, Node};
use keel_net::client::Client;
use keel_net::codec::{
    BatchGetItem, BatchWriteItem, CreateTable, DeleteItem, ErrorCode, ExprArgs, GetItem, ItemPage,
    PutItem, Query, Request, Response, ReturnValues, Scan, TableKeys, TableWrites, UpdateItem,
    WriteRequest,
};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, Value};

fn create(c: &Client, table: &str, sort: bool, partitions: Option<u32>) -> Response {
    let pk = KeyAttribute::new("id", KeyType::S);
    let schema = if sort {
        KeySchema::with_sort_key(pk, KeyAttribute::new("ts", KeyType::N))
    } else {
        KeySchema::partition_only(pk)
    };
    call(
        c,
        Request::CreateTable(CreateTable {
            table: table.into(),
            schema,
            partitions,
        }),
    )
}

fn put(c: &Client, table: &str, i: Item) -> Response {
    call(
        c,
        Request::PutItem(PutItem {
            table: table.into(),
            item: i,
            condition: None,
            args: ExprArgs::default(),
            return_values: ReturnValues::None,
        }),
    )
}

fn get(c: &Client, table: &str, key: Item) -> Option<Item> {
    match call(
        c,
        Request::GetItem(GetItem {
            table: table.into(),
            key,
            projection: None,
            args: ExprArgs::default(),
            consistent: true,
        }),
    ) {
        Response::Item(i) => i,
        other => panic!("{other:?}"),
    }
}

fn update(c: &Client, key: Item, expr: &str, a: ExprArgs, rv: ReturnValues) -> Response {
    call(
        c,
        Request::UpdateItem(UpdateItem {
            table: "events".into(),
            key,
            update: expr.into(),
            condition: None,
            args: a,
            return_values: rv,
        }),
    )
}

fn query(c: &Client, kc: &str, a: ExprArgs, forward: bool, limit: Option<u32>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start_key = None;
    for _ in 0..1000 {
        let page = match call(
            c,
            Request::Query(Query {
                table: "events".into(),
                key_condition: kc.into(),
                filter: None,
                projection: None,
                args: a.clone(),
                forward,
                limit,
                start_key: start_key.take(),
                consistent: true,
            }),
        ) {
            Response::Items(p) => p,
            other => panic!("{other:?}"),
        };
        out.extend(page.items);
        match page.last_key {
            Some(k) => start_key = Some(k),
            None => return out,
        }
    }
    panic!("query did not end");
}

fn scan_all(c: &Client, table: &str, segment: u32, total: u32, limit: Option<u32>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start_key = None;
    for _ in 0..10_000 {
        let page: ItemPage = match call(
            c,
            Request::Scan(Scan {
                table: table.into(),
                filter: None,
                projection: None,
                args: ExprArgs::default(),
                limit,
                start_key: start_key.take(),
                segment,
                total_segments: total,
                consistent: true,
            }),
        ) {
            Response::Items(p) => p,
            other => panic!("{other:?}"),
        };
        out.extend(page.items);
        match page.last_key {
            Some(k) => start_key = Some(k),
            None => return out,
        }
    }
    panic!("scan did not end");
}

fn ts_of(i: &Item) -> i64 {
    match i.get("ts") {
        Some(Value::N(x)) => x.to_string().parse().unwrap(),
        other => panic!("{other:?}"),
    }
}

fn ev(id: &str, ts: i64) -> Item {
    item(&[
        ("id", s(id)),
        ("ts", n(ts)),
        ("v", s(&format!("{id}-{ts}"))),
    ])
}

fn key(id: &str, ts: i64) -> Item {
    item(&[("id", s(id)), ("ts", n(ts))])
}

/// Every operation, through a shard-aware client and through one that lets the node
/// forward, on a two-shard node.
#[test]
fn every_operation_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let aware = node.client();
    let plain = node.plain_client();

    // Tables.
    let Response::Table(d) = create(&aware, "events", true, Some(6)) else {
        panic!("create")
    };
    assert_eq!(d.partitions.len(), 6);
    assert!(d.partitions.iter().any(|p| p.shard == 1));
    assert_eq!(
        error_code(&create(&plain, "events", true, None)),
        Some(ErrorCode::ResourceInUse)
    );
    assert_eq!(
        error_code(&create(&plain, "x", true, None)),
        Some(ErrorCode::Validation)
    );
    let Response::Table(_) = create(&plain, "counters", false, None) else {
        panic!("create counters")
    };
    match call(
        &plain,
        Request::ListTables {
            start_after: None,
            limit: None,
        },
    ) {
        Response::TableNames { tables, last } => {
            assert_eq!(tables, vec!["counters".to_owned(), "events".to_owned()]);
            assert_eq!(last, None);
        }
        other => panic!("{other:?}"),
    }
    match call(
        &plain,
        Request::DescribeTable {
            table: "events".into(),
        },
    ) {
        Response::Table(t) => assert_eq!(t.schema.sort_key.unwrap().name, "ts"),
        other => panic!("{other:?}"),
    }

    // Items through both clients: each sees what the other wrote.
    for id in 0..20 {
        for ts in 0..10 {
            let c = if (id + ts) % 2 == 0 { &aware } else { &plain };
            assert_eq!(
                put(c, "events", ev(&format!("u{id}"), ts)),
                Response::Item(None)
            );
        }
    }
    for id in 0..20 {
        for ts in 0..10 {
            let c = if (id + ts) % 2 == 0 { &plain } else { &aware };
            assert_eq!(
                get(c, "events", key(&format!("u{id}"), ts)),
                Some(ev(&format!("u{id}"), ts))
            );
        }
    }
    assert_eq!(get(&aware, "events", key("nobody", 1)), None);
    // A key with an extra attribute, a wrong type, or a missing table.
    let mut bad = key("u1", 1);
    bad.insert("v".into(), s("x"));
    let r = call(
        &plain,
        Request::GetItem(GetItem {
            table: "events".into(),
            key: bad,
            projection: None,
            args: ExprArgs::default(),
            consistent: true,
        }),
    );
    assert_eq!(error_code(&r), Some(ErrorCode::Validation));
    assert_eq!(
        error_code(&put(&plain, "events", item(&[("id", n(1)), ("ts", n(1))]))),
        Some(ErrorCode::Validation)
    );
    assert_eq!(
        error_code(&put(&plain, "nope", ev("a", 1))),
        Some(ErrorCode::ResourceNotFound)
    );

    // Conditional writes and return values.
    let cond_put = |c: &Client, i: Item, cond: &str| {
        call(
            c,
            Request::PutItem(PutItem {
                table: "events".into(),
                item: i,
                condition: Some(cond.into()),
                args: ExprArgs::default(),
                return_values: ReturnValues::AllOld,
            }),
        )
    };
    assert_eq!(
        error_code(&cond_put(&plain, ev("u1", 1), "attribute_not_exists(id)")),
        Some(ErrorCode::ConditionalCheckFailed)
    );
    assert_eq!(
        cond_put(&aware, ev("new", 1), "attribute_not_exists(id)"),
        Response::Item(None)
    );
    assert_eq!(
        cond_put(&aware, ev("new", 1), "attribute_exists(id)"),
        Response::Item(Some(ev("new", 1)))
    );
    let r = call(
        &plain,
        Request::DeleteItem(DeleteItem {
            table: "events".into(),
            key: key("new", 1),
            condition: Some("v = :no".into()),
            args: ExprArgs::of(&[], &[(":no", s("other"))]),
            return_values: ReturnValues::AllOld,
        }),
    );
    assert_eq!(error_code(&r), Some(ErrorCode::ConditionalCheckFailed));
    let r = call(
        &plain,
        Request::DeleteItem(DeleteItem {
            table: "events".into(),
            key: key("new", 1),
            condition: Some("v = :yes".into()),
            args: ExprArgs::of(&[], &[(":yes", s("new-1"))]),
            return_values: ReturnValues::AllOld,
        }),
    );
    assert_eq!(r, Response::Item(Some(ev("new", 1))));
    assert_eq!(get(&aware, "events", key("new", 1)), None);

    // UpdateItem: counters, SET, REMOVE, ADD to sets, return values, conditions.
    let one = ExprArgs::of(&[], &[(":one", n(1))]);
    for _ in 0..5 {
        update(
            &plain,
            key("c", 1),
            "ADD hits :one",
            one.clone(),
            ReturnValues::None,
        );
    }
    let r = update(
        &aware,
        key("c", 1),
        "SET hits = hits + :one",
        one.clone(),
        ReturnValues::UpdatedNew,
    );
    assert_eq!(r, Response::Item(Some(item(&[("hits", n(6))]))));
    let r = update(
        &aware,
        key("c", 1),
        "SET #t = :t REMOVE hits ADD tags :tags",
        ExprArgs::of(
            &[("#t", "title")],
            &[
                (":t", s("hello")),
                (":tags", Value::Ss(["a".to_owned()].into())),
            ],
        ),
        ReturnValues::AllNew,
    );
    let Response::Item(Some(new)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(new.get("title"), Some(&s("hello")));
    assert!(!new.contains_key("hits"));
    assert_eq!(new.get("tags"), Some(&Value::Ss(["a".to_owned()].into())));
    let r = update(
        &plain,
        key("c", 1),
        "SET ts = :one",
        one.clone(),
        ReturnValues::None,
    );
    assert_eq!(
        error_code(&r),
        Some(ErrorCode::Validation),
        "key attributes cannot change"
    );
    let r = update(
        &plain,
        key("c", 1),
        "SET x = :missing",
        ExprArgs::default(),
        ReturnValues::None,
    );
    assert_eq!(error_code(&r), Some(ErrorCode::Validation));
    let r = call(
        &plain,
        Request::UpdateItem(UpdateItem {
            table: "events".into(),
            key: key("c", 1),
            update: "SET title = :t".into(),
            condition: Some("title = :old".into()),
            args: ExprArgs::of(&[], &[(":t", s("x")), (":old", s("not hello"))]),
            return_values: ReturnValues::None,
        }),
    );
    assert_eq!(error_code(&r), Some(ErrorCode::ConditionalCheckFailed));

    // Query: every sort-key condition, both directions, pages of 3.
    let id = ExprArgs::of(&[], &[(":id", s("u7"))]);
    let all: Vec<i64> = query(&plain, "id = :id", id.clone(), true, Some(3))
        .iter()
        .map(ts_of)
        .collect();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    let back: Vec<i64> = query(&aware, "id = :id", id, false, Some(4))
        .iter()
        .map(ts_of)
        .collect();
    assert_eq!(back, (0..10).rev().collect::<Vec<_>>());
    type Case<'a> = (&'a str, Vec<(&'a str, Value)>, Vec<i64>);
    let cases: Vec<Case> = vec![
        ("id = :id AND ts = :a", vec![(":a", n(3))], vec![3]),
        ("id = :id AND ts < :a", vec![(":a", n(3))], vec![0, 1, 2]),
        (
            "id = :id AND ts <= :a",
            vec![(":a", n(3))],
            vec![0, 1, 2, 3],
        ),
        ("id = :id AND ts > :a", vec![(":a", n(7))], vec![8, 9]),
        ("id = :id AND ts >= :a", vec![(":a", n(7))], vec![7, 8, 9]),
        (
            "id = :id AND ts BETWEEN :a AND :b",
            vec![(":a", n(2)), (":b", n(4))],
            vec![2, 3, 4],
        ),
    ];
    for (kc, mut vals, want) in cases {
        vals.push((":id", s("u7")));
        let got: Vec<i64> = query(&plain, kc, ExprArgs::of(&[], &vals), true, Some(2))
            .iter()
            .map(ts_of)
            .collect();
        assert_eq!(got, want, "{kc}");
    }

    // Scan: every item once, whole and in parallel segments, in pages.
    let whole = scan_all(&plain, "events", 0, 1, Some(7));
    let expect = 20 * 10 + 1; // u0..u19 × 10, and the counter item "c"
    assert_eq!(whole.len(), expect);
    let mut union = BTreeSet::new();
    for seg in 0..3 {
        for i in scan_all(&aware, "events", seg, 3, Some(5)) {
            assert!(union.insert(format!("{i:?}")), "an item in two segments");
        }
    }
    assert_eq!(union.len(), expect);
    let r = call(
        &plain,
        Request::Scan(Scan {
            table: "events".into(),
            filter: None,
            projection: None,
            args: ExprArgs::default(),
            limit: None,
            start_key: None,
            segment: 3,
            total_segments: 3,
            consistent: true,
        }),
    );
    assert_eq!(error_code(&r), Some(ErrorCode::Validation));

    // Batches.
    let writes: Vec<WriteRequest> = (0..20)
        .map(|i| WriteRequest::Put(item(&[("id", s(&format!("b{i}"))), ("x", n(i))])))
        .chain([WriteRequest::Delete(item(&[("id", s("b-none"))]))])
        .collect();
    let r = call(
        &plain,
        Request::BatchWriteItem(BatchWriteItem {
            tables: vec![TableWrites {
                table: "counters".into(),
                writes,
            }],
        }),
    );
    assert_eq!(
        r,
        Response::BatchWrite {
            unprocessed: vec![]
        }
    );
    let keys: Vec<Item> = (0..25)
        .map(|i| item(&[("id", s(&format!("b{i}")))]))
        .collect();
    let r = call(
        &aware,
        Request::BatchGetItem(BatchGetItem {
            tables: vec![TableKeys {
                table: "counters".into(),
                keys,
                projection: None,
                args: ExprArgs::default(),
                consistent: true,
            }],
        }),
    );
    let Response::BatchGet(ok) = r else {
        panic!("{r:?}")
    };
    assert_eq!(ok.tables[0].items.len(), 20, "20 of the 25 keys exist");
    assert!(ok.unprocessed.is_empty());
    let too_many: Vec<WriteRequest> = (0..26)
        .map(|i| WriteRequest::Put(item(&[("id", s(&format!("t{i}")))])))
        .collect();
    let r = call(
        &plain,
        Request::BatchWriteItem(BatchWriteItem {
            tables: vec![TableWrites {
                table: "counters".into(),
                writes: too_many,
            }],
        }),
    );
    assert_eq!(error_code(&r), Some(ErrorCode::Validation));

    // Delete a table: its items are gone with it, the other table stays.
    match call(
        &aware,
        Request::DeleteTable {
            table: "counters".into(),
        },
    ) {
        Response::Table(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error_code(&put(&plain, "counters", item(&[("id", s("z"))]))),
        Some(ErrorCode::ResourceNotFound)
    );
    let Response::Table(_) = create(&plain, "counters", false, Some(2)) else {
        panic!("re-create")
    };
    assert_eq!(scan_all(&plain, "counters", 0, 1, None).len(), 0);
    assert_eq!(get(&aware, "events", key("u3", 3)), Some(ev("u3", 3)));

    // A clean stop and a restart keep tables and items.
    node.stop();
    let node = Node::start(dir.path(), 2);
    let c = node.client();
    assert_eq!(get(&c, "events", key("u19", 9)), Some(ev("u19", 9)));
    assert_eq!(scan_all(&c, "events", 0, 1, None).len(), expect);
    match call(
        &c,
        Request::ListTables {
            start_after: None,
            limit: None,
        },
    ) {
        Response::TableNames { tables, .. } => assert_eq!(tables.len(), 2),
        other => panic!("{other:?}"),
    }
    node.stop();
}

/// A data directory remembers its shard count; another count is refused with a reason.
#[test]
fn a_data_directory_keeps_its_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    Node::start(dir.path(), 2).stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--shards",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--shards 2"), "{err}");
}

/// A shard that cannot bind its port stops start-up with the reason, promptly.
#[test]
fn a_taken_shard_port_stops_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let Some(taken_port) = port.checked_add(2) else {
        return;
    };
    let Ok(_taken) = std::net::TcpListener::bind(("127.0.0.1", taken_port)) else {
        return; // someone else holds it: nothing to learn
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["start", "--no-pin", "--shards", "2", "--cache-mib", "8"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("binding 127.0.0.1:{taken_port}")),
        "{err}"
    );
}
