//! Evaluation of conditions (ConditionExpression, FilterExpression) against an item.
//!
//! DynamoDB's semantics:
//! - A missing attribute makes `=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN` and the
//!   functions false, and `<>` true (even when both sides are missing).
//! - Values of different types are unequal, and ordering comparisons between them are
//!   false; ordering is defined on N (numeric), S (UTF-8 bytes) and B (unsigned bytes).
//! - A *constant* (`:v`) of a type an operator cannot take is a validation error, not a
//!   false condition: `a < :list`, `begins_with(a, :n)`, `attribute_type(a, :bad)`.
//! - `BETWEEN :low AND :high` with constant bounds, `:low > :high`, is an error.
//! - `size(path)`: bytes of an S or B, elements of a set, list or map; for N, BOOL and
//!   NULL there is no size and comparisons with it are false.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::expr::ast::{Comparator, Condition, Operand};
use crate::expr::attributes::ExpressionAttributes;
use crate::expr::error::ExprError;
use crate::expr::path::{get, resolve};
use crate::model::{Item, Number, Value};

/// An operand's value: from the item, from the request, or computed.
#[derive(Debug)]
enum Resolved<'v> {
    /// Absent from the item (or no item).
    Missing,
    /// A value of the item.
    Attribute(&'v Value),
    /// A constant of the request (`:v`).
    Constant(&'v Value),
    /// A computed value (`size`).
    Computed(Cow<'v, Value>),
}

impl<'v> Resolved<'v> {
    fn value(&self) -> Option<&Value> {
        match self {
            Resolved::Missing => None,
            Resolved::Attribute(v) | Resolved::Constant(v) => Some(v),
            Resolved::Computed(v) => Some(v),
        }
    }

    /// Errors if this is a constant whose type `accepts` refuses.
    fn check_constant(
        &self,
        operation: &'static str,
        expected: &'static str,
        accepts: fn(&Value) -> bool,
    ) -> Result<(), ExprError> {
        match self {
            Resolved::Constant(v) if !accepts(v) => Err(ExprError::OperandType {
                operation,
                expected,
                found: v.type_name(),
            }),
            _ => Ok(()),
        }
    }
}

fn is_ordered_type(value: &Value) -> bool {
    matches!(value, Value::N(_) | Value::S(_) | Value::B(_))
}

/// DynamoDB's order between two values of one ordered type; `None` across types.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::N(x), Value::N(y)) => Some(x.cmp(y)),
        (Value::S(x), Value::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::B(x), Value::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The `size` of a value, if it has one.
fn size(value: &Value) -> Option<usize> {
    match value {
        Value::S(s) => Some(s.len()),
        Value::B(b) => Some(b.len()),
        Value::Ss(s) => Some(s.len()),
        Value::Ns(s) => Some(s.len()),
        Value::Bs(s) => Some(s.len()),
        Value::L(l) => Some(l.len()),
        Value::M(m) => Some(m.len()),
        Value::N(_) | Value::Bool(_) | Value::Null => None,
    }
}

/// DynamoDB's type names, as `attribute_type` takes them.
const TYPE_NAMES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

fn operand<'v>(
    operand: &'v Operand,
    item: Option<&'v Item>,
    attributes: &ExpressionAttributes<'v>,
) -> Result<Resolved<'v>, ExprError> {
    Ok(match operand {
        Operand::Value(name) => Resolved::Constant(attributes.value(name)?),
        Operand::Path(path) => {
            let steps = resolve(path, attributes)?;
            match item.and_then(|item| get(item, &steps)) {
                Some(value) => Resolved::Attribute(value),
                None => Resolved::Missing,
            }
        }
        Operand::Size(path) => {
            let steps = resolve(path, attributes)?;
            match item.and_then(|item| get(item, &steps)).and_then(size) {
                // A size is below 400 KiB, far inside a u64 and a Number.
                Some(n) => Resolved::Computed(Cow::Owned(Value::N(Number::from(n as u64)))),
                None => Resolved::Missing,
            }
        }
    })
}

impl Condition {
    /// Evaluates the condition against `item` (`None`: there is no item).
    pub fn evaluate(
        &self,
        item: Option<&Item>,
        attributes: &ExpressionAttributes<'_>,
    ) -> Result<bool, ExprError> {
        evaluate(self, item, attributes)
    }
}

fn evaluate<'v>(
    condition: &'v Condition,
    item: Option<&'v Item>,
    attributes: &ExpressionAttributes<'v>,
) -> Result<bool, ExprError> {
    let path_value = |path| -> Result<Option<&'v Value>, ExprError> {
        let steps = resolve(path, attributes)?;
        Ok(item.and_then(|item| get(item, &steps)))
    };
    match condition {
        Condition::Compare(a, comparator, b) => {
            let a = operand(a, item, attributes)?;
            let b = operand(b, item, attributes)?;
            compare(&a, *comparator, &b)
        }
        Condition::Between(a, low, high) => {
            let a = operand(a, item, attributes)?;
            let low = operand(low, item, attributes)?;
            let high = operand(high, item, attributes)?;
            for side in [&a, &low, &high] {
                side.check_constant("BETWEEN", "N, S or B", is_ordered_type)?;
            }
            if let (Resolved::Constant(l), Resolved::Constant(h)) = (&low, &high) {
                if order(l, h) == Some(Ordering::Greater) {
                    return Err(ExprError::BetweenBounds);
                }
            }
            let (Some(a), Some(low), Some(high)) = (a.value(), low.value(), high.value()) else {
                return Ok(false);
            };
            Ok(order(a, low).is_some_and(Ordering::is_ge)
                && order(a, high).is_some_and(Ordering::is_le))
        }
        Condition::In(a, list) => {
            let a = operand(a, item, attributes)?;
            let mut found = false;
            for candidate in list {
                // Every operand is resolved, so an undefined placeholder is an error even
                // after a match.
                let candidate = operand(candidate, item, attributes)?;
                if let (Some(x), Some(y)) = (a.value(), candidate.value()) {
                    found |= x == y;
                }
            }
            Ok(found)
        }
        Condition::AttributeExists(path) => Ok(path_value(path)?.is_some()),
        Condition::AttributeNotExists(path) => Ok(path_value(path)?.is_none()),
        Condition::AttributeType(path, type_operand) => {
            let value = path_value(path)?;
            let type_name = operand(type_operand, item, attributes)?;
            let name = match (&type_name, type_name.value()) {
                (Resolved::Constant(_), Some(Value::S(s))) if TYPE_NAMES.contains(&s.as_str()) => {
                    s.as_str()
                }
                (Resolved::Constant(_), Some(other)) => {
                    return Err(ExprError::UnknownTypeName {
                        found: match other {
                            Value::S(s) => s.chars().take(64).collect(),
                            other => other.type_name().to_owned(),
                        },
                    })
                }
                (_, Some(Value::S(s))) => s.as_str(),
                _ => return Ok(false),
            };
            Ok(value.is_some_and(|v| v.type_name() == name))
        }
        Condition::BeginsWith(path, prefix) => {
            let value = path_value(path)?;
            let prefix = operand(prefix, item, attributes)?;
            prefix.check_constant("begins_with", "S or B", |v| {
                matches!(v, Value::S(_) | Value::B(_))
            })?;
            Ok(match (value, prefix.value()) {
                (Some(Value::S(s)), Some(Value::S(p))) => s.starts_with(p.as_str()),
                (Some(Value::B(b)), Some(Value::B(p))) => b.starts_with(p),
                _ => false,
            })
        }
        Condition::Contains(path, needle) => {
            let value = path_value(path)?;
            let needle = operand(needle, item, attributes)?;
            Ok(match (value, needle.value()) {
                (Some(Value::S(s)), Some(Value::S(n))) => s.contains(n.as_str()),
                (Some(Value::B(b)), Some(Value::B(n))) => {
                    n.is_empty() || b.windows(n.len()).any(|w| w == n.as_slice())
                }
                (Some(Value::Ss(set)), Some(Value::S(n))) => set.contains(n),
                (Some(Value::Ns(set)), Some(Value::N(n))) => set.contains(n),
                (Some(Value::Bs(set)), Some(Value::B(n))) => set.contains(n),
                (Some(Value::L(list)), Some(n)) => list.contains(n),
                _ => false,
            })
        }
        Condition::Not(inner) => Ok(!evaluate(inner, item, attributes)?),
        // Both sides are evaluated (no short circuit) so that a validation error on the
        // right is reported whatever the item holds, as DynamoDB does.
        Condition::And(a, b) => {
            let a = evaluate(a, item, attributes)?;
            Ok(evaluate(b, item, attributes)? && a)
        }
        Condition::Or(a, b) => {
            let a = evaluate(a, item, attributes)?;
            Ok(evaluate(b, item, attributes)? || a)
        }
    }
}

fn compare(a: &Resolved<'_>, comparator: Comparator, b: &Resolved<'_>) -> Result<bool, ExprError> {
    if comparator != Comparator::Eq && comparator != Comparator::Ne {
        for side in [a, b] {
            side.check_constant(comparator.symbol(), "N, S or B", is_ordered_type)?;
        }
    }
    let (Some(x), Some(y)) = (a.value(), b.value()) else {
        return Ok(comparator == Comparator::Ne);
    };
    Ok(match comparator {
        Comparator::Eq => x == y,
        Comparator::Ne => x != y,
        Comparator::Lt => order(x, y) == Some(Ordering::Less),
        Comparator::Le => order(x, y).is_some_and(Ordering::is_le),
        Comparator::Gt => order(x, y) == Some(Ordering::Greater),
        Comparator::Ge => order(x, y).is_some_and(Ordering::is_ge),
    })
}
