//! The binary encoding of an [`Item`], used on disk and on the wire.
//!
//! Compact (a tag byte per value, LEB128 varint lengths), deterministic (one item has one
//! encoding: maps and sets are written in ascending order, varints in their shortest form,
//! numbers normalized) and decoded canonically (any other byte string for the same item is
//! rejected), so `encode(decode(b)) == b` whenever `decode(b)` succeeds.
//!
//! ```text
//! item:    ┌─────────┬───────────────┬──────────────────────────────┐
//!          │ version │ count: varint │ count × (name, value)        │  names strictly
//!          │ u8 = 1  │               │                              │  ascending (bytes)
//!          └─────────┴───────────────┴──────────────────────────────┘
//! name:    ┌─────────────────────┬───────────────┐
//!          │ len: varint 1..65535│ len × u8 UTF-8│
//!          └─────────────────────┴───────────────┘
//! value:   ┌─────┬──────────────────────────────────────────────────┐
//!          │ tag │ body                                             │
//!          └─────┴──────────────────────────────────────────────────┘
//!   tag  type  body
//!   0x01 S     len: varint, len × u8 (UTF-8)
//!   0x02 N     number (below)
//!   0x03 B     len: varint, len × u8
//!   0x04 BOOL  (none): false
//!   0x05 BOOL  (none): true
//!   0x06 NULL  (none)
//!   0x07 M     count: varint, count × (name, value), names strictly ascending
//!   0x08 L     count: varint, count × value
//!   0x09 SS    count: varint ≥ 1, count × (len: varint, UTF-8), strictly ascending bytes
//!   0x0A NS    count: varint ≥ 1, count × number, strictly ascending numerically
//!   0x0B BS    count: varint ≥ 1, count × (len: varint, bytes), strictly ascending bytes
//!   any other tag is an error.
//! number:  ┌───────────────────────────────┬────────────────────────────────────────┐
//!          │ exponent: zigzag varint (i64) │ significand << 1 | negative: varint u128│
//!          └───────────────────────────────┴────────────────────────────────────────┘
//!          value = (-1)^negative × significand × 10^exponent, normalized: significand
//!          has no trailing zero digit; zero is exponent 0, significand 0, negative 0.
//! varint:  LEB128: 7 bits per byte, least significant group first, high bit set on all
//!          but the last byte; shortest form only (no trailing 0x00 group); at most
//!          10 bytes for u64, 19 for u128.
//! ```
//!
//! Example: `{"a": N 1}` is `01 01 01 61 02 00 02`.
//!
//! Decode limits: every count and length is checked against the bytes left before anything
//! is allocated (an element takes at least one byte), maps and lists nest at most
//! [`NESTING_DEPTH_MAX`] deep, and the decoded item must pass the limits of
//! [`validate_item`](crate::model::validate_item) (names, non-empty sets,
//! [`crate::model::ITEM_BYTES_MAX`]).
//!
//! Not done here: checksums (the WAL record and the page carry crc32c) and compression.
#![deny(clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};

use crate::model::error::ModelError;
use crate::model::number::Number;
use crate::model::value::{
    check_name, item_size_bytes, Item, Value, ITEM_BYTES_MAX, NESTING_DEPTH_MAX,
};

/// The version byte that starts every encoded item.
pub const ITEM_FORMAT_VERSION: u8 = 1;

const TAG_S: u8 = 0x01;
const TAG_N: u8 = 0x02;
const TAG_B: u8 = 0x03;
const TAG_FALSE: u8 = 0x04;
const TAG_TRUE: u8 = 0x05;
const TAG_NULL: u8 = 0x06;
const TAG_M: u8 = 0x07;
const TAG_L: u8 = 0x08;
const TAG_SS: u8 = 0x09;
const TAG_NS: u8 = 0x0A;
const TAG_BS: u8 = 0x0B;

/// Appends the encoding of `item` to `out`.
///
/// Any item encodes; only items that pass [`validate_item`](crate::model::validate_item)
/// decode, so validate before storing.
pub fn encode_item(item: &Item, out: &mut Vec<u8>) {
    out.push(ITEM_FORMAT_VERSION);
    encode_map(item, out);
}

