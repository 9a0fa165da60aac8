//! The count cache: a metric query PostgreSQL counts from the rows keeps the
//! counts of the whole hours of its window, the next run takes them from the cache
//! (`chute_query_cache_hours_total`) and reads only the partial hours, a write into
//! a kept hour makes it counted again, and every answer is the brute-force count.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::query::{get, ns};

const LEVELS: [(i16, &str); 3] = [(3, "error"), (4, "warning"), (6, "info")];

struct Rec {
    ts: DateTime<Utc>,
    severity: i16,
    message: String,
}

async fn send(app: &TestApp, recs: &[Rec]) {
    app.send_ndjson(recs.iter().map(|r| {
        json!({"ts": r.ts.to_rfc3339(), "app": "a", "severity": r.severity, "message": r.message})
    }))
    .await;
}

async fn instant(app: &TestApp, at: DateTime<Utc>) -> Value {
    let (status, v) = get(
        app,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum(count_over_time({app="a"} |= "error" [3h]))"#.into(),
            ),
            ("time", ns(at)),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

fn value(v: &Value) -> f64 {
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `(step time in s, level) → lines` of a matrix by level.
fn by_level(v: &Value) -> BTreeMap<(i64, String), f64> {
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("matrix") {
        let level = s["metric"]["level"].as_str().unwrap_or("").to_owned();
        for p in s["values"].as_array().unwrap() {
            let t = p[0].as_i64().expect("whole seconds");
            out.insert((t, level.clone()), p[1].as_str().unwrap().parse().unwrap());
        }
    }
    out
}

fn hours(app: &TestApp, result: &str) -> f64 {
    app.metric(
        "chute_query_cache_hours_total",
        &[&format!("result=\"{result}\"")],
    )
}

#[actix_web::test]
async fn whole_hours_are_counted_once_and_again_only_after_a_write_into_them() {
    let app = spawn_app().await;
    let now = Utc::now().trunc_subsecs(6);
    let mut rng = fastrand::Rng::with_seed(5);
    // 2000 records over the last 4 hours; "error" in about a fifth.
    let mut recs: Vec<Rec> = (0..2000)
        .map(|i| Rec {
            ts: now - Duration::microseconds(rng.i64(1..4 * 3_600_000_000)),
            severity: LEVELS[i % 3].0,
            message: format!(
                "request {i} {}",
                if rng.u8(..5) == 0 { "error" } else { "ok" }
            ),
        })
        .collect();
    send(&app, &recs).await;
    let brute = |recs: &[Rec], at: DateTime<Utc>| {
        recs.iter()
            .filter(|r| r.ts > at - Duration::hours(3) && r.ts <= at && r.message.contains("error"))
            .count() as f64
    };

    // First run: the whole hours inside (now - 3h, now] are counted and kept.
    let first = instant(&app, now).await;
    assert_eq!(value(&first), brute(&recs, now));
    let counted = hours(&app, "miss");
    assert!((2.0..=3.0).contains(&counted), "{counted}");
    assert_eq!(hours(&app, "hit"), 0.0);
    let rows_first = app.metric("chute_query_rows_read_total", &["endpoint=\"query\""]);

    // Again: the same answer from the kept hours, reading only the ends.
    let again = instant(&app, now).await;
    assert_eq!(again["data"]["result"], first["data"]["result"]);
    assert_eq!(hours(&app, "hit"), counted);
    assert_eq!(hours(&app, "miss"), counted);
    let rows_again =
        app.metric("chute_query_rows_read_total", &["endpoint=\"query\""]) - rows_first;
    assert!(
        rows_again < rows_first / 2.0,
        "read {rows_again} rows, first {rows_first}"
    );

    // A late record into a kept hour: that hour alone is counted again.
    // The middle of the first whole hour of the window.
    let first_whole = (now - Duration::hours(3))
        .duration_trunc(Duration::hours(1))
        .unwrap()
        + Duration::hours(1);
    let late = Rec {
        ts: first_whole + Duration::minutes(30),
        severity: 3,
        message: "late error".into(),
    };
    send(&app, std::slice::from_ref(&late)).await;
    recs.push(late);
    let after = instant(&app, now).await;
    assert_eq!(value(&after), brute(&recs, now));
    assert_eq!(value(&after), value(&first) + 1.0);
    assert_eq!(hours(&app, "miss"), counted + 1.0);
    assert_eq!(hours(&app, "hit"), 2.0 * counted - 1.0);

    // A range query by level, aligned on its step (the minutes of kept hours fall
    // into its buckets), and one that is not (counted from the rows): both the
    // brute-force count, and each the same run twice.
    let start = (now - Duration::hours(4))
        .duration_trunc(Duration::minutes(5))
        .unwrap();
    for start in [start, start + Duration::seconds(17)] {
        let range = |_: ()| {
            vec![
                (
                    "query",
                    r#"sum by (level) (count_over_time({app="a"} |= "error" [10m]))"#.to_owned(),
                ),
                ("start", ns(start)),
                ("end", ns(now)),
                ("step", "300".to_owned()),
            ]
        };
        let (status, v) = get(&app, "/loki/api/v1/query_range", &range(()), &[]).await;
        assert_eq!(status, 200, "{v}");
        let mut want = BTreeMap::new();
        let mut t = start;
        while t <= now {
            for (code, name) in LEVELS {
                let n = recs
                    .iter()
                    .filter(|r| {
                        r.severity == code
                            && r.ts > t - Duration::minutes(10)
                            && r.ts <= t
                            && r.message.contains("error")
                    })
                    .count();
                if n > 0 {
                    want.insert((t.timestamp(), name.to_owned()), n as f64);
                }
            }
            t += Duration::minutes(5);
        }
        assert_eq!(by_level(&v), want, "from {start}");
        let (_, twice) = get(&app, "/loki/api/v1/query_range", &range(()), &[]).await;
        assert_eq!(twice["data"]["result"], v["data"]["result"]);
    }
    app.stop().await;
}

#[actix_web::test]
async fn with_no_cache_every_run_counts_the_rows() {
    let app = spawn_app_with(|c| c.query.cache_mib = 0).await;
    let now = Utc::now().trunc_subsecs(6);
    let recs: Vec<Rec> = (0..300)
        .map(|i| Rec {
            ts: now - Duration::seconds(i * 40),
            severity: 3,
            message: format!("error {i}"),
        })
        .collect();
    send(&app, &recs).await;
    for _ in 0..2 {
        assert_eq!(value(&instant(&app, now).await), 270.0);
    }
    assert_eq!(hours(&app, "hit") + hours(&app, "miss"), 0.0);
    app.stop().await;
}
