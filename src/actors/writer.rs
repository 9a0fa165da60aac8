//! Writer: one per local shard. Gathers delivered batches and writes them into the
//! shard's PostgreSQL by binary COPY.
//!
//! - A write starts once `batch_rows` records are pending, or once the first of them
//!   has waited `flush_interval_ms`, whichever comes first. Up to `pool_size` writes
//!   run at once, each on its own pooled connection.
//! - A transient failure (connection lost, admin shutdown, serialization, resources)
//!   is retried with exponential backoff and jitter, forever: the writer of another
//!   shard is a different actor on its own thread and is never held up.
//! - A batch PostgreSQL refuses for its content is bisected until the offending rows
//!   are isolated; those go to `chute.rejected` with the error, the rest are committed.
//! - The writer holds at most `max_pending_rows` records (pending plus being written);
//!   past that it refuses deliveries with [`DeliverError::Full`], which ingest turns
//!   into 503 + Retry-After. Memory stays bounded.
//! - Before its first write, the writer brings the shard's schema up to date, and it
//!   keeps daily partitions created ahead of need every hour.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use deadpool_postgres::Pool;
use futures_util::SinkExt;
use tokio::sync::oneshot;
use tokio_postgres::types::Json;

use super::{Deliver, DeliverError};
use crate::config::{StorageConfig, WriterConfig};
use crate::metrics::Metrics;
use crate::pg::copy::{EncodedRows, COPY_LOGS};
use crate::pg::{classify, classify_pool, schema, Failure};
use crate::record::Record;
use crate::status::ShardStatus;

/// How often partitions are checked.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

/// One delivered batch waiting for its write, with the sender to answer.
struct Delivery {
    records: Vec<Record>,
    ack: oneshot::Sender<Result<(), DeliverError>>,
}

/// Writes one shard's records.
pub struct Writer {
    shard: u32,
    /// `shard` as a metric label, made once.
    label: String,
    pool: Pool,
    config: WriterConfig,
    storage: StorageConfig,
    metrics: Arc<Metrics>,
    /// Health as seen by `/readyz`.
    status: Arc<ShardStatus>,
    /// Batches waiting for a write, oldest first.
    pending: Vec<Delivery>,
    pending_rows: usize,
    /// Writes running now, and the rows they carry (both count against the limit).
    inflight: usize,
    inflight_rows: usize,
    /// Writes allowed at once: one per pooled connection.
    max_inflight: usize,
    /// Fires `flush_interval_ms` after the oldest pending batch arrived.
    timer: Option<SpawnHandle>,
    /// The timer fired while every connection was busy: flush at the next chance.
    due: bool,
    /// Whether the schema is known to be in place; nothing is written before.
    prepared: bool,
}

impl Writer {
    pub fn new(
        shard: u32,
        pool: Pool,
        pool_size: usize,
        config: WriterConfig,
        storage: StorageConfig,
        metrics: Arc<Metrics>,
        status: Arc<ShardStatus>,
    ) -> Writer {
        Writer {
            shard,
            label: shard.to_string(),
            pool,
            config,
            storage,
            metrics,
            status,
            pending: Vec::new(),
            pending_rows: 0,
            inflight: 0,
            inflight_rows: 0,
            max_inflight: pool_size.max(1),
            timer: None,
            due: false,
            prepared: false,
        }
    }

    fn ctx_for_writes(&self) -> WriteCtx {
        WriteCtx {
            shard: self.shard,
            label: self.label.clone(),
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            status: self.status.clone(),
            retry_initial: Duration::from_millis(self.config.retry_initial_ms),
            retry_max: Duration::from_millis(self.config.retry_max_ms),
        }
    }

    fn update_queue_gauge(&self) {
        self.metrics
            .queue_rows
            .with_label_values(&[&self.label])
            .set((self.pending_rows + self.inflight_rows) as i64);
    }

