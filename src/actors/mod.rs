//! The actors that carry records from ingest to storage, and the messages they share.
//!
//! ```text
//! HTTP handler ─Parse─> Ingest (sync pool) ─> handler ─Route─> Router ─Deliver─> Spool ─> QueueIo (disk)
//! syslog connection ─RouteParts─> Router          Spool ─Available─> Writer (local shard) | PeerLink (node)
//! ```
//! Every message carries a batch. A `Deliver` is answered only once its records are
//! durable (fsynced in the destination's queue), so the answer can travel back to
//! the sender as an acknowledgement.

pub mod ingest;
pub mod peer;
pub mod queue_io;
pub mod router;
pub mod spool;
pub mod writer;

use std::time::Duration;

use actix::{Message, Recipient};

use crate::record::Record;

/// A batch for one shard, handed to that shard's destination: its local spool, or
/// the spool of the peer link to the node that owns it. Answered once every record
/// is durable there, or with the reason it was not taken.
#[derive(Message)]
#[rtype(result = "Result<(), DeliverError>")]
pub struct Deliver {
    pub shard: u32,
    pub rows: Rows,
    /// The batch id given by the node that first made it durable, when it came from
    /// a peer; `None` for records received here (the local queue names them).
    pub origin: Option<String>,
}

/// Sends a [`Deliver`] of `rows` for `shard` to `to`; the future answers once they
/// are durable there, and with [`DeliverError::Stopped`] when `to` has stopped.
pub(crate) fn deliver(
    to: &Recipient<Deliver>,
    shard: u32,
    rows: Rows,
    origin: Option<String>,
) -> impl std::future::Future<Output = Result<(), DeliverError>> + 'static {
    let req = to.send(Deliver {
        shard,
        rows,
        origin,
    });
    async move {
        req.await.unwrap_or_else(|_| {
            Err(DeliverError::Stopped {
                destination: format!("shard {shard}"),
            })
        })
    }
}

/// The records of a [`Deliver`]: as parsed here, or already encoded (by a peer, or
/// by a syslog connection). Cloning encoded rows is cheap (shared bytes).
#[derive(Clone)]
pub enum Rows {
    Records(Vec<Record>),
    Encoded(crate::batch::EncodedRows),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Records(r) => r.len(),
            Rows::Encoded(e) => e.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tells a destination's consumer that entries up to `upto` are durable, holding
/// `rows` more records.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Available {
    pub upto: u64,
    pub rows: usize,
}

/// A batch of validated records to spread over their destinations. Answered once
/// every record is durable, or with the first destination's refusal.
#[derive(Message)]
#[rtype(result = "Result<(), DeliverError>")]
pub struct Route {
    pub records: Vec<Record>,
    /// Names the request for all time (its idempotency key): each shard's part is
    /// stored under `<origin>/<shard>`, so a retried request is stored once.
    pub origin: Option<String>,
}

/// Batches already split by shard (index into the router's layout) and encoded by
/// the sender. Answered with each part's outcome, in order, so a sender can retry
/// exactly the parts that were refused.
#[derive(Message)]
#[rtype(result = "Vec<Result<(), DeliverError>>")]
pub struct RouteParts {
    pub parts: Vec<(usize, Rows)>,
}

/// A batch of one shard (by id) for that shard's current destination, under the id
/// it was first given: a dead letter replayed. Answered once it is durable there.
#[derive(Message)]
#[rtype(result = "Result<(), DeliverError>")]
pub struct Redeliver {
    pub shard: u32,
    pub rows: crate::batch::EncodedRows,
    pub origin: String,
}

/// Liveness probe: an actor that answers is not stuck (the systemd watchdog).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Why a destination did not take (or did not confirm) a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// The destination holds as many records as it may; the sender should retry later.
    #[error("destination {destination} is full; retry later")]
    Full {
        destination: String,
        retry_after: Duration,
    },
    /// The batch can never fit in the destination's queue (over `queue.max_bytes` or
    /// the queue's entry limit): a retry cannot succeed, the sender must send less.
    #[error("a batch of {bytes} bytes is larger than destination {destination} can ever hold ({limit} bytes); send smaller requests")]
    TooLarge {
        destination: String,
        bytes: u64,
        limit: u64,
    },
    /// The destination stopped before confirming; the records may or may not be stored.
    #[error("destination {destination} stopped before confirming the records")]
    Stopped { destination: String },
    /// The destination cannot make records durable (its queue failed).
    #[error("destination {destination} is unavailable: {why}")]
    Unavailable { destination: String, why: String },
}

impl DeliverError {
    /// Bounded metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            DeliverError::Full { .. } => "backpressure",
            DeliverError::TooLarge { .. } => "too_large",
            DeliverError::Stopped { .. } => "shutdown",
            DeliverError::Unavailable { .. } => "queue_failed",
        }
    }
}
