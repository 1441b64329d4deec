//! The item operations of the protocol carried out on the shard that owns the partition:
//! PutItem, GetItem, DeleteItem, UpdateItem, Query, and one partition's part of a Scan.
//!
//! Expressions are parsed and checked before the engine is touched, so a malformed
//! request costs no lock and no log record; conditions and updates are evaluated inside
//! [`Engine::modify`], against the item stored at that moment.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::rc::Rc;

use keel_net::codec::{
    DeleteItem, ErrorCode, ErrorResponse, ExprArgs, GetItem, ItemPage, PutItem, Query, Response,
    ReturnValues, UpdateItem,
};
use keel_net::expr::{
    key_condition, parse_condition, parse_projection, parse_update, Condition, ExprError, ExprRef,
    ExpressionAttributes, Projection, SetValue, Update, UpdateClause, UpdateOperand,
};
use keel_net::model::PARTITION_HASH_BYTES;
use keel_net::{
    decode_storage_key, encode_storage_key, partition_hash, validate_item, Item, KeySchema,
    PrimaryKey, Value,
};

use super::catalog::{partition_id, Table};
use crate::shard::{Decision, Engine, EngineError, KeyRange, OldItem, PartitionId, ScanPage};

/// An error answer.
pub fn error(code: ErrorCode, message: impl Into<String>) -> ErrorResponse {
    ErrorResponse {
        code,
        retryable: matches!(code, ErrorCode::Throttled | ErrorCode::Unavailable),
        message: message.into(),
    }
}

/// A validation error answer.
pub fn invalid(message: impl Into<String>) -> ErrorResponse {
    error(ErrorCode::Validation, message)
}

fn expr_error(e: ExprError) -> ErrorResponse {
    invalid(e.to_string())
}

/// The answer for an engine error.
pub fn engine_error(e: EngineError) -> ErrorResponse {
    match e {
        EngineError::ConditionFailed => error(
            ErrorCode::ConditionalCheckFailed,
            "the conditional request failed",
        ),
        EngineError::Validation(m) => invalid(m.to_string()),
        EngineError::Refused(m) => invalid(m),
        EngineError::KeyChanged => invalid("an update may not change the item's key"),
        EngineError::Storage(
            s @ (crate::StorageError::KeyTooLarge { .. }
            | crate::StorageError::ValueTooLarge { .. }),
        ) => invalid(s.to_string()),
        EngineError::UnknownPartition(_) => {
            error(ErrorCode::ResourceNotFound, "the table was deleted")
        }
        EngineError::Closed => error(ErrorCode::Unavailable, "the node is shutting down"),
        other => {
            tracing::error!(error = %other, "request failed in the engine");
            error(ErrorCode::Internal, other.to_string())
        }
    }
}

/// The partition index and engine id of the partition holding partition key `key`.
pub fn locate(table: &Table, key: &PrimaryKey) -> (u32, PartitionId) {
    let index = keel_net::codec::partition_index(partition_hash(&key.partition), table.partitions);
    (index, partition_id(table.id, index))
}

/// The primary key a `Key` item names, checked against the schema (no other attributes).
pub fn key_of(schema: &KeySchema, key: &Item) -> Result<PrimaryKey, ErrorResponse> {
    let expected = 1 + usize::from(schema.sort_key.is_some());
    if key.len() != expected {
        return Err(invalid(format!(
            "the key must hold exactly the key attributes ({}), found {} attributes",
            key_names(schema),
            key.len()
        )));
    }
    schema.key_of(key).map_err(|e| invalid(e.to_string()))
}

fn key_names(schema: &KeySchema) -> String {
    match &schema.sort_key {
        Some(sk) => format!("{}, {}", schema.partition_key.name, sk.name),
        None => schema.partition_key.name.clone(),
    }
}

fn attributes(args: &ExprArgs) -> ExpressionAttributes<'_> {
    ExpressionAttributes::new(&args.names, &args.values)
}

fn condition(text: Option<&String>) -> Result<Option<Condition>, ErrorResponse> {
    text.map(|t| parse_condition(t))
        .transpose()
        .map_err(expr_error)
}

fn projection(text: Option<&String>) -> Result<Option<Projection>, ErrorResponse> {
    text.map(|t| parse_projection(t))
        .transpose()
        .map_err(expr_error)
}

