//! RFC 5424 messages:
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.
//!
//! # Header
//!
//! - TIMESTAMP: RFC 3339 (`2003-10-11T22:14:15.003Z`,
//!   `2003-08-24T05:14:15.000003-07:00`), stored in UTC. Up to 9 fraction
//!   digits are kept (RFC 5424 allows 6); `t`/`z` in lower case and offsets
//!   without the colon (`+0200`) are accepted too. `-` means the message has
//!   no time, and the time of receipt is used.
//! - HOSTNAME, APP-NAME, PROCID, MSGID: any run of characters up to the next
//!   space. `-` means none (for HOSTNAME: the sender's host name, when the
//!   listener knows it). Longer values than RFC 5424 allows are kept.
//!
//! # STRUCTURED-DATA
//!
//! Stored in `fields.sd` as one object per SD-ID, holding the values of its
//! parameters by name:
//!
//! ```text
//! [exampleSDID@32473 iut="3" eventSource="Application"][meta tag="a" tag="b"]
//! ```
//!
//! becomes
//!
//! ```json
//! {"sd": {"exampleSDID@32473": {"iut": "3", "eventSource": "Application"},
//!         "meta": {"tag": ["a", "b"]}}}
//! ```
//!
//! - Values are always strings; the escapes `\"`, `\\` and `\]` are undone,
//!   and a backslash before any other character is kept as it is.
//! - A parameter given more than once in an element becomes an array of its
//!   values, in order. An SD-ID given more than once in a message (RFC 5424
//!   forbids it, some senders do it) has its parameters merged, the same way.
//! - An element without parameters (`[id]`) is an empty object.
//! - `-` (no STRUCTURED-DATA) means no `sd` key at all.
//!
//! # MSG
//!
//! Everything after the space that follows STRUCTURED-DATA. A UTF-8 byte
//! order mark at its start is removed.
//!
//! # Broken messages
//!
//! The header is read field by field. At the first field that is empty (two
//! spaces in a row), missing (the message ends), or unreadable (a TIMESTAMP
//! that is not RFC 3339, STRUCTURED-DATA that is neither `-` nor well-formed
//! elements followed by a space or the end), reading stops: the fields before
//! it are stored, the text from that field on becomes the message, and
//! `fields.parse_error` names the field, for example
//! `rfc5424: invalid STRUCTURED-DATA` (a sender that leaves STRUCTURED-DATA
//! out, writing its message right after MSGID, gets exactly that, and keeps
//! its whole message). Nothing is lost.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};
use serde_json::Value;

use super::{two_digits, with_offset, Parts};
use crate::record::Record;
use crate::record::StructuredData;

/// The UTF-8 byte order mark that may start MSG.
const BOM: char = '\u{FEFF}';

/// The header fields after VERSION, in order, as named in `parse_error`.
const HEADER: [(&str, &str); 5] = [
    ("rfc5424: invalid TIMESTAMP", "rfc5424: no TIMESTAMP"),
    ("rfc5424: empty HOSTNAME", "rfc5424: no HOSTNAME"),
    ("rfc5424: empty APP-NAME", "rfc5424: no APP-NAME"),
    ("rfc5424: empty PROCID", "rfc5424: no PROCID"),
    ("rfc5424: empty MSGID", "rfc5424: no MSGID"),
];

/// Parses what follows `<PRI>1 `.
pub(crate) fn parse_after_pri(text: &str) -> Parts<'_> {
    let mut parts = Parts::default();
    let mut rest = text;
    for (i, &(bad, missing)) in HEADER.iter().enumerate() {
        if rest.is_empty() {
            parts.error = Some(missing);
            return parts;
        }
        let (token, after) = match rest.find(' ') {
            Some(sp) => (&rest[..sp], Some(&rest[sp + 1..])),
            None => (rest, None),
        };
        if token.is_empty() {
            return stop(parts, bad, rest);
        }
        let value = (token != "-").then_some(token);
        match i {
            0 => match value {
                None => {}
                Some(t) => match parse_rfc3339(t.as_bytes()) {
                    Some((stamp, len)) if len == t.len() && stamp.offset.is_some() => {
                        parts.ts = stamp.to_utc();
                        if parts.ts.is_none() {
                            return stop(parts, bad, rest);
                        }
                    }
                    _ => return stop(parts, bad, rest),
                },
            },
            1 => parts.host = value,
            2 => parts.app = value,
            3 => parts.procid = value,
            _ => parts.msgid = value,
        }
        match after {
            Some(a) => rest = a,
            None => {
                // The message ends after this field: the next one is missing.
                parts.error = Some(match HEADER.get(i + 1) {
                    Some((_, missing)) => missing,
                    None => "rfc5424: no STRUCTURED-DATA",
                });
                return parts;
            }
        }
    }
    match structured_data(rest) {
        Some((sd, msg)) => {
            parts.sd = sd;
            parts.message = msg.strip_prefix(BOM).unwrap_or(msg);
            parts
        }
        None => stop(parts, "rfc5424: invalid STRUCTURED-DATA", rest),
    }
}

