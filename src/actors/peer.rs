//! Peer link: the consumer of the queue that holds records bound for one remote
//! node's shards. It sends them to that node's `POST /internal/v1/batches` and
//! acknowledges them in its queue only once the node answered that they are durable
//! there.
//!
//! - One request at a time, carrying every queued batch up to `[cluster]
//!   batch_bytes`: under load the requests grow by themselves, and an idle link adds
//!   no delay.
//! - Each batch keeps the id it got in this queue (`<queue id>:<seq>`); the receiving
//!   node stores it with that id, so a batch sent again after a lost answer is
//!   recognised and stored once.
//! - A failure (connection refused, timeout, 503, a wrong token or layout) is
//!   retried with exponential backoff and jitter, forever: the records wait on this
//!   node's disk, and the other destinations carry on.
//! - A refusal no retry can cure (413: too large for the peer; 409
//!   `shard_not_owned`: the layout changed under queued batches; 400: the peer
//!   cannot read the batch) must not hold up the batches behind it. The link sends
//!   the refused request's entries one at a time to find the one refused, moves it
//!   to the dead letters ([`crate::deadletter`]) and goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use super::queue_io::{Acks, QueueIo, ReadAfter};
use super::writer::Drain;
use super::Available;
use crate::batch::wire::{BatchesBody, Credentials, CONTENT_TYPE};
use crate::batch::EncodedRows;
use crate::config::ClusterConfig;
use crate::deadletter::{DeadLetters, Meta};
use crate::metrics::Metrics;
use crate::status::PeerStatus;

/// A request built from queued batches, kept until the peer confirms it.
struct Prepared {
    /// Sequence number of the last queue entry it covers.
    last: u64,
    body: Bytes,
    batches: usize,
    records: usize,
    tried: bool,
    /// The batch of a request that carries exactly one, kept to set it aside if the
    /// peer refuses it for good.
    single: Option<Single>,
}

/// One queued batch, as a dead letter needs it.
struct Single {
    seq: u64,
    shard: u32,
    id: String,
    payload: Bytes,
    records: usize,
}

/// Forwards one remote node's batches.
pub struct PeerLink {
    /// The remote node's id; the `peer` label.
    node: String,
    endpoint: String,
    queue_id: String,
    io: Addr<QueueIo>,
    /// Made on the actor's own thread (`awc::Client` is not `Send`).
    client: Option<awc::Client>,
    credentials: Credentials,
    config: ClusterConfig,
    metrics: Arc<Metrics>,
    status: Arc<PeerStatus>,
    /// Last entry the peer confirmed.
    sent_upto: u64,
    /// Last entry known durable in the queue.
    durable_upto: u64,
    /// A read, a request or a backoff wait is running.
    busy: bool,
    /// A request that failed, to send again as it is.
    retry: Option<Prepared>,
    backoff: Duration,
    /// The backoff wait before a retry, cancelled by a drain.
    waiting: Option<SpawnHandle>,
    acks: Acks,
    draining: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    /// After a refusal for good of a request of several batches: entries up to here
    /// are sent one per request, to find the refused one.
    isolate_upto: u64,
    deadletters: DeadLetters,
}

