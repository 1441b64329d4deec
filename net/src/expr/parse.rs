//! The recursive-descent parser for the four expression kinds.
//!
//! Grammar (keywords case-insensitive, function names case-sensitive, as in DynamoDB):
//!
//! ```text
//! condition  := and (OR and)*
//! and        := not (AND not)*
//! not        := NOT not | '(' condition ')' | function | operand comparison
//! comparison := comparator operand | BETWEEN operand AND operand
//!             | IN '(' operand (',' operand)* ')'
//! function   := attribute_exists(path) | attribute_not_exists(path)
//!             | attribute_type(path, operand) | begins_with(path, operand)
//!             | contains(path, operand)
//! operand    := path | :value | size(path)
//! path       := name ('.' name | '[' digits ']')*        name := bare | #placeholder
//!
//! update     := (SET set (',' set)* | REMOVE path (',' path)*
//!              | ADD path :value (',' path :value)* | DELETE path :value (...)*)+
//! set        := path '=' operand2 (('+' | '-') operand2)?
//! operand2   := path | :value | if_not_exists(path, operand2) | list_append(operand2, operand2)
//!
//! projection := path (',' path)*
//! ```
//!
//! Bounded work: the input is at most [`EXPRESSION_BYTES_MAX`] bytes, at most
//! [`OPERATORS_MAX`] operators and functions, recursion at most [`NESTING_MAX`] deep.

use crate::expr::ast::{
    Comparator, Condition, Name, Operand, Path, PathElement, Projection, SetAction, SetValue,
    Update, UpdateClause, UpdateOperand,
};
use crate::expr::error::ExprError;
use crate::expr::token::{tokenize, Kind, Token};
use crate::expr::{
    EXPRESSION_BYTES_MAX, IN_OPERANDS_MAX, NESTING_MAX, OPERATORS_MAX, PATH_DEPTH_MAX,
};

/// Words of the grammar, refused as bare attribute names (compared case-insensitively).
///
/// DynamoDB reserves some 570 words; keel reserves only its grammar's, so it accepts
/// some bare names that DynamoDB refuses, never the reverse.
pub const RESERVED_WORDS: &[&str] = &[
    "ADD", "AND", "BETWEEN", "DELETE", "IN", "NOT", "OR", "REMOVE", "SET",
];

