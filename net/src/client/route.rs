//! The shard-aware routing decision: which connection an item request should take.
//! Pure: no sockets, no clocks (time comes in as milliseconds from the caller).
//!
//! An item request (PutItem, GetItem, DeleteItem, UpdateItem, Query) goes straight to the
//! shard that owns its key's partition: partition key value → [`partition_hash`] →
//! [`partition_index`] over the table's partitions → that partition's shard → its
//! address in `HelloOk::shard_addrs`. Everything else, and anything the router cannot
//! place (unknown table layout, missing or non-key partition key, a Query whose key
//! condition it cannot read, a shard that recently refused connections, the shard of the
//! shared connection itself), takes the shared connection, whose node forwards it. A
//! wrong guess costs a hop, never a wrong answer: every shard forwards what it does not
//! own.
//!
//! Not done here: opening connections (the drivers do), refreshing a stale partition map
//! (it is dropped when its table is deleted or not found, and learnt again).
#![deny(clippy::indexing_slicing)]

use std::collections::HashMap;

use crate::codec::{partition_index, HelloOk, PartitionInfo, Query, Request, TableDescription};
use crate::model::{partition_hash, Item, KeyValue, Value};

/// Where to send one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On the shared connection (the node forwards if needed).
    Shared,
    /// On the connection to this shard's own listener.
    Shard(u32),
    /// The table's partition map is unknown: describe the table, [`Router::learn_table`],
    /// then route again.
    Describe(String),
}

/// What the router knows of one table.
#[derive(Debug, Clone)]
struct TableRoute {
    partition_key: String,
    partitions: Vec<PartitionInfo>,
}

/// The routing state of one client: shard addresses, cached partition maps and shards
/// that refused a connection.
#[derive(Debug, Clone)]
pub struct Router {
    shard_aware: bool,
    home_shard: u32,
    shard_addrs: Vec<String>,
    tables: HashMap<String, TableRoute>,
    /// Per shard: do not try to connect before this time (ms); 0 when healthy.
    shard_retry_at_ms: Vec<u64>,
    shard_retry_ms: u64,
}

impl Router {
    /// A router for the node that answered `hello`; `shard_aware = false` sends every
    /// request on the shared connection; a shard that refused a connection is retried
    /// after `shard_retry_ms`.
    pub fn new(hello: &HelloOk, shard_aware: bool, shard_retry_ms: u64) -> Router {
        let mut router = Router {
            shard_aware,
            home_shard: hello.shard,
            shard_addrs: Vec::new(),
            tables: HashMap::new(),
            shard_retry_at_ms: Vec::new(),
            shard_retry_ms,
        };
        router.learn_node(hello);
        router
    }

    /// Takes in a (new) HelloOk of the shared connection: its shard and shard addresses.
    pub fn learn_node(&mut self, hello: &HelloOk) {
        self.home_shard = hello.shard;
        if self.shard_addrs != hello.shard_addrs {
            self.shard_addrs = hello.shard_addrs.clone();
            self.shard_retry_at_ms = vec![0; hello.shard_addrs.len()];
        }
    }

    /// The address of shard `shard`'s listener, if known.
    pub fn shard_addr(&self, shard: u32) -> Option<&str> {
        self.shard_addrs.get(shard as usize).map(String::as_str)
    }

    /// Caches a table's partition map.
    pub fn learn_table(&mut self, table: &TableDescription) {
        self.tables.insert(
            table.table.clone(),
            TableRoute {
                partition_key: table.schema.partition_key.name.clone(),
                partitions: table.partitions.clone(),
            },
        );
    }

    /// Drops a table's partition map (deleted, not found, or suspected stale).
    pub fn forget_table(&mut self, table: &str) {
        self.tables.remove(table);
    }

    /// Records that a connection to `shard` could not be opened at `now_ms`: route its
    /// requests on the shared connection for a while.
    pub fn shard_failed(&mut self, shard: u32, now_ms: u64) {
        if let Some(at) = self.shard_retry_at_ms.get_mut(shard as usize) {
            *at = now_ms.saturating_add(self.shard_retry_ms).max(1);
        }
    }

