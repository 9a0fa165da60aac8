//! The hostile mix of the hardening issue, against a chute in its own process:
//! gzip bombs of `[1,1,...]`, many concurrent 16 MiB bodies, connections that
//! dribble their headers, and oversized syslog frames on 100 TCP connections.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::*;

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// gzip of `text`.
fn gzip(text: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

/// The hostile mix of the hardening issue, against a chute in its own process:
/// gzip bombs of `[1,1,...]`, many concurrent 16 MiB bodies, connections that
/// dribble their headers, and oversized syslog frames on 100 TCP connections.
/// `HOSTILE_SECS` sets how long (20 s by default; the figures in BENCHMARKS.md
/// come from 60 s runs).
#[actix_web::test]
async fn under_the_hostile_mix_memory_stays_bounded_and_normal_requests_are_answered() {
    let _machine = crate::MACHINE.lock().await;
    let secs: u64 = std::env::var("HOSTILE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let (daemon, base, syslog_addr) = start_chute(dir.path(), &dsn, "");
    let stop = Arc::new(AtomicBool::new(false));

    let hostile_answers = Arc::new(AtomicUsize::new(0));
    let mut tasks = start_hostile(&base, &syslog_addr, &stop, &hostile_answers);
    let (sampler, peak) = sample_peak_rss(daemon.child.id(), &stop);
    tasks.push(sampler);

    // Normal requests throughout: each must be answered 200 within 1 s.
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        let body: String = (0..10)
            .map(|i| format!("{{\"message\":\"normal {n} {i}\"}}\n"))
            .collect();
        n += 1;
        let t = Instant::now();
        let answer = client
            .post(format!("{base}/api/v1/logs"))
            .insert_header(("content-type", "application/x-ndjson"))
            .send_body(body)
            .await;
        let took = t.elapsed();
        latencies.push(took);
        match answer {
            Ok(r) if r.status().as_u16() == 200 && took < Duration::from_secs(1) => {}
            Ok(r) => failures.push(format!("{} after {took:?}", r.status())),
            Err(e) => failures.push(format!("{e} after {took:?}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peak_mib = peak.load(Ordering::Relaxed) / 1024;
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = latencies.last().copied().unwrap_or_default();
    eprintln!(
        "hostile mix {secs} s: peak RSS {peak_mib} MiB; normal requests {}: p50 {p50:?}, max {max:?}; \
         hostile requests answered {}",
        latencies.len(),
        hostile_answers.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "normal requests not answered 200 within 1 s: {failures:?}"
    );
    assert!(peak_mib <= 256, "peak RSS {peak_mib} MiB");
    for t in tasks {
        t.abort();
    }
    drop(daemon);
}

/// A chute in its own process with one TCP syslog listener, its data in `dir`
/// and `extra` config lines: the daemon, its HTTP base URL and its syslog address.
pub(crate) fn start_chute(
    dir: &std::path::Path,
    dsn: &str,
    extra: &str,
) -> (Daemon, String, String) {
    let config = write_config_with(
        dir,
        &dir.join("data"),
        dsn,
        "",
        "[[syslog.listeners]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
        extra,
    );
    let daemon = Daemon::start(&config, dir.join("chute.log"));
    let base = daemon.base();
    let syslog = syslog_addr(&daemon);
    (daemon, base, syslog)
}

/// The address of the first syslog listener of `daemon`, from its log.
fn syslog_addr(daemon: &Daemon) -> String {
    daemon.wait_for("syslog listener ready");
    let log = daemon.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("syslog listener ready"))
        .unwrap();
    line.split("addr=Some(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_owned()
}

/// Starts the hostile mix against the chute at `base` (HTTP) and `syslog_addr`
/// (TCP syslog) until `stop`; `answers` counts the hostile requests answered.
pub(crate) fn start_hostile(
    base: &str,
    syslog_addr: &str,
    stop: &Arc<AtomicBool>,
    answers: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    // Gzip bombs: 16 MiB of [1,1,...] in about 16 KB.
    let bomb = Arc::new(gzip(format!("[{}1]", "1,".repeat(8 << 20)).as_bytes()));
    // Bodies of 16 MiB: 16 records of 1 MiB each, refused for their time stamp.
    let line = format!(
        "{{\"message\":\"{}\",\"ts\":\"never\"}}\n",
        "x".repeat(1 << 20)
    );
    let big = Arc::new(gzip(line.repeat(16).as_bytes()));
    for (body, content_type, n) in [
        (bomb, "application/json", 4),
        (big, "application/x-ndjson", 32),
    ] {
        for _ in 0..n {
            let (body, stop, base, answers) = (
                body.clone(),
                Arc::clone(stop),
                base.to_owned(),
                answers.clone(),
            );
            tasks.push(actix_web::rt::spawn(async move {
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .finish();
                while !stop.load(Ordering::Relaxed) {
                    let sent = client
                        .post(format!("{base}/api/v1/logs"))
                        .insert_header(("content-type", content_type))
                        .insert_header(("content-encoding", "gzip"))
                        .send_body((*body).clone())
                        .await;
                    if sent.is_ok() {
                        answers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    // Connections that send one header byte per second.
    for _ in 0..500 {
        let (stop, base) = (Arc::clone(stop), base.to_owned());
        tasks.push(actix_web::rt::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(host_port(&base)).await else {
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for byte in b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }));
    }
    // Oversized syslog frames: 1 MB each, one a second, on 100 connections.
    let frame = {
        let msg = format!("<14>1 - hostile flood - - - {}", "y".repeat(1_000_000));
        Arc::new(format!("{} {msg}", msg.len()).into_bytes())
    };
    for _ in 0..100 {
        let (stop, frame, addr) = (Arc::clone(stop), frame.clone(), syslog_addr.to_owned());
        tasks.push(actix_web::rt::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&frame).await.is_err() {
                    return;
                }
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    tasks
}

/// Samples the resident memory of process `pid` every 100 ms until `stop`; the
/// peak, in KiB.
pub(crate) fn sample_peak_rss(
    pid: u32,
    stop: &Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let peak = Arc::new(AtomicU64::new(0));
    let (stop, peak_out) = (stop.clone(), peak.clone());
    let task = actix_web::rt::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0);
            peak.fetch_max(rss, Ordering::Relaxed);
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (task, peak_out)
}
