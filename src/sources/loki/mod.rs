//! Loki's push API, `POST /loki/api/v1/push`: what Promtail, Grafana Alloy's
//! `loki.write`, the `loki` outputs of Vector and Fluent Bit and Docker's Loki
//! driver send. Decoded on the ingest actors as a [`PushBody`] job, into the
//! same records, limits and durable path as chute's own JSON; the route is in
//! `crate::http::push`.

pub mod proto;
pub mod push;

use chrono::{DateTime, Utc};

use crate::actors::ingest::Decode;
use crate::metrics::Metrics;
use crate::sources::verdict::{count_parsed, ParseError, Parsed};
use push::PushFormat;

/// The `source` label of Loki pushes.
pub const SOURCE: &str = "loki";

/// A push body (after any Content-Encoding), to decode into records.
pub struct PushBody {
    pub body: Vec<u8>,
    pub format: PushFormat,
    pub received_at: DateTime<Utc>,
    pub tenant: String,
    /// Most bytes the body may decompress to (snappy).
    pub limit: usize,
}

impl Decode for PushBody {
    type Output = Result<Parsed, ParseError>;

    fn decode(self, m: &Metrics) -> Self::Output {
        let parsed = push::decode(
            &self.body,
            self.format,
            self.received_at,
            &self.tenant,
            self.limit,
        )?;
        count_parsed(m, SOURCE, &parsed);
        Ok(parsed)
    }
}
