//! Writer: the consumer of one local shard's queue. Reads durable batches from the
//! queue, stores them in the shard's PostgreSQL, then acknowledges them in the queue.
//!
//! - A write starts once `batch_rows` records are waiting, or once the oldest has
//!   waited `flush_interval_ms`, whichever comes first; up to `pool_size` writes run
//!   at once, each in one transaction on its own pooled connection.
//! - Each batch is stored effectively once ([`crate::sinks::postgres::write`]): its id (the
//!   queue's incarnation and the entry's sequence number, or the origin's id for a
//!   batch from a peer) is committed with its rows, and a batch seen before is skipped.
//! - A transient failure (connection lost, admin shutdown, serialization, resources)
//!   is retried with exponential backoff and jitter, forever: the batches stay in the
//!   queue meanwhile, and other shards have their own writers and threads.
//! - The queue is acknowledged in order: only once every earlier batch is stored.
//!   A crash between commit and acknowledgement re-delivers batches the database
//!   then recognises.
//! - Before its first write the writer brings the shard's schema up to date; every
//!   hour it creates partitions ahead of need and prunes old batch ids.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use chrono::Utc;
use deadpool_postgres::Pool;

use super::queue_io::{Acks, QueueIo, ReadAfter};
use super::Available;
use crate::batch::EncodedRows;
use crate::config::{RetentionConfig, StorageConfig, WriterConfig};
use crate::metrics::Metrics;
use crate::query::tail::Hub;
use crate::sinks::postgres::labels::Known;
use crate::sinks::postgres::write::{write_batches, Batch, WriteError};
use crate::sinks::postgres::{schema, Failure};
use crate::status::ShardStatus;

mod upkeep;

/// How long one maintenance run starts index rebuilds of closed days for (the
/// rest wait for the next run).
const COMPACTION_BUDGET: Duration = Duration::from_secs(120);

/// How often partitions and batch ids are maintained.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// How often the shard's storage is measured (`chute_storage_*`).
const MEASURE_EVERY: Duration = Duration::from_secs(60);
/// Most payload bytes read from the queue at once.
const READ_BYTES: usize = 8 << 20;

/// A queue entry, decoded and ready to write. `None`: an entry that holds no valid
/// batch; it is passed along so the queue is still acknowledged in order.
struct Ready {
    seq: u64,
    batch: Option<Batch>,
}

impl Ready {
    fn rows(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.rows.len())
    }
}

/// Where the writer stands in its queue.
#[derive(Debug, Clone, Copy)]
pub struct QueuePosition {
    /// Sequence number of the last entry acknowledged (0 = none yet).
    pub acked: u64,
    /// Sequence number of the last durable entry at start-up.
    pub durable: u64,
}

