//! The two ways a peer's bytes can be rejected, and the stable numbers of [`ErrorCode`].
//!
//! - [`FrameError`]: the frame itself cannot be trusted (bad magic, version, flags, opcode,
//!   length or checksum). The byte stream has lost its framing, so the connection must be
//!   closed (after a best-effort [`ErrorCode::Protocol`] error frame).
//! - [`CodecError`]: the frame is sound but its body is not a valid message (truncated,
//!   bad UTF-8, bad item, trailing bytes, too many elements, unknown tag). The stream is
//!   still framed, so the server answers [`ErrorCode::Validation`] for that request id and
//!   keeps the connection.
//!
//! Error codes are numbered once and for all (`ErrorCode::number`); a number is never
//! reused for another meaning.

use crate::codec::message::{ErrorCode, ErrorResponse};
use crate::model::ModelError;

/// A frame that cannot be read: fatal to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first four bytes of a header are not `KEEL`.
    #[error("frame: bad magic {found:02x?}, expected \"KEEL\"")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The header's version is not one this build reads.
    #[error("frame: version {version} is not in {min}..={max}")]
    UnsupportedVersion {
        /// The version in the header.
        version: u16,
        /// Lowest version this build reads.
        min: u16,
        /// Highest version this build reads.
        max: u16,
    },
    /// The body length is above the decoder's limit (checked before the body arrives).
    #[error("frame: body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLong {
        /// The body length in the header.
        len: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// The crc32c over header and body does not match the header's.
    #[error("frame: crc32c mismatch, header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch {
        /// The crc32c in the header.
        expected: u32,
        /// The crc32c of the bytes received.
        actual: u32,
    },
    /// Flag bits that no version defines are set.
    #[error("frame: unknown flag bits {flags:#04x}")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The opcode is not a request opcode (response bit clear) or a response opcode
    /// (response bit set).
    #[error("frame: unknown opcode {opcode:#04x} (response bit {response})")]
    UnknownOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Whether the response flag was set.
        response: bool,
    },
}

/// A frame whose body is not a valid message: answered with [`ErrorCode::Validation`],
/// not fatal to the connection. Offsets count from the first body byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The body ended inside a field.
    #[error("body: truncated at offset {offset}, {needed_bytes} more bytes needed")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
        /// How many more bytes were needed at least.
        needed_bytes: usize,
    },
    /// A string is not valid UTF-8.
    #[error("body: invalid UTF-8 in the string at offset {offset}")]
    InvalidUtf8 {
        /// Offset of the string's length field.
        offset: usize,
    },
    /// An embedded item (or expression-values map) does not decode.
    #[error("body: bad item at offset {offset}: {source}")]
    Item {
        /// Offset of the item's length field.
        offset: usize,
        /// What the item decoder found.
        #[source]
        source: ModelError,
    },
    /// Bytes left over after the message.
    #[error("body: {trailing_bytes} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many bytes are left over.
        trailing_bytes: usize,
    },
    /// A count or length larger than the rest of the body can hold.
    #[error("body: length {len} at offset {offset} exceeds the {remaining_bytes} bytes left")]
    LengthTooLarge {
        /// The count or length read.
        len: u32,
        /// Its offset.
        offset: usize,
        /// The bytes left after it.
        remaining_bytes: usize,
    },
    /// More elements than the protocol allows (25 batch writes, 100 batch keys).
    #[error("body: {count} {what} exceed the limit of {max}")]
    TooManyElements {
        /// What was counted.
        what: &'static str,
        /// How many there are.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A tag (option, bool, enum, error code) with a value no version defines.
    #[error("body: unknown {what} tag {tag} at offset {offset}")]
    UnknownTag {
        /// Which field.
        what: &'static str,
        /// The value found.
        tag: u16,
        /// Its offset.
        offset: usize,
    },
    /// Well formed, but not the one canonical encoding (expression names not ascending).
    #[error("body: non-canonical encoding at offset {offset}: {what}")]
    NonCanonical {
        /// Offset of the offending field.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// `decode_request` was given a response frame, or `decode_response` a request frame,
    /// or the opcode is unknown (a frame built without [`crate::codec::FrameDecoder`]).
    #[error("body: opcode {opcode:#04x} is not a {expected} opcode")]
    WrongOpcode {
        /// The opcode in the header.
        opcode: u8,
        /// `"request"` or `"response"`.
        expected: &'static str,
    },
}

impl CodecError {
    /// The wire error this becomes: always [`ErrorCode::Validation`], not retryable.
    pub fn to_error_response(&self) -> ErrorResponse {
        ErrorResponse::new(ErrorCode::Validation, self.to_string())
    }
}

impl FrameError {
    /// The wire error sent (best effort) before closing: [`ErrorCode::Protocol`].
    pub fn to_error_response(&self) -> ErrorResponse {
        ErrorResponse::new(ErrorCode::Protocol, self.to_string())
    }
}

/// Every error code with its wire number, in number order (the numbering's one source).
pub const ERROR_CODES: [(ErrorCode, u16); 9] = [
    (ErrorCode::Validation, 1),
    (ErrorCode::ConditionalCheckFailed, 2),
    (ErrorCode::ResourceNotFound, 3),
    (ErrorCode::ResourceInUse, 4),
    (ErrorCode::Throttled, 5),
    (ErrorCode::Internal, 6),
    (ErrorCode::Protocol, 7),
    (ErrorCode::UnsupportedVersion, 8),
    (ErrorCode::Unavailable, 9),
];

impl ErrorCode {
    /// The stable wire number of this code (see `net/PROTOCOL.md`, "Error codes").
    pub fn number(self) -> u16 {
        match self {
            ErrorCode::Validation => 1,
            ErrorCode::ConditionalCheckFailed => 2,
            ErrorCode::ResourceNotFound => 3,
            ErrorCode::ResourceInUse => 4,
            ErrorCode::Throttled => 5,
            ErrorCode::Internal => 6,
            ErrorCode::Protocol => 7,
            ErrorCode::UnsupportedVersion => 8,
            ErrorCode::Unavailable => 9,
        }
    }

    /// The code with wire number `number`, if any.
    pub fn from_number(number: u16) -> Option<ErrorCode> {
        ERROR_CODES
            .iter()
            .find(|(_, n)| *n == number)
            .map(|(code, _)| *code)
    }

    /// Whether a request failing with this code may succeed if sent again unchanged:
    /// true for `Throttled` (after a backoff), `Unavailable` (later or elsewhere) and
    /// `Internal` (a failed node recovers or is replaced).
    pub fn is_retryable_by_default(self) -> bool {
        match self {
            ErrorCode::Throttled | ErrorCode::Unavailable | ErrorCode::Internal => true,
            ErrorCode::Validation
            | ErrorCode::ConditionalCheckFailed
            | ErrorCode::ResourceNotFound
            | ErrorCode::ResourceInUse
            | ErrorCode::Protocol
            | ErrorCode::UnsupportedVersion => false,
        }
    }
}

impl ErrorResponse {
    /// An error with `code`'s default retryability and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            code,
            retryable: code.is_retryable_by_default(),
            message: message.into(),
        }
    }
}
