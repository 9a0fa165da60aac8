//! Three chute nodes as real processes, four shards on two PostgreSQL servers:
//! records sent to any node are stored once, in the shard their key maps to, through
//! node outages, kill -9 of a receiving node, and refused impostors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chute::actors::router::shard_index;
use chute::config::ShardKey;
use chute::record::Record;
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::helpers::*;

pub(crate) const TOKEN: &str = "test-peer-token-0123456789";
pub(crate) const IDS: [&str; 3] = ["a", "b", "c"];
/// Owner of shards 0..4: a writes two, b and c one each.
const OWNERS: [usize; 4] = [0, 1, 2, 0];

/// One node of a [`TestCluster`] (every node knows every node's URL before any
/// starts, so their ports come from `helpers::free_port`).
struct Node {
    pub(crate) config: PathBuf,
    daemon: Option<Daemon>,
    base: String,
    starts: usize,
}

/// Three nodes a, b, c; shards 0 and 1 on one PostgreSQL, 2 and 3 on another.
pub(crate) struct TestCluster {
    pub(crate) dir: tempfile::TempDir,
    nodes: Vec<Node>,
    /// DSN of each shard, by shard id.
    pub(crate) dsns: Vec<String>,
    /// Owner of each shard (index into [`IDS`]), as the configs say.
    owners: [usize; 4],
}

impl TestCluster {
    /// Starts the three nodes; `extra[i]` is added to node i's `[cluster]` section.
    pub(crate) async fn start(extra: [&str; 3]) -> TestCluster {
        TestCluster::start_with(extra, None).await
    }

    /// With `tls`, every node serves HTTPS with the PKI's server certificate, demands
    /// client certificates from its CA, and presents its client certificate to peers.
    pub(crate) async fn start_with(extra: [&str; 3], tls: Option<&Pki>) -> TestCluster {
        let dsns = vec![
            fresh_database().await,
            fresh_database().await,
            fresh_database_on(second_cluster()).await,
            fresh_database_on(second_cluster()).await,
        ];
        let dir = temp_dir();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let (scheme, http_tls, cluster_tls) = match tls {
            None => ("http", String::new(), String::new()),
            Some(pki) => {
                let file = |name: &str, text: &str| {
                    let path = dir.path().join(name);
                    std::fs::write(&path, text).expect("write PEM");
                    path.display().to_string()
                };
                let ca = file("ca.pem", &pki.ca);
                let cert = file("server.pem", &pki.server_cert);
                let key = file("server.key", &pki.server_key);
                let client = file("client.pem", &pki.client.cert.pem());
                let client_key = file("client.key", &pki.client.key_pair.serialize_pem());
                (
                    "https",
                    format!("tls_cert_file = \"{cert}\"\ntls_key_file = \"{key}\"\ntls_client_ca_file = \"{ca}\"\n"),
                    format!("tls_ca_file = \"{ca}\"\ntls_cert_file = \"{client}\"\ntls_key_file = \"{client_key}\"\n"),
                )
            }
        };
        let mut nodes = Vec::new();
        for i in 0..3 {
            let mut text = format!(
                "[node]\nid = \"{}\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n{http_tls}\
                 [syslog]\nlisteners = []\n[writer]\nflush_interval_ms = 20\nretry_initial_ms = 50\n\
                 retry_max_ms = 500\n[cluster]\npeer_token = \"{TOKEN}\"\nretry_initial_ms = 50\n\
                 retry_max_ms = 1000\n{cluster_tls}{}\n",
                IDS[i],
                dir.path().join(format!("data-{}", IDS[i])).display(),
                ports[i],
                extra[i]
            );
            for (j, port) in ports.iter().enumerate() {
                text.push_str(&format!(
                    "[[nodes]]\nid = \"{}\"\nurl = \"{scheme}://127.0.0.1:{port}\"\n",
                    IDS[j]
                ));
            }
            for (shard, dsn) in dsns.iter().enumerate() {
                text.push_str(&format!(
                    "[[shards]]\nid = {shard}\nowner = \"{}\"\ndsn = \"{dsn}\"\npool_size = 2\n",
                    IDS[OWNERS[shard]]
                ));
            }
            let config = dir.path().join(format!("{}.toml", IDS[i]));
            std::fs::write(&config, text).expect("write config");
            nodes.push(Node {
                config,
                daemon: None,
                base: format!("{scheme}://127.0.0.1:{}", ports[i]),
                starts: 0,
            });
        }
        let mut cluster = TestCluster {
            dir,
            nodes,
            dsns,
            owners: OWNERS,
        };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster
    }

