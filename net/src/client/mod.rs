//! keel's native clients: a blocking [`Client`] (std threads) and an [`AsyncClient`] for
//! glommio executors. Both pipeline many requests over one connection, matching answers
//! by request id, and both are shard-aware: item requests go straight to the shard that
//! owns the key's partition ([`route::Router`]).
//!
//! - [`route`] — the routing decision (pure).
//! - [`typed`] — responses to typed results (pure).
//! - [`blocking`] — [`Client`], [`Pending`].
//! - [`glommio`] — [`AsyncClient`].
//!
//! Not done here: retries (a [`ClientError::Server`] with `retryable` set, a
//! [`ClientError::Timeout`] or a [`ClientError::ConnectionLost`] is returned to the
//! caller, who knows whether the request is idempotent), authentication.

use std::time::Duration;

use crate::codec::ErrorResponse;

pub mod blocking;
pub mod glommio;
pub mod route;
pub mod typed;

#[cfg(test)]
mod tests;

pub use self::glommio::{AsyncClient, AsyncPending};
pub use blocking::{connect_tcp, Client, Pending};
pub use route::{Route, Router};

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a request waits for its answer before [`ClientError::Timeout`].
    pub request_timeout: Duration,
    /// How long opening a connection (TCP connect and Hello) may take.
    pub connect_timeout: Duration,
    /// Send item requests straight to the shard that owns the key.
    pub shard_aware: bool,
    /// After a shard's connection could not be opened, use the shared connection for its
    /// requests this long before trying again.
    pub shard_retry: Duration,
    /// The name sent in Hello, for the node's logs.
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            shard_aware: true,
            shard_retry: Duration::from_secs(1),
            client_name: "keel-rs".to_owned(),
        }
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A socket operation failed (resolve, connect); nothing was sent.
    #[error("{op} {addr}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No answer within the request timeout. The request may or may not have been
    /// applied; a late answer is dropped.
    #[error("no answer within {after:?}; the outcome is unknown")]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection broke (or was closed by the node) while the request was in flight
    /// or being written. **The outcome of the request is unknown**: a write may or may not
    /// have been applied. The next request opens a new connection.
    #[error("connection to {addr} lost ({reason}); the outcome is unknown")]
    ConnectionLost {
        /// The peer's address.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The node answered with an error.
    #[error("server error {:?}: {}", .0.code, .0.message)]
    Server(ErrorResponse),
    /// The node answered something this client cannot use (a body that does not decode,
    /// a response of the wrong kind).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The request does not fit in one frame; nothing was sent.
    #[error("request body of {body_bytes} bytes exceeds the frame limit of {max} bytes")]
    RequestTooLarge {
        /// The encoded body's size.
        body_bytes: usize,
        /// The limit.
        max: u32,
    },
}

impl ClientError {
    /// Whether the request might succeed if sent again: a retryable server error, a
    /// timeout or a lost connection (for these two, only if the request is idempotent).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Server(error) => error.retryable,
            ClientError::Timeout { .. } | ClientError::ConnectionLost { .. } => true,
            ClientError::Io { .. } => true,
            ClientError::Protocol(_) | ClientError::RequestTooLarge { .. } => false,
        }
    }
}

/// Appends `request` as frame `request_id` to `out`, refusing a body over the frame limit
/// before anything is sent (`out` is then left as it was).
pub fn encode_checked(
    request_id: u64,
    request: &crate::codec::Request,
    out: &mut Vec<u8>,
) -> Result<(), ClientError> {
    let start = out.len();
    crate::codec::encode_request(request_id, request, out);
    let body_bytes = out.len() - start - crate::codec::FRAME_HEADER_BYTES;
    if body_bytes > crate::codec::FRAME_BODY_BYTES_MAX as usize {
        out.truncate(start);
        return Err(ClientError::RequestTooLarge {
            body_bytes,
            max: crate::codec::FRAME_BODY_BYTES_MAX,
        });
    }
    Ok(())
}

/// The table a request names when its answer may invalidate the router's cache.
pub(crate) fn request_table(request: &crate::codec::Request) -> Option<&str> {
    use crate::codec::Request;
    match request {
        Request::PutItem(r) => Some(&r.table),
        Request::GetItem(r) => Some(&r.table),
        Request::DeleteItem(r) => Some(&r.table),
        Request::UpdateItem(r) => Some(&r.table),
        Request::Query(r) => Some(&r.table),
        Request::DeleteTable { table } | Request::DescribeTable { table } => Some(table),
        _ => None,
    }
}
