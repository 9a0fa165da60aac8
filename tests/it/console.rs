//! The web console: its files as chute serves them, and the console itself in a
//! real browser (Playwright driving Debian's Chromium, scripts in `tests/console/`)
//! against a chute with real records: search, volume, live tail, the URL, the
//! cluster page with a stopped node, tokens, and an axe-core accessibility check.
//! Screenshots of each view land in `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chute::config::tokens::{digest, hex};
use chute::config::{Scope, TokenConfig};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::helpers::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where a scenario's screenshots and result go.
fn screenshots(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    target.join("console-screenshots").join(name)
}

/// Installs the scripts' npm packages (`npm ci`) once, if `scripts/dev test` has
/// not already.
fn ensure_node_modules() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = repo().join("tests/console");
    if *done || dir.join("node_modules/playwright-core").exists() {
        *done = true;
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm runs (apt-get install npm)");
    assert!(status.success(), "npm ci in tests/console failed");
    *done = true;
}

/// Runs `node tests/console/<script> <base> <out> <args...>` and returns the JSON
/// it prints; panics with its output when it fails.
async fn browse(script: &str, base: &str, name: &str, args: &[&str]) -> Value {
    ensure_node_modules();
    let out = screenshots(name);
    let mut command = std::process::Command::new("node");
    command
        .arg(repo().join("tests/console").join(script))
        .arg(base)
        .arg(&out)
        .args(args)
        .current_dir(repo().join("tests/console"));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

/// 1,200 lines of `app`: `line 0000` (40 minutes ago) to `line 1199` (now), levels
/// in turn, hosts web-0..web-2, every tenth with a field `order`.
fn lines_of(app: &str) -> Vec<Value> {
    let now = chrono::Utc::now();
    let severities = ["info", "warning", "err", "debug", "crit"];
    (0..1200)
        .map(|i| {
            let ts = now - chrono::Duration::seconds((1200 - i) * 2);
            let mut r = json!({
                "ts": ts.to_rfc3339(),
                "app": app,
                "host": format!("web-{}", i % 3),
                "severity": severities[(i % 5) as usize],
                "message": format!("line {i:04}"),
            });
            if i % 10 == 0 {
                r["fields"] = json!({"order": i});
            }
            r
        })
        .collect()
}

fn assert_accessible(result: &Value, key: &str) {
    let violations = result[key].as_array().expect(key);
    assert!(
        violations.is_empty(),
        "serious or critical accessibility violations ({key}): {violations:#?}"
    );
}

/// A GET's status, headers and body as sent (awc here decompresses nothing).
struct Raw {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: bytes::Bytes,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }
}

async fn raw_get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut req = app.http.get(format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send().await.expect("answer");
    let body = res.body().await.expect("body");
    Raw {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

#[actix_web::test]
async fn the_console_is_served_gzipped_with_tags_and_an_unknown_file_is_a_counted_404() {
    let app = spawn_app().await;
    // As a browser asks for it (a client that does not ask for HTML gets the
    // Elasticsearch API's answer).
    let browser = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    let res = raw_get(&app, "/", &[("accept-encoding", "gzip"), browser]).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(res.header("cache-control").as_deref(), Some("no-cache"));
    assert!(res
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    let etag = res.header("etag").expect("an ETag");
    let mut html = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&res.body[..]), &mut html)
        .expect("gzip");
    assert!(html.contains("<script type=\"module\" src=\"/console/main.js\">"));

    // Unchanged: 304 without a body.
    let res = raw_get(&app, "/", &[("if-none-match", &etag), browser]).await;
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());

    // Without gzip in Accept-Encoding, plain; each file has its type.
    let res = raw_get(&app, "/console/main.js", &[("accept-encoding", "identity")]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&res.body).contains("SearchView"));
    let res = raw_get(&app, "/console/style.css", &[]).await;
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );

    let before = app.metric("chute_requests_rejected_total", &["not_found"]);
    let (status, body) = app.get("/console/../Cargo.toml").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/console/nope.js").await;
    assert_eq!(status, 404);
    assert!(body.contains("no such file"), "{body}");
    assert!(app.metric("chute_requests_rejected_total", &["not_found"]) >= before + 1.0);
    assert!(app.metric("chute_http_requests_total", &["/console/{file}", "4xx"]) >= 1.0);
    app.stop().await;
}

