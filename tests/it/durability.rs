//! The guarantees, proven on real processes and a real PostgreSQL: what chute
//! acknowledged survives kill -9, PostgreSQL outages, lost COMMIT replies and
//! SIGTERM, and is stored exactly once.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::chaos::ChaosProxy;
use crate::helpers::*;

/// A fresh database and a chaos proxy in front of the shared cluster: the proxy,
/// the direct DSN (for the test's own checks) and the database name.
async fn proxied_database() -> (ChaosProxy, String, String) {
    let socket = cluster()
        .socket_dir()
        .join(format!(".s.PGSQL.{}", cluster().port()));
    let proxy = ChaosProxy::start(socket);
    let dsn = fresh_database().await;
    let name = dsn
        .rsplit("dbname=")
        .next()
        .unwrap_or_default()
        .trim_matches('\'')
        .to_owned();
    (proxy, dsn, name)
}

#[actix_web::test]
async fn acknowledged_records_survive_repeated_kill_9_exactly_once() {
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let config = write_config(dir.path(), &dir.path().join("data"), &dsn, "");
    let mut daemon = Daemon::start(&config, dir.path().join("chute-0.log"));
    let load = Load::start(daemon.base(), 4, 50);

    for round in 1..=10 {
        // A random moment: somewhere in the next 100-600 ms of load.
        actix_web::rt::time::sleep(Duration::from_millis(100 + fastrand::u64(..500))).await;
        daemon.signal(Signal::SIGKILL);
        let _ = daemon.child.wait();
        daemon = Daemon::start(&config, dir.path().join(format!("chute-{round}.log")));
        *load.targets.lock().unwrap() = vec![daemon.base()];
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let acked = load.finish().await;
    assert!(
        acked.len() >= 1000,
        "the load got through between the kills: {}",
        acked.len()
    );
    settle(&daemon.base()).await;
    assert_exactly_once(&dsn, &acked).await;
}

#[actix_web::test]
async fn a_30_second_postgres_outage_loses_nothing_and_refuses_nothing_while_the_queue_has_room() {
    let dir = temp_dir();
    let (proxy, name, dbname) = proxied_database().await;
    let config = write_config(
        dir.path(),
        &dir.path().join("data"),
        &proxy.dsn(&dbname),
        "",
    );
    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let load = Load::start(daemon.base(), 2, 100);

    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    proxy.set_up(false);
    let before = load.acked();
    actix_web::rt::time::sleep(Duration::from_secs(30)).await;
    assert!(
        load.acked() > before + 1000,
        "records were acknowledged during the outage"
    );
    proxy.set_up(true);
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let refused = load.refused.load(Ordering::SeqCst);
    let acked = load.finish().await;
    assert_eq!(refused, 0, "no 503 while the queue had room");
    settle(&daemon.base()).await;
    assert_exactly_once(&name, &acked).await;
}

#[actix_web::test]
async fn a_commit_whose_reply_is_lost_is_not_stored_twice() {
    let dir = temp_dir();
    let (proxy, name, dbname) = proxied_database().await;
    let mut config = test_config(&proxy.dsn(&dbname));
    config.node.data_dir = dir.path().join("data");
    let app = spawn_config(config).await;

    proxy.swallow_next_commit_reply();
    let ids: Vec<String> = (0..100).map(|i| format!("once-{i}")).collect();
    let a = app
        .post_json(&json!(ids
            .iter()
            .map(|id| json!({"message": id}))
            .collect::<Vec<_>>()))
        .await;
    assert_eq!(a.status, 200);
    app.settle().await;
    assert_eq!(
        proxy.swallowed.load(Ordering::SeqCst),
        1,
        "a COMMIT reply was swallowed"
    );
    assert!(
        app.metric("chute_write_retries_total", &[]) >= 1.0,
        "chute retried the batch"
    );
    assert_eq!(
        app.metric("chute_duplicate_batches_total", &[]),
        1.0,
        "and recognised it as stored"
    );
    assert_exactly_once(&name, &ids).await;
    app.stop().await;
}

#[actix_web::test]
async fn a_connection_that_goes_silent_mid_write_is_dropped_and_the_batch_written_on_a_new_one() {
    let dir = temp_dir();
    let (proxy, direct, dbname) = proxied_database().await;
    let mut config = test_config(&proxy.dsn(&dbname));
    config.node.data_dir = dir.path().join("data");
    config.writer.write_timeout_ms = 2000;
    let app = spawn_config(config).await;
    let body = |ids: &[String]| {
        json!(ids
            .iter()
            .map(|id| json!({"message": id}))
            .collect::<Vec<_>>())
    };
    let before: Vec<String> = (0..50).map(|i| format!("before-{i}")).collect();
    assert_eq!(app.post_json(&body(&before)).await.status, 200);
    app.settle().await;

    // The pooled connections go silent: no FIN, no RST, no bytes either way.
    proxy.mute_open_connections();
    let started = Instant::now();
    let after: Vec<String> = (0..50).map(|i| format!("after-{i}")).collect();
    assert_eq!(app.post_json(&body(&after)).await.status, 200);
    app.settle().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "written after {took:?}");
    assert!(
        app.metric("chute_write_retries_total", &["timeout"]) >= 1.0,
        "the silent write was abandoned"
    );
    let all: Vec<String> = before.into_iter().chain(after).collect();
    assert_exactly_once(&direct, &all).await;
    app.stop().await;
}

