//! Key conditions: the shapes DynamoDB accepts, checked against the key schema.

use super::{attributes_of, n, s};
use crate::expr::fuzz::fuzz_key_schema;
use crate::expr::{key_condition, parse_condition, ExprError, ExpressionAttributes};
use crate::model::{KeyAttribute, KeySchema, KeyType, KeyValue, Number, SortCondition, Value};

fn values() -> ExpressionAttributes<'static> {
    attributes_of(
        &[("#p", "pk"), ("#s", "sk")],
        &[
            (":p", s("user")),
            (":one", n(1)),
            (":two", n(2)),
            (":empty", s("")),
            (":prefix", s("ab")),
            (":bin", Value::B(vec![1])),
        ],
    )
}

fn key(text: &str, schema: &KeySchema) -> Result<(KeyValue, SortCondition), ExprError> {
    key_condition(&parse_condition(text)?, schema, &values())
}

fn one() -> KeyValue {
    KeyValue::N(Number::from(1))
}

#[test]
fn accepted_shapes() {
    let schema = fuzz_key_schema();
    let user = KeyValue::S("user".into());
    let cases = [
        ("pk = :p", SortCondition::Any),
        ("#p = :p AND #s = :one", SortCondition::Eq(one())),
        ("pk = :p AND sk < :one", SortCondition::Lt(one())),
        ("pk = :p AND sk <= :one", SortCondition::Le(one())),
        ("sk > :one AND pk = :p", SortCondition::Gt(one())),
        ("(pk = :p) AND (sk >= :one)", SortCondition::Ge(one())),
        (
            "pk = :p AND sk BETWEEN :one AND :two",
            SortCondition::Between(one(), KeyValue::N(Number::from(2))),
        ),
        (
            "sk BETWEEN :one AND :one AND pk = :p",
            SortCondition::Between(one(), one()),
        ),
    ];
    for (text, sort) in cases {
        assert_eq!(key(text, &schema), Ok((user.clone(), sort)), "{text}");
    }
    let string_sort = KeySchema::with_sort_key(
        KeyAttribute::new("pk", KeyType::S),
        KeyAttribute::new("sk", KeyType::S),
    );
    assert_eq!(
        key("pk = :p AND begins_with(sk, :prefix)", &string_sort),
        Ok((user, SortCondition::BeginsWith(KeyValue::S("ab".into()))))
    );
}

#[test]
fn refused_shapes() {
    let schema = fuzz_key_schema();
    let partition_only = KeySchema::partition_only(KeyAttribute::new("pk", KeyType::S));
    for (text, schema) in [
        ("sk = :one", &schema),
        ("pk < :p", &schema),
        ("pk BETWEEN :p AND :p", &schema),
        ("pk <> :p", &schema),
        ("pk = :p AND sk <> :one", &schema),
        ("pk = :one", &schema),
        ("pk = :empty", &schema),
        ("pk = :p AND sk = :prefix", &schema),
        ("pk = :p AND begins_with(sk, :one)", &schema),
        ("pk = :p AND sk = :one AND sk = :two", &schema),
        ("pk = :p AND pk = :p", &schema),
        ("pk = :p OR sk = :one", &schema),
        ("NOT pk = :p", &schema),
        ("pk IN (:p)", &schema),
        ("pk = :p AND other = :one", &schema),
        ("pk = :p AND sk = :one", &partition_only),
        ("pk.x = :p", &schema),
        ("pk = sk", &schema),
        (":p = pk", &schema),
        ("attribute_exists(pk)", &schema),
        ("pk = :p AND size(sk) = :one", &schema),
    ] {
        let result = key(text, schema);
        assert!(
            matches!(result, Err(ExprError::KeyCondition { .. })),
            "{text}: {result:?}"
        );
    }
    assert_eq!(
        key("pk = :p AND sk BETWEEN :two AND :one", &schema),
        Err(ExprError::BetweenBounds)
    );
    assert_eq!(
        key("pk = :nope", &schema),
        Err(ExprError::UndefinedValue {
            name: ":nope".into()
        })
    );
}