    pub(crate) fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("{}-{}.log", IDS[i], node.starts));
        node.daemon = Some(Daemon::start(&node.config, log));
    }

    /// SIGTERM, and wait for a clean exit.
    pub(crate) fn stop_node(&mut self, i: usize) {
        let mut daemon = self.nodes[i].daemon.take().expect("running");
        daemon.signal(Signal::SIGTERM);
        let status = daemon.child.wait().expect("wait");
        assert!(status.success(), "node {} exited with {status}", IDS[i]);
    }

    pub(crate) fn kill_node(&mut self, i: usize) {
        let mut daemon = self.nodes[i].daemon.take().expect("running");
        daemon.child.kill().expect("kill -9");
        daemon.child.wait().expect("wait");
    }

    /// Gives `shard` to node `owner` in every node's configuration file; takes
    /// effect as each node restarts.
    pub(crate) fn set_owner(&mut self, shard: usize, owner: usize) {
        let (from, to) = (
            format!("id = {shard}\nowner = \"{}\"", IDS[self.owners[shard]]),
            format!("id = {shard}\nowner = \"{}\"", IDS[owner]),
        );
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.config).expect("config");
            assert!(text.contains(&from), "{from:?} not in {text}");
            std::fs::write(&node.config, text.replace(&from, &to)).expect("write config");
        }
        self.owners[shard] = owner;
    }

    /// Sets node `i`'s `[cluster] peer_token` to `value` (TOML) in its file; takes
    /// effect when it restarts.
    pub(crate) fn set_peer_token(&mut self, i: usize, value: &str) {
        let path = &self.nodes[i].config;
        let text = std::fs::read_to_string(path).expect("config");
        let (start, end) = {
            let start = text.find("peer_token = ").expect("a peer token");
            (start, start + text[start..].find('\n').expect("a line"))
        };
        let text = format!("{}peer_token = {value}{}", &text[..start], &text[end..]);
        std::fs::write(path, text).expect("write config");
    }

    /// Appends `text` to node `i`'s configuration file and sends it SIGHUP.
    pub(crate) fn reload_with(&self, i: usize, text: &str) {
        let node = &self.nodes[i];
        let mut config = std::fs::read_to_string(&node.config).expect("config");
        config.push_str(text);
        std::fs::write(&node.config, config).expect("write config");
        node.daemon
            .as_ref()
            .expect("running")
            .signal(Signal::SIGHUP);
    }

    /// The node (index into [`IDS`]) that owns each shard.
    pub(crate) fn owners(&self) -> [usize; 4] {
        self.owners
    }

    pub(crate) fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }

    pub(crate) async fn metrics(&self, i: usize) -> String {
        get_text(&format!("{}/metrics", self.nodes[i].base)).await
    }

    pub(crate) async fn rows_per_shard(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for dsn in &self.dsns {
            out.push(count_rows(dsn).await);
        }
        out
    }

    /// Waits until every node's queues are empty at once.
    pub(crate) async fn settle(&self) {
        settle_all(&self.bases()).await;
    }

    pub(crate) fn log(&self, i: usize) -> String {
        self.nodes[i]
            .daemon
            .as_ref()
            .map(Daemon::log_text)
            .unwrap_or_default()
    }
}

