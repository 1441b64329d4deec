//! The blocking client: std sockets, one writer path and one reader thread per
//! connection, answers matched to requests by id so that many can be in flight.
//!
//! A [`Client`] holds a shared connection to the node it was given (re-opened on the next
//! request after it breaks) and, when shard-aware, a lazily opened connection per shard.
//! Each connection starts with Hello on request id 0 and numbers its requests from 1.
//!
//! Invariants: every request registered on a connection gets exactly one reply: its
//! answer, `Timeout` (the waiter gave up and unregistered), or `ConnectionLost` (the
//! reader or a writer found the connection broken and failed everything in flight).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::route::{Route, Router};
use crate::client::{encode_checked, request_table, typed, ClientError, ClientOptions};
use crate::codec::{
    decode_response, hello, BatchGetItem, BatchGetOk, BatchWriteItem, CreateTable, DeleteItem,
    ErrorCode, FrameDecoder, GetItem, HelloOk, ItemPage, PutItem, Query, Request, Response, Scan,
    TableDescription, TableWrites, UpdateItem, FRAME_BODY_BYTES_MAX,
};
use crate::model::Item;

type Reply = Result<Response, ClientError>;

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere aborts the process (panic = "abort"), so poisoning cannot be seen
    // in release builds; in tests, carry on with the data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The requests in flight on one connection.
#[derive(Default)]
struct InFlight {
    next_id: u64,
    waiting: HashMap<u64, SyncSender<Reply>>,
    /// Why the connection is closed, once it is.
    closed: Option<String>,
}

struct Shared {
    addr: String,
    in_flight: Mutex<InFlight>,
}

impl Shared {
    fn lost(&self, reason: &str) -> ClientError {
        ClientError::ConnectionLost {
            addr: self.addr.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Marks the connection closed and fails everything in flight.
    fn fail_all(&self, reason: String) {
        let mut in_flight = lock(&self.in_flight);
        for (_, waiter) in in_flight.waiting.drain() {
            // A waiter that timed out meanwhile has dropped its receiver: ignore.
            let _ = waiter.try_send(Err(self.lost(&reason)));
        }
        in_flight.closed.get_or_insert(reason);
    }

    fn deliver(&self, request_id: u64, reply: Reply) {
        let waiter = lock(&self.in_flight).waiting.remove(&request_id);
        if let Some(waiter) = waiter {
            let _ = waiter.try_send(reply);
        }
        // No waiter: a late answer to a request that timed out. Dropped.
    }
}

/// One connection: a socket, its writer lock and its reader thread.
struct Connection {
    shared: Arc<Shared>,
    writer: Mutex<TcpStream>,
    reader: Mutex<Option<JoinHandle<()>>>,
    request_timeout: Duration,
}

/// Connects a std TCP socket to the first address `addr` resolves to that accepts within
/// `timeout`, with TCP_NODELAY; an error names the step that failed (`resolve`,
/// `connect`, `set_nodelay`).
pub fn connect_tcp(
    addr: &str,
    timeout: Duration,
) -> Result<TcpStream, (&'static str, std::io::Error)> {
    let mut last_error = None;
    for socket_addr in addr.to_socket_addrs().map_err(|e| ("resolve", e))? {
        match TcpStream::connect_timeout(&socket_addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|e| ("set_nodelay", e))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => ("connect", e),
        None => (
            "resolve",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        ),
    })
}

impl Connection {
    /// Connects to `addr`, starts the reader thread and exchanges Hello.
    fn open(
        addr: &str,
        options: &ClientOptions,
    ) -> Result<(Arc<Connection>, HelloOk), ClientError> {
        let io = |op: &'static str| {
            let addr = addr.to_owned();
            move |source| ClientError::Io { op, addr, source }
        };
        let stream = connect_tcp(addr, options.connect_timeout).map_err(|(op, e)| io(op)(e))?;
        // A node that stops reading must not hold the writer lock forever.
        stream
            .set_write_timeout(Some(options.request_timeout))
            .map_err(io("set_write_timeout"))?;
        let read_stream = stream.try_clone().map_err(io("clone socket"))?;
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            in_flight: Mutex::new(InFlight {
                next_id: 1,
                ..InFlight::default()
            }),
        });
        let reader_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name(format!("keel-client-reader {addr}"))
            .spawn(move || read_loop(read_stream, &reader_shared))
            .map_err(io("spawn reader thread"))?;
        let connection = Arc::new(Connection {
            shared,
            writer: Mutex::new(stream),
            reader: Mutex::new(Some(reader)),
            request_timeout: options.request_timeout,
        });
        let request = Request::Hello(hello(options.client_name.clone()));
        let pending = connection.send_as(Some(0), &request, options.connect_timeout)?;
        let ok = typed::hello_ok(pending.wait()?)?;
        Ok((connection, ok))
    }

    fn is_closed(&self) -> bool {
        lock(&self.shared.in_flight).closed.is_some()
    }

    fn send(self: &Arc<Self>, request: &Request) -> Result<Pending, ClientError> {
        self.send_as(None, request, self.request_timeout)
    }

    /// Registers the request (as `id`, or the next id) and writes its frame.
    fn send_as(
        self: &Arc<Self>,
        id: Option<u64>,
        request: &Request,
        timeout: Duration,
    ) -> Result<Pending, ClientError> {
        let (sender, receiver) = sync_channel(1);
        let request_id = {
            let mut in_flight = lock(&self.shared.in_flight);
            if let Some(reason) = &in_flight.closed {
                return Err(self.shared.lost(reason));
            }
            let request_id = id.unwrap_or(in_flight.next_id);
            if id.is_none() {
                in_flight.next_id += 1;
            }
            in_flight.waiting.insert(request_id, sender);
            request_id
        };
        let mut frame = Vec::new();
        if let Err(error) = encode_checked(request_id, request, &mut frame) {
            lock(&self.shared.in_flight).waiting.remove(&request_id);
            return Err(error);
        }
        let written = lock(&self.writer).write_all(&frame);
        if let Err(error) = written {
            // Part of the frame may be out: the stream is no longer framed.
            let reason = format!("write failed: {error}");
            self.shutdown();
            self.shared.fail_all(reason);
        }
        Ok(Pending {
            request_id,
            receiver,
            connection: Arc::clone(self),
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    fn shutdown(&self) {
        let _ = lock(&self.writer).shutdown(Shutdown::Both);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(reader) = lock(&self.reader).take() {
            let _ = reader.join();
        }
    }
}

/// The reader thread: frames in, answers delivered by id, until the socket closes.
fn read_loop(mut stream: TcpStream, shared: &Shared) {
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let reason = loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) => break "closed by the peer".to_owned(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("read failed: {e}"),
        };
        decoder.feed(buffer.get(..n).unwrap_or_default());
        let error = loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let reply = decode_response(&frame)
                        .map_err(|e| ClientError::Protocol(format!("answer does not decode: {e}")));
                    shared.deliver(frame.header.request_id, reply);
                }
                Ok(None) => break None,
                Err(e) => break Some(format!("bad frame from the node: {e}")),
            }
        };
        if let Some(reason) = error {
            let _ = stream.shutdown(Shutdown::Both);
            break reason;
        }
    };
    shared.fail_all(reason);
}

