//! Keys: extraction from items, the partition hash, and the storage-key byte order.

use proptest::prelude::*;

use super::strategies::{key_bytes, key_string, key_value, number};
use crate::model::{
    decode_storage_key, encode_sort_key, encode_sort_key_prefix, encode_storage_key,
    partition_hash, partition_prefix, prefix_upper_bound, storage_key_hash, Item, KeyAttribute,
    KeySchema, KeyType, KeyValue, ModelError, Number, PrimaryKey, Value, NUMBER_KEY_BYTES_MAX,
    PARTITION_KEY_BYTES_MAX, SORT_KEY_BYTES_MAX, STORAGE_KEY_BYTES_MAX,
};

fn n(text: &str) -> Number {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn schema(pk: KeyType, sk: Option<KeyType>) -> KeySchema {
    KeySchema {
        partition_key: KeyAttribute::new("pk", pk),
        sort_key: sk.map(|t| KeyAttribute::new("sk", t)),
    }
}

fn storage_key(key: &PrimaryKey) -> Vec<u8> {
    let mut out = Vec::new();
    encode_storage_key(key, &mut out);
    out
}

fn sort_encoding(sort: &KeyValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode_sort_key(sort, &mut out);
    out
}

#[test]
fn key_of_extracts_keys_and_rejects_what_dynamodb_rejects() {
    let schema = schema(KeyType::S, Some(KeyType::N));
    let item = Item::from([
        ("pk".to_owned(), Value::S("user#1".into())),
        ("sk".to_owned(), Value::N(n("42"))),
        ("other".to_owned(), Value::Null),
    ]);
    let key = schema.key_of(&item).expect("valid key");
    assert_eq!(key.partition, KeyValue::S("user#1".into()));
    assert_eq!(key.sort, Some(KeyValue::N(n("42"))));
    assert_eq!(
        schema.key_item(&key),
        Item::from([
            ("pk".to_owned(), Value::S("user#1".into())),
            ("sk".to_owned(), Value::N(n("42"))),
        ])
    );
    assert_eq!(schema.check_key(&key), Ok(()));

    let without = |name: &str| {
        let mut copy = item.clone();
        copy.remove(name);
        copy
    };
    let with = |name: &str, value: Value| {
        let mut copy = item.clone();
        copy.insert(name.to_owned(), value);
        copy
    };
    assert_eq!(
        schema.key_of(&without("sk")),
        Err(ModelError::MissingKeyAttribute {
            attribute: "sk".into()
        })
    );
    assert_eq!(
        schema.key_of(&with("pk", Value::N(n("1")))),
        Err(ModelError::KeyTypeMismatch {
            attribute: "pk".into(),
            expected: KeyType::S,
            found: "N"
        })
    );
    assert_eq!(
        schema.key_of(&with("pk", Value::S(String::new()))),
        Err(ModelError::EmptyKeyValue {
            attribute: "pk".into()
        })
    );
    assert_eq!(
        schema.key_of(&with("pk", Value::S("x".repeat(2049)))),
        Err(ModelError::KeyValueTooLong {
            attribute: "pk".into(),
            len_bytes: 2049,
            max_bytes: 2048
        })
    );
    assert!(schema
        .key_of(&with("pk", Value::S("x".repeat(2048))))
        .is_ok());
    let binary = self::schema(KeyType::B, None);
    let empty_b = Item::from([("pk".to_owned(), Value::B(vec![]))]);
    assert_eq!(
        binary.key_of(&empty_b),
        Err(ModelError::EmptyKeyValue {
            attribute: "pk".into()
        })
    );
    assert_eq!(
        binary.check_key(&PrimaryKey {
            partition: KeyValue::B(vec![1]),
            sort: Some(KeyValue::B(vec![1]))
        }),
        Err(ModelError::UnexpectedSortKey)
    );
}

#[test]
fn schema_validation_limits_key_names() {
    assert_eq!(schema(KeyType::S, Some(KeyType::S)).validate(), Ok(()));
    let doubled = KeySchema::with_sort_key(
        KeyAttribute::new("id", KeyType::S),
        KeyAttribute::new("id", KeyType::N),
    );
    assert_eq!(
        doubled.validate(),
        Err(ModelError::DuplicateKeyAttribute {
            attribute: "id".into()
        })
    );
    let long = KeySchema::partition_only(KeyAttribute::new("k".repeat(256), KeyType::S));
    assert!(matches!(
        long.validate(),
        Err(ModelError::AttributeNameLength { max_bytes: 255, .. })
    ));
    let max = KeySchema::partition_only(KeyAttribute::new("k".repeat(255), KeyType::S));
    assert_eq!(max.validate(), Ok(()));
}

/// Pins the hash algorithm: XXH3-64 seed 0 over the key encoding. If this fails, every
/// stored item would land in another partition: do not update these constants.
#[test]
fn partition_hash_golden_vectors() {
    // The reference XXH3-64 (seed 0) of the empty input, from the xxHash test suite.
    assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    let golden: [(KeyValue, u64); 4] = [
        (KeyValue::S("hello".into()), 0x95f7_b794_b202_368a),
        (KeyValue::S("user#1".into()), 0x7041_2bff_884e_8767),
        (KeyValue::N(n("42")), 0xb44a_4586_0420_af4e),
        (KeyValue::B(vec![0, 1, 2]), 0xea12_2499_d8a2_c4c3),
    ];
    // The definition: the hash of the key's order-preserving encoding.
    assert_eq!(
        partition_hash(&KeyValue::S("hello".into())),
        xxhash_rust::xxh3::xxh3_64(b"hello\x00\x01")
    );
    let actual: Vec<String> = golden
        .iter()
        .map(|(key, _)| format!("{key:?} {:#018x}", partition_hash(key)))
        .collect();
    let expected: Vec<String> = golden
        .iter()
        .map(|(key, hash)| format!("{key:?} {hash:#018x}"))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn long_keys_hash_like_short_ones() {
    // partition_hash hashes short keys from a stack buffer and long ones from a Vec;
    // partition_prefix always hashes in its output Vec. Both paths must agree.
    for len in [0, 1, 100, 127, 128, 129, 255, 256, 257, 2048] {
        for key in [
            KeyValue::S("\0".repeat(len) + "x"),
            KeyValue::B(vec![7; len + 1]),
        ] {
            let mut prefix = Vec::new();
            partition_prefix(&key, &mut prefix);
            let stored = u64::from_be_bytes(prefix[..8].try_into().expect("8 bytes"));
            assert_eq!(partition_hash(&key), stored, "length {len}");
        }
    }
}

#[test]
fn storage_key_golden_vectors() {
    let key = PrimaryKey {
        partition: KeyValue::S("a\0".into()),
        sort: Some(KeyValue::N(n("12.5"))),
    };
    let bytes = storage_key(&key);
    assert_eq!(hex(&bytes[8..]), "6100ff0001038 30d3300".replace(' ', ""));
    assert_eq!(bytes[..8], partition_hash(&key.partition).to_be_bytes());
    assert_eq!(storage_key_hash(&bytes), Ok(partition_hash(&key.partition)));
    assert!(matches!(
        storage_key_hash(&bytes[..7]),
        Err(ModelError::Truncated { .. })
    ));
    for (number, encoding) in [
        ("1", "03820b00"),
        ("-1", "017df4ff"),
        ("0", "02"),
        ("12.5", "03830d3300"),
    ] {
        assert_eq!(
            hex(&sort_encoding(&KeyValue::N(n(number)))),
            encoding,
            "{number}"
        );
    }
    assert_eq!(
        hex(&sort_encoding(&KeyValue::B(vec![0x00, 0xFF]))),
        "00ffff0001"
    );
}

#[test]
fn storage_key_decode_detects_corruption() {
    let schema = schema(KeyType::S, Some(KeyType::S));
    let key = PrimaryKey {
        partition: KeyValue::S("p".into()),
        sort: Some(KeyValue::S("s".into())),
    };
    let bytes = storage_key(&key);
    assert_eq!(decode_storage_key(&bytes, &schema), Ok(key));
    let mut flipped = bytes.clone();
    flipped[0] ^= 1;
    assert!(matches!(
        decode_storage_key(&flipped, &schema),
        Err(ModelError::HashMismatch { .. })
    ));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(
        decode_storage_key(&extra, &schema),
        Err(ModelError::TrailingBytes { .. })
    ));
    assert!(matches!(
        decode_storage_key(&bytes[..bytes.len() - 1], &schema),
        Err(ModelError::Truncated { .. })
    ));
}

#[test]
fn longest_valid_keys_fit_storage_key_bytes_max() {
    let schema = schema(KeyType::B, Some(KeyType::S));
    let key = PrimaryKey {
        partition: KeyValue::B(vec![0; PARTITION_KEY_BYTES_MAX]),
        sort: Some(KeyValue::S("\0".repeat(SORT_KEY_BYTES_MAX))),
    };
    assert_eq!(schema.check_key(&key), Ok(()));
    assert_eq!(storage_key(&key).len(), STORAGE_KEY_BYTES_MAX);
    let nines = format!("-9.{}E+125", "9".repeat(37));
    assert_eq!(
        sort_encoding(&KeyValue::N(n(&nines))).len(),
        NUMBER_KEY_BYTES_MAX
    );
}

#[test]
fn begins_with_on_numbers_is_refused() {
    let mut out = Vec::new();
    assert_eq!(
        encode_sort_key_prefix(&KeyValue::N(n("1")), &mut out),
        Err(ModelError::PrefixOnNumber {
            key_type: KeyType::N
        })
    );
}

#[test]
fn prefix_upper_bound_skips_ff_bytes() {
    let mut bound = vec![1, 2, 0xFF, 0xFF];
    assert!(prefix_upper_bound(&mut bound));
    assert_eq!(bound, [1, 3]);
    let mut all_ff = vec![0xFF, 0xFF];
    assert!(!prefix_upper_bound(&mut all_ff));
    assert!(all_ff.is_empty());
}

/// (type of pk, type of sk or none, two keys with the same shape); half the time the two
/// keys share a partition key, so sort-key order within a partition is exercised.
fn key_pair() -> impl Strategy<Value = (KeySchema, PrimaryKey, PrimaryKey)> {
    (0usize..3, 0usize..4, any::<bool>()).prop_flat_map(|(pk_type, sk_choice, same_pk)| {
        let types = [KeyType::S, KeyType::N, KeyType::B];
        let schema = schema(types[pk_type], sk_choice.checked_sub(1).map(|i| types[i]));
        let sort = move || match sk_choice {
            0 => Just(None).boxed(),
            i => key_value(i - 1).prop_map(Some).boxed(),
        };
        (key_value(pk_type), key_value(pk_type), sort(), sort()).prop_map(
            move |(pk_a, pk_b, sk_a, sk_b)| {
                let pk_b = if same_pk { pk_a.clone() } else { pk_b };
                (
                    schema.clone(),
                    PrimaryKey {
                        partition: pk_a,
                        sort: sk_a,
                    },
                    PrimaryKey {
                        partition: pk_b,
                        sort: sk_b,
                    },
                )
            },
        )
    })
}

proptest! {
    #[test]
    fn storage_key_order_is_hash_then_pk_then_sk((schema, a, b) in key_pair()) {
        let logical =
            |k: &PrimaryKey| (partition_hash(&k.partition), k.partition.clone(), k.sort.clone());
        prop_assert_eq!(storage_key(&a).cmp(&storage_key(&b)), logical(&a).cmp(&logical(&b)));
        prop_assert_eq!(decode_storage_key(&storage_key(&a), &schema), Ok(a.clone()));
        let mut prefix = Vec::new();
        partition_prefix(&a.partition, &mut prefix);
        prop_assert!(storage_key(&a).starts_with(&prefix));
        prop_assert_eq!(storage_key(&b).starts_with(&prefix), a.partition == b.partition);
    }

    #[test]
    fn number_key_encoding_preserves_order(a in number(), b in number()) {
        let (ea, eb) = (sort_encoding(&KeyValue::N(a)), sort_encoding(&KeyValue::N(b)));
        prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        prop_assert!(ea == eb || !eb.starts_with(&ea), "self-delimiting");
    }

    #[test]
    fn string_and_binary_key_encodings_preserve_order(
        a in key_string(), b in key_string(), x in key_bytes(), y in key_bytes()
    ) {
        let ea = sort_encoding(&KeyValue::S(a.clone()));
        let eb = sort_encoding(&KeyValue::S(b.clone()));
        prop_assert_eq!(ea.cmp(&eb), a.as_bytes().cmp(b.as_bytes()));
        let ex = sort_encoding(&KeyValue::B(x.clone()));
        let ey = sort_encoding(&KeyValue::B(y.clone()));
        prop_assert_eq!(ex.cmp(&ey), x.cmp(&y));
    }

    #[test]
    fn begins_with_range_holds_exactly_the_strings_with_the_prefix(
        pk in key_string().prop_filter("non-empty", |s| !s.is_empty()),
        s in key_string().prop_filter("non-empty", |s| !s.is_empty()),
        p in key_string(),
    ) {
        let partition = KeyValue::S(pk);
        let mut lower = Vec::new();
        partition_prefix(&partition, &mut lower);
        encode_sort_key_prefix(&KeyValue::S(p.clone()), &mut lower).expect("S prefix");
        let mut upper = lower.clone();
        let bounded = prefix_upper_bound(&mut upper);
        let key = storage_key(&PrimaryKey { partition, sort: Some(KeyValue::S(s.clone())) });
        let inside = lower <= key && (!bounded || key < upper);
        prop_assert_eq!(inside, s.as_bytes().starts_with(p.as_bytes()));
    }

    #[test]
    fn query_bounds_select_the_right_sort_keys(
        pk in number(), sk in number(), bound in number(),
    ) {
        // sk < v  <=>  [P, E(v)) ; whole partition [P, up(P)).
        let partition = KeyValue::N(pk);
        let mut p = Vec::new();
        partition_prefix(&partition, &mut p);
        let mut e = p.clone();
        encode_sort_key(&KeyValue::N(bound), &mut e);
        let mut up = p.clone();
        prop_assert!(prefix_upper_bound(&mut up));
        let key = storage_key(&PrimaryKey { partition, sort: Some(KeyValue::N(sk)) });
        prop_assert!(p <= key && key < up);
        prop_assert_eq!(key < e, sk < bound);
        prop_assert_eq!(key <= e, sk <= bound);
    }
}
