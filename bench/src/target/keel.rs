//! The keel driver: keel's wire protocol spoken on the bench connection's own thread,
//! pipelined and shard-aware, with no helper threads.
//!
//! A bench connection owns plain `TcpStream`s (TCP_NODELAY): one to the node it was given
//! (the shared connection) and, opened on first use, one to each other shard's own
//! listener. Each socket starts with Hello (request id 0) and numbers its requests from 1,
//! as keel's blocking client does. Where a request goes is decided by keel's own router
//! (`keel_net::client::Router`, the one the blocking client uses): GetItem, PutItem and
//! UpdateItem go to the shard that owns the key's partition (the partition map comes from
//! a DescribeTable when the connection opens), Scan and whatever the router cannot place go
//! to the shared connection, whose node forwards them. A shard whose port refuses a
//! connection is reached through the shared connection for a while, as in the blocking
//! client.
//!
//! [`Connection::send`] encodes a request into its socket's write buffer (keel_net's
//! codec), [`Connection::flush`] writes every buffer, and [`Connection::recv`] reads, for
//! each request of the oldest operation, the socket that request went to until the answer
//! with its request id is in. A socket's answers may come out of order: those that arrive
//! before their turn are kept by request id. No reader threads, no channels: like the
//! Redis driver, one thread per bench connection does all the work. Outcomes are still
//! taken in send order, so an answer that overtakes an older one is counted when the
//! older one is in: its latency is over-, never under-stated.
//!
//! A read that waits longer than the request timeout ([`DriverError::Timeout`]), a socket
//! that breaks ([`DriverError::Io`]) or an answer that does not decode
//! ([`DriverError::Protocol`]) makes the whole bench connection unusable: the runner
//! counts every operation in flight on it as failed with that kind and opens a new one. A
//! request too large for one frame is not sent and fails alone (`too_large`).
//! [`Driver::prepare`] creates the table with the blocking client
//! (`keel_net::client::Client`).
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
//! not. A throttled answer counts as a throttle, any other error answer as
//! `server:<code>`.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_net::client::{
    connect_tcp, encode_checked, typed, Client, ClientError, ClientOptions, Route, Router,
};
use keel_net::codec::{
    decode_response, hello, response_opcode, CreateTable, ErrorCode, ExprArgs, FrameDecoder,
    GetItem, HelloOk, PutItem, Request, Response, ReturnValues, Scan, UpdateItem,
    FRAME_BODY_BYTES_MAX,
};
use keel_net::model::{Item, KeyAttribute, KeySchema, KeyType, Value};

use crate::histogram::Outcome;
use crate::prng::Prng;
use crate::target::{Connection, Driver, DriverError, DriverOptions};
use crate::workload::{field_name, key_name, Fields, Operation, ValuePool, WorkloadSpec};

/// The partition key attribute of the bench table.
pub const KEY_ATTRIBUTE: &str = "id";

/// The client name sent in Hello.
const CLIENT_NAME: &str = "keel-bench";

/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

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
            client_name: CLIENT_NAME.to_owned(),
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
        Ok(Box::new(KeelConnection::open(self, spec, values, seed)?))
    }
}

/// One socket of a bench connection: the stream, the frames not yet written, the bytes
/// not yet decoded and the answers that arrived before their turn.
struct Socket<S> {
    addr: String,
    timeout_ms: u64,
    stream: S,
    out: Vec<u8>,
    decoder: FrameDecoder,
    /// The id of the next request; every lower id has been queued.
    next_id: u64,
    /// Answers that arrived before an older request's, by request id.
    early: HashMap<u64, Response>,
}

impl<S: Read + Write> Socket<S> {
    fn new(addr: &str, timeout_ms: u64, stream: S) -> Socket<S> {
        Socket {
            addr: addr.to_owned(),
            timeout_ms,
            stream,
            out: Vec::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(FRAME_BODY_BYTES_MAX),
            next_id: 0,
            early: HashMap::new(),
        }
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> DriverError {
        DriverError::from_socket(op, &self.addr, self.timeout_ms, source)
    }

    fn protocol(&self, message: String) -> DriverError {
        DriverError::Protocol {
            addr: self.addr.clone(),
            message,
        }
    }

    /// Encodes `request` into the write buffer and returns its request id; `None` (and
    /// nothing queued) when its body exceeds the frame limit.
    fn queue(&mut self, request: &Request) -> Option<u64> {
        let id = self.next_id;
        encode_checked(id, request, &mut self.out).ok()?;
        self.next_id += 1;
        Some(id)
    }

    /// Writes the queued frames.
    fn flush(&mut self) -> Result<(), DriverError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = self.stream.write_all(&self.out);
        self.out.clear();
        written.map_err(|source| self.io("write", source))
    }

