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
