//! The frame: a fixed 24-byte header, then the body. Sans-IO: [`FrameDecoder`] is fed
//! bytes and hands back whole, checked frames.
//!
//! ```text
//!  offset  size  field
//!  ┌──────┬─────┬──────────────────────────────────────────────────────────────┐
//!  │    0 │   4 │ magic       "KEEL" = 4b 45 45 4c                              │
//!  │    4 │   2 │ version     u16, the protocol version of the body (1)         │
//!  │    6 │   1 │ opcode      request or response opcode (Opcode)               │
//!  │    7 │   1 │ flags       bit 0: response; bits 1..7 zero                   │
//!  │    8 │   8 │ request_id  u64, chosen by the client, echoed by the answer   │
//!  │   16 │   4 │ body_len    u32, <= the decoder's limit (FRAME_BODY_BYTES_MAX)│
//!  │   20 │   4 │ crc32c      over bytes [0, 20) of the header, then the body   │
//!  │   24 │   n │ body        body_len bytes                                    │
//!  └──────┴─────┴──────────────────────────────────────────────────────────────┘
//! ```
//!
//! All integers are little-endian. The crc32c covers every header field but itself, so a
//! flipped bit anywhere in the frame is caught: in the magic, version, flags or opcode
//! by the field checks (which run first, as soon as the 24 header bytes are in, before any
//! body byte is awaited), in the length by the limit or the crc, elsewhere by the crc.
//!
//! Invariants: a decoder that returned a [`FrameError`] returns it again forever (the
//! connection has lost its framing and must be closed); a returned [`Frame`]'s body is
//! exactly `body_len` bytes and passed its crc32c.
//!
//! Not done here: message bodies (`body.rs`), sockets, timeouts.
#![deny(clippy::indexing_slicing)]

use bytes::{Bytes, BytesMut};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::codec::error::FrameError;

/// The protocol version this build speaks (the highest it reads).
pub const PROTOCOL_VERSION: u16 = 1;
/// The lowest protocol version this build reads.
pub const PROTOCOL_VERSION_MIN: u16 = 1;
/// The four bytes that start every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"KEEL";
/// Bytes of the fixed frame header.
pub const FRAME_HEADER_BYTES: usize = 24;
/// The hard limit on a body: 16 MiB + 64 KiB, room for a BatchWriteItem of 25 items of
/// 400 KB and for a 16 MiB BatchGetItem answer, with slack for framing.
pub const FRAME_BODY_BYTES_MAX: u32 = 16 * 1024 * 1024 + 64 * 1024;
/// The response bit of the flags byte.
pub const FLAG_RESPONSE: u8 = 0x01;

/// Byte offsets of the header fields, as drawn in the module docs.
const OFFSET_CRC: usize = 20;

/// The header as it lies on the wire.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
struct WireHeader {
    magic: [u8; 4],
    version: U16,
    opcode: u8,
    flags: u8,
    request_id: U64,
    body_len: U32,
    crc32c: U32,
}

const _: () = assert!(std::mem::size_of::<WireHeader>() == FRAME_HEADER_BYTES);
const _: () = assert!(OFFSET_CRC + 4 == FRAME_HEADER_BYTES);
const _: () = assert!(PROTOCOL_VERSION_MIN <= PROTOCOL_VERSION);

/// Every opcode. Requests travel with the response bit clear, responses with it set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Request: Hello.
    Hello = 0x01,
    /// Request: CreateTable.
    CreateTable = 0x02,
    /// Request: DeleteTable.
    DeleteTable = 0x03,
    /// Request: DescribeTable.
    DescribeTable = 0x04,
    /// Request: ListTables.
    ListTables = 0x05,
    /// Request: PutItem.
    PutItem = 0x06,
    /// Request: GetItem.
    GetItem = 0x07,
    /// Request: DeleteItem.
    DeleteItem = 0x08,
    /// Request: UpdateItem.
    UpdateItem = 0x09,
    /// Request: Query.
    Query = 0x0A,
    /// Request: Scan.
    Scan = 0x0B,
    /// Request: BatchGetItem.
    BatchGetItem = 0x0C,
    /// Request: BatchWriteItem.
    BatchWriteItem = 0x0D,
    /// Response: HelloOk.
    HelloOk = 0x41,
    /// Response: Table (a table description).
    Table = 0x42,
    /// Response: TableNames.
    TableNames = 0x43,
    /// Response: Item (an optional item).
    Item = 0x44,
    /// Response: Items (a Query or Scan page).
    Items = 0x45,
    /// Response: BatchGet.
    BatchGet = 0x46,
    /// Response: BatchWrite.
    BatchWrite = 0x47,
    /// Response: Error.
    Error = 0x7F,
}

