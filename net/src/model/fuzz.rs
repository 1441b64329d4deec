//! Fuzz bodies for the decoders: plain functions, run on stable by tests over seeded random
//! and mutated inputs, and by `net/fuzz` (cargo-fuzz) for long runs.
//!
//! Each body panics only when a property breaks: decoding never panics, and whatever
//! decodes re-encodes to the same bytes and decodes again to the same value.

use crate::model::item_codec::{decode_item, encode_item, set_top_level};
use crate::model::key::{KeyAttribute, KeySchema, KeyType};
use crate::model::storage_key::{decode_storage_key, encode_storage_key};
use crate::model::value::validate_item;

/// Decodes `data` as an item; if it decodes, checks the round trip on bytes and values,
/// and that patching it in place (`set_top_level`, UpdateItem's fast path) gives the
/// bytes of the decoded item with the attribute set. Patching never panics either way.
pub fn fuzz_item_decode(data: &[u8]) {
    let set = crate::model::Value::Bool(true);
    let mut patched = Vec::new();
    let patch = set_top_level(data, &[("b", &set)], &mut patched);
    let Ok(item) = decode_item(data) else { return };
    let mut with_set = item.clone();
    with_set.insert("b".to_owned(), set);
    let mut expected = Vec::new();
    encode_item(&with_set, &mut expected);
    assert_eq!(
        patch.map(|()| patched),
        Ok(expected),
        "patch == decode, set, encode"
    );
    // Pair assertion: the decoder's limits are validate_item's limits.
    assert_eq!(validate_item(&item), Ok(()), "a decoded item is valid");
    let mut encoded = Vec::with_capacity(data.len());
    encode_item(&item, &mut encoded);
    assert_eq!(
        encoded.as_slice(),
        data,
        "canonical decode: re-encoding gives the input"
    );
    let again = decode_item(&encoded);
    assert_eq!(again.as_ref(), Ok(&item), "decode(encode(item)) == item");
}

/// The key schema that [`fuzz_storage_key_decode`] uses for a selector byte: partition key
/// type `selector % 3` (S, N, B), sort key none or S, N, B by `(selector / 3) % 4`.
pub fn fuzz_schema(selector: u8) -> KeySchema {
    let types = [KeyType::S, KeyType::N, KeyType::B];
    let partition_type = types
        .get(usize::from(selector % 3))
        .copied()
        .unwrap_or(KeyType::S);
    let sort_type = match (selector / 3) % 4 {
        0 => None,
        n => types.get(usize::from(n - 1)).copied(),
    };
    KeySchema {
        partition_key: KeyAttribute::new("pk", partition_type),
        sort_key: sort_type.map(|t| KeyAttribute::new("sk", t)),
    }
}

/// Decodes `data` as a storage key, the first byte choosing one of the twelve schema
/// shapes ([`fuzz_schema`]); if it decodes, checks the round trip on bytes and values.
pub fn fuzz_storage_key_decode(data: &[u8]) {
    let Some((&selector, key_bytes)) = data.split_first() else {
        return;
    };
    let schema = fuzz_schema(selector);
    let Ok(key) = decode_storage_key(key_bytes, &schema) else {
        return;
    };
    assert_eq!(
        schema.check_key(&key),
        Ok(()),
        "a decoded key fits the schema"
    );
    let mut encoded = Vec::with_capacity(key_bytes.len());
    encode_storage_key(&key, &mut encoded);
    assert_eq!(
        encoded.as_slice(),
        key_bytes,
        "canonical decode: re-encoding gives the input"
    );
    let again = decode_storage_key(&encoded, &schema);
    assert_eq!(again.as_ref(), Ok(&key), "decode(encode(key)) == key");
}