fn check_usage(args: &ExprArgs, used: &[ExprRef<'_>]) -> Result<(), ErrorResponse> {
    attributes(args).check_usage(used).map_err(expr_error)
}

fn refs<'e>(
    conditions: &[&'e Option<Condition>],
    projection: Option<&'e Projection>,
) -> Vec<ExprRef<'e>> {
    let mut v: Vec<ExprRef<'e>> = conditions
        .iter()
        .filter_map(|c| c.as_ref().map(ExprRef::Condition))
        .collect();
    v.extend(projection.map(ExprRef::Projection));
    v
}

/// Evaluates a write's condition expression inside `modify`.
fn holds(cond: &Option<Condition>, old: Option<&Item>, args: &ExprArgs) -> Result<(), EngineError> {
    match cond {
        None => Ok(()),
        Some(c) => match c.evaluate(old, &attributes(args)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(EngineError::ConditionFailed),
            Err(e) => Err(EngineError::Refused(e.to_string())),
        },
    }
}

/// What a PutItem or DeleteItem reads of the item it replaces: nothing when it has no
/// condition and returns nothing (a blind write).
fn old_needed(cond: &Option<Condition>, rv: ReturnValues) -> OldItem {
    if cond.is_none() && rv == ReturnValues::None {
        OldItem::Skip
    } else {
        OldItem::Decode
    }
}

fn only_none_or_all_old(rv: ReturnValues, op: &str) -> Result<(), ErrorResponse> {
    match rv {
        ReturnValues::None | ReturnValues::AllOld => Ok(()),
        other => Err(invalid(format!(
            "{op} supports ReturnValues NONE and ALL_OLD, not {other:?}"
        ))),
    }
}

/// PutItem on the owning shard.
pub async fn put_item(
    engine: &Engine,
    table: &Table,
    req: &PutItem,
) -> Result<Option<Item>, ErrorResponse> {
    only_none_or_all_old(req.return_values, "PutItem")?;
    keel_net::validate_item(&req.item).map_err(|e| invalid(e.to_string()))?;
    let key = table
        .schema
        .key_of(&req.item)
        .map_err(|e| invalid(e.to_string()))?;
    let cond = condition(req.condition.as_ref())?;
    check_usage(&req.args, &refs(&[&cond], None))?;
    let (_, pid) = locate(table, &key);
    let item = req.item.clone();
    let old = engine
        .modify_with(pid, &key, old_needed(&cond, req.return_values), |old| {
            holds(&cond, old, &req.args)?;
            Ok(Decision::Put(item))
        })
        .await
        .map_err(engine_error)?;
    Ok(match req.return_values {
        ReturnValues::AllOld => old,
        _ => None,
    })
}

/// DeleteItem on the owning shard.
pub async fn delete_item(
    engine: &Engine,
    table: &Table,
    req: &DeleteItem,
) -> Result<Option<Item>, ErrorResponse> {
    only_none_or_all_old(req.return_values, "DeleteItem")?;
    let key = key_of(&table.schema, &req.key)?;
    let cond = condition(req.condition.as_ref())?;
    check_usage(&req.args, &refs(&[&cond], None))?;
    let (_, pid) = locate(table, &key);
    let old = engine
        .modify_with(pid, &key, old_needed(&cond, req.return_values), |old| {
            holds(&cond, old, &req.args)?;
            Ok(Decision::Delete)
        })
        .await
        .map_err(engine_error)?;
    Ok(match req.return_values {
        ReturnValues::AllOld => old,
        _ => None,
    })
}

/// Update expressions longer than this are parsed every time, not cached.
const PARSED_UPDATE_TEXT_BYTES_MAX: usize = 1024;
/// Most parsed update expressions a shard keeps; the cache is emptied when it is full.
const PARSED_UPDATES_MAX: usize = 256;

thread_local! {
    /// This shard's parsed update expressions, by text (a shard is one thread). Clients
    /// send the same few expressions over and over (YCSB's update has one per field), and
    /// parsing was ~1.9% of a shard's CPU under YCSB A. At most `PARSED_UPDATES_MAX`
    /// texts of at most `PARSED_UPDATE_TEXT_BYTES_MAX` bytes: well under 1 MiB.
    static PARSED_UPDATES: RefCell<HashMap<String, Rc<Update>>> =
        RefCell::new(HashMap::new());
}