pub(crate) async fn get_text(url: &str) -> String {
    let mut r = awc::Client::default().get(url).send().await.expect("GET");
    String::from_utf8_lossy(&r.body().limit(16 << 20).await.expect("body")).into_owned()
}

/// A record of tenant `default`, app `app`, from `host`.
pub(crate) fn record(host: &str, message: &str) -> Record {
    let ts = chrono::Utc::now();
    Record {
        ts,
        received_at: ts,
        tenant: "default".into(),
        host: Some(host.into()),
        app: Some("app".into()),
        procid: None,
        msgid: None,
        severity: None,
        facility: None,
        message: message.into(),
        fields: Default::default(),
        sd: None,
    }
}

#[actix_web::test]
async fn a_cluster_node_exports_its_peer_metrics_at_0_before_any_traffic() {
    let cluster = TestCluster::start(["", "", ""]).await;
    let text = cluster.metrics(0).await;
    let missing = crate::ops::watched_but_missing(&text, crate::ops::cluster_only);
    assert!(
        missing.is_empty(),
        "not in /metrics before traffic: {missing:?}"
    );
    for peer in ["b", "c"] {
        for (name, labels) in [
            ("chute_peer_failures_total", &[peer, "layout_mismatch"][..]),
            ("chute_peer_failures_total", &[peer, "unauthorized"]),
            ("chute_peer_batches_sent_total", &[peer]),
            ("chute_queue_errors_total", &[&format!("peer-{peer}"), "io"]),
        ] {
            assert!(
                crate::ops::series_at_zero(&text, name, labels),
                "{name} {labels:?} is not at 0"
            );
        }
    }
}

