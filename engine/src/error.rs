//! Storage errors: operating errors as values, each naming what failed and where.

use crate::btree::page::PageError;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O call failed.
    #[error("{op} {path} at offset {offset}: {source}")]
    Io {
        /// The operation (read, write, fdatasync, open).
        op: &'static str,
        /// The file.
        path: String,
        /// The byte offset of the operation.
        offset: u64,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A page failed its checksum or layout check: it is reported, never served.
    #[error("{path}: corrupt {source}")]
    CorruptPage {
        /// The tree file.
        path: String,
        /// What the check found.
        #[source]
        source: PageError,
    },
    /// Neither superblock of a written tree file is valid.
    #[error("{path}: neither superblock slot is valid")]
    CorruptSuperblock {
        /// The tree file.
        path: String,
    },
    /// A tree file belongs to another tree than the one opened.
    #[error("{path}: superblock names tree {found}, expected {expected}")]
    WrongTree {
        /// The tree file.
        path: String,
        /// The tree asked for.
        expected: u64,
        /// The tree the file holds.
        found: u64,
    },
    /// A key is longer than a page can hold.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value is longer than the tree accepts.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Builds the [`StorageError::Io`] for an operation on a file at an offset.
pub fn io_error(op: &'static str, path: &str, offset: u64, source: std::io::Error) -> StorageError {
    StorageError::Io {
        op,
        path: path.to_owned(),
        offset,
        source,
    }
}
