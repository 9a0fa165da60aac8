//! What the ingest and query benchmarks share: the fleet's apps, PostgreSQL through
//! `psql`, chute as a child process, and chute's `/metrics`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use chute_embedded_pg::EmbeddedPostgres;

/// The apps of the generated fleet.
pub const APPS: [&str; 30] = [
    "nginx",
    "sshd",
    "cron",
    "kernel",
    "systemd",
    "postgres",
    "redis",
    "haproxy",
    "dockerd",
    "containerd",
    "kubelet",
    "etcd",
    "vault",
    "consul",
    "nomad",
    "envoy",
    "api",
    "worker",
    "scheduler",
    "billing",
    "auth",
    "search",
    "mailer",
    "payments",
    "gateway",
    "cache",
    "queue",
    "ingest",
    "backup",
    "audit",
];

pub fn psql() -> PathBuf {
    if Command::new("psql").arg("--version").output().is_ok() {
        return PathBuf::from("psql");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from("psql"))
}

/// Runs `statement` (psql meta-commands allowed) in database `db`.
pub fn sql(pg: &EmbeddedPostgres, db: &str, statement: &str) -> anyhow::Result<()> {
    let out = Command::new(psql())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-h"])
        .arg(pg.socket_dir())
        .args([
            "-p",
            &pg.port().to_string(),
            "-U",
            pg.user(),
            "-d",
            db,
            "-c",
            statement,
        ])
        .output()?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `db`'s DSN as the inside of a TOML basic string.
pub fn toml_dsn(pg: &EmbeddedPostgres, db: &str) -> String {
    pg.dsn(db).replace('\\', "\\\\").replace('"', "\\\"")
}

/// chute as a child process, killed when dropped.
pub struct ChuteChild(pub Child);

impl Drop for ChuteChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chute as a child process and reads the address it listens on from its log.
pub fn spawn_chute(config: &Path, dir: &Path) -> anyhow::Result<(ChuteChild, String)> {
    let log = dir.join("chute.log");
    let child = Command::new(env!("CARGO_BIN_EXE_chute"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let child = ChuteChild(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find(|l| l.contains("chute is listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|s| s.split_whitespace().next())
        {
            if text.contains("shard ready") {
                return Ok((child, addr.to_owned()));
            }
        }
        if Instant::now() > deadline {
            bail!("chute did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sum of one metric's samples on chute's `/metrics`.
pub async fn scrape_sum(client: &awc::Client, addr: &str, name: &str) -> f64 {
    let Ok(mut res) = client.get(format!("http://{addr}/metrics")).send().await else {
        return 0.0;
    };
    let body = res.body().limit(16 << 20).await.unwrap_or_default();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
