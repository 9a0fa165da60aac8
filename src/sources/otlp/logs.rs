//! An OTLP logs export → [`Record`]s, one verdict per log record.
//!
//! # Formats
//!
//! - **Protobuf** (`Content-Type: application/x-protobuf`): an
//!   `ExportLogsServiceRequest` ([`super::proto`]).
//! - **JSON** (`application/json`): the same message in OTLP/JSON.
//!
//! Either may be gzip- (or zstd-) encoded. A body that cannot be decoded at all
//! is refused as a whole (as the Collector refuses it, invalid UTF-8 in a
//! protobuf string included); otherwise each log record is judged on its own,
//! and a refused one is named by its position (counted from 0 across the whole
//! export, in order).
//!
//! # Mapping
//!
//! | OTLP | column |
//! |---|---|
//! | resource attribute `host.name` | `host` |
//! | resource attribute `service.name` | `app` |
//! | `time_unix_nano`, else `observed_time_unix_nano`, else the time of receipt | `ts` |
//! | `severity_number`: 1-8 (TRACE, DEBUG) → 7 debug, 9-12 (INFO) → 6 info, 13-16 (WARN) → 4 warning, 17-20 (ERROR) → 3 err, 21-24 (FATAL) → 2 crit; when unset, `severity_text` by name (`error`, `warn`, `fatal`, ...) | `severity` |
//! | `body`: a string as it is, any other value as JSON | `message` |
//!
//! Into `fields`: the resource's other attributes, then the scope's, then the
//! record's (a later one wins a name), `scope_name` and `scope_version`,
//! `trace_id` and `span_id` as lowercase hex, `flags` and `event_name` when set,
//! and `severity_text` when no severity could be read from it or the number.
//! Attribute names have every character but `A-Z a-z 0-9 _` replaced with `_`
//! (`k8s.pod.name` → `k8s_pod_name`), as Loki stores OTLP attributes, so a LogQL
//! label filter can name them. Values keep their JSON type: strings, numbers,
//! booleans, arrays and objects (`kvlist`); bytes as base64.
//!
//! A record is refused when its trace id is not 16 bytes (or empty), its span id
//! not 8 (or empty), its time past what PostgreSQL keeps (year 2262 in
//! nanoseconds), or its host or app longer than 1 KiB. An export whose records
//! would hold more than 8 times the body limit in memory (resource attributes
//! are copied into each record; the records themselves are counted too), or
//! whose decoded messages would take more than 16 times it (32 for JSON: an
//! empty log record is 2 bytes on the wire), is refused whole, 413; the second
//! is weighed off the wire before anything is built. NUL and invalid UTF-8
//! (JSON) are replaced with U+FFFD and counted, as on every source.

use std::mem::size_of;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use prost::Message as _;
use serde_json::{Map, Number, Value as Json};

use super::proto::{self, AnyValue, KeyValue, Value};
use crate::record::{level_severity, lossy_utf8, Record, MAX_NAME_BYTES};
use crate::sources::verdict::{Holding, ParseError, Parsed, RECORD_BYTES};
use crate::sources::wire::{check_weight, Schema, DECODED_PER_BODY_BYTE};

/// How the body is encoded (from its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsFormat {
    Protobuf,
    Json,
}

