//! Message bodies: [`Request`] and [`Response`] to and from whole frames.
//!
//! Each message is its opcode's fields in declaration order, in the field encodings of
//! `cursor.rs` (fixed-width little-endian integers, `u32`-length strings and lists,
//! `0/1` option and bool bytes, items in the item encoding behind a `u32` length). The
//! layout of every body is in `net/PROTOCOL.md`; the shared parts:
//!
//! ```text
//! key_schema:  string pk_name, u8 pk_type, option<(string sk_name, u8 sk_type)>
//!              key type: 1 S, 2 N, 3 B
//! expr_args:   list<(string "#name", string attribute)>  names strictly ascending
//!              item values                                ":value" → value, as an item
//! ```
//!
//! Decoding is canonical: what decodes re-encodes to the same bytes. Counts are bounded
//! by the bytes left before allocating, and batches by DynamoDB's limits
//! ([`BATCH_GET_KEYS_MAX`], [`BATCH_WRITE_WRITES_MAX`]).
//!
//! Not done here: semantic checks (table names, key schemas, expression syntax, item
//! keys): they are the server's, and their failures are [`ErrorCode::Validation`] answers
//! too.
#![deny(clippy::indexing_slicing)]

use std::collections::BTreeMap;

use crate::codec::cursor::{
    put_bool, put_encoded_item, put_item, put_len, put_option, put_str, put_u16, put_u32, put_u64,
    put_u8, BodyReader, ITEM_BYTES_MIN, STRING_BYTES_MIN,
};
use crate::codec::error::CodecError;
use crate::codec::frame::{begin_frame, finish_frame, Frame, Opcode};
use crate::codec::message::*;
use crate::model::{Item, KeyAttribute, KeySchema, KeyType};

/// Most keys in one BatchGetItem (over all its tables), and most items in its answer.
pub const BATCH_GET_KEYS_MAX: usize = 100;
/// Most writes in one BatchWriteItem (over all its tables).
pub const BATCH_WRITE_WRITES_MAX: usize = 25;

/// Least encoded size of an [`ExprArgs`]: an empty name list and an empty item.
const EXPR_ARGS_BYTES_MIN: usize = 4 + ITEM_BYTES_MIN;
/// Least encoded size of a [`TableKeys`].
const TABLE_KEYS_BYTES_MIN: usize = STRING_BYTES_MIN + 4 + 1 + EXPR_ARGS_BYTES_MIN + 1;
/// Least encoded size of a [`TableWrites`] and of a [`TableItems`].
const TABLE_LIST_BYTES_MIN: usize = STRING_BYTES_MIN + 4;
/// Least encoded size of a [`WriteRequest`].
const WRITE_BYTES_MIN: usize = 1 + ITEM_BYTES_MIN;
/// Encoded size of a [`PartitionInfo`].
const PARTITION_BYTES: usize = 8 + 8 + 4;

const WRITE_PUT: u8 = 1;
const WRITE_DELETE: u8 = 2;

/// Appends one whole request frame (header and body) to `out`.
pub fn encode_request(request_id: u64, request: &Request, out: &mut Vec<u8>) {
    let start = begin_frame(request_opcode(request), request_id, out);
    encode_request_body(request, out);
    finish_frame(start, out);
}

/// Appends one whole response frame (header and body) to `out`.
pub fn encode_response(request_id: u64, response: &Response, out: &mut Vec<u8>) {
    let start = begin_frame(response_opcode(response), request_id, out);
    encode_response_body(response, out);
    finish_frame(start, out);
}

/// Appends an error response frame with `code`'s default retryability.
pub fn error_frame(
    request_id: u64,
    code: ErrorCode,
    message: impl Into<String>,
    out: &mut Vec<u8>,
) {
    let response = Response::Error(ErrorResponse::new(code, message));
    encode_response(request_id, &response, out);
}

