//! JSON and NDJSON request bodies → [`Record`]s, one verdict per record.
//!
//! A body is refused as a whole only when it is empty or, for a JSON array,
//! not JSON at all. Otherwise every record is judged on its own: the good
//! ones are kept and each bad one comes back as a [`Rejection`] with its
//! index and the reason, so a client never loses a batch to one bad record.
//!
//! # Body formats
//!
//! - **JSON array** (`Content-Type: application/json`): an array of record
//!   objects. A single object on its own is accepted as one record. `[]` is
//!   valid and holds no records. An element that is not an object is
//!   rejected (index = position in the array). A body that is not valid JSON
//!   is refused as a whole, with the line and column of the error.
//! - **NDJSON** (`application/x-ndjson` and friends): one record object per
//!   line, lines end in LF or CRLF. Blank lines are skipped but still
//!   counted: the index of a rejection is the 0-based line number in the
//!   body, so it maps straight back to the client's input. A line that is
//!   not valid JSON, or not an object, is rejected on its own.
//!
//! An empty or whitespace-only body is refused as a whole. A leading UTF-8
//! byte order mark is ignored.
//!
//! # Record keys
//!
//! Key names are case-sensitive. `null` always means "absent".
//!
//! | key | accepted | otherwise |
//! |---|---|---|
//! | `message` (alias `msg`) | string; a number or boolean is turned into its text | missing, `null`, object or array → rejected |
//! | `ts` | RFC 3339 string with any offset (`2024-05-01T12:00:00.5+05:30`); or a number of Unix epoch **seconds**, fractions allowed (rounded to the microsecond); absent or `null` → time of receipt | other types, or a time outside years 1-9999 (numbers that look like milli-, micro- or nanoseconds get a hint) → rejected |
//! | `host`, `app`, `procid`, `msgid` | string; a number is turned into its text (a pid as a number is common) | boolean, object or array → rejected |
//! | `severity` | 0-7, the same as a numeric string, or a name: `emerg`/`emergency`/`panic`, `alert`, `crit`/`critical`, `err`/`error`, `warning`/`warn`, `notice`, `info`/`informational`, `debug` (any case) | anything else → rejected |
//! | `facility` | 0-23, the same as a numeric string, or a name: `kern`, `user`, `mail`, `daemon`, `auth`, `syslog`, `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `ntp`, `security`, `console`, `solaris-cron`, `local0`-`local7` (any case, common aliases too) | anything else → rejected |
//! | `fields` | an object, merged into the record's fields | any other non-null value → rejected |
//! | any other key | kept as-is in the record's fields | — |
//!
//! If both `message` and `msg` are present, `message` is the message and
//! `msg` is kept in the fields. When a top-level key and a key inside
//! `fields` have the same name, the one inside `fields` wins. The tenant
//! and the time of receipt are set by chute: top-level `tenant` or
//! `received_at` keys are ordinary fields.
//!
//! A rejection names the key and what was wrong, for example
//! `severity: expected 0-7 or a severity name, got "loud"`.
//!
//! # Sanitising
//!
//! PostgreSQL text cannot hold NUL bytes or invalid UTF-8, but neither is a
//! reason to lose a log line, so both are replaced with U+FFFD (�), never
//! rejected: NUL (`\u0000`) anywhere in a record, field names included, and
//! invalid UTF-8 byte sequences anywhere in the body. [`Parsed`] counts the
//! records affected by each.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::ingest::body::BodyFormat;
use crate::record::{facility_from_name, severity_from_name, Record, REPLACEMENT};

/// At most this many characters of a rejected value are quoted in an error.
const MAX_QUOTE_CHARS: usize = 40;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z as Unix seconds: the
/// range of years a timestamp may have.
const MIN_EPOCH_SECS: i64 = -62_135_596_800;
const MAX_EPOCH_SECS: i64 = 253_402_300_799;

/// The escape that produces a NUL inside a JSON string. JSON forbids raw
/// control characters in strings and requires a lowercase `u`, so a record
/// whose text lacks this sequence cannot contain NUL and skips the scrub.
const NUL_ESCAPE: &str = "\\u0000";

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
    /// Refused records, in body order.
    pub rejected: Vec<Rejection>,
    /// Records in which NUL bytes were replaced with U+FFFD.
    pub nul_replaced: usize,
    /// Records in which invalid UTF-8 was replaced with U+FFFD.
    pub invalid_utf8: usize,
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
}

impl ParseError {
    /// A bounded label for the `reason` of the rejected-requests metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty_body",
            Self::Syntax(_) => "invalid_json",
        }
    }
}

/// Parses a decompressed body into records, judging each record on its own
/// (the rules are in the [module docs](self)).
///
/// `received_at` is the time of receipt: every record's `received_at`, and
/// the `ts` of records that carry none. `tenant` goes into every record.
///
/// # Errors
///
/// [`ParseError::Empty`] for an empty or whitespace-only body;
/// [`ParseError::Syntax`] when a [`BodyFormat::JsonArray`] body is not valid
/// JSON or is neither an array nor an object. NDJSON bodies never fail as a
/// whole: each bad line is a [`Rejection`].
pub fn parse(
    body: &[u8],
    format: BodyFormat,
    received_at: DateTime<Utc>,
    tenant: &str,
) -> Result<Parsed, ParseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(|&b| is_json_ws(b)) {
        return Err(ParseError::Empty);
    }
    let mut ctx = Context {
        received_at,
        tenant,
        tenant_has_nul: tenant.contains('\0'),
        out: Parsed::default(),
    };
    match format {
        BodyFormat::JsonArray => parse_array(body, &mut ctx)?,
        BodyFormat::Ndjson => parse_ndjson(body, &mut ctx),
    }
    Ok(ctx.out)
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn parse_array(body: &[u8], ctx: &mut Context<'_>) -> Result<(), ParseError> {
    // serde_json refuses invalid UTF-8, so replace it first; valid bodies
    // (nearly all) are borrowed without a copy.
    let (text, lossy) = match std::str::from_utf8(body) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(body), true),
    };
    let first = text.bytes().find(|&b| !is_json_ws(b));
    if first == Some(b'[') {
        // Only the array's syntax is checked here; each element is then
        // parsed on its own so a bad one (say, a number out of range)
        // costs only itself.
        let elements: Vec<&RawValue> =
            serde_json::from_str(&text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        ctx.out.records.reserve(elements.len());
        for (index, raw) in elements.into_iter().enumerate() {
            let json = raw.get();
            // After the lossy pass, U+FFFD in an element means it held
            // invalid UTF-8 - or that the sender sent a real U+FFFD, a
            // slight overcount that is accepted for the metric.
            ctx.element(index, json, lossy && json.contains(REPLACEMENT), false);
        }
        return Ok(());
    }
    let raw: &RawValue = serde_json::from_str(&text).map_err(|e| {
        let mut msg = e.to_string();
        if first == Some(b'{') && msg.starts_with("trailing characters") {
            msg.push_str(" (for one object per line, send Content-Type: application/x-ndjson)");
        }
        ParseError::Syntax(msg)
    })?;
    match first {
        // The body is this one object (plus whitespace), so any
        // replacement was in it.
        Some(b'{') => ctx.element(0, raw.get(), lossy, false),
        other => {
            return Err(ParseError::Syntax(format!(
                "expected a JSON array of objects or a single object, got {}",
                kind_of_first_byte(other)
            )))
        }
    }
    Ok(())
}

