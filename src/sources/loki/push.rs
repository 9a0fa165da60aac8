//! A Loki push body → [`Record`]s, one verdict per entry.
//!
//! # Formats
//!
//! - **Protobuf** (`Content-Type: application/x-protobuf`): a `PushRequest`
//!   ([`super::proto`]) compressed in snappy's *block* format, as every Loki
//!   client sends it. Its declared length is checked against the body limit
//!   before anything is decompressed.
//! - **JSON** (`application/json`, also gzip- or zstd-encoded):
//!   `{"streams": [{"stream": {"app": "web"}, "values": [["<unix ns>", "line"],
//!   ["<unix ns>", "line", {"trace_id": "..."}]]}]}`.
//!
//! A body that cannot be decoded at all is refused as a whole; otherwise each
//! entry is judged on its own, and a refused entry is named by its position in
//! the body (entries counted from 0 across all streams, in order).
//!
//! # Labels → columns
//!
//! | stream label | column |
//! |---|---|
//! | `host`, else `hostname` | `host` |
//! | `app`, else `service_name`, else `job` | `app` |
//! | `level`, else `detected_level`, else `severity` | `severity`: the syslog names (`error`, `warn`, `info`, ...), `fatal` → 2 (crit), `trace` → 7 (debug); any other value stays a field |
//!
//! A stream may have at most 30 labels, names of at most 1,024 bytes and values
//! of at most 2,048 (Loki's limits, with room); a stream over them has its
//! entries refused. A push whose records would hold more than 8 times the body
//! limit in memory (labels are copied into each entry; each record counts), or
//! whose decoded protobuf would take more than 16 times it (weighed off the
//! wire first: an empty entry is 2 bytes), is refused whole, 413.
//!
//! Every other label, and the ones not taken (`job` when `app` is set), go into
//! `fields` as strings, and so does each entry's structured metadata (which wins
//! over a label of the same name). The tenant is the push's (`X-Scope-OrgID`),
//! never a label. Timestamps are nanoseconds since the epoch; PostgreSQL keeps
//! microseconds. An entry without a timestamp (protobuf) gets the time of
//! receipt. NUL and invalid UTF-8 are replaced with U+FFFD and counted, as on
//! every source.

use chrono::{DateTime, Datelike, Utc};
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::proto;
use crate::record::{level_severity, lossy_utf8, Record, MAX_NAME_BYTES};
use crate::sources::verdict::{json_kind, Holding, ParseError, Parsed, RECORD_BYTES};
use crate::sources::wire::{check_weight, Schema};

/// How the body is encoded (from its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    /// Snappy-compressed protobuf.
    Protobuf,
    Json,
}

/// Decodes a push body (after any Content-Encoding) into records.
///
/// # Errors
/// [`ParseError`] when the body as a whole cannot be decoded: empty, not snappy,
/// not a `PushRequest`, larger than `limit` once decompressed, or not JSON of
/// the push's shape.
pub fn decode(
    body: &[u8],
    format: PushFormat,
    received_at: DateTime<Utc>,
    tenant: &str,
    limit: usize,
) -> Result<Parsed, ParseError> {
    if body.is_empty() {
        return Err(ParseError::Empty);
    }
    let streams = match format {
        PushFormat::Protobuf => protobuf_streams(body, limit)?,
        PushFormat::Json => json_streams(body)?,
    };
    let mut out = Out {
        parsed: Parsed::default(),
        received_at,
        tenant,
        index: 0,
        // A stream's labels are copied into each of its entries' records: a
        // small body of many entries under long labels must not turn into
        // gigabytes.
        holding: Holding::new(limit),
    };
    for stream in streams {
        out.stream(stream)?;
    }
    Ok(out.parsed)
}

/// One stream as either format gives it.
struct Stream {
    /// The labels, or why they cannot be read.
    labels: Result<Vec<(String, String)>, String>,
    entries: Vec<Result<Entry, String>>,
}

struct Entry {
    /// `None`: the time of receipt.
    ts: Option<DateTime<Utc>>,
    line: Vec<u8>,
    metadata: Vec<(String, String)>,
    /// Invalid UTF-8 was replaced in it already (a JSON body is made text whole).
    replaced: bool,
}

