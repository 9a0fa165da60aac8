//! What each construct parses to, and how it prints back.

use crate::{
    parse, AggregationOp, BinaryOp, Bytes, CompareOp, Duration, Expr, FilterValue, LabelFilter,
    LineFilterOp, LogExpr, MatchOp, MetricExpr, RangeOp, StageKind,
};

const SECOND: i64 = 1_000_000_000;

fn ok(query: &str) -> Expr {
    match parse(query) {
        Ok(expr) => expr,
        Err(e) => panic!("{query:?} does not parse: {e}"),
    }
}

/// Parses, checks that the printed form parses back to the same tree, and returns
/// the tree.
fn parsed(query: &str) -> Expr {
    let expr = ok(query);
    let printed = expr.to_string();
    assert_eq!(ok(&printed), expr, "{query:?} printed as {printed:?}");
    expr
}

fn log(query: &str) -> LogExpr {
    match parsed(query) {
        Expr::Log(log) => log,
        Expr::Metric(m) => panic!("{query:?} is a metric query: {m:?}"),
    }
}

fn metric(query: &str) -> MetricExpr {
    match parsed(query) {
        Expr::Metric(m) => m,
        Expr::Log(l) => panic!("{query:?} is a log query: {l:?}"),
    }
}

fn canonical(query: &str) -> String {
    parsed(query).to_string()
}

/// The label filter of a query's only stage.
fn label_filter(query: &str) -> LabelFilter {
    let log = log(query);
    assert_eq!(log.pipeline.len(), 1, "{query}");
    match &log.pipeline[0].kind {
        StageKind::LabelFilter(f) => f.clone(),
        other => panic!("not a label filter: {other:?}"),
    }
}

/// The value of a query's only label filter, which is one comparison.
fn filter_value(query: &str) -> (CompareOp, FilterValue) {
    match label_filter(query) {
        LabelFilter::Compare(c) => (c.op, c.value),
        other => panic!("not one comparison: {other:?}"),
    }
}

#[test]
fn a_selector_with_every_matcher_operator() {
    let log = log(r#"{app="x", other!="y", a=~"re.*", b!~"re"}"#);
    let ops: Vec<_> = log.selector.matchers.iter().map(|m| m.op).collect();
    assert_eq!(ops, [MatchOp::Eq, MatchOp::Ne, MatchOp::Re, MatchOp::NotRe]);
    let names: Vec<_> = log
        .selector
        .matchers
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["app", "other", "a", "b"]);
    assert_eq!(log.selector.matchers[2].value.value, "re.*");
    assert!(log.pipeline.is_empty());
}

