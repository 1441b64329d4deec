//! The small file that declares a partition: its id and key schema.
//!
//! ```text
//! | magic "KEELPART" | version u8 | id u64 | pk_type u8 | pk_len u16 | pk name |
//! | has_sk u8 | [sk_type u8 | sk_len u16 | sk name] | crc32c u32 (of all before) |
//! ```
//! It is written once, synced and renamed into place before any WAL record names the
//! partition, so recovery always knows the schema of every partition it replays.
//!
//! A dropped partition leaves a tombstone until the WAL no longer holds its records:
//! ```text
//! | magic "KEELDROP" | version u8 | id u64 | last lsn u64 | crc32c u32 (of all before) |
//! ```
#![deny(clippy::indexing_slicing)]

use keel_net::{KeyAttribute, KeySchema, KeyType};

const MAGIC: &[u8; 8] = b"KEELPART";
const VERSION: u8 = 1;
const TOMBSTONE_MAGIC: &[u8; 8] = b"KEELDROP";

/// Why a partition file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The checksum does not match.
    #[error("partition file checksum mismatch (stored {expected:#010x}, computed {actual:#010x})")]
    Checksum {
        /// Stored crc32c.
        expected: u32,
        /// Computed crc32c.
        actual: u32,
    },
    /// The file is not a partition file, or is cut short, or has an unknown tag.
    #[error("malformed partition file: {0}")]
    Malformed(&'static str),
}

fn type_tag(t: KeyType) -> u8 {
    match t {
        KeyType::S => 1,
        KeyType::N => 2,
        KeyType::B => 3,
    }
}

fn tag_type(tag: u8) -> Result<KeyType, MetaError> {
    match tag {
        1 => Ok(KeyType::S),
        2 => Ok(KeyType::N),
        3 => Ok(KeyType::B),
        _ => Err(MetaError::Malformed("unknown key type")),
    }
}

fn put_attr(out: &mut Vec<u8>, a: &KeyAttribute) {
    out.push(type_tag(a.key_type));
    let len = u16::try_from(a.name.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(
        a.name
            .as_bytes()
            .get(..usize::from(len))
            .unwrap_or_default(),
    );
}

/// Appends a key schema: `pk_type u8 | pk_len u16 | pk name | has_sk u8 | [sk ...]`
/// (also the catalog's encoding of a table's schema).
pub fn encode_schema(schema: &KeySchema, out: &mut Vec<u8>) {
    put_attr(out, &schema.partition_key);
    match &schema.sort_key {
        Some(sk) => {
            out.push(1);
            put_attr(out, sk);
        }
        None => out.push(0),
    }
}

/// Reads a key schema written by [`encode_schema`] from the front of `input`, and moves
/// `input` past it.
pub fn decode_schema(input: &mut &[u8]) -> Result<KeySchema, MetaError> {
    let mut r = Reader(input);
    let pk = r.attr()?;
    let schema = match r.u8()? {
        0 => KeySchema::partition_only(pk),
        1 => KeySchema::with_sort_key(pk, r.attr()?),
        _ => return Err(MetaError::Malformed("bad sort-key flag")),
    };
    *input = r.0;
    Ok(schema)
}

/// Encodes a partition's declaration.
pub fn encode(id: u64, schema: &KeySchema) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&id.to_le_bytes());
    encode_schema(schema, &mut out);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetaError> {
        if self.0.len() < n {
            return Err(MetaError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, MetaError> {
        self.take(1)?
            .first()
            .copied()
            .ok_or(MetaError::Malformed("truncated"))
    }
    fn attr(&mut self) -> Result<KeyAttribute, MetaError> {
        let t = tag_type(self.u8()?)?;
        let len = self.take(2)?;
        let len = usize::from(u16::from_le_bytes(
            len.try_into()
                .map_err(|_| MetaError::Malformed("truncated"))?,
        ));
        let name = std::str::from_utf8(self.take(len)?)
            .map_err(|_| MetaError::Malformed("attribute name is not UTF-8"))?;
        Ok(KeyAttribute::new(name, t))
    }
}

/// Decodes a partition's declaration.
pub fn decode(bytes: &[u8]) -> Result<(u64, KeySchema), MetaError> {
    let body = checked_body(bytes)?;
    let mut r = Reader(body);
    if r.take(8)? != MAGIC {
        return Err(MetaError::Malformed("bad magic"));
    }
    if r.u8()? != VERSION {
        return Err(MetaError::Malformed("unknown version"));
    }
    let id = u64::from_le_bytes(
        r.take(8)?
            .try_into()
            .map_err(|_| MetaError::Malformed("truncated"))?,
    );
    let mut rest = r.0;
    let schema = decode_schema(&mut rest)?;
    if !rest.is_empty() {
        return Err(MetaError::Malformed("trailing bytes"));
    }
    Ok((id, schema))
}

/// Encodes the tombstone of partition `id`, dropped when the WAL's last LSN was `lsn`.
pub fn encode_tombstone(id: u64, lsn: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(29);
    out.extend_from_slice(TOMBSTONE_MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a tombstone into (partition id, last LSN when it was dropped).
pub fn decode_tombstone(bytes: &[u8]) -> Result<(u64, u64), MetaError> {
    let body = checked_body(bytes)?;
    let mut r = Reader(body);
    if r.take(8)? != TOMBSTONE_MAGIC {
        return Err(MetaError::Malformed("bad magic"));
    }
    if r.u8()? != VERSION {
        return Err(MetaError::Malformed("unknown version"));
    }
    let mut u64_field = || -> Result<u64, MetaError> {
        Ok(u64::from_le_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| MetaError::Malformed("truncated"))?,
        ))
    };
    let id = u64_field()?;
    let lsn = u64_field()?;
    if !r.0.is_empty() {
        return Err(MetaError::Malformed("trailing bytes"));
    }
    Ok((id, lsn))
}

/// The bytes before a trailing crc32c, if the crc32c matches them.
pub fn checked_body(bytes: &[u8]) -> Result<&[u8], MetaError> {
    if bytes.len() < 4 {
        return Err(MetaError::Malformed("truncated"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let expected = u32::from_le_bytes(crc.try_into().map_err(|_| MetaError::Malformed("crc"))?);
    let actual = crc32c::crc32c(body);
    if expected != actual {
        return Err(MetaError::Checksum { expected, actual });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let schema = KeySchema::with_sort_key(
            KeyAttribute::new("id", KeyType::S),
            KeyAttribute::new("ts", KeyType::N),
        );
        let bytes = encode(7, &schema);
        assert_eq!(decode(&bytes), Ok((7, schema)));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "flip at {i} undetected");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn tombstone_round_trip_and_corruption() {
        let bytes = encode_tombstone(9, 12345);
        assert_eq!(decode_tombstone(&bytes), Ok((9, 12345)));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(decode_tombstone(&b).is_err(), "flip at {i} undetected");
        }
        assert!(decode_tombstone(&bytes[..bytes.len() - 1]).is_err());
        // A declaration is not a tombstone.
        let schema = KeySchema::partition_only(KeyAttribute::new("id", KeyType::S));
        assert!(decode_tombstone(&encode(9, &schema)).is_err());
    }
}
