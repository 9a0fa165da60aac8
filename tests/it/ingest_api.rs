//! Every answer of `POST /api/v1/logs`.

use std::io::Write;

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_json_array_is_stored_with_every_column() {
    let app = spawn_app().await;
    let a = app
        .post_json(&json!([{
            "ts": "2026-11-26T10:00:00.123456+02:00",
            "host": "web-1", "app": "nginx", "procid": 4242, "msgid": "ACCESS",
            "severity": "warning", "facility": "local3",
            "message": "GET / 200",
            "fields": {"status": 200},
            "path": "/"
        }]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["accepted"], 1);
    assert_eq!(a.body["rejected"], json!([]));
    app.settle().await;
    let row = app
        .db
        .query_one(
            "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), tenant, host, app, procid,
                    msgid, severity, facility, message, fields::text, received_at > now() - interval '1 minute'
             FROM chute.logs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "2026-11-26 08:00:00.123456");
    assert_eq!(row.get::<_, String>(1), "default");
    assert_eq!(row.get::<_, String>(2), "web-1");
    assert_eq!(row.get::<_, String>(3), "nginx");
    assert_eq!(row.get::<_, String>(4), "4242");
    assert_eq!(row.get::<_, String>(5), "ACCESS");
    assert_eq!(row.get::<_, i16>(6), 4);
    assert_eq!(row.get::<_, i16>(7), 19);
    assert_eq!(row.get::<_, String>(8), "GET / 200");
    let fields: serde_json::Value = serde_json::from_str(&row.get::<_, String>(9)).unwrap();
    assert_eq!(fields, json!({"status": 200, "path": "/"}));
    assert!(row.get::<_, bool>(10));
    assert_eq!(
        app.metric("chute_records_accepted_total", &["source=\"http\""]),
        1.0
    );
    assert_eq!(
        app.metric("chute_rows_written_total", &["shard=\"0\""]),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn ndjson_with_one_bad_line_keeps_the_good_lines() {
    let app = spawn_app().await;
    let body = "{\"message\":\"one\"}\n{not json\n\n{\"message\":\"three\"}\r\n";
    let a = app
        .post(body, &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["accepted"], 2);
    assert_eq!(a.body["rejected"][0]["index"], 1);
    assert_eq!(a.body["rejected_count"], 1);
    assert_eq!(app.stored().await, 2);
    assert_eq!(
        app.metric(
            "chute_records_rejected_total",
            &["reason=\"invalid_record\""]
        ),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_record_without_a_message_costs_only_itself() {
    let app = spawn_app().await;
    let a = app
        .post_json(&json!([
            {"message": "a"}, {"message": "b"}, {"host": "h"}, {"message": "d", "severity": 9}, {"msg": "e"}
        ]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["accepted"], 3);
    let indexes: Vec<_> = a.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].clone())
        .collect();
    assert_eq!(indexes, [json!(2), json!(3)]);
    assert!(a.body["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("message"));
    assert!(a.body["rejected"][1]["error"]
        .as_str()
        .unwrap()
        .contains("severity"));
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE message IN ('a','b','e')")
            .await,
        3
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_body_with_no_usable_record_is_400() {
    let app = spawn_app().await;
    let a = app.post_json(&json!([{"host": "h"}, 42])).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["accepted"], 0);
    assert_eq!(a.body["rejected_count"], 2);

    let a = app
        .post("[{\"message\": ", &[("content-type", "application/json")])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["reason"], "invalid_json");

    let a = app
        .post("  \n", &[("content-type", "application/json")])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["reason"], "empty_body");
    assert_eq!(app.stored().await, 0);
    app.stop().await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[actix_web::test]
async fn gzip_and_zstd_bodies_are_decoded() {
    let app = spawn_app().await;
    let body = b"{\"message\":\"zipped\"}\n{\"message\":\"zipped too\"}\n";
    let a = app
        .post(
            gzip(body),
            &[
                ("content-type", "application/x-ndjson"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!((a.status, a.body["accepted"].clone()), (200, json!(2)));
    let z = zstd::encode_all(&body[..], 3).unwrap();
    let a = app
        .post(
            z,
            &[
                ("content-type", "application/x-ndjson"),
                ("content-encoding", "zstd"),
            ],
        )
        .await;
    assert_eq!((a.status, a.body["accepted"].clone()), (200, json!(2)));
    assert_eq!(app.stored().await, 4);
    app.stop().await;
}

#[actix_web::test]
async fn bodies_over_the_limit_are_413_compressed_or_not() {
    let app = spawn_app_with(|c| c.http.max_body_bytes = 64 * 1024).await;
    let big = format!("[{{\"message\":\"{}\"}}]", "x".repeat(100 * 1024));
    let a = app
        .post(big.clone(), &[("content-type", "application/json")])
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.body["reason"], "too_large");

    // Small on the wire, too large once decoded.
    let a = app
        .post(
            gzip(big.as_bytes()),
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(app.stored().await, 0);
    assert_eq!(
        app.metric("chute_requests_rejected_total", &["reason=\"too_large\""]),
        2.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_gzip_bomb_is_refused_without_inflating_it() {
    let app = spawn_app_with(|c| c.http.max_body_bytes = 1 << 20).await;
    // 4 GiB of zeros compress to about 4 MiB; stream them into the encoder.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "the bomb itself is under the limit");
    let a = app
        .post(
            bomb,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!(a.status, 413);
    app.stop().await;
}

#[actix_web::test]
async fn unknown_content_types_and_encodings_are_415() {
    let app = spawn_app().await;
    let a = app.post("hello", &[("content-type", "text/plain")]).await;
    assert_eq!(a.status, 415);
    assert_eq!(a.body["reason"], "unsupported_content_type");
    let a = app
        .post(
            "{}",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
        )
        .await;
    assert_eq!(a.status, 415);
    assert_eq!(a.body["reason"], "unsupported_encoding");
    app.stop().await;
}

#[actix_web::test]
async fn nul_bytes_and_invalid_utf8_are_replaced_and_counted() {
    let app = spawn_app().await;
    let a = app
        .post_json(&json!([{"message": "a\u{0}b", "fields": {"k\u{0}": "v\u{0}"}}]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut body = b"{\"message\":\"bad \xff\xfe bytes\",\"host\":\"h\xc3\"}\n".to_vec();
    body.extend_from_slice(b"{\"message\":\"clean\"}\n");
    let a = app
        .post(body, &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].clone()),
        (200, json!(2)),
        "{}",
        a.body
    );
    app.settle().await;

    let row = app
        .db
        .query_one(
            "SELECT message, fields::text FROM chute.logs WHERE message LIKE 'a%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "a\u{FFFD}b");
    assert_eq!(row.get::<_, String>(1), "{\"k\u{FFFD}\": \"v\u{FFFD}\"}");
    let row = app
        .db
        .query_one(
            "SELECT message, host FROM chute.logs WHERE message LIKE 'bad%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "bad \u{FFFD}\u{FFFD} bytes");
    assert_eq!(row.get::<_, String>(1), "h\u{FFFD}");
    assert_eq!(
        app.metric("chute_records_sanitized_total", &["reason=\"nul\""]),
        1.0
    );
    assert_eq!(
        app.metric(
            "chute_records_sanitized_total",
            &["reason=\"invalid_utf8\""]
        ),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn every_ts_form_is_stored_as_the_right_instant() {
    let app = spawn_app().await;
    let a = app
        .post_json(&json!([
            {"message": "z", "ts": "2026-01-02T03:04:05Z"},
            {"message": "plus", "ts": "2026-01-02T08:34:05+05:30"},
            {"message": "minus", "ts": "2026-01-01T19:04:05-08:00"},
            {"message": "frac", "ts": "2026-01-02T03:04:05.250Z"},
            {"message": "epoch", "ts": 1767323045},
            {"message": "epochfrac", "ts": 1767323045.25},
            {"message": "null", "ts": null},
            {"message": "missing"},
            {"message": "millis", "ts": 1767323045000i64},
            {"message": "garbage", "ts": "yesterday"}
        ]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["accepted"], 8);
    let bad: Vec<_> = a.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [8, 9]);
    let exact = app
        .scalar("SELECT count(*) FROM chute.logs WHERE ts = '2026-01-02T03:04:05Z' AND message IN ('z','plus','minus','epoch')")
        .await;
    assert_eq!(exact, 4);
    let frac = app
        .scalar("SELECT count(*) FROM chute.logs WHERE ts = '2026-01-02T03:04:05.25Z' AND message IN ('frac','epochfrac')")
        .await;
    assert_eq!(frac, 2);
    let now = app
        .scalar("SELECT count(*) FROM chute.logs WHERE message IN ('null','missing') AND ts = received_at")
        .await;
    assert_eq!(now, 2);
    app.stop().await;
}

#[actix_web::test]
async fn the_tenant_header_is_stored_and_checked() {
    let app = spawn_app().await;
    let a = app
        .post(
            "{\"message\":\"m\"}",
            &[
                ("content-type", "application/x-ndjson"),
                ("x-chute-tenant", "team-a"),
            ],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE tenant = 'team-a'")
            .await,
        1
    );
    let a = app
        .post(
            "{\"message\":\"m\"}",
            &[
                ("content-type", "application/x-ndjson"),
                ("x-chute-tenant", "no spaces"),
            ],
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["reason"], "invalid_tenant");
    app.stop().await;
}

#[actix_web::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["shards"][0]["id"], 0);
    assert_eq!(ready["shards"][0]["ready"], true);
    let (status, body) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "chute_build_info",
        "chute_shard_up",
        "chute_http_requests_total",
        "chute_pool_connections",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_request_retried_with_its_idempotency_key_is_stored_once() {
    // Two shards, so each attempt is split and each part must be recognised.
    let other = fresh_database().await;
    let app = spawn_app_with(|c| {
        c.shards.push(chute::config::ShardConfig {
            id: 1,
            owner: None,
            dsn: chute::config::Secret::new(other.clone()),
            pool_size: 2,
            password_file: None,
            password_env: None,
        })
    })
    .await;
    let body: String = (0..200)
        .map(|i| json!({"host": format!("h{i}"), "message": format!("m{i}")}).to_string() + "\n")
        .collect();
    for _ in 0..3 {
        let a = post_with_key(&app, &body, "batch-2026-11-26-0001").await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // Another key is another request: stored again.
    let a = post_with_key(&app, &body, "batch-2026-11-26-0002").await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.settle().await;
    let here = app.stored().await;
    let there = count_rows(&other).await;
    assert_eq!(here + there, 400, "{here} + {there}");
    assert!(here > 0 && there > 0, "both shards hold records");
    assert_eq!(app.metric("chute_duplicate_batches_total", &[]), 4.0);

    let bad = post_with_key(&app, &body, "").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["reason"], "invalid_header");
}

/// Posts `body` as NDJSON with `Idempotency-Key: key`.
async fn post_with_key(app: &TestApp, body: &str, key: &str) -> Answer {
    app.post(
        body.to_owned(),
        &[
            ("content-type", "application/x-ndjson"),
            ("idempotency-key", key),
        ],
    )
    .await
}

#[actix_web::test]
async fn a_request_that_can_never_fit_the_queue_is_413_not_503() {
    let app = spawn_app_with(|c| {
        c.queue.max_bytes = 1 << 20;
        c.queue.segment_bytes = 1 << 20;
    })
    .await;
    let line = format!("{{\"message\":\"{}\"}}\n", "x".repeat(1000));
    let big = line.repeat(3000);
    let r = app
        .post(big, &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["reason"], "too_large");
    assert_eq!(r.retry_after, None, "a retry cannot succeed");
    assert_eq!(
        app.metric("chute_records_rejected_total", &["http", "too_large"]),
        3000.0
    );
    let small = app
        .post(line, &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(small.status, 200, "{}", small.body);
    app.settle().await;
    assert_eq!(app.stored().await, 1);
    app.stop().await;
}
