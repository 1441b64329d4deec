//! The engine of one shard: a WAL shared by every partition, one B-tree per partition,
//! one page cache, and the background checkpointer. The only file of `shard` that does
//! I/O; the decisions it makes (conditions, payloads, ranges) live in pure modules.
//!
//! Write path, per partition, under the partition's writer lock: read the current item,
//! check the condition, put the change in the open WAL batch (which fixes its LSN), apply
//! it to the tree; then, outside the lock, wait until the batch is durable and answer.
//! Holding the lock only until the LSN is fixed lets the next writer join the same batch:
//! one fdatasync serves every writer of the shard (group commit). The tree and the WAL
//! receive each partition's changes in one order, so replay rebuilds the same tree.
//!
//! Reads never return a change that a crash could still take back: a read of one key
//! notes the LSN of the last change applied to that key (`Tree::key_lsn`, a bound shared
//! by keys of one hash slot) and waits until the WAL is durable up to it before
//! answering; a scan notes the tree's applied LSN. A read of a key with no change in the
//! open or in-flight batch so answers at once, without waiting for other keys' writes.
//!
//! Failure is fail-stop: if a change is in the WAL but could not be applied to its tree,
//! the engine refuses every later operation; a restart replays the WAL.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use crate::signal::Signal;
use glommio::sync::RwLock;
use keel_net::model::{set_top_level, SIZE_PER_ENCODED_BYTE_MAX};
use keel_net::{
    decode_item, encode_item, encode_storage_key, Item, KeySchema, PrimaryKey, Value,
    ITEM_BYTES_MAX,
};

use super::condition::Condition;
use super::mutation::Mutation;
use super::partition_meta;
use super::range::KeyRange;
use super::EngineError;
use crate::btree::{DmaPageFile, Seek, Tree, KEY_BYTES_MAX, VALUE_BYTES_MAX};
use crate::error::StorageError;
use crate::page_cache::PageCache;
use crate::wal::{GroupId, LogIndex, Lsn, RecordKind, RecordMeta, Term, Wal, WalOptions};

/// Identifies a partition within a shard (the WAL's group id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u64);

/// Configuration of a shard's engine, fixed at start-up.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The shard's data directory (WAL under `wal/`, trees under `partitions/`).
    pub dir: PathBuf,
    /// Bytes of the page cache shared by the shard's trees.
    pub cache_bytes: usize,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// WAL batch (one write) capacity.
    pub wal_batch_bytes_max: usize,
    /// Whether new WAL segments are pre-written with zeros (the default) or only
    /// allocated ([`crate::wal::WalOptions::prewrite_spares`]).
    pub wal_prewrite_spares: bool,
    /// Start a checkpoint after this many WAL bytes since the last one.
    pub checkpoint_wal_bytes: u64,
    /// Items a scan returns at most per call.
    pub scan_items_max: usize,
    /// A scan stops once the items it returned reach this many bytes (so a page may
    /// exceed it by up to one item; at least one item is returned).
    pub scan_bytes_max: usize,
}

/// WAL bytes between two checkpoints unless configured otherwise (`keel start` and
/// [`crate::node::NodeConfig`] start from it too).
pub const CHECKPOINT_WAL_BYTES_DEFAULT: u64 = 128 << 20;

impl EngineOptions {
    /// Defaults for a data directory: 64 MiB cache, 64 MiB segments, 1 MiB batches,
    /// checkpoints every 128 MiB of log.
    pub fn new(dir: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            dir: dir.into(),
            cache_bytes: 64 << 20,
            wal_segment_bytes: 64 << 20,
            wal_batch_bytes_max: 1 << 20,
            wal_prewrite_spares: true,
            checkpoint_wal_bytes: CHECKPOINT_WAL_BYTES_DEFAULT,
            scan_items_max: 1000,
            scan_bytes_max: 1 << 20,
        }
    }
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    /// The items, in key order (descending for a reverse scan).
    pub items: Vec<Item>,
    /// When the scan stopped at a limit: the storage key to resume after.
    pub resume: Option<Vec<u8>>,
}

/// What [`Engine::modify`] does with the item it read.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Store this item (with the same key) in place of the stored one.
    Put(Item),
    /// Delete the stored item (nothing happens if there is none).
    Delete,
    /// Write nothing.
    Keep,
}

/// What a write reads of the item it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldItem {
    /// Decode it: the decision looks at it, and the write returns it.
    Decode,
    /// Leave it undecoded: the decision sees `None` and the write returns `None`. For
    /// blind writes (no condition, no ReturnValues), which then skip building the item.
    Skip,
}

/// A decided change, with the new item already encoded.
enum Change {
    Put(Vec<u8>),
    Delete,
    Keep,
}

