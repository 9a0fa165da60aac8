//! Round trip: any tree prints as LogQL that parses back to the same tree.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::{
    parse, AggregationOp, BinaryExpr, BinaryOp, Bytes, CompareOp, Duration, Expr, FilterValue,
    Grouping, LabelCompare, LabelFilter, LineFilter, LineFilterOp, Literal, LogExpr, LogRange,
    MatchOp, Matcher, MetricExpr, RangeAggregation, RangeOp, Selector, Span, Stage, StageKind,
    StringLit, VectorAggregation,
};

/// Words that mean something where a label name could stand.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "offset",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "json",
    "logfmt",
    "line_format",
    "drop",
    "keep",
    "label_format",
    "unwrap",
    "pattern",
    "regexp",
    "decolorize",
    "unpack",
    "xml",
    "ip",
];

const NO_SPAN: Span = Span::new(0, 0);

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("a keyword", |s| {
        !RESERVED.iter().any(|r| s.eq_ignore_ascii_case(r))
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z .*|{}\\\\\"`#]{0,10}",
        vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect()),
    ]
}

fn string_lit() -> impl Strategy<Value = StringLit> {
    text().prop_map(|value| StringLit {
        value,
        span: NO_SPAN,
    })
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1i64..100_000).prop_map(|s| Duration::from_nanos(s * 1_000_000_000)),
        (1i64..100_000_000).prop_map(|ms| Duration::from_nanos(ms * 1_000_000)),
        any::<i64>().prop_map(Duration::from_nanos),
    ]
}

fn positive_duration() -> impl Strategy<Value = Duration> {
    duration().prop_map(|d| Duration::from_nanos(d.as_nanos().checked_abs().unwrap_or(1).max(1)))
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let op = prop_oneof![
        Just(MatchOp::Eq),
        Just(MatchOp::Ne),
        Just(MatchOp::Re),
        Just(MatchOp::NotRe)
    ];
    (label(), op, string_lit()).prop_map(|(name, op, value)| Matcher {
        name,
        op,
        value,
        span: NO_SPAN,
    })
}

fn compare() -> impl Strategy<Value = LabelFilter> {
    let string_ops = prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Re),
        Just(CompareOp::NotRe)
    ];
    let ordered_ops = prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
        Just(CompareOp::Lt),
        Just(CompareOp::Le)
    ];
    let ordered_value = prop_oneof![
        number().prop_map(FilterValue::Number),
        duration().prop_map(FilterValue::Duration),
        any::<u64>().prop_map(|b| FilterValue::Bytes(Bytes(b))),
    ];
    let pair = prop_oneof![
        (string_ops, text().prop_map(FilterValue::String)),
        (ordered_ops, ordered_value),
    ];
    (label(), pair).prop_map(|(name, (op, value))| {
        LabelFilter::Compare(LabelCompare {
            name,
            op,
            value,
            value_span: NO_SPAN,
            span: NO_SPAN,
        })
    })
}

fn label_filter() -> impl Strategy<Value = LabelFilter> {
    compare().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 2..4).prop_map(LabelFilter::And),
            vec(inner, 2..4).prop_map(LabelFilter::Or),
        ]
    })
}

fn stage() -> impl Strategy<Value = Stage> {
    let line_op = prop_oneof![
        Just(LineFilterOp::Contains),
        Just(LineFilterOp::NotContains),
        Just(LineFilterOp::Matches),
        Just(LineFilterOp::NotMatches)
    ];
    let kind = prop_oneof![
        (line_op, vec(string_lit(), 1..3))
            .prop_map(|(op, values)| StageKind::LineFilter(LineFilter { op, values })),
        Just(StageKind::Json),
        Just(StageKind::Logfmt),
        label_filter().prop_map(StageKind::LabelFilter),
        string_lit().prop_map(StageKind::LineFormat),
        vec(label(), 1..4).prop_map(StageKind::Drop),
        vec(label(), 1..4).prop_map(StageKind::Keep),
    ];
    kind.prop_map(|kind| Stage {
        kind,
        span: NO_SPAN,
    })
}

