//! The keel driver: keel's native blocking client (`keel_net::client::Client`),
//! pipelined, shard-aware.
//!
//! Each bench connection owns one `Client`: a shared connection to the node plus one
//! connection per shard it sends to, each with its own reader thread. Requests are sent
//! as they are queued (`Client::send`), and answers are waited for in send order
//! (`Pending::wait`); an answer that arrives before an older one is noticed only once the
//! older one is in, so its latency is over- rather than under-stated.
//!
//! The table (default `usertable`) has the string partition key `id` and no sort key; a
//! record is one item `{id, field0.., fieldN}` of string fields. Read is a consistent
//! `GetItem` (a missing item is a miss); update is `UpdateItem` with
//! `SET fieldK = :v` (every field with `write_all_fields`); insert is `PutItem` of the
//! whole item; read-modify-write is `GetItem` and `UpdateItem` back to back. A scan is
//! `Scan` with `limit = count` and `start_key` = the start record: keel's Scan walks
//! items in partition-key **hash order**, so it reads `count` items that follow the start
//! record in storage order, not the next keys in key order as YCSB's scan does. The cost
//! (one request, `count` items read in order from the tree) is the same; the items are
//! not.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use keel_net::client::{Client, ClientError, ClientOptions, Pending};
use keel_net::codec::{
    CreateTable, ErrorCode, ExprArgs, GetItem, PutItem, Request, Response, ReturnValues, Scan,
    UpdateItem,
};
use keel_net::model::{Item, KeyAttribute, KeySchema, KeyType, Value};

use crate::histogram::Outcome;
use crate::prng::Prng;
use crate::target::{Connection, Driver, DriverError, DriverOptions};
use crate::workload::{field_name, key_name, Fields, Operation, ValuePool, WorkloadSpec};

/// The partition key attribute of the bench table.
pub const KEY_ATTRIBUTE: &str = "id";

/// A keel node at `host:port`.
#[derive(Debug, Clone)]
pub struct KeelDriver {
    addr: String,
    table: String,
    partitions: Option<u32>,
    timeout: Duration,
}

impl KeelDriver {
    /// A driver for the node at `addr` (`host:port` of any shard).
    pub fn new(addr: &str, options: &DriverOptions) -> KeelDriver {
        KeelDriver {
            addr: addr.to_owned(),
            table: options.table.clone(),
            partitions: options.partitions,
            timeout: Duration::from_millis(options.request_timeout_ms),
        }
    }

    fn client(&self) -> Result<Client, DriverError> {
        let options = ClientOptions {
            request_timeout: self.timeout,
            client_name: "keel-bench".to_owned(),
            ..ClientOptions::default()
        };
        Client::connect(&self.addr, options).map_err(|e| DriverError::Io {
            op: "connect",
            addr: self.addr.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

impl Driver for KeelDriver {
    fn describe(&self) -> String {
        format!("keel://{}", self.addr)
    }

    fn prepare(&self, _spec: &WorkloadSpec) -> Result<(), DriverError> {
        let client = self.client()?;
        let request = CreateTable {
            table: self.table.clone(),
            schema: KeySchema {
                partition_key: KeyAttribute::new(KEY_ATTRIBUTE, KeyType::S),
                sort_key: None,
            },
            partitions: self.partitions,
        };
        match client.create_table(request) {
            Ok(_) => Ok(()),
            Err(ClientError::Server(e)) if e.code == ErrorCode::ResourceInUse => Ok(()),
            Err(e) => Err(DriverError::Prepare {
                target: self.describe(),
                message: format!("creating table {}: {e}", self.table),
            }),
        }
    }

    fn connect(
        &self,
        spec: &WorkloadSpec,
        values: Arc<ValuePool>,
        seed: u64,
    ) -> Result<Box<dyn Connection>, DriverError> {
        Ok(Box::new(KeelConnection {
            client: self.client()?,
            table: self.table.clone(),
            values,
            prng: Prng::new(seed),
            field_count: spec.field_count,
            field_bytes: spec.field_bytes as usize,
            in_flight: VecDeque::new(),
        }))
    }
}

/// A request sent (and whether it is a read), or the reason it could not be.
type Sent = Result<(Pending, bool), String>;

struct KeelConnection {
    client: Client,
    table: String,
    values: Arc<ValuePool>,
    prng: Prng,
    field_count: u32,
    field_bytes: usize,
    /// The requests of each operation in flight, oldest first.
    in_flight: VecDeque<Vec<Sent>>,
}

fn key_item(n: u64) -> Item {
    let mut key = Item::new();
    key.insert(KEY_ATTRIBUTE.to_owned(), Value::S(key_name(n)));
    key
}

/// The error kind counted for a client error.
fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Timeout { .. } => "timeout".to_owned(),
        ClientError::ConnectionLost { .. } | ClientError::Io { .. } => "connection".to_owned(),
        ClientError::Server(e) => format!("server:{:?}", e.code),
        ClientError::Protocol(_) => "protocol".to_owned(),
        ClientError::RequestTooLarge { .. } => "too_large".to_owned(),
        _ => "client".to_owned(),
    }
}

/// The outcome an answer stands for; only a read (`is_read`) can miss: a write without
/// `ReturnValues` answers an empty item too.
fn outcome_of(answer: Result<Response, ClientError>, is_read: bool) -> Outcome {
    match answer {
        Ok(Response::Item(None)) if is_read => Outcome::Miss,
        Ok(Response::Item(_)) | Ok(Response::Items(_)) => Outcome::Ok,
        Ok(Response::Error(e)) | Err(ClientError::Server(e)) => {
            if e.code == ErrorCode::Throttled {
                Outcome::Throttled
            } else {
                Outcome::Error(format!("server:{:?}", e.code))
            }
        }
        Ok(other) => Outcome::Error(format!("unexpected answer {}", variant_name(&other))),
        Err(e) => Outcome::Error(error_kind(&e)),
    }
}

fn variant_name(response: &Response) -> &'static str {
    match response {
        Response::HelloOk(_) => "HelloOk",
        Response::Table(_) => "Table",
        Response::TableNames { .. } => "TableNames",
        Response::BatchGet(_) => "BatchGet",
        Response::BatchWrite { .. } => "BatchWrite",
        _ => "other",
    }
}

impl KeelConnection {
    fn value(&mut self) -> Value {
        Value::S(
            self.values
                .value(&mut self.prng, self.field_bytes)
                .to_owned(),
        )
    }

