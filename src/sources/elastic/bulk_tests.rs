use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
}

fn body(lines: &[serde_json::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[test]
fn ecs_documents_get_their_columns_and_keep_the_rest() {
    let b = body(&[
        json!({"create": {"_index": "filebeat-8.17.0"}}),
        json!({"@timestamp": "2026-12-02T09:59:58.123Z", "message": "GET /cart 500",
               "host": {"name": "web-1", "os": {"family": "debian"}},
               "service": {"name": "shop"}, "log": {"level": "error", "logger": "http"},
               "http": {"response": {"status_code": 500}},
               "process": {"pid": 4242, "name": "nginx"}}),
    ]);
    let bulk = decode(&b, None, at(), "t1").unwrap();
    assert_eq!(bulk.items.len(), 1);
    assert_eq!(bulk.items[0].op, Op::Create);
    assert_eq!(bulk.items[0].error, None);
    let r = &bulk.parsed.records[0];
    assert_eq!(r.ts, at() - chrono::Duration::milliseconds(1_877));
    assert_eq!(r.tenant, "t1");
    assert_eq!(r.host.as_deref(), Some("web-1"));
    assert_eq!(r.app.as_deref(), Some("shop"));
    assert_eq!(r.severity, Some(3));
    assert_eq!(r.message, "GET /cart 500");
    assert_eq!(r.procid.as_deref(), Some("4242"));
    assert_eq!(
        serde_json::Value::Object(r.fields.clone()),
        json!({"host": {"os": {"family": "debian"}}, "log": {"logger": "http"},
               "http": {"response": {"status_code": 500}}, "process": {"name": "nginx"},
               "_index": "filebeat-8.17.0"})
    );
}

#[test]
fn flat_documents_of_fluent_bit_and_vector_map_too() {
    let b = body(&[
        json!({"index": {}}),
        json!({"@timestamp": 1764669600000u64, "log": "tail line", "host": "node-3",
               "level": "WARN", "kubernetes": {"pod_name": "p"}}),
        json!({"index": {"_id": "abc"}}),
        json!({"@timestamp": "2026-12-02T09:00:00", "message": {"nested": true},
               "host.name": "h", "service.name": "svc", "log.level": "fatal"}),
        json!({"index": {}}),
        json!({"@timestamp": "2026-12-01", "message": "day", "app": "a", "level": "chatty"}),
    ]);
    let bulk = decode(&b, Some("logs"), at(), "t").unwrap();
    assert_eq!(bulk.parsed.rejected_count, 0);
    let [a, b, c] = &bulk.parsed.records[..] else {
        panic!("three records");
    };
    assert_eq!(a.ts.timestamp(), 1_764_669_600);
    assert_eq!(
        (a.message.as_str(), a.host.as_deref(), a.severity),
        ("tail line", Some("node-3"), Some(4))
    );
    assert_eq!(a.fields["kubernetes"], json!({"pod_name": "p"}));
    assert_eq!(a.fields["_index"], "logs");
    assert_eq!(bulk.items[1].id.as_deref(), Some("abc"));
    assert_eq!(b.ts, Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());
    assert_eq!(b.message, r#"{"nested":true}"#);
    assert_eq!(
        (b.host.as_deref(), b.app.as_deref(), b.severity),
        (Some("h"), Some("svc"), Some(2))
    );
    assert_eq!(c.ts, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    // A level that is not a level name stays a field.
    assert_eq!((c.app.as_deref(), c.severity), (Some("a"), None));
    assert_eq!(c.fields["level"], "chatty");
}

#[test]
fn bad_documents_and_edits_are_item_errors_and_the_rest_is_kept() {
    let mut b = body(&[
        json!({"index": {"_index": "a"}}),
        json!({"message": "ok"}),
        json!({"create": {}}),
        json!(["not", "an", "object"]),
        json!({"index": {}}),
        json!({"@timestamp": "yesterday"}),
        json!({"delete": {"_id": "1"}}),
        json!({"update": {"_id": "1"}}),
        json!({"doc": {"a": 1}}),
    ]);
    b.extend_from_slice(b"{\"index\":{}}\n{not json\n\n{\"index\":{}}\n{\"message\":\"last\"}");
    let bulk = decode(&b, None, at(), "t").unwrap();
    let errors: Vec<_> = bulk.items.iter().map(|i| i.error.is_some()).collect();
    assert_eq!(errors, [false, true, true, true, true, true, false]);
    let ops: Vec<_> = bulk.items.iter().map(|i| i.op.name()).collect();
    assert_eq!(
        ops,
        ["index", "create", "index", "delete", "update", "index", "index"]
    );
    assert_eq!(bulk.parsed.records.len(), 2);
    assert_eq!(bulk.parsed.records[1].message, "last");
    assert_eq!(bulk.parsed.rejected_count, 5);
    let refused: Vec<_> = bulk.parsed.rejected.iter().map(|r| r.index).collect();
    assert_eq!(refused, [1, 2, 3, 4, 5]);
    assert!(bulk.items[1]
        .error
        .as_ref()
        .unwrap()
        .contains("an array, not an object"));
    assert!(bulk.items[2]
        .error
        .as_ref()
        .unwrap()
        .starts_with("@timestamp: \"yesterday\""));
}

#[test]
fn malformed_action_lines_refuse_the_whole_body() {
    for b in [
        &b"{\"index\":{}}"[..],
        b"{\"nope\":{}}\n{}\n",
        b"not json\n",
        b"[1]\n",
    ] {
        assert!(
            matches!(decode(b, None, at(), "t"), Err(ParseError::Syntax(_))),
            "{b:?}"
        );
    }
    assert_eq!(decode(b"\n \n", None, at(), "t"), Err(ParseError::Empty));
}

#[test]
fn nul_and_invalid_utf8_are_replaced_and_counted() {
    let mut b = body(&[
        json!({"index": {}}),
        json!({"message": "a\u{0}b"}),
        json!({"index": {}}),
    ]);
    b.extend_from_slice(b"{\"message\": \"x\xffy\"}\n");
    let bulk = decode(&b, None, at(), "t").unwrap();
    assert_eq!(bulk.parsed.records[0].message, "a\u{FFFD}b");
    assert_eq!(bulk.parsed.records[1].message, "x\u{FFFD}y");
    assert_eq!((bulk.parsed.nul_replaced, bulk.parsed.invalid_utf8), (1, 1));
}

#[test]
fn vector_timestamps_and_index_names_are_checked() {
    let b = body(&[
        json!({"index": {"_index": "a\u{0}b"}}),
        json!({"message": "nul in the index"}),
        json!({"index": {"_index": "_hidden"}}),
        json!({"message": "leading underscore"}),
        json!({"create": {}}),
        json!({"timestamp": "2026-12-02T08:00:00Z", "message": "vector bulk mode"}),
        json!({"create": {}}),
        json!({"timestamp": "not a time", "message": "kept as a field"}),
        json!({"create": {}}),
        json!({"@timestamp": "0000-06-01T00:00:00Z", "message": "year 0"}),
    ]);
    let bulk = decode(&b, Some("logs"), at(), "t").unwrap();
    let errors: Vec<_> = bulk.items.iter().map(|i| i.error.clone()).collect();
    assert!(
        errors[0].as_deref().unwrap().contains("control character"),
        "{errors:?}"
    );
    assert!(
        errors[1].as_deref().unwrap().contains("starts with _"),
        "{errors:?}"
    );
    assert_eq!((&errors[2], &errors[3]), (&None, &None));
    assert!(
        errors[4].as_deref().unwrap().contains("years 1-9999"),
        "{errors:?}"
    );
    let [a, b] = &bulk.parsed.records[..] else {
        panic!("two records");
    };
    assert_eq!(a.ts, Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap());
    assert!(a.fields.get("timestamp").is_none());
    assert_eq!(b.ts, at());
    assert_eq!(b.fields["timestamp"], "not a time");
}
