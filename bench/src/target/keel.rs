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
//! codec), [`Connection::flush`] writes every buffer, and [`Connection::recv`] returns the
//! first operation whose answers are all in, whichever socket they came on and in
//! whatever order: a node answers by request id as each request finishes (a read served
//! from the cache overtakes a write waiting for its WAL batch), and the bench counts each
//! answer when it arrives. It reads a socket with a blocking read when only that socket
//! has requests in flight, and waits on all of them with `poll(2)` otherwise. No reader
//! threads, no channels: like the Redis driver, one thread per bench connection does all
//! the work.
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
    decode_response, hello, response_opcode, CreateTable, ErrorCode, ExprArgs, Frame, FrameDecoder,
    GetItem, HelloOk, Opcode, PutItem, Request, Response, ReturnValues, Scan, UpdateItem,
    FRAME_BODY_BYTES_MAX,
};
use keel_net::model::{Item, KeyAttribute, KeySchema, KeyType, Value};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

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

    fn request_timeout(&self) -> Duration {
        self.timeout
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

/// A request in flight: the operation it belongs to (the runner's `seq`), its place in
/// that operation, and whether it is a read (only a read can miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    op: u64,
    index: u8,
    is_read: bool,
}

/// One socket of a bench connection: the stream, the frames not yet written, the bytes
/// not yet decoded and the requests not yet answered.
struct Socket<S> {
    addr: String,
    timeout_ms: u64,
    stream: S,
    out: Vec<u8>,
    decoder: FrameDecoder,
    /// The id of the next request; every lower id has been queued.
    next_id: u64,
    /// The requests sent and not yet answered, by request id.
    pending: HashMap<u64, Pending>,
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
            pending: HashMap::new(),
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