    /// Where `request` should go at `now_ms`.
    pub fn route(&self, request: &Request, now_ms: u64) -> Route {
        if !self.shard_aware {
            return Route::Shared;
        }
        let table = match request {
            Request::PutItem(r) => &r.table,
            Request::GetItem(r) => &r.table,
            Request::DeleteItem(r) => &r.table,
            Request::UpdateItem(r) => &r.table,
            Request::Query(r) => &r.table,
            _ => return Route::Shared,
        };
        let Some(route) = self.tables.get(table) else {
            return Route::Describe(table.clone());
        };
        let key_value = match request {
            Request::PutItem(r) => partition_value(&r.item, &route.partition_key),
            Request::GetItem(r) => partition_value(&r.key, &route.partition_key),
            Request::DeleteItem(r) => partition_value(&r.key, &route.partition_key),
            Request::UpdateItem(r) => partition_value(&r.key, &route.partition_key),
            Request::Query(r) => query_partition_value(r, &route.partition_key),
            _ => None,
        };
        let Some(key_value) = key_value else {
            return Route::Shared;
        };
        let Some(shard) = partition_shard(&route.partitions, partition_hash(&key_value)) else {
            return Route::Shared;
        };
        let healthy = self
            .shard_retry_at_ms
            .get(shard as usize)
            .is_some_and(|&retry_at| retry_at <= now_ms);
        if shard == self.home_shard || !healthy {
            Route::Shared
        } else {
            Route::Shard(shard)
        }
    }
}

/// The shard owning `hash` among `partitions` (in hash order): by [`partition_index`]
/// when the partitions are the even cut, else by searching the ranges.
pub fn partition_shard(partitions: &[PartitionInfo], hash: u64) -> Option<u32> {
    let count = u32::try_from(partitions.len()).ok().filter(|&n| n > 0)?;
    let contains = |p: &&PartitionInfo| p.hash_low <= hash && hash <= p.hash_high;
    let even = partitions
        .get(partition_index(hash, count) as usize)
        .filter(contains);
    let found = match even {
        Some(partition) => Some(partition),
        None => {
            let after = partitions.partition_point(|p| p.hash_low <= hash);
            after
                .checked_sub(1)
                .and_then(|i| partitions.get(i))
                .filter(contains)
        }
    };
    found.map(|p| p.shard)
}

fn key_value(value: &Value) -> Option<KeyValue> {
    match value {
        Value::S(s) => Some(KeyValue::S(s.clone())),
        Value::N(n) => Some(KeyValue::N(*n)),
        Value::B(b) => Some(KeyValue::B(b.clone())),
        _ => None,
    }
}

fn partition_value(item: &Item, partition_key: &str) -> Option<KeyValue> {
    item.get(partition_key).and_then(key_value)
}

/// The partition key value of a Query, read from its key condition: a clause
/// `name = :value` (or `:value = name`) whose name, after `#name` substitution, is the
/// partition key. `None` when no clause reads that way.
pub fn query_partition_value(query: &Query, partition_key: &str) -> Option<KeyValue> {
    let resolve = |operand: &str| -> String {
        let operand = operand.trim().trim_matches(|c| c == '(' || c == ')').trim();
        match query.args.names.get(operand) {
            Some(name) if operand.starts_with('#') => name.clone(),
            _ => operand.to_owned(),
        }
    };
    for clause in split_and(&query.key_condition) {
        let Some((left, right)) = clause.split_once('=') else {
            continue;
        };
        if left.ends_with(['<', '>', '!']) || right.starts_with(['=', '>']) {
            continue;
        }
        let (left, right) = (resolve(left), resolve(right));
        let placeholder = if left == partition_key {
            right
        } else if right == partition_key {
            left
        } else {
            continue;
        };
        if placeholder.starts_with(':') {
            return query.args.values.get(&placeholder).and_then(key_value);
        }
    }
    None
}

/// The clauses of an expression split at the word `AND` (any case).
fn split_and(expression: &str) -> Vec<String> {
    let mut clauses = vec![String::new()];
    for word in expression.split_whitespace() {
        if word.eq_ignore_ascii_case("and") {
            clauses.push(String::new());
        } else if let Some(clause) = clauses.last_mut() {
            clause.push_str(word);
            clause.push(' ');
        }
    }
    clauses
}
