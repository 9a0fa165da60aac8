//! Stream selectors, pipelines (line filters, parsers, label filters, formatting,
//! drop/keep) and log ranges.

use super::Parser;
use crate::ast::{
    CompareOp, FilterValue, LabelCompare, LabelFilter, LineFilter, LineFilterOp, LogExpr, LogRange,
    MatchOp, Matcher, Selector, Stage, StageKind, StringLit,
};
use crate::error::{ErrorKind, ParseError};
use crate::lexer::TokenKind;
use crate::span::Span;
use crate::units::{Bytes, Duration};

/// Stages of Loki's pipelines that chute does not support. Like the supported ones,
/// these words always name a stage right after `|`, never a label.
const UNSUPPORTED_STAGES: &[&str] = &[
    "label_format",
    "unwrap",
    "pattern",
    "regexp",
    "decolorize",
    "unpack",
    "xml",
];

/// What a parenthesised or bare log query turned out to be inside a range function.
pub(super) enum LogOrRange {
    Log(LogExpr),
    Range(LogRange),
}

fn is_comparison(kind: &TokenKind) -> bool {
    use TokenKind as T;
    matches!(
        kind,
        T::Eq | T::EqEq | T::Neq | T::Re | T::Nre | T::Gt | T::Ge | T::Lt | T::Le
    )
}

