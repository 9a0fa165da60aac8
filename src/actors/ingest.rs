//! Ingest: decodes request bodies into records, off the I/O threads.
//!
//! Runs as a pool of synchronous actors (`SyncArbiter`, one thread per core):
//! parsing is CPU work, and doing it here keeps the HTTP workers free to read other
//! requests meanwhile. The actor knows no format: each source hands it a [`Decode`]
//! job (chute's JSON / NDJSON today; OTLP, Loki push and `_bulk` next), which parses,
//! validates and counts what it received, rejected and sanitised.

use std::sync::Arc;

use actix::prelude::*;

use crate::metrics::Metrics;

/// A body to decode, with everything its source needs to do so.
pub trait Decode: Send + 'static {
    /// The records and per-record rejections, or why the body as a whole is refused.
    type Output: Send + 'static;

    /// Decodes the body on an ingest thread, counting what it met in `metrics`.
    fn decode(self, metrics: &Metrics) -> Self::Output;
}

/// Decodes one body.
pub struct Parse<D>(pub D);

impl<D: Decode> Message for Parse<D> {
    type Result = D::Output;
}

/// One decoding thread.
pub struct Ingest {
    metrics: Arc<Metrics>,
}

impl Ingest {
    pub fn new(metrics: Arc<Metrics>) -> Ingest {
        Ingest { metrics }
    }
}

impl Actor for Ingest {
    type Context = SyncContext<Self>;
}

impl<D: Decode> Handler<Parse<D>> for Ingest {
    type Result = MessageResult<Parse<D>>;

    /// Runs the job; a bad record is rejected on its own, never with its neighbours.
    fn handle(&mut self, msg: Parse<D>, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(msg.0.decode(&self.metrics))
    }
}
