//! Parsing: each construct, its canonical display, and each syntax error with its offset.

use crate::expr::ast::{Comparator, Condition, Name, Operand, Path, PathElement};
use crate::expr::{
    parse_condition, parse_projection, parse_update, ExprError, EXPRESSION_BYTES_MAX,
    IN_OPERANDS_MAX, NESTING_MAX, OPERATORS_MAX, PATH_DEPTH_MAX,
};

fn syntax_message(result: Result<impl std::fmt::Debug, ExprError>) -> String {
    match result {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, parsed {v:?}"),
    }
}

#[test]
fn paths_parse_names_placeholders_and_indexes() {
    let condition = parse_condition("a.#b[2][0].c_1 = :v").unwrap();
    let expected = Path {
        attribute: Name::Bare("a".into()),
        elements: vec![
            PathElement::Name(Name::Placeholder("#b".into())),
            PathElement::Index(2),
            PathElement::Index(0),
            PathElement::Name(Name::Bare("c_1".into())),
        ],
    };
    assert_eq!(
        condition,
        Condition::Compare(
            Operand::Path(expected),
            Comparator::Eq,
            Operand::Value(":v".into())
        )
    );
}

#[test]
fn precedence_is_not_then_and_then_or() {
    let canonical = |text: &str| parse_condition(text).unwrap().to_string();
    assert_eq!(
        canonical("NOT a = :v AND b = :v OR c = :v"),
        "NOT a = :v AND b = :v OR c = :v"
    );
    let tree = parse_condition("a = :v OR b = :v AND c = :v").unwrap();
    assert!(matches!(&tree, Condition::Or(_, right) if matches!(**right, Condition::And(..))));
    let tree = parse_condition("NOT a = :v AND b = :v").unwrap();
    assert!(matches!(&tree, Condition::And(left, _) if matches!(**left, Condition::Not(_))));
    // Parentheses that matter are kept in the display, others dropped.
    assert_eq!(
        canonical("(a = :v OR b = :v) AND c = :v"),
        "(a = :v OR b = :v) AND c = :v"
    );
    assert_eq!(
        canonical("a = :v AND (b = :v AND c = :v)"),
        "a = :v AND (b = :v AND c = :v)"
    );
    assert_eq!(canonical("((a = :v)) AND b = :v"), "a = :v AND b = :v");
    assert_eq!(canonical("NOT (a = :v)"), "NOT a = :v");
    assert_eq!(
        canonical("NOT (a = :v OR b = :v)"),
        "NOT (a = :v OR b = :v)"
    );
}

#[test]
fn between_binds_its_own_and() {
    let tree = parse_condition("a BETWEEN :x AND :y AND b = :v").unwrap();
    assert!(matches!(tree, Condition::And(left, _) if matches!(*left, Condition::Between(..))));
}

#[test]
fn canonical_display_of_every_construct() {
    for text in [
        "a = :v",
        "a <> #b.c[1]",
        "size(a) >= :n",
        "a BETWEEN :x AND size(b)",
        "a IN (:x, b, size(c))",
        "attribute_exists(a.b)",
        "attribute_not_exists(#n)",
        "attribute_type(a, :t)",
        "begins_with(a, :p)",
        "contains(a[0], b)",
        "NOT NOT a < :v",
    ] {
        assert_eq!(parse_condition(text).unwrap().to_string(), text);
    }
    for text in [
        "SET a = :v, b.c = b.c + :n, d = if_not_exists(d, :z) - :n",
        "SET l = list_append(if_not_exists(l, :empty), :l) REMOVE x, y[1]",
        "DELETE s :s ADD n :n, #s :set",
    ] {
        assert_eq!(parse_update(text).unwrap().to_string(), text);
    }
    assert_eq!(
        parse_projection("a,b.c ,  d[1]").unwrap().to_string(),
        "a, b.c, d[1]"
    );
    assert_eq!(
        parse_update("set a=:v remove b").unwrap().to_string(),
        "SET a = :v REMOVE b"
    );
}

