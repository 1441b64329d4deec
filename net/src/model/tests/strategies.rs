//! Proptest strategies, and valid values drawn from the shared seeded PRNG, for the model
//! tests.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

pub use crate::fuzz_input::Prng;
use crate::model::{Item, KeyValue, Number, Value};

/// 10^d for d in 0..=38.
pub fn pow10(d: u32) -> u128 {
    10u128.pow(d)
}

/// Numbers over the whole range and every digit count.
pub fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        // Small integers and simple decimals, where collisions and ties are likely.
        (-1000i64..1000, -3i64..3).prop_filter_map("in range", |(m, e)| {
            Number::from_parts(m < 0, u128::from(m.unsigned_abs()), e).ok()
        }),
        (any::<bool>(), 1u32..=38, any::<u128>(), -167i64..=125).prop_filter_map(
            "in range",
            |(negative, digits, raw, exponent)| {
                Number::from_parts(negative, raw % pow10(digits), exponent).ok()
            }
        ),
    ]
}

/// Strings over a small alphabet that stresses the key escaping (0x00, 0x01, 0xFF-ish).
pub fn key_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('\0'),
            Just('\u{1}'),
            Just('a'),
            Just('b'),
            Just('\u{ff}'),
            Just('é')
        ],
        0..6,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Bytes over a small alphabet that stresses the key escaping.
pub fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1), Just(0x61), Just(0xFE), Just(0xFF)],
        0..6,
    )
}

/// A non-empty key value of the given type index (0 S, 1 N, 2 B).
pub fn key_value(type_index: usize) -> BoxedStrategy<KeyValue> {
    match type_index {
        0 => key_string()
            .prop_filter("non-empty", |s| !s.is_empty())
            .prop_map(KeyValue::S)
            .boxed(),
        1 => number().prop_map(KeyValue::N).boxed(),
        _ => key_bytes()
            .prop_filter("non-empty", |b| !b.is_empty())
            .prop_map(KeyValue::B)
            .boxed(),
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-c\u{0}é]{1,3}"
}

/// Valid attribute values, nested a few levels.
pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        ".{0,6}".prop_map(Value::S),
        number().prop_map(Value::N),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(Value::B),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        proptest::collection::btree_set(".{0,4}", 1..4).prop_map(Value::Ss),
        proptest::collection::btree_set(number(), 1..4).prop_map(Value::Ns),
        proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..4), 1..4)
            .prop_map(Value::Bs),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::btree_map(name(), inner.clone(), 0..5).prop_map(Value::M),
            proptest::collection::vec(inner, 0..5).prop_map(Value::L),
        ]
    })
}

/// Valid items.
pub fn item() -> impl Strategy<Value = Item> {
    proptest::collection::btree_map(name(), value(), 0..6)
}

/// Valid values for the fuzz tests, on top of the shared seeded generator.
impl Prng {
    /// A random valid number.
    pub fn number(&mut self) -> Number {
        loop {
            let digits = 1 + self.below(38) as u32;
            let raw = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
            let exponent = self.below(293) as i64 - 167;
            if let Ok(n) = Number::from_parts(self.one_in(2), raw % pow10(digits), exponent) {
                return n;
            }
        }
    }

    fn string(&mut self) -> String {
        let alphabet = ['a', 'b', '\0', 'é', 'z'];
        (0..self.below(5))
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }

    /// A random valid value, nested at most `depth` more levels.
    pub fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth == 0 { 8 } else { 10 };
        match self.below(kinds) {
            0 => Value::S(self.string()),
            1 => Value::N(self.number()),
            2 => Value::B(self.bytes_below(5)),
            3 => Value::Bool(self.one_in(2)),
            4 => Value::Null,
            5 => Value::Ss(
                (0..1 + self.below(3))
                    .map(|_| self.string())
                    .collect::<BTreeSet<_>>(),
            ),
            6 => Value::Ns(
                (0..1 + self.below(3))
                    .map(|_| self.number())
                    .collect::<BTreeSet<_>>(),
            ),
            7 => Value::Bs(
                (0..1 + self.below(3))
                    .map(|_| self.bytes_below(5))
                    .collect::<BTreeSet<_>>(),
            ),
            8 => Value::M(self.map(depth - 1)),
            _ => Value::L((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
        }
    }

    /// A random valid map or item.
    pub fn map(&mut self, depth: usize) -> BTreeMap<String, Value> {
        (0..self.below(5))
            .map(|_| {
                let mut name = self.string();
                name.push('n');
                (name, self.value(depth))
            })
            .collect()
    }
}