fn kind_of_first_byte(b: Option<u8>) -> &'static str {
    match b {
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn parse_ndjson(body: &[u8], ctx: &mut Context<'_>) {
    let lines = body.iter().filter(|&&b| b == b'\n').count() + 1;
    ctx.out.records.reserve(lines);
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|&b| is_json_ws(b)) {
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(json) => ctx.element(index, json, false, true),
            Err(_) => ctx.element(index, &String::from_utf8_lossy(line), true, true),
        }
    }
}

/// What every record of one body shares, and the result being built.
struct Context<'a> {
    received_at: DateTime<Utc>,
    tenant: &'a str,
    tenant_has_nul: bool,
    out: Parsed,
}

impl Context<'_> {
    /// Parses one array element or NDJSON line (`json`, already valid
    /// UTF-8) and files it as a record or a rejection. `utf8_replaced` says
    /// whether invalid UTF-8 was replaced in it; `locate` adds the column
    /// of a syntax error (useful for a line, meaningless for an element).
    fn element(&mut self, index: usize, json: &str, utf8_replaced: bool, locate: bool) {
        let verdict = match serde_json::from_str::<Element>(json) {
            Ok(Element::Object(raw)) => self.record(*raw),
            Ok(Element::Other(kind)) => Err(format!("expected a JSON object, got {kind}")),
            Err(e) => Err(json_error(&e, locate)),
        };
        match verdict {
            Ok(mut record) => {
                if (self.tenant_has_nul || json.contains(NUL_ESCAPE)) && record.scrub() > 0 {
                    self.out.nul_replaced += 1;
                }
                if utf8_replaced {
                    self.out.invalid_utf8 += 1;
                }
                self.out.records.push(record);
            }
            Err(error) => self.out.rejected.push(Rejection { index, error }),
        }
    }

    /// Checks and converts the keys of one record object.
    fn record(&self, raw: RawRecord) -> Result<Record, String> {
        let RawRecord {
            ts,
            host,
            app,
            procid,
            msgid,
            severity,
            facility,
            message,
            msg,
            fields,
            mut extra,
        } = raw;
        let message = match (message.filter(not_null), msg) {
            (Some(m), msg) => {
                if let Some(msg) = msg {
                    extra.insert("msg".to_owned(), msg);
                }
                message_text("message", m)?
            }
            (None, Some(m)) if !m.is_null() => message_text("msg", m)?,
            (None, _) => return Err("message: missing".to_owned()),
        };
        let ts = timestamp(ts, self.received_at)?;
        let severity = code("severity", severity, 7, severity_from_name)?;
        let facility = code("facility", facility, 23, facility_from_name)?;
        let host = optional_text("host", host)?;
        let app = optional_text("app", app)?;
        let procid = optional_text("procid", procid)?;
        let msgid = optional_text("msgid", msgid)?;
        let fields = match fields {
            None | Some(Value::Null) => extra,
            Some(Value::Object(inner)) => merge(extra, inner),
            Some(other) => {
                return Err(format!(
                    "fields: expected an object, got {}",
                    describe(&other)
                ))
            }
        };
        Ok(Record {
            ts,
            received_at: self.received_at,
            tenant: self.tenant.to_owned(),
            host,
            app,
            procid,
            msgid,
            severity,
            facility,
            message,
            fields,
            sd: None,
        })
    }
}

fn not_null(v: &Value) -> bool {
    !v.is_null()
}

/// Merges top-level extra keys with the `fields` object; on a clash the key
/// inside `fields` wins. Inserts the smaller map into the larger.
fn merge(mut extra: Map<String, Value>, mut inner: Map<String, Value>) -> Map<String, Value> {
    if extra.len() <= inner.len() {
        for (k, v) in extra {
            inner.entry(k).or_insert(v);
        }
        inner
    } else {
        extra.extend(inner);
        extra
    }
}

/// `message`/`msg`: a string, or a scalar turned into its text.
fn message_text(key: &str, v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "{key}: expected a string, got {}",
            describe(&other)
        )),
    }
}

/// Longest `host`, `app`, `procid` or `msgid`. These are names, not messages, and
/// `host` is in a btree index, whose entries PostgreSQL caps at about 2.7 kB.
pub const MAX_NAME_BYTES: usize = 1024;

/// `host`, `app`, `procid`, `msgid`: a string or a number, or absent.
fn optional_text(key: &str, v: Option<Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_NAME_BYTES => Err(format!(
            "{key}: longer than {MAX_NAME_BYTES} bytes ({})",
            s.len()
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "{key}: expected a string, got {}",
            describe(&other)
        )),
    }
}

