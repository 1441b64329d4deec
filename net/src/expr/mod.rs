//! DynamoDB expressions: parsing and evaluation of condition, filter, update, key
//! condition and projection expressions.
//!
//! Pure code: no I/O, no clocks, no randomness. Parsing turns a string into a syntax tree
//! that keeps its placeholders (`#n`, `:v`); evaluation resolves them against the
//! request's [`ExpressionAttributes`]. Every error is an [`ExprError`], a validation error
//! on the wire.
//!
//! - [`token`] (private) — the tokenizer, with byte offsets for error messages.
//! - [`parse`] — the recursive-descent parser and the reserved words.
//! - [`ast`] — the syntax trees and their canonical `Display`.
//! - [`attributes`] — [`ExpressionAttributes`]: placeholder lookup and the
//!   every-placeholder-is-used check over all expressions of a request.
//! - `path` (private) — resolved document paths, lookup in items, overlap checks.
//! - [`condition`] — [`Condition::evaluate`] (ConditionExpression, FilterExpression).
//! - [`update`] — [`Update::check`] and [`Update::apply`] (UpdateItem).
//! - [`key_condition`] — KeyConditionExpression to a partition key and a
//!   [`crate::model::SortCondition`] (Query).
//! - [`projection`] — [`Projection::apply`] (ProjectionExpression).
//! - [`fuzz`] — the fuzz body, run by tests and by `net/fuzz`.
//! - [`error`] — [`ExprError`].
//!
//! Not supported: DynamoDB's full list of ~570 reserved words (only the grammar's keywords
//! are reserved), the legacy parameters (`Expected`, `AttributeUpdates`, `KeyConditions`,
//! `QueryFilter`, `AttributesToGet`), and PartiQL.

pub mod ast;
pub mod attributes;
pub mod condition;
pub mod error;
pub mod fuzz;
pub mod key_condition;
pub mod parse;
mod path;
pub mod projection;
mod token;
pub mod update;

#[cfg(test)]
mod tests;

pub use ast::{
    Comparator, Condition, Name, Operand, Path, PathElement, Projection, SetAction, SetValue,
    Update, UpdateClause, UpdateOperand,
};
pub use attributes::{ExprRef, ExpressionAttributes};
pub use error::ExprError;
pub use key_condition::key_condition;
pub use parse::{
    is_reserved_word, parse_condition, parse_projection, parse_update, RESERVED_WORDS,
};

/// Longest expression string, in bytes (DynamoDB: 4 KB per expression).
pub const EXPRESSION_BYTES_MAX: usize = 4096;
/// Most operators and functions in one expression (DynamoDB's limit).
pub const OPERATORS_MAX: usize = 300;
/// Most operands of one `IN` (DynamoDB's limit).
pub const IN_OPERANDS_MAX: usize = 100;
/// Deepest document path: a top-level name and 31 more elements (DynamoDB's 32 levels).
pub const PATH_DEPTH_MAX: usize = 32;
/// Deepest nesting of parentheses, `NOT` and update functions; keeps the recursive
/// parser's stack bounded (DynamoDB bounds it by the 4 KB length alone).
pub const NESTING_MAX: usize = 64;

const _: () = assert!(PATH_DEPTH_MAX == crate::model::NESTING_DEPTH_MAX);
