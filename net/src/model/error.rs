//! [`ModelError`]: every way an item, a number or a key can be rejected.
//!
//! Messages name the attribute (the top-level attribute name for nested values) and, for
//! decode errors, the byte offset in the input, so a corrupt record can be located.

use crate::model::key::KeyType;

/// An error from parsing, validating, encoding or decoding the data model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A number string is not a decimal literal (`[+-]digits[.digits][(e|E)[+-]digits]`).
    #[error("number syntax: {input:?} is not a decimal number")]
    NumberSyntax {
        /// The rejected input (cut to 64 bytes).
        input: String,
    },
    /// A number has more than 38 significant digits.
    #[error("number precision: {digits} significant digits, at most 38 are allowed")]
    NumberPrecision {
        /// The count of significant digits the number would need.
        digits: usize,
    },
    /// A non-zero number's magnitude is outside 1E-130 ..= 9.99..9E+125.
    #[error("number out of range: magnitude 10^{exponent_scientific} is outside 1E-130..1E+126")]
    NumberRange {
        /// The exponent in scientific notation (`d.ddd × 10^exponent_scientific`).
        exponent_scientific: i64,
    },
    /// A set attribute (SS, NS, BS) has no elements.
    #[error("attribute {attribute:?}: a set must not be empty")]
    EmptySet {
        /// The top-level attribute holding the set.
        attribute: String,
    },
    /// Maps and lists nest deeper than [`crate::model::NESTING_DEPTH_MAX`].
    #[error("attribute {attribute:?}: nesting depth {depth} exceeds {depth_max}")]
    NestingTooDeep {
        /// The top-level attribute holding the nested value.
        attribute: String,
        /// The depth reached.
        depth: usize,
        /// The limit.
        depth_max: usize,
    },
    /// An attribute or map-entry name is empty or longer than allowed.
    #[error(
        "attribute name of {len_bytes} bytes (starting {name_start:?}) is not in 1..={max_bytes}"
    )]
    AttributeNameLength {
        /// The first characters of the name.
        name_start: String,
        /// The name's length in bytes.
        len_bytes: usize,
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// The item is larger than [`crate::model::ITEM_BYTES_MAX`] by DynamoDB's sizing rules.
    #[error("item size {size_bytes} bytes exceeds {max_bytes} bytes")]
    ItemTooLarge {
        /// The item's size by DynamoDB's rules.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The item lacks a key attribute of the table's key schema.
    #[error("key attribute {attribute:?} is missing from the item")]
    MissingKeyAttribute {
        /// The key attribute's name.
        attribute: String,
    },
    /// A key attribute's value has another type than the key schema declares.
    #[error("key attribute {attribute:?}: expected type {expected:?}, found {found}")]
    KeyTypeMismatch {
        /// The key attribute's name.
        attribute: String,
        /// The type the key schema declares.
        expected: KeyType,
        /// The DynamoDB type name of the value found (`"S"`, `"M"`, ...).
        found: &'static str,
    },
    /// A string or binary key attribute is empty, which DynamoDB forbids.
    #[error("key attribute {attribute:?}: an empty string or binary is not a valid key")]
    EmptyKeyValue {
        /// The key attribute's name.
        attribute: String,
    },
    /// A key value is longer than DynamoDB allows (2048 bytes partition, 1024 bytes sort).
    #[error("key attribute {attribute:?}: value of {len_bytes} bytes exceeds {max_bytes}")]
    KeyValueTooLong {
        /// The key attribute's name.
        attribute: String,
        /// The value's length in bytes.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A key schema names the same attribute as partition and sort key.
    #[error("key schema: {attribute:?} is both partition key and sort key")]
    DuplicateKeyAttribute {
        /// The doubled name.
        attribute: String,
    },
    /// A key has a sort key value but the key schema has no sort key.
    #[error("key has a sort key value but the key schema has no sort key")]
    UnexpectedSortKey,
    /// A prefix (begins_with) bound was asked for a number key, which DynamoDB forbids.
    #[error("begins_with is defined on S and B sort keys, not on {key_type:?}")]
    PrefixOnNumber {
        /// The key type given.
        key_type: KeyType,
    },
    /// Decode: the input ended inside a value.
    #[error("decode: truncated at offset {offset}, {needed_bytes} more bytes needed")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
        /// How many more bytes were needed at least.
        needed_bytes: usize,
    },
    /// Decode: a tag byte that no version of the format defines.
    #[error("decode: unknown tag 0x{tag:02x} at offset {offset}")]
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// Decode: the item encoding has a version this build does not read.
    #[error("decode: unsupported item format version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// Decode: the bytes are well formed but not the one canonical encoding
    /// (overlong varint, unsorted or duplicate map keys or set elements, a number that
    /// is not normalized, a bad escape). Canonical-only decoding keeps encode∘decode the
    /// identity on bytes, so equal items always have equal bytes.
    #[error("decode: non-canonical encoding at offset {offset}: {what}")]
    NonCanonical {
        /// Offset of the offending value.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Decode: a string is not valid UTF-8.
    #[error("decode: invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 {
        /// Offset of the string's first byte.
        offset: usize,
    },
    /// Decode: a count or length larger than the rest of the input can hold.
    #[error("decode: length {len} at offset {offset} exceeds the {remaining_bytes} bytes left")]
    LengthTooLarge {
        /// The length or count read.
        len: u64,
        /// Its offset.
        offset: usize,
        /// The bytes left in the input.
        remaining_bytes: usize,
    },
    /// Decode: bytes left over after the item or key.
    #[error("decode: {trailing_bytes} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many bytes are left over.
        trailing_bytes: usize,
    },
    /// Decode: a storage key whose hash prefix does not match its partition key (corruption).
    #[error(
        "decode: storage key hash {stored:#018x} but partition key hashes to {computed:#018x}"
    )]
    HashMismatch {
        /// The hash stored in the first 8 bytes.
        stored: u64,
        /// The hash of the decoded partition key.
        computed: u64,
    },
}

/// Cuts user input for an error message so errors stay small.
pub(crate) fn input_start(input: &str) -> String {
    input.chars().take(64).collect()
}
