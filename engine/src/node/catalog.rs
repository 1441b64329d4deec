//! The node's catalog of tables: names, key schemas, partition maps. Pure code.
//!
//! Shard 0 owns the catalog: it alone changes it, saves it (see [`encode`]) and sends each
//! new version to the other shards before it answers. A table's partitions are contiguous
//! ranges of the partition-key hash ([`keel_net::codec::partition_hash_range`]); partition
//! `i` lives on shard `i % shards`, and its engine id is [`partition_id`]`(table, i)`.
//!
//! A table moves through `Creating` → `Active` → `Deleting` → gone; each step is saved
//! before the partitions are created or dropped, so a restart finishes a step a crash
//! interrupted. Table ids only grow, so a partition id is never used twice.
//!
//! File layout (all integers little-endian):
//! ```text
//! | magic "KEELCTLG" | version u8 | shards u32 | next_table_id u32 | tables u32 |
//! then per table:
//! | id u32 | status u8 | partitions u32 | created_unix_ms u64 | name_len u16 | name |
//! | pk_type u8 | pk_len u16 | pk name | has_sk u8 | [sk_type u8 | sk_len u16 | sk name] |
//! and last | crc32c u32 of everything before |
//! ```
#![deny(clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_net::codec::{partition_hash_range, PartitionInfo, TableDescription, TableStatus};
use keel_net::KeySchema;

use crate::shard::partition_meta::{self, MetaError};
use crate::shard::PartitionId;

const MAGIC: &[u8; 8] = b"KEELCTLG";
const VERSION: u8 = 1;
/// Most partitions a table may have.
pub const PARTITIONS_MAX: u32 = 1024;
/// Most tables a node holds.
pub const TABLES_MAX: usize = 4096;
/// Most partitions of all tables of a node together (each holds an open tree file).
pub const NODE_PARTITIONS_MAX: u64 = 8192;
/// Most table names one ListTables answers.
pub const LIST_TABLES_MAX: u32 = 100;

/// A table in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Never reused; the high bits of its partitions' ids.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Its key schema.
    pub schema: KeySchema,
    /// Where it is in its life.
    pub status: TableStatus,
    /// Number of partitions.
    pub partitions: u32,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
}

/// The engine id of partition `index` of table `table_id`.
pub fn partition_id(table_id: u32, index: u32) -> PartitionId {
    PartitionId((u64::from(table_id) << 32) | u64::from(index))
}

impl Table {
    /// The shard that owns partition `index` on a node of `shards` shards.
    pub fn shard_of(&self, index: u32, shards: u32) -> u32 {
        index % shards
    }

    /// The partitions (index and engine id) that shard `shard` owns.
    pub fn partitions_on(&self, shard: u32, shards: u32) -> Vec<(u32, PartitionId)> {
        (0..self.partitions)
            .filter(|&i| self.shard_of(i, shards) == shard)
            .map(|i| (i, partition_id(self.id, i)))
            .collect()
    }

    /// The table as DescribeTable shows it.
    pub fn describe(&self, shards: u32) -> TableDescription {
        TableDescription {
            table: self.name.clone(),
            schema: self.schema.clone(),
            status: self.status,
            created_unix_ms: self.created_unix_ms,
            partitions: (0..self.partitions)
                .map(|i| {
                    let (hash_low, hash_high) = partition_hash_range(i, self.partitions);
                    PartitionInfo {
                        hash_low,
                        hash_high,
                        shard: self.shard_of(i, shards),
                    }
                })
                .collect(),
        }
    }
}

/// Why a catalog change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The request is invalid (name, schema, partition count, limits).
    #[error("{0}")]
    Invalid(String),
    /// No table has this name.
    #[error("table not found: {0}")]
    NotFound(String),
    /// A table with this name exists (or is being deleted).
    #[error("table already exists: {0}")]
    InUse(String),
}

/// Why a catalog file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogFileError {
    /// The checksum does not match.
    #[error("catalog checksum mismatch (stored {expected:#010x}, computed {actual:#010x})")]
    Checksum {
        /// Stored crc32c.
        expected: u32,
        /// Computed crc32c.
        actual: u32,
    },
    /// Not a catalog, cut short, or an unknown tag.
    #[error("malformed catalog: {0}")]
    Malformed(&'static str),
}

