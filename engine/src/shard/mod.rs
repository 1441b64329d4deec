//! The shard's storage engine: typed items over the WAL and the partitions' B-trees.
//!
//! - [`mutation`]: the WAL payload of a change (pure).
//! - [`condition`]: write preconditions (pure).
//! - [`range`]: storage-key ranges for Query-style scans (pure).
//! - [`partition_meta`]: the partition declaration file (pure).
//! - [`engine`]: the driver that ties them to glommio I/O.

pub mod condition;
pub mod engine;
pub mod mutation;
pub mod partition_meta;
pub mod range;

pub use condition::Condition;
pub use engine::{
    Decision, Engine, EngineOptions, EngineStats, OldItem, PartitionId, ScanPage,
    CHECKPOINT_WAL_BYTES_DEFAULT,
};
pub use keel_net::SortCondition;
pub use range::KeyRange;

use crate::error::StorageError;
use crate::wal::WalError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The condition of a conditional write did not hold; nothing was written.
    #[error("the conditional request failed")]
    ConditionFailed,
    /// A read-modify-write tried to store an item under a different key.
    #[error("the new item's key differs from the key of the item it replaces")]
    KeyChanged,
    /// A read-modify-write refused the stored item (an update that does not apply to it).
    #[error("{0}")]
    Refused(String),
    /// The item or key is invalid (type, size, schema).
    #[error("validation: {0}")]
    Validation(#[from] keel_net::ModelError),
    /// No partition with this id on this shard.
    #[error("partition {0} does not exist")]
    UnknownPartition(u64),
    /// A partition with this id exists already.
    #[error("partition {0} exists already")]
    PartitionExists(u64),
    /// The tree or page cache failed (I/O or corruption).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The WAL failed (I/O or corruption).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A stored item does not decode: corruption that passed the page checksum.
    #[error("partition {partition}: stored item does not decode: {source}")]
    CorruptItem {
        /// The partition.
        partition: u64,
        /// The decoder's finding.
        source: keel_net::ModelError,
    },
    /// A WAL record sets attributes of an item that its tree does not hold: the tree and
    /// the log disagree.
    #[error(
        "WAL record {lsn} sets attributes of an item that partition {partition} does not hold"
    )]
    SetOfAbsentItem {
        /// The partition.
        partition: u64,
        /// The record's LSN.
        lsn: u64,
    },
    /// A WAL record's payload is not a mutation.
    #[error("WAL record {lsn}: {source}")]
    CorruptMutation {
        /// The record's LSN.
        lsn: u64,
        /// The decoder's finding.
        source: mutation::MutationError,
    },
    /// A partition declaration file is unreadable.
    #[error("{path}: {source}")]
    CorruptPartitionFile {
        /// The file.
        path: String,
        /// The decoder's finding.
        source: partition_meta::MetaError,
    },
    /// The WAL names a partition that is not declared.
    #[error("WAL record {lsn} names undeclared partition {partition}")]
    UnknownPartitionInWal {
        /// The partition.
        partition: u64,
        /// The record's LSN.
        lsn: u64,
    },
    /// A tree's checkpoint is newer than the end of the WAL: the log lost durable records.
    #[error(
        "partition {partition} is checkpointed at LSN {checkpoint_lsn} \
         but the WAL ends at {wal_lsn}"
    )]
    WalBehindCheckpoint {
        /// The partition.
        partition: u64,
        /// Its checkpoint's LSN.
        checkpoint_lsn: u64,
        /// The last LSN in the WAL.
        wal_lsn: u64,
    },
    /// A declared partition's tree file is missing or empty.
    #[error("{path}: the tree of a declared partition is missing")]
    MissingTree {
        /// The tree file.
        path: String,
    },
    /// An earlier failure stopped the engine; restart to recover from the WAL.
    #[error("engine stopped after a failure: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
    /// The engine is closing.
    #[error("engine closed")]
    Closed,
}
