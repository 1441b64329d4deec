//! Condition evaluation: the data-driven cases of `testdata/conditions.txt`, and cases
//! without an item.

use super::attributes;
use crate::expr::fuzz::fuzz_item;
use crate::expr::{parse_condition, ExprError};

const CASES: &str = include_str!("../testdata/conditions.txt");

#[test]
fn data_driven_condition_cases() {
    let item = fuzz_item();
    let attributes = attributes();
    let mut count = 0;
    for (line_number, line) in CASES.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (outcome, text) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: no tab", line_number + 1));
        let condition = parse_condition(text)
            .unwrap_or_else(|e| panic!("line {}: {text:?} does not parse: {e}", line_number + 1));
        let got = condition.evaluate(Some(&item), &attributes);
        let ok = match outcome {
            "true" => got == Ok(true),
            "false" => got == Ok(false),
            "error" => got.is_err(),
            other => panic!("line {}: unknown outcome {other:?}", line_number + 1),
        };
        assert!(
            ok,
            "line {}: {text:?} expected {outcome}, got {got:?}",
            line_number + 1
        );
        count += 1;
    }
    assert!(count > 100, "only {count} cases ran");
}

#[test]
fn without_an_item_every_attribute_is_missing() {
    let attributes = attributes();
    let eval = |text: &str| parse_condition(text).and_then(|c| c.evaluate(None, &attributes));
    assert_eq!(eval("attribute_not_exists(pk)"), Ok(true));
    assert_eq!(eval("attribute_exists(pk)"), Ok(false));
    assert_eq!(eval("n <> :n"), Ok(true));
    assert_eq!(eval("n = :n"), Ok(false));
    assert_eq!(eval("size(s) <> :n"), Ok(true));
    // Constants are still checked.
    assert!(matches!(eval("n < :l"), Err(ExprError::OperandType { .. })));
}

#[test]
fn constant_errors_name_the_operator_and_type() {
    let attributes = attributes();
    let item = fuzz_item();
    let err = parse_condition("n < :l")
        .and_then(|c| c.evaluate(Some(&item), &attributes))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "incorrect operand type for <: expected N, S or B, found L"
    );
}
