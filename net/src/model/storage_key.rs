//! The partition hash and the order-preserving storage-key encoding.
//!
//! A storage key is
//!
//! ```text
//! ┌────────────────────────────┬───────────────────┬─────────────────────────────────┐
//! │ partition_hash(pk): u64 BE │ enc(pk)           │ enc(sk), if the schema has one  │
//! │ 8 bytes, offset 0          │ self-delimiting   │ self-delimiting                 │
//! └────────────────────────────┴───────────────────┴─────────────────────────────────┘
//! ```
//!
//! so comparing storage keys byte-wise orders by (hash, pk, sk), and within one partition
//! key by the sort key's DynamoDB order: a Query is one range scan, and the hash's leading
//! bytes cut the table into contiguous hash-range partitions.
//!
//! `enc` is order-preserving (`a < b` in DynamoDB's order ⇔ `enc(a) < enc(b)` byte-wise) and
//! self-delimiting (no encoding is a proper prefix of another), per type:
//!
//! ```text
//! S, B:  the bytes (UTF-8 for S), each 0x00 written 0x00 0xFF, then the terminator 0x00 0x01.
//!        "a" = 61 00 01 < "a\0" = 61 00 ff 00 01 < "ab" = 61 62 00 01
//! N:     ┌──────┬──────────┬────────────────────────────┬────────────┐
//!        │ sign │ exponent │ digit pairs, 1..=19 bytes  │ terminator │
//!        └──────┴──────────┴────────────────────────────┴────────────┘
//!        sign: 0x01 negative, 0x02 zero (nothing follows), 0x03 positive.
//!        exponent: scientific exponent + 130 (0..=255; the range -130..=125 fills a byte).
//!        digit pairs: the significant digits d1 d2 d3 ... (d1 ≠ 0), padded with one 0 to an
//!          even count, each pair as 10·a + b + 1 (1..=100); the last pair is not "00".
//!        terminator: 0x00 (below every pair byte, so a shorter digit string sorts first).
//!        For a negative number every byte after the sign is complemented (x ^ 0xFF), which
//!        reverses the order of magnitudes; its terminator becomes 0xFF.
//!        1 = 03 82 0b 00;  -1 = 01 7d f4 ff;  0 = 02;  12.5 = 03 83 0d 33 00
//! ```
//!
//! The hash is pinned: **XXH3-64 with seed 0 (`xxhash_rust::xxh3::xxh3_64`) over `enc(pk)`**.
//! A golden test fixes its value on known keys, since changing it would move every item to
//! another partition.
//!
//! Ranges for a Query on partition key `pk` (P = [`partition_prefix`] of pk,
//! E(v) = P ‖ [`encode_sort_key`] of v, X(p) = P ‖ [`encode_sort_key_prefix`] of p,
//! `up(k)` = [`prefix_upper_bound`] of k):
//!
//! ```text
//! whole partition       [P, up(P))
//! sk = v                the single key E(v)
//! sk < v / sk <= v      [P, E(v))  /  [P, E(v)]
//! sk > v / sk >= v      (E(v), up(P))  /  [E(v), up(P))
//! sk BETWEEN a AND b    [E(a), E(b)]
//! begins_with(sk, p)    [X(p), up(X(p)))          (S and B sort keys only)
//! ```
//!
//! This holds because every key of the partition is exactly P ‖ enc(sk) and enc is
//! self-delimiting, and because the escaped bytes of a prefix p (without terminator) are a
//! byte-prefix of the encoding of every string that starts with p.
#![deny(clippy::indexing_slicing)]

use xxhash_rust::xxh3::xxh3_64;

use crate::model::error::ModelError;
use crate::model::item_codec::Reader;
use crate::model::key::{
    KeySchema, KeyType, KeyValue, PrimaryKey, PARTITION_KEY_BYTES_MAX, SORT_KEY_BYTES_MAX,
};
use crate::model::number::{Number, DIGITS_MAX, EXPONENT_SCIENTIFIC_MIN};

/// Bytes of the partition hash at the start of a storage key.
pub const PARTITION_HASH_BYTES: usize = 8;

