//! Test harness: one PostgreSQL cluster per test binary, started by chute's own
//! embedded-PostgreSQL code; a fresh database and a fresh chute on a free port per test.
//! Set `TEST_LOG=1` to see chute's logs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use chute::app::Application;
use chute::config::{Config, Secret, ShardConfig};
use chute::metrics::Metrics;
use chute_embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};
use tokio_postgres::NoTls;

static CLUSTER: OnceLock<(tempfile::TempDir, EmbeddedPostgres)> = OnceLock::new();
static SECOND_CLUSTER: OnceLock<(tempfile::TempDir, EmbeddedPostgres)> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A temp dir PostgreSQL can enter when the tests run as root (it runs as another user).
/// It is inside this test process's [`scratch_root`].
pub fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(scratch_root())
        .expect("temp dir");
    open_up(dir.path());
    dir
}

/// The directory every temp dir of this test process is made in:
/// `$TMPDIR/chute-it-<pid>-<random>`.
///
/// The shared clusters live in statics, which are never dropped, and chutes' data
/// directories outlive their tests; left alone they would pile up by gigabytes run
/// after run. So each run holds a lock on its root for as long as it lives, and the
/// first call removes the roots of earlier runs whose lock is free: their process
/// has ended. A run leaves at most its own root behind. (A lock rather than the pid:
/// runs in other PID namespaces may share the temp dir.)
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<(std::path::PathBuf, Flock<std::fs::File>)> = OnceLock::new();
    &ROOT
        .get_or_init(|| {
            remove_roots_of_ended_runs();
            let root = tempfile::Builder::new()
                .prefix(&format!("chute-it-{}-", std::process::id()))
                .tempdir()
                .expect("scratch root")
                .keep();
            open_up(&root);
            // Locked before it takes its name, so no other run sees it unlocked.
            let fresh = root.join(format!("{ROOT_LOCK}.new"));
            let lock = std::fs::File::create(&fresh).expect("root lock file");
            let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| e)
                .expect("lock of a new root");
            std::fs::rename(&fresh, root.join(ROOT_LOCK)).expect("root lock in place");
            (root, lock)
        })
        .0
}

/// The file in a scratch root that its run keeps locked.
const ROOT_LOCK: &str = "run.lock";

fn remove_roots_of_ended_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("chute-it-") {
            continue;
        }
        // No lock file yet: a run that is just starting (or not one of ours).
        let Ok(file) = std::fs::File::open(entry.path().join(ROOT_LOCK)) else {
            continue;
        };
        if let Ok(_ended) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Starts an embedded PostgreSQL in `dir`, from a thread outside any async runtime.
pub fn start_postgres(dir: &Path) -> EmbeddedPostgres {
    let dir = dir.to_owned();
    std::thread::spawn(move || EmbeddedPostgres::start(&dir, EmbeddedOptions::default()))
        .join()
        .expect("start thread")
        .expect("PostgreSQL starts")
}

/// The cluster shared by this test binary (each test gets its own database in it).
pub fn cluster() -> &'static EmbeddedPostgres {
    &CLUSTER
        .get_or_init(|| {
            init_logs();
            let dir = temp_dir();
            let pg = start_postgres(&dir.path().join("pg"));
            (dir, pg)
        })
        .1
}

/// A second cluster, for tests whose shards live on two PostgreSQL servers.
pub fn second_cluster() -> &'static EmbeddedPostgres {
    &SECOND_CLUSTER
        .get_or_init(|| {
            let dir = temp_dir();
            let pg = start_postgres(&dir.path().join("pg"));
            (dir, pg)
        })
        .1
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        chute::telemetry::init("info,chute=debug", chute::config::LogFormat::Text);
    }
}

/// A port for a daemon that must know its address before it starts (a cluster
/// node's peers name it). Taken below the kernel's ephemeral range (from 32768),
/// from a counter this process alone moves, so neither an outgoing connection nor
/// another test's `127.0.0.1:0` can be given it between this check and the
/// daemon's bind, nor a restarted node's in the meantime.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Each test process starts at a place of its own, so two suites on one
    // machine rarely meet; a port found in use is skipped.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 40) as u16 * 300;
    for _ in 0..12_000 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (start + offset) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// A fresh database in the shared cluster; returns its DSN.
pub async fn fresh_database() -> String {
    fresh_database_on(cluster()).await
}

/// A fresh database in `pg`; returns its DSN.
pub async fn fresh_database_on(pg: &EmbeddedPostgres) -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    pg.create_database(&name).await.expect("create database");
    pg.dsn(&name)
}