/// Writes one shard's queued batches into its PostgreSQL.
pub struct Writer {
    shard: u32,
    /// `shard` as a metric label, made once.
    label: String,
    /// Prefix of local batch ids: names this queue for all time (see `queue_id`).
    queue_id: String,
    pool: Pool,
    io: Addr<QueueIo>,
    config: WriterConfig,
    storage: StorageConfig,
    retention: RetentionConfig,
    metrics: Arc<Metrics>,
    status: Arc<ShardStatus>,
    tail: Arc<Hub>,
    known: Arc<Known>,
    /// Last sequence number read from the queue.
    read_upto: u64,
    /// Last sequence number handed to a write.
    last_handed: u64,
    /// Last sequence number known durable.
    durable_upto: u64,
    /// Records known durable but not yet read, and since when the oldest waits.
    unread_rows: usize,
    oldest_unread: Option<Instant>,
    /// Entries read but not yet written.
    readahead: VecDeque<Ready>,
    reading: bool,
    inflight: usize,
    max_inflight: usize,
    /// Acknowledgements: `acks.done` is the last entry stored with none missing before.
    acks: Acks,
    /// Stored ranges waiting for earlier ones: the sequence number before the
    /// range's first entry → the range's last entry.
    stored: BTreeMap<u64, u64>,
    timer: Option<SpawnHandle>,
    /// Schema in place; nothing is written before.
    prepared: bool,
    /// Draining for shutdown: no new writes start; these wait for the last to end.
    draining: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    /// A retention check is running (checks never overlap).
    retaining: bool,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: u32,
        queue_id: String,
        position: QueuePosition,
        pool: Pool,
        pool_size: usize,
        io: Addr<QueueIo>,
        config: WriterConfig,
        storage: StorageConfig,
        retention: RetentionConfig,
        metrics: Arc<Metrics>,
        status: Arc<ShardStatus>,
        tail: Arc<Hub>,
    ) -> Writer {
        let backlog = position.durable > position.acked;
        Writer {
            shard,
            label: shard.to_string(),
            queue_id,
            pool,
            io: io.clone(),
            config,
            storage,
            retention,
            metrics,
            status,
            tail,
            known: Arc::default(),
            read_upto: position.acked,
            last_handed: position.acked,
            durable_upto: position.durable,
            // A backlog from before a restart: its size is unknown, so it is due now.
            unread_rows: if backlog { usize::MAX / 2 } else { 0 },
            oldest_unread: backlog.then(Instant::now),
            readahead: VecDeque::new(),
            reading: false,
            inflight: 0,
            max_inflight: pool_size.max(1),
            acks: Acks::new(io.clone(), position.acked),
            stored: BTreeMap::new(),
            timer: None,
            prepared: false,
            draining: false,
            drained: Vec::new(),
            retaining: false,
        }
    }

    fn ctx_for_writes(&self) -> WriteCtx {
        WriteCtx {
            shard: self.shard,
            label: self.label.clone(),
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            status: self.status.clone(),
            tail: self.tail.clone(),
            known: self.known.clone(),
            retry_initial: Duration::from_millis(self.config.retry_initial_ms),
            retry_max: Duration::from_millis(self.config.retry_max_ms),
            write_timeout: Duration::from_millis(self.config.write_timeout_ms),
        }
    }

    fn readahead_rows(&self) -> usize {
        self.readahead.iter().map(Ready::rows).sum()
    }

    /// Whether enough is waiting, or it has waited long enough, to write now.
    fn due(&self) -> bool {
        let waiting = self.unread_rows.saturating_add(self.readahead_rows());
        waiting >= self.config.batch_rows
            || self.oldest_unread.is_some_and(|t| {
                t.elapsed() >= Duration::from_millis(self.config.flush_interval_ms)
            })
    }

    /// Starts writes and reads as far as the rules allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            if self.inflight == 0 {
                self.acks.send();
                for done in self.drained.drain(..) {
                    let _ = done.send(());
                }
            }
            return;
        }
        if !self.prepared {
            return;
        }
        if self.readahead.is_empty() && self.read_upto >= self.durable_upto {
            self.oldest_unread = None;
            self.unread_rows = 0;
            return;
        }
        if !self.due() {
            self.arm_timer(ctx);
            return;
        }
        while self.inflight < self.max_inflight && !self.readahead.is_empty() {
            let mut batch = Vec::new();
            let mut rows = 0;
            while let Some(next) = self.readahead.front() {
                if rows > 0 && rows + next.rows() > self.config.batch_rows {
                    break;
                }
                rows += next.rows();
                batch.extend(self.readahead.pop_front());
            }
            self.start_write(batch, ctx);
        }
        if self.readahead.is_empty() && self.read_upto >= self.durable_upto {
            self.oldest_unread = None;
            self.unread_rows = 0;
        }
        if !self.reading
            && self.read_upto < self.durable_upto
            && self.readahead_rows() < self.config.batch_rows
        {
            self.read(ctx);
        }
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if self.timer.is_some() {
            return;
        }
        let left = self
            .oldest_unread
            .map(|t| {
                Duration::from_millis(self.config.flush_interval_ms).saturating_sub(t.elapsed())
            })
            .unwrap_or(Duration::from_millis(self.config.flush_interval_ms));
        self.timer = Some(ctx.run_later(left, |w, ctx| {
            w.timer = None;
            w.pump(ctx);
        }));
    }

    fn read(&mut self, ctx: &mut Context<Self>) {
        self.reading = true;
        let after = self.read_upto;
        // Every entry up to here was synced before this read reaches the queue thread.
        let durable_now = self.durable_upto;
        let read = self.io.send(ReadAfter {
            after,
            max_entries: 4096,
            max_bytes: READ_BYTES,
        });
        ctx.spawn(read.into_actor(self).map(move |result, w, ctx| {
            w.reading = false;
            let entries = match result {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    tracing::error!(shard = w.shard, error = %e, "cannot read the queue; retrying in 1 s");
                    ctx.run_later(Duration::from_secs(1), |w, ctx| w.pump(ctx));
                    return;
                }
                Err(_) => return, // the queue thread stopped: shutting down
            };
            if entries.is_empty() {
                // Nothing is left up to `durable_now`: numbers without an entry (a
                // torn record's, whose header survived a crash) are passed over,
                // or the writer would read again and again until new records come.
                w.read_upto = w.read_upto.max(durable_now);
            }
            let mut rows = 0;
            for entry in entries {
                w.read_upto = w.read_upto.max(entry.seq);
                w.durable_upto = w.durable_upto.max(entry.seq);
                let batch = match decode(&w.queue_id, entry.seq, Bytes::from(entry.payload)) {
                    Ok(batch) => Some(batch),
                    Err(e) => {
                        // The CRC matched, so this is not disk damage but a bug or a
                        // peer of another version: count it loudly and go on.
                        tracing::error!(shard = w.shard, seq = entry.seq, error = %e, "a queue entry holds no valid batch; skipping it");
                        w.metrics.queue_corrupt.with_label_values(&[&format!("shard-{}", w.shard), "payload"]).inc();
                        None
                    }
                };
                let ready = Ready { seq: entry.seq, batch };
                rows += ready.rows();
                w.readahead.push_back(ready);
            }
            w.unread_rows = w.unread_rows.saturating_sub(rows);
            if w.read_upto >= w.durable_upto {
                w.unread_rows = 0;
            }
            w.pump(ctx);
        }));
    }

    fn start_write(&mut self, ready: Vec<Ready>, ctx: &mut Context<Self>) {
        let Some(last) = ready.last().map(|r| r.seq) else {
            return;
        };
        let after = std::mem::replace(&mut self.last_handed, last);
        self.inflight += 1;
        let wctx = self.ctx_for_writes();
        ctx.spawn(
            async move {
                let batches: Vec<Batch> = ready.into_iter().filter_map(|r| r.batch).collect();
                if !batches.is_empty() {
                    wctx.write(&batches).await;
                }
            }
            .into_actor(self)
            .map(move |(), w, ctx| {
                w.inflight -= 1;
                w.stored.insert(after, last);
                w.advance_acks(ctx);
                w.pump(ctx);
            }),
        );
    }

    /// Acknowledges in the queue everything stored without a gap before it.
    fn advance_acks(&mut self, ctx: &mut Context<Self>) {
        while let Some(last) = self.stored.remove(&self.acks.done) {
            self.acks.done = last;
        }
        let now = self.draining;
        self.acks.advance(ctx, now, |w: &mut Writer| &mut w.acks);
    }

    /// Creates the partitions due and prunes batch ids, unless the shard is not
    /// ready; a failure is counted, and the next run tries again.
    fn maintain(&mut self, ctx: &mut Context<Self>) {
        if !self.prepared {
            return;
        }
        let wctx = self.ctx_for_writes();
        let (storage, retention) = (self.storage.clone(), self.retention.clone());
        ctx.spawn(
            async move {
                let maintained = match wctx.maintain(&storage, &retention).await {
                    Ok(()) => wctx.compact().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = maintained {
                    wctx.metrics
                        .partition_maintenance_failures
                        .with_label_values(&[&wctx.label])
                        .inc();
                    tracing::warn!(shard = wctx.shard, error = %e, "maintenance failed; the default partition takes the rows meanwhile");
                }
            }
            .into_actor(self),
        );
    }

    /// Migrates the schema and creates partitions, retrying until it works.
    fn prepare(&mut self, ctx: &mut Context<Self>) {
        let wctx = self.ctx_for_writes();
        let (storage, retention) = (self.storage.clone(), self.retention.clone());
        ctx.spawn(
            async move {
                let mut backoff = wctx.retry_initial;
                loop {
                    match wctx.prepare(&storage, &retention).await {
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
                w.pump(ctx);
                w.retain(ctx);
            }),
        );
    }

    /// Starts a retention check, unless one is running or the shard is not ready.
    fn retain(&mut self, ctx: &mut Context<Self>) {
        if !self.prepared || self.retaining {
            return;
        }
        self.retaining = true;
        let (wctx, retention) = (self.ctx_for_writes(), self.retention.clone());
        ctx.spawn(
            async move { wctx.retain(&retention).await }
                .into_actor(self)
                .map(|(), w, _| w.retaining = false),
        );
    }
}

/// Turns a queue entry into a batch with its effectively-once id.
fn decode(queue_id: &str, seq: u64, payload: Bytes) -> Result<Batch, crate::batch::PayloadError> {
    let (origin, rows) = EncodedRows::from_payload(payload)?;
    let id = origin.unwrap_or_else(|| format!("{queue_id}:{seq}"));
    Ok(Batch { id, rows })
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
        ctx.run_interval(MAINTENANCE_EVERY, |w, ctx| w.maintain(ctx));
        ctx.run_interval(MEASURE_EVERY, |w, ctx| {
            if w.prepared {
                let wctx = w.ctx_for_writes();
                ctx.spawn(async move { wctx.measure().await }.into_actor(w));
            }
        });
        let every = Duration::from_secs(self.retention.check_interval_s.max(1));
        ctx.run_interval(every, |w, ctx| w.retain(ctx));
    }
}

