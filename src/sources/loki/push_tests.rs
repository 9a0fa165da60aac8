use chrono::TimeZone;
use prost::Message as _;
use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
}

fn json_push(body: serde_json::Value) -> Result<Parsed, ParseError> {
    decode(
        body.to_string().as_bytes(),
        PushFormat::Json,
        at(),
        "acme",
        1 << 20,
    )
}

fn snappy(request: &proto::PushRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

fn entry(seconds: i64, line: &str, metadata: &[(&str, &str)]) -> proto::Entry {
    proto::Entry {
        timestamp: Some(proto::Timestamp {
            seconds,
            nanos: 5_000,
        }),
        line: line.as_bytes().to_vec(),
        structured_metadata: metadata
            .iter()
            .map(|(n, v)| proto::LabelPair {
                name: n.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            })
            .collect(),
    }
}

#[test]
fn json_streams_map_their_labels_to_columns_and_keep_the_rest_as_fields() {
    let p = json_push(json!({"streams": [
        {"stream": {"hostname": "web-1", "service_name": "api", "job": "varlogs", "level": "warn", "env": "prod"},
         "values": [["1764676800000000123", "first"], ["1764676801000000000", "second", {"trace_id": "abc", "env": "canary"}]]},
        {"stream": {"app": "db", "detected_level": "fatal"}, "values": [["1764676802000000000", "third"]]}
    ]}))
    .unwrap();
    assert_eq!(p.rejected_count, 0, "{:?}", p.rejected);
    let [a, b, c] = &p.records[..] else {
        panic!("{:?}", p.records)
    };
    assert_eq!(a.host.as_deref(), Some("web-1"));
    assert_eq!(a.app.as_deref(), Some("api"));
    assert_eq!(a.severity, Some(4));
    assert_eq!(a.tenant, "acme");
    assert_eq!(a.message, "first");
    // Nanoseconds kept to the microsecond by PostgreSQL; chrono holds them all.
    assert_eq!(a.ts.timestamp_nanos_opt(), Some(1_764_676_800_000_000_123));
    assert_eq!(
        a.fields,
        *json!({"job": "varlogs", "env": "prod"})
            .as_object()
            .unwrap()
    );
    // Metadata wins over a label of the same name.
    assert_eq!(
        b.fields,
        *json!({"job": "varlogs", "env": "canary", "trace_id": "abc"})
            .as_object()
            .unwrap()
    );
    assert_eq!(
        (c.app.as_deref(), c.severity, c.host.as_deref()),
        (Some("db"), Some(2), None)
    );
}

#[test]
fn a_bad_entry_is_refused_by_its_place_in_the_body_and_its_neighbours_are_kept() {
    let p = json_push(json!({"streams": [
        {"stream": {"app": "a"}, "values": [["1", "ok"], ["soon", "bad time"], ["2", 3]]},
        {"stream": {"app": "b"}, "values": [["3", "ok"], "not an entry", ["4", "x", "not metadata"]]}
    ]}))
    .unwrap();
    assert_eq!(p.records.len(), 2);
    let refused: Vec<(usize, &str)> = p
        .rejected
        .iter()
        .map(|r| (r.index, r.error.as_str()))
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert_eq!(
        refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    assert!(refused[0].1.starts_with("timestamp:"), "{refused:?}");
    assert!(refused[1].1.starts_with("line:"), "{refused:?}");
    assert_eq!(p.rejected_count, 4);
}

#[test]
fn whole_bodies_that_are_not_a_push_are_refused() {
    for body in [&b""[..], b"{", b"[]", b"{\"streams\": 5}"] {
        let e = decode(body, PushFormat::Json, at(), "t", 1 << 20).unwrap_err();
        assert!(
            matches!(e, ParseError::Empty | ParseError::Syntax(_)),
            "{e:?}"
        );
    }
    for body in [&b"not snappy"[..], b"\x05\x00\x01"] {
        let e = decode(body, PushFormat::Protobuf, at(), "t", 1 << 20).unwrap_err();
        assert_eq!(e.reason(), "invalid_body", "{e:?}");
    }
    // Valid snappy around bytes that are not a PushRequest.
    let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 40]).unwrap();
    let e = decode(&junk, PushFormat::Protobuf, at(), "t", 1 << 20).unwrap_err();
    assert_eq!(e.reason(), "invalid_body", "{e:?}");
}

