use super::*;
use crate::sources::syslog::tests::{at, origin};
use crate::sources::syslog::{parse, Format, Parsed};
use serde_json::json;

/// The `fields.sd` object the record is stored with (null without any).
fn sd_of(r: &Record) -> Value {
    r.sd.as_ref().map_or(Value::Null, StructuredData::to_value)
}

fn p(msg: &str) -> Parsed {
    parse(
        msg.as_bytes(),
        &origin("2026-11-26T12:00:00Z", Format::Auto),
    )
}

#[test]
fn rfc_example_1_without_structured_data() {
    let r = p("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{FEFF}'su root' failed for lonvick on /dev/pts/8");
    assert!(!r.flags.malformed);
    let r = r.record;
    assert_eq!((r.facility, r.severity), (Some(4), Some(2)));
    assert_eq!(r.ts, at("2003-10-11T22:14:15.003Z"));
    assert_eq!(r.host.as_deref(), Some("mymachine.example.com"));
    assert_eq!(r.app.as_deref(), Some("su"));
    assert_eq!(r.procid, None);
    assert_eq!(r.msgid.as_deref(), Some("ID47"));
    assert_eq!(r.message, "'su root' failed for lonvick on /dev/pts/8");
    assert!(r.fields.is_empty());
}

#[test]
fn rfc_example_2_with_an_offset_and_microseconds() {
    let r = p("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.").record;
    assert_eq!((r.facility, r.severity), (Some(20), Some(5)));
    assert_eq!(r.ts, at("2003-08-24T12:14:15.000003Z"));
    assert_eq!(r.host.as_deref(), Some("192.0.2.1"));
    assert_eq!(r.app.as_deref(), Some("myproc"));
    assert_eq!(r.procid.as_deref(), Some("8710"));
    assert_eq!(r.msgid, None);
    assert_eq!(r.message, "%% It's time to make the do-nuts.");
}

