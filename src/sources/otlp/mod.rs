//! OTLP/HTTP logs, `POST /v1/logs`: what the OpenTelemetry Collector's
//! `otlphttp` exporter, the OpenTelemetry SDKs and the `opentelemetry` outputs
//! of Fluent Bit and Vector send. Decoded on the ingest actors as a
//! [`LogsBody`] job, into the same records, limits and durable path as chute's
//! own JSON; the route is in `crate::http::otlp`.

pub mod logs;
pub mod proto;

use chrono::{DateTime, Utc};

use crate::actors::ingest::Decode;
use crate::metrics::Metrics;
use crate::sources::verdict::{count_parsed, ParseError, Parsed};
use logs::LogsFormat;

/// The `source` label of OTLP exports.
pub const SOURCE: &str = "otlp";

/// An export body (after any Content-Encoding), to decode into records.
pub struct LogsBody {
    pub body: Vec<u8>,
    pub format: LogsFormat,
    pub received_at: DateTime<Utc>,
    pub tenant: String,
    /// The body limit, which bounds what the decoding may hold.
    pub limit: usize,
}

impl Decode for LogsBody {
    type Output = Result<Parsed, ParseError>;

    fn decode(self, m: &Metrics) -> Self::Output {
        let parsed = logs::decode(
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
