//! Seeded runs of the fuzz bodies over random and mutated inputs.

use crate::fuzz_input::{mutate, Prng};
use crate::model::fuzz::{fuzz_item_decode, fuzz_schema, fuzz_storage_key_decode};
use crate::model::{decode_storage_key, encode_item, encode_storage_key, KeyValue, PrimaryKey};

#[test]
fn item_decode_survives_random_and_mutated_inputs() {
    let mut prng = Prng::new(0x6B65_656C_0001);
    let mut decoded_mutants = 0usize;
    for round in 0..400_000 {
        let mut bytes = Vec::new();
        if round % 4 == 0 {
            bytes.push(1);
            bytes.extend((0..prng.below(24)).map(|_| prng.next_u64() as u8));
        } else {
            let item = prng.map(3);
            encode_item(&item, &mut bytes);
            fuzz_item_decode(&bytes);
            for _ in 0..1 + prng.below(3) {
                mutate(&mut prng, &mut bytes);
            }
        }
        fuzz_item_decode(&bytes);
        if round % 4 != 0 && crate::model::decode_item(&bytes).is_ok() {
            decoded_mutants += 1;
        }
    }
    // Some mutants must still decode, or the round-trip branch of the body went untested.
    assert!(
        decoded_mutants > 1000,
        "only {decoded_mutants} mutants decoded"
    );
}

#[test]
fn storage_key_decode_survives_random_and_mutated_inputs() {
    let mut prng = Prng::new(0x6B65_656C_0002);
    let mut decoded_mutants = 0usize;
    for round in 0..600_000 {
        let selector = prng.below(12) as u8;
        let mut bytes = vec![selector];
        if round % 4 == 0 {
            bytes.extend((0..prng.below(24)).map(|_| prng.next_u64() as u8));
        } else {
            let value = |prng: &mut Prng, type_index: u8| match type_index {
                0 => KeyValue::S(["a", "\0", "é", "ab\0c"][prng.below(4)].to_owned()),
                1 => KeyValue::N(prng.number()),
                _ => KeyValue::B(
                    (0..1 + prng.below(4))
                        .map(|_| prng.next_u64() as u8)
                        .collect(),
                ),
            };
            let mut key = Vec::new();
            let partition = value(&mut prng, selector % 3);
            let sort = match (selector / 3) % 4 {
                0 => None,
                t => Some(value(&mut prng, t - 1)),
            };
            encode_storage_key(&PrimaryKey { partition, sort }, &mut key);
            bytes.extend_from_slice(&key);
            fuzz_storage_key_decode(&bytes);
            // Mutate only after the hash, else nearly every mutant fails the hash check.
            let mut tail = bytes.split_off(1 + 8);
            mutate(&mut prng, &mut tail);
            bytes.extend_from_slice(&tail);
            if decode_storage_key(&bytes[1..], &fuzz_schema(selector)).is_ok() {
                decoded_mutants += 1;
            }
        }
        fuzz_storage_key_decode(&bytes);
    }
    assert!(
        decoded_mutants > 10_000,
        "only {decoded_mutants} mutants decoded"
    );
}
