//! Errors: their kind, where they point, and how they read.

use crate::{parse, ErrorKind, ParseError, MAX_DEPTH, MAX_INPUT_LEN};

fn err(query: &str) -> ParseError {
    match parse(query) {
        Ok(expr) => panic!("{query:?} parses, as {expr}"),
        Err(e) => e,
    }
}

/// The error's line, column and message.
fn at(query: &str) -> (usize, usize, String) {
    let e = err(query);
    (e.line(), e.column(), e.to_string())
}

fn unsupported(query: &str) -> (usize, String) {
    let e = err(query);
    match e.kind() {
        ErrorKind::Unsupported { what } => (e.column(), what.clone()),
        other => panic!("{query:?}: not unsupported but {other:?} ({e})"),
    }
}

#[test]
fn a_missing_closing_brace() {
    let q = r#"{app="x", level="error" | json"#;
    let (line, col, msg) = at(q);
    assert_eq!((line, col), (1, 25));
    assert_eq!(
        msg,
        r#"parse error at line 1, col 25: expected "}" or ",", found "|""#
    );
    assert_eq!(
        err(r#"{app="x""#).to_string(),
        r#"parse error at line 1, col 9: expected "}" or ",", found end of input"#
    );
}

#[test]
fn errors_count_lines_and_characters() {
    let q = "sum by (level) (\n  count_over_time({app=\"é\"} | bogus [1m])\n)";
    let e = err(q);
    // Columns count characters: "é" is two bytes and one column.
    assert_eq!((e.line(), e.column()), (2, 31));
    assert_eq!(&q[e.span().range()], "bogus");
    assert_eq!(
        e.to_string(),
        "parse error at line 2, col 31: expected a pipeline stage (json, logfmt, \
         line_format, drop, keep) or a label filter, found \"bogus\""
    );
    assert!(matches!(e.kind(), ErrorKind::Syntax { .. }));
}

#[test]
fn an_unsupported_stage_is_named_with_its_place() {
    let q = r#"{app="x"} | label_format a="{{.b}}""#;
    let e = err(q);
    assert_eq!(
        e.kind(),
        &ErrorKind::Unsupported {
            what: "the \"label_format\" stage".into()
        }
    );
    assert_eq!((e.line(), e.column()), (1, 13));
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 13: chute does not support the \"label_format\" stage"
    );
    for stage in [
        "unwrap x",
        "pattern \"<_> <x>\"",
        "regexp \"(?P<a>.)\"",
        "decolorize",
        "unpack",
        "xml",
    ] {
        let (col, what) = unsupported(&format!("{{app=\"x\"}} | {stage}"));
        assert_eq!(col, 13, "{stage}");
        assert!(what.contains(stage.split(' ').next().unwrap()), "{what}");
    }
}