    /// Encodes `request` into the write buffer as a request of `pending`'s operation and
    /// returns its request id; `None` (and nothing queued) when its body exceeds the frame
    /// limit.
    fn queue(&mut self, request: &Request, pending: Pending) -> Option<u64> {
        let id = self.next_id;
        encode_checked(id, request, &mut self.out).ok()?;
        self.next_id += 1;
        self.pending.insert(id, pending);
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

    /// The next whole answer frame among the bytes already read, with the request it
    /// answers; `None` when no whole frame is buffered. An answer to a request that is not
    /// in flight (one never sent, or answered before) is a protocol error.
    fn next_answer(&mut self) -> Result<Option<(Pending, Frame)>, DriverError> {
        let Some(frame) = self
            .decoder
            .next_frame()
            .map_err(|e| self.protocol(format!("bad frame: {e}")))?
        else {
            return Ok(None);
        };
        let got = frame.header.request_id;
        match self.pending.remove(&got) {
            Some(pending) => Ok(Some((pending, frame))),
            None => Err(self.protocol(format!(
                "an answer to request {got}, which is not in flight"
            ))),
        }
    }

    fn decode(&self, frame: &Frame) -> Result<Response, DriverError> {
        decode_response(frame).map_err(|e| {
            let got = frame.header.request_id;
            self.protocol(format!("the answer to request {got} does not decode: {e}"))
        })
    }

    /// The next answer, decoded (Hello, DescribeTable).
    fn answer(&mut self) -> Result<Option<(Pending, Response)>, DriverError> {
        match self.next_answer()? {
            Some((pending, frame)) => Ok(Some((pending, self.decode(&frame)?))),
            None => Ok(None),
        }
    }

    /// The next answer as the outcome it stands for ([`outcome_of`]). An item answer
    /// (GetItem's, and a write's) is judged by its presence flag alone, its item is not
    /// decoded: the frame decoder has checked the frame's crc32c, and the bench never looks
    /// at the item. Decoding it was ~15% of the generator's CPU under YCSB A, on the CPUs
    /// the server under test runs on. Every other answer is decoded in full.
    fn answer_outcome(&mut self) -> Result<Option<(Pending, Outcome)>, DriverError> {
        let Some((pending, frame)) = self.next_answer()? else {
            return Ok(None);
        };
        let presence = if frame.header.opcode == Opcode::Item as u8 {
            frame.body.first().copied()
        } else {
            None
        };
        let outcome = match presence {
            Some(0) if pending.is_read => Outcome::Miss,
            Some(0 | 1) => Outcome::Ok,
            _ => outcome_of(self.decode(&frame)?, pending.is_read),
        };
        Ok(Some((pending, outcome)))
    }

    /// Reads once into `chunk` (blocking up to the read timeout) and buffers what came.
    fn fill(&mut self, chunk: &mut [u8]) -> Result<(), DriverError> {
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
        Ok(())
    }

    /// Sends `request` alone (nothing else in flight) and waits for its answer (Hello,
    /// DescribeTable).
    fn call(&mut self, request: &Request, chunk: &mut [u8]) -> Result<Response, DriverError> {
        let alone = Pending {
            op: 0,
            index: 0,
            is_read: false,
        };
        if self.queue(request, alone).is_none() {
            return Err(self.protocol("request exceeds the frame limit".to_owned()));
        }
        self.flush()?;
        loop {
            if let Some((_, response)) = self.answer()? {
                return Ok(response);
            }
            self.fill(chunk)?;
        }
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

/// Waits up to `timeout` until one of the sockets `waiting` (indices into `sockets`) is
/// readable, closed or failed, and returns those indices. Nothing within `timeout` is a
/// [`DriverError::Timeout`].
fn poll_readable(
    sockets: &[Socket<TcpStream>],
    waiting: &[usize],
    timeout: Duration,
) -> Result<Vec<usize>, DriverError> {
    let polled: Vec<(usize, &Socket<TcpStream>)> = waiting
        .iter()
        .filter_map(|&i| Some((i, sockets.get(i)?)))
        .collect();
    let first = polled.first().map_or("keel", |(_, s)| s.addr.as_str());
    let io = |source: std::io::Error| {
        DriverError::from_socket("poll", first, timeout.as_millis() as u64, source)
    };
    let mut fds: Vec<PollFd<'_>> = polled
        .iter()
        .map(|(_, s)| PollFd::new(&s.stream, PollFlags::IN))
        .collect();
    let limit = Timespec::try_from(timeout)
        .map_err(|_| io(std::io::Error::other("request timeout out of range")))?;
    loop {
        match poll(&mut fds, Some(&limit)) {
            Ok(0) => return Err(io(std::io::ErrorKind::TimedOut.into())),
            Ok(_) => break,
            Err(Errno::INTR) => {}
            Err(e) => return Err(io(e.into())),
        }
    }
    Ok(polled
        .iter()
        .zip(&fds)
        .filter(|(_, fd)| !fd.revents().is_empty())
        .map(|((i, _), _)| *i)
        .collect())
}

/// An operation in flight: its requests not yet answered, and its outcome so far.
struct OpState {
    unanswered: u8,
    outcome: Outcome,
}

/// One bench connection: its sockets, the router that picks one per request, and the
/// requests in flight.
struct KeelConnection {
    table: String,
    values: Arc<ValuePool>,
    prng: Prng,
    field_count: u32,
    field_bytes: usize,
    updates: UpdateTexts,
    timeout: Duration,
    router: Router,
    /// The router's clock (for shards that refused a connection).
    started: Instant,
    /// The shared connection first, then shard connections in the order they opened.
    sockets: Vec<Socket<TcpStream>>,
    /// Each shard connection's index in `sockets`.
    shard_sockets: HashMap<u32, usize>,
    /// The operations in flight, by `seq`.
    ops: HashMap<u64, OpState>,
    /// Operations whose answers are all in, in the order they completed.
    done: VecDeque<(u64, Outcome)>,
    /// The indices of the sockets with requests in flight (reused between waits).
    waiting: Vec<usize>,
    /// The read buffer, shared by the sockets.
    chunk: Vec<u8>,
}

/// The update expressions and value placeholders of the bench's UpdateItems, written once
/// per connection instead of formatted for every operation.
struct UpdateTexts {
    /// `SET fieldK = :vK`, by field.
    one: Vec<String>,
    /// `SET field0 = :v0, field1 = :v1, ...`: every field.
    all: String,
    /// `:vK`, by field.
    placeholders: Vec<String>,
}

impl UpdateTexts {
    fn new(field_count: u32) -> UpdateTexts {
        let placeholders: Vec<String> = (0..field_count).map(|i| format!(":v{i}")).collect();
        let sets: Vec<String> = (0..field_count)
            .zip(&placeholders)
            .map(|(i, p)| format!("{} = {p}", field_name(i)))
            .collect();
        UpdateTexts {
            one: sets.iter().map(|s| format!("SET {s}")).collect(),
            all: format!("SET {}", sets.join(", ")),
            placeholders,
        }
    }

    fn one(&self, field: u32) -> String {
        match self.one.get(field as usize) {
            Some(text) => text.clone(),
            None => format!("SET {} = :v{field}", field_name(field)),
        }
    }

    fn placeholder(&self, field: u32) -> String {
        match self.placeholders.get(field as usize) {
            Some(text) => text.clone(),
            None => format!(":v{field}"),
        }
    }
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
            updates: UpdateTexts::new(spec.field_count),
            timeout: driver.timeout,
            router,
            started: Instant::now(),
            sockets: vec![shared],
            shard_sockets: HashMap::new(),
            ops: HashMap::new(),
            done: VecDeque::new(),
            waiting: Vec::new(),
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

    /// Queues `request`, request `index` of operation `op`, on its socket; a request
    /// too large to send fails at once (`too_large`).
    fn queue(&mut self, op: u64, index: u8, request: &Request) {
        let pending = Pending {
            op,
            index,
            is_read: matches!(request, Request::GetItem(_)),
        };
        let socket = self.socket_for(request);
        let queued = self
            .sockets
            .get_mut(socket)
            .and_then(|s| s.queue(request, pending));
        if queued.is_none() {
            self.settle(pending, Outcome::Error("too_large".to_owned()));
        }
    }

    /// Folds the outcome of one request into its operation's; an operation whose answers
    /// are all in moves to `done`.
    fn settle(&mut self, pending: Pending, this: Outcome) {
        let Some(state) = self.ops.get_mut(&pending.op) else {
            return;
        };
        let so_far = std::mem::replace(&mut state.outcome, Outcome::Ok);
        state.outcome = combine(so_far, usize::from(pending.index), this);
        state.unanswered = state.unanswered.saturating_sub(1);
        if state.unanswered == 0 {
            if let Some(state) = self.ops.remove(&pending.op) {
                self.done.push_back((pending.op, state.outcome));
            }
        }
    }

    /// Settles every answer already read, on every socket; whether there was any.
    fn settle_buffered(&mut self) -> Result<bool, DriverError> {
        let mut any = false;
        for i in 0..self.sockets.len() {
            while let Some((pending, outcome)) = match self.sockets.get_mut(i) {
                Some(socket) => socket.answer_outcome()?,
                None => None,
            } {
                self.settle(pending, outcome);
                any = true;
            }
        }
        Ok(any)
    }

    /// Waits until a socket with requests in flight has bytes and reads them: a blocking
    /// read when only one socket is waited on, `poll(2)` over them otherwise.
    fn read_some(&mut self) -> Result<(), DriverError> {
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.clear();
        waiting.extend(
            self.sockets
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.pending.is_empty())
                .map(|(i, _)| i),
        );
        let result = self.read_ready(&waiting);
        self.waiting = waiting;
        result
    }

    fn read_ready(&mut self, waiting: &[usize]) -> Result<(), DriverError> {
        let &[first, ..] = waiting else {
            return Err(DriverError::Protocol {
                addr: "keel".to_owned(),
                message: "operations in flight with no request waiting for an answer".to_owned(),
            });
        };
        if waiting.len() > 1 {
            for i in poll_readable(&self.sockets, waiting, self.timeout)? {
                if let Some(s) = self.sockets.get_mut(i) {
                    s.fill(&mut self.chunk)?;
                }
            }
            return Ok(());
        }
        match self.sockets.get_mut(first) {
            Some(s) => s.fill(&mut self.chunk),
            None => Ok(()),
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
        let mut args = ExprArgs::default();
        let update = match fields {
            Fields::All => {
                for i in 0..self.field_count {
                    let value = self.value();
                    args.values.insert(self.updates.placeholder(i), value);
                }
                self.updates.all.clone()
            }
            Fields::One(i) => {
                let value = self.value();
                args.values.insert(self.updates.placeholder(i), value);
                self.updates.one(i)
            }
        };
        Request::UpdateItem(UpdateItem {
            table: self.table.clone(),
            key: key_item(n),
            update,
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
    fn poll_fds<'a>(&'a self, out: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        out.extend(
            self.sockets
                .iter()
                .filter(|s| !s.pending.is_empty())
                .map(|s| PollFd::new(&s.stream, PollFlags::IN)),
        );
        None
    }

    fn read_polled(&mut self, revents: &[PollFlags]) -> Result<(), DriverError> {
        let waiting = self.sockets.iter_mut().filter(|s| !s.pending.is_empty());
        for (s, r) in waiting.zip(revents) {
            if !r.is_empty() {
                s.fill(&mut self.chunk)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, seq: u64, op: &Operation) -> Result<(), DriverError> {
        if self.ops.contains_key(&seq) {
            return Err(DriverError::Protocol {
                addr: "keel".to_owned(),
                message: format!("operation {seq} is already in flight"),
            });
        }
        let requests = match *op {
            Operation::ReadModifyWrite { key, fields } => {
                vec![self.get(key), self.update(key, fields)]
            }
            Operation::Read { key } => vec![self.get(key)],
            Operation::Update { key, fields } => vec![self.update(key, fields)],
            Operation::Insert { key } => vec![self.put(key)],
            Operation::Scan { key, count } => vec![self.scan(key, count)],
        };
        self.ops.insert(
            seq,
            OpState {
                unanswered: requests.len() as u8,
                outcome: Outcome::Ok,
            },
        );
        for (index, request) in requests.iter().enumerate() {
            self.queue(seq, index as u8, request);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        for socket in &mut self.sockets {
            socket.flush()?;
        }
        Ok(())
    }

    fn recv_ready(&mut self) -> Result<Option<(u64, Outcome)>, DriverError> {
        if self.done.is_empty() {
            self.settle_buffered()?;
        }
        Ok(self.done.pop_front())
    }

    fn recv(&mut self) -> Result<(u64, Outcome), DriverError> {
        loop {
            if let Some(done) = self.done.pop_front() {
                return Ok(done);
            }
            if self.ops.is_empty() {
                return Err(DriverError::Protocol {
                    addr: "keel".to_owned(),
                    message: "recv with nothing in flight".to_owned(),
                });
            }
            if !self.settle_buffered()? {
                self.read_some()?;
            }
        }
    }
}

#[cfg(test)]
mod tests;
