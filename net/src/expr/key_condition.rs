//! Key condition expressions (Query): `pk = :v`, optionally `AND` one condition on the
//! sort key: `=`, `<`, `<=`, `>`, `>=`, `BETWEEN :a AND :b` or `begins_with(sk, :p)`.
//!
//! The syntax is the condition grammar's; this module checks the shape against the
//! table's [`KeySchema`]: names must be key attributes (top-level, no nesting), operands
//! must be constants of the key's type, non-empty and within the key length limits.

use crate::expr::ast::{Comparator, Condition, Operand, Path};
use crate::expr::attributes::ExpressionAttributes;
use crate::expr::error::ExprError;
use crate::model::{
    KeyAttribute, KeySchema, KeyType, KeyValue, SortCondition, Value, PARTITION_KEY_BYTES_MAX,
    SORT_KEY_BYTES_MAX,
};

fn refuse<T>(reason: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError::KeyCondition {
        reason: reason.into(),
    })
}

/// One part of a key condition: the key attribute it names and what it says of it.
enum Part<'x> {
    Partition(KeyValue),
    Sort(&'x str, SortCondition),
}

/// Turns a parsed key condition into the partition key value and the sort condition
/// (`SortCondition::Any` when there is none).
pub fn key_condition(
    condition: &Condition,
    schema: &KeySchema,
    attributes: &ExpressionAttributes<'_>,
) -> Result<(KeyValue, SortCondition), ExprError> {
    let parts: Vec<&Condition> = match condition {
        Condition::And(a, b) => vec![a, b],
        other => vec![other],
    };
    let mut partition = None;
    let mut sort = None;
    for part in parts {
        match key_part(part, schema, attributes)? {
            Part::Partition(value) => {
                if partition.replace(value).is_some() {
                    return refuse("the partition key has two conditions");
                }
            }
            Part::Sort(name, condition) => {
                if sort.replace(condition).is_some() {
                    return refuse(format!("the sort key {name:?} has two conditions"));
                }
            }
        }
    }
    let Some(partition) = partition else {
        return refuse(format!(
            "an equality condition on the partition key {:?} is required",
            schema.partition_key.name
        ));
    };
    Ok((partition, sort.unwrap_or(SortCondition::Any)))
}

fn key_part<'x>(
    condition: &'x Condition,
    schema: &'x KeySchema,
    attributes: &ExpressionAttributes<'x>,
) -> Result<Part<'x>, ExprError> {
    let (path, comparator, values) = match condition {
        Condition::Compare(Operand::Path(path), comparator, value) => {
            (path, Some(*comparator), vec![value])
        }
        Condition::Between(Operand::Path(path), low, high) => (path, None, vec![low, high]),
        Condition::BeginsWith(path, prefix) => (path, None, vec![prefix]),
        Condition::And(..) => return refuse("at most two conditions, joined by one AND"),
        Condition::Or(..) | Condition::Not(_) => {
            return refuse("OR and NOT are not allowed in a key condition")
        }
        Condition::In(..) => return refuse("IN is not allowed in a key condition"),
        _ => {
            return refuse(
                "each condition must be `key op :value`, `key BETWEEN :a AND :b` or \
                 begins_with(key, :prefix)",
            )
        }
    };
    let name = key_name(path, attributes)?;
    let is_partition = name == schema.partition_key.name;
    let (attribute, max_bytes) = if is_partition {
        (&schema.partition_key, PARTITION_KEY_BYTES_MAX)
    } else {
        match &schema.sort_key {
            Some(sort_key) if sort_key.name == name => (sort_key, SORT_KEY_BYTES_MAX),
            _ => return refuse(format!("{name:?} is not a key attribute of the table")),
        }
    };
    let mut keys = Vec::with_capacity(values.len());
    for value in values {
        let Operand::Value(placeholder) = value else {
            return refuse(format!(
                "the condition on {name:?} must compare with a value (:value)"
            ));
        };
        keys.push(key_value(
            attribute,
            attributes.value(placeholder)?,
            max_bytes,
        )?);
    }
    let mut keys = keys.into_iter();
    let (Some(first), second) = (keys.next(), keys.next()) else {
        return refuse("a condition without a value");
    };
    if is_partition {
        return match (condition, comparator) {
            (Condition::Compare(..), Some(Comparator::Eq)) => Ok(Part::Partition(first)),
            _ => refuse(format!(
                "the partition key {name:?} takes only an equality condition"
            )),
        };
    }
    let sort = match (condition, comparator, second) {
        (Condition::Compare(..), Some(Comparator::Eq), _) => SortCondition::Eq(first),
        (Condition::Compare(..), Some(Comparator::Lt), _) => SortCondition::Lt(first),
        (Condition::Compare(..), Some(Comparator::Le), _) => SortCondition::Le(first),
        (Condition::Compare(..), Some(Comparator::Gt), _) => SortCondition::Gt(first),
        (Condition::Compare(..), Some(Comparator::Ge), _) => SortCondition::Ge(first),
        (Condition::Compare(..), _, _) => {
            return refuse("<> is not allowed in a key condition");
        }
        (Condition::Between(..), _, Some(high)) => {
            if first > high {
                return Err(ExprError::BetweenBounds);
            }
            SortCondition::Between(first, high)
        }
        (Condition::BeginsWith(..), _, _) => {
            if attribute.key_type == KeyType::N {
                return refuse(format!(
                    "begins_with is not allowed on the number sort key {name:?}"
                ));
            }
            SortCondition::BeginsWith(first)
        }
        _ => return refuse("unsupported sort key condition"),
    };
    Ok(Part::Sort(&attribute.name, sort))
}

/// The key attribute a path names: a single top-level name.
fn key_name<'x>(
    path: &'x Path,
    attributes: &ExpressionAttributes<'x>,
) -> Result<&'x str, ExprError> {
    let name = attributes.name(&path.attribute)?;
    if !path.elements.is_empty() {
        return refuse(format!(
            "a key condition names top-level key attributes, not the nested path {path}"
        ));
    }
    Ok(name)
}

fn key_value(
    attribute: &KeyAttribute,
    value: &Value,
    max_bytes: usize,
) -> Result<KeyValue, ExprError> {
    let (key, len_bytes) = match (attribute.key_type, value) {
        (KeyType::S, Value::S(s)) => (KeyValue::S(s.clone()), s.len()),
        (KeyType::N, Value::N(n)) => return Ok(KeyValue::N(*n)),
        (KeyType::B, Value::B(b)) => (KeyValue::B(b.clone()), b.len()),
        (expected, other) => {
            return refuse(format!(
                "key attribute {:?} has type {expected:?}, the value has type {}",
                attribute.name,
                other.type_name()
            ))
        }
    };
    if len_bytes == 0 {
        return refuse(format!(
            "the value for key attribute {:?} is empty",
            attribute.name
        ));
    }
    if len_bytes > max_bytes {
        return refuse(format!(
            "the value for key attribute {:?} is {len_bytes} bytes, more than {max_bytes}",
            attribute.name
        ));
    }
    Ok(key)
}