/// A data directory for one chute; it outlives the test (queues are small), and is
/// removed with the [`scratch_root`] by a later run.
pub fn data_dir() -> std::path::PathBuf {
    temp_dir().keep()
}

/// A configuration for tests: a free port, quick flushes, one shard at `dsn`, a
/// data directory of its own.
pub fn test_config(dsn: &str) -> Config {
    let mut c = Config::default();
    c.http.listen = "127.0.0.1:0".parse().expect("address");
    c.node.data_dir = data_dir();
    c.syslog.listeners = Some(Vec::new());
    c.writer.flush_interval_ms = 20;
    c.writer.retry_initial_ms = 50;
    c.writer.retry_max_ms = 500;
    c.shards = vec![ShardConfig {
        id: 0,
        owner: None,
        dsn: Secret::new(dsn),
        pool_size: 2,
        password_file: None,
        password_env: None,
    }];
    c
}

pub struct TestApp {
    pub base: String,
    pub dsn: String,
    pub http: awc::Client,
    pub db: tokio_postgres::Client,
    pub metrics: Arc<Metrics>,
    pub app_embedded: Option<Arc<EmbeddedPostgres>>,
    /// Where the syslog listeners listen.
    pub syslog: Vec<chute::sources::syslog::listener::Bound>,
    /// `http://` and the OTLP listener's address, when `http.otlp_listen` is set.
    pub otlp_base: Option<String>,
    handle: ServerHandle,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// chute on a fresh database with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// chute on a fresh database, with the test defaults changed by `change`.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    change(&mut config);
    spawn_config(config).await
}

/// chute with exactly this configuration; waits until `/readyz` says ready.
pub async fn spawn_config(config: Config) -> TestApp {
    init_logs();
    let dsn = config.shards.first().map(|s| s.dsn.expose().to_owned());
    let app = Application::build(config).await.expect("chute starts");
    let base = format!("http://{}", app.addr());
    let handle = app.handle();
    let metrics = app.metrics();
    let app_embedded = app.embedded();
    let syslog = app.syslog().to_vec();
    let otlp_base = app.otlp_addr().map(|a| format!("http://{a}"));
    let dsn = dsn.unwrap_or_else(|| app_embedded.as_ref().expect("embedded").dsn("chute"));
    let done = actix_web::rt::spawn(app.run_until_stopped());
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    let db = connect(&dsn).await;
    let t = TestApp {
        base,
        dsn,
        http,
        db,
        metrics,
        app_embedded,
        syslog,
        otlp_base,
        handle,
        done,
    };
    t.wait_ready().await;
    t
}

