//! Key schemas, key values and primary keys.
//!
//! A table's [`KeySchema`] names a partition key and an optional sort key, each of type S, N
//! or B. [`KeySchema::key_of`] extracts an item's [`PrimaryKey`] with DynamoDB's checks: the
//! attribute is present, has the declared type, and a string or binary is non-empty and at
//! most 2048 bytes (partition key) or 1024 bytes (sort key).
//!
//! [`KeyValue`]'s `Ord` is DynamoDB's order within one type: S by UTF-8 bytes, N by numeric
//! value, B by unsigned bytes. The order between types (S < N < B) only exists so that the
//! type is `Ord`; a table never compares keys of different types.

use crate::model::error::{input_start, ModelError};
use crate::model::number::Number;
use crate::model::value::{Item, Value};

/// Longest key attribute name, in bytes.
pub const KEY_ATTRIBUTE_NAME_BYTES_MAX: usize = 255;
/// Longest partition key value (S or B), in bytes.
pub const PARTITION_KEY_BYTES_MAX: usize = 2048;
/// Longest sort key value (S or B), in bytes.
pub const SORT_KEY_BYTES_MAX: usize = 1024;

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

/// A key attribute of a key schema: its name and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyAttribute {
    /// The attribute name, 1..=255 bytes.
    pub name: String,
    /// The attribute's type.
    pub key_type: KeyType,
}

impl KeyAttribute {
    /// A key attribute named `name` of type `key_type`.
    pub fn new(name: impl Into<String>, key_type: KeyType) -> KeyAttribute {
        KeyAttribute {
            name: name.into(),
            key_type,
        }
    }
}

/// A table's primary-key schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySchema {
    /// The partition (hash) key.
    pub partition_key: KeyAttribute,
    /// The sort (range) key, if the table has one.
    pub sort_key: Option<KeyAttribute>,
}

/// The value of a key attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// String key, ordered by UTF-8 bytes.
    S(String),
    /// Number key, ordered numerically.
    N(Number),
    /// Binary key, ordered by unsigned bytes.
    B(Vec<u8>),
}

/// An item's primary key: partition key value and, if the schema has one, sort key value.
///
/// The derived `Ord` is (partition, sort); storage keys order by
/// (`partition_hash(partition)`, partition, sort) instead, see
/// [`crate::model::storage_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrimaryKey {
    /// The partition key value.
    pub partition: KeyValue,
    /// The sort key value; `Some` exactly when the schema has a sort key.
    pub sort: Option<KeyValue>,
}

impl KeyValue {
    /// The value's key type.
    pub fn key_type(&self) -> KeyType {
        match self {
            KeyValue::S(_) => KeyType::S,
            KeyValue::N(_) => KeyType::N,
            KeyValue::B(_) => KeyType::B,
        }
    }

    /// The value as an attribute value.
    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::S(s) => Value::S(s.clone()),
            KeyValue::N(n) => Value::N(*n),
            KeyValue::B(b) => Value::B(b.clone()),
        }
    }
}

impl From<KeyValue> for Value {
    fn from(key: KeyValue) -> Value {
        match key {
            KeyValue::S(s) => Value::S(s),
            KeyValue::N(n) => Value::N(n),
            KeyValue::B(b) => Value::B(b),
        }
    }
}

impl KeySchema {
    /// A schema with a partition key only.
    pub fn partition_only(partition_key: KeyAttribute) -> KeySchema {
        KeySchema {
            partition_key,
            sort_key: None,
        }
    }

    /// A schema with a partition key and a sort key.
    pub fn with_sort_key(partition_key: KeyAttribute, sort_key: KeyAttribute) -> KeySchema {
        KeySchema {
            partition_key,
            sort_key: Some(sort_key),
        }
    }

