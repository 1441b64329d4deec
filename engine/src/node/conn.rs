//! One client connection on a shard: frames in, requests carried out concurrently,
//! answers out in the order they finish (matched by request id).
//!
//! The first frame must be Hello. A frame that cannot be read (bad magic, checksum,
//! length, opcode) is answered with a Protocol error and the connection is closed; a body
//! that cannot be decoded is answered with a Validation error and the connection stays.
//! At most [`IN_FLIGHT_MAX`] requests of one connection run at once, and reading stops
//! while [`OUTBOX_BYTES_MAX`] bytes of answers wait to be written, so a client that sends
//! without reading cannot make the node buffer without bound.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::signal::Signal;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use keel_net::codec::{
    decode_request, encode_response, error_frame, negotiate, ErrorCode, FrameDecoder, HelloOk,
    Request, Response, FRAME_BODY_BYTES_MAX,
};

use super::shard::{InFlight, Shard};

/// Most requests of one connection carried out at once.
pub const IN_FLIGHT_MAX: usize = 256;
/// Reading pauses while this many bytes of answers wait to be written.
pub const OUTBOX_BYTES_MAX: usize = 4 << 20;
const READ_BYTES: usize = 64 << 10;

struct Outbox {
    buf: RefCell<Vec<u8>>,
    /// Fired when bytes are added, when the writer drains the buffer, and when a request
    /// finishes.
    changed: Signal,
    /// The writer failed or the connection is closing: nothing more is written.
    closed: Cell<bool>,
    in_flight: Cell<usize>,
}

impl Outbox {
    fn push(&self, request_id: u64, response: &Response) {
        if !self.closed.get() {
            encode_response(request_id, response, &mut self.buf.borrow_mut());
            self.changed.notify();
        }
    }

    fn push_error(&self, request_id: u64, code: ErrorCode, message: String) {
        if !self.closed.get() {
            error_frame(request_id, code, message, &mut self.buf.borrow_mut());
            self.changed.notify();
        }
    }

    /// Waits until `ready` holds, re-checking whenever the outbox changes.
    async fn wait_until(&self, ready: impl Fn(&Outbox) -> bool) {
        loop {
            let l = self.changed.listen();
            if ready(self) {
                return;
            }
            l.await;
        }
    }
}

async fn write_loop(outbox: Rc<Outbox>, mut writer: futures_lite::io::WriteHalf<TcpStream>) {
    let mut sending = Vec::new();
    loop {
        outbox
            .wait_until(|o| !o.buf.borrow().is_empty() || o.closed.get())
            .await;
        std::mem::swap(&mut sending, &mut *outbox.buf.borrow_mut());
        outbox.changed.notify();
        if sending.is_empty() {
            break;
        }
        let result = match writer.write_all(&sending).await {
            Ok(()) => writer.flush().await,
            Err(e) => Err(e),
        };
        sending.clear();
        if result.is_err() {
            outbox.closed.set(true);
            outbox.changed.notify();
            break;
        }
    }
    let _ = writer.close().await;
}

/// Serves one connection until the client closes it, breaks the protocol, or the node
/// shuts down.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
    let (mut reader, writer) = futures_lite::io::split(stream);
    let outbox = Rc::new(Outbox {
        buf: RefCell::new(Vec::new()),
        changed: Signal::new(),
        closed: Cell::new(false),
        in_flight: Cell::new(0),
    });
    let writer_task = glommio::spawn_local(write_loop(outbox.clone(), writer));
    shard.connections.set(shard.connections.get() + 1);
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    let mut buf = vec![0u8; READ_BYTES];
    let mut greeted = false;
    // One listener for the connection's life: the node's hang-up ends any read.
    let mut hang_up = std::pin::pin!(shard.hang_up.listen());
    loop {
        if outbox.closed.get() {
            break;
        }
        let frame = match decoder.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                outbox
                    .wait_until(|o| o.buf.borrow().len() < OUTBOX_BYTES_MAX || o.closed.get())
                    .await;
                if shard.hung_up.get() {
                    break;
                }
                let read =
                    futures_lite::future::or(async { Some(reader.read(&mut buf).await) }, async {
                        hang_up.as_mut().await;
                        None
                    });
                match read.await {
                    Some(Ok(0) | Err(_)) => break,
                    Some(Ok(n)) => {
                        decoder.feed(buf.get(..n).unwrap_or_default());
                        continue;
                    }
                    // The node closes: what the client sent since is not read (not
                    // applied), and it sees the end of the stream.
                    None => break,
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "closing a connection on a bad frame");
                outbox.push_error(0, ErrorCode::Protocol, e.to_string());
                break;
            }
        };
        let id = frame.header.request_id;
        if frame.header.is_response() {
            outbox.push_error(
                id,
                ErrorCode::Protocol,
                "a client sent a response frame".into(),
            );
            break;
        }
        let request = match decode_request(&frame) {
            Ok(r) => r,
            Err(e) if greeted => {
                outbox.push_error(id, ErrorCode::Validation, e.to_string());
                continue;
            }
            Err(e) => {
                outbox.push_error(id, ErrorCode::Protocol, e.to_string());
                break;
            }
        };
        if !greeted {
            let Request::Hello(hello) = &request else {
                outbox.push_error(
                    id,
                    ErrorCode::Protocol,
                    "the first frame of a connection must be Hello".into(),
                );
                break;
            };
            match negotiate(hello) {
                Ok(version) => {
                    greeted = true;
                    let ok = HelloOk {
                        version,
                        shard: shard.index,
                        shard_addrs: shard.shard_addrs.borrow().clone(),
                    };
                    outbox.push(id, &Response::HelloOk(ok));
                    continue;
                }
                Err(e) => {
                    outbox.push(id, &Response::Error(e));
                    break;
                }
            }
        }
        outbox
            .wait_until(|o| o.in_flight.get() < IN_FLIGHT_MAX || o.closed.get())
            .await;
        let Some(guard) = InFlight::begin(&shard) else {
            outbox.push_error(
                id,
                ErrorCode::Unavailable,
                "the node is shutting down".into(),
            );
            continue;
        };
        outbox.in_flight.set(outbox.in_flight.get() + 1);
        let shard = shard.clone();
        let out = outbox.clone();
        let mut carry_out = Box::pin(async move {
            let response = shard.handle(request).await;
            out.push(id, &response);
            out.in_flight.set(out.in_flight.get() - 1);
            out.changed.notify();
            drop(guard);
        });
        // Most requests (a GetItem from cache, a bad key) finish without waiting: carry
        // them out here. Only one that waits (I/O, the WAL, another shard) becomes a task
        // of its own, so that the connection keeps reading meanwhile.
        if futures_lite::future::poll_once(&mut carry_out)
            .await
            .is_none()
        {
            glommio::spawn_local(carry_out).detach();
        }
    }
    // Answer what is under way, then close.
    outbox
        .wait_until(|o| o.in_flight.get() == 0 || o.closed.get())
        .await;
    outbox.closed.set(true);
    outbox.changed.notify();
    writer_task.await;
    shard.connections.set(shard.connections.get() - 1);
    shard.connection_ended.notify();
}
