//! String searches narrowed by the trigram blooms kept beside the rows: a search
//! for a rare string reads only the blocks that may hold it (counted in
//! `chute_query_blocks_total`) and still finds every line a brute-force filter
//! finds, substrings of longer words, late records and rows stored before blooms
//! were kept included; a common word reads the window as it is.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::json;

use crate::helpers::*;
use crate::query::{get, lines_of, ns};

const WORDS: [&str; 12] = [
    "GET", "POST", "user", "login", "cache", "miss", "took", "ms", "upstream", "ok", "sent",
    "bytes",
];

/// `(ts, message)` of the test's records, in time order: 3000 over the last hour,
/// five holding the needle (one inside a longer word, one in a message too long
/// to be bloomed).
fn records(now: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..3000)
        .map(|i| {
            let ts = now - Duration::milliseconds(3_600_000 - i * 1_200);
            let mut words: Vec<String> = (0..rng.usize(6..20))
                .map(|_| WORDS[rng.usize(..WORDS.len())].to_owned())
                .collect();
            words.push(format!("id={}", rng.u32(..)));
            match i {
                333 | 1333 | 2333 => words.insert(3, "zq7needle".into()),
                2900 => words.insert(2, "xxzq7needleyy".into()),
                1700 => words.insert(0, "long ".repeat(2000) + "zq7needle"),
                _ => {}
            }
            (ts, words.join(" "))
        })
        .collect()
}

async fn send(app: &TestApp, recs: &[(DateTime<Utc>, String)]) {
    app.send_ndjson(
        recs.iter()
            .map(|(ts, m)| json!({"ts": ts.to_rfc3339(), "app": "a", "message": m})),
    )
    .await;
}

/// The lines of `|= "needle"` over the last two hours, newest first.
async fn search(app: &TestApp, now: DateTime<Utc>, needle: &str) -> Vec<(i64, String)> {
    search_from(app, now - Duration::hours(2), now, needle).await
}

async fn search_from(
    app: &TestApp,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    needle: &str,
) -> Vec<(i64, String)> {
    let (status, v) = get(
        app,
        "/loki/api/v1/query_range",
        &[
            ("query", format!(r#"{{app="a"}} |= "{needle}""#)),
            ("start", ns(from)),
            ("end", ns(now + Duration::seconds(5))),
            ("limit", "5000".into()),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    lines_of(&v)
}

fn brute(recs: &[(DateTime<Utc>, String)], needle: &str) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = recs
        .iter()
        .filter(|(_, m)| m.contains(needle))
        .map(|(ts, m)| (ts.timestamp_nanos_opt().unwrap(), m.clone()))
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

fn blocks(app: &TestApp, result: &str) -> f64 {
    app.metric(
        "chute_query_blocks_total",
        &[&format!("result=\"{result}\"")],
    )
}

#[actix_web::test]
async fn rare_strings_read_only_the_blocks_that_may_hold_them_and_miss_nothing() {
    let dsn = fresh_database().await;
    let config = test_config(&dsn);
    let app = spawn_config(config.clone()).await;
    let now = Utc::now().trunc_subsecs(6);
    let mut recs = records(now);
    // Six writes in time order, then a late record for 45 minutes ago.
    for part in recs.chunks(500) {
        send(&app, part).await;
    }
    let late = (
        now - Duration::minutes(45),
        "late GET zq7needle ok".to_owned(),
    );
    send(&app, std::slice::from_ref(&late)).await;
    recs.push(late);
    assert_eq!(
        app.scalar("SELECT sum(lines)::int8 FROM chute.line_blooms")
            .await,
        recs.len() as i64,
        "every row is in one block"
    );

    let want = brute(&recs, "zq7needle");
    assert_eq!(want.len(), 6);
    assert_eq!(search(&app, now, "zq7needle").await, want);
    let (read, skipped) = (blocks(&app, "read"), blocks(&app, "skipped"));
    assert!(
        (4.0..=8.0).contains(&read),
        "the needle's blocks are read: {read}"
    );
    assert!(skipped >= 40.0, "the other blocks are skipped: {skipped}");

    // A metric query over the same rows is narrowed too, and counts the same.
    let (status, v) = get(
        &app,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum(count_over_time({app="a"} |= "zq7needle" [2h]))"#.into(),
            ),
            ("time", ns(now + Duration::seconds(1))),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "6", "{v}");
    assert!(blocks(&app, "skipped") >= 2.0 * skipped, "narrowed again");

    // A word in most lines: read as it is (narrowing would not pay), all found.
    let before = (blocks(&app, "read"), blocks(&app, "skipped"));
    assert_eq!(search(&app, now, "id=").await, brute(&recs, "id="));
    assert_eq!((blocks(&app, "read"), blocks(&app, "skipped")), before);
    // Absent: every block skipped but the long message's (it has no bloom).
    assert!(search(&app, now, "qqqnothere").await.is_empty());
    assert_eq!(blocks(&app, "read"), before.0 + 1.0);
    app.stop().await;

    // Rows stored before blooms were kept: the migration gives them blocks that
    // every search reads, so a narrowed search still finds them.
    let db = connect(&dsn).await;
    db.batch_execute(
        "DROP TABLE chute.line_blooms; DELETE FROM chute.schema_migrations WHERE version = 5;",
    )
    .await
    .unwrap();
    let app = spawn_config(config).await;
    // Over the last 10 minutes, 500 old rows (one with the needle) and 2000 new.
    let more: Vec<_> = (1..=2000)
        .map(|i| (now + Duration::milliseconds(i), format!("after {i}")))
        .collect();
    send(&app, &more).await;
    let from = now - Duration::minutes(10);
    let want: Vec<_> = want
        .into_iter()
        .filter(|(ts, _)| *ts >= from.timestamp_nanos_opt().unwrap())
        .collect();
    assert_eq!(want.len(), 1);
    assert_eq!(search_from(&app, from, now, "zq7needle").await, want);
    let skipped = blocks(&app, "skipped");
    assert!(skipped >= 1.0, "the new blocks are skipped: {skipped}");
    assert_eq!(
        app.scalar("SELECT sum(lines)::int8 FROM chute.line_blooms WHERE bloom IS NULL")
            .await,
        3001
    );
    app.stop().await;
}

/// Every `|=` a Grafana user types goes through the same narrowing: a property
/// check over random substrings of the stored lines.
#[actix_web::test]
async fn random_substrings_find_what_brute_force_finds() {
    let app = spawn_app().await;
    let now = Utc::now().trunc_subsecs(6);
    let recs = records(now);
    for part in recs.chunks(750) {
        send(&app, part).await;
    }
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..25 {
        let (_, m) = &recs[rng.usize(..recs.len())];
        let len = rng.usize(3..12).min(m.len());
        let at = rng.usize(..=m.len() - len);
        let Some(needle) = m.get(at..at + len) else {
            continue;
        };
        if needle.contains(['"', '\\']) {
            continue;
        }
        let (got, want) = (search(&app, now, needle).await, brute(&recs, needle));
        assert!(
            got == want,
            "{needle:?}: {} lines, brute force {}",
            got.len(),
            want.len()
        );
    }
    app.stop().await;
}
