//! Proptest strategies for every request and response, with random valid items.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::codec::message::*;
use crate::model::tests::strategies::{item, value};
use crate::model::{Item, KeyAttribute, KeySchema, KeyType};

fn text() -> impl Strategy<Value = String> {
    ".{0,8}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn key_type() -> impl Strategy<Value = KeyType> {
    prop_oneof![Just(KeyType::S), Just(KeyType::N), Just(KeyType::B)]
}

fn key_schema() -> impl Strategy<Value = KeySchema> {
    (
        text(),
        key_type(),
        proptest::option::of((text(), key_type())),
    )
        .prop_map(|(name, t, sort)| KeySchema {
            partition_key: KeyAttribute::new(name, t),
            sort_key: sort.map(|(name, t)| KeyAttribute::new(name, t)),
        })
}

/// Expression names and values (values are an item keyed by `:name`).
pub fn expr_args() -> impl Strategy<Value = ExprArgs> {
    (
        proptest::collection::btree_map(text(), text(), 0..3),
        proptest::collection::btree_map("[:a-z]{1,4}", value(), 0..3),
    )
        .prop_map(|(names, values)| ExprArgs { names, values })
}

fn return_values() -> impl Strategy<Value = ReturnValues> {
    prop_oneof![
        Just(ReturnValues::None),
        Just(ReturnValues::AllOld),
        Just(ReturnValues::UpdatedOld),
        Just(ReturnValues::AllNew),
        Just(ReturnValues::UpdatedNew),
    ]
}

fn items(max: usize) -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::vec(item(), 0..max)
}

fn table_keys() -> impl Strategy<Value = TableKeys> {
    (text(), items(4), opt_text(), expr_args(), any::<bool>()).prop_map(
        |(table, keys, projection, args, consistent)| TableKeys {
            table,
            keys,
            projection,
            args,
            consistent,
        },
    )
}

fn table_writes() -> impl Strategy<Value = TableWrites> {
    let write = prop_oneof![
        item().prop_map(WriteRequest::Put),
        item().prop_map(WriteRequest::Delete),
    ];
    (text(), proptest::collection::vec(write, 0..4))
        .prop_map(|(table, writes)| TableWrites { table, writes })
}

/// Every request kind.
pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), text()).prop_map(|(min_version, max_version, client)| {
            Request::Hello(Hello {
                min_version,
                max_version,
                client,
            })
        }),
        (text(), key_schema(), proptest::option::of(any::<u32>())).prop_map(
            |(table, schema, partitions)| Request::CreateTable(CreateTable {
                table,
                schema,
                partitions,
            })
        ),
        text().prop_map(|table| Request::DeleteTable { table }),
        text().prop_map(|table| Request::DescribeTable { table }),
        (opt_text(), proptest::option::of(any::<u32>()))
            .prop_map(|(start_after, limit)| Request::ListTables { start_after, limit }),
        (text(), item(), opt_text(), expr_args(), return_values()).prop_map(
            |(table, item, condition, args, return_values)| Request::PutItem(PutItem {
                table,
                item,
                condition,
                args,
                return_values,
            })
        ),
        (text(), item(), opt_text(), expr_args(), any::<bool>()).prop_map(
            |(table, key, projection, args, consistent)| Request::GetItem(GetItem {
                table,
                key,
                projection,
                args,
                consistent,
            })
        ),
        (text(), item(), opt_text(), expr_args(), return_values()).prop_map(
            |(table, key, condition, args, return_values)| Request::DeleteItem(DeleteItem {
                table,
                key,
                condition,
                args,
                return_values,
            })
        ),
        (
            text(),
            item(),
            text(),
            opt_text(),
            expr_args(),
            return_values()
        )
            .prop_map(|(table, key, update, condition, args, return_values)| {
                Request::UpdateItem(UpdateItem {
                    table,
                    key,
                    update,
                    condition,
                    args,
                    return_values,
                })
            }),
        (
            (text(), text(), opt_text(), opt_text(), expr_args()),
            (
                any::<bool>(),
                proptest::option::of(any::<u32>()),
                proptest::option::of(item()),
                any::<bool>()
            )
        )
            .prop_map(
                |(
                    (table, key_condition, filter, projection, args),
                    (forward, limit, start_key, consistent),
                )| {
                    Request::Query(Query {
                        table,
                        key_condition,
                        filter,
                        projection,
                        args,
                        forward,
                        limit,
                        start_key,
                        consistent,
                    })
                }
            ),
        (
            (text(), opt_text(), opt_text(), expr_args()),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(item()),
                any::<u32>(),
                any::<u32>(),
                any::<bool>()
            )
        )
            .prop_map(
                |(
                    (table, filter, projection, args),
                    (limit, start_key, segment, total_segments, consistent),
                )| {
                    Request::Scan(Scan {
                        table,
                        filter,
                        projection,
                        args,
                        limit,
                        start_key,
                        segment,
                        total_segments,
                        consistent,
                    })
                }
            ),
        proptest::collection::vec(table_keys(), 0..3)
            .prop_map(|tables| Request::BatchGetItem(BatchGetItem { tables })),
        proptest::collection::vec(table_writes(), 0..3)
            .prop_map(|tables| Request::BatchWriteItem(BatchWriteItem { tables })),
    ]
}

fn table_description() -> impl Strategy<Value = TableDescription> {
    let status = prop_oneof![
        Just(TableStatus::Creating),
        Just(TableStatus::Active),
        Just(TableStatus::Deleting),
    ];
    let partition =
        (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(hash_low, hash_high, shard)| {
            PartitionInfo {
                hash_low,
                hash_high,
                shard,
            }
        });
    (
        text(),
        key_schema(),
        status,
        any::<u64>(),
        proptest::collection::vec(partition, 0..5),
    )
        .prop_map(
            |(table, schema, status, created_unix_ms, partitions)| TableDescription {
                table,
                schema,
                status,
                created_unix_ms,
                partitions,
            },
        )
}

/// Every error code.
pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(
        crate::codec::error::ERROR_CODES
            .iter()
            .map(|(code, _)| *code)
            .collect::<Vec<_>>(),
    )
}

/// Every response kind.
pub fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u32>(),
            proptest::collection::vec(text(), 0..4)
        )
            .prop_map(|(version, shard, shard_addrs)| Response::HelloOk(HelloOk {
                version,
                shard,
                shard_addrs,
            })),
        table_description().prop_map(Response::Table),
        (proptest::collection::vec(text(), 0..4), opt_text())
            .prop_map(|(tables, last)| Response::TableNames { tables, last }),
        proptest::option::of(item()).prop_map(Response::Item),
        (items(4), any::<u32>(), proptest::option::of(item())).prop_map(
            |(items, scanned_count, last_key)| Response::Items(ItemPage {
                items,
                scanned_count,
                last_key,
            })
        ),
        (
            proptest::collection::vec(
                (text(), items(4)).prop_map(|(table, items)| TableItems { table, items }),
                0..3
            ),
            proptest::collection::vec(table_keys(), 0..3)
        )
            .prop_map(|(tables, unprocessed)| Response::BatchGet(BatchGetOk {
                tables,
                unprocessed,
            })),
        proptest::collection::vec(table_writes(), 0..3)
            .prop_map(|unprocessed| Response::BatchWrite { unprocessed }),
        (error_code(), any::<bool>(), text()).prop_map(|(code, retryable, message)| {
            Response::Error(ErrorResponse {
                code,
                retryable,
                message,
            })
        }),
    ]
}

/// A map with `n` entries, for limit tests.
pub fn names(n: usize) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| (format!("#n{i:04}"), format!("a{i}")))
        .collect()
}
