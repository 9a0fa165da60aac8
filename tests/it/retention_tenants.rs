//! Retention per tenant: days sub-partitioned by retention class, each class
//! emptied at its tenants' age by `TRUNCATE` of its own leaf, and records a
//! tenant wrote before it had a longer age kept that long.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use chute::config::Config;
use chute::sinks::postgres::schema;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::query::{get, ns};

fn day(ago: i64) -> NaiveDate {
    Utc::now().date_naive() - chrono::Duration::days(ago)
}

fn partition(ago: i64) -> String {
    schema::partition_name(day(ago))
}

/// `n` records of `tenant` at noon of the day `ago` days back, of app `d<ago>`.
async fn post_day(app: &TestApp, tenant: &str, ago: i64, n: usize) {
    let ts = day(ago)
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"message": format!("{tenant} d{ago} {i}"), "ts": ts, "app": format!("d{ago}")}))
        .collect();
    let a = app
        .post(
            json!(records).to_string(),
            &[
                ("content-type", "application/json"),
                ("x-chute-tenant", tenant),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

async fn rows(app: &TestApp, tenant: &str, ago: i64) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) FROM chute.logs WHERE tenant = '{tenant}' AND app = 'd{ago}'"
    ))
    .await
}

async fn exists(app: &TestApp, table: &str) -> bool {
    app.scalar(&format!(
        "SELECT (to_regclass('chute.{table}') IS NOT NULL)::int::bigint"
    ))
    .await
        == 1
}

fn with_tenants(config: &mut Config) {
    config.retention.max_age_days = 7;
    config.retention.tenants = [("debug".to_owned(), 3), ("audit".to_owned(), 0)].into();
}

