//! chute's own HTTP ingest format: request bodies (decompression with limits) and
//! JSON / NDJSON parsing with per-record errors, run on the ingest actors as a
//! [`JsonBody`] job. The route itself is `POST /api/v1/logs` in `crate::http`.

pub mod body;
pub mod json;

use chrono::{DateTime, Utc};

use crate::actors::ingest::Decode;
use crate::metrics::Metrics;
use crate::sources::verdict::{count_parsed, ParseError, Parsed};
use body::BodyFormat;

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

    /// Parses the body and counts what it met ([`count_parsed`]).
    fn decode(self, m: &Metrics) -> Self::Output {
        let format = self.format.unwrap_or_else(|| BodyFormat::sniff(&self.body));
        let parsed = json::parse(&self.body, format, self.received_at, &self.tenant)?;
        count_parsed(m, "http", &parsed);
        Ok(parsed)
    }
}
