use super::*;
use chrono::TimeZone;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid date")
}

fn array(body: &str) -> Parsed {
    parse(body.as_bytes(), BodyFormat::JsonArray, now(), "acme").expect("body parses")
}

fn ndjson(body: &str) -> Parsed {
    parse(body.as_bytes(), BodyFormat::Ndjson, now(), "acme").expect("body parses")
}

/// Parses one record object; `Ok` record or the rejection's error.
fn one(obj: Value) -> Result<Record, String> {
    let mut p = array(&obj.to_string());
    assert_eq!(p.records.len() + p.rejected.len(), 1);
    match p.rejected.pop() {
        Some(r) => Err(r.error),
        None => p.records.pop().ok_or_else(|| "no record".to_owned()),
    }
}

fn ts_of(ts: Value) -> Result<DateTime<Utc>, String> {
    one(json!({"message": "m", "ts": ts})).map(|r| r.ts)
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

fn indexes(rejected: &[Rejection]) -> Vec<usize> {
    rejected.iter().map(|r| r.index).collect()
}

fn messages(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.message.as_str()).collect()
}

#[test]
fn a_name_longer_than_the_limit_is_rejected_with_its_key() {
    let long = "h".repeat(MAX_NAME_BYTES + 1);
    let err = one(json!({"message": "m", "host": long})).unwrap_err();
    assert!(err.starts_with("host: longer than 1024 bytes"), "{err}");
    let ok = "a".repeat(MAX_NAME_BYTES);
    assert_eq!(
        one(json!({"message": "m", "app": ok}))
            .unwrap()
            .app
            .unwrap()
            .len(),
        MAX_NAME_BYTES
    );
}

#[test]
fn minimal_record_gets_tenant_and_receipt_time() {
    let r = one(json!({"message": "hello"})).expect("accepted");
    assert_eq!(r.message, "hello");
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.ts, now());
    assert_eq!(r.received_at, now());
    assert_eq!((r.host, r.app, r.procid, r.msgid), (None, None, None, None));
    assert_eq!((r.severity, r.facility), (None, None));
    assert!(r.fields.is_empty());
}

#[test]
fn all_known_keys_land_in_their_columns() {
    let r = one(json!({
        "ts": "2024-01-02T03:04:05Z", "host": "web1", "app": "nginx", "procid": "42",
        "msgid": "ID7", "severity": 3, "facility": 16, "message": "boom", "user": "bob"
    }))
    .expect("accepted");
    assert_eq!(r.ts, utc("2024-01-02T03:04:05Z"));
    assert_eq!(r.host.as_deref(), Some("web1"));
    assert_eq!(r.app.as_deref(), Some("nginx"));
    assert_eq!(r.procid.as_deref(), Some("42"));
    assert_eq!(r.msgid.as_deref(), Some("ID7"));
    assert_eq!((r.severity, r.facility), (Some(3), Some(16)));
    assert_eq!(r.message, "boom");
    assert_eq!(Value::Object(r.fields), json!({"user": "bob"}));
}

