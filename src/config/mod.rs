//! Configuration: the TOML file, its defaults, and its validation.
//!
//! Every field's doc comment is user documentation; the annotated `config.toml` at
//! the top of the repository repeats it. Started without a file, chute runs on the
//! embedded default: HTTP on 127.0.0.1:7280, data in `./chute-data`, and one local
//! PostgreSQL cluster that chute initialises and supervises in `<data_dir>/pg`.
//!
//! [`Config::from_toml`] reports *every* error in the file at once, each with its key
//! path (`shards[1].pool_size: ...`): each section is deserialised on its own, and the
//! semantic checks run over whatever parsed.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

mod cluster;
pub mod dsn;
mod limits;
mod query;
pub mod retention;
pub mod syslog;
pub mod tokens;

pub use cluster::{ClusterConfig, NodeEntry, ShardKey};
pub use limits::{LimitsConfig, TenantLimits};
pub use query::QueryConfig;
pub use retention::RetentionConfig;
pub use syslog::{ListenerConfig, Protocol, SyslogConfig};
pub use tokens::{Scope, TokenConfig};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub node: NodeConfig,
    pub http: HttpConfig,
    pub writer: WriterConfig,
    pub storage: StorageConfig,
    /// Shards this node writes to. Empty means the embedded default: one local
    /// PostgreSQL in `<data_dir>/pg`, used as shard 0.
    pub shards: Vec<ShardConfig>,
    /// Every member of the cluster, this node included. Empty: a single node.
    pub nodes: Vec<NodeEntry>,
    pub cluster: ClusterConfig,
    pub embedded: EmbeddedConfig,
    pub queue: QueueConfig,
    pub syslog: SyslogConfig,
    pub log: LogConfig,
    pub query: QueryConfig,
    /// Tokens for ingest and queries (`[[tokens]]`). Empty: the HTTP API is open.
    pub tokens: Vec<TokenConfig>,
    pub limits: LimitsConfig,
    pub retention: RetentionConfig,
}

/// `[queue]`: the durable queue in front of each destination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Bytes one destination's queue may hold on disk, unacknowledged. Past it, ingest
    /// for that destination is refused (HTTP 503 + Retry-After).
    #[serde(default = "default_queue_max_bytes")]
    pub max_bytes: u64,
    /// Size of one queue segment file; acknowledged segments are deleted whole.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
}

/// `[node]`: who this node is and where it keeps its state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name of this node, used in logs and (later) by the cluster layout.
    #[serde(default = "default_node_id")]
    pub id: String,
    /// Directory for chute's state: the durable queues (`queues/`) and the embedded
    /// PostgreSQL (`pg/`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// On SIGTERM/SIGINT: one deadline for everything shutting down (running HTTP
    /// requests, syslog deliveries, the writers' drain, the embedded PostgreSQL's
    /// fast shutdown). Whatever is not written by then stays in the queues for the
    /// next start. A PostgreSQL that ignores it is stopped within 10 s more.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
}

/// `[http]`: the one HTTP listener (ingest, query, metrics, health).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on. Port 0 picks a free port (tests).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A second listener that serves OTLP/HTTP logs (`POST /v1/logs`) alone, with
    /// the same TLS: 4318 is OTLP's convention. Unset: only `listen` serves it.
    #[serde(default)]
    pub otlp_listen: Option<SocketAddr>,
    /// Largest request body, counted both as received (compressed) and decompressed.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a request waits for its records to be committed before it is
    /// answered 503. The records stay queued and may still be stored.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// HTTP worker threads; 0 means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Request bytes held at once across all requests (bodies as decompressed, from
    /// the first byte read until the answer). A request that would pass it gets 503
    /// with Retry-After; the requests already running finish. A request alone is
    /// always let through up to its own limit, so none is refused forever.
    #[serde(default = "default_max_inflight_bytes")]
    pub max_inflight_bytes: usize,
    /// Most open connections, all workers together; past it new connections wait
    /// in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A client must send its request line and headers within this time (a
    /// slow-loris client is answered 408 and closed).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// A request body that sends nothing for this long is answered 408.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this time; 0 disables
    /// keep-alive.
    #[serde(default = "default_keep_alive_ms")]
    pub keep_alive_ms: u64,
    /// PEM certificate chain: with `tls_key_file`, the listener speaks HTTPS only.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, every client (senders and peers alike) must
    /// present a certificate this CA signed (mutual TLS).
    #[serde(default)]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Who may read `/metrics`, `/api/v1/cluster`, `/api/v1/storage` and the details of `/readyz`
    /// once `[[tokens]]` are configured: `loopback` (default: clients on this host
    /// freely, others with an admin token), `token` (an admin token always) or
    /// `open` (anyone). `/healthz` is always open.
    #[serde(default)]
    pub ops_access: OpsAccess,
}

