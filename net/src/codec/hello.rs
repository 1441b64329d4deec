//! Version negotiation: the first frame of a connection is a [`Hello`] carrying the range
//! of protocol versions the client speaks; the node picks the highest version both speak.
//!
//! The Hello and its answer (HelloOk or an error) are written in version 1 framing and
//! their body layouts never change, so any client and any node can always negotiate.

use crate::codec::frame::{PROTOCOL_VERSION, PROTOCOL_VERSION_MIN};
use crate::codec::message::{ErrorCode, ErrorResponse, Hello};

/// Longest client name in a [`Hello`], in bytes.
pub const HELLO_CLIENT_BYTES_MAX: usize = 256;

/// The version to speak with the client that sent `hello`: the highest in the overlap of
/// its `[min_version, max_version]` and this build's
/// `[PROTOCOL_VERSION_MIN, PROTOCOL_VERSION]`; else an `UnsupportedVersion` error naming
/// both ranges (a `Validation` error if the Hello itself is malformed).
pub fn negotiate(hello: &Hello) -> Result<u16, ErrorResponse> {
    if hello.client.len() > HELLO_CLIENT_BYTES_MAX {
        return Err(ErrorResponse::new(
            ErrorCode::Validation,
            format!(
                "hello: client name of {} bytes exceeds {HELLO_CLIENT_BYTES_MAX}",
                hello.client.len()
            ),
        ));
    }
    let low = hello.min_version.max(PROTOCOL_VERSION_MIN);
    let high = hello.max_version.min(PROTOCOL_VERSION);
    if hello.min_version > hello.max_version || low > high {
        return Err(ErrorResponse::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol versions do not overlap: the client speaks {}..={}, \
                 this node speaks {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION}",
                hello.min_version, hello.max_version
            ),
        ));
    }
    Ok(high)
}

/// The Hello this build sends: every version it speaks, and `client` as its name.
pub fn hello(client: impl Into<String>) -> Hello {
    Hello {
        min_version: PROTOCOL_VERSION_MIN,
        max_version: PROTOCOL_VERSION,
        client: client.into(),
    }
}
