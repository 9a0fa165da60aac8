//! Retention: days leave whole, by age or by size, never today's or the newest
//! `min_days`; what is kept beside the rows goes with them; and ingest and
//! queries running while a partition is dropped are not broken.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use chute::config::Config;
use serde_json::{json, Value};

use crate::helpers::*;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Noon of the day `ago` days before today, RFC 3339.
fn noon(ago: i64) -> String {
    (today() - chrono::Duration::days(ago))
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339()
}

/// `n` records on the day `ago` days back, of app `d<ago>`.
fn day_records(ago: i64, n: usize, pad: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"message": format!("d{ago} {i} {}", "x".repeat(pad)), "ts": noon(ago), "app": format!("d{ago}")})
        })
        .collect()
}

/// Stores `records` through a chute without retention, then stops it.
async fn load(config: &Config, records: Vec<Value>) {
    let app = spawn_config(config.clone()).await;
    for chunk in records.chunks(2000) {
        let a = app.post_json(&json!(chunk)).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    app.settle().await;
    app.stop().await;
}

async fn rows_of(app: &TestApp, ago: i64) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) FROM chute.logs WHERE app = 'd{ago}'"
    ))
    .await
}

async fn partition_exists(app: &TestApp, ago: i64) -> bool {
    let name = format!(
        "chute.logs_{}",
        (today() - chrono::Duration::days(ago)).format("%Y%m%d")
    );
    app.scalar(&format!(
        "SELECT (to_regclass('{name}') IS NOT NULL)::int::bigint"
    ))
    .await
        == 1
}

/// Waits until `name{labels}` reaches `want`.
async fn wait_metric(app: &TestApp, name: &str, labels: &[&str], want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metric(name, labels) < want {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} = {}, expected {want}",
            app.metric(name, labels)
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn age_drops_exactly_the_expired_days_with_their_blocks_counts_and_labels() {
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    config.storage.partition_days_behind = 12;
    let mut records: Vec<Value> = [0, 1, 3, 5, 6, 10]
        .into_iter()
        .flat_map(|ago| day_records(ago, 10, 0))
        .collect();
    records.push(json!({"message": "ancient", "ts": "2001-09-09T01:46:40Z", "app": "old"}));
    load(&config, records).await;

    config.retention.max_age_days = 5;
    config.retention.check_interval_s = 1;
    let app = spawn_config(config).await;
    // Days 12 to 6 back had partitions (6 and 10 with rows); 5 and newer stay.
    wait_metric(
        &app,
        "chute_retention_dropped_days_total",
        &["reason=\"age\""],
        7.0,
    )
    .await;
    for ago in [0, 1, 3, 5] {
        assert_eq!(rows_of(&app, ago).await, 10, "day -{ago} is kept");
        assert!(partition_exists(&app, ago).await);
    }
    for ago in [6, 10] {
        assert_eq!(rows_of(&app, ago).await, 0, "day -{ago} is gone");
        assert!(!partition_exists(&app, ago).await);
    }
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE app = 'old'")
            .await,
        0,
        "the default partition's expired rows are deleted"
    );
    // What is kept beside the rows went with them, and only that.
    let cutoff = format!(
        "'{}'::timestamptz",
        noon(5).replace("T12:00:00", "T00:00:00")
    );
    for (sql, kept) in [
        (format!("SELECT coalesce(sum(lines), 0)::bigint FROM chute.line_blooms WHERE first_ts < {cutoff}"), 0),
        (format!("SELECT coalesce(sum(lines), 0)::bigint FROM chute.line_blooms WHERE first_ts >= {cutoff}"), 40),
        (format!("SELECT coalesce(sum(lines), 0)::bigint FROM chute.minute_counts WHERE minute <= {cutoff}"), 0),
        (format!("SELECT coalesce(sum(lines), 0)::bigint FROM chute.minute_counts WHERE minute > {cutoff}"), 40),
        ("SELECT count(*) FROM chute.label_values WHERE label = 'app' AND value IN ('d6', 'd10', 'old')".to_owned(), 0),
        ("SELECT count(*) FROM chute.label_values WHERE label = 'app' AND value IN ('d0', 'd1', 'd3', 'd5')".to_owned(), 4),
    ] {
        assert_eq!(app.scalar(&sql).await, kept, "{sql}");
    }
    let dropped = |table: &str| {
        app.metric(
            "chute_retention_dropped_rows_total",
            &[&format!("table=\"{table}\"")],
        )
    };
    assert_eq!((dropped("logs"), dropped("logs_default")), (20.0, 1.0));
    assert!(app.metric("chute_retention_dropped_bytes_total", &[]) > 0.0);
    app.stop().await;
}

