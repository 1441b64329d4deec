//! The engine's WAL payload: one change to one partition's tree.
//!
//! ```text
//! put:    | 1 u8 | key_len u16 LE | key | value (the rest: an encoded item) |
//! delete: | 2 u8 | key_len u16 LE | key |
//! set:    | 3 u8 | key_len u16 LE | key | attributes (the rest: an encoded item) |
//! ```
//! A set puts the top-level attributes it carries into the item stored under the key (in
//! place of those of the same name, or added): an UpdateItem that only SETs attributes
//! logs what it changed, not the whole new item (`Engine::set_attributes`). The item must
//! exist when the record is applied; replay meets it because it applies records in LSN
//! order onto the tree they were first applied to.
//! The WAL record around it carries the length, the crc32c, the LSN and the partition
//! (group id); this payload only says what changed.
#![deny(clippy::indexing_slicing)]

/// Tag of a put.
const TAG_PUT: u8 = 1;
/// Tag of a delete.
const TAG_DELETE: u8 = 2;
/// Tag of a set of top-level attributes.
const TAG_SET: u8 = 3;

/// One change to a partition's tree, borrowed from a WAL payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation<'a> {
    /// Store `value` under `key`.
    Put {
        /// The storage key.
        key: &'a [u8],
        /// The encoded item.
        value: &'a [u8],
    },
    /// Remove `key`.
    Delete {
        /// The storage key.
        key: &'a [u8],
    },
    /// Put the top-level attributes of `attributes` into the item stored under `key`.
    Set {
        /// The storage key.
        key: &'a [u8],
        /// The attributes set, as an encoded item.
        attributes: &'a [u8],
    },
}

/// Why a payload is not a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MutationError {
    /// The payload ends before its fields do.
    #[error("mutation truncated")]
    Truncated,
    /// The tag names no mutation.
    #[error("unknown mutation tag {0}")]
    UnknownTag(u8),
    /// A delete carries bytes after its key.
    #[error("delete with {0} trailing bytes")]
    Trailing(usize),
}

impl<'a> Mutation<'a> {
    /// Appends the payload to `out`. The key must be at most `u16::MAX` bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (tag, key, value) = match *self {
            Mutation::Put { key, value } => (TAG_PUT, key, Some(value)),
            Mutation::Delete { key } => (TAG_DELETE, key, None),
            Mutation::Set { key, attributes } => (TAG_SET, key, Some(attributes)),
        };
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        assert_eq!(usize::from(key_len), key.len(), "mutation key too long");
        out.push(tag);
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        if let Some(v) = value {
            out.extend_from_slice(v);
        }
    }

    /// Decodes a payload.
    pub fn decode(payload: &'a [u8]) -> Result<Mutation<'a>, MutationError> {
        let (&tag, rest) = payload.split_first().ok_or(MutationError::Truncated)?;
        let len_bytes = rest.get(..2).ok_or(MutationError::Truncated)?;
        let key_len = usize::from(u16::from_le_bytes([
            *len_bytes.first().ok_or(MutationError::Truncated)?,
            *len_bytes.get(1).ok_or(MutationError::Truncated)?,
        ]));
        let rest = rest.get(2..).ok_or(MutationError::Truncated)?;
        let key = rest.get(..key_len).ok_or(MutationError::Truncated)?;
        let value = rest.get(key_len..).ok_or(MutationError::Truncated)?;
        match tag {
            TAG_PUT => Ok(Mutation::Put { key, value }),
            TAG_DELETE if value.is_empty() => Ok(Mutation::Delete { key }),
            TAG_DELETE => Err(MutationError::Trailing(value.len())),
            TAG_SET => Ok(Mutation::Set {
                key,
                attributes: value,
            }),
            other => Err(MutationError::UnknownTag(other)),
        }
    }
}

/// Fuzz body: decoding never panics, and what decodes re-encodes to the same bytes.
pub fn fuzz_mutation(data: &[u8]) {
    if let Ok(m) = Mutation::decode(data) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, data, "mutation does not round-trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden() {
        let mut out = Vec::new();
        Mutation::Put {
            key: b"k",
            value: b"vv",
        }
        .encode(&mut out);
        assert_eq!(out, [1, 1, 0, b'k', b'v', b'v']);
        out.clear();
        Mutation::Delete { key: b"ab" }.encode(&mut out);
        assert_eq!(out, [2, 2, 0, b'a', b'b']);
        out.clear();
        Mutation::Set {
            key: b"k",
            attributes: b"a",
        }
        .encode(&mut out);
        assert_eq!(out, [3, 1, 0, b'k', b'a']);
        assert_eq!(
            Mutation::decode(&[9, 0, 0]),
            Err(MutationError::UnknownTag(9))
        );
        assert_eq!(
            Mutation::decode(&[1, 5, 0, 1]),
            Err(MutationError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn round_trip(key in prop::collection::vec(any::<u8>(), 0..300),
                      value in prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
                      set in any::<bool>()) {
            let m = match &value {
                Some(v) if set => Mutation::Set { key: &key, attributes: v },
                Some(v) => Mutation::Put { key: &key, value: v },
                None => Mutation::Delete { key: &key },
            };
            let mut out = Vec::new();
            m.encode(&mut out);
            prop_assert_eq!(Mutation::decode(&out), Ok(m));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
            fuzz_mutation(&data);
        }
    }
}