/// The opcode a request travels with.
pub fn request_opcode(request: &Request) -> Opcode {
    match request {
        Request::Hello(_) => Opcode::Hello,
        Request::CreateTable(_) => Opcode::CreateTable,
        Request::DeleteTable { .. } => Opcode::DeleteTable,
        Request::DescribeTable { .. } => Opcode::DescribeTable,
        Request::ListTables { .. } => Opcode::ListTables,
        Request::PutItem(_) => Opcode::PutItem,
        Request::GetItem(_) => Opcode::GetItem,
        Request::DeleteItem(_) => Opcode::DeleteItem,
        Request::UpdateItem(_) => Opcode::UpdateItem,
        Request::Query(_) => Opcode::Query,
        Request::Scan(_) => Opcode::Scan,
        Request::BatchGetItem(_) => Opcode::BatchGetItem,
        Request::BatchWriteItem(_) => Opcode::BatchWriteItem,
    }
}

/// The opcode a response travels with.
pub fn response_opcode(response: &Response) -> Opcode {
    match response {
        Response::HelloOk(_) => Opcode::HelloOk,
        Response::Table(_) => Opcode::Table,
        Response::TableNames { .. } => Opcode::TableNames,
        Response::Item(_) | Response::ItemBytes(_) => Opcode::Item,
        Response::Items(_) => Opcode::Items,
        Response::BatchGet(_) => Opcode::BatchGet,
        Response::BatchWrite { .. } => Opcode::BatchWrite,
        Response::Error(_) => Opcode::Error,
    }
}

/// Decodes the request in a frame. An error is answered with [`ErrorCode::Validation`]
/// ([`CodecError::to_error_response`]); the connection stays open.
pub fn decode_request(frame: &Frame) -> Result<Request, CodecError> {
    let opcode = Opcode::from_u8(frame.header.opcode)
        .filter(|op| !op.is_response())
        .ok_or(CodecError::WrongOpcode {
            opcode: frame.header.opcode,
            expected: "request",
        })?;
    let mut r = BodyReader::new(&frame.body);
    let request = decode_request_body(opcode, &mut r)?;
    r.finish()?;
    Ok(request)
}

/// Decodes the response in a frame.
pub fn decode_response(frame: &Frame) -> Result<Response, CodecError> {
    let opcode = Opcode::from_u8(frame.header.opcode)
        .filter(|op| op.is_response())
        .ok_or(CodecError::WrongOpcode {
            opcode: frame.header.opcode,
            expected: "response",
        })?;
    let mut r = BodyReader::new(&frame.body);
    let response = decode_response_body(opcode, &mut r)?;
    r.finish()?;
    Ok(response)
}

fn encode_request_body(request: &Request, out: &mut Vec<u8>) {
    match request {
        Request::Hello(hello) => {
            put_u16(out, hello.min_version);
            put_u16(out, hello.max_version);
            put_str(out, &hello.client);
        }
        Request::CreateTable(create) => {
            put_str(out, &create.table);
            put_key_schema(out, &create.schema);
            put_option(out, create.partitions.as_ref(), |out, n| put_u32(out, *n));
        }
        Request::DeleteTable { table } | Request::DescribeTable { table } => put_str(out, table),
        Request::ListTables { start_after, limit } => {
            put_option(out, start_after.as_deref(), put_str);
            put_option(out, limit.as_ref(), |out, n| put_u32(out, *n));
        }
        Request::PutItem(put) => {
            put_str(out, &put.table);
            put_item(out, &put.item);
            put_option(out, put.condition.as_deref(), put_str);
            put_expr_args(out, &put.args);
            put_u8(out, return_values_tag(put.return_values));
        }
        Request::GetItem(get) => {
            put_str(out, &get.table);
            put_item(out, &get.key);
            put_option(out, get.projection.as_deref(), put_str);
            put_expr_args(out, &get.args);
            put_bool(out, get.consistent);
        }
        Request::DeleteItem(delete) => {
            put_str(out, &delete.table);
            put_item(out, &delete.key);
            put_option(out, delete.condition.as_deref(), put_str);
            put_expr_args(out, &delete.args);
            put_u8(out, return_values_tag(delete.return_values));
        }
        Request::UpdateItem(update) => {
            put_str(out, &update.table);
            put_item(out, &update.key);
            put_str(out, &update.update);
            put_option(out, update.condition.as_deref(), put_str);
            put_expr_args(out, &update.args);
            put_u8(out, return_values_tag(update.return_values));
        }
        Request::Query(query) => {
            put_str(out, &query.table);
            put_str(out, &query.key_condition);
            put_option(out, query.filter.as_deref(), put_str);
            put_option(out, query.projection.as_deref(), put_str);
            put_expr_args(out, &query.args);
            put_bool(out, query.forward);
            put_option(out, query.limit.as_ref(), |out, n| put_u32(out, *n));
            put_option(out, query.start_key.as_ref(), put_item);
            put_bool(out, query.consistent);
        }
        Request::Scan(scan) => {
            put_str(out, &scan.table);
            put_option(out, scan.filter.as_deref(), put_str);
            put_option(out, scan.projection.as_deref(), put_str);
            put_expr_args(out, &scan.args);
            put_option(out, scan.limit.as_ref(), |out, n| put_u32(out, *n));
            put_option(out, scan.start_key.as_ref(), put_item);
            put_u32(out, scan.segment);
            put_u32(out, scan.total_segments);
            put_bool(out, scan.consistent);
        }
        Request::BatchGetItem(batch) => {
            put_len(out, batch.tables.len());
            for table in &batch.tables {
                put_table_keys(out, table);
            }
        }
        Request::BatchWriteItem(batch) => put_table_writes_list(out, &batch.tables),
    }
}

