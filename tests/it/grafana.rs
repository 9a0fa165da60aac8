//! What Grafana's Loki data source sends, replayed against chute, every answer
//! checked field by field against the shapes in Loki's API documentation; and the
//! logs dashboard's queries, run as Grafana would run them.

use chrono::{Duration, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::query::{get, ns};

/// Headers Grafana's Loki data source adds to its requests.
const GRAFANA: [(&str, &str); 2] = [
    ("x-grafana-org-id", "1"),
    ("x-query-tags", "Source=grafana"),
];

/// A GET as Grafana sends it: its headers and `extra`.
async fn grafana_get(
    app: &TestApp,
    path: &str,
    params: &[(&str, String)],
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = GRAFANA.iter().chain(extra).copied().collect();
    get(app, path, params, &headers).await
}

/// `{"status": "success", "data": {...}}` with `resultType`, and its `result`.
fn result_of<'a>(v: &'a Value, kind: &str) -> &'a Vec<Value> {
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], kind, "{v}");
    assert!(v["data"]["stats"].is_object(), "stats: {v}");
    v["data"]["result"].as_array().expect("result is a list")
}

/// A stream: `stream` a map of strings, `values` pairs (or, with
/// `categorize`, pairs and triples) of a nanosecond string and a line.
fn check_stream(s: &Value, categorize: bool) {
    assert!(
        s["stream"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string),
        "{s}"
    );
    for v in s["values"].as_array().unwrap() {
        let v = v.as_array().unwrap();
        v[0].as_str()
            .unwrap()
            .parse::<i64>()
            .expect("nanoseconds as a string");
        assert!(v[1].is_string());
        match v.len() {
            2 => {}
            3 if categorize => {
                let meta = v[2]["structuredMetadata"]
                    .as_object()
                    .expect("structuredMetadata");
                assert!(meta.values().all(Value::is_string), "{s}");
            }
            _ => panic!("a value of {} elements: {s}", v.len()),
        }
    }
}

/// A matrix series: `metric` a map of strings, `values` pairs of a number of
/// seconds and a string value.
fn check_series(s: &Value) {
    assert!(
        s["metric"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string),
        "{s}"
    );
    for p in s["values"].as_array().unwrap() {
        assert!(p[0].is_number() && p[1].is_string(), "{s}");
        p[1].as_str()
            .unwrap()
            .parse::<f64>()
            .expect("a number as a string");
    }
}

async fn seeded() -> (TestApp, chrono::DateTime<Utc>) {
    let app = spawn_app().await;
    let now = Utc::now().trunc_subsecs(0);
    app.send_ndjson((0..300).map(|i| {
        let severity = ["err", "warning", "info"][i as usize % 3];
        json!({"message": format!("line {i} {}", if i % 5 == 0 { "timeout" } else { "ok" }),
               "ts": (now - Duration::seconds(600 - i)).to_rfc3339(),
               "host": format!("web-{}", i % 3), "app": "shop",
               "severity": severity,
               "request_id": format!("r{i}")})
    }))
    .await;
    (app, now)
}