#[test]
fn protobuf_pushes_decode_with_their_labels_metadata_and_times() {
    let request = proto::PushRequest {
        streams: vec![
            proto::Stream {
                labels: br#"{host="h1", app="web", level="error", region="eu"}"#.to_vec(),
                entries: vec![
                    entry(1_764_676_800, "boom", &[("user", "7")]),
                    entry(1_764_676_801, "again", &[]),
                ],
                hash: 0,
            },
            proto::Stream {
                labels: b"{app=~\"regex\"}".to_vec(),
                entries: vec![entry(1, "refused", &[])],
                hash: 0,
            },
            proto::Stream {
                labels: b"{job=\"cron\"}".to_vec(),
                entries: vec![proto::Entry {
                    timestamp: None,
                    line: b"no time \xff\x00here".to_vec(),
                    structured_metadata: Vec::new(),
                }],
                hash: 0,
            },
        ],
    };
    let p = decode(&snappy(&request), PushFormat::Protobuf, at(), "t", 1 << 20).unwrap();
    assert_eq!(p.records.len(), 3, "{:?}", p.rejected);
    let r = &p.records[0];
    assert_eq!(
        (r.host.as_deref(), r.app.as_deref(), r.severity),
        (Some("h1"), Some("web"), Some(3))
    );
    assert_eq!(
        r.fields,
        *json!({"region": "eu", "user": "7"}).as_object().unwrap()
    );
    assert_eq!(r.ts.timestamp_nanos_opt(), Some(1_764_676_800_000_005_000));
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].index, 2);
    assert!(
        p.rejected[0].error.contains("only name=\"value\""),
        "{:?}",
        p.rejected
    );
    // No time: the time of receipt. NUL and invalid UTF-8 replaced and counted.
    let last = &p.records[2];
    assert_eq!((last.ts, last.app.as_deref()), (at(), Some("cron")));
    assert_eq!(last.message, "no time \u{FFFD}\u{FFFD}here");
    assert_eq!((p.nul_replaced, p.invalid_utf8), (1, 1));
}

#[test]
fn a_body_that_would_decompress_past_the_limit_is_refused_before_it_is() {
    let big = proto::PushRequest {
        streams: vec![proto::Stream {
            labels: b"{app=\"a\"}".to_vec(),
            entries: vec![entry(1, &"x".repeat(100_000), &[])],
            hash: 0,
        }],
    };
    let body = snappy(&big);
    assert!(body.len() < 10_000);
    let e = decode(&body, PushFormat::Protobuf, at(), "t", 50_000).unwrap_err();
    assert_eq!(e, ParseError::TooLarge { limit: 50_000 });
}

#[test]
fn levels_read_as_syslog_severities_and_an_unknown_one_stays_a_field() {
    let p = json_push(json!({"streams": [
        {"stream": {"severity": "critical"}, "values": [["1", "a"]]},
        {"stream": {"level": "trace"}, "values": [["1", "b"]]},
        {"stream": {"level": "loud"}, "values": [["1", "c"]]},
        {"stream": {"host": "x".repeat(2000)}, "values": [["1", "d"]]}
    ]}))
    .unwrap();
    let severities: Vec<Option<i16>> = p.records.iter().map(|r| r.severity).collect();
    assert_eq!(severities, [Some(2), Some(7), None]);
    assert_eq!(p.records[2].fields["level"], "loud");
    assert!(
        p.rejected[0].error.starts_with("host: longer than"),
        "{:?}",
        p.rejected
    );
}

#[test]
fn long_labels_are_refused_and_copies_of_them_cannot_grow_past_the_budget() {
    let p = json_push(json!({"streams": [
        {"stream": {"app": "x".repeat(3000)}, "values": [["1", "a"]]},
        {"stream": (0..31).map(|i| (format!("l{i}"), json!("v"))).collect::<serde_json::Map<_, _>>(), "values": [["1", "b"]]},
        {"stream": {"ok": "y"}, "values": [["1", "c"]]}
    ]}))
    .unwrap();
    assert_eq!(p.records.len(), 1);
    assert!(
        p.rejected[0].error.contains("longer than 2048"),
        "{:?}",
        p.rejected
    );
    assert!(
        p.rejected[1].error.contains("more than 30"),
        "{:?}",
        p.rejected
    );
    // 2,000 bytes of labels on each of 20,000 empty entries: ~45 MB of records
    // from a body of a few hundred kilobytes, past 8 times its limit.
    let labels = format!("{{a=\"{}\"}}", "v".repeat(2000));
    let request = proto::PushRequest {
        streams: vec![proto::Stream {
            labels: labels.into_bytes(),
            entries: (0..20_000).map(|_| entry(1, "", &[])).collect(),
            hash: 0,
        }],
    };
    let body = snappy(&request);
    let e = decode(&body, PushFormat::Protobuf, at(), "t", 1 << 20).unwrap_err();
    assert_eq!(e, ParseError::TooLarge { limit: 8 << 20 });
    // 1,000,000 empty entries (2 bytes each on the wire) under 1-byte labels:
    // refused off the wire, before a million entries are decoded.
    let mut stream = Vec::new();
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut stream);
    prost::encoding::encode_varint(5, &mut stream);
    stream.extend_from_slice(b"{a=\"\"}");
    for _ in 0..1_000_000 {
        stream.extend_from_slice(&[0x12, 0x00]);
    }
    let mut raw = vec![0x0a];
    prost::encoding::encode_varint(stream.len() as u64, &mut raw);
    raw.extend_from_slice(&stream);
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let limit = raw.len() + 16;
    let e = decode(&body, PushFormat::Protobuf, at(), "t", limit).unwrap_err();
    assert_eq!(e, ParseError::TooLarge { limit: 16 * limit });
    // Labels that do not parse are quoted short in each refusal.
    let long = format!("{{a=~\"{}\"}}", "z".repeat(10_000));
    let request = proto::PushRequest {
        streams: vec![proto::Stream {
            labels: long.into_bytes(),
            entries: vec![entry(1, "x", &[])],
            hash: 0,
        }],
    };
    let p = decode(&snappy(&request), PushFormat::Protobuf, at(), "t", 1 << 20).unwrap();
    assert!(p.rejected[0].error.len() < 200, "{}", p.rejected[0].error);
}