fn protobuf_streams(body: &[u8], limit: usize) -> Result<Vec<Stream>, ParseError> {
    let invalid = ParseError::Undecodable;
    let len = snap::raw::decompress_len(body)
        .map_err(|e| invalid(format!("not snappy-compressed (block format): {e}")))?;
    if len > limit {
        return Err(ParseError::TooLarge { limit });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| invalid(format!("not snappy-compressed (block format): {e}")))?;
    // An empty entry is 2 bytes on the wire and a struct of ~70 decoded.
    check_weight(&raw, Kind::Request, limit, "a Loki PushRequest")?;
    let request = proto::PushRequest::decode(raw.as_slice())
        .map_err(|e| invalid(format!("not a Loki PushRequest: {e}")))?;
    Ok(request
        .streams
        .into_iter()
        .map(|s| Stream {
            labels: parse_labels(&lossy_utf8(&s.labels).0),
            entries: s
                .entries
                .into_iter()
                .map(|e| {
                    let ts = match e.timestamp {
                        None => None,
                        Some(t) => Some(
                            u32::try_from(t.nanos)
                                .ok()
                                .and_then(|n| DateTime::from_timestamp(t.seconds, n))
                                .filter(|t| (1..=9999).contains(&t.year()))
                                .ok_or_else(|| {
                                    format!("timestamp: {}s {}ns is not a time", t.seconds, t.nanos)
                                })?,
                        ),
                    };
                    let metadata = e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (lossy_utf8(&p.name).0, lossy_utf8(&p.value).0))
                        .collect();
                    Ok(Entry {
                        ts,
                        line: e.line,
                        metadata,
                        replaced: false,
                    })
                })
                .collect(),
        })
        .collect())
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: Map<String, Value>,
    #[serde(default)]
    values: Vec<Value>,
}

