//! The async client for glommio executors: the same requests as the blocking client,
//! pipelined over one glommio `TcpStream` per connection, shard-aware with the same
//! [`Router`].
//!
//! Per connection, two tasks: a writer task that writes whatever whole frames senders
//! have appended to the connection's outbox, in one write (frames never interleave, and
//! many pipelined requests leave in one system call), and a reader task that decodes
//! answers and hands each to its waiter by request id, through a one-answer slot. A
//! third task per connection sweeps expired requests every [`sweep_tick`] and answers them
//! `Timeout`, so a request costs no timer of its own (a request times out between its
//! timeout and its timeout plus one tick). Everything is `Rc`/`RefCell` on one executor;
//! no borrow is held across an `.await`.
//!
//! Invariants: as in the blocking client, every registered request gets exactly one
//! reply (answer, `Timeout` or `ConnectionLost`). Dropping the last handle of a
//! connection cancels its tasks, which closes the socket.
//!
//! Not done here: name resolution is std's (blocking; give addresses as `ip:port` on an
//! executor that must not stall).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::Task;

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
/// Bytes of frames waiting for the writer task before senders wait.
const OUTBOX_BYTES_MAX: usize = 4 << 20;

/// Frames waiting to be written, appended whole by senders and taken by the writer task.
#[derive(Default)]
struct Outbox {
    bytes: RefCell<Vec<u8>>,
    /// Fired when bytes are appended, when the writer takes them, and when it stops.
    changed: Event,
    writer_stopped: std::cell::Cell<bool>,
}

/// Where one request's reply lands: filled once, by the reader, the sweeper or a failure.
#[derive(Default)]
struct ReplySlot {
    reply: Cell<Option<Reply>>,
    waker: Cell<Option<Waker>>,
}

impl ReplySlot {
    fn fill(&self, reply: Reply) {
        self.reply.set(Some(reply));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// A request that awaits its reply.
struct Waiting {
    slot: Rc<ReplySlot>,
    deadline: Instant,
    timeout: Duration,
}

#[derive(Default)]
struct InFlight {
    next_id: u64,
    waiting: HashMap<u64, Waiting>,
    closed: Option<String>,
}

struct Shared {
    addr: String,
    in_flight: RefCell<InFlight>,
}

impl Shared {
    fn lost(&self, reason: &str) -> ClientError {
        ClientError::ConnectionLost {
            addr: self.addr.clone(),
            reason: reason.to_owned(),
        }
    }

    fn fail_all(&self, reason: String) {
        let waiting: Vec<_> = {
            let mut in_flight = self.in_flight.borrow_mut();
            in_flight.closed.get_or_insert(reason.clone());
            in_flight.waiting.drain().map(|(_, w)| w).collect()
        };
        for waiter in waiting {
            waiter.slot.fill(Err(self.lost(&reason)));
        }
    }

    fn deliver(&self, request_id: u64, reply: Reply) {
        let waiter = self.in_flight.borrow_mut().waiting.remove(&request_id);
        if let Some(waiter) = waiter {
            waiter.slot.fill(reply);
        }
    }

    /// Answers `Timeout` to every request whose deadline has passed.
    fn expire(&self, now: Instant) {
        let expired: Vec<Waiting> = {
            let mut in_flight = self.in_flight.borrow_mut();
            let ids: Vec<u64> = in_flight
                .waiting
                .iter()
                .filter(|(_, w)| w.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| in_flight.waiting.remove(id))
                .collect()
        };
        for waiter in expired {
            waiter.slot.fill(Err(ClientError::Timeout {
                after: waiter.timeout,
            }));
        }
    }

    fn is_closed(&self) -> bool {
        self.in_flight.borrow().closed.is_some()
    }
}

/// One connection: the frame queue of its writer task, and both tasks.
struct Connection {
    shared: Rc<Shared>,
    outbox: Rc<Outbox>,
    request_timeout: Duration,
    _reader: Task<()>,
    _writer: Task<()>,
    _sweeper: Task<()>,
}

/// How often a connection looks for expired requests: a tenth of the shorter timeout,
/// within 1 ms and 100 ms.
fn sweep_tick(options: &ClientOptions) -> Duration {
    (options.request_timeout.min(options.connect_timeout) / 10)
        .clamp(Duration::from_millis(1), Duration::from_millis(100))
}

async fn sweep_loop(shared: Rc<Shared>, tick: Duration) {
    while !shared.is_closed() {
        glommio::timer::sleep(tick).await;
        shared.expire(Instant::now());
    }
}

impl Connection {
    async fn open(
        addr: &str,
        options: &ClientOptions,
    ) -> Result<(Rc<Connection>, HelloOk), ClientError> {
        let io = |op: &'static str, source: std::io::Error| ClientError::Io {
            op,
            addr: addr.to_owned(),
            source,
        };
        let socket_addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| io("resolve", e))?
            .collect();
        let mut last_error = None;
        let mut stream = None;
        for socket_addr in socket_addrs {
            match TcpStream::connect_timeout(socket_addr, options.connect_timeout).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = Some(std::io::Error::from(e)),
            }
        }
        let stream = match (stream, last_error) {
            (Some(stream), _) => stream,
            (None, Some(e)) => return Err(io("connect", e)),
            (None, None) => {
                let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
                return Err(io("resolve", e));
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|e| io("set_nodelay", e.into()))?;
        let (read_half, write_half) = futures_lite::io::split(stream);
        let shared = Rc::new(Shared {
            addr: addr.to_owned(),
            in_flight: RefCell::new(InFlight {
                next_id: 1,
                ..InFlight::default()
            }),
        });
        let outbox = Rc::new(Outbox::default());
        let reader = glommio::spawn_local(read_loop(read_half, Rc::clone(&shared)));
        let writer = glommio::spawn_local(write_loop(
            write_half,
            Rc::clone(&outbox),
            Rc::clone(&shared),
        ));
        let sweeper = glommio::spawn_local(sweep_loop(Rc::clone(&shared), sweep_tick(options)));
        let connection = Rc::new(Connection {
            shared,
            outbox,
            request_timeout: options.request_timeout,
            _reader: reader,
            _writer: writer,
            _sweeper: sweeper,
        });
        let request = Request::Hello(hello(options.client_name.clone()));
        let pending = connection
            .send_as(Some(0), &request, options.connect_timeout)
            .await?;
        let ok = typed::hello_ok(pending.wait().await?)?;
        Ok((connection, ok))
    }