#[test]
fn every_unsupported_construct_is_reported_at_its_place() {
    let cases = [
        (
            r#"{a="b"} | json x="y""#,
            16,
            "parameters and flags of the \"json\" stage",
        ),
        (
            r#"{a="b"} | logfmt --strict"#,
            18,
            "parameters and flags of the \"logfmt\" stage",
        ),
        (
            r#"{a="b"} | drop a, b="x""#,
            19,
            "label matchers in \"drop\" (only names)",
        ),
        (r#"{a="b"} |> "<_> x""#, 9, "the pattern line filter \"|>\""),
        (r#"{a="b"} !> "<_> x""#, 9, "the pattern line filter \"!>\""),
        (r#"{a="b"} |= ip("10.0.0.1")"#, 12, "ip() in line filters"),
        (
            r#"{a="b"} | addr = ip("10.0.0.0/8")"#,
            18,
            "ip() in label filters",
        ),
        (
            r#"sum_over_time({a="b"} | unwrap x [1m])"#,
            1,
            "the range function \"sum_over_time\"",
        ),
        (
            r#"quantile_over_time(0.99, {a="b"} | unwrap x [1m])"#,
            1,
            "the range function \"quantile_over_time\"",
        ),
        (
            r#"count_over_time({a="b"}[1m]) by (x)"#,
            30,
            "grouping (by, without) on \"count_over_time\"",
        ),
        (r#"stddev(rate({a="b"}[1m]))"#, 1, "the function \"stddev\""),
        (r#"sort(rate({a="b"}[1m]))"#, 1, "the function \"sort\""),
        (
            r#"quantile(0.5, rate({a="b"}[1m]))"#,
            1,
            "the function \"quantile\"",
        ),
        (
            r#"rate({a="b"}[1m]) > 1"#,
            19,
            "the comparison operator \">\"",
        ),
        (
            r#"vector(1) == vector(1)"#,
            11,
            "the comparison operator \"==\"",
        ),
        (r#"vector(1) or vector(2)"#, 11, "the set operator \"or\""),
        (
            r#"vector(1) unless vector(2)"#,
            11,
            "the set operator \"unless\"",
        ),
        (
            r#"vector(1) + bool vector(2)"#,
            13,
            "the \"bool\" modifier of binary operators",
        ),
        (
            r#"vector(1) / on (a) vector(2)"#,
            13,
            "the \"on\" modifier of binary operators",
        ),
        (
            r#"vector(1) * ignoring (a) group_left vector(2)"#,
            13,
            "the \"ignoring\" modifier of binary operators",
        ),
    ];
    for (query, col, what) in cases {
        assert_eq!(unsupported(query), (col, what.to_string()), "{query}");
    }
}

#[test]
fn an_unterminated_string() {
    let e = err("{app=\"x}");
    assert!(matches!(e.kind(), ErrorKind::InvalidString { .. }), "{e}");
    assert_eq!((e.line(), e.column()), (1, 6));
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 6: invalid string: missing closing '\"'"
    );
    let e = err("{app=`x}");
    assert!(matches!(e.kind(), ErrorKind::InvalidString { .. }), "{e}");
    assert_eq!(e.column(), 6);
    let e = err("{app=\"x\ny\"}");
    assert!(matches!(e.kind(), ErrorKind::InvalidString { .. }), "{e}");
}

#[test]
fn a_bad_escape_points_at_the_escape() {
    let e = err(r#"{app="x\qy"}"#);
    assert_eq!(
        e.kind(),
        &ErrorKind::InvalidString {
            reason: "unknown escape sequence \"\\q\"".into()
        }
    );
    assert_eq!(e.column(), 8);
    for bad in [
        r"\x8",
        r"\xff",
        r"\u12",
        r"\ud800",
        r"\U00110000",
        r"\400",
        r"\'",
    ] {
        let e = err(&format!("{{app=\"{bad}\"}}"));
        assert!(
            matches!(e.kind(), ErrorKind::InvalidString { .. }),
            "{bad}: {e}"
        );
        assert_eq!(e.column(), 7, "{bad}");
    }
}

#[test]
fn a_bad_duration() {
    let e = err(r#"count_over_time({a="b"}[5x])"#);
    assert_eq!(
        e.kind(),
        &ErrorKind::InvalidDuration {
            text: "5x".into(),
            reason: "unknown unit \"x\"".into()
        }
    );
    assert_eq!(e.column(), 25);
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 25: invalid duration \"5x\": unknown unit \"x\""
    );
    let e = err(r#"{a="b"} | d > 1.5d"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidDuration { .. }), "{e}");
    let e = err(r#"rate({a="b"}[5])"#);
    assert!(
        matches!(e.kind(), ErrorKind::InvalidDuration { reason, .. } if reason == "missing unit"),
        "{e}"
    );
    let e = err(r#"rate({a="b"}[0s])"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidDuration { .. }), "{e}");
    let e = err(r#"{a="b"} | d > 300y"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidDuration { .. }), "{e}");
}

#[test]
fn a_bad_byte_size_or_number() {
    let e = err(r#"{a="b"} | size > 5KX"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidBytes { .. }), "{e}");
    assert_eq!(e.column(), 18);
    let e = err(r#"{a="b"} | size > 99999999999PB"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidBytes { .. }), "{e}");
    let e = err("1e999");
    assert!(matches!(e.kind(), ErrorKind::InvalidNumber { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 1: invalid number \"1e999\": out of range"
    );
    let e = err(r#"topk(1.5, rate({a="b"}[1m]))"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidNumber { .. }), "{e}");
    assert_eq!(e.column(), 6);
    let e = err(r#"topk(0, rate({a="b"}[1m]))"#);
    assert!(matches!(e.kind(), ErrorKind::InvalidNumber { .. }), "{e}");
}

#[test]
fn an_empty_selector() {
    let e = err(r#"{} |= "x""#);
    assert_eq!(e.kind(), &ErrorKind::EmptySelector);
    assert_eq!((e.column(), e.span().range()), (1, 0..2));
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 1: a stream selector needs at least one label matcher"
    );
    let e = err(r#"rate({ }[1m])"#);
    assert_eq!(e.kind(), &ErrorKind::EmptySelector);
    assert_eq!(e.column(), 6);
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let cases = [
        ("", 1, "expected a stream selector \"{\", a function or a number, found end of input"),
        ("app", 1, "expected a stream selector \"{\", a function or a number, found \"app\""),
        (r#"{app}"#, 5, "expected \"=\", \"!=\", \"=~\" or \"!~\", found \"}\""),
        (r#"{app=5}"#, 6, "expected a string, found \"5\""),
        (r#"{app="x",}"#, 10, "expected a label name, found \"}\""),
        (r#"{a="b"} |= 5"#, 12, "expected a string, found \"5\""),
        (r#"{a="b"} | x > "y""#, 15, "expected a number, duration or byte size after \">\", found a string"),
        (r#"{a="b"} | x =~ 5"#, 16, "expected a string after \"=~\", found \"5\""),
        (r#"{a="b"} | x"#, 11, "expected a pipeline stage (json, logfmt, line_format, drop, keep) or a label filter, found \"x\""),
        (r#"{a="b"} | line_format"#, 22, "expected a template string after line_format, found end of input"),
        (r#"{a="b"} | (x = "1""#, 19, "expected \")\", found end of input"),
        (r#"{a="b"} | drop"#, 15, "expected a label name, found end of input"),
        (r#"{a="b"} foo"#, 9, "expected \"|\", a line filter or end of input, found \"foo\""),
        (r#"{a="b"}[5m]"#, 8, "expected \"|\", a line filter or end of input, found \"[\""),
        (r#"rate({a="b"})"#, 13, "expected a range such as \"[5m]\", found \")\""),
        (r#"rate({a="b"}[5m] [1m])"#, 18, "expected \")\", found \"[\""),
        (r#"rate({a="b"}[5m]) 2"#, 19, "expected an operator or end of input, found \"2\""),
        (r#"sum({a="b"})"#, 5, "expected a metric expression, found a log query (a range function such as count_over_time turns one into samples)"),
        (r#"vector(1) + {a="b"}"#, 13, "expected a metric expression, found a log query (a range function such as count_over_time turns one into samples)"),
        (r#"sum by (a (vector(1))"#, 11, "expected \")\" or \",\", found \"(\""),
        ("1 +", 4, "expected a stream selector \"{\", a function or a number, found end of input"),
        ("- vector(1)", 3, "expected a number, found \"vector\""),
        ("(1", 3, "expected \")\", found end of input"),
        ("{a=\"b\"} § ", 9, "expected a LogQL token, found \"§\""),
    ];
    for (query, col, message) in cases {
        let e = err(query);
        assert!(matches!(e.kind(), ErrorKind::Syntax { .. }), "{query}: {e}");
        assert_eq!(e.column(), col, "{query}: {e}");
        assert_eq!(e.kind().to_string(), message, "{query}");
    }
}

#[test]
fn the_first_error_in_the_text_wins() {
    // A syntax error before a bad string is reported, not the string.
    let e = err(r#"{a="b" |= "x\q""#);
    assert!(matches!(e.kind(), ErrorKind::Syntax { .. }), "{e}");
    assert_eq!(e.column(), 8);
    // Reaching the bad text reports the lexer's error.
    let e = err(r#"{a="b"} |= "x\q""#);
    assert!(matches!(e.kind(), ErrorKind::InvalidString { .. }), "{e}");
    assert_eq!(e.column(), 14);
}

#[test]
fn ten_thousand_open_parentheses_are_refused_without_overflowing_the_stack() {
    let parens = "(".repeat(10_000);
    for query in [
        parens.clone(),
        "sum(".repeat(10_000),
        format!("rate({parens}"),
        format!("{{a=\"b\"}} | {parens}"),
    ] {
        let e = err(&query);
        assert_eq!(
            e.kind(),
            &ErrorKind::TooDeep { max: MAX_DEPTH },
            "{}",
            &query[..12]
        );
    }
    let e = err(&format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)));
    assert_eq!(e.kind(), &ErrorKind::TooDeep { max: MAX_DEPTH });
    assert_eq!(
        e.to_string(),
        // The whole query is the first level and each "(" one more: what follows the
        // 64th "(" would be the 65th.
        format!(
            "parse error at line 1, col {}: the query nests deeper than 64 levels",
            MAX_DEPTH + 1
        )
    );
}

#[test]
fn long_operator_chains_are_refused_too() {
    let e = err(&format!("1{}", "+1".repeat(5_000)));
    assert_eq!(e.kind(), &ErrorKind::TooDeep { max: MAX_DEPTH });
    let e = err(&format!("{}1", "2^".repeat(5_000)));
    assert_eq!(e.kind(), &ErrorKind::TooDeep { max: MAX_DEPTH });
    // Within the limit, fine.
    assert!(parse(&format!("1{}", "+1".repeat(MAX_DEPTH - 2))).is_ok());
    assert!(parse(&format!(
        "{}1{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    ))
    .is_ok());
    // Long flat lists are not nesting.
    let many = (0..2_000)
        .map(|i| format!("l{i}=\"v\""))
        .collect::<Vec<_>>()
        .join(" and ");
    assert!(parse(&format!("{{a=\"b\"}} | {many}")).is_ok());
}

#[test]
fn a_query_over_the_length_limit() {
    let query = format!("{{a=\"{}\"}}", "x".repeat(MAX_INPUT_LEN));
    let e = err(&query);
    assert_eq!(
        e.kind(),
        &ErrorKind::TooLong {
            len: MAX_INPUT_LEN + 6,
            max: MAX_INPUT_LEN
        }
    );
    assert_eq!(e.span().range(), MAX_INPUT_LEN..MAX_INPUT_LEN + 6);
    assert_eq!((e.line(), e.column()), (1, MAX_INPUT_LEN + 1));
}

#[test]
fn hostile_fragments_give_errors_not_panics() {
    let fragments = [
        "{", "}", "(", ")", "[", "]", ",", "|", "|=", "!=", "=~", "!~", "=", "==", ">", "-", "\"",
        "`", "\\", "a", "1", "1.5", "5m", "5KB", "or", "and", "by", "offset", "json", "sum",
        "rate", "topk", "vector", "#", "\n", " ", "é", "\u{0}", "1e", "1.", "ms",
    ];
    // Every pair and triple of fragments: nothing panics.
    for a in fragments {
        for b in fragments {
            let _ = parse(&format!("{a}{b}"));
            for c in fragments {
                let _ = parse(&format!("{a} {b}{c}"));
            }
        }
    }
}