fn json_streams(body: &[u8]) -> Result<Vec<Stream>, ParseError> {
    let (text, replaced) = lossy_utf8(body);
    let push: JsonPush = serde_json::from_str(&text).map_err(|e| {
        ParseError::Syntax(format!(
            "not a Loki push (line {}, column {}): {e}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(push
        .streams
        .into_iter()
        .map(|s| Stream {
            labels: Ok(s.stream.into_iter().map(|(k, v)| (k, text_of(v))).collect()),
            entries: s
                .values
                .into_iter()
                .map(|v| json_entry(v, replaced))
                .collect(),
        })
        .collect())
}

/// `["<unix ns>", "line"]` or `["<unix ns>", "line", {metadata}]`.
fn json_entry(v: Value, body_replaced: bool) -> Result<Entry, String> {
    let Value::Array(mut parts) = v else {
        return Err("expected [\"<unix ns>\", \"line\"]".into());
    };
    if !(2..=3).contains(&parts.len()) {
        return Err(format!(
            "expected [\"<unix ns>\", \"line\"] with optional metadata, got {} elements",
            parts.len()
        ));
    }
    let metadata = match parts.get_mut(2).map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m.into_iter().map(|(k, v)| (k, text_of(v))).collect(),
        Some(_) => return Err("structured metadata: expected an object".into()),
    };
    let (line, replaced) = match parts[1].take() {
        Value::String(s) => {
            let replaced = body_replaced && s.contains(crate::record::REPLACEMENT);
            (s.into_bytes(), replaced)
        }
        other => {
            return Err(format!(
                "line: expected a string, got {}",
                json_kind(&other)
            ))
        }
    };
    let nanos: Option<i64> = match &parts[0] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    let nanos = nanos.ok_or_else(|| {
        format!(
            "timestamp: expected nanoseconds since the epoch as a string, got {}",
            parts[0]
        )
    })?;
    Ok(Entry {
        ts: Some(DateTime::from_timestamp_nanos(nanos)),
        line,
        metadata,
        replaced,
    })
}

fn text_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

/// A label or metadata value as text.
fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The messages of a push, for weighing it before decoding.
#[derive(Clone, Copy)]
enum Kind {
    Request,
    Stream,
    Entry,
    Timestamp,
    LabelPair,
}

impl Schema for Kind {
    fn child(self, field: u64) -> Option<Kind> {
        Some(match (self, field) {
            (Kind::Request, 1) => Kind::Stream,
            (Kind::Stream, 2) => Kind::Entry,
            (Kind::Entry, 1) => Kind::Timestamp,
            (Kind::Entry, 3) => Kind::LabelPair,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        use std::mem::size_of;
        match self {
            Kind::Request => size_of::<proto::PushRequest>(),
            Kind::Stream => size_of::<proto::Stream>(),
            Kind::Entry => size_of::<proto::Entry>(),
            Kind::Timestamp => size_of::<proto::Timestamp>(),
            Kind::LabelPair => size_of::<proto::LabelPair>(),
        }
    }
}

/// Loki's own limits on a stream's labels (its defaults, with room).
const MAX_LABELS: usize = 30;
const MAX_LABEL_NAME_BYTES: usize = 1024;
const MAX_LABEL_VALUE_BYTES: usize = 2048;

/// At most this many characters of a stream's labels are quoted in an error.
const MAX_QUOTED_CHARS: usize = 64;

/// `{app="web", host="a"}` (a LogQL stream selector of `=` matchers only).
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    let quoted = if quoted.len() < text.len() {
        format!("{quoted:?}...")
    } else {
        format!("{quoted:?}")
    };
    let expr = chute_logql::parse(text).map_err(|e| format!("labels {quoted}: {e}"))?;
    let chute_logql::Expr::Log(log) = expr else {
        return Err(format!("labels {quoted}: not a label set"));
    };
    if !log.pipeline.is_empty() {
        return Err(format!("labels {quoted}: not a label set"));
    }
    log.selector
        .matchers
        .into_iter()
        .map(|m| match m.op {
            chute_logql::MatchOp::Eq => Ok((m.name, m.value.value)),
            _ => Err(format!("labels {quoted}: only name=\"value\" pairs")),
        })
        .collect()
}

/// Loki's limits on one stream's labels.
fn check_labels(labels: &[(String, String)]) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("labels: more than {MAX_LABELS}"));
    }
    for (name, value) in labels {
        if name.len() > MAX_LABEL_NAME_BYTES {
            return Err(format!(
                "labels: a name longer than {MAX_LABEL_NAME_BYTES} bytes"
            ));
        }
        if value.len() > MAX_LABEL_VALUE_BYTES {
            let quoted: String = name.chars().take(MAX_QUOTED_CHARS).collect();
            return Err(format!(
                "labels: {quoted}'s value is longer than {MAX_LABEL_VALUE_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

/// The columns a stream's labels give, and the labels left for `fields`.
struct Columns {
    host: Option<String>,
    app: Option<String>,
    severity: Option<i16>,
    fields: Map<String, Value>,
}

fn columns(labels: Vec<(String, String)>) -> Result<Columns, String> {
    check_labels(&labels)?;
    let take = |labels: &mut Vec<(String, String)>, names: &[&str]| {
        names.iter().find_map(|n| {
            let i = labels.iter().position(|(k, _)| k == n)?;
            Some(labels.remove(i).1)
        })
    };
    let mut labels = labels;
    let host = take(&mut labels, &["host", "hostname"]);
    let app = take(&mut labels, &["app", "service_name", "job"]);
    let mut severity = None;
    for name in ["level", "detected_level", "severity"] {
        if let Some(i) = labels.iter().position(|(k, _)| k == name) {
            severity = level_severity(&labels[i].1);
            if severity.is_some() {
                labels.remove(i);
                break;
            }
        }
    }
    for (name, value) in [("host", &host), ("app", &app)] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_NAME_BYTES) {
            return Err(format!("{name}: longer than {MAX_NAME_BYTES} bytes"));
        }
    }
    Ok(Columns {
        host,
        app,
        severity,
        fields: labels
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    })
}

struct Out<'a> {
    parsed: Parsed,
    received_at: DateTime<Utc>,
    tenant: &'a str,
    /// The next entry's position in the body.
    index: usize,
    /// What the records hold so far, and the most they may.
    holding: Holding,
}

impl Out<'_> {
    fn reject(&mut self, error: String) {
        self.parsed.reject(self.index, error);
    }

    fn stream(&mut self, stream: Stream) -> Result<(), ParseError> {
        let columns = stream.labels.and_then(columns);
        let labels_bytes = columns.as_ref().map_or(0, |c| {
            c.fields
                .iter()
                .map(|(k, v)| k.len() + text_len(v))
                .sum::<usize>()
                + c.host.as_ref().map_or(0, String::len)
                + c.app.as_ref().map_or(0, String::len)
        });
        for entry in stream.entries {
            match (&columns, entry) {
                (Err(e), _) => self.reject(e.clone()),
                (_, Err(e)) => self.reject(e),
                (Ok(c), Ok(entry)) => {
                    let metadata: usize =
                        entry.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
                    self.holding
                        .charge(RECORD_BYTES + labels_bytes + metadata + entry.line.len())?;
                    let record = self.record(c, entry);
                    self.parsed.records.push(record);
                }
            }
            self.index += 1;
        }
        Ok(())
    }

    fn record(&mut self, c: &Columns, entry: Entry) -> Record {
        let (message, bad_utf8) = lossy_utf8(&entry.line);
        let mut fields = c.fields.clone();
        for (k, v) in entry.metadata {
            fields.insert(k, Value::String(v));
        }
        if bad_utf8 || entry.replaced {
            self.parsed.invalid_utf8 += 1;
        }
        let mut record = Record {
            ts: entry.ts.unwrap_or(self.received_at),
            received_at: self.received_at,
            tenant: self.tenant.to_owned(),
            host: c.host.clone(),
            app: c.app.clone(),
            procid: None,
            msgid: None,
            severity: c.severity,
            facility: None,
            message,
            fields,
            sd: None,
        };
        if record.scrub() > 0 {
            self.parsed.nul_replaced += 1;
        }
        record
    }
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