impl PeerLink {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        url: &str,
        queue_id: String,
        position: super::writer::QueuePosition,
        io: Addr<QueueIo>,
        credentials: Credentials,
        config: ClusterConfig,
        metrics: Arc<Metrics>,
        status: Arc<PeerStatus>,
        deadletters: DeadLetters,
    ) -> PeerLink {
        PeerLink {
            endpoint: format!("{}/internal/v1/batches", url.trim_end_matches('/')),
            node,
            queue_id,
            acks: Acks::new(io.clone(), position.acked),
            io,
            client: None,
            credentials,
            backoff: Duration::from_millis(config.retry_initial_ms),
            config,
            metrics,
            status,
            sent_upto: position.acked,
            durable_upto: position.durable,
            busy: false,
            retry: None,
            waiting: None,
            draining: false,
            drained: Vec::new(),
            isolate_upto: 0,
            deadletters,
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        if self.draining {
            self.acks.send();
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
            return;
        }
        if let Some(prepared) = self.retry.take() {
            self.send(prepared, ctx);
        } else if self.sent_upto < self.durable_upto {
            self.read(ctx);
        }
    }

    fn read(&mut self, ctx: &mut Context<Self>) {
        self.busy = true;
        // Every entry up to here was synced before this read reaches the queue thread;
        // entries made durable after it may be missing from its answer.
        let durable_now = self.durable_upto;
        let read = self.io.send(ReadAfter {
            after: self.sent_upto,
            max_entries: if self.isolate_upto > self.sent_upto {
                1
            } else {
                4096
            },
            max_bytes: self.config.batch_bytes,
        });
        ctx.spawn(read.into_actor(self).map(move |result, link, ctx| {
            link.busy = false;
            let entries = match result {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    tracing::error!(peer = %link.node, error = %e, "cannot read the queue; retrying in 1 s");
                    link.busy = true;
                    ctx.run_later(Duration::from_secs(1), |link, ctx| {
                        link.busy = false;
                        link.pump(ctx);
                    });
                    return;
                }
                Err(_) => return, // the queue thread stopped: shutting down
            };
            let last = entries.last().map_or(durable_now, |e| e.seq);
            match link.prepare(entries) {
                Ok(Some(prepared)) => link.send(prepared, ctx),
                Ok(None) => {
                    // Nothing sendable up to what is durable (damaged entries were
                    // set aside by the queue): move past it.
                    link.delivered(last, ctx);
                    link.pump(ctx);
                }
                Err(e) => {
                    // The entries are intact; only building the request failed. They
                    // are read again, never acknowledged unsent.
                    tracing::error!(peer = %link.node, error = %e, "cannot compress a request; retrying in 1 s");
                    link.metrics
                        .peer_failures
                        .with_label_values(&[&link.node, "compress"])
                        .inc();
                    link.busy = true;
                    ctx.run_later(Duration::from_secs(1), |link, ctx| {
                        link.busy = false;
                        link.pump(ctx);
                    });
                }
            }
        }));
    }

    /// Frames the entries into one compressed request body ([`BatchesBody`]);
    /// `Ok(None)` when none of them holds a sendable batch.
    ///
    /// # Errors
    /// Compressing the body failed; the entries stay unsent.
    fn prepare(&self, entries: Vec<chute_queue::Entry>) -> std::io::Result<Option<Prepared>> {
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(None);
        };
        let size: usize = entries.iter().map(|e| e.payload.len() + 48).sum();
        let mut body = BatchesBody::with_capacity(size);
        let mut records = 0;
        let mut single = None;
        for entry in entries {
            // Owned bytes: the batch is read in place, not copied.
            let entry_bytes = Bytes::from(entry.payload);
            let parsed = split_shard(&entry_bytes)
                .map(|(shard, _)| shard)
                .and_then(|shard| {
                    let payload = entry_bytes.slice(4..);
                    EncodedRows::from_payload(payload.clone())
                        .ok()
                        .map(|(origin, rows)| (shard, payload, origin, rows.len()))
                });
            let Some((shard, payload, origin, rows)) = parsed else {
                self.skip_malformed(entry.seq);
                continue;
            };
            records += rows;
            // The id the batch got when it was first made durable: a request's
            // idempotency key, or this queue's name for it.
            let id = origin.unwrap_or_else(|| format!("{}:{}", self.queue_id, entry.seq));
            body.push(shard, &id, &payload);
            single = Some(Single {
                seq: entry.seq,
                shard,
                id,
                payload,
                records: rows,
            });
        }
        let batches = body.len();
        Ok(body.finish()?.map(|body| Prepared {
            last,
            body,
            batches,
            records,
            tried: false,
            single: single.filter(|_| batches == 1),
        }))
    }

    fn skip_malformed(&self, seq: u64) {
        // The CRC matched, so this is a bug rather than disk damage: say so loudly.
        tracing::error!(peer = %self.node, seq, "a queue entry holds no valid batch; skipping it");
        self.metrics
            .queue_corrupt
            .with_label_values(&[&format!("peer-{}", self.node), "payload"])
            .inc();
    }

    fn send(&mut self, prepared: Prepared, ctx: &mut Context<Self>) {
        self.busy = true;
        let client = self
            .client
            .get_or_insert_with(|| {
                crate::tls::http_client(
                    Duration::from_millis(self.config.request_timeout_ms),
                    self.credentials.tls.clone(),
                )
            })
            .clone();
        let m = &self.metrics;
        if prepared.tried {
            m.peer_retries.with_label_values(&[&self.node]).inc();
        }
        m.peer_bytes_sent
            .with_label_values(&[&self.node])
            .inc_by(prepared.body.len() as u64);
        let request = self
            .credentials
            .sign(client.post(&self.endpoint), &self.node)
            .insert_header(("content-type", CONTENT_TYPE))
            .insert_header(("content-encoding", "zstd"));
        let body = prepared.body.clone();
        let attempt = async move {
            let started = Instant::now();
            let mut response = request.send_body(body).await.map_err(|e| {
                let reason = match e {
                    awc::error::SendRequestError::Timeout => "timeout",
                    _ => "connect",
                };
                (reason, e.to_string())
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(started.elapsed());
            }
            let text = response.body().limit(4096).await.unwrap_or_default();
            let reason = refusal_reason(status.as_u16(), &text);
            Err((
                reason,
                format!("{status}: {}", String::from_utf8_lossy(&text).trim()),
            ))
        };
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(move |result, link, ctx| match result {
                    Ok(rtt) => link.succeeded(prepared, rtt, ctx),
                    Err((reason, message)) => link.failed(prepared, reason, &message, ctx),
                }),
        );
    }

    fn succeeded(&mut self, prepared: Prepared, rtt: Duration, ctx: &mut Context<Self>) {
        let m = &self.metrics;
        let l = [self.node.as_str()];
        m.peer_batches_sent
            .with_label_values(&l)
            .inc_by(prepared.batches as u64);
        m.peer_records_sent
            .with_label_values(&l)
            .inc_by(prepared.records as u64);
        m.peer_rtt.with_label_values(&l).observe(rtt.as_secs_f64());
        m.peer_up.with_label_values(&l).set(1);
        if prepared.tried {
            tracing::info!(peer = %self.node, "peer reachable again; delivering its backlog");
        }
        self.status.set_up(rtt.as_secs_f64() * 1000.0);
        self.backoff = Duration::from_millis(self.config.retry_initial_ms);
        self.busy = false;
        self.delivered(prepared.last, ctx);
        self.pump(ctx);
    }

    fn failed(
        &mut self,
        mut prepared: Prepared,
        reason: &'static str,
        message: &str,
        ctx: &mut Context<Self>,
    ) {
        let l = [self.node.as_str()];
        self.metrics
            .peer_failures
            .with_label_values(&[&self.node, reason])
            .inc();
        if reason == "unauthorized" {
            // During a peer token rotation: the retry carries the next token.
            self.credentials.refused_by(&self.node);
        }
        if is_for_good(reason) && !self.draining {
            // The peer answered: it is up, and this request can never succeed.
            if let Some(single) = prepared.single.take() {
                self.dead_letter(prepared.last, single, reason, message, ctx);
            } else {
                tracing::warn!(peer = %self.node, reason, batches = prepared.batches,
                    "the peer refused a request for good; sending its batches one at a time to find the refused one");
                self.isolate_upto = self.isolate_upto.max(prepared.last);
                self.busy = false;
                self.pump(ctx);
            }
            return;
        }
        self.metrics.peer_up.with_label_values(&l).set(0);
        self.status.set_error(&format!("{reason}: {message}"));
        let wait = jitter(self.backoff);
        // The first failure of a run is a warning; the retries after it are not news.
        if !prepared.tried {
            tracing::warn!(peer = %self.node, reason, error = %message, retry_in_ms = wait.as_millis() as u64,
                "forwarding to the peer failed; the records stay queued and are retried");
        } else {
            tracing::debug!(peer = %self.node, reason, error = %message, "forward retry failed");
        }
        prepared.tried = true;
        self.retry = Some(prepared);
        self.backoff = (self.backoff * 2).min(Duration::from_millis(self.config.retry_max_ms));
        if self.draining {
            self.busy = false;
            self.pump(ctx);
            return;
        }
        self.waiting = Some(ctx.run_later(wait, |link, ctx| {
            link.waiting = None;
            link.busy = false;
            link.pump(ctx);
        }));
    }

    /// Moves the one batch of a request the peer refused for good to the dead
    /// letters, then acknowledges it (and anything set aside before it, up to
    /// `last`) so the link goes on. If it cannot be written, it stays queued and is
    /// tried again after the backoff.
    fn dead_letter(
        &mut self,
        last: u64,
        single: Single,
        reason: &'static str,
        message: &str,
        ctx: &mut Context<Self>,
    ) {
        self.busy = true;
        let meta = Meta {
            id: String::new(),
            peer: self.node.clone(),
            shard: single.shard,
            batch: single.id.clone(),
            records: single.records,
            bytes: single.payload.len(),
            reason: reason.to_owned(),
            error: message.to_owned(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let store = self.deadletters.clone();
        let (seq, payload) = (single.seq, single.payload);
        let write = tokio::task::spawn_blocking(move || {
            let meta = store.put(meta, seq, &payload)?;
            let waiting = store.count(&meta.peer)?;
            Ok::<_, std::io::Error>((meta, waiting))
        });
        ctx.spawn(write.into_actor(self).map(move |result, link, ctx| {
            link.busy = false;
            let written = result.map_err(std::io::Error::other).and_then(|r| r);
            match written {
                Ok((meta, waiting)) => {
                    tracing::error!(peer = %link.node, dead_letter = %meta.id, batch = %meta.batch,
                        shard = meta.shard, records = meta.records, reason, error = %meta.error,
                        "the peer refused a batch for good; it is set aside as a dead letter and the link goes on (chute deadletter list)");
                    let l = [link.node.as_str()];
                    let m = &link.metrics;
                    m.deadletter_moved
                        .with_label_values(&[&link.node, reason])
                        .inc();
                    m.deadletter_entries
                        .with_label_values(&l)
                        .set(waiting as i64);
                    m.peer_up.with_label_values(&l).set(1);
                    link.delivered(last, ctx);
                    link.pump(ctx);
                }
                Err(e) => {
                    tracing::error!(peer = %link.node, seq, error = %e,
                        "cannot write a dead letter; the batch stays queued and is tried again");
                    link.metrics
                        .peer_failures
                        .with_label_values(&[&link.node, "deadletter_failed"])
                        .inc();
                    link.busy = true;
                    let wait = jitter(link.backoff);
                    link.backoff = (link.backoff * 2)
                        .min(Duration::from_millis(link.config.retry_max_ms));
                    link.waiting = Some(ctx.run_later(wait, |link, ctx| {
                        link.waiting = None;
                        link.busy = false;
                        link.pump(ctx);
                    }));
                }
            }
        }));
    }

    /// Everything up to `last` is with the peer (or was set aside).
    fn delivered(&mut self, last: u64, ctx: &mut Context<Self>) {
        self.sent_upto = self.sent_upto.max(last);
        self.acks.done = self.sent_upto;
        let now = self.draining;
        self.acks
            .advance(ctx, now, |link: &mut PeerLink| &mut link.acks);
    }
}

/// The `reason` label of a refused forward, from its status and the peer's JSON
/// answer (`{"error": ..., "reason": ...}`).
fn refusal_reason(status: u16, body: &[u8]) -> &'static str {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        reason: Option<&'a str>,
    }
    let answered = serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.reason);
    match (status, answered) {
        (401, _) => "unauthorized",
        (409, Some("shard_not_owned")) => "shard_not_owned",
        (409, _) => "layout_mismatch",
        (413, _) => "too_large",
        (400, _) => "malformed",
        (503, _) => "unavailable",
        (500..=599, _) => "server_error",
        _ => "refused",
    }
}

