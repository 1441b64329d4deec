//! keel-net: the data model and expressions shared by the engine, the wire and the client.
//!
//! Table of contents:
//! - [`client`]: the native clients, blocking and glommio, pipelined and shard-aware.
//! - [`codec`]: the wire protocol's requests, responses and frames.
//! - [`expr`]: DynamoDB expressions (condition, filter, update, key condition, projection):
//!   parsing and evaluation against items, pure code.
//! - [`fuzz_input`]: seeded inputs for the stable runs of the fuzz bodies.
//! - [`model`]: items, values, exact decimal numbers, the item binary encoding, key schemas,
//!   primary keys, the partition hash and the order-preserving storage-key encoding.

pub mod client;
pub mod codec;
pub mod expr;
pub mod fuzz_input;
pub mod model;

pub use model::{
    decode_item, decode_storage_key, encode_item, encode_sort_key, encode_sort_key_prefix,
    encode_storage_key, item_size_bytes, partition_hash, partition_prefix, prefix_upper_bound,
    storage_key_hash, validate_item, Item, KeyAttribute, KeySchema, KeyType, KeyValue, ModelError,
    Number, PrimaryKey, SortCondition, Value, ITEM_BYTES_MAX, STORAGE_KEY_BYTES_MAX,
};
