//! One shard of a node at run time: its engine, its copy of the catalog, and its links to
//! the other shards over glommio's channel mesh.
//!
//! A request is carried out on the shard that owns its partition. The shard a connection
//! landed on routes it: locally if it owns the partition, otherwise it forwards the
//! request over the mesh and relays the answer. Shard 0 alone changes the catalog; table
//! changes from other shards are forwarded to it. It sends every new catalog version to
//! every shard, and waits for each to take it, before it answers.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::signal::Signal;
use glommio::channels::channel_mesh::Senders;
use keel_net::codec::{
    BatchGetItem, BatchGetOk, BatchWriteItem, CreateTable, DeleteItem, ErrorCode, ErrorResponse,
    GetItem, ItemPage, PutItem, Request, Response, Scan, TableItems, TableKeys, TableWrites,
    WriteRequest,
};
use keel_net::expr::{parse_condition, parse_projection, ExprRef, ExpressionAttributes};
use keel_net::{Item, KeySchema, PrimaryKey};

use super::catalog::{self, Catalog, Table};
use super::ops::{self, error, invalid};
use crate::shard::{Engine, KeyRange, PartitionId, ScanPage};

/// Most keys of one BatchGetItem, as DynamoDB allows.
pub const BATCH_GET_KEYS_MAX: usize = 100;
/// Most writes of one BatchWriteItem, as DynamoDB allows.
pub const BATCH_WRITE_MAX: usize = 25;
/// Most items one Scan page evaluates when the request sets no limit.
pub const SCAN_PAGE_ITEMS_MAX: usize = 1000;
/// A Scan page stops once its items reach this many bytes (DynamoDB's 1 MB page).
pub const SCAN_PAGE_BYTES_MAX: usize = 1 << 20;
/// A BatchGetItem answer holds at most this many item bytes; the rest are unprocessed
/// (DynamoDB's 16 MB answer limit, kept under the frame limit).
pub const BATCH_GET_BYTES_MAX: usize = 15 << 20;

/// A message between shards.
pub enum ShardMsg {
    /// Startup check: the sender's shard index (must equal its mesh peer id).
    Hello {
        /// The sender's shard index.
        from: u32,
    },
    /// An item request for a partition the receiver owns.
    Item {
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: flume::Sender<Response>,
    },
    /// One partition's part of a Scan.
    ScanPartition {
        /// The partition.
        partition: PartitionId,
        /// The storage keys to scan.
        range: KeyRange,
        /// Most items.
        limit: usize,
        /// Resume after this storage key.
        resume: Option<Vec<u8>>,
        /// Where the answer goes.
        reply: flume::Sender<Result<ScanPage, ErrorResponse>>,
    },
    /// A table change, for shard 0.
    Ddl {
        /// CreateTable or DeleteTable.
        request: Request,
        /// Where the answer goes.
        reply: flume::Sender<Response>,
    },
    /// Create these partitions (idempotent).
    CreatePartitions {
        /// Ids and schemas.
        parts: Vec<(PartitionId, KeySchema)>,
        /// Done, or why not.
        reply: flume::Sender<Result<(), String>>,
    },
    /// Drop these partitions (idempotent).
    DropPartitions {
        /// Ids.
        parts: Vec<PartitionId>,
        /// Done, or why not.
        reply: flume::Sender<Result<(), String>>,
    },
    /// A new catalog version to use from now on.
    Catalog {
        /// The catalog.
        catalog: Arc<Catalog>,
        /// Acknowledged once in use.
        reply: flume::Sender<()>,
    },
}