#[actix_web::test]
async fn size_drops_the_oldest_days_first_but_never_the_newest_min_days() {
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    config.storage.partition_days_behind = 4;
    // Today and yesterday alone hold more than 1 MiB.
    let records: Vec<Value> = [(0, 6000), (1, 6000), (2, 500), (3, 500)]
        .into_iter()
        .flat_map(|(ago, n)| day_records(ago, n, 150))
        .collect();
    load(&config, records).await;

    config.retention.max_mib = 1;
    config.retention.check_interval_s = 1;
    let app = spawn_config(config).await;
    wait_metric(
        &app,
        "chute_retention_dropped_days_total",
        &["reason=\"size\""],
        3.0,
    )
    .await;
    assert_eq!(
        (rows_of(&app, 0).await, rows_of(&app, 1).await),
        (6000, 6000)
    );
    assert_eq!((rows_of(&app, 2).await, rows_of(&app, 3).await), (0, 0));
    // Still over the limit: the newest days are kept, and the gauges say so.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.metric("chute_retention_dropped_days_total", &["reason=\"size\""]),
        3.0
    );
    let (held, limit) = (
        app.metric("chute_storage_bytes", &["table=\"logs\""]),
        app.metric("chute_storage_limit_bytes", &[]),
    );
    assert_eq!(limit, f64::from(1 << 20));
    assert!(held > limit, "{held} > {limit}");
    app.stop().await;
}

