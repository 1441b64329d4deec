//! The fuzz body for expressions: a plain function, run on stable by a seeded test and by
//! `net/fuzz` (cargo-fuzz) for long runs.
//!
//! It parses the input as every expression kind and evaluates what parses against a fixed
//! item, fixed placeholders and a fixed key schema. It panics only when a property breaks:
//! nothing panics, what parses prints to a string that parses to the same tree, and an
//! update that succeeds yields a valid item with the same key.

use std::collections::{BTreeMap, BTreeSet};

use crate::expr::{
    key_condition, parse_condition, parse_projection, parse_update, ExprRef, ExpressionAttributes,
};
use crate::model::{
    validate_item, Item, KeyAttribute, KeySchema, KeyType, KeyValue, Number, PrimaryKey, Value,
};

/// The key schema of the fuzz item: `pk` (S) and `sk` (N).
pub fn fuzz_key_schema() -> KeySchema {
    KeySchema::with_sort_key(
        KeyAttribute::new("pk", KeyType::S),
        KeyAttribute::new("sk", KeyType::N),
    )
}

/// The item the fuzz body evaluates against: every type, nested maps and lists.
pub fn fuzz_item() -> Item {
    let n = |i: i64| Value::N(Number::from(i));
    let mut inner = BTreeMap::new();
    inner.insert(
        "c".to_owned(),
        Value::L(vec![n(1), Value::S("x".into()), n(3)]),
    );
    inner.insert("d".to_owned(), Value::M(BTreeMap::new()));
    let mut item = Item::new();
    item.insert("pk".into(), Value::S("p".into()));
    item.insert("sk".into(), n(7));
    item.insert("a".into(), Value::M(inner));
    item.insert(
        "b".into(),
        Value::L(vec![n(0), Value::L(vec![n(1)]), Value::Null]),
    );
    item.insert("n".into(), n(5));
    item.insert("s".into(), Value::S("hello".into()));
    item.insert("bin".into(), Value::B(vec![1, 2, 3]));
    item.insert("t".into(), Value::Bool(true));
    item.insert(
        "ss".into(),
        Value::Ss(["x", "y"].iter().map(|s| (*s).to_owned()).collect()),
    );
    item.insert(
        "ns".into(),
        Value::Ns([n(1), n(2)].iter().filter_map(num).collect()),
    );
    item.insert("bs".into(), Value::Bs(BTreeSet::from([vec![1u8]])));
    item
}

fn num(value: &Value) -> Option<Number> {
    match value {
        Value::N(n) => Some(*n),
        _ => None,
    }
}

/// The placeholders of the fuzz body: `#a`..`#z`-style names and `:` values of each type.
pub fn fuzz_attributes() -> (BTreeMap<String, String>, BTreeMap<String, Value>) {
    let names: BTreeMap<String, String> = [
        ("#a", "a"),
        ("#b", "b"),
        ("#c", "c"),
        ("#pk", "pk"),
        ("#sk", "sk"),
        ("#and", "and"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let n = |i: i64| Value::N(Number::from(i));
    let values: BTreeMap<String, Value> = [
        (":n", n(1)),
        (
            ":big",
            Value::N(Number::from_parts(false, 10u128.pow(37), 88).unwrap_or(Number::ZERO)),
        ),
        (":s", Value::S("he".into())),
        (":t", Value::S("N".into())),
        (":b", Value::B(vec![1])),
        (":l", Value::L(vec![n(9)])),
        (":m", Value::M(BTreeMap::new())),
        (
            ":ss",
            Value::Ss(BTreeSet::from(["x".to_owned(), "z".to_owned()])),
        ),
        (":ns", Value::Ns(BTreeSet::from([Number::from(2)]))),
        (":null", Value::Null),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    (names, values)
}

/// Parses `data` (as UTF-8, lossily) as each expression kind and evaluates what parses.
pub fn fuzz_expr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (names, values) = fuzz_attributes();
    let attributes = ExpressionAttributes::new(&names, &values);
    let item = fuzz_item();
    let schema = fuzz_key_schema();

    if let Ok(condition) = parse_condition(&text) {
        let printed = condition.to_string();
        assert_eq!(
            parse_condition(&printed).as_ref(),
            Ok(&condition),
            "{printed}"
        );
        let _ = condition.evaluate(Some(&item), &attributes);
        let _ = condition.evaluate(None, &attributes);
        let _ = attributes.check_usage(&[ExprRef::Condition(&condition)]);
        if let Ok((partition, _sort)) = key_condition(&condition, &schema, &attributes) {
            assert!(matches!(partition, KeyValue::S(_)), "pk is of type S");
        }
    }
    if let Ok(update) = parse_update(&text) {
        let printed = update.to_string();
        assert_eq!(parse_update(&printed).as_ref(), Ok(&update), "{printed}");
        let key = PrimaryKey {
            partition: KeyValue::S("p".into()),
            sort: Some(KeyValue::N(Number::from(7))),
        };
        for start in [Some(&item), None] {
            if let Ok(updated) = update.apply(start, &key, &schema, &attributes) {
                assert_eq!(validate_item(&updated), Ok(()), "an updated item is valid");
                assert_eq!(schema.key_of(&updated).as_ref(), Ok(&key), "the key stays");
            }
        }
    }
    if let Ok(projection) = parse_projection(&text) {
        let printed = projection.to_string();
        assert_eq!(
            parse_projection(&printed).as_ref(),
            Ok(&projection),
            "{printed}"
        );
        if let Ok(projected) = projection.apply(&item, &attributes) {
            assert!(
                projected.len() <= item.len(),
                "a projection adds no attribute"
            );
        }
    }
}
