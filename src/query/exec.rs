//! Running a plan on the shards and merging what they return.
//!
//! Each local shard answers in a read-only transaction of its own, on a pool of
//! its own (`[query] pool_size`), with `statement_timeout` set, so a query past
//! `[query] timeout_ms` is cancelled in PostgreSQL too. A plan with nothing left for
//! chute to evaluate takes its `LIMIT` in SQL; one with a pipeline reads the rows
//! through a cursor, a page at a time, until the limit is met or the range ends.
//!
//! Shards this node does not own are not asked yet: the answer names them as
//! missing (the cluster fan-out is the next step), never a silent partial result.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::labels::{facility_name, level_name};
use super::pipeline::{flatten_fields, Entry, Pipeline};
use super::plan::LogPlan;
use super::time::nanos;
use super::QueryError;

/// Rows read from a cursor at a time, when chute filters them.
const PAGE_ROWS: usize = 2000;

/// The columns every line query reads, in the order [`entry`] takes them.
const COLUMNS: &str = "ts, tenant, host, app, severity, facility, procid, msgid, message, fields";

/// A local shard, as queries reach it.
#[derive(Clone)]
pub struct Shard {
    pub id: u32,
    pub pool: Pool,
}

/// The shards a query covers: those this node reads, and those it cannot yet.
#[derive(Clone, Default)]
pub struct Shards {
    pub local: Vec<Shard>,
    /// Shards of other nodes (id, owner).
    pub remote: Vec<(u32, String)>,
}

impl Shards {
    /// What the answer must say about shards it could not cover.
    pub fn warnings(&self) -> Vec<String> {
        self.remote
            .iter()
            .map(|(id, owner)| {
                format!("shard {id} (on node {owner}) was not queried: this node answers for its own shards only")
            })
            .collect()
    }
}

/// What the read API needs of this node: its shards and the `[query]` limits.
pub struct QueryState {
    pub shards: Shards,
    pub timeout_ms: u64,
    pub max_limit: usize,
}

/// Order of the lines of a log query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    fn sql(self) -> &'static str {
        match self {
            Direction::Backward => "DESC",
            Direction::Forward => "ASC",
        }
    }
}

/// A log query, planned.
pub struct LineQuery {
    pub plan: LogPlan,
    pub pipeline: Pipeline,
    pub direction: Direction,
    pub limit: usize,
}

/// The first `limit` lines of the query over every local shard, in its direction.
///
/// # Errors
/// A shard that cannot be reached or fails ([`QueryError::Unavailable`]), or runs
/// past `timeout_ms` ([`QueryError::Timeout`]).
pub async fn lines(
    shards: &Shards,
    q: &LineQuery,
    timeout_ms: u64,
) -> Result<Vec<Entry>, QueryError> {
    let per_shard =
        futures_util::future::join_all(shards.local.iter().map(|s| shard_lines(s, q, timeout_ms)))
            .await;
    let mut all = Vec::new();
    for part in per_shard {
        all.extend(part?);
    }
    match q.direction {
        Direction::Backward => all.sort_by_key(|e| Reverse(e.ts)),
        Direction::Forward => all.sort_by_key(|e| e.ts),
    }
    all.truncate(q.limit);
    Ok(all)
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

/// The rows `sql` (over `plan`'s parameters) returns on every local shard, one
/// after another.
///
/// # Errors
/// The first shard that cannot answer.
pub async fn rows_everywhere(
    shards: &Shards,
    sql: &str,
    plan: &LogPlan,
    timeout_ms: u64,
) -> Result<Vec<Row>, QueryError> {
    let mut out = Vec::new();
    for shard in &shards.local {
        let mut client = connect(shard).await?;
        let tx = read_only(&mut client, shard.id, timeout_ms).await?;
        let rows = tx
            .query(sql, &plan.sql_params())
            .await
            .map_err(|e| shard_error(shard.id, timeout_ms, &e))?;
        out.extend(rows);
        let _ = tx.rollback().await;
    }
    Ok(out)
}

async fn shard_lines(
    shard: &Shard,
    q: &LineQuery,
    timeout_ms: u64,
) -> Result<Vec<Entry>, QueryError> {
    let failed = |e: tokio_postgres::Error| shard_error(shard.id, timeout_ms, &e);
    let mut client = connect(shard).await?;
    let tx = read_only(&mut client, shard.id, timeout_ms).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM chute.logs WHERE {} ORDER BY ts {}",
        q.plan.where_clause(),
        q.direction.sql()
    );
    let params = q.plan.sql_params();
    let mut out = Vec::new();
    if q.pipeline.is_empty() {
        let rows = tx
            .query(&format!("{sql} LIMIT {}", q.limit), &params)
            .await
            .map_err(failed)?;
        out.extend(rows.iter().map(entry));
    } else {
        tx.execute(
            &format!("DECLARE lines NO SCROLL CURSOR FOR {sql}"),
            &params,
        )
        .await
        .map_err(failed)?;
        'pages: loop {
            let rows = tx
                .query(&format!("FETCH {PAGE_ROWS} FROM lines"), &[])
                .await
                .map_err(failed)?;
            for row in &rows {
                if let Some(e) = q.pipeline.process(entry(row)) {
                    out.push(e);
                    if out.len() >= q.limit {
                        break 'pages;
                    }
                }
            }
            if rows.len() < PAGE_ROWS {
                break;
            }
        }
    }
    // Read-only: nothing to keep; ending it frees the cursor.
    let _ = tx.rollback().await;
    Ok(out)
}

/// A row of [`COLUMNS`] as an entry: its stream labels (those with a value), its
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
    let mut labels = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            labels.insert(name.to_owned(), v);
        }
    };
    put("tenant", row.get(first));
    put("host", row.get(first + 1));
    put("app", row.get(first + 2));
    let severity: Option<i16> = row.get(first + 3);
    put("level", severity.map(|s| level_name(Some(s)).to_owned()));
    let facility: Option<i16> = row.get(first + 4);
    put("facility", Some(facility_name(facility).to_owned()));
    put("procid", row.get(first + 5));
    put("msgid", row.get(first + 6));
    labels
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
