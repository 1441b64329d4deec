//! Projection: nested structure kept, list elements compacted, overlaps refused.

use std::collections::BTreeMap;

use super::{attributes, n, s};
use crate::expr::fuzz::fuzz_item;
use crate::expr::{parse_projection, ExprError};
use crate::model::{Item, Value};

fn project(text: &str) -> Result<Item, ExprError> {
    parse_projection(text)?.apply(&fuzz_item(), &attributes())
}

#[test]
fn nested_paths_keep_their_structure_and_lists_compact() {
    let got = project("pk, a.c[1], b[0], b[2], #a.d").unwrap();
    let mut a = BTreeMap::new();
    a.insert("c".to_owned(), Value::L(vec![s("x")]));
    a.insert("d".to_owned(), Value::M(BTreeMap::new()));
    let mut expected = Item::new();
    expected.insert("pk".into(), s("p"));
    expected.insert("a".into(), Value::M(a));
    expected.insert("b".into(), Value::L(vec![n(0), Value::Null]));
    assert_eq!(got, expected);
}

#[test]
fn paths_that_match_nothing_are_left_out() {
    assert_eq!(
        project("missing, a.c[5], n[0], a.x.y, s.x").unwrap(),
        Item::new()
    );
    assert_eq!(project("n, missing").unwrap().len(), 1);
}

#[test]
fn overlapping_or_conflicting_paths_are_refused() {
    assert_eq!(
        project("a, a.c").unwrap_err(),
        ExprError::PathsOverlap {
            relation: "overlap",
            first: "a".into(),
            second: "a.c".into()
        }
    );
    assert!(matches!(
        project("#a.c, a.c"),
        Err(ExprError::PathsOverlap {
            relation: "overlap",
            ..
        })
    ));
    assert!(matches!(
        project("b[0].x, b[0][1]"),
        Err(ExprError::PathsOverlap {
            relation: "conflict",
            ..
        })
    ));
    assert!(matches!(
        project("#nope"),
        Err(ExprError::UndefinedName { .. })
    ));
}
