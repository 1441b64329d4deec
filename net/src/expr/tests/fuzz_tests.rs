//! Seeded runs of the fuzz body over token soups and mutated valid expressions.

use crate::expr::fuzz::{fuzz_attributes, fuzz_expr, fuzz_item};
use crate::expr::{parse_condition, parse_update, ExpressionAttributes};
use crate::model::tests::strategies::Prng;

/// Tokens the generator strings together; most inputs are then near-misses of the grammar.
const VOCABULARY: &[&str] = &[
    "a",
    "b",
    "n",
    "s",
    "ss",
    "ns",
    "pk",
    "sk",
    "#a",
    "#b",
    "#pk",
    "#and",
    "#zz",
    ":n",
    ":s",
    ":l",
    ":m",
    ":ss",
    ":ns",
    ":b",
    ":t",
    ":big",
    ":null",
    ":zz",
    "(",
    ")",
    ",",
    ".",
    "[",
    "]",
    "0",
    "1",
    "2",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "SET",
    "REMOVE",
    "ADD",
    "DELETE",
    "size",
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
    "if_not_exists",
    "list_append",
    "and",
    "é",
    "$",
    "\u{0}",
];

/// Valid expressions of every kind, mutated byte-wise.
const SEEDS: &[&str] = &[
    "a.b[1] = :n AND NOT (s < :s OR size(ss) BETWEEN :n AND :big)",
    "attribute_exists(#a) AND contains(ss, :s) OR begins_with(s, :s)",
    "n IN (:n, :big, size(s)) AND attribute_type(n, :t)",
    "SET a.c[0] = :n + n, b[5] = list_append(if_not_exists(b, :l), :l) REMOVE s, b[0]",
    "ADD n :n, ss :ss DELETE ns :ns SET x = :m",
    "pk = :s AND sk BETWEEN :n AND :big",
    "pk, a.c[1], #b[0], s",
];

fn mutate(prng: &mut Prng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(b'a');
        return;
    }
    let at = prng.below(bytes.len());
    match prng.below(5) {
        0 => bytes[at] ^= 1 << prng.below(8),
        1 => bytes[at] = b"()[].,:#=<> a1"[prng.below(14)],
        2 => {
            bytes.remove(at);
        }
        3 => bytes.truncate(at),
        _ => {
            let end = (at + 1 + prng.below(8)).min(bytes.len());
            let run = bytes[at..end].to_vec();
            bytes.splice(at..at, run);
        }
    }
}

#[test]
fn fuzz_body_survives_token_soups_and_mutated_expressions() {
    let mut prng = Prng::new(0x6B65_656C_0E01);
    let (names, values) = fuzz_attributes();
    let attributes = ExpressionAttributes::new(&names, &values);
    let item = fuzz_item();
    let mut conditions_true = 0usize;
    let mut updates_parsed = 0usize;
    for round in 0..200_000 {
        let text = if round % 2 == 0 {
            let count = 1 + prng.below(14);
            (0..count)
                .map(|_| VOCABULARY[prng.below(VOCABULARY.len())])
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            let mut bytes = SEEDS[prng.below(SEEDS.len())].as_bytes().to_vec();
            for _ in 0..1 + prng.below(3) {
                mutate(&mut prng, &mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        };
        fuzz_expr(text.as_bytes());
        if parse_condition(&text).is_ok_and(|c| c.evaluate(Some(&item), &attributes) == Ok(true)) {
            conditions_true += 1;
        }
        if parse_update(&text).is_ok() {
            updates_parsed += 1;
        }
    }
    // The deep branches of the body must have run, or the test proves little.
    assert!(
        conditions_true > 500,
        "only {conditions_true} true conditions"
    );
    assert!(updates_parsed > 500, "only {updates_parsed} updates parsed");
}

#[test]
fn fuzz_body_accepts_the_seeds_and_arbitrary_bytes() {
    for seed in SEEDS {
        fuzz_expr(seed.as_bytes());
    }
    fuzz_expr(&[0xFF, 0xFE, b'(', 0x00]);
    fuzz_expr(&vec![b'('; 5000]);
    fuzz_expr(b"");
}