/// A request in flight; [`Pending::wait`] blocks for its answer.
pub struct Pending {
    request_id: u64,
    receiver: Receiver<Reply>,
    connection: Arc<Connection>,
    deadline: Instant,
    timeout: Duration,
}

impl Pending {
    /// The request id the request was sent with.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Waits for the answer until the request timeout (counted from the send).
    pub fn wait(self) -> Result<Response, ClientError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.receiver.recv_timeout(left) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                let shared = &self.connection.shared;
                let removed = lock(&shared.in_flight).waiting.remove(&self.request_id);
                if removed.is_none() {
                    // The answer raced the timeout: it is in the channel now.
                    if let Ok(reply) = self.receiver.try_recv() {
                        return reply;
                    }
                }
                Err(ClientError::Timeout {
                    after: self.timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.connection.shared.lost("no reply")),
        }
    }
}

/// Connections and routing state of a [`Client`].
struct State {
    shared: Option<Arc<Connection>>,
    shards: HashMap<u32, Arc<Connection>>,
    router: Router,
}

/// A blocking keel client; cheap to share between threads (`&Client` is enough).
pub struct Client {
    addr: String,
    options: ClientOptions,
    started: Instant,
    state: Mutex<State>,
}

impl Client {
    /// Connects to the node at `addr` (`host:port` of any shard) and exchanges Hello.
    pub fn connect(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let (connection, ok) = Connection::open(addr, &options)?;
        let retry_ms = options.shard_retry.as_millis() as u64;
        let router = Router::new(&ok, options.shard_aware, retry_ms);
        Ok(Client {
            addr: addr.to_owned(),
            options,
            started: Instant::now(),
            state: Mutex::new(State {
                shared: Some(connection),
                shards: HashMap::new(),
                router,
            }),
        })
    }

    /// The shard addresses the node announced.
    pub fn shard_addrs(&self) -> Vec<String> {
        let state = lock(&self.state);
        (0u32..)
            .map_while(|shard| state.router.shard_addr(shard).map(str::to_owned))
            .collect()
    }

    /// Sends `request` and waits for its answer (an `Error` answer is `Ok`).
    pub fn call(&self, request: Request) -> Result<Response, ClientError> {
        let table = request_table(&request).map(str::to_owned);
        let response = self.send(request)?.wait()?;
        if let (Response::Error(error), Some(table)) = (&response, table) {
            if error.code == ErrorCode::ResourceNotFound {
                lock(&self.state).router.forget_table(&table);
            }
        }
        Ok(response)
    }