/// `severity` (0-7) and `facility` (0-23): a number, a numeric string, or
/// a name.
fn code(
    key: &str,
    v: Option<Value>,
    max: i16,
    from_name: fn(&str) -> Option<i16>,
) -> Result<Option<i16>, String> {
    let in_range = |c: i64| i16::try_from(c).ok().filter(|c| (0..=max).contains(c));
    let v = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let found = match &v {
        Value::Number(n) => n.as_i64().and_then(in_range),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(c) => in_range(c),
                Err(_) => from_name(s),
            }
        }
        _ => None,
    };
    found.map(Some).ok_or_else(|| {
        format!(
            "{key}: expected 0-{max} or a {key} name, got {}",
            describe(&v)
        )
    })
}

/// `ts`: RFC 3339 or epoch seconds; absent means the time of receipt.
fn timestamp(v: Option<Value>, received_at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    match v {
        None | Some(Value::Null) => Ok(received_at),
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                if in_years(&t) {
                    Ok(t)
                } else {
                    Err(format!("ts: {} is outside years 1-9999", quote(&s)))
                }
            }
            Err(e) => Err(format!(
                "ts: expected an RFC 3339 timestamp or epoch seconds, got {} ({e})",
                quote(&s)
            )),
        },
        Some(Value::Number(n)) => epoch_seconds(&n).ok_or_else(|| {
            let hint = n.as_f64().and_then(unit_hint).unwrap_or_default();
            format!("ts: {n} is outside years 1-9999; epoch seconds expected{hint}")
        }),
        Some(other) => Err(format!(
            "ts: expected an RFC 3339 timestamp or epoch seconds, got {}",
            describe(&other)
        )),
    }
}

/// Unix epoch seconds to a time: integers exactly, fractions rounded to
/// the microsecond. `None` outside years 1-9999.
fn epoch_seconds(n: &Number) -> Option<DateTime<Utc>> {
    let t = if let Some(secs) = n.as_i64() {
        DateTime::from_timestamp(secs, 0)?
    } else {
        let secs = n.as_f64()?;
        // Also rules out NaN and infinities before the cast below.
        if !(MIN_EPOCH_SECS as f64 - 1.0..=MAX_EPOCH_SECS as f64 + 1.0).contains(&secs) {
            return None;
        }
        // In range, so the product is far below i64::MAX: the cast is exact.
        DateTime::from_timestamp_micros((secs * 1e6).round() as i64)?
    };
    in_years(&t).then_some(t)
}

/// The hint for an out-of-range epoch number: the unit it would be in range
/// for, as milliseconds, microseconds or nanoseconds are common mistakes.
fn unit_hint(n: f64) -> Option<&'static str> {
    let fits = |secs: f64| (MIN_EPOCH_SECS as f64..=MAX_EPOCH_SECS as f64).contains(&secs);
    [
        (1e3, " (was this milliseconds?)"),
        (1e6, " (was this microseconds?)"),
        (1e9, " (was this nanoseconds?)"),
    ]
    .into_iter()
    .find(|&(per_second, _)| fits(n / per_second))
    .map(|(_, hint)| hint)
}

fn in_years(t: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// A value as quoted in an error: scalars as JSON (long strings cut),
/// containers by kind.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A client string as a JSON string literal, cut to [`MAX_QUOTE_CHARS`].
fn quote(s: &str) -> String {
    let cut = match s.char_indices().nth(MAX_QUOTE_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    };
    Value::String(cut).to_string()
}

/// A serde_json error for one element or line, without serde_json's
/// "at line 1 column N" (relative to the element, not the body); `locate`
/// keeps the column, which is meaningful within an NDJSON line.
fn json_error(e: &serde_json::Error, locate: bool) -> String {
    let full = e.to_string();
    let location = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&location).unwrap_or(&full);
    if locate && e.column() > 0 {
        format!("invalid JSON: {msg} at column {}", e.column())
    } else {
        format!("invalid JSON: {msg}")
    }
}