impl Handler<Available> for Writer {
    type Result = ();

    /// More entries are durable in the queue.
    fn handle(&mut self, msg: Available, ctx: &mut Self::Context) {
        if msg.upto > self.durable_upto {
            self.durable_upto = msg.upto;
            self.unread_rows = self.unread_rows.saturating_add(msg.rows);
            self.oldest_unread.get_or_insert_with(Instant::now);
        }
        self.pump(ctx);
    }
}

/// New batching and retry settings (SIGHUP); running writes finish with the old ones.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub WriterConfig);

impl Handler<Reconfigure> for Writer {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.config = msg.0;
        self.pump(ctx);
    }
}

/// New `[retention]` limits (SIGHUP), applied by a check started at once; the
/// check interval stays as it was until a restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRetention(pub RetentionConfig);

impl Handler<SetRetention> for Writer {
    type Result = ();

    fn handle(&mut self, msg: SetRetention, ctx: &mut Self::Context) {
        let classes_changed = msg.0.classes() != self.retention.classes();
        self.retention = msg.0;
        if classes_changed {
            // Days ahead that are still empty take the new classes.
            self.maintain(ctx);
        }
        self.retain(ctx);
    }
}

/// Stop starting writes; answered once the running ones have finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for Writer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let (done, drained) = tokio::sync::oneshot::channel();
        self.drained.push(done);
        self.pump(ctx);
        Box::pin(async move {
            let _ = drained.await;
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
    /// Tails of this node, handed the rows each write commits.
    tail: Arc<Hub>,
    /// Keys of the per-day label index this writer has committed.
    known: Arc<Known>,
    retry_initial: Duration,
    retry_max: Duration,
    /// A write with no answer this long is abandoned with its connection.
    write_timeout: Duration,
}

/// Backoff with ±25% jitter, so writers that failed together do not retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + fastrand::f64() * 0.5)
}