/// Decodes an export body (after any Content-Encoding) into records.
///
/// # Errors
/// [`ParseError`] when the body as a whole cannot be decoded: empty, not an
/// `ExportLogsServiceRequest`, or it would take too much memory for `limit`.
pub fn decode(
    body: &[u8],
    format: LogsFormat,
    received_at: DateTime<Utc>,
    tenant: &str,
    limit: usize,
) -> Result<Parsed, ParseError> {
    // No bytes is an empty protobuf export, which OTLP answers as a success.
    if body.is_empty() && format == LogsFormat::Json {
        return Err(ParseError::Empty);
    }
    // Decoded messages take more room than their bytes (an empty log record
    // is 2 bytes on the wire): weighed before they are built.
    let (request, replaced) = match format {
        LogsFormat::Protobuf => {
            check_weight(
                body,
                Kind::Request,
                limit,
                "an OTLP ExportLogsServiceRequest",
            )?;
            let request = proto::ExportLogsServiceRequest::decode(body).map_err(|e| {
                ParseError::Undecodable(format!("not an OTLP ExportLogsServiceRequest: {e}"))
            })?;
            (request, false)
        }
        LogsFormat::Json => {
            let most = limit.saturating_mul(2 * DECODED_PER_BODY_BYTE);
            if json_objects(body).saturating_mul(size_of::<proto::LogRecord>()) > most {
                return Err(ParseError::TooLarge { limit: most });
            }
            let (text, replaced) = lossy_utf8(body);
            if !text.trim_start().starts_with('{') {
                return Err(ParseError::Syntax(
                    "an OTLP/JSON logs export is a JSON object".into(),
                ));
            }
            let request = serde_json::from_str(&text).map_err(|e| {
                ParseError::Syntax(format!(
                    "not an OTLP/JSON logs export (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ))
            })?;
            (request, replaced)
        }
    };
    let mut out = Out {
        parsed: Parsed::default(),
        received_at,
        tenant,
        index: 0,
        holding: Holding::new(limit),
        body_replaced: replaced,
    };
    for resource_logs in request.resource_logs {
        out.resource(resource_logs)?;
    }
    Ok(out.parsed)
}

/// What a resource and a scope give each of their records.
#[derive(Clone)]
struct Shared {
    host: Option<String>,
    app: Option<String>,
    fields: Map<String, Json>,
    /// Bytes of text the above hold, charged once per record.
    bytes: usize,
}

struct Out<'a> {
    parsed: Parsed,
    received_at: DateTime<Utc>,
    tenant: &'a str,
    /// The next record's position in the export.
    index: usize,
    /// What the records hold so far, and the most they may.
    holding: Holding,
    /// The JSON body had invalid UTF-8 replaced.
    body_replaced: bool,
}

impl Out<'_> {
    fn reject(&mut self, error: String) {
        self.parsed.reject(self.index, error);
    }

    fn resource(&mut self, rl: proto::ResourceLogs) -> Result<(), ParseError> {
        let mut shared = Shared {
            host: None,
            app: None,
            fields: Map::new(),
            bytes: 0,
        };
        for kv in rl.resource.map(|r| r.attributes).unwrap_or_default() {
            let taken = match (kv.key.as_str(), &kv.value) {
                (
                    "host.name",
                    Some(AnyValue {
                        value: Some(Value::String(s)),
                    }),
                ) => {
                    shared.host = Some(s.clone());
                    true
                }
                (
                    "service.name",
                    Some(AnyValue {
                        value: Some(Value::String(s)),
                    }),
                ) => {
                    shared.app = Some(s.clone());
                    true
                }
                _ => false,
            };
            if !taken {
                attribute(&mut shared.fields, kv);
            }
        }
        let too_long = [("host", &shared.host), ("app", &shared.app)]
            .into_iter()
            .find(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_NAME_BYTES))
            .map(|(name, _)| format!("{name}: longer than {MAX_NAME_BYTES} bytes"));
        for scope_logs in rl.scope_logs {
            if scope_logs.log_records.is_empty() {
                continue;
            }
            let mut scoped = shared.clone();
            if let Some(scope) = scope_logs.scope {
                for (name, value) in [("scope_name", scope.name), ("scope_version", scope.version)]
                {
                    if !value.is_empty() {
                        scoped.fields.insert(name.to_owned(), Json::String(value));
                    }
                }
                for kv in scope.attributes {
                    attribute(&mut scoped.fields, kv);
                }
            }
            scoped.bytes = text_bytes(&scoped);
            self.holding.charge(scoped.bytes)?;
            for log in scope_logs.log_records {
                match &too_long {
                    Some(e) => self.reject(e.clone()),
                    None => self.log(&scoped, log)?,
                }
                self.index += 1;
            }
        }
        Ok(())
    }

    fn log(&mut self, shared: &Shared, log: proto::LogRecord) -> Result<(), ParseError> {
        let ts = match [log.time_unix_nano, log.observed_time_unix_nano]
            .into_iter()
            .find(|&t| t != 0)
        {
            None => self.received_at,
            Some(nanos) => match i64::try_from(nanos) {
                Ok(n) => DateTime::from_timestamp_nanos(n),
                Err(_) => {
                    self.reject(format!("time_unix_nano: {nanos} is past the year 2262"));
                    return Ok(());
                }
            },
        };
        let mut fields = shared.fields.clone();
        for (name, id, len) in [
            ("trace_id", &log.trace_id, 16),
            ("span_id", &log.span_id, 8),
        ] {
            match id.len() {
                0 => {}
                n if n == len => {
                    fields.insert(name.to_owned(), Json::String(hex(id)));
                }
                n => {
                    self.reject(format!("{name}: {len} bytes expected, got {n}"));
                    return Ok(());
                }
            }
        }
        let severity = severity(log.severity_number).or_else(|| level_severity(&log.severity_text));
        if severity.is_none() && !log.severity_text.is_empty() {
            fields.insert("severity_text".into(), Json::String(log.severity_text));
        }
        if log.flags != 0 {
            fields.insert("flags".into(), Json::from(log.flags));
        }
        if !log.event_name.is_empty() {
            fields.insert("event_name".into(), Json::String(log.event_name));
        }
        let mut extra = 64; // the ids, flags and names above, at most
        for kv in log.attributes {
            extra += attribute(&mut fields, kv);
        }
        let message = match log.body.map(json_of) {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s,
            Some(other) => other.to_string(),
        };
        self.holding
            .charge(RECORD_BYTES + shared.bytes + message.len() + extra)?;
        if self.body_replaced && message.contains(crate::record::REPLACEMENT) {
            self.parsed.invalid_utf8 += 1;
        }
        let mut record = Record {
            ts,
            received_at: self.received_at,
            tenant: self.tenant.to_owned(),
            host: shared.host.clone(),
            app: shared.app.clone(),
            procid: None,
            msgid: None,
            severity,
            facility: None,
            message,
            fields,
            sd: None,
        };
        if record.scrub() > 0 {
            self.parsed.nul_replaced += 1;
        }
        self.parsed.records.push(record);
        Ok(())
    }
}

