//! The soak of the hardening issue: HTTP and TCP syslog together at twice the rate
//! chute sustains on this machine, with the hostile mix running, and the shard's
//! PostgreSQL restarted twice. Every acknowledged HTTP record and every syslog
//! record written to a socket is stored exactly once; memory stays bounded;
//! overload is answered with 503/429 and paused reads, never with growth.
//!
//! `SOAK_SECS` sets the length (30 s by default; BENCHMARKS.md has a 600 s run).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::helpers::*;
use crate::hostile_mix::{sample_peak_rss, start_chute, start_hostile};

/// Records per HTTP request.
const BATCH: usize = 500;
/// HTTP senders, each with one request at a time: enough that the rate offered
/// holds while answers slow down.
const HTTP_SENDERS: usize = 64;
/// Syslog connections.
const CONNECTIONS: usize = 16;

/// What one kind of sender did.
#[derive(Default)]
struct Tally {
    /// HTTP: batches answered 200, by sender, as (sender, batch number).
    acked: Mutex<Vec<(i32, i32)>>,
    /// Syslog: records written to the socket, by connection.
    written: Mutex<Vec<i64>>,
    refused_503: AtomicU64,
    refused_429: AtomicU64,
    refused_other: AtomicU64,
    unanswered: AtomicU64,
}

/// What chute commits per second here under saturating HTTP load: rows that
/// reached PostgreSQL over `secs`, after a second of warm-up.
async fn sustainable_rate(base: &str, dsn: &str, secs: u64) -> f64 {
    let load = Load::start(base.to_owned(), HTTP_SENDERS, BATCH);
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let before = count_rows(dsn).await;
    actix_web::rt::time::sleep(Duration::from_secs(secs)).await;
    let after = count_rows(dsn).await;
    load.finish().await;
    (after - before) as f64 / secs as f64
}

/// HTTP senders offering `rate` records/s between them until `stop`, each sending
/// a batch of [`BATCH`] records on its own schedule, whatever the answers.
fn http_senders(
    base: &str,
    rate: f64,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let every = Duration::from_secs_f64(HTTP_SENDERS as f64 * BATCH as f64 / rate);
    (0..HTTP_SENDERS)
        .map(|s| {
            let (base, stop, tally) = (base.to_owned(), stop.clone(), tally.clone());
            actix_web::rt::spawn(async move {
                let http = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
                let mut n = 0;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let body: String = (0..BATCH)
                        .map(|i| {
                            format!(
                                "{{\"message\":\"so-{s}-{n}-{i}\",\"host\":\"h{}\",\"app\":\"soak\"}}\n",
                                (s * 31 + i) % 200
                            )
                        })
                        .collect();
                    let answer = http
                        .post(format!("{base}/api/v1/logs"))
                        .content_type("application/x-ndjson")
                        .send_body(body)
                        .await;
                    match answer.map(|r| r.status().as_u16()) {
                        Ok(200) => tally.acked.lock().unwrap().push((s as i32, n)),
                        Ok(503) => _ = tally.refused_503.fetch_add(1, Ordering::Relaxed),
                        Ok(429) => _ = tally.refused_429.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => _ = tally.refused_other.fetch_add(1, Ordering::Relaxed),
                        Err(_) => _ = tally.unanswered.fetch_add(1, Ordering::Relaxed),
                    }
                    n += 1;
                    next += every;
                    let now = Instant::now();
                    if next > now {
                        actix_web::rt::time::sleep(next - now).await;
                    } else {
                        next = now;
                    }
                }
            })
        })
        .collect()
}

/// Syslog connections offering `rate` records/s between them until `stop`, in
/// bursts every 100 ms; a paused read holds the writer back (TCP backpressure).
fn syslog_senders(
    addr: &str,
    rate: f64,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    tally.written.lock().unwrap().resize(CONNECTIONS, 0);
    let per_burst = ((rate / CONNECTIONS as f64) / 10.0).ceil().max(1.0) as usize;
    (0..CONNECTIONS)
        .map(|c| {
            let (addr, stop, tally) = (addr.to_owned(), stop.clone(), tally.clone());
            actix_web::rt::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(&addr)
                    .await
                    .expect("syslog connects");
                let mut n: i64 = 0;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let mut burst = Vec::with_capacity(per_burst * 100);
                    for k in 0..per_burst as i64 {
                        let msg = format!(
                            "<14>1 2026-12-02T00:00:00Z sl{c} soak - - - sl-{c}-{}",
                            n + k
                        );
                        burst.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
                    }
                    if s.write_all(&burst).await.is_err() {
                        return;
                    }
                    n += per_burst as i64;
                    tally.written.lock().unwrap()[c] = n;
                    next += Duration::from_millis(100);
                    let now = Instant::now();
                    if next > now {
                        actix_web::rt::time::sleep(next - now).await;
                    } else {
                        next = now;
                    }
                }
                let _ = s.shutdown().await;
            })
        })
        .collect()
}