/// `http.ops_access`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpsAccess {
    #[default]
    Loopback,
    Token,
    Open,
}

/// `[writer]`: how records are batched into PostgreSQL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterConfig {
    /// A shard's pending records are written once this many have gathered...
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// ...or once the oldest has waited this long, whichever comes first.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// First wait before retrying a failed write; doubles on each failure.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest wait between retries of a failed write.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// A write that gets no answer from PostgreSQL for this long is abandoned, its
    /// connection dropped (never reused), and the batch written again on a new one:
    /// a connection that went silent (a half-open TCP link, a hung proxy) cannot
    /// stall the shard. PostgreSQL ends the orphaned transaction after the same time
    /// (`idle_in_transaction_session_timeout`), so the retry is not blocked by it.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
}

/// `[storage]`: the shape of `chute.logs` on every shard.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Daily partitions created ahead of today (UTC), so writes never wait on DDL.
    #[serde(default = "default_partition_days_ahead")]
    pub partition_days_ahead: u32,
    /// Daily partitions kept ready behind today, for late records.
    #[serde(default = "default_partition_days_behind")]
    pub partition_days_behind: u32,
    /// How long the ids of stored batches are remembered, to recognise a batch that
    /// is delivered again. Must exceed the longest a batch can wait in a queue.
    #[serde(default = "default_batch_id_retention_hours")]
    pub batch_id_retention_hours: u32,
}

/// `[[shards]]`: one PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    /// Shard number; unique, used in metrics (`shard` label).
    pub id: u32,
    /// The node that writes this shard (a `[[nodes]]` id). Unset: this node, which is
    /// only allowed without `[[nodes]]`.
    #[serde(default)]
    pub owner: Option<String>,
    /// libpq-style connection string (`host=... dbname=...` or `postgresql://...`).
    pub dsn: Secret,
    /// Connections to this shard; also the number of batches written at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// A file whose content (trailing newline removed) is the password, so the DSN
    /// need not hold it. Read at start-up; never logged.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable that holds the password (as password_file).
    #[serde(default)]
    pub password_env: Option<String>,
}

impl ShardConfig {
    /// The password from `password_file` or `password_env`, if either is set.
    ///
    /// # Errors
    /// The file cannot be read, or the variable is not set; the message names them,
    /// never the password.
    pub fn password(&self) -> Result<Option<Secret>, String> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read password_file {}: {e}", path.display()))?;
            return Ok(Some(Secret::new(text.trim_end_matches(['\n', '\r']))));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map(|p| Some(Secret::new(p)))
                .map_err(|_| format!("password_env {var} is not set"));
        }
        Ok(None)
    }
}

/// `[embedded]`: the PostgreSQL chute runs itself when no shards are configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Connections to the embedded shard.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// OS user PostgreSQL runs as when chute runs as root (PostgreSQL refuses root).
    /// Unset: `postgres`; chute stops with a message if no such user exists (it never
    /// falls back to a shared account such as `nobody`).
    #[serde(default)]
    pub run_as: Option<String>,
}