#[actix_web::test]
async fn the_cluster_answer_keeps_its_fields_and_adds_counters_for_rates() {
    let app = spawn_app().await;
    app.send_ndjson((0..5).map(|i| json!({"app": "rates", "message": format!("m {i}")})))
        .await;
    let (status, text) = app.get("/api/v1/cluster").await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    for key in ["node", "layout", "shard_key", "nodes", "shards"] {
        assert!(!v[key].is_null(), "{key} is still there: {v}");
    }
    assert_eq!(v["shards"][0]["up"], true, "{v}");
    assert_eq!(v["shards"][0]["queue"]["batches"], 0, "{v}");
    let t = &v["totals"];
    assert!(t["at_ms"].as_i64().unwrap() > 1_700_000_000_000, "{t}");
    assert_eq!(t["records_accepted"], 5, "{t}");
    assert_eq!(t["records_received"], 5, "{t}");
    assert_eq!(t["rows_written"], 5, "{t}");
    assert_eq!(t["records_rejected"], 0, "{t}");
    // An answer without them (an older node) still reads.
    let mut old = v.clone();
    old.as_object_mut().unwrap().remove("totals");
    let report: chute::cluster::report::ClusterReport = serde_json::from_value(old).unwrap();
    assert_eq!(report.totals.records_accepted, 0);
    app.stop().await;
}

fn token_entry(name: &str, token: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: hex(&digest(token)),
        tenants: vec!["default".into()],
        scopes: scopes.to_vec(),
    }
}

const TOKEN: &str = "chute_console_test_token_0123456789abcdef";

/// The subprotocol that carries `token`, as the console sends it.
fn token_protocol(token: &str) -> String {
    use base64::Engine;
    format!(
        "base64url.bearer.chute.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
    )
}

#[actix_web::test]
async fn with_tokens_a_tail_is_401_without_one_and_opens_with_it_in_a_subprotocol() {
    let app = spawn_app_with(|c| {
        c.tokens = vec![token_entry(
            "console",
            TOKEN,
            &[Scope::Ingest, Scope::Query],
        )];
    })
    .await;
    let url = format!("{}/loki/api/v1/tail?query=%7Bapp%3D%22t%22%7D", app.base);
    let client = || {
        awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish()
    };
    let refused = |e: awc::error::WsClientError| match e {
        awc::error::WsClientError::InvalidResponseStatus(s) => s.as_u16(),
        other => panic!("not a refusal: {other}"),
    };
    let missing = app.metric("chute_auth_refused_total", &["missing_token"]);
    let e = client().ws(&url).connect().await.err().expect("refused");
    assert_eq!(refused(e), 401);
    assert_eq!(
        app.metric("chute_auth_refused_total", &["missing_token"]),
        missing + 1.0
    );
    // A subprotocol that does not decode, and a token chute does not know.
    let malformed = app.metric("chute_auth_refused_total", &["malformed_credentials"]);
    let e = client()
        .ws(&url)
        .protocols(["chute.tail", "base64url.bearer.chute.!!"])
        .connect()
        .await
        .err()
        .expect("refused");
    assert_eq!(refused(e), 401);
    assert_eq!(
        app.metric("chute_auth_refused_total", &["malformed_credentials"]),
        malformed + 1.0
    );
    let e = client()
        .ws(&url)
        .protocols(["chute.tail".to_owned(), token_protocol("chute_wrong")])
        .connect()
        .await
        .err()
        .expect("refused");
    assert_eq!(refused(e), 401);

    // The token in a subprotocol: open, answered with chute.tail (never the
    // token's protocol), and lines come.
    let (res, mut frames) = client()
        .ws(&url)
        .protocols(["chute.tail".to_owned(), token_protocol(TOKEN)])
        .connect()
        .await
        .expect("the tail opens");
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("chute.tail")
    );
    let first = crate::tail::next_frame(&mut frames, Duration::from_secs(10)).await;
    assert!(first["streams"].is_array(), "{first}");
    let a = app
        .post(
            json!([{"app": "t", "message": "seen through the subprotocol"}]).to_string(),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {TOKEN}")),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = crate::tail::collect(&mut frames, 1, Duration::from_secs(20)).await;
    assert_eq!(got, ["seen through the subprotocol"]);
    drop(frames);

    // Nor is the token anywhere in what chute said about all this.
    let text = app.metrics.render();
    assert!(!text.contains(TOKEN));
    app.stop().await;
}

