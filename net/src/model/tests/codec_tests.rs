//! Item binary encoding: golden vector, round trips, rejected inputs; sizing and validation.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::strategies::{item, value};
use crate::model::{
    decode_item, encode_item, item_size_bytes, set_top_level, validate_item, Item, ModelError,
    Number, Value, ITEM_BYTES_MAX, NESTING_DEPTH_MAX, SIZE_PER_ENCODED_BYTE_MAX,
};

fn n(text: &str) -> Number {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn encoded(item: &Item) -> Vec<u8> {
    let mut out = Vec::new();
    encode_item(item, &mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One attribute of every type.
fn golden_item() -> Item {
    let mut m = BTreeMap::new();
    m.insert("x".to_owned(), Value::S("y".to_owned()));
    Item::from([
        ("b".to_owned(), Value::B(vec![0x00, 0xFF])),
        ("bool".to_owned(), Value::Bool(true)),
        (
            "bs".to_owned(),
            Value::Bs(BTreeSet::from([vec![1], vec![2, 3]])),
        ),
        (
            "l".to_owned(),
            Value::L(vec![Value::Null, Value::Bool(false), Value::N(n("-1.5"))]),
        ),
        ("m".to_owned(), Value::M(m)),
        ("n".to_owned(), Value::N(n("12.5"))),
        (
            "ns".to_owned(),
            Value::Ns(BTreeSet::from([n("1"), n("100")])),
        ),
        ("null".to_owned(), Value::Null),
        ("s".to_owned(), Value::S("héllo".to_owned())),
        (
            "ss".to_owned(),
            Value::Ss(BTreeSet::from(["a".to_owned(), "b".to_owned()])),
        ),
    ])
}

/// Golden vector for format version 1: a change here is a change of the on-disk format.
#[test]
fn golden_item_encoding_is_stable() {
    let golden = include_str!("../testdata/item_v1.hex").trim();
    let item = golden_item();
    assert_eq!(hex(&encoded(&item)), golden);
    assert_eq!(decode_item(&encoded(&item)), Ok(item));
}

#[test]
fn small_examples_encode_as_documented() {
    let item = Item::from([("a".to_owned(), Value::N(n("1")))]);
    assert_eq!(encoded(&item), [0x01, 0x01, 0x01, 0x61, 0x02, 0x00, 0x02]);
    assert_eq!(encoded(&Item::new()), [0x01, 0x00]);
}

/// Whether a decode error is the one a case expects.
type ExpectedError = fn(&ModelError) -> bool;

#[test]
fn malformed_inputs_are_rejected_with_their_reason() {
    let cases: &[(&[u8], ExpectedError)] = &[
        (&[], |e| {
            matches!(e, ModelError::Truncated { offset: 0, .. })
        }),
        (&[0x02, 0x00], |e| {
            matches!(e, ModelError::UnsupportedVersion { version: 2 })
        }),
        (&[0x01, 0x00, 0x00], |e| {
            matches!(e, ModelError::TrailingBytes { offset: 2, .. })
        }),
        (&[0x01, 0x01, 0x01, 0x61, 0x0C], |e| {
            matches!(
                e,
                ModelError::UnknownTag {
                    tag: 0x0C,
                    offset: 4
                }
            )
        }),
        (&[0x01, 0x01, 0x01, 0x61, 0x00], |e| {
            matches!(e, ModelError::UnknownTag { tag: 0, .. })
        }),
        // Count 0x80 0x00 is an overlong zero.
        (&[0x01, 0x80, 0x00], |e| {
            matches!(e, ModelError::NonCanonical { .. })
        }),
        // A count far beyond the input.
        (&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], |e| {
            matches!(e, ModelError::LengthTooLarge { .. })
        }),
        // Names "b" then "a": not ascending.
        (&[0x01, 0x02, 0x01, 0x62, 0x06, 0x01, 0x61, 0x06], |e| {
            matches!(e, ModelError::NonCanonical { .. })
        }),
        // Names "a" twice.
        (&[0x01, 0x02, 0x01, 0x61, 0x06, 0x01, 0x61, 0x06], |e| {
            matches!(e, ModelError::NonCanonical { .. })
        }),
        // Empty name.
        (&[0x01, 0x01, 0x00, 0x06, 0x00], |e| {
            matches!(e, ModelError::AttributeNameLength { .. })
        }),
        // Empty string set.
        (&[0x01, 0x01, 0x01, 0x61, 0x09, 0x00], |e| {
            matches!(e, ModelError::EmptySet { .. })
        }),
        // Number 10 stored as significand 10, exponent 0: not normalized.
        (&[0x01, 0x01, 0x01, 0x61, 0x02, 0x00, 0x14], |e| {
            matches!(e, ModelError::NonCanonical { .. })
        }),
        // Negative zero.
        (&[0x01, 0x01, 0x01, 0x61, 0x02, 0x00, 0x01], |e| {
            matches!(e, ModelError::NonCanonical { .. })
        }),
        // Invalid UTF-8 in a string value.
        (&[0x01, 0x01, 0x01, 0x61, 0x01, 0x01, 0xFF], |e| {
            matches!(e, ModelError::InvalidUtf8 { .. })
        }),
        // Truncated string value.
        (&[0x01, 0x01, 0x01, 0x61, 0x01, 0x05, 0x61], |e| {
            matches!(e, ModelError::LengthTooLarge { .. })
        }),
        // String set "b", "a": not ascending.
        (
            &[0x01, 0x01, 0x01, 0x61, 0x09, 0x02, 0x01, 0x62, 0x01, 0x61],
            |e| matches!(e, ModelError::NonCanonical { .. }),
        ),
    ];
    for (input, expected) in cases {
        let result = decode_item(input);
        match &result {
            Err(error) if expected(error) => {}
            other => panic!("{} decoded to {other:?}", hex(input)),
        }
    }
}

fn nested_lists(depth: usize) -> Value {
    let mut value = Value::Null;
    for _ in 0..depth {
        value = Value::L(vec![value]);
    }
    value
}

#[test]
fn nesting_is_limited_to_32_levels_in_validation_and_decode() {
    let ok = Item::from([("a".to_owned(), nested_lists(NESTING_DEPTH_MAX))]);
    assert_eq!(validate_item(&ok), Ok(()));
    assert_eq!(decode_item(&encoded(&ok)), Ok(ok));
    let deep = Item::from([("a".to_owned(), nested_lists(NESTING_DEPTH_MAX + 1))]);
    let expected: Result<(), _> = Err(ModelError::NestingTooDeep {
        attribute: "a".to_owned(),
        depth: NESTING_DEPTH_MAX + 1,
        depth_max: NESTING_DEPTH_MAX,
    });
    assert_eq!(validate_item(&deep).err(), expected.clone().err());
    assert_eq!(decode_item(&encoded(&deep)).err(), expected.err());
}

#[test]
fn validation_rejects_empty_sets_and_bad_names() {
    let empty = Item::from([("tags".to_owned(), Value::Ss(BTreeSet::new()))]);
    assert_eq!(
        validate_item(&empty),
        Err(ModelError::EmptySet {
            attribute: "tags".to_owned()
        })
    );
    let nested_empty = Item::from([(
        "doc".to_owned(),
        Value::M(BTreeMap::from([(
            "x".to_owned(),
            Value::Ns(BTreeSet::new()),
        )])),
    )]);
    assert_eq!(
        validate_item(&nested_empty),
        Err(ModelError::EmptySet {
            attribute: "doc".to_owned()
        })
    );
    let unnamed = Item::from([(String::new(), Value::Null)]);
    assert!(matches!(
        validate_item(&unnamed),
        Err(ModelError::AttributeNameLength { .. })
    ));
    let long_name = Item::from([("x".repeat(65536), Value::Null)]);
    assert!(matches!(
        validate_item(&long_name),
        Err(ModelError::AttributeNameLength { .. })
    ));
    let max_name = Item::from([("x".repeat(65535), Value::Null)]);
    assert_eq!(validate_item(&max_name), Ok(()));
}

#[test]
fn item_size_follows_dynamodb_rules() {
    // Name 2 + "héllo" 6 bytes.
    assert_eq!(
        item_size_bytes(&Item::from([("ab".to_owned(), Value::S("héllo".into()))])),
        8
    );
    // 12.5: 3 digits -> 2 + 1 bytes; name 1.
    assert_eq!(
        item_size_bytes(&Item::from([("n".to_owned(), Value::N(n("12.5")))])),
        4
    );
    assert_eq!(
        item_size_bytes(&Item::from([("n".to_owned(), Value::Null)])),
        2
    );
    // Empty list: 3 bytes; a list of one NULL: 3 + 1 + 1.
    assert_eq!(
        item_size_bytes(&Item::from([("l".to_owned(), Value::L(vec![]))])),
        4
    );
    assert_eq!(
        item_size_bytes(&Item::from([("l".to_owned(), Value::L(vec![Value::Null]))])),
        6
    );
    // Map {"k": true}: 3 + (1 + 1 + 1).
    let m = Value::M(BTreeMap::from([("k".to_owned(), Value::Bool(true))]));
    assert_eq!(item_size_bytes(&Item::from([("m".to_owned(), m)])), 7);
    assert_eq!(item_size_bytes(&golden_item()), 57);
}

#[test]
fn items_over_400_kib_are_rejected() {
    let fits = Item::from([("a".to_owned(), Value::B(vec![7; ITEM_BYTES_MAX - 1]))]);
    assert_eq!(validate_item(&fits), Ok(()));
    assert_eq!(decode_item(&encoded(&fits)), Ok(fits));
    let big = Item::from([("ab".to_owned(), Value::B(vec![7; ITEM_BYTES_MAX - 1]))]);
    let expected: Result<(), _> = Err(ModelError::ItemTooLarge {
        size_bytes: ITEM_BYTES_MAX + 1,
        max_bytes: ITEM_BYTES_MAX,
    });
    assert_eq!(validate_item(&big).err(), expected.clone().err());
    assert_eq!(decode_item(&encoded(&big)).err(), expected.err());
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(item in item()) {
        prop_assert_eq!(validate_item(&item), Ok(()));
        let bytes = encoded(&item);
        prop_assert_eq!(&encoded(&item), &bytes, "deterministic");
        prop_assert_eq!(decode_item(&bytes), Ok(item));
    }

    #[test]
    fn a_flipped_bit_never_decodes_to_the_same_item(item in item(), bit in any::<usize>()) {
        let mut bytes = encoded(&item);
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(other) = decode_item(&bytes) {
            prop_assert_ne!(&other, &item);
            prop_assert_eq!(encoded(&other), bytes, "what decodes is canonical");
        }
    }

    /// UpdateItem's fast path patches the stored encoding: it must give exactly the bytes
    /// of the decoded item with the attributes set, re-encoded.
    #[test]
    fn set_top_level_equals_decode_set_encode(
        item in item(),
        sets in proptest::collection::btree_map("[a-c\u{0}é]{1,3}", value(), 0..4),
    ) {
        let mut expected = item.clone();
        expected.extend(sets.clone());
        let pairs: Vec<(&str, &Value)> = sets.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut out = vec![0xAA];
        set_top_level(&encoded(&item), &pairs, &mut out).unwrap();
        prop_assert_eq!(out.first(), Some(&0xAA), "appends after what out held");
        prop_assert_eq!(&out[1..], &encoded(&expected)[..]);
    }

    #[test]
    fn size_is_bounded_by_the_encoded_length(item in item()) {
        prop_assert!(item_size_bytes(&item) <= SIZE_PER_ENCODED_BYTE_MAX * encoded(&item).len());
    }

    /// Damaged stored bytes give an error or some bytes, never a panic or a hang.
    #[test]
    fn set_top_level_survives_damaged_input(
        item in item(),
        bit in any::<usize>(),
        cut in any::<usize>(),
    ) {
        let mut bytes = encoded(&item);
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        bytes.truncate(cut % (bytes.len() + 1));
        let null = Value::Null;
        let _ = set_top_level(&bytes, &[("b", &null)], &mut Vec::new());
    }
}
