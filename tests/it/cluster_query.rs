//! The read API over a cluster: three nodes as real processes, four shards, every
//! answer the same whichever node is asked and equal to what the test computes
//! from the records it sent; a node down leaves its shards out of the answer, and
//! the answer says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::cluster::{TestCluster, IDS};
use crate::helpers::metric_in;
use crate::tail::{lines, next_frame, open_tail, post};

/// One record sent, as the test expects it back.
struct Sent {
    ts: DateTime<Utc>,
    host: String,
    app: &'static str,
    level: &'static str,
    message: String,
}

const APPS: [&str; 3] = ["api", "web", "db"];
const SEVERITIES: [(u8, &str); 4] = [(3, "error"), (4, "warning"), (6, "info"), (7, "debug")];

/// 900 records over the 50 minutes before `now`, each at its own microsecond, from
/// 60 hosts (so every shard has some), sent round-robin to the three nodes.
async fn send(bases: &[String], now: DateTime<Utc>) -> Vec<Sent> {
    let sent: Vec<Sent> = (0..900)
        .map(|i| {
            let (_, level) = SEVERITIES[i % 4];
            Sent {
                ts: now - chrono::Duration::seconds(3000)
                    + chrono::Duration::milliseconds(i as i64 * 3217),
                host: format!("h{}", i % 60),
                app: APPS[i % 3],
                level,
                message: if i % 9 == 0 {
                    format!("request {i} timeout")
                } else {
                    format!("request {i} done")
                },
            }
        })
        .collect();
    for (n, chunk) in sent.chunks(100).enumerate() {
        let records: Vec<Value> = chunk
            .iter()
            .map(|s| {
                let severity = SEVERITIES.iter().find(|(_, l)| *l == s.level).unwrap().0;
                json!({
                    "ts": s.ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "host": s.host, "app": s.app, "severity": severity, "message": s.message,
                })
            })
            .collect();
        post(&bases[n % 3], &records).await;
    }
    sent
}

/// A GET of the Loki API: status, the `x-chute-missing-shards` header, the body.
async fn get(base: &str, path: &str, params: &[(&str, String)]) -> (u16, Option<String>, Value) {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut response = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .get(format!("{base}{path}?{query}"))
        .send()
        .await
        .expect("answer");
    let missing = response
        .headers()
        .get("x-chute-missing-shards")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.body().limit(64 << 20).await.expect("body");
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (response.status().as_u16(), missing, value)
}