    fn get(&self, n: u64) -> Request {
        Request::GetItem(GetItem {
            table: self.table.clone(),
            key: key_item(n),
            projection: None,
            args: ExprArgs::default(),
            consistent: true,
        })
    }

    fn update(&mut self, n: u64, fields: Fields) -> Request {
        let indices: Vec<u32> = match fields {
            Fields::All => (0..self.field_count).collect(),
            Fields::One(i) => vec![i],
        };
        let mut args = ExprArgs::default();
        let mut sets = Vec::with_capacity(indices.len());
        for i in indices {
            let placeholder = format!(":v{i}");
            sets.push(format!("{} = {placeholder}", field_name(i)));
            let value = self.value();
            args.values.insert(placeholder, value);
        }
        Request::UpdateItem(UpdateItem {
            table: self.table.clone(),
            key: key_item(n),
            update: format!("SET {}", sets.join(", ")),
            condition: None,
            args,
            return_values: ReturnValues::None,
        })
    }

    fn put(&mut self, n: u64) -> Request {
        let mut item = key_item(n);
        for i in 0..self.field_count {
            let value = self.value();
            item.insert(field_name(i), value);
        }
        Request::PutItem(PutItem {
            table: self.table.clone(),
            item,
            condition: None,
            args: ExprArgs::default(),
            return_values: ReturnValues::None,
        })
    }

    fn scan(&self, n: u64, count: u32) -> Request {
        Request::Scan(Scan {
            table: self.table.clone(),
            filter: None,
            projection: None,
            args: ExprArgs::default(),
            limit: Some(count),
            start_key: Some(key_item(n)),
            segment: 0,
            total_segments: 1,
            consistent: true,
        })
    }

    fn send_one(&self, request: Request) -> Sent {
        let is_read = matches!(request, Request::GetItem(_));
        self.client
            .send(request)
            .map(|p| (p, is_read))
            .map_err(|e| error_kind(&e))
    }
}

impl Connection for KeelConnection {
    fn send(&mut self, op: &Operation) -> Result<(), DriverError> {
        let requests = match *op {
            Operation::Read { key } => vec![self.get(key)],
            Operation::Update { key, fields } => vec![self.update(key, fields)],
            Operation::Insert { key } => vec![self.put(key)],
            Operation::Scan { key, count } => vec![self.scan(key, count)],
            Operation::ReadModifyWrite { key, fields } => {
                vec![self.get(key), self.update(key, fields)]
            }
        };
        let sent = requests.into_iter().map(|r| self.send_one(r)).collect();
        self.in_flight.push_back(sent);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        // `Client::send` writes each request at once.
        Ok(())
    }

    fn recv(&mut self) -> Result<Outcome, DriverError> {
        let Some(sent) = self.in_flight.pop_front() else {
            return Err(DriverError::Protocol {
                addr: "keel".to_owned(),
                message: "recv with nothing in flight".to_owned(),
            });
        };
        let mut outcome = Outcome::Ok;
        for (i, s) in sent.into_iter().enumerate() {
            let this = match s {
                Ok((pending, is_read)) => outcome_of(pending.wait(), is_read),
                Err(kind) => Outcome::Error(kind),
            };
            match (&outcome, this) {
                (Outcome::Error(_), _) => {}
                (_, e @ (Outcome::Error(_) | Outcome::Throttled)) => outcome = e,
                (_, Outcome::Miss) if i == 0 => outcome = Outcome::Miss,
                _ => {}
            }
        }
        Ok(outcome)
    }
}
