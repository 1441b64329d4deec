//! The requests and responses of keel's wire protocol, as Rust values.
//!
//! One [`Request`] travels in one frame and is answered by one [`Response`] frame with the
//! same request id. Keys travel as items holding just the key attributes (DynamoDB's `Key`);
//! expressions travel as strings, with the names (`#n`) and values (`:v`) they refer to in one
//! [`ExprArgs`] per request. The byte layout is in `net/PROTOCOL.md`.

use std::collections::BTreeMap;

use crate::model::{Item, KeySchema, Value};

/// The expression attribute names and values shared by the expressions of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExprArgs {
    /// `#name` → attribute name.
    pub names: BTreeMap<String, String>,
    /// `:value` → value.
    pub values: BTreeMap<String, Value>,
}

impl ExprArgs {
    /// The arguments `names` (`#name`, attribute name) and `values` (`:value`, value).
    pub fn of(names: &[(&str, &str)], values: &[(&str, Value)]) -> ExprArgs {
        ExprArgs {
            names: names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }
}

/// Which item image a write returns (DynamoDB's `ReturnValues`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReturnValues {
    /// Nothing.
    #[default]
    None,
    /// The whole item as it was before the write.
    AllOld,
    /// The attributes the update changed, as they were before (UpdateItem only).
    UpdatedOld,
    /// The whole item as it is after the write (UpdateItem only).
    AllNew,
    /// The attributes the update changed, as they are after (UpdateItem only).
    UpdatedNew,
}

/// The first frame of a connection: the protocol versions the client speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the client speaks.
    pub min_version: u16,
    /// Highest protocol version the client speaks.
    pub max_version: u16,
    /// Free text naming the client, for logs (at most 256 bytes).
    pub client: String,
}

/// The node's answer to [`Hello`]: the chosen version and where each shard listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloOk {
    /// The protocol version the connection uses from now on.
    pub version: u16,
    /// The shard that accepted this connection.
    pub shard: u32,
    /// For each shard, in shard order, the `host:port` of its own listener.
    pub shard_addrs: Vec<String>,
}

/// A request to create a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTable {
    /// Table name: 3..=255 bytes of `[A-Za-z0-9_.-]`, as DynamoDB allows.
    pub table: String,
    /// Partition key and optional sort key.
    pub schema: KeySchema,
    /// Number of partitions; `None` lets the node choose.
    pub partitions: Option<u32>,
}

/// The state of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStatus {
    /// Being created.
    Creating,
    /// Serving.
    Active,
    /// Being deleted.
    Deleting,
}

/// One partition of a table: a contiguous range of the 64-bit partition-key hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Lowest hash in the partition.
    pub hash_low: u64,
    /// Highest hash in the partition (inclusive).
    pub hash_high: u64,
    /// The shard that owns it.
    pub shard: u32,
}

/// What DescribeTable (and CreateTable, DeleteTable) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescription {
    /// Table name.
    pub table: String,
    /// Key schema.
    pub schema: KeySchema,
    /// State.
    pub status: TableStatus,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The partitions in hash order; partition `i` of `n` covers the hashes `h` with
    /// `h * n >> 64 == i` (see [`crate::codec::partition_index`]).
    pub partitions: Vec<PartitionInfo>,
}

/// A PutItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct PutItem {
    /// Table name.
    pub table: String,
    /// The item, key attributes included.
    pub item: Item,
    /// A condition expression the stored item must meet.
    pub condition: Option<String>,
    /// Names and values of the expressions.
    pub args: ExprArgs,
    /// `None` or `AllOld`.
    pub return_values: ReturnValues,
}

/// A GetItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct GetItem {
    /// Table name.
    pub table: String,
    /// The key attributes.
    pub key: Item,
    /// A projection expression: which attributes to return.
    pub projection: Option<String>,
    /// Names of the projection (values are refused).
    pub args: ExprArgs,
    /// Strongly consistent read (keel reads are always consistent on a single node).
    pub consistent: bool,
}

/// A DeleteItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteItem {
    /// Table name.
    pub table: String,
    /// The key attributes.
    pub key: Item,
    /// A condition expression the stored item must meet.
    pub condition: Option<String>,
    /// Names and values of the expressions.
    pub args: ExprArgs,
    /// `None` or `AllOld`.
    pub return_values: ReturnValues,
}

/// An UpdateItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateItem {
    /// Table name.
    pub table: String,
    /// The key attributes.
    pub key: Item,
    /// The update expression (SET, REMOVE, ADD, DELETE clauses).
    pub update: String,
    /// A condition expression the stored item must meet.
    pub condition: Option<String>,
    /// Names and values of the expressions.
    pub args: ExprArgs,
    /// Any of the five.
    pub return_values: ReturnValues,
}

/// A Query request: the items of one partition key, in sort-key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Table name.
    pub table: String,
    /// `pk = :v` optionally `AND` a sort-key condition.
    pub key_condition: String,
    /// A filter applied after the read (counts toward `scanned_count`, not `count`).
    pub filter: Option<String>,
    /// A projection expression.
    pub projection: Option<String>,
    /// Names and values of the expressions.
    pub args: ExprArgs,
    /// Ascending sort-key order if true.
    pub forward: bool,
    /// Most items to evaluate in this page.
    pub limit: Option<u32>,
    /// Continue after this key (a previous page's `last_key`).
    pub start_key: Option<Item>,
    /// Strongly consistent read.
    pub consistent: bool,
}

