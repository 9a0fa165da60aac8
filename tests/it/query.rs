//! The Loki read API against real PostgreSQL: a generated data set is posted, and
//! every answer is checked against what a brute-force filter over that data set
//! computes here, in the test.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

/// One generated record, as posted and as the test expects it back.
#[derive(Debug, Clone)]
struct Rec {
    tenant: &'static str,
    ts: DateTime<Utc>,
    host: String,
    app: &'static str,
    severity: i16,
    message: String,
    status: u16,
}

const APPS: [&str; 3] = ["api", "web", "db"];

/// Which records an answer must hold.
type Keep = Box<dyn Fn(&Rec) -> bool>;
const LEVELS: [&str; 8] = [
    "critical", "critical", "critical", "error", "warning", "info", "info", "debug",
];

/// 600 records over the hour before `now`: 4 hosts, 3 apps, every severity, a JSON
/// message with a status for app `api`, tenants `default` and `other`; two records
/// share a time stamp.
fn data(now: DateTime<Utc>) -> Vec<Rec> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..600)
        .map(|i| {
            let app = APPS[i % 3];
            let status = [200, 200, 404, 500, 503][rng.usize(0..5)];
            let message = if app == "api" {
                json!({"method": "GET", "path": format!("/p/{i}"), "status": status}).to_string()
            } else if i % 10 == 0 {
                format!("request {i} timeout after {}ms", rng.u32(1..900))
            } else {
                format!("request {i} done")
            };
            Rec {
                tenant: if i % 7 == 0 { "other" } else { "default" },
                ts: now - Duration::seconds(3590) + Duration::seconds((i as i64 / 2) * 11),
                host: format!("web-{}", i % 4),
                app,
                severity: rng.i16(0..8),
                message,
                status,
            }
        })
        .collect()
}