/// Longest encoding of a number key: sign, exponent, 19 digit pairs, terminator.
pub const NUMBER_KEY_BYTES_MAX: usize = 1 + 1 + DIGITS_MAX.div_ceil(2) + 1;

/// Longest storage key: the hash, then a partition key and a sort key of the longest
/// allowed length made of zero bytes (each escaped to two bytes), plus terminators. The
/// engine's B-tree accepts keys up to its own `KEY_BYTES_MAX` (4056 bytes): every key of
/// maximal length without 0x00 bytes fits; longer encodings are rejected with a clear error.
pub const STORAGE_KEY_BYTES_MAX: usize =
    PARTITION_HASH_BYTES + (2 * PARTITION_KEY_BYTES_MAX + 2) + (2 * SORT_KEY_BYTES_MAX + 2);
const _: () = assert!(NUMBER_KEY_BYTES_MAX <= 2 * SORT_KEY_BYTES_MAX + 2);
const _: () = assert!(STORAGE_KEY_BYTES_MAX == 6156);

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

const SIGN_NEGATIVE: u8 = 0x01;
const SIGN_ZERO: u8 = 0x02;
const SIGN_POSITIVE: u8 = 0x03;
const NUMBER_END: u8 = 0x00;
const PAIRS_MAX: usize = DIGITS_MAX.div_ceil(2);

/// The partition hash: XXH3-64, seed 0, over the order-preserving encoding of the key.
///
/// Stable across versions and platforms; golden tests pin it. Keys whose encoding fits
/// [`HASH_STACK_BYTES`] are hashed without allocating (the routing path hashes every
/// request's key).
pub fn partition_hash(partition: &KeyValue) -> u64 {
    let mut stack = StackSink {
        bytes: [0; HASH_STACK_BYTES],
        len: 0,
        overflowed: false,
    };
    encode_key_value(partition, &mut stack);
    match stack.bytes.get(..stack.len) {
        Some(encoded) if !stack.overflowed => xxh3_64(encoded),
        _ => {
            let mut encoded = Vec::with_capacity(stack.len * 2);
            encode_key_value(partition, &mut encoded);
            xxh3_64(&encoded)
        }
    }
}

/// Longest key encoding [`partition_hash`] hashes from the stack.
pub const HASH_STACK_BYTES: usize = 256;

/// Where key encodings are written: a `Vec`, or a fixed stack buffer for hashing.
trait ByteSink {
    fn put(&mut self, bytes: &[u8]);
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A fixed buffer that records, rather than panics, when an encoding does not fit.
struct StackSink {
    bytes: [u8; HASH_STACK_BYTES],
    len: usize,
    overflowed: bool,
}

impl ByteSink for StackSink {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.bytes.get_mut(self.len..end) {
            Some(slot) if !self.overflowed => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.overflowed = true,
        }
    }
}

/// Appends `hash(pk) BE ‖ enc(pk)`: every storage key of this partition key starts with it.
pub fn partition_prefix(partition: &KeyValue, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; PARTITION_HASH_BYTES]);
    encode_key_value(partition, out);
    // Hash the encoding in place rather than encode twice or allocate.
    let (head, encoded) = out.split_at_mut(start + PARTITION_HASH_BYTES);
    let hash = xxh3_64(encoded);
    if let Some(slot) = head.get_mut(start..) {
        slot.copy_from_slice(&hash.to_be_bytes());
    }
}

/// Appends the storage key of `key`: `hash(pk) BE ‖ enc(pk) ‖ enc(sk)`.
///
/// `key` must fit the table's schema ([`KeySchema::check_key`]); a key that does not (a
/// sort key on a table without one, an empty or too long value) encodes but does not
/// decode. A valid key's encoding is at most [`STORAGE_KEY_BYTES_MAX`] bytes.
pub fn encode_storage_key(key: &PrimaryKey, out: &mut Vec<u8>) {
    partition_prefix(&key.partition, out);
    if let Some(sort) = &key.sort {
        encode_sort_key(sort, out);
    }
}

