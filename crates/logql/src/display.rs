//! The syntax tree printed as canonical LogQL.
//!
//! The text parses back to an equal tree (`parse(&e.to_string()) == Ok(e)`, spans
//! aside), with one exception that LogQL itself makes: a `!=` or `!~` line filter
//! right after `drop` or `keep` reads back as a matcher of that stage (which chute
//! does not support), as it does in Loki. Canonical means: strings in double quotes with Go escapes, one space
//! around binary and label-filter operators and none in matchers, `and`/`or` (never
//! `,`), the grouping before the arguments (`sum by (a) (...)`), the range after the
//! pipeline, and parentheses only where precedence needs them.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{
    AggregationOp, BinaryExpr, BinaryOp, CompareOp, Expr, FilterValue, Grouping, LabelCompare,
    LabelFilter, LineFilterOp, LogExpr, LogRange, MatchOp, Matcher, MetricExpr, RangeAggregation,
    RangeOp, Selector, Stage, StageKind, StringLit, VectorAggregation,
};

/// Writes `s` as a double-quoted LogQL string.
fn quote(s: &str, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Writes `items` separated by `sep`.
fn join<T: Display>(items: &[T], sep: &str, f: &mut Formatter<'_>) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(e) => e.fmt(f),
            Expr::Metric(e) => e.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.selector.fmt(f)?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for Selector {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        join(&self.matchers, ", ", f)?;
        f.write_char('}')
    }
}

impl Display for Matcher {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op, self.value)
    }
}

impl Display for MatchOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        })
    }
}

impl Display for StringLit {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        quote(&self.value, f)
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl Display for StageKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            StageKind::LineFilter(filter) => {
                write!(f, "{} ", filter.op)?;
                join(&filter.values, " or ", f)
            }
            StageKind::Json => f.write_str("| json"),
            StageKind::Logfmt => f.write_str("| logfmt"),
            StageKind::LabelFilter(filter) => write!(f, "| {filter}"),
            StageKind::LineFormat(template) => write!(f, "| line_format {template}"),
            StageKind::Drop(names) => {
                f.write_str("| drop ")?;
                join(names, ", ", f)
            }
            StageKind::Keep(names) => {
                f.write_str("| keep ")?;
                join(names, ", ", f)
            }
        }
    }
}

impl Display for LineFilterOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Matches => "|~",
            LineFilterOp::NotMatches => "!~",
        })
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (items, sep) = match self {
            LabelFilter::Compare(c) => return c.fmt(f),
            LabelFilter::And(items) => (items, " and "),
            LabelFilter::Or(items) => (items, " or "),
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            // `or` binds less tightly than `and`; a nested node of the same kind was
            // written in parentheses, and keeps them.
            let parens = match item {
                LabelFilter::Compare(_) => false,
                LabelFilter::And(_) => matches!(self, LabelFilter::And(_)),
                LabelFilter::Or(_) => true,
            };
            if parens {
                write!(f, "({item})")?;
            } else {
                item.fmt(f)?;
            }
        }
        Ok(())
    }
}

impl Display for LabelCompare {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, self.op, self.value)
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Re => "=~",
            CompareOp::NotRe => "!~",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        })
    }
}

impl Display for FilterValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FilterValue::String(s) => quote(s, f),
            FilterValue::Number(n) => n.fmt(f),
            FilterValue::Duration(d) => d.fmt(f),
            FilterValue::Bytes(b) => b.fmt(f),
        }
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range(e) => e.fmt(f),
            MetricExpr::Vector(e) => e.fmt(f),
            MetricExpr::Binary(e) => e.fmt(f),
            MetricExpr::Literal(l) => l.value.fmt(f),
            MetricExpr::VectorLiteral(l) => write!(f, "vector({})", l.value),
        }
    }
}

impl Display for RangeAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.op, self.range)
    }
}

impl Display for RangeOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
        })
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if !self.log.pipeline.is_empty() {
            f.write_char(' ')?;
        }
        write!(f, "[{}]", self.range)?;
        if let Some(offset) = self.offset {
            write!(f, " offset {offset}")?;
        }
        Ok(())
    }
}

impl Display for VectorAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = match self.op {
            AggregationOp::Sum => "sum",
            AggregationOp::Avg => "avg",
            AggregationOp::Min => "min",
            AggregationOp::Max => "max",
            AggregationOp::Count => "count",
            AggregationOp::TopK(_) => "topk",
            AggregationOp::BottomK(_) => "bottomk",
        };
        f.write_str(name)?;
        if let Some(grouping) = &self.grouping {
            write!(f, " {grouping} ")?;
        }
        f.write_char('(')?;
        if let AggregationOp::TopK(k) | AggregationOp::BottomK(k) = self.op {
            write!(f, "{k}, ")?;
        }
        write!(f, "{})", self.expr)
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(if self.without { "without (" } else { "by (" })?;
        join(&self.labels, ", ", f)?;
        f.write_char(')')
    }
}

impl Display for BinaryExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let precedence = self.op.precedence();
        let right_assoc = self.op.is_right_associative();
        // An operand needs parentheses when it binds less tightly than this operator,
        // or as tightly on the side the operator does not group towards.
        let needs_parens = |operand: &MetricExpr, on_right: bool| match operand {
            MetricExpr::Binary(b) => {
                let p = b.op.precedence();
                p < precedence || (p == precedence && on_right != right_assoc)
            }
            _ => false,
        };
        for (operand, on_right) in [(&self.lhs, false), (&self.rhs, true)] {
            if on_right {
                write!(f, " {} ", self.op)?;
            }
            if needs_parens(operand, on_right) {
                write!(f, "({operand})")?;
            } else {
                operand.fmt(f)?;
            }
        }
        Ok(())
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
        })
    }
}
