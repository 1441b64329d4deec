//! keel-engine: the storage of one shard.