/// Appends `enc(sk)`, the suffix of a storage key for a sort-key bound (see module docs).
pub fn encode_sort_key(sort: &KeyValue, out: &mut Vec<u8>) {
    encode_key_value(sort, out);
}

/// Appends the escaped bytes of a string or binary prefix, without terminator: a byte
/// prefix of `enc(s)` for every `s` that begins with `prefix` (for `begins_with`).
///
/// Errors with [`ModelError::PrefixOnNumber`] for a number, as DynamoDB does.
pub fn encode_sort_key_prefix(prefix: &KeyValue, out: &mut Vec<u8>) -> Result<(), ModelError> {
    match prefix {
        KeyValue::S(s) => escape(s.as_bytes(), out),
        KeyValue::B(b) => escape(b, out),
        KeyValue::N(_) => {
            return Err(ModelError::PrefixOnNumber {
                key_type: KeyType::N,
            })
        }
    }
    Ok(())
}

/// Turns `bound` into the smallest byte string greater than every string that starts with
/// it (drop trailing 0xFF bytes, add one to the last byte): an exclusive upper bound for a
/// prefix scan. Returns false, leaving `bound` empty, when no such string exists (`bound`
/// was empty or all 0xFF): scan to the end.
pub fn prefix_upper_bound(bound: &mut Vec<u8>) -> bool {
    while let Some(last) = bound.pop() {
        if last != 0xFF {
            bound.push(last + 1);
            return true;
        }
    }
    false
}

/// The partition hash stored in the first 8 bytes of a storage key, without decoding the
/// rest (for routing and splitting by hash range; Scan segments are hash ranges too).
pub fn storage_key_hash(storage_key: &[u8]) -> Result<u64, ModelError> {
    let mut reader = Reader {
        input: storage_key,
        offset: 0,
    };
    let mut hash = [0u8; PARTITION_HASH_BYTES];
    hash.copy_from_slice(reader.take(PARTITION_HASH_BYTES)?);
    Ok(u64::from_be_bytes(hash))
}

/// Decodes a storage key written by [`encode_storage_key`] for a table with `schema`.
///
/// Checks the hash against the decoded partition key (a mismatch is corruption), that the
/// whole input is used, that the encoding is canonical and that the key is valid for the
/// schema (non-empty, not too long).
pub fn decode_storage_key(input: &[u8], schema: &KeySchema) -> Result<PrimaryKey, ModelError> {
    let stored = storage_key_hash(input)?;
    let mut reader = Reader {
        input,
        offset: PARTITION_HASH_BYTES,
    };
    let partition = decode_key_value(&mut reader, schema.partition_key.key_type)?;
    let encoded = input
        .get(PARTITION_HASH_BYTES..reader.offset)
        .unwrap_or(&[]);
    let computed = xxh3_64(encoded);
    if stored != computed {
        return Err(ModelError::HashMismatch { stored, computed });
    }
    let sort = match &schema.sort_key {
        Some(attribute) => Some(decode_key_value(&mut reader, attribute.key_type)?),
        None => None,
    };
    reader.finish()?;
    let key = PrimaryKey { partition, sort };
    schema.check_key(&key)?;
    Ok(key)
}

/// Appends the order-preserving, self-delimiting encoding of a key value.
fn encode_key_value(key: &KeyValue, out: &mut impl ByteSink) {
    match key {
        KeyValue::S(s) => {
            escape(s.as_bytes(), out);
            out.put(&[ESCAPE, TERMINATOR]);
        }
        KeyValue::B(b) => {
            escape(b, out);
            out.put(&[ESCAPE, TERMINATOR]);
        }
        KeyValue::N(n) => encode_number(n, out),
    }
}

fn escape(bytes: &[u8], out: &mut impl ByteSink) {
    // Copy runs between zero bytes whole; a zero becomes 0x00 0xFF.
    let mut rest = bytes;
    while let Some(zero_at) = rest.iter().position(|&byte| byte == ESCAPE) {
        let (run, tail) = rest.split_at(zero_at);
        out.put(run);
        out.put(&[ESCAPE, ESCAPED_ZERO]);
        rest = tail.get(1..).unwrap_or(&[]);
    }
    out.put(rest);
}

