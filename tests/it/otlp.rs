//! OTLP/HTTP logs: the OpenTelemetry Python SDK's logging handler and OTLP
//! exporter (real clients, protobuf and gzip) on the OTLP listener, OTLP/JSON by
//! curl, refused records answered in `partial_success`, and bad bodies answered
//! with a `google.rpc.Status` in the request's encoding, counted.

use std::time::Duration;

use chute::config::TenantLimits;
use serde_json::{json, Value};

use crate::helpers::*;

/// POSTs `body` to `{base}/v1/logs`; the status, Retry-After and the body.
async fn export(
    app: &TestApp,
    base: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Vec<u8>) {
    let mut req = app.http.post(format!("{base}/v1/logs"));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send_body(body).await.expect("answered");
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.body().limit(1 << 20).await.expect("body").to_vec();
    (res.status().as_u16(), retry_after, body)
}

#[actix_web::test]
async fn the_opentelemetry_sdk_exports_to_the_otlp_listener_and_rows_get_their_columns() {
    let app = spawn_app_with(|c| c.http.otlp_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let otlp = app.otlp_base.clone().expect("the OTLP listener");
    let script = format!(
        r#"
import logging
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

resource = Resource.create({{"service.name": "checkout", "host.name": "web-3",
                             "deployment.environment": "prod"}})
provider = LoggerProvider(resource=resource)
exporter = OTLPLogExporter(endpoint="{otlp}/v1/logs", headers={{"X-Scope-OrgID": "team-o"}},
                           compression=Compression.Gzip)
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
log = logging.getLogger("shop.payments")
log.propagate = False
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
log.setLevel(logging.DEBUG)
trace.set_tracer_provider(TracerProvider(resource=resource))
with trace.get_tracer("t").start_as_current_span("pay") as span:
    log.warning("card declined", extra={{"order.id": 42}})
    ctx = span.get_span_context()
    print(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
log.critical("payment service down")
log.debug("retry in 5s")
provider.shutdown()
"#
    );
    let out = run_python(script).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The exporter logs a failed export (any answer but 200) on stderr.
    assert!(
        out.status.success() && !stderr.contains("Failed to export"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (trace_id, span_id) = stdout.trim().split_once(' ').expect("the span's ids");
    app.settle().await;
    let got = rows(
        &app,
        "SELECT tenant, host, app, severity, message, fields FROM chute.logs ORDER BY ts",
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    let columns: Vec<Value> = got
        .iter()
        .map(|r| {
            json!([
                r["tenant"],
                r["host"],
                r["app"],
                r["severity"],
                r["message"]
            ])
        })
        .collect();
    assert_eq!(
        columns,
        [
            json!(["team-o", "web-3", "checkout", 4, "card declined"]),
            json!(["team-o", "web-3", "checkout", 2, "payment service down"]),
            json!(["team-o", "web-3", "checkout", 7, "retry in 5s"]),
        ]
    );
    let fields = &got[0]["fields"];
    assert_eq!(fields["deployment_environment"], "prod", "{fields}");
    assert_eq!(fields["order_id"], 42, "{fields}");
    assert_eq!(fields["scope_name"], "shop.payments", "{fields}");
    assert_eq!(fields["trace_id"], trace_id, "{fields}");
    assert_eq!(fields["span_id"], span_id, "{fields}");
    assert!(got[1]["fields"].get("trace_id").is_none());
    assert_eq!(
        app.metric("chute_records_accepted_total", &["source=\"otlp\""]),
        3.0
    );
    // The OTLP listener serves OTLP alone; the main listener serves it too.
    for path in ["/metrics", "/loki/api/v1/push", "/_bulk", "/api/v1/logs"] {
        let res = app
            .http
            .post(format!("{otlp}{path}"))
            .send_body("{}")
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{path} on the OTLP listener");
    }
    let (status, _) = app_get(&app, &format!("{otlp}/metrics")).await;
    assert_eq!(status, 404);
    let (status, _, body) = export(
        &app,
        &app.base,
        b"{}".to_vec(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));
    app.stop().await;
}

async fn app_get(app: &TestApp, url: &str) -> (u16, Vec<u8>) {
    let mut res = app.http.get(url).send().await.expect("answered");
    let body = res.body().await.expect("body").to_vec();
    (res.status().as_u16(), body)
}

/// `curl` POSTs `body` as OTLP/JSON; the status and the answer as JSON.
async fn curl_json(app: &TestApp, body: &Value) -> (u16, Value) {
    let dir = temp_dir();
    let file = dir.path().join("export.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let url = format!("{}/v1/logs", app.base);
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(url)
            .output()
            .expect("curl runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (answer, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(answer).unwrap(),
    )
}

#[actix_web::test]
async fn otlp_json_by_curl_is_stored_and_refused_records_come_back_in_partial_success() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let record = |body: &str, trace_id: &str| {
        json!({"timeUnixNano": now.to_string(), "severityNumber": 9, "traceId": trace_id,
               "body": {"stringValue": body},
               "attributes": [{"key": "http.route", "value": {"stringValue": "/pay"}}]})
    };
    let export = json!({"resourceLogs": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
    "scopeLogs": [{"scope": {"name": "curl"}, "logRecords": [
        record("first", "5b8efff798038103d269b633813fc60c"),
        record("bad id", "01020304"),
        record("third", ""),
    ]}]}]});
    let (status, answer) = curl_json(&app, &export).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("record 1: trace_id: 16 bytes expected, got 4"),
        "{message}"
    );
    app.settle().await;
    let got = rows(
        &app,
        "SELECT app, severity, message, fields->>'trace_id' AS trace_id,
                fields->>'http_route' AS route FROM chute.logs ORDER BY message",
    )
    .await;
    assert_eq!(
        got,
        [
            json!({"app": "api", "severity": 6, "message": "first",
                   "trace_id": "5b8efff798038103d269b633813fc60c", "route": "/pay"}),
            json!({"app": "api", "severity": 6, "message": "third",
                   "trace_id": null, "route": "/pay"}),
        ]
    );
    assert_eq!(
        app.metric(
            "chute_records_rejected_total",
            &["source=\"otlp\"", "reason=\"invalid_record\""]
        ),
        1.0
    );
    // Nothing refused: an empty response object.
    let (status, answer) = curl_json(&app, &json!({"resourceLogs": []})).await;
    assert_eq!((status, answer), (200, json!({})));
    app.stop().await;
}

/// `google.rpc.Status`'s message (field 2) from its protobuf bytes.
fn status_message(mut bytes: &[u8]) -> String {
    while let [key, rest @ ..] = bytes {
        match key {
            0x08 => {
                let end = rest.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
                bytes = &rest[end..];
            }
            0x12 => {
                let len = rest[0] as usize; // the tests' messages are short
                assert!(len < 0x80);
                return String::from_utf8(rest[1..1 + len].to_vec()).unwrap();
            }
            other => panic!("unexpected field key {other:#x}"),
        }
    }
    panic!("no message");
}

#[actix_web::test]
async fn bad_exports_get_a_status_in_their_own_encoding_and_are_counted() {
    let app = spawn_app_with(|c| {
        c.http.max_body_bytes = 64 * 1024;
        c.limits.tenants = vec![TenantLimits {
            tenant: "slow".into(),
            records_per_s: 1,
            bytes_per_s: 0,
        }];
    })
    .await;
    let pb = ("content-type", "application/x-protobuf");
    let js = ("content-type", "application/json");
    // Protobuf that is not an export: 400, a protobuf Status.
    let before = app.metric(
        "chute_requests_rejected_total",
        &["reason=\"invalid_body\""],
    );
    let (status, _, body) = export(&app, &app.base, vec![0xff, 0xff, 0xff], &[pb]).await;
    assert_eq!(status, 400);
    assert!(
        status_message(&body).starts_with("invalid request body: not an OTLP"),
        "{body:?}"
    );
    assert_eq!(
        app.metric(
            "chute_requests_rejected_total",
            &["reason=\"invalid_body\""]
        ),
        before + 1.0
    );
    // JSON that is not an export: 400, a JSON Status.
    let (status, _, body) = export(&app, &app.base, b"{\"resourceLogs\": 5}".to_vec(), &[js]).await;
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, &answer["code"]), (400, &json!(3)), "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("not an OTLP/JSON"));
    // Another type: 415. Past the body limit: 413.
    let (status, _, _) = export(
        &app,
        &app.base,
        b"x".to_vec(),
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(status, 415);
    let (status, _, _) = export(&app, &app.base, vec![b' '; 100_000], &[js]).await;
    assert_eq!(status, 413);
    // Over a tenant's rate: 429 with Retry-After, which exporters retry.
    let three = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{}, {}, {}]}]}]});
    let (status, _, body) = export(
        &app,
        &app.base,
        three.to_string().into_bytes(),
        &[js, ("x-scope-orgid", "slow")],
    )
    .await;
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, &answer["code"]), (413, &json!(3)), "{answer}");
    let one = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{}]}]}]});
    let mut limited = None;
    for _ in 0..5 {
        let (status, retry_after, _) = export(
            &app,
            &app.base,
            one.to_string().into_bytes(),
            &[js, ("x-scope-orgid", "slow")],
        )
        .await;
        if status == 429 {
            limited = retry_after;
            break;
        }
        assert_eq!(status, 200);
    }
    assert!(limited.is_some(), "a 429 with Retry-After");
    tokio::time::timeout(Duration::from_secs(10), app.settle())
        .await
        .unwrap();
    app.stop().await;
}
