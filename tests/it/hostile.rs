//! Senders that try to hold chute's memory or connections: slow headers, slow
//! bodies, many large bodies at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); the bytes read.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[actix_web::test]
async fn a_client_dribbling_its_headers_is_closed_after_the_request_timeout() {
    let app = spawn_app_with(|c| c.http.request_timeout_ms = 1000).await;
    let mut stream = TcpStream::connect(host_port(&app.base)).await.unwrap();
    let started = Instant::now();
    let head = b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\n";
    let mut closed = None;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = Some(String::new());
            break;
        }
        if let Some(text) = read_until_closed(&mut stream, Duration::from_millis(250)).await {
            closed = Some(text);
            break;
        }
    }
    let text = closed.expect("the connection was closed before the head was complete");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_body_that_stops_is_answered_408_after_the_body_timeout() {
    let app = spawn_app_with(|c| c.http.body_timeout_ms = 1000).await;
    let mut stream = TcpStream::connect(host_port(&app.base)).await.unwrap();
    let head = "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{\"message\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let text = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("answered within 10 s");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        app.metric("chute_requests_rejected_total", &["body_timeout"]),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn past_the_inflight_budget_new_requests_get_503_and_the_running_one_finishes() {
    const MIB: usize = 1 << 20;
    let app = spawn_app_with(|c| {
        c.http.max_body_bytes = 2 * MIB;
        c.http.max_inflight_bytes = 2 * MIB;
    })
    .await;
    let line = format!("{{\"message\":\"{}\"}}\n", "x".repeat(1000));
    let big = line.repeat(1500); // 1.5 MB
    let (first, rest) = big.as_bytes().split_at(big.len() - 1000);
    let mut slow = TcpStream::connect(host_port(&app.base)).await.unwrap();
    let head = format!(
        "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(first).await.unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;

    // 1.5 MB held by the slow request; another 1 MB does not fit in 2 MiB.
    let other = line.repeat(1000);
    let refused = app
        .post(other.clone(), &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.body["reason"], "overloaded");
    assert!(refused.retry_after.is_some());
    assert_eq!(
        app.metric("chute_requests_rejected_total", &["overloaded"]),
        1.0
    );

    slow.write_all(rest).await.unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(30))
        .await
        .expect("the running request is answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let accepted = app
        .post(other, &[("content-type", "application/x-ndjson")])
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    app.settle().await;
    assert_eq!(app.stored().await, 2500);
    app.stop().await;
}