    async fn send(self: &Rc<Self>, request: &Request) -> Result<AsyncPending, ClientError> {
        self.send_as(None, request, self.request_timeout).await
    }

    async fn send_as(
        self: &Rc<Self>,
        id: Option<u64>,
        request: &Request,
        timeout: Duration,
    ) -> Result<AsyncPending, ClientError> {
        // Wait while the writer is behind, so a fast sender cannot buffer without bound.
        loop {
            let l = self.outbox.changed.listen();
            if self.outbox.bytes.borrow().len() < OUTBOX_BYTES_MAX
                || self.outbox.writer_stopped.get()
            {
                break;
            }
            l.await;
        }
        let slot = Rc::new(ReplySlot::default());
        let request_id = {
            let mut in_flight = self.shared.in_flight.borrow_mut();
            if let Some(reason) = &in_flight.closed {
                return Err(self.shared.lost(reason));
            }
            let request_id = id.unwrap_or(in_flight.next_id);
            // Straight into the outbox: a frame that is too large is taken back out whole.
            encode_checked(request_id, request, &mut self.outbox.bytes.borrow_mut())?;
            if id.is_none() {
                in_flight.next_id += 1;
            }
            let waiting = Waiting {
                slot: Rc::clone(&slot),
                deadline: Instant::now() + timeout,
                timeout,
            };
            in_flight.waiting.insert(request_id, waiting);
            request_id
        };
        if self.outbox.writer_stopped.get() {
            self.shared.fail_all("writer stopped".to_owned());
        }
        self.outbox.changed.notify(usize::MAX);
        Ok(AsyncPending {
            request_id,
            slot,
            _connection: Rc::clone(self),
        })
    }
}

async fn read_loop(mut reader: futures_lite::io::ReadHalf<TcpStream>, shared: Rc<Shared>) {
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let reason = 'read: loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) => break "closed by the peer".to_owned(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("read failed: {e}"),
        };
        decoder.feed(buffer.get(..n).unwrap_or_default());
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let reply = decode_response(&frame)
                        .map_err(|e| ClientError::Protocol(format!("answer does not decode: {e}")));
                    shared.deliver(frame.header.request_id, reply);
                }
                Ok(None) => break,
                Err(e) => break 'read format!("bad frame from the node: {e}"),
            }
        }
    };
    shared.fail_all(reason);
}

