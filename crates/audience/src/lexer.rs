//! Splits rule text into tokens, each with its byte range in the text.

use crate::error::ParseError;
use crate::rule::CompareOp;
use crate::time::{Span, TimeUnit};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind {
    /// A bare word: a keyword or a name. Its text is the token's source range.
    Word,
    String(String),
    Number(f64),
    Span(Span),
    Operator(CompareOp),
    Open,
    Close,
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

pub(crate) fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Words may hold dots and dashes so that `address.city` and `first-name` need no quotes.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let kind = match c {
            '(' | ')' => {
                chars.next();
                if c == '(' {
                    TokenKind::Open
                } else {
                    TokenKind::Close
                }
            }
            '=' => {
                chars.next();
                TokenKind::Operator(CompareOp::Eq)
            }
            '>' | '<' | '!' => {
                chars.next();
                let or_equal = chars.next_if(|&(_, c)| c == '=').is_some();
                TokenKind::Operator(match (c, or_equal) {
                    ('>', false) => CompareOp::Gt,
                    ('>', true) => CompareOp::Ge,
                    ('<', false) => CompareOp::Lt,
                    ('<', true) => CompareOp::Le,
                    (_, true) => CompareOp::Ne,
                    (_, false) => {
                        return Err(ParseError::at(src, start, "expected \"=\" after \"!\""))
                    }
                })
            }
            '"' => {
                chars.next();
                TokenKind::String(string(src, start, &mut chars)?)
            }
            c if c.is_ascii_digit() || c == '-' => number(src, start, &mut chars)?,
            c if is_word_start(c) => {
                while chars.next_if(|&(_, c)| is_word_char(c)).is_some() {}
                TokenKind::Word
            }
            other => {
                return Err(ParseError::at(
                    src,
                    start,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        let end = chars.peek().map_or(src.len(), |&(i, _)| i);
        tokens.push(Token { kind, start, end });
    }
    tokens.push(Token {
        kind: TokenKind::End,
        start: src.len(),
        end: src.len(),
    });
    Ok(tokens)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// A double-quoted string; escapes are `\"`, `\\`, `\n`, `\r`, `\t` and `\u{HEX}`.
fn string(src: &str, start: usize, chars: &mut Chars<'_>) -> Result<String, ParseError> {
    let mut out = String::new();
    loop {
        let Some((at, c)) = chars.next() else {
            return Err(ParseError::at(src, start, "unterminated string"));
        };
        match c {
            '"' => return Ok(out),
            '\\' => out.push(escape(src, at, chars)?),
            c => out.push(c),
        }
    }
}

fn escape(src: &str, at: usize, chars: &mut Chars<'_>) -> Result<char, ParseError> {
    const WHAT: &str = "expected an escape (\\\", \\\\, \\n, \\r, \\t or \\u{HEX}) after \"\\\"";
    match chars.next().map(|(_, c)| c) {
        Some('"') => Ok('"'),
        Some('\\') => Ok('\\'),
        Some('n') => Ok('\n'),
        Some('r') => Ok('\r'),
        Some('t') => Ok('\t'),
        Some('u') => {
            let bad = || ParseError::at(src, at, "expected a Unicode scalar value like \\u{e9}");
            chars.next_if(|&(_, c)| c == '{').ok_or_else(bad)?;
            let mut hex = String::new();
            while let Some((_, c)) = chars.next_if(|&(_, c)| c.is_ascii_hexdigit()) {
                hex.push(c);
            }
            chars.next_if(|&(_, c)| c == '}').ok_or_else(bad)?;
            (hex.len() <= 6)
                .then(|| u32::from_str_radix(&hex, 16).ok())
                .flatten()
                .and_then(char::from_u32)
                .ok_or_else(bad)
        }
        _ => Err(ParseError::at(src, at, WHAT)),
    }
}

/// A number (`-12`, `0.5`, `1e3`) or, for a whole number followed directly by a unit, a
/// span (`30d`).
fn number(src: &str, start: usize, chars: &mut Chars<'_>) -> Result<TokenKind, ParseError> {
    chars.next_if(|&(_, c)| c == '-');
    let digits = |chars: &mut Chars<'_>| {
        let mut any = false;
        while chars.next_if(|&(_, c)| c.is_ascii_digit()).is_some() {
            any = true;
        }
        any
    };
    let bad = || ParseError::at(src, start, "expected a number like 12, -3 or 0.5");
    if !digits(chars) {
        return Err(bad());
    }
    let mut whole = true;
    if chars.next_if(|&(_, c)| c == '.').is_some() {
        whole = false;
        if !digits(chars) {
            return Err(bad());
        }
    }
    if chars.next_if(|&(_, c)| c == 'e' || c == 'E').is_some() {
        whole = false;
        chars.next_if(|&(_, c)| c == '+' || c == '-');
        if !digits(chars) {
            return Err(bad());
        }
    }
    let number_end = chars.peek().map_or(src.len(), |&(i, _)| i);
    if chars.peek().is_some_and(|&(_, c)| is_word_char(c)) {
        while chars.next_if(|&(_, c)| is_word_char(c)).is_some() {}
        let end = chars.peek().map_or(src.len(), |&(i, _)| i);
        let text = &src[start..end];
        let unit = TimeUnit::from_suffix(&src[number_end..end]);
        return match (whole && !text.starts_with('-'), unit) {
            (true, Some(_)) => text.parse().map(TokenKind::Span).map_err(|_| {
                ParseError::at(
                    src,
                    start,
                    format!("`{text}` is not a duration: the amount must be 1 to 4294967295"),
                )
            }),
            _ => Err(ParseError::at(
                src,
                start,
                format!("`{text}` is neither a number nor a duration like 30d, 12h, 15m or 45s"),
            )),
        };
    }
    match src[start..number_end].parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(TokenKind::Number(n)),
        _ => Err(ParseError::at(src, start, "number out of range")),
    }
}
