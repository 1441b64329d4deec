//! The tokenizer: an expression string to tokens with byte offsets.
//!
//! Names are `[A-Za-z_][A-Za-z0-9_]*`; placeholders are `#` or `:` followed by
//! `[A-Za-z0-9_]+`; an index is `[0-9]+`. Whitespace is ASCII space, tab, CR and LF.
//! There are no literals: constants are always expression attribute values (`:v`).

use crate::expr::error::ExprError;

/// A token kind; `Ident`, `NamePlaceholder`, `ValuePlaceholder` and `Index` borrow their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'s> {
    /// A bare word: a name, keyword or function name.
    Ident(&'s str),
    /// `#name`
    NamePlaceholder(&'s str),
    /// `:value`
    ValuePlaceholder(&'s str),
    /// Digits.
    Index(&'s str),
    /// `.`
    Dot,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
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
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// The end of the input.
    End,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'s> {
    /// What it is.
    pub kind: Kind<'s>,
    /// Byte offset in the expression.
    pub offset: usize,
}

impl Kind<'_> {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Kind::Ident(s) | Kind::NamePlaceholder(s) | Kind::ValuePlaceholder(s) => {
                format!("{s:?}")
            }
            Kind::Index(s) => format!("number {s}"),
            Kind::Dot => "\".\"".to_owned(),
            Kind::LBracket => "\"[\"".to_owned(),
            Kind::RBracket => "\"]\"".to_owned(),
            Kind::LParen => "\"(\"".to_owned(),
            Kind::RParen => "\")\"".to_owned(),
            Kind::Comma => "\",\"".to_owned(),
            Kind::Eq => "\"=\"".to_owned(),
            Kind::Ne => "\"<>\"".to_owned(),
            Kind::Lt => "\"<\"".to_owned(),
            Kind::Le => "\"<=\"".to_owned(),
            Kind::Gt => "\">\"".to_owned(),
            Kind::Ge => "\">=\"".to_owned(),
            Kind::Plus => "\"+\"".to_owned(),
            Kind::Minus => "\"-\"".to_owned(),
            Kind::End => "the end of the expression".to_owned(),
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `text` into tokens, ending with one `End` token.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        let start = at;
        let run_end = |from: usize| {
            let mut end = from;
            while bytes.get(end).is_some_and(|&c| is_word_byte(c)) {
                end += 1;
            }
            end
        };
        // `text.get(..)` cannot fail below: every slice boundary is at an ASCII byte or at
        // the end, so it is a char boundary; the fallback keeps the tokenizer panic-free.
        let slice = |from: usize, to: usize| text.get(from..to).unwrap_or("");
        let (kind, next) = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                at += 1;
                continue;
            }
            b'#' | b':' => {
                let end = run_end(at + 1);
                if end == at + 1 {
                    return Err(ExprError::Syntax {
                        offset: start,
                        message: format!(
                            "expected a name after {:?}",
                            if b == b'#' { "#" } else { ":" }
                        ),
                    });
                }
                let s = slice(at, end);
                let kind = if b == b'#' {
                    Kind::NamePlaceholder(s)
                } else {
                    Kind::ValuePlaceholder(s)
                };
                (kind, end)
            }
            b'0'..=b'9' => {
                let mut end = at;
                while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if bytes.get(end).is_some_and(|&c| is_word_byte(c)) {
                    return Err(ExprError::Syntax {
                        offset: start,
                        message: "a name must not start with a digit".to_owned(),
                    });
                }
                (Kind::Index(slice(at, end)), end)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = run_end(at);
                (Kind::Ident(slice(at, end)), end)
            }
            b'.' => (Kind::Dot, at + 1),
            b'[' => (Kind::LBracket, at + 1),
            b']' => (Kind::RBracket, at + 1),
            b'(' => (Kind::LParen, at + 1),
            b')' => (Kind::RParen, at + 1),
            b',' => (Kind::Comma, at + 1),
            b'=' => (Kind::Eq, at + 1),
            b'+' => (Kind::Plus, at + 1),
            b'-' => (Kind::Minus, at + 1),
            b'<' => match bytes.get(at + 1) {
                Some(b'>') => (Kind::Ne, at + 2),
                Some(b'=') => (Kind::Le, at + 2),
                _ => (Kind::Lt, at + 1),
            },
            b'>' => match bytes.get(at + 1) {
                Some(b'=') => (Kind::Ge, at + 2),
                _ => (Kind::Gt, at + 1),
            },
            _ => {
                let found = text.get(at..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(ExprError::Syntax {
                    offset: start,
                    message: format!("unexpected character {found:?}"),
                });
            }
        };
        tokens.push(Token {
            kind,
            offset: start,
        });
        at = next;
    }
    tokens.push(Token {
        kind: Kind::End,
        offset: text.len(),
    });
    Ok(tokens)
}
