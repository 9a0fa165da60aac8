use chrono::{DateTime, TimeZone, Utc};
use prost::Message as _;
use serde_json::json;

use super::*;
use crate::sources::otlp::proto::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
}

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::String(s.into())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
    }
}

fn export(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", text("checkout")),
                    kv("host.name", text("web-1")),
                    kv("k8s.pod.name", text("checkout-7f9")),
                ],
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.payments".into(),
                    version: "1.2".into(),
                    attributes: vec![],
                }),
                log_records: records,
            }],
        }],
    }
}

fn decode_pb(req: &ExportLogsServiceRequest) -> Parsed {
    decode(
        &req.encode_to_vec(),
        LogsFormat::Protobuf,
        at(),
        "t1",
        1 << 20,
    )
    .unwrap()
}

#[test]
fn protobuf_records_get_their_columns_and_fields() {
    let parsed = decode_pb(&export(vec![LogRecord {
        time_unix_nano: 1_764_669_600_123_456_789,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: text("card declined"),
        attributes: vec![
            kv(
                "http.status_code",
                Some(AnyValue {
                    value: Some(Value::Int(402)),
                }),
            ),
            kv(
                "retry",
                Some(AnyValue {
                    value: Some(Value::Bool(false)),
                }),
            ),
        ],
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        ..Default::default()
    }]));
    assert_eq!(parsed.rejected_count, 0);
    let r = &parsed.records[0];
    assert_eq!(r.ts.timestamp_nanos_opt(), Some(1_764_669_600_123_456_789));
    assert_eq!(r.tenant, "t1");
    assert_eq!(r.host.as_deref(), Some("web-1"));
    assert_eq!(r.app.as_deref(), Some("checkout"));
    assert_eq!(r.severity, Some(3));
    assert_eq!(r.message, "card declined");
    assert_eq!(
        serde_json::Value::Object(r.fields.clone()),
        json!({
            "k8s_pod_name": "checkout-7f9",
            "scope_name": "app.payments",
            "scope_version": "1.2",
            "http_status_code": 402,
            "retry": false,
            "trace_id": "0102030405060708090a0b0c0d0e0f10",
            "span_id": "0102030405060708",
        })
    );
}

#[test]
fn severity_numbers_map_by_range_and_text_fills_in() {
    let cases = [
        (1, "", Some(7)),
        (8, "", Some(7)),
        (9, "", Some(6)),
        (13, "", Some(4)),
        (16, "", Some(4)),
        (20, "", Some(3)),
        (21, "", Some(2)),
        (24, "", Some(2)),
        (0, "warning", Some(4)),
        (0, "FATAL", Some(2)),
        (0, "loud", None),
        (0, "", None),
    ];
    for (number, text, want) in cases {
        let parsed = decode_pb(&export(vec![LogRecord {
            severity_number: number,
            severity_text: text.into(),
            ..Default::default()
        }]));
        let r = &parsed.records[0];
        assert_eq!(r.severity, want, "{number} {text:?}");
        assert_eq!(
            r.fields.get("severity_text").is_some(),
            want.is_none() && !text.is_empty(),
            "{number} {text:?}"
        );
    }
}

#[test]
fn times_fall_back_to_observed_then_receipt() {
    let parsed = decode_pb(&export(vec![
        LogRecord {
            observed_time_unix_nano: 1_000_000_000,
            ..Default::default()
        },
        LogRecord::default(),
    ]));
    assert_eq!(parsed.records[0].ts.timestamp(), 1);
    assert_eq!(parsed.records[1].ts, at());
    assert_eq!(parsed.records[1].message, "");
}

#[test]
fn bad_records_are_refused_alone() {
    let parsed = decode_pb(&export(vec![
        LogRecord {
            body: text("ok"),
            ..Default::default()
        },
        LogRecord {
            trace_id: vec![1; 5],
            ..Default::default()
        },
        LogRecord {
            span_id: vec![1; 16],
            ..Default::default()
        },
        LogRecord {
            time_unix_nano: u64::MAX,
            ..Default::default()
        },
        LogRecord {
            body: text("also ok"),
            ..Default::default()
        },
    ]));
    assert_eq!(parsed.records.len(), 2);
    assert_eq!(parsed.rejected_count, 3);
    let refused: Vec<_> = parsed.rejected.iter().map(|r| r.index).collect();
    assert_eq!(refused, [1, 2, 3]);
    assert!(parsed.rejected[0].error.starts_with("trace_id: 16 bytes"));
    assert!(parsed.rejected[1].error.starts_with("span_id: 8 bytes"));
    assert!(parsed.rejected[2].error.contains("2262"));
}