/// `[log]`: chute's own log output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Level filter (`info`, `debug`, `chute=debug,actix_web=warn`). `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` for people, `json` for log collectors.
    #[serde(default)]
    pub format: LogFormat,
}

/// Output format of chute's own logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A string that never appears in logs or `Debug` output (a DSN may hold a password).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

fn default_node_id() -> String {
    "local".to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./chute-data")
}
fn default_shutdown_timeout_ms() -> u64 {
    30_000
}
fn default_queue_max_bytes() -> u64 {
    1 << 30
}
fn default_segment_bytes() -> u64 {
    64 << 20
}
fn default_batch_id_retention_hours() -> u32 {
    168
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7280))
}
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_ack_timeout_ms() -> u64 {
    30_000
}
fn default_max_inflight_bytes() -> usize {
    64 << 20
}
fn default_max_connections() -> usize {
    4096
}
fn default_request_timeout_ms() -> u64 {
    5_000
}
fn default_body_timeout_ms() -> u64 {
    10_000
}
fn default_keep_alive_ms() -> u64 {
    5_000
}
fn default_batch_rows() -> usize {
    2_000
}
fn default_flush_interval_ms() -> u64 {
    50
}
fn default_retry_initial_ms() -> u64 {
    100
}
fn default_retry_max_ms() -> u64 {
    5_000
}
fn default_write_timeout_ms() -> u64 {
    30_000
}
fn default_partition_days_ahead() -> u32 {
    3
}
fn default_partition_days_behind() -> u32 {
    1
}
fn default_pool_size() -> usize {
    4
}
fn default_log_level() -> String {
    "info".to_owned()
}

/// Every `Default` is the same as an empty section in the file.
macro_rules! default_from_empty {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // An empty table deserialises into the defaults of every field.
                toml::Table::new().try_into().expect("every field has a default")
            }
        }
    )*};
}
default_from_empty!(
    NodeConfig,
    HttpConfig,
    WriterConfig,
    StorageConfig,
    EmbeddedConfig,
    ClusterConfig,
    QueueConfig,
    LogConfig,
    QueryConfig
);

