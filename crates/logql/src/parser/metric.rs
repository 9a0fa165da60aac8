//! Expressions: arithmetic by precedence climbing over primaries (a log query, a
//! number, `vector(n)`, a range or vector aggregation, or any of them in
//! parentheses).

use super::log::LogOrRange;
use super::Parser;
use crate::ast::{
    AggregationOp, BinaryExpr, BinaryOp, Expr, Grouping, Literal, MetricExpr, RangeAggregation,
    RangeOp, VectorAggregation,
};
use crate::error::{ErrorKind, ParseError};
use crate::lexer::TokenKind;
use crate::span::Span;

/// Loki's range functions that chute does not support (most need `unwrap`).
const UNSUPPORTED_RANGE_FUNCTIONS: &[&str] = &[
    "rate_counter",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
];

/// Aggregations and functions over samples that chute does not support.
const UNSUPPORTED_FUNCTIONS: &[&str] = &[
    "stddev",
    "stdvar",
    "sort",
    "sort_desc",
    "quantile",
    "approx_topk",
    "label_replace",
    "variants",
];

/// Modifiers of binary operators, none supported.
const MODIFIERS: &[&str] = &["bool", "on", "ignoring", "group_left", "group_right"];

/// `topk`'s k is kept as an integer; past 2^53 a float cannot hold every integer.
const MAX_K: f64 = 9_007_199_254_740_992.0;

