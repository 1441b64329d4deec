//! Golden frames for protocol version 1: a change here is a change of the wire format,
//! which every deployed client and node would see. `KEEL_BLESS=1` rewrites the files
//! (review then shows the change).

use super::body_tests::{frame_of, request_bytes, response_bytes};
use crate::codec::*;
use crate::model::{Item, KeyAttribute, KeySchema, KeyType, Value};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_golden(name: &str, bytes: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/codec/testdata")
        .join(name);
    if std::env::var_os("KEEL_BLESS").is_some() {
        std::fs::write(&path, format!("{}\n", hex(bytes))).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; bytes are {}", path.display(), hex(bytes)));
    assert_eq!(hex(bytes), golden.trim(), "{name} drifted");
}

/// The worked example of `net/PROTOCOL.md`.
pub fn example_put() -> Request {
    Request::PutItem(PutItem {
        table: "users".to_owned(),
        item: Item::from([
            ("pk".to_owned(), Value::S("u1".to_owned())),
            ("n".to_owned(), Value::N("1".parse().unwrap())),
        ]),
        condition: None,
        args: ExprArgs::default(),
        return_values: ReturnValues::None,
    })
}

#[test]
fn golden_hello_frames_are_stable() {
    let hello = Request::Hello(Hello {
        min_version: 1,
        max_version: 1,
        client: "keel-rs".to_owned(),
    });
    let bytes = request_bytes(0, &hello);
    check_golden("hello_v1.hex", &bytes);
    assert_eq!(decode_request(&frame_of(&bytes)), Ok(hello));

    let ok = Response::HelloOk(HelloOk {
        version: 1,
        shard: 0,
        shard_addrs: vec!["10.0.0.1:7000".to_owned(), "10.0.0.1:7001".to_owned()],
    });
    let bytes = response_bytes(0, &ok);
    check_golden("hello_ok_v1.hex", &bytes);
    assert_eq!(decode_response(&frame_of(&bytes)), Ok(ok));
}

#[test]
fn golden_put_and_answer_frames_are_stable() {
    let bytes = request_bytes(7, &example_put());
    check_golden("put_item_v1.hex", &bytes);
    assert_eq!(decode_request(&frame_of(&bytes)), Ok(example_put()));

    let answer = Response::Item(None);
    let bytes = response_bytes(7, &answer);
    check_golden("put_item_answer_v1.hex", &bytes);
    assert_eq!(decode_response(&frame_of(&bytes)), Ok(answer));
}

#[test]
fn golden_table_and_error_frames_are_stable() {
    let table = Response::Table(TableDescription {
        table: "users".to_owned(),
        schema: KeySchema::with_sort_key(
            KeyAttribute::new("pk", KeyType::S),
            KeyAttribute::new("sk", KeyType::N),
        ),
        status: TableStatus::Active,
        created_unix_ms: 1_700_000_000_000,
        partitions: (0..2)
            .map(|i| {
                let (hash_low, hash_high) = partition_hash_range(i, 2);
                PartitionInfo {
                    hash_low,
                    hash_high,
                    shard: i,
                }
            })
            .collect(),
    });
    let bytes = response_bytes(3, &table);
    check_golden("table_v1.hex", &bytes);
    assert_eq!(decode_response(&frame_of(&bytes)), Ok(table));

    let mut bytes = Vec::new();
    error_frame(
        4,
        ErrorCode::ConditionalCheckFailed,
        "condition failed",
        &mut bytes,
    );
    check_golden("error_v1.hex", &bytes);
}