impl From<MetaError> for CatalogFileError {
    fn from(e: MetaError) -> CatalogFileError {
        match e {
            MetaError::Checksum { expected, actual } => {
                CatalogFileError::Checksum { expected, actual }
            }
            MetaError::Malformed(m) => CatalogFileError::Malformed(m),
        }
    }
}

/// Every table of the node, and the node's shard count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Shards of the node; fixed when the data directory is created.
    pub shards: u32,
    /// The id the next table gets.
    pub next_table_id: u32,
    /// Tables by name (shared, so that a request borrows its table without copying it).
    pub tables: BTreeMap<String, Arc<Table>>,
}

/// Checks a table name as DynamoDB does: 3 to 255 characters of `A-Z a-z 0-9 _ - .`.
pub fn validate_table_name(name: &str) -> Result<(), CatalogError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !(3..=255).contains(&name.len()) || !name.chars().all(ok_char) {
        return Err(CatalogError::Invalid(format!(
            "invalid table name {name:?}: use 3 to 255 characters of A-Z a-z 0-9 _ - ."
        )));
    }
    Ok(())
}

impl Catalog {
    /// An empty catalog for a node of `shards` shards.
    pub fn new(shards: u32) -> Catalog {
        Catalog {
            shards,
            next_table_id: 1,
            tables: BTreeMap::new(),
        }
    }

    /// The table named `name`, if it exists and is not being deleted.
    pub fn live(&self, name: &str) -> Result<&Arc<Table>, CatalogError> {
        match self.tables.get(name) {
            Some(t) if t.status != TableStatus::Deleting => Ok(t),
            _ => Err(CatalogError::NotFound(name.to_owned())),
        }
    }

    /// Adds table `name` in state `Creating` with `partitions` partitions (the default
    /// `default_partitions` if `None`) and returns it.
    pub fn begin_create(
        &mut self,
        name: &str,
        schema: &KeySchema,
        partitions: Option<u32>,
        default_partitions: u32,
        now_unix_ms: u64,
    ) -> Result<Table, CatalogError> {
        validate_table_name(name)?;
        schema
            .validate()
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        let partitions = partitions.unwrap_or(default_partitions);
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(CatalogError::Invalid(format!(
                "partition count {partitions} is outside 1..={PARTITIONS_MAX}"
            )));
        }
        if self.tables.contains_key(name) {
            return Err(CatalogError::InUse(name.to_owned()));
        }
        let in_use: u64 = self.tables.values().map(|t| u64::from(t.partitions)).sum();
        if in_use + u64::from(partitions) > NODE_PARTITIONS_MAX {
            return Err(CatalogError::Invalid(format!(
                "the node holds {in_use} partitions; {partitions} more would pass its limit \
                 of {NODE_PARTITIONS_MAX}"
            )));
        }
        if self.tables.len() >= TABLES_MAX {
            return Err(CatalogError::Invalid(format!(
                "the node holds its limit of {TABLES_MAX} tables"
            )));
        }
        let id = self.next_table_id;
        self.next_table_id = id
            .checked_add(1)
            .ok_or_else(|| CatalogError::Invalid("table ids are exhausted".into()))?;
        let table = Table {
            id,
            name: name.to_owned(),
            schema: schema.clone(),
            status: TableStatus::Creating,
            partitions,
            created_unix_ms: now_unix_ms,
        };
        self.tables.insert(name.to_owned(), Arc::new(table.clone()));
        Ok(table)
    }

    /// Marks table `name` active once its partitions exist.
    pub fn finish_create(&mut self, name: &str) {
        if let Some(t) = self.tables.get_mut(name) {
            Arc::make_mut(t).status = TableStatus::Active;
        }
    }

    /// Marks table `name` as being deleted and returns it.
    pub fn begin_delete(&mut self, name: &str) -> Result<Table, CatalogError> {
        let t = match self.tables.get_mut(name) {
            Some(t) if t.status != TableStatus::Deleting => Arc::make_mut(t),
            _ => return Err(CatalogError::NotFound(name.to_owned())),
        };
        t.status = TableStatus::Deleting;
        Ok(t.clone())
    }

    /// Removes table `name` once its partitions are dropped.
    pub fn finish_delete(&mut self, name: &str) {
        self.tables.remove(name);
    }

    /// Names of live tables after `start_after`, at most `limit` (capped at 100); and the
    /// last name returned if more may follow.
    pub fn list(&self, start_after: Option<&str>, limit: Option<u32>) -> (Vec<String>, bool) {
        let limit = limit.unwrap_or(LIST_TABLES_MAX).clamp(1, LIST_TABLES_MAX) as usize;
        let names: Vec<String> = self
            .tables
            .values()
            .filter(|t| t.status != TableStatus::Deleting)
            .map(|t| t.name.clone())
            .filter(|n| start_after.is_none_or(|s| n.as_str() > s))
            .take(limit + 1)
            .collect();
        let more = names.len() > limit;
        (names.into_iter().take(limit).collect(), more)
    }

    /// Every engine partition id the catalog holds on shard `shard`, with its schema.
    pub fn partitions_on(&self, shard: u32) -> BTreeMap<PartitionId, KeySchema> {
        self.tables
            .values()
            .filter(|t| t.status != TableStatus::Deleting)
            .flat_map(|t| {
                t.partitions_on(shard, self.shards)
                    .into_iter()
                    .map(|(_, id)| (id, t.schema.clone()))
            })
            .collect()
    }
}

