//! Application of update expressions (UpdateItem).
//!
//! DynamoDB's semantics, in the order applied here:
//! 1. Every path is resolved; no two may overlap or conflict, and none may touch a key
//!    attribute. Constants of ADD must be N or a set, of DELETE a set.
//! 2. Every SET value is computed from the item *as it was before the update*.
//!    A path operand that is absent is an error; `+`/`-` take numbers; `list_append`
//!    takes lists; `if_not_exists(p, v)` is `p`'s value, else `v`.
//! 3. SET writes, in path order (so `a[7] = :x, a[8] = :y` appends x then y): a map entry
//!    is inserted or replaced; a list index past the end appends. The parent must exist
//!    and be a map (for `.name`) or a list (for `[i]`).
//! 4. ADD: a number is added to (absent: 0 + n); a set is united with (absent: created);
//!    other types are errors. DELETE: set difference, an empty result removes the
//!    attribute, absent does nothing.
//! 5. REMOVE, last and by descending path, so `REMOVE a[1], a[3]` removes the two
//!    elements the item had at 1 and 3. An absent attribute or an index past the end is
//!    no change; a missing or wrong-kind parent is an error.
//! 6. The result is checked with [`validate_item`] (400 KiB, nesting, empty sets).

use std::borrow::Cow;

use crate::expr::ast::{SetValue, Update, UpdateClause, UpdateOperand};
use crate::expr::attributes::ExpressionAttributes;
use crate::expr::error::ExprError;
use crate::expr::path::{check_disjoint, display, get, resolve, Step};
use crate::model::{validate_item, Item, KeySchema, PrimaryKey, Value};

/// An update with its paths resolved and its constants type-checked.
struct Plan<'x> {
    sets: Vec<(Vec<Step<'x>>, &'x SetValue)>,
    removes: Vec<Vec<Step<'x>>>,
    adds: Vec<(Vec<Step<'x>>, &'x Value)>,
    deletes: Vec<(Vec<Step<'x>>, &'x Value)>,
}

fn is_set(value: &Value) -> bool {
    matches!(value, Value::Ss(_) | Value::Ns(_) | Value::Bs(_))
}

impl Update {
    /// Checks what can be checked without the item: placeholders, overlapping paths, key
    /// attributes and the types of ADD and DELETE constants. [`Update::apply`] checks it
    /// too; call this first to report these errors ahead of a failed condition.
    pub fn check(
        &self,
        schema: &KeySchema,
        attributes: &ExpressionAttributes<'_>,
    ) -> Result<(), ExprError> {
        plan(self, schema, attributes).map(|_| ())
    }

    /// Applies the update to `item` (`None`: no item yet, so it starts as the key
    /// attributes of `key`) and returns the new item, valid by [`validate_item`].
    pub fn apply(
        &self,
        item: Option<&Item>,
        key: &PrimaryKey,
        schema: &KeySchema,
        attributes: &ExpressionAttributes<'_>,
    ) -> Result<Item, ExprError> {
        let plan = plan(self, schema, attributes)?;
        let original = match item {
            Some(item) => item.clone(),
            None => schema.key_item(key),
        };
        let key_before = key_values(&original, schema).map(|v| v.cloned());
        let mut writes = Vec::with_capacity(plan.sets.len());
        for (steps, value) in &plan.sets {
            writes.push((steps, set_value(value, &original, attributes)?.into_owned()));
        }
        let mut updated = original;
        writes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (steps, value) in writes {
            write(&mut updated, steps, value)?;
        }
        for (steps, value) in &plan.adds {
            let sum = add(get(&updated, steps), value)?;
            write(&mut updated, steps, sum)?;
        }
        for (steps, value) in &plan.deletes {
            match delete(get(&updated, steps), value)? {
                Deleted::Unchanged => {}
                Deleted::Empty => remove(&mut updated, steps)?,
                Deleted::Rest(rest) => write(&mut updated, steps, rest)?,
            }
        }
        let mut removes: Vec<&Vec<Step<'_>>> = plan.removes.iter().collect();
        removes.sort_unstable_by(|a, b| b.cmp(a));
        for steps in removes {
            remove(&mut updated, steps)?;
        }
        assert_eq!(
            key_values(&updated, schema).map(|v| v.cloned()),
            key_before,
            "an update never changes key attributes"
        );
        validate_item(&updated).map_err(ExprError::InvalidItem)?;
        Ok(updated)
    }
}

fn key_values<'i>(item: &'i Item, schema: &KeySchema) -> [Option<&'i Value>; 2] {
    [
        item.get(&schema.partition_key.name),
        schema.sort_key.as_ref().and_then(|k| item.get(&k.name)),
    ]
}

