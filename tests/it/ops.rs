//! Running under systemd.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::helpers::*;

/// Collects notifications from chute until `want` arrives (or panics after 30 s).
fn wait_for_state(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 512];
    while !seen.iter().any(|s| s.lines().any(|l| l == want)) {
        assert!(Instant::now() < deadline, "no {want} among {seen:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[actix_web::test]
async fn systemd_hears_ready_then_watchdog_heartbeats_then_stopping() {
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let config = write_config(dir.path(), &dir.path().join("data"), &dsn, "");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let child = std::process::Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" serve --config \"$1\""])
        .arg(env!("CARGO_BIN_EXE_chute"))
        .arg(&config)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(dir.path().join("chute.log")).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child,
        log: dir.path().join("chute.log"),
    };
    let mut seen = Vec::new();
    wait_for_state(&sock, "READY=1", &mut seen);
    // Ready means the listeners answer.
    let mut health = awc::Client::default()
        .get(format!("{}/healthz", daemon.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let _ = health.body().await;

    // Heartbeats every ~100 ms (half of WATCHDOG_USEC).
    seen.clear();
    let until = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let beats = seen
        .iter()
        .filter(|s| s.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(
        (5..=15).contains(&beats),
        "{beats} heartbeats in one second: {seen:?}"
    );

    daemon.signal(Signal::SIGTERM);
    wait_for_state(&sock, "STOPPING=1", &mut seen);
    assert_eq!(daemon.child.wait().unwrap().code(), Some(0));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = temp_dir();
    // The unit names /usr/bin/chute; point it at the binary under test.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/chute.service"
    ))
    .unwrap()
    .replace("/usr/bin/chute", env!("CARGO_BIN_EXE_chute"));
    let path = dir.path().join("chute.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_production_example_config_is_valid() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
        .args([
            "validate",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/chute.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_web::test]
async fn sighup_keeps_a_broken_file_out_applies_live_settings_and_reports_the_rest() {
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let config = write_config(dir.path(), &dir.path().join("data"), &dsn, "");
    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let base = daemon.base();
    let metric = |name: &'static str, label: &'static str| {
        let base = base.clone();
        async move {
            let mut r = awc::Client::default()
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&r.body().await.unwrap()).into_owned();
            metric_in(&text, name, &[label])
        }
    };
    let post = |body: String| {
        let base = base.clone();
        async move {
            let r = awc::Client::default()
                .post(format!("{base}/api/v1/logs"))
                .content_type("application/json")
                .send_body(body)
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let good = std::fs::read_to_string(&config).unwrap();

    // A broken file: counted, and the daemon runs on.
    std::fs::write(&config, format!("{good}\n[bogus]\n")).unwrap();
    daemon.signal(Signal::SIGHUP);
    while metric("chute_config_reloads_total", "result=\"invalid\"").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the broken reload was not counted"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        alive(daemon.child.id() as i32),
        "still running on the old configuration"
    );

    // A live setting: the body limit takes effect without a restart.
    let body = format!("[{{\"message\": \"{}\"}}]", "x".repeat(2000));
    assert_eq!(post(body.clone()).await, 200);
    std::fs::write(
        &config,
        good.replace("[http]\n", "[http]\nmax_body_bytes = 1024\n"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    while metric("chute_config_reloads_total", "result=\"applied\"").await < 1.0 {
        assert!(Instant::now() < deadline, "the live change was not applied");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(post(body).await, 413, "the new limit is in force");

    // A setting that cannot change live is reported, and the daemon carries on.
    std::fs::write(
        &config,
        good.replace("[node]\n", "[node]\nshutdown_timeout_ms = 5000\n"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    while metric("chute_config_reloads_total", "result=\"restart_needed\"").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the changed file was not reported"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.log_text().contains("restart chute to apply it"));
    assert_eq!(
        post("[{\"message\": \"still here\"}]".to_owned()).await,
        200
    );
}

/// Metric names used in a PromQL expression (chute's and the process collector's).
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.starts_with("chute_") || word.starts_with("process_") {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(&word);
                out.push(base.to_owned());
            }
            word.clear();
        }
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/dashboards/chute.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// Every PromQL expression of the dashboard and the alert rules.
pub fn watched_exprs() -> Vec<String> {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/alerts/chute-rules.yml"
    ))
    .unwrap();
    let rule_exprs = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(str::to_owned);
    dashboard_exprs().into_iter().chain(rule_exprs).collect()
}

/// The metric families present in a `/metrics` text (histograms by their base name).
pub fn families_in(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

/// Whether `text` holds a series of `name` with each of `labels` as a label value,
/// at 0.
pub fn series_at_zero(text: &str, name: &str, labels: &[&str]) -> bool {
    text.lines().any(|l| {
        l.starts_with(&format!("{name}{{"))
            && labels.iter().all(|v| l.contains(&format!("\"{v}\"")))
            && l.ends_with(" 0")
    })
}

/// The metric families the dashboard and the alert rules name, among those `which`
/// selects, that `text` (a `/metrics` answer) lacks.
pub fn watched_but_missing(text: &str, which: impl Fn(&str) -> bool) -> Vec<String> {
    let present = families_in(text);
    let mut missing: Vec<String> = watched_exprs()
        .iter()
        .flat_map(|e| metric_names(e))
        .filter(|n| which(n) && !present.contains(n))
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Families that exist only where there are peers (checked on a cluster node).
pub fn cluster_only(name: &str) -> bool {
    name.starts_with("chute_peer_") || name.starts_with("chute_deadletter_")
}

#[actix_web::test]
async fn every_metric_the_dashboard_and_alerts_watch_is_exported_before_any_traffic() {
    let app = spawn_app_with(|c| {
        let udp = chute::config::ListenerConfig::plain(
            chute::config::Protocol::Udp,
            "127.0.0.1:0".parse().unwrap(),
        );
        c.syslog.listeners = Some(vec![udp]);
    })
    .await;
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let missing = watched_but_missing(&text, |n| !cluster_only(n));
    assert!(
        missing.is_empty(),
        "not in /metrics before traffic: {missing:?}"
    );
    // The series the alerts select by label are there at 0 as well.
    for (name, labels) in [
        (
            "chute_records_rejected_total",
            &["http", "invalid_record"][..],
        ),
        ("chute_records_rejected_total", &["syslog", "backpressure"]),
        ("chute_rows_dropped_total", &["0", "quarantine_refused"]),
        ("chute_queue_errors_total", &["shard-0", "io"]),
        ("chute_queue_errors_total", &["shard-0", "poisoned"]),
        ("chute_config_reloads_total", &["invalid"]),
        ("chute_internal_refused_total", &["unauthorized"]),
        ("chute_write_retries_total", &["0", "connection"]),
        (
            "chute_syslog_connections_closed_total",
            &["udp:127.0.0.1:0", "idle"],
        ),
    ] {
        assert!(
            series_at_zero(&text, name, labels),
            "{name} {labels:?} is not at 0 in:\n{text}"
        );
    }
    app.stop().await;
}

#[test]
fn the_dashboard_and_the_alert_rules_name_only_metrics_chute_exports() {
    let exported = chute::metrics::Metrics::new().names();
    let exprs = watched_exprs();
    assert!(exprs.len() > 20, "{} expressions", exprs.len());
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty() || expr.contains("up{"),
            "no metric in {expr}"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported"
            );
        }
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/dashboards/chute.json"
    ))
    .unwrap();
    assert!(
        !text.contains("job=") && !text.contains("instance=\\\""),
        "no hard-coded job or instance"
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/alerts");
    for args in [
        ["check", "rules", "chute-rules.yml"],
        ["test", "rules", "chute-rules.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[actix_web::test]
async fn a_real_prometheus_scrapes_chute_and_answers_a_dashboard_query() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_json(&serde_json::json!([{"message": "scrape me"}]))
            .await
            .status,
        200
    );
    app.settle().await;
    let dir = temp_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = app.base.trim_start_matches("http://").to_owned();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: chute\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let mut prometheus = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus runs");
    let http = awc::Client::default();
    let query = |q: String| {
        let http = http.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/api/v1/query");
            let mut r = http
                .get(url)
                .query(&[("query", q.as_str())])
                .ok()?
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = r.json().await.ok()?;
            body["data"]["result"].as_array().cloned()
        }
    };
    // The dashboard's "rows written per shard", with Grafana's variables filled in.
    let panel = dashboard_exprs()
        .into_iter()
        .find(|e| e.contains("chute_rows_written_total"))
        .unwrap()
        .replace("$__rate_interval", "1m")
        .replace("$instance", ".*");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut answered = false;
    while std::time::Instant::now() < deadline {
        let up = query("up{job=\"chute\"}".to_owned())
            .await
            .unwrap_or_default();
        let rows = query(panel.clone()).await.unwrap_or_default();
        if up.first().and_then(|r| r["value"][1].as_str()) == Some("1") && !rows.is_empty() {
            assert_eq!(rows[0]["metric"]["shard"], "0");
            answered = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(
        answered,
        "Prometheus never saw chute up with data: {}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    app.stop().await;
}