fn encode_map(map: &BTreeMap<String, Value>, out: &mut Vec<u8>) {
    put_varint(out, map.len() as u128);
    for (name, value) in map {
        put_bytes(out, name.as_bytes());
        encode_value(value, out);
    }
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::S(s) => {
            out.push(TAG_S);
            put_bytes(out, s.as_bytes());
        }
        Value::N(n) => {
            out.push(TAG_N);
            encode_number(n, out);
        }
        Value::B(b) => {
            out.push(TAG_B);
            put_bytes(out, b);
        }
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Null => out.push(TAG_NULL),
        Value::M(map) => {
            out.push(TAG_M);
            encode_map(map, out);
        }
        Value::L(list) => {
            out.push(TAG_L);
            put_varint(out, list.len() as u128);
            for inner in list {
                encode_value(inner, out);
            }
        }
        Value::Ss(set) => {
            out.push(TAG_SS);
            put_varint(out, set.len() as u128);
            for s in set {
                put_bytes(out, s.as_bytes());
            }
        }
        Value::Ns(set) => {
            out.push(TAG_NS);
            put_varint(out, set.len() as u128);
            for n in set {
                encode_number(n, out);
            }
        }
        Value::Bs(set) => {
            out.push(TAG_BS);
            put_varint(out, set.len() as u128);
            for b in set {
                put_bytes(out, b);
            }
        }
    }
}

fn encode_number(n: &Number, out: &mut Vec<u8>) {
    let exponent = i64::from(n.exponent());
    let zigzag = ((exponent << 1) ^ (exponent >> 63)) as u64;
    put_varint(out, u128::from(zigzag));
    put_varint(out, (n.significand() << 1) | u128::from(n.is_negative()));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u128);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Most elements a decoder reserves room for before reading them.
const RESERVE_AHEAD_MAX: usize = 64;

/// The capacity to reserve for a list or map of `count` elements that are yet to be read.
///
/// A count is only checked against the bytes left (each element takes at least one
/// byte), so a forged one could reserve tens of times the input at every level of
/// nesting: 32 nested lists in a 16 MiB frame would ask for ~25 GiB, and a failed
/// allocation aborts the process. Reserving at most [`RESERVE_AHEAD_MAX`] elements
/// ahead bounds that; a genuine long list grows as it is read.
pub(crate) fn reserve_ahead(count: usize) -> usize {
    count.min(RESERVE_AHEAD_MAX)
}

/// Decodes one item that fills all of `input`.
pub fn decode_item(input: &[u8]) -> Result<Item, ModelError> {
    let mut reader = Reader { input, offset: 0 };
    let version = reader.byte()?;
    if version != ITEM_FORMAT_VERSION {
        return Err(ModelError::UnsupportedVersion { version });
    }
    let item = reader.map(None, 0)?;
    reader.finish()?;
    let size_bytes = item_size_bytes(&item);
    if size_bytes > ITEM_BYTES_MAX {
        return Err(ModelError::ItemTooLarge {
            size_bytes,
            max_bytes: ITEM_BYTES_MAX,
        });
    }
    Ok(item)
}

/// An item's size by DynamoDB's rules is at most this many times the length of its
/// encoding (a number of one digit, the worst case, sizes 2 bytes and encodes in 3; a
/// `NULL` in a list sizes 2 and encodes in 1). So an encoding of at most
/// `ITEM_BYTES_MAX / SIZE_PER_ENCODED_BYTE_MAX` bytes is an item within the size limit,
/// without decoding it (test `size_is_bounded_by_the_encoded_length`).
pub const SIZE_PER_ENCODED_BYTE_MAX: usize = 8;

/// Appends to `out` the encoding of the item encoded in `stored` with the top-level
/// attributes `sets` put in place of its own of the same name, or added: the bytes
/// `encode_item` would give for the decoded item with those attributes set, built
/// without decoding the attributes left alone (their bytes are copied).
///
/// `sets` must be sorted by name with no name twice (panics otherwise: a caller's bug),
/// and the values valid (`validate_item` of them as an item passes). The stored bytes
/// are walked, not validated: they come from a page whose crc32c held. A walk that does
/// not parse is an error, and `out` is then left with partial bytes.
pub fn set_top_level(
    stored: &[u8],
    sets: &[(&str, &Value)],
    out: &mut Vec<u8>,
) -> Result<(), ModelError> {
    assert!(
        sets.windows(2)
            .all(|w| matches!(w, [a, b] if a.0.as_bytes() < b.0.as_bytes())),
        "set_top_level: names not sorted or not distinct"
    );
    let mut reader = Reader {
        input: stored,
        offset: 0,
    };
    let version = reader.byte()?;
    if version != ITEM_FORMAT_VERSION {
        return Err(ModelError::UnsupportedVersion { version });
    }
    let count = reader.count(3)?;
    let start = out.len();
    let mut pending = sets.iter().peekable();
    let mut written = 0usize;
    for _ in 0..count {
        let entry_start = reader.offset;
        let name = reader.bytes()?;
        reader.skip_value(0)?;
        let entry = stored
            .get(entry_start..reader.offset)
            .ok_or(ModelError::Truncated {
                offset: entry_start,
                needed_bytes: 0,
            })?;
        // The names set that sort before this one go first; one equal to it replaces it.
        let mut replaced = false;
        while let Some((set_name, value)) = pending.next_if(|(n, _)| n.as_bytes() <= name) {
            put_bytes(out, set_name.as_bytes());
            encode_value(value, out);
            written += 1;
            replaced = set_name.as_bytes() == name;
        }
        if !replaced {
            out.extend_from_slice(entry);
            written += 1;
        }
    }
    reader.finish()?;
    for (set_name, value) in pending {
        put_bytes(out, set_name.as_bytes());
        encode_value(value, out);
        written += 1;
    }
    let mut head = vec![ITEM_FORMAT_VERSION];
    put_varint(&mut head, written as u128);
    out.splice(start..start, head);
    Ok(())
}