/// `text` parsed as an update expression, from this shard's cache when it was parsed
/// before. Only expressions that parse are kept.
fn parsed_update(text: &str) -> Result<Rc<Update>, ErrorResponse> {
    if text.len() > PARSED_UPDATE_TEXT_BYTES_MAX {
        return parse_update(text).map(Rc::new).map_err(expr_error);
    }
    if let Some(update) = PARSED_UPDATES.with_borrow(|cache| cache.get(text).cloned()) {
        return Ok(update);
    }
    let update = Rc::new(parse_update(text).map_err(expr_error)?);
    PARSED_UPDATES.with_borrow_mut(|cache| {
        if cache.len() >= PARSED_UPDATES_MAX {
            cache.clear();
        }
        cache.insert(text.to_owned(), update.clone());
    });
    Ok(update)
}

/// UpdateItem on the owning shard.
pub async fn update_item(
    engine: &Engine,
    table: &Table,
    req: &UpdateItem,
) -> Result<Option<Item>, ErrorResponse> {
    let key = key_of(&table.schema, &req.key)?;
    let update = parsed_update(&req.update)?;
    let update = update.as_ref();
    let cond = condition(req.condition.as_ref())?;
    let mut used = refs(&[&cond], None);
    used.push(ExprRef::Update(update));
    check_usage(&req.args, &used)?;
    let attrs = attributes(&req.args);
    update.check(&table.schema, &attrs).map_err(expr_error)?;
    let (_, pid) = locate(table, &key);
    if cond.is_none() && matches!(req.return_values, ReturnValues::None) {
        if let Some(sets) = plain_sets(update, &attrs) {
            if set_in_place(engine, pid, &key, &sets).await? {
                return Ok(None);
            }
        }
    }
    // The new item is kept (a copy) only when the answer shows it.
    let keep_new = !matches!(req.return_values, ReturnValues::None | ReturnValues::AllOld);
    let mut new_item = None;
    let old = engine
        .modify(pid, &key, |old| {
            holds(&cond, old, &req.args)?;
            let new = update
                .apply(old, &key, &table.schema, &attrs)
                .map_err(|e| EngineError::Refused(e.to_string()))?;
            if keep_new {
                new_item = Some(new.clone());
            }
            Ok(Decision::Put(new))
        })
        .await
        .map_err(engine_error)?;
    let new = new_item.unwrap_or_default();
    Ok(match req.return_values {
        ReturnValues::None => None,
        ReturnValues::AllOld => old,
        ReturnValues::AllNew => Some(new),
        ReturnValues::UpdatedOld => {
            let old = old.unwrap_or_default();
            Some(changed(&old, &new, &old))
        }
        ReturnValues::UpdatedNew => {
            let old = old.unwrap_or_default();
            Some(changed(&old, &new, &new))
        }
    })
}

/// The top-level attributes and values of an update that only SETs top-level attributes
/// to expression attribute values (`SET a = :v, #b = :w`), sorted by name; `None` for any
/// other update (paths into documents, functions, arithmetic, REMOVE, ADD, DELETE).
fn plain_sets<'a>(
    update: &'a Update,
    attrs: &ExpressionAttributes<'a>,
) -> Option<Vec<(&'a str, &'a Value)>> {
    let [UpdateClause::Set(actions)] = update.clauses.as_slice() else {
        return None;
    };
    let mut sets = Vec::with_capacity(actions.len());
    for action in actions {
        let SetValue::Operand(UpdateOperand::Value(value)) = &action.value else {
            return None;
        };
        if !action.path.elements.is_empty() {
            return None;
        }
        sets.push((
            attrs.name(&action.path.attribute).ok()?,
            attrs.value(value).ok()?,
        ));
    }
    sets.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let distinct = sets.windows(2).all(|w| matches!(w, [a, b] if a.0 != b.0));
    distinct.then_some(sets)
}

/// UpdateItem's fast path (no condition, no ReturnValues, only top-level SETs of values):
/// [`Engine::set_attributes`] patches the stored encoding instead of decoding the item,
/// applying the update and encoding it again (about a sixth of an update's CPU on the
/// node), and logs only the attributes set. `false` when it did not apply: no item
/// stored yet, values the general path must refuse, or an item so large that its size
/// must be computed (the general path then runs, with the same outcome it always had).
///
/// The new item is valid without being decoded: the stored one was; the values set are
/// checked as an item of their own (names, sets, nesting); `Update::check` refused key
/// attributes; and the engine keeps the new encoding within the length that bounds an
/// item within the size limit.
async fn set_in_place(
    engine: &Engine,
    partition: PartitionId,
    key: &PrimaryKey,
    sets: &[(&str, &Value)],
) -> Result<bool, ErrorResponse> {
    let added: Item = sets
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).clone()))
        .collect();
    if validate_item(&added).is_err() {
        return Ok(false);
    }
    engine
        .set_attributes(partition, key, &added)
        .await
        .map_err(engine_error)
}

