//! Ingest: parses and validates request bodies into records, off the I/O threads.
//!
//! Runs as a pool of synchronous actors (`SyncArbiter`, one thread per core): JSON
//! parsing is CPU work, and doing it here keeps the HTTP workers free to read other
//! requests meanwhile. What it counts: records received, records rejected for their
//! content, records sanitised (NUL / invalid UTF-8 replaced).

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::ingest::body::BodyFormat;
use crate::ingest::json::{self, ParseError, Parsed};
use crate::metrics::Metrics;

/// Parses one decoded HTTP body.
#[derive(Message)]
#[rtype(result = "Result<Parsed, ParseError>")]
pub struct ParseJson {
    pub body: Vec<u8>,
    /// From Content-Type; `None` means sniff the body.
    pub format: Option<BodyFormat>,
    pub received_at: DateTime<Utc>,
    pub tenant: String,
}

/// One parsing thread.
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

impl Handler<ParseJson> for Ingest {
    type Result = Result<Parsed, ParseError>;

    /// Parses the body; a bad record is rejected on its own, never with its neighbours.
    fn handle(&mut self, msg: ParseJson, _ctx: &mut Self::Context) -> Self::Result {
        let format = msg.format.unwrap_or_else(|| BodyFormat::sniff(&msg.body));
        let parsed = json::parse(&msg.body, format, msg.received_at, &msg.tenant)?;
        let m = &self.metrics;
        m.records_received
            .with_label_values(&["http"])
            .inc_by((parsed.records.len() + parsed.rejected.len()) as u64);
        if !parsed.rejected.is_empty() {
            m.records_rejected
                .with_label_values(&["http", "invalid_record"])
                .inc_by(parsed.rejected.len() as u64);
            tracing::debug!(rejected = parsed.rejected.len(), first = %parsed.rejected[0].error, "records rejected");
        }
        if parsed.nul_replaced > 0 {
            m.records_sanitized
                .with_label_values(&["http", "nul"])
                .inc_by(parsed.nul_replaced as u64);
        }
        if parsed.invalid_utf8 > 0 {
            m.records_sanitized
                .with_label_values(&["http", "invalid_utf8"])
                .inc_by(parsed.invalid_utf8 as u64);
        }
        Ok(parsed)
    }
}