fn decode_request_body(opcode: Opcode, r: &mut BodyReader<'_>) -> Result<Request, CodecError> {
    let request = match opcode {
        Opcode::Hello => Request::Hello(Hello {
            min_version: r.u16()?,
            max_version: r.u16()?,
            client: r.string()?,
        }),
        Opcode::CreateTable => Request::CreateTable(CreateTable {
            table: r.string()?,
            schema: read_key_schema(r)?,
            partitions: r.option(|r| r.u32())?,
        }),
        Opcode::DeleteTable => Request::DeleteTable { table: r.string()? },
        Opcode::DescribeTable => Request::DescribeTable { table: r.string()? },
        Opcode::ListTables => Request::ListTables {
            start_after: r.option(|r| r.string())?,
            limit: r.option(|r| r.u32())?,
        },
        Opcode::PutItem => Request::PutItem(PutItem {
            table: r.string()?,
            item: r.item()?,
            condition: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            return_values: read_return_values(r)?,
        }),
        Opcode::GetItem => Request::GetItem(GetItem {
            table: r.string()?,
            key: r.item()?,
            projection: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            consistent: r.bool()?,
        }),
        Opcode::DeleteItem => Request::DeleteItem(DeleteItem {
            table: r.string()?,
            key: r.item()?,
            condition: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            return_values: read_return_values(r)?,
        }),
        Opcode::UpdateItem => Request::UpdateItem(UpdateItem {
            table: r.string()?,
            key: r.item()?,
            update: r.string()?,
            condition: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            return_values: read_return_values(r)?,
        }),
        Opcode::Query => Request::Query(Query {
            table: r.string()?,
            key_condition: r.string()?,
            filter: r.option(|r| r.string())?,
            projection: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            forward: r.bool()?,
            limit: r.option(|r| r.u32())?,
            start_key: r.option(|r| r.item())?,
            consistent: r.bool()?,
        }),
        Opcode::Scan => Request::Scan(Scan {
            table: r.string()?,
            filter: r.option(|r| r.string())?,
            projection: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            limit: r.option(|r| r.u32())?,
            start_key: r.option(|r| r.item())?,
            segment: r.u32()?,
            total_segments: r.u32()?,
            consistent: r.bool()?,
        }),
        Opcode::BatchGetItem => Request::BatchGetItem(BatchGetItem {
            tables: read_table_keys_list(r, "BatchGetItem keys")?,
        }),
        Opcode::BatchWriteItem => Request::BatchWriteItem(BatchWriteItem {
            tables: read_table_writes_list(r)?,
        }),
        Opcode::HelloOk
        | Opcode::Table
        | Opcode::TableNames
        | Opcode::Item
        | Opcode::Items
        | Opcode::BatchGet
        | Opcode::BatchWrite
        | Opcode::Error => {
            return Err(CodecError::WrongOpcode {
                opcode: opcode as u8,
                expected: "request",
            })
        }
    };
    Ok(request)
}