/// A plain connection for the test's own queries (libpq's TLS keys, which
/// tokio-postgres does not know, are left out: the tests' servers take plaintext).
pub async fn connect(dsn: &str) -> tokio_postgres::Client {
    let (dsn, _) = chute::config::dsn::split(dsn).expect("a usable DSN");
    let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await.expect("connect");
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Rows in chute.logs of the database at `dsn`, now.
pub async fn count_rows(dsn: &str) -> i64 {
    connect(dsn)
        .await
        .query_one("SELECT count(*) FROM chute.logs", &[])
        .await
        .expect("count rows")
        .get(0)
}

/// An answer: status, headers we check, and the JSON body (Null if not JSON).
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl TestApp {
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "chute did not become ready");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs `body` to /api/v1/logs with the given headers.
    pub async fn post(&self, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.post(format!("{}/api/v1/logs", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = req
            .send_body(body.into())
            .await
            .expect("request is answered");
        let bytes = res.body().limit(64 << 20).await.expect("body");
        Answer {
            status: res.status().as_u16(),
            retry_after: res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or_default().to_owned()),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// POSTs a JSON value as `application/json`.
    pub async fn post_json(&self, v: &Value) -> Answer {
        self.post(v.to_string(), &[("content-type", "application/json")])
            .await
    }

    /// POSTs `records` as NDJSON, expects a 200, and waits until they are committed.
    pub async fn send_ndjson(&self, records: impl IntoIterator<Item = Value>) {
        let body: String = records.into_iter().map(|r| r.to_string() + "\n").collect();
        let a = self
            .post(body, &[("content-type", "application/x-ndjson")])
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        self.settle().await;
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request is answered");
        let body = res.body().await.expect("body");
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// Waits until every queue is empty: all acknowledged records are committed.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metric("chute_queue_entries", &[]) > 0.0 {
            assert!(Instant::now() < deadline, "the queues did not drain");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A single number from SQL, once everything acknowledged is committed.
    pub async fn scalar(&self, sql: &str) -> i64 {
        self.settle().await;
        self.db.query_one(sql, &[]).await.expect(sql).get(0)
    }

    /// Rows in chute.logs.
    pub async fn stored(&self) -> i64 {
        self.scalar("SELECT count(*) FROM chute.logs").await
    }

    /// The sum of a metric's samples whose line contains every `labels` fragment.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_in(&self.metrics.render(), name, labels)
    }

    /// Stops chute gracefully and waits until it has.
    pub async fn stop(self) {
        // Let chute own its embedded PostgreSQL again, so it can shut it down.
        drop(self.app_embedded);
        self.handle.stop(true).await;
        self.done.await.expect("join").expect("clean stop");
    }
}

/// `chute serve` as a child process, its log in a file.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Daemon {
    /// Starts `chute serve --config config` and waits until its shards are ready.
    pub fn start(config: &Path, log: std::path::PathBuf) -> Daemon {
        Daemon::start_with_umask(config, log, None)
    }

    /// As [`Daemon::start`], with the process's umask set to `umask` first.
    pub fn start_with_umask(config: &Path, log: std::path::PathBuf, umask: Option<u32>) -> Daemon {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chute"));
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).expect("log file"));
        if let Some(mask) = umask {
            let mask = nix::sys::stat::Mode::from_bits_truncate(mask);
            // SAFETY: umask(2) is async-signal-safe and touches no memory.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::stat::umask(mask);
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("chute starts");
        let d = Daemon { child, log };
        d.wait_for("shard ready");
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The HTTP base URL, from the "chute is listening" log line.
    pub fn base(&self) -> String {
        self.wait_for("chute is listening");
        let text = self.log_text();
        let addr = text
            .lines()
            .find(|l| l.contains("chute is listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .expect("address in the log");
        format!("http://{addr}")
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("signal");
    }

    /// CPU time used so far (user and system), in clock ticks (1/100 s on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("stat of chute");
        // Fields after the command name (which may hold spaces) start after ')'.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a process runs (a zombie does not count).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.split_whitespace()
                .nth(2)
                .is_some_and(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Writes a TOML config for a chute child process: a free port, `data_dir`, one shard.
pub fn write_config(dir: &Path, data_dir: &Path, dsn: &str, extra: &str) -> std::path::PathBuf {
    write_config_with(dir, data_dir, dsn, "", "listeners = []\n", extra)
}

/// [`write_config`] with lines added to `[node]`, and `syslog` as the body of
/// `[syslog]` (for example `[[syslog.listeners]]` tables).
pub fn write_config_with(
    dir: &Path,
    data_dir: &Path,
    dsn: &str,
    node: &str,
    syslog: &str,
    extra: &str,
) -> std::path::PathBuf {
    let file = dir.join("chute.toml");
    let dsn = dsn.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        &file,
        format!(
            "[node]\ndata_dir = \"{}\"\n{node}[http]\nlisten = \"127.0.0.1:0\"\n[writer]\nflush_interval_ms = 20\nretry_initial_ms = 50\nretry_max_ms = 500\n{extra}\n[syslog]\n{syslog}[[shards]]\nid = 0\ndsn = \"{dsn}\"\n",
            data_dir.display()
        ),
    )
    .expect("write config");
    file
}

/// Posts one record with `message` to the chute at `base`; the answer's status.
pub async fn post_one(base: &str, message: &str) -> u16 {
    awc::Client::default()
        .post(format!("{base}/api/v1/logs"))
        .insert_header(("content-type", "application/json"))
        .send_body(serde_json::json!([{ "message": message }]).to_string())
        .await
        .expect("answer")
        .status()
        .as_u16()
}

/// The sum of the samples of `name` whose labels contain every fragment, in a
/// Prometheus text exposition.
pub fn metric_in(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Senders that keep posting batches of records with unique ids to the addresses
/// `targets` holds (sender `s` starts at `targets[s % len]` and moves on round-robin),
/// and remember which ids were acknowledged (200). Hosts cycle through 1000 names.
pub struct Load {
    pub targets: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<Vec<String>>>,
    pub refused: Arc<AtomicUsize>,
    /// Requests that got no answer (the node was down).
    pub unanswered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(base: String, senders: usize, batch: usize) -> Load {
        Load::start_many(vec![base], senders, batch)
    }

    pub fn start_many(targets: Vec<String>, senders: usize, batch: usize) -> Load {
        let target = Arc::new(Mutex::new(targets));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let unanswered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..senders)
            .map(|s| {
                let (target, acked, refused, unanswered, stop) = (
                    target.clone(),
                    acked.clone(),
                    refused.clone(),
                    unanswered.clone(),
                    stop.clone(),
                );
                actix_web::rt::spawn(async move {
                    let http = awc::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .finish();
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let ids: Vec<String> =
                            (0..batch).map(|i| format!("id-{s}-{n}-{i}")).collect();
                        n += 1;
                        let body = ids
                            .iter()
                            .enumerate()
                            .map(|(i, id)| {
                                let host = format!("h{}", (s * 7919 + n * batch + i) % 1000);
                                json!({"message": id, "host": host}).to_string()
                            })
                            .collect::<Vec<_>>()
                            .join("\n");
                        let url = {
                            let targets = target.lock().unwrap();
                            format!("{}/api/v1/logs", targets[(s + n) % targets.len()])
                        };
                        match http
                            .post(url)
                            .content_type("application/x-ndjson")
                            .send_body(body)
                            .await
                        {
                            Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                            Ok(_) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                            }
                            // chute is down (killed, restarting): try again shortly
                            Err(_) => {
                                unanswered.fetch_add(1, Ordering::SeqCst);
                                actix_web::rt::time::sleep(Duration::from_millis(50)).await
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            targets: target,
            acked,
            refused,
            unanswered,
            stop,
            tasks,
        }
    }

    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Waits until a running chute (at `base`) has written everything it queued.
pub async fn settle(base: &str) {
    settle_all(&[base.to_owned()]).await
}

/// Waits until the chutes at `bases` have all drained their queues at once: a node
/// whose peer queue empties has just handed batches to another node's queue, so
/// one node after another is not enough.
pub async fn settle_all(bases: &[String]) {
    let http = awc::Client::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut drained = true;
        for base in bases {
            drained &= queue_entries(&http, base).await == Some(0.0);
        }
        if drained {
            return;
        }
        assert!(Instant::now() < deadline, "chute did not drain its queues");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `chute_queue_entries` summed over the queues of the chute at `base`; `None`
/// while it does not answer or has no queue yet.
async fn queue_entries(http: &awc::Client, base: &str) -> Option<f64> {
    let mut r = http.get(format!("{base}/metrics")).send().await.ok()?;
    let text =
        String::from_utf8_lossy(&r.body().limit(16 << 20).await.unwrap_or_default()).into_owned();
    text.contains("chute_queue_entries")
        .then(|| metric_in(&text, "chute_queue_entries", &[]))
}

/// Every acknowledged id is stored, and nothing is stored twice.
pub async fn assert_exactly_once(dsn: &str, acked: &[String]) {
    assert_exactly_once_in(&[dsn.to_owned()], acked).await
}

/// Every acknowledged id is stored in one of the databases, and nothing is stored
/// twice in any or across them.
pub async fn assert_exactly_once_in(dsns: &[String], acked: &[String]) {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for dsn in dsns {
        let db = connect(dsn).await;
        for row in db
            .query(
                "SELECT message, count(*) FROM chute.logs GROUP BY message",
                &[],
            )
            .await
            .unwrap()
        {
            *counts.entry(row.get(0)).or_default() += row.get::<_, i64>(1);
        }
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        twice.is_empty(),
        "{} records stored more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let unique: HashSet<_> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "ids are unique");
}

/// A CA, a server certificate for 127.0.0.1, and a client certificate, as PEM.
pub struct Pki {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client: rcgen::CertifiedKey,
    pub stranger: rcgen::CertifiedKey,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    /// A client certificate the CA signs, with common name `cn` and DNS names `sans`.
    pub fn client_named(&self, cn: &str, sans: &[&str]) -> rcgen::CertifiedKey {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key_pair = rcgen::KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key_pair, &self.ca_cert, &self.ca_key)
            .unwrap();
        rcgen::CertifiedKey { cert, key_pair }
    }
}

pub fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["client".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client: rcgen::CertifiedKey {
            cert: client_cert,
            key_pair: client_key,
        },
        stranger: rcgen::generate_simple_self_signed(vec!["stranger".to_owned()]).unwrap(),
        ca_cert: ca,
        ca_key,
    }
}

/// The Python of `tests/clients/.venv` (made by `scripts/dev test`).
pub fn client_python() -> std::path::PathBuf {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `scripts/dev test` installs the tests' Python clients",
        python.display()
    );
    python
}

/// Runs `script` with [`client_python`]; its output.
pub async fn run_python(script: String) -> std::process::Output {
    actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(client_python())
            .args(["-c", &script])
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The rows of `sql`, each as a JSON object.
pub async fn rows(app: &TestApp, sql: &str) -> Vec<Value> {
    let client = connect(&app.dsn).await;
    client
        .query(&format!("SELECT to_jsonb(r) FROM ({sql}) r"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Value>(0))
        .collect()
}
