//! Histograms from the per-minute counts: a `sum by` of lines or bytes by level or
//! app, over windows of whole minutes, reads `chute.minute_counts` and gives what a
//! brute-force count over the records gives; anything the counts cannot answer
//! (a host, a line filter, a window off the minute) reads the rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::query::{get, ns};

struct Rec {
    ts: DateTime<Utc>,
    host: String,
    app: &'static str,
    severity: i16,
    message: String,
}

/// A query, its step, which records it counts, its series key, whether it counts bytes.
type Case = (
    &'static str,
    &'static str,
    Box<dyn Fn(&Rec) -> bool>,
    Box<dyn Fn(&Rec) -> String>,
    bool,
);

const LEVEL: [&str; 8] = [
    "critical", "critical", "critical", "error", "warning", "info", "info", "debug",
];

/// `(step time, labels of the series, value)` of a matrix, the labels as `k=v`.
fn points(v: &Value) -> BTreeMap<(i64, String), f64> {
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("matrix") {
        let labels: Vec<String> = s["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        for p in s["values"].as_array().unwrap() {
            let t = p[0].as_i64().expect("whole seconds");
            out.insert(
                (t, labels.join(",")),
                p[1].as_str().unwrap().parse().unwrap(),
            );
        }
    }
    out
}

#[actix_web::test]
async fn histograms_read_the_minute_counts_and_match_a_brute_force_count() {
    // No count cache: the test empties chute.logs behind chute's back to see which
    // queries read the rows, and kept hours would still answer for them.
    let app = spawn_app_with(|c| c.query.cache_mib = 0).await;
    let now = Utc::now().trunc_subsecs(6);
    let mut rng = fastrand::Rng::with_seed(11);
    // 1200 records over the last 100 minutes, some exactly on a minute.
    let recs: Vec<Rec> = (0..1200)
        .map(|i| {
            let ts = if i % 50 == 0 {
                (now - Duration::minutes(i / 12))
                    .duration_trunc(Duration::minutes(1))
                    .unwrap()
            } else {
                now - Duration::microseconds(rng.i64(0..6_000_000_000))
            };
            Rec {
                ts,
                host: format!("h{}", i % 5),
                app: ["api", "web", "db"][rng.usize(0..3)],
                severity: rng.i16(0..8),
                message: "x".repeat(rng.usize(1..40)) + if i % 7 == 0 { " timeout" } else { "" },
            }
        })
        .collect();
    app.send_ndjson(recs.iter().map(|r| {
        json!({"message": r.message, "ts": r.ts.to_rfc3339(), "host": r.host,
               "app": r.app, "severity": r.severity})
    }))
    .await;

    // Whole minutes: from 2 hours back, every 5 minutes, up to now.
    let start = (now - Duration::hours(2))
        .duration_trunc(Duration::minutes(1))
        .unwrap();
    let range = |query: &str, step: &str| {
        vec![
            ("query", query.to_owned()),
            ("start", ns(start)),
            ("end", ns(now)),
            ("step", step.to_owned()),
        ]
    };
    // What a count over the records gives, for windows of `width` ending at
    // every step time, grouped by `key` (None: left out).
    let brute = |width: Duration,
                 step: Duration,
                 keep: &dyn Fn(&Rec) -> bool,
                 key: &dyn Fn(&Rec) -> String,
                 value: &dyn Fn(&Rec) -> f64| {
        let mut out: BTreeMap<(i64, String), f64> = BTreeMap::new();
        let mut t = start;
        while t <= now {
            for r in recs
                .iter()
                .filter(|r| keep(r) && r.ts > t - width && r.ts <= t)
            {
                *out.entry((t.timestamp(), key(r))).or_default() += value(r);
            }
            t += step;
        }
        out
    };
    let cases: Vec<Case> = vec![
        (
            r#"sum by (level) (count_over_time({app="api"}[5m]))"#,
            "300",
            Box::new(|r| r.app == "api"),
            Box::new(|r| format!("level={}", LEVEL[r.severity as usize])),
            false,
        ),
        (
            r#"sum by (app) (bytes_over_time({tenant="default", level=~"error|warning"}[10m]))"#,
            "600",
            Box::new(|r| (3..=4).contains(&r.severity)),
            Box::new(|r| format!("app={}", r.app)),
            true,
        ),
        (
            r#"sum(count_over_time({tenant="default"} | drop __error__ [1m]))"#,
            "60",
            Box::new(|_| true),
            Box::new(|_| String::new()),
            false,
        ),
        // The counts cannot answer these: the rows do.
        (
            r#"sum by (level) (count_over_time({host="h1"}[5m]))"#,
            "300",
            Box::new(|r| r.host == "h1"),
            Box::new(|r| format!("level={}", LEVEL[r.severity as usize])),
            false,
        ),
        (
            r#"sum(count_over_time({app="web"} |= "timeout" [5m]))"#,
            "300",
            Box::new(|r| r.app == "web" && r.message.contains("timeout")),
            Box::new(|_| String::new()),
            false,
        ),
    ];
    let mut before = Vec::new();
    for (query, step, keep, key, bytes) in &cases {
        let (status, v) = get(&app, "/loki/api/v1/query_range", &range(query, step), &[]).await;
        assert_eq!(status, 200, "{v}");
        let secs: i64 = step.parse().unwrap();
        let window = match *step {
            "600" => Duration::minutes(10),
            "60" => Duration::minutes(1),
            _ => Duration::minutes(5),
        };
        let value = |r: &Rec| if *bytes { r.message.len() as f64 } else { 1.0 };
        let want = brute(window, Duration::seconds(secs), keep, key, &value);
        assert_eq!(points(&v), want, "{query}");
        before.push(points(&v));
    }

    // Without the rows, the counts still answer what they can; the rest is empty.
    app.db.batch_execute("TRUNCATE chute.logs").await.unwrap();
    for (i, (query, step, ..)) in cases.iter().enumerate() {
        let (_, v) = get(&app, "/loki/api/v1/query_range", &range(query, step), &[]).await;
        if i < 3 {
            assert_eq!(points(&v), before[i], "{query} reads the minute counts");
        } else {
            assert!(points(&v).is_empty(), "{query} reads the rows");
        }
    }
    // Off the minute, even a histogram reads the rows.
    let mut off = range(
        r#"sum by (level) (count_over_time({app="api"}[5m]))"#,
        "300",
    );
    off[1].1 = ns(start + Duration::seconds(7));
    let (_, v) = get(&app, "/loki/api/v1/query_range", &off, &[]).await;
    assert!(points(&v).is_empty(), "{v}");
    app.stop().await;
}