#[actix_web::test]
async fn sigterm_under_load_exits_0_and_loses_nothing_acknowledged() {
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let config = write_config(dir.path(), &dir.path().join("data"), &dsn, "");
    let mut daemon = Daemon::start(&config, dir.path().join("first.log"));
    let load = Load::start(daemon.base(), 4, 50);
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    daemon.signal(Signal::SIGTERM);
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    let acked = load.finish().await;
    assert!(!acked.is_empty());

    let daemon = Daemon::start(&config, dir.path().join("second.log"));
    settle(&daemon.base()).await;
    assert_exactly_once(&dsn, &acked).await;
}

#[actix_web::test]
async fn a_full_queue_refuses_cleanly_without_growing_and_delivers_once_postgres_is_back() {
    let dir = temp_dir();
    let (proxy, name, dbname) = proxied_database().await;
    let config = write_config(
        dir.path(),
        &dir.path().join("data"),
        &proxy.dsn(&dbname),
        "[queue]\nmax_bytes = 4194304\nsegment_bytes = 1048576\n",
    );
    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    proxy.set_up(false);
    let load = Load::start(daemon.base(), 4, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.refused.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the queue never filled");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_full = daemon.rss_kib();
    let refused_then = load.refused.load(Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_secs(5)).await;
    assert!(
        load.refused.load(Ordering::SeqCst) > refused_then + 50,
        "refusals go on while full"
    );
    let rss_later = daemon.rss_kib();
    assert!(
        rss_later < rss_full + 16 * 1024,
        "RSS grew from {rss_full} KiB to {rss_later} KiB while refusing"
    );

    proxy.set_up(true);
    let acked_before = load.acked();
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.acked() <= acked_before {
        assert!(Instant::now() < deadline, "ingest did not resume");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = load.finish().await;
    settle(&daemon.base()).await;
    assert_exactly_once(&name, &acked).await;
}

/// Offsets and lengths of the records in a queue segment (see docs/queue-format.md:
/// a 32-byte header whose bytes 4..8 hold the payload length, little-endian).
fn records_in(segment: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 32 <= segment.len() {
        let len = u32::from_le_bytes(segment[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at, 32 + len));
        at += 32 + len;
    }
    out
}

#[actix_web::test]
async fn damaged_queue_records_are_set_aside_counted_and_the_rest_delivered() {
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    config.node.shutdown_timeout_ms = 500;
    let app = spawn_config(config.clone()).await;
    // Keep everything in the queue: no write can commit while the table is locked.
    let locker = connect(&dsn).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE chute.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for e in 1..=6 {
        let batch: Vec<_> = (0..10)
            .map(|i| json!({"message": format!("e{e}-{i}")}))
            .collect();
        assert_eq!(app.post_json(&json!(batch)).await.status, 200);
    }
    app.stop().await;
    locker.batch_execute("ROLLBACK").await.unwrap();

    let queue = config.node.data_dir.join("queues/shard-0");
    let segment = std::fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let records = records_in(&bytes);
    assert_eq!(records.len(), 6, "one record per request");
    let (second, fourth, sixth) = (records[1], records[3], records[5]);
    bytes[second.0 + 32 + 10] ^= 0x01; // a flipped bit in entry 2's payload
    bytes[fourth.0 + 4..fourth.0 + 8].fill(0); // entry 4's length prefix zeroed
    bytes.truncate(sixth.0 + sixth.1 / 2); // entry 6 torn in the middle
    std::fs::write(&segment, &bytes).unwrap();

    // `chute validate --data-dir` sees the damage, read-only.
    let empty = config.node.data_dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let validate = |data_dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
            .args(["validate", "--config"])
            .arg(&empty)
            .arg("--data-dir")
            .arg(data_dir)
            .output()
            .unwrap()
    };
    let out = validate(&config.node.data_dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DAMAGED"));
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "validate changed nothing"
    );

    let app = spawn_config(config.clone()).await;
    let stored: HashSet<String> = {
        app.settle().await;
        app.db
            .query("SELECT message FROM chute.logs", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    for e in [1, 3, 5] {
        for i in 0..10 {
            assert!(
                stored.contains(&format!("e{e}-{i}")),
                "entry {e} was delivered"
            );
        }
    }
    assert_eq!(
        stored.len(),
        30,
        "entries 2, 4 and 6 were damaged: {stored:?}"
    );
    assert_eq!(
        app.metric("chute_queue_corrupt_total", &["reason=\"corrupt\""]),
        2.0
    );
    assert_eq!(
        app.metric("chute_queue_corrupt_total", &["reason=\"torn\""]),
        1.0
    );
    let quarantined = std::fs::read_dir(queue.join("quarantine")).unwrap().count();
    assert!(
        quarantined >= 1,
        "the damaged bytes were kept for inspection"
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_data_dir_and_queue_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &dsn, "");
    let daemon = Daemon::start_with_umask(&config, dir.path().join("chute.log"), Some(0));
    let base = daemon.base();
    assert_eq!(post_one(&base, "private").await, 200);
    settle(&base).await;
    let mut checked = 0;
    let mut todo = vec![data.clone()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
        checked += 1;
    }
    // data, queues, shard-0, its quarantine, a segment, lock, position, queue-id
    assert!(
        checked >= 8,
        "only {checked} paths under {}",
        data.display()
    );
    drop(daemon);
}

#[actix_web::test]
async fn after_recovering_a_torn_tail_an_idle_chute_stays_idle() {
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &dsn, "");
    let mut first = Daemon::start(&config, dir.path().join("first.log"));
    assert_eq!(post_one(&first.base(), "stored").await, 200);
    settle(&first.base()).await;
    // The second entry is durable but not written (the table is locked), then chute
    // dies and the entry is torn after its header.
    let locker = connect(&dsn).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE chute.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    assert_eq!(post_one(&first.base(), "torn").await, 200);
    first.child.kill().expect("kill -9");
    first.child.wait().expect("wait");
    locker.batch_execute("ROLLBACK").await.unwrap();
    let queue = data.join("queues/shard-0");
    let segment = std::fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let records = records_in(&bytes);
    assert_eq!(records.len(), 2);
    let (at, len) = records[1];
    bytes.truncate(at + 32 + (len - 32) / 2);
    std::fs::write(&segment, &bytes).unwrap();

    let second = Daemon::start(&config, dir.path().join("second.log"));
    let base = second.base();
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let before = second.cpu_ticks();
    actix_web::rt::time::sleep(Duration::from_secs(10)).await;
    let used = second.cpu_ticks() - before;
    // 5% of one core over 10 s is 50 ticks.
    assert!(
        used < 50,
        "chute used {used} ticks (1/100 s) in 10 idle seconds"
    );
    // And it still works.
    assert_eq!(post_one(&base, "after").await, 200);
    settle(&base).await;
    assert_eq!(
        count_rows(&dsn).await,
        2,
        "the stored one and the one after"
    );
}

#[actix_web::test]
async fn sigterm_exits_0_within_one_deadline_while_a_request_and_the_drain_hang() {
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let config = write_config_with(
        dir.path(),
        &dir.path().join("data"),
        &dsn,
        "shutdown_timeout_ms = 2000\n",
        "listeners = []\n",
        "",
    );
    let mut daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let base = daemon.base();
    // A write that cannot finish: the table is locked.
    let locker = connect(&dsn).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE chute.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    assert_eq!(post_one(&base, "queued").await, 200);
    // A request whose body never ends.
    let mut slow = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut slow,
        b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{",
    )
    .await
    .unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.child.wait().unwrap();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    assert!(
        took < Duration::from_millis(3500),
        "stopped after {took:?}, deadline 2 s"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    // The record stayed queued: the next start writes it.
    let daemon = Daemon::start(&config, dir.path().join("again.log"));
    settle(&daemon.base()).await;
    assert_eq!(count_rows(&dsn).await, 1);
}