/// True if `word` is a reserved word (case-insensitive).
pub fn is_reserved_word(word: &str) -> bool {
    RESERVED_WORDS.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// Parses a condition expression (ConditionExpression, FilterExpression, or the syntax
/// of a KeyConditionExpression).
pub fn parse_condition(text: &str) -> Result<Condition, ExprError> {
    let mut parser = Parser::new(text, "condition")?;
    let condition = parser.condition()?;
    parser.expect_end()?;
    Ok(condition)
}

/// Parses an update expression.
pub fn parse_update(text: &str) -> Result<Update, ExprError> {
    let mut parser = Parser::new(text, "update")?;
    let update = parser.update()?;
    parser.expect_end()?;
    Ok(update)
}

/// Parses a projection expression.
pub fn parse_projection(text: &str) -> Result<Projection, ExprError> {
    let mut parser = Parser::new(text, "projection")?;
    let mut paths = vec![parser.path()?];
    while parser.eat(Kind::Comma) {
        paths.push(parser.path()?);
    }
    parser.expect_end()?;
    Ok(Projection { paths })
}

/// Clause keywords of an update expression, in the order of [`UpdateClause`]'s variants.
const CLAUSES: [&str; 4] = ["SET", "REMOVE", "ADD", "DELETE"];

struct Parser<'s> {
    tokens: Vec<Token<'s>>,
    at: usize,
    operators: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn new(text: &'s str, kind: &'static str) -> Result<Parser<'s>, ExprError> {
        if text.len() > EXPRESSION_BYTES_MAX {
            return Err(ExprError::TooLong {
                len_bytes: text.len(),
                max_bytes: EXPRESSION_BYTES_MAX,
            });
        }
        let tokens = tokenize(text)?;
        if tokens.len() == 1 {
            return Err(ExprError::Empty { kind });
        }
        Ok(Parser {
            tokens,
            at: 0,
            operators: 0,
            depth: 0,
        })
    }

    fn peek(&self) -> Token<'s> {
        // The token list always ends with `End`, and `bump` never moves past it.
        self.tokens.get(self.at).copied().unwrap_or(Token {
            kind: Kind::End,
            offset: 0,
        })
    }

    fn peek_second(&self) -> Kind<'s> {
        self.tokens.get(self.at + 1).map_or(Kind::End, |t| t.kind)
    }

    fn bump(&mut self) -> Token<'s> {
        let token = self.peek();
        if token.kind != Kind::End {
            self.at += 1;
        }
        token
    }

    fn eat(&mut self, kind: Kind<'_>) -> bool {
        if self.peek().kind == kind {
            self.bump();
            true
        } else {
            false
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek().kind, Kind::Ident(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn error(&self, token: Token<'_>, expected: &str) -> ExprError {
        ExprError::Syntax {
            offset: token.offset,
            message: format!("expected {expected}, found {}", token.kind.describe()),
        }
    }

    fn expect(&mut self, kind: Kind<'_>, expected: &str) -> Result<(), ExprError> {
        let token = self.peek();
        if token.kind == kind {
            self.bump();
            Ok(())
        } else {
            Err(self.error(token, expected))
        }
    }

    fn expect_end(&mut self) -> Result<(), ExprError> {
        let token = self.peek();
        if token.kind == Kind::End {
            Ok(())
        } else {
            Err(self.error(token, "the end of the expression"))
        }
    }

    fn count_operator(&mut self) -> Result<(), ExprError> {
        self.operators += 1;
        if self.operators > OPERATORS_MAX {
            return Err(ExprError::TooManyOperators { max: OPERATORS_MAX });
        }
        Ok(())
    }

    fn enter(&mut self, offset: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > NESTING_MAX {
            return Err(ExprError::NestingTooDeep {
                offset,
                max: NESTING_MAX,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- paths ----

    fn name(&mut self) -> Result<Name, ExprError> {
        let token = self.peek();
        match token.kind {
            Kind::Ident(word) if is_reserved_word(word) => Err(ExprError::ReservedWord {
                offset: token.offset,
                word: word.to_owned(),
            }),
            Kind::Ident(word) => {
                self.bump();
                Ok(Name::Bare(word.to_owned()))
            }
            Kind::NamePlaceholder(name) => {
                self.bump();
                Ok(Name::Placeholder(name.to_owned()))
            }
            _ => Err(self.error(token, "an attribute name")),
        }
    }

    fn path(&mut self) -> Result<Path, ExprError> {
        let start = self.peek().offset;
        let attribute = self.name()?;
        let mut elements = Vec::new();
        loop {
            let element = if self.eat(Kind::Dot) {
                PathElement::Name(self.name()?)
            } else if self.eat(Kind::LBracket) {
                let token = self.bump();
                let Kind::Index(digits) = token.kind else {
                    return Err(self.error(token, "a list index"));
                };
                let index = digits.parse::<usize>().map_err(|_| ExprError::Syntax {
                    offset: token.offset,
                    message: format!("list index {digits} is too large"),
                })?;
                self.expect(Kind::RBracket, "\"]\"")?;
                PathElement::Index(index)
            } else {
                break;
            };
            if elements.len() + 1 >= PATH_DEPTH_MAX {
                return Err(ExprError::PathTooDeep {
                    offset: start,
                    max: PATH_DEPTH_MAX,
                });
            }
            elements.push(element);
        }
        Ok(Path {
            attribute,
            elements,
        })
    }

    // ---- conditions ----

    fn condition(&mut self) -> Result<Condition, ExprError> {
        let mut left = self.and()?;
        while self.peek_keyword("OR") {
            self.bump();
            self.count_operator()?;
            let right = self.and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ExprError> {
        let mut left = self.not()?;
        while self.peek_keyword("AND") {
            self.bump();
            self.count_operator()?;
            let right = self.not()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, ExprError> {
        let token = self.peek();
        if self.peek_keyword("NOT") {
            self.bump();
            self.count_operator()?;
            self.enter(token.offset)?;
            let inner = self.not()?;
            self.leave();
            return Ok(Condition::Not(Box::new(inner)));
        }
        if token.kind == Kind::LParen {
            self.bump();
            self.enter(token.offset)?;
            let inner = self.condition()?;
            self.leave();
            self.expect(Kind::RParen, "\")\" or AND or OR")?;
            return Ok(inner);
        }
        if let (Kind::Ident(function), Kind::LParen) = (token.kind, self.peek_second()) {
            if function != "size" {
                return self.function_condition(token, function);
            }
        }
        self.comparison()
    }

    fn function_condition(
        &mut self,
        token: Token<'s>,
        function: &'s str,
    ) -> Result<Condition, ExprError> {
        let refuse = |reason| ExprError::Function {
            offset: token.offset,
            function: function.to_owned(),
            reason,
        };
        let arity = match function {
            "attribute_exists" | "attribute_not_exists" => 1,
            "attribute_type" | "begins_with" | "contains" => 2,
            "if_not_exists" | "list_append" => {
                return Err(refuse(
                    "allowed only in the SET clause of an update expression",
                ))
            }
            _ => return Err(refuse("unknown function")),
        };
        self.count_operator()?;
        self.bump();
        self.expect(Kind::LParen, "\"(\"")?;
        let path = self.path()?;
        let second = if arity == 2 {
            self.expect(Kind::Comma, "\",\"")?;
            Some(self.operand()?)
        } else {
            None
        };
        if self.peek().kind == Kind::Comma {
            return Err(refuse("too many arguments"));
        }
        self.expect(Kind::RParen, "\")\"")?;
        Ok(match (function, second) {
            ("attribute_exists", _) => Condition::AttributeExists(path),
            ("attribute_not_exists", _) => Condition::AttributeNotExists(path),
            ("attribute_type", Some(t)) => Condition::AttributeType(path, t),
            ("begins_with", Some(prefix)) => Condition::BeginsWith(path, prefix),
            (_, Some(operand)) => Condition::Contains(path, operand),
            (_, None) => return Err(refuse("too few arguments")),
        })
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        let token = self.peek();
        match token.kind {
            Kind::ValuePlaceholder(name) => {
                self.bump();
                Ok(Operand::Value(name.to_owned()))
            }
            Kind::Ident(function) if self.peek_second() == Kind::LParen => {
                if function != "size" {
                    return Err(ExprError::Function {
                        offset: token.offset,
                        function: function.to_owned(),
                        reason: "not a function that yields an operand (only size does)",
                    });
                }
                self.count_operator()?;
                self.bump();
                self.bump();
                let path = self.path()?;
                if self.peek().kind == Kind::Comma {
                    return Err(ExprError::Function {
                        offset: token.offset,
                        function: function.to_owned(),
                        reason: "takes 1 argument, found 2 or more",
                    });
                }
                self.expect(Kind::RParen, "\")\"")?;
                Ok(Operand::Size(path))
            }
            Kind::Ident(_) | Kind::NamePlaceholder(_) => Ok(Operand::Path(self.path()?)),
            _ => Err(self.error(token, "an operand")),
        }
    }

    fn comparison(&mut self) -> Result<Condition, ExprError> {
        let left = self.operand()?;
        let token = self.peek();
        let comparator = match token.kind {
            Kind::Eq => Some(Comparator::Eq),
            Kind::Ne => Some(Comparator::Ne),
            Kind::Lt => Some(Comparator::Lt),
            Kind::Le => Some(Comparator::Le),
            Kind::Gt => Some(Comparator::Gt),
            Kind::Ge => Some(Comparator::Ge),
            _ => None,
        };
        if let Some(comparator) = comparator {
            self.bump();
            self.count_operator()?;
            let right = self.operand()?;
            return Ok(Condition::Compare(left, comparator, right));
        }
        if self.peek_keyword("BETWEEN") {
            self.bump();
            self.count_operator()?;
            let low = self.operand()?;
            if !self.peek_keyword("AND") {
                return Err(self.error(self.peek(), "AND after BETWEEN's lower bound"));
            }
            self.bump();
            let high = self.operand()?;
            return Ok(Condition::Between(left, low, high));
        }
        if self.peek_keyword("IN") {
            self.bump();
            self.count_operator()?;
            self.expect(Kind::LParen, "\"(\" after IN")?;
            let mut list = vec![self.operand()?];
            while self.eat(Kind::Comma) {
                list.push(self.operand()?);
                if list.len() > IN_OPERANDS_MAX {
                    return Err(ExprError::TooManyInOperands {
                        offset: token.offset,
                        count: list.len(),
                        max: IN_OPERANDS_MAX,
                    });
                }
            }
            self.expect(Kind::RParen, "\",\" or \")\"")?;
            return Ok(Condition::In(left, list));
        }
        Err(self.error(token, "a comparator, BETWEEN or IN"))
    }

    // ---- updates ----

    fn update(&mut self) -> Result<Update, ExprError> {
        let mut clauses: Vec<UpdateClause> = Vec::new();
        let mut seen = [false; 4];
        loop {
            let token = self.peek();
            let Some(index) = CLAUSES.iter().position(|c| self.peek_keyword(c)) else {
                if clauses.is_empty() {
                    return Err(self.error(token, "SET, REMOVE, ADD or DELETE"));
                }
                break;
            };
            let clause_name = CLAUSES.get(index).copied().unwrap_or("SET");
            if let Some(seen) = seen.get_mut(index) {
                if *seen {
                    return Err(ExprError::DuplicateClause {
                        offset: token.offset,
                        clause: clause_name,
                    });
                }
                *seen = true;
            }
            self.bump();
            let clause = match index {
                0 => UpdateClause::Set(self.list(Parser::set_action)?),
                1 => UpdateClause::Remove(self.list(Parser::path)?),
                2 => UpdateClause::Add(self.list(Parser::path_and_value)?),
                _ => UpdateClause::Delete(self.list(Parser::path_and_value)?),
            };
            clauses.push(clause);
        }
        Ok(Update { clauses })
    }

    fn list<T>(
        &mut self,
        mut one: impl FnMut(&mut Parser<'s>) -> Result<T, ExprError>,
    ) -> Result<Vec<T>, ExprError> {
        let mut items = vec![one(self)?];
        while self.eat(Kind::Comma) {
            items.push(one(self)?);
        }
        Ok(items)
    }

    fn path_and_value(&mut self) -> Result<(Path, String), ExprError> {
        let path = self.path()?;
        let token = self.bump();
        match token.kind {
            Kind::ValuePlaceholder(name) => Ok((path, name.to_owned())),
            _ => Err(self.error(token, "an expression attribute value (:value)")),
        }
    }

    fn set_action(&mut self) -> Result<SetAction, ExprError> {
        let path = self.path()?;
        self.expect(Kind::Eq, "\"=\"")?;
        let first = self.update_operand()?;
        let value = if self.eat(Kind::Plus) {
            self.count_operator()?;
            SetValue::Plus(first, self.update_operand()?)
        } else if self.eat(Kind::Minus) {
            self.count_operator()?;
            SetValue::Minus(first, self.update_operand()?)
        } else {
            SetValue::Operand(first)
        };
        Ok(SetAction { path, value })
    }

    fn update_operand(&mut self) -> Result<UpdateOperand, ExprError> {
        let token = self.peek();
        match token.kind {
            Kind::ValuePlaceholder(name) => {
                self.bump();
                Ok(UpdateOperand::Value(name.to_owned()))
            }
            Kind::Ident(function) if self.peek_second() == Kind::LParen => {
                let refuse = |reason| ExprError::Function {
                    offset: token.offset,
                    function: function.to_owned(),
                    reason,
                };
                if function != "if_not_exists" && function != "list_append" {
                    return Err(match function {
                        "size"
                        | "attribute_exists"
                        | "attribute_not_exists"
                        | "attribute_type"
                        | "begins_with"
                        | "contains" => refuse("not allowed in an update expression"),
                        _ => refuse("unknown function"),
                    });
                }
                self.count_operator()?;
                self.enter(token.offset)?;
                self.bump();
                self.bump();
                let operand = if function == "if_not_exists" {
                    let path = self.path()?;
                    self.expect(Kind::Comma, "\",\"")?;
                    UpdateOperand::IfNotExists(path, Box::new(self.update_operand()?))
                } else {
                    let first = self.update_operand()?;
                    self.expect(Kind::Comma, "\",\"")?;
                    UpdateOperand::ListAppend(Box::new(first), Box::new(self.update_operand()?))
                };
                if self.peek().kind == Kind::Comma {
                    return Err(refuse("takes 2 arguments, found more"));
                }
                self.expect(Kind::RParen, "\")\"")?;
                self.leave();
                Ok(operand)
            }
            Kind::Ident(_) | Kind::NamePlaceholder(_) => Ok(UpdateOperand::Path(self.path()?)),
            _ => Err(self.error(token, "an operand")),
        }
    }
}
