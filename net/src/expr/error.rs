//! [`ExprError`]: every way an expression can be rejected.
//!
//! All of them are validation errors on the wire (DynamoDB's `ValidationException`); the
//! variants exist so that messages are precise and tests can tell the cases apart. Syntax
//! errors carry the byte offset in the expression string.

use crate::model::ModelError;

/// An error from parsing, checking or evaluating an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// The expression string is empty or only whitespace.
    #[error("invalid {kind} expression: the expression is empty")]
    Empty {
        /// Which expression (`"condition"`, `"update"`, ...).
        kind: &'static str,
    },
    /// The expression string is longer than [`crate::expr::EXPRESSION_BYTES_MAX`].
    #[error("expression of {len_bytes} bytes exceeds {max_bytes} bytes")]
    TooLong {
        /// The expression's length.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The expression does not follow the grammar.
    #[error("syntax error at {offset}: {message}")]
    Syntax {
        /// Byte offset in the expression where the error was found.
        offset: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// A reserved word is used as a bare attribute name.
    #[error(
        "syntax error at {offset}: {word:?} is a reserved word; use an expression attribute \
         name (#name) for it"
    )]
    ReservedWord {
        /// Byte offset of the word.
        offset: usize,
        /// The word as written.
        word: String,
    },
    /// More operators and functions than [`crate::expr::OPERATORS_MAX`].
    #[error("expression has more than {max} operators and functions")]
    TooManyOperators {
        /// The limit.
        max: usize,
    },
    /// Parentheses and `NOT` nest deeper than [`crate::expr::NESTING_MAX`].
    #[error("syntax error at {offset}: expression nests deeper than {max} levels")]
    NestingTooDeep {
        /// Byte offset where the limit was passed.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// A document path has more than [`crate::expr::PATH_DEPTH_MAX`] elements.
    #[error("document path at {offset} is deeper than {max} levels")]
    PathTooDeep {
        /// Byte offset of the path.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// An `IN` list has more than [`crate::expr::IN_OPERANDS_MAX`] operands.
    #[error("syntax error at {offset}: IN takes at most {max} operands, found {count}")]
    TooManyInOperands {
        /// Byte offset of the `IN`.
        offset: usize,
        /// Operands found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An update expression has a clause (`SET`, `REMOVE`, `ADD`, `DELETE`) twice.
    #[error("syntax error at {offset}: the {clause} clause appears more than once")]
    DuplicateClause {
        /// Byte offset of the second clause.
        offset: usize,
        /// The clause keyword.
        clause: &'static str,
    },
    /// A function is unknown, not allowed in this kind of expression or this position, or
    /// called with the wrong number of arguments.
    #[error("invalid function {function:?} at {offset}: {reason}")]
    Function {
        /// Byte offset of the function name.
        offset: usize,
        /// The function name as written.
        function: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An expression attribute name (`#n`) is used but not defined.
    #[error("expression attribute name {name} is used but not defined")]
    UndefinedName {
        /// The placeholder, with its `#`.
        name: String,
    },
    /// An expression attribute value (`:v`) is used but not defined.
    #[error("expression attribute value {name} is used but not defined")]
    UndefinedValue {
        /// The placeholder, with its `:`.
        name: String,
    },
    /// Expression attribute names were supplied but no expression of the request uses them.
    #[error("expression attribute names supplied but unused: {names:?}")]
    UnusedNames {
        /// The unused placeholders.
        names: Vec<String>,
    },
    /// Expression attribute values were supplied but no expression of the request uses them.
    #[error("expression attribute values supplied but unused: {names:?}")]
    UnusedValues {
        /// The unused placeholders.
        names: Vec<String>,
    },
    /// Two paths of one update or projection overlap (one is a prefix of the other) or
    /// conflict (one indexes a list where the other names a map entry).
    #[error("two document paths {relation}: {first} and {second}")]
    PathsOverlap {
        /// `"overlap"` or `"conflict"`.
        relation: &'static str,
        /// The first path, names resolved.
        first: String,
        /// The second path, names resolved.
        second: String,
    },
    /// An update touches a primary-key attribute.
    #[error("cannot update attribute {attribute:?}: it is part of the primary key")]
    KeyAttributeUpdate {
        /// The key attribute.
        attribute: String,
    },
    /// An operand has a type the operator or function does not accept.
    #[error("incorrect operand type for {operation}: expected {expected}, found {found}")]
    OperandType {
        /// The operator or function (`"+"`, `"ADD"`, `"list_append"`, `"begins_with"`...).
        operation: &'static str,
        /// The accepted types.
        expected: &'static str,
        /// The DynamoDB type name found.
        found: &'static str,
    },
    /// `attribute_type` was given a value that is not one of DynamoDB's type names.
    #[error("attribute_type: {found:?} is not a type (S, N, B, BOOL, NULL, M, L, SS, NS, BS)")]
    UnknownTypeName {
        /// The value given (type name, or the string if it is an S).
        found: String,
    },
    /// `BETWEEN` with constant bounds where the lower bound is above the upper bound.
    #[error("BETWEEN: the lower bound is greater than the upper bound")]
    BetweenBounds,
    /// An update operand reads an attribute that the item does not have.
    #[error("the update expression reads {path}, which the item does not have")]
    MissingAttribute {
        /// The path, names resolved.
        path: String,
    },
    /// An update path goes through an absent attribute or a value of the wrong kind.
    #[error("the document path {path} is invalid for update: {reason}")]
    InvalidUpdatePath {
        /// The path, names resolved.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Arithmetic needs more than 38 digits or leaves the number range.
    #[error("arithmetic: {0}")]
    Arithmetic(ModelError),
    /// The updated item breaks the item rules (400 KiB, nesting, empty names...).
    #[error("the updated item is invalid: {0}")]
    InvalidItem(ModelError),
    /// A key condition expression does not have the shape `pk = :v [AND sort condition]`.
    #[error("invalid key condition: {reason}")]
    KeyCondition {
        /// What is wrong.
        reason: String,
    },
}
