//! What reaches PostgreSQL: partitions, refused rows, backpressure, restarts.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_row_postgres_refuses_goes_to_chute_rejected_and_the_rest_commit() {
    let app = spawn_app().await;
    // An operator's constraint that chute's validation knows nothing about.
    app.db
        .batch_execute(
            "ALTER TABLE chute.logs ADD CONSTRAINT no_poison CHECK (message <> 'poison')",
        )
        .await
        .unwrap();
    let mut records: Vec<_> = (0..50)
        .map(|i| json!({"message": format!("ok {i}")}))
        .collect();
    records[17] = json!({"message": "poison", "host": "bad-host"});
    let a = app.post_json(&json!(records)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(app.stored().await, 49);
    app.settle().await;
    let row = app
        .db
        .query_one("SELECT shard, sqlstate, error, record->>'message', record->>'host' FROM chute.rejected", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 0);
    assert_eq!(row.get::<_, String>(1), "23514");
    assert!(row.get::<_, String>(2).contains("no_poison"));
    assert_eq!(row.get::<_, String>(3), "poison");
    assert_eq!(row.get::<_, String>(4), "bad-host");
    assert_eq!(
        app.metric(
            "chute_rows_quarantined_total",
            &["reason=\"integrity_violation\""]
        ),
        1.0
    );
    assert_eq!(app.metric("chute_rows_written_total", &[]), 49.0);
    app.stop().await;
}