#[test]
fn spans_are_byte_ranges_of_the_query() {
    let query = r#"{app="x"} |= "err" | status >= 500"#;
    let log = log(query);
    let matcher = &log.selector.matchers[0];
    assert_eq!(&query[matcher.span.range()], r#"app="x""#);
    assert_eq!(&query[matcher.value.span.range()], r#""x""#);
    assert_eq!(&query[log.selector.span.range()], r#"{app="x"}"#);
    assert_eq!(&query[log.pipeline[0].span.range()], r#"|= "err""#);
    assert_eq!(&query[log.pipeline[1].span.range()], "| status >= 500");
    assert_eq!(log.span.range(), 0..query.len());
    let LabelFilter::Compare(c) = label_filter(r#"{a="b"} | status >= 500"#) else {
        panic!("not a comparison");
    };
    assert_eq!(c.value_span.range(), 20..23);
}

#[test]
fn spans_of_metric_expressions() {
    let query = "sum by (level) (count_over_time({app=\"x\"} |= \"e\" [1m] offset 5m)) * 2";
    let MetricExpr::Binary(b) = metric(query) else {
        panic!("not a binary expression")
    };
    assert_eq!(b.span.range(), 0..query.len());
    let MetricExpr::Vector(sum) = *b.lhs else {
        panic!("not an aggregation")
    };
    assert_eq!(&query[sum.span.range()], &query[..query.len() - 4]);
    assert_eq!(&query[sum.grouping.unwrap().span.range()], "by (level)");
    let MetricExpr::Range(count) = *sum.expr else {
        panic!("not a range aggregation")
    };
    assert!(query[count.span.range()].starts_with("count_over_time("));
    assert!(query[count.span.range()].ends_with("offset 5m)"));
    assert_eq!(&query[count.range.range_span.range()], "[1m]");
    assert_eq!(
        &query[count.range.span.range()],
        "{app=\"x\"} |= \"e\" [1m] offset 5m"
    );
}

#[test]
fn strings_take_go_escapes_and_backticks() {
    let log = log(r#"{a="q\"b\\s\n\t\u00e9\x41\101\U0001F600"}"#);
    assert_eq!(
        log.selector.matchers[0].value.value,
        "q\"b\\s\n\t\u{e9}AA\u{1F600}"
    );
    let log = self::log(r"{a=~`\w+ \d` } |~ `a\.b`");
    assert_eq!(log.selector.matchers[0].value.value, r"\w+ \d");
    let StageKind::LineFilter(f) = &log.pipeline[0].kind else {
        panic!("not a line filter")
    };
    assert_eq!(f.values[0].value, r"a\.b");
    let log = self::log("{a=`two\nlines`}");
    assert_eq!(log.selector.matchers[0].value.value, "two\nlines");
}

#[test]
fn strings_print_back_escaped() {
    assert_eq!(canonical(r"{a=`\w+`}"), r#"{a="\\w+"}"#);
    assert_eq!(canonical("{a=`x\"y\n\u{1}`}"), r#"{a="x\"y\n\u0001"}"#);
    assert_eq!(canonical(r#"{a="é☃"}"#), r#"{a="é☃"}"#);
}

#[test]
fn chained_line_filters() {
    let log = log(r#"{app="x"} |= "a" != "b" |~ "c.*" !~ "d""#);
    let ops: Vec<_> = log
        .pipeline
        .iter()
        .map(|s| match &s.kind {
            StageKind::LineFilter(f) => f.op,
            other => panic!("not a line filter: {other:?}"),
        })
        .collect();
    use LineFilterOp::*;
    assert_eq!(ops, [Contains, NotContains, Matches, NotMatches]);
}

#[test]
fn line_filters_with_or() {
    let log = log(r#"{app="x"} |= "a" or "b" or `c` != "d""#);
    assert_eq!(log.pipeline.len(), 2);
    let StageKind::LineFilter(f) = &log.pipeline[0].kind else {
        panic!("not a line filter")
    };
    let values: Vec<_> = f.values.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(values, ["a", "b", "c"]);
    assert_eq!(
        canonical(r#"{app="x"} |= "a" OR "b""#),
        r#"{app="x"} |= "a" or "b""#
    );
}

#[test]
fn parser_and_formatting_stages() {
    let log = log(r#"{app="x"} | json | logfmt | line_format "{{.message}} {{.status}}""#);
    assert_eq!(log.pipeline[0].kind, StageKind::Json);
    assert_eq!(log.pipeline[1].kind, StageKind::Logfmt);
    let StageKind::LineFormat(t) = &log.pipeline[2].kind else {
        panic!("not line_format")
    };
    assert_eq!(t.value, "{{.message}} {{.status}}");
}

#[test]
fn drop_and_keep_take_names() {
    let log = log(r#"{app="x"} | drop a, b, __error__ | keep a,b"#);
    assert_eq!(
        log.pipeline[0].kind,
        StageKind::Drop(vec!["a".into(), "b".into(), "__error__".into()])
    );
    assert_eq!(
        log.pipeline[1].kind,
        StageKind::Keep(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        canonical(r#"{app="x"} | drop a,b | keep c"#),
        r#"{app="x"} | drop a, b | keep c"#
    );
}

#[test]
fn label_filters_keep_the_kind_of_their_value() {
    let q = |f: &str| format!("{{app=\"x\"}} | {f}");
    let d = |s: i64| FilterValue::Duration(Duration::from_nanos(s));
    let cases = [
        ("status >= 500", CompareOp::Ge, FilterValue::Number(500.0)),
        (
            "user=\"root\"",
            CompareOp::Eq,
            FilterValue::String("root".into()),
        ),
        (
            "user==\"root\"",
            CompareOp::Eq,
            FilterValue::String("root".into()),
        ),
        (
            "level!~\"debug|info\"",
            CompareOp::NotRe,
            FilterValue::String("debug|info".into()),
        ),
        (
            "level=~`e.*`",
            CompareOp::Re,
            FilterValue::String("e.*".into()),
        ),
        ("duration > 1s", CompareOp::Gt, d(SECOND)),
        ("duration < 1h30m", CompareOp::Lt, d(5400 * SECOND)),
        ("duration <= 250ms", CompareOp::Le, d(SECOND / 4)),
        ("duration != 1.5s", CompareOp::Ne, d(3 * SECOND / 2)),
        ("duration == 2d", CompareOp::Eq, d(2 * 86_400 * SECOND)),
        ("duration > 1w", CompareOp::Gt, d(7 * 86_400 * SECOND)),
        ("duration > -5m", CompareOp::Gt, d(-300 * SECOND)),
        (
            "size <= 20KB",
            CompareOp::Le,
            FilterValue::Bytes(Bytes(20_000)),
        ),
        (
            "size > 1.5MiB",
            CompareOp::Gt,
            FilterValue::Bytes(Bytes(1_572_864)),
        ),
        ("size = 512B", CompareOp::Eq, FilterValue::Bytes(Bytes(512))),
        (
            "size < 2KiB",
            CompareOp::Lt,
            FilterValue::Bytes(Bytes(2048)),
        ),
        ("n = -3", CompareOp::Eq, FilterValue::Number(-3.0)),
        ("n < 1.25", CompareOp::Lt, FilterValue::Number(1.25)),
        ("n < 1e3", CompareOp::Lt, FilterValue::Number(1000.0)),
        ("n > +2", CompareOp::Gt, FilterValue::Number(2.0)),
    ];
    for (filter, op, value) in cases {
        assert_eq!(filter_value(&q(filter)), (op, value), "{filter}");
    }
}

#[test]
fn and_binds_tighter_than_or_and_commas_are_and() {
    let f = label_filter(r#"{a="b"} | x="1" or y="2" and z="3", w="4""#);
    let LabelFilter::Or(items) = f else {
        panic!("not or")
    };
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[0], LabelFilter::Compare(c) if c.name == "x"));
    assert!(matches!(&items[1], LabelFilter::And(and) if and.len() == 3));
    assert_eq!(
        canonical(r#"{a="b"} | x="1" or y="2" and z="3", w="4""#),
        r#"{a="b"} | x = "1" or y = "2" and z = "3" and w = "4""#
    );
}

#[test]
fn parentheses_group_label_filters() {
    let f = label_filter(r#"{a="b"} | (x="1" or y="2") and z > 3"#);
    let LabelFilter::And(items) = f else {
        panic!("not and")
    };
    assert!(matches!(&items[0], LabelFilter::Or(_)));
    assert_eq!(
        canonical(r#"{a="b"} | ((x="1" or y="2")) and z>3"#),
        r#"{a="b"} | (x = "1" or y = "2") and z > 3"#
    );
    // Written parentheses around a same-kind operand are kept, so it prints back
    // to the same tree.
    assert_eq!(
        canonical(r#"{a="b"} | x="1" and (y="2" and z="3")"#),
        r#"{a="b"} | x = "1" and (y = "2" and z = "3")"#
    );
}

#[test]
fn label_filters_side_by_side_are_and() {
    let f = label_filter(r#"{a="b"} | x="1" y>2"#);
    assert!(matches!(f, LabelFilter::And(items) if items.len() == 2));
}

#[test]
fn range_aggregations_with_the_range_in_either_place() {
    let a = metric(r#"count_over_time({app="x"} |= "err" [5m])"#);
    let b = metric(r#"count_over_time({app="x"}[5m] |= "err")"#);
    assert_eq!(a, b);
    let MetricExpr::Range(r) = a else {
        panic!("not a range aggregation")
    };
    assert_eq!(r.op, RangeOp::CountOverTime);
    assert_eq!(r.range.range, Duration::from_nanos(300 * SECOND));
    assert_eq!(r.range.offset, None);
    assert_eq!(r.range.log.pipeline.len(), 1);
    assert_eq!(
        canonical(r#"count_over_time({app="x"}[5m] |= "err")"#),
        r#"count_over_time({app="x"} |= "err" [5m])"#
    );
}

#[test]
fn every_supported_range_function_and_offset() {
    for (name, op) in [
        ("count_over_time", RangeOp::CountOverTime),
        ("rate", RangeOp::Rate),
        ("bytes_over_time", RangeOp::BytesOverTime),
        ("bytes_rate", RangeOp::BytesRate),
    ] {
        let MetricExpr::Range(r) = metric(&format!("{name}({{a=\"b\"}}[1m] offset 1h)")) else {
            panic!("{name}: not a range aggregation")
        };
        assert_eq!(r.op, op);
        assert_eq!(r.range.offset, Some(Duration::from_nanos(3600 * SECOND)));
    }
    let MetricExpr::Range(r) = metric(r#"rate({a="b"} | json [30s] offset -10m)"#) else {
        panic!("not a range aggregation")
    };
    assert_eq!(r.range.offset, Some(Duration::from_nanos(-600 * SECOND)));
    assert_eq!(
        canonical(r#"rate({a="b"}[1m]offset 90s)"#),
        r#"rate({a="b"}[1m] offset 1m30s)"#
    );
}

#[test]
fn log_ranges_in_parentheses() {
    let plain = metric(r#"rate({a="b"} |= "x" [5m])"#);
    assert_eq!(metric(r#"rate(({a="b"} |= "x")[5m])"#), plain);
    assert_eq!(metric(r#"rate(({a="b"} |= "x" [5m]))"#), plain);
    assert_eq!(metric(r#"rate(((({a="b"} |= "x")))[5m])"#), plain);
}

#[test]
fn vector_aggregations_with_grouping_in_either_place() {
    let a = metric(r#"sum by (level) (rate({a="b"}[1m]))"#);
    let b = metric(r#"sum(rate({a="b"}[1m])) by (level)"#);
    assert_eq!(a, b);
    let MetricExpr::Vector(v) = a else {
        panic!("not an aggregation")
    };
    assert_eq!(v.op, AggregationOp::Sum);
    let g = v.grouping.unwrap();
    assert!(!g.without);
    assert_eq!(g.labels, ["level"]);
    for (name, op) in [
        ("avg", AggregationOp::Avg),
        ("min", AggregationOp::Min),
        ("max", AggregationOp::Max),
        ("count", AggregationOp::Count),
    ] {
        let MetricExpr::Vector(v) = metric(&format!("{name} without (a, b) (vector(1))")) else {
            panic!("{name}: not an aggregation")
        };
        assert_eq!(v.op, op);
        assert!(v.grouping.as_ref().unwrap().without);
    }
    assert_eq!(
        canonical(r#"sum(rate({a="b"}[1m])) without (x,y)"#),
        r#"sum without (x, y) (rate({a="b"}[1m]))"#
    );
    assert_eq!(canonical("sum by () (vector(1))"), "sum by () (vector(1))");
}

#[test]
fn topk_and_bottomk_take_k() {
    let MetricExpr::Vector(v) = metric(r#"topk(5, rate({a="b"}[1m]))"#) else {
        panic!("not an aggregation")
    };
    assert_eq!(v.op, AggregationOp::TopK(5));
    let MetricExpr::Vector(v) = metric(r#"bottomk by (x) (2, rate({a="b"}[1m]))"#) else {
        panic!("not an aggregation")
    };
    assert_eq!(v.op, AggregationOp::BottomK(2));
    assert_eq!(
        canonical(r#"topk(3, rate({a="b"}[1m])) by (x)"#),
        r#"topk by (x) (3, rate({a="b"}[1m]))"#
    );
}

#[test]
fn arithmetic_precedence_and_associativity() {
    let shape = |q: &str| canonical_shape(&metric(q));
    assert_eq!(shape("1 + 2 * 3"), "(1 + (2 * 3))");
    assert_eq!(shape("1 * 2 + 3"), "((1 * 2) + 3)");
    assert_eq!(shape("1 - 2 - 3"), "((1 - 2) - 3)");
    assert_eq!(shape("2 ^ 3 ^ 2"), "(2 ^ (3 ^ 2))");
    assert_eq!(shape("2 * 3 ^ 2"), "(2 * (3 ^ 2))");
    assert_eq!(shape("(1 + 2) * 3"), "((1 + 2) * 3)");
    assert_eq!(shape("8 / 4 % 3"), "((8 / 4) % 3)");
    assert_eq!(shape("-2 ^ 2"), "(-2 ^ 2)");
    assert_eq!(shape("1 - -2"), "(1 - -2)");
    assert_eq!(canonical("(1 + 2) * 3"), "(1 + 2) * 3");
    assert_eq!(canonical("1 - (2 - 3)"), "1 - (2 - 3)");
    assert_eq!(canonical("(2 ^ 3) ^ 2"), "(2 ^ 3) ^ 2");
    assert_eq!(canonical("2 ^ (3 ^ 2)"), "2 ^ 3 ^ 2");
    assert_eq!(canonical("((vector(1)))"), "vector(1)");
}

/// The tree with every binary expression in parentheses.
fn canonical_shape(m: &MetricExpr) -> String {
    match m {
        MetricExpr::Binary(b) => format!(
            "({} {} {})",
            canonical_shape(&b.lhs),
            b.op,
            canonical_shape(&b.rhs)
        ),
        other => other.to_string(),
    }
}

#[test]
fn numbers_and_vector_literals() {
    assert!(matches!(metric("42"), MetricExpr::Literal(l) if l.value == 42.0));
    assert!(matches!(metric("-1.5"), MetricExpr::Literal(l) if l.value == -1.5));
    assert!(matches!(metric("vector(1)"), MetricExpr::VectorLiteral(l) if l.value == 1.0));
    let MetricExpr::Binary(b) = metric("rate({a=\"b\"}[1m]) * 100") else {
        panic!("not binary")
    };
    assert_eq!(b.op, BinaryOp::Mul);
}

#[test]
fn grafanas_health_check() {
    let MetricExpr::Binary(b) = metric("vector(1)+vector(1)") else {
        panic!("not binary")
    };
    assert_eq!(b.op, BinaryOp::Add);
    assert!(matches!(*b.lhs, MetricExpr::VectorLiteral(ref l) if l.value == 1.0));
    assert!(matches!(*b.rhs, MetricExpr::VectorLiteral(ref l) if l.value == 1.0));
    assert_eq!(canonical("vector(1)+vector(1)"), "vector(1) + vector(1)");
}

#[test]
fn grafanas_log_volume_query() {
    let q = r#"sum by (level, detected_level) (count_over_time({app="x"} | drop __error__ [1m]))"#;
    let MetricExpr::Vector(v) = metric(q) else {
        panic!("not an aggregation")
    };
    assert_eq!(
        v.grouping.as_ref().unwrap().labels,
        ["level", "detected_level"]
    );
    let MetricExpr::Range(r) = *v.expr else {
        panic!("not a range aggregation")
    };
    assert_eq!(
        r.range.log.pipeline[0].kind,
        StageKind::Drop(vec!["__error__".into()])
    );
    assert_eq!(r.range.range, Duration::from_nanos(60 * SECOND));
    assert_eq!(canonical(q), q);
}

#[test]
fn grafanas_log_query_with_a_pipeline() {
    let q = r#"{app="x"} |= "timeout" | json | status >= 500 | line_format "{{.msg}}""#;
    let log = log(q);
    assert_eq!(log.pipeline.len(), 4);
    assert_eq!(log.pipeline[1].kind, StageKind::Json);
    assert_eq!(canonical(q), q);
}

#[test]
fn topk_of_a_sum_of_rates() {
    let q = r#"topk(5, sum by (host) (rate({tenant="default"}[5m])))"#;
    let MetricExpr::Vector(v) = metric(q) else {
        panic!("not an aggregation")
    };
    assert_eq!(v.op, AggregationOp::TopK(5));
    assert!(matches!(*v.expr, MetricExpr::Vector(ref s) if s.op == AggregationOp::Sum));
    assert_eq!(canonical(q), q);
}

#[test]
fn keywords_and_functions_ignore_case() {
    assert_eq!(
        canonical(r#"SUM BY (a) (COUNT_OVER_TIME({a="b"} | JSON | x > 1 AND y < 2 [1m]))"#),
        r#"sum by (a) (count_over_time({a="b"} | json | x > 1 and y < 2 [1m]))"#
    );
}

#[test]
fn blanks_and_comments_are_ignored() {
    let q = "# volume\nsum by (level) ( # per level\n  count_over_time({app=\"x\"}\t[1m]) # counted\n)\n";
    assert_eq!(
        canonical(q),
        r#"sum by (level) (count_over_time({app="x"}[1m]))"#
    );
    assert_eq!(
        canonical("{a=\"#not a comment\"}"),
        "{a=\"#not a comment\"}"
    );
}

#[test]
fn a_parenthesised_log_query_is_a_log_query() {
    assert_eq!(ok(r#"({a="b"} |= "x")"#), ok(r#"{a="b"} |= "x""#));
}

#[test]
fn a_label_filter_on_a_number_prints_the_shortest_exact_number() {
    assert_eq!(canonical(r#"{a="b"} | x > 0.1"#), r#"{a="b"} | x > 0.1"#);
    assert_eq!(canonical(r#"{a="b"} | x > 1e3"#), r#"{a="b"} | x > 1000"#);
    assert_eq!(canonical(r#"{a="b"} | x > 2.50"#), r#"{a="b"} | x > 2.5"#);
}