#[actix_web::test]
async fn the_console_searches_draws_volume_tails_and_keeps_its_view_in_the_url() {
    let app = spawn_app().await;
    app.send_ndjson(lines_of("console-test")).await;
    let r = browse("search.mjs", &app.base, "search", &["console-test"]).await;

    // Weight and first paint of the page (BENCHMARKS.md has the figures).
    for load in r["loads"].as_array().unwrap() {
        let encoded = load["encoded_bytes"].as_f64().unwrap();
        assert!(encoded > 0.0 && encoded < 200_000.0, "{load}");
        assert!(
            load["encoded_bytes"].as_f64() < load["decoded_bytes"].as_f64(),
            "gzipped: {load}"
        );
    }
    let best_paint = r["loads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["first_contentful_paint_ms"].as_f64())
        .fold(f64::INFINITY, f64::min);
    assert!(
        best_paint < 300.0,
        "first paint {best_paint} ms: {}",
        r["loads"]
    );

    // The rows, newest first, the newest 1,000 of 1,200, virtualized.
    assert_eq!(
        r["first_rows"],
        json!([
            "line 1199",
            "line 1198",
            "line 1197",
            "line 1196",
            "line 1195"
        ])
    );
    assert!(
        r["summary"].as_str().unwrap().starts_with("1000 lines"),
        "{}",
        r["summary"]
    );
    assert!(
        r["rendered_rows"].as_u64().unwrap() < 100,
        "{}",
        r["rendered_rows"]
    );
    assert_eq!(
        r["last_rows"].as_array().unwrap().last(),
        Some(&json!("line 0200"))
    );
    assert!(
        r["scroll"]["rendered"].as_u64().unwrap() < 100,
        "{}",
        r["scroll"]
    );
    assert_eq!(r["input_after_load"], r#"{app="console-test"}"#);

    // The histogram: every line counted once in its bars, five levels.
    let bars = &r["bars"];
    assert!(bars["count"].as_u64().unwrap() >= 20, "{bars}");
    let counted = bars["lines"].as_f64().unwrap();
    assert!(
        (1190.0..=1200.0).contains(&counted),
        "{counted} lines in the bars"
    );
    assert_eq!(
        r["legend"],
        json!(["critical", "error", "warning", "info", "debug"])
    );

    // A row expands to its fields; copy as JSON; context from its stream.
    let expanded = r["expanded_text"].as_str().unwrap();
    for part in ["line 1190", "order", "1190", "web-2", "console-test"] {
        assert!(expanded.contains(part), "{part} in {expanded}");
    }
    assert_eq!(r["expanded_aria"], "true");
    assert_eq!(r["copied"]["line"], "line 1190");
    assert_eq!(r["copied"]["labels"]["host"], "web-2");
    assert_eq!(r["copied"]["structured_metadata"]["order"], "1190");
    let context = r["context"].as_array().unwrap();
    let current: Vec<&Value> = context.iter().filter(|l| l["current"] == true).collect();
    assert_eq!(current.len(), 1, "{context:?}");
    assert!(current[0]["text"].as_str().unwrap().contains("line 1190"));
    assert!(context.len() >= 10, "{context:?}");
    // Same host (web-2: i % 3 == 2), so the neighbours are 3 apart.
    assert!(context
        .iter()
        .any(|l| l["text"].as_str().unwrap().contains("line 1187")));
    assert!(context
        .iter()
        .any(|l| l["text"].as_str().unwrap().contains("line 1193")));
    assert!(!context
        .iter()
        .any(|l| l["text"].as_str().unwrap().contains("line 1191")));

    // The label browser, the keys, the URL.
    assert_eq!(r["query_from_labels"], r#"{app="console-test"}"#);
    assert_eq!(r["focused_after_slash"], "query");
    let (before, after) = (&r["round_trip"]["before"], &r["round_trip"]["after"]);
    assert_eq!(before["query"], r#"{app="console-test"} |= "line 11""#);
    assert_eq!(before["range"], "24h");
    assert!(
        before["url"].as_str().unwrap().contains("range=24h"),
        "{before}"
    );
    for key in ["url", "query", "range"] {
        assert_eq!(before[key], after[key], "a reload gives the same {key}");
    }
    let lines = |v: &Value| {
        v["summary"]
            .as_str()
            .unwrap()
            .split(',')
            .next()
            .map(str::to_owned)
    };
    assert_eq!(lines(before).as_deref(), Some("100 lines"));
    assert_eq!(lines(before), lines(after), "and the same lines");
    assert_eq!(r["zoom"]["range"], "custom");
    let (from, to) = (
        chrono::DateTime::parse_from_rfc3339(r["zoom"]["from"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(r["zoom"]["to"].as_str().unwrap()).unwrap(),
    );
    let span = to - from;
    assert!(
        span > chrono::Duration::minutes(90) && span < chrono::Duration::minutes(110),
        "a drag over 7% of 24 hours: {span}"
    );

    // Live: the line posted after the tail opened is on top.
    assert_eq!(r["live_top"], r["live_marker"]);
    assert!(r["live_url"].as_str().unwrap().contains("live=1"));
    assert_eq!(r["volume_hidden_live"], true, "no empty chart while live");
    let live_context = r["live_context"].as_array().unwrap();
    assert_eq!(live_context.len(), 1, "{}", r["live_context"]);
    assert!(live_context[0]
        .as_str()
        .unwrap()
        .contains(r["live_marker"].as_str().unwrap()));
    assert_eq!(r["new_lines_button"], "1 new line");
    assert_eq!(r["kept_in_place"], true, "what was read stays in view");
    assert_eq!(r["top_after_new_lines"], r["scrolled_marker"]);
    assert_eq!(r["new_lines_hidden_after"], true);
    assert_eq!(r["pause_label"], "Resume");
    assert_eq!(
        r["top_while_paused"], r["scrolled_marker"],
        "paused: nothing new"
    );
    assert_eq!(r["top_after_resume"], r["paused_marker"]);

    let bad = r["bad_query_status"].as_str().unwrap();
    assert!(bad.contains("line 1, col"), "{bad}");
    assert_eq!(r["bad_query_rows"], 0);

    // History and examples.
    assert_eq!(r["history"][0], r#"{app="console-test"}"#);
    assert!(r["examples"].as_array().unwrap().len() >= 5);
    assert_eq!(r["example_query"], r#"{app="nginx"}"#);
    assert_eq!(r["examples_closed"], true);

    // Dark follows the system; no serious accessibility problem in any view.
    assert_eq!(r["dark_background"], "rgb(15, 17, 21)");
    for key in ["axe_search", "axe_live", "axe_cluster", "axe_dark"] {
        assert_accessible(&r, key);
    }
    assert_eq!(r["page_errors"], json!([]), "no script errors");
    app.stop().await;
}

#[actix_web::test]
async fn the_console_asks_for_a_token_and_works_with_one() {
    let app = spawn_app_with(|c| {
        c.tokens = vec![token_entry(
            "console",
            TOKEN,
            &[Scope::Ingest, Scope::Query],
        )];
    })
    .await;
    let records: Vec<Value> = (0..3)
        .map(|i| {
            let ts = chrono::Utc::now() - chrono::Duration::seconds(3 - i);
            json!({"app": "secret-app", "ts": ts.to_rfc3339(), "message": format!("secret {i}")})
        })
        .collect();
    let a = app
        .post(
            Value::from(records).to_string(),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {TOKEN}")),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.settle().await;
    let r = browse("token.mjs", &app.base, "token", &[TOKEN, "secret-app"]).await;
    let status = r["status_without_token"].as_str().unwrap();
    assert!(status.contains("token"), "{status}");
    assert_eq!(r["rows_without_token"], 0);
    assert_eq!(
        r["rows_with_token"],
        json!(["secret 2", "secret 1", "secret 0"])
    );
    assert_eq!(r["token_in_session"], TOKEN);
    assert_eq!(r["token_in_url"], false);
    assert_eq!(r["live_top"], r["live_marker"]);
    assert_eq!(r["rows_after_reload"], 4);
    app.stop().await;
}

/// Posts 40 records of 40 hosts through `base`: some for each of two shards.
async fn send_forty(base: &str, tag: &str) {
    let records: Vec<Value> = (0..40)
        .map(|i| json!({"host": format!("h{i}"), "app": "c", "message": format!("{tag} {i}")}))
        .collect();
    crate::tail::post(base, &records).await;
}

/// The up state `/api/v1/cluster` of `base` gives node `id`.
async fn node_up(base: &str, id: &str) -> bool {
    let text = crate::cluster::get_text(&format!("{base}/api/v1/cluster")).await;
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["up"] == true)
        .expect("the node is listed")
}

#[actix_web::test]
async fn the_cluster_page_shows_a_stopped_node_as_down() {
    let dsns = [fresh_database().await, fresh_database().await];
    let dir = temp_dir();
    let ports = [free_port(), free_port()];
    let ids = ["a", "b"];
    let mut configs = Vec::new();
    for i in 0..2 {
        let mut text = format!(
            "[node]\nid = \"{}\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n\
             [syslog]\nlisteners = []\n[writer]\nflush_interval_ms = 20\n[cluster]\n\
             peer_token = \"console-peer-token-0123456789\"\nretry_initial_ms = 50\n\
             retry_max_ms = 500\n",
            ids[i],
            dir.path().join(ids[i]).display(),
            ports[i]
        );
        for j in 0..2 {
            text.push_str(&format!(
                "[[nodes]]\nid = \"{}\"\nurl = \"http://127.0.0.1:{}\"\n",
                ids[j], ports[j]
            ));
        }
        for (shard, dsn) in dsns.iter().enumerate() {
            text.push_str(&format!(
                "[[shards]]\nid = {shard}\nowner = \"{}\"\ndsn = \"{dsn}\"\npool_size = 2\n",
                ids[shard]
            ));
        }
        let path = dir.path().join(format!("{}.toml", ids[i]));
        std::fs::write(&path, text).expect("config");
        configs.push(path);
    }
    let a = Daemon::start(&configs[0], dir.path().join("a.log"));
    let mut b = Daemon::start(&configs[1], dir.path().join("b.log"));
    let base = format!("http://127.0.0.1:{}", ports[0]);
    // Records for both shards: a forwards b's to it, so b is up.
    send_forty(&base, "first").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node_up(&base, "b").await {
        assert!(
            Instant::now() < deadline,
            "b never came up:\n{}",
            a.log_text()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let up = browse("cluster.mjs", &base, "cluster-up", &["cluster-up"]).await;
    assert_eq!(up["nodes"]["a"]["state"], "self", "{up}");
    assert_eq!(up["nodes"]["b"]["state"], "up", "{up}");
    assert_eq!(
        up["shards"],
        json!([
            {"id": "0", "owner": "a", "state": "up"},
            {"id": "1", "owner": "b", "state": "remote"},
        ])
    );
    assert!(
        up["rates"]["records_accepted"]
            .as_str()
            .unwrap()
            .ends_with("/s"),
        "{up}"
    );
    let reloaded = up["rate_after_reload"].as_str().unwrap();
    assert!(
        reloaded.ends_with("/s"),
        "rates at once after a reload: {up}"
    );
    assert_accessible(&up, "axe");

    // b stops; what a forwards next fails, and the page says b is down.
    b.signal(Signal::SIGTERM);
    assert!(b.child.wait().expect("wait").success());
    send_forty(&base, "second").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_up(&base, "b").await {
        assert!(
            Instant::now() < deadline,
            "b never went down:\n{}",
            a.log_text()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let down = browse("cluster.mjs", &base, "cluster-down", &["cluster"]).await;
    assert_eq!(down["nodes"]["a"]["state"], "self", "{down}");
    assert_eq!(down["nodes"]["b"]["state"], "down", "{down}");
    assert!(
        down["nodes"]["b"]["text"]
            .as_str()
            .unwrap()
            .contains("down"),
        "{down}"
    );
    assert!(
        down["status"].as_str().unwrap().contains("Down: b"),
        "{down}"
    );
    drop(a);
}

#[actix_web::test]
async fn a_token_in_a_subprotocol_reaches_no_log_line() {
    let dir = temp_dir();
    let wrong = "chute_wrong_console_secret_5e1f";
    let extra = format!(
        "[[tokens]]\nname = \"console\"\nsha256 = \"{}\"\ntenants = [\"default\"]\nscopes = [\"ingest\", \"query\"]\n",
        hex(&digest(TOKEN))
    );
    let config = write_config(
        dir.path(),
        &dir.path().join("data"),
        &fresh_database().await,
        &extra,
    );
    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let base = daemon.base();
    let url = format!("{base}/loki/api/v1/tail?query=%7Bapp%3D%22t%22%7D");
    for secret in [TOKEN, wrong] {
        let result = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish()
            .ws(&url)
            .protocols(["chute.tail".to_owned(), token_protocol(secret)])
            .connect()
            .await;
        assert_eq!(result.is_ok(), secret == TOKEN);
        if let Ok((_, mut frames)) = result {
            crate::tail::next_frame(&mut frames, Duration::from_secs(10)).await;
        }
    }
    let log = daemon.log_text();
    assert!(
        log.contains("request refused"),
        "the refusal is logged: {log}"
    );
    for secret in [
        TOKEN.to_owned(),
        wrong.to_owned(),
        token_protocol(TOKEN),
        token_protocol(wrong),
    ] {
        let encoded = secret.trim_start_matches("base64url.bearer.chute.");
        assert!(!log.contains(encoded), "{encoded} in the log: {log}");
    }
}

#[actix_web::test]
async fn markup_and_script_in_a_record_are_shown_as_text_and_never_run() {
    let app = spawn_app().await;
    let a = app
        .post_json(&json!([
            {"app": "hostile", "host": "<b>h</b>", "message": "<img src=x onerror=\"window.__xss=1\">"},
            {"app": "hostile", "message": "plain", "fields": {"note": "<script>window.__xss=2</script>", "<b>key</b>": "<iframe src=\"javascript:window.__xss=3\">"}},
        ]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r = browse("hostile.mjs", &app.base, "hostile", &["hostile"]).await;
    assert_eq!(r["ran"], Value::Null, "no script of a record ran: {r}");
    assert_eq!(r["elements"], 0, "no element made from a record: {r}");
    assert_eq!(
        r["text_has_markup"], true,
        "the markup is shown as text: {r}"
    );
    assert!(
        r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("<img src=x onerror")),
        "{r}"
    );
    assert_eq!(r["page_errors"], json!([]));
    app.stop().await;
}