impl Parser<'_> {
    /// `selector pipeline`.
    pub(super) fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let selector = self.selector()?;
        let pipeline = self.pipeline()?;
        Ok(self.finish_log_expr(selector, pipeline))
    }

    fn finish_log_expr(&self, selector: Selector, pipeline: Vec<Stage>) -> LogExpr {
        let end = pipeline.last().map_or(selector.span.end, |s| s.span.end);
        LogExpr {
            span: Span::new(selector.span.start, end),
            selector,
            pipeline,
        }
    }

    /// `{name op "value", ...}`
    fn selector(&mut self) -> Result<Selector, ParseError> {
        let open = self.expect(&TokenKind::LBrace, "a stream selector \"{\"")?;
        if self.peek().kind == TokenKind::RBrace {
            let close = self.bump();
            return Err(self.error(ErrorKind::EmptySelector, open.to(close)));
        }
        let mut matchers = Vec::new();
        loop {
            matchers.push(self.matcher()?);
            match self.peek().kind {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RBrace => {
                    let close = self.bump();
                    return Ok(Selector {
                        matchers,
                        span: open.to(close),
                    });
                }
                _ => return Err(self.unexpected("\"}\" or \",\"")),
            }
        }
    }

    fn matcher(&mut self) -> Result<Matcher, ParseError> {
        let (name, name_span) = self.ident("a label name")?;
        let op = match self.peek().kind {
            TokenKind::Eq => MatchOp::Eq,
            TokenKind::Neq => MatchOp::Ne,
            TokenKind::Re => MatchOp::Re,
            TokenKind::Nre => MatchOp::NotRe,
            _ => return Err(self.unexpected("\"=\", \"!=\", \"=~\" or \"!~\"")),
        };
        self.bump();
        let (value, span) = self.string("a string")?;
        Ok(Matcher {
            name,
            op,
            value: StringLit { value, span },
            span: name_span.to(span),
        })
    }

    /// Stages until a token that cannot start one.
    fn pipeline(&mut self) -> Result<Vec<Stage>, ParseError> {
        let mut stages = Vec::new();
        loop {
            let token = self.peek();
            let stage = match token.kind {
                TokenKind::PipeExact | TokenKind::Neq | TokenKind::PipeMatch | TokenKind::Nre => {
                    self.line_filter()?
                }
                TokenKind::PipePattern | TokenKind::NotPattern => {
                    let what = format!("the pattern line filter \"{}\"", self.text(token.span));
                    return Err(self.unsupported(what, token.span));
                }
                TokenKind::Pipe => self.pipe_stage()?,
                _ => return Ok(stages),
            };
            stages.push(stage);
        }
    }

    /// `op "value" [or "value" ...]`
    fn line_filter(&mut self) -> Result<Stage, ParseError> {
        let op = match self.peek().kind {
            TokenKind::Neq => LineFilterOp::NotContains,
            TokenKind::PipeMatch => LineFilterOp::Matches,
            TokenKind::Nre => LineFilterOp::NotMatches,
            _ => LineFilterOp::Contains,
        };
        let start = self.bump();
        let mut values = vec![self.line_filter_value()?];
        while self.is_word(0, "or") {
            self.bump();
            values.push(self.line_filter_value()?);
        }
        Ok(Stage {
            kind: StageKind::LineFilter(LineFilter { op, values }),
            span: Span::new(start.start, self.prev_end()),
        })
    }

    fn line_filter_value(&mut self) -> Result<StringLit, ParseError> {
        if self.is_word(0, "ip") && self.nth(1).kind == TokenKind::LParen {
            return Err(self.unsupported("ip() in line filters", self.peek().span));
        }
        let (value, span) = self.string("a string")?;
        Ok(StringLit { value, span })
    }

    /// `| <stage>`
    fn pipe_stage(&mut self) -> Result<Stage, ParseError> {
        let pipe = self.bump();
        let word = self.word();
        let kind = match word.as_deref() {
            Some(parser @ ("json" | "logfmt")) => {
                self.bump();
                let token = self.peek();
                if matches!(
                    token.kind,
                    TokenKind::Ident | TokenKind::Str(_) | TokenKind::Minus
                ) {
                    let what = format!("parameters and flags of the \"{parser}\" stage");
                    return Err(self.unsupported(what, token.span));
                }
                if parser == "json" {
                    StageKind::Json
                } else {
                    StageKind::Logfmt
                }
            }
            Some("line_format") => {
                self.bump();
                let (value, span) = self.string("a template string after line_format")?;
                StageKind::LineFormat(StringLit { value, span })
            }
            Some(stage @ ("drop" | "keep")) => {
                self.bump();
                let names = self.label_names(stage)?;
                if stage == "drop" {
                    StageKind::Drop(names)
                } else {
                    StageKind::Keep(names)
                }
            }
            Some(stage) if UNSUPPORTED_STAGES.contains(&stage) => {
                let what = format!("the \"{stage}\" stage");
                return Err(self.unsupported(what, self.peek().span));
            }
            Some(_) if !is_comparison(&self.nth(1).kind) => {
                return Err(self.unexpected(
                    "a pipeline stage (json, logfmt, line_format, drop, keep) or a label filter",
                ));
            }
            Some(_) => StageKind::LabelFilter(self.label_filter()?),
            None if self.peek().kind == TokenKind::LParen => {
                StageKind::LabelFilter(self.label_filter()?)
            }
            None => return Err(self.unexpected("a pipeline stage or a label filter")),
        };
        Ok(Stage {
            kind,
            span: Span::new(pipe.start, self.prev_end()),
        })
    }

    /// `name, name, ...` after `drop` or `keep`.
    fn label_names(&mut self, stage: &str) -> Result<Vec<String>, ParseError> {
        let mut names = Vec::new();
        loop {
            let (name, span) = self.ident("a label name")?;
            if is_comparison(&self.peek().kind) {
                let what = format!("label matchers in \"{stage}\" (only names)");
                return Err(self.unsupported(what, span.to(self.peek().span)));
            }
            names.push(name);
            if self.peek().kind != TokenKind::Comma {
                return Ok(names);
            }
            self.bump();
        }
    }

    /// `a or b`, where `or` binds less tightly than `and`.
    fn label_filter(&mut self) -> Result<LabelFilter, ParseError> {
        self.nested(|p| {
            let first = p.label_and()?;
            let mut rest = Vec::new();
            while p.is_word(0, "or") {
                p.bump();
                rest.push(p.label_and()?);
            }
            Ok(if rest.is_empty() {
                first
            } else {
                rest.insert(0, first);
                LabelFilter::Or(rest)
            })
        })
    }

    /// `a and b`, `a, b`, or `a b` (side by side).
    fn label_and(&mut self) -> Result<LabelFilter, ParseError> {
        let first = self.label_primary()?;
        let mut rest = Vec::new();
        loop {
            if self.peek().kind == TokenKind::Comma || self.is_word(0, "and") {
                self.bump();
            } else if !(self.peek().kind == TokenKind::Ident
                && !self.is_word(0, "or")
                && is_comparison(&self.nth(1).kind))
            {
                break;
            }
            rest.push(self.label_primary()?);
        }
        Ok(if rest.is_empty() {
            first
        } else {
            rest.insert(0, first);
            LabelFilter::And(rest)
        })
    }

    /// `( filter )` or `name op value`.
    fn label_primary(&mut self) -> Result<LabelFilter, ParseError> {
        if self.peek().kind == TokenKind::LParen {
            self.bump();
            let inner = self.label_filter()?;
            self.expect(&TokenKind::RParen, "\")\"")?;
            return Ok(inner);
        }
        let (name, name_span) = self.ident("a label filter")?;
        let op = match self.peek().kind {
            TokenKind::Eq | TokenKind::EqEq => CompareOp::Eq,
            TokenKind::Neq => CompareOp::Ne,
            TokenKind::Re => CompareOp::Re,
            TokenKind::Nre => CompareOp::NotRe,
            TokenKind::Gt => CompareOp::Gt,
            TokenKind::Ge => CompareOp::Ge,
            TokenKind::Lt => CompareOp::Lt,
            TokenKind::Le => CompareOp::Le,
            _ => return Err(self.unexpected("a comparison operator")),
        };
        let op_span = self.bump();
        let op_text = self.text(op_span).to_string();
        let (value, value_span) = self.filter_value(op, &op_text)?;
        Ok(LabelFilter::Compare(LabelCompare {
            name,
            op,
            value,
            value_span,
            span: name_span.to(value_span),
        }))
    }

    /// The value after a label filter's operator.
    fn filter_value(
        &mut self,
        op: CompareOp,
        op_text: &str,
    ) -> Result<(FilterValue, Span), ParseError> {
        if self.is_word(0, "ip") && self.nth(1).kind == TokenKind::LParen {
            return Err(self.unsupported("ip() in label filters", self.peek().span));
        }
        if matches!(op, CompareOp::Re | CompareOp::NotRe) {
            let (value, span) = self.string(&format!("a string after \"{op_text}\""))?;
            return Ok((FilterValue::String(value), span));
        }
        let start = self.peek().span;
        let negative = self.sign();
        let signed = self.prev_end() > start.start;
        let value = match &self.peek().kind {
            TokenKind::Str(s) if !signed && matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                FilterValue::String(s.clone())
            }
            TokenKind::Number(n) => FilterValue::Number(if negative { -n } else { *n }),
            TokenKind::Duration(nanos) => {
                FilterValue::Duration(self.signed_duration(*nanos, negative)?)
            }
            TokenKind::Bytes(b) if !signed => FilterValue::Bytes(Bytes(*b)),
            _ if signed => return Err(self.unexpected("a number or a duration")),
            _ if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                return Err(self.unexpected("a string, number, duration or byte size"));
            }
            _ => {
                let expected = format!("a number, duration or byte size after \"{op_text}\"");
                return Err(self.unexpected(&expected));
            }
        };
        let end = self.bump();
        Ok((value, start.to(end)))
    }

    /// The duration token just peeked, with its sign; fails past 64-bit nanoseconds.
    fn signed_duration(&self, nanos: u64, negative: bool) -> Result<Duration, ParseError> {
        let magnitude = i128::from(nanos);
        let value = if negative { -magnitude } else { magnitude };
        i64::try_from(value).map(Duration::from_nanos).map_err(|_| {
            let span = self.peek().span;
            let kind = ErrorKind::InvalidDuration {
                text: self.text(span).to_string(),
                reason: "too long for 64-bit nanoseconds".to_string(),
            };
            self.error(kind, span)
        })
    }

    /// A log query or a log range, possibly in parentheses, as the argument of a
    /// range function. The range may follow the selector (`{...}[5m] | json`) or the
    /// pipeline (`{...} | json [5m]`), as in Loki, and may carry an `offset`.
    pub(super) fn log_or_range(&mut self) -> Result<LogOrRange, ParseError> {
        self.nested(|p| {
            if p.peek().kind == TokenKind::LParen {
                let open = p.bump();
                let inner = p.log_or_range()?;
                p.expect(&TokenKind::RParen, "\")\"")?;
                return match inner {
                    LogOrRange::Log(log) if p.peek().kind == TokenKind::LBracket => {
                        let (range, range_span, offset) = p.range_suffix()?;
                        Ok(LogOrRange::Range(LogRange {
                            log,
                            range,
                            range_span,
                            offset,
                            span: Span::new(open.start, p.prev_end()),
                        }))
                    }
                    other => Ok(other),
                };
            }
            let selector = p.selector()?;
            let start = selector.span.start;
            if p.peek().kind == TokenKind::LBracket {
                let (range, range_span, offset) = p.range_suffix()?;
                let pipeline = p.pipeline()?;
                let log = p.finish_log_expr(selector, pipeline);
                return Ok(LogOrRange::Range(LogRange {
                    log,
                    range,
                    range_span,
                    offset,
                    span: Span::new(start, p.prev_end()),
                }));
            }
            let pipeline = p.pipeline()?;
            let log = p.finish_log_expr(selector, pipeline);
            if p.peek().kind != TokenKind::LBracket {
                return Ok(LogOrRange::Log(log));
            }
            let (range, range_span, offset) = p.range_suffix()?;
            Ok(LogOrRange::Range(LogRange {
                log,
                range,
                range_span,
                offset,
                span: Span::new(start, p.prev_end()),
            }))
        })
    }

    /// `[duration]` and an optional `offset duration`.
    fn range_suffix(&mut self) -> Result<(Duration, Span, Option<Duration>), ParseError> {
        let open = self.expect(&TokenKind::LBracket, "\"[\"")?;
        let token = self.peek();
        let span = token.span;
        let invalid = |p: &Self, reason: &str| {
            let kind = ErrorKind::InvalidDuration {
                text: p.text(span).to_string(),
                reason: reason.to_string(),
            };
            p.error(kind, span)
        };
        let range = match token.kind {
            TokenKind::Duration(0) => {
                return Err(invalid(self, "a range must be longer than zero"))
            }
            TokenKind::Duration(nanos) => self.signed_duration(nanos, false)?,
            TokenKind::Number(_) => return Err(invalid(self, "missing unit")),
            _ => return Err(self.unexpected("a duration such as 5m")),
        };
        self.bump();
        let close = self.expect(&TokenKind::RBracket, "\"]\"")?;
        let offset = if self.is_word(0, "offset") {
            self.bump();
            let negative = self.peek().kind == TokenKind::Minus;
            if negative {
                self.bump();
            }
            match self.peek().kind {
                TokenKind::Duration(nanos) => {
                    let offset = self.signed_duration(nanos, negative)?;
                    self.bump();
                    Some(offset)
                }
                _ => return Err(self.unexpected("a duration such as 1h")),
            }
        } else {
            None
        };
        Ok((range, open.to(close), offset))
    }
}