#[test]
fn json_form_reads_hex_ids_string_integers_and_nested_values() {
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "api"}}
        ]},
        "scopeLogs": [{
            "scope": {"name": "s"},
            "logRecords": [{
                "timeUnixNano": "1764669600000000001",
                "severityNumber": "SEVERITY_NUMBER_WARN",
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "eee19b7ec3c1b174",
                "body": {"kvlistValue": {"values": [
                    {"key": "user", "value": {"stringValue": "ann"}},
                    {"key": "n", "value": {"intValue": "7"}}
                ]}},
                "attributes": [
                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                    {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                    {"key": "raw", "value": {"bytesValue": "aGk="}},
                    {"key": "empty", "value": {}}
                ],
                "unknownField": 1
            }, {
                "time_unix_nano": 2000000000,
                "severity_number": 9,
                "body": {"string_value": "snake case names"}
            }]
        }]
    }]});
    let parsed = decode(
        body.to_string().as_bytes(),
        LogsFormat::Json,
        at(),
        "t1",
        1 << 20,
    )
    .unwrap();
    assert_eq!(parsed.rejected_count, 0);
    let r = &parsed.records[0];
    assert_eq!(r.ts.timestamp_nanos_opt(), Some(1_764_669_600_000_000_001));
    assert_eq!(r.app.as_deref(), Some("api"));
    assert_eq!(r.severity, Some(4));
    assert_eq!(r.message, r#"{"n":7,"user":"ann"}"#);
    assert_eq!(r.fields["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(r.fields["span_id"], "eee19b7ec3c1b174");
    assert_eq!(r.fields["ratio"], 0.5);
    assert_eq!(r.fields["tags"], json!(["a"]));
    assert_eq!(r.fields["raw"], "aGk=");
    assert_eq!(r.fields["empty"], serde_json::Value::Null);
    let r = &parsed.records[1];
    assert_eq!(r.ts.timestamp(), 2);
    assert_eq!(r.severity, Some(6));
    assert_eq!(r.message, "snake case names");
}

#[test]
fn undecodable_bodies_are_refused_whole() {
    let pb = |b: &[u8]| decode(b, LogsFormat::Protobuf, at(), "t", 1 << 20);
    let js = |b: &str| decode(b.as_bytes(), LogsFormat::Json, at(), "t", 1 << 20);
    assert_eq!(js(""), Err(ParseError::Empty));
    assert!(matches!(
        pb(b"\xff\xff\xff"),
        Err(ParseError::Undecodable(_))
    ));
    assert!(matches!(js("{"), Err(ParseError::Syntax(_))));
    assert!(matches!(
        js(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#),
        Err(ParseError::Syntax(_))
    ));
    assert!(matches!(
        js(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-1"}]}]}]}"#),
        Err(ParseError::Syntax(_))
    ));
    assert!(matches!(js("[]"), Err(ParseError::Syntax(_))));
}

#[test]
fn resource_attributes_copied_per_record_are_bounded() {
    let big = "x".repeat(10_000);
    let mut req = export(
        (0..200)
            .map(|_| LogRecord {
                body: text("."),
                ..Default::default()
            })
            .collect(),
    );
    let attrs = &mut req.resource_logs[0].resource.as_mut().unwrap().attributes;
    attrs.push(kv("big", text(&big)));
    let body = req.encode_to_vec();
    let out = decode(&body, LogsFormat::Protobuf, at(), "t", body.len());
    assert!(matches!(out, Err(ParseError::TooLarge { .. })), "{out:?}");
    // The same export within a limit that holds it is taken.
    let out = decode(&body, LogsFormat::Protobuf, at(), "t", 2 << 20).unwrap();
    assert_eq!(out.records.len(), 200);
}

#[test]
fn nul_is_replaced_and_counted() {
    let parsed = decode_pb(&export(vec![LogRecord {
        body: text("a\0b"),
        ..Default::default()
    }]));
    assert_eq!(parsed.records[0].message, "a\u{FFFD}b");
    assert_eq!(parsed.nul_replaced, 1);
}

#[test]
fn an_empty_protobuf_body_is_an_empty_export() {
    let parsed = decode(b"", LogsFormat::Protobuf, at(), "t", 1 << 20).unwrap();
    assert_eq!(parsed, Parsed::default());
}

#[test]
fn exports_that_decode_to_far_more_than_they_weigh_are_refused_before_decoding() {
    // 2 bytes per empty log record on the wire, a LogRecord each in memory.
    let mut records = Vec::new();
    for _ in 0..100_000 {
        records.extend_from_slice(&[0x12, 0x00]);
    }
    let mut scope = vec![0x12];
    prost::encoding::encode_varint(records.len() as u64, &mut scope);
    scope.extend_from_slice(&records);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(scope.len() as u64, &mut body);
    body.extend_from_slice(&scope);
    // Within a limit that holds it, it is taken.
    let parsed = decode(&body, LogsFormat::Protobuf, at(), "t", 200 * body.len()).unwrap();
    assert_eq!(parsed.records.len(), 100_000);
    let out = decode(&body, LogsFormat::Protobuf, at(), "t", body.len());
    assert!(matches!(out, Err(ParseError::TooLarge { .. })), "{out:?}");
    // JSON: `{}` per record.
    let json = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        vec!["{}"; 100_000].join(",")
    );
    let out = decode(json.as_bytes(), LogsFormat::Json, at(), "t", json.len());
    assert!(matches!(out, Err(ParseError::TooLarge { .. })), "{out:?}");
    // A body that is not protobuf at all is refused as such.
    let out = decode(
        &[0x0a, 0x05, 0x01],
        LogsFormat::Protobuf,
        at(),
        "t",
        1 << 20,
    );
    assert!(matches!(out, Err(ParseError::Undecodable(_))), "{out:?}");
}

#[test]
fn refused_records_among_many_empty_scopes_are_counted_and_nothing_is_stored() {
    // A resource of many attributes and many empty scopes: nothing is held.
    let mut req = export(vec![]);
    let rl = &mut req.resource_logs[0];
    rl.resource.as_mut().unwrap().attributes =
        (0..1000).map(|i| kv(&format!("k{i}"), text("v"))).collect();
    rl.scope_logs = vec![ScopeLogs::default(); 10_000];
    rl.scope_logs.push(ScopeLogs {
        scope: None,
        log_records: vec![
            LogRecord {
                trace_id: vec![1],
                ..Default::default()
            };
            1000
        ],
    });
    let parsed = decode_pb(&req);
    assert_eq!((parsed.records.len(), parsed.rejected_count), (0, 1000));
}