fn encode_response_body(response: &Response, out: &mut Vec<u8>) {
    match response {
        Response::HelloOk(ok) => {
            put_u16(out, ok.version);
            put_u32(out, ok.shard);
            put_len(out, ok.shard_addrs.len());
            for addr in &ok.shard_addrs {
                put_str(out, addr);
            }
        }
        Response::Table(table) => put_table_description(out, table),
        Response::TableNames { tables, last } => {
            put_len(out, tables.len());
            for name in tables {
                put_str(out, name);
            }
            put_option(out, last.as_deref(), put_str);
        }
        Response::Item(item) => put_option(out, item.as_ref(), put_item),
        Response::ItemBytes(bytes) => put_option(out, bytes.as_deref(), put_encoded_item),
        Response::Items(page) => {
            put_len(out, page.items.len());
            for item in &page.items {
                put_item(out, item);
            }
            put_u32(out, page.scanned_count);
            put_option(out, page.last_key.as_ref(), put_item);
        }
        Response::BatchGet(batch) => {
            put_len(out, batch.tables.len());
            for table in &batch.tables {
                put_str(out, &table.table);
                put_len(out, table.items.len());
                for item in &table.items {
                    put_item(out, item);
                }
            }
            put_len(out, batch.unprocessed.len());
            for table in &batch.unprocessed {
                put_table_keys(out, table);
            }
        }
        Response::BatchWrite { unprocessed } => put_table_writes_list(out, unprocessed),
        Response::Error(error) => {
            put_u16(out, error.code.number());
            put_bool(out, error.retryable);
            put_str(out, &error.message);
        }
    }
}

fn decode_response_body(opcode: Opcode, r: &mut BodyReader<'_>) -> Result<Response, CodecError> {
    let response = match opcode {
        Opcode::HelloOk => Response::HelloOk(HelloOk {
            version: r.u16()?,
            shard: r.u32()?,
            shard_addrs: r.list(STRING_BYTES_MIN, |r| r.string())?,
        }),
        Opcode::Table => Response::Table(read_table_description(r)?),
        Opcode::TableNames => Response::TableNames {
            tables: r.list(STRING_BYTES_MIN, |r| r.string())?,
            last: r.option(|r| r.string())?,
        },
        Opcode::Item => Response::Item(r.option(|r| r.item())?),
        Opcode::Items => Response::Items(ItemPage {
            items: r.list(ITEM_BYTES_MIN, |r| r.item())?,
            scanned_count: r.u32()?,
            last_key: r.option(|r| r.item())?,
        }),
        Opcode::BatchGet => {
            let mut items_read = 0;
            let tables = r.list(TABLE_LIST_BYTES_MIN, |r| {
                let table = r.string()?;
                let count = r.count_max(
                    ITEM_BYTES_MIN,
                    "BatchGet items",
                    items_read,
                    BATCH_GET_KEYS_MAX,
                )?;
                items_read += count;
                let items = r.list_of(count, |r| r.item())?;
                Ok(TableItems { table, items })
            })?;
            Response::BatchGet(BatchGetOk {
                tables,
                unprocessed: read_table_keys_list(r, "BatchGet unprocessed keys")?,
            })
        }
        Opcode::BatchWrite => Response::BatchWrite {
            unprocessed: read_table_writes_list(r)?,
        },
        Opcode::Error => {
            let offset = r.offset();
            let number = r.u16()?;
            let code = ErrorCode::from_number(number).ok_or(CodecError::UnknownTag {
                what: "error code",
                tag: number,
                offset,
            })?;
            Response::Error(ErrorResponse {
                code,
                retryable: r.bool()?,
                message: r.string()?,
            })
        }
        Opcode::Hello
        | Opcode::CreateTable
        | Opcode::DeleteTable
        | Opcode::DescribeTable
        | Opcode::ListTables
        | Opcode::PutItem
        | Opcode::GetItem
        | Opcode::DeleteItem
        | Opcode::UpdateItem
        | Opcode::Query
        | Opcode::Scan
        | Opcode::BatchGetItem
        | Opcode::BatchWriteItem => {
            return Err(CodecError::WrongOpcode {
                opcode: opcode as u8,
                expected: "response",
            })
        }
    };
    Ok(response)
}

