//! Property tests: the display of any syntax tree parses back to the same tree, and an
//! update applied to any item never panics and either errors or yields a valid item with
//! the same key.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use crate::expr::ast::{
    Comparator, Condition, Name, Operand, Path, PathElement, Projection, SetAction, SetValue,
    Update, UpdateClause, UpdateOperand,
};
use crate::expr::fuzz::fuzz_key_schema;
use crate::expr::{parse_condition, parse_projection, parse_update, ExpressionAttributes};
use crate::model::tests::strategies;
use crate::model::{validate_item, KeyValue, Number, PrimaryKey, Value};

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        // Function names are valid bare names; reserved words are not.
        prop::sample::select(vec!["a", "b", "c", "n", "s", "ss", "size", "x_1", "pk"])
            .prop_map(|s| Name::Bare(s.to_owned())),
        prop::sample::select(vec!["#a", "#b", "#n", "#0"])
            .prop_map(|s| Name::Placeholder(s.to_owned())),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    (
        name(),
        prop::collection::vec(
            prop_oneof![
                name().prop_map(PathElement::Name),
                (0usize..4).prop_map(PathElement::Index),
            ],
            0..3,
        ),
    )
        .prop_map(|(attribute, elements)| Path {
            attribute,
            elements,
        })
}

fn value_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![":n", ":s", ":l", ":ss", ":m", ":0"]).prop_map(str::to_owned)
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        path().prop_map(Operand::Path),
        value_name().prop_map(Operand::Value),
        path().prop_map(Operand::Size),
    ]
}

fn comparator() -> impl Strategy<Value = Comparator> {
    prop::sample::select(vec![
        Comparator::Eq,
        Comparator::Ne,
        Comparator::Lt,
        Comparator::Le,
        Comparator::Gt,
        Comparator::Ge,
    ])
}

fn condition() -> impl Strategy<Value = Condition> {
    let leaf = prop_oneof![
        (operand(), comparator(), operand()).prop_map(|(a, c, b)| Condition::Compare(a, c, b)),
        (operand(), operand(), operand()).prop_map(|(a, b, c)| Condition::Between(a, b, c)),
        (operand(), prop::collection::vec(operand(), 1..4)).prop_map(|(a, l)| Condition::In(a, l)),
        path().prop_map(Condition::AttributeExists),
        path().prop_map(Condition::AttributeNotExists),
        (path(), operand()).prop_map(|(p, o)| Condition::AttributeType(p, o)),
        (path(), operand()).prop_map(|(p, o)| Condition::BeginsWith(p, o)),
        (path(), operand()).prop_map(|(p, o)| Condition::Contains(p, o)),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Condition::Not(Box::new(c))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Condition::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Condition::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn update_operand() -> impl Strategy<Value = UpdateOperand> {
    let leaf = prop_oneof![
        path().prop_map(UpdateOperand::Path),
        value_name().prop_map(UpdateOperand::Value),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (path(), inner.clone()).prop_map(|(p, v)| UpdateOperand::IfNotExists(p, Box::new(v))),
            (inner.clone(), inner)
                .prop_map(|(a, b)| UpdateOperand::ListAppend(Box::new(a), Box::new(b))),
        ]
    })
}

fn set_value() -> impl Strategy<Value = SetValue> {
    prop_oneof![
        update_operand().prop_map(SetValue::Operand),
        (update_operand(), update_operand()).prop_map(|(a, b)| SetValue::Plus(a, b)),
        (update_operand(), update_operand()).prop_map(|(a, b)| SetValue::Minus(a, b)),
    ]
}

fn update() -> impl Strategy<Value = Update> {
    let clause = |kind: usize| -> BoxedStrategy<UpdateClause> {
        match kind {
            0 => prop::collection::vec(
                (path(), set_value()).prop_map(|(path, value)| SetAction { path, value }),
                1..4,
            )
            .prop_map(UpdateClause::Set)
            .boxed(),
            1 => prop::collection::vec(path(), 1..4)
                .prop_map(UpdateClause::Remove)
                .boxed(),
            2 => prop::collection::vec((path(), value_name()), 1..3)
                .prop_map(UpdateClause::Add)
                .boxed(),
            _ => prop::collection::vec((path(), value_name()), 1..3)
                .prop_map(UpdateClause::Delete)
                .boxed(),
        }
    };
    (Just(vec![0usize, 1, 2, 3]).prop_shuffle(), 1usize..=4)
        .prop_flat_map(move |(kinds, count)| {
            kinds
                .into_iter()
                .take(count)
                .map(clause)
                .collect::<Vec<_>>()
        })
        .prop_map(|clauses| Update { clauses })
}

fn placeholders() -> (BTreeMap<String, String>, BTreeMap<String, Value>) {
    let names = [("#a", "a"), ("#b", "b"), ("#n", "n"), ("#0", "ab")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let n = |i: i64| Value::N(Number::from(i));
    let values = [
        (":n", n(3)),
        (":s", Value::S("v".into())),
        (":l", Value::L(vec![n(1)])),
        (":ss", Value::Ss(["a".to_owned()].into_iter().collect())),
        (":m", Value::M(BTreeMap::new())),
        (":0", Value::Ns([Number::from(1)].into_iter().collect())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    (names, values)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn condition_display_parses_back_to_the_same_tree(condition in condition()) {
        let printed = condition.to_string();
        prop_assert_eq!(parse_condition(&printed), Ok(condition), "{}", printed);
    }

    #[test]
    fn update_display_parses_back_to_the_same_tree(update in update()) {
        let printed = update.to_string();
        prop_assert_eq!(parse_update(&printed), Ok(update), "{}", printed);
    }

    #[test]
    fn projection_display_parses_back_to_the_same_tree(
        paths in prop::collection::vec(path(), 1..5)
    ) {
        let projection = Projection { paths };
        let printed = projection.to_string();
        prop_assert_eq!(parse_projection(&printed), Ok(projection), "{}", printed);
    }

    #[test]
    fn updates_never_panic_and_yield_valid_items(
        update in update(),
        mut item in strategies::item(),
        absent in any::<bool>(),
    ) {
        let (names, values) = placeholders();
        let attributes = ExpressionAttributes::new(&names, &values);
        let schema = fuzz_key_schema();
        let key = PrimaryKey {
            partition: KeyValue::S("p".into()),
            sort: Some(KeyValue::N(Number::from(7))),
        };
        item.extend(schema.key_item(&key));
        let start = if absent { None } else { Some(&item) };
        if let Ok(updated) = update.apply(start, &key, &schema, &attributes) {
            prop_assert_eq!(validate_item(&updated), Ok(()));
            prop_assert_eq!(schema.key_of(&updated), Ok(key));
        }
    }
}

/// The update strategy must reach the success branch of the property above, or that
/// property proves little.
#[test]
fn generated_updates_often_succeed() {
    let (names, values) = placeholders();
    let attributes = ExpressionAttributes::new(&names, &values);
    let schema = fuzz_key_schema();
    let key = PrimaryKey {
        partition: KeyValue::S("p".into()),
        sort: Some(KeyValue::N(Number::from(7))),
    };
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = update();
    let mut succeeded = 0;
    for _ in 0..2000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let update = tree.current();
        if update.apply(None, &key, &schema, &attributes).is_ok() {
            succeeded += 1;
        }
    }
    assert!(succeeded > 50, "only {succeeded} of 2000 updates succeeded");
}
