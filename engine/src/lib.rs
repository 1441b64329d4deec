//! keel-engine: the storage of one shard.
pub mod wal;
