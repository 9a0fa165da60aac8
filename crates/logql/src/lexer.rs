//! Text to tokens.
//!
//! The whole query is cut into tokens before parsing (it is at most
//! [`MAX_INPUT_LEN`](crate::MAX_INPUT_LEN) bytes). The lexer stops at the first text
//! it cannot read and ends the list with an [`TokenKind::Error`] token there, so the
//! parser reports whichever comes first: a syntax error before that place, or the
//! lexer's error once it gets there.
//!
//! Keywords (`by`, `and`, `json`…) are identifiers here; the parser recognises them
//! where they may appear, ignoring case as Loki does.

use crate::error::{ErrorKind, ParseError};
use crate::span::Span;
use crate::units::{parse_duration_magnitude, Bytes};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// `=`
    Eq,
    /// `==`
    EqEq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    Gt,
    Ge,
    Lt,
    Le,
    /// `|`
    Pipe,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    /// `|>`
    PipePattern,
    /// `!>`
    NotPattern,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    /// `[a-zA-Z_][a-zA-Z0-9_]*`; its text is the token's span of the input.
    Ident,
    /// A string literal, unescaped.
    Str(String),
    /// A number without a unit.
    Number(f64),
    /// A number with a duration unit, in nanoseconds (the sign is a `Minus` token).
    Duration(u64),
    /// A number with a byte-size unit.
    Bytes(u64),
    /// The end of the query.
    Eof,
    /// Text the lexer cannot read; always the last token.
    Error(Box<ParseError>),
}

/// A token and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

impl Token {
    /// How an error message names this token: its text in quotes, or a phrase.
    pub(crate) fn describe(&self, input: &str) -> String {
        match &self.kind {
            TokenKind::Eof => "end of input".to_string(),
            TokenKind::Str(_) => "a string".to_string(),
            TokenKind::Error(e) => e.kind().to_string(),
            _ => format!("\"{}\"", input.get(self.span.range()).unwrap_or_default()),
        }
    }
}

