//! Workloads: what operations a run issues, on which records, with which values.
//!
//! - [`distribution`]: key distributions (uniform, zipfian, latest, hotspot).
//! - [`mix`]: operation kinds and their proportions.
//! - [`value`]: field values.
//!
//! This module is pure: no clock, no I/O; randomness comes from seeded [`Prng`]s. Records
//! are numbered `0..`; record `n` has the key [`key_name`]`(n)` and `field_count` fields
//! `field0..` of `field_bytes` bytes each (YCSB's `usertable` layout; 10 × 100 bytes is
//! YCSB's default, about 1 KiB per record).

pub mod distribution;
pub mod mix;
pub mod value;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

pub use distribution::{Distribution, KeyChooser, ZIPFIAN_THETA_DEFAULT};
pub use mix::{Mix, OpKind};
pub use value::ValuePool;

use crate::prng::Prng;

/// Everything that defines a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// A name for reports (`a`..`f` or `custom`).
    pub name: String,
    /// Operation proportions.
    pub mix: Mix,
    /// Which records operations touch.
    pub distribution: Distribution,
    /// Records loaded by the load phase.
    pub records: u64,
    /// Fields per record.
    pub field_count: u32,
    /// Bytes per field value.
    pub field_bytes: u32,
    /// Longest scan, in records (lengths are uniform in `1..=scan_length_max`).
    pub scan_length_max: u32,
    /// Updates write every field instead of one.
    pub write_all_fields: bool,
}

/// The YCSB core workloads, by letter.
pub fn preset(letter: &str) -> Option<(Mix, Distribution)> {
    use OpKind::*;
    let zipf = Distribution::Zipfian {
        theta: ZIPFIAN_THETA_DEFAULT,
    };
    let preset = match letter.to_ascii_lowercase().as_str() {
        // Update heavy: a session store recording recent actions.
        "a" => (Mix::of(&[(Read, 0.5), (Update, 0.5)]), zipf),
        // Read mostly: photo tagging.
        "b" => (Mix::of(&[(Read, 0.95), (Update, 0.05)]), zipf),
        // Read only: a user profile cache.
        "c" => (Mix::of(&[(Read, 1.0)]), zipf),
        // Read latest: status updates.
        "d" => (
            Mix::of(&[(Read, 0.95), (Insert, 0.05)]),
            Distribution::Latest {
                theta: ZIPFIAN_THETA_DEFAULT,
            },
        ),
        // Short ranges: threaded conversations.
        "e" => (Mix::of(&[(Scan, 0.95), (Insert, 0.05)]), zipf),
        // Read-modify-write: a user database.
        "f" => (Mix::of(&[(Read, 0.5), (ReadModifyWrite, 0.5)]), zipf),
        _ => return None,
    };
    Some(preset)
}

impl WorkloadSpec {
    /// Checks every parameter; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        self.mix.validate()?;
        self.distribution.validate()?;
        if self.records == 0 {
            return Err("--records must be at least 1".to_owned());
        }
        if self.field_count == 0 {
            return Err("--fields must be at least 1".to_owned());
        }
        if self.field_bytes == 0 || self.field_bytes > 65_536 {
            return Err(format!(
                "--field-bytes {} must be in 1..=65536",
                self.field_bytes
            ));
        }
        if self.scan_length_max == 0 {
            return Err("--scan-length-max must be at least 1".to_owned());
        }
        Ok(())
    }

    /// Bytes of field values in one record.
    pub fn record_value_bytes(&self) -> u64 {
        u64::from(self.field_count) * u64::from(self.field_bytes)
    }
}

/// The key of record `n`: `user` and 12 digits, so keys sort in record order.
pub fn key_name(n: u64) -> String {
    format!("user{n:012}")
}

/// The name of field `i`.
pub fn field_name(i: u32) -> String {
    format!("field{i}")
}

/// Which fields an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// Every field.
    All,
    /// One field.
    One(u32),
}