    /// Starts as many writes as the rules allow.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.prepared
            && self.inflight < self.max_inflight
            && !self.pending.is_empty()
            && (self.pending_rows >= self.config.batch_rows || self.due)
        {
            // Take whole deliveries until the batch is full, so each delivery is
            // answered by exactly one write.
            let mut take = 0;
            let mut rows = 0;
            for d in &self.pending {
                if rows > 0 && rows + d.records.len() > self.config.batch_rows {
                    break;
                }
                rows += d.records.len();
                take += 1;
            }
            let batch: Vec<Delivery> = self.pending.drain(..take).collect();
            self.pending_rows -= rows;
            if self.pending.is_empty() {
                self.due = false;
                if let Some(t) = self.timer.take() {
                    ctx.cancel_future(t);
                }
            }
            self.inflight += 1;
            self.inflight_rows += rows;
            self.start_write(batch, rows, ctx);
        }
        if !self.pending.is_empty() && self.timer.is_none() && !self.due {
            self.arm_timer(ctx);
        }
        self.update_queue_gauge();
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let after = Duration::from_millis(self.config.flush_interval_ms);
        self.timer = Some(ctx.run_later(after, |w, ctx| {
            w.timer = None;
            w.due = true;
            w.flush(ctx);
        }));
    }

    fn start_write(&mut self, batch: Vec<Delivery>, rows: usize, ctx: &mut Context<Self>) {
        let (records, acks): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|d| (d.records, d.ack)).unzip();
        let records: Vec<Record> = records.into_iter().flatten().collect();
        let wctx = self.ctx_for_writes();
        ctx.spawn(
            async move { wctx.write(records).await }
                .into_actor(self)
                .map(move |(), w, ctx| {
                    w.inflight -= 1;
                    w.inflight_rows -= rows;
                    for ack in acks {
                        // The sender may have given up waiting; the rows are stored anyway.
                        let _ = ack.send(Ok(()));
                    }
                    w.flush(ctx);
                }),
        );
    }

    /// Migrates the schema and creates partitions, retrying until it works.
    fn prepare(&mut self, ctx: &mut Context<Self>) {
        let wctx = self.ctx_for_writes();
        let storage = self.storage.clone();
        ctx.spawn(
            async move {
                let mut backoff = wctx.retry_initial;
                loop {
                    match wctx.prepare(&storage).await {
                        Ok(()) => return,
                        Err(e) => {
                            wctx.status.set_error(&e);
                            wctx.metrics
                                .write_retries
                                .with_label_values(&[&wctx.label, "schema"])
                                .inc();
                            tracing::error!(shard = wctx.shard, error = %e, "cannot prepare the shard's schema; retrying");
                            tokio::time::sleep(jitter(backoff)).await;
                            backoff = (backoff * 2).min(wctx.retry_max);
                        }
                    }
                }
            }
            .into_actor(self)
            .map(|(), w, ctx| {
                w.prepared = true;
                w.status.set_prepared();
                tracing::info!(shard = w.shard, "shard ready");
                w.due = true;
                w.flush(ctx);
            }),
        );
    }
}

impl Actor for Writer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.metrics
            .shard_up
            .with_label_values(&[&self.label])
            .set(0);
        self.prepare(ctx);
        ctx.run_interval(MAINTENANCE_EVERY, |w, ctx| {
            if !w.prepared {
                return;
            }
            let wctx = w.ctx_for_writes();
            let storage = w.storage.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = wctx.partitions(&storage).await {
                        wctx.metrics
                            .partition_maintenance_failures
                            .with_label_values(&[&wctx.label])
                            .inc();
                        tracing::warn!(shard = wctx.shard, error = %e, "partition maintenance failed; the default partition takes the rows meanwhile");
                    }
                }
                .into_actor(w),
            );
        });
    }
}

impl Handler<Deliver> for Writer {
    type Result = ResponseFuture<Result<(), DeliverError>>;

    /// Queues the batch and answers once it is committed. Refuses it when the shard
    /// already holds `max_pending_rows` records (a lone batch is always taken, so an
    /// oversized request cannot be refused forever).
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) -> Self::Result {
        let rows = msg.records.len();
        let held = self.pending_rows + self.inflight_rows;
        if held > 0 && held + rows > self.config.max_pending_rows {
            let err = DeliverError::Full {
                destination: format!("shard {}", self.shard),
                retry_after: Duration::from_secs(1),
            };
            return Box::pin(async move { Err(err) });
        }
        let (ack, done) = oneshot::channel();
        self.pending.push(Delivery {
            records: msg.records,
            ack,
        });
        self.pending_rows += rows;
        self.flush(ctx);
        let destination = format!("shard {}", self.shard);
        Box::pin(async move {
            done.await
                .unwrap_or(Err(DeliverError::Stopped { destination }))
        })
    }
}

/// Everything a write needs, detached from the actor so it can run as a future.
struct WriteCtx {
    shard: u32,
    label: String,
    pool: Pool,
    metrics: Arc<Metrics>,
    status: Arc<ShardStatus>,
    retry_initial: Duration,
    retry_max: Duration,
}

/// A failed attempt, with what to do about it.
struct Attempt {
    failure: Failure,
    sqlstate: Option<String>,
    message: String,
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        Attempt {
            failure: classify(&e),
            sqlstate: e.code().map(|c| c.code().to_owned()),
            message: e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Attempt {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Attempt {
                failure: classify_pool(&other),
                sqlstate: None,
                message: other.to_string(),
            },
        }
    }
}

/// Backoff with ±25% jitter, so writers that failed together do not retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + fastrand::f64() * 0.5)
}

