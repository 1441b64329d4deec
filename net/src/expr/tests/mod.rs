//! Tests of the expression module: unit tests per construct and error, data-driven
//! condition cases (`../testdata/conditions.txt`), property tests (display round trip,
//! updates never panic and yield valid items) and seeded runs of the fuzz body.

mod condition_tests;
mod fuzz_tests;
mod key_condition_tests;
mod parse_tests;
mod projection_tests;
mod property_tests;
mod update_tests;

use std::collections::BTreeMap;

use crate::expr::fuzz::fuzz_attributes;
use crate::expr::ExpressionAttributes;
use crate::model::{Number, Value};

/// The fuzz body's names and values, leaked so tests can borrow them for `'static`.
pub(super) fn attributes() -> ExpressionAttributes<'static> {
    let (names, values) = fuzz_attributes();
    ExpressionAttributes::new(Box::leak(Box::new(names)), Box::leak(Box::new(values)))
}

/// Names and values from literal pairs.
pub(super) fn attributes_of(
    names: &[(&str, &str)],
    values: &[(&str, Value)],
) -> ExpressionAttributes<'static> {
    let names: BTreeMap<String, String> = names
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let values: BTreeMap<String, Value> = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    ExpressionAttributes::new(Box::leak(Box::new(names)), Box::leak(Box::new(values)))
}

/// A number value.
pub(super) fn n(i: i64) -> Value {
    Value::N(Number::from(i))
}

/// A string value.
pub(super) fn s(text: &str) -> Value {
    Value::S(text.to_owned())
}
