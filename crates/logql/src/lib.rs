//! chute's LogQL: the subset of Loki's query language that chute answers, from
//! text to a syntax tree.
//!
//! [`parse`] turns a query into an [`Expr`]: text → tokens (`lexer`) → tree
//! (`parser`, recursive descent with precedence climbing). Every node an error could
//! be about carries the [`Span`] of its text, and every [`ParseError`] says where it
//! is as `line L, col C`. Nothing here evaluates a query or checks a regular
//! expression: the planner (`src/query/` in chute) does that from the tree, and
//! points at the spans it finds wrong.
//!
//! Every node prints back as canonical LogQL ([`std::fmt::Display`]), and
//! `parse(&expr.to_string()) == Ok(expr)`: spans never take part in equality (see
//! [`Span`]).
//!
//! # Grammar
//!
//! ```text
//! query        = log_query | metric ;
//! log_query    = selector { stage } | "(" log_query ")" ;
//! selector     = "{" matcher { "," matcher } "}" ;          (* {} is an error *)
//! matcher      = label ( "=" | "!=" | "=~" | "!~" ) string ;
//! stage        = line_filter
//!              | "|" ( "json" | "logfmt" | "line_format" string
//!                    | ( "drop" | "keep" ) label { "," label }
//!                    | label_filter ) ;
//! line_filter  = ( "|=" | "!=" | "|~" | "!~" ) string { "or" string } ;
//! label_filter = and_filter { "or" and_filter } ;
//! and_filter   = filter_atom { ( "and" | "," | (* nothing *) ) filter_atom } ;
//! filter_atom  = "(" label_filter ")"
//!              | label ( "=" | "==" | "!=" ) ( string | value )
//!              | label ( "=~" | "!~" ) string
//!              | label ( ">" | ">=" | "<" | "<=" ) value ;
//! value        = [ "-" | "+" ] ( number | duration ) | bytes ;
//!
//! metric       = term { ( "+" | "-" ) term } ;
//! term         = factor { ( "*" | "/" | "%" ) factor } ;
//! factor       = atom [ "^" factor ] ;                     (* right-associative *)
//! atom         = "(" metric ")" | literal | "vector" "(" literal ")"
//!              | range_op "(" log_range ")"
//!              | vector_op [ grouping ] "(" [ k "," ] metric ")" [ grouping ] ;
//! log_range    = selector range [ offset ] { stage }
//!              | selector { stage } range [ offset ]
//!              | "(" log_query ")" range [ offset ] | "(" log_range ")" ;
//! range        = "[" duration "]" ;                         (* longer than zero *)
//! offset       = "offset" [ "-" ] duration ;
//! range_op     = "count_over_time" | "rate" | "bytes_over_time" | "bytes_rate" ;
//! vector_op    = "sum" | "avg" | "min" | "max" | "count" | "topk" | "bottomk" ;
//! grouping     = ( "by" | "without" ) "(" [ label { "," label } ] ")" ;
//! literal      = [ "-" | "+" ] number ;
//! k            = number ;                 (* topk and bottomk only; whole, >= 1 *)
//!
//! label        = [a-zA-Z_][a-zA-Z0-9_]* ;
//! string       = '"' Go-escaped text '"' | '`' raw text '`' ;
//! number       = digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ] ;
//! duration     = number-and-unit { number-and-unit } ;  (* 1h30m 250ms 1.5s 2d 1w *)
//! bytes        = number ( "B" | "kB" | "KB" | "KiB" | "MB" | "MiB" | ... ) ;
//! ```
//!
//! Right after `|`, the names of stages (`json`, `logfmt`, `line_format`, `drop`,
//! `keep`, and the unsupported ones below) are stages, never labels, and in a label
//! filter `and` and `or` are operators. Keywords and function names ignore case
//! (`SUM`, `By`), as in Loki. Blanks and
//! `#` comments (to the end of the line) may appear between any two tokens. See
//! [`Duration`] and [`Bytes`] for their units.
//!
//! # Not supported
//!
//! Valid LogQL that chute does not answer gives [`ErrorKind::Unsupported`], naming
//! the construct, at its place: the stages `label_format`, `unwrap`, `pattern`,
//! `regexp`, `decolorize`, `unpack`, `xml`; parameters and flags of `json` and
//! `logfmt`; matchers in `drop`/`keep`; `ip()` filters; the pattern line filters
//! `|>` and `!>`; range functions other than the four above (`sum_over_time`,
//! `quantile_over_time`, ...) and grouping on a range function; the aggregations and
//! functions `stddev`, `stdvar`, `sort`, `sort_desc`, `quantile`, `approx_topk`,
//! `label_replace`, `variants`; comparison operators between expressions (`>`,
//! `==`, ...), the set operators `and`, `or`, `unless`, and the modifiers `bool`,
//! `on`, `ignoring`, `group_left`, `group_right`.
//!
//! # Limits
//!
//! A query is at most [`MAX_INPUT_LEN`] bytes and nests at most [`MAX_DEPTH`] levels
//! deep; beyond either the parser answers an error, never a stack overflow.

mod ast;
mod display;
mod error;
mod lexer;
mod parser;
mod span;
mod units;

pub use ast::{
    AggregationOp, BinaryExpr, BinaryOp, CompareOp, Expr, FilterValue, Grouping, LabelCompare,
    LabelFilter, LineFilter, LineFilterOp, Literal, LogExpr, LogRange, MatchOp, Matcher,
    MetricExpr, RangeAggregation, RangeOp, Selector, Stage, StageKind, StringLit,
    VectorAggregation,
};
pub use error::{ErrorKind, ParseError};
pub use parser::{parse, MAX_DEPTH, MAX_INPUT_LEN};
pub use span::Span;
pub use units::{Bytes, Duration};

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod units_tests;