fn key_type_tag(key_type: KeyType) -> u8 {
    match key_type {
        KeyType::S => 1,
        KeyType::N => 2,
        KeyType::B => 3,
    }
}

fn put_key_attribute(out: &mut Vec<u8>, attribute: &KeyAttribute) {
    put_str(out, &attribute.name);
    put_u8(out, key_type_tag(attribute.key_type));
}

fn put_key_schema(out: &mut Vec<u8>, schema: &KeySchema) {
    put_key_attribute(out, &schema.partition_key);
    put_option(out, schema.sort_key.as_ref(), put_key_attribute);
}

fn read_key_attribute(r: &mut BodyReader<'_>) -> Result<KeyAttribute, CodecError> {
    let name = r.string()?;
    let offset = r.offset();
    let key_type = match r.u8()? {
        1 => KeyType::S,
        2 => KeyType::N,
        3 => KeyType::B,
        tag => {
            return Err(CodecError::UnknownTag {
                what: "key type",
                tag: u16::from(tag),
                offset,
            })
        }
    };
    Ok(KeyAttribute { name, key_type })
}

fn read_key_schema(r: &mut BodyReader<'_>) -> Result<KeySchema, CodecError> {
    Ok(KeySchema {
        partition_key: read_key_attribute(r)?,
        sort_key: r.option(read_key_attribute)?,
    })
}

fn put_expr_args(out: &mut Vec<u8>, args: &ExprArgs) {
    put_len(out, args.names.len());
    for (name, attribute) in &args.names {
        put_str(out, name);
        put_str(out, attribute);
    }
    put_item(out, &args.values);
}

fn read_expr_args(r: &mut BodyReader<'_>) -> Result<ExprArgs, CodecError> {
    let count = r.count(2 * STRING_BYTES_MIN)?;
    let mut names = BTreeMap::new();
    for _ in 0..count {
        let offset = r.offset();
        let name = r.string()?;
        // Strictly ascending: a duplicate would be dropped silently by the map.
        if names
            .last_key_value()
            .is_some_and(|(last, _)| *last >= name)
        {
            return Err(CodecError::NonCanonical {
                offset,
                what: "expression names not strictly ascending",
            });
        }
        let attribute = r.string()?;
        names.insert(name, attribute);
    }
    let values: Item = r.item()?;
    Ok(ExprArgs { names, values })
}

fn return_values_tag(return_values: ReturnValues) -> u8 {
    match return_values {
        ReturnValues::None => 0,
        ReturnValues::AllOld => 1,
        ReturnValues::UpdatedOld => 2,
        ReturnValues::AllNew => 3,
        ReturnValues::UpdatedNew => 4,
    }
}

fn read_return_values(r: &mut BodyReader<'_>) -> Result<ReturnValues, CodecError> {
    let offset = r.offset();
    match r.u8()? {
        0 => Ok(ReturnValues::None),
        1 => Ok(ReturnValues::AllOld),
        2 => Ok(ReturnValues::UpdatedOld),
        3 => Ok(ReturnValues::AllNew),
        4 => Ok(ReturnValues::UpdatedNew),
        tag => Err(CodecError::UnknownTag {
            what: "return values",
            tag: u16::from(tag),
            offset,
        }),
    }
}

fn put_table_keys(out: &mut Vec<u8>, table: &TableKeys) {
    put_str(out, &table.table);
    put_len(out, table.keys.len());
    for key in &table.keys {
        put_item(out, key);
    }
    put_option(out, table.projection.as_deref(), put_str);
    put_expr_args(out, &table.args);
    put_bool(out, table.consistent);
}