async fn write_loop(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    outbox: Rc<Outbox>,
    shared: Rc<Shared>,
) {
    let mut sending = Vec::new();
    loop {
        loop {
            let l = outbox.changed.listen();
            if !outbox.bytes.borrow().is_empty() || shared.is_closed() {
                break;
            }
            l.await;
        }
        if shared.is_closed() {
            break;
        }
        std::mem::swap(&mut sending, &mut *outbox.bytes.borrow_mut());
        outbox.changed.notify(usize::MAX);
        let written = match writer.write_all(&sending).await {
            Ok(()) => writer.flush().await,
            Err(e) => Err(e),
        };
        sending.clear();
        if let Err(e) = written {
            shared.fail_all(format!("write failed: {e}"));
            break;
        }
    }
    outbox.writer_stopped.set(true);
    outbox.changed.notify(usize::MAX);
    let _ = writer.close().await;
}

/// A request in flight on an [`AsyncClient`]; [`AsyncPending::wait`] awaits its answer.
pub struct AsyncPending {
    request_id: u64,
    slot: Rc<ReplySlot>,
    /// Keeps the connection (and its tasks) alive until the answer is in.
    _connection: Rc<Connection>,
}

impl AsyncPending {
    /// The request id the request was sent with.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Waits for the answer until the request timeout (counted from the send).
    pub async fn wait(self) -> Result<Response, ClientError> {
        std::future::poll_fn(|cx| match self.slot.reply.take() {
            Some(reply) => Poll::Ready(reply),
            None => {
                self.slot.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

struct State {
    shared: Option<Rc<Connection>>,
    shards: HashMap<u32, Rc<Connection>>,
    router: Router,
}

/// A keel client for one glommio executor (not `Send`: make one per executor).
pub struct AsyncClient {
    addr: String,
    options: ClientOptions,
    started: Instant,
    state: RefCell<State>,
}

impl AsyncClient {
    /// Connects to the node at `addr` (`ip:port` of any shard) and exchanges Hello.
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<AsyncClient, ClientError> {
        let (connection, ok) = Connection::open(addr, &options).await?;
        let retry_ms = options.shard_retry.as_millis() as u64;
        let router = Router::new(&ok, options.shard_aware, retry_ms);
        Ok(AsyncClient {
            addr: addr.to_owned(),
            options,
            started: Instant::now(),
            state: RefCell::new(State {
                shared: Some(connection),
                shards: HashMap::new(),
                router,
            }),
        })
    }

    /// Sends `request` and awaits its answer (an `Error` answer is `Ok`).
    pub async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let response = self.send_ref(&request).await?.wait().await?;
        if let Response::Error(error) = &response {
            if let (ErrorCode::ResourceNotFound, Some(table)) =
                (error.code, request_table(&request))
            {
                self.state.borrow_mut().router.forget_table(table);
            }
        }
        Ok(response)
    }

    /// Sends `request` without waiting for the answer: pipelining.
    pub async fn send(&self, request: Request) -> Result<AsyncPending, ClientError> {
        self.send_ref(&request).await
    }

    /// [`AsyncClient::send`] of a borrowed request (`call` still needs it afterwards).
    async fn send_ref(&self, request: &Request) -> Result<AsyncPending, ClientError> {
        self.connection_for(request).await?.send(request).await
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn connection_for(&self, request: &Request) -> Result<Rc<Connection>, ClientError> {
        let mut described = false;
        loop {
            let route = self.state.borrow().router.route(request, self.now_ms());
            match route {
                Route::Shared => return self.shared_connection().await,
                Route::Describe(table) if !described => {
                    described = true;
                    let connection = self.shared_connection().await?;
                    let pending = connection.send(&Request::DescribeTable { table }).await?;
                    match pending.wait().await {
                        Ok(Response::Table(table)) => {
                            self.state.borrow_mut().router.learn_table(&table);
                        }
                        // Unknown table or another failure: let the node answer the request.
                        _ => return self.shared_connection().await,
                    }
                }
                Route::Describe(_) => return self.shared_connection().await,
                Route::Shard(shard) => return self.shard_connection(shard).await,
            }
        }
    }

    async fn shared_connection(&self) -> Result<Rc<Connection>, ClientError> {
        if let Some(connection) = &self.state.borrow().shared {
            if !connection.shared.is_closed() {
                return Ok(Rc::clone(connection));
            }
        }
        let (connection, ok) = Connection::open(&self.addr, &self.options).await?;
        let mut state = self.state.borrow_mut();
        state.router.learn_node(&ok);
        state.shared = Some(Rc::clone(&connection));
        Ok(connection)
    }

    async fn shard_connection(&self, shard: u32) -> Result<Rc<Connection>, ClientError> {
        let addr = {
            let state = self.state.borrow();
            if let Some(connection) = state.shards.get(&shard) {
                if !connection.shared.is_closed() {
                    return Ok(Rc::clone(connection));
                }
            }
            state.router.shard_addr(shard).map(str::to_owned)
        };
        let Some(addr) = addr else {
            return self.shared_connection().await;
        };
        match Connection::open(&addr, &self.options).await {
            Ok((connection, _)) => {
                let mut state = self.state.borrow_mut();
                state.shards.insert(shard, Rc::clone(&connection));
                Ok(connection)
            }
            Err(_) => {
                let now_ms = self.now_ms();
                {
                    let mut state = self.state.borrow_mut();
                    state.shards.remove(&shard);
                    state.router.shard_failed(shard, now_ms);
                }
                self.shared_connection().await
            }
        }
    }

    /// Creates a table.
    pub async fn create_table(
        &self,
        request: CreateTable,
    ) -> Result<TableDescription, ClientError> {
        let table = typed::table(self.call(Request::CreateTable(request)).await?)?;
        self.state.borrow_mut().router.learn_table(&table);
        Ok(table)
    }

    /// Deletes a table.
    pub async fn delete_table(&self, table: &str) -> Result<TableDescription, ClientError> {
        self.state.borrow_mut().router.forget_table(table);
        let request = Request::DeleteTable {
            table: table.to_owned(),
        };
        typed::table(self.call(request).await?)
    }

    /// Describes a table (and refreshes the routing cache with it).
    pub async fn describe_table(&self, table: &str) -> Result<TableDescription, ClientError> {
        let request = Request::DescribeTable {
            table: table.to_owned(),
        };
        let table = typed::table(self.call(request).await?)?;
        self.state.borrow_mut().router.learn_table(&table);
        Ok(table)
    }

    /// Lists table names after `start_after`: the names, and the last one if more follow.
    pub async fn list_tables(
        &self,
        start_after: Option<String>,
        limit: Option<u32>,
    ) -> Result<(Vec<String>, Option<String>), ClientError> {
        typed::table_names(
            self.call(Request::ListTables { start_after, limit })
                .await?,
        )
    }

    /// Stores an item; returns the old item if `return_values` asked for it.
    pub async fn put_item(&self, request: PutItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::PutItem(request)).await?)
    }

    /// Reads an item.
    pub async fn get_item(&self, request: GetItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::GetItem(request)).await?)
    }

    /// Deletes an item; returns the old item if `return_values` asked for it.
    pub async fn delete_item(&self, request: DeleteItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::DeleteItem(request)).await?)
    }

    /// Updates an item; returns the attributes `return_values` asked for.
    pub async fn update_item(&self, request: UpdateItem) -> Result<Option<Item>, ClientError> {
        typed::item(self.call(Request::UpdateItem(request)).await?)
    }

    /// Reads a page of the items of one partition key.
    pub async fn query(&self, request: Query) -> Result<ItemPage, ClientError> {
        typed::items(self.call(Request::Query(request)).await?)
    }

    /// Reads a page of a table (or of a segment of it).
    pub async fn scan(&self, request: Scan) -> Result<ItemPage, ClientError> {
        typed::items(self.call(Request::Scan(request)).await?)
    }

    /// Reads many items; unread keys come back as `unprocessed`.
    pub async fn batch_get_item(&self, request: BatchGetItem) -> Result<BatchGetOk, ClientError> {
        typed::batch_get(self.call(Request::BatchGetItem(request)).await?)
    }

    /// Writes many items; returns the writes not applied (retry them).
    pub async fn batch_write_item(
        &self,
        request: BatchWriteItem,
    ) -> Result<Vec<TableWrites>, ClientError> {
        typed::batch_write(self.call(Request::BatchWriteItem(request)).await?)
    }
}