impl WriteCtx {
    async fn prepare(&self, storage: &StorageConfig) -> Result<(), String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        schema::migrate(&mut client)
            .await
            .map_err(|e| format!("migration failed: {}", db_message(&e)))?;
        drop(client);
        self.partitions(storage).await
    }

    async fn partitions(&self, storage: &StorageConfig) -> Result<(), String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        let created = schema::ensure_partitions(
            &mut client,
            Utc::now().date_naive(),
            storage.partition_days_behind,
            storage.partition_days_ahead,
        )
        .await
        .map_err(|e| format!("partition maintenance failed: {}", db_message(&e)))?;
        self.metrics
            .partitions_created
            .with_label_values(&[&self.label])
            .inc_by(created as u64);
        Ok(())
    }

    /// Writes `records`: commits every row PostgreSQL accepts, sets aside the rows it
    /// refuses for their content, and retries transient failures until they pass.
    async fn write(&self, records: Vec<Record>) {
        let started = Instant::now();
        let n = records.len();
        self.metrics
            .batch_rows
            .with_label_values(&[&self.label])
            .observe(n as f64);
        let encoded = match EncodedRows::encode(&records) {
            Ok(e) => e,
            Err(e) => {
                // Ingest validation makes this unreachable; if it happens, fall back
                // to one row at a time so only the bad row is set aside.
                tracing::error!(shard = self.shard, error = %e, "batch encoding failed; writing row by row");
                for r in records {
                    Box::pin(self.write(vec![r])).await;
                }
                return;
            }
        };
        // Ranges still to write; the left half of a split is written first.
        let mut todo: Vec<Range<usize>> = Vec::with_capacity(32);
        todo.push(0..n);
        while let Some(range) = todo.pop() {
            match self.copy_with_retry(&encoded, range.clone()).await {
                Ok(()) => {
                    self.metrics
                        .rows_written
                        .with_label_values(&[&self.label])
                        .inc_by(range.len() as u64);
                }
                Err(attempt) if range.len() == 1 => {
                    self.quarantine(&records[range.start], &attempt).await;
                }
                Err(_) => {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            }
        }
        self.metrics
            .flush_duration
            .with_label_values(&[&self.label])
            .observe(started.elapsed().as_secs_f64());
    }

    /// One COPY of `range`, retried until it commits or PostgreSQL refuses the content.
    async fn copy_with_retry(
        &self,
        rows: &EncodedRows,
        range: Range<usize>,
    ) -> Result<(), Attempt> {
        self.retry(|| self.copy(rows, range.clone())).await
    }

    /// Runs `op` until it succeeds or fails for its content; transient failures are
    /// counted, logged and retried with backoff.
    async fn retry<F, Fut>(&self, mut op: F) -> Result<(), Attempt>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Attempt>>,
    {
        let mut backoff = self.retry_initial;
        loop {
            match op().await {
                Ok(()) => {
                    self.status.set_up(true);
                    self.metrics
                        .shard_up
                        .with_label_values(&[&self.label])
                        .set(1);
                    return Ok(());
                }
                Err(a) => match a.failure {
                    Failure::Content(_) => return Err(a),
                    Failure::Transient(reason) => {
                        self.status.set_up(false);
                        self.status.set_error(&a.message);
                        self.metrics
                            .shard_up
                            .with_label_values(&[&self.label])
                            .set(0);
                        self.metrics
                            .write_retries
                            .with_label_values(&[&self.label, reason])
                            .inc();
                        tracing::warn!(shard = self.shard, reason, error = %a.message, retry_in_ms = backoff.as_millis() as u64, "write failed; retrying");
                        tokio::time::sleep(jitter(backoff)).await;
                        backoff = (backoff * 2).min(self.retry_max);
                    }
                },
            }
        }
    }

    async fn copy(&self, rows: &EncodedRows, range: Range<usize>) -> Result<(), Attempt> {
        let client = self.pool.get().await?;
        let sink = client.copy_in::<_, bytes::Bytes>(COPY_LOGS).await?;
        futures_util::pin_mut!(sink);
        for chunk in rows.stream(range) {
            sink.feed(chunk).await?;
        }
        sink.finish().await?;
        Ok(())
    }

    /// Stores one refused row in `chute.rejected` with PostgreSQL's reason.
    async fn quarantine(&self, record: &Record, refused: &Attempt) {
        let reason = match refused.failure {
            Failure::Content(r) | Failure::Transient(r) => r,
        };
        tracing::warn!(shard = self.shard, reason, sqlstate = ?refused.sqlstate, error = %refused.message, "PostgreSQL refused a row; storing it in chute.rejected");
        let shard = self.shard as i32;
        let result = self
            .retry(|| async {
                let client = self.pool.get().await?;
                client
                    .execute(
                        "INSERT INTO chute.rejected (shard, sqlstate, error, record) VALUES ($1, $2, $3, $4)",
                        &[&shard, &refused.sqlstate, &refused.message, &Json(record)],
                    )
                    .await?;
                Ok(())
            })
            .await;
        match result {
            Ok(()) => self
                .metrics
                .rows_quarantined
                .with_label_values(&[&self.label, reason])
                .inc(),
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e.message, record = ?record, "chute.rejected refused a row too; the row is lost");
                self.metrics
                    .rows_dropped
                    .with_label_values(&[&self.label, "quarantine_refused"])
                    .inc();
            }
        }
    }
}

/// PostgreSQL's own message when there is one (the driver's Display is terse).
fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}