/// The top-level attributes of `from` whose value differs between `a` and `b`.
fn changed(a: &Item, b: &Item, from: &Item) -> Item {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .filter_map(|n| from.get(n).map(|v| (n.clone(), v.clone())))
        .collect()
}

/// GetItem on the owning shard.
pub async fn get_item(
    engine: &Engine,
    table: &Table,
    req: &GetItem,
) -> Result<Response, ErrorResponse> {
    let key = key_of(&table.schema, &req.key)?;
    let proj = projection(req.projection.as_ref())?;
    check_usage(&req.args, &refs(&[], proj.as_ref()))?;
    let (_, pid) = locate(table, &key);
    match proj {
        // The whole item: passed on in its stored encoding, which is its wire encoding.
        None => engine
            .get_encoded(pid, &key)
            .await
            .map(Response::ItemBytes)
            .map_err(engine_error),
        Some(p) => match engine.get(pid, &key).await.map_err(engine_error)? {
            Some(item) => p
                .apply(&item, &attributes(&req.args))
                .map(|item| Response::Item(Some(item)))
                .map_err(expr_error),
            None => Ok(Response::Item(None)),
        },
    }
}

/// Filters and projects the items of one page of a Query or Scan.
pub fn finish_page(
    items: Vec<Item>,
    filter: &Option<Condition>,
    proj: &Option<Projection>,
    args: &ExprArgs,
) -> Result<Vec<Item>, ErrorResponse> {
    let attrs = attributes(args);
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(f) = filter {
            if !f.evaluate(Some(&item), &attrs).map_err(expr_error)? {
                continue;
            }
        }
        out.push(match proj {
            Some(p) => p.apply(&item, &attrs).map_err(expr_error)?,
            None => item,
        });
    }
    Ok(out)
}

/// The key item (`LastEvaluatedKey`) of a storage key a scan stopped at.
pub fn last_key(schema: &KeySchema, storage_key: &[u8]) -> Result<Item, ErrorResponse> {
    let pk = decode_storage_key(storage_key, schema)
        .map_err(|e| error(ErrorCode::Internal, format!("stored key: {e}")))?;
    Ok(schema.key_item(&pk))
}

/// The storage key of a `start_key` item.
pub fn start_storage_key(schema: &KeySchema, start: &Item) -> Result<Vec<u8>, ErrorResponse> {
    let pk = key_of(schema, start)?;
    let mut out = Vec::new();
    encode_storage_key(&pk, &mut out);
    Ok(out)
}

/// Query on the owning shard: one partition key's items in sort-key order.
pub async fn query(engine: &Engine, table: &Table, req: &Query) -> Result<ItemPage, ErrorResponse> {
    let kc = parse_condition(&req.key_condition).map_err(expr_error)?;
    let filter = condition(req.filter.as_ref())?;
    let proj = projection(req.projection.as_ref())?;
    let mut used = refs(&[&filter], proj.as_ref());
    used.push(ExprRef::Condition(&kc));
    check_usage(&req.args, &used)?;
    let (pk, sort) =
        key_condition(&kc, &table.schema, &attributes(&req.args)).map_err(expr_error)?;
    let range = KeyRange::query(&pk, &sort).map_err(|e| invalid(e.to_string()))?;
    let pkey = PrimaryKey {
        partition: pk,
        sort: None,
    };
    let (_, pid) = locate(table, &pkey);
    let resume = match &req.start_key {
        Some(start) => {
            let k = key_of(&table.schema, start)?;
            if k.partition != pkey.partition {
                return Err(invalid(
                    "the start key's partition key differs from the key condition's",
                ));
            }
            Some(start_storage_key(&table.schema, start)?)
        }
        None => None,
    };
    let limit = page_limit(req.limit)?;
    let page = engine
        .scan(pid, &range, !req.forward, limit, resume.as_deref())
        .await
        .map_err(engine_error)?;
    let scanned_count = u32::try_from(page.items.len()).unwrap_or(u32::MAX);
    let last_key = page
        .resume
        .as_deref()
        .map(|k| last_key(&table.schema, k))
        .transpose()?;
    Ok(ItemPage {
        items: finish_page(page.items, &filter, &proj, &req.args)?,
        scanned_count,
        last_key,
    })
}

