//! Elasticsearch's bulk API: the official Python client (its product check
//! included) with `helpers.bulk`, the endpoints agents probe, and bad or
//! refused requests answered in Elasticsearch's error form, whole, counted.

use std::time::Duration;

use chute::config::tokens::{digest, hex};
use chute::config::{Scope, TenantLimits, TokenConfig};
use serde_json::{json, Value};

use crate::helpers::*;

/// A request to `path` with `headers`; the status, the product header and the
/// body as text.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send_body(body.to_owned()).await.expect("answered");
    let product = res
        .headers()
        .get("x-elastic-product")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.body().limit(1 << 20).await.expect("body");
    (
        res.status().as_u16(),
        product,
        String::from_utf8_lossy(&text).into_owned(),
    )
}

#[actix_web::test]
async fn the_python_elasticsearch_client_bulk_indexes_and_chute_stores_the_documents() {
    let app = spawn_app_with(|c| {
        c.tokens = vec![TokenConfig {
            name: "filebeat".into(),
            sha256: hex(&digest("es-agent-token")),
            tenants: vec!["team-e".into()],
            scopes: vec![Scope::Ingest],
        }]
    })
    .await;
    let script = format!(
        r#"
import json
from elasticsearch import Elasticsearch, helpers
es = Elasticsearch("{}", basic_auth=("chute", "es-agent-token"), request_timeout=30)
info = es.info()
docs = [
    {{"_op_type": "create", "_index": "logs-app", "@timestamp": "2026-12-02T09:00:00.250Z",
      "message": "cache miss", "host": {{"name": "web-9"}}, "service": {{"name": "api"}},
      "log": {{"level": "warning"}}, "user": {{"id": 7}}}},
    {{"_index": "logs-app", "@timestamp": "2026-12-02T09:00:01Z", "message": "second"}},
    {{"_index": "logs-app", "@timestamp": "yesterday", "message": "bad time"}},
]
ok, errors = helpers.bulk(es, docs, raise_on_error=False, headers={{"X-Scope-OrgID": "team-e"}})
print(json.dumps({{"version": info["version"]["number"], "ok": ok, "errors": errors}}))
"#,
        app.base
    );
    let out = run_python(script).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    assert_eq!(result["version"], "8.17.0", "{result}");
    assert_eq!(result["ok"], 2, "{result}");
    let errors = result["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{result}");
    assert_eq!(errors[0]["index"]["status"], 400, "{result}");
    assert!(
        errors[0]["index"]["error"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("@timestamp: \"yesterday\""),
        "{result}"
    );
    app.settle().await;
    let got = rows(
        &app,
        "SELECT tenant, host, app, severity, message, fields,
                to_char(ts AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') AS at
         FROM chute.logs ORDER BY ts",
    )
    .await;
    assert_eq!(
        got,
        [
            json!({"tenant": "team-e", "host": "web-9", "app": "api", "severity": 4,
                   "message": "cache miss", "at": "09:00:00.250",
                   "fields": {"user": {"id": 7}, "_index": "logs-app"}}),
            json!({"tenant": "team-e", "host": null, "app": null, "severity": null,
                   "message": "second", "at": "09:00:01.000",
                   "fields": {"_index": "logs-app"}}),
        ]
    );
    assert_eq!(
        app.metric(
            "chute_records_rejected_total",
            &["source=\"elasticsearch\"", "reason=\"invalid_record\""]
        ),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn agents_probes_are_answered_as_a_version_8_cluster_and_a_browser_gets_the_console() {
    let app = spawn_app().await;
    let (status, product, text) = call(&app, "GET", "/", "", &[]).await;
    let info: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((status, product.as_deref()), (200, Some("Elasticsearch")));
    assert!(
        info["version"]["number"]
            .as_str()
            .unwrap()
            .starts_with("8."),
        "{info}"
    );
    let (status, product, _) = call(&app, "HEAD", "/", "", &[]).await;
    assert_eq!((status, product.as_deref()), (200, Some("Elasticsearch")));
    let (status, _, text) = call(&app, "GET", "/", "", &[("accept", "text/html,*/*")]).await;
    assert_eq!(status, 200);
    assert!(text.contains("<html"), "the console");
    for (method, path, want) in [
        ("GET", "/_license", json!("active")),
        (
            "GET",
            "/_nodes/http",
            json!(app.base.trim_start_matches("http://")),
        ),
        ("GET", "/_cluster/health", json!("green")),
        ("GET", "/_ilm/policy/filebeat", json!({})),
        ("PUT", "/_index_template/filebeat-8.17.0", json!(true)),
        ("PUT", "/_ilm/policy/filebeat", json!(true)),
    ] {
        let (status, product, text) = call(&app, method, path, "{}", &[]).await;
        assert_eq!(
            (status, product.as_deref()),
            (200, Some("Elasticsearch")),
            "{path}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let got = match path {
            "/_license" => &v["license"]["status"],
            "/_nodes/http" => {
                &v["nodes"].as_object().unwrap().values().next().unwrap()["http"]["publish_address"]
            }
            "/_cluster/health" => &v["status"],
            _ if method == "PUT" => &v["acknowledged"],
            _ => &v,
        };
        assert_eq!(got, &want, "{method} {path}: {text}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn bad_bulks_and_overload_are_whole_request_errors_in_elasticsearch_form() {
    let app = spawn_app_with(|c| {
        c.limits.tenants = vec![TenantLimits {
            tenant: "slow".into(),
            records_per_s: 2,
            bytes_per_s: 0,
        }]
    })
    .await;
    let v8 = (
        "content-type",
        "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
    );
    // A malformed action line: 400, nothing stored, counted.
    let body = "{\"index\":{}}\n{\"message\":\"a\"}\n{\"bogus\":{}}\n{}\n";
    let (status, product, text) = call(&app, "POST", "/_bulk", body, &[v8]).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, product.as_deref()),
        (400, Some("Elasticsearch")),
        "{text}"
    );
    assert_eq!(v["status"], 400);
    assert!(
        v["error"]["reason"].as_str().unwrap().contains("line 3"),
        "{v}"
    );
    assert_eq!(
        app.metric(
            "chute_requests_rejected_total",
            &["reason=\"invalid_json\""]
        ),
        1.0
    );
    // Edits are item errors beside a stored document; the answer names each.
    let body =
        "{\"delete\":{\"_id\":\"1\"}}\n{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"kept\"}\n";
    let (status, _, text) = call(&app, "POST", "/_bulk", body, &[v8]).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((status, &v["errors"]), (200, &json!(true)), "{v}");
    assert_eq!(v["items"][0]["delete"]["status"], 400, "{v}");
    assert_eq!(v["items"][0]["delete"]["_id"], "1", "{v}");
    assert_eq!(v["items"][1]["index"]["status"], 201, "{v}");
    // _bulk by another method, or with a trailing slash: not a 2xx.
    let (status, _, _) = call(&app, "POST", "/_bulk/", body, &[v8]).await;
    assert_eq!(status, 405);
    let (status, _, _) = call(&app, "DELETE", "/_bulk", "", &[]).await;
    assert_eq!(status, 405);
    // A path index past the rules: 400, counted.
    let (status, _, _) = call(&app, "POST", "/a%01b/_bulk", body, &[v8]).await;
    assert_eq!(status, 400);
    assert_eq!(
        app.metric(
            "chute_requests_rejected_total",
            &["reason=\"invalid_index\""]
        ),
        1.0
    );
    // Another type: 415.
    let (status, _, _) = call(
        &app,
        "PUT",
        "/logs/_bulk",
        body,
        &[("content-type", "text/csv")],
    )
    .await;
    assert_eq!(status, 415);
    // A tenant over its rate: 429 with Retry-After for the whole request, no items.
    let one = "{\"create\":{}}\n{\"message\":\"x\"}\n";
    let slow = ("x-scope-orgid", "slow");
    let mut limited = None;
    for _ in 0..5 {
        let mut res = app
            .http
            .put(format!("{}/logs/_bulk", app.base))
            .insert_header(v8)
            .insert_header(slow)
            .send_body(one)
            .await
            .unwrap();
        let text = res.body().await.unwrap();
        if res.status().as_u16() == 429 {
            let v: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(v["error"]["type"], "es_rejected_execution_exception", "{v}");
            assert!(v.get("items").is_none());
            limited = res.headers().get("retry-after").cloned();
            break;
        }
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["errors"], false, "{v}");
        assert_eq!(v["items"][0]["create"]["status"], 201, "{v}");
        assert_eq!(v["items"][0]["create"]["_index"], "logs", "{v}");
    }
    assert!(limited.is_some(), "a 429 with Retry-After");
    tokio::time::timeout(Duration::from_secs(10), app.settle())
        .await
        .unwrap();
    app.stop().await;
}
