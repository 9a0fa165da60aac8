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
use super::QueryError;

/// A local shard, as queries reach it.
#[derive(Clone)]
pub struct Shard {
    pub id: u32,
    pub pool: Pool,
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
        .start()
        .await
        .map_err(failed)?;
    // A number, not user text.
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {timeout_ms}"))
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

/// A shard's failure as the answer states it: a cancelled statement is the
/// timeout; anything else names the shard and PostgreSQL's message.
pub fn shard_error(shard: u32, timeout_ms: u64, e: &tokio_postgres::Error) -> QueryError {
    if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
        return QueryError::Timeout(timeout_ms);
    }
    let text = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned());
    tracing::warn!(shard, error = %text, "a query failed on a shard");
    QueryError::Unavailable(format!("shard {shard} failed to answer: {text}"))
}