async fn load(app: &TestApp, recs: &[Rec]) {
    for tenant in ["default", "other"] {
        let body: String = recs
            .iter()
            .filter(|r| r.tenant == tenant)
            .map(|r| {
                json!({"message": r.message, "ts": r.ts.to_rfc3339(), "host": r.host,
                       "app": r.app, "severity": r.severity, "trace": format!("t{}", r.status)})
                .to_string()
                    + "\n"
            })
            .collect();
        let a = app
            .post(
                body,
                &[
                    ("content-type", "application/x-ndjson"),
                    ("x-chute-tenant", tenant),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    app.settle().await;
}

pub(crate) async fn get(
    app: &TestApp,
    path: &str,
    params: &[(&str, String)],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut req = app.http.get(format!("{}{path}?{query}", app.base));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut r = req.send().await.expect("answer");
    let body = r.body().limit(64 << 20).await.expect("body");
    (
        r.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

pub(crate) fn ns(t: DateTime<Utc>) -> String {
    t.timestamp_nanos_opt().unwrap().to_string()
}

/// Every (time stamp, line) of a streams answer, in answer order per stream,
/// merged newest first.
pub(crate) fn lines_of(v: &Value) -> Vec<(i64, String)> {
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], "streams", "{v}");
    let mut out: Vec<(i64, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|e| {
            (
                e[0].as_str().unwrap().parse().unwrap(),
                e[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

fn expected(recs: &[Rec], keep: impl Fn(&Rec) -> bool) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = recs
        .iter()
        .filter(|r| keep(r))
        .map(|r| (r.ts.timestamp_nanos_opt().unwrap(), r.message.clone()))
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

#[actix_web::test]
async fn log_queries_answer_what_a_brute_force_filter_over_the_data_finds() {
    let app = spawn_app().await;
    // Whole seconds: chute keeps microseconds.
    let now = Utc::now().trunc_subsecs(0);
    let recs = data(now);
    load(&app, &recs).await;
    let range = |q: &str| {
        vec![
            ("query", q.to_owned()),
            ("start", ns(now - Duration::hours(2))),
            ("end", ns(now + Duration::minutes(1))),
            ("limit", "1000".to_owned()),
        ]
    };
    let cases: Vec<(&str, Keep)> = vec![
        (
            r#"{app="web"}"#,
            Box::new(|r| r.tenant == "default" && r.app == "web"),
        ),
        (
            r#"{app!="web", host=~"web-[12]"}"#,
            Box::new(|r| {
                r.tenant == "default" && r.app != "web" && (r.host == "web-1" || r.host == "web-2")
            }),
        ),
        (
            r#"{host!~"web-0|web-3"}"#,
            Box::new(|r| r.tenant == "default" && r.host != "web-0" && r.host != "web-3"),
        ),
        (
            r#"{app="web"} |= "timeout""#,
            Box::new(|r| r.tenant == "default" && r.app == "web" && r.message.contains("timeout")),
        ),
        (
            r#"{app=~"web|db"} != "timeout" |~ "request [0-9]*5 ""#,
            Box::new(|r| {
                r.tenant == "default"
                    && r.app != "api"
                    && !r.message.contains("timeout")
                    && r.message
                        .split(' ')
                        .nth(1)
                        .is_some_and(|n| n.ends_with('5'))
            }),
        ),
        (
            r#"{level="error"}"#,
            Box::new(|r| r.tenant == "default" && r.severity == 3),
        ),
        (
            r#"{level=~"critical|warning"}"#,
            Box::new(|r| r.tenant == "default" && (r.severity <= 2 || r.severity == 4)),
        ),
        (
            r#"{app="api"} | json | status >= 500"#,
            Box::new(|r| r.tenant == "default" && r.app == "api" && r.status >= 500),
        ),
        (
            r#"{app="api"} | json | status = 404 or status = 200"#,
            Box::new(|r| {
                r.tenant == "default" && r.app == "api" && (r.status == 404 || r.status == 200)
            }),
        ),
        (r#"{tenant="other"}"#, Box::new(|_| false)),
        (r#"{nosuch="x"}"#, Box::new(|_| false)),
        (
            r#"{nosuch=""} |= "done""#,
            Box::new(|r| r.tenant == "default" && r.message.contains("done")),
        ),
    ];
    for (q, keep) in &cases {
        let (status, v) = get(&app, "/loki/api/v1/query_range", &range(q), &[]).await;
        assert_eq!(status, 200, "{q}: {v}");
        assert_eq!(lines_of(&v), expected(&recs, keep), "{q}");
    }
    // Another tenant sees its own records only.
    let (_, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &range(r#"{app="web"}"#),
        &[("x-scope-orgid", "other")],
    )
    .await;
    assert_eq!(
        lines_of(&v),
        expected(&recs, |r| r.tenant == "other" && r.app == "web")
    );

    // Direction and limit: the newest (or oldest) 5, time stamps included.
    let all = expected(&recs, |r| r.tenant == "default" && r.app == "db");
    let mut q = range(r#"{app="db"}"#);
    q[3].1 = "5".into();
    let (_, v) = get(&app, "/loki/api/v1/query_range", &q, &[]).await;
    assert_eq!(lines_of(&v), all[..5].to_vec());
    q.push(("direction", "forward".into()));
    let (_, v) = get(&app, "/loki/api/v1/query_range", &q, &[]).await;
    let mut oldest = all[all.len() - 5..].to_vec();
    oldest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(lines_of(&v), oldest);

    // Start inclusive, end exclusive, as Loki.
    let t = recs[100].ts;
    let window = vec![
        ("query", r#"{tenant="default"}"#.to_owned()),
        ("start", ns(t)),
        ("end", ns(t + Duration::seconds(11))),
        ("limit", "100".into()),
    ];
    let (_, v) = get(&app, "/loki/api/v1/query_range", &window, &[]).await;
    assert_eq!(
        lines_of(&v),
        expected(&recs, |r| r.tenant == "default"
            && r.ts >= t
            && r.ts < t + Duration::seconds(11))
    );

    // Stream labels, and fields as structured metadata when asked apart.
    let (_, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &range(r#"{host="web-1", app="db"}"#),
        &[("x-loki-response-encoding-flags", "categorize-labels")],
    )
    .await;
    let stream = &v["data"]["result"][0];
    assert_eq!(stream["stream"]["host"], "web-1");
    assert_eq!(stream["stream"]["app"], "db");
    assert_eq!(stream["stream"]["tenant"], "default");
    assert!(
        stream["values"][0][2]["structuredMetadata"]["trace"].is_string(),
        "{v}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn metric_queries_labels_and_errors_have_loki_shapes() {
    let app = spawn_app().await;
    // Every endpoint's count exists at 0 before the first request.
    let text = app.metrics.render();
    for endpoint in [
        "query_range",
        "query",
        "labels",
        "label_values",
        "series",
        "index_stats",
    ] {
        let line = format!("chute_queries_total{{endpoint=\"{endpoint}\",result=\"ok\"}} 0");
        assert!(text.contains(&line), "no {line}");
    }
    // Whole seconds: chute keeps microseconds.
    let now = Utc::now().trunc_subsecs(0);
    let recs = data(now);
    load(&app, &recs).await;

    // Grafana's health check.
    let (status, v) = get(
        &app,
        "/loki/api/v1/query",
        &[("query", "vector(1)+vector(1)".into())],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["value"][1], "2");
    assert_eq!(v["data"]["result"][0]["metric"], json!({}));

    // Counts by level over the last two hours, at one instant.
    let (status, v) = get(
        &app,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum by (level) (count_over_time({app=~".+"} | drop __error__ [2h]))"#.into(),
            ),
            ("time", ns(now + Duration::seconds(1))),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.tenant == "default") {
        *want.entry(LEVELS[r.severity as usize]).or_default() += 1;
    }
    let got: BTreeMap<&str, usize> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["level"].as_str().unwrap(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // Summed by a label a parser extracts: the shards keep it on their series.
    let (status, v) = get(
        &app,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum by (status) (count_over_time({app="api"} | json [2h]))"#.into(),
            ),
            ("time", ns(now + Duration::seconds(1))),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for r in recs
        .iter()
        .filter(|r| r.tenant == "default" && r.app == "api")
    {
        *want.entry(r.status.to_string()).or_default() += 1;
    }
    let got: BTreeMap<String, usize> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["status"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // A matrix: lines of app api per 10 minutes, summed; every step's window counted.
    let start = now - Duration::minutes(60);
    let (status, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"sum(count_over_time({app="api"}[10m]))"#.into()),
            ("start", ns(start)),
            ("end", ns(now)),
            ("step", "600".into()),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    for point in v["data"]["result"][0]["values"].as_array().unwrap() {
        let t = point[0].as_f64().unwrap();
        let t = DateTime::from_timestamp_nanos((t * 1e9).round() as i64);
        let n = recs
            .iter()
            .filter(|r| {
                r.tenant == "default"
                    && r.app == "api"
                    && r.ts > t - Duration::minutes(10)
                    && r.ts <= t
            })
            .count();
        assert_eq!(point[1].as_str().unwrap(), n.to_string(), "at {t}");
    }

    // Labels and their values.
    let window = [
        ("start", ns(now - Duration::hours(2))),
        ("end", ns(now + Duration::minutes(1))),
    ];
    let (_, v) = get(&app, "/loki/api/v1/labels", &window, &[]).await;
    assert_eq!(v["data"], json!(["app", "host", "level", "tenant"]));
    let (_, v) = get(&app, "/loki/api/v1/label/host/values", &window, &[]).await;
    assert_eq!(v["data"], json!(["web-0", "web-1", "web-2", "web-3"]));
    let mut with_query = window.to_vec();
    with_query.push(("query", r#"{app="db", host="web-2"}"#.into()));
    let (_, v) = get(&app, "/loki/api/v1/label/level/values", &with_query, &[]).await;
    let want: BTreeSet<&str> = recs
        .iter()
        .filter(|r| r.tenant == "default" && r.app == "db" && r.host == "web-2")
        .map(|r| LEVELS[r.severity as usize])
        .collect();
    assert_eq!(v["data"], json!(want));
    let (_, v) = get(
        &app,
        "/loki/api/v1/series",
        &[
            ("match[]", r#"{app="web", host="web-3"}"#.into()),
            window[0].clone(),
            window[1].clone(),
        ],
        &[],
    )
    .await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["app"] == "web" && s["host"] == "web-3"),
        "{v}"
    );

    // The size of a selector's data, as Grafana asks it.
    let mut stats_q = window.to_vec();
    stats_q.push(("query", r#"{app="db"}"#.into()));
    let (status, v) = get(&app, "/loki/api/v1/index/stats", &stats_q, &[]).await;
    assert_eq!(status, 200, "{v}");
    let db: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.tenant == "default" && r.app == "db")
        .collect();
    assert_eq!(v["entries"], db.len());
    assert_eq!(
        v["bytes"],
        db.iter().map(|r| r.message.len()).sum::<usize>()
    );
    let streams: BTreeSet<(String, i16)> =
        db.iter().map(|r| (r.host.clone(), r.severity)).collect();
    assert_eq!(v["streams"], streams.len());

    // A bad query: 400, with where.
    let (status, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &[("query", r#"{app="web" |= "x""#.into())],
        &[],
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("line 1, col"),
        "{v}"
    );
    let (status, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &[("query", r#"{app=~"a{300}"}"#.into())],
        &[],
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = get(&app, "/loki/api/v1/status/buildinfo", &[], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.metric(
            "chute_queries_total",
            &["endpoint=\"query_range\"", "result=\"invalid\""]
        ),
        2.0
    );
    app.stop().await;
}

/// Runs `chute` with `args` off the test's thread (chute's actors run on it).
async fn chute(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
            .args(&args)
            .output()
            .expect("chute runs")
    })
    .await
    .expect("join")
}

#[actix_web::test]
async fn chute_query_prints_lines_json_and_series_and_exits_2_for_a_bad_query() {
    let app = spawn_app().await;
    let now = Utc::now().trunc_subsecs(0);
    let recs = data(now);
    load(&app, &recs).await;
    let args = |extra: &[&str]| -> Vec<String> {
        ["query", "--url", &app.base, "--since", "2h"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let out = chute(args(&[
        r#"{app="web"} |= "timeout""#,
        "--output",
        "raw",
        "--limit",
        "1000",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut want: Vec<String> = expected(&recs, |r| {
        r.tenant == "default" && r.app == "web" && r.message.contains("timeout")
    })
    .into_iter()
    .map(|(_, m)| m)
    .collect();
    assert!(!want.is_empty());
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let out = chute(args(&[
        r#"{app="db"}"#,
        "--output",
        "json",
        "--limit",
        "3",
        "--tenant",
        "other",
    ]))
    .await;
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines
        .iter()
        .all(|l| l["labels"]["app"] == "db" && l["labels"]["tenant"] == "other"));
    let newest = expected(&recs, |r| r.tenant == "other" && r.app == "db");
    assert_eq!(lines[0]["line"], newest[0].1.as_str());

    let out = chute(args(&[r#"sum(count_over_time({app="web"}[2h]))"#])).await;
    assert!(out.status.success());
    assert!(!out.stdout.is_empty(), "a metric query prints its points");

    let out = chute(args(&[r#"{app="web""#])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1, col"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_query_past_the_time_limit_is_cancelled_in_postgres_and_answered_503() {
    let app = spawn_app_with(|c| c.query.timeout_ms = 50).await;
    // A million lines straight into the table: scanning them all takes longer.
    app.db
        .batch_execute(
            "INSERT INTO chute.logs (ts, received_at, tenant, host, app, message)
             SELECT now() - (i || ' ms')::interval, now(), 'default', 'h', 'a', repeat('x', 200) || i
             FROM generate_series(1, 1000000) i",
        )
        .await
        .expect("insert");
    let (status, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="a"} |= "no such text""#.into()),
            ("limit", "10".into()),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["errorType"], "timeout", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("query.timeout_ms"),
        "{v}"
    );
    // Cancelled in PostgreSQL too: within a moment (parallel workers stop after
    // their leader), no statement of the query is still running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let active: Vec<String> = app
            .db
            .query(
                "SELECT backend_type || ': ' || query FROM pg_stat_activity
                 WHERE state = 'active' AND query LIKE 'SELECT ts, tenant, host%'
                   AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if active.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 2 s after the answer: {active:?}"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.metric(
            "chute_queries_total",
            &["endpoint=\"query_range\"", "result=\"timeout\""]
        ),
        1.0
    );
    app.stop().await;
}

/// A random matcher on one of the data set's labels, and its meaning.
fn random_matcher(rng: &mut fastrand::Rng) -> (String, Keep) {
    let hosts = ["web-0", "web-1", "web-2", "web-3", "web-9", ""];
    match rng.usize(0..6) {
        0 => {
            let h = hosts[rng.usize(0..hosts.len())];
            (
                format!(r#"host="{h}""#),
                Box::new(move |r: &Rec| r.host == h),
            )
        }
        1 => {
            let h = hosts[rng.usize(0..hosts.len())];
            (
                format!(r#"host!="{h}""#),
                Box::new(move |r: &Rec| r.host != h),
            )
        }
        2 => {
            let (re, digits) = [
                ("web-[0-1]", "01"),
                ("web-(1|3)", "13"),
                (".*-2", "2"),
                ("web.", ""),
            ][rng.usize(0..4)];
            (
                format!(r#"host=~"{re}""#),
                Box::new(move |r: &Rec| digits.contains(r.host.chars().last().unwrap())),
            )
        }
        3 => {
            let a = APPS[rng.usize(0..3)];
            (
                format!(r#"app!~"{a}|x""#),
                Box::new(move |r: &Rec| r.app != a),
            )
        }
        4 => {
            let l = ["critical", "error", "warning", "info", "debug", "unknown"][rng.usize(0..6)];
            (
                format!(r#"level="{l}""#),
                Box::new(move |r: &Rec| LEVELS[r.severity as usize] == l),
            )
        }
        _ => {
            let l = ["crit.*", "(error|debug)", "w.*|i.*"][rng.usize(0..3)];
            let re = regex::Regex::new(&format!("^(?:{l})$")).unwrap();
            (
                format!(r#"level=~"{l}""#),
                Box::new(move |r: &Rec| re.is_match(LEVELS[r.severity as usize])),
            )
        }
    }
}

/// A random line filter, and its meaning.
fn random_filter(rng: &mut fastrand::Rng) -> (String, Keep) {
    let words = [
        "timeout",
        "done",
        "request 1",
        "GET",
        "\"status\":5",
        "ms",
        "%",
        "zzz",
    ];
    let w = words[rng.usize(0..words.len())];
    let quoted = serde_json::to_string(w).unwrap();
    match rng.usize(0..4) {
        0 => (
            format!("|= {quoted}"),
            Box::new(move |r: &Rec| r.message.contains(w)),
        ),
        1 => (
            format!("!= {quoted}"),
            Box::new(move |r: &Rec| !r.message.contains(w)),
        ),
        2 => {
            let re = regex::Regex::new(&regex::escape(w)).unwrap();
            (
                format!("|~ {}", serde_json::to_string(&regex::escape(w)).unwrap()),
                Box::new(move |r: &Rec| re.is_match(&r.message)),
            )
        }
        _ => {
            let (re_text, re) = ("[0-9]+ms$", regex::Regex::new("[0-9]+ms$").unwrap());
            (
                format!("!~ \"{re_text}\""),
                Box::new(move |r: &Rec| !re.is_match(&r.message)),
            )
        }
    }
}

#[actix_web::test]
async fn random_selectors_and_line_filters_return_what_brute_force_finds() {
    let app = spawn_app().await;
    let now = Utc::now().trunc_subsecs(0);
    let recs = data(now);
    load(&app, &recs).await;
    let mut rng = fastrand::Rng::with_seed(42);
    for case in 0..120 {
        let mut parts = Vec::new();
        let mut keeps: Vec<Keep> = vec![Box::new(|r: &Rec| r.tenant == "default")];
        for _ in 0..rng.usize(1..4) {
            let (text, keep) = random_matcher(&mut rng);
            parts.push(text);
            keeps.push(keep);
        }
        let mut query = format!("{{{}}}", parts.join(", "));
        for _ in 0..rng.usize(0..3) {
            let (text, keep) = random_filter(&mut rng);
            query.push(' ');
            query.push_str(&text);
            keeps.push(keep);
        }
        let params = vec![
            ("query", query.clone()),
            ("start", ns(now - Duration::hours(2))),
            ("end", ns(now + Duration::minutes(1))),
            ("limit", "1000".to_owned()),
        ];
        let (status, v) = get(&app, "/loki/api/v1/query_range", &params, &[]).await;
        assert_eq!(status, 200, "case {case}: {query}: {v}");
        assert_eq!(
            lines_of(&v),
            expected(&recs, |r| keeps.iter().all(|k| k(r))),
            "case {case}: {query}"
        );
    }
    app.stop().await;
}
