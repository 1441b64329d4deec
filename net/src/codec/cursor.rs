//! The field encodings that message bodies are built from, and a bounds-checked reader.
//!
//! ```text
//! u8, u16, u32, u64   fixed width, little-endian
//! bool                u8: 0 false, 1 true; anything else is an error
//! string              len: u32, len × u8 UTF-8
//! option<T>           u8: 0 absent, 1 present then T; anything else is an error
//! item                len: u32, len bytes of the item encoding (docs/FORMATS.md, "Item")
//! list<T>             count: u32, count × T
//! ```
//!
//! Invariants: every count and length is checked against the bytes left (times the least
//! size of one element) before anything is allocated, a list reserves room for at most
//! 64 elements before reading them; reading never panics.
#![deny(clippy::indexing_slicing)]

use crate::codec::error::CodecError;
use crate::model::item_codec::reserve_ahead;
use crate::model::{decode_item, encode_item, Item};

/// Least encoded size of a string (its length field).
pub(crate) const STRING_BYTES_MIN: usize = 4;
/// Least encoded size of an item (length field, then version and count bytes).
pub(crate) const ITEM_BYTES_MIN: usize = 4 + 2;

/// Appends a length or count; panics past `u32::MAX` (no message comes near: the frame
/// limit is far below).
pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    assert!(len <= u32::MAX as usize, "length {len} overflows u32");
    put_u32(out, len as u32);
}

pub(crate) fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

pub(crate) fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

pub(crate) fn put_str(out: &mut Vec<u8>, value: &str) {
    put_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// Appends an item with its length field (the item encoding is written in place, then the
/// length is patched).
pub(crate) fn put_item(out: &mut Vec<u8>, item: &Item) {
    let at = out.len();
    put_u32(out, 0);
    encode_item(item, out);
    let len = out.len() - at - 4;
    assert!(
        len <= u32::MAX as usize,
        "item of {len} bytes overflows u32"
    );
    if let Some(field) = out.get_mut(at..at + 4) {
        field.copy_from_slice(&(len as u32).to_le_bytes());
    }
}

/// Writes an item already in `encode_item`'s form exactly as [`put_item`] writes one.
pub(crate) fn put_encoded_item(out: &mut Vec<u8>, encoded: &[u8]) {
    assert!(
        encoded.len() <= u32::MAX as usize,
        "item of {} bytes overflows u32",
        encoded.len()
    );
    put_u32(out, encoded.len() as u32);
    out.extend_from_slice(encoded);
}

pub(crate) fn put_option<T>(out: &mut Vec<u8>, value: Option<&T>, put: impl Fn(&mut Vec<u8>, &T))
where
    T: ?Sized,
{
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put(out, value);
        }
    }
}

/// A cursor over a body; every read is bounds-checked and names its offset on error.
pub(crate) struct BodyReader<'a> {
    input: &'a [u8],
    offset: usize,
}

impl<'a> BodyReader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> BodyReader<'a> {
        BodyReader { input, offset: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.offset)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        let truncated = CodecError::Truncated {
            offset: self.offset,
            needed_bytes: len.saturating_sub(self.remaining()),
        };
        let end = self.offset.checked_add(len).ok_or(truncated.clone())?;
        let bytes = self.input.get(self.offset..end).ok_or(truncated)?;
        self.offset = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A byte that must be 0 or 1; `what` names the field in the error.
    fn flag(&mut self, what: &'static str) -> Result<bool, CodecError> {
        let offset = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::UnknownTag {
                what,
                tag: u16::from(tag),
                offset,
            }),
        }
    }

    pub(crate) fn bool(&mut self) -> Result<bool, CodecError> {
        self.flag("bool")
    }

    /// Reads a count and checks that the rest of the body can hold that many elements of
    /// at least `min_element_bytes` each, before the caller allocates for them.
    pub(crate) fn count(&mut self, min_element_bytes: usize) -> Result<usize, CodecError> {
        let offset = self.offset;
        let len = self.u32()?;
        let remaining_bytes = self.remaining();
        let fits = (len as usize)
            .checked_mul(min_element_bytes)
            .is_some_and(|needed| needed <= remaining_bytes);
        if !fits {
            return Err(CodecError::LengthTooLarge {
                len,
                offset,
                remaining_bytes,
            });
        }
        Ok(len as usize)
    }

    /// A count that, added to the `used` elements already read, must be at most `max`.
    pub(crate) fn count_max(
        &mut self,
        min_element_bytes: usize,
        what: &'static str,
        used: usize,
        max: usize,
    ) -> Result<usize, CodecError> {
        let count = self.count(min_element_bytes)?;
        let total = used.saturating_add(count);
        if total > max {
            return Err(CodecError::TooManyElements {
                what,
                count: total as u64,
                max: max as u64,
            });
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.count(1)?;
        self.take(len)
    }

    pub(crate) fn string(&mut self) -> Result<String, CodecError> {
        let offset = self.offset;
        let bytes = self.bytes()?;
        let s = std::str::from_utf8(bytes).map_err(|_| CodecError::InvalidUtf8 { offset })?;
        Ok(s.to_owned())
    }

    pub(crate) fn item(&mut self) -> Result<Item, CodecError> {
        let offset = self.offset;
        let bytes = self.bytes()?;
        decode_item(bytes).map_err(|source| CodecError::Item { offset, source })
    }

    pub(crate) fn option<T>(
        &mut self,
        read: impl FnOnce(&mut BodyReader<'a>) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CodecError> {
        if self.flag("option")? {
            Ok(Some(read(self)?))
        } else {
            Ok(None)
        }
    }

    pub(crate) fn list<T>(
        &mut self,
        min_element_bytes: usize,
        mut read: impl FnMut(&mut BodyReader<'a>) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, CodecError> {
        let count = self.count(min_element_bytes)?;
        self.list_of(count, &mut read)
    }

    /// Reads `count` elements (a count already read and checked).
    pub(crate) fn list_of<T>(
        &mut self,
        count: usize,
        mut read: impl FnMut(&mut BodyReader<'a>) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, CodecError> {
        let mut list = Vec::with_capacity(reserve_ahead(count));
        for _ in 0..count {
            list.push(read(self)?);
        }
        Ok(list)
    }

    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            trailing_bytes => Err(CodecError::TrailingBytes {
                offset: self.offset,
                trailing_bytes,
            }),
        }
    }
}
