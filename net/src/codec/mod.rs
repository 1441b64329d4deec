//! keel's wire protocol: frames and the messages they carry. Pure code: no I/O, no clocks.
//!
//! The whole protocol, byte by byte, is in `net/PROTOCOL.md`.
//!
//! - [`message`] — [`Request`], [`Response`] and their parts.
//! - [`frame`] — the 24-byte frame header ([`FrameHeader`]), [`Opcode`], and the sans-IO
//!   incremental [`FrameDecoder`].
//! - [`body`] — message bodies: [`encode_request`], [`encode_response`],
//!   [`decode_request`], [`decode_response`], [`error_frame`].
//! - [`hello`] — version negotiation ([`negotiate`]).
//! - [`error`] — [`FrameError`] (fatal to a connection), [`CodecError`] (answered with a
//!   Validation error), and the stable numbers of [`ErrorCode`].
//! - [`fuzz`] — the fuzz body [`fuzz::fuzz_frames`].
//! - [`partition_index`], [`partition_hash_range`] — the hash-range partition map.

pub mod body;
mod cursor;
pub mod error;
pub mod frame;
pub mod fuzz;
pub mod hello;
pub mod message;

#[cfg(test)]
mod tests;

pub use body::{
    decode_request, decode_response, encode_request, encode_response, error_frame, request_opcode,
    response_opcode, BATCH_GET_KEYS_MAX, BATCH_WRITE_WRITES_MAX,
};
pub use error::{CodecError, FrameError};
pub use frame::{
    Frame, FrameDecoder, FrameHeader, Opcode, FLAG_RESPONSE, FRAME_BODY_BYTES_MAX,
    FRAME_HEADER_BYTES, FRAME_MAGIC, PROTOCOL_VERSION, PROTOCOL_VERSION_MIN,
};
pub use hello::{hello, negotiate, HELLO_CLIENT_BYTES_MAX};
pub use message::*;

/// The partition of `count` (≥ 1) partitions that owns partition-key hash `hash`: the hash
/// space is cut into `count` contiguous ranges of (almost) equal width.
pub fn partition_index(hash: u64, count: u32) -> u32 {
    debug_assert!(count > 0);
    ((u128::from(hash) * u128::from(count)) >> 64) as u32
}

/// The lowest and highest hash (inclusive) of partition `index` of `count`.
pub fn partition_hash_range(index: u32, count: u32) -> (u64, u64) {
    let low = |i: u32| -> u128 {
        // The least h with h * count >> 64 >= i.
        (u128::from(i) << 64).div_ceil(u128::from(count))
    };
    let lo = low(index) as u64;
    let hi = if index + 1 >= count {
        u64::MAX
    } else {
        (low(index + 1) - 1) as u64
    };
    (lo, hi)
}