/// A Scan request: every item of a table, or of one segment of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Table name.
    pub table: String,
    /// A filter applied after the read.
    pub filter: Option<String>,
    /// A projection expression.
    pub projection: Option<String>,
    /// Names and values of the expressions.
    pub args: ExprArgs,
    /// Most items to evaluate in this page.
    pub limit: Option<u32>,
    /// Continue after this key (a previous page's `last_key`).
    pub start_key: Option<Item>,
    /// This segment, `0..total_segments`, for a parallel scan.
    pub segment: u32,
    /// Number of segments; 1 for a plain scan.
    pub total_segments: u32,
    /// Strongly consistent read.
    pub consistent: bool,
}

/// The keys to read from one table in a BatchGetItem.
#[derive(Debug, Clone, PartialEq)]
pub struct TableKeys {
    /// Table name.
    pub table: String,
    /// The keys.
    pub keys: Vec<Item>,
    /// A projection expression for this table's items.
    pub projection: Option<String>,
    /// Names of the projection.
    pub args: ExprArgs,
    /// Strongly consistent reads.
    pub consistent: bool,
}

/// A BatchGetItem request: up to 100 keys over any tables.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchGetItem {
    /// Keys per table.
    pub tables: Vec<TableKeys>,
}

/// One write of a BatchWriteItem.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRequest {
    /// Store this item.
    Put(Item),
    /// Delete the item with this key.
    Delete(Item),
}

/// The writes to one table in a BatchWriteItem.
#[derive(Debug, Clone, PartialEq)]
pub struct TableWrites {
    /// Table name.
    pub table: String,
    /// The writes.
    pub writes: Vec<WriteRequest>,
}

/// A BatchWriteItem request: up to 25 puts and deletes over any tables, each applied on its
/// own (not a transaction).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchWriteItem {
    /// Writes per table.
    pub tables: Vec<TableWrites>,
}

/// Every request the protocol carries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// Opens a connection (must be the first frame).
    Hello(Hello),
    /// Creates a table.
    CreateTable(CreateTable),
    /// Deletes a table and all its items.
    DeleteTable {
        /// Table name.
        table: String,
    },
    /// Describes a table.
    DescribeTable {
        /// Table name.
        table: String,
    },
    /// Lists table names in order.
    ListTables {
        /// Start after this name.
        start_after: Option<String>,
        /// Most names to return (at most 100).
        limit: Option<u32>,
    },
    /// Stores an item.
    PutItem(PutItem),
    /// Reads an item.
    GetItem(GetItem),
    /// Deletes an item.
    DeleteItem(DeleteItem),
    /// Updates an item with an update expression.
    UpdateItem(UpdateItem),
    /// Reads the items of one partition key.
    Query(Query),
    /// Reads all items of a table (or of a segment).
    Scan(Scan),
    /// Reads many items.
    BatchGetItem(BatchGetItem),
    /// Writes many items.
    BatchWriteItem(BatchWriteItem),
}

/// A page of items answered by Query or Scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPage {
    /// The items that passed the filter, projected.
    pub items: Vec<Item>,
    /// Items read before the filter.
    pub scanned_count: u32,
    /// If set, more items may follow: pass it as `start_key` to read the next page.
    pub last_key: Option<Item>,
}

/// The items read from one table by BatchGetItem.
#[derive(Debug, Clone, PartialEq)]
pub struct TableItems {
    /// Table name.
    pub table: String,
    /// The items found (missing keys are simply absent).
    pub items: Vec<Item>,
}

/// The answer to BatchGetItem.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchGetOk {
    /// Items per table.
    pub tables: Vec<TableItems>,
    /// Keys not read this time (retry them), per table.
    pub unprocessed: Vec<TableKeys>,
}

/// Stable error codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or invalid (bad item, bad expression, limits).
    Validation,
    /// A condition expression was not met.
    ConditionalCheckFailed,
    /// The table does not exist.
    ResourceNotFound,
    /// The table already exists.
    ResourceInUse,
    /// The node is over its admitted rate; retry with backoff.
    Throttled,
    /// The node failed; the message says how.
    Internal,
    /// The frame could not be read (bad checksum, length, opcode or body); the connection
    /// is closed after this error.
    Protocol,
    /// The protocol versions do not overlap.
    UnsupportedVersion,
    /// The node is shutting down; retry elsewhere or later.
    Unavailable,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// What kind of error.
    pub code: ErrorCode,
    /// Whether the same request may succeed if sent again.
    pub retryable: bool,
    /// A message for a person.
    pub message: String,
}

/// Every response the protocol carries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Response {
    /// The answer to Hello.
    HelloOk(HelloOk),
    /// The answer to CreateTable, DeleteTable and DescribeTable.
    Table(TableDescription),
    /// The answer to ListTables.
    TableNames {
        /// The names, in order.
        tables: Vec<String>,
        /// If set, more may follow after this name.
        last: Option<String>,
    },
    /// The answer to GetItem (the item, if found) and to PutItem, DeleteItem and
    /// UpdateItem (the attributes asked for by `return_values`, if any).
    Item(Option<Item>),
    /// GetItem's answer with the item still in its stored encoding (`encode_item`'s
    /// bytes), so that a node need not decode and re-encode it: it goes on the wire
    /// byte for byte as [`Response::Item`], and decoding it yields a `Response::Item`.
    ItemBytes(Option<Vec<u8>>),
    /// The answer to Query and Scan.
    Items(ItemPage),
    /// The answer to BatchGetItem.
    BatchGet(BatchGetOk),
    /// The answer to BatchWriteItem: the writes not applied this time (retry them).
    BatchWrite {
        /// Unprocessed writes per table.
        unprocessed: Vec<TableWrites>,
    },
    /// The request failed.
    Error(ErrorResponse),
}