/// Counters describing an engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Checkpoints completed (all partitions each).
    pub checkpoints: u64,
    /// WAL records replayed at open.
    pub replayed: u64,
    /// Items rewritten in place by [`Engine::patch`] (UpdateItem's fast path).
    pub patched: u64,
}

struct Partition {
    id: PartitionId,
    schema: KeySchema,
    tree: Tree<DmaPageFile>,
    lock: RwLock<()>,
    /// Set (under the write lock) when the partition is dropped: operations that found it
    /// before then answer as if it never existed.
    dropped: Cell<bool>,
}

impl Partition {
    fn check_not_dropped(&self) -> Result<(), EngineError> {
        if self.dropped.get() {
            return Err(EngineError::UnknownPartition(self.id.0));
        }
        Ok(())
    }
}

struct Inner {
    options: EngineOptions,
    wal: Wal,
    cache: Rc<PageCache<DmaPageFile>>,
    partitions: RefCell<BTreeMap<PartitionId, Rc<Partition>>>,
    /// Dropped partitions whose records the WAL may still hold, with the last LSN then.
    dropped: RefCell<BTreeMap<PartitionId, u64>>,
    failed: RefCell<Option<String>>,
    stats: Cell<EngineStats>,
    /// WAL bytes written when the last checkpoint began.
    checkpoint_mark_bytes: Cell<u64>,
    checkpoint_due: Signal,
    checkpoint_running: Cell<bool>,
    /// Fired when a checkpoint ends.
    checkpoint_finished: Signal,
    closing: Cell<bool>,
}

/// The storage engine of one shard. Cheap to clone; use it on the executor that opened it.
#[derive(Clone)]
pub struct Engine {
    inner: Rc<Inner>,
}

fn partitions_dir(dir: &Path) -> PathBuf {
    dir.join("partitions")
}

fn meta_path(dir: &Path, id: PartitionId) -> PathBuf {
    partitions_dir(dir).join(format!("{:016x}.part", id.0))
}

fn tree_path(dir: &Path, id: PartitionId) -> PathBuf {
    partitions_dir(dir).join(format!("{:016x}.tree", id.0))
}

fn tombstone_path(dir: &Path, id: PartitionId) -> PathBuf {
    partitions_dir(dir).join(format!("{:016x}.dropped", id.0))
}

fn std_io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.display().to_string();
    move |source| EngineError::Storage(crate::error::io_error(op, &path, 0, source))
}