/// One array element or NDJSON line: a record object, or the kind of value
/// that stood in its place. Accepting any value here keeps "not an object"
/// a per-record rejection with a clear message.
enum Element {
    Object(Box<RawRecord>),
    Other(&'static str),
}

/// The keys of a record object before checking. Known keys are held as
/// JSON values so that a wrong type becomes a rejection naming the key
/// (instead of a serde error) and so that parsing never stops early;
/// `Some(Value::Null)` is an explicit `null`.
#[derive(Default)]
struct RawRecord {
    ts: Option<Value>,
    host: Option<Value>,
    app: Option<Value>,
    procid: Option<Value>,
    msgid: Option<Value>,
    severity: Option<Value>,
    facility: Option<Value>,
    message: Option<Value>,
    msg: Option<Value>,
    fields: Option<Value>,
    extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut r = RawRecord::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Ts => &mut r.ts,
                Key::Host => &mut r.host,
                Key::App => &mut r.app,
                Key::Procid => &mut r.procid,
                Key::Msgid => &mut r.msgid,
                Key::Severity => &mut r.severity,
                Key::Facility => &mut r.facility,
                Key::Message => &mut r.message,
                Key::Msg => &mut r.msg,
                Key::Fields => &mut r.fields,
                Key::Other(name) => {
                    let value = map.next_value()?;
                    r.extra.insert(name, value);
                    continue;
                }
            };
            // A repeated key: the last one wins, as in serde_json's Map.
            *slot = Some(map.next_value()?);
        }
        Ok(Element::Object(Box::new(r)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Element, E> {
        Ok(Element::Other("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Element, E> {
        Ok(Element::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Element, E> {
        Ok(Element::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Element, E> {
        Ok(Element::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Element, E> {
        Ok(Element::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other("null"))
    }
}

/// A top-level key of a record object. Known keys are recognised without
/// allocating; only other keys are copied, as they go into the fields.
enum Key {
    Ts,
    Host,
    App,
    Procid,
    Msgid,
    Severity,
    Facility,
    Message,
    Msg,
    Fields,
    Other(String),
}

impl Key {
    fn known(name: &str) -> Option<Self> {
        Some(match name {
            "ts" => Self::Ts,
            "host" => Self::Host,
            "app" => Self::App,
            "procid" => Self::Procid,
            "msgid" => Self::Msgid,
            "severity" => Self::Severity,
            "facility" => Self::Facility,
            "message" => Self::Message,
            "msg" => Self::Msg,
            "fields" => Self::Fields,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(Key::known(name).unwrap_or_else(|| Key::Other(name.to_owned())))
    }

    fn visit_string<E: de::Error>(self, name: String) -> Result<Key, E> {
        Ok(Key::known(&name).unwrap_or(Key::Other(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    fn array(body: &str) -> Parsed {
        parse(body.as_bytes(), BodyFormat::JsonArray, now(), "acme").expect("body parses")
    }

    fn ndjson(body: &str) -> Parsed {
        parse(body.as_bytes(), BodyFormat::Ndjson, now(), "acme").expect("body parses")
    }

    /// Parses one record object; `Ok` record or the rejection's error.
    fn one(obj: Value) -> Result<Record, String> {
        let mut p = array(&obj.to_string());
        assert_eq!(p.records.len() + p.rejected.len(), 1);
        match p.rejected.pop() {
            Some(r) => Err(r.error),
            None => p.records.pop().ok_or_else(|| "no record".to_owned()),
        }
    }

    fn ts_of(ts: Value) -> Result<DateTime<Utc>, String> {
        one(json!({"message": "m", "ts": ts})).map(|r| r.ts)
    }

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn indexes(rejected: &[Rejection]) -> Vec<usize> {
        rejected.iter().map(|r| r.index).collect()
    }

    fn messages(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    #[test]
    fn a_name_longer_than_the_limit_is_rejected_with_its_key() {
        let long = "h".repeat(MAX_NAME_BYTES + 1);
        let err = one(json!({"message": "m", "host": long})).unwrap_err();
        assert!(err.starts_with("host: longer than 1024 bytes"), "{err}");
        let ok = "a".repeat(MAX_NAME_BYTES);
        assert_eq!(
            one(json!({"message": "m", "app": ok}))
                .unwrap()
                .app
                .unwrap()
                .len(),
            MAX_NAME_BYTES
        );
    }

    #[test]
    fn minimal_record_gets_tenant_and_receipt_time() {
        let r = one(json!({"message": "hello"})).expect("accepted");
        assert_eq!(r.message, "hello");
        assert_eq!(r.tenant, "acme");
        assert_eq!(r.ts, now());
        assert_eq!(r.received_at, now());
        assert_eq!((r.host, r.app, r.procid, r.msgid), (None, None, None, None));
        assert_eq!((r.severity, r.facility), (None, None));
        assert!(r.fields.is_empty());
    }

    #[test]
    fn all_known_keys_land_in_their_columns() {
        let r = one(json!({
            "ts": "2024-01-02T03:04:05Z", "host": "web1", "app": "nginx", "procid": "42",
            "msgid": "ID7", "severity": 3, "facility": 16, "message": "boom", "user": "bob"
        }))
        .expect("accepted");
        assert_eq!(r.ts, utc("2024-01-02T03:04:05Z"));
        assert_eq!(r.host.as_deref(), Some("web1"));
        assert_eq!(r.app.as_deref(), Some("nginx"));
        assert_eq!(r.procid.as_deref(), Some("42"));
        assert_eq!(r.msgid.as_deref(), Some("ID7"));
        assert_eq!((r.severity, r.facility), (Some(3), Some(16)));
        assert_eq!(r.message, "boom");
        assert_eq!(Value::Object(r.fields), json!({"user": "bob"}));
    }

    #[test]
    fn json_array_of_objects_gives_one_record_each_in_order() {
        let p = array(r#"[{"message":"a"},{"message":"b"},{"message":"c"}]"#);
        assert_eq!(messages(&p.records), ["a", "b", "c"]);
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn single_top_level_object_is_one_record() {
        let p = array(" {\"message\":\"only\"}\n");
        assert_eq!(messages(&p.records), ["only"]);
    }

    #[test]
    fn single_top_level_object_that_is_invalid_is_a_rejection_at_index_0() {
        let p = array(r#"{"msg":{}}"#);
        assert!(p.records.is_empty());
        assert_eq!(
            p.rejected,
            [Rejection {
                index: 0,
                error: "msg: expected a string, got an object".into()
            }]
        );
    }

    #[test]
    fn empty_array_is_ok_with_no_records() {
        assert_eq!(array(" [ ] "), Parsed::default());
    }

    #[test]
    fn empty_or_whitespace_body_is_refused_in_both_formats() {
        for body in ["", " \r\n\t ", "\u{FEFF}"] {
            for format in [BodyFormat::JsonArray, BodyFormat::Ndjson] {
                let err = parse(body.as_bytes(), format, now(), "t");
                assert_eq!(err, Err(ParseError::Empty), "{body:?} {format:?}");
                assert_eq!(err.map_err(|e| e.reason()), Err("empty_body"));
            }
        }
    }

    #[test]
    fn invalid_json_array_is_refused_with_line_and_column() {
        let err = parse(
            b"[{\"message\":\"a\"},\n{\"message\" \"b\"}]",
            BodyFormat::JsonArray,
            now(),
            "t",
        );
        let Err(ParseError::Syntax(msg)) = &err else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert!(msg.contains("line 2 column"), "{msg}");
        assert_eq!(err.map_err(|e| e.reason()), Err("invalid_json"));
    }

    #[test]
    fn truncated_json_array_is_refused() {
        let err = parse(b"[{\"message\":\"a\"},", BodyFormat::JsonArray, now(), "t");
        assert!(matches!(err, Err(ParseError::Syntax(_))), "{err:?}");
    }

    #[test]
    fn ndjson_sent_as_json_is_refused_with_a_hint() {
        let err = parse(
            b"{\"message\":\"a\"}\n{\"message\":\"b\"}\n",
            BodyFormat::JsonArray,
            now(),
            "t",
        );
        let Err(ParseError::Syntax(msg)) = err else {
            panic!("expected a syntax error");
        };
        assert!(msg.contains("application/x-ndjson"), "{msg}");
    }

    #[test]
    fn top_level_scalar_is_refused_as_the_wrong_shape() {
        for (body, kind) in [
            ("\"hi\"", "a string"),
            ("42", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let err = parse(body.as_bytes(), BodyFormat::JsonArray, now(), "t");
            assert_eq!(
                err,
                Err(ParseError::Syntax(format!(
                    "expected a JSON array of objects or a single object, got {kind}"
                )))
            );
        }
    }

    #[test]
    fn array_elements_that_are_not_objects_are_rejected_and_the_rest_kept() {
        let p = array(r#"[{"message":"a"}, 5, "x", [1], null, true, {"message":"b"}]"#);
        assert_eq!(messages(&p.records), ["a", "b"]);
        let errors: Vec<_> = p
            .rejected
            .iter()
            .map(|r| (r.index, r.error.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (1, "expected a JSON object, got a number"),
                (2, "expected a JSON object, got a string"),
                (3, "expected a JSON object, got an array"),
                (4, "expected a JSON object, got null"),
                (5, "expected a JSON object, got a boolean"),
            ]
        );
    }

    #[test]
    fn array_where_element_2_lacks_a_message_keeps_elements_0_1_and_3() {
        let p = array(r#"[{"message":"a"},{"message":"b"},{"host":"h"},{"message":"d"}]"#);
        assert_eq!(messages(&p.records), ["a", "b", "d"]);
        assert_eq!(
            p.rejected,
            [Rejection {
                index: 2,
                error: "message: missing".into()
            }]
        );
    }

    #[test]
    fn array_element_with_a_number_out_of_range_costs_only_itself() {
        let p = array(r#"[{"message":"a"},{"message":"b","x":1e999},{"message":"c"}]"#);
        assert_eq!(messages(&p.records), ["a", "c"]);
        assert_eq!(indexes(&p.rejected), [1]);
        assert!(
            p.rejected[0]
                .error
                .starts_with("invalid JSON: number out of range"),
            "{:?}",
            p.rejected
        );
        assert!(!p.rejected[0].error.contains("line"), "{:?}", p.rejected);
    }

    #[test]
    fn ndjson_gives_one_record_per_line_with_lf_or_crlf() {
        let p = ndjson("{\"message\":\"a\"}\n{\"message\":\"b\"}\r\n{\"message\":\"c\"}");
        assert_eq!(messages(&p.records), ["a", "b", "c"]);
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn ndjson_blank_lines_are_skipped_but_counted_in_indexes() {
        let p = ndjson("\n{\"message\":\"a\"}\n\r\n   \n{\"msg\":[]}\n\n");
        assert_eq!(messages(&p.records), ["a"]);
        assert_eq!(
            p.rejected,
            [Rejection {
                index: 4,
                error: "msg: expected a string, got an array".into()
            }]
        );
    }

    #[test]
    fn ndjson_with_a_broken_line_keeps_the_other_lines() {
        let p = ndjson("{\"message\":\"a\"}\n{\"message\":\"b\"\n{\"message\":\"c\"}\n");
        assert_eq!(messages(&p.records), ["a", "c"]);
        assert_eq!(indexes(&p.rejected), [1]);
        let error = &p.rejected[0].error;
        assert!(
            error.starts_with("invalid JSON: EOF while parsing an object at column"),
            "{error}"
        );
    }

    #[test]
    fn ndjson_lines_that_are_not_objects_are_rejected() {
        let p = ndjson("[{\"message\":\"a\"}]\n42\n{\"message\":\"ok\"}");
        assert_eq!(messages(&p.records), ["ok"]);
        assert_eq!(indexes(&p.rejected), [0, 1]);
        assert_eq!(p.rejected[0].error, "expected a JSON object, got an array");
    }

    #[test]
    fn ndjson_body_of_only_bad_lines_is_ok_with_all_rejected() {
        let p = ndjson("nope\n{\"x\":1}\n");
        assert!(p.records.is_empty());
        assert_eq!(indexes(&p.rejected), [0, 1]);
    }

    #[test]
    fn leading_byte_order_mark_is_ignored() {
        let body = "\u{FEFF}{\"message\":\"a\"}\n";
        assert_eq!(messages(&ndjson(body).records), ["a"]);
        assert_eq!(messages(&array(body).records), ["a"]);
    }

    #[test]
    fn ts_in_utc_with_z_is_taken_as_is() {
        assert_eq!(
            ts_of(json!("2024-03-04T05:06:07Z")),
            Ok(utc("2024-03-04T05:06:07Z"))
        );
    }

    #[test]
    fn ts_with_a_positive_offset_is_converted_to_utc() {
        assert_eq!(
            ts_of(json!("2024-03-04T10:36:07+05:30")),
            Ok(utc("2024-03-04T05:06:07Z"))
        );
    }

    #[test]
    fn ts_with_a_negative_offset_is_converted_to_utc() {
        assert_eq!(
            ts_of(json!("2024-03-03T21:06:07-08:00")),
            Ok(utc("2024-03-04T05:06:07Z"))
        );
    }

    #[test]
    fn ts_with_fractional_seconds_keeps_them() {
        assert_eq!(
            ts_of(json!("2024-03-04T05:06:07.123456Z")),
            Ok(utc("2024-03-04T05:06:07.123456Z"))
        );
        assert_eq!(
            ts_of(json!("2024-03-04T05:06:07.5+01:00")),
            Ok(utc("2024-03-04T04:06:07.5Z"))
        );
    }

    #[test]
    fn ts_as_integer_epoch_seconds_is_exact() {
        assert_eq!(ts_of(json!(1_709_528_767)), Ok(utc("2024-03-04T05:06:07Z")));
        assert_eq!(ts_of(json!(0)), Ok(utc("1970-01-01T00:00:00Z")));
        assert_eq!(ts_of(json!(-1)), Ok(utc("1969-12-31T23:59:59Z")));
    }

    #[test]
    fn ts_as_fractional_epoch_seconds_is_rounded_to_the_microsecond() {
        assert_eq!(
            ts_of(json!(1_709_528_767.123_456)),
            Ok(utc("2024-03-04T05:06:07.123456Z"))
        );
        assert_eq!(
            ts_of(json!(1_709_528_767.123_456_7)),
            Ok(utc("2024-03-04T05:06:07.123457Z"))
        );
        assert_eq!(
            ts_of(json!(1_709_528_767.5)),
            Ok(utc("2024-03-04T05:06:07.5Z"))
        );
    }

    #[test]
    fn ts_null_or_absent_means_the_time_of_receipt() {
        assert_eq!(ts_of(Value::Null), Ok(now()));
        assert_eq!(one(json!({"message": "m"})).map(|r| r.ts), Ok(now()));
    }

    #[test]
    fn ts_at_the_edges_of_years_1_to_9999_is_accepted() {
        assert_eq!(
            ts_of(json!(MIN_EPOCH_SECS)),
            Ok(utc("0001-01-01T00:00:00Z"))
        );
        assert_eq!(
            ts_of(json!(MAX_EPOCH_SECS)),
            Ok(utc("9999-12-31T23:59:59Z"))
        );
        assert_eq!(
            ts_of(json!("0001-01-01T00:00:00Z")),
            Ok(utc("0001-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn ts_outside_years_1_to_9999_is_rejected() {
        assert_eq!(
            ts_of(json!(MAX_EPOCH_SECS + 1))
                .map_err(|e| e.starts_with("ts: 253402300800 is outside years 1-9999")),
            Err(true)
        );
        assert!(ts_of(json!(MIN_EPOCH_SECS - 1)).is_err());
        assert!(ts_of(json!(MAX_EPOCH_SECS as f64 + 0.9999999)).is_err());
        assert!(ts_of(json!(1e300)).is_err());
        assert!(ts_of(json!(u64::MAX)).is_err());
        assert_eq!(
            ts_of(json!("0000-12-31T23:00:00Z")),
            Err("ts: \"0000-12-31T23:00:00Z\" is outside years 1-9999".to_owned())
        );
        assert!(ts_of(json!("0001-01-01T00:30:00+01:00")).is_err());
        assert!(ts_of(json!("9999-12-31T23:30:00-01:00")).is_err());
    }

    #[test]
    fn ts_that_looks_like_milliseconds_gets_a_hint() {
        assert_eq!(
            ts_of(json!(1_709_528_767_123_i64)),
            Err("ts: 1709528767123 is outside years 1-9999; epoch seconds expected (was this milliseconds?)".to_owned())
        );
        assert_eq!(
            ts_of(json!(1_709_528_767_123.5)),
            Err("ts: 1709528767123.5 is outside years 1-9999; epoch seconds expected (was this milliseconds?)".to_owned())
        );
    }

    #[test]
    fn ts_that_looks_like_micro_or_nanoseconds_gets_a_hint() {
        let micro = ts_of(json!(1_709_528_767_123_456_i64)).expect_err("rejected");
        assert!(micro.ends_with("(was this microseconds?)"), "{micro}");
        let nano = ts_of(json!(1_709_528_767_123_456_789_i64)).expect_err("rejected");
        assert!(nano.ends_with("(was this nanoseconds?)"), "{nano}");
        let huge = ts_of(json!(1e30)).expect_err("rejected");
        assert!(huge.ends_with("epoch seconds expected"), "{huge}");
    }

    #[test]
    fn ts_that_is_not_rfc3339_or_a_number_is_rejected() {
        let e = ts_of(json!("yesterday")).expect_err("rejected");
        assert!(
            e.starts_with(
                "ts: expected an RFC 3339 timestamp or epoch seconds, got \"yesterday\" ("
            ),
            "{e}"
        );
        assert!(ts_of(json!("2024-03-04 05:06:07")).is_err_and(|e| e.starts_with("ts: ")));
        assert!(ts_of(json!("1709528767")).is_err());
        assert_eq!(
            ts_of(json!(true)),
            Err("ts: expected an RFC 3339 timestamp or epoch seconds, got true".to_owned())
        );
        assert!(ts_of(json!({})).is_err_and(|e| e.ends_with("got an object")));
    }

    #[test]
    fn text_columns_take_strings_and_numbers() {
        let r = one(json!({"message": "m", "host": "h", "app": 7, "procid": 4242, "msgid": 1.5}))
            .expect("accepted");
        assert_eq!(r.host.as_deref(), Some("h"));
        assert_eq!(r.app.as_deref(), Some("7"));
        assert_eq!(r.procid.as_deref(), Some("4242"));
        assert_eq!(r.msgid.as_deref(), Some("1.5"));
    }

    #[test]
    fn text_columns_that_are_null_are_absent() {
        let r =
            one(json!({"message": "m", "host": null, "app": null, "procid": null, "msgid": null}))
                .expect("accepted");
        assert_eq!((r.host, r.app, r.procid, r.msgid), (None, None, None, None));
        assert!(r.fields.is_empty());
    }

    #[test]
    fn text_columns_refuse_objects_arrays_and_booleans_naming_the_key() {
        assert_eq!(
            one(json!({"message": "m", "host": {}})),
            Err("host: expected a string, got an object".into())
        );
        assert_eq!(
            one(json!({"message": "m", "app": [1]})),
            Err("app: expected a string, got an array".into())
        );
        assert_eq!(
            one(json!({"message": "m", "procid": true})),
            Err("procid: expected a string, got true".into())
        );
        assert_eq!(
            one(json!({"message": "m", "msgid": false})),
            Err("msgid: expected a string, got false".into())
        );
    }

    #[test]
    fn severity_takes_numbers_numeric_strings_names_and_aliases() {
        let sev = |v: Value| one(json!({"message": "m", "severity": v})).map(|r| r.severity);
        assert_eq!(sev(json!(0)), Ok(Some(0)));
        assert_eq!(sev(json!(7)), Ok(Some(7)));
        assert_eq!(sev(json!("5")), Ok(Some(5)));
        assert_eq!(sev(json!(" 6 ")), Ok(Some(6)));
        assert_eq!(sev(json!("emerg")), Ok(Some(0)));
        assert_eq!(sev(json!("panic")), Ok(Some(0)));
        assert_eq!(sev(json!("CRITICAL")), Ok(Some(2)));
        assert_eq!(sev(json!("Error")), Ok(Some(3)));
        assert_eq!(sev(json!("warn")), Ok(Some(4)));
        assert_eq!(sev(json!("warning")), Ok(Some(4)));
        assert_eq!(sev(json!("informational")), Ok(Some(6)));
        assert_eq!(sev(json!("debug")), Ok(Some(7)));
        assert_eq!(sev(Value::Null), Ok(None));
    }

    #[test]
    fn severity_out_of_range_or_unknown_is_rejected_naming_the_key() {
        let sev = |v: Value| one(json!({"message": "m", "severity": v})).map(|r| r.severity);
        assert_eq!(
            sev(json!("loud")),
            Err("severity: expected 0-7 or a severity name, got \"loud\"".into())
        );
        assert_eq!(
            sev(json!(8)),
            Err("severity: expected 0-7 or a severity name, got 8".into())
        );
        assert_eq!(
            sev(json!(-1)),
            Err("severity: expected 0-7 or a severity name, got -1".into())
        );
        assert_eq!(
            sev(json!("8")),
            Err("severity: expected 0-7 or a severity name, got \"8\"".into())
        );
        assert_eq!(
            sev(json!(3.5)),
            Err("severity: expected 0-7 or a severity name, got 3.5".into())
        );
        assert_eq!(
            sev(json!(70000)),
            Err("severity: expected 0-7 or a severity name, got 70000".into())
        );
        assert_eq!(
            sev(json!(true)),
            Err("severity: expected 0-7 or a severity name, got true".into())
        );
        assert_eq!(
            sev(json!([])),
            Err("severity: expected 0-7 or a severity name, got an array".into())
        );
    }

    #[test]
    fn facility_takes_numbers_and_names() {
        let fac = |v: Value| one(json!({"message": "m", "facility": v})).map(|r| r.facility);
        assert_eq!(fac(json!(0)), Ok(Some(0)));
        assert_eq!(fac(json!(23)), Ok(Some(23)));
        assert_eq!(fac(json!("16")), Ok(Some(16)));
        assert_eq!(fac(json!("kern")), Ok(Some(0)));
        assert_eq!(fac(json!("AUTHPRIV")), Ok(Some(10)));
        assert_eq!(fac(json!("local7")), Ok(Some(23)));
        assert_eq!(fac(json!("solaris-cron")), Ok(Some(15)));
        assert_eq!(fac(Value::Null), Ok(None));
    }

    #[test]
    fn facility_out_of_range_or_unknown_is_rejected_naming_the_key() {
        let fac = |v: Value| one(json!({"message": "m", "facility": v})).map(|r| r.facility);
        assert_eq!(
            fac(json!(24)),
            Err("facility: expected 0-23 or a facility name, got 24".into())
        );
        assert_eq!(
            fac(json!("local8")),
            Err("facility: expected 0-23 or a facility name, got \"local8\"".into())
        );
        assert_eq!(
            fac(json!({})),
            Err("facility: expected 0-23 or a facility name, got an object".into())
        );
    }

    #[test]
    fn message_takes_numbers_and_booleans_as_text() {
        assert_eq!(
            one(json!({"message": 42})).map(|r| r.message),
            Ok("42".into())
        );
        assert_eq!(
            one(json!({"message": -1.25})).map(|r| r.message),
            Ok("-1.25".into())
        );
        assert_eq!(
            one(json!({"message": true})).map(|r| r.message),
            Ok("true".into())
        );
        assert_eq!(
            one(json!({"message": ""})).map(|r| r.message),
            Ok(String::new())
        );
    }

    #[test]
    fn message_that_is_an_object_or_array_is_rejected() {
        assert_eq!(
            one(json!({"message": {"a": 1}})),
            Err("message: expected a string, got an object".into())
        );
        assert_eq!(
            one(json!({"message": ["a"]})),
            Err("message: expected a string, got an array".into())
        );
    }

    #[test]
    fn missing_or_null_message_is_rejected() {
        assert_eq!(one(json!({})), Err("message: missing".into()));
        assert_eq!(
            one(json!({"message": null})),
            Err("message: missing".into())
        );
        assert_eq!(
            one(json!({"message": null, "msg": null})),
            Err("message: missing".into())
        );
        assert_eq!(
            one(json!({"Message": "case matters"})),
            Err("message: missing".into())
        );
    }

    #[test]
    fn msg_is_an_alias_for_message() {
        let r = one(json!({"msg": "via alias"})).expect("accepted");
        assert_eq!(r.message, "via alias");
        assert!(r.fields.is_empty());
        assert_eq!(
            one(json!({"message": null, "msg": "alias"})).map(|r| r.message),
            Ok("alias".into())
        );
    }

    #[test]
    fn with_both_message_and_msg_message_wins_and_msg_stays_in_fields() {
        let r = one(json!({"msg": "second", "message": "first"})).expect("accepted");
        assert_eq!(r.message, "first");
        assert_eq!(Value::Object(r.fields), json!({"msg": "second"}));
        let r = one(json!({"message": "first", "msg": {"nested": true}})).expect("accepted");
        assert_eq!(Value::Object(r.fields), json!({"msg": {"nested": true}}));
    }

    #[test]
    fn fields_object_is_merged_with_other_top_level_keys() {
        let r = one(json!({"message": "m", "a": 1, "fields": {"b": 2, "c": {"d": [3]}}}))
            .expect("accepted");
        assert_eq!(
            Value::Object(r.fields),
            json!({"a": 1, "b": 2, "c": {"d": [3]}})
        );
        let r = one(json!({"message": "m", "fields": null, "z": null})).expect("accepted");
        assert_eq!(Value::Object(r.fields), json!({"z": null}));
    }

    #[test]
    fn key_inside_fields_wins_over_the_same_top_level_key() {
        let small =
            one(json!({"message": "m", "k": "top", "fields": {"k": "inner", "x": 1, "y": 2}}))
                .expect("accepted");
        assert_eq!(
            Value::Object(small.fields),
            json!({"k": "inner", "x": 1, "y": 2})
        );
        let big =
            one(json!({"message": "m", "k": "top", "x": 1, "y": 2, "fields": {"k": "inner"}}))
                .expect("accepted");
        assert_eq!(
            Value::Object(big.fields),
            json!({"k": "inner", "x": 1, "y": 2})
        );
        let msg = one(json!({"message": "m", "msg": "top", "fields": {"msg": "inner"}}))
            .expect("accepted");
        assert_eq!(Value::Object(msg.fields), json!({"msg": "inner"}));
    }

    #[test]
    fn fields_that_is_not_an_object_is_rejected() {
        assert_eq!(
            one(json!({"message": "m", "fields": [1]})),
            Err("fields: expected an object, got an array".into())
        );
        assert_eq!(
            one(json!({"message": "m", "fields": "x"})),
            Err("fields: expected an object, got \"x\"".into())
        );
    }

    #[test]
    fn tenant_and_received_at_keys_from_the_sender_are_plain_fields() {
        let r = one(json!({"message": "m", "tenant": "evil", "received_at": 1})).expect("accepted");
        assert_eq!(r.tenant, "acme");
        assert_eq!(r.received_at, now());
        assert_eq!(
            Value::Object(r.fields),
            json!({"tenant": "evil", "received_at": 1})
        );
    }

    #[test]
    fn repeated_key_keeps_the_last_value() {
        let p = array(r#"[{"message":"a","message":"b","k":1,"k":2}]"#);
        assert_eq!(messages(&p.records), ["b"]);
        assert_eq!(p.records[0].fields.get("k"), Some(&json!(2)));
    }

    #[test]
    fn escaped_key_names_are_recognised() {
        let p = array(r#"[{"mess\u0061ge":"a","\u0068ost":"h"}]"#);
        assert_eq!(messages(&p.records), ["a"]);
        assert_eq!(p.records[0].host.as_deref(), Some("h"));
    }

    #[test]
    fn long_values_are_cut_in_errors() {
        let e = one(json!({"message": "m", "severity": "x".repeat(1000)})).expect_err("rejected");
        assert_eq!(
            e,
            format!(
                "severity: expected 0-7 or a severity name, got \"{}...\"",
                "x".repeat(MAX_QUOTE_CHARS)
            )
        );
    }

    #[test]
    fn nul_in_message_is_replaced_and_counted() {
        let p = array(r#"[{"message":"a\u0000b"},{"message":"clean"}]"#);
        assert_eq!(messages(&p.records), ["a\u{FFFD}b", "clean"]);
        assert_eq!(p.nul_replaced, 1);
        assert_eq!(p.invalid_utf8, 0);
    }

    #[test]
    fn nul_in_a_field_key_and_value_is_replaced_and_the_record_counted_once() {
        let p = ndjson("{\"message\":\"m\",\"k\\u0000ey\":\"v\\u0000\",\"host\":\"h\\u0000\"}\n{\"message\":\"ok\"}");
        assert_eq!(
            p.records[0].fields.get("k\u{FFFD}ey"),
            Some(&json!("v\u{FFFD}"))
        );
        assert_eq!(p.records[0].host.as_deref(), Some("h\u{FFFD}"));
        assert_eq!(p.nul_replaced, 1);
    }

    #[test]
    fn nul_inside_the_fields_object_is_replaced() {
        let p = array(r#"{"message":"m","fields":{"a\u0000":["\u0000"]}}"#);
        assert_eq!(
            Value::Object(p.records[0].fields.clone()),
            json!({"a\u{FFFD}": ["\u{FFFD}"]})
        );
        assert_eq!(p.nul_replaced, 1);
    }

    #[test]
    fn escaped_backslash_before_u0000_is_not_a_nul() {
        let p = array(r#"{"message":"C:\\u0000"}"#);
        assert_eq!(messages(&p.records), ["C:\\u0000"]);
        assert_eq!(p.nul_replaced, 0);
    }

    #[test]
    fn invalid_utf8_in_ndjson_is_replaced_and_counted_per_line() {
        let body = b"{\"message\":\"caf\xE9\"}\n{\"message\":\"fine \xE2\x82\xAC\"}\n{\"message\":\"\xFF\xFE\",\"k\":\"\xC3\"}\n";
        let p = parse(body, BodyFormat::Ndjson, now(), "t").expect("parses");
        assert_eq!(
            messages(&p.records),
            ["caf\u{FFFD}", "fine \u{20AC}", "\u{FFFD}\u{FFFD}"]
        );
        assert_eq!(p.records[2].fields.get("k"), Some(&json!("\u{FFFD}")));
        assert_eq!(p.invalid_utf8, 2);
        assert_eq!(p.nul_replaced, 0);
    }

    #[test]
    fn invalid_utf8_in_an_array_is_replaced_and_counted_per_element() {
        let body = b"[{\"message\":\"a\xFF\"},{\"message\":\"b\"},{\"message\":\"c\",\"x\":1}]";
        let p = parse(body, BodyFormat::JsonArray, now(), "t").expect("parses");
        assert_eq!(messages(&p.records), ["a\u{FFFD}", "b", "c"]);
        assert_eq!(p.invalid_utf8, 1);
        let body = b"[{\"message\":\"a\xFF\"},{\"message\":\"b\",\"k\xF0\x9F\":2}]";
        let p = parse(body, BodyFormat::JsonArray, now(), "t").expect("parses");
        assert_eq!(p.records[1].fields.get("k\u{FFFD}"), Some(&json!(2)));
        assert_eq!(p.invalid_utf8, 2);
    }

    #[test]
    fn invalid_utf8_in_a_rejected_record_is_not_counted() {
        let p = parse(b"{\"host\":\"\xFF\"}\n", BodyFormat::Ndjson, now(), "t").expect("parses");
        assert_eq!(indexes(&p.rejected), [0]);
        assert_eq!(p.invalid_utf8, 0);
    }

    #[test]
    fn rejection_serialises_as_index_and_error() {
        let r = Rejection {
            index: 3,
            error: "message: missing".into(),
        };
        assert_eq!(
            serde_json::to_value(&r).ok(),
            Some(json!({"index": 3, "error": "message: missing"}))
        );
    }

    #[test]
    fn deeply_nested_value_is_a_rejection_not_a_crash() {
        let deep = format!(
            "{{\"message\":\"m\",\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let p = ndjson(&format!("{deep}\n{{\"message\":\"ok\"}}"));
        assert_eq!(messages(&p.records), ["ok"]);
        assert_eq!(indexes(&p.rejected), [0]);
        let p = array(&format!("[{deep},{{\"message\":\"ok\"}}]"));
        assert_eq!(messages(&p.records), ["ok"]);
        assert_eq!(indexes(&p.rejected), [0]);
    }
}