    /// Sends `request` without waiting: pipelining. Wait for the answer with
    /// [`Pending::wait`].
    pub fn send(&self, request: Request) -> Result<Pending, ClientError> {
        let connection = self.connection_for(&request)?;
        connection.send(&request)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The connection `request` should take (opening it if needed).
    fn connection_for(&self, request: &Request) -> Result<Arc<Connection>, ClientError> {
        let mut described = false;
        loop {
            let route = lock(&self.state).router.route(request, self.now_ms());
            match route {
                Route::Shared => return self.shared_connection(),
                Route::Describe(table) if !described => {
                    described = true;
                    let answer = self.send_shared(Request::DescribeTable { table })?;
                    match answer.wait() {
                        Ok(Response::Table(table)) => {
                            lock(&self.state).router.learn_table(&table);
                        }
                        // Unknown table or another failure: let the node answer the request.
                        _ => return self.shared_connection(),
                    }
                }
                Route::Describe(_) => return self.shared_connection(),
                Route::Shard(shard) => return self.shard_connection(shard),
            }
        }
    }

    fn send_shared(&self, request: Request) -> Result<Pending, ClientError> {
        self.shared_connection()?.send(&request)
    }

    fn shared_connection(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(connection) = &lock(&self.state).shared {
            if !connection.is_closed() {
                return Ok(Arc::clone(connection));
            }
        }
        let (connection, ok) = Connection::open(&self.addr, &self.options)?;
        let mut state = lock(&self.state);
        state.router.learn_node(&ok);
        state.shared = Some(Arc::clone(&connection));
        Ok(connection)
    }

    fn shard_connection(&self, shard: u32) -> Result<Arc<Connection>, ClientError> {
        let addr = {
            let state = lock(&self.state);
            if let Some(connection) = state.shards.get(&shard) {
                if !connection.is_closed() {
                    return Ok(Arc::clone(connection));
                }
            }
            state.router.shard_addr(shard).map(str::to_owned)
        };
        let Some(addr) = addr else {
            return self.shared_connection();
        };
        match Connection::open(&addr, &self.options) {
            Ok((connection, _)) => {
                lock(&self.state)
                    .shards
                    .insert(shard, Arc::clone(&connection));
                Ok(connection)
            }
            Err(_) => {
                let now_ms = self.now_ms();
                let mut state = lock(&self.state);
                state.shards.remove(&shard);
                state.router.shard_failed(shard, now_ms);
                drop(state);
                self.shared_connection()
            }
        }
    }

    /// Creates a table.
    pub fn create_table(&self, request: CreateTable) -> Result<TableDescription, ClientError> {
        let table = typed::table(self.call(Request::CreateTable(request))?)?;
        lock(&self.state).router.learn_table(&table);
        Ok(table)
    }

    /// Deletes a table.
    pub fn delete_table(&self, table: &str) -> Result<TableDescription, ClientError> {
        let request = Request::DeleteTable {
            table: table.to_owned(),
        };
        lock(&self.state).router.forget_table(table);
        typed::table(self.call(request)?)
    }

    /// Describes a table (and refreshes the routing cache with it).
    pub fn describe_table(&self, table: &str) -> Result<TableDescription, ClientError> {
        let request = Request::DescribeTable {
            table: table.to_owned(),
        };
        let table = typed::table(self.call(request)?)?;
        lock(&self.state).router.learn_table(&table);
        Ok(table)
    }

    /// Lists table names after `start_after`: the names, and the last one if more follow.
    pub fn list_tables(
        &self,
        start_after: Option<String>,
        limit: Option<u32>,
    ) -> Result<(Vec<String>, Option<String>), ClientError> {
        typed::table_names(self.call(Request::ListTables { start_after, limit })?)
    }

    /// Stores an item; returns the old item if `return_values` asked for it.
    pub fn put_item(&self, request: PutItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::PutItem(request))?)
    }

    /// Reads an item.
    pub fn get_item(&self, request: GetItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::GetItem(request))?)
    }

    /// Deletes an item; returns the old item if `return_values` asked for it.
    pub fn delete_item(&self, request: DeleteItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::DeleteItem(request))?)
    }

    /// Updates an item; returns the attributes `return_values` asked for.
    pub fn update_item(&self, request: UpdateItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::UpdateItem(request))?)
    }

    /// Reads a page of the items of one partition key.
    pub fn query(&self, request: Query) -> Result<ItemPage, ClientError> {
        typed::items(self.call(Request::Query(request))?)
    }

    /// Reads a page of a table (or of a segment of it).
    pub fn scan(&self, request: Scan) -> Result<ItemPage, ClientError> {
        typed::items(self.call(Request::Scan(request))?)
    }

    /// Reads many items; unread keys come back as `unprocessed`.
    pub fn batch_get_item(&self, request: BatchGetItem) -> Result<BatchGetOk, ClientError> {
        typed::batch_get(self.call(Request::BatchGetItem(request))?)
    }

    /// Writes many items; returns the writes not applied (retry them).
    pub fn batch_write_item(
        &self,
        request: BatchWriteItem,
    ) -> Result<Vec<TableWrites>, ClientError> {
        typed::batch_write(self.call(Request::BatchWriteItem(request))?)
    }
}