#[actix_web::test]
async fn records_land_in_their_day_partition_or_the_default_one() {
    let app = spawn_app().await;
    let today = chrono::Utc::now().format("%Y-%m-%dT12:00:00Z").to_string();
    let a = app
        .post_json(&json!([{"message": "today", "ts": today}, {"message": "ancient", "ts": "2001-09-09T01:46:40Z"}]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.settle().await;
    let part = |m: &'static str| {
        let db = &app.db;
        async move {
            db.query_one(
                &format!("SELECT tableoid::regclass::text FROM chute.logs WHERE message = '{m}'"),
                &[],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    let expected = format!("chute.logs_{}", chrono::Utc::now().format("%Y%m%d"));
    assert_eq!(part("today").await, expected);
    assert_eq!(part("ancient").await, "chute.logs_default");
    // Partitions exist ahead of today.
    let ahead = app
        .scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'chute.logs'::regclass")
        .await;
    assert_eq!(
        ahead,
        1 + 1 + 1 + 3,
        "default + yesterday + today + 3 ahead"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_full_queue_answers_503_with_retry_after_and_loses_nothing_it_took() {
    let app = spawn_app_with(|c| {
        c.queue.segment_bytes = 1 << 20;
        c.queue.max_bytes = 1 << 20;
    })
    .await;
    // Hold a lock that stops every write, so the queue only fills.
    let locker = connect(&app.dsn).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE chute.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let pad = "x".repeat(200);
    let mut accepted = 0;
    let mut refused = None;
    for b in 0..100 {
        let batch: Vec<_> = (0..1000)
            .map(|i| json!({"message": format!("{b} {i} {pad}")}))
            .collect();
        let a = app.post_json(&json!(batch)).await;
        match a.status {
            200 => accepted += 1000,
            _ => {
                refused = Some(a);
                break;
            }
        }
    }
    let refused = refused.expect("the queue filled up");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert_eq!(refused.body["reason"], "backpressure");
    assert!(accepted > 0, "the queue took something before it was full");
    assert_eq!(
        app.metric("chute_records_rejected_total", &["reason=\"backpressure\""]),
        1000.0
    );

    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        app.stored().await,
        accepted,
        "everything acknowledged is stored once"
    );
    // Room again.
    assert_eq!(
        app.post_json(&json!([{"message": "after"}])).await.status,
        200
    );
    app.stop().await;
}

#[actix_web::test]
async fn data_survives_a_restart_of_chute() {
    let dsn = fresh_database().await;
    let config = test_config(&dsn);
    let app = spawn_config(config.clone()).await;
    let a = app.post_json(&json!([{"message": "before"}])).await;
    assert_eq!(a.status, 200);
    app.stop().await;

    let app = spawn_config(config).await;
    let a = app.post_json(&json!([{"message": "after"}])).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE message IN ('before', 'after')")
            .await,
        2
    );
    // Each migration ran once.
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.schema_migrations")
            .await,
        7
    );
    app.stop().await;
}

/// Today's entries of the per-day label index, as `label=value`.
async fn label_index(db: &tokio_postgres::Client) -> Vec<String> {
    let rows = db
        .query(
            "SELECT label || '=' || value FROM chute.label_values \
             WHERE day = (now() AT TIME ZONE 'UTC')::date ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

/// `chute.minute_counts`, as `minute app severity lines bytes` lines.
async fn minute_counts(db: &tokio_postgres::Client) -> Vec<String> {
    let rows = db
        .query(
            "SELECT minute::text || ' ' || coalesce(app, '-') || ' ' || coalesce(severity, -1) \
                    || ' ' || sum(lines) || ' ' || sum(bytes) \
             FROM chute.minute_counts GROUP BY minute, app, severity ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

/// The per-day label index and the per-minute counts: kept by the writer for
/// what it writes, and filled by their migrations from rows stored before them.
#[actix_web::test]
async fn the_label_index_and_minute_counts_hold_what_was_written_and_was_there_before() {
    let app = spawn_app().await;
    let a = app
        .post_json(&json!([
            {"message": "a", "host": "web-1", "app": "api", "severity": 3},
            {"message": "b", "host": "web-2", "app": "api", "msgid": "ID7", "facility": 4},
        ]))
        .await;
    assert_eq!(a.status, 200);
    settle(&app.base).await;
    let want = [
        "app=api",
        "facility=4",
        "host=web-1",
        "host=web-2",
        "msgid=ID7",
        "severity=3",
        "tenant=default",
    ];
    assert_eq!(label_index(&app.db).await, want);
    let counts = minute_counts(&app.db).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts[0].ends_with(" 1 1") && counts[1].ends_with(" 1 1"),
        "{counts:?}"
    );
    let dsn = app.dsn.clone();
    app.stop().await;

    // As if the rows predated the index: the migration fills it from them.
    let db = connect(&dsn).await;
    db.batch_execute(
        "DROP TABLE chute.label_values, chute.minute_counts; \
         DELETE FROM chute.schema_migrations WHERE version IN (3, 4);",
    )
    .await
    .unwrap();
    let mut client = deadpool_postgres::Config {
        url: Some(dsn),
        ..Default::default()
    }
    .create_pool(None, tokio_postgres::NoTls)
    .unwrap()
    .get()
    .await
    .unwrap();
    chute::sinks::postgres::schema::migrate(&mut client)
        .await
        .unwrap();
    assert_eq!(label_index(&db).await, want);
    assert_eq!(minute_counts(&db).await, counts);
}

#[actix_web::test]
async fn a_postgres_restart_during_ingest_loses_nothing_acknowledged() {
    // This test restarts PostgreSQL, so it gets a cluster of its own.
    let dir = temp_dir();
    let pg = std::sync::Arc::new(start_postgres(&dir.path().join("pg")));
    let app = spawn_config(test_config(&pg.dsn("chute"))).await;

    let senders: Vec<_> = (0..4)
        .map(|s| {
            let http = app.http.clone();
            let url = format!("{}/api/v1/logs", app.base);
            actix_web::rt::spawn(async move {
                let mut acked = Vec::new();
                for b in 0..40 {
                    let ids: Vec<String> = (0..50).map(|i| format!("{s}-{b}-{i}")).collect();
                    let body = ids
                        .iter()
                        .map(|id| json!({"message": id}).to_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let r = http
                        .post(&url)
                        .content_type("application/x-ndjson")
                        .send_body(body)
                        .await;
                    if matches!(r, Ok(ref r) if r.status() == 200) {
                        acked.extend(ids);
                    }
                    actix_web::rt::time::sleep(Duration::from_millis(10)).await;
                }
                acked
            })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let restarting = pg.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .expect("restart");

    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert!(
        acked.len() >= 4 * 20 * 50,
        "most batches were acknowledged: {}",
        acked.len()
    );
    app.settle().await;
    // Nothing acknowledged lost, and the retries after the restart stored nothing twice.
    assert_exactly_once(&pg.dsn("chute"), &acked).await;
    assert!(
        app.metric("chute_write_retries_total", &[]) >= 1.0,
        "the restart was noticed"
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_embedded_default_runs_its_own_postgres_and_keeps_data_across_restarts() {
    let dir = temp_dir();
    let config = || {
        let mut c = chute::config::Config::default();
        c.http.listen = "127.0.0.1:0".parse().unwrap();
        c.node.data_dir = dir.path().join("data");
        c.writer.flush_interval_ms = 20;
        c.syslog.listeners = Some(Vec::new());
        c
    };
    let app = spawn_config(config()).await;
    assert!(dir.path().join("data/pg/PG_VERSION").exists());
    let a = app.post_json(&json!([{"message": "kept"}])).await;
    assert_eq!(a.status, 200);
    app.stop().await;

    let app = spawn_config(config()).await;
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE message = 'kept'")
            .await,
        1
    );
    app.stop().await;
}

/// A host name whose stream maps to `shard` of `n`.
fn host_for(shard: usize, n: usize) -> String {
    (0..)
        .map(|i| format!("host-{i}"))
        .find(|h| {
            let r = chute::record::Record {
                ts: chrono::Utc::now(),
                received_at: chrono::Utc::now(),
                tenant: "default".into(),
                host: Some(h.clone()),
                app: None,
                procid: None,
                msgid: None,
                severity: None,
                facility: None,
                message: String::new(),
                fields: Default::default(),
                sd: None,
            };
            chute::actors::router::shard_index(&r, n, chute::config::ShardKey::Stream) == shard
        })
        .unwrap()
}

#[actix_web::test]
async fn a_stalled_shard_does_not_hold_up_the_others() {
    let (a, b) = (fresh_database().await, fresh_database().await);
    let mut config = test_config(&a);
    config.shards.push(chute::config::ShardConfig {
        id: 1,
        owner: None,
        dsn: chute::config::Secret::new(b.clone()),
        pool_size: 2,
        password_file: None,
        password_env: None,
    });
    let app = spawn_config(config).await;
    let (h0, h1) = (host_for(0, 2), host_for(1, 2));
    let db_b = connect(&b).await;
    db_b.batch_execute("BEGIN; LOCK TABLE chute.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    // Durable in shard 1's queue, so acknowledged although shard 1 cannot write.
    let a = app
        .post_json(&json!([{"host": h1, "message": "waits"}]))
        .await;
    assert_eq!(a.status, 200);
    for i in 0..5 {
        let a = app
            .post_json(&json!([{"host": h0, "message": format!("flows {i}")}]))
            .await;
        assert_eq!(a.status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let flowed: i64 = app
            .db
            .query_one(
                "SELECT count(*) FROM chute.logs WHERE message LIKE 'flows%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if flowed == 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shard 0 was held up by shard 1"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.metric("chute_queue_entries", &["destination=\"shard-1\""]),
        1.0
    );

    db_b.batch_execute("COMMIT").await.unwrap();
    app.settle().await;
    let count: i64 = db_b
        .query_one(
            "SELECT count(*) FROM chute.logs WHERE message = 'waits'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
    app.stop().await;
}

#[actix_web::test]
async fn records_are_acknowledged_from_the_queue_while_postgres_cannot_write_and_stored_later() {
    let app = spawn_app().await;
    let locker = connect(&app.dsn).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE chute.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let a = app.post_json(&json!([{"message": "queued"}])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(app.metric("chute_queue_entries", &[]), 1.0);
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        app.stored().await,
        1,
        "the queued records are written once the lock is gone"
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_storage_gauges_match_what_postgres_reports() {
    use chute::sinks::postgres::storage::TABLES;
    let dsn = fresh_database().await;
    let config = test_config(&dsn);
    let app = spawn_config(config.clone()).await;
    let today = chrono::Utc::now().format("%Y-%m-%dT12:00:00Z").to_string();
    let records: Vec<_> = (0..300)
        .map(|i| json!({"message": format!("m {i}"), "ts": today}))
        .chain([json!({"message": "ancient", "ts": "2001-09-09T01:46:40Z"})])
        .collect();
    assert_eq!(app.post_json(&json!(records)).await.status, 200);
    app.settle().await;
    // Vacuumed now, so no autovacuum changes a size while the test compares.
    app.db.batch_execute("VACUUM ANALYZE").await.unwrap();
    app.stop().await;
    // A writer measures when it starts (and every minute).
    let app = spawn_config(config).await;
    let gauge = |name: &str, labels: &[&str]| app.metric(name, labels) as i64;
    for table in TABLES {
        let sql = if *table == "logs" {
            "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits
             WHERE inhparent = 'chute.logs'::regclass"
                .to_owned()
        } else {
            format!("SELECT pg_total_relation_size('chute.{table}')")
        };
        let expected = app.scalar(&sql).await;
        assert!(expected > 0, "{table}");
        assert_eq!(
            gauge("chute_storage_bytes", &[&format!("table=\"{table}\"")]),
            expected,
            "{table}"
        );
    }
    assert_eq!(
        gauge("chute_storage_partitions", &[]),
        5,
        "yesterday, today, 3 ahead"
    );
    assert_eq!(
        gauge("chute_storage_oldest_record_timestamp_seconds", &[]),
        1_000_000_000
    );
    app.stop().await;
}

#[actix_web::test]
async fn chute_storage_shows_each_shard_its_days_rows_and_bytes() {
    let app = spawn_app().await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%dT12:00:00Z")
        .to_string();
    let records: Vec<_> = (0..40)
        .map(|i| json!({"message": format!("m {i}"), "ts": if i < 10 { yesterday.clone() } else { chrono::Utc::now().to_rfc3339() }}))
        .collect();
    assert_eq!(app.post_json(&json!(records)).await.status, 200);
    app.settle().await;
    // Estimates are PostgreSQL's, from its last ANALYZE.
    app.db.batch_execute("ANALYZE chute.logs").await.unwrap();
    let run = |args: Vec<String>| async move {
        let out = actix_web::rt::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
                .args(&args)
                .env_remove("CHUTE_CONFIG")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let args = |extra: &[&str]| {
        ["storage", "--url", &app.base]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let text = run(args(&["--days"])).await;
    let day = |ago: i64| {
        (chrono::Utc::now() - chrono::Duration::days(ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    let line_of = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {text}"))
            .to_owned()
    };
    // Shard 0: 5 day partitions (yesterday, today, 3 ahead), 40 rows.
    let shard: Vec<String> = line_of(" local ")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        (&shard[0][..], &shard[2][..], &shard[3][..]),
        ("0", "5", "40"),
        "{text}"
    );
    let day_line = |ago: i64| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&day(ago)))
            .unwrap_or_else(|| panic!("day -{ago} in {text}"))
            .to_owned()
    };
    assert!(day_line(1).contains(" 10 rows"), "{text}");
    assert!(day_line(0).contains(" 30 rows"), "{text}");
    // The JSON answer is the node's, with every table's bytes.
    let json: serde_json::Value =
        serde_json::from_str(run(args(&["--json"])).await.trim()).unwrap();
    let logs = json["shards"][0]["tables"]["logs"].as_i64().unwrap();
    let expected = app
        .scalar(
            "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits
             WHERE inhparent = 'chute.logs'::regclass",
        )
        .await;
    assert_eq!(logs, expected);
    app.stop().await;
}

#[actix_web::test]
async fn a_closed_days_index_is_rebuilt_packed_once_and_todays_is_left_alone() {
    use chute::sinks::postgres::schema;
    let dsn = fresh_database().await;
    let mut client = connect(&dsn).await;
    schema::migrate(&mut client).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    schema::ensure_partitions(&mut client, today, (1, 0), &[])
        .await
        .unwrap();
    // As ingest writes them: in time order, every host at once.
    for ago in [1, 0] {
        client
            .batch_execute(&format!(
                "INSERT INTO chute.logs (ts, received_at, tenant, host, message)
                 SELECT '{} 00:00:00+00'::timestamptz + i * interval '100 ms', now(), 'default',
                        'host-' || (i % 200), 'm'
                 FROM generate_series(1, 100000) i",
                today - chrono::Duration::days(ago)
            ))
            .await
            .unwrap();
    }
    let mut compacted = Vec::new();
    schema::compact_closed_days(&client, today, Duration::from_secs(60), &mut compacted)
        .await
        .unwrap();
    let yesterday = schema::partition_name(today - chrono::Duration::days(1));
    assert_eq!(compacted.len(), 1, "{compacted:?}");
    let c = &compacted[0];
    assert_eq!(c.partition, yesterday);
    assert!(
        (c.after as f64) < 0.75 * c.before as f64,
        "{} -> {} bytes",
        c.before,
        c.after
    );
    // Rebuilt in place: still the leaf's index, still a partition of the parent's.
    let attached: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_partition_tree('chute.logs_host_ts') WHERE isleaf",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attached, 3, "yesterday, today and the default partition");
    let host_rows: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM chute.{yesterday} WHERE host = 'host-7'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(host_rows, 500);
    // Once only; today (still open) never.
    let mut again = Vec::new();
    schema::compact_closed_days(&client, today, Duration::from_secs(60), &mut again)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let listed: Vec<String> = client
        .query("SELECT partition FROM chute.compacted", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listed, [yesterday]);
}