    /// The answer to request `id`, reading (in `chunk`-sized reads) until it is in. Every
    /// older request of this socket must have had its answer taken: an answer to one of
    /// them, to an id not yet sent, or a second answer to an id, is a protocol error.
    fn wait(&mut self, id: u64, chunk: &mut [u8]) -> Result<Response, DriverError> {
        if let Some(response) = self.early.remove(&id) {
            return Ok(response);
        }
        loop {
            while let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|e| self.protocol(format!("bad frame: {e}")))?
            {
                let got = frame.header.request_id;
                let response = decode_response(&frame).map_err(|e| {
                    self.protocol(format!("the answer to request {got} does not decode: {e}"))
                })?;
                if got == id {
                    return Ok(response);
                }
                if got < id || got >= self.next_id || self.early.contains_key(&got) {
                    let message = format!("an answer to request {got}, which is not in flight");
                    return Err(self.protocol(message));
                }
                self.early.insert(got, response);
            }
            let n = loop {
                match self.stream.read(chunk) {
                    Ok(0) => {
                        let eof = std::io::ErrorKind::UnexpectedEof;
                        let closed = std::io::Error::new(eof, "closed by the node");
                        return Err(self.io("read", closed));
                    }
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.io("read", e)),
                }
            };
            self.decoder.feed(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Sends `request` alone and waits for its answer (Hello, DescribeTable).
    fn call(&mut self, request: &Request, chunk: &mut [u8]) -> Result<Response, DriverError> {
        let Some(id) = self.queue(request) else {
            return Err(self.protocol("request exceeds the frame limit".to_owned()));
        };
        self.flush()?;
        self.wait(id, chunk)
    }
}

/// Connects to `addr` (TCP_NODELAY, reads and writes bounded by `timeout`) and exchanges
/// Hello.
fn open_socket(
    addr: &str,
    timeout: Duration,
    chunk: &mut [u8],
) -> Result<(Socket<TcpStream>, HelloOk), DriverError> {
    let io = |op: &'static str| {
        let addr = addr.to_owned();
        move |source| DriverError::Io { op, addr, source }
    };
    let stream =
        connect_tcp(addr, ClientOptions::default().connect_timeout).map_err(|(op, e)| io(op)(e))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io("set_read_timeout"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io("set_write_timeout"))?;
    let mut socket = Socket::new(addr, timeout.as_millis() as u64, stream);
    let answer = socket.call(&Request::Hello(hello(CLIENT_NAME)), chunk)?;
    let ok = typed::hello_ok(answer).map_err(|e| socket.protocol(format!("Hello: {e}")))?;
    Ok((socket, ok))
}

/// A request of an operation in flight: queued on a socket, or failed unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Queued as `id` on `sockets[socket]`; only a read can miss.
    Queued {
        socket: usize,
        id: u64,
        is_read: bool,
    },
    /// Not sent; the error kind it counts as.
    Failed(&'static str),
}

/// One bench connection: its sockets, the router that picks one per request, and the
/// requests in flight.
struct KeelConnection {
    table: String,
    values: Arc<ValuePool>,
    prng: Prng,
    field_count: u32,
    field_bytes: usize,
    timeout: Duration,
    router: Router,
    /// The router's clock (for shards that refused a connection).
    started: Instant,
    /// The shared connection first, then shard connections in the order they opened.
    sockets: Vec<Socket<TcpStream>>,
    /// Each shard connection's index in `sockets`.
    shard_sockets: HashMap<u32, usize>,
    /// The requests in flight, oldest first.
    sent: VecDeque<Sent>,
    /// The number of requests of each operation in flight, oldest first.
    ops: VecDeque<u8>,
    /// The read buffer, shared by the sockets.
    chunk: Vec<u8>,
}

fn key_item(n: u64) -> Item {
    let mut key = Item::new();
    key.insert(KEY_ATTRIBUTE.to_owned(), Value::S(key_name(n)));
    key
}

/// The outcome an answer stands for; only a read (`is_read`) can miss: a write without
/// `ReturnValues` answers an empty item too.
fn outcome_of(answer: Response, is_read: bool) -> Outcome {
    match answer {
        Response::Item(None) if is_read => Outcome::Miss,
        Response::Item(_) | Response::Items(_) => Outcome::Ok,
        Response::Error(e) if e.code == ErrorCode::Throttled => Outcome::Throttled,
        Response::Error(e) => Outcome::Error(format!("server:{:?}", e.code)),
        other => Outcome::Error(format!("unexpected answer {:?}", response_opcode(&other))),
    }
}

/// Folds the outcome of request `i` of an operation into the operation's: any error or
/// throttle wins (the first error stays), and the first request decides a miss.
fn combine(outcome: Outcome, i: usize, this: Outcome) -> Outcome {
    match (outcome, this) {
        (e @ Outcome::Error(_), _) => e,
        (_, e @ (Outcome::Error(_) | Outcome::Throttled)) => e,
        (_, Outcome::Miss) if i == 0 => Outcome::Miss,
        (outcome, _) => outcome,
    }
}

