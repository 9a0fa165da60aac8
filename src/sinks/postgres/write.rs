//! Writing batches into a shard, effectively once.
//!
//! Every batch carries an id that is unique for all time (the queue that made it
//! durable, and its sequence number there). One transaction inserts the ids into
//! `chute.batches` and the rows into `chute.logs`; a batch whose id is already there
//! was committed before (a retry after a lost COMMIT reply, a crash between commit
//! and queue acknowledgement) and is skipped. So a batch is stored once however often
//! it is delivered.
//!
//! The fast path sends the id insert and one COPY of all rows together (pipelined on
//! the connection, with statements prepared once per connection), and commits if
//! every id was new. If some were stored before, it rolls back and writes only the
//! others. If PostgreSQL refuses the content, the transaction is rolled back and
//! written again with savepoints, bisecting until the refused rows are isolated;
//! those go to `chute.rejected` inside the same transaction, so even the split is
//! all-or-nothing.

use std::collections::HashSet;
use std::ops::Range;

use deadpool_postgres::Client;
use futures_util::SinkExt;
use tokio_postgres::types::Json;
use tokio_postgres::{Statement, Transaction};

use super::blooms::{self, Blocks};
use super::labels::{self, Key, Known};
use super::rollup::{self, Counts};
use super::{classify, Failure};
use crate::batch::{EncodedRows, RowLabels, COPY_LOGS};

/// One batch to store.
pub struct Batch {
    /// Unique for all time; the effectively-once key.
    pub id: String,
    pub rows: EncodedRows,
}

/// What a write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Rows committed into `chute.logs`.
    pub written: usize,
    /// Rows PostgreSQL refused, stored in `chute.rejected`, by metric reason.
    pub quarantined: Vec<&'static str>,
    /// Rows refused even by `chute.rejected`: lost, and logged.
    pub dropped: usize,
    /// Batches skipped because they were committed before.
    pub duplicate_batches: usize,
    /// Rows in those batches.
    pub duplicate_rows: usize,
    /// The batches this write stored (indexes into the batches given), in order.
    pub fresh: Vec<usize>,
    /// Rows of those batches PostgreSQL refused, numbered across them in order.
    pub refused: Vec<usize>,
    /// Keys this write added to the per-day label index.
    pub label_keys: Vec<Key>,
}

impl Outcome {
    /// The rows this write committed into `chute.logs`, in order.
    pub fn committed<'b>(
        &self,
        batches: &'b [Batch],
    ) -> impl Iterator<Item = (&'b EncodedRows, usize)> + use<'_, 'b> {
        self.fresh
            .iter()
            .flat_map(move |&b| (0..batches[b].rows.len()).map(move |r| (&batches[b].rows, r)))
            .enumerate()
            .filter(|(n, _)| !self.refused.contains(n))
            .map(|(_, row)| row)
    }
}

/// A failed write attempt and what to do about it.
#[derive(Debug)]
pub struct WriteError {
    pub failure: Failure,
    pub sqlstate: Option<String>,
    pub message: String,
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError {
            failure: classify(&e),
            sqlstate: e.code().map(|c| c.code().to_owned()),
            message: e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| super::error::describe(&e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for WriteError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => WriteError {
                failure: super::classify_pool(&other),
                sqlstate: None,
                message: super::error::describe(&other),
            },
        }
    }
}

/// Stores `batches` in one transaction, skipping those committed before.
///
/// # Errors
/// Only transient failures (the whole transaction rolled back; retry it as is).
/// Content failures are handled inside: the refused rows are set aside.
pub async fn write_batches(
    client: &mut Client,
    shard: i32,
    batches: &[Batch],
    known: &Known,
) -> Result<Outcome, WriteError> {
    match attempt(client, shard, batches, false, known).await {
        Err(e) if matches!(e.failure, Failure::Content(_)) => {
            attempt(client, shard, batches, true, known).await
        }
        other => other,
    }
}

/// Records every batch id, skipping those stored before; returns the new ones.
const INSERT_IDS: &str =
    "INSERT INTO chute.batches (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING id";