#[actix_web::test]
async fn records_sent_to_any_node_are_stored_once_in_the_shard_their_stream_maps_to() {
    let cluster = TestCluster::start(["", "", ""]).await;
    let bases = cluster.bases();
    const TOTAL: usize = 100_000;
    const PER_REQUEST: usize = 1000;
    // 100 requests, round-robin over the three nodes, four at a time; 1000 streams.
    let sends = (0..TOTAL / PER_REQUEST).map(|r| {
        let url = format!("{}/api/v1/logs", bases[r % 3]);
        let body = (0..PER_REQUEST)
            .map(|i| {
                let n = r * PER_REQUEST + i;
                json!({"message": format!("r-{n}"), "host": format!("h{}", n % 1000), "app": "app"})
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n");
        async move {
            let mut response = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish()
                .post(url)
                .content_type("application/x-ndjson")
                .send_body(body)
                .await
                .expect("answer");
            let status = response.status().as_u16();
            let body = response.body().await.unwrap_or_default();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    });
    let answers: Vec<(u16, String)> = futures_util::stream::iter(sends)
        .buffer_unordered(4)
        .collect()
        .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    cluster.settle().await;

    // Exactly once, each row in the shard its stream maps to.
    let mut per_shard = Vec::new();
    let mut messages: HashMap<String, i64> = HashMap::new();
    for (shard, dsn) in cluster.dsns.iter().enumerate() {
        let db = connect(dsn).await;
        let rows = db
            .query("SELECT host, message FROM chute.logs", &[])
            .await
            .expect("rows");
        for row in &rows {
            let host: String = row.get(0);
            assert_eq!(
                shard_index(&record(&host, ""), 4, ShardKey::Stream),
                shard,
                "a record of {host} is in shard {shard}"
            );
            *messages.entry(row.get(1)).or_default() += 1;
        }
        per_shard.push(rows.len() as f64);
    }
    assert_eq!(messages.len(), TOTAL, "every record stored");
    assert!(messages.values().all(|n| *n == 1), "a record stored twice");

    // Balance: 1000 streams over four shards, each within 15% of the mean.
    let mean = TOTAL as f64 / 4.0;
    for (shard, rows) in per_shard.iter().enumerate() {
        assert!(
            (rows - mean).abs() <= 0.15 * mean,
            "shard {shard} has {rows} rows, mean {mean}: {per_shard:?}"
        );
    }

    // Records really travelled: a forwarded to b and c, b received from a and c.
    let a = cluster.metrics(0).await;
    let b = cluster.metrics(1).await;
    assert!(metric_in(&a, "chute_peer_records_sent_total", &["peer=\"b\""]) > 0.0);
    assert!(metric_in(&a, "chute_peer_records_sent_total", &["peer=\"c\""]) > 0.0);
    assert!(metric_in(&b, "chute_peer_received_records_total", &["peer=\"a\""]) > 0.0);
    let (mut sent, mut received) = (0.0, 0.0);
    for i in 0..3 {
        let m = cluster.metrics(i).await;
        sent += metric_in(&m, "chute_peer_records_sent_total", &[]);
        received += metric_in(&m, "chute_peer_received_records_total", &[]);
    }
    assert_eq!(sent, received, "every forwarded record was received once");
    // Round robin over three nodes: about two thirds of the records are forwarded.
    assert!(sent > 0.5 * TOTAL as f64, "forwarded {sent}");

    // What the cluster looks like from a: JSON and `chute cluster`.
    let view: Value =
        serde_json::from_str(&get_text(&format!("{}/api/v1/cluster", bases[0])).await).unwrap();
    assert_eq!(view["node"], "a");
    assert_eq!(view["nodes"].as_array().unwrap().len(), 3);
    assert!(
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["up"] == true),
        "{view}"
    );
    let owners: Vec<&str> = view["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["a", "b", "c", "a"]);
    let fingerprint = view["layout"].as_str().unwrap().to_owned();
    let c_view: Value =
        serde_json::from_str(&get_text(&format!("{}/api/v1/cluster", bases[2])).await).unwrap();
    assert_eq!(
        c_view["layout"],
        fingerprint.as_str(),
        "every node has the same layout"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
        .args(["cluster", "--url", &bases[0]])
        .output()
        .expect("chute cluster");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&fingerprint), "{text}");
    for line in [
        "b                up",
        "c                up",
        "a                self",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(
        !text.contains(TOKEN)
            && !get_text(&format!("{}/api/v1/cluster", bases[0]))
                .await
                .contains(TOKEN)
    );
}

#[actix_web::test]
async fn a_node_down_for_20_s_gets_its_records_once_it_returns() {
    let mut cluster = TestCluster::start(["", "", ""]).await;
    let bases = cluster.bases();
    // Senders talk to a and c only; b owns shard 1.
    let load = Load::start_many(vec![bases[0].clone(), bases[2].clone()], 4, 100);
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    cluster.stop_node(1);
    let down = Instant::now();
    let acked_at_stop = load.acked();
    actix_web::rt::time::sleep(Duration::from_secs(20)).await;
    // Records for shard 1 wait in a's and c's queues for b.
    let waiting = metric_in(
        &cluster.metrics(0).await,
        "chute_queue_bytes",
        &["destination=\"peer-b\""],
    );
    assert!(waiting > 0.0, "nothing waits for b on a");
    assert!(
        metric_in(&cluster.metrics(0).await, "chute_peer_up", &["peer=\"b\""]) == 0.0,
        "b is reported down"
    );
    // a stays ready (b's records wait on its disk) and says b is down.
    let mut r = awc::Client::default()
        .get(format!("{}/readyz", bases[0]))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
    let ready: Value = serde_json::from_slice(&r.body().await.unwrap()).unwrap();
    let b = ready["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"] == "b")
        .cloned()
        .unwrap();
    assert_eq!(b["up"], false, "{ready}");
    assert!(
        load.acked() > acked_at_stop + 1000,
        "senders kept being answered"
    );
    cluster.start_node(1);
    assert!(down.elapsed() >= Duration::from_secs(20));
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let refused = load.refused.load(Ordering::SeqCst);
    let unanswered = load.unanswered.load(Ordering::SeqCst);
    let acked = load.finish().await;
    assert_eq!(refused, 0, "a node that stayed up refused records");
    assert_eq!(unanswered, 0, "a node that stayed up did not answer");
    cluster.settle().await;
    assert_exactly_once_in(&cluster.dsns, &acked).await;
    let rows = cluster.rows_per_shard().await;
    assert!(rows[1] > 0, "b's shard got its records: {rows:?}");
}

#[actix_web::test]
async fn kill_9_of_the_receiving_node_loses_nothing_and_stores_nothing_twice() {
    let mut cluster = TestCluster::start(["", "", ""]).await;
    let bases = cluster.bases();
    // Everything enters at a; b's and c's shards are reached only by forwarding.
    let load = Load::start_many(vec![bases[0].clone()], 6, 200);
    for round in 0..3 {
        // Wait until b is taking batches, then kill it in the middle of the stream.
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = metric_in(
            &cluster.metrics(0).await,
            "chute_peer_batches_sent_total",
            &["peer=\"b\""],
        );
        while metric_in(
            &cluster.metrics(0).await,
            "chute_peer_batches_sent_total",
            &["peer=\"b\""],
        ) < before + 3.0
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: b takes nothing:\n{}",
                cluster.log(1)
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(fastrand::u64(0..200))).await;
        cluster.kill_node(1);
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        cluster.start_node(1);
    }
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let acked = load.finish().await;
    assert!(
        acked.len() > 5000,
        "only {} records acknowledged",
        acked.len()
    );
    cluster.settle().await;
    assert_exactly_once_in(&cluster.dsns, &acked).await;
    let a = cluster.metrics(0).await;
    assert!(
        metric_in(&a, "chute_peer_failures_total", &["peer=\"b\""]) > 0.0,
        "the kills were seen as failed forwards"
    );
}

#[actix_web::test]
async fn a_wrong_token_or_a_different_layout_is_refused_counted_and_stores_nothing() {
    // a runs with another shard key than b and c: a half-rolled-out change.
    let cluster = TestCluster::start(["shard_key = \"record\"", "", ""]).await;
    let bases = cluster.bases();
    let http = awc::Client::default();
    let b_view: Value =
        serde_json::from_str(&get_text(&format!("{}/api/v1/cluster", bases[1])).await).unwrap();
    let layout = b_view["layout"].as_str().unwrap().to_owned();

    // Strangers: no token, a wrong one, a right one from an unknown node.
    for (auth, node, want, reason) in [
        (None, "a", 401, "unauthorized"),
        (
            Some("Bearer wrong-token-0123456789"),
            "a",
            401,
            "unauthorized",
        ),
        (Some(&*format!("Bearer {TOKEN}")), "z", 401, "unknown_node"),
        (
            Some(&*format!("Bearer {TOKEN}")),
            "a",
            409,
            "layout_mismatch",
        ),
    ] {
        let mut req = http
            .post(format!("{}/internal/v1/batches", bases[1]))
            .insert_header(("x-chute-node", node))
            .insert_header((
                "x-chute-layout",
                if want == 409 { "0000" } else { layout.as_str() },
            ));
        if let Some(auth) = auth {
            req = req.insert_header(("authorization", auth));
        }
        let mut r = req.send_body("CHB1").await.expect("answer");
        assert_eq!(r.status().as_u16(), want, "{auth:?} {node}");
        let body: Value = serde_json::from_slice(&r.body().await.unwrap()).unwrap();
        assert_eq!(body["reason"], reason);
    }
    let r = http
        .get(format!("{}/internal/v1/anything", bases[1]))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401);

    // A member with the right token and layout, but a batch for a shard b does not
    // write: refused whole (b never forwards); a batch for b's own shard is stored.
    let rows =
        chute::batch::EncodedRows::encode(&[record("h", "from-c-1"), record("h", "from-c-2")])
            .unwrap()
            .to_payload(&[], None);
    for (shard, want) in [(2, 409), (1, 200)] {
        let mut batches = chute::batch::wire::BatchesBody::with_capacity(0);
        batches.push(shard, &format!("test-queue:{shard}"), &rows);
        let mut r = http
            .post(format!("{}/internal/v1/batches", bases[1]))
            .insert_header(("authorization", format!("Bearer {TOKEN}")))
            .insert_header(("x-chute-node", "c"))
            .insert_header(("x-chute-layout", layout.as_str()))
            .insert_header(("content-encoding", "zstd"))
            .send_body(batches.finish().unwrap().unwrap())
            .await
            .expect("answer");
        let body = String::from_utf8_lossy(&r.body().await.unwrap()).into_owned();
        assert_eq!(r.status().as_u16(), want, "shard {shard}: {body}");
    }
    let b = cluster.metrics(1).await;
    assert_eq!(
        metric_in(
            &b,
            "chute_internal_refused_total",
            &["reason=\"shard_not_owned\""]
        ),
        1.0
    );
    assert_eq!(
        metric_in(&b, "chute_peer_received_records_total", &["peer=\"c\""]),
        2.0
    );
    settle(&bases[1]).await;
    assert_eq!(
        cluster.rows_per_shard().await[1],
        2,
        "b stored its own shard's batch"
    );
    let c = cluster.metrics(2).await;
    assert_eq!(
        metric_in(&c, "chute_peer_received_records_total", &[]),
        0.0,
        "b forwarded nothing"
    );
    let b = cluster.metrics(1).await;
    assert_eq!(
        metric_in(
            &b,
            "chute_internal_refused_total",
            &["reason=\"unauthorized\""]
        ),
        3.0
    );
    assert_eq!(
        metric_in(
            &b,
            "chute_internal_refused_total",
            &["reason=\"unknown_node\""]
        ),
        1.0
    );
    assert_eq!(
        metric_in(
            &b,
            "chute_internal_refused_total",
            &["reason=\"layout_mismatch\""]
        ),
        1.0
    );

    // a's forwards are refused for their layout: counted on both sides, nothing stored.
    let body = (0..500)
        .map(|n| {
            json!({"message": format!("m-{n}"), "host": format!("h{n}"), "app": "app"}).to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let r = http
        .post(format!("{}/api/v1/logs", bases[0]))
        .content_type("application/x-ndjson")
        .send_body(body)
        .await
        .expect("answer");
    assert_eq!(
        r.status().as_u16(),
        200,
        "a keeps accepting: the records wait on its disk"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = cluster.metrics(0).await;
        let refused = metric_in(
            &a,
            "chute_peer_failures_total",
            &["peer=\"b\"", "reason=\"layout_mismatch\""],
        );
        if refused >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a's forwards to b were not refused:\n{}",
            cluster.log(0)
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let b = cluster.metrics(1).await;
    assert!(
        metric_in(
            &b,
            "chute_internal_refused_total",
            &["reason=\"layout_mismatch\""]
        ) >= 3.0
    );
    assert!(
        cluster.log(1).contains("layout_mismatch"),
        "b logs the refusal"
    );
    let rows = cluster.rows_per_shard().await;
    assert_eq!(
        (rows[1], rows[2]),
        (2, 0),
        "nothing from a reached b's or c's shard: {rows:?}"
    );
    assert!(
        metric_in(
            &cluster.metrics(0).await,
            "chute_queue_bytes",
            &["destination=\"peer-b\""]
        ) > 0.0,
        "the refused records wait in a's queue"
    );
}

#[actix_web::test]
async fn nodes_talk_over_mutual_tls_and_a_client_without_a_certificate_is_refused() {
    let pki = pki();
    let cluster = TestCluster::start_with(["", "", ""], Some(&pki)).await;
    let bases = cluster.bases();
    assert!(bases[0].starts_with("https://"));
    let dir = cluster.dir.path();
    let client = |identity: bool| {
        let tls = chute::tls::client_config(
            &dir.join("ca.pem"),
            identity
                .then(|| (dir.join("client.pem"), dir.join("client.key")))
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        )
        .unwrap();
        awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(tls))
            .finish()
    };
    let trusted = client(true);
    let body: String = (0..3000)
        .map(|n| {
            json!({"message": format!("tls-{n}"), "host": format!("h{n}"), "app": "app"})
                .to_string()
                + "\n"
        })
        .collect();
    let r = trusted
        .post(format!("{}/api/v1/logs", bases[0]))
        .insert_header(("content-type", "application/x-ndjson"))
        .send_body(body.clone())
        .await
        .expect("answer over mutual TLS");
    assert_eq!(r.status().as_u16(), 200);

    // a forwards b's and c's shares to them over mutual TLS.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = cluster.rows_per_shard().await;
        if rows.iter().sum::<i64>() == 3000 {
            assert!(rows.iter().all(|n| *n > 0), "{rows:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all stored: {rows:?}\n{}",
            cluster.log(0)
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    // Without a client certificate, or over plain HTTP, nothing gets through.
    let stranger = client(false)
        .post(format!("{}/api/v1/logs", bases[1]))
        .insert_header(("content-type", "application/x-ndjson"))
        .send_body(body.clone())
        .await;
    assert!(
        stranger.is_err(),
        "a client without a certificate got an answer"
    );
    let plain = awc::Client::default()
        .get(bases[1].replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(
        !matches!(plain, Ok(ref r) if r.status().is_success()),
        "plain HTTP answered"
    );

    // `chute cluster --config` asks as a peer would.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
        .args(["cluster", "--config"])
        .arg(&cluster.nodes[0].config)
        .output()
        .expect("chute cluster");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("b                up") && text.contains("c                up"),
        "{text}"
    );
}

/// A rolling rotation of the peer token while records flow: each node in turn is
/// restarted with `[new, old]` (so for a while some nodes know only the old token
/// and are sent the new one first), then each with `[new]` alone. Forwarding goes
/// on throughout: a node falls back to the next token of its list for a peer that
/// refuses one. Nothing acknowledged is lost or stored twice.
#[actix_web::test]
async fn a_rolling_peer_token_rotation_under_load_loses_and_duplicates_nothing() {
    const NEW: &str = "rotated-peer-token-9876543210";
    let mut cluster = TestCluster::start(["", "", ""]).await;
    let bases = cluster.bases();
    let load = Load::start_many(bases.clone(), 4, 100);
    let mut unauthorized = 0.0;
    for list in [format!("[\"{NEW}\", \"{TOKEN}\"]"), format!("\"{NEW}\"")] {
        for i in 0..3 {
            // What node i's peers were refused before it restarts.
            for j in 0..3 {
                unauthorized += metric_in(
                    &cluster.metrics(j).await,
                    "chute_peer_failures_total",
                    &["reason=\"unauthorized\""],
                );
            }
            cluster.set_peer_token(i, &list);
            cluster.stop_node(i);
            cluster.start_node(i);
            actix_web::rt::time::sleep(Duration::from_secs(2)).await;
            if i == 0 && list.starts_with('[') {
                // a has [new, old], b and c only the old token: a still forwards.
                let sent =
                    |text: &str| metric_in(text, "chute_peer_batches_sent_total", &["peer=\"b\""]);
                let before = sent(&cluster.metrics(0).await);
                actix_web::rt::time::sleep(Duration::from_secs(2)).await;
                let after = sent(&cluster.metrics(0).await);
                assert!(
                    after > before,
                    "a stopped forwarding to b: {before} -> {after}"
                );
            }
        }
    }
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let acked = load.finish().await;
    assert!(acked.len() > 1000, "records flowed: {}", acked.len());
    cluster.settle().await;
    assert_exactly_once_in(&cluster.dsns, &acked).await;
    // The fallback was needed: a node with [new, old] was refused "new" by one
    // that knew only the old token, and went on with the old one.
    assert!(unauthorized > 0.0, "no peer was ever refused a token");
    for (i, rows) in cluster.rows_per_shard().await.iter().enumerate() {
        assert!(*rows > 0, "shard {i} got nothing");
    }
}