fn plan<'x>(
    update: &'x Update,
    schema: &KeySchema,
    attributes: &ExpressionAttributes<'x>,
) -> Result<Plan<'x>, ExprError> {
    let mut plan = Plan {
        sets: Vec::new(),
        removes: Vec::new(),
        adds: Vec::new(),
        deletes: Vec::new(),
    };
    for clause in &update.clauses {
        match clause {
            UpdateClause::Set(actions) => {
                for action in actions {
                    plan.sets
                        .push((resolve(&action.path, attributes)?, &action.value));
                }
            }
            UpdateClause::Remove(paths) => {
                for path in paths {
                    plan.removes.push(resolve(path, attributes)?);
                }
            }
            UpdateClause::Add(actions) => {
                for (path, value) in actions {
                    let value = attributes.value(value)?;
                    if !matches!(value, Value::N(_)) && !is_set(value) {
                        return Err(ExprError::OperandType {
                            operation: "ADD",
                            expected: "N or a set (SS, NS, BS)",
                            found: value.type_name(),
                        });
                    }
                    plan.adds.push((resolve(path, attributes)?, value));
                }
            }
            UpdateClause::Delete(actions) => {
                for (path, value) in actions {
                    let value = attributes.value(value)?;
                    if !is_set(value) {
                        return Err(ExprError::OperandType {
                            operation: "DELETE",
                            expected: "a set (SS, NS, BS)",
                            found: value.type_name(),
                        });
                    }
                    plan.deletes.push((resolve(path, attributes)?, value));
                }
            }
        }
    }
    let mut paths: Vec<&[Step<'_>]> = plan
        .sets
        .iter()
        .map(|(p, _)| p.as_slice())
        .chain(plan.removes.iter().map(Vec::as_slice))
        .chain(plan.adds.iter().map(|(p, _)| p.as_slice()))
        .chain(plan.deletes.iter().map(|(p, _)| p.as_slice()))
        .collect();
    for steps in &paths {
        if let Some(Step::Key(name)) = steps.first() {
            let is_key = *name == schema.partition_key.name
                || schema.sort_key.as_ref().is_some_and(|k| k.name == *name);
            if is_key {
                return Err(ExprError::KeyAttributeUpdate {
                    attribute: (*name).to_owned(),
                });
            }
        }
    }
    check_disjoint(&mut paths)?;
    Ok(plan)
}

fn update_operand<'v>(
    operand: &'v UpdateOperand,
    item: &'v Item,
    attributes: &ExpressionAttributes<'v>,
) -> Result<Cow<'v, Value>, ExprError> {
    match operand {
        UpdateOperand::Value(name) => Ok(Cow::Borrowed(attributes.value(name)?)),
        UpdateOperand::Path(path) => {
            let steps = resolve(path, attributes)?;
            get(item, &steps)
                .map(Cow::Borrowed)
                .ok_or_else(|| ExprError::MissingAttribute {
                    path: display(&steps),
                })
        }
        UpdateOperand::IfNotExists(path, fallback) => {
            let steps = resolve(path, attributes)?;
            match get(item, &steps) {
                Some(value) => Ok(Cow::Borrowed(value)),
                None => update_operand(fallback, item, attributes),
            }
        }
        UpdateOperand::ListAppend(a, b) => {
            let a = update_operand(a, item, attributes)?;
            let b = update_operand(b, item, attributes)?;
            let list_of = |v: &Value| match v {
                Value::L(_) => Ok(()),
                other => Err(ExprError::OperandType {
                    operation: "list_append",
                    expected: "L",
                    found: other.type_name(),
                }),
            };
            list_of(&a)?;
            list_of(&b)?;
            let mut joined = match a.into_owned() {
                Value::L(list) => list,
                _ => Vec::new(),
            };
            if let Value::L(tail) = b.as_ref() {
                joined.extend(tail.iter().cloned());
            }
            Ok(Cow::Owned(Value::L(joined)))
        }
    }
}

fn set_value<'v>(
    value: &'v SetValue,
    item: &'v Item,
    attributes: &ExpressionAttributes<'v>,
) -> Result<Cow<'v, Value>, ExprError> {
    let (a, b, minus) = match value {
        SetValue::Operand(a) => return update_operand(a, item, attributes),
        SetValue::Plus(a, b) => (a, b, false),
        SetValue::Minus(a, b) => (a, b, true),
    };
    let a = update_operand(a, item, attributes)?;
    let b = update_operand(b, item, attributes)?;
    let operation = if minus { "-" } else { "+" };
    match (a.as_ref(), b.as_ref()) {
        (Value::N(x), Value::N(y)) => {
            let result = if minus {
                x.checked_sub(y)
            } else {
                x.checked_add(y)
            };
            Ok(Cow::Owned(Value::N(result.map_err(ExprError::Arithmetic)?)))
        }
        (Value::N(_), other) | (other, _) => Err(ExprError::OperandType {
            operation,
            expected: "N",
            found: other.type_name(),
        }),
    }
}

