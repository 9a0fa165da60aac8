//! chute's LogQL: the subset of Loki's query language that chute answers, from
//! text to a syntax tree.
//!
//! This first part holds what the parser's errors and literals are made of: the
//! [`Span`] of text a node or error is about, [`ParseError`] with its line and
//! column, and [`Duration`] and [`Bytes`] as Loki writes them.

mod error;
mod span;
mod units;

pub use error::{ErrorKind, ParseError};
pub use span::Span;
pub use units::{Bytes, Duration};

#[cfg(test)]
mod units_tests;
