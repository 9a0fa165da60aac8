//! What can be wrong with a query, and where.

use crate::span::Span;

/// A query that chute cannot parse, with where the problem is.
///
/// Displays as `parse error at line L, col C: <what>`, the shape of Loki's own
/// messages, so users of Grafana and `logcli` recognise it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {column}: {kind}")]
pub struct ParseError {
    kind: ErrorKind,
    span: Span,
    line: usize,
    column: usize,
}

impl ParseError {
    /// An error of `kind` about the text at `span` of `input` (which gives the line
    /// and column).
    pub fn new(kind: ErrorKind, span: Span, input: &str) -> Self {
        let (line, column) = span.line_col(input);
        ParseError {
            kind,
            span,
            line,
            column,
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The bytes of the query the error is about.
    pub fn span(&self) -> Span {
        self.span
    }

    /// The 1-based line of the span's start.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column, in characters, of the span's start.
    pub fn column(&self) -> usize {
        self.column
    }
}

/// The kinds of [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Not LogQL: something else was expected here.
    #[error("expected {expected}, found {found}")]
    Syntax {
        /// What the parser could accept at this place, e.g. `"}" or ","`.
        expected: String,
        /// What it found, e.g. `"|"` or `end of input`.
        found: String,
    },
    /// Valid LogQL that chute does not support.
    #[error("chute does not support {what}")]
    Unsupported {
        /// The construct, e.g. `the "label_format" stage`.
        what: String,
    },
    /// A duration that does not parse, or one out of range.
    #[error("invalid duration \"{text}\": {reason}")]
    InvalidDuration {
        /// The duration as written.
        text: String,
        /// Why it is refused.
        reason: String,
    },
    /// A byte size that does not parse, or one out of range.
    #[error("invalid byte size \"{text}\": {reason}")]
    InvalidBytes {
        /// The size as written.
        text: String,
        /// Why it is refused.
        reason: String,
    },
    /// A number that does not parse, or one out of range.
    #[error("invalid number \"{text}\": {reason}")]
    InvalidNumber {
        /// The number as written.
        text: String,
        /// Why it is refused.
        reason: String,
    },
    /// A string literal with a bad escape, or one never closed.
    #[error("invalid string: {reason}")]
    InvalidString {
        /// Why it is refused.
        reason: String,
    },
    /// `{}`: a stream selector needs at least one matcher.
    #[error("a stream selector needs at least one label matcher")]
    EmptySelector,
    /// The query is longer than [`MAX_INPUT_LEN`](crate::MAX_INPUT_LEN).
    #[error("the query is {len} bytes long, more than the limit of {max}")]
    TooLong {
        /// The query's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The query nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("the query nests deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}
