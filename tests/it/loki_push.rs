//! Loki's push API: python-logging-loki (a real client) and a protobuf push
//! encoded here from `push.proto`'s field numbers, read back through the rows
//! and the Loki query API; bad bodies answered in Loki's text form and counted.

use std::io::Write as _;
use std::time::Duration;

use chute::config::tokens::{digest, hex};
use chute::config::{Scope, TokenConfig};
use serde_json::json;

use crate::helpers::*;
use crate::query::get;

/// Protobuf wire format, as `push.proto` numbers the fields: enough to encode a
/// `PushRequest` without chute's own types.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `EntryAdapter{timestamp: Timestamp{seconds, nanos}, line, structuredMetadata}`.
fn entry(seconds: u64, nanos: u64, line: &str, metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut ts = Vec::new();
    varint(1 << 3, &mut ts);
    varint(seconds, &mut ts);
    varint(2 << 3, &mut ts);
    varint(nanos, &mut ts);
    let mut e = Vec::new();
    field(1, &ts, &mut e);
    field(2, line.as_bytes(), &mut e);
    for (name, value) in metadata {
        let mut pair = Vec::new();
        field(1, name.as_bytes(), &mut pair);
        field(2, value.as_bytes(), &mut pair);
        field(3, &pair, &mut e);
    }
    e
}

/// `PushRequest{streams: [StreamAdapter{labels, entries}]}`, snappy-compressed.
fn push_request(streams: &[(&str, Vec<Vec<u8>>)]) -> Vec<u8> {
    let mut request = Vec::new();
    for (labels, entries) in streams {
        let mut s = Vec::new();
        field(1, labels.as_bytes(), &mut s);
        for e in entries {
            field(2, e, &mut s);
        }
        field(1, &s, &mut request);
    }
    snap::raw::Encoder::new().compress_vec(&request).unwrap()
}