#[test]
fn syntax_errors_carry_offset_and_readable_message() {
    let cases: &[(&str, &str)] = &[
        (
            "a = )",
            "syntax error at 4: expected an operand, found \")\"",
        ),
        (
            "a = :v AND",
            "syntax error at 10: expected an operand, found the end of the expression",
        ),
        (
            "a = :v b",
            "syntax error at 7: expected the end of the expression, found \"b\"",
        ),
        (
            "size(a)",
            "syntax error at 7: expected a comparator, BETWEEN or IN, found the end \
          of the expression",
        ),
        (
            "a[x] = :v",
            "syntax error at 2: expected a list index, found \"x\"",
        ),
        ("a = :v $", "syntax error at 7: unexpected character '$'"),
        (
            "a = 1",
            "syntax error at 4: expected an operand, found number 1",
        ),
        (
            "1a = :v",
            "syntax error at 0: a name must not start with a digit",
        ),
        ("a = # ", "syntax error at 4: expected a name after \"#\""),
        (
            "(a = :v",
            "syntax error at 7: expected \")\" or AND or OR, found the end of the \
          expression",
        ),
        (
            "a BETWEEN :x OR :y",
            "syntax error at 13: expected AND after BETWEEN's lower \
          bound, found \"OR\"",
        ),
        (
            "attribute_exists(a) < :v",
            "syntax error at 20: expected the end of the \
          expression, found \"<\"",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(&syntax_message(parse_condition(text)), message, "{text:?}");
    }
}

#[test]
fn reserved_words_are_refused_as_bare_names_and_point_to_placeholders() {
    for text in [
        "and = :v",
        "a.Between = :v",
        "attribute_exists(set)",
        "In[0] = :v",
    ] {
        let error = parse_condition(text).unwrap_err();
        assert!(
            matches!(error, ExprError::ReservedWord { .. }),
            "{text:?}: {error:?}"
        );
        assert!(error.to_string().contains("#name"), "{error}");
    }
    assert_eq!(
        parse_update("SET remove = :v").unwrap_err(),
        ExprError::ReservedWord {
            offset: 4,
            word: "remove".into()
        }
    );
    // A placeholder for a reserved word is fine; function names are not reserved.
    assert!(parse_condition("#and = :v AND size = :v AND contains = :v").is_ok());
}

#[test]
fn functions_are_checked_by_kind_and_arity() {
    fn function<T: std::fmt::Debug>(result: Result<T, ExprError>) -> &'static str {
        match result {
            Err(ExprError::Function { reason, .. }) => reason,
            other => panic!("expected a function error, got {other:?}"),
        }
    }
    assert_eq!(function(parse_condition("foo(a) = :v")), "unknown function");
    assert_eq!(function(parse_condition("bar(a)")), "unknown function");
    assert_eq!(
        function(parse_condition("if_not_exists(a, :v) = :v")),
        "allowed only in the SET clause of an update expression"
    );
    assert_eq!(
        function(parse_condition("size(a, b) = :v")),
        "takes 1 argument, found 2 or more"
    );
    assert_eq!(
        function(parse_condition("attribute_exists(a, b)")),
        "too many arguments"
    );
    assert_eq!(
        function(parse_update("SET a = size(b)")),
        "not allowed in an update expression"
    );
    assert_eq!(
        function(parse_update("SET a = nope(b)")),
        "unknown function"
    );
    assert_eq!(
        function(parse_update("SET a = list_append(b, c, d)")),
        "takes 2 arguments, found more"
    );
    assert!(matches!(
        parse_condition("contains(a)"),
        Err(ExprError::Syntax { offset: 10, .. })
    ));
    // Function names are case-sensitive.
    assert_eq!(
        function(parse_condition("Contains(a, :v)")),
        "unknown function"
    );
}

