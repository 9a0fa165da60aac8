//! Elasticsearch's bulk API, `POST /_bulk` and `/<index>/_bulk`: what Filebeat,
//! Logstash, Vector's `elasticsearch` sink, Fluent Bit's `es` output and the
//! Elasticsearch clients send. Decoded on the ingest actors as a [`BulkBody`]
//! job, into the same records, limits and durable path as chute's own JSON;
//! the routes, and the endpoints agents probe first, are in `crate::http::elastic`.

pub mod bulk;

use chrono::{DateTime, Utc};

use crate::actors::ingest::Decode;
use crate::metrics::Metrics;
use crate::sources::verdict::{count_parsed, ParseError};
use bulk::Bulk;

/// The `source` label of bulk requests.
pub const SOURCE: &str = "elasticsearch";

/// A bulk body (after any Content-Encoding), to decode into records.
pub struct BulkBody {
    pub body: Vec<u8>,
    /// The path's index (`/<index>/_bulk`).
    pub index: Option<String>,
    pub received_at: DateTime<Utc>,
    pub tenant: String,
}

impl Decode for BulkBody {
    type Output = Result<Bulk, ParseError>;

    fn decode(self, m: &Metrics) -> Self::Output {
        let bulk = bulk::decode(
            &self.body,
            self.index.as_deref(),
            self.received_at,
            &self.tenant,
        )?;
        count_parsed(m, SOURCE, &bulk.parsed);
        Ok(bulk)
    }
}