#[test]
fn json_array_of_objects_gives_one_record_each_in_order() {
    let p = array(r#"[{"message":"a"},{"message":"b"},{"message":"c"}]"#);
    assert_eq!(messages(&p.records), ["a", "b", "c"]);
    assert!(p.rejected.is_empty());
}

#[test]
fn single_top_level_object_is_one_record() {
    let p = array(" {\"message\":\"only\"}\n");
    assert_eq!(messages(&p.records), ["only"]);
}

#[test]
fn single_top_level_object_that_is_invalid_is_a_rejection_at_index_0() {
    let p = array(r#"{"msg":{}}"#);
    assert!(p.records.is_empty());
    assert_eq!(
        p.rejected,
        [Rejection {
            index: 0,
            error: "msg: expected a string, got an object".into()
        }]
    );
}

#[test]
fn empty_array_is_ok_with_no_records() {
    assert_eq!(array(" [ ] "), Parsed::default());
}

#[test]
fn empty_or_whitespace_body_is_refused_in_both_formats() {
    for body in ["", " \r\n\t ", "\u{FEFF}"] {
        for format in [BodyFormat::JsonArray, BodyFormat::Ndjson] {
            let err = parse(body.as_bytes(), format, now(), "t");
            assert_eq!(err, Err(ParseError::Empty), "{body:?} {format:?}");
            assert_eq!(err.map_err(|e| e.reason()), Err("empty_body"));
        }
    }
}

#[test]
fn invalid_json_array_is_refused_with_line_and_column() {
    let err = parse(
        b"[{\"message\":\"a\"},\n{\"message\" \"b\"}]",
        BodyFormat::JsonArray,
        now(),
        "t",
    );
    let Err(ParseError::Syntax(msg)) = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert!(msg.contains("line 2 column"), "{msg}");
    assert_eq!(err.map_err(|e| e.reason()), Err("invalid_json"));
}

#[test]
fn truncated_json_array_is_refused() {
    let err = parse(b"[{\"message\":\"a\"},", BodyFormat::JsonArray, now(), "t");
    assert!(matches!(err, Err(ParseError::Syntax(_))), "{err:?}");
}

#[test]
fn ndjson_sent_as_json_is_refused_with_a_hint() {
    let err = parse(
        b"{\"message\":\"a\"}\n{\"message\":\"b\"}\n",
        BodyFormat::JsonArray,
        now(),
        "t",
    );
    let Err(ParseError::Syntax(msg)) = err else {
        panic!("expected a syntax error");
    };
    assert!(msg.contains("application/x-ndjson"), "{msg}");
}

#[test]
fn top_level_scalar_is_refused_as_the_wrong_shape() {
    for (body, kind) in [
        ("\"hi\"", "a string"),
        ("42", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let err = parse(body.as_bytes(), BodyFormat::JsonArray, now(), "t");
        assert_eq!(
            err,
            Err(ParseError::Syntax(format!(
                "expected a JSON array of objects or a single object, got {kind}"
            )))
        );
    }
}

#[test]
fn array_elements_that_are_not_objects_are_rejected_and_the_rest_kept() {
    let p = array(r#"[{"message":"a"}, 5, "x", [1], null, true, {"message":"b"}]"#);
    assert_eq!(messages(&p.records), ["a", "b"]);
    let errors: Vec<_> = p
        .rejected
        .iter()
        .map(|r| (r.index, r.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (1, "expected a JSON object, got a number"),
            (2, "expected a JSON object, got a string"),
            (3, "expected a JSON object, got an array"),
            (4, "expected a JSON object, got null"),
            (5, "expected a JSON object, got a boolean"),
        ]
    );
}

#[test]
fn array_where_element_2_lacks_a_message_keeps_elements_0_1_and_3() {
    let p = array(r#"[{"message":"a"},{"message":"b"},{"host":"h"},{"message":"d"}]"#);
    assert_eq!(messages(&p.records), ["a", "b", "d"]);
    assert_eq!(
        p.rejected,
        [Rejection {
            index: 2,
            error: "message: missing".into()
        }]
    );
}

#[test]
fn array_element_with_a_number_out_of_range_costs_only_itself() {
    let p = array(r#"[{"message":"a"},{"message":"b","x":1e999},{"message":"c"}]"#);
    assert_eq!(messages(&p.records), ["a", "c"]);
    assert_eq!(indexes(&p.rejected), [1]);
    assert!(
        p.rejected[0]
            .error
            .starts_with("invalid JSON: number out of range"),
        "{:?}",
        p.rejected
    );
    assert!(!p.rejected[0].error.contains("line"), "{:?}", p.rejected);
}

#[test]
fn ndjson_gives_one_record_per_line_with_lf_or_crlf() {
    let p = ndjson("{\"message\":\"a\"}\n{\"message\":\"b\"}\r\n{\"message\":\"c\"}");
    assert_eq!(messages(&p.records), ["a", "b", "c"]);
    assert!(p.rejected.is_empty());
}

#[test]
fn ndjson_blank_lines_are_skipped_but_counted_in_indexes() {
    let p = ndjson("\n{\"message\":\"a\"}\n\r\n   \n{\"msg\":[]}\n\n");
    assert_eq!(messages(&p.records), ["a"]);
    assert_eq!(
        p.rejected,
        [Rejection {
            index: 4,
            error: "msg: expected a string, got an array".into()
        }]
    );
}

#[test]
fn ndjson_with_a_broken_line_keeps_the_other_lines() {
    let p = ndjson("{\"message\":\"a\"}\n{\"message\":\"b\"\n{\"message\":\"c\"}\n");
    assert_eq!(messages(&p.records), ["a", "c"]);
    assert_eq!(indexes(&p.rejected), [1]);
    let error = &p.rejected[0].error;
    assert!(
        error.starts_with("invalid JSON: EOF while parsing an object at column"),
        "{error}"
    );
}

#[test]
fn ndjson_lines_that_are_not_objects_are_rejected() {
    let p = ndjson("[{\"message\":\"a\"}]\n42\n{\"message\":\"ok\"}");
    assert_eq!(messages(&p.records), ["ok"]);
    assert_eq!(indexes(&p.rejected), [0, 1]);
    assert_eq!(p.rejected[0].error, "expected a JSON object, got an array");
}

#[test]
fn ndjson_body_of_only_bad_lines_is_ok_with_all_rejected() {
    let p = ndjson("nope\n{\"x\":1}\n");
    assert!(p.records.is_empty());
    assert_eq!(indexes(&p.rejected), [0, 1]);
}

#[test]
fn leading_byte_order_mark_is_ignored() {
    let body = "\u{FEFF}{\"message\":\"a\"}\n";
    assert_eq!(messages(&ndjson(body).records), ["a"]);
    assert_eq!(messages(&array(body).records), ["a"]);
}

#[test]
fn ts_in_utc_with_z_is_taken_as_is() {
    assert_eq!(
        ts_of(json!("2024-03-04T05:06:07Z")),
        Ok(utc("2024-03-04T05:06:07Z"))
    );
}

#[test]
fn ts_with_a_positive_offset_is_converted_to_utc() {
    assert_eq!(
        ts_of(json!("2024-03-04T10:36:07+05:30")),
        Ok(utc("2024-03-04T05:06:07Z"))
    );
}

#[test]
fn ts_with_a_negative_offset_is_converted_to_utc() {
    assert_eq!(
        ts_of(json!("2024-03-03T21:06:07-08:00")),
        Ok(utc("2024-03-04T05:06:07Z"))
    );
}

#[test]
fn ts_with_fractional_seconds_keeps_them() {
    assert_eq!(
        ts_of(json!("2024-03-04T05:06:07.123456Z")),
        Ok(utc("2024-03-04T05:06:07.123456Z"))
    );
    assert_eq!(
        ts_of(json!("2024-03-04T05:06:07.5+01:00")),
        Ok(utc("2024-03-04T04:06:07.5Z"))
    );
}

#[test]
fn ts_as_integer_epoch_seconds_is_exact() {
    assert_eq!(ts_of(json!(1_709_528_767)), Ok(utc("2024-03-04T05:06:07Z")));
    assert_eq!(ts_of(json!(0)), Ok(utc("1970-01-01T00:00:00Z")));
    assert_eq!(ts_of(json!(-1)), Ok(utc("1969-12-31T23:59:59Z")));
}

#[test]
fn ts_as_fractional_epoch_seconds_is_rounded_to_the_microsecond() {
    assert_eq!(
        ts_of(json!(1_709_528_767.123_456)),
        Ok(utc("2024-03-04T05:06:07.123456Z"))
    );
    assert_eq!(
        ts_of(json!(1_709_528_767.123_456_7)),
        Ok(utc("2024-03-04T05:06:07.123457Z"))
    );
    assert_eq!(
        ts_of(json!(1_709_528_767.5)),
        Ok(utc("2024-03-04T05:06:07.5Z"))
    );
}

#[test]
fn ts_null_or_absent_means_the_time_of_receipt() {
    assert_eq!(ts_of(Value::Null), Ok(now()));
    assert_eq!(one(json!({"message": "m"})).map(|r| r.ts), Ok(now()));
}

#[test]
fn ts_at_the_edges_of_years_1_to_9999_is_accepted() {
    assert_eq!(
        ts_of(json!(MIN_EPOCH_SECS)),
        Ok(utc("0001-01-01T00:00:00Z"))
    );
    assert_eq!(
        ts_of(json!(MAX_EPOCH_SECS)),
        Ok(utc("9999-12-31T23:59:59Z"))
    );
    assert_eq!(
        ts_of(json!("0001-01-01T00:00:00Z")),
        Ok(utc("0001-01-01T00:00:00Z"))
    );
}

#[test]
fn ts_outside_years_1_to_9999_is_rejected() {
    assert_eq!(
        ts_of(json!(MAX_EPOCH_SECS + 1))
            .map_err(|e| e.starts_with("ts: 253402300800 is outside years 1-9999")),
        Err(true)
    );
    assert!(ts_of(json!(MIN_EPOCH_SECS - 1)).is_err());
    assert!(ts_of(json!(MAX_EPOCH_SECS as f64 + 0.9999999)).is_err());
    assert!(ts_of(json!(1e300)).is_err());
    assert!(ts_of(json!(u64::MAX)).is_err());
    assert_eq!(
        ts_of(json!("0000-12-31T23:00:00Z")),
        Err("ts: \"0000-12-31T23:00:00Z\" is outside years 1-9999".to_owned())
    );
    assert!(ts_of(json!("0001-01-01T00:30:00+01:00")).is_err());
    assert!(ts_of(json!("9999-12-31T23:30:00-01:00")).is_err());
}

#[test]
fn ts_that_looks_like_milliseconds_gets_a_hint() {
    assert_eq!(
        ts_of(json!(1_709_528_767_123_i64)),
        Err("ts: 1709528767123 is outside years 1-9999; epoch seconds expected (was this milliseconds?)".to_owned())
    );
    assert_eq!(
        ts_of(json!(1_709_528_767_123.5)),
        Err("ts: 1709528767123.5 is outside years 1-9999; epoch seconds expected (was this milliseconds?)".to_owned())
    );
}

#[test]
fn ts_that_looks_like_micro_or_nanoseconds_gets_a_hint() {
    let micro = ts_of(json!(1_709_528_767_123_456_i64)).expect_err("rejected");
    assert!(micro.ends_with("(was this microseconds?)"), "{micro}");
    let nano = ts_of(json!(1_709_528_767_123_456_789_i64)).expect_err("rejected");
    assert!(nano.ends_with("(was this nanoseconds?)"), "{nano}");
    let huge = ts_of(json!(1e30)).expect_err("rejected");
    assert!(huge.ends_with("epoch seconds expected"), "{huge}");
}

#[test]
fn ts_that_is_not_rfc3339_or_a_number_is_rejected() {
    let e = ts_of(json!("yesterday")).expect_err("rejected");
    assert!(
        e.starts_with("ts: expected an RFC 3339 timestamp or epoch seconds, got \"yesterday\" ("),
        "{e}"
    );
    assert!(ts_of(json!("2024-03-04 05:06:07")).is_err_and(|e| e.starts_with("ts: ")));
    assert!(ts_of(json!("1709528767")).is_err());
    assert_eq!(
        ts_of(json!(true)),
        Err("ts: expected an RFC 3339 timestamp or epoch seconds, got true".to_owned())
    );
    assert!(ts_of(json!({})).is_err_and(|e| e.ends_with("got an object")));
}

#[test]
fn text_columns_take_strings_and_numbers() {
    let r = one(json!({"message": "m", "host": "h", "app": 7, "procid": 4242, "msgid": 1.5}))
        .expect("accepted");
    assert_eq!(r.host.as_deref(), Some("h"));
    assert_eq!(r.app.as_deref(), Some("7"));
    assert_eq!(r.procid.as_deref(), Some("4242"));
    assert_eq!(r.msgid.as_deref(), Some("1.5"));
}

#[test]
fn text_columns_that_are_null_are_absent() {
    let r = one(json!({"message": "m", "host": null, "app": null, "procid": null, "msgid": null}))
        .expect("accepted");
    assert_eq!((r.host, r.app, r.procid, r.msgid), (None, None, None, None));
    assert!(r.fields.is_empty());
}

#[test]
fn text_columns_refuse_objects_arrays_and_booleans_naming_the_key() {
    assert_eq!(
        one(json!({"message": "m", "host": {}})),
        Err("host: expected a string, got an object".into())
    );
    assert_eq!(
        one(json!({"message": "m", "app": [1]})),
        Err("app: expected a string, got an array".into())
    );
    assert_eq!(
        one(json!({"message": "m", "procid": true})),
        Err("procid: expected a string, got true".into())
    );
    assert_eq!(
        one(json!({"message": "m", "msgid": false})),
        Err("msgid: expected a string, got false".into())
    );
}

#[test]
fn severity_takes_numbers_numeric_strings_names_and_aliases() {
    let sev = |v: Value| one(json!({"message": "m", "severity": v})).map(|r| r.severity);
    assert_eq!(sev(json!(0)), Ok(Some(0)));
    assert_eq!(sev(json!(7)), Ok(Some(7)));
    assert_eq!(sev(json!("5")), Ok(Some(5)));
    assert_eq!(sev(json!(" 6 ")), Ok(Some(6)));
    assert_eq!(sev(json!("emerg")), Ok(Some(0)));
    assert_eq!(sev(json!("panic")), Ok(Some(0)));
    assert_eq!(sev(json!("CRITICAL")), Ok(Some(2)));
    assert_eq!(sev(json!("Error")), Ok(Some(3)));
    assert_eq!(sev(json!("warn")), Ok(Some(4)));
    assert_eq!(sev(json!("warning")), Ok(Some(4)));
    assert_eq!(sev(json!("informational")), Ok(Some(6)));
    assert_eq!(sev(json!("debug")), Ok(Some(7)));
    assert_eq!(sev(Value::Null), Ok(None));
}

#[test]
fn severity_out_of_range_or_unknown_is_rejected_naming_the_key() {
    let sev = |v: Value| one(json!({"message": "m", "severity": v})).map(|r| r.severity);
    assert_eq!(
        sev(json!("loud")),
        Err("severity: expected 0-7 or a severity name, got \"loud\"".into())
    );
    assert_eq!(
        sev(json!(8)),
        Err("severity: expected 0-7 or a severity name, got 8".into())
    );
    assert_eq!(
        sev(json!(-1)),
        Err("severity: expected 0-7 or a severity name, got -1".into())
    );
    assert_eq!(
        sev(json!("8")),
        Err("severity: expected 0-7 or a severity name, got \"8\"".into())
    );
    assert_eq!(
        sev(json!(3.5)),
        Err("severity: expected 0-7 or a severity name, got 3.5".into())
    );
    assert_eq!(
        sev(json!(70000)),
        Err("severity: expected 0-7 or a severity name, got 70000".into())
    );
    assert_eq!(
        sev(json!(true)),
        Err("severity: expected 0-7 or a severity name, got true".into())
    );
    assert_eq!(
        sev(json!([])),
        Err("severity: expected 0-7 or a severity name, got an array".into())
    );
}

#[test]
fn facility_takes_numbers_and_names() {
    let fac = |v: Value| one(json!({"message": "m", "facility": v})).map(|r| r.facility);
    assert_eq!(fac(json!(0)), Ok(Some(0)));
    assert_eq!(fac(json!(23)), Ok(Some(23)));
    assert_eq!(fac(json!("16")), Ok(Some(16)));
    assert_eq!(fac(json!("kern")), Ok(Some(0)));
    assert_eq!(fac(json!("AUTHPRIV")), Ok(Some(10)));
    assert_eq!(fac(json!("local7")), Ok(Some(23)));
    assert_eq!(fac(json!("solaris-cron")), Ok(Some(15)));
    assert_eq!(fac(Value::Null), Ok(None));
}

#[test]
fn facility_out_of_range_or_unknown_is_rejected_naming_the_key() {
    let fac = |v: Value| one(json!({"message": "m", "facility": v})).map(|r| r.facility);
    assert_eq!(
        fac(json!(24)),
        Err("facility: expected 0-23 or a facility name, got 24".into())
    );
    assert_eq!(
        fac(json!("local8")),
        Err("facility: expected 0-23 or a facility name, got \"local8\"".into())
    );
    assert_eq!(
        fac(json!({})),
        Err("facility: expected 0-23 or a facility name, got an object".into())
    );
}

#[test]
fn message_takes_numbers_and_booleans_as_text() {
    assert_eq!(
        one(json!({"message": 42})).map(|r| r.message),
        Ok("42".into())
    );
    assert_eq!(
        one(json!({"message": -1.25})).map(|r| r.message),
        Ok("-1.25".into())
    );
    assert_eq!(
        one(json!({"message": true})).map(|r| r.message),
        Ok("true".into())
    );
    assert_eq!(
        one(json!({"message": ""})).map(|r| r.message),
        Ok(String::new())
    );
}

#[test]
fn message_that_is_an_object_or_array_is_rejected() {
    assert_eq!(
        one(json!({"message": {"a": 1}})),
        Err("message: expected a string, got an object".into())
    );
    assert_eq!(
        one(json!({"message": ["a"]})),
        Err("message: expected a string, got an array".into())
    );
}

#[test]
fn missing_or_null_message_is_rejected() {
    assert_eq!(one(json!({})), Err("message: missing".into()));
    assert_eq!(
        one(json!({"message": null})),
        Err("message: missing".into())
    );
    assert_eq!(
        one(json!({"message": null, "msg": null})),
        Err("message: missing".into())
    );
    assert_eq!(
        one(json!({"Message": "case matters"})),
        Err("message: missing".into())
    );
}

#[test]
fn msg_is_an_alias_for_message() {
    let r = one(json!({"msg": "via alias"})).expect("accepted");
    assert_eq!(r.message, "via alias");
    assert!(r.fields.is_empty());
    assert_eq!(
        one(json!({"message": null, "msg": "alias"})).map(|r| r.message),
        Ok("alias".into())
    );
}

#[test]
fn with_both_message_and_msg_message_wins_and_msg_stays_in_fields() {
    let r = one(json!({"msg": "second", "message": "first"})).expect("accepted");
    assert_eq!(r.message, "first");
    assert_eq!(Value::Object(r.fields), json!({"msg": "second"}));
    let r = one(json!({"message": "first", "msg": {"nested": true}})).expect("accepted");
    assert_eq!(Value::Object(r.fields), json!({"msg": {"nested": true}}));
}

#[test]
fn fields_object_is_merged_with_other_top_level_keys() {
    let r = one(json!({"message": "m", "a": 1, "fields": {"b": 2, "c": {"d": [3]}}}))
        .expect("accepted");
    assert_eq!(
        Value::Object(r.fields),
        json!({"a": 1, "b": 2, "c": {"d": [3]}})
    );
    let r = one(json!({"message": "m", "fields": null, "z": null})).expect("accepted");
    assert_eq!(Value::Object(r.fields), json!({"z": null}));
}

#[test]
fn key_inside_fields_wins_over_the_same_top_level_key() {
    let small = one(json!({"message": "m", "k": "top", "fields": {"k": "inner", "x": 1, "y": 2}}))
        .expect("accepted");
    assert_eq!(
        Value::Object(small.fields),
        json!({"k": "inner", "x": 1, "y": 2})
    );
    let big = one(json!({"message": "m", "k": "top", "x": 1, "y": 2, "fields": {"k": "inner"}}))
        .expect("accepted");
    assert_eq!(
        Value::Object(big.fields),
        json!({"k": "inner", "x": 1, "y": 2})
    );
    let msg =
        one(json!({"message": "m", "msg": "top", "fields": {"msg": "inner"}})).expect("accepted");
    assert_eq!(Value::Object(msg.fields), json!({"msg": "inner"}));
}

#[test]
fn fields_that_is_not_an_object_is_rejected() {
    assert_eq!(
        one(json!({"message": "m", "fields": [1]})),
        Err("fields: expected an object, got an array".into())
    );
    assert_eq!(
        one(json!({"message": "m", "fields": "x"})),
        Err("fields: expected an object, got \"x\"".into())
    );
}

#[test]
fn tenant_and_received_at_keys_from_the_sender_are_plain_fields() {
    let r = one(json!({"message": "m", "tenant": "evil", "received_at": 1})).expect("accepted");
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.received_at, now());
    assert_eq!(
        Value::Object(r.fields),
        json!({"tenant": "evil", "received_at": 1})
    );
}

#[test]
fn repeated_key_keeps_the_last_value() {
    let p = array(r#"[{"message":"a","message":"b","k":1,"k":2}]"#);
    assert_eq!(messages(&p.records), ["b"]);
    assert_eq!(p.records[0].fields.get("k"), Some(&json!(2)));
}

#[test]
fn escaped_key_names_are_recognised() {
    let p = array(r#"[{"mess\u0061ge":"a","\u0068ost":"h"}]"#);
    assert_eq!(messages(&p.records), ["a"]);
    assert_eq!(p.records[0].host.as_deref(), Some("h"));
}

#[test]
fn long_values_are_cut_in_errors() {
    let e = one(json!({"message": "m", "severity": "x".repeat(1000)})).expect_err("rejected");
    assert_eq!(
        e,
        format!(
            "severity: expected 0-7 or a severity name, got \"{}...\"",
            "x".repeat(MAX_QUOTE_CHARS)
        )
    );
}

#[test]
fn nul_in_message_is_replaced_and_counted() {
    let p = array(r#"[{"message":"a\u0000b"},{"message":"clean"}]"#);
    assert_eq!(messages(&p.records), ["a\u{FFFD}b", "clean"]);
    assert_eq!(p.nul_replaced, 1);
    assert_eq!(p.invalid_utf8, 0);
}

#[test]
fn nul_in_a_field_key_and_value_is_replaced_and_the_record_counted_once() {
    let p = ndjson("{\"message\":\"m\",\"k\\u0000ey\":\"v\\u0000\",\"host\":\"h\\u0000\"}\n{\"message\":\"ok\"}");
    assert_eq!(
        p.records[0].fields.get("k\u{FFFD}ey"),
        Some(&json!("v\u{FFFD}"))
    );
    assert_eq!(p.records[0].host.as_deref(), Some("h\u{FFFD}"));
    assert_eq!(p.nul_replaced, 1);
}

#[test]
fn nul_inside_the_fields_object_is_replaced() {
    let p = array(r#"{"message":"m","fields":{"a\u0000":["\u0000"]}}"#);
    assert_eq!(
        Value::Object(p.records[0].fields.clone()),
        json!({"a\u{FFFD}": ["\u{FFFD}"]})
    );
    assert_eq!(p.nul_replaced, 1);
}

#[test]
fn escaped_backslash_before_u0000_is_not_a_nul() {
    let p = array(r#"{"message":"C:\\u0000"}"#);
    assert_eq!(messages(&p.records), ["C:\\u0000"]);
    assert_eq!(p.nul_replaced, 0);
}

#[test]
fn invalid_utf8_in_ndjson_is_replaced_and_counted_per_line() {
    let body = b"{\"message\":\"caf\xE9\"}\n{\"message\":\"fine \xE2\x82\xAC\"}\n{\"message\":\"\xFF\xFE\",\"k\":\"\xC3\"}\n";
    let p = parse(body, BodyFormat::Ndjson, now(), "t").expect("parses");
    assert_eq!(
        messages(&p.records),
        ["caf\u{FFFD}", "fine \u{20AC}", "\u{FFFD}\u{FFFD}"]
    );
    assert_eq!(p.records[2].fields.get("k"), Some(&json!("\u{FFFD}")));
    assert_eq!(p.invalid_utf8, 2);
    assert_eq!(p.nul_replaced, 0);
}

#[test]
fn invalid_utf8_in_an_array_is_replaced_and_counted_per_element() {
    let body = b"[{\"message\":\"a\xFF\"},{\"message\":\"b\"},{\"message\":\"c\",\"x\":1}]";
    let p = parse(body, BodyFormat::JsonArray, now(), "t").expect("parses");
    assert_eq!(messages(&p.records), ["a\u{FFFD}", "b", "c"]);
    assert_eq!(p.invalid_utf8, 1);
    let body = b"[{\"message\":\"a\xFF\"},{\"message\":\"b\",\"k\xF0\x9F\":2}]";
    let p = parse(body, BodyFormat::JsonArray, now(), "t").expect("parses");
    assert_eq!(p.records[1].fields.get("k\u{FFFD}"), Some(&json!(2)));
    assert_eq!(p.invalid_utf8, 2);
}

#[test]
fn invalid_utf8_in_a_rejected_record_is_not_counted() {
    let p = parse(b"{\"host\":\"\xFF\"}\n", BodyFormat::Ndjson, now(), "t").expect("parses");
    assert_eq!(indexes(&p.rejected), [0]);
    assert_eq!(p.invalid_utf8, 0);
}

#[test]
fn rejection_serialises_as_index_and_error() {
    let r = Rejection {
        index: 3,
        error: "message: missing".into(),
    };
    assert_eq!(
        serde_json::to_value(&r).ok(),
        Some(json!({"index": 3, "error": "message: missing"}))
    );
}

#[test]
fn deeply_nested_value_is_a_rejection_not_a_crash() {
    let deep = format!(
        "{{\"message\":\"m\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let p = ndjson(&format!("{deep}\n{{\"message\":\"ok\"}}"));
    assert_eq!(messages(&p.records), ["ok"]);
    assert_eq!(indexes(&p.rejected), [0]);
    let p = array(&format!("[{deep},{{\"message\":\"ok\"}}]"));
    assert_eq!(messages(&p.records), ["ok"]);
    assert_eq!(indexes(&p.rejected), [0]);
}

#[test]
fn rejections_past_the_listed_ones_are_counted_not_kept() {
    let body = format!("[{}1]", "1,".repeat(4999));
    let p = array(&body);
    assert_eq!(p.rejected_count, 5000);
    assert_eq!(p.rejected.len(), MAX_LISTED_REJECTIONS);
    assert_eq!(p.rejected.last().map(|r| r.index), Some(999));
    assert!(p.records.is_empty());
    let lines = ndjson(&"x\n".repeat(3000));
    assert_eq!((lines.rejected_count, lines.rejected.len()), (3000, 1000));
}

#[test]
fn a_body_of_blank_lines_or_bad_elements_reserves_nothing_by_their_count() {
    let blank = ndjson(&format!("{}{{\"message\":\"x\"}}", "\n".repeat(1 << 20)));
    assert_eq!(blank.records.len(), 1);
    assert!(
        blank.records.capacity() <= RESERVE_RECORDS,
        "{}",
        blank.records.capacity()
    );
    let bad = array(&format!("[{}1]", "1,".repeat(100_000)));
    assert!(
        bad.records.capacity() <= RESERVE_RECORDS,
        "{}",
        bad.records.capacity()
    );
}

#[test]
fn an_array_broken_after_good_elements_is_refused_whole() {
    for body in [
        r#"[{"message":"a"},{"message":"b"},{"#,
        r#"[{"message":"a"}] trailing"#,
        r#"[{"message":"a"},]"#,
    ] {
        let r = parse(body.as_bytes(), BodyFormat::JsonArray, now(), "acme");
        assert!(matches!(r, Err(ParseError::Syntax(_))), "{body}: {r:?}");
    }
    let ok = array(r#" [ {"message":"a"} , 7 ] "#);
    assert_eq!((ok.records.len(), ok.rejected_count), (1, 1));
}

#[test]
fn a_number_in_a_field_is_stored_as_the_nearest_double_and_reads_back_the_same() {
    // Found by the http_json fuzz target: serde_json's default (fast, inexact)
    // float parsing read this as 8866550005000561, and the stored text back as
    // 8866550005000562. Correctly rounded, it is 8866550005000560.
    let p = array(r#"[{"message": "m", "n": 8866550005000560.05, "e": 1.7976931348623157e308}]"#);
    let fields = &p.records[0].fields;
    assert_eq!(fields["n"].as_f64(), Some(8_866_550_005_000_560.0));
    assert_eq!(fields["e"].as_f64(), Some(f64::MAX));
    let rows = crate::batch::EncodedRows::encode(&p.records).unwrap();
    assert_eq!(&rows.decode(0).unwrap().fields, fields);
}
