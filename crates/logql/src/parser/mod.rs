//! Tokens to the syntax tree: recursive descent, with precedence climbing for the
//! arithmetic operators.
//!
//! `log` parses selectors, pipelines and log ranges; `metric` parses everything
//! that returns samples and is where a query starts (a log query is one of its
//! primaries). Limits: [`MAX_INPUT_LEN`] bytes of text, [`MAX_DEPTH`] levels of
//! nesting, so that hostile input costs bounded time and stack.

mod log;
mod metric;

use crate::ast::Expr;
use crate::error::{ErrorKind, ParseError};
use crate::lexer::{lex, Token, TokenKind};
use crate::span::Span;

/// The longest query accepted, in bytes (64 KiB).
pub const MAX_INPUT_LEN: usize = 64 * 1024;

/// The deepest nesting accepted: parentheses, aggregations, and arithmetic operators
/// each add a level. Beyond it the query is refused rather than risking the stack.
pub const MAX_DEPTH: usize = 64;

/// Parses a LogQL query.
///
/// # Errors
///
/// A [`ParseError`] with the place in `input` it is about: not LogQL
/// ([`ErrorKind::Syntax`]), LogQL that chute does not support
/// ([`ErrorKind::Unsupported`]), a bad literal, `{}`, or a query over the limits.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    if input.len() > MAX_INPUT_LEN {
        let kind = ErrorKind::TooLong {
            len: input.len(),
            max: MAX_INPUT_LEN,
        };
        return Err(ParseError::new(
            kind,
            Span::new(MAX_INPUT_LEN, input.len()),
            input,
        ));
    }
    let mut parser = Parser {
        input,
        tokens: lex(input),
        pos: 0,
        depth: 0,
    };
    let (expr, _) = parser.expr(0)?;
    if !matches!(parser.peek().kind, TokenKind::Eof) {
        let expected = match expr {
            Expr::Log(_) => "\"|\", a line filter or end of input",
            Expr::Metric(_) => "an operator or end of input",
        };
        return Err(parser.unexpected(expected));
    }
    Ok(expr)
}

/// The parser's state: the tokens and how far it has read.
pub(crate) struct Parser<'a> {
    input: &'a str,
    /// Never empty: the lexer always ends the list with `Eof` or `Error`.
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    /// The token `n` places ahead (the last token, `Eof` or `Error`, repeats).
    fn nth(&self, n: usize) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        // Cannot panic: `tokens` is never empty, so `last` is a valid index.
        &self.tokens[(self.pos + n).min(last)]
    }

    fn peek(&self) -> &Token {
        self.nth(0)
    }

    /// The current token's span, then moves past it (never past the last token).
    fn bump(&mut self) -> Span {
        let span = self.peek().span;
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        span
    }

    /// An optional `-` or `+` before a number: whether it was `-`.
    fn sign(&mut self) -> bool {
        match self.peek().kind {
            TokenKind::Minus => {
                self.bump();
                true
            }
            TokenKind::Plus => {
                self.bump();
                false
            }
            _ => false,
        }
    }

    /// The end of the token just read.
    fn prev_end(&self) -> usize {
        match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(token) => token.span.end,
            None => 0,
        }
    }

    fn text(&self, span: Span) -> &str {
        self.input.get(span.range()).unwrap_or_default()
    }

    /// Whether the token `n` places ahead is the identifier `word` (any case).
    fn is_word(&self, n: usize, word: &str) -> bool {
        let token = self.nth(n);
        token.kind == TokenKind::Ident && self.text(token.span).eq_ignore_ascii_case(word)
    }

    /// The current identifier, lower-cased, if the current token is one.
    fn word(&self) -> Option<String> {
        let token = self.peek();
        (token.kind == TokenKind::Ident).then(|| self.text(token.span).to_ascii_lowercase())
    }

    fn error(&self, kind: ErrorKind, span: Span) -> ParseError {
        ParseError::new(kind, span, self.input)
    }

    fn unsupported(&self, what: impl Into<String>, span: Span) -> ParseError {
        self.error(ErrorKind::Unsupported { what: what.into() }, span)
    }

    /// "expected …, found <current token>", or the lexer's error if the current
    /// token is where the lexer stopped.
    fn unexpected(&self, expected: &str) -> ParseError {
        let token = self.peek();
        if let TokenKind::Error(error) = &token.kind {
            return (**error).clone();
        }
        let kind = ErrorKind::Syntax {
            expected: expected.to_string(),
            found: token.describe(self.input),
        };
        self.error(kind, token.span)
    }

    /// Reads a token of `kind` (compared without its value) or fails.
    fn expect(&mut self, kind: &TokenKind, expected: &str) -> Result<Span, ParseError> {
        if std::mem::discriminant(&self.peek().kind) == std::mem::discriminant(kind) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Reads a label name.
    fn ident(&mut self, expected: &str) -> Result<(String, Span), ParseError> {
        let span = self.expect(&TokenKind::Ident, expected)?;
        Ok((self.text(span).to_string(), span))
    }

    /// Reads a string literal.
    fn string(&mut self, expected: &str) -> Result<(String, Span), ParseError> {
        match &self.peek().kind {
            TokenKind::Str(value) => {
                let value = value.clone();
                Ok((value, self.bump()))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// Runs `f` one nesting level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.check_depth(1)?;
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// Fails if `extra` more levels would go past [`MAX_DEPTH`].
    fn check_depth(&self, extra: usize) -> Result<(), ParseError> {
        if self.depth + extra > MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep { max: MAX_DEPTH }, self.peek().span));
        }
        Ok(())
    }
}