impl Engine {
    /// Opens the shard's storage in `options.dir`: the WAL (recovering its tail), every
    /// declared partition's tree (at its last checkpoint), then replays the WAL after each
    /// tree's checkpoint. Must run inside a glommio executor; call it before any other
    /// file is opened on that executor (it applies the glommio #605 workaround).
    pub async fn open(mut options: EngineOptions) -> Result<Engine, EngineError> {
        // glommio opens directories by absolute path only (a relative one fails with EBADF).
        std::fs::create_dir_all(&options.dir).map_err(std_io("create_dir", &options.dir))?;
        options.dir = options
            .dir
            .canonicalize()
            .map_err(std_io("canonicalize", &options.dir))?;
        let dir = options.dir.clone();
        crate::wal::probe_workaround(&dir).await?;
        let mut wal_options = WalOptions::new(dir.join("wal"));
        wal_options.segment_bytes = options.wal_segment_bytes;
        wal_options.batch_bytes_max = options.wal_batch_bytes_max;
        wal_options.prewrite_spares = options.wal_prewrite_spares;
        let wal = Wal::open(wal_options).await?;
        let cache = PageCache::new(options.cache_bytes);
        let pdir = partitions_dir(&dir);
        std::fs::create_dir_all(&pdir).map_err(std_io("create_dir", &pdir))?;
        let mut partitions = BTreeMap::new();
        let with_extension = |ext: &str| -> Result<Vec<PathBuf>, EngineError> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&pdir)
                .map_err(std_io("read_dir", &pdir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect();
            v.sort();
            Ok(v)
        };
        // Dropped partitions: their records in the WAL are skipped at replay; a drop that
        // a crash interrupted is finished here; a tombstone older than the whole log goes.
        let mut dropped = BTreeMap::new();
        for path in with_extension("dropped")? {
            let bytes = std::fs::read(&path).map_err(std_io("read", &path))?;
            let (id, lsn) = partition_meta::decode_tombstone(&bytes).map_err(|source| {
                EngineError::CorruptPartitionFile {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            let id = PartitionId(id);
            remove_if_exists(&meta_path(&dir, id))?;
            remove_if_exists(&tree_path(&dir, id))?;
            if lsn < wal.first_lsn().0 {
                remove_if_exists(&path)?;
            } else {
                dropped.insert(id, lsn);
            }
        }
        sync_dir(&pdir)?;
        for path in with_extension("part")? {
            let bytes = std::fs::read(&path).map_err(std_io("read", &path))?;
            let (id, schema) = partition_meta::decode(&bytes).map_err(|source| {
                EngineError::CorruptPartitionFile {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            let id = PartitionId(id);
            // A declared partition always has its tree (created and checkpointed before the
            // declaration is renamed into place): a missing one lost data.
            let tree_file = tree_path(&dir, id);
            if std::fs::metadata(&tree_file).map_or(true, |m| m.len() == 0) {
                return Err(EngineError::MissingTree {
                    path: tree_file.display().to_string(),
                });
            }
            let p = Self::open_partition(&cache, &dir, id, schema).await?;
            partitions.insert(id, Rc::new(p));
        }
        let engine = Engine {
            inner: Rc::new(Inner {
                options,
                wal,
                cache,
                partitions: RefCell::new(partitions),
                dropped: RefCell::new(dropped),
                failed: RefCell::new(None),
                stats: Cell::new(EngineStats::default()),
                checkpoint_mark_bytes: Cell::new(0),
                checkpoint_due: Signal::new(),
                checkpoint_running: Cell::new(false),
                checkpoint_finished: Signal::new(),
                closing: Cell::new(false),
            }),
        };
        // A tree checkpointed past the end of the log means the log lost records it had
        // made durable (a truncated or replaced segment): refuse, and never reuse LSNs.
        let wal_end = engine.inner.wal.last_lsn().0;
        for p in engine.inner.partitions.borrow().values() {
            if p.tree.checkpoint_lsn() > wal_end {
                return Err(EngineError::WalBehindCheckpoint {
                    partition: p.id.0,
                    checkpoint_lsn: p.tree.checkpoint_lsn(),
                    wal_lsn: wal_end,
                });
            }
        }
        engine.replay().await?;
        let cache = engine.inner.cache.clone();
        glommio::spawn_local(cache.run_cleaner(64)).detach();
        Ok(engine)
    }

    async fn open_partition(
        cache: &Rc<PageCache<DmaPageFile>>,
        dir: &Path,
        id: PartitionId,
        schema: KeySchema,
    ) -> Result<Partition, EngineError> {
        let file = DmaPageFile::open(&tree_path(dir, id)).await?;
        let tree = Tree::open(cache.clone(), Rc::new(file), id.0).await?;
        Ok(Partition {
            id,
            schema,
            tree,
            lock: RwLock::new(()),
            dropped: Cell::new(false),
        })
    }

    /// Re-applies every WAL record newer than its tree's checkpoint.
    async fn replay(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let from = inner
            .partitions
            .borrow()
            .values()
            .map(|p| p.tree.checkpoint_lsn())
            .min()
            .map_or(0, |l| l + 1)
            .max(inner.wal.first_lsn().0);
        let began = Instant::now();
        let mut reader = inner.wal.reader(Lsn(from)).await?;
        let (mut replayed, mut read, mut payload_bytes) = (0u64, 0u64, 0u64);
        while let Some(record) = reader.next().await? {
            read += 1;
            payload_bytes += record.payload.len() as u64;
            if record.meta.kind != RecordKind::Data {
                continue;
            }
            let id = PartitionId(record.meta.group.0);
            if inner.dropped.borrow().contains_key(&id) {
                continue;
            }
            let Some(p) = inner.partitions.borrow().get(&id).cloned() else {
                return Err(EngineError::UnknownPartitionInWal {
                    partition: id.0,
                    lsn: record.lsn.0,
                });
            };
            if record.lsn.0 <= p.tree.applied_lsn() {
                continue;
            }
            let m = Mutation::decode(&record.payload).map_err(|source| {
                EngineError::CorruptMutation {
                    lsn: record.lsn.0,
                    source,
                }
            })?;
            apply(&p, m, record.lsn.0).await?;
            replayed += 1;
        }
        // Start-up time after a crash is mostly this: operators size the checkpoint
        // interval by it.
        tracing::info!(
            dir = %inner.options.dir.display(),
            from_lsn = from,
            records_read = read,
            payload_mib = payload_bytes as f64 / f64::from(1 << 20),
            records_applied = replayed,
            took_ms = began.elapsed().as_secs_f64() * 1e3,
            "wal replay"
        );
        let mut s = inner.stats.get();
        s.replayed = replayed;
        inner.stats.set(s);
        Ok(())
    }

    /// Declares a partition with its key schema; durable when this returns.
    pub async fn create_partition(
        &self,
        id: PartitionId,
        schema: KeySchema,
    ) -> Result<(), EngineError> {
        self.check_alive()?;
        schema.validate()?;
        if self.inner.partitions.borrow().contains_key(&id)
            || self.inner.dropped.borrow().contains_key(&id)
        {
            return Err(EngineError::PartitionExists(id.0));
        }
        let dir = &self.inner.options.dir;
        let path = meta_path(dir, id);
        let tmp = path.with_extension("tmp");
        let bytes = partition_meta::encode(id.0, &schema);
        write_synced(&tmp, &bytes)?;
        // The tree is created (and checkpointed empty) before the declaration appears, so
        // a declared partition always has a tree.
        let p = Self::open_partition(&self.inner.cache, dir, id, schema).await?;
        std::fs::rename(&tmp, &path).map_err(std_io("rename", &path))?;
        sync_dir(&partitions_dir(dir))?;
        self.inner.partitions.borrow_mut().insert(id, Rc::new(p));
        Ok(())
    }

    /// Deletes a partition and all its items; durable when this returns. Operations on it
    /// that are under way finish first; later ones fail with `UnknownPartition`. Its id
    /// cannot be used again while the WAL may hold records of it.
    pub async fn drop_partition(&self, id: PartitionId) -> Result<(), EngineError> {
        self.check_alive()?;
        let p = self.partition(id)?;
        let _guard = p.lock.write().await.map_err(|_| EngineError::Closed)?;
        p.check_not_dropped()?;
        p.dropped.set(true);
        self.inner.partitions.borrow_mut().remove(&id);
        // Every record of the partition is at or below this LSN (writes log under the lock).
        let lsn = self.inner.wal.last_assigned_lsn().0;
        self.inner.dropped.borrow_mut().insert(id, lsn);
        let dir = &self.inner.options.dir;
        let path = tombstone_path(dir, id);
        let tmp = path.with_extension("tmp");
        write_synced(&tmp, &partition_meta::encode_tombstone(id.0, lsn))?;
        std::fs::rename(&tmp, &path).map_err(std_io("rename", &path))?;
        sync_dir(&partitions_dir(dir))?;
        // From here a restart finishes the drop. The tree's file stays open (and its pages
        // cached) until the last operation holding the partition lets go of it.
        remove_if_exists(&meta_path(dir, id))?;
        remove_if_exists(&tree_path(dir, id))?;
        sync_dir(&partitions_dir(dir))?;
        Ok(())
    }

    /// The partitions of this shard with their schemas.
    pub fn partitions(&self) -> Vec<(PartitionId, KeySchema)> {
        self.inner
            .partitions
            .borrow()
            .values()
            .map(|p| (p.id, p.schema.clone()))
            .collect()
    }

    fn partition(&self, id: PartitionId) -> Result<Rc<Partition>, EngineError> {
        self.inner
            .partitions
            .borrow()
            .get(&id)
            .cloned()
            .ok_or(EngineError::UnknownPartition(id.0))
    }

    /// The partition and the storage key of `key`, checked against the partition's schema.
    fn keyed(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
    ) -> Result<(Rc<Partition>, Vec<u8>), EngineError> {
        let p = self.partition(partition)?;
        p.schema.check_key(key)?;
        let mut skey = Vec::new();
        encode_storage_key(key, &mut skey);
        Ok((p, skey))
    }

    fn check_alive(&self) -> Result<(), EngineError> {
        if let Some(reason) = self.inner.failed.borrow().as_ref() {
            return Err(EngineError::Failed {
                reason: reason.clone(),
            });
        }
        if self.inner.closing.get() {
            return Err(EngineError::Closed);
        }
        Ok(())
    }

    fn fail(&self, reason: String) -> EngineError {
        tracing::error!(%reason, "engine failed; refusing further operations");
        *self.inner.failed.borrow_mut() = Some(reason.clone());
        EngineError::Failed { reason }
    }

    /// Stores `item` if `condition` holds for the item stored now under its key; returns
    /// the item it replaced. Durable when this returns.
    pub async fn put(
        &self,
        partition: PartitionId,
        item: &Item,
        condition: &Condition,
    ) -> Result<Option<Item>, EngineError> {
        self.put_with(partition, item, condition, OldItem::Decode)
            .await
    }

    /// [`Engine::put`]; with [`OldItem::Skip`] the replaced item is not decoded (unless
    /// `condition` looks at it) and `None` is returned: a blind write's fast path.
    pub async fn put_with(
        &self,
        partition: PartitionId,
        item: &Item,
        condition: &Condition,
        old: OldItem,
    ) -> Result<Option<Item>, EngineError> {
        let read_old = match condition {
            Condition::Always => old,
            _ => OldItem::Decode,
        };
        let p = self.partition(partition)?;
        keel_net::validate_item(item)?;
        let key = p.schema.key_of(item)?;
        let mut skey = Vec::new();
        encode_storage_key(&key, &mut skey);
        let mut value = Vec::new();
        encode_item(item, &mut value);
        let replaced = self
            .write(&p, &skey, read_old, |old| {
                if condition.holds(old) {
                    Ok(Change::Put(value))
                } else {
                    Err(EngineError::ConditionFailed)
                }
            })
            .await?;
        Ok(replaced.filter(|_| old == OldItem::Decode))
    }

    /// Removes the item under `key` if `condition` holds for it; returns the removed item.
    /// Durable when this returns.
    pub async fn delete(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
        condition: &Condition,
    ) -> Result<Option<Item>, EngineError> {
        let (p, skey) = self.keyed(partition, key)?;
        self.write(&p, &skey, OldItem::Decode, |old| {
            if condition.holds(old) {
                Ok(Change::Delete)
            } else {
                Err(EngineError::ConditionFailed)
            }
        })
        .await
    }

    /// Reads the item under `key`, lets `decide` choose what to do with it, and does it,
    /// with no other write of the partition in between (UpdateItem, conditional writes).
    /// `decide` sees the stored item (`None`: there is none); an error it returns is
    /// returned with nothing written. A [`Decision::Put`] item must have the key `key`.
    /// Returns the item stored before; durable when this returns.
    pub async fn modify(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
        decide: impl FnOnce(Option<&Item>) -> Result<Decision, EngineError>,
    ) -> Result<Option<Item>, EngineError> {
        self.modify_with(partition, key, OldItem::Decode, decide)
            .await
    }

    /// [`Engine::modify`], reading of the stored item only what `old` says: with
    /// [`OldItem::Skip`], `decide` sees `None` and `None` is returned (a Delete still
    /// writes only if an item exists).
    pub async fn modify_with(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
        old: OldItem,
        decide: impl FnOnce(Option<&Item>) -> Result<Decision, EngineError>,
    ) -> Result<Option<Item>, EngineError> {
        let (p, skey) = self.keyed(partition, key)?;
        let schema = &p.schema;
        self.write(&p, &skey, old, |old| match decide(old)? {
            Decision::Keep => Ok(Change::Keep),
            Decision::Delete => Ok(Change::Delete),
            Decision::Put(item) => {
                keel_net::validate_item(&item)?;
                let new_key = schema.key_of(&item)?;
                if &new_key != key {
                    return Err(EngineError::KeyChanged);
                }
                let mut value = Vec::new();
                encode_item(&item, &mut value);
                Ok(Change::Put(value))
            }
        })
        .await
    }

    async fn write(
        &self,
        p: &Partition,
        key: &[u8],
        read_old: OldItem,
        decide: impl FnOnce(Option<&Item>) -> Result<Change, EngineError>,
    ) -> Result<Option<Item>, EngineError> {
        let (guard, seek) = self.lock_and_seek(p, key).await?;
        // Decoded straight from the leaf (an inline value is not copied first).
        let old = match read_old {
            OldItem::Skip => None,
            OldItem::Decode => match p.tree.seek_value(&seek, decode_item).await? {
                Some(decoded) => Some(decoded.map_err(|source| EngineError::CorruptItem {
                    partition: p.id.0,
                    source,
                })?),
                None => None,
            },
        };
        let exists = seek.found();
        let decided = decide(old.as_ref());
        let m = match &decided {
            Ok(Change::Put(value)) => Mutation::Put { key, value },
            Ok(Change::Delete) if exists => Mutation::Delete { key },
            _ => {
                // Nothing to write (a refusal, a delete of nothing, a keep): an answer
                // read from the tree, so like a read it waits until what it saw is durable.
                let seen = p.tree.key_lsn(key);
                drop(seek);
                drop(guard);
                self.inner.wal.wait_durable(Lsn(seen)).await?;
                return decided.map(|_| old);
            }
        };
        self.log_and_apply(p, guard, seek, m, m).await?;
        Ok(old)
    }

    /// Puts the top-level attributes of `attributes` into the item stored under `key` (in
    /// place of its own of the same name, or added), if an item is stored there and the
    /// new one is within the item size limit by the bound on its encoding's length.
    /// Returns `false`, having written nothing, otherwise (the caller then takes the
    /// general path, [`Engine::modify`]). The stored item is not decoded (the bytes of the
    /// attributes left alone are copied), and the log records `attributes` only
    /// ([`Mutation::Set`]), not the new item: an UpdateItem that only SETs top-level
    /// attributes (YCSB's update). The caller answers for `attributes` being valid
    /// (`validate_item`) and holding no key attribute.
    pub async fn set_attributes(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
        attributes: &Item,
    ) -> Result<bool, EngineError> {
        let (p, skey) = self.keyed(partition, key)?;
        let mut encoded = Vec::new();
        encode_item(attributes, &mut encoded);
        let (guard, seek) = self.lock_and_seek(&p, &skey).await?;
        let Some(value) = p
            .tree
            .seek_value(&seek, |stored| {
                let out = with_attributes(stored, attributes, p.id)?;
                // Within the size limit by the bound on the new encoding's length; a
                // longer one is sized by the general path.
                Ok::<_, EngineError>(
                    (out.len() * SIZE_PER_ENCODED_BYTE_MAX <= ITEM_BYTES_MAX).then_some(out),
                )
            })
            .await?
            .transpose()?
            .flatten()
        else {
            return Ok(false);
        };
        let logged = Mutation::Set {
            key: &skey,
            attributes: &encoded,
        };
        let applied = Mutation::Put {
            key: &skey,
            value: &value,
        };
        self.log_and_apply(&p, guard, seek, logged, applied).await?;
        let mut stats = self.inner.stats.get();
        stats.patched += 1;
        self.inner.stats.set(stats);
        Ok(true)
    }

    /// Takes the partition's write lock and finds `key`'s place in its tree.
    async fn lock_and_seek<'p>(
        &self,
        p: &'p Partition,
        key: &[u8],
    ) -> Result<(glommio::sync::RwLockWriteGuard<'p, ()>, Seek<DmaPageFile>), EngineError> {
        self.check_alive()?;
        // Refuse before logging: a record the tree cannot take would stop the engine at
        // apply, and again at every replay.
        if key.len() > KEY_BYTES_MAX {
            return Err(EngineError::Storage(StorageError::KeyTooLarge {
                len: key.len(),
                max: KEY_BYTES_MAX,
            }));
        }
        let mut guard = p.lock.write().await.map_err(|_| EngineError::Closed)?;
        self.check_alive()?;
        p.check_not_dropped()?;
        // One descent, from the cache. If a page on the way is not cached, read it without
        // the lock, so that the page I/O of many writers overlaps instead of queueing
        // behind the lock, then descend again (reading under the lock if it was evicted
        // meanwhile).
        let seek = match p.tree.seek_cached(key)? {
            Some(seek) => seek,
            None => {
                drop(guard);
                p.tree.prefetch(key).await;
                guard = p.lock.write().await.map_err(|_| EngineError::Closed)?;
                self.check_alive()?;
                p.check_not_dropped()?;
                p.tree.seek(key).await?
            }
        };
        Ok((guard, seek))
    }

    /// Logs `logged` and applies `applied` (a put or delete with the same effect on the
    /// tree: `logged` itself, or the new item a [`Mutation::Set`] makes) at `seek` under
    /// `guard` (the lock taken by [`Engine::lock_and_seek`]), releases the lock and waits
    /// until the record is durable.
    async fn log_and_apply(
        &self,
        p: &Partition,
        guard: glommio::sync::RwLockWriteGuard<'_, ()>,
        seek: Seek<DmaPageFile>,
        logged: Mutation<'_>,
        applied: Mutation<'_>,
    ) -> Result<(), EngineError> {
        let value_len = match &applied {
            Mutation::Put { value, .. } => value.len(),
            Mutation::Delete { .. } => 0,
            Mutation::Set { .. } => unreachable!("a set is applied as the put it makes"),
        };
        if value_len > VALUE_BYTES_MAX {
            return Err(EngineError::Storage(StorageError::ValueTooLarge {
                len: value_len,
                max: VALUE_BYTES_MAX,
            }));
        }
        let logged_len = match &logged {
            Mutation::Put { key, value }
            | Mutation::Set {
                key,
                attributes: value,
            } => key.len() + value.len(),
            Mutation::Delete { key } => key.len(),
        };
        let mut payload = Vec::with_capacity(3 + logged_len);
        logged.encode(&mut payload);
        let meta = RecordMeta {
            group: GroupId(p.id.0),
            term: Term(0),
            index: LogIndex(0),
            kind: RecordKind::Data,
        };
        let lsn = self.inner.wal.submit(meta, &payload).await?;
        // The change is in the log: from here the tree must take it, or the engine stops.
        // The lock is still held, so the seek is current: the edit needs no new descent.
        if let Err(e) = apply_at(&p.tree, seek, applied, lsn.0).await {
            return Err(self.fail(format!(
                "applying LSN {} to partition {}: {e}",
                lsn.0, p.id.0
            )));
        }
        drop(guard);
        self.maybe_checkpoint();
        self.inner.wal.wait_durable(lsn).await?;
        Ok(())
    }

    /// The item stored under `key`.
    pub async fn get(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
    ) -> Result<Option<Item>, EngineError> {
        match self.get_encoded(partition, key).await? {
            None => Ok(None),
            Some(b) => Ok(Some(decode_item(&b).map_err(|source| {
                EngineError::CorruptItem {
                    partition: partition.0,
                    source,
                }
            })?)),
        }
    }

    /// The item stored under `key` in its stored encoding (`encode_item`'s bytes), for a
    /// caller that passes it on without looking inside (GetItem without a projection).
    /// The bytes come from a page whose crc32c was checked when it was read; unlike
    /// [`Engine::get`] they are not decoded here.
    pub async fn get_encoded(
        &self,
        partition: PartitionId,
        key: &PrimaryKey,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        self.check_alive()?;
        let (p, skey) = self.keyed(partition, key)?;
        let (bytes, seen) = {
            let _guard = p.lock.read().await.map_err(|_| EngineError::Closed)?;
            p.check_not_dropped()?;
            (p.tree.get(&skey).await?, p.tree.key_lsn(&skey))
        };
        // Never answer with a change the log could still lose: wait for the changes of
        // this key (not those of every key) to be durable.
        self.inner.wal.wait_durable(Lsn(seen)).await?;
        Ok(bytes)
    }

    /// Up to `limit` items (and at most the configured items and bytes per call) with
    /// storage keys in `range`, ascending or, if `reverse`, descending; `resume` continues
    /// after the key a previous page returned.
    pub async fn scan(
        &self,
        partition: PartitionId,
        range: &KeyRange,
        reverse: bool,
        limit: usize,
        resume: Option<&[u8]>,
    ) -> Result<ScanPage, EngineError> {
        self.check_alive()?;
        let p = self.partition(partition)?;
        let range = match resume {
            Some(r) => range.resumed(r, reverse),
            None => range.clone(),
        };
        let opts = &self.inner.options;
        let limit = limit.min(opts.scan_items_max);
        let mut raw = Vec::new();
        let seen = {
            let _guard = p.lock.read().await.map_err(|_| EngineError::Closed)?;
            p.check_not_dropped()?;
            p.tree
                .scan(
                    as_ref_bound(&range.lower),
                    as_ref_bound(&range.upper),
                    reverse,
                    limit,
                    opts.scan_bytes_max,
                    &mut raw,
                )
                .await?;
            p.tree.applied_lsn()
        };
        self.inner.wal.wait_durable(Lsn(seen)).await?;
        let full = raw.len() >= limit
            || raw.iter().map(|(_, v)| v.len()).sum::<usize>() >= opts.scan_bytes_max;
        let resume = if full {
            raw.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        let mut items = Vec::with_capacity(raw.len());
        for (_, v) in raw {
            items.push(decode_item(&v).map_err(|source| EngineError::CorruptItem {
                partition: p.id.0,
                source,
            })?);
        }
        Ok(ScanPage { items, resume })
    }

    fn maybe_checkpoint(&self) {
        let inner = &self.inner;
        let written = inner.wal.stats().bytes;
        if written.saturating_sub(inner.checkpoint_mark_bytes.get())
            >= inner.options.checkpoint_wal_bytes
        {
            inner.checkpoint_due.notify();
        }
    }

    /// Spawns the background checkpointer on the current executor (in its own task queue
    /// if `queue` is given). It checkpoints whenever enough log has been written since
    /// the last checkpoint, until [`Engine::close`].
    pub fn spawn_checkpointer(&self, queue: Option<glommio::TaskQueueHandle>) {
        let engine = self.clone();
        let task = async move {
            loop {
                let l = engine.inner.checkpoint_due.listen();
                if engine.inner.closing.get() || engine.inner.failed.borrow().is_some() {
                    return;
                }
                l.await;
                if engine.inner.closing.get() {
                    return;
                }
                if let Err(e) = engine.checkpoint().await {
                    tracing::error!(error = %e, "checkpoint failed");
                    return;
                }
            }
        };
        let spawned = match queue {
            Some(q) => glommio::spawn_local_into(task, q),
            None => Ok(glommio::spawn_local(task)),
        };
        match spawned {
            Ok(t) => {
                t.detach();
            }
            Err(e) => {
                self.fail(format!("spawning the checkpointer: {e}"));
            }
        }
    }

    /// Checkpoints every partition, then releases the WAL segments no tree needs.
    pub async fn checkpoint(&self) -> Result<(), EngineError> {
        self.check_alive()?;
        let inner = &self.inner;
        if inner.checkpoint_running.replace(true) {
            return Ok(());
        }
        inner.checkpoint_mark_bytes.set(inner.wal.stats().bytes);
        let began = std::time::Instant::now();
        let cache_before = inner.cache.stats();
        let result = self.checkpoint_all().await;
        let cache_after = inner.cache.stats();
        tracing::info!(
            dir = %inner.options.dir.display(),
            took_ms = began.elapsed().as_secs_f64() * 1e3,
            pages_written = cache_after.writebacks - cache_before.writebacks,
            writes = cache_after.write_runs - cache_before.write_runs,
            ok = result.is_ok(),
            "checkpoint"
        );
        inner.checkpoint_running.set(false);
        inner.checkpoint_finished.notify();
        if let Err(e) = &result {
            return Err(self.fail(format!("checkpoint: {e}")));
        }
        result
    }

    async fn checkpoint_all(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let parts: Vec<Rc<Partition>> = inner.partitions.borrow().values().cloned().collect();
        for p in &parts {
            let plan = {
                let _guard = p.lock.write().await.map_err(|_| EngineError::Closed)?;
                // Every change of this partition logged so far is applied (both happen
                // under this lock), so the tree is current up to the WAL's last LSN:
                // records of other partitions do not concern it.
                p.tree.note_applied(inner.wal.last_assigned_lsn().0);
                p.tree.begin_checkpoint().await?
            };
            inner.wal.wait_durable(Lsn(plan.lsn())).await?;
            p.tree.complete_checkpoint(plan).await?;
        }
        if let Some(min) = parts.iter().map(|p| p.tree.checkpoint_lsn()).min() {
            inner.wal.release_before(Lsn(min + 1));
        }
        let mut s = inner.stats.get();
        s.checkpoints += 1;
        inner.stats.set(s);
        Ok(())
    }

    /// Counters describing the engine.
    pub fn stats(&self) -> EngineStats {
        self.inner.stats.get()
    }

    /// Counters of the WAL.
    pub fn wal_stats(&self) -> crate::wal::WalStats {
        self.inner.wal.stats()
    }

    /// Counters of the page cache.
    pub fn cache_stats(&self) -> crate::page_cache::CacheStats {
        self.inner.cache.stats()
    }

    /// Counters of one partition's tree.
    pub fn tree_stats(
        &self,
        partition: PartitionId,
    ) -> Result<crate::btree::TreeStats, EngineError> {
        Ok(self.partition(partition)?.tree.stats())
    }

    /// Checks the structure of a partition's tree (tests and the inspector).
    pub async fn check(&self, partition: PartitionId) -> Result<u64, EngineError> {
        let p = self.partition(partition)?;
        let _guard = p.lock.read().await.map_err(|_| EngineError::Closed)?;
        Ok(p.tree.check().await?)
    }

    /// Waits for a checkpoint in progress, checkpoints, stops the background tasks and
    /// closes the WAL.
    pub async fn close(self) -> Result<(), EngineError> {
        loop {
            let l = self.inner.checkpoint_finished.listen();
            if !self.inner.checkpoint_running.get() {
                break;
            }
            l.await;
        }
        if self.inner.failed.borrow().is_none() {
            self.checkpoint().await?;
        }
        self.inner.closing.set(true);
        self.inner.checkpoint_due.notify();
        self.inner.cache.stop_cleaner();
        self.inner.wal.clone().close().await?;
        Ok(())
    }
}

fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The encoding of the item encoded in `stored` with the top-level attributes of
/// `attributes` put in (`set_top_level`: the stored item is walked, not decoded).
fn with_attributes(
    stored: &[u8],
    attributes: &Item,
    partition: PartitionId,
) -> Result<Vec<u8>, EngineError> {
    let sets: Vec<(&str, &Value)> = attributes.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let mut out = Vec::with_capacity(stored.len() + 64);
    set_top_level(stored, &sets, &mut out).map_err(|source| EngineError::CorruptItem {
        partition: partition.0,
        source,
    })?;
    Ok(out)
}

/// Applies a logged mutation to its partition's tree (replay).
async fn apply(p: &Partition, m: Mutation<'_>, lsn: u64) -> Result<(), EngineError> {
    let tree = &p.tree;
    match m {
        Mutation::Put { key, value } => {
            tree.put(key, value, lsn).await?;
        }
        Mutation::Delete { key } => {
            tree.delete(key, lsn).await?;
        }
        Mutation::Set { key, attributes } => {
            let attributes =
                decode_item(attributes).map_err(|source| EngineError::CorruptItem {
                    partition: p.id.0,
                    source,
                })?;
            let Some(stored) = tree.get(key).await? else {
                return Err(EngineError::SetOfAbsentItem {
                    partition: p.id.0,
                    lsn,
                });
            };
            // The size bound held when the record was logged, onto this same item.
            let value = with_attributes(&stored, &attributes, p.id)?;
            tree.put(key, &value, lsn).await?;
        }
    }
    Ok(())
}

/// [`apply`] at a seek of the mutation's key, taken under the same lock.
async fn apply_at(
    tree: &Tree<DmaPageFile>,
    seek: Seek<DmaPageFile>,
    m: Mutation<'_>,
    lsn: u64,
) -> Result<(), EngineError> {
    match m {
        Mutation::Put { key, value } => {
            tree.put_at(seek, key, value, lsn).await?;
        }
        Mutation::Delete { key } => {
            tree.delete_at(seek, key, lsn).await?;
        }
        Mutation::Set { .. } => unreachable!("a set is applied as the put it makes"),
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(std_io("create", path))?;
    f.write_all(bytes).map_err(std_io("write", path))?;
    f.sync_all().map_err(std_io("fsync", path))?;
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), EngineError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(std_io("remove", path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(std_io("fsync dir", dir))
}