/// The messages of a streams answer, in the order given.
fn messages(answer: &Value) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for stream in answer["data"]["result"].as_array().expect("streams") {
        for v in stream["values"].as_array().unwrap() {
            out.push((
                v[0].as_str().unwrap().parse().unwrap(),
                v[1].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap()
}

#[actix_web::test]
async fn every_node_answers_for_the_whole_cluster_and_a_node_down_is_named() {
    let mut cluster = TestCluster::start(["", "", ""]).await;
    let bases = cluster.bases();
    let now = Utc::now().trunc_subsecs(6);
    let sent = send(&bases, now).await;
    cluster.settle().await;
    let rows: i64 = cluster.rows_per_shard().await.iter().sum();
    assert_eq!(rows, 900);
    let range = |extra: &[(&'static str, String)]| {
        let mut p = vec![
            ("start", nanos(now - chrono::Duration::hours(1)).to_string()),
            ("end", nanos(now + chrono::Duration::minutes(1)).to_string()),
        ];
        p.extend(extra.iter().cloned());
        p
    };

    // Lines: newest first and oldest first, with limits cutting across shards.
    let timeouts = range(&[
        ("query", "{app=\"web\"} |= \"timeout\"".into()),
        ("limit", "1000".into()),
    ]);
    let mut expected: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.app == "web" && s.message.contains("timeout"))
        .collect();
    expected.sort_by_key(|s| std::cmp::Reverse(s.ts));
    let oldest = range(&[
        ("query", "{tenant=\"default\"}".into()),
        ("limit", "25".into()),
        ("direction", "forward".into()),
    ]);
    let mut by_time: Vec<&Sent> = sent.iter().collect();
    by_time.sort_by_key(|s| s.ts);
    for base in &bases {
        let (status, missing, answer) = get(base, "/loki/api/v1/query_range", &timeouts).await;
        assert_eq!((status, missing), (200, None), "{answer}");
        assert!(answer.get("warnings").is_none(), "{answer}");
        let mut got = messages(&answer);
        got.sort_by_key(|(ts, _)| std::cmp::Reverse(*ts));
        let want: Vec<(i64, String)> = expected
            .iter()
            .map(|s| (nanos(s.ts), s.message.clone()))
            .collect();
        assert_eq!(got, want, "asked {base}");

        let (_, _, answer) = get(base, "/loki/api/v1/query_range", &oldest).await;
        let mut got = messages(&answer);
        got.sort();
        let want: Vec<(i64, String)> = by_time[..25]
            .iter()
            .map(|s| (nanos(s.ts), s.message.clone()))
            .collect();
        assert_eq!(got, want, "asked {base}");
    }

    // The same answers from every node, and the counts the test computes.
    let mut per_level: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sent {
        *per_level.entry(s.level).or_default() += 1;
    }
    let mut bytes_per_app: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sent {
        *bytes_per_app.entry(s.app).or_default() += s.message.len();
    }
    let asks: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        (
            "/loki/api/v1/query",
            vec![
                (
                    "query",
                    "sum by (level) (count_over_time({tenant=\"default\"}[1h]))".into(),
                ),
                (
                    "time",
                    nanos(now + chrono::Duration::seconds(1)).to_string(),
                ),
            ],
        ),
        ("/loki/api/v1/label/host/values", range(&[])),
        (
            "/loki/api/v1/series",
            range(&[("match[]", "{app=\"db\"}".into())]),
        ),
        (
            "/loki/api/v1/index/stats",
            range(&[("query", "{tenant=\"default\"}".into())]),
        ),
        (
            "/loki/api/v1/index/volume",
            range(&[("query", "{app=~\".+\"}".into())]),
        ),
        (
            "/loki/api/v1/query_range",
            range(&[
                (
                    "query",
                    "sum by (app) (bytes_over_time({tenant=\"default\"}[10m]))".into(),
                ),
                ("step", "600".into()),
            ]),
        ),
    ];
    for (path, params) in &asks {
        let mut answers = Vec::new();
        for base in &bases {
            let (status, missing, answer) = get(base, path, params).await;
            assert_eq!((status, missing), (200, None), "{path} on {base}: {answer}");
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1], "{path}: a and b differ");
        assert_eq!(answers[0], answers[2], "{path}: a and c differ");
        let answer = &answers[0];
        match *path {
            "/loki/api/v1/query" => {
                let got: BTreeMap<String, String> = answer["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        (
                            s["metric"]["level"].as_str().unwrap().to_owned(),
                            s["value"][1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let want: BTreeMap<String, String> = per_level
                    .iter()
                    .map(|(l, n)| (l.to_string(), n.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            "/loki/api/v1/label/host/values" => {
                let want: BTreeSet<String> = sent.iter().map(|s| s.host.clone()).collect();
                let got: BTreeSet<String> = serde_json::from_value(answer["data"].clone()).unwrap();
                assert_eq!(got, want);
            }
            "/loki/api/v1/series" => {
                let want: BTreeSet<(String, String)> = sent
                    .iter()
                    .filter(|s| s.app == "db")
                    .map(|s| (s.host.clone(), s.level.to_owned()))
                    .collect();
                let got: BTreeSet<(String, String)> = answer["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        (
                            l["host"].as_str().unwrap().to_owned(),
                            l["level"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                assert_eq!(got, want);
            }
            "/loki/api/v1/index/stats" => {
                assert_eq!(answer["entries"], 900);
                assert_eq!(answer["chunks"], 4, "every shard answered");
                let bytes: usize = sent.iter().map(|s| s.message.len()).sum();
                assert_eq!(answer["bytes"], bytes);
            }
            "/loki/api/v1/index/volume" => {
                let got: BTreeMap<String, String> = answer["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        (
                            s["metric"]["app"].as_str().unwrap().to_owned(),
                            s["value"][1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let want: BTreeMap<String, String> = bytes_per_app
                    .iter()
                    .map(|(a, n)| (a.to_string(), n.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            _ => {
                let total: f64 = answer["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s["values"].as_array().unwrap().iter())
                    .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
                    .sum();
                let bytes: usize = bytes_per_app.values().sum();
                assert_eq!(
                    total as usize, bytes,
                    "10m windows at 10m steps count each line once"
                );
            }
        }
    }

    // Each node counts the rows it read: its own shards for the queries it was
    // asked, and its part of the others' (`internal`).
    for (i, id) in IDS.iter().enumerate() {
        let m = cluster.metrics(i).await;
        let own = metric_in(
            &m,
            "chute_query_rows_read_total",
            &["endpoint=\"query_range\""],
        );
        let parts = metric_in(
            &m,
            "chute_query_rows_read_total",
            &["endpoint=\"internal\""],
        );
        assert!(own > 0.0 && parts > 0.0, "node {id}: {own} {parts}");
    }

    // The route owners answer on admits peers only.
    let mut refused = awc::Client::default()
        .post(format!("{}/internal/v1/query", bases[0]))
        .send_json(&json!({"tenant": "default", "shards": [0], "work": {"kind": "stats", "selector": "{app=\"db\"}", "start": 0, "end": 1}}))
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 401, "{:?}", refused.body().await);

    // A tail on a, and `chute tail` on b, see lines sent to c, whichever shard
    // they land in.
    let mut tail = open_tail(&bases[0], r#"{app="live"}"#, "&limit=1").await;
    let first = next_frame(&mut tail, Duration::from_secs(30)).await;
    assert!(lines(&first).is_empty(), "{first}");
    // By its first lines, a tail follows every peer (b and c each serve it), so
    // no line committed there from now on can fall in between.
    for node in [1, 2] {
        assert_eq!(
            metric_in(
                &cluster.metrics(node).await,
                "chute_tail_clients",
                &["kind=\"peer\""],
            ),
            1.0,
            "node {node} follows a's tail"
        );
    }
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
        .args([
            "tail",
            "{app=\"live\"}",
            "--output",
            "raw",
            "--url",
            &bases[1],
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chute tail");
    let stdout = cli.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    // `chute tail` follows once b counts it (its first lines are read by then).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric_in(
        &cluster.metrics(1).await,
        "chute_tail_clients",
        &["kind=\"client\""],
    ) < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "chute tail never connected"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // `chute tail` prints its first lines once b follows a and c too.
    for (node, peers) in [(0, 1.0), (2, 2.0)] {
        while metric_in(
            &cluster.metrics(node).await,
            "chute_tail_clients",
            &["kind=\"peer\""],
        ) < peers
        {
            assert!(
                std::time::Instant::now() < deadline,
                "node {node} follows no tail"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let live: Vec<Value> = (0..60)
        .map(|i| json!({"app": "live", "host": format!("h{i}"), "message": format!("live {i}")}))
        .collect();
    post(&bases[2], &live).await;
    // Frames until the 60 lines are in; what the nodes logged if they never are.
    let mut got = Vec::new();
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < 60 && std::time::Instant::now() < deadline {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(Some(Ok(frame))) =
            actix_web::rt::time::timeout(left, futures_util::StreamExt::next(&mut tail)).await
        else {
            break;
        };
        match frame {
            awc::ws::Frame::Text(text) => {
                let frame: Value = serde_json::from_slice(&text).expect("JSON");
                got.extend(lines(&frame).into_iter().map(|(_, l)| l));
                frames.push(frame);
            }
            awc::ws::Frame::Ping(p) => {
                futures_util::SinkExt::send(&mut tail, awc::ws::Message::Pong(p))
                    .await
                    .expect("pong");
            }
            _ => {}
        }
    }
    if got.len() < 60 {
        let logs: Vec<String> = (0..3).map(|i| cluster.log(i)).collect();
        panic!(
            "the tail on a got {} of 60 lines; frames {frames:?}; rows per shard {:?}; logs {logs:#?}",
            got.len(),
            cluster.rows_per_shard().await
        );
    }
    got.sort();
    let mut want: Vec<String> = (0..60).map(|i| format!("live {i}")).collect();
    want.sort();
    assert_eq!(got, want, "the tail on a");
    let mut printed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while printed.len() < 60 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => panic!(
                "chute tail printed {} of 60 lines: {printed:?}",
                printed.len()
            ),
        }
    }
    printed.sort();
    assert_eq!(printed, want, "chute tail on b");
    cli.kill().expect("stop chute tail");
    let _ = cli.wait();
    // b lets go of c's stream once its tail has ended; a's follow of c stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric_in(
        &cluster.metrics(2).await,
        "chute_tail_clients",
        &["kind=\"peer\""],
    ) != 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a peer tail of c outlived the tail it served"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }

    // Node c (owner of shard 2) stops: a and b still answer, naming shard 2.
    let left = cluster.rows_per_shard().await;
    // Its tails (a follows it) end at once: nothing waits for the shutdown
    // deadline (node.shutdown_timeout_ms, 30 s).
    let stopping = std::time::Instant::now();
    cluster.stop_node(2);
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "stopping took {:?}",
        stopping.elapsed()
    );
    // The tail on a says it no longer follows c's shards.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning about node c"
        );
        let frame = next_frame(&mut tail, Duration::from_secs(60)).await;
        if let Some(w) = frame["warnings"].as_array() {
            assert!(w[0].as_str().unwrap().contains("node c"), "{frame}");
            break;
        }
    }
    let all = range(&[
        ("query", "{tenant=\"default\"}".into()),
        ("limit", "5000".into()),
    ]);
    for base in &bases[..2] {
        let (status, missing, answer) = get(base, "/loki/api/v1/query_range", &all).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(missing.as_deref(), Some("2"));
        let warnings = answer["warnings"].as_array().expect("warnings").clone();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = warnings[0].as_str().unwrap();
        assert!(
            warning.contains("shard 2") && warning.contains(&format!("node {}", IDS[2])),
            "{warning}"
        );
        assert_eq!(
            messages(&answer).len() as i64,
            left[0] + left[1] + left[3],
            "the shards that answered, whole"
        );
        let (_, _, stats) = get(
            base,
            "/loki/api/v1/index/stats",
            &range(&[("query", "{tenant=\"default\"}".into())]),
        )
        .await;
        assert_eq!(stats["chunks"], 3);

        let mut strict = all.clone();
        strict.push(("partial_response", "false".into()));
        let (status, _, answer) = get(base, "/loki/api/v1/query_range", &strict).await;
        assert_eq!(status, 503, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("shard 2"),
            "{answer}"
        );
    }

    // `chute query` says so on stderr, and still prints what it has.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
        .args([
            "query",
            "{app=\"api\"}",
            "--since",
            "2h",
            "--limit",
            "5000",
            "--url",
            &bases[0],
        ])
        .output()
        .expect("chute query");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: shard 2 is missing"), "{stderr}");
    assert!(!out.stdout.is_empty());
}