async fn attempt(
    client: &mut Client,
    shard: i32,
    batches: &[Batch],
    isolate: bool,
    known: &Known,
) -> Result<Outcome, WriteError> {
    let ids: Vec<&str> = batches.iter().map(|b| b.id.as_str()).collect();
    let distinct = ids.iter().collect::<HashSet<_>>().len() == ids.len();
    if !isolate && distinct {
        if let Some(out) = optimistic(client, batches, &ids, known).await? {
            return Ok(out);
        }
    }
    let mut out = Outcome::default();
    let tx = client.transaction().await?;
    let insert = tx.prepare_cached(INSERT_IDS).await?;
    let copy_logs = tx.prepare_cached(COPY_LOGS).await?;
    let mut fresh: HashSet<String> = tx
        .query(&insert, &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut parts = Vec::with_capacity(batches.len());
    for (i, b) in batches.iter().enumerate() {
        // `remove`: a batch delivered twice into one write (a peer's retry queued
        // beside the first copy) is stored once.
        if fresh.remove(&b.id) {
            parts.push(&b.rows);
            out.fresh.push(i);
        } else {
            out.duplicate_batches += 1;
            out.duplicate_rows += b.rows.len();
        }
    }
    if !parts.is_empty() {
        if isolate {
            // Rare: only here are the batches joined, so rows can be addressed as one.
            let rows = EncodedRows::concat(&parts);
            isolate_refused(&tx, &copy_logs, shard, &rows, &mut out).await?;
        } else {
            // The batches go one after another in a single COPY, without a copy.
            copy(&tx, &copy_logs, EncodedRows::stream_all(&parts)).await?;
            out.written = parts.iter().map(|p| p.len()).sum();
        }
        let rows = row_labels(out.committed(batches));
        out.label_keys = known.new_keys(&rows);
        labels::insert(&tx, &out.label_keys).await?;
        rollup::insert(&tx, &Counts::of(&rows)).await?;
        blooms::insert(&tx, &Blocks::of(&rows)).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The common case, in one round trip less: the ids and the rows go together, and
/// the transaction commits if every id was new. `None`: some batch was stored
/// before; everything was rolled back, and the caller writes the others only.
async fn optimistic(
    client: &mut Client,
    batches: &[Batch],
    ids: &[&str],
    known: &Known,
) -> Result<Option<Outcome>, WriteError> {
    let tx = client.transaction().await?;
    let insert = tx.prepare_cached(INSERT_IDS).await?;
    let copy_logs = tx.prepare_cached(COPY_LOGS).await?;
    let all: Vec<&EncodedRows> = batches.iter().map(|b| &b.rows).collect();
    let rows = row_labels(all.iter().flat_map(|b| (0..b.len()).map(move |i| (*b, i))));
    let label_keys = known.new_keys(&rows);
    let counts = Counts::of(&rows);
    let blocks = Blocks::of(&rows);
    // Polled together, the requests are pipelined on the connection.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
    let (inserted, copied, labelled, counted, bloomed) = tokio::join!(
        tx.query(&insert, &params),
        copy(&tx, &copy_logs, EncodedRows::stream_all(&all)),
        labels::insert(&tx, &label_keys),
        rollup::insert(&tx, &counts),
        blooms::insert(&tx, &blocks)
    );
    // The COPY's error says more (a refused row); the insert's is usually its echo.
    copied?;
    let inserted = inserted?;
    labelled?;
    counted?;
    bloomed?;
    if inserted.len() < batches.len() {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(Outcome {
        written: all.iter().map(|p| p.len()).sum(),
        fresh: (0..batches.len()).collect(),
        label_keys,
        ..Outcome::default()
    }))
}

/// The stream labels and messages of `rows`, read in place once for the label
/// index, the minute counts and the blooms.
fn row_labels<'r>(rows: impl Iterator<Item = (&'r EncodedRows, usize)>) -> Vec<RowLabels<'r>> {
    rows.filter_map(|(batch, i)| batch.labels(i)).collect()
}

/// One COPY of the given chunks (a complete binary COPY stream).
async fn copy(
    tx: &Transaction<'_>,
    copy_logs: &Statement,
    chunks: impl IntoIterator<Item = bytes::Bytes>,
) -> Result<(), WriteError> {
    let sink = tx.copy_in::<_, bytes::Bytes>(copy_logs).await?;
    futures_util::pin_mut!(sink);
    for chunk in chunks {
        sink.feed(chunk).await?;
    }
    sink.finish().await?;
    Ok(())
}

/// Bisects with savepoints until every refused row is isolated and set aside.
async fn isolate_refused(
    tx: &Transaction<'_>,
    copy_logs: &Statement,
    shard: i32,
    rows: &EncodedRows,
    out: &mut Outcome,
) -> Result<(), WriteError> {
    let mut todo: Vec<Range<usize>> = Vec::with_capacity(32);
    todo.push(0..rows.len());
    while let Some(range) = todo.pop() {
        tx.batch_execute("SAVEPOINT chute_part").await?;
        match copy(tx, copy_logs, rows.stream(range.clone())).await {
            Ok(()) => {
                tx.batch_execute("RELEASE SAVEPOINT chute_part").await?;
                out.written += range.len();
            }
            Err(e) if matches!(e.failure, Failure::Transient(_)) => return Err(e),
            Err(refused) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT chute_part").await?;
                if range.len() == 1 {
                    quarantine(tx, shard, rows, range.start, &refused, out).await?;
                } else {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            }
        }
    }
    Ok(())
}

/// Stores one refused row in `chute.rejected` with PostgreSQL's reason.
async fn quarantine(
    tx: &Transaction<'_>,
    shard: i32,
    rows: &EncodedRows,
    row: usize,
    refused: &WriteError,
    out: &mut Outcome,
) -> Result<(), WriteError> {
    let reason = match refused.failure {
        Failure::Content(r) | Failure::Transient(r) => r,
    };
    out.refused.push(row);
    let record = match rows.decode(row) {
        Ok(r) => serde_json::to_value(r).unwrap_or_default(),
        Err(e) => serde_json::json!({"undecodable": e.to_string()}),
    };
    tracing::warn!(shard, reason, sqlstate = ?refused.sqlstate, error = %refused.message, "PostgreSQL refused a row; storing it in chute.rejected");
    tx.batch_execute("SAVEPOINT chute_reject").await?;
    let stored = tx
        .execute(
            "INSERT INTO chute.rejected (shard, sqlstate, error, record) VALUES ($1, $2, $3, $4)",
            &[&shard, &refused.sqlstate, &refused.message, &Json(&record)],
        )
        .await;
    match stored {
        Ok(_) => {
            tx.batch_execute("RELEASE SAVEPOINT chute_reject").await?;
            out.quarantined.push(reason);
        }
        Err(e) => {
            let e = WriteError::from(e);
            if matches!(e.failure, Failure::Transient(_)) {
                return Err(e);
            }
            tx.batch_execute("ROLLBACK TO SAVEPOINT chute_reject")
                .await?;
            tracing::error!(shard, error = %e.message, %record, "chute.rejected refused a row too; the row is lost");
            out.dropped += 1;
        }
    }
    Ok(())
}