    /// Checks the schema: key names are 1..=255 bytes and the two keys differ.
    pub fn validate(&self) -> Result<(), ModelError> {
        for attribute in std::iter::once(&self.partition_key).chain(self.sort_key.as_ref()) {
            let len_bytes = attribute.name.len();
            if len_bytes == 0 || len_bytes > KEY_ATTRIBUTE_NAME_BYTES_MAX {
                return Err(ModelError::AttributeNameLength {
                    name_start: input_start(&attribute.name),
                    len_bytes,
                    max_bytes: KEY_ATTRIBUTE_NAME_BYTES_MAX,
                });
            }
        }
        if let Some(sort_key) = &self.sort_key {
            if sort_key.name == self.partition_key.name {
                return Err(ModelError::DuplicateKeyAttribute {
                    attribute: sort_key.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Extracts the primary key of `item` (or of a key-only map, as GetItem's `Key`).
    ///
    /// Errors: a key attribute is missing, has another type than declared, or is an empty
    /// or too long string or binary.
    pub fn key_of(&self, item: &Item) -> Result<PrimaryKey, ModelError> {
        let partition = key_value(&self.partition_key, item, PARTITION_KEY_BYTES_MAX)?;
        let sort = match &self.sort_key {
            Some(sort_key) => Some(key_value(sort_key, item, SORT_KEY_BYTES_MAX)?),
            None => None,
        };
        Ok(PrimaryKey { partition, sort })
    }

    /// Checks that `key` has the schema's shape: types match, a sort key is present
    /// exactly when the schema has one, and values are non-empty and not too long.
    pub fn check_key(&self, key: &PrimaryKey) -> Result<(), ModelError> {
        check_key_value(&self.partition_key, &key.partition, PARTITION_KEY_BYTES_MAX)?;
        match (&self.sort_key, &key.sort) {
            (Some(attribute), Some(value)) => check_key_value(attribute, value, SORT_KEY_BYTES_MAX),
            (None, None) => Ok(()),
            (Some(attribute), None) => Err(ModelError::MissingKeyAttribute {
                attribute: attribute.name.clone(),
            }),
            (None, Some(_)) => Err(ModelError::UnexpectedSortKey),
        }
    }

    /// The key attributes of `key` as an item (for a Get by key, or a delete tombstone).
    pub fn key_item(&self, key: &PrimaryKey) -> Item {
        let mut item = Item::new();
        item.insert(self.partition_key.name.clone(), key.partition.to_value());
        if let (Some(attribute), Some(value)) = (&self.sort_key, &key.sort) {
            item.insert(attribute.name.clone(), value.to_value());
        }
        item
    }
}

fn key_value(
    attribute: &KeyAttribute,
    item: &Item,
    max_bytes: usize,
) -> Result<KeyValue, ModelError> {
    let value = item
        .get(&attribute.name)
        .ok_or_else(|| ModelError::MissingKeyAttribute {
            attribute: attribute.name.clone(),
        })?;
    let key = match (attribute.key_type, value) {
        (KeyType::S, Value::S(s)) => KeyValue::S(s.clone()),
        (KeyType::N, Value::N(n)) => KeyValue::N(*n),
        (KeyType::B, Value::B(b)) => KeyValue::B(b.clone()),
        (expected, other) => {
            return Err(ModelError::KeyTypeMismatch {
                attribute: attribute.name.clone(),
                expected,
                found: other.type_name(),
            })
        }
    };
    check_key_value(attribute, &key, max_bytes)?;
    Ok(key)
}

fn check_key_value(
    attribute: &KeyAttribute,
    key: &KeyValue,
    max_bytes: usize,
) -> Result<(), ModelError> {
    if key.key_type() != attribute.key_type {
        return Err(ModelError::KeyTypeMismatch {
            attribute: attribute.name.clone(),
            expected: attribute.key_type,
            found: key.to_value().type_name(),
        });
    }
    let len_bytes = match key {
        KeyValue::S(s) => s.len(),
        KeyValue::B(b) => b.len(),
        KeyValue::N(_) => return Ok(()),
    };
    if len_bytes == 0 {
        return Err(ModelError::EmptyKeyValue {
            attribute: attribute.name.clone(),
        });
    }
    if len_bytes > max_bytes {
        return Err(ModelError::KeyValueTooLong {
            attribute: attribute.name.clone(),
            len_bytes,
            max_bytes,
        });
    }
    Ok(())
}

/// A condition on the sort key within one partition key.
/// The set is DynamoDB's whole set of key conditions, so it is closed.
#[derive(Debug, Clone, PartialEq)]
pub enum SortCondition {
    /// Every sort key.
    Any,
    /// `sk = v`
    Eq(KeyValue),
    /// `sk < v`
    Lt(KeyValue),
    /// `sk <= v`
    Le(KeyValue),
    /// `sk > v`
    Gt(KeyValue),
    /// `sk >= v`
    Ge(KeyValue),
    /// `a <= sk <= b`
    Between(KeyValue, KeyValue),
    /// `begins_with(sk, prefix)` (S or B sort keys)
    BeginsWith(KeyValue),
}