/// Stops reading at a bad field: the text from it on is the message.
fn stop<'t>(mut parts: Parts<'t>, reason: &'static str, rest: &'t str) -> Parts<'t> {
    parts.error = Some(reason);
    parts.message = rest;
    parts
}

/// STRUCTURED-DATA at the start of `s` and the MSG after it; `None` when it
/// is not well-formed. The data is `None` for `-`.
fn structured_data(s: &str) -> Option<(Option<StructuredData>, &str)> {
    let b = s.as_bytes();
    let (sd, end) = if b.first() == Some(&b'-') {
        (None, 1)
    } else if b.first() == Some(&b'[') {
        let mut sd = StructuredData::default();
        let mut at = 0;
        while b.get(at) == Some(&b'[') {
            at = element(s, at + 1, &mut sd)?;
        }
        (Some(sd), at)
    } else {
        return None;
    };
    match b.get(end) {
        None => Some((sd, "")),
        Some(b' ') => Some((sd, &s[end + 1..])),
        Some(_) => None,
    }
}

/// Characters that end an SD-NAME.
fn ends_name(c: u8) -> bool {
    matches!(c, b'=' | b' ' | b']' | b'"')
}

/// One SD-ELEMENT whose `[` is just before `at`, added to `sd`. Returns the
/// position after its `]`.
fn element(s: &str, mut at: usize, sd: &mut StructuredData) -> Option<usize> {
    let b = s.as_bytes();
    let id_len = b[at..].iter().position(|&c| ends_name(c))?;
    if id_len == 0 {
        return None;
    }
    let mut element = sd.start_element(&s[at..at + id_len]);
    at += id_len;
    loop {
        match b.get(at)? {
            b']' => {
                sd.end_element(element);
                return Some(at + 1);
            }
            b' ' => at += 1,
            _ => {
                // A parameter must follow a space.
                if b[at - 1] != b' ' {
                    return None;
                }
                let name_len = b[at..].iter().position(|&c| ends_name(c))?;
                if name_len == 0 || b.get(at + name_len) != Some(&b'=') {
                    return None;
                }
                let (name, value) = sd.start_param(&s[at..at + name_len]);
                at += name_len + 1;
                if b.get(at) != Some(&b'"') {
                    return None;
                }
                at = param_value(s, at + 1, sd)?;
                sd.end_param(&mut element, name, value);
            }
        }
    }
}

/// Reads a PARAM-VALUE starting at `at` into `sd`, unescaped; returns the
/// position after its closing quote.
fn param_value(s: &str, at: usize, sd: &mut StructuredData) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = at;
    let mut i = at;
    loop {
        let j = i + memchr::memchr2(b'"', b'\\', &b[i..])?;
        if b[j] == b'"' {
            sd.push_value(&s[from..j]);
            return Some(j + 1);
        }
        // A backslash: `\"`, `\\` and `\]` stand for the second character;
        // before anything else the backslash is kept.
        match b.get(j + 1) {
            Some(b'"' | b'\\' | b']') => {
                sd.push_value(&s[from..j]);
                from = j + 1;
                i = j + 2;
            }
            _ => i = j + 1,
        }
    }
}

/// An RFC 3339 time stamp: the date and time as written, and the offset in
/// seconds (`None` when the stamp has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stamp {
    pub(crate) local: chrono::NaiveDateTime,
    pub(crate) offset: Option<i32>,
}

impl Stamp {
    /// The instant, when the stamp has an offset and the instant is within
    /// what [`DateTime`] holds.
    pub(crate) fn to_utc(self) -> Option<DateTime<Utc>> {
        with_offset(self.local, self.offset?)
    }
}