#[actix_web::test]
async fn ingest_and_queries_go_on_while_days_are_dropped() {
    use nix::sys::signal::Signal;
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let data = dir.path().join("data");
    let storage = "[storage]\npartition_days_behind = 12\n";
    let config = write_config(dir.path(), &data, &dsn, storage);
    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let base = daemon.base();
    let client = awc::Client::default();
    // Old days to drop.
    for ago in [6, 8, 10] {
        let r = client
            .post(format!("{base}/api/v1/logs"))
            .send_json(&json!(day_records(ago, 500, 0)))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let load = Load::start(base.clone(), 4, 50);
    let queries = {
        let base = base.clone();
        actix_web::rt::spawn(async move {
            let client = awc::Client::default();
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut answers = Vec::new();
            while Instant::now() < deadline {
                for query in [
                    "{host=~\"h1.*\"}",
                    "sum(count_over_time({host=~\".+\"}[1m]))",
                ] {
                    let now = Utc::now();
                    let ns =
                        |t: chrono::DateTime<Utc>| t.timestamp_nanos_opt().unwrap().to_string();
                    let params = form_urlencoded::Serializer::new(String::new())
                        .append_pair("query", query)
                        .append_pair("start", &ns(now - chrono::Duration::hours(1)))
                        .append_pair("end", &ns(now))
                        .append_pair("limit", "100")
                        .finish();
                    let r = client
                        .get(format!("{base}/loki/api/v1/query_range?{params}"))
                        .send()
                        .await;
                    answers.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
                }
            }
            answers
        })
    };
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    // Retention on, mid-load: the days 6 to 12 back go.
    let retention = "[retention]\nmax_age_days = 5\ncheck_interval_s = 1\n";
    write_config(dir.path(), &data, &dsn, &format!("{storage}{retention}"));
    daemon.signal(Signal::SIGHUP);
    let metric = |name: &'static str, label: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut r = client.get(format!("{base}/metrics")).send().await.unwrap();
            let text = String::from_utf8_lossy(&r.body().await.unwrap()).into_owned();
            metric_in(&text, name, &[label])
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("chute_retention_dropped_days_total", "reason=\"age\"").await < 7.0 {
        assert!(Instant::now() < deadline, "the days were not dropped");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let answers = queries.await.unwrap();
    let acked = load.finish().await;
    settle(&base).await;
    assert!(!acked.is_empty());
    assert_exactly_once(&dsn, &acked).await;
    assert!(
        answers.iter().all(|s| *s == 200),
        "every query answered: {answers:?}"
    );
    let db = connect(&dsn).await;
    let old: i64 = db
        .query_one(
            "SELECT count(*) FROM chute.logs WHERE app IN ('d6', 'd8', 'd10')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0);
    eprintln!(
        "{} records acknowledged and {} queries answered while days were dropped; {} drops waited past the lock timeout",
        acked.len(),
        answers.len(),
        metric("chute_retention_failures_total", "reason=\"lock_timeout\"").await
    );
}

#[actix_web::test]
async fn old_quarantine_files_go_with_their_notes_and_dead_letters_stay() {
    let data = data_dir();
    let quarantine = data.join("queues").join("shard-0").join("quarantine");
    let dead = data.join("deadletter").join("node-b");
    let old = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    for (dir, name) in [
        (&quarantine, "00000000000000000001.seg.0-100.bad"),
        (&quarantine, "00000000000000000001.seg.0-100.txt"),
        (&quarantine, "00000000000000000009.seg.5-9.bad"),
        (&dead, "00000000000000000004.dead"),
    ] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), b"bytes").unwrap();
        if !name.starts_with("00000000000000000009") {
            std::fs::File::options()
                .write(true)
                .open(dir.join(name))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    config.node.data_dir = data.clone();
    config.retention.check_interval_s = 1;
    let app = spawn_config(config).await;
    wait_metric(
        &app,
        "chute_retention_removed_files_total",
        &["kind=\"quarantine\"", "reason=\"age\""],
        1.0,
    )
    .await;
    let mut left: Vec<String> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["00000000000000000009.seg.5-9.bad"]);
    assert!(
        dead.join("00000000000000000004.dead").exists(),
        "dead letters stay unless deadletter_max_age_days is set"
    );
    app.stop().await;
}

#[actix_web::test]
async fn in_a_cluster_each_owner_applies_retention_to_its_own_shards() {
    use crate::cluster::{TestCluster, IDS};
    let storage = "\n[storage]\npartition_days_behind = 12\n";
    let cluster = TestCluster::start([storage; 3]).await;
    let bases = cluster.bases();
    // Partitions of 12 days back exist on every shard before retention is on.
    let day = |ago: i64| {
        (today() - chrono::Duration::days(ago))
            .format("%Y%m%d")
            .to_string()
    };
    let older_than = |ago: i64| {
        format!(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'chute.logs'::regclass
               AND c.relname <> 'logs_default' AND c.relname < 'logs_{}'",
            day(ago)
        )
    };
    let count_on = |dsn: String, sql: String| async move {
        connect(&dsn)
            .await
            .query_one(&sql, &[])
            .await
            .map_or(-1, |r| r.get::<_, i64>(0))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for dsn in &cluster.dsns {
        while count_on(dsn.clone(), older_than(11)).await != 1 {
            assert!(Instant::now() < deadline, "no partitions behind on {dsn}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for i in 0..IDS.len() {
        cluster.reload_with(i, "[retention]\nmax_age_days = 5\ncheck_interval_s = 1\n");
    }
    // Every shard loses the days 12 to 6 back, at its owner.
    for dsn in &cluster.dsns {
        while count_on(dsn.clone(), older_than(5)).await != 0 {
            assert!(Instant::now() < deadline, "days left on {dsn}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let owners = cluster.owners();
    for (i, base) in bases.iter().enumerate() {
        let text = crate::cluster::get_text(&format!("{base}/metrics")).await;
        let owned = owners.iter().filter(|o| **o == i).count() as f64;
        assert_eq!(
            metric_in(&text, "chute_retention_dropped_days_total", &[]),
            7.0 * owned,
            "node {} owns {owned} shards",
            IDS[i]
        );
    }
}
