//! [`ExpressionAttributes`]: a request's expression attribute names (`#n`) and values
//! (`:v`), their lookup, and DynamoDB's rule that every one supplied is used.

use std::collections::{BTreeMap, BTreeSet};

use crate::expr::ast::{
    Condition, Name, Operand, Path, PathElement, Projection, SetValue, Update, UpdateClause,
    UpdateOperand,
};
use crate::expr::error::ExprError;
use crate::model::Value;

static NO_NAMES: BTreeMap<String, String> = BTreeMap::new();
static NO_VALUES: BTreeMap<String, Value> = BTreeMap::new();

/// The expression attribute names and values of one request, borrowed.
///
/// Keys carry their sigil, as on the wire: `"#n"` and `":v"`.
#[derive(Debug, Clone, Copy)]
pub struct ExpressionAttributes<'a> {
    names: &'a BTreeMap<String, String>,
    values: &'a BTreeMap<String, Value>,
}

/// One parsed expression of a request, for [`ExpressionAttributes::check_usage`].
#[derive(Debug, Clone, Copy)]
pub enum ExprRef<'e> {
    /// A condition, filter or key condition expression.
    Condition(&'e Condition),
    /// An update expression.
    Update(&'e Update),
    /// A projection expression.
    Projection(&'e Projection),
}

impl<'a> ExpressionAttributes<'a> {
    /// The request's names (`#n` → attribute name) and values (`:v` → value).
    pub fn new(
        names: &'a BTreeMap<String, String>,
        values: &'a BTreeMap<String, Value>,
    ) -> ExpressionAttributes<'a> {
        ExpressionAttributes { names, values }
    }

    /// No names and no values (a request without either map).
    pub fn none() -> ExpressionAttributes<'static> {
        ExpressionAttributes {
            names: &NO_NAMES,
            values: &NO_VALUES,
        }
    }

    /// The attribute name a path name stands for.
    pub fn name<'n>(&self, name: &'n Name) -> Result<&'n str, ExprError>
    where
        'a: 'n,
    {
        match name {
            Name::Bare(bare) => Ok(bare),
            Name::Placeholder(placeholder) => self
                .names
                .get(placeholder)
                .map(String::as_str)
                .ok_or_else(|| ExprError::UndefinedName {
                    name: placeholder.clone(),
                }),
        }
    }

    /// The value of a `:v` placeholder.
    pub fn value(&self, placeholder: &str) -> Result<&'a Value, ExprError> {
        self.values
            .get(placeholder)
            .ok_or_else(|| ExprError::UndefinedValue {
                name: placeholder.to_owned(),
            })
    }

    /// Checks DynamoDB's placeholder rules over all expressions of one request: every
    /// placeholder used is defined, and every name and value supplied is used by at least
    /// one of them. Call it once per request, after parsing and before evaluating.
    pub fn check_usage(&self, expressions: &[ExprRef<'_>]) -> Result<(), ExprError> {
        let mut used = Used::default();
        for expression in expressions {
            match expression {
                ExprRef::Condition(c) => used.condition(c),
                ExprRef::Update(u) => used.update(u),
                ExprRef::Projection(p) => p.paths.iter().for_each(|p| used.path(p)),
            }
        }
        if let Some(name) = used.names.iter().find(|n| !self.names.contains_key(**n)) {
            return Err(ExprError::UndefinedName {
                name: (*name).to_owned(),
            });
        }
        if let Some(name) = used.values.iter().find(|v| !self.values.contains_key(**v)) {
            return Err(ExprError::UndefinedValue {
                name: (*name).to_owned(),
            });
        }
        let unused_names: Vec<String> = self
            .names
            .keys()
            .filter(|n| !used.names.contains(n.as_str()))
            .cloned()
            .collect();
        if !unused_names.is_empty() {
            return Err(ExprError::UnusedNames {
                names: unused_names,
            });
        }
        let unused_values: Vec<String> = self
            .values
            .keys()
            .filter(|v| !used.values.contains(v.as_str()))
            .cloned()
            .collect();
        if !unused_values.is_empty() {
            return Err(ExprError::UnusedValues {
                names: unused_values,
            });
        }
        Ok(())
    }
}

/// The placeholders the expressions use.
#[derive(Default)]
struct Used<'e> {
    names: BTreeSet<&'e str>,
    values: BTreeSet<&'e str>,
}

impl<'e> Used<'e> {
    fn name(&mut self, name: &'e Name) {
        if let Name::Placeholder(placeholder) = name {
            self.names.insert(placeholder);
        }
    }

    fn path(&mut self, path: &'e Path) {
        self.name(&path.attribute);
        for element in &path.elements {
            if let PathElement::Name(name) = element {
                self.name(name);
            }
        }
    }

    fn operand(&mut self, operand: &'e Operand) {
        match operand {
            Operand::Path(path) | Operand::Size(path) => self.path(path),
            Operand::Value(value) => {
                self.values.insert(value);
            }
        }
    }

    fn condition(&mut self, condition: &'e Condition) {
        match condition {
            Condition::Compare(a, _, b) => {
                self.operand(a);
                self.operand(b);
            }
            Condition::Between(a, b, c) => {
                self.operand(a);
                self.operand(b);
                self.operand(c);
            }
            Condition::In(a, list) => {
                self.operand(a);
                list.iter().for_each(|o| self.operand(o));
            }
            Condition::AttributeExists(path) | Condition::AttributeNotExists(path) => {
                self.path(path)
            }
            Condition::AttributeType(path, o)
            | Condition::BeginsWith(path, o)
            | Condition::Contains(path, o) => {
                self.path(path);
                self.operand(o);
            }
            Condition::Not(inner) => self.condition(inner),
            Condition::And(a, b) | Condition::Or(a, b) => {
                self.condition(a);
                self.condition(b);
            }
        }
    }

    fn update_operand(&mut self, operand: &'e UpdateOperand) {
        match operand {
            UpdateOperand::Path(path) => self.path(path),
            UpdateOperand::Value(value) => {
                self.values.insert(value);
            }
            UpdateOperand::IfNotExists(path, fallback) => {
                self.path(path);
                self.update_operand(fallback);
            }
            UpdateOperand::ListAppend(a, b) => {
                self.update_operand(a);
                self.update_operand(b);
            }
        }
    }

    fn update(&mut self, update: &'e Update) {
        for clause in &update.clauses {
            match clause {
                UpdateClause::Set(actions) => {
                    for action in actions {
                        self.path(&action.path);
                        match &action.value {
                            SetValue::Operand(a) => self.update_operand(a),
                            SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
                                self.update_operand(a);
                                self.update_operand(b);
                            }
                        }
                    }
                }
                UpdateClause::Remove(paths) => paths.iter().for_each(|p| self.path(p)),
                UpdateClause::Add(actions) | UpdateClause::Delete(actions) => {
                    for (path, value) in actions {
                        self.path(path);
                        self.values.insert(value);
                    }
                }
            }
        }
    }
}
