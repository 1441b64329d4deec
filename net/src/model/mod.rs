//! The item data model of keel, as DynamoDB has it, and its encodings.
//!
//! Pure code: no I/O, no clocks, no randomness.
//!
//! - [`number`] — [`Number`], an exact decimal of up to 38 significant digits.
//! - [`value`] — [`Value`], [`Item`], DynamoDB item sizing and validation.
//! - [`item_codec`] — the compact, deterministic binary encoding of an item (disk and wire).
//! - [`key`] — key schemas, key values, primary keys and their extraction from an item.
//! - [`storage_key`] — the partition hash and the order-preserving storage-key encoding, so
//!   that a Query is one range scan.
//! - [`fuzz`] — fuzz bodies for the decoders, run by tests and by `net/fuzz` (cargo-fuzz).
//! - [`error`] — [`ModelError`].

pub mod error;
pub mod fuzz;
pub mod item_codec;
pub mod key;
pub mod number;
pub mod storage_key;
pub mod value;

#[cfg(test)]
pub(crate) mod tests;

pub use error::ModelError;
pub use item_codec::{
    decode_item, encode_item, set_top_level, ITEM_FORMAT_VERSION, SIZE_PER_ENCODED_BYTE_MAX,
};
pub use key::{
    KeyAttribute, KeySchema, KeyType, KeyValue, PrimaryKey, SortCondition,
    KEY_ATTRIBUTE_NAME_BYTES_MAX, PARTITION_KEY_BYTES_MAX, SORT_KEY_BYTES_MAX,
};
pub use number::Number;
pub use storage_key::{
    decode_storage_key, encode_sort_key, encode_sort_key_prefix, encode_storage_key,
    partition_hash, partition_prefix, prefix_upper_bound, storage_key_hash, NUMBER_KEY_BYTES_MAX,
    PARTITION_HASH_BYTES, STORAGE_KEY_BYTES_MAX,
};
pub use value::{
    item_size_bytes, validate_item, Item, Value, ATTRIBUTE_NAME_BYTES_MAX, ITEM_BYTES_MAX,
    NESTING_DEPTH_MAX,
};