#[actix_web::test]
async fn the_requests_grafanas_loki_data_source_sends_get_the_shapes_it_reads() {
    let (app, now) = seeded().await;
    let (start, end) = (ns(now - Duration::hours(1)), ns(now + Duration::seconds(1)));

    // Save & test.
    let (status, v) = grafana_get(
        &app,
        "/loki/api/v1/query",
        &[("query", "vector(1)+vector(1)".into()), ("time", ns(now))],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let r = result_of(&v, "vector");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["value"][1], "2");
    assert!(r[0]["value"][0].is_number());

    // Explore, logs: range, step, direction, limit; with and without categorised labels.
    let logs = [
        ("query", r#"{app="shop"} |= "timeout""#.to_owned()),
        ("start", start.clone()),
        ("end", end.clone()),
        ("step", "2000ms".into()),
        ("direction", "backward".into()),
        ("limit", "1000".into()),
    ];
    for categorize in [false, true] {
        let flags: &[(&str, &str)] = if categorize {
            &[
                ("x-loki-response-encoding-flags", "categorize-labels"),
                ("x-query-tags", "Source=logsample"),
            ]
        } else {
            &[]
        };
        let (status, v) = grafana_get(&app, "/loki/api/v1/query_range", &logs, flags).await;
        assert_eq!(status, 200, "{v}");
        let streams = result_of(&v, "streams");
        let lines: usize = streams
            .iter()
            .map(|s| s["values"].as_array().unwrap().len())
            .sum();
        assert_eq!(lines, 60);
        for s in streams {
            check_stream(s, categorize);
        }
    }

    // Explore's volume histogram.
    let (status, v) = grafana_get(
        &app,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"sum by (level, detected_level) (count_over_time({app="shop"} | drop __error__ [1m]))"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
            ("step", "60000ms".into()),
        ],
        &[("x-query-tags", "Source=logvolhist")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let series = result_of(&v, "matrix");
    let levels: Vec<&str> = series
        .iter()
        .map(|s| s["metric"]["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "info", "warning"]);
    let total: f64 = series
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap())
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        total, 300.0,
        "one-minute windows every minute count each line once"
    );
    series.iter().for_each(check_series);

    // Label browser, series, and the query-size hint.
    let window = [("start", start.clone()), ("end", end.clone())];
    let (_, v) = grafana_get(&app, "/loki/api/v1/labels", &window, &[]).await;
    assert_eq!(v["status"], "success");
    assert!(v["data"].as_array().unwrap().iter().all(Value::is_string));
    let mut q = window.to_vec();
    q.push(("query", r#"{app="shop"}"#.into()));
    let (_, v) = grafana_get(&app, "/loki/api/v1/label/host/values", &q, &[]).await;
    assert_eq!(v["data"], json!(["web-0", "web-1", "web-2"]));
    let mut m = window.to_vec();
    m.push(("match[]", r#"{app="shop"}"#.into()));
    let (_, v) = grafana_get(&app, "/loki/api/v1/series", &m, &[]).await;
    let series = v["data"].as_array().unwrap();
    assert_eq!(series.len(), 3, "host and level go together here: {v}");
    assert!(series
        .iter()
        .all(|s| s.as_object().unwrap().values().all(Value::is_string)));
    let (status, v) = grafana_get(&app, "/loki/api/v1/index/stats", &q, &[]).await;
    assert_eq!(status, 200);
    for key in ["streams", "chunks", "bytes", "entries"] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    assert_eq!(v["entries"], 300);

    // Logs Drilldown's volume: a vector of bytes per group, largest first; and
    // over time, a matrix.
    let mut vq = q.clone();
    vq.push(("targetLabels", "host".into()));
    let (status, v) = grafana_get(&app, "/loki/api/v1/index/volume", &vq, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    let groups = v["data"]["result"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{v}");
    let bytes: Vec<f64> = groups
        .iter()
        .map(|g| {
            assert!(g["metric"]["host"].is_string(), "{g}");
            assert!(g["value"][0].is_number(), "{g}");
            g["value"][1].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert!(
        bytes.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {bytes:?}"
    );
    vq.push(("step", "60".into()));
    let (status, v) = grafana_get(&app, "/loki/api/v1/index/volume_range", &vq, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let over_time: f64 = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap())
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        over_time,
        bytes.iter().sum::<f64>(),
        "the same bytes, by minute"
    );

    // Explore's live tail: the websocket Grafana opens, and its first frame.
    let tail_url = format!("&start={start}&limit=5&delay_for=0");
    let mut tail = crate::tail::open_tail(&app.base, r#"{app="shop"}"#, &tail_url).await;
    let frame = crate::tail::next_frame(&mut tail, std::time::Duration::from_secs(10)).await;
    let streams = frame["streams"].as_array().expect("streams");
    streams.iter().for_each(|s| check_stream(s, false));
    assert_eq!(crate::tail::lines(&frame).len(), 5, "{frame}");
    assert!(frame["dropped_entries"].is_null(), "{frame}");
    drop(tail);

    let (_, v) = grafana_get(&app, "/loki/api/v1/status/buildinfo", &[], &[]).await;
    assert!(v["version"].is_string());
    let mut r = app
        .http
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.body().await.unwrap(), "ready");
    app.stop().await;
}

#[actix_web::test]
async fn every_query_of_the_logs_dashboard_runs_on_chute() {
    let (app, now) = seeded().await;
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/grafana/dashboards/chute-logs.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let variable = |name: &str| -> String {
        dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["current"]["value"].as_str())
            .unwrap()
            .to_owned()
    };
    let mut ran = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            // As Grafana sends it: variables and the interval filled in.
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$selector", &variable("selector"))
                .replace("$search", &variable("search"))
                .replace("$__auto", "1m");
            chute_logql::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let (status, v) = grafana_get(
                &app,
                "/loki/api/v1/query_range",
                &[
                    ("query", expr.clone()),
                    ("start", ns(now - Duration::hours(1))),
                    ("end", ns(now + Duration::seconds(1))),
                    ("step", "60000ms".into()),
                    ("limit", "1000".into()),
                ],
                &[],
            )
            .await;
            assert_eq!(status, 200, "{expr}: {v}");
            assert!(
                !v["data"]["result"].as_array().unwrap().is_empty(),
                "{expr} found nothing"
            );
            ran += 1;
        }
    }
    assert_eq!(ran, 2);
    app.stop().await;
}