/// Reads `YYYY-MM-DDThh:mm:ss[.frac][Z|±hh:mm|±hhmm]` at the start of `b`;
/// returns the stamp and its length. Fractions beyond 9 digits are read and
/// dropped; `t`, `z` and a missing offset are accepted (callers that need
/// an offset check [`Stamp::offset`]).
pub(crate) fn parse_rfc3339(b: &[u8]) -> Option<(Stamp, usize)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') {
        return None;
    }
    let year = two_digits(b[0], b[1])? * 100 + two_digits(b[2], b[3])?;
    let month = two_digits(b[5], b[6])?;
    let day = two_digits(b[8], b[9])?;
    let hour = two_digits(b[11], b[12])?;
    let minute = two_digits(b[14], b[15])?;
    let second = two_digits(b[17], b[18])?;
    let mut at = 19;
    let (nanos, len) = super::fraction(&b[at..])?;
    at += len;
    let offset = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let h = two_digits(*b.get(at + 1)?, *b.get(at + 2)?)?;
            let (m, len) = if b.get(at + 3) == Some(&b':') {
                (two_digits(*b.get(at + 4)?, *b.get(at + 5)?)?, 6)
            } else {
                match (b.get(at + 3), b.get(at + 4)) {
                    (Some(&m1), Some(&m2)) if m1.is_ascii_digit() => (two_digits(m1, m2)?, 5),
                    _ => (0, 3),
                }
            };
            if h > 23 || m > 59 {
                return None;
            }
            at += len;
            let secs = (h * 3600 + m * 60) as i32;
            Some(if sign == b'-' { -secs } else { secs })
        }
        _ => None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    // Seconds must be 0-59: no leap second (`:60`), as RFC 5424 says.
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some((
        Stamp {
            local: date.and_time(time),
            offset,
        },
        at,
    ))
}

/// Writes a record as an RFC 5424 message: the inverse of parsing, for tests
/// and for forwarding.
///
/// `ts` is written in UTC with as many fraction digits as it needs (0, 3, 6
/// or 9); missing facility and severity are written as `user.notice`; a
/// missing or empty header value is `-`, and spaces in header values become
/// `_`. The record's [`StructuredData`] is the STRUCTURED-DATA; a record
/// without it that has a `fields.sd` object of objects (one that did not come
/// from syslog) has that written instead, arrays as repeated parameters and
/// other non-string values as their JSON text. Other fields are not written. A byte order mark
/// starts MSG when it is not plain ASCII.
pub fn format(record: &Record) -> String {
    let facility = record.facility.filter(|f| (0..24).contains(f)).unwrap_or(1);
    let severity = record.severity.filter(|s| (0..8).contains(s)).unwrap_or(5);
    let mut out = String::with_capacity(64 + record.message.len());
    let _ = write!(out, "<{}>1 ", facility * 8 + severity);
    let digits = match record.ts.nanosecond() % 1_000_000_000 {
        0 => SecondsFormat::Secs,
        n if n % 1_000_000 == 0 => SecondsFormat::Millis,
        n if n % 1_000 == 0 => SecondsFormat::Micros,
        _ => SecondsFormat::Nanos,
    };
    out.push_str(&record.ts.to_rfc3339_opts(digits, true));
    for value in [&record.host, &record.app, &record.procid, &record.msgid] {
        out.push(' ');
        match value.as_deref() {
            None | Some("") => out.push('-'),
            Some(v) => out.extend(v.chars().map(|c| if c == ' ' { '_' } else { c })),
        }
    }
    out.push(' ');
    match (&record.sd, record.fields.get("sd")) {
        (Some(sd), _) if !sd.is_empty() => {
            for (id, params) in sd.elements() {
                out.push('[');
                out.push_str(id);
                for (name, value) in params {
                    write_param(&mut out, name, value);
                }
                out.push(']');
            }
        }
        (None, Some(Value::Object(sd))) if !sd.is_empty() => {
            for (id, params) in sd {
                out.push('[');
                out.push_str(id);
                if let Value::Object(params) = params {
                    for (name, value) in params {
                        match value {
                            Value::Array(values) => {
                                for v in values {
                                    write_param(&mut out, name, &param_text(v));
                                }
                            }
                            v => write_param(&mut out, name, &param_text(v)),
                        }
                    }
                }
                out.push(']');
            }
        }
        _ => out.push('-'),
    }
    if !record.message.is_empty() {
        out.push(' ');
        if !record.message.is_ascii() {
            out.push(BOM);
        }
        out.push_str(&record.message);
    }
    out
}

/// A JSON value as a PARAM-VALUE: a string as it is, anything else its JSON text.
fn param_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Writes ` name="value"`, escaping `"`, `\` and `]`.
fn write_param(out: &mut String, name: &str, text: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
#[path = "rfc5424_tests.rs"]
mod tests;