impl Parser<'_> {
    /// An expression whose operators bind at least as tightly as `min_precedence`,
    /// and its span including any parentheses around it.
    pub(super) fn expr(&mut self, min_precedence: u8) -> Result<(Expr, Span), ParseError> {
        self.nested(|p| {
            let (mut lhs, mut lhs_span) = p.primary()?;
            let mut operators = 0;
            loop {
                if matches!(lhs, Expr::Log(_)) {
                    // Whatever follows a log query is not an operator on it; the
                    // caller says what it expected there.
                    break;
                }
                let token = p.peek();
                let op = match token.kind {
                    TokenKind::Plus => BinaryOp::Add,
                    TokenKind::Minus => BinaryOp::Sub,
                    TokenKind::Star => BinaryOp::Mul,
                    TokenKind::Slash => BinaryOp::Div,
                    TokenKind::Percent => BinaryOp::Mod,
                    TokenKind::Caret => BinaryOp::Pow,
                    TokenKind::EqEq
                    | TokenKind::Neq
                    | TokenKind::Gt
                    | TokenKind::Ge
                    | TokenKind::Lt
                    | TokenKind::Le => {
                        let what = format!("the comparison operator \"{}\"", p.text(token.span));
                        return Err(p.unsupported(what, token.span));
                    }
                    TokenKind::Ident => match p.word().as_deref() {
                        Some(set @ ("and" | "or" | "unless")) => {
                            let what = format!("the set operator \"{set}\"");
                            return Err(p.unsupported(what, token.span));
                        }
                        _ => break,
                    },
                    _ => break,
                };
                let precedence = op.precedence();
                if precedence < min_precedence {
                    break;
                }
                p.bump();
                if let Some(modifier) = p.word().filter(|w| MODIFIERS.contains(&w.as_str())) {
                    let what = format!("the \"{modifier}\" modifier of binary operators");
                    return Err(p.unsupported(what, p.peek().span));
                }
                // Each operator is a level of the tree: a long chain `1+1+1...` is as
                // deep as it is long, even though it is read in a loop.
                operators += 1;
                p.check_depth(operators)?;
                let next_min = if op.is_right_associative() {
                    precedence
                } else {
                    precedence + 1
                };
                let (rhs, rhs_span) = p.expr(next_min)?;
                let lhs_metric = p.metric(lhs)?;
                let rhs_metric = p.metric(rhs)?;
                lhs_span = lhs_span.to(rhs_span);
                lhs = Expr::Metric(MetricExpr::Binary(BinaryExpr {
                    op,
                    lhs: Box::new(lhs_metric),
                    rhs: Box::new(rhs_metric),
                    span: lhs_span,
                }));
            }
            Ok((lhs, lhs_span))
        })
    }

    /// The metric expression, or an error if it is a log query.
    fn metric(&self, expr: Expr) -> Result<MetricExpr, ParseError> {
        match expr {
            Expr::Metric(m) => Ok(m),
            Expr::Log(log) => {
                let kind = ErrorKind::Syntax {
                    expected: "a metric expression".to_string(),
                    found: "a log query (a range function such as count_over_time turns one into samples)"
                        .to_string(),
                };
                Err(self.error(kind, log.span))
            }
        }
    }

    fn primary(&mut self) -> Result<(Expr, Span), ParseError> {
        match self.peek().kind {
            TokenKind::LBrace => {
                let log = self.log_expr()?;
                let span = log.span;
                Ok((Expr::Log(log), span))
            }
            TokenKind::LParen => {
                let open = self.bump();
                let (inner, _) = self.expr(0)?;
                let close = self.expect(&TokenKind::RParen, "\")\"")?;
                Ok((inner, open.to(close)))
            }
            TokenKind::Minus | TokenKind::Plus | TokenKind::Number(_) => {
                let literal = self.literal()?;
                let span = literal.span;
                Ok((Expr::Metric(MetricExpr::Literal(literal)), span))
            }
            TokenKind::Ident => {
                let metric = self.function()?;
                let span = metric.span();
                Ok((Expr::Metric(metric), span))
            }
            _ => Err(self.unexpected("a stream selector \"{\", a function or a number")),
        }
    }

    /// `[+|-] number`
    fn literal(&mut self) -> Result<Literal, ParseError> {
        let start = self.peek().span;
        let negative = self.sign();
        match self.peek().kind {
            TokenKind::Number(n) => {
                let end = self.bump();
                Ok(Literal {
                    value: if negative { -n } else { n },
                    span: start.to(end),
                })
            }
            _ => Err(self.unexpected("a number")),
        }
    }

    /// A function call or aggregation, by its (case-insensitive) name.
    fn function(&mut self) -> Result<MetricExpr, ParseError> {
        let name_span = self.peek().span;
        let name = self.word().unwrap_or_default();
        let range_op = match name.as_str() {
            "count_over_time" => Some(RangeOp::CountOverTime),
            "rate" => Some(RangeOp::Rate),
            "bytes_over_time" => Some(RangeOp::BytesOverTime),
            "bytes_rate" => Some(RangeOp::BytesRate),
            _ => None,
        };
        if let Some(op) = range_op {
            return self.range_aggregation(op, &name);
        }
        match name.as_str() {
            "sum" | "avg" | "min" | "max" | "count" | "topk" | "bottomk" => {
                self.vector_aggregation(&name)
            }
            "vector" => self.vector_literal(),
            n if UNSUPPORTED_RANGE_FUNCTIONS.contains(&n) => {
                Err(self.unsupported(format!("the range function \"{n}\""), name_span))
            }
            n if UNSUPPORTED_FUNCTIONS.contains(&n) => {
                Err(self.unsupported(format!("the function \"{n}\""), name_span))
            }
            _ => Err(self.unexpected("a stream selector \"{\", a function or a number")),
        }
    }

    /// `op(log range)`
    fn range_aggregation(&mut self, op: RangeOp, name: &str) -> Result<MetricExpr, ParseError> {
        let start = self.bump();
        self.expect(&TokenKind::LParen, "\"(\"")?;
        let range = match self.log_or_range()? {
            LogOrRange::Range(range) => range,
            LogOrRange::Log(_) => return Err(self.unexpected("a range such as \"[5m]\"")),
        };
        let close = self.expect(&TokenKind::RParen, "\")\"")?;
        if self.is_word(0, "by") || self.is_word(0, "without") {
            let what = format!("grouping (by, without) on \"{name}\"");
            return Err(self.unsupported(what, self.peek().span));
        }
        Ok(MetricExpr::Range(RangeAggregation {
            op,
            range,
            span: start.to(close),
        }))
    }

    /// `op [grouping] ([k,] expr) [grouping]`
    fn vector_aggregation(&mut self, name: &str) -> Result<MetricExpr, ParseError> {
        let start = self.bump();
        let mut grouping = self.grouping()?;
        self.expect(&TokenKind::LParen, "\"(\"")?;
        let op = match name {
            "topk" | "bottomk" => {
                let k = self.k(name)?;
                self.expect(&TokenKind::Comma, "\",\"")?;
                if name == "topk" {
                    AggregationOp::TopK(k)
                } else {
                    AggregationOp::BottomK(k)
                }
            }
            "avg" => AggregationOp::Avg,
            "min" => AggregationOp::Min,
            "max" => AggregationOp::Max,
            "count" => AggregationOp::Count,
            _ => AggregationOp::Sum,
        };
        let (inner, _) = self.expr(0)?;
        let expr = self.metric(inner)?;
        self.expect(&TokenKind::RParen, "\")\"")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        Ok(MetricExpr::Vector(VectorAggregation {
            op,
            grouping,
            expr: Box::new(expr),
            span: Span::new(start.start, self.prev_end()),
        }))
    }

    /// The `k` of `topk(k, ...)`: a whole number, at least 1.
    fn k(&mut self, name: &str) -> Result<u64, ParseError> {
        let TokenKind::Number(k) = self.peek().kind else {
            return Err(self.unexpected(&format!("the number of series {name} keeps")));
        };
        let span = self.bump();
        if k.fract() != 0.0 || !(1.0..=MAX_K).contains(&k) {
            let kind = ErrorKind::InvalidNumber {
                text: self.text(span).to_string(),
                reason: format!("{name} needs a whole number of at least 1"),
            };
            return Err(self.error(kind, span));
        }
        // Exact: `k` is a whole number in 1..=2^53.
        Ok(k as u64)
    }

    /// An optional `by (a, ...)` or `without (a, ...)`.
    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = self.is_word(0, "without");
        if !without && !self.is_word(0, "by") {
            return Ok(None);
        }
        let start = self.bump();
        self.expect(&TokenKind::LParen, "\"(\"")?;
        let mut labels = Vec::new();
        if self.peek().kind != TokenKind::RParen {
            loop {
                labels.push(self.ident("a label name")?.0);
                if self.peek().kind != TokenKind::Comma {
                    break;
                }
                self.bump();
            }
        }
        let close = self.expect(&TokenKind::RParen, "\")\" or \",\"")?;
        Ok(Some(Grouping {
            without,
            labels,
            span: start.to(close),
        }))
    }

    /// `vector(n)`
    fn vector_literal(&mut self) -> Result<MetricExpr, ParseError> {
        let start = self.bump();
        self.expect(&TokenKind::LParen, "\"(\"")?;
        let value = self.literal()?.value;
        let close = self.expect(&TokenKind::RParen, "\")\"")?;
        Ok(MetricExpr::VectorLiteral(Literal {
            value,
            span: start.to(close),
        }))
    }
}
