//! [`Value`] and [`Item`]: DynamoDB's attribute values, item sizing and validation.
//!
//! Invariants checked by [`validate_item`] (not by construction, so that values can be
//! built freely and checked once at the edge):
//! - sets (`Ss`, `Ns`, `Bs`) are non-empty;
//! - maps and lists nest at most [`NESTING_DEPTH_MAX`] deep;
//! - attribute names and map-entry names are 1..=[`ATTRIBUTE_NAME_BYTES_MAX`] bytes;
//! - the item's size by DynamoDB's rules is at most [`ITEM_BYTES_MAX`].
//!
//! Key-attribute rules (types, non-empty key values, name lengths of at most 255 bytes) are
//! the key schema's business: see [`crate::model::key`].

use std::collections::{BTreeMap, BTreeSet};

use crate::model::error::{input_start, ModelError};
use crate::model::number::Number;

/// Largest item, by DynamoDB's sizing rules ([`item_size_bytes`]): 400 KiB.
pub const ITEM_BYTES_MAX: usize = 400 * 1024;
/// Deepest nesting of maps and lists: a scalar or set has depth 0, a map or list one more
/// than its deepest element (an empty one has depth 1). DynamoDB allows 32 levels.
pub const NESTING_DEPTH_MAX: usize = 32;
/// Longest attribute name (top-level or map entry), in bytes.
pub const ATTRIBUTE_NAME_BYTES_MAX: usize = 65535;

/// Bytes of overhead DynamoDB counts for a map or list, whatever its contents.
const DOCUMENT_OVERHEAD_BYTES: usize = 3;
/// Bytes of overhead counted per element of a map or list (DynamoDB developer guide,
/// "Item sizes and formats": "each List or Map element requires 1 byte of overhead").
const DOCUMENT_ELEMENT_OVERHEAD_BYTES: usize = 1;

// Values sit in maps, lists and B-tree pages by the million: keep them at four words.
const _: () = assert!(std::mem::size_of::<Number>() == 24, "Number is three words");
const _: () = assert!(
    std::mem::size_of::<Value>() <= 32,
    "Value is at most four words"
);

/// An item: attribute name → value.
///
/// A plain alias of `BTreeMap`, so the engine and the client build items with the standard
/// map API; the sorted order makes the binary encoding deterministic for free.
pub type Item = BTreeMap<String, Value>;

/// A DynamoDB attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// String (UTF-8).
    S(String),
    /// Number: an exact decimal of up to 38 significant digits.
    N(Number),
    /// Binary.
    B(Vec<u8>),
    /// Boolean.
    Bool(bool),
    /// Null.
    Null,
    /// Map of name → value (a document).
    M(BTreeMap<String, Value>),
    /// List of values (a document).
    L(Vec<Value>),
    /// String set; non-empty.
    Ss(BTreeSet<String>),
    /// Number set; non-empty.
    Ns(BTreeSet<Number>),
    /// Binary set; non-empty.
    Bs(BTreeSet<Vec<u8>>),
}

impl Value {
    /// DynamoDB's name for the value's type: `"S"`, `"N"`, `"B"`, `"BOOL"`, `"NULL"`, `"M"`,
    /// `"L"`, `"SS"`, `"NS"`, `"BS"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::S(_) => "S",
            Value::N(_) => "N",
            Value::B(_) => "B",
            Value::Bool(_) => "BOOL",
            Value::Null => "NULL",
            Value::M(_) => "M",
            Value::L(_) => "L",
            Value::Ss(_) => "SS",
            Value::Ns(_) => "NS",
            Value::Bs(_) => "BS",
        }
    }

    /// The value's size by DynamoDB's rules (without any attribute name).
    pub fn size_bytes(&self) -> usize {
        match self {
            Value::S(s) => s.len(),
            Value::N(n) => n.size_bytes(),
            Value::B(b) => b.len(),
            Value::Bool(_) | Value::Null => 1,
            Value::M(map) => {
                DOCUMENT_OVERHEAD_BYTES
                    + map
                        .iter()
                        .map(|(name, value)| {
                            name.len() + value.size_bytes() + DOCUMENT_ELEMENT_OVERHEAD_BYTES
                        })
                        .sum::<usize>()
            }
            Value::L(list) => {
                DOCUMENT_OVERHEAD_BYTES
                    + list
                        .iter()
                        .map(|value| value.size_bytes() + DOCUMENT_ELEMENT_OVERHEAD_BYTES)
                        .sum::<usize>()
            }
            Value::Ss(set) => set.iter().map(String::len).sum(),
            Value::Ns(set) => set.iter().map(Number::size_bytes).sum(),
            Value::Bs(set) => set.iter().map(Vec::len).sum(),
        }
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::S(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::S(s.to_owned())
    }
}

impl From<Number> for Value {
    fn from(n: Number) -> Value {
        Value::N(n)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::B(b)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// The item's size by DynamoDB's rules: for each attribute, the UTF-8 length of its name
/// plus the size of its value, where
/// - S and B: their length in bytes; N: 1 byte per two significant digits, plus 1;
/// - BOOL and NULL: 1 byte;
/// - M and L: 3 bytes, plus per element 1 byte, its size and (for M) its name's length;
/// - SS, NS, BS: the sum of the elements' sizes.
pub fn item_size_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value.size_bytes())
        .sum()
}

/// Checks an item against DynamoDB's rules (see the module docs); the first breach found
/// is returned. Key attributes are checked by [`crate::model::KeySchema::key_of`].
pub fn validate_item(item: &Item) -> Result<(), ModelError> {
    for (name, value) in item {
        check_name(name)?;
        check_value(name, value, 0)?;
    }
    let size_bytes = item_size_bytes(item);
    if size_bytes > ITEM_BYTES_MAX {
        return Err(ModelError::ItemTooLarge {
            size_bytes,
            max_bytes: ITEM_BYTES_MAX,
        });
    }
    Ok(())
}

pub(crate) fn check_name(name: &str) -> Result<(), ModelError> {
    if name.is_empty() || name.len() > ATTRIBUTE_NAME_BYTES_MAX {
        return Err(ModelError::AttributeNameLength {
            name_start: input_start(name),
            len_bytes: name.len(),
            max_bytes: ATTRIBUTE_NAME_BYTES_MAX,
        });
    }
    Ok(())
}

/// Checks one value; `depth` counts the maps and lists enclosing it.
fn check_value(attribute: &str, value: &Value, depth: usize) -> Result<(), ModelError> {
    let empty_set = || {
        Err(ModelError::EmptySet {
            attribute: attribute.to_owned(),
        })
    };
    match value {
        Value::S(_) | Value::N(_) | Value::B(_) | Value::Bool(_) | Value::Null => Ok(()),
        Value::Ss(set) if set.is_empty() => empty_set(),
        Value::Ns(set) if set.is_empty() => empty_set(),
        Value::Bs(set) if set.is_empty() => empty_set(),
        Value::Ss(_) | Value::Ns(_) | Value::Bs(_) => Ok(()),
        Value::M(_) | Value::L(_) if depth + 1 > NESTING_DEPTH_MAX => {
            Err(ModelError::NestingTooDeep {
                attribute: attribute.to_owned(),
                depth: depth + 1,
                depth_max: NESTING_DEPTH_MAX,
            })
        }
        Value::M(map) => {
            for (name, inner) in map {
                check_name(name)?;
                check_value(attribute, inner, depth + 1)?;
            }
            Ok(())
        }
        Value::L(list) => {
            for inner in list {
                check_value(attribute, inner, depth + 1)?;
            }
            Ok(())
        }
    }
}