/// `| drop a != "x"` is a matcher in `drop` (as in Loki), not `drop` then a line
/// filter: the one pipeline that does not print back to itself.
fn is_ambiguous(pipeline: &[Stage]) -> bool {
    pipeline.windows(2).any(|w| {
        matches!(w[0].kind, StageKind::Drop(_) | StageKind::Keep(_))
            && matches!(
                &w[1].kind,
                StageKind::LineFilter(f)
                    if matches!(f.op, LineFilterOp::NotContains | LineFilterOp::NotMatches)
            )
    })
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    let pipeline = vec(stage(), 0..4).prop_filter("drop, then !=", |p| !is_ambiguous(p));
    (vec(matcher(), 1..4), pipeline).prop_map(|(matchers, pipeline)| LogExpr {
        selector: Selector {
            matchers,
            span: NO_SPAN,
        },
        pipeline,
        span: NO_SPAN,
    })
}

fn literal() -> impl Strategy<Value = Literal> {
    number().prop_map(|value| Literal {
        value,
        span: NO_SPAN,
    })
}

fn metric_expr() -> impl Strategy<Value = MetricExpr> {
    let range_op = prop_oneof![
        Just(RangeOp::CountOverTime),
        Just(RangeOp::Rate),
        Just(RangeOp::BytesOverTime),
        Just(RangeOp::BytesRate)
    ];
    let range = (
        range_op,
        log_expr(),
        positive_duration(),
        proptest::option::of(duration()),
    )
        .prop_map(|(op, log, range, offset)| {
            MetricExpr::Range(RangeAggregation {
                op,
                range: LogRange {
                    log,
                    range,
                    range_span: NO_SPAN,
                    offset,
                    span: NO_SPAN,
                },
                span: NO_SPAN,
            })
        });
    let leaf = prop_oneof![
        range,
        literal().prop_map(MetricExpr::Literal),
        literal().prop_map(MetricExpr::VectorLiteral),
    ];
    leaf.prop_recursive(4, 16, 2, |inner| {
        let agg_op = prop_oneof![
            Just(AggregationOp::Sum),
            Just(AggregationOp::Avg),
            Just(AggregationOp::Min),
            Just(AggregationOp::Max),
            Just(AggregationOp::Count),
            (1u64..1000).prop_map(AggregationOp::TopK),
            (1u64..1000).prop_map(AggregationOp::BottomK),
        ];
        let grouping = proptest::option::of((any::<bool>(), vec(label(), 0..3)).prop_map(
            |(without, labels)| Grouping {
                without,
                labels,
                span: NO_SPAN,
            },
        ));
        let bin_op = prop_oneof![
            Just(BinaryOp::Add),
            Just(BinaryOp::Sub),
            Just(BinaryOp::Mul),
            Just(BinaryOp::Div),
            Just(BinaryOp::Mod),
            Just(BinaryOp::Pow)
        ];
        prop_oneof![
            (agg_op, grouping, inner.clone()).prop_map(|(op, grouping, expr)| {
                MetricExpr::Vector(VectorAggregation {
                    op,
                    grouping,
                    expr: Box::new(expr),
                    span: NO_SPAN,
                })
            }),
            (bin_op, inner.clone(), inner).prop_map(|(op, lhs, rhs)| {
                MetricExpr::Binary(BinaryExpr {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                    span: NO_SPAN,
                })
            }),
        ]
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![
        log_expr().prop_map(Expr::Log),
        metric_expr().prop_map(Expr::Metric),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Printing a tree and parsing the text gives the tree back.
    #[test]
    fn every_tree_prints_as_text_that_parses_back_to_it(expr in expr()) {
        let text = expr.to_string();
        match parse(&text) {
            Ok(parsed) => prop_assert_eq!(parsed, expr, "printed as {}", text),
            Err(e) => prop_assert!(false, "{} does not parse: {}", text, e),
        }
    }

    /// Printing is a fixed point: the canonical text prints as itself.
    #[test]
    fn canonical_text_prints_as_itself(expr in expr()) {
        let text = expr.to_string();
        let again = parse(&text).map(|e| e.to_string());
        prop_assert_eq!(again, Ok(text));
    }

    /// Any text at all gives a tree or an error, never a panic.
    #[test]
    fn any_text_parses_or_fails_without_panicking(text in "[{}()\\[\\],|=!~<>+*/%^ a-z0-9.\"`#-]{0,40}") {
        let _ = parse(&text);
    }
}
