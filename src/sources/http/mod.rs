//! chute's own HTTP ingest format: request bodies (decompression with limits) and
//! JSON / NDJSON parsing with per-record errors, run on the ingest actors as a
//! [`JsonBody`] job. The route itself is `POST /api/v1/logs` in `crate::http`.

pub mod body;
pub mod json;

use chrono::{DateTime, Utc};

use crate::actors::ingest::Decode;
use crate::metrics::Metrics;
use body::BodyFormat;
use json::{ParseError, Parsed};

/// A decoded (decompressed) JSON / NDJSON request body, to parse into records.
pub struct JsonBody {
    pub body: Vec<u8>,
    /// From Content-Type; `None` means sniff the body.
    pub format: Option<BodyFormat>,
    pub received_at: DateTime<Utc>,
    pub tenant: String,
}

impl Decode for JsonBody {
    type Output = Result<Parsed, ParseError>;

    /// Parses the body and counts records received, rejected for their content, and
    /// sanitised (NUL / invalid UTF-8 replaced).
    fn decode(self, m: &Metrics) -> Self::Output {
        let format = self.format.unwrap_or_else(|| BodyFormat::sniff(&self.body));
        let parsed = json::parse(&self.body, format, self.received_at, &self.tenant)?;
        m.records_received
            .with_label_values(&["http"])
            .inc_by((parsed.records.len() + parsed.rejected_count) as u64);
        if let Some(first) = parsed.rejected.first() {
            m.records_rejected
                .with_label_values(&["http", "invalid_record"])
                .inc_by(parsed.rejected_count as u64);
            tracing::debug!(rejected = parsed.rejected_count, first = %first.error, "records rejected");
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