/// OTLP's SeverityNumber as a syslog severity (see the module's table).
fn severity(number: i32) -> Option<i16> {
    match number {
        1..=8 => Some(7),
        9..=12 => Some(6),
        13..=16 => Some(4),
        17..=20 => Some(3),
        21..=24 => Some(2),
        _ => None,
    }
}

/// Adds an attribute to `fields` under its LogQL-safe name; the bytes it holds.
fn attribute(fields: &mut Map<String, Json>, kv: KeyValue) -> usize {
    if kv.key.is_empty() {
        return 0;
    }
    let value = kv.value.map_or(Json::Null, json_of);
    let bytes = ENTRY_BYTES + kv.key.len() + value_bytes(&value);
    fields.insert(label_name(&kv.key), value);
    bytes
}

/// `k8s.pod.name` → `k8s_pod_name`: every character but `A-Z a-z 0-9 _` as `_`.
fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An AnyValue as JSON: kvlists as objects (their keys as they are), bytes as
/// base64, a NaN or infinite double as its name.
fn json_of(v: AnyValue) -> Json {
    match v.value {
        None => Json::Null,
        Some(Value::String(s)) => Json::String(s),
        Some(Value::Bool(b)) => Json::Bool(b),
        Some(Value::Int(i)) => Json::from(i),
        Some(Value::Double(d)) => {
            Number::from_f64(d).map_or_else(|| Json::String(d.to_string()), Json::Number)
        }
        Some(Value::Array(a)) => Json::Array(a.values.into_iter().map(json_of).collect()),
        Some(Value::Kvlist(l)) => Json::Object(
            l.values
                .into_iter()
                .map(|kv| (kv.key, kv.value.map_or(Json::Null, json_of)))
                .collect(),
        ),
        Some(Value::Bytes(b)) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// About the bytes a JSON value takes in memory: its text, and a share for each
/// value and map entry.
fn value_bytes(v: &Json) -> usize {
    VALUE_BYTES
        + match v {
            Json::String(s) => s.len(),
            Json::Array(a) => a.iter().map(value_bytes).sum::<usize>(),
            Json::Object(o) => o
                .iter()
                .map(|(k, v)| ENTRY_BYTES + k.len() + value_bytes(v))
                .sum(),
            _ => 0,
        }
}

fn text_bytes(shared: &Shared) -> usize {
    shared.host.as_ref().map_or(0, String::len)
        + shared.app.as_ref().map_or(0, String::len)
        + shared
            .fields
            .iter()
            .map(|(k, v)| ENTRY_BYTES + k.len() + value_bytes(v))
            .sum::<usize>()
}

/// What a JSON value and a map entry take beside their text.
const VALUE_BYTES: usize = 32;
const ENTRY_BYTES: usize = 48;

/// The messages of an export, for weighing it before decoding.
#[derive(Clone, Copy)]
enum Kind {
    Request,
    ResourceLogs,
    Resource,
    ScopeLogs,
    Scope,
    LogRecord,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

impl Schema for Kind {
    fn child(self, field: u64) -> Option<Kind> {
        Some(match (self, field) {
            (Kind::Request, 1) => Kind::ResourceLogs,
            (Kind::ResourceLogs, 1) => Kind::Resource,
            (Kind::ResourceLogs, 2) => Kind::ScopeLogs,
            (Kind::Resource, 1) | (Kind::Scope, 3) | (Kind::LogRecord, 6) => Kind::KeyValue,
            (Kind::KeyValueList, 1) => Kind::KeyValue,
            (Kind::ScopeLogs, 1) => Kind::Scope,
            (Kind::ScopeLogs, 2) => Kind::LogRecord,
            (Kind::LogRecord, 5) | (Kind::KeyValue, 2) | (Kind::ArrayValue, 1) => Kind::AnyValue,
            (Kind::AnyValue, 5) => Kind::ArrayValue,
            (Kind::AnyValue, 6) => Kind::KeyValueList,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Kind::Request => size_of::<proto::ExportLogsServiceRequest>(),
            Kind::ResourceLogs => size_of::<proto::ResourceLogs>(),
            Kind::Resource => size_of::<proto::Resource>(),
            Kind::ScopeLogs => size_of::<proto::ScopeLogs>(),
            Kind::Scope => size_of::<proto::InstrumentationScope>(),
            Kind::LogRecord => size_of::<proto::LogRecord>(),
            Kind::KeyValue => size_of::<KeyValue>(),
            Kind::AnyValue => size_of::<AnyValue>(),
            Kind::ArrayValue => size_of::<proto::ArrayValue>(),
            Kind::KeyValueList => size_of::<proto::KeyValueList>(),
        }
    }
}

/// How many JSON objects `body` opens (`{` outside strings): an upper bound
/// of the messages it decodes to.
fn json_objects(body: &[u8]) -> usize {
    let (mut objects, mut in_string, mut escaped) = (0, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' {
            objects += 1;
        }
    }
    objects
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
