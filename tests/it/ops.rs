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
async fn sighup_with_a_broken_file_keeps_running_and_counts_it() {
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

    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\n[writer]\nbatch_rows = 0\n")).unwrap();
    daemon.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
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

    std::fs::write(
        &config,
        good.replace("flush_interval_ms = 20", "flush_interval_ms = 30"),
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
    let mut health = awc::Client::default()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let _ = health.body().await;
}
