//! Update application: each action, DynamoDB's evaluate-then-apply order, and each error.

use std::collections::{BTreeMap, BTreeSet};

use super::{attributes, attributes_of, n, s};
use crate::expr::fuzz::{fuzz_item, fuzz_key_schema};
use crate::expr::{parse_update, ExprError, ExpressionAttributes};
use crate::model::{Item, KeyValue, ModelError, Number, PrimaryKey, Value, ITEM_BYTES_MAX};

fn key() -> PrimaryKey {
    PrimaryKey {
        partition: KeyValue::S("p".into()),
        sort: Some(KeyValue::N(Number::from(7))),
    }
}

fn apply_with(
    text: &str,
    item: Option<&Item>,
    attributes: &ExpressionAttributes<'_>,
) -> Result<Item, ExprError> {
    parse_update(text)?.apply(item, &key(), &fuzz_key_schema(), attributes)
}

fn apply(text: &str) -> Result<Item, ExprError> {
    apply_with(text, Some(&fuzz_item()), &attributes())
}

fn get<'i>(item: &'i Item, name: &str) -> &'i Value {
    item.get(name)
        .unwrap_or_else(|| panic!("{name} missing from {item:?}"))
}

fn strings(items: &[&str]) -> Value {
    Value::Ss(items.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn set_writes_values_paths_and_arithmetic() {
    let item = apply("SET x = :s, y = n, n = n + :n, z = :n - n, a.c[0] = :s, a.d.e = :l").unwrap();
    assert_eq!(get(&item, "x"), &s("he"));
    assert_eq!(get(&item, "y"), &n(5));
    assert_eq!(get(&item, "n"), &n(6));
    assert_eq!(get(&item, "z"), &n(-4));
    let Value::M(a) = get(&item, "a") else {
        panic!("a is a map")
    };
    assert_eq!(a.get("c"), Some(&Value::L(vec![s("he"), s("x"), n(3)])));
    let mut d = BTreeMap::new();
    d.insert("e".to_owned(), Value::L(vec![n(9)]));
    assert_eq!(a.get("d"), Some(&Value::M(d)));
}

#[test]
fn set_reads_the_item_as_it_was_before_the_update() {
    // Swap: both right-hand sides see the old values.
    let item = apply("SET n = s, s = n").unwrap();
    assert_eq!(get(&item, "n"), &s("hello"));
    assert_eq!(get(&item, "s"), &n(5));
    // ADD then SET of another attribute from it reads the old value.
    let item = apply("ADD n :n SET x = n").unwrap();
    assert_eq!(get(&item, "n"), &n(6));
    assert_eq!(get(&item, "x"), &n(5));
}

#[test]
fn set_past_the_end_of_a_list_appends_in_index_order() {
    let item = apply("SET b[9] = :s, b[7] = :n, b[0] = :null").unwrap();
    assert_eq!(
        get(&item, "b"),
        &Value::L(vec![
            Value::Null,
            Value::L(vec![n(1)]),
            Value::Null,
            n(1),
            s("he")
        ])
    );
}

#[test]
fn if_not_exists_and_list_append() {
    let item = apply(
        "SET x = if_not_exists(x, :n), n = if_not_exists(n, :s), \
         b = list_append(b, :l), l2 = list_append(:l, a.c), \
         l3 = list_append(if_not_exists(l3, :l), :l)",
    )
    .unwrap();
    assert_eq!(get(&item, "x"), &n(1));
    assert_eq!(get(&item, "n"), &n(5));
    assert_eq!(
        get(&item, "b"),
        &Value::L(vec![n(0), Value::L(vec![n(1)]), Value::Null, n(9)])
    );
    assert_eq!(get(&item, "l2"), &Value::L(vec![n(9), n(1), s("x"), n(3)]));
    assert_eq!(get(&item, "l3"), &Value::L(vec![n(9), n(9)]));
}

#[test]
fn set_errors_are_typed() {
    assert_eq!(
        apply("SET x = missing").unwrap_err(),
        ExprError::MissingAttribute {
            path: "missing".into()
        }
    );
    assert_eq!(
        apply("SET x = s + :n").unwrap_err(),
        ExprError::OperandType {
            operation: "+",
            expected: "N",
            found: "S"
        }
    );
    assert!(matches!(
        apply("SET x = :n - :l"),
        Err(ExprError::OperandType {
            operation: "-",
            found: "L",
            ..
        })
    ));
    assert!(matches!(
        apply("SET x = list_append(n, :l)"),
        Err(ExprError::OperandType {
            operation: "list_append",
            found: "N",
            ..
        })
    ));
    for (text, reason) in [
        ("SET x.y = :n", "an attribute on the path does not exist"),
        ("SET n.y = :n", "the parent of the last name is not a map"),
        (
            "SET s[0] = :n",
            "the parent of the last index is not a list",
        ),
        (
            "SET a.c[7].x = :n",
            "a list index on the path is past the end",
        ),
        ("SET a.x.y = :n", "a map entry on the path does not exist"),
        (
            "SET b[0].x = :n",
            "the parent of the last name is not a map",
        ),
    ] {
        match apply(text) {
            Err(ExprError::InvalidUpdatePath { reason: got, .. }) => {
                assert_eq!(got, reason, "{text}")
            }
            other => panic!("{text}: expected an invalid path, got {other:?}"),
        }
    }
}

#[test]
fn arithmetic_overflow_is_an_error_not_a_rounding() {
    let big = Value::N(Number::from_parts(false, 99, 124).unwrap());
    let attributes = attributes_of(&[], &[(":big", big)]);
    let item = fuzz_item();
    // Out of range: 1.98E+126.
    assert!(matches!(
        apply_with("SET x = :big + :big", Some(&item), &attributes),
        Err(ExprError::Arithmetic(ModelError::NumberRange { .. }))
    ));
    // Out of precision: 9.9E+125 + 5 needs 126 digits.
    assert!(matches!(
        apply_with("ADD n :big", Some(&item), &attributes),
        Err(ExprError::Arithmetic(ModelError::NumberPrecision { .. }))
    ));
    assert!(apply_with("SET x = :big - :big", Some(&item), &attributes).is_ok());
}

#[test]
fn remove_uses_the_indexes_the_item_had() {
    let item = apply("REMOVE s, b[0], b[2], a.d, missing, b[9], a.c[5]").unwrap();
    assert!(!item.contains_key("s"));
    assert_eq!(get(&item, "b"), &Value::L(vec![Value::L(vec![n(1)])]));
    let Value::M(a) = get(&item, "a") else {
        panic!("a is a map")
    };
    assert!(!a.contains_key("d"));
    assert!(matches!(
        apply("REMOVE x.y"),
        Err(ExprError::InvalidUpdatePath { .. })
    ));
    assert!(matches!(
        apply("REMOVE n[0]"),
        Err(ExprError::InvalidUpdatePath { .. })
    ));
}

#[test]
fn add_adds_numbers_and_unites_sets_creating_them() {
    let item = apply("ADD n :n, x :n, ss :ss, y :ss, ns :ns").unwrap();
    assert_eq!(get(&item, "n"), &n(6));
    assert_eq!(get(&item, "x"), &n(1));
    assert_eq!(get(&item, "ss"), &strings(&["x", "y", "z"]));
    assert_eq!(get(&item, "y"), &strings(&["x", "z"]));
    assert_eq!(
        get(&item, "ns"),
        &Value::Ns(BTreeSet::from([Number::from(1), Number::from(2)]))
    );
    assert!(matches!(
        apply("ADD s :n"),
        Err(ExprError::OperandType {
            operation: "ADD",
            found: "S",
            ..
        })
    ));
    assert!(matches!(
        apply("ADD ss :ns"),
        Err(ExprError::OperandType {
            operation: "ADD",
            found: "SS",
            ..
        })
    ));
    // The constant is checked before the item is looked at.
    assert!(matches!(
        apply("ADD x :s"),
        Err(ExprError::OperandType {
            operation: "ADD",
            found: "S",
            ..
        })
    ));
}

#[test]
fn delete_subtracts_from_sets_and_removes_emptied_ones() {
    let item = apply("DELETE ss :ss, missing :ss").unwrap();
    assert_eq!(get(&item, "ss"), &strings(&["y"]));
    assert!(!item.contains_key("missing"));
    let both = attributes_of(&[], &[(":xy", strings(&["x", "y", "q"]))]);
    let item = apply_with("DELETE ss :xy", Some(&fuzz_item()), &both).unwrap();
    assert!(!item.contains_key("ss"), "an emptied set is removed");
    assert!(matches!(
        apply("DELETE n :ss"),
        Err(ExprError::OperandType {
            operation: "DELETE",
            found: "N",
            ..
        })
    ));
    assert!(matches!(
        apply("DELETE ss :n"),
        Err(ExprError::OperandType {
            operation: "DELETE",
            found: "N",
            ..
        })
    ));
}

#[test]
fn key_attributes_cannot_be_updated() {
    for text in [
        "SET pk = :s",
        "SET #pk = :s",
        "REMOVE sk",
        "ADD #sk :n",
        "SET sk.x = :n",
    ] {
        let error = apply(text).unwrap_err();
        assert!(
            matches!(error, ExprError::KeyAttributeUpdate { .. }),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn overlapping_and_conflicting_paths_are_refused() {
    for (text, relation) in [
        ("SET a = :n, a.c = :n", "overlap"),
        ("SET a = :n REMOVE a", "overlap"),
        ("SET #a = :n REMOVE a", "overlap"),
        ("REMOVE b[1] ADD b[1] :n", "overlap"),
        ("SET a.c[0] = :n, a.c.x = :n", "conflict"),
    ] {
        match apply(text) {
            Err(ExprError::PathsOverlap { relation: got, .. }) => {
                assert_eq!(got, relation, "{text}")
            }
            other => panic!("{text}: expected {relation}, got {other:?}"),
        }
    }
    assert!(apply("SET a.c = :n, a.d = :n, b[0] = :n, b[1] = :n").is_ok());
}

#[test]
fn an_absent_item_starts_as_its_key() {
    let item = apply_with("SET x = :n ADD c :n", None, &attributes()).unwrap();
    let mut expected = Item::new();
    expected.insert("pk".into(), s("p"));
    expected.insert("sk".into(), n(7));
    expected.insert("x".into(), n(1));
    expected.insert("c".into(), n(1));
    assert_eq!(item, expected);
    assert!(matches!(
        apply_with("SET x = y", None, &attributes()),
        Err(ExprError::MissingAttribute { .. })
    ));
}

#[test]
fn the_result_is_validated() {
    let huge = s(&"x".repeat(ITEM_BYTES_MAX));
    let attributes = attributes_of(&[], &[(":huge", huge)]);
    assert!(matches!(
        apply_with("SET x = :huge", Some(&fuzz_item()), &attributes),
        Err(ExprError::InvalidItem(ModelError::ItemTooLarge { .. }))
    ));
}

#[test]
fn check_reports_plan_errors_without_an_item() {
    let update = parse_update("SET a = :n REMOVE a").unwrap();
    assert!(matches!(
        update.check(&fuzz_key_schema(), &attributes()),
        Err(ExprError::PathsOverlap { .. })
    ));
    let update = parse_update("SET x = :undefined").unwrap();
    assert_eq!(
        update
            .apply(
                Some(&fuzz_item()),
                &key(),
                &fuzz_key_schema(),
                &attributes()
            )
            .unwrap_err(),
        ExprError::UndefinedValue {
            name: ":undefined".into()
        }
    );
    assert!(parse_update("SET x = :n")
        .unwrap()
        .check(&fuzz_key_schema(), &attributes())
        .is_ok());
}
