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
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::record::{
    facility_from_name, severity_from_name, Record, JSON_NUL_ESCAPE, MAX_NAME_BYTES, REPLACEMENT,
};
use crate::sources::http::body::BodyFormat;
pub use crate::sources::verdict::{ParseError, Parsed, Rejection, MAX_LISTED_REJECTIONS};

/// At most this many records are reserved for up front; more grow the list as they
/// come, so a body of blank lines or of bad elements reserves nothing by their count.
const RESERVE_RECORDS: usize = 4096;

/// At most this many characters of a rejected value are quoted in an error.
const MAX_QUOTE_CHARS: usize = 40;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z as Unix seconds: the
/// range of years a timestamp may have.
const MIN_EPOCH_SECS: i64 = -62_135_596_800;
const MAX_EPOCH_SECS: i64 = 253_402_300_799;

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
        // The array is read element by element, each parsed on its own as it
        // comes, so a bad one (say, a number out of range) costs only itself and
        // no list of millions of elements is ever built. A syntax error anywhere
        // still refuses the whole body (what was parsed before it is dropped).
        let mut de = serde_json::Deserializer::from_str(&text);
        de.deserialize_seq(Elements { ctx, lossy })
            .and_then(|()| de.end())
            .map_err(|e| ParseError::Syntax(e.to_string()))?;
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

/// Parses the elements of a top-level array one by one into the context.
struct Elements<'c, 'a> {
    ctx: &'c mut Context<'a>,
    /// Invalid UTF-8 was replaced somewhere in the body.
    lossy: bool,
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let json = raw.get();
            // After the lossy pass, U+FFFD in an element means it held invalid
            // UTF-8 - or that the sender sent a real U+FFFD, a slight overcount
            // that is accepted for the metric.
            self.ctx
                .element(index, json, self.lossy && json.contains(REPLACEMENT), false);
            index += 1;
        }
        Ok(())
    }
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
    ctx.out.records.reserve(lines.min(RESERVE_RECORDS));
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
                if (self.tenant_has_nul || json.contains(JSON_NUL_ESCAPE)) && record.scrub() > 0 {
                    self.out.nul_replaced += 1;
                }
                if utf8_replaced {
                    self.out.invalid_utf8 += 1;
                }
                self.out.records.push(record);
            }
            Err(error) => {
                self.out.rejected_count += 1;
                if self.out.rejected.len() < MAX_LISTED_REJECTIONS {
                    self.out.rejected.push(Rejection { index, error });
                }
            }
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
#[path = "json_tests.rs"]
mod tests;