#[test]
fn rfc_example_3_with_structured_data() {
    let r = p("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{FEFF}An application event log entry...").record;
    assert_eq!(r.app.as_deref(), Some("evntslog"));
    assert_eq!(r.message, "An application event log entry...");
    assert_eq!(
        sd_of(&r),
        json!({"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}})
    );
}

#[test]
fn rfc_example_4_with_structured_data_only() {
    let r = p("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]");
    assert!(!r.flags.malformed);
    assert_eq!(r.record.message, "");
    assert_eq!(
        sd_of(&r.record),
        json!({
            "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
            "examplePriority@32473": {"class": "high"}
        })
    );
}

#[test]
fn rfc_time_stamp_examples_are_read() {
    for (stamp, utc) in [
        ("1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50.52Z"),
        ("1985-04-12T19:20:50.52-04:00", "1985-04-12T23:20:50.52Z"),
        ("2003-10-11T22:14:15.003Z", "2003-10-11T22:14:15.003Z"),
        (
            "2003-08-24T05:14:15.000003-07:00",
            "2003-08-24T12:14:15.000003Z",
        ),
        ("2026-11-26T10:00:00+0100", "2026-11-26T09:00:00Z"),
        (
            "2026-11-26t10:00:00.123456789z",
            "2026-11-26T10:00:00.123456789Z",
        ),
        (
            "2026-11-26T10:00:00.1234567891234Z",
            "2026-11-26T10:00:00.123456789Z",
        ),
    ] {
        let r = p(&format!("<14>1 {stamp} h a - - - m"));
        assert!(!r.flags.malformed, "{stamp}");
        assert_eq!(r.record.ts, at(utc), "{stamp}");
    }
}

#[test]
fn rfc_invalid_time_stamp_examples_make_the_rest_the_message() {
    for stamp in [
        "1990-12-31T23:59:60Z",
        "2003-08-24T05:14:15.000000003",
        "2003-10-11T22:14:15",
        "2003-13-11T22:14:15Z",
        "2003-02-29T22:14:15Z",
        "Oct 11 22:14:15",
        "2003-10-11T22:14:15.Z",
        "2003-10-11T22:14:15+24:00",
    ] {
        let text = format!("{stamp} h a - - - m");
        let r = p(&format!("<14>1 {text}"));
        assert!(r.flags.malformed, "{stamp}");
        assert_eq!(r.record.fields["parse_error"], "rfc5424: invalid TIMESTAMP");
        assert_eq!(r.record.message, text);
        assert_eq!(r.record.ts, at("2026-11-26T12:00:00Z"));
        assert_eq!(r.record.host, None);
    }
}

#[test]
fn nil_values_are_none_and_nil_time_is_the_time_of_receipt() {
    let r = p("<14>1 - - - - - - hello").record;
    assert_eq!(r.ts, at("2026-11-26T12:00:00Z"));
    assert_eq!((r.host, r.app, r.procid, r.msgid), (None, None, None, None));
    assert_eq!(r.message, "hello");
}

#[test]
fn nil_hostname_is_the_peer_host() {
    let mut o = origin("2026-11-26T12:00:00Z", Format::Auto);
    o.peer_host = Some("192.0.2.7");
    let r = parse(b"<14>1 - - app - - - hi", &o).record;
    assert_eq!(r.host.as_deref(), Some("192.0.2.7"));
    let r = parse(b"<14>1 - web1 app - - - hi", &o).record;
    assert_eq!(r.host.as_deref(), Some("web1"));
}

#[test]
fn escapes_in_param_values_are_undone() {
    let r = p(r#"<14>1 - h a - - [x@1 a="q\"b\\s\]e" b="\n\x" c="]" d=""] m"#);
    assert!(!r.flags.malformed);
    assert_eq!(
        sd_of(&r.record),
        json!({"x@1": {"a": "q\"b\\s]e", "b": "\\n\\x", "c": "]", "d": ""}})
    );
    assert_eq!(r.record.message, "m");
}

#[test]
fn repeated_param_becomes_an_array_and_repeated_sd_id_is_merged() {
    let r = p(r#"<14>1 - h a - - [m t="1" t="2" u="x"][m t="3"][e] msg"#);
    assert!(!r.flags.malformed);
    assert_eq!(
        sd_of(&r.record),
        json!({"m": {"t": ["1", "2", "3"], "u": "x"}, "e": {}})
    );
}

#[test]
fn bom_is_stripped_only_at_the_start_of_msg() {
    let r = p("<14>1 - h a - - - \u{FEFF}\u{FEFF}x\u{FEFF}").record;
    assert_eq!(r.message, "\u{FEFF}x\u{FEFF}");
}

#[test]
fn missing_structured_data_keeps_the_whole_message() {
    let r = p("<14>1 2026-11-26T10:00:00Z host app 123 - the message");
    assert!(r.flags.malformed);
    assert_eq!(
        r.record.fields["parse_error"],
        "rfc5424: invalid STRUCTURED-DATA"
    );
    assert_eq!(r.record.host.as_deref(), Some("host"));
    assert_eq!(r.record.procid.as_deref(), Some("123"));
    assert_eq!(r.record.ts, at("2026-11-26T10:00:00Z"));
    assert_eq!(r.record.message, "the message");
}

#[test]
fn broken_structured_data_becomes_part_of_the_message() {
    for sd in [
        "[ id]",
        "[id a=1]",
        "[id a=\"1\"",
        "[id a=\"1]",
        "[id a]",
        "[id =\"1\"]",
        "[id a=\"1\"b=\"2\"]",
        "[]",
        "[id]x",
        "-x",
    ] {
        let text = format!("{sd} tail");
        let r = p(&format!("<14>1 - h a - - {text}"));
        assert!(r.flags.malformed, "{sd}");
        assert_eq!(r.record.message, text, "{sd}");
        assert!(r.record.sd.is_none(), "{sd}");
    }
}

#[test]
fn element_after_a_space_is_part_of_msg() {
    // RFC 5424 §6.3.5 example 3: invalid as STRUCTURED-DATA, fine as MSG.
    let r = p(r#"<14>1 - h a - - [id a="1"] [b c="2"]"#);
    assert!(!r.flags.malformed);
    assert_eq!(sd_of(&r.record), json!({"id": {"a": "1"}}));
    assert_eq!(r.record.message, r#"[b c="2"]"#);
}

#[test]
fn extra_spaces_inside_an_element_are_accepted() {
    let r = p(r#"<14>1 - h a - - [id  a="1"  b="2" ] m"#);
    assert!(!r.flags.malformed);
    assert_eq!(sd_of(&r.record), json!({"id": {"a": "1", "b": "2"}}));
}

#[test]
fn header_that_ends_early_keeps_what_it_has() {
    let r = p("<14>1 2026-11-26T10:00:00Z host");
    assert!(r.flags.malformed);
    assert_eq!(r.record.fields["parse_error"], "rfc5424: no APP-NAME");
    assert_eq!(r.record.host.as_deref(), Some("host"));
    assert_eq!(r.record.ts, at("2026-11-26T10:00:00Z"));
    assert_eq!(r.record.message, "");
    let r = p("<14>1 - host app 1 ID");
    assert_eq!(
        r.record.fields["parse_error"],
        "rfc5424: no STRUCTURED-DATA"
    );
    assert_eq!(r.record.msgid.as_deref(), Some("ID"));
    let r = p("<14>1 ");
    assert_eq!(r.record.fields["parse_error"], "rfc5424: no TIMESTAMP");
}

#[test]
fn empty_header_field_stops_reading_there() {
    let r = p("<14>1 - host  app - - - m");
    assert!(r.flags.malformed);
    assert_eq!(r.record.fields["parse_error"], "rfc5424: empty APP-NAME");
    assert_eq!(r.record.host.as_deref(), Some("host"));
    assert_eq!(r.record.message, " app - - - m");
}

#[test]
fn forced_rfc5424_with_only_a_version_is_marked() {
    let o = origin("2026-11-26T12:00:00Z", Format::Rfc5424);
    let r = parse(b"<14>1", &o);
    assert!(r.flags.malformed);
    assert_eq!(r.record.fields["parse_error"], "rfc5424: no TIMESTAMP");
}

#[test]
fn logger_rfc5424_output_is_read() {
    // util-linux `logger --rfc5424 hello`, and with `--sd-id zoo@123 --sd-param tiger="hungry"`.
    let r = p("<13>1 2026-11-26T10:00:00.123456+01:00 myhost root 4242 - [timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"123456\"] hello");
    assert!(!r.flags.malformed);
    assert_eq!(r.record.app.as_deref(), Some("root"));
    assert_eq!(r.record.procid.as_deref(), Some("4242"));
    assert_eq!(r.record.ts, at("2026-11-26T09:00:00.123456Z"));
    assert_eq!(
        sd_of(&r.record)["timeQuality"],
        json!({"tzKnown": "1", "isSynced": "1", "syncAccuracy": "123456"})
    );
    assert_eq!(r.record.message, "hello");
    let r = p("<13>1 2026-11-26T10:00:00.123456+01:00 myhost root - - [timeQuality tzKnown=\"1\" isSynced=\"0\"][zoo@123 tiger=\"hungry\"] hello");
    assert!(!r.flags.malformed);
    assert_eq!(sd_of(&r.record)["zoo@123"], json!({"tiger": "hungry"}));
    assert_eq!(r.record.procid, None);
}

#[test]
fn format_writes_what_parse_reads() {
    let r = p(r#"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [a@1 x="q\"\\\]" y="1" y="2"] héllo"#).record;
    let text = format(&r);
    assert_eq!(
        text,
        "<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [a@1 x=\"q\\\"\\\\\\]\" y=\"1\" y=\"2\"] \u{FEFF}héllo"
    );
    assert_eq!(p(&text).record, r);
}

#[test]
fn nul_in_structured_data_is_replaced_and_reads_back_the_same() {
    // Found by the syslog_rfc5424 fuzz target: the count of replaced NULs made
    // the record read back from `format` differ.
    let r = p("<13>1 2026-11-26T09:00:00Z h a - - [t is\0S=\"1\"] m");
    assert!(r.flags.nul_replaced);
    assert_eq!(sd_of(&r.record), json!({"t": {"is\u{FFFD}S": "1"}}));
    let again = p(&format(&r.record));
    assert!(!again.flags.nul_replaced);
    assert_eq!(again.record, r.record);
}

#[test]
fn format_replaces_what_a_header_cannot_hold() {
    let mut r = p("<14>1 - h a - - - m").record;
    r.host = Some(String::new());
    r.app = Some("my app".to_owned());
    r.facility = None;
    r.severity = Some(99);
    r.fields
        .insert("sd".to_owned(), json!({"x": {"n": 1, "b": [true, "s"]}}));
    assert_eq!(
        format(&r),
        "<13>1 2026-11-26T12:00:00Z - my_app - - [x b=\"true\" b=\"s\" n=\"1\"] m"
    );
}

mod roundtrip {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    /// Characters allowed in header fields: PRINTUSASCII.
    fn printusascii(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(33u8..=126, 1..=max)
            .prop_map(|v| String::from_utf8(v).unwrap_or_default())
            .prop_filter("NILVALUE", |s| s != "-")
    }

    /// SD-NAME: PRINTUSASCII except `=`, `]`, `"`.
    fn sd_name() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (33u8..=126).prop_filter("SD-NAME", |c| !matches!(c, b'=' | b']' | b'"')),
            1..=32,
        )
        .prop_map(|v| String::from_utf8(v).unwrap_or_default())
    }

    /// Any text without NUL (replaced on parsing), biased towards the
    /// characters that need escaping.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z\"\\\\\\] ]{0,12}", "[^\u{0}]{0,24}",]
    }

    /// Elements in order; SD-IDs and names may repeat, as senders repeat them.
    fn sd() -> impl Strategy<Value = Option<StructuredData>> {
        prop::option::of(prop::collection::vec(
            (sd_name(), prop::collection::vec((sd_name(), value()), 0..4)),
            1..4,
        ))
        .prop_map(|elements| {
            elements.map(|elements| {
                let mut sd = StructuredData::default();
                for (id, params) in elements {
                    let mut e = sd.start_element(&id);
                    for (name, value) in params {
                        let (name, v) = sd.start_param(&name);
                        sd.push_value(&value);
                        sd.end_param(&mut e, name, v);
                    }
                    sd.end_element(e);
                }
                sd
            })
        })
    }

    /// MSG: anything without NUL that does not end in a line break.
    fn message() -> impl Strategy<Value = String> {
        prop_oneof!["[^\u{0}]{0,80}", "\u{FEFF}?[ -~]{0,40}", "\\PC{0,40}"]
            .prop_map(|m: String| m.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn ts() -> impl Strategy<Value = DateTime<Utc>> {
        // 0001-01-01 to 9999-12-31, to the nanosecond.
        (
            -62_135_596_800i64..253_402_300_799,
            0u32..1_000_000_000,
            0..3,
        )
            .prop_map(|(secs, nanos, precision)| {
                let nanos = match precision {
                    0 => 0,
                    1 => nanos / 1000 * 1000,
                    _ => nanos,
                };
                DateTime::from_timestamp(secs, nanos).unwrap_or_default()
            })
    }

    prop_compose! {
        fn record()(
            pri in 0i16..192,
            ts in ts(),
            host in prop::option::of(printusascii(255)),
            app in prop::option::of(printusascii(48)),
            procid in prop::option::of(printusascii(128)),
            msgid in prop::option::of(printusascii(32)),
            sd in sd(),
            message in message(),
        ) -> Record {
            Record {
                ts,
                received_at: at("2026-11-26T12:00:00Z"),
                tenant: "t1".to_owned(),
                host,
                app,
                procid,
                msgid,
                severity: Some(pri % 8),
                facility: Some(pri / 8),
                message,
                fields: Default::default(),
                sd,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_of_format_gives_back_the_record(r in record()) {
            let text = format(&r);
            let parsed = p(&text);
            prop_assert_eq!(parsed.flags, crate::sources::syslog::Flags::default(), "{}", text);
            prop_assert_eq!(parsed.record, r, "{}", text);
        }
    }
}