/// POSTs `body` to the push API; the status and the body as text.
async fn push(app: &TestApp, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = app.http.post(format!("{}/loki/api/v1/push", app.base));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send_body(body).await.expect("answered");
    let text = res.body().await.expect("body");
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

#[actix_web::test]
async fn python_logging_loki_sends_and_chute_stores_its_lines_with_their_labels() {
    let app = spawn_app().await;
    let script = format!(
        r#"
import logging, logging_loki
handler = logging_loki.LokiHandler(
    url="{}/loki/api/v1/push", tags={{"host": "web-7", "application": "billing"}}, version="1")
log = logging.getLogger("chute.test")
log.addHandler(handler)
log.warning("card declined", extra={{"tags": {{"service_name": "payments"}}}})
log.error("payment failed")
"#,
        app.base
    );
    let out = run_python(script).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // logging reports a handler's failure (any status but 204) on stderr.
    assert!(
        out.status.success() && !stderr.contains("Logging error"),
        "{stderr}"
    );
    app.settle().await;
    let got = rows(
        &app,
        "SELECT tenant, host, app, severity, message, fields FROM chute.logs ORDER BY ts",
    )
    .await;
    assert_eq!(
        got,
        [
            json!({"tenant": "default", "host": "web-7", "app": "payments", "severity": 4,
                   "message": "card declined", "fields": {"application": "billing", "logger": "chute.test"}}),
            json!({"tenant": "default", "host": "web-7", "app": null, "severity": 3,
                   "message": "payment failed", "fields": {"application": "billing", "logger": "chute.test"}}),
        ]
    );
    assert_eq!(
        app.metric("chute_records_accepted_total", &["source=\"loki\""]),
        2.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_protobuf_push_lands_in_its_tenant_and_reads_back_through_the_loki_api() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp() as u64;
    let body = push_request(&[
        (
            r#"{host="db-1", service_name="postgres", level="error", region="eu"}"#,
            vec![
                entry(
                    now - 2,
                    123_456_789,
                    "deadlock detected",
                    &[("pid", "4242")],
                ),
                entry(now - 1, 0, "retrying", &[]),
            ],
        ),
        (r#"{app="cron"}"#, vec![entry(now, 0, "tick", &[])]),
    ]);
    let (status, text) = push(
        &app,
        body,
        &[
            ("content-type", "application/x-protobuf"),
            ("x-scope-orgid", "team-a"),
        ],
    )
    .await;
    assert_eq!((status, text.as_str()), (204, ""));
    app.settle().await;
    let got = rows(
        &app,
        "SELECT tenant, host, app, severity, message, fields,
                extract(microseconds FROM ts)::int % 1000000 AS micros
         FROM chute.logs ORDER BY ts",
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        json!({"tenant": "team-a", "host": "db-1", "app": "postgres", "severity": 3,
               "message": "deadlock detected", "fields": {"region": "eu", "pid": "4242"},
               "micros": 123_456})
    );
    assert_eq!(
        (&got[2]["app"], &got[2]["tenant"]),
        (&json!("cron"), &json!("team-a"))
    );
    // Read back as Loki would answer it.
    let (status, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="postgres"} |= "dead""#.to_owned()),
            ("start", ((now - 60) * 1_000_000_000).to_string()),
            ("end", ((now + 60) * 1_000_000_000).to_string()),
        ],
        &[("x-scope-orgid", "team-a")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"]["result"][0]["values"][0][1], "deadlock detected",
        "{v}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn bad_pushes_get_loki_text_errors_counted_and_the_good_entries_are_kept() {
    let app = spawn_app_with(|c| c.http.max_body_bytes = 64 * 1024).await;
    let json_type = ("content-type", "application/json");
    // gzip JSON with one bad entry among three: 400 naming it, two stored.
    let body = json!({"streams": [{"stream": {"app": "web"},
        "values": [["1764676800000000000", "one"], ["later", "two"], ["1764676801000000000", "three"]]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let (status, text) = push(
        &app,
        gz.finish().unwrap(),
        &[json_type, ("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.starts_with("1 of 3 entries refused (2 stored); the first, entry 1: timestamp:"),
        "{text}"
    );
    app.settle().await;
    assert_eq!(app.stored().await, 2);
    // Whole bodies: not JSON, not snappy, past the limit once decompressed, of
    // another type. Each a text answer, each counted by its reason.
    let huge = push_request(&[(r#"{app="a"}"#, vec![entry(1, 0, &"x".repeat(200_000), &[])])]);
    assert!(huge.len() < 64 * 1024);
    for (body, content_type, want, reason) in [
        (
            b"{\"streams\": [".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b"plain bytes".to_vec(),
            "application/x-protobuf",
            400,
            "invalid_body",
        ),
        (huge, "application/x-protobuf", 413, "too_large"),
        (
            b"{}".to_vec(),
            "text/plain",
            415,
            "unsupported_content_type",
        ),
    ] {
        let before = app.metric(
            "chute_requests_rejected_total",
            &[&format!("reason=\"{reason}\"")],
        );
        let (status, text) = push(&app, body, &[("content-type", content_type)]).await;
        assert_eq!(status, want, "{content_type}: {text}");
        assert!(!text.starts_with('{'), "a text answer: {text}");
        assert_eq!(
            app.metric(
                "chute_requests_rejected_total",
                &[&format!("reason=\"{reason}\"")]
            ),
            before + 1.0,
            "{reason}"
        );
    }
    assert_eq!(
        app.metric(
            "chute_records_rejected_total",
            &["source=\"loki\"", "reason=\"invalid_record\""]
        ),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn with_tokens_a_push_may_only_name_its_tokens_tenants() {
    let app = spawn_app_with(|c| {
        c.tokens = vec![TokenConfig {
            name: "agent".into(),
            sha256: hex(&digest("s3cret-agent-token")),
            tenants: vec!["team-a".into()],
            scopes: vec![Scope::Ingest],
        }]
    })
    .await;
    let body = || push_request(&[(r#"{app="a"}"#, vec![entry(1_764_676_800, 0, "x", &[])])]);
    let bearer = ("authorization", "Bearer s3cret-agent-token");
    let (status, text) = push(&app, body(), &[bearer, ("x-scope-orgid", "team-b")]).await;
    assert_eq!(status, 403, "{text}");
    let (status, _) = push(&app, body(), &[("x-scope-orgid", "team-a")]).await;
    assert_eq!(status, 401);
    let (status, text) = push(&app, body(), &[bearer, ("x-scope-orgid", "team-a")]).await;
    assert_eq!(status, 204, "{text}");
    tokio::time::timeout(Duration::from_secs(10), app.settle())
        .await
        .unwrap();
    assert_eq!(
        rows(&app, "SELECT tenant FROM chute.logs").await,
        [json!({"tenant": "team-a"})]
    );
    app.stop().await;
}
