//! Spool: the front door of one destination. Makes each delivered batch durable in
//! the destination's on-disk queue and only then answers the sender, so an HTTP 2xx
//! means "fsynced on this node's disk".
//!
//! Group commit: while one append+fsync is running, new batches gather; when it
//! returns they are all appended and made durable by a single fsync. Under load the
//! groups grow by themselves, and an idle spool adds no delay.
//!
//! A full queue refuses the batch ([`DeliverError::Full`]: 503 + Retry-After); an
//! fsync failure refuses everything from then on, since the kernel may have dropped
//! the pages it could not write (the queue stays poisoned until a restart).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::queue_io::{AppendSync, QueueIo};
use super::{Available, Deliver, DeliverError, Rows};
use crate::batch::EncodedRows;
use crate::metrics::Metrics;
use crate::status::QueueHealth;
use chute_queue::QueueError;

/// A batch waiting for its fsync: one queue entry, or several that are stored all
/// or none.
struct Pending {
    payloads: Vec<Vec<u8>>,
    rows: usize,
    ack: oneshot::Sender<Result<(), DeliverError>>,
}

/// Makes one destination's batches durable.
pub struct Spool {
    /// Destination name (`shard-0`), for answers and logs.
    name: String,
    io: Addr<QueueIo>,
    /// Told after each group commit what became durable.
    consumer: Recipient<Available>,
    metrics: Arc<Metrics>,
    status: Arc<dyn QueueHealth>,
    /// For the queue of a peer link, which holds batches for several shards: entries
    /// start with the batch's shard id (u32, big-endian), and a batch larger than
    /// this many bytes is split into entries of at most that size
    /// (`[cluster] batch_bytes`), so no entry outgrows a forwarded request.
    peer_entries: Option<usize>,
    pending: Vec<Pending>,
    /// An append+fsync is running.
    committing: bool,
    /// An fsync failed: nothing more is acknowledged.
    poisoned: bool,
}

impl Spool {
    pub fn new(
        name: String,
        io: Addr<QueueIo>,
        consumer: Recipient<Available>,
        metrics: Arc<Metrics>,
        status: Arc<dyn QueueHealth>,
        peer_entries: Option<usize>,
    ) -> Spool {
        Spool {
            name,
            io,
            consumer,
            metrics,
            status,
            peer_entries,
            pending: Vec::new(),
            committing: false,
            poisoned: false,
        }
    }

    fn unavailable(&self, why: &str) -> DeliverError {
        DeliverError::Unavailable {
            destination: self.name.clone(),
            why: why.to_owned(),
        }
    }

    /// Appends and fsyncs everything pending, as one group.
    fn commit(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.pending.is_empty() {
            return;
        }
        self.committing = true;
        let group = std::mem::take(&mut self.pending);
        let (groups, waiting): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|p| (p.payloads, (p.rows, p.ack)))
            .unzip();
        let commit = self.io.send(AppendSync { groups }).into_actor(self).map(
            move |result, spool, ctx| {
                spool.committing = false;
                let results = match result {
                    Ok(Ok(results)) => results,
                    Ok(Err(e)) => {
                        spool.poisoned = true;
                        tracing::error!(destination = %spool.name, error = %e, "the queue failed");
                        // Shown by /readyz: the class, not the error text with its paths.
                        spool
                            .status
                            .set_queue_failed(&format!("queue failed ({})", e.reason()));
                        let err = spool.unavailable("the queue failed to fsync; restart chute");
                        for (_, ack) in waiting {
                            let _ = ack.send(Err(err.clone()));
                        }
                        return;
                    }
                    Err(_mailbox) => {
                        let err = spool.unavailable("the queue stopped");
                        for (_, ack) in waiting {
                            let _ = ack.send(Err(err.clone()));
                        }
                        return;
                    }
                };
                let mut durable = Available { upto: 0, rows: 0 };
                for ((rows, ack), result) in waiting.into_iter().zip(results) {
                    let answer = match result {
                        Ok(seq) => {
                            durable.upto = durable.upto.max(seq);
                            durable.rows += rows;
                            Ok(())
                        }
                        Err(e) => Err(refusal(&spool.name, &e)),
                    };
                    // A sender that gave up waiting still has its records stored.
                    let _ = ack.send(answer);
                }
                if durable.rows > 0 {
                    // A notification, not data: the consumer reads the data from disk.
                    spool.consumer.do_send(durable);
                }
                spool.commit(ctx);
            },
        );
        // spawn, not wait: new batches must keep arriving while this group syncs.
        ctx.spawn(commit);
    }
}