impl WriteCtx {
    async fn prepare(
        &self,
        storage: &StorageConfig,
        retention: &RetentionConfig,
    ) -> Result<(), String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        schema::migrate(&mut client)
            .await
            .map_err(|e| format!("migration failed: {}", db_message(&e)))?;
        drop(client);
        self.maintain(storage, retention).await
    }

    async fn maintain(
        &self,
        storage: &StorageConfig,
        retention: &RetentionConfig,
    ) -> Result<(), String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        let created = schema::ensure_partitions(
            &mut client,
            Utc::now().date_naive(),
            (
                // Never a partition retention would drop at once.
                match retention.longest_age() {
                    0 => storage.partition_days_behind,
                    age => storage.partition_days_behind.min(age),
                },
                storage.partition_days_ahead,
            ),
            &retention.classes(),
        )
        .await
        .map_err(|e| format!("partition maintenance failed: {}", db_message(&e)))?;
        self.metrics
            .partitions_created
            .with_label_values(&[&self.label])
            .inc_by(created as u64);
        schema::prune_batches(&client, storage.batch_id_retention_hours)
            .await
            .map_err(|e| format!("pruning batch ids failed: {}", db_message(&e)))?;

        drop(client);
        self.measure().await;
        Ok(())
    }

    /// Stores `batches`, retrying transient failures until it succeeds.
    async fn write(&self, batches: &[Batch]) {
        let started = Instant::now();
        let rows: usize = batches.iter().map(|b| b.rows.len()).sum();
        self.metrics
            .batch_rows
            .with_label_values(&[&self.label])
            .observe(rows as f64);
        let mut backoff = self.retry_initial;
        let mut outcome = loop {
            let attempt = async {
                let mut client = self.pool.get().await?;
                let write = write_batches(&mut client, self.shard as i32, batches, &self.known);
                match tokio::time::timeout(self.write_timeout, write).await {
                    Ok(result) => result,
                    Err(_elapsed) => {
                        // The connection went silent: it must never serve another
                        // write. PostgreSQL ends its transaction on its own
                        // (idle_in_transaction_session_timeout), so the retry on a
                        // new connection is not blocked by its locks for long.
                        drop(deadpool_postgres::Object::take(client));
                        Err(WriteError {
                            failure: Failure::Transient("timeout"),
                            sqlstate: None,
                            message: format!(
                                "no answer from PostgreSQL within {} ms; the connection was dropped",
                                self.write_timeout.as_millis()
                            ),
                        })
                    }
                }
            };
            match attempt.await {
                Ok(outcome) => break outcome,
                Err(WriteError {
                    failure, message, ..
                }) => {
                    let reason = match failure {
                        Failure::Transient(r) | Failure::Content(r) => r,
                    };
                    self.status.set_error(&message);
                    self.metrics
                        .shard_up
                        .with_label_values(&[&self.label])
                        .set(0);
                    self.metrics
                        .write_retries
                        .with_label_values(&[&self.label, reason])
                        .inc();
                    tracing::warn!(shard = self.shard, reason, error = %message, retry_in_ms = backoff.as_millis() as u64, "write failed; retrying");
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(self.retry_max);
                }
            }
        };
        self.status.set_up(true);
        self.known
            .committed(std::mem::take(&mut outcome.label_keys));
        let m = &self.metrics;
        m.shard_up.with_label_values(&[&self.label]).set(1);
        m.rows_written
            .with_label_values(&[&self.label])
            .inc_by(outcome.written as u64);
        for reason in &outcome.quarantined {
            m.rows_quarantined
                .with_label_values(&[&self.label, reason])
                .inc();
        }
        if outcome.dropped > 0 {
            m.rows_dropped
                .with_label_values(&[&self.label, "quarantine_refused"])
                .inc_by(outcome.dropped as u64);
        }
        if outcome.duplicate_batches > 0 {
            tracing::info!(
                shard = self.shard,
                batches = outcome.duplicate_batches,
                rows = outcome.duplicate_rows,
                "skipped batches stored before"
            );
            m.duplicate_batches
                .with_label_values(&[&self.label])
                .inc_by(outcome.duplicate_batches as u64);
        }
        m.flush_duration
            .with_label_values(&[&self.label])
            .observe(started.elapsed().as_secs_f64());
        if self.tail.is_watched() {
            // Decoded only when someone tails; a row that does not decode was
            // checked when it was queued, so none is expected to.
            let records: Vec<_> = outcome
                .committed(batches)
                .filter_map(|(rows, r)| rows.decode(r).ok())
                .collect();
            self.tail.publish(&records);
        }
    }
}

/// PostgreSQL's own message when there is one (the driver's Display is terse).
fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| crate::sinks::postgres::error::describe(e))
}

impl Handler<super::Ping> for Writer {
    type Result = ();

    /// Answered as soon as the actor's thread gets to it.
    fn handle(&mut self, _: super::Ping, _: &mut Self::Context) {}
}