impl KeelConnection {
    /// Opens the shared connection and learns the table's partition map.
    fn open(
        driver: &KeelDriver,
        spec: &WorkloadSpec,
        values: Arc<ValuePool>,
        seed: u64,
    ) -> Result<KeelConnection, DriverError> {
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let (mut shared, ok) = open_socket(&driver.addr, driver.timeout, &mut chunk)?;
        let defaults = ClientOptions::default();
        let mut router = Router::new(&ok, true, defaults.shard_retry.as_millis() as u64);
        let describe = Request::DescribeTable {
            table: driver.table.clone(),
        };
        // A table the node does not know stays unrouted: its requests take the shared
        // connection and the node answers them.
        if let Ok(table) = typed::table(shared.call(&describe, &mut chunk)?) {
            router.learn_table(&table);
        }
        Ok(KeelConnection {
            table: driver.table.clone(),
            values,
            prng: Prng::new(seed),
            field_count: spec.field_count,
            field_bytes: spec.field_bytes as usize,
            timeout: driver.timeout,
            router,
            started: Instant::now(),
            sockets: vec![shared],
            shard_sockets: HashMap::new(),
            sent: VecDeque::new(),
            ops: VecDeque::new(),
            chunk,
        })
    }

    /// The index in `sockets` of the socket `request` should take, opening a shard's
    /// connection on first use; the shared connection (0) when the router says so or the
    /// shard's cannot be opened.
    fn socket_for(&mut self, request: &Request) -> usize {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let shard = match self.router.route(request, now_ms) {
            Route::Shard(shard) => shard,
            Route::Shared | Route::Describe(_) => return 0,
        };
        if let Some(&index) = self.shard_sockets.get(&shard) {
            return index;
        }
        let Some(addr) = self.router.shard_addr(shard).map(str::to_owned) else {
            return 0;
        };
        match open_socket(&addr, self.timeout, &mut self.chunk) {
            Ok((socket, _)) => {
                self.sockets.push(socket);
                let index = self.sockets.len() - 1;
                self.shard_sockets.insert(shard, index);
                index
            }
            Err(_) => {
                self.router.shard_failed(shard, now_ms);
                0
            }
        }
    }

    /// Queues `request` on its socket.
    fn queue(&mut self, request: &Request) {
        let is_read = matches!(request, Request::GetItem(_));
        let socket = self.socket_for(request);
        let queued = self.sockets.get_mut(socket).and_then(|s| s.queue(request));
        self.sent.push_back(match queued {
            Some(id) => Sent::Queued {
                socket,
                id,
                is_read,
            },
            None => Sent::Failed("too_large"),
        });
    }

    /// The outcome of the oldest request in flight.
    fn take(&mut self) -> Result<Outcome, DriverError> {
        match self.sent.pop_front() {
            Some(Sent::Queued {
                socket,
                id,
                is_read,
            }) => {
                let Some(s) = self.sockets.get_mut(socket) else {
                    return Err(DriverError::Protocol {
                        addr: "keel".to_owned(),
                        message: format!("no socket {socket}"),
                    });
                };
                let answer = s.wait(id, &mut self.chunk)?;
                Ok(outcome_of(answer, is_read))
            }
            Some(Sent::Failed(kind)) => Ok(Outcome::Error(kind.to_owned())),
            None => Err(DriverError::Protocol {
                addr: "keel".to_owned(),
                message: "recv with nothing in flight".to_owned(),
            }),
        }
    }

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
}

impl Connection for KeelConnection {
    fn send(&mut self, op: &Operation) -> Result<(), DriverError> {
        let requests = match *op {
            Operation::Read { key } => {
                let get = self.get(key);
                self.queue(&get);
                1
            }
            Operation::Update { key, fields } => {
                let update = self.update(key, fields);
                self.queue(&update);
                1
            }
            Operation::Insert { key } => {
                let put = self.put(key);
                self.queue(&put);
                1
            }
            Operation::Scan { key, count } => {
                let scan = self.scan(key, count);
                self.queue(&scan);
                1
            }
            Operation::ReadModifyWrite { key, fields } => {
                let get = self.get(key);
                self.queue(&get);
                let update = self.update(key, fields);
                self.queue(&update);
                2
            }
        };
        self.ops.push_back(requests);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        for socket in &mut self.sockets {
            socket.flush()?;
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Outcome, DriverError> {
        let Some(requests) = self.ops.pop_front() else {
            return Err(DriverError::Protocol {
                addr: "keel".to_owned(),
                message: "recv with nothing in flight".to_owned(),
            });
        };
        let mut outcome = Outcome::Ok;
        for i in 0..usize::from(requests) {
            let this = self.take()?;
            outcome = combine(outcome, i, this);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