fn status_tag(s: TableStatus) -> u8 {
    match s {
        TableStatus::Creating => 1,
        TableStatus::Active => 2,
        TableStatus::Deleting => 3,
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Names are validated to at most 255 bytes before they reach the catalog.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

/// Encodes the catalog for its file.
pub fn encode(c: &Catalog) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + c.tables.len() * 64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&c.shards.to_le_bytes());
    out.extend_from_slice(&c.next_table_id.to_le_bytes());
    let n = u32::try_from(c.tables.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    for t in c.tables.values() {
        out.extend_from_slice(&t.id.to_le_bytes());
        out.push(status_tag(t.status));
        out.extend_from_slice(&t.partitions.to_le_bytes());
        out.extend_from_slice(&t.created_unix_ms.to_le_bytes());
        put_str16(&mut out, &t.name);
        partition_meta::encode_schema(&t.schema, &mut out);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CatalogFileError> {
        if self.0.len() < n {
            return Err(CatalogFileError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CatalogFileError> {
        self.take(N)?
            .try_into()
            .map_err(|_| CatalogFileError::Malformed("truncated"))
    }
    fn u8(&mut self) -> Result<u8, CatalogFileError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CatalogFileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CatalogFileError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn str16(&mut self) -> Result<String, CatalogFileError> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        let s = std::str::from_utf8(self.take(len)?)
            .map_err(|_| CatalogFileError::Malformed("a name is not UTF-8"))?;
        Ok(s.to_owned())
    }
    fn schema(&mut self) -> Result<KeySchema, CatalogFileError> {
        Ok(partition_meta::decode_schema(&mut self.0)?)
    }
}

/// Decodes a catalog file.
pub fn decode(bytes: &[u8]) -> Result<Catalog, CatalogFileError> {
    let mut r = Reader(partition_meta::checked_body(bytes)?);
    if r.take(8)? != MAGIC {
        return Err(CatalogFileError::Malformed("bad magic"));
    }
    if r.u8()? != VERSION {
        return Err(CatalogFileError::Malformed("unknown version"));
    }
    let shards = r.u32()?;
    let next_table_id = r.u32()?;
    let n = r.u32()?;
    let mut tables = BTreeMap::new();
    for _ in 0..n {
        let id = r.u32()?;
        let status = match r.u8()? {
            1 => TableStatus::Creating,
            2 => TableStatus::Active,
            3 => TableStatus::Deleting,
            _ => return Err(CatalogFileError::Malformed("unknown table status")),
        };
        let partitions = r.u32()?;
        let created_unix_ms = r.u64()?;
        let name = r.str16()?;
        let schema = r.schema()?;
        if id >= next_table_id || partitions == 0 || partitions > PARTITIONS_MAX {
            return Err(CatalogFileError::Malformed(
                "table id or partition count out of range",
            ));
        }
        let table = Table {
            id,
            name: name.clone(),
            schema,
            status,
            partitions,
            created_unix_ms,
        };
        if tables.insert(name, Arc::new(table)).is_some() {
            return Err(CatalogFileError::Malformed("a table name appears twice"));
        }
    }
    if !r.0.is_empty() {
        return Err(CatalogFileError::Malformed("trailing bytes"));
    }
    if shards == 0 {
        return Err(CatalogFileError::Malformed("zero shards"));
    }
    Ok(Catalog {
        shards,
        next_table_id,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_net::{KeyAttribute, KeyType};

    fn schema() -> KeySchema {
        KeySchema::with_sort_key(
            KeyAttribute::new("id", KeyType::S),
            KeyAttribute::new("ts", KeyType::N),
        )
    }

    #[test]
    fn a_table_lives_creating_active_deleting_gone() {
        let mut c = Catalog::new(2);
        let t = c.begin_create("users", &schema(), None, 8, 5).unwrap();
        assert_eq!(
            (t.id, t.status, t.partitions),
            (1, TableStatus::Creating, 8)
        );
        assert_eq!(
            c.begin_create("users", &schema(), None, 8, 5),
            Err(CatalogError::InUse("users".into()))
        );
        c.finish_create("users");
        assert_eq!(c.live("users").unwrap().status, TableStatus::Active);
        assert_eq!(c.partitions_on(0).len(), 4);
        assert_eq!(c.partitions_on(1).len(), 4);
        assert!(c.partitions_on(1).contains_key(&partition_id(1, 3)));
        let d = c.begin_delete("users").unwrap();
        assert_eq!(d.status, TableStatus::Deleting);
        assert!(matches!(c.live("users"), Err(CatalogError::NotFound(_))));
        // Deleting is not finished: the name is still taken, and not listed.
        assert!(matches!(
            c.begin_create("users", &schema(), None, 8, 5),
            Err(CatalogError::InUse(_))
        ));
        assert_eq!(c.list(None, None).0.len(), 0);
        c.finish_delete("users");
        let t = c.begin_create("users", &schema(), Some(1), 8, 6).unwrap();
        assert_eq!(t.id, 2, "ids are never reused");
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let mut c = Catalog::new(1);
        for name in ["ab", "has space", &"x".repeat(256), "ünï"] {
            assert!(matches!(
                c.begin_create(name, &schema(), None, 8, 0),
                Err(CatalogError::Invalid(_))
            ));
        }
        for p in [0, PARTITIONS_MAX + 1] {
            assert!(matches!(
                c.begin_create("t_1", &schema(), Some(p), 8, 0),
                Err(CatalogError::Invalid(_))
            ));
        }
        assert!(c.tables.is_empty());
        assert_eq!(c.next_table_id, 1, "a refused create takes no id");
        for i in 0..8 {
            c.begin_create(&format!("big{i}"), &schema(), Some(1024), 8, 0)
                .unwrap();
        }
        assert!(matches!(
            c.begin_create("one_more", &schema(), Some(1), 8, 0),
            Err(CatalogError::Invalid(m)) if m.contains("limit of 8192")
        ));
    }

    #[test]
    fn list_pages_through_names_in_order() {
        let mut c = Catalog::new(1);
        for i in 0..250 {
            c.begin_create(&format!("t{i:03}"), &schema(), Some(1), 1, 0)
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (names, more) = c.list(after.as_deref(), Some(1000));
            assert!(names.len() <= 100);
            seen.extend(names.iter().cloned());
            if !more {
                break;
            }
            after = names.last().cloned();
        }
        assert_eq!(seen.len(), 250);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn describe_tiles_the_hash_space_across_shards() {
        let mut c = Catalog::new(2);
        let t = c.begin_create("t_1", &schema(), Some(5), 8, 0).unwrap();
        let d = t.describe(2);
        assert_eq!(d.partitions.len(), 5);
        assert_eq!(d.partitions[0].hash_low, 0);
        assert_eq!(d.partitions[4].hash_high, u64::MAX);
        let shards: Vec<u32> = d.partitions.iter().map(|p| p.shard).collect();
        assert_eq!(shards, vec![0, 1, 0, 1, 0]);
    }

    #[test]
    fn encoding_round_trips_and_detects_every_flip() {
        let mut c = Catalog::new(2);
        c.begin_create("users", &schema(), Some(3), 8, 77).unwrap();
        c.finish_create("users");
        let only_pk = KeySchema::partition_only(KeyAttribute::new("k", KeyType::B));
        c.begin_create("blobs", &only_pk, None, 8, 78).unwrap();
        let bytes = encode(&c);
        assert_eq!(decode(&bytes), Ok(c.clone()));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(decode(&b).is_err(), "flip at {i} undetected");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncation to {n} undetected");
        }
    }
}