/// Whether a refusal is about the batches themselves, so sending them again can
/// never succeed (a wrong token or layout is about the link, and is retried).
fn is_for_good(reason: &str) -> bool {
    crate::metrics::reasons::DEADLETTER.contains(&reason)
}

/// Splits a peer queue entry into its shard id and the batch payload.
pub fn split_shard(entry: &[u8]) -> Option<(u32, &[u8])> {
    let (head, payload) = entry.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), payload))
}

/// Backoff with ±25% jitter, so links that failed together do not retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + fastrand::f64() * 0.5)
}

impl Actor for PeerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        self.metrics.peer_up.with_label_values(&[&self.node]).set(0);
        self.pump(ctx);
    }
}

impl Handler<Available> for PeerLink {
    type Result = ();

    /// More entries are durable in the queue.
    fn handle(&mut self, msg: Available, ctx: &mut Self::Context) {
        self.durable_upto = self.durable_upto.max(msg.upto);
        self.pump(ctx);
    }
}

impl Handler<Drain> for PeerLink {
    type Result = ResponseFuture<()>;

    /// Stops sending; answered once the running request has its answer. What is not
    /// confirmed stays queued for the next start.
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        if let Some(wait) = self.waiting.take() {
            ctx.cancel_future(wait);
            self.busy = false;
        }
        let (done, drained) = tokio::sync::oneshot::channel();
        self.drained.push(done);
        self.pump(ctx);
        Box::pin(async move {
            let _ = drained.await;
        })
    }
}

impl Handler<super::Ping> for PeerLink {
    type Result = ();

    /// Answered as soon as the actor's thread gets to it.
    fn handle(&mut self, _: super::Ping, _: &mut Self::Context) {}
}