fn add(current: Option<&Value>, operand: &Value) -> Result<Value, ExprError> {
    let mismatch = |found: &Value| ExprError::OperandType {
        operation: "ADD",
        expected: "an attribute of the operand's type (N, or a set of the same kind)",
        found: found.type_name(),
    };
    Ok(match (current, operand) {
        (None, value) => value.clone(),
        (Some(Value::N(x)), Value::N(y)) => {
            Value::N(x.checked_add(y).map_err(ExprError::Arithmetic)?)
        }
        (Some(Value::Ss(x)), Value::Ss(y)) => Value::Ss(x.union(y).cloned().collect()),
        (Some(Value::Ns(x)), Value::Ns(y)) => Value::Ns(x.union(y).copied().collect()),
        (Some(Value::Bs(x)), Value::Bs(y)) => Value::Bs(x.union(y).cloned().collect()),
        (Some(other), _) => return Err(mismatch(other)),
    })
}

enum Deleted {
    Unchanged,
    Empty,
    Rest(Value),
}

fn delete(current: Option<&Value>, operand: &Value) -> Result<Deleted, ExprError> {
    let rest = match (current, operand) {
        (None, _) => return Ok(Deleted::Unchanged),
        (Some(Value::Ss(x)), Value::Ss(y)) => Value::Ss(x.difference(y).cloned().collect()),
        (Some(Value::Ns(x)), Value::Ns(y)) => Value::Ns(x.difference(y).copied().collect()),
        (Some(Value::Bs(x)), Value::Bs(y)) => Value::Bs(x.difference(y).cloned().collect()),
        (Some(other), _) => {
            return Err(ExprError::OperandType {
                operation: "DELETE",
                expected: "a set of the operand's kind",
                found: other.type_name(),
            })
        }
    };
    let empty = match &rest {
        Value::Ss(s) => s.is_empty(),
        Value::Ns(s) => s.is_empty(),
        Value::Bs(s) => s.is_empty(),
        _ => false,
    };
    Ok(if empty {
        Deleted::Empty
    } else {
        Deleted::Rest(rest)
    })
}

/// The container of the last step: a map (the item itself at the top) or a list.
enum Parent<'i> {
    Map(&'i mut std::collections::BTreeMap<String, Value>),
    List(&'i mut Vec<Value>),
}

/// Walks to the container of `steps`' last step; it must exist and be of the right kind.
fn parent<'i>(item: &'i mut Item, steps: &[Step<'_>]) -> Result<Parent<'i>, ExprError> {
    let invalid = |reason| ExprError::InvalidUpdatePath {
        path: display(steps),
        reason,
    };
    let Some((last, inner)) = steps.split_last() else {
        return Err(invalid("the path is empty"));
    };
    let Some((first, middle)) = inner.split_first() else {
        return Ok(Parent::Map(item));
    };
    let Step::Key(name) = first else {
        return Err(invalid("a path starts with an attribute name"));
    };
    let mut value = item
        .get_mut(*name)
        .ok_or_else(|| invalid("an attribute on the path does not exist"))?;
    for step in middle {
        value = match (step, value) {
            (Step::Key(name), Value::M(map)) => map
                .get_mut(*name)
                .ok_or_else(|| invalid("a map entry on the path does not exist"))?,
            (Step::Index(index), Value::L(list)) => list
                .get_mut(*index)
                .ok_or_else(|| invalid("a list index on the path is past the end"))?,
            (Step::Key(_), _) => return Err(invalid("a value on the path is not a map")),
            (Step::Index(_), _) => return Err(invalid("a value on the path is not a list")),
        };
    }
    match (last, value) {
        (Step::Key(_), Value::M(map)) => Ok(Parent::Map(map)),
        (Step::Index(_), Value::L(list)) => Ok(Parent::List(list)),
        (Step::Key(_), _) => Err(invalid("the parent of the last name is not a map")),
        (Step::Index(_), _) => Err(invalid("the parent of the last index is not a list")),
    }
}

fn write(item: &mut Item, steps: &[Step<'_>], value: Value) -> Result<(), ExprError> {
    let last = steps.last().copied();
    match (parent(item, steps)?, last) {
        (Parent::Map(map), Some(Step::Key(name))) => {
            map.insert(name.to_owned(), value);
        }
        (Parent::List(list), Some(Step::Index(index))) => match list.get_mut(index) {
            Some(slot) => *slot = value,
            None => list.push(value),
        },
        // `parent` matched the container to the last step.
        _ => unreachable!("parent() returns a map for a name and a list for an index"),
    }
    Ok(())
}

fn remove(item: &mut Item, steps: &[Step<'_>]) -> Result<(), ExprError> {
    let last = steps.last().copied();
    match (parent(item, steps)?, last) {
        (Parent::Map(map), Some(Step::Key(name))) => {
            map.remove(name);
        }
        (Parent::List(list), Some(Step::Index(index))) => {
            if index < list.len() {
                list.remove(index);
            }
        }
        _ => unreachable!("parent() returns a map for a name and a list for an index"),
    }
    Ok(())
}