fn encode_number(n: &Number, out: &mut impl ByteSink) {
    if n.is_zero() {
        out.put(&[SIGN_ZERO]);
        return;
    }
    let flip = if n.is_negative() { 0xFF } else { 0x00 };
    out.put(&[if n.is_negative() {
        SIGN_NEGATIVE
    } else {
        SIGN_POSITIVE
    }]);
    let exponent_byte = u8::try_from(n.exponent_scientific() - EXPONENT_SCIENTIFIC_MIN);
    // A Number's scientific exponent is in -130..=125 by construction.
    assert!(
        exponent_byte.is_ok(),
        "exponent out of range: {}",
        n.exponent_scientific()
    );
    out.put(&[exponent_byte.unwrap_or(0) ^ flip]);
    let (digits, count) = n.digits();
    for pair in digits.get(..count).unwrap_or(&[]).chunks(2) {
        let high = pair.first().copied().unwrap_or(0);
        let low = pair.get(1).copied().unwrap_or(0);
        out.put(&[(10 * high + low + 1) ^ flip]);
    }
    out.put(&[NUMBER_END ^ flip]);
}

fn decode_key_value(reader: &mut Reader<'_>, key_type: KeyType) -> Result<KeyValue, ModelError> {
    match key_type {
        KeyType::S => {
            let offset = reader.offset;
            let bytes = unescape(reader)?;
            let s = String::from_utf8(bytes).map_err(|_| ModelError::InvalidUtf8 { offset })?;
            Ok(KeyValue::S(s))
        }
        KeyType::B => Ok(KeyValue::B(unescape(reader)?)),
        KeyType::N => Ok(KeyValue::N(decode_number(reader)?)),
    }
}

fn unescape(reader: &mut Reader<'_>) -> Result<Vec<u8>, ModelError> {
    let mut bytes = Vec::new();
    loop {
        let offset = reader.offset;
        let byte = reader.byte()?;
        if byte != ESCAPE {
            bytes.push(byte);
            continue;
        }
        match reader.byte()? {
            ESCAPED_ZERO => bytes.push(0),
            TERMINATOR => return Ok(bytes),
            _ => {
                return Err(ModelError::NonCanonical {
                    offset,
                    what: "bad escape in key",
                })
            }
        }
    }
}

fn decode_number(reader: &mut Reader<'_>) -> Result<Number, ModelError> {
    let offset = reader.offset;
    let flip = match reader.byte()? {
        SIGN_ZERO => return Ok(Number::ZERO),
        SIGN_NEGATIVE => 0xFF,
        SIGN_POSITIVE => 0x00,
        tag => return Err(ModelError::UnknownTag { tag, offset }),
    };
    let exponent_scientific = i64::from(reader.byte()? ^ flip) + i64::from(EXPONENT_SCIENTIFIC_MIN);
    let non_canonical = |what| ModelError::NonCanonical { offset, what };
    let mut significand: u128 = 0;
    let mut pairs = 0usize;
    let mut last_pair = 0u8;
    loop {
        let byte = reader.byte()? ^ flip;
        if byte == NUMBER_END {
            break;
        }
        if byte > 100 {
            return Err(non_canonical("number digit pair above 99"));
        }
        let pair = byte - 1;
        if pairs == 0 && pair < 10 {
            return Err(non_canonical("number with a leading zero digit"));
        }
        if pairs == PAIRS_MAX {
            return Err(non_canonical("number with more than 38 digits"));
        }
        significand = significand * 100 + u128::from(pair);
        pairs += 1;
        last_pair = pair;
    }
    if pairs == 0 || last_pair == 0 {
        return Err(non_canonical("number with no digits or trailing zero pair"));
    }
    // The last of the 2·pairs digits sits at exponent_scientific - (2·pairs - 1).
    let exponent = exponent_scientific - (2 * pairs as i64 - 1);
    Number::from_parts(flip == 0xFF, significand, exponent)
}