/// A cursor over the input; every read is bounds-checked and names its offset on error.
pub(crate) struct Reader<'a> {
    pub(crate) input: &'a [u8],
    pub(crate) offset: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.offset)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, ModelError> {
        let byte = *self.input.get(self.offset).ok_or(ModelError::Truncated {
            offset: self.offset,
            needed_bytes: 1,
        })?;
        self.offset += 1;
        Ok(byte)
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or(ModelError::Truncated {
                offset: self.offset,
                needed_bytes: len.saturating_sub(self.remaining()),
            })?;
        let bytes = self
            .input
            .get(self.offset..end)
            .ok_or(ModelError::Truncated {
                offset: self.offset,
                needed_bytes: len,
            })?;
        self.offset = end;
        Ok(bytes)
    }

    pub(crate) fn finish(&self) -> Result<(), ModelError> {
        match self.remaining() {
            0 => Ok(()),
            trailing_bytes => Err(ModelError::TrailingBytes {
                offset: self.offset,
                trailing_bytes,
            }),
        }
    }

    /// Reads a shortest-form LEB128 varint of at most `bits` bits.
    fn varint(&mut self, bits: u32) -> Result<u128, ModelError> {
        let start = self.offset;
        let mut value: u128 = 0;
        let mut shift = 0u32;
        loop {
            let byte = self.byte()?;
            let group = u128::from(byte & 0x7F);
            // The bits this group may still fill; anything above them overflows.
            let room_bits = bits.saturating_sub(shift);
            if room_bits == 0 || (room_bits < 7 && group >> room_bits != 0) {
                return Err(ModelError::NonCanonical {
                    offset: start,
                    what: "varint overflow",
                });
            }
            value |= group << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(ModelError::NonCanonical {
                        offset: start,
                        what: "overlong varint",
                    });
                }
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// Reads a count or length and checks that the rest of the input can hold that many
    /// elements of at least `min_element_bytes` each, before anything is allocated.
    fn count(&mut self, min_element_bytes: usize) -> Result<usize, ModelError> {
        let offset = self.offset;
        let len = self.varint(64)?;
        let remaining_bytes = self.remaining();
        let fits = usize::try_from(len)
            .ok()
            .and_then(|len| len.checked_mul(min_element_bytes))
            .is_some_and(|needed| needed <= remaining_bytes);
        if !fits {
            return Err(ModelError::LengthTooLarge {
                len: len as u64,
                offset,
                remaining_bytes,
            });
        }
        Ok(len as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ModelError> {
        let len = self.count(1)?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let offset = self.offset;
        let bytes = self.bytes()?;
        let s = std::str::from_utf8(bytes).map_err(|_| ModelError::InvalidUtf8 { offset })?;
        Ok(s.to_owned())
    }

    /// Reads a map (or the item itself when `attribute` is None); `depth` counts the maps
    /// and lists enclosing its values.
    fn map(&mut self, attribute: Option<&str>, depth: usize) -> Result<Item, ModelError> {
        // A name takes at least 2 bytes (length, one byte) and a value 1.
        let count = self.count(3)?;
        // Gathered in order, then built in one pass (the map's bulk build from a sorted
        // sequence) rather than searched into name by name: an item of 10 attributes of
        // 100 bytes decodes in 1.17 µs instead of 1.24.
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(reserve_ahead(count));
        for _ in 0..count {
            let offset = self.offset;
            let name = self.string()?;
            check_name(&name)?;
            // Strictly ascending names: a duplicate would be dropped silently by the map.
            let ascending = entries.last().is_none_or(|(last, _)| last < &name);
            if !ascending {
                return Err(ModelError::NonCanonical {
                    offset,
                    what: "map names not ascending",
                });
            }
            let value = self.value(attribute.unwrap_or(&name), depth)?;
            entries.push((name, value));
        }
        Ok(entries.into_iter().collect())
    }

    /// Reads past one value without building it: the structure is walked (tags, counts,
    /// lengths, nesting depth) but names, UTF-8, order and canonical forms are not checked.
    fn skip_value(&mut self, depth: usize) -> Result<(), ModelError> {
        let offset = self.offset;
        let tag = self.byte()?;
        let nested = || {
            if depth + 1 > NESTING_DEPTH_MAX {
                Err(ModelError::NestingTooDeep {
                    attribute: String::new(),
                    depth: depth + 1,
                    depth_max: NESTING_DEPTH_MAX,
                })
            } else {
                Ok(depth + 1)
            }
        };
        match tag {
            TAG_S | TAG_B => {
                self.bytes()?;
            }
            TAG_N => {
                self.number()?;
            }
            TAG_FALSE | TAG_TRUE | TAG_NULL => {}
            TAG_M => {
                let inner = nested()?;
                for _ in 0..self.count(3)? {
                    self.bytes()?;
                    self.skip_value(inner)?;
                }
            }
            TAG_L => {
                let inner = nested()?;
                for _ in 0..self.count(1)? {
                    self.skip_value(inner)?;
                }
            }
            TAG_SS | TAG_BS => {
                for _ in 0..self.count(1)? {
                    self.bytes()?;
                }
            }
            TAG_NS => {
                for _ in 0..self.count(2)? {
                    self.number()?;
                }
            }
            tag => return Err(ModelError::UnknownTag { tag, offset }),
        }
        Ok(())
    }

    fn value(&mut self, attribute: &str, depth: usize) -> Result<Value, ModelError> {
        let offset = self.offset;
        let tag = self.byte()?;
        let nested = |depth: usize| {
            if depth + 1 > NESTING_DEPTH_MAX {
                Err(ModelError::NestingTooDeep {
                    attribute: attribute.to_owned(),
                    depth: depth + 1,
                    depth_max: NESTING_DEPTH_MAX,
                })
            } else {
                Ok(depth + 1)
            }
        };
        let empty_set = || ModelError::EmptySet {
            attribute: attribute.to_owned(),
        };
        let unsorted = ModelError::NonCanonical {
            offset,
            what: "set elements not ascending",
        };
        let value = match tag {
            TAG_S => Value::S(self.string()?),
            TAG_N => Value::N(self.number()?),
            TAG_B => Value::B(self.bytes()?.to_vec()),
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_NULL => Value::Null,
            TAG_M => Value::M(self.map(Some(attribute), nested(depth)?)?),
            TAG_L => {
                let inner_depth = nested(depth)?;
                let count = self.count(1)?;
                let mut list = Vec::with_capacity(reserve_ahead(count));
                for _ in 0..count {
                    list.push(self.value(attribute, inner_depth)?);
                }
                Value::L(list)
            }
            TAG_SS => {
                let count = self.count(1)?;
                if count == 0 {
                    return Err(empty_set());
                }
                let mut set = BTreeSet::new();
                for _ in 0..count {
                    let s = self.string()?;
                    if set
                        .last()
                        .is_some_and(|last: &String| last.as_bytes() >= s.as_bytes())
                    {
                        return Err(unsorted);
                    }
                    set.insert(s);
                }
                Value::Ss(set)
            }
            TAG_NS => {
                // A number takes at least 2 bytes.
                let count = self.count(2)?;
                if count == 0 {
                    return Err(empty_set());
                }
                let mut set = BTreeSet::new();
                for _ in 0..count {
                    let n = self.number()?;
                    if set.last().is_some_and(|last: &Number| *last >= n) {
                        return Err(unsorted);
                    }
                    set.insert(n);
                }
                Value::Ns(set)
            }
            TAG_BS => {
                let count = self.count(1)?;
                if count == 0 {
                    return Err(empty_set());
                }
                let mut set = BTreeSet::new();
                for _ in 0..count {
                    let b = self.bytes()?;
                    if set
                        .last()
                        .is_some_and(|last: &Vec<u8>| last.as_slice() >= b)
                    {
                        return Err(unsorted);
                    }
                    set.insert(b.to_vec());
                }
                Value::Bs(set)
            }
            _ => return Err(ModelError::UnknownTag { tag, offset }),
        };
        Ok(value)
    }

    fn number(&mut self) -> Result<Number, ModelError> {
        let offset = self.offset;
        let zigzag = self.varint(64)? as u64;
        let exponent = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let packed = self.varint(128)?;
        let negative = packed & 1 == 1;
        let significand = packed >> 1;
        let canonical = if significand == 0 {
            exponent == 0 && !negative
        } else {
            significand % 10 != 0
        };
        if !canonical {
            return Err(ModelError::NonCanonical {
                offset,
                what: "number not normalized",
            });
        }
        Number::from_parts(negative, significand, exponent)
    }
}