/// Every opcode, requests first (for tests and docs).
pub const OPCODES: [Opcode; 21] = [
    Opcode::Hello,
    Opcode::CreateTable,
    Opcode::DeleteTable,
    Opcode::DescribeTable,
    Opcode::ListTables,
    Opcode::PutItem,
    Opcode::GetItem,
    Opcode::DeleteItem,
    Opcode::UpdateItem,
    Opcode::Query,
    Opcode::Scan,
    Opcode::BatchGetItem,
    Opcode::BatchWriteItem,
    Opcode::HelloOk,
    Opcode::Table,
    Opcode::TableNames,
    Opcode::Item,
    Opcode::Items,
    Opcode::BatchGet,
    Opcode::BatchWrite,
    Opcode::Error,
];

impl Opcode {
    /// The opcode with byte `byte`, if any.
    pub fn from_u8(byte: u8) -> Option<Opcode> {
        OPCODES.iter().copied().find(|op| *op as u8 == byte)
    }

    /// Whether this is a response opcode (sent with [`FLAG_RESPONSE`]).
    pub fn is_response(self) -> bool {
        (self as u8) >= 0x40
    }
}

/// A checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The opcode byte; a known [`Opcode`] agreeing with the response flag.
    pub opcode: u8,
    /// The flags byte ([`FLAG_RESPONSE`]).
    pub flags: u8,
    /// The request id, echoed by the answer.
    pub request_id: u64,
    /// Bytes of the body.
    pub body_len: u32,
    /// The protocol version of the body.
    pub version: u16,
    /// The crc32c over header bytes [0, 20) and the body.
    pub crc32c: u32,
}

impl FrameHeader {
    /// Whether the frame is a response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }
}

/// A whole, checked frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: FrameHeader,
    /// The body, `header.body_len` bytes (a slice of the decoder's buffer, not a copy).
    pub body: Bytes,
}

/// Appends a header placeholder for a frame with `opcode` and `request_id` to `out` and
/// returns its offset; [`finish_frame`] fills in length and crc once the body is written.
pub(crate) fn begin_frame(opcode: Opcode, request_id: u64, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let header = WireHeader {
        magic: FRAME_MAGIC,
        version: U16::new(PROTOCOL_VERSION),
        opcode: opcode as u8,
        flags: if opcode.is_response() {
            FLAG_RESPONSE
        } else {
            0
        },
        request_id: U64::new(request_id),
        body_len: U32::new(0),
        crc32c: U32::new(0),
    };
    out.extend_from_slice(header.as_bytes());
    start
}

/// Completes the frame begun at `start` by [`begin_frame`]: the body is everything after
/// its header.
pub(crate) fn finish_frame(start: usize, out: &mut [u8]) {
    let Some(frame) = out.get_mut(start..) else {
        panic!("finish_frame: start {start} is past the buffer");
    };
    let body_len = frame.len() - FRAME_HEADER_BYTES;
    assert!(
        body_len <= u32::MAX as usize,
        "frame body of {body_len} bytes overflows u32"
    );
    let (header_bytes, body) = frame.split_at_mut(FRAME_HEADER_BYTES);
    let Ok(header) = WireHeader::mut_from_bytes(header_bytes) else {
        panic!("a header is {FRAME_HEADER_BYTES} unaligned bytes");
    };
    header.body_len = U32::new(body_len as u32);
    let crc = frame_crc(header, body);
    header.crc32c = U32::new(crc);
}

