//! The B-tree of one partition replica: page layout, superblock, the tree, and its I/O seam.
//!
//! - [`page`]: the checksummed page format (pure).
//! - [`superblock`]: the double superblock and its recovery decision table (pure).
//! - [`tree`]: the copy-on-write B+tree over the page cache.
//! - [`file`]: the [`file::PageFile`] seam, with direct-I/O and in-memory implementations.

pub mod file;
pub mod page;
pub mod superblock;
pub mod tree;

pub use file::{DmaPageFile, MemPageFile, PageFile};
pub use page::PageId;
pub use tree::{CheckpointPlan, Seek, Tree, TreeStats, KEY_BYTES_MAX, VALUE_BYTES_MAX};

#[cfg(test)]
mod tests;
