//! Projection expressions: the parts of an item to return.
//!
//! As DynamoDB does, nested paths keep their structure: `a.b` returns `{a: {b: ..}}`, and
//! list elements keep their order but not their positions: `d[1], d[3]` returns
//! `{d: [d1, d3]}`. Paths that match nothing are left out, and so is a map or list from
//! which nothing was selected. Overlapping paths (`a, a.b`) are an error.

use std::collections::BTreeMap;

use crate::expr::ast::Projection;
use crate::expr::attributes::ExpressionAttributes;
use crate::expr::error::ExprError;
use crate::expr::path::{check_disjoint, resolve, Step};
use crate::model::{Item, Value};

/// What to take from a value.
enum Node<'x> {
    /// All of it.
    Whole,
    /// Some entries of a map.
    Map(BTreeMap<&'x str, Node<'x>>),
    /// Some elements of a list.
    List(BTreeMap<usize, Node<'x>>),
}

impl Projection {
    /// The projected item: the attributes and nested parts that the paths select.
    pub fn apply(
        &self,
        item: &Item,
        attributes: &ExpressionAttributes<'_>,
    ) -> Result<Item, ExprError> {
        let mut resolved = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            resolved.push(resolve(path, attributes)?);
        }
        let mut slices: Vec<&[Step<'_>]> = resolved.iter().map(Vec::as_slice).collect();
        check_disjoint(&mut slices)?;
        let mut root: BTreeMap<&str, Node<'_>> = BTreeMap::new();
        for steps in &resolved {
            insert_top(&mut root, steps);
        }
        let mut out = Item::new();
        for (name, node) in &root {
            if let Some(value) = item.get(*name).and_then(|v| project(v, node)) {
                out.insert((*name).to_owned(), value);
            }
        }
        Ok(out)
    }
}

fn insert_top<'x>(root: &mut BTreeMap<&'x str, Node<'x>>, steps: &[Step<'x>]) {
    let Some((Step::Key(name), rest)) = steps.split_first() else {
        return;
    };
    let node = root.entry(name).or_insert_with(|| child_for(rest));
    insert(node, rest);
}

fn child_for(rest: &[Step<'_>]) -> Node<'static> {
    match rest.first() {
        None => Node::Whole,
        Some(Step::Key(_)) => Node::Map(BTreeMap::new()),
        Some(Step::Index(_)) => Node::List(BTreeMap::new()),
    }
}

/// Adds `steps` below `node`. Paths were checked disjoint, so a path never meets a
/// `Whole` node or a node of the other kind; if it did, it would be dropped.
fn insert<'x>(node: &mut Node<'x>, steps: &[Step<'x>]) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    match (node, step) {
        (Node::Map(map), Step::Key(name)) => {
            insert(map.entry(name).or_insert_with(|| child_for(rest)), rest);
        }
        (Node::List(list), Step::Index(index)) => {
            insert(list.entry(*index).or_insert_with(|| child_for(rest)), rest);
        }
        _ => {}
    }
}

fn project(value: &Value, node: &Node<'_>) -> Option<Value> {
    match (node, value) {
        (Node::Whole, value) => Some(value.clone()),
        (Node::Map(children), Value::M(map)) => {
            let out: BTreeMap<String, Value> = children
                .iter()
                .filter_map(|(name, child)| {
                    let value = project(map.get(*name)?, child)?;
                    Some(((*name).to_owned(), value))
                })
                .collect();
            (!out.is_empty()).then_some(Value::M(out))
        }
        (Node::List(children), Value::L(list)) => {
            let out: Vec<Value> = children
                .iter()
                .filter_map(|(index, child)| project(list.get(*index)?, child))
                .collect();
            (!out.is_empty()).then_some(Value::L(out))
        }
        _ => None,
    }
}
