//! Lexer of the `when` expression language: condition text to tokens.
//!
//! Owns: the tokens (numbers, durations with their unit, identifiers,
//! keywords, operators), their columns in characters, and how a token is
//! named in a message.
//! Never: judges names, types or windows; the parser does.

use super::ast::CompareOp;
use super::diagnostics::ExprProblem;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TokenKind {
    Number(f64),
    /// A duration literal such as `15s`, already in seconds, with its text.
    Duration(f64, String),
    Ident(String),
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Compare(CompareOp),
    End,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) kind: TokenKind,
    pub(super) column: usize,
}

pub(super) fn describe(kind: &TokenKind) -> String {
    match kind {
        TokenKind::Number(value) => format!("the number `{value}`"),
        TokenKind::Duration(_, text) => format!("the duration `{text}`"),
        TokenKind::Ident(name) => {
            match ["and", "or", "not"].iter().find(|keyword| name.eq_ignore_ascii_case(keyword)) {
                Some(keyword) => format!("`{name}` (keywords are lowercase: `{keyword}`)"),
                None => format!("`{name}`"),
            }
        }
        TokenKind::And => "`and`".to_string(),
        TokenKind::Or => "`or`".to_string(),
        TokenKind::Not => "`not`".to_string(),
        TokenKind::LParen => "`(`".to_string(),
        TokenKind::RParen => "`)`".to_string(),
        TokenKind::LBracket => "`[`".to_string(),
        TokenKind::RBracket => "`]`".to_string(),
        TokenKind::Comma => "`,`".to_string(),
        TokenKind::Plus => "`+`".to_string(),
        TokenKind::Minus => "`-`".to_string(),
        TokenKind::Star => "`*`".to_string(),
        TokenKind::Slash => "`/`".to_string(),
        TokenKind::Compare(op) => format!("`{}`", op.as_str()),
        TokenKind::End => "the end of the condition".to_string(),
    }
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, ExprProblem> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut position = 0;
    while position < chars.len() {
        let character = chars[position];
        let column = position + 1;
        if character.is_whitespace() {
            position += 1;
            continue;
        }
        if character.is_ascii_digit() {
            let start = position;
            while position < chars.len() && chars[position].is_ascii_digit() {
                position += 1;
            }
            if position < chars.len() && chars[position] == '.' {
                position += 1;
                if position >= chars.len() || !chars[position].is_ascii_digit() {
                    return Err((position + 1, "expected digits after the decimal point".to_string()));
                }
                while position < chars.len() && chars[position].is_ascii_digit() {
                    position += 1;
                }
            }
            let digits: String = chars[start..position].iter().collect();
            let value: f64 = digits.parse().map_err(|_| (column, format!("`{digits}` is not a number")))?;
            let unit_start = position;
            while position < chars.len() && (chars[position].is_ascii_alphanumeric() || chars[position] == '_') {
                position += 1;
            }
            let unit: String = chars[unit_start..position].iter().collect();
            let kind = match unit.as_str() {
                "" => TokenKind::Number(value),
                "s" => TokenKind::Duration(value, format!("{digits}s")),
                "m" => TokenKind::Duration(value * 60.0, format!("{digits}m")),
                "h" => TokenKind::Duration(value * 3_600.0, format!("{digits}h")),
                "d" => TokenKind::Duration(value * 86_400.0, format!("{digits}d")),
                _ => {
                    return Err((
                        unit_start + 1,
                        format!("unknown duration unit `{unit}` in `{digits}{unit}` (use s, m, h or d)"),
                    ))
                }
            };
            tokens.push(Token { kind, column });
            continue;
        }
        if character.is_ascii_alphabetic() || character == '_' {
            let start = position;
            while position < chars.len() && (chars[position].is_ascii_alphanumeric() || chars[position] == '_') {
                position += 1;
            }
            let word: String = chars[start..position].iter().collect();
            let kind = match word.as_str() {
                "and" => TokenKind::And,
                "or" => TokenKind::Or,
                "not" => TokenKind::Not,
                _ => TokenKind::Ident(word),
            };
            tokens.push(Token { kind, column });
            continue;
        }
        let next = chars.get(position + 1).copied();
        let (kind, width) = match (character, next) {
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('+', _) => (TokenKind::Plus, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('/', _) => (TokenKind::Slash, 1),
            ('<', Some('=')) => (TokenKind::Compare(CompareOp::Le), 2),
            ('<', _) => (TokenKind::Compare(CompareOp::Lt), 1),
            ('>', Some('=')) => (TokenKind::Compare(CompareOp::Ge), 2),
            ('>', _) => (TokenKind::Compare(CompareOp::Gt), 1),
            ('=', Some('=')) => (TokenKind::Compare(CompareOp::Eq), 2),
            ('!', Some('=')) => (TokenKind::Compare(CompareOp::Ne), 2),
            ('=', _) => return Err((column, "`=` is not an operator (use `==` to compare)".to_string())),
            ('!', _) => return Err((column, "`!` is not an operator (use `not`)".to_string())),
            ('&', Some('&')) => return Err((column, "`&&` is not an operator (use `and`)".to_string())),
            ('|', Some('|')) => return Err((column, "`||` is not an operator (use `or`)".to_string())),
            ('&', _) => return Err((column, "`&` is not an operator (use `and`)".to_string())),
            ('|', _) => return Err((column, "`|` is not an operator (use `or`)".to_string())),
            _ => return Err((column, format!("unexpected character `{character}`"))),
        };
        tokens.push(Token { kind, column });
        position += width;
    }
    tokens.push(Token { kind: TokenKind::End, column: chars.len() + 1 });
    Ok(tokens)
}
