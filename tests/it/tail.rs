//! Live tail on one node: `/loki/api/v1/tail` starts with the newest lines, then
//! sends each committed line its query selects (and no other), checks the query
//! before upgrading, and tells a client that cannot keep up what it dropped.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::*;

/// Posts `records` (JSON objects) as one request; panics unless 200.
pub(crate) async fn post(base: &str, records: &[Value]) {
    post_as(base, "default", records).await;
}

/// Posts `records` of `tenant`.
pub(crate) async fn post_as(base: &str, tenant: &str, records: &[Value]) {
    let mut response = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .post(format!("{base}/api/v1/logs"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-chute-tenant", tenant))
        .send_body(Value::from(records.to_vec()).to_string())
        .await
        .expect("answer");
    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.body().await
    );
}

pub(crate) type Frames = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// A tail of `query` on the node at `base`.
pub(crate) async fn open_tail(base: &str, query: &str, extra: &str) -> Frames {
    let url = format!(
        "{base}/loki/api/v1/tail?query={}{extra}",
        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
    );
    let (_, frames) = awc::Client::builder()
        .max_http_version(awc::http::Version::HTTP_11)
        .finish()
        .ws(url)
        .max_frame_size(64 << 20)
        .connect()
        .await
        .expect("tail");
    frames
}

/// The next data frame, as JSON (panics after `wait`).
pub(crate) async fn next_frame(frames: &mut Frames, wait: Duration) -> Value {
    loop {
        let frame = actix_web::rt::time::timeout(wait, frames.next())
            .await
            .expect("a frame in time")
            .expect("the tail is open")
            .expect("a frame");
        match frame {
            awc::ws::Frame::Text(text) => return serde_json::from_slice(&text).expect("JSON"),
            awc::ws::Frame::Ping(p) => {
                frames.send(awc::ws::Message::Pong(p)).await.expect("pong");
            }
            _ => {}
        }
    }
}

/// Lines of a frame, with their stream labels.
pub(crate) fn lines(frame: &Value) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    for stream in frame["streams"].as_array().expect("streams") {
        for v in stream["values"].as_array().unwrap() {
            out.push((stream["stream"].clone(), v[1].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// Frames until `want` lines have come (panics after `wait`).
pub(crate) async fn collect(frames: &mut Frames, want: usize, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = next_frame(frames, left.max(Duration::from_millis(1))).await;
        got.extend(lines(&frame).into_iter().map(|(_, l)| l));
    }
    got
}

#[actix_web::test]
async fn a_tail_starts_with_the_newest_lines_then_gets_each_committed_line_it_selects() {
    let app = spawn_app().await;
    let old: Vec<Value> = (0..8)
        .map(|i| {
            let ts = chrono::Utc::now() - chrono::Duration::seconds(8 - i);
            json!({"app": "shop", "host": "w1", "ts": ts.to_rfc3339(), "message": format!("old {i}")})
        })
        .collect();
    post(&app.base, &old).await;
    settle(&app.base).await;
    let mut tail = open_tail(&app.base, r#"{app="shop"} != "skip""#, "&limit=3").await;
    let first = next_frame(&mut tail, Duration::from_secs(10)).await;
    let got: Vec<String> = lines(&first).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, ["old 5", "old 6", "old 7"], "newest 3, oldest first");
    assert!(first["dropped_entries"].is_null());

    // Lines of another app, another tenant, or filtered out never come.
    post(
        &app.base,
        &[
            json!({"app": "other", "message": "not mine"}),
            json!({"app": "shop", "message": "skip me"}),
            json!({"app": "shop", "severity": 3, "host": "w2", "message": "new 1", "fields": {"order": 7}}),
        ],
    )
    .await;
    post_as(
        &app.base,
        "t2",
        &[json!({"app": "shop", "message": "another tenant"})],
    )
    .await;
    let sent = Instant::now();
    let frame = next_frame(&mut tail, Duration::from_secs(10)).await;
    let arrived = sent.elapsed();
    let got = lines(&frame);
    assert_eq!(got.len(), 1, "{frame}");
    assert_eq!(got[0].1, "new 1");
    assert_eq!(got[0].0["level"], "error");
    assert_eq!(got[0].0["host"], "w2");
    assert_eq!(got[0].0["order"], "7", "fields as structured metadata");
    assert!(arrived < Duration::from_secs(5), "took {arrived:?}");

    // One client is counted while it is open.
    let metrics = get_metrics(&app).await;
    assert_eq!(
        metric_in(&metrics, "chute_tail_clients", &["kind=\"client\""]),
        1.0
    );
}

async fn get_metrics(app: &TestApp) -> String {
    let mut r = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics");
    String::from_utf8_lossy(&r.body().limit(8 << 20).await.unwrap()).into_owned()
}

#[actix_web::test]
async fn a_bad_tail_query_is_a_400_with_its_position_before_any_upgrade() {
    let app = spawn_app().await;
    for (query, needle) in [
        (r#"{app="shop""#, "line 1, col"),
        (r#"count_over_time({app="a"}[1m])"#, "log query"),
    ] {
        let url = format!(
            "{}/loki/api/v1/tail?query={}",
            app.base,
            form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let mut r = app.http.get(url).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = serde_json::from_slice(&r.body().await.unwrap()).unwrap();
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
    }
}

#[actix_web::test]
async fn a_client_that_does_not_read_loses_lines_and_is_told_which_never_memory() {
    let app = spawn_app().await;
    let mut tail = open_tail(&app.base, r#"{app="flood"}"#, "&limit=1").await;
    let _ = next_frame(&mut tail, Duration::from_secs(10)).await;
    // 40,000 lines of 2 KB while the client reads nothing: more than the socket,
    // the session and the subscription's buffer hold together.
    let text = "x".repeat(2000);
    for chunk in 0..40 {
        let records: Vec<Value> = (0..1000)
            .map(|i| json!({"app": "flood", "message": format!("{chunk}-{i} {text}")}))
            .collect();
        post(&app.base, &records).await;
    }
    settle(&app.base).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let dropped = metric_in(
        &get_metrics(&app).await,
        "chute_tail_dropped_entries_total",
        &["reason=\"slow_subscriber\""],
    );
    assert!(dropped > 0.0, "nothing dropped");
    // Reading now: the lines kept, then a frame naming what was dropped.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut received, mut named) = (0usize, 0usize);
    while named == 0 {
        assert!(
            Instant::now() < deadline,
            "no frame named the dropped lines"
        );
        let frame = next_frame(&mut tail, Duration::from_secs(30)).await;
        received += lines(&frame).len();
        if let Some(d) = frame["dropped_entries"].as_array() {
            named = d.len();
            assert!(
                d[0]["labels"]["app"] == "flood" && d[0]["timestamp"].is_string(),
                "{frame}"
            );
        }
    }
    assert!(received < 40_000, "every line came: nothing was dropped");
    assert!(named <= 100, "the samples are bounded: {named}");
}

#[actix_web::test]
async fn without_tokens_a_page_of_another_site_cannot_open_a_tail() {
    let app = spawn_app().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let url = format!("{}/loki/api/v1/tail?query=%7Bapp%3D%22t%22%7D", app.base);
    let connect = |origin: Option<String>| {
        let url = url.clone();
        async move {
            let mut req = awc::Client::builder()
                .max_http_version(awc::http::Version::HTTP_11)
                .finish()
                .ws(url);
            if let Some(origin) = origin {
                req = req.origin(origin);
            }
            match req.connect().await {
                Ok((r, _)) => r.status().as_u16(),
                Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(connect(Some("https://evil.example".into())).await, 403);
    assert_eq!(
        connect(Some(format!("http://{host}"))).await,
        101,
        "the console's own page"
    );
    assert_eq!(connect(None).await, 101, "a client that is not a browser");
    assert_eq!(
        app.metric("chute_auth_refused_total", &["reason=\"cross_origin\""]),
        1.0
    );
    app.stop().await;
}