/// One operation to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Read record `key`.
    Read {
        /// Record number.
        key: u64,
    },
    /// Write `fields` of record `key`.
    Update {
        /// Record number.
        key: u64,
        /// The fields written.
        fields: Fields,
    },
    /// Insert record `key` with every field.
    Insert {
        /// Record number.
        key: u64,
    },
    /// Read `count` records starting at `key`.
    Scan {
        /// First record number.
        key: u64,
        /// Records to read.
        count: u32,
    },
    /// Read record `key`, then write `fields` of it.
    ReadModifyWrite {
        /// Record number.
        key: u64,
        /// The fields written.
        fields: Fields,
    },
}

impl Operation {
    /// The operation's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Operation::Read { .. } => OpKind::Read,
            Operation::Update { .. } => OpKind::Update,
            Operation::Insert { .. } => OpKind::Insert,
            Operation::Scan { .. } => OpKind::Scan,
            Operation::ReadModifyWrite { .. } => OpKind::ReadModifyWrite,
        }
    }
}

/// The record numbers in use, shared by every connection of a run.
///
/// Records `0..records` exist after the load phase; inserts claim `insert_next` and bump
/// it. Reads choose among `0..visible()`: records whose insert was claimed, so a read may
/// race an insert in flight and find nothing (counted as a miss, not an error).
#[derive(Debug)]
pub struct KeySpace {
    insert_next: AtomicU64,
}

impl KeySpace {
    /// A key space whose first `records` records exist.
    pub fn new(records: u64) -> KeySpace {
        KeySpace {
            insert_next: AtomicU64::new(records),
        }
    }

    /// Claims the next record number to insert.
    pub fn claim_insert(&self) -> u64 {
        self.insert_next.fetch_add(1, Ordering::Relaxed)
    }

    /// The number of records that exist or are being inserted.
    pub fn visible(&self) -> u64 {
        self.insert_next.load(Ordering::Relaxed)
    }
}

/// Draws the operations of one connection.
#[derive(Debug, Clone)]
pub struct Generator {
    prng: Prng,
    mix: Mix,
    chooser: KeyChooser,
    field_count: u32,
    scan_length_max: u32,
    write_all_fields: bool,
}

impl Generator {
    /// A generator for `spec` drawing from `seed`; `chooser` is `spec`'s distribution
    /// prepared with [`KeyChooser::new`] (shared work, cloned per connection).
    pub fn new(spec: &WorkloadSpec, chooser: KeyChooser, seed: u64) -> Generator {
        Generator {
            prng: Prng::new(seed),
            mix: spec.mix,
            chooser,
            field_count: spec.field_count,
            scan_length_max: spec.scan_length_max,
            write_all_fields: spec.write_all_fields,
        }
    }

    /// The generator's random source (values are drawn from it too).
    pub fn prng(&mut self) -> &mut Prng {
        &mut self.prng
    }

    fn fields(&mut self) -> Fields {
        if self.write_all_fields {
            Fields::All
        } else {
            Fields::One(self.prng.below(u64::from(self.field_count)) as u32)
        }
    }

    /// The next operation.
    pub fn next(&mut self, keys: &KeySpace) -> Operation {
        let kind = self.mix.choose(&mut self.prng);
        match kind {
            OpKind::Insert => Operation::Insert {
                key: keys.claim_insert(),
            },
            _ => {
                let key = self.chooser.next(&mut self.prng, keys.visible().max(1));
                match kind {
                    OpKind::Read => Operation::Read { key },
                    OpKind::Update => Operation::Update {
                        key,
                        fields: self.fields(),
                    },
                    OpKind::Scan => Operation::Scan {
                        key,
                        count: 1 + self.prng.below(u64::from(self.scan_length_max)) as u32,
                    },
                    _ => Operation::ReadModifyWrite {
                        key,
                        fields: self.fields(),
                    },
                }
            }
        }
    }
}