#[actix_web::test]
async fn a_soak_at_twice_the_sustainable_rate_with_hostile_traffic_and_postgres_restarts_loses_and_duplicates_nothing(
) {
    let _machine = crate::MACHINE.lock().await;
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = temp_dir();
    // A PostgreSQL of its own, to restart.
    let pg = Arc::new(start_postgres(&dir.path().join("pg")));
    pg.create_database("soak").await.expect("create database");
    let dsn = pg.dsn("soak");
    // A 16 MiB queue: on two cores chute's intake is bound by CPU before its
    // writer is, so a queue this small is what PostgreSQL's restarts fill, and the
    // soak meets the backpressure it is here to see.
    let (daemon, base, syslog) = start_chute(
        dir.path(),
        &dsn,
        "[queue]\nmax_bytes = 16777216\nsegment_bytes = 4194304\n",
    );
    let rate = sustainable_rate(&base, &dsn, 5).await;
    settle(&base).await;
    let db = connect(&dsn).await;
    db.execute("TRUNCATE chute.logs", &[])
        .await
        .expect("truncate");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let hostile_answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = start_hostile(&base, &syslog, &stop, &hostile_answers);
    let (sampler, peak) = sample_peak_rss(daemon.child.id(), &stop);
    tasks.push(sampler);
    // Twice what chute takes: half of it over HTTP, half over syslog.
    let mut load = http_senders(&base, rate, &stop, &tally);
    load.extend(syslog_senders(&syslog, rate, &stop, &tally));
    let started = Instant::now();
    let mut restarts = 0;
    for third in 1..=2 {
        let at = Duration::from_secs(secs * third / 3);
        actix_web::rt::time::sleep(at.saturating_sub(started.elapsed())).await;
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.restart())
            .await
            .unwrap()
            .expect("PostgreSQL restarts");
        restarts += 1;
    }
    actix_web::rt::time::sleep(Duration::from_secs(secs).saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.await;
    }
    for t in tasks {
        t.abort();
    }
    let peak_mib = peak.load(Ordering::Relaxed) / 1024;
    settle(&base).await;
    // Syslog records still in the socket buffers when the senders stopped are
    // read now; wait until the stored count stops growing.
    let mut stored = -1;
    loop {
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
        settle(&base).await;
        let now = count_rows(&dsn).await;
        if now == stored {
            break;
        }
        stored = now;
    }
    let metrics = {
        let mut r = awc::Client::default()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        String::from_utf8_lossy(&r.body().limit(16 << 20).await.unwrap()).into_owned()
    };
    let paused = metric_in(&metrics, "chute_syslog_paused_total", &[]);

    // Exactly once: per HTTP sender and batch, and per syslog connection.
    let db = connect(&dsn).await;
    let acked = std::mem::take(&mut *tally.acked.lock().unwrap());
    let (senders, batches): (Vec<i32>, Vec<i32>) = acked.iter().copied().unzip();
    let http = db
        .query_one(
            "WITH stored AS (
                 SELECT split_part(message, '-', 2)::int AS s, split_part(message, '-', 3)::int AS n,
                        count(*) AS rows, count(DISTINCT split_part(message, '-', 4)) AS distinct_rows
                 FROM chute.logs WHERE message LIKE 'so-%' GROUP BY 1, 2),
             acked AS (SELECT * FROM unnest($1::int[], $2::int[]) AS a(s, n))
             SELECT (SELECT count(*) FROM acked a LEFT JOIN stored USING (s, n)
                     WHERE coalesce(stored.distinct_rows, 0) < $3),
                    (SELECT coalesce(sum(rows - distinct_rows), 0)::bigint FROM stored),
                    (SELECT coalesce(sum(rows), 0)::bigint FROM stored)",
            &[&senders, &batches, &(BATCH as i64)],
        )
        .await
        .expect("HTTP check");
    let (lost_batches, http_dups, http_rows): (i64, i64, i64) =
        (http.get(0), http.get(1), http.get(2));
    let written = tally.written.lock().unwrap().clone();
    let mut syslog_lost = 0;
    let mut syslog_dups = 0;
    for row in db
        .query(
            "SELECT split_part(message, '-', 2)::int, count(*), count(DISTINCT message),
                    max(split_part(message, '-', 3)::bigint)
             FROM chute.logs WHERE message LIKE 'sl-%' GROUP BY 1",
            &[],
        )
        .await
        .expect("syslog check")
    {
        let (c, rows, distinct, _max): (i32, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        syslog_dups += rows - distinct;
        syslog_lost += (written[c as usize] - distinct).max(0);
    }
    let syslog_written: i64 = written.iter().sum();
    let stored_syslog: i64 = db
        .query_one(
            "SELECT count(DISTINCT message) FROM chute.logs WHERE message LIKE 'sl-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    syslog_lost = syslog_lost.max(syslog_written - stored_syslog);
    eprintln!(
        "soak {secs} s: sustainable {rate:.0} records/s, offered {:.0}/s (HTTP and syslog); \
         HTTP {} batches acked ({http_rows} rows stored), 503 {}, 429 {}, other {}, unanswered {}; \
         syslog {syslog_written} records written, {paused} paused reads; PostgreSQL restarted {restarts} times; \
         peak RSS {peak_mib} MiB; lost {lost_batches} HTTP batches and {syslog_lost} syslog records; \
         duplicates {http_dups} HTTP, {syslog_dups} syslog; hostile requests answered {}",
        2.0 * rate,
        acked.len(),
        tally.refused_503.load(Ordering::Relaxed),
        tally.refused_429.load(Ordering::Relaxed),
        tally.refused_other.load(Ordering::Relaxed),
        tally.unanswered.load(Ordering::Relaxed),
        hostile_answers.load(Ordering::Relaxed),
    );
    assert!(!acked.is_empty() && syslog_written > 0, "nothing was sent");
    assert_eq!(
        (lost_batches, syslog_lost),
        (0, 0),
        "acknowledged records lost"
    );
    assert_eq!((http_dups, syslog_dups), (0, 0), "records stored twice");
    assert_eq!(
        tally.refused_other.load(Ordering::Relaxed),
        0,
        "overload answered other than 503/429"
    );
    assert!(
        tally.refused_503.load(Ordering::Relaxed) + tally.refused_429.load(Ordering::Relaxed) > 0
            && paused > 0.0,
        "twice the sustainable rate met no backpressure"
    );
    assert!(peak_mib <= 512, "peak RSS {peak_mib} MiB");
    drop(daemon);
}
