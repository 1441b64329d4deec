//! keel-engine: the node: shards, their storage, and the protocol server.
//!
//! - [`wal`]: the shard's write-ahead log with group commit.
//! - [`btree`]: one copy-on-write B-tree per partition replica, direct I/O.
//! - [`page_cache`]: the fixed-size per-shard page cache every tree reads through.
//! - [`shard`]: the engine: typed items over the WAL and the trees, recovery, checkpoints.
//! - [`node`]: a keel node: shards per core, the protocol server, the catalog, routing.
//! - [`signal`]: a notifier for the tasks of one executor.
//! - [`error`]: storage errors.
//! - [`fuzz`]: fuzz bodies for the decoders of on-disk bytes (tests and `engine/fuzz`).

pub mod btree;
pub mod error;
pub mod fuzz;
pub mod node;
pub mod page_cache;
pub mod shard;
pub mod signal;
pub mod wal;

pub use error::StorageError;