#[actix_web::test]
async fn each_tenant_keeps_its_own_age_and_older_records_of_a_longer_age_stay() {
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    config.storage.partition_days_behind = 12;

    // Before any tenant had an age of its own: plain days, and on day 9 records
    // of `audit` (which will be kept for ever) and of `web` (7 days).
    let app = spawn_config(config.clone()).await;
    for tenant in ["web", "audit"] {
        post_day(&app, tenant, 9, 5).await;
    }
    app.settle().await;
    app.stop().await;
    // The empty plain days from 8 back to today go, to be made again with classes.
    let client = connect(&dsn).await;
    for ago in 0..=8 {
        client
            .batch_execute(&format!("DROP TABLE chute.{}", partition(ago)))
            .await
            .unwrap();
    }

    with_tenants(&mut config);
    let app = spawn_config(config.clone()).await;
    for ago in [0, 2, 5] {
        for tenant in ["web", "debug", "audit"] {
            post_day(&app, tenant, ago, 5).await;
        }
    }
    // Older than any prepared day: into chute.logs_default, where each tenant's
    // own age applies too.
    for tenant in ["web", "audit"] {
        post_day(&app, tenant, 20, 5).await;
    }
    app.settle().await;
    // Each day from 7 back is partitioned by class: debug (3 days) is class 1,
    // audit (for ever) class 2, every other tenant the default leaf.
    for (leaf, tenant) in [("0", "web"), ("1", "debug"), ("2", "audit")] {
        let n = app
            .scalar(&format!(
                "SELECT count(*) FROM chute.{}_{leaf} WHERE tenant = '{tenant}'",
                partition(2)
            ))
            .await;
        assert_eq!(n, 5, "{tenant} in leaf {leaf}");
    }
    assert_eq!(
        app.scalar(&format!("SELECT count(*) FROM chute.{}_0", partition(2)))
            .await,
        5,
        "the default leaf holds no class's rows"
    );
    app.stop().await;

    config.retention.check_interval_s = 1;
    let app = spawn_config(config).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows(&app, "debug", 5).await > 0 {
        assert!(Instant::now() < deadline, "retention did not run");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // debug: older than 3 days goes; web: older than 7; audit: never. Day 9 is
    // older than 7 days but holds audit's records from before: kept whole.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows(&app, "web", 20).await > 0 {
        assert!(Instant::now() < deadline, "web's old rows were not deleted");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    for (tenant, ago, want) in [
        ("audit", 20, 5),
        ("debug", 0, 5),
        ("debug", 2, 5),
        ("debug", 5, 0),
        ("web", 5, 5),
        ("web", 9, 5),
        ("audit", 5, 5),
        ("audit", 9, 5),
    ] {
        assert_eq!(rows(&app, tenant, ago).await, want, "{tenant} day -{ago}");
    }
    // Emptied, not dropped: a late record of debug for day 5 still has a home.
    assert!(exists(&app, &format!("{}_1", partition(5))).await);
    assert!(exists(&app, &partition(9)).await);
    // What is kept beside the rows went for debug's day 5 alone.
    let minute_counts = |tenant: &str| {
        format!(
            "SELECT coalesce(sum(lines), 0)::bigint FROM chute.minute_counts
             WHERE tenant = '{tenant}' AND minute > '{}' AND minute <= '{}'",
            day(5),
            day(4)
        )
    };
    assert_eq!(app.scalar(&minute_counts("debug")).await, 0);
    assert_eq!(app.scalar(&minute_counts("web")).await, 5);
    let labels = format!(
        "SELECT count(*) FROM chute.label_values WHERE day = '{}' AND tenant = $$%s$$ AND label = 'tenant'",
        day(5)
    );
    assert_eq!(app.scalar(&labels.replace("%s", "debug")).await, 0);
    assert_eq!(app.scalar(&labels.replace("%s", "audit")).await, 1);
    // What the default partition's deletion took beside the rows was web's, of
    // its own day only: audit's entries there, and day 9's, stay.
    let tenant_days = |tenant: &str, ago: i64| {
        format!(
            "SELECT count(*) FROM chute.label_values WHERE day = '{}' AND tenant = '{tenant}' AND label = 'tenant'",
            day(ago)
        )
    };
    assert_eq!(app.scalar(&tenant_days("web", 20)).await, 0);
    assert_eq!(app.scalar(&tenant_days("audit", 20)).await, 1);
    assert_eq!(app.scalar(&tenant_days("audit", 9)).await, 1);
    assert_eq!(
        app.metric(
            "chute_retention_dropped_rows_total",
            &["table=\"logs_default\""]
        ),
        5.0
    );
    assert_eq!(
        app.metric(
            "chute_retention_dropped_days_total",
            &["reason=\"tenant_age\""]
        ),
        1.0
    );
    assert_eq!(
        app.metric("chute_retention_dropped_rows_total", &["table=\"logs\""]),
        5.0
    );
    // The day's blocks hold every tenant's rows and stay; an empty block in
    // each hour tells the count cache that those hours changed.
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) FROM chute.line_blooms WHERE lines = 0
             AND first_ts > '{}' AND first_ts < '{}'",
            day(5),
            day(4)
        ))
        .await,
        24
    );
    let range = [
        (
            "query",
            "sum(count_over_time({app=\"d5\"} [1h]))".to_owned(),
        ),
        ("start", ns(day(5).and_hms_opt(0, 0, 0).unwrap().and_utc())),
        ("end", ns(day(4).and_hms_opt(0, 0, 0).unwrap().and_utc())),
        ("step", "3600".to_owned()),
    ];
    let (status, v) = get(
        &app,
        "/loki/api/v1/query_range",
        &range,
        &[("x-scope-orgid", "web|debug|audit")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let counted: f64 = v["data"]["result"][0]["values"]
        .as_array()
        .expect("one series")
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(counted, 10.0, "web and audit, not debug: {v}");
    // `GET /api/v1/storage` (and `chute storage`) shows each day's classes, and
    // the bytes of every leaf.
    let (status, body) = app.get("/api/v1/storage").await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let shard = &report["shards"][0];
    let day2 = shard["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == json!(day(2).to_string()))
        .expect("day -2");
    let tenants: Vec<&Value> = day2["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["tenants"])
        .collect();
    assert_eq!(
        tenants,
        [&json!(null), &json!(["debug"]), &json!(["audit"])]
    );
    let leaves = app
        .scalar(
            "SELECT sum(pg_total_relation_size(relid))::bigint
             FROM pg_partition_tree('chute.logs') WHERE isleaf",
        )
        .await;
    assert_eq!(shard["tables"]["logs"].as_i64(), Some(leaves));
    app.stop().await;
}

#[actix_web::test]
async fn new_classes_reach_empty_days_ahead_and_never_a_day_with_rows() {
    let dsn = fresh_database().await;
    let mut client = connect(&dsn).await;
    schema::migrate(&mut client).await.unwrap();
    let today = day(0);
    let a = vec![vec!["debug".to_owned()]];
    schema::ensure_partitions(&mut client, today, (0, 2), &a)
        .await
        .unwrap();
    let leaves = |ago: i64| {
        format!(
            "SELECT count(*) FROM pg_partition_tree('chute.{}') WHERE isleaf",
            partition(ago)
        )
    };
    let reader = connect(&dsn).await;
    let scalar = |sql: String| {
        let reader = &reader;
        async move { reader.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(scalar(leaves(-1)).await, 2);
    // A row tomorrow (day -1); day -2 stays empty.
    client
        .batch_execute(&format!(
            "INSERT INTO chute.logs (ts, received_at, tenant, message)
             VALUES ('{}T06:00:00Z', now(), 'web', 'early')",
            day(-1)
        ))
        .await
        .unwrap();
    let b = vec![
        vec!["debug".to_owned()],
        vec!["audit".to_owned(), "sec".to_owned()],
    ];
    let created = schema::ensure_partitions(&mut client, today, (0, 2), &b)
        .await
        .unwrap();
    assert_eq!(created, 1, "only the empty day ahead is made again");
    assert_eq!(scalar(leaves(-2)).await, 3);
    assert_eq!(
        scalar(leaves(-1)).await,
        2,
        "a day with rows keeps its leaves"
    );
    assert_eq!(scalar(leaves(0)).await, 2, "today keeps its leaves");
    assert_eq!(
        scalar("SELECT count(*) FROM chute.logs WHERE message = 'early'".into()).await,
        1
    );
    let listed: Vec<String> = client
        .query_one(
            "SELECT tenants FROM chute.partition_tenants WHERE partition = $1",
            &[&format!("{}_2", partition(-2))],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(listed, ["audit", "sec"]);
    // No classes: the next days ahead are plain again.
    schema::ensure_partitions(&mut client, today, (0, 2), &[])
        .await
        .unwrap();
    assert_eq!(scalar(leaves(-2)).await, 1);
    assert_eq!(
        scalar(format!(
            "SELECT count(*) FROM chute.partition_tenants WHERE day = '{}'",
            day(-2)
        ))
        .await,
        0
    );
}