/// A list of [`TableKeys`] whose keys number at most [`BATCH_GET_KEYS_MAX`] in all.
fn read_table_keys_list(
    r: &mut BodyReader<'_>,
    what: &'static str,
) -> Result<Vec<TableKeys>, CodecError> {
    let mut keys_read = 0;
    r.list(TABLE_KEYS_BYTES_MIN, |r| {
        let table = r.string()?;
        let count = r.count_max(ITEM_BYTES_MIN, what, keys_read, BATCH_GET_KEYS_MAX)?;
        keys_read += count;
        Ok(TableKeys {
            table,
            keys: r.list_of(count, |r| r.item())?,
            projection: r.option(|r| r.string())?,
            args: read_expr_args(r)?,
            consistent: r.bool()?,
        })
    })
}

fn put_table_writes_list(out: &mut Vec<u8>, tables: &[TableWrites]) {
    put_len(out, tables.len());
    for table in tables {
        put_str(out, &table.table);
        put_len(out, table.writes.len());
        for write in &table.writes {
            match write {
                WriteRequest::Put(item) => {
                    put_u8(out, WRITE_PUT);
                    put_item(out, item);
                }
                WriteRequest::Delete(key) => {
                    put_u8(out, WRITE_DELETE);
                    put_item(out, key);
                }
            }
        }
    }
}

/// A list of [`TableWrites`] whose writes number at most [`BATCH_WRITE_WRITES_MAX`].
fn read_table_writes_list(r: &mut BodyReader<'_>) -> Result<Vec<TableWrites>, CodecError> {
    let mut writes_read = 0;
    r.list(TABLE_LIST_BYTES_MIN, |r| {
        let table = r.string()?;
        let count = r.count_max(
            WRITE_BYTES_MIN,
            "BatchWriteItem writes",
            writes_read,
            BATCH_WRITE_WRITES_MAX,
        )?;
        writes_read += count;
        let writes = r.list_of(count, |r| {
            let offset = r.offset();
            match r.u8()? {
                WRITE_PUT => Ok(WriteRequest::Put(r.item()?)),
                WRITE_DELETE => Ok(WriteRequest::Delete(r.item()?)),
                tag => Err(CodecError::UnknownTag {
                    what: "write request",
                    tag: u16::from(tag),
                    offset,
                }),
            }
        })?;
        Ok(TableWrites { table, writes })
    })
}

fn table_status_tag(status: TableStatus) -> u8 {
    match status {
        TableStatus::Creating => 1,
        TableStatus::Active => 2,
        TableStatus::Deleting => 3,
    }
}

fn put_table_description(out: &mut Vec<u8>, table: &TableDescription) {
    put_str(out, &table.table);
    put_key_schema(out, &table.schema);
    put_u8(out, table_status_tag(table.status));
    put_u64(out, table.created_unix_ms);
    put_len(out, table.partitions.len());
    for partition in &table.partitions {
        put_u64(out, partition.hash_low);
        put_u64(out, partition.hash_high);
        put_u32(out, partition.shard);
    }
}

fn read_table_description(r: &mut BodyReader<'_>) -> Result<TableDescription, CodecError> {
    let table = r.string()?;
    let schema = read_key_schema(r)?;
    let offset = r.offset();
    let status = match r.u8()? {
        1 => TableStatus::Creating,
        2 => TableStatus::Active,
        3 => TableStatus::Deleting,
        tag => {
            return Err(CodecError::UnknownTag {
                what: "table status",
                tag: u16::from(tag),
                offset,
            })
        }
    };
    Ok(TableDescription {
        table,
        schema,
        status,
        created_unix_ms: r.u64()?,
        partitions: r.list(PARTITION_BYTES, |r| {
            Ok(PartitionInfo {
                hash_low: r.u64()?,
                hash_high: r.u64()?,
                shard: r.u32()?,
            })
        })?,
    })
}