/// What a sender is told when the queue refuses its batch. The queue's own error
/// text names files; it is logged here, and the answer carries only its class.
fn refusal(destination: &str, e: &QueueError) -> DeliverError {
    match e {
        QueueError::Full { .. } => DeliverError::Full {
            destination: destination.to_owned(),
            retry_after: Duration::from_secs(1),
        },
        QueueError::TooLarge { bytes, limit } => DeliverError::TooLarge {
            destination: destination.to_owned(),
            bytes: *bytes,
            limit: *limit,
        },
        e => {
            tracing::error!(%destination, error = %e, "the queue refused a batch");
            DeliverError::Unavailable {
                destination: destination.to_owned(),
                why: format!("its queue failed ({})", e.reason()),
            }
        }
    }
}

impl Actor for Spool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Deliver> for Spool {
    type Result = ResponseFuture<Result<(), DeliverError>>;

    /// Encodes the batch and queues it for the next group commit; answers once it is
    /// fsynced (or refused).
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) -> Self::Result {
        if self.poisoned {
            let err = self.unavailable("the queue failed to fsync; restart chute");
            return Box::pin(async move { Err(err) });
        }
        let rows = msg.rows.len();
        let origin = msg.origin.as_deref();
        let payloads = match (msg.rows, self.peer_entries) {
            (Rows::Encoded(encoded), None) => Ok(vec![encoded.to_payload(&[], origin)]),
            (Rows::Records(records), None) => {
                EncodedRows::encode_payload(&records, &[], origin).map(|p| vec![p])
            }
            (Rows::Encoded(encoded), Some(max_bytes)) => {
                Ok(encoded.to_payloads(&msg.shard.to_be_bytes(), origin, max_bytes))
            }
            (Rows::Records(records), Some(max_bytes)) => {
                // Encoded straight into one payload, as for a local shard; only a
                // batch too large for one entry is read back and split.
                let prefix = msg.shard.to_be_bytes();
                EncodedRows::encode_payload(&records, &prefix, origin).map(|payload| {
                    if payload.len() <= max_bytes {
                        return vec![payload];
                    }
                    let payload = bytes::Bytes::from(payload);
                    match EncodedRows::from_payload(payload.slice(prefix.len()..)) {
                        Ok((_, rows)) => rows.to_payloads(&prefix, origin, max_bytes),
                        // A payload just encoded always reads back; were it not to,
                        // it goes whole, as one entry.
                        Err(_) => vec![payload.to_vec()],
                    }
                })
            }
        };
        let payloads = match payloads {
            Ok(payloads) => payloads,
            Err(e) => {
                // Validation at ingest rules this out; refuse rather than store garbage.
                tracing::error!(destination = %self.name, error = %e, "cannot encode a batch");
                let err = self.unavailable("a record could not be encoded");
                return Box::pin(async move { Err(err) });
            }
        };
        self.metrics
            .queue_appended_bytes
            .with_label_values(&[&self.name])
            .inc_by(payloads.iter().map(Vec::len).sum::<usize>() as u64);
        let (ack, done) = oneshot::channel();
        self.pending.push(Pending {
            payloads,
            rows,
            ack,
        });
        self.commit(ctx);
        let err = self.unavailable("the spool stopped");
        Box::pin(async move { done.await.unwrap_or(Err(err)) })
    }
}

impl Handler<super::Ping> for Spool {
    type Result = ();

    /// Answered as soon as the actor's thread gets to it.
    fn handle(&mut self, _: super::Ping, _: &mut Self::Context) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_can_never_fit_is_too_large_and_no_answer_names_a_file() {
        let too_large = QueueError::TooLarge {
            bytes: 5 << 20,
            limit: 1 << 20,
        };
        assert!(matches!(
            refusal("shard-0", &too_large),
            DeliverError::TooLarge { bytes, limit, .. } if bytes == 5 << 20 && limit == 1 << 20
        ));
        let io = QueueError::Io {
            op: "write",
            path: "/var/lib/chute/queues/shard-0/00000000000000000001.seg".into(),
            source: std::io::Error::other("disk on fire"),
        };
        let answer = refusal("shard-0", &io);
        assert_eq!(answer.reason(), "queue_failed");
        let text = answer.to_string();
        assert!(!text.contains('/') && !text.contains("disk"), "{text}");
    }
}
