//! QueueIo: owns one destination's on-disk queue and does its blocking I/O on a
//! thread of its own (a `SyncArbiter` of one), so an fsync never stalls an async
//! actor. The spool appends through it, the consumer reads and acknowledges.
//! After every operation it refreshes the destination's queue gauges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::metrics::Metrics;
use chute_queue::{Entry, Queue, QueueError};

/// Appends every group of payloads, then makes them durable with one fsync (group
/// commit). Each group is appended all or none and gets the sequence number of its
/// last entry, or its own refusal (a full queue).
#[derive(Message)]
#[rtype(result = "Result<Vec<Result<u64, QueueError>>, QueueError>")]
pub struct AppendSync {
    pub groups: Vec<Vec<Vec<u8>>>,
}

/// Reads durable entries after `after`, up to `max_bytes` of payload.
#[derive(Message)]
#[rtype(result = "Result<Vec<Entry>, QueueError>")]
pub struct ReadAfter {
    pub after: u64,
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// Everything up to `upto` is stored; the queue may forget it.
#[derive(Message)]
#[rtype(result = "Result<(), QueueError>")]
pub struct Acknowledge {
    pub upto: u64,
}

/// Closes the queue (releasing its directory lock) and stops the thread.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// One queue, one thread.
pub struct QueueIo {
    /// `None` once closed.
    queue: Option<Queue>,
    /// Destination name, the `destination` label of the queue metrics.
    label: String,
    metrics: Arc<Metrics>,
}

impl QueueIo {
    pub fn new(queue: Queue, label: String, metrics: Arc<Metrics>) -> QueueIo {
        let io = QueueIo {
            queue: Some(queue),
            label,
            metrics,
        };
        io.refresh_gauges();
        io
    }

    /// The queue; after [`Close`] every operation fails as if poisoned (nothing
    /// should still be talking to a closed queue).
    fn queue(&mut self) -> Result<&mut Queue, QueueError> {
        self.queue.as_mut().ok_or(QueueError::Poisoned)
    }

    fn refresh_gauges(&self) {
        let Some(queue) = &self.queue else { return };
        let s = queue.stats();
        let m = &self.metrics;
        let l = [self.label.as_str()];
        m.queue_bytes
            .with_label_values(&l)
            .set(s.unacked_bytes as i64);
        m.queue_records
            .with_label_values(&l)
            .set(s.unacked_entries as i64);
        m.set_queue_oldest_append(&self.label, s.oldest_unacked_append);
    }

    fn count_error(&self, e: &QueueError) {
        self.metrics
            .queue_errors
            .with_label_values(&[&self.label, e.reason()])
            .inc();
    }
}

impl Actor for QueueIo {
    type Context = SyncContext<Self>;
}

impl Handler<AppendSync> for QueueIo {
    type Result = Result<Vec<Result<u64, QueueError>>, QueueError>;

    fn handle(&mut self, msg: AppendSync, _: &mut Self::Context) -> Self::Result {
        let queue = self.queue()?;
        let results: Vec<_> = msg
            .groups
            .iter()
            .map(|g| match g.as_slice() {
                [one] => queue.append(one),
                many => queue.append_all(many),
            })
            .collect();
        if results.iter().any(Result::is_ok) {
            let started = Instant::now();
            let synced = queue.sync();
            self.metrics
                .fsync_duration
                .with_label_values(&[&self.label])
                .observe(started.elapsed().as_secs_f64());
            if let Err(e) = synced {
                self.count_error(&e);
                tracing::error!(destination = %self.label, error = %e, "fsync of the queue failed: acknowledgements stop until chute is restarted");
                return Err(e);
            }
        }
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            self.count_error(e);
        }
        self.refresh_gauges();
        Ok(results)
    }
}

impl Handler<ReadAfter> for QueueIo {
    type Result = Result<Vec<Entry>, QueueError>;

    fn handle(&mut self, msg: ReadAfter, _: &mut Self::Context) -> Self::Result {
        let read = self
            .queue()
            .and_then(|q| q.read(msg.after, msg.max_entries, msg.max_bytes));
        read.inspect_err(|e| self.count_error(e))
    }
}

impl Handler<Acknowledge> for QueueIo {
    type Result = Result<(), QueueError>;

    fn handle(&mut self, msg: Acknowledge, _: &mut Self::Context) -> Self::Result {
        let r = self.queue().and_then(|q| q.ack(msg.upto));
        let r = r.inspect_err(|e| self.count_error(e));
        self.refresh_gauges();
        r
    }
}

impl Handler<Close> for QueueIo {
    type Result = ();

    /// The thread itself ends once every address is dropped (stopping the actor
    /// would make the `SyncArbiter` start a fresh one).
    fn handle(&mut self, _: Close, _: &mut Self::Context) {
        self.queue = None;
    }
}

/// Shortest time between two acknowledgements to a queue.
const ACK_EVERY: Duration = Duration::from_millis(200);

/// A consumer's acknowledgements to its queue, at most one per [`ACK_EVERY`].
///
/// Persisting the queue position costs two fsyncs; a crash between two
/// acknowledgements only re-delivers batches their destination recognises by id.
pub struct Acks {
    io: Addr<QueueIo>,
    /// Last sequence number the consumer is done with.
    pub done: u64,
    /// Last sequence number sent to the queue, and when.
    sent: u64,
    sent_at: Instant,
    timer: Option<SpawnHandle>,
}

impl Acks {
    /// Acknowledgements to `io`, whose position is `acked`.
    pub fn new(io: Addr<QueueIo>, acked: u64) -> Acks {
        Acks {
            io,
            done: acked,
            sent: acked,
            sent_at: Instant::now(),
            timer: None,
        }
    }

    /// The consumer is done with everything up to `self.done`: acknowledge it now,
    /// or (within [`ACK_EVERY`] of the last) once that interval is over. `now`
    /// skips the wait (shutdown). `field` finds these `Acks` in the actor again.
    pub fn advance<A>(&mut self, ctx: &mut Context<A>, now: bool, field: fn(&mut A) -> &mut Acks)
    where
        A: Actor<Context = Context<A>>,
    {
        if self.done <= self.sent || self.timer.is_some() {
            return;
        }
        let wait = ACK_EVERY.saturating_sub(self.sent_at.elapsed());
        if wait.is_zero() || now {
            self.send();
        } else {
            self.timer = Some(ctx.run_later(wait, move |a, _| {
                let acks = field(a);
                acks.timer = None;
                acks.send();
            }));
        }
    }

    /// Sends what is done and not yet acknowledged.
    pub fn send(&mut self) {
        if self.done > self.sent {
            self.sent = self.done;
            self.sent_at = Instant::now();
            self.io.do_send(Acknowledge { upto: self.done });
        }
    }
}