/// The tokens of `input`, ending with `Eof` or `Error` (never empty).
pub(crate) fn lex(input: &str) -> Vec<Token> {
    let mut lexer = Lexer { input, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        match lexer.next_token() {
            Ok(token) => {
                let end = token.kind == TokenKind::Eof;
                tokens.push(token);
                if end {
                    return tokens;
                }
            }
            Err(error) => {
                let span = error.span();
                tokens.push(Token {
                    kind: TokenKind::Error(Box::new(error)),
                    span,
                });
                return tokens;
            }
        }
    }
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut chars = self.input[self.pos..].chars();
        chars.next();
        chars.next()
    }

    fn error(&self, kind: ErrorKind, start: usize, end: usize) -> ParseError {
        ParseError::new(kind, Span::new(start, end), self.input)
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '#' {
                self.pos = self.input[self.pos..]
                    .find('\n')
                    .map_or(self.input.len(), |i| self.pos + i);
            } else {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_blanks_and_comments();
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                span: Span::new(start, start),
            });
        };
        let next = self.peek_second();
        let (kind, len) = match (c, next) {
            ('{', _) => (TokenKind::LBrace, 1),
            ('}', _) => (TokenKind::RBrace, 1),
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('=', Some('=')) => (TokenKind::EqEq, 2),
            ('=', Some('~')) => (TokenKind::Re, 2),
            ('=', _) => (TokenKind::Eq, 1),
            ('!', Some('=')) => (TokenKind::Neq, 2),
            ('!', Some('~')) => (TokenKind::Nre, 2),
            ('!', Some('>')) => (TokenKind::NotPattern, 2),
            ('|', Some('=')) => (TokenKind::PipeExact, 2),
            ('|', Some('~')) => (TokenKind::PipeMatch, 2),
            ('|', Some('>')) => (TokenKind::PipePattern, 2),
            ('|', _) => (TokenKind::Pipe, 1),
            ('>', Some('=')) => (TokenKind::Ge, 2),
            ('>', _) => (TokenKind::Gt, 1),
            ('<', Some('=')) => (TokenKind::Le, 2),
            ('<', _) => (TokenKind::Lt, 1),
            ('+', _) => (TokenKind::Plus, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('/', _) => (TokenKind::Slash, 1),
            ('%', _) => (TokenKind::Percent, 1),
            ('^', _) => (TokenKind::Caret, 1),
            ('"', _) => return self.quoted(),
            ('`', _) => return self.raw(),
            (c, _) if c.is_ascii_digit() => return self.number(),
            (c, _) if c.is_ascii_alphabetic() || c == '_' => {
                let len = self.input[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.input.len() - start);
                (TokenKind::Ident, len)
            }
            (c, _) => {
                let kind = ErrorKind::Syntax {
                    expected: "a LogQL token".to_string(),
                    found: format!("\"{c}\""),
                };
                return Err(self.error(kind, start, start + c.len_utf8()));
            }
        };
        self.pos += len;
        Ok(Token {
            kind,
            span: Span::new(start, self.pos),
        })
    }

    /// A number, a duration (`5m`, `1h30m`) or a byte size (`20KB`).
    fn number(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        let bytes = self.input.as_bytes();
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |n| from + n)
        };
        let mut end = digits(start);
        if bytes.get(end) == Some(&b'.') {
            end = digits(end + 1);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            if bytes.get(end + 1 + sign).is_some_and(u8::is_ascii_digit) {
                end = digits(end + 1 + sign);
            }
        }
        let number_end = end;
        self.pos = end;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '.' || c == 'µ' || c == 'μ' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        let text = &self.input[start..self.pos];
        let span = Span::new(start, self.pos);
        if self.pos == number_end {
            return match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Token {
                    kind: TokenKind::Number(n),
                    span,
                }),
                _ => Err(self.error(
                    ErrorKind::InvalidNumber {
                        text: text.to_string(),
                        reason: "out of range".to_string(),
                    },
                    start,
                    self.pos,
                )),
            };
        }
        let duration = match parse_duration_magnitude(text) {
            Ok(nanos) => {
                return Ok(Token {
                    kind: TokenKind::Duration(nanos),
                    span,
                })
            }
            Err(reason) => reason,
        };
        let bytes = match Bytes::parse(text) {
            Ok(b) => {
                return Ok(Token {
                    kind: TokenKind::Bytes(b.0),
                    span,
                })
            }
            Err(reason) => reason,
        };
        let unit = &self.input[number_end..self.pos];
        let looks_like_bytes = unit.starts_with(['B', 'k', 'K', 'M', 'G', 'T', 'P']);
        let kind = if looks_like_bytes {
            ErrorKind::InvalidBytes {
                text: text.to_string(),
                reason: bytes,
            }
        } else {
            ErrorKind::InvalidDuration {
                text: text.to_string(),
                reason: duration,
            }
        };
        Err(self.error(kind, start, self.pos))
    }

    /// A double-quoted string with Go's escapes.
    fn quoted(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                let kind = ErrorKind::InvalidString {
                    reason: "missing closing '\"'".to_string(),
                };
                return Err(self.error(kind, start, self.pos));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(Token {
                        kind: TokenKind::Str(value),
                        span: Span::new(start, self.pos),
                    });
                }
                '\n' => {
                    let kind = ErrorKind::InvalidString {
                        reason: "newline in a double-quoted string (use `...` or \\n)".to_string(),
                    };
                    return Err(self.error(kind, start, self.pos));
                }
                '\\' => value.push(self.escape()?),
                c => {
                    value.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// One escape sequence, `self.pos` at its backslash.
    fn escape(&mut self) -> Result<char, ParseError> {
        let start = self.pos;
        let rest = &self.input[start + 1..];
        let Some(c) = rest.chars().next() else {
            let kind = ErrorKind::InvalidString {
                reason: "missing closing '\"'".to_string(),
            };
            return Err(self.error(kind, start, self.pos));
        };
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(ch) = simple {
            self.pos += 2;
            return Ok(ch);
        }
        let (digits, radix, len) = match c {
            'x' => (2, 16, 2),
            'u' => (4, 16, 2),
            'U' => (8, 16, 2),
            '0'..='7' => (3, 8, 1),
            _ => {
                let kind = ErrorKind::InvalidString {
                    reason: format!("unknown escape sequence \"\\{c}\""),
                };
                return Err(self.error(kind, start, start + 1 + c.len_utf8()));
            }
        };
        // `len` is the length of the escape's introducer after the backslash: the
        // letter for \x \u \U, nothing for octal, whose first digit is a digit.
        let digits_at = start + len;
        let text = self.input.get(digits_at..digits_at + digits);
        let value = text
            .filter(|t| t.chars().all(|d| d.is_digit(radix)))
            .and_then(|t| u32::from_str_radix(t, radix).ok());
        let end = (digits_at + digits).min(self.input.len());
        let Some(value) = value else {
            let kind = ErrorKind::InvalidString {
                reason: format!("expected {digits} digits in base {radix} after \"\\{c}\""),
            };
            return Err(self.error(kind, start, end));
        };
        let ch = match c {
            // A single byte: only ASCII keeps the string valid UTF-8.
            'x' | '0'..='7' if value > 0x7f => None,
            _ => char::from_u32(value),
        };
        let Some(ch) = ch else {
            let kind = ErrorKind::InvalidString {
                reason: format!(
                    "escape \"{}\" is not a valid character",
                    self.input.get(start..end).unwrap_or_default()
                ),
            };
            return Err(self.error(kind, start, end));
        };
        self.pos = end;
        Ok(ch)
    }

    /// A backtick string: no escapes, newlines allowed.
    fn raw(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        match self.input[start + 1..].find('`') {
            Some(len) => {
                let value = self.input[start + 1..start + 1 + len].to_string();
                self.pos = start + len + 2;
                Ok(Token {
                    kind: TokenKind::Str(value),
                    span: Span::new(start, self.pos),
                })
            }
            None => {
                self.pos = self.input.len();
                let kind = ErrorKind::InvalidString {
                    reason: "missing closing '`'".to_string(),
                };
                Err(self.error(kind, start, self.pos))
            }
        }
    }
}
