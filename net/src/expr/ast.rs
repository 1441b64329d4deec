//! The syntax trees of the four expression kinds, as written: placeholders (`#n`, `:v`) are
//! kept, not resolved, so that `parse(display(ast)) == ast` holds and resolution happens at
//! evaluation against the request's [`crate::expr::ExpressionAttributes`].
//!
//! `Display` prints a canonical form: single spaces, keywords in capitals, and parentheses
//! exactly where precedence (NOT > AND > OR, both left-associative) needs them.

use std::fmt;

/// An attribute name in a path: bare (`a`) or a placeholder (`#a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A bare name, `[A-Za-z_][A-Za-z0-9_]*`, not a reserved word.
    Bare(String),
    /// An expression attribute name, with its `#`.
    Placeholder(String),
}

/// One element of a document path after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathElement {
    /// `.name`: an entry of a map.
    Name(Name),
    /// `[index]`: an element of a list.
    Index(usize),
}

/// A document path: a top-level attribute then map entries and list elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The top-level attribute.
    pub attribute: Name,
    /// The rest: at most `PATH_DEPTH_MAX - 1` elements.
    pub elements: Vec<PathElement>,
}

/// An operand of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// The value at a path, if present.
    Path(Path),
    /// An expression attribute value, with its `:`.
    Value(String),
    /// `size(path)`: the length of a string, binary, set, list or map.
    Size(Path),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A condition (ConditionExpression, FilterExpression, KeyConditionExpression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `a op b`
    Compare(Operand, Comparator, Operand),
    /// `a BETWEEN low AND high`
    Between(Operand, Operand, Operand),
    /// `a IN (b, c, ...)`, 1..=100 operands.
    In(Operand, Vec<Operand>),
    /// `attribute_exists(path)`
    AttributeExists(Path),
    /// `attribute_not_exists(path)`
    AttributeNotExists(Path),
    /// `attribute_type(path, type)`
    AttributeType(Path, Operand),
    /// `begins_with(path, prefix)`
    BeginsWith(Path, Operand),
    /// `contains(path, operand)`
    Contains(Path, Operand),
    /// `NOT c`
    Not(Box<Condition>),
    /// `a AND b`
    And(Box<Condition>, Box<Condition>),
    /// `a OR b`
    Or(Box<Condition>, Box<Condition>),
}

/// An operand of a SET action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOperand {
    /// The value at a path; the path must exist.
    Path(Path),
    /// An expression attribute value.
    Value(String),
    /// `if_not_exists(path, operand)`: the value at path, else the operand.
    IfNotExists(Path, Box<UpdateOperand>),
    /// `list_append(a, b)`: the concatenation of two lists.
    ListAppend(Box<UpdateOperand>, Box<UpdateOperand>),
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    /// `operand`
    Operand(UpdateOperand),
    /// `operand + operand` (numbers)
    Plus(UpdateOperand, UpdateOperand),
    /// `operand - operand` (numbers)
    Minus(UpdateOperand, UpdateOperand),
}

/// `path = value`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAction {
    /// The path written.
    pub path: Path,
    /// The value written.
    pub value: SetValue,
}

/// One clause of an update expression, with its actions in written order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateClause {
    /// `SET path = value, ...`
    Set(Vec<SetAction>),
    /// `REMOVE path, ...`
    Remove(Vec<Path>),
    /// `ADD path :value, ...`
    Add(Vec<(Path, String)>),
    /// `DELETE path :set, ...`
    Delete(Vec<(Path, String)>),
}

/// An update expression: 1..=4 clauses, each kind at most once, in written order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The clauses.
    pub clauses: Vec<UpdateClause>,
}

/// A projection expression: the paths to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// The paths, at least one.
    pub paths: Vec<Path>,
}