#[test]
fn update_clauses_come_in_any_order_once_each() {
    let update = parse_update("REMOVE a ADD n :n SET b = :v DELETE s :s").unwrap();
    assert_eq!(update.clauses.len(), 4);
    assert_eq!(
        parse_update("SET a = :v SET b = :v").unwrap_err(),
        ExprError::DuplicateClause {
            offset: 11,
            clause: "SET"
        }
    );
    assert!(matches!(
        parse_update("a = :v"),
        Err(ExprError::Syntax { offset: 0, .. })
    ));
    assert!(matches!(
        parse_update("ADD n b"),
        Err(ExprError::Syntax { offset: 6, .. })
    ));
    assert!(matches!(
        parse_update("SET a = :v +"),
        Err(ExprError::Syntax { offset: 12, .. })
    ));
    assert!(matches!(
        parse_update("SET a = b + c + d"),
        Err(ExprError::Syntax { offset: 14, .. })
    ));
    assert!(matches!(parse_update("SET"), Err(ExprError::Syntax { .. })));
    assert!(matches!(
        parse_update("REMOVE a,"),
        Err(ExprError::Syntax { .. })
    ));
}

#[test]
fn empty_and_whitespace_expressions_are_refused() {
    assert_eq!(
        parse_condition("").unwrap_err(),
        ExprError::Empty { kind: "condition" }
    );
    assert_eq!(
        parse_update(" \t\n").unwrap_err(),
        ExprError::Empty { kind: "update" }
    );
    assert_eq!(
        parse_projection("").unwrap_err(),
        ExprError::Empty { kind: "projection" }
    );
}

#[test]
fn limits_are_enforced_at_their_edges() {
    // Length.
    let long = format!("a = :v{}", " ".repeat(EXPRESSION_BYTES_MAX - 6));
    assert!(parse_condition(&long).is_ok());
    assert!(matches!(
        parse_condition(&format!("{long} ")),
        Err(ExprError::TooLong {
            len_bytes: 4097,
            ..
        })
    ));
    // IN operands.
    let list = |count: usize| vec![":v"; count].join(",");
    assert!(parse_condition(&format!("a IN ({})", list(IN_OPERANDS_MAX))).is_ok());
    assert!(matches!(
        parse_condition(&format!("a IN ({})", list(IN_OPERANDS_MAX + 1))),
        Err(ExprError::TooManyInOperands { count: 101, .. })
    ));
    // Path depth.
    let path = |depth: usize| format!("a{}", ".b".repeat(depth - 1));
    assert!(parse_projection(&path(PATH_DEPTH_MAX)).is_ok());
    assert!(matches!(
        parse_projection(&path(PATH_DEPTH_MAX + 1)),
        Err(ExprError::PathTooDeep { offset: 0, .. })
    ));
    // Nesting.
    let nested = |depth: usize| format!("{}a = :v{}", "(".repeat(depth), ")".repeat(depth));
    assert!(parse_condition(&nested(NESTING_MAX)).is_ok());
    assert!(matches!(
        parse_condition(&nested(NESTING_MAX + 1)),
        Err(ExprError::NestingTooDeep { .. })
    ));
    assert!(matches!(
        parse_condition(&"(".repeat(2000)),
        Err(ExprError::NestingTooDeep { .. })
    ));
    // Operators: `a = :v` is one, each AND another.
    let conjunction = |count: usize| vec!["a = :v"; count].join(" AND ");
    assert!(parse_condition(&conjunction(OPERATORS_MAX / 2)).is_ok());
    assert!(matches!(
        parse_condition(&conjunction(OPERATORS_MAX / 2 + 1)),
        Err(ExprError::TooManyOperators { .. })
    ));
    // Index overflow.
    assert!(matches!(
        parse_projection("a[99999999999999999999999]"),
        Err(ExprError::Syntax { offset: 2, .. })
    ));
}