/// The item limit of one Query or Scan page (`None`: the engine's own limit).
pub fn page_limit(limit: Option<u32>) -> Result<usize, ErrorResponse> {
    match limit {
        Some(0) => Err(invalid("Limit must be at least 1")),
        Some(n) => Ok(n as usize),
        None => Ok(usize::MAX),
    }
}

/// The storage-key range of the hashes `low..=high`, for a segment of a parallel Scan.
pub fn hash_range(low: u64, high: u64) -> KeyRange {
    // A storage key starts with the partition key's hash, big-endian.
    const _: () = assert!(PARTITION_HASH_BYTES == 8);
    let bytes = |h: u64| h.to_be_bytes().to_vec();
    KeyRange {
        lower: Bound::Included(bytes(low)),
        upper: match high.checked_add(1) {
            Some(next) => Bound::Excluded(bytes(next)),
            None => Bound::Unbounded,
        },
    }
}

/// One partition's part of a Scan, on the shard that owns it.
pub async fn scan_partition(
    engine: &Engine,
    partition: PartitionId,
    range: &KeyRange,
    limit: usize,
    resume: Option<&[u8]>,
) -> Result<ScanPage, ErrorResponse> {
    engine
        .scan(partition, range, false, limit, resume)
        .await
        .map_err(engine_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::EngineOptions;
    use keel_net::codec::ExprArgs;
    use keel_net::codec::TableStatus;
    use keel_net::{KeyAttribute, KeyType, Number, Value};

    #[test]
    fn update_expressions_are_parsed_once_per_shard_and_the_cache_stays_bounded() {
        let text = "SET field3 = :v3";
        let first = parsed_update(text).unwrap();
        assert_eq!(*first, parse_update(text).unwrap());
        // The second time it is the same parse, from the cache.
        assert!(Rc::ptr_eq(&first, &parsed_update(text).unwrap()));
        // What does not parse is an error every time, and is not kept.
        assert!(parsed_update("SET = oops").is_err());
        assert!(PARSED_UPDATES.with_borrow(|c| !c.contains_key("SET = oops")));
        // A long text is parsed but not kept.
        let long = format!("SET {} = :v", "a".repeat(PARSED_UPDATE_TEXT_BYTES_MAX));
        assert_eq!(*parsed_update(&long).unwrap(), parse_update(&long).unwrap());
        assert!(PARSED_UPDATES.with_borrow(|c| !c.contains_key(&long)));
        // Never more than the bound.
        for i in 0..PARSED_UPDATES_MAX * 2 {
            parsed_update(&format!("SET f{i} = :v")).unwrap();
            assert!(PARSED_UPDATES.with_borrow(|c| c.len()) <= PARSED_UPDATES_MAX);
        }
    }

    fn s(text: &str) -> Value {
        Value::S(text.into())
    }

    fn update(
        id: &str,
        expr: &str,
        values: &[(&str, Value)],
        names: &[(&str, &str)],
    ) -> UpdateItem {
        UpdateItem {
            table: "t".into(),
            key: [("id".to_owned(), s(id))].into_iter().collect(),
            update: expr.into(),
            condition: None,
            args: ExprArgs::of(names, values),
            return_values: ReturnValues::None,
        }
    }

    /// UpdateItem's fast path (top-level SETs of values, no condition, no ReturnValues)
    /// patches the stored encoding; everything else, an absent item and a large one take
    /// the general path; either way the item read back is the same.
    #[test]
    fn plain_sets_patch_in_place_and_give_the_general_paths_item() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(4 << 20)
            .make()
            .unwrap()
            .run(async move {
                let engine = Engine::open(EngineOptions::new(path)).await.unwrap();
                let schema = KeySchema::partition_only(KeyAttribute::new("id", KeyType::S));
                let table = Table {
                    id: 7,
                    name: "t".into(),
                    schema: schema.clone(),
                    status: TableStatus::Active,
                    partitions: 1,
                    created_unix_ms: 0,
                };
                let pid = partition_id(7, 0);
                engine.create_partition(pid, schema).await.unwrap();
                let get = |id: &str| {
                    let key = key_of(
                        &table.schema,
                        &[("id".to_owned(), s(id))].into_iter().collect(),
                    )
                    .unwrap();
                    let engine = engine.clone();
                    async move { engine.get(pid, &key).await.unwrap() }
                };
                let patched = || engine.stats().patched;
                // Absent: the general path creates it.
                let r = update(
                    "a",
                    "SET b = :b, z = :z",
                    &[(":b", s("1")), (":z", s("26"))],
                    &[],
                );
                update_item(&engine, &table, &r).await.unwrap();
                assert_eq!(patched(), 0);
                // Present: patched (one replaced, one added, one before all, via #name).
                let r = update(
                    "a",
                    "SET b = :b, #c = :c, a0 = :a",
                    &[
                        (":b", s("2")),
                        (":c", Value::N(Number::from(3))),
                        (":a", Value::Null),
                    ],
                    &[("#c", "c")],
                );
                update_item(&engine, &table, &r).await.unwrap();
                assert_eq!(patched(), 1);
                let expected: Item = [
                    ("id", s("a")),
                    ("a0", Value::Null),
                    ("b", s("2")),
                    ("c", Value::N(Number::from(3))),
                    ("z", s("26")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                assert_eq!(get("a").await, Some(expected));
                // Not plain: a path into a document, arithmetic, REMOVE, ReturnValues.
                let r = update("a", "SET m = :m", &[(":m", Value::M(Item::new()))], &[]);
                update_item(&engine, &table, &r).await.unwrap();
                let r = update("a", "SET m.x = :x", &[(":x", s("x"))], &[]);
                update_item(&engine, &table, &r).await.unwrap();
                let r = update(
                    "a",
                    "SET c = c + :one",
                    &[(":one", Value::N(Number::from(1)))],
                    &[],
                );
                update_item(&engine, &table, &r).await.unwrap();
                let r = update("a", "REMOVE z", &[], &[]);
                update_item(&engine, &table, &r).await.unwrap();
                let mut r = update("a", "SET b = :b", &[(":b", s("5"))], &[]);
                r.return_values = ReturnValues::AllNew;
                assert!(update_item(&engine, &table, &r).await.unwrap().is_some());
                assert_eq!(patched(), 2, "only `SET m = :m` was plain");
                let item = get("a").await.unwrap();
                assert_eq!(item.get("c"), Some(&Value::N(Number::from(4))));
                assert_eq!(item.get("b"), Some(&s("5")));
                assert!(!item.contains_key("z"));
                // A value the general path refuses (an empty set) is refused the same way.
                let r = update(
                    "a",
                    "SET e = :e",
                    &[(":e", Value::Ss(Default::default()))],
                    &[],
                );
                assert!(update_item(&engine, &table, &r).await.is_err());
                assert_eq!(patched(), 2);
                // A large item (its size must be computed): the general path.
                let big = s(&"x".repeat(60_000));
                let r = update("a", "SET big = :v", &[(":v", big.clone())], &[]);
                update_item(&engine, &table, &r).await.unwrap();
                assert_eq!(patched(), 2);
                assert_eq!(get("a").await.unwrap().get("big"), Some(&big));
                engine.close().await.unwrap();
            });
    }

    #[test]
    fn changed_attributes_for_updated_old_and_new() {
        let mut old = Item::new();
        old.insert("id".into(), Value::S("a".into()));
        old.insert("n".into(), Value::N(Number::from(1)));
        old.insert("gone".into(), Value::Bool(true));
        let mut new = old.clone();
        new.insert("n".into(), Value::N(Number::from(2)));
        new.remove("gone");
        new.insert("fresh".into(), Value::Null);
        let o = changed(&old, &new, &old);
        assert_eq!(o.keys().collect::<Vec<_>>(), vec!["gone", "n"]);
        let n = changed(&old, &new, &new);
        assert_eq!(n.keys().collect::<Vec<_>>(), vec!["fresh", "n"]);
    }

    #[test]
    fn hash_ranges_bound_storage_keys() {
        let r = hash_range(5, u64::MAX);
        assert_eq!(r.upper, Bound::Unbounded);
        let r = hash_range(0, 9);
        assert_eq!(r.lower, Bound::Included(0u64.to_be_bytes().to_vec()));
        assert_eq!(r.upper, Bound::Excluded(10u64.to_be_bytes().to_vec()));
    }
}
