//! Resolved document paths: placeholders replaced by attribute names, looked up in items,
//! and checked pairwise for overlap.

use std::fmt::Write as _;

use crate::expr::ast::{Path, PathElement};
use crate::expr::attributes::ExpressionAttributes;
use crate::expr::error::ExprError;
use crate::model::{Item, Value};

/// One step of a resolved path. `Key < Index` in the derived order, which
/// [`check_disjoint`] relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step<'x> {
    /// A top-level attribute or a map entry.
    Key(&'x str),
    /// A list element.
    Index(usize),
}

/// The path with its placeholders resolved; the first step is always a `Key`.
pub(crate) fn resolve<'x>(
    path: &'x Path,
    attributes: &ExpressionAttributes<'x>,
) -> Result<Vec<Step<'x>>, ExprError> {
    let mut steps = Vec::with_capacity(1 + path.elements.len());
    steps.push(Step::Key(attributes.name(&path.attribute)?));
    for element in &path.elements {
        steps.push(match element {
            PathElement::Name(name) => Step::Key(attributes.name(name)?),
            PathElement::Index(index) => Step::Index(*index),
        });
    }
    Ok(steps)
}

/// The value at `steps` in `item`, if there is one.
pub(crate) fn get<'i>(item: &'i Item, steps: &[Step<'_>]) -> Option<&'i Value> {
    let (first, rest) = steps.split_first()?;
    let Step::Key(name) = first else { return None };
    let mut value = item.get(*name)?;
    for step in rest {
        value = match (step, value) {
            (Step::Key(name), Value::M(map)) => map.get(*name)?,
            (Step::Index(index), Value::L(list)) => list.get(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The path for messages, names resolved: `a.b[2]`.
pub(crate) fn display(steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    for (i, step) in steps.iter().enumerate() {
        // Writing to a String cannot fail.
        let _ = match step {
            Step::Key(name) if i == 0 => write!(out, "{name}"),
            Step::Key(name) => write!(out, ".{name}"),
            Step::Index(index) => write!(out, "[{index}]"),
        };
    }
    out
}

/// How two paths relate, if they may not appear in one update or projection: one is a
/// prefix of the other ("overlap"), or after a common prefix one takes a map entry where
/// the other takes a list element ("conflict").
fn relation(a: &[Step<'_>], b: &[Step<'_>]) -> Option<&'static str> {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Step::Key(p), Step::Key(q)) if p == q => {}
            (Step::Index(p), Step::Index(q)) if p == q => {}
            (Step::Key(_), Step::Key(_)) | (Step::Index(_), Step::Index(_)) => return None,
            _ => return Some("conflict"),
        }
    }
    Some("overlap")
}

/// Checks that no two paths overlap or conflict. Sorted, a path's extensions and a
/// prefix's map- and list-continuations sit next to each other, so comparing neighbours
/// suffices: O(n log n) rather than all pairs.
pub(crate) fn check_disjoint(paths: &mut [&[Step<'_>]]) -> Result<(), ExprError> {
    paths.sort_unstable();
    for pair in paths.windows(2) {
        if let [a, b] = pair {
            if let Some(relation) = relation(a, b) {
                return Err(ExprError::PathsOverlap {
                    relation,
                    first: display(a),
                    second: display(b),
                });
            }
        }
    }
    Ok(())
}
