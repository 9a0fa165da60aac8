use super::*;
use chute_logql::{parse, Expr};

/// 2023-11-14 22:13:20.123 UTC.
const TS: i64 = 1_700_000_000_123_000_000;

fn compile(query: &str) -> Result<Pipeline, QueryError> {
    let Ok(Expr::Log(log)) = parse(query) else {
        panic!("{query} is not a log query");
    };
    Pipeline::new(&log.pipeline, query)
}

/// The pipeline of `{app="api"} <stages>`.
fn pipeline(stages: &str) -> Pipeline {
    compile(&format!("{{app=\"api\"}} {stages}")).unwrap()
}

/// The message of the error compiling `query`.
fn refused(query: &str) -> String {
    match compile(query) {
        Err(QueryError::Invalid(message)) => message,
        Err(e) => panic!("{query}: {e}"),
        Ok(_) => panic!("{query} compiled"),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An entry of the stream `{app="api", host="h1"}`.
fn entry(line: &str) -> Entry {
    Entry {
        ts: TS,
        labels: map(&[("app", "api"), ("host", "h1")]),
        line: line.to_string(),
        ..Entry::default()
    }
}

fn run(stages: &str, line: &str) -> Option<Entry> {
    pipeline(stages).process(entry(line))
}

fn parsed(stages: &str, line: &str) -> BTreeMap<String, String> {
    run(stages, line).expect("the entry passes").parsed
}

fn keeps(stages: &str, line: &str) -> bool {
    run(stages, line).is_some()
}

#[test]
fn no_stage_is_empty() {
    assert!(compile(r#"{app="api"}"#).unwrap().is_empty());
    assert!(!pipeline("| json").is_empty());
    let e = entry("x");
    assert_eq!(
        compile(r#"{app="api"}"#).unwrap().process(e.clone()),
        Some(e)
    );
}

// json

#[test]
fn json_extracts_scalars_and_flattens_objects() {
    let line = r#"{"msg":"a \"b\"","n":1.50,"big":-1e3,"ok":true,"no":false,"nil":null,
        "list":[1,2],"req":{"method":"GET","headers":{"User-Agent":"curl"},"empty":{}}}"#;
    let expected = map(&[
        ("msg", "a \"b\""),
        ("n", "1.50"),
        ("big", "-1e3"),
        ("ok", "true"),
        ("no", "false"),
        ("req_method", "GET"),
        ("req_headers_User_Agent", "curl"),
    ]);
    assert_eq!(parsed("| json", line), expected);
}

#[test]
fn json_sanitises_label_names() {
    let line = r#"{"a.b":{"c":"d"},"cou-nter":1,"1st":"x","n":{"2":"y"}," ":{"k":"v"},"é":"z"}"#;
    let expected = map(&[
        ("a_b_c", "d"),
        ("cou_nter", "1"),
        ("_1st", "x"),
        ("n__2", "y"),
        ("k", "v"),
        ("_", "z"),
    ]);
    assert_eq!(parsed("| json", line), expected);
}

#[test]
fn json_names_of_stream_labels_get_extracted_appended() {
    let mut e = entry(r#"{"app":"web","host":{"name":"x"},"a":{"b":1}}"#);
    e.labels.insert("a_b".into(), "stream".into());
    let out = pipeline("| json").process(e).unwrap();
    let expected = map(&[
        ("app_extracted", "web"),
        ("host_name", "x"),
        ("a_b_extracted", "1"),
    ]);
    assert_eq!(out.parsed, expected);
    assert_eq!(out.get("app"), Some("api"));
}

#[test]
fn json_labels_hide_metadata_of_the_same_name() {
    let mut e = entry(r#"{"level":"warn"}"#);
    e.metadata = map(&[("level", "info"), ("trace", "t1")]);
    let out = pipeline("| json").process(e).unwrap();
    assert_eq!(out.get("level"), Some("warn"));
    assert_eq!(out.metadata, map(&[("trace", "t1")]));
}

#[test]
fn json_error_keeps_the_line_with_error_labels() {
    for line in ["plain text", "[1,2]", "\"str\"", "42", ""] {
        let out = run("| json", line).unwrap();
        assert_eq!(out.line, line);
        assert_eq!(out.parsed[ERROR_LABEL], "JSONParserErr", "{line}");
        assert!(!out.parsed[ERROR_DETAILS_LABEL].is_empty());
        assert_eq!(out.parsed.len(), 2);
    }
}

#[test]
fn json_error_midway_keeps_the_labels_before_it() {
    let got = parsed("| json", r#"{"a":1,"b":{"c":2},"d":}"#);
    assert_eq!(got["a"], "1");
    assert_eq!(got["b_c"], "2");
    assert_eq!(got[ERROR_LABEL], "JSONParserErr");
}

#[test]
fn json_takes_the_last_duplicate_and_ignores_trailing_text() {
    assert_eq!(
        parsed("| json", r#"{"a":1,"a":"2"} trailing"#),
        map(&[("a", "2")])
    );
}

#[test]
fn json_nested_too_deeply_is_an_error_not_a_crash() {
    let line = "{\"a\":".repeat(20_000) + "1" + &"}".repeat(20_000);
    assert_eq!(parsed("| json", &line)[ERROR_LABEL], "JSONParserErr");
    let line = "{\"a\":".repeat(100) + "1" + &"}".repeat(100);
    assert_eq!(parsed("| json", &line).len(), 1);
}

// logfmt

#[test]
fn logfmt_reads_plain_and_quoted_values() {
    let line =
        r#"at=info path=/ fwd="124.133.124.161" msg="hello world" esc="a \"q\" \\ b\nc" dur=8ms"#;
    let expected = map(&[
        ("at", "info"),
        ("path", "/"),
        ("fwd", "124.133.124.161"),
        ("msg", "hello world"),
        ("esc", "a \"q\" \\ b\nc"),
        ("dur", "8ms"),
    ]);
    assert_eq!(parsed("| logfmt", line), expected);
}

#[test]
fn logfmt_skips_empty_values_and_malformed_pairs_by_default() {
    let line = r#"flag a= b="" =x foo=bar=buzz fo"o=bar v="bad \q" ok=1 q="unterminated"#;
    assert_eq!(parsed("| logfmt", line), map(&[("ok", "1")]));
}

#[test]
fn logfmt_sanitises_names_and_marks_stream_labels() {
    let line = "app=web 1x=2 a.b=3 a.b=4 host=h";
    let expected = map(&[
        ("app_extracted", "web"),
        ("_1x", "2"),
        ("a_b", "4"),
        ("host_extracted", "h"),
    ]);
    assert_eq!(parsed("| logfmt", line), expected);
}

#[test]
fn logfmt_strict_mode_stops_at_the_first_malformed_pair() {
    let strict = LogfmtMode {
        strict: true,
        keep_empty: false,
    };
    let mut e = entry("a=1 b=2=3 c=4");
    parse_logfmt(&mut e, strict);
    let details = "logfmt syntax error at pos 8 : unexpected '='";
    let expected = map(&[
        ("a", "1"),
        (ERROR_LABEL, "LogfmtParserErr"),
        (ERROR_DETAILS_LABEL, details),
    ]);
    assert_eq!(e.parsed, expected);

    let mut e = entry(r#"a=1 b="open"#);
    parse_logfmt(&mut e, strict);
    let details = &e.parsed[ERROR_DETAILS_LABEL];
    assert_eq!(
        details,
        "logfmt syntax error at pos 12 : unterminated quoted value"
    );
}

#[test]
fn logfmt_keep_empty_mode_keeps_bare_keys() {
    let keep_empty = LogfmtMode {
        strict: false,
        keep_empty: true,
    };
    let mut e = entry(r#"flag a= b="" c=1"#);
    parse_logfmt(&mut e, keep_empty);
    let expected = map(&[("flag", ""), ("a", ""), ("b", ""), ("c", "1")]);
    assert_eq!(e.parsed, expected);
}

// label filters

#[test]
fn string_filters_compare_exactly_and_anchor_regexes() {
    let line = r#"level=error msg="disk full""#;
    let passes = |filter: &str| keeps(&format!("| logfmt | {filter}"), line);
    assert!(passes(r#"level = "error""#));
    assert!(passes(r#"level == "error""#));
    assert!(!passes(r#"level != "error""#));
    assert!(passes(r#"level =~ "err.*""#));
    assert!(!passes(r#"level =~ "err""#));
    assert!(passes(r#"level !~ "err""#));
    assert!(passes(r#"msg = "disk full""#));
    assert!(passes(r#"missing = """#));
    assert!(!passes(r#"missing != """#));
    assert!(passes(r#"host = "h1""#));
}

#[test]
fn labels_are_looked_up_in_parsed_then_metadata_then_stream() {
    let mut e = entry("env=parsed");
    e.metadata = map(&[("env", "meta"), ("app", "meta-app")]);
    let p = pipeline(r#"| logfmt | env = "parsed" | app = "meta-app" | host = "h1""#);
    assert!(p.process(e).is_some());
}

#[test]
fn number_filters_convert_the_value() {
    let passes = |filter: &str, line: &str| keeps(&format!("| logfmt | {filter}"), line);
    assert!(passes("status >= 500", "status=500"));
    assert!(!passes("status > 500", "status=500"));
    assert!(passes("status < 500.5", "status=500"));
    assert!(passes("status <= 500", "status=500"));
    assert!(passes("status == 500", "status=5e2"));
    assert!(passes("status != 404", "status=500"));
    assert!(passes("delta > -1", "delta=-0.5"));
    assert!(!passes("delta == 0", "delta=NaN"));
    assert!(passes("delta != 0", "delta=NaN"));
}

#[test]
fn a_value_that_does_not_convert_keeps_the_entry_with_label_filter_err() {
    let out = run("| logfmt | status >= 500", "status=abc").unwrap();
    assert_eq!(out.parsed[ERROR_LABEL], "LabelFilterErr");
    assert!(out.parsed[ERROR_DETAILS_LABEL].contains("\"abc\""));
}

#[test]
fn an_absent_label_fails_a_converting_filter() {
    assert!(!keeps("| status >= 500", "x"));
    assert!(!keeps("| status != 500", "x"));
    // Only string filters read the error labels.
    assert!(!keeps("| json | __error__ != 0", "not json"));
}

#[test]
fn a_conversion_error_keeps_an_earlier_error() {
    let mut e = entry("not json");
    e.metadata = map(&[("status", "abc")]);
    let out = pipeline("| json | status > 1").process(e).unwrap();
    assert_eq!(out.parsed[ERROR_LABEL], "JSONParserErr");
}

#[test]
fn duration_filters_read_durations() {
    let passes = |filter: &str, line: &str| keeps(&format!("| logfmt | {filter}"), line);
    assert!(passes("dur > 1s", "dur=1.5s"));
    assert!(!passes("dur > 1s", "dur=250ms"));
    assert!(passes("dur >= 1m30s", "dur=1m30s"));
    assert!(passes("dur == 90s", "dur=1.5m"));
    assert!(passes("dur == 2s", "dur=+2s"));
    assert!(passes("dur < 0s", "dur=-1ms"));
    let out = run("| logfmt | dur > 1s", "dur=fast").unwrap();
    assert_eq!(out.parsed[ERROR_LABEL], "LabelFilterErr");
    assert!(out.parsed[ERROR_DETAILS_LABEL].contains("duration"));
}

#[test]
fn bytes_filters_read_sizes_as_loki_does() {
    let passes = |filter: &str, line: &str| keeps(&format!("| logfmt | {filter}"), line);
    assert!(passes("size > 20KB", "size=1MB"));
    assert!(!passes("size > 20KB", "size=20kB"));
    assert!(passes("size == 1KiB", "size=1024"));
    assert!(passes("size == 1KiB", r#"size="1,024""#));
    assert!(passes("size == 10MB", r#"size="10 mb""#));
    assert!(passes("size >= 1.5KiB", "size=1536B"));
    assert_eq!(parse_bytes("2 EiB"), Ok(2 << 60));
    assert!(parse_bytes("20 parsecs").is_err());
    let out = run("| logfmt | size > 1KB", "size=big").unwrap();
    assert_eq!(out.parsed[ERROR_LABEL], "LabelFilterErr");
}

#[test]
fn and_binds_tighter_than_or() {
    let q = r#"| logfmt | a = "1" or b = "1" and c = "1""#;
    assert!(keeps(q, "a=1 b=0 c=0"));
    assert!(keeps(q, "a=0 b=1 c=1"));
    assert!(!keeps(q, "a=0 b=1 c=0"));
    let q = r#"| logfmt | (a = "1" or b = "1") and c = "1""#;
    assert!(!keeps(q, "a=1 b=0 c=0"));
    assert!(keeps(q, "a=1 b=0 c=1"));
    assert!(!keeps(r#"| logfmt | a = "1", c = "1""#, "a=1 c=0"));
    assert!(!keeps(r#"| logfmt | a = "1" c = "1""#, "a=1 c=0"));
}

#[test]
fn and_runs_every_operand_and_or_stops_at_the_first_true_one() {
    // As in Loki, the right of a false `and` still runs and records its error...
    let out = run(
        r#"| logfmt | (a = "1" and d > 1s) or b = "1""#,
        "a=0 d=x b=1",
    )
    .unwrap();
    assert_eq!(out.parsed[ERROR_LABEL], "LabelFilterErr");
    // ...while `or` skips what follows a true operand.
    let out = run(r#"| logfmt | b = "1" or d > 1s"#, "d=x b=1").unwrap();
    assert!(!out.parsed.contains_key(ERROR_LABEL));
}

#[test]
fn string_filters_see_the_error_labels() {
    assert!(!keeps(r#"| json | __error__ = """#, "not json"));
    assert!(keeps(r#"| json | __error__ = """#, "{}"));
    assert!(keeps(r#"| json | __error__ = "JSONParserErr""#, "oops"));
}

// line_format

#[test]
fn line_format_renders_labels_the_line_and_the_timestamp() {
    let template =
        "{{.method}} {{ .path }} [{{.missing}}] {{.app}} <{{__line__}}> {{ __timestamp__ }}";
    let out = run(
        &format!("| logfmt | line_format `{template}`"),
        "method=GET path=/x",
    )
    .unwrap();
    let line = "GET /x [] api <method=GET path=/x> 2023-11-14 22:13:20.123 +0000 UTC";
    assert_eq!(out.line, line);
}

#[test]
fn line_format_trims_around_markers_and_keeps_stray_braces() {
    let out = run(
        "| line_format `a \n {{- .app -}} \t b {{.host}}}} c {{.app -}}  `",
        "x",
    );
    assert_eq!(out.unwrap().line, "aapib h1}} c api");
}

#[test]
fn go_time_prints_as_go_does() {
    assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
    assert_eq!(go_time(1_500_000_000), "1970-01-01 00:00:01.5 +0000 UTC");
    assert_eq!(go_time(-1), "1969-12-31 23:59:59.999999999 +0000 UTC");
}

#[test]
fn line_format_refuses_other_actions_at_the_template() {
    let templates = [
        "{{ .a | upper }}",
        "{{ upper .a }}",
        "{{if .a}}x{{end}}",
        "{{range .}}x{{end}}",
        "{{.a.b}}",
        "{{.}}",
        "{{ printf \"%s\" .a }}",
        "{{/* comment */}}",
        "{{-.a}}",
        "x {{.a",
    ];
    for template in templates {
        let query = format!("{{app=\"api\"}}\n  | line_format `{template}`");
        let message = refused(&query);
        let col = query.find('`').unwrap() - query.find('\n').unwrap();
        assert!(message.starts_with("line_format: "), "{message}");
        assert!(
            message.ends_with(&format!("at line 2, col {col}")),
            "{message}"
        );
    }
}

// drop and keep

#[test]
fn drop_removes_labels_from_every_map() {
    let mut e = entry("level=info method=GET");
    e.metadata = map(&[("trace", "t"), ("user", "u")]);
    let out = pipeline("| logfmt | drop host, trace, level, nothing")
        .process(e)
        .unwrap();
    assert_eq!(out.labels, map(&[("app", "api")]));
    assert_eq!(out.metadata, map(&[("user", "u")]));
    assert_eq!(out.parsed, map(&[("method", "GET")]));
}

#[test]
fn keep_removes_every_other_label_but_the_errors() {
    let mut e = entry("level=info method=GET");
    e.metadata = map(&[("trace", "t"), ("user", "u")]);
    let out = pipeline("| logfmt | keep app, method, user")
        .process(e)
        .unwrap();
    assert_eq!(out.labels, map(&[("app", "api")]));
    assert_eq!(out.metadata, map(&[("user", "u")]));
    assert_eq!(out.parsed, map(&[("method", "GET")]));

    let out = run("| json | keep app", "x").unwrap();
    assert_eq!(out.labels, map(&[("app", "api")]));
    assert_eq!(out.parsed.len(), 2);
}

#[test]
fn drop_error_leaves_its_details() {
    let out = run("| json | drop __error__", "x").unwrap();
    assert_eq!(out.parsed.keys().collect::<Vec<_>>(), [ERROR_DETAILS_LABEL]);
    assert!(run("| json | drop __error__, __error_details__", "x")
        .unwrap()
        .parsed
        .is_empty());
}

// line filters

#[test]
fn line_filters_with_or() {
    assert!(keeps(r#"|= "GET" or "POST""#, "POST /x"));
    assert!(!keeps(r#"|= "GET" or "POST""#, "PUT /x"));
    assert!(keeps(r#"!= "GET" or "POST""#, "PUT /x"));
    assert!(!keeps(r#"!= "GET" or "POST""#, "GET /x"));
    assert!(keeps(r#"|~ "st[a-z]+" or "^x""#, "a status b"));
    assert!(!keeps(r#"!~ "st[a-z]+""#, "a status b"));
    assert!(keeps(r#"!~ "^st""#, "a status b"));
}

#[test]
fn bad_regexes_are_refused_where_they_were_written() {
    let query = r#"{app="api"} |~ "ok" or "a(""#;
    let col = query.rfind('"').unwrap() - 2;
    assert!(refused(query).ends_with(&format!("at line 1, col {col}")));
    let query = r#"{app="api"} | logfmt | x =~ "(""#;
    let col = query.rfind('"').unwrap() - 1;
    assert!(refused(query).ends_with(&format!("at line 1, col {col}")));
}

#[test]
fn a_whole_chain() {
    let p = pipeline(r#"| json | status >= 500 | line_format "{{.method}} {{.path}}" |= "GET""#);
    let out = p.process(entry(r#"{"status":503,"method":"GET","path":"/a"}"#));
    assert_eq!(out.unwrap().line, "GET /a");
    assert!(p
        .process(entry(r#"{"status":200,"method":"GET","path":"/b"}"#))
        .is_none());
    assert!(p
        .process(entry(r#"{"status":500,"method":"POST","path":"/c"}"#))
        .is_none());
    assert!(p.process(entry("not json")).is_none());
}

#[test]
fn flatten_fields_keeps_top_level_keys_as_text() {
    let fields = serde_json::json!({
        "s": "x", "n": 1.5, "i": -2, "b": true, "z": null, "a": [1, "y"], "o": {"k": "v"}
    });
    let expected = map(&[
        ("s", "x"),
        ("n", "1.5"),
        ("i", "-2"),
        ("b", "true"),
        ("z", ""),
        ("a", "[1,\"y\"]"),
        ("o", "{\"k\":\"v\"}"),
    ]);
    assert_eq!(flatten_fields(fields.as_object().unwrap()), expected);
}