/// What a shard knows and owns.
pub struct Shard {
    /// This shard's index.
    pub index: u32,
    /// The node's shard count.
    pub shards: u32,
    /// This shard's storage.
    pub engine: Engine,
    /// The catalog version in use.
    pub catalog: RefCell<Arc<Catalog>>,
    /// Links to the other shards (mesh peer id = shard index).
    pub senders: Senders<ShardMsg>,
    /// `host:port` of every shard's own listener.
    pub shard_addrs: RefCell<Vec<String>>,
    /// The catalog file (written by shard 0 only).
    pub catalog_path: PathBuf,
    /// Partitions of a table created without a partition count.
    pub default_partitions: u32,
    /// Serialises table changes on shard 0.
    pub ddl_lock: glommio::sync::Semaphore,
    /// Client requests being carried out by this shard.
    pub in_flight: Cell<usize>,
    /// Set when the node is shutting down: new requests are refused.
    pub closing: Cell<bool>,
    /// Fired when `in_flight` drops to zero.
    pub idle: Signal,
    /// Set when the node closes after draining: connections stop reading and close.
    pub hung_up: Cell<bool>,
    /// Fired once, when `hung_up` is set.
    pub hang_up: Signal,
    /// Client connections open on this shard.
    pub connections: Cell<usize>,
    /// Fired whenever a connection ends.
    pub connection_ended: Signal,
}

/// Counts a client request in flight while it lives.
pub struct InFlight(Rc<Shard>);

impl InFlight {
    /// Starts counting, or refuses when the shard is shutting down.
    pub fn begin(shard: &Rc<Shard>) -> Option<InFlight> {
        if shard.closing.get() {
            return None;
        }
        shard.in_flight.set(shard.in_flight.get() + 1);
        Some(InFlight(shard.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let n = self.0.in_flight.get() - 1;
        self.0.in_flight.set(n);
        if n == 0 {
            self.0.idle.notify();
        }
    }
}

fn unavailable(what: &str) -> ErrorResponse {
    error(
        ErrorCode::Unavailable,
        format!("{what}: the node is shutting down"),
    )
}

fn catalog_error(e: catalog::CatalogError) -> ErrorResponse {
    match e {
        catalog::CatalogError::NotFound(t) => error(
            ErrorCode::ResourceNotFound,
            format!("Requested resource not found: table {t}"),
        ),
        catalog::CatalogError::InUse(t) => error(
            ErrorCode::ResourceInUse,
            format!("Table already exists: {t}"),
        ),
        other => invalid(other.to_string()),
    }
}

fn reply<T>(r: Result<T, ErrorResponse>, ok: impl FnOnce(T) -> Response) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(e) => Response::Error(e),
    }
}