impl Path {
    /// A path of one bare top-level name (for tests and callers building paths).
    pub fn bare(name: &str) -> Path {
        Path {
            attribute: Name::Bare(name.to_owned()),
            elements: Vec::new(),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Bare(name) | Name::Placeholder(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attribute)?;
        for element in &self.elements {
            match element {
                PathElement::Name(name) => write!(f, ".{name}")?,
                PathElement::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Path(path) => write!(f, "{path}"),
            Operand::Value(name) => f.write_str(name),
            Operand::Size(path) => write!(f, "size({path})"),
        }
    }
}

impl Comparator {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "<>",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
        }
    }
}

/// Binding strength for printing: OR 1, AND 2, NOT 3, everything else 4.
fn strength(condition: &Condition) -> u8 {
    match condition {
        Condition::Or(..) => 1,
        Condition::And(..) => 2,
        Condition::Not(_) => 3,
        _ => 4,
    }
}

/// Prints `condition`, parenthesized if it binds weaker than `min_strength`.
fn write_operand_condition(
    f: &mut fmt::Formatter<'_>,
    condition: &Condition,
    min_strength: u8,
) -> fmt::Result {
    if strength(condition) < min_strength {
        write!(f, "({condition})")
    } else {
        write!(f, "{condition}")
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Compare(a, op, b) => write!(f, "{a} {} {b}", op.symbol()),
            Condition::Between(a, low, high) => write!(f, "{a} BETWEEN {low} AND {high}"),
            Condition::In(a, list) => {
                write!(f, "{a} IN (")?;
                for (i, operand) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{operand}")?;
                }
                f.write_str(")")
            }
            Condition::AttributeExists(path) => write!(f, "attribute_exists({path})"),
            Condition::AttributeNotExists(path) => write!(f, "attribute_not_exists({path})"),
            Condition::AttributeType(path, t) => write!(f, "attribute_type({path}, {t})"),
            Condition::BeginsWith(path, p) => write!(f, "begins_with({path}, {p})"),
            Condition::Contains(path, o) => write!(f, "contains({path}, {o})"),
            Condition::Not(inner) => {
                f.write_str("NOT ")?;
                write_operand_condition(f, inner, 3)
            }
            // Left-associative: the left side may be as weak as the operator itself, the
            // right side must bind strictly tighter.
            Condition::And(a, b) => {
                write_operand_condition(f, a, 2)?;
                f.write_str(" AND ")?;
                write_operand_condition(f, b, 3)
            }
            Condition::Or(a, b) => {
                write_operand_condition(f, a, 1)?;
                f.write_str(" OR ")?;
                write_operand_condition(f, b, 2)
            }
        }
    }
}

impl fmt::Display for UpdateOperand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateOperand::Path(path) => write!(f, "{path}"),
            UpdateOperand::Value(name) => f.write_str(name),
            UpdateOperand::IfNotExists(path, v) => write!(f, "if_not_exists({path}, {v})"),
            UpdateOperand::ListAppend(a, b) => write!(f, "list_append({a}, {b})"),
        }
    }
}

impl fmt::Display for SetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetValue::Operand(a) => write!(f, "{a}"),
            SetValue::Plus(a, b) => write!(f, "{a} + {b}"),
            SetValue::Minus(a, b) => write!(f, "{a} - {b}"),
        }
    }
}

/// Writes `items` separated by `", "`.
fn write_list<T>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    mut one: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        one(f, item)?;
    }
    Ok(())
}

impl fmt::Display for UpdateClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateClause::Set(actions) => {
                f.write_str("SET ")?;
                write_list(f, actions, |f, a| write!(f, "{} = {}", a.path, a.value))
            }
            UpdateClause::Remove(paths) => {
                f.write_str("REMOVE ")?;
                write_list(f, paths, |f, p| write!(f, "{p}"))
            }
            UpdateClause::Add(actions) => {
                f.write_str("ADD ")?;
                write_list(f, actions, |f, (p, v)| write!(f, "{p} {v}"))
            }
            UpdateClause::Delete(actions) => {
                f.write_str("DELETE ")?;
                write_list(f, actions, |f, (p, v)| write!(f, "{p} {v}"))
            }
        }
    }
}

impl fmt::Display for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, clause) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{clause}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.paths, |f, p| write!(f, "{p}"))
    }
}
