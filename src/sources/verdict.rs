//! What decoding a request body gives, on every source that answers per record:
//! the records to store, the ones refused (each with its position and why), and
//! what was sanitised; or why the body as a whole is refused.

use serde::Serialize;

use crate::metrics::Metrics;
use crate::record::Record;

/// At most this many rejections are kept (and answered) per body; the rest are
/// counted. A body of millions of bad records costs a count, not a list.
pub const MAX_LISTED_REJECTIONS: usize = 1000;

/// One record that was not accepted, reported back to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Position in the JSON array, or 0-based line number in NDJSON.
    pub index: usize,
    /// What was wrong, naming the key: `message: missing`.
    pub error: String,
}

/// The outcome of parsing a body: what can be stored, what cannot, and how
/// much was sanitised (for the metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Accepted records, in body order.
    pub records: Vec<Record>,
    /// Refused records, in body order: the first [`MAX_LISTED_REJECTIONS`].
    pub rejected: Vec<Rejection>,
    /// Every refused record, listed or not.
    pub rejected_count: usize,
    /// Records in which NUL bytes were replaced with U+FFFD.
    pub nul_replaced: usize,
    /// Records in which invalid UTF-8 was replaced with U+FFFD.
    pub invalid_utf8: usize,
}

impl Parsed {
    /// Records the record at `index` as refused for `error` (listed while
    /// fewer than [`MAX_LISTED_REJECTIONS`] are, counted always).
    pub fn reject(&mut self, index: usize, error: String) {
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(Rejection { index, error });
        }
        self.rejected_count += 1;
    }
}

/// The records a body decodes to may take at most this many times the body
/// limit (labels and resource attributes are copied into each record)...
pub const RECORDS_PER_BODY_BYTE: usize = 8;
/// ...each record counted at this beside its text (the `Record`, its strings'
/// headers).
pub const RECORD_BYTES: usize = 256;

/// What the records of one body hold so far, against what they may.
#[derive(Debug)]
pub struct Holding {
    held: usize,
    budget: usize,
}

impl Holding {
    /// The budget of a body under `limit`: [`RECORDS_PER_BODY_BYTE`] times it.
    pub fn new(limit: usize) -> Self {
        Holding {
            held: 0,
            budget: limit.saturating_mul(RECORDS_PER_BODY_BYTE),
        }
    }

    /// Counts `bytes` more, refusing the body once past its budget.
    pub fn charge(&mut self, bytes: usize) -> Result<(), ParseError> {
        self.held += bytes;
        if self.held > self.budget {
            return Err(ParseError::TooLarge { limit: self.budget });
        }
        Ok(())
    }
}

/// What kind of JSON value `v` is, for an error message: `an array`.
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl AsRef<Parsed> for Parsed {
    fn as_ref(&self) -> &Parsed {
        self
    }
}

/// A body that yields no verdicts at all. Per-record problems are
/// [`Rejection`]s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is empty or only whitespace.
    #[error("request body is empty")]
    Empty,
    /// A JSON-array body is not valid JSON (or is a bare string, number...).
    #[error("invalid request body: {0}")]
    Syntax(String),
    /// A binary body (protobuf, snappy) that cannot be decoded.
    #[error("invalid request body: {0}")]
    Undecodable(String),
    /// A body that decompresses (snappy) past the body limit.
    #[error("request body decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
}

impl ParseError {
    /// A bounded label for the `reason` of the rejected-requests metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty_body",
            Self::Syntax(_) => "invalid_json",
            Self::Undecodable(_) => "invalid_body",
            Self::TooLarge { .. } => "too_large",
        }
    }
}

/// Counts what decoding a body of `source` met: records received, rejected for
/// their content, and sanitised (NUL / invalid UTF-8 replaced).
pub fn count_parsed(m: &Metrics, source: &str, parsed: &Parsed) {
    m.records_received
        .with_label_values(&[source])
        .inc_by((parsed.records.len() + parsed.rejected_count) as u64);
    if let Some(first) = parsed.rejected.first() {
        m.records_rejected
            .with_label_values(&[source, "invalid_record"])
            .inc_by(parsed.rejected_count as u64);
        tracing::debug!(source, rejected = parsed.rejected_count, first = %first.error, "records rejected");
    }
    if parsed.nul_replaced > 0 {
        m.records_sanitized
            .with_label_values(&[source, "nul"])
            .inc_by(parsed.nul_replaced as u64);
    }
    if parsed.invalid_utf8 > 0 {
        m.records_sanitized
            .with_label_values(&[source, "invalid_utf8"])
            .inc_by(parsed.invalid_utf8 as u64);
    }
}
