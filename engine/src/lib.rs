//! keel-engine: the storage of one shard.
//!
//! - [`btree`]: one copy-on-write B-tree per partition replica, direct I/O.
//! - [`page_cache`]: the fixed-size per-shard page cache every tree reads through.
//! - [`error`]: storage errors.

pub mod btree;
pub mod error;
pub mod page_cache;

pub use error::StorageError;