/// Writes the catalog file durably (temporary file, fsync, rename, fsync of the directory).
pub fn save_catalog(path: &std::path::Path, c: &Catalog) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&catalog::encode(c))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shard {
    fn table(&self, name: &str) -> Result<Arc<Table>, ErrorResponse> {
        self.catalog
            .borrow()
            .live(name)
            .cloned()
            .map_err(catalog_error)
    }

    /// Carries out a client request (any but Hello) and answers it.
    pub async fn handle(self: &Rc<Self>, request: Request) -> Response {
        match request {
            Request::Hello(_) => Response::Error(invalid(
                "Hello is only valid as the first frame of a connection",
            )),
            r @ (Request::CreateTable(_) | Request::DeleteTable { .. }) => self.ddl(r).await,
            Request::DescribeTable { table } => {
                let shards = self.shards;
                reply(self.table(&table), |t| Response::Table(t.describe(shards)))
            }
            Request::ListTables { start_after, limit } => {
                let (tables, more) = self.catalog.borrow().list(start_after.as_deref(), limit);
                let last = if more { tables.last().cloned() } else { None };
                Response::TableNames { tables, last }
            }
            r @ (Request::PutItem(_)
            | Request::GetItem(_)
            | Request::DeleteItem(_)
            | Request::UpdateItem(_)
            | Request::Query(_)) => self.route_item(r).await,
            Request::Scan(scan) => reply(self.scan(&scan).await, Response::Items),
            Request::BatchGetItem(b) => reply(self.batch_get(b).await, Response::BatchGet),
            Request::BatchWriteItem(b) => reply(self.batch_write(b).await, |unprocessed| {
                Response::BatchWrite { unprocessed }
            }),
            _ => Response::Error(invalid("unsupported request")),
        }
    }

    /// The table and partition key of an item request.
    fn item_target(&self, request: &Request) -> Result<(Arc<Table>, u32), ErrorResponse> {
        let (table, key) = match request {
            Request::PutItem(r) => {
                let t = self.table(&r.table)?;
                let k = t
                    .schema
                    .key_of(&r.item)
                    .map_err(|e| invalid(e.to_string()))?;
                (t, k)
            }
            Request::GetItem(r) => {
                let t = self.table(&r.table)?;
                let k = ops::key_of(&t.schema, &r.key)?;
                (t, k)
            }
            Request::DeleteItem(r) => {
                let t = self.table(&r.table)?;
                let k = ops::key_of(&t.schema, &r.key)?;
                (t, k)
            }
            Request::UpdateItem(r) => {
                let t = self.table(&r.table)?;
                let k = ops::key_of(&t.schema, &r.key)?;
                (t, k)
            }
            Request::Query(r) => {
                let t = self.table(&r.table)?;
                let kc = parse_condition(&r.key_condition).map_err(|e| invalid(e.to_string()))?;
                let attrs = ExpressionAttributes::new(&r.args.names, &r.args.values);
                let (pk, _) = keel_net::expr::key_condition(&kc, &t.schema, &attrs)
                    .map_err(|e| invalid(e.to_string()))?;
                let k = PrimaryKey {
                    partition: pk,
                    sort: None,
                };
                (t, k)
            }
            _ => return Err(invalid("not an item request")),
        };
        let (index, _) = ops::locate(&table, &key);
        let shard = table.shard_of(index, self.shards);
        Ok((table, shard))
    }

    async fn route_item(self: &Rc<Self>, request: Request) -> Response {
        let shard = match self.item_target(&request) {
            Ok((_, shard)) => shard,
            Err(e) => return Response::Error(e),
        };
        if shard == self.index {
            return self.execute_item(request).await;
        }
        let (tx, rx) = flume::bounded(1);
        let msg = ShardMsg::Item { request, reply: tx };
        self.ask(shard, msg, rx)
            .await
            .unwrap_or_else(Response::Error)
    }

    /// Sends `msg` to shard `to` and waits for the answer on `rx`.
    async fn ask<T>(
        &self,
        to: u32,
        msg: ShardMsg,
        rx: flume::Receiver<T>,
    ) -> Result<T, ErrorResponse> {
        if self.senders.send_to(to as usize, msg).await.is_err() {
            return Err(unavailable("forwarding to another shard"));
        }
        rx.recv_async()
            .await
            .map_err(|_| unavailable("waiting for another shard"))
    }

    /// Carries out an item request for a partition this shard owns.
    async fn execute_item(self: &Rc<Self>, request: Request) -> Response {
        let e = &self.engine;
        match request {
            Request::PutItem(r) => match self.table(&r.table) {
                Ok(t) => reply(ops::put_item(e, &t, &r).await, Response::Item),
                Err(err) => Response::Error(err),
            },
            Request::GetItem(r) => match self.table(&r.table) {
                Ok(t) => reply(ops::get_item(e, &t, &r).await, |answer| answer),
                Err(err) => Response::Error(err),
            },
            Request::DeleteItem(r) => match self.table(&r.table) {
                Ok(t) => reply(ops::delete_item(e, &t, &r).await, Response::Item),
                Err(err) => Response::Error(err),
            },
            Request::UpdateItem(r) => match self.table(&r.table) {
                Ok(t) => reply(ops::update_item(e, &t, &r).await, Response::Item),
                Err(err) => Response::Error(err),
            },
            Request::Query(r) => match self.table(&r.table) {
                Ok(t) => reply(ops::query(e, &t, &r).await, Response::Items),
                Err(err) => Response::Error(err),
            },
            _ => Response::Error(invalid("not an item request")),
        }
    }

    async fn scan_partition(
        self: &Rc<Self>,
        owner: u32,
        partition: PartitionId,
        range: KeyRange,
        limit: usize,
        resume: Option<Vec<u8>>,
    ) -> Result<ScanPage, ErrorResponse> {
        if owner == self.index {
            return ops::scan_partition(&self.engine, partition, &range, limit, resume.as_deref())
                .await;
        }
        let (tx, rx) = flume::bounded(1);
        let msg = ShardMsg::ScanPartition {
            partition,
            range,
            limit,
            resume,
            reply: tx,
        };
        self.ask(owner, msg, rx).await?
    }

    /// A Scan page: the partitions that meet the segment's hash range, in hash order,
    /// from the start key on, until the limit or the page's byte budget.
    async fn scan(self: &Rc<Self>, req: &Scan) -> Result<ItemPage, ErrorResponse> {
        let table = self.table(&req.table)?;
        if req.total_segments == 0 || req.total_segments > 1_000_000 {
            return Err(invalid("TotalSegments must be within 1..=1000000"));
        }
        if req.segment >= req.total_segments {
            return Err(invalid("Segment must be less than TotalSegments"));
        }
        let filter = req
            .filter
            .as_deref()
            .map(parse_condition)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        let proj = req
            .projection
            .as_deref()
            .map(parse_projection)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        let mut used: Vec<ExprRef<'_>> = filter.iter().map(ExprRef::Condition).collect();
        used.extend(proj.iter().map(ExprRef::Projection));
        ExpressionAttributes::new(&req.args.names, &req.args.values)
            .check_usage(&used)
            .map_err(|e| invalid(e.to_string()))?;
        let (seg_low, seg_high) =
            keel_net::codec::partition_hash_range(req.segment, req.total_segments);
        let range = ops::hash_range(seg_low, seg_high);
        let count = table.partitions;
        let mut resume = match &req.start_key {
            Some(k) => {
                let skey = ops::start_storage_key(&table.schema, k)?;
                let h = keel_net::storage_key_hash(&skey).map_err(|e| invalid(e.to_string()))?;
                if !(seg_low..=seg_high).contains(&h) {
                    return Err(invalid("the start key is not in this scan segment"));
                }
                Some(skey)
            }
            None => None,
        };
        let first = match &resume {
            Some(k) => {
                let h = keel_net::storage_key_hash(k).map_err(|e| invalid(e.to_string()))?;
                keel_net::codec::partition_index(h, count)
            }
            None => keel_net::codec::partition_index(seg_low, count),
        };
        let last = keel_net::codec::partition_index(seg_high, count);
        let limit = ops::page_limit(req.limit)?.min(SCAN_PAGE_ITEMS_MAX);
        let mut items: Vec<Item> = Vec::new();
        let mut bytes = 0usize;
        let mut last_key = None;
        for index in first..=last {
            let want = limit - items.len();
            let owner = table.shard_of(index, self.shards);
            let pid = catalog::partition_id(table.id, index);
            let page = self
                .scan_partition(owner, pid, range.clone(), want, resume.take())
                .await?;
            bytes += page
                .items
                .iter()
                .map(keel_net::item_size_bytes)
                .sum::<usize>();
            items.extend(page.items);
            if page.resume.is_some() || items.len() >= limit || bytes >= SCAN_PAGE_BYTES_MAX {
                if let Some(item) = items.last() {
                    let pk = table
                        .schema
                        .key_of(item)
                        .map_err(|e| error(ErrorCode::Internal, e.to_string()))?;
                    last_key = Some(table.schema.key_item(&pk));
                }
                break;
            }
        }
        let scanned_count = u32::try_from(items.len()).unwrap_or(u32::MAX);
        Ok(ItemPage {
            items: ops::finish_page(items, &filter, &proj, &req.args)?,
            scanned_count,
            last_key,
        })
    }

    /// Routes item requests concurrently and returns their answers in order.
    async fn fan_out(self: &Rc<Self>, requests: Vec<Request>) -> Vec<Response> {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let shard = self.clone();
                glommio::spawn_local(async move { shard.route_item(request).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await);
        }
        answers
    }

    /// Checks a batch before any of it runs: 1..=`max` entries in all, no table named
    /// twice, every entry's key valid for its table and named once. Returns the count.
    fn check_batch<'b, T: 'b>(
        &self,
        op: &str,
        what: &str,
        max: usize,
        tables: impl Iterator<Item = (&'b str, &'b [T])> + Clone,
        key_of: impl Fn(&KeySchema, &T) -> Result<PrimaryKey, ErrorResponse>,
    ) -> Result<usize, ErrorResponse> {
        let total: usize = tables.clone().map(|(_, entries)| entries.len()).sum();
        if total == 0 || total > max {
            return Err(invalid(format!(
                "{op} takes 1 to {max} {what}, not {total}"
            )));
        }
        let mut names = BTreeSet::new();
        for (name, entries) in tables {
            if !names.insert(name) {
                return Err(invalid(format!("table {name} appears twice")));
            }
            let table = self.table(name)?;
            let mut seen = BTreeSet::new();
            for entry in entries {
                if !seen.insert(key_of(&table.schema, entry)?) {
                    return Err(invalid("Provided list of item keys contains duplicates"));
                }
            }
        }
        Ok(total)
    }

    async fn batch_get(self: &Rc<Self>, b: BatchGetItem) -> Result<BatchGetOk, ErrorResponse> {
        let tables = b
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.keys.as_slice()));
        self.check_batch(
            "BatchGetItem",
            "keys",
            BATCH_GET_KEYS_MAX,
            tables,
            ops::key_of,
        )?;
        let requests = b.tables.iter().flat_map(|t| {
            t.keys.iter().map(|k| {
                Request::GetItem(GetItem {
                    table: t.table.clone(),
                    key: k.clone(),
                    projection: t.projection.clone(),
                    args: t.args.clone(),
                    consistent: t.consistent,
                })
            })
        });
        let mut answers = self.fan_out(requests.collect()).await.into_iter();
        let mut tables = Vec::new();
        let mut unprocessed = Vec::new();
        let mut bytes = 0usize;
        for t in b.tables {
            let mut items = Vec::new();
            let mut retry = Vec::new();
            for k in t.keys {
                let answer = match answers.next() {
                    Some(Response::ItemBytes(Some(bytes))) => match keel_net::decode_item(&bytes) {
                        Ok(item) => Some(Response::Item(Some(item))),
                        Err(e) => {
                            return Err(error(
                                ErrorCode::Internal,
                                format!("an item of table {} does not decode: {e}", t.table),
                            ))
                        }
                    },
                    Some(Response::ItemBytes(None)) => Some(Response::Item(None)),
                    other => other,
                };
                match answer {
                    Some(Response::Item(Some(item))) => {
                        let size = keel_net::item_size_bytes(&item);
                        if bytes + size > BATCH_GET_BYTES_MAX {
                            retry.push(k);
                        } else {
                            bytes += size;
                            items.push(item);
                        }
                    }
                    Some(Response::Item(None)) => {}
                    Some(Response::Error(e)) if e.retryable => retry.push(k),
                    Some(Response::Error(e)) => return Err(e),
                    _ => return Err(error(ErrorCode::Internal, "lost a batch answer")),
                }
            }
            tables.push(TableItems {
                table: t.table.clone(),
                items,
            });
            if !retry.is_empty() {
                unprocessed.push(TableKeys { keys: retry, ..t });
            }
        }
        Ok(BatchGetOk {
            tables,
            unprocessed,
        })
    }

    async fn batch_write(
        self: &Rc<Self>,
        b: BatchWriteItem,
    ) -> Result<Vec<TableWrites>, ErrorResponse> {
        let tables = b
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.writes.as_slice()));
        let total = self.check_batch(
            "BatchWriteItem",
            "writes",
            BATCH_WRITE_MAX,
            tables,
            |schema, w| match w {
                WriteRequest::Put(item) => {
                    keel_net::validate_item(item).map_err(|e| invalid(e.to_string()))?;
                    schema.key_of(item).map_err(|e| invalid(e.to_string()))
                }
                WriteRequest::Delete(key) => ops::key_of(schema, key),
            },
        )?;
        let mut requests = Vec::with_capacity(total);
        for t in &b.tables {
            for w in &t.writes {
                requests.push(match w {
                    WriteRequest::Put(item) => Request::PutItem(PutItem {
                        table: t.table.clone(),
                        item: item.clone(),
                        condition: None,
                        args: Default::default(),
                        return_values: Default::default(),
                    }),
                    WriteRequest::Delete(key) => Request::DeleteItem(DeleteItem {
                        table: t.table.clone(),
                        key: key.clone(),
                        condition: None,
                        args: Default::default(),
                        return_values: Default::default(),
                    }),
                });
            }
        }
        let mut answers = self.fan_out(requests).await.into_iter();
        let mut unprocessed = Vec::new();
        let mut failure = None;
        for t in b.tables {
            let mut retry = Vec::new();
            for w in t.writes {
                match answers.next() {
                    Some(Response::Item(_)) => {}
                    Some(Response::Error(e)) if e.retryable => retry.push(w),
                    Some(Response::Error(e)) => {
                        // Others of the batch may have been applied: report the first
                        // failure with that said, as the writes are independent.
                        failure.get_or_insert(e);
                        retry.push(w);
                    }
                    _ => return Err(error(ErrorCode::Internal, "lost a batch answer")),
                }
            }
            if !retry.is_empty() {
                unprocessed.push(TableWrites {
                    table: t.table,
                    writes: retry,
                });
            }
        }
        match failure {
            Some(mut e) => {
                e.message = format!(
                    "{} (the batch's writes are independent: the others may be applied)",
                    e.message
                );
                Err(e)
            }
            None => Ok(unprocessed),
        }
    }

    /// A table change: carried out by shard 0, forwarded there from the others.
    async fn ddl(self: &Rc<Self>, request: Request) -> Response {
        if self.index != 0 {
            let (tx, rx) = flume::bounded(1);
            let msg = ShardMsg::Ddl { request, reply: tx };
            return self.ask(0, msg, rx).await.unwrap_or_else(Response::Error);
        }
        let Ok(_permit) = self.ddl_lock.acquire_permit(1).await else {
            return Response::Error(unavailable("changing the catalog"));
        };
        let result = match request {
            Request::CreateTable(c) => self.create_table(c).await,
            Request::DeleteTable { table } => self.delete_table(&table).await,
            _ => Err(invalid("not a table change")),
        };
        reply(result, Response::Table)
    }

    /// Saves `c` and makes every shard use it before returning.
    async fn publish(self: &Rc<Self>, c: Catalog) -> Result<(), ErrorResponse> {
        save_catalog(&self.catalog_path, &c).map_err(|e| {
            error(
                ErrorCode::Internal,
                format!("saving the catalog {}: {e}", self.catalog_path.display()),
            )
        })?;
        let c = Arc::new(c);
        *self.catalog.borrow_mut() = c.clone();
        for to in (0..self.shards).filter(|&s| s != self.index) {
            let (tx, rx) = flume::bounded(1);
            let msg = ShardMsg::Catalog {
                catalog: c.clone(),
                reply: tx,
            };
            self.ask(to, msg, rx).await?;
        }
        Ok(())
    }

    /// Creates or drops partitions on every shard.
    async fn on_all_shards(
        self: &Rc<Self>,
        table: &Table,
        create: bool,
    ) -> Result<(), ErrorResponse> {
        for shard in 0..self.shards {
            let ids = table
                .partitions_on(shard, self.shards)
                .into_iter()
                .map(|(_, id)| id);
            let done = if shard == self.index && create {
                self.create_partitions(ids.map(|id| (id, table.schema.clone())).collect())
                    .await
            } else if shard == self.index {
                self.drop_partitions(ids.collect()).await
            } else {
                let (tx, rx) = flume::bounded(1);
                let msg = if create {
                    ShardMsg::CreatePartitions {
                        parts: ids.map(|id| (id, table.schema.clone())).collect(),
                        reply: tx,
                    }
                } else {
                    ShardMsg::DropPartitions {
                        parts: ids.collect(),
                        reply: tx,
                    }
                };
                self.ask(shard, msg, rx).await?
            };
            done.map_err(|e| error(ErrorCode::Internal, e))?;
        }
        Ok(())
    }

    async fn create_partitions(&self, parts: Vec<(PartitionId, KeySchema)>) -> Result<(), String> {
        for (id, schema) in parts {
            if self.engine.partitions().iter().any(|(p, _)| *p == id) {
                continue;
            }
            self.engine
                .create_partition(id, schema)
                .await
                .map_err(|e| format!("shard {}: {e}", self.index))?;
        }
        Ok(())
    }

    async fn drop_partitions(&self, parts: Vec<PartitionId>) -> Result<(), String> {
        for id in parts {
            match self.engine.drop_partition(id).await {
                Ok(()) | Err(crate::shard::EngineError::UnknownPartition(_)) => {}
                Err(e) => return Err(format!("shard {}: {e}", self.index)),
            }
        }
        Ok(())
    }

    async fn create_table(
        self: &Rc<Self>,
        c: CreateTable,
    ) -> Result<keel_net::codec::TableDescription, ErrorResponse> {
        let mut next = (**self.catalog.borrow()).clone();
        let table = next
            .begin_create(
                &c.table,
                &c.schema,
                c.partitions,
                self.default_partitions,
                now_unix_ms(),
            )
            .map_err(catalog_error)?;
        self.publish(next.clone()).await?;
        self.on_all_shards(&table, true).await?;
        next.finish_create(&c.table);
        self.publish(next.clone()).await?;
        next.live(&c.table)
            .map(|t| t.describe(self.shards))
            .map_err(catalog_error)
    }

    async fn delete_table(
        self: &Rc<Self>,
        name: &str,
    ) -> Result<keel_net::codec::TableDescription, ErrorResponse> {
        let mut next = (**self.catalog.borrow()).clone();
        let table = next.begin_delete(name).map_err(catalog_error)?;
        self.publish(next.clone()).await?;
        self.on_all_shards(&table, false).await?;
        next.finish_delete(name);
        self.publish(next).await?;
        Ok(table.describe(self.shards))
    }

    /// Makes this shard's partitions match `catalog`: creates those of live tables that
    /// are missing (only allowed for tables still being created: a missing partition of
    /// an active table lost data) and drops those of no live table.
    pub async fn reconcile(&self, catalog: &Catalog) -> Result<(), String> {
        let want = catalog.partitions_on(self.index);
        let have: BTreeMap<PartitionId, KeySchema> = self.engine.partitions().into_iter().collect();
        for (id, schema) in &want {
            if have.contains_key(id) {
                continue;
            }
            let creating = catalog.tables.values().any(|t| {
                t.status == keel_net::codec::TableStatus::Creating && u64::from(t.id) == id.0 >> 32
            });
            if !creating {
                return Err(format!(
                    "partition {:#x} of an active table is missing from shard {}: data \
                     was lost or the data directory was altered",
                    id.0, self.index
                ));
            }
            self.engine
                .create_partition(*id, schema.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
        for id in have.keys().filter(|id| !want.contains_key(id)) {
            self.engine
                .drop_partition(*id)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Handles a message from another shard (or from itself, for partition changes).
    pub async fn on_message(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Hello { .. } => {}
            ShardMsg::Item { request, reply } => {
                let answer = self.execute_item(request).await;
                let _ = reply.send(answer);
            }
            ShardMsg::ScanPartition {
                partition,
                range,
                limit,
                resume,
                reply,
            } => {
                let page =
                    ops::scan_partition(&self.engine, partition, &range, limit, resume.as_deref())
                        .await;
                let _ = reply.send(page);
            }
            ShardMsg::Ddl { request, reply } => {
                let answer = self.ddl(request).await;
                let _ = reply.send(answer);
            }
            ShardMsg::CreatePartitions { parts, reply } => {
                let _ = reply.send(self.create_partitions(parts).await);
            }
            ShardMsg::DropPartitions { parts, reply } => {
                let _ = reply.send(self.drop_partitions(parts).await);
            }
            ShardMsg::Catalog { catalog, reply } => {
                *self.catalog.borrow_mut() = catalog;
                let _ = reply.send(());
            }
        }
    }
}
