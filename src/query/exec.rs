//! The shards a node reads, and how it reads one.
//!
//! Each local shard answers in a read-only transaction of its own, on a pool of
//! its own (`[query] pool_size`), with `statement_timeout` set, so a query past
//! `[query] timeout_ms` is cancelled in PostgreSQL too. What a query asks of a
//! shard is in [`super::shard`]; asking every shard of the cluster, in
//! [`super::fanout`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::labels::labels_of;
use super::pipeline::{flatten_fields, Entry};
use super::time::nanos;
use super::{shard_error, QueryError};

/// A local shard, as queries reach it.
#[derive(Clone)]
pub struct Shard {
    pub id: u32,
    pub pool: Pool,
    /// Counts of past hours, shared by the node's shards.
    pub cache: std::sync::Arc<super::cache::CountCache>,
}

/// The shards a query covers: those this node reads, and those other nodes own.
#[derive(Clone, Default)]
pub struct Shards {
    pub local: Vec<Shard>,
    /// Shards of other nodes (id, owner).
    pub remote: Vec<(u32, String)>,
}

/// What the read API needs of this node: its shards and the `[query]` limits.
pub struct QueryState {
    pub shards: Shards,
    /// Every other node's URL, by id.
    pub peers: std::collections::HashMap<String, String>,
    /// How this node presents itself to the owners it asks (none for one node).
    pub credentials: Option<crate::batch::wire::Credentials>,
    /// The tails of this node's shards.
    pub tail: std::sync::Arc<super::tail::Hub>,
    pub timeout_ms: u64,
    pub max_limit: usize,
}

/// Order of the lines of a log query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Newest first (Loki's default).
    Backward,
    Forward,
}

impl Direction {
    /// `backward` or `forward`, as Loki takes them.
    pub fn parse(text: &str) -> Option<Direction> {
        match text.to_ascii_lowercase().as_str() {
            "backward" => Some(Direction::Backward),
            "forward" => Some(Direction::Forward),
            _ => None,
        }
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            Direction::Backward => "DESC",
            Direction::Forward => "ASC",
        }
    }
}

/// A connection to `shard` from its query pool.
///
/// # Errors
/// [`QueryError::Unavailable`] naming the shard.
pub async fn connect(shard: &Shard) -> Result<deadpool_postgres::Object, QueryError> {
    shard
        .pool
        .get()
        .await
        .map_err(|e| QueryError::Unavailable(format!("shard {} cannot be reached: {e}", shard.id)))
}

/// A read-only transaction on `client` (of shard `shard`) whose statements are
/// cancelled after `timeout_ms`.
///
/// # Errors
/// As [`shard_error`].
pub async fn read_only(
    client: &mut deadpool_postgres::Object,
    shard: u32,
    timeout_ms: u64,
) -> Result<deadpool_postgres::Transaction<'_>, QueryError> {
    let failed = |e: tokio_postgres::Error| shard_error(shard, timeout_ms, &e);
    let tx = client
        .build_transaction()
        .read_only(true)
        // One snapshot for all the statements of a part: the blooms or the
        // cache's stamps agree with the rows read after them.
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(failed)?;
    // A number, not user text. No JIT: compiling costs 60-100 ms once a plan's
    // estimate passes jit_above_cost, more than it ever saved on these queries
    // (a count over 10 million rows ran 2.05 s with it, 2.01 s without).
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL jit = off"
    ))
    .await
    .map_err(failed)?;
    Ok(tx)
}

/// A row of `ts, tenant, host, app, severity, facility, procid, msgid, message,
/// fields` as an entry: its stream labels (those with a value), its
/// fields as structured metadata, and its message as the line.
pub fn entry(row: &Row) -> Entry {
    let ts: DateTime<Utc> = row.get(0);
    let fields: Option<serde_json::Value> = row.get(9);
    let metadata = match fields {
        Some(serde_json::Value::Object(map)) => flatten_fields(&map),
        _ => BTreeMap::new(),
    };
    Entry {
        ts: nanos(ts),
        labels: stream_labels(row, 1),
        metadata,
        parsed: BTreeMap::new(),
        line: row.get(8),
    }
}

/// The stream labels (those with a value) of the columns `tenant, host, app,
/// severity, facility, procid, msgid`, starting at column `first` of `row`.
pub fn stream_labels(row: &Row, first: usize) -> BTreeMap<String, String> {
    labels_of(
        row.get(first),
        row.get(first + 1),
        row.get(first + 2),
        row.get(first + 3),
        row.get(first + 4),
        row.get(first + 5),
        row.get(first + 6),
    )
}
