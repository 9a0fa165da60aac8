//! The log record as it travels between actors, and the batch that carries it.
//!
//! A [`Record`] is already validated and sanitised: every text field is valid UTF-8
//! without NUL bytes (PostgreSQL `text` and `jsonb` hold neither), so the writer
//! can encode it without checks and PostgreSQL never refuses it for its encoding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod sd;

pub use sd::StructuredData;

/// The escape that produces a NUL inside a JSON string. JSON forbids raw
/// control characters in strings and requires a lowercase `u`, so a record
/// whose JSON text lacks this sequence cannot contain NUL and skips the scrub.
pub const JSON_NUL_ESCAPE: &str = "\\u0000";

/// The replacement for what PostgreSQL text cannot hold (NUL, invalid UTF-8).
pub const REPLACEMENT: char = '\u{FFFD}';

/// Longest `host`, `app`, `procid` or `msgid`, from any source. These are names,
/// not messages, and `host` is in a btree index, whose entries PostgreSQL caps at
/// about 2.7 kB: a longer value would have the row refused.
pub const MAX_NAME_BYTES: usize = 1024;

/// One log record, with the columns of `chute.logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the event happened, as the sender says (or the time of receipt).
    pub ts: DateTime<Utc>,
    /// When chute received it; lets operators see sender clock skew and delay.
    pub received_at: DateTime<Utc>,
    /// Who the record belongs to; part of the stream identity used for sharding.
    pub tenant: String,
    pub host: Option<String>,
    pub app: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// Syslog severity, 0 (emerg) to 7 (debug).
    pub severity: Option<i16>,
    /// Syslog facility, 0 (kern) to 23 (local7).
    pub facility: Option<i16>,
    pub message: String,
    /// Everything else the sender gave, as a JSON object (`jsonb`).
    pub fields: Map<String, Value>,
    /// RFC 5424 STRUCTURED-DATA, stored as `fields.sd` (see
    /// [`crate::sources::syslog::rfc5424`]). Kept apart from `fields` until the record is
    /// encoded, so the syslog path never builds a JSON tree for it; `fields` then
    /// has no `sd` key of its own. Encoded rows hold it in `fields`, which is where
    /// a decoded record has it, and where a serialised record has it not at all.
    #[serde(skip)]
    pub sd: Option<StructuredData>,
}

/// Replaces NUL bytes with U+FFFD in place. Returns how many were replaced.
///
/// Invalid UTF-8 never reaches a `String`; the decoders use
/// [`String::from_utf8_lossy`] and count the replacement through [`lossy_utf8`].
pub fn scrub_nul(s: &mut String) -> usize {
    if !s.as_bytes().contains(&0) {
        return 0;
    }
    let n = s.bytes().filter(|&b| b == 0).count();
    *s = s.replace('\0', "\u{FFFD}");
    n
}

/// Decodes bytes as UTF-8, replacing invalid sequences with U+FFFD.
/// Returns the text and whether anything was replaced.
pub fn lossy_utf8(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    }
}

/// Replaces NUL in every string (keys included) of a JSON value. Returns the count.
pub fn scrub_json(v: &mut Value) -> usize {
    match v {
        Value::String(s) => scrub_nul(s),
        Value::Array(a) => a.iter_mut().map(scrub_json).sum(),
        Value::Object(m) => scrub_map(m),
        _ => 0,
    }
}

/// Replaces NUL in the keys and values of a JSON object. Returns the count.
pub fn scrub_map(m: &mut Map<String, Value>) -> usize {
    let mut n = 0;
    if m.keys().any(|k| k.contains('\0')) {
        let old = std::mem::take(m);
        for (mut k, v) in old {
            n += scrub_nul(&mut k);
            m.insert(k, v);
        }
    }
    n + m.values_mut().map(scrub_json).sum::<usize>()
}

impl Record {
    /// Replaces NUL bytes in every text column and in `fields`. Returns the count.
    pub fn scrub(&mut self) -> usize {
        let mut n = scrub_nul(&mut self.tenant) + scrub_nul(&mut self.message);
        for s in [
            &mut self.host,
            &mut self.app,
            &mut self.procid,
            &mut self.msgid,
        ]
        .into_iter()
        .flatten()
        {
            n += scrub_nul(s);
        }
        n + scrub_map(&mut self.fields)
    }
}

/// Syslog facility names, index = numeric value (RFC 5424 §6.2.1).
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Parses a severity name (case-insensitive, with the common aliases).
pub fn severity_from_name(name: &str) -> Option<i16> {
    let n = name.to_ascii_lowercase();
    let v = match n.as_str() {
        "emerg" | "emergency" | "panic" => 0,
        "alert" => 1,
        "crit" | "critical" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" | "informational" => 6,
        "debug" => 7,
        _ => return None,
    };
    Some(v)
}

/// A level name as agents write it (`level=`, `log.level`, `severity_text`) as a
/// syslog severity: the syslog names, and `fatal` → 2 (crit), `trace` → 7
/// (debug).
pub fn level_severity(level: &str) -> Option<i16> {
    severity_from_name(level).or_else(|| match level.to_ascii_lowercase().as_str() {
        "fatal" => Some(2),
        "trace" => Some(7),
        _ => None,
    })
}

/// Parses a facility name (case-insensitive, with the common aliases).
pub fn facility_from_name(name: &str) -> Option<i16> {
    let n = name.to_ascii_lowercase();
    let n = match n.as_str() {
        "auth2" | "audit" | "log_audit" => "security",
        "clock" | "cron2" => "solaris-cron",
        "log_alert" | "alert" => "console",
        other => {
            return FACILITIES
                .iter()
                .position(|f| *f == other)
                .map(|p| p as i16)
        }
    };
    FACILITIES.iter().position(|f| *f == n).map(|p| p as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_replaced_everywhere_and_counted() {
        let mut v: Value = serde_json::json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}]});
        assert_eq!(scrub_json(&mut v), 3);
        assert_eq!(
            v,
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}y", {"k": "\u{FFFD}"}]})
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_and_reported() {
        assert_eq!(lossy_utf8(b"ok"), ("ok".to_owned(), false));
        assert_eq!(lossy_utf8(b"a\xffb"), ("a\u{FFFD}b".to_owned(), true));
    }

    #[test]
    fn severity_and_facility_names_map_to_numbers() {
        assert_eq!(severity_from_name("ERROR"), Some(3));
        assert_eq!(severity_from_name("warn"), Some(4));
        assert_eq!(severity_from_name("loud"), None);
        assert_eq!(facility_from_name("local7"), Some(23));
        assert_eq!(facility_from_name("authpriv"), Some(10));
        assert_eq!(facility_from_name("nope"), None);
    }
}
