//! The `chute` command: parses the command line and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod cli;

use chute::app::Application;

/// Keeps this process and its children (the embedded PostgreSQL) off
/// transparent huge pages, even where the host has them `always` on: mimalloc
/// reserves its arenas 2 MiB-aligned, and with huge pages behind them chute's
/// peak RSS under load was a third to a half higher at the same speed. The `no_thp`
/// feature only stops mimalloc asking for them (`madvise`); this is what its
/// own build does when huge pages are off. PostgreSQL's documentation likewise
/// advises against transparent huge pages. Kernels without the setting keep
/// their default.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// mimalloc instead of the system allocator: records are many small strings and
/// JSON maps made on one thread and freed soon after, where glibc's malloc spends a
/// large share of chute's CPU (consolidating and unlinking free chunks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use chute::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "chute",
    version,
    about = "A log router daemon: syslog and HTTP in, sharded PostgreSQL out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon. Without a config file, runs on the embedded default:
    /// HTTP on 127.0.0.1:7280, data and a private PostgreSQL in ./chute-data.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, env = "CHUTE_CONFIG")]
        config: Option<PathBuf>,
        /// Log format; overrides `[log] format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Check a configuration file: every error with its key path (exit 1), or a
    /// one-line summary (exit 0).
    Validate {
        #[arg(long, env = "CHUTE_CONFIG")]
        config: PathBuf,
        /// Also check the durable queues in this data directory (read-only).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show the cluster as a running node sees it: members and their health, shards
    /// and their owners, queue depth per destination (`GET /api/v1/cluster`).
    Cluster {
        #[command(flatten)]
        node: NodeArgs,
        /// Print the JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Show what each shard holds (`GET /api/v1/storage` of every node): its
    /// days, their estimated rows and bytes, and its oldest record.
    Storage {
        #[command(flatten)]
        node: NodeArgs,
        /// Also list each day.
        #[arg(long)]
        days: bool,
        /// Print the JSON answers as they are, one line per node.
        #[arg(long)]
        json: bool,
    },
    /// Search logs with LogQL through a node's Loki API: the newest lines first
    /// (or, for a metric query, its series), coloured by level on a terminal. A
    /// partial answer (shards not reached) is said on stderr. Exit 0 on an answer, 2
    /// for a query the node refused (400), 1 when it could not answer.
    Query {
        /// The LogQL query, e.g. '{app="api"} |= "timeout"'.
        query: String,
        /// How far back from now (a LogQL duration: 15m, 1h, 2d).
        #[arg(long, default_value = "1h", conflicts_with = "from")]
        since: String,
        /// Start (RFC 3339 or Unix seconds); with --to.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End, exclusive (RFC 3339 or Unix seconds).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Most lines.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// backward (newest first) or forward.
        #[arg(long, default_value = "backward")]
        direction: String,
        /// text (for people), json (one object per line), raw (the lines only).
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// The tenant (X-Scope-OrgID).
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Follow logs live through a node's Loki API: the newest lines of the last
    /// --since first, then every line committed after, from every shard of the
    /// cluster, as it comes. Dropped lines (the tail could not keep up) and nodes
    /// not followed are said on stderr. Exit 2 for a query the node refused, 1 when
    /// the tail ends.
    Tail {
        /// The LogQL log query, e.g. '{app="api"} |= "timeout"'.
        query: String,
        /// How far back the first lines reach (a LogQL duration).
        #[arg(long, default_value = "1h")]
        since: String,
        /// Most lines to start with.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// text (for people), json (one object per line), raw (the lines only).
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// The tenant (X-Scope-OrgID).
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Tokens for ingest and queries.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Batches a peer refused for good (it no longer owns their shard, or cannot
    /// read them), set aside on this node so the link goes on: list them, replay
    /// them to their shard's owner now (stored once, under their first id), or
    /// drop them. Only from the node's own host.
    Deadletter {
        #[command(subcommand)]
        action: DeadletterAction,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Print a fresh random token once, and the `[[tokens]]` lines (with only its
    /// SHA-256) to add to every node's configuration file.
    New {
        /// Tenants the token may use, the first being the default (comma-separated,
        /// or `*` for every tenant).
        #[arg(long, value_delimiter = ',', required = true)]
        tenant: Vec<String>,
        /// What it may do: ingest, query, admin (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "ingest")]
        scope: Vec<String>,
        /// Its name in logs (default: the first tenant and the scopes).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum DeadletterAction {
    /// One line per dead letter: id, peer, shard, records, reason, when.
    List {
        /// Print the JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Deliver the given dead letters (or all) to whichever node owns their shard
    /// now, and remove each once it is durable there.
    Replay {
        /// Ids as `list` prints them (`<peer>/<seq>`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
    },
    /// Remove the given dead letters (or all) without storing them.
    Drop {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

/// The running node a command asks.
#[derive(clap::Args)]
struct NodeArgs {
    /// Base URL of the node to ask.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:7280",
        conflicts_with = "config"
    )]
    url: String,
    /// Ask the node that runs this configuration file (its `[http] listen`).
    #[arg(long, global = true, env = "CHUTE_CONFIG")]
    config: Option<PathBuf>,
    /// The token to present (`Authorization: Bearer`), when the node needs one.
    #[arg(long, global = true, env = "CHUTE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl NodeArgs {
    /// The node's base URL, and for an HTTPS node the TLS settings to ask it with.
    fn resolve(&self, command: &str) -> Result<(String, Option<ClientTls>), ExitCode> {
        if let Some(token) = &self.token {
            cli::present_token(token);
        }
        match self.config.as_ref().map(|p| load(Some(p))) {
            Some(Ok(c)) if c.http.tls_cert_file.is_some() => {
                // Asked as a peer would: trusting the cluster CA, with this node's
                // client certificate.
                match chute::tls::cluster_client_config(&c.cluster) {
                    Ok(Some(tls)) => Ok((format!("https://{}", c.http.listen), Some(tls))),
                    Ok(None) => {
                        eprintln!(
                            "chute {command}: the node speaks HTTPS; set cluster.tls_ca_file"
                        );
                        Err(ExitCode::FAILURE)
                    }
                    Err(e) => {
                        eprintln!("chute {command}: {e:#}");
                        Err(ExitCode::FAILURE)
                    }
                }
            }
            Some(Ok(c)) => Ok((format!("http://{}", c.http.listen), None)),
            Some(Err(code)) => Err(code),
            None => Ok((self.url.clone(), None)),
        }
    }
}

use cli::logs::Output;
use cli::ClientTls;

/// Runs a client command against a node; its error, if any, on stderr.
fn run_client(
    command: &str,
    node: &NodeArgs,
    f: impl AsyncFnOnce(String, Option<ClientTls>) -> anyhow::Result<()>,
) -> ExitCode {
    let (url, tls) = match node.resolve(command) {
        Ok(target) => target,
        Err(code) => return code,
    };
    match actix::System::new().block_on(f(url, tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chute {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    match path {
        None => Ok(Config::default()),
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("{}: {e}", p.display());
            ExitCode::FAILURE
        }),
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config, data_dir } => match load(Some(&config)) {
            Ok(c) => {
                println!("{}", c.summary());
                for warning in c.warnings() {
                    eprintln!("warning: {warning}");
                }
                match data_dir.map(|d| check_queues(&d)) {
                    Some(false) => ExitCode::FAILURE,
                    _ => ExitCode::SUCCESS,
                }
            }
            Err(code) => code,
        },
        Command::Token {
            action:
                TokenAction::New {
                    tenant,
                    scope,
                    name,
                },
        } => cli::new_token(&tenant, &scope, name),
        Command::Storage { node, days, json } => run_client("storage", &node, async |url, tls| {
            storage(&url, days, json, tls).await
        }),
        Command::Cluster { node, json } => run_client("cluster", &node, async |url, tls| {
            cluster(&url, json, tls).await
        }),
        Command::Query {
            query,
            since,
            from,
            to,
            limit,
            direction,
            output,
            tenant,
            node,
        } => {
            let (start, end) = match (from, to) {
                (Some(from), Some(to)) => (from, to),
                _ => match since_nanos(&since) {
                    Ok(start) => (start.to_string(), now_nanos().to_string()),
                    Err(code) => return code,
                },
            };
            let params = [
                ("query", query),
                ("start", start),
                ("end", end),
                ("limit", limit.to_string()),
                ("direction", direction),
            ];
            run_logs("query", &node, async |url, tls| {
                cli::logs::search(&url, &params, &tenant, output, tls).await
            })
        }
        Command::Tail {
            query,
            since,
            limit,
            output,
            tenant,
            node,
        } => {
            let start = match since_nanos(&since) {
                Ok(start) => start,
                Err(code) => return code,
            };
            let params = [
                ("query", query),
                ("start", start.to_string()),
                ("limit", limit.to_string()),
            ];
            run_logs("tail", &node, async |url, tls| {
                cli::logs::tail(&url, &params, &tenant, output, tls).await
            })
        }
        Command::Deadletter { action, node } => {
            run_client("deadletter", &node, async |url, tls| {
                deadletter(&url, action, tls).await
            })
        }
        Command::Serve { config, log_format } => {
            let config_path = config.clone();
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            chute::telemetry::init(&config.log.level, log_format.unwrap_or(config.log.format));
            match actix::System::new().block_on(serve(config, config_path)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("chute: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Verifies every queue under `<data_dir>/queues` without changing anything.
/// Prints one line per queue; false if any is damaged or unreadable.
fn check_queues(data_dir: &std::path::Path) -> bool {
    let root = data_dir.join("queues");
    let mut dirs: Vec<_> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            eprintln!("{}: cannot read: {e}", root.display());
            return false;
        }
    };
    dirs.sort();
    let mut clean = true;
    for dir in dirs {
        match chute_queue::verify(&dir) {
            Ok(r) if r.is_clean() => println!(
                "queue {}: ok, {} unacknowledged batches in {} segments",
                dir.display(),
                r.unacked_records,
                r.segments
            ),
            Ok(r) => {
                clean = false;
                println!(
                    "queue {}: DAMAGED: {} corrupt stretches ({} bytes), {} torn bytes at the end, \
                     {} unreadable segments; chute serve sets them aside and delivers the rest",
                    dir.display(),
                    r.corrupt_records,
                    r.corrupt_bytes,
                    r.torn_tail_bytes,
                    r.unreadable_segments
                );
            }
            Err(e) => {
                clean = false;
                println!("queue {}: cannot check: {e}", dir.display());
            }
        }
    }
    clean
}

async fn serve(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    let app = Application::build(config)
        .await
        .context("cannot start")?
        .with_config_path(path);
    app.run_until_stopped().await
}

/// Asks the node at `url` for `path` (a GET, or a POST of `body`); the answer's
/// body, or an error that names the node's answer.
async fn ask(
    url: &str,
    path: &str,
    body: Option<serde_json::Value>,
    tls: Option<ClientTls>,
    timeout: std::time::Duration,
) -> anyhow::Result<bytes::Bytes> {
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    let client = chute::tls::http_client(timeout, tls);
    let sent = match body {
        None => cli::authorized(client.get(&endpoint)).send().await,
        Some(b) => cli::authorized(client.post(&endpoint)).send_json(&b).await,
    };
    let mut response = sent.map_err(|e| anyhow::anyhow!("cannot reach {endpoint}: {e}"))?;
    let body = response.body().limit(16 << 20).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{endpoint} answered {}: {}",
        response.status(),
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}

/// GETs `path` from the node at `url`: with `json`, prints the answer as it is
/// (and returns `None`), else returns it to be printed as a table.
async fn show(
    url: &str,
    path: &str,
    json: bool,
    tls: Option<ClientTls>,
) -> anyhow::Result<Option<bytes::Bytes>> {
    let body = ask(url, path, None, tls, std::time::Duration::from_secs(10)).await?;
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(None);
    }
    Ok(Some(body))
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `--since`: now minus the duration, in nanoseconds; exit 2 when it is not one.
fn since_nanos(since: &str) -> Result<i64, ExitCode> {
    chute_logql::Duration::parse(since)
        .map(|d| now_nanos() - d.as_nanos())
        .map_err(|e| {
            eprintln!("chute: --since {since:?}: {e}");
            ExitCode::from(2)
        })
}

/// Runs `chute query` or `chute tail` against the node `node` names; its exit
/// code, or 1 when it could not run.
fn run_logs(
    command: &str,
    node: &NodeArgs,
    f: impl AsyncFnOnce(String, Option<ClientTls>) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let (url, tls) = match node.resolve(command) {
        Ok(target) => target,
        Err(code) => return code,
    };
    match actix::System::new().block_on(f(url, tls)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chute {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `chute deadletter`: lists, replays or drops through `/api/v1/deadletter`.
async fn deadletter(
    url: &str,
    action: DeadletterAction,
    tls: Option<ClientTls>,
) -> anyhow::Result<()> {
    use chute::deadletter::Meta;
    let (path, ids, all) = match action {
        DeadletterAction::List { json } => {
            let Some(body) = show(url, "/api/v1/deadletter", json, tls).await? else {
                return Ok(());
            };
            #[derive(serde::Deserialize)]
            struct Listed {
                entries: Vec<Meta>,
            }
            let listed: Listed = serde_json::from_slice(&body).context("unexpected answer")?;
            if listed.entries.is_empty() {
                println!("no dead letters");
                return Ok(());
            }
            println!(
                "{:<34} {:<12} {:>5} {:>8}  {:<16} {:<24} ERROR",
                "ID", "PEER", "SHARD", "RECORDS", "REASON", "AT"
            );
            for m in &listed.entries {
                println!(
                    "{:<34} {:<12} {:>5} {:>8}  {:<16} {:<24} {}",
                    m.id, m.peer, m.shard, m.records, m.reason, m.at, m.error
                );
            }
            return Ok(());
        }
        DeadletterAction::Replay { ids, all } => ("/api/v1/deadletter/replay", ids, all),
        DeadletterAction::Drop { ids, all } => ("/api/v1/deadletter/drop", ids, all),
    };
    let choice = if all {
        serde_json::json!({"all": true})
    } else {
        serde_json::json!({"ids": ids})
    };
    // A replay waits for each batch to be durable at its destination.
    let body = ask(
        url,
        path,
        Some(choice),
        tls,
        std::time::Duration::from_secs(300),
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_slice(&body).context("unexpected answer")?;
    let done = answer["done"].as_array().map_or(0, Vec::len);
    let verb = if path.ends_with("replay") {
        "replayed"
    } else {
        "dropped"
    };
    println!("{done} dead letters {verb}");
    Ok(())
}

/// Fetches `GET /api/v1/cluster` from the node at `url` and prints it.
async fn cluster(url: &str, json: bool, tls: Option<ClientTls>) -> anyhow::Result<()> {
    use chute::cluster::report::{ClusterReport, QueueReport};
    let Some(body) = show(url, "/api/v1/cluster", json, tls).await? else {
        return Ok(());
    };
    let r: ClusterReport = serde_json::from_slice(&body).context("unexpected answer")?;
    let queue = |q: &Option<QueueReport>| {
        q.as_ref().map_or("-".to_owned(), |q| {
            format!(
                "{} B in {} batches, oldest {:.1} s",
                q.bytes, q.batches, q.oldest_age_seconds
            )
        })
    };
    let up = |u: bool| if u { "up" } else { "DOWN" };
    println!(
        "node {}  layout {}  shard_key {}",
        r.node, r.layout, r.shard_key
    );
    println!("\nNODE             STATE  RTT        QUEUE (to it)                              URL");
    for n in &r.nodes {
        let state = if n.local { "self" } else { up(n.up) };
        let rtt = n.last_rtt_ms.map_or("-".into(), |ms| format!("{ms:.1} ms"));
        println!(
            "{:<16} {:<6} {:<10} {:<42} {}",
            n.id,
            state,
            rtt,
            queue(&n.queue),
            n.url
        );
        if let Some(e) = n.last_error.as_ref().filter(|_| !n.up) {
            println!("{:<16} last error: {e}", "");
        }
        if n.dead_letters > 0 {
            println!(
                "{:<16} {} dead letters it refused for good: chute deadletter list",
                "", n.dead_letters
            );
        }
    }
    println!("\nSHARD  OWNER            STATE  QUEUE (to its writer)");
    for s in &r.shards {
        let state = match s.up {
            Some(u) => up(u),
            None => "remote",
        };
        println!(
            "{:<6} {:<16} {:<6} {}",
            s.id,
            s.owner,
            state,
            queue(&s.queue)
        );
        if let Some(e) = s.last_error.as_ref().filter(|_| s.up == Some(false)) {
            println!("{:<6} last error: {e}", "");
        }
    }
    Ok(())
}

/// Bytes as B, KiB, MiB, GiB or TiB.
fn human_bytes(bytes: i64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v.abs() < 1024.0 {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

/// Asks the node at `url` for the cluster's members, then each member for its
/// shards' storage (`GET /api/v1/storage`), and prints them.
async fn storage(url: &str, days: bool, json: bool, tls: Option<ClientTls>) -> anyhow::Result<()> {
    use chute::cluster::report::ClusterReport;
    use chute::sinks::postgres::storage::StorageReport;
    let timeout = std::time::Duration::from_secs(30);
    let members = ask(url, "/api/v1/cluster", None, tls.clone(), timeout).await?;
    let members: ClusterReport = serde_json::from_slice(&members).context("unexpected answer")?;
    let mut urls: Vec<(String, String)> = members
        .nodes
        .iter()
        .map(|n| {
            let at = if n.local {
                url.to_owned()
            } else {
                n.url.clone()
            };
            (n.id.clone(), at)
        })
        .collect();
    if urls.is_empty() {
        urls.push((members.node.clone(), url.to_owned()));
    }
    if !json {
        println!(
            "SHARD  NODE             DAYS  ROWS (EST.)   LOGS         ALL TABLES   OLDEST RECORD"
        );
    }
    let mut failed = 0;
    for (node, at) in urls {
        let body = match ask(&at, "/api/v1/storage", None, tls.clone(), timeout).await {
            Ok(body) => body,
            Err(e) => {
                eprintln!("node {node} ({at}): {e:#}");
                failed += 1;
                continue;
            }
        };
        if json {
            println!("{}", String::from_utf8_lossy(&body));
            continue;
        }
        let r: StorageReport = serde_json::from_slice(&body).context("unexpected answer")?;
        for s in &r.shards {
            if let Some(e) = &s.error {
                println!("{:<6} {:<16} cannot be measured: {e}", s.shard, r.node);
                failed += 1;
                continue;
            }
            let rows: i64 = s
                .days
                .iter()
                .chain(&s.default_partition)
                .map(|d| d.rows_estimate)
                .sum();
            let logs = s.tables.get("logs").copied().unwrap_or_default();
            let oldest = s.oldest.map_or("-".to_owned(), |t| {
                t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            });
            println!(
                "{:<6} {:<16} {:<5} {:<13} {:<12} {:<12} {oldest}",
                s.shard,
                r.node,
                s.days.len(),
                rows,
                human_bytes(logs),
                human_bytes(s.bytes),
            );
            if days {
                for d in s.days.iter().chain(&s.default_partition) {
                    let day = d.day.map_or("default".to_owned(), |d| d.to_string());
                    println!(
                        "         {day:<12} {:>13} rows  {}",
                        d.rows_estimate,
                        human_bytes(d.bytes)
                    );
                    for c in &d.classes {
                        let tenants = c
                            .tenants
                            .as_ref()
                            .map_or("other tenants".to_owned(), |t| t.join(", "));
                        println!(
                            "           {:>23} rows  {:<10} {tenants}",
                            c.rows_estimate,
                            human_bytes(c.bytes)
                        );
                    }
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} shards or nodes could not be measured");
    }
    Ok(())
}