/// The crc32c of a frame: header bytes [0, 20), then the body.
fn frame_crc(header: &WireHeader, body: &[u8]) -> u32 {
    let covered = header.as_bytes().get(..OFFSET_CRC).unwrap_or_default();
    crc32c::crc32c_append(crc32c::crc32c(covered), body)
}

/// Checks the fields of a header that can be checked without the body.
fn check_header(header: &WireHeader, max_body_bytes: u32) -> Result<FrameHeader, FrameError> {
    if header.magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic {
            found: header.magic,
        });
    }
    let version = header.version.get();
    if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION).contains(&version) {
        return Err(FrameError::UnsupportedVersion {
            version,
            min: PROTOCOL_VERSION_MIN,
            max: PROTOCOL_VERSION,
        });
    }
    if header.flags & !FLAG_RESPONSE != 0 {
        return Err(FrameError::UnknownFlags {
            flags: header.flags,
        });
    }
    let response = header.flags & FLAG_RESPONSE != 0;
    match Opcode::from_u8(header.opcode) {
        Some(op) if op.is_response() == response => {}
        _ => {
            return Err(FrameError::UnknownOpcode {
                opcode: header.opcode,
                response,
            })
        }
    }
    let body_len = header.body_len.get();
    if body_len > max_body_bytes {
        return Err(FrameError::BodyTooLong {
            len: body_len,
            max: max_body_bytes,
        });
    }
    Ok(FrameHeader {
        opcode: header.opcode,
        flags: header.flags,
        request_id: header.request_id.get(),
        body_len,
        version,
        crc32c: header.crc32c.get(),
    })
}

/// An incremental frame decoder: feed it bytes as they arrive, take whole frames out.
///
/// It buffers what it is fed without bound: the caller reads from its socket only while
/// [`FrameDecoder::buffered_bytes`] is below its budget (at most one frame, 24 bytes +
/// the limit, is ever needed to make progress).
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    max_body_bytes: u32,
    /// The checked header of the frame at the front of `buffer`, once its bytes are in.
    header: Option<FrameHeader>,
    /// The first error; sticky.
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that refuses bodies over `max_body_bytes` (at most
    /// [`FRAME_BODY_BYTES_MAX`]).
    pub fn new(max_body_bytes: u32) -> FrameDecoder {
        assert!(
            max_body_bytes <= FRAME_BODY_BYTES_MAX,
            "decoder limit {max_body_bytes} is above the protocol's {FRAME_BODY_BYTES_MAX}"
        );
        FrameDecoder {
            buffer: BytesMut::new(),
            max_body_bytes,
            header: None,
            failed: None,
        }
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the error that ends
    /// the connection (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.try_next_frame() {
            Ok(frame) => Ok(frame),
            Err(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    fn try_next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let header = match self.header {
            Some(header) => header,
            None => {
                let Ok((wire, _)) = WireHeader::ref_from_prefix(self.buffer.as_ref()) else {
                    return Ok(None);
                };
                let header = check_header(wire, self.max_body_bytes)?;
                self.header = Some(header);
                header
            }
        };
        let frame_bytes = FRAME_HEADER_BYTES + header.body_len as usize;
        if self.buffer.len() < frame_bytes {
            return Ok(None);
        }
        let frame = self.buffer.split_to(frame_bytes).freeze();
        self.header = None;
        let (header_bytes, body) = frame.split_at(FRAME_HEADER_BYTES);
        let Ok(wire) = WireHeader::ref_from_bytes(header_bytes) else {
            panic!("a header is {FRAME_HEADER_BYTES} unaligned bytes");
        };
        let actual = frame_crc(wire, body);
        if actual != header.crc32c {
            return Err(FrameError::CrcMismatch {
                expected: header.crc32c,
                actual,
            });
        }
        Ok(Some(Frame {
            header,
            body: frame.slice(FRAME_HEADER_BYTES..),
        }))
    }
}