/// One problem in a configuration file, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path (`shards[1].pool_size`), or empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the problems found in one file.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in the configuration:\n{}", .0.len(), list(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// Every problem in the file, each with its key path; or the read error.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        Config::from_toml(&text)
    }

    /// Parses and validates configuration text.
    ///
    /// # Errors
    /// Every problem found, each with its key path.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("invalid TOML: {}", e.message().trim()),
            }])
        })?;
        let mut errors = Vec::new();
        let mut config = Config::default();
        for (key, value) in table {
            match key.as_str() {
                "node" => section(&key, value, &mut errors, &mut config.node),
                "http" => section(&key, value, &mut errors, &mut config.http),
                "writer" => section(&key, value, &mut errors, &mut config.writer),
                "storage" => section(&key, value, &mut errors, &mut config.storage),
                "shards" => section(&key, value, &mut errors, &mut config.shards),
                "nodes" => section(&key, value, &mut errors, &mut config.nodes),
                "cluster" => section(&key, value, &mut errors, &mut config.cluster),
                "embedded" => section(&key, value, &mut errors, &mut config.embedded),
                "queue" => section(&key, value, &mut errors, &mut config.queue),
                "syslog" => section(&key, value, &mut errors, &mut config.syslog),
                "log" => section(&key, value, &mut errors, &mut config.log),
                "query" => section(&key, value, &mut errors, &mut config.query),
                "tokens" => section(&key, value, &mut errors, &mut config.tokens),
                "limits" => section(&key, value, &mut errors, &mut config.limits),
                "retention" => section(&key, value, &mut errors, &mut config.retention),
                _ => errors.push(ConfigError {
                    path: key.clone(),
                    message: "unknown section (expected node, http, writer, storage, \
                              shards, nodes, cluster, embedded, queue, syslog, log, query, \
                              tokens, limits or retention)"
                        .to_owned(),
                }),
            }
        }
        errors.extend(config.check());
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Semantic checks over a parsed configuration.
    fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |path: String, message: &str| {
            errors.push(ConfigError {
                path,
                message: message.to_owned(),
            })
        };
        if self.node.id.trim().is_empty() {
            err("node.id".into(), "must not be empty");
        }
        for (path, message) in tokens::check(&self.tokens) {
            err(path, &message);
        }
        self.retention.check(&mut err);
        for (i, t) in self.limits.tenants.iter().enumerate() {
            if !tokens::valid_name(&t.tenant) {
                err(
                    format!("limits.tenants[{i}].tenant"),
                    "must be 1 to 64 of A-Z a-z 0-9 . _ -",
                );
            }
        }
        if self.http.max_body_bytes < 1024 {
            err("http.max_body_bytes".into(), "must be at least 1024");
        }
        if self.http.ack_timeout_ms == 0 {
            err("http.ack_timeout_ms".into(), "must be at least 1");
        }
        if self.http.max_inflight_bytes < self.http.max_body_bytes {
            err(
                "http.max_inflight_bytes".into(),
                "must be at least http.max_body_bytes",
            );
        }
        if self.http.max_connections == 0 {
            err("http.max_connections".into(), "must be at least 1");
        }
        if self.http.request_timeout_ms == 0 {
            err("http.request_timeout_ms".into(), "must be at least 1");
        }
        if self.http.body_timeout_ms == 0 {
            err("http.body_timeout_ms".into(), "must be at least 1");
        }
        if self.writer.batch_rows == 0 {
            err("writer.batch_rows".into(), "must be at least 1");
        }
        if self.writer.flush_interval_ms == 0 {
            err("writer.flush_interval_ms".into(), "must be at least 1");
        }
        if self.writer.write_timeout_ms < 1000 {
            err("writer.write_timeout_ms".into(), "must be at least 1000");
        }
        if self.writer.retry_initial_ms == 0
            || self.writer.retry_max_ms < self.writer.retry_initial_ms
        {
            err(
                "writer.retry_max_ms".into(),
                "retry_initial_ms must be at least 1 and retry_max_ms at least retry_initial_ms",
            );
        }
        if self.queue.segment_bytes < 1 << 20 {
            err("queue.segment_bytes".into(), "must be at least 1 MiB");
        }
        if self.queue.max_bytes < self.queue.segment_bytes {
            err(
                "queue.max_bytes".into(),
                "must be at least queue.segment_bytes",
            );
        }
        self.syslog.check(&mut err);
        if self.storage.batch_id_retention_hours == 0 {
            err(
                "storage.batch_id_retention_hours".into(),
                "must be at least 1",
            );
        }
        if self.embedded.pool_size == 0 {
            err("embedded.pool_size".into(), "must be at least 1");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if !seen.insert(shard.id) {
                err(format!("shards[{i}].id"), "duplicate shard id");
            }
            if shard.pool_size == 0 {
                err(format!("shards[{i}].pool_size"), "must be at least 1");
            }
            // Neither parser's message contains the password.
            let parsed = dsn::split(shard.dsn.expose())
                .map_err(|e| e.to_string())
                .and_then(|(rest, _)| {
                    rest.parse::<tokio_postgres::Config>()
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = parsed {
                err(
                    format!("shards[{i}].dsn"),
                    &format!("invalid connection string: {e}"),
                );
            }
        }
        self.check_cluster(&mut err);
        for (key, value) in [
            ("query.timeout_ms", self.query.timeout_ms),
            ("query.max_limit", self.query.max_limit as u64),
            ("query.pool_size", self.query.pool_size as u64),
        ] {
            if value == 0 {
                err(key.into(), "must be at least 1");
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            err("log.level".into(), &format!("invalid filter: {e}"));
        }
        errors
    }

    /// The node that owns `shard`.
    pub fn owner_of<'a>(&'a self, shard: &'a ShardConfig) -> &'a str {
        shard.owner.as_deref().unwrap_or(&self.node.id)
    }

    /// Whether this node writes `shard` itself.
    pub fn is_local(&self, shard: &ShardConfig) -> bool {
        self.owner_of(shard) == self.node.id
    }

    /// A digest of everything that decides where a record goes: the shard key, the
    /// nodes (id and URL) and the shards (id and owner), in id order. Nodes exchange it
    /// with every forwarded batch; one whose layout differs is refused, so a
    /// half-rolled-out configuration cannot scatter records. DSNs are left out: each
    /// node may reach a database by its own address.
    pub fn layout_fingerprint(&self) -> String {
        use sha2::Digest;
        let mut nodes: Vec<_> = self.nodes.iter().collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut shards: Vec<_> = self.shards.iter().collect();
        shards.sort_by_key(|s| s.id);
        let mut text = format!("chute-layout/1\nkey={}\n", self.cluster.shard_key);
        for n in nodes {
            text.push_str(&format!("node {:?} {:?}\n", n.id, n.url));
        }
        for s in shards {
            text.push_str(&format!("shard {} {:?}\n", s.id, self.owner_of(s)));
        }
        let digest = sha2::Sha256::digest(text.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether chute runs its own PostgreSQL (no shards configured).
    pub fn embedded(&self) -> bool {
        self.shards.is_empty()
    }

    /// Directory of the embedded PostgreSQL cluster.
    pub fn embedded_pg_dir(&self) -> PathBuf {
        self.node.data_dir.join("pg")
    }

    /// One line that says what this configuration runs (`chute validate`).
    pub fn summary(&self) -> String {
        let storage = if self.embedded() {
            format!(
                "embedded PostgreSQL in {}",
                self.embedded_pg_dir().display()
            )
        } else {
            let local = self.shards.iter().filter(|s| self.is_local(s)).count();
            format!("{} shard(s), {local} written here", self.shards.len())
        };
        let storage = if self.nodes.len() > 1 {
            format!(
                "{storage}; cluster of {} nodes, layout {}",
                self.nodes.len(),
                self.layout_fingerprint()
            )
        } else {
            storage
        };
        let access = match self.tokens.len() {
            0 => "open to anyone who reaches it".to_owned(),
            n => format!("{n} token(s)"),
        };
        format!(
            "configuration is valid: node {}, HTTP on {} ({access}), {storage}",
            self.node.id, self.http.listen
        )
    }

    /// What is valid but likely a mistake: said by `chute validate` and at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let exposed = !self.http.listen.ip().is_loopback();
        if exposed && self.tokens.is_empty() && self.http.tls_client_ca_file.is_none() {
            out.push(format!(
                "http.listen {} is reachable from other hosts, and neither [[tokens]] nor \
                 http.tls_client_ca_file is set: anyone who reaches it can write into and \
                 read every tenant (chute token new makes a token)",
                self.http.listen
            ));
        }
        let otlp_exposed = self.http.otlp_listen.is_some_and(|a| !a.ip().is_loopback());
        if otlp_exposed && self.tokens.is_empty() && self.http.tls_client_ca_file.is_none() {
            out.push(format!(
                "http.otlp_listen {} is reachable from other hosts, and neither [[tokens]] nor \
                 http.tls_client_ca_file is set: anyone who reaches it can write into every tenant",
                self.http
                    .otlp_listen
                    .map_or_else(String::new, |a| a.to_string())
            ));
        }
        out
    }
}

/// Deserialises one section into `slot`, recording its errors with their key path.
fn section<T: DeserializeOwned>(
    key: &str,
    value: toml::Value,
    errors: &mut Vec<ConfigError>,
    slot: &mut T,
) {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => *slot = v,
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                key.to_owned()
            } else if inner.starts_with('[') {
                format!("{key}{inner}")
            } else {
                format!("{key}.{inner}")
            };
            errors.push(ConfigError {
                path,
                message: e.into_inner().to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
