//! Syslog messages → [`Record`]s: RFC 5424, RFC 3164 as senders really write
//! it, and the framing of stream transports (RFC 6587).
//!
//! Every message becomes a record. A message is never dropped for its form:
//! what cannot be read is stored whole, marked, and counted.
//!
//! # Formats
//!
//! Each listener has a `format`:
//!
//! - `auto` (the default): a message whose PRI is followed by `1 ` (VERSION 1
//!   and a space) is read as RFC 5424, every other one as RFC 3164.
//! - `rfc5424`: every message is read as RFC 5424. One without `1 ` after the
//!   PRI is read by the RFC 3164 rules instead and marked malformed
//!   (`parse_error`: `rfc5424: no VERSION 1 after PRI`).
//! - `rfc3164`: every message is read by the RFC 3164 rules.
//!
//! The rules of each format are in [`rfc5424`] and [`rfc3164`].
//!
//! # Columns
//!
//! | column | RFC 5424 | RFC 3164 |
//! |---|---|---|
//! | `ts` | TIMESTAMP, any offset, fractions kept to the nanosecond; `-` → time of receipt | the time stamp, in the listener's `timezone` unless it carries an offset, with the year guessed; none → time of receipt |
//! | `host` | HOSTNAME; `-` → the sender's host name, when the listener knows it | HOSTNAME when there is one; otherwise the sender's host name, when the listener knows it |
//! | `app` | APP-NAME (`-` → none) | the TAG without its `[pid]` |
//! | `procid` | PROCID (`-` → none) | the pid in the TAG's brackets |
//! | `msgid` | MSGID (`-` → none) | none |
//! | `facility`, `severity` | PRI / 8 and PRI % 8 | the same |
//! | `message` | MSG, without its UTF-8 byte order mark | the text after the TAG |
//! | `fields.sd` | STRUCTURED-DATA (see [`rfc5424`]) | none |
//!
//! # Malformed messages
//!
//! A message without a PRI, or with a PRI over 191, is stored whole as the
//! message with the PRI 13 of RFC 3164 §4.3.3 (facility `user`, severity
//! `notice`), the time of receipt as `ts`, and the sender's host name.
//! An RFC 5424 message whose header breaks off or has a field that cannot be
//! read keeps the fields before that point, and the text from that point on is
//! the message (see [`rfc5424`]). Either way the record gets
//! `fields.parse_error`, a short reason such as `PRI over 191` or
//! `rfc5424: invalid TIMESTAMP`, and is counted as malformed.
//!
//! # Size, encoding, delimiters
//!
//! - Trailing LF, CR and NUL bytes are removed first (UDP senders end
//!   datagrams with `\n`, `\r\n` or, like Python's `SysLogHandler`, `\0`).
//! - A message longer than the listener's `max_message_bytes` (default
//!   64 KiB, counted in received bytes) is cut to that length, at a UTF-8
//!   character boundary, and then parsed; the record gets
//!   `fields.truncated = true`. A cut can break an RFC 5424 header or
//!   STRUCTURED-DATA; what follows is then as for a malformed message.
//! - HOSTNAME, APP-NAME (or TAG), PROCID and MSGID longer than 1024 bytes
//!   (`record::MAX_NAME_BYTES`, as for HTTP records) are cut to it, and the
//!   record is marked `fields.truncated`: `host` is indexed, and PostgreSQL
//!   refuses index entries over about 2.7 kB.
//! - PostgreSQL text holds neither NUL nor invalid UTF-8, yet neither is a
//!   reason to lose a message: invalid UTF-8 sequences and NUL bytes anywhere
//!   are replaced with U+FFFD (�) and counted.
//!
//! # Stream transports
//!
//! TCP, TLS and Unix-stream connections carry many messages; [`framing`]
//! splits them (octet counting or LF / CRLF / NUL delimiters, chosen per
//! connection from its first byte). Each frame is then parsed as above.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

pub use crate::config::syslog::{Format, Timezone, TimezoneError};
use crate::record::{lossy_utf8, Record, StructuredData, MAX_NAME_BYTES};

pub mod clients;
pub mod framing;
pub mod listener;
pub mod rfc3164;
pub mod rfc5424;

/// Reads an optional fraction of a second (`.` and 1 or more digits, at most 9
/// kept) at the start of `b`: the nanoseconds and the bytes taken. `None` for a
/// `.` without digits.
pub(crate) fn fraction(b: &[u8]) -> Option<(u32, usize)> {
    if b.first() != Some(&b'.') {
        return Some((0, 0));
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let nanos = b[1..1 + digits]
        .iter()
        .take(9)
        .enumerate()
        .map(|(k, d)| u32::from(d - b'0') * 10u32.pow(8 - k as u32))
        .sum();
    Some((nanos, 1 + digits))
}

/// The default for [`Origin::max_message_bytes`]: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The PRI of a message stored whole: `user.notice` (RFC 3164 §4.3.3).
const FALLBACK_PRI: u8 = 13;

/// `local` as the time of a clock `offset_secs` ahead of UTC.
pub(crate) fn with_offset(local: NaiveDateTime, offset_secs: i32) -> Option<DateTime<Utc>> {
    local
        .checked_sub_signed(chrono::Duration::seconds(i64::from(offset_secs)))
        .map(|t| t.and_utc())
}

/// The value of two ASCII digits.
pub(crate) fn two_digits(a: u8, b: u8) -> Option<u32> {
    if a.is_ascii_digit() && b.is_ascii_digit() {
        Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
    } else {
        None
    }
}

/// What the listener knows about where a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// When the message arrived: every record's `received_at`, and the `ts`
    /// of messages that carry none.
    pub received_at: DateTime<Utc>,
    /// The tenant the listener's records belong to.
    pub tenant: &'a str,
    /// The format the listener expects.
    pub format: Format,
    /// The zone of RFC 3164 time stamps that carry no offset.
    pub timezone: &'a Timezone,
    /// Longer messages are cut to this many bytes
    /// ([`DEFAULT_MAX_MESSAGE_BYTES`] by default).
    pub max_message_bytes: usize,
    /// The host name to store when the message carries none (for example the
    /// sender's address); `None` leaves `host` empty in that case.
    pub peer_host: Option<&'a str>,
}

/// One parsed message: the record to store and what had to be done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The record, always produced.
    pub record: Record,
    /// What was wrong with the message, for the metrics.
    pub flags: Flags,
}

/// What was wrong with a message. None of it stops it from being stored; each
/// flag is counted by the listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// The message is not valid in its format (see `fields.parse_error`).
    pub malformed: bool,
    /// The message was cut to the size limit (`fields.truncated`).
    pub truncated: bool,
    /// Invalid UTF-8 was replaced with U+FFFD.
    pub invalid_utf8: bool,
    /// NUL bytes were replaced with U+FFFD.
    pub nul_replaced: bool,
}

impl Parsed {
    /// Marks the record as cut to the size limit: `fields.truncated = true`
    /// and [`Flags::truncated`]. For frames that [`framing::Framer`] had to
    /// cut ([`framing::Frame::truncated`]), which `parse` cannot know about.
    pub fn mark_truncated(&mut self) {
        self.flags.truncated = true;
        self.record
            .fields
            .insert("truncated".to_owned(), Value::Bool(true));
    }
}

/// What the format parsers found in a message, borrowed from its text.
#[derive(Debug, Default)]
pub(crate) struct Parts<'t> {
    pub(crate) ts: Option<DateTime<Utc>>,
    pub(crate) host: Option<&'t str>,
    pub(crate) app: Option<&'t str>,
    pub(crate) procid: Option<&'t str>,
    pub(crate) msgid: Option<&'t str>,
    pub(crate) message: &'t str,
    /// RFC 5424 STRUCTURED-DATA, stored as `fields.sd`.
    pub(crate) sd: Option<StructuredData>,
    /// Why the message is malformed, when it is.
    pub(crate) error: Option<&'static str>,
}

/// Parses one whole message: one UDP datagram, or one frame from a stream
/// (the rules are in the [module docs](self)).
///
/// Never fails: what parses as neither format is stored whole as the message
/// with PRI 13 (`user.notice`), `fields.parse_error` set to a short reason,
/// and [`Flags::malformed`].
pub fn parse(msg: &[u8], origin: &Origin) -> Parsed {
    let msg = trim_end(msg);
    let (msg, truncated) = cut(msg, origin.max_message_bytes);
    let (text, invalid_utf8) = match std::str::from_utf8(msg) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => {
            let (s, replaced) = lossy_utf8(msg);
            (Cow::Owned(s), replaced)
        }
    };
    let (pri, parts) = match split_pri(&text) {
        Ok((pri, rest)) => (pri, parse_after_pri(rest, origin)),
        Err(reason) => (
            FALLBACK_PRI,
            Parts {
                message: &text,
                error: Some(reason),
                ..Parts::default()
            },
        ),
    };

    let mut fields = Map::new();
    if let Some(reason) = parts.error {
        fields.insert("parse_error".to_owned(), Value::String(reason.to_owned()));
    }
    if truncated {
        fields.insert("truncated".to_owned(), Value::Bool(true));
    }
    let mut record = Record {
        ts: parts.ts.unwrap_or(origin.received_at),
        received_at: origin.received_at,
        tenant: origin.tenant.to_owned(),
        host: parts.host.or(origin.peer_host).map(str::to_owned),
        app: parts.app.map(str::to_owned),
        procid: parts.procid.map(str::to_owned),
        msgid: parts.msgid.map(str::to_owned),
        severity: Some(i16::from(pri % 8)),
        facility: Some(i16::from(pri / 8)),
        message: parts.message.to_owned(),
        fields,
        sd: parts.sd,
    };
    let nul_replaced =
        record.scrub() > 0 || record.sd.as_ref().is_some_and(|sd| sd.nul_replaced() > 0);
    // After scrubbing (a NUL becomes three bytes): names longer than a record may
    // hold are cut, like a long message.
    let names_cut = cut_names(&mut record);
    if names_cut && !truncated {
        record
            .fields
            .insert("truncated".to_owned(), Value::Bool(true));
    }
    let truncated = truncated || names_cut;
    Parsed {
        record,
        flags: Flags {
            malformed: parts.error.is_some(),
            truncated,
            invalid_utf8,
            nul_replaced,
        },
    }
}

/// Chooses the format for what follows the PRI.
fn parse_after_pri<'t>(rest: &'t str, origin: &Origin) -> Parts<'t> {
    let version_1 = rest.starts_with("1 ");
    match origin.format {
        Format::Auto if version_1 => rfc5424::parse_after_pri(&rest[2..]),
        Format::Rfc5424 if version_1 || rest == "1" => {
            rfc5424::parse_after_pri(rest.get(2..).unwrap_or(""))
        }
        Format::Rfc5424 => {
            let mut parts = rfc3164::parse_after_pri(rest, origin);
            parts.error = Some("rfc5424: no VERSION 1 after PRI");
            parts
        }
        Format::Auto | Format::Rfc3164 => rfc3164::parse_after_pri(rest, origin),
    }
}

/// Splits `<PRI>` off the text: the PRI value (0-191) and what follows.
fn split_pri(text: &str) -> Result<(u8, &str), &'static str> {
    let b = text.as_bytes();
    if b.first() != Some(&b'<') {
        return Err("no PRI");
    }
    let digits = b[1..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > 3 || b.get(1 + digits) != Some(&b'>') {
        return Err("invalid PRI");
    }
    let value = b[1..1 + digits]
        .iter()
        .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
    match u8::try_from(value) {
        Ok(pri) if pri <= 191 => Ok((pri, &text[digits + 2..])),
        _ => Err("PRI over 191"),
    }
}

/// Cuts `host`, `app`, `procid` and `msgid` to [`MAX_NAME_BYTES`] at a character
/// boundary; whether any was cut.
fn cut_names(record: &mut Record) -> bool {
    let mut any = false;
    for name in [
        &mut record.host,
        &mut record.app,
        &mut record.procid,
        &mut record.msgid,
    ]
    .into_iter()
    .flatten()
    {
        if name.len() > MAX_NAME_BYTES {
            let mut at = MAX_NAME_BYTES;
            while !name.is_char_boundary(at) {
                at -= 1;
            }
            name.truncate(at);
            any = true;
        }
    }
    any
}

/// Removes trailing LF, CR and NUL bytes.
fn trim_end(msg: &[u8]) -> &[u8] {
    let keep = msg
        .iter()
        .rposition(|&b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    &msg[..keep]
}

/// Cuts `msg` to at most `max` bytes, not inside a UTF-8 character (unless
/// the first character alone is longer than `max`). Returns whether it cut.
pub(crate) fn cut(msg: &[u8], max: usize) -> (&[u8], bool) {
    if msg.len() <= max {
        return (msg, false);
    }
    (&msg[..char_boundary(msg, max)], true)
}

/// The largest length ≤ `max` (and < `bytes.len()`) at which `bytes` can be
/// cut without splitting a UTF-8 character; `max` itself when no such
/// length above 0 exists within the 3 bytes before it.
pub(crate) fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut at = max;
    // At most 3 continuation bytes follow the lead byte of a UTF-8 character.
    while at > 0 && max - at < 3 && bytes.get(at).is_some_and(|&b| b & 0xC0 == 0x80) {
        at -= 1;
    }
    if at == 0 || bytes.get(at).is_some_and(|&b| b & 0xC0 == 0x80) {
        max
    } else {
        at
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::FixedOffset;

    pub(crate) const UTC: Timezone = Timezone::Utc;

    /// An origin received at `received_at` (RFC 3339) for tenant `t1`.
    pub(crate) fn origin(received_at: &str, format: Format) -> Origin<'static> {
        Origin {
            received_at: DateTime::parse_from_rfc3339(received_at)
                .expect("test time")
                .with_timezone(&Utc),
            tenant: "t1",
            format,
            timezone: &UTC,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            peer_host: None,
        }
    }

    pub(crate) fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn auto() -> Origin<'static> {
        origin("2026-11-26T12:00:00Z", Format::Auto)
    }

    #[test]
    fn version_1_after_pri_is_read_as_rfc5424_and_anything_else_as_rfc3164() {
        let p = parse(b"<14>1 - host app - - - hello", &auto());
        assert_eq!(p.record.app.as_deref(), Some("app"));
        assert_eq!(p.record.message, "hello");
        let p = parse(b"<14>Nov 26 11:00:00 host app: hello", &auto());
        assert_eq!(p.record.app.as_deref(), Some("app"));
        assert_eq!(p.record.ts, at("2026-11-26T11:00:00Z"));
        let p = parse(b"<14>1x", &auto());
        assert_eq!(p.record.message, "1x");
        assert!(!p.flags.malformed);
    }

    #[test]
    fn pri_gives_facility_and_severity() {
        let p = parse(b"<165>hello", &auto());
        assert_eq!(p.record.facility, Some(20));
        assert_eq!(p.record.severity, Some(5));
        let p = parse(b"<0>hello", &auto());
        assert_eq!((p.record.facility, p.record.severity), (Some(0), Some(0)));
        let p = parse(b"<191>hello", &auto());
        assert_eq!((p.record.facility, p.record.severity), (Some(23), Some(7)));
    }

    #[test]
    fn message_without_pri_is_stored_whole_as_user_notice() {
        let mut o = auto();
        o.peer_host = Some("10.0.0.99");
        let p = parse(b"Use the BFG!", &o);
        assert!(p.flags.malformed);
        assert_eq!(p.record.message, "Use the BFG!");
        assert_eq!((p.record.facility, p.record.severity), (Some(1), Some(5)));
        assert_eq!(p.record.ts, o.received_at);
        assert_eq!(p.record.host.as_deref(), Some("10.0.0.99"));
        assert_eq!(p.record.fields["parse_error"], "no PRI");
    }

    #[test]
    fn pri_over_191_or_broken_is_stored_whole() {
        for (msg, reason) in [
            (&b"<192>Oct 11 22:14:15 host app: x"[..], "PRI over 191"),
            (b"<999>x", "PRI over 191"),
            (b"<1000>x", "invalid PRI"),
            (b"<>x", "invalid PRI"),
            (b"<12", "invalid PRI"),
            (b"<a>x", "invalid PRI"),
            (b"", "no PRI"),
        ] {
            let p = parse(msg, &auto());
            assert!(p.flags.malformed, "{msg:?}");
            assert_eq!(p.record.message.as_bytes(), msg);
            assert_eq!(p.record.fields["parse_error"], reason, "{msg:?}");
            assert_eq!(p.record.severity, Some(5));
            assert_eq!(p.record.facility, Some(1));
        }
    }

    #[test]
    fn pri_with_leading_zeros_is_accepted() {
        let p = parse(b"<013>hello", &auto());
        assert_eq!(p.record.severity, Some(5));
        assert!(!p.flags.malformed);
    }

    #[test]
    fn trailing_newlines_and_nuls_are_trimmed() {
        for msg in [
            &b"<14>hello\n"[..],
            b"<14>hello\r\n",
            b"<14>hello\x00",
            b"<14>hello\n\x00",
        ] {
            let p = parse(msg, &auto());
            assert_eq!(p.record.message, "hello");
            assert_eq!(p.flags, Flags::default());
        }
    }

    #[test]
    fn nul_inside_a_message_is_replaced_and_flagged() {
        let p = parse(b"<14>app: a\x00b", &auto());
        assert_eq!(p.record.message, "a\u{FFFD}b");
        assert!(p.flags.nul_replaced);
        assert!(!p.flags.malformed);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let p = parse(b"<14>app: caf\xe9", &auto());
        assert_eq!(p.record.message, "caf\u{FFFD}");
        assert!(p.flags.invalid_utf8);
        let p = parse(b"<14>1 - h\xff a - - - m", &auto());
        assert_eq!(p.record.host.as_deref(), Some("h\u{FFFD}"));
        assert!(p.flags.invalid_utf8);
    }

    #[test]
    fn long_message_is_cut_at_a_character_boundary_and_marked() {
        let mut o = auto();
        o.max_message_bytes = 12;
        // "<14>app: é…": 'é' is 2 bytes, at 9-10; 'ü' at 11-12 would be split.
        let p = parse("<14>app: éüx".as_bytes(), &o);
        assert_eq!(p.record.message, "é");
        assert!(p.flags.truncated);
        assert_eq!(p.record.fields["truncated"], true);
        assert!(!p.flags.invalid_utf8);
        // Exactly at the limit: not cut.
        let p = parse(b"<14>app: abc", &o);
        assert_eq!(p.record.message, "abc");
        assert!(!p.flags.truncated);
        assert!(!p.record.fields.contains_key("truncated"));
    }

    #[test]
    fn names_longer_than_a_record_holds_are_cut_and_marked() {
        let o = origin("2026-11-26T12:00:00Z", Format::Auto);
        let long = format!("{}é", "h".repeat(1023));
        let msg = format!("<14>1 - {long} {} - - - hello", "a".repeat(3000));
        let p = parse(msg.as_bytes(), &o);
        assert_eq!(
            p.record.host.as_deref(),
            Some(&"h".repeat(1023)[..]),
            "cut before the é"
        );
        assert_eq!(p.record.app.as_ref().map(String::len), Some(MAX_NAME_BYTES));
        assert_eq!(p.record.message, "hello");
        assert!(p.flags.truncated && !p.flags.malformed);
        assert_eq!(p.record.fields["truncated"], true);
        // NUL bytes become three bytes each: the cut comes after.
        let nul = format!("<14>1 - {} app - - - x", "\0".repeat(500));
        let p = parse(nul.as_bytes(), &o);
        assert!(p
            .record
            .host
            .as_ref()
            .is_some_and(|h| h.len() <= MAX_NAME_BYTES));
        assert!(p.flags.truncated && p.flags.nul_replaced);
    }

    #[test]
    fn limit_inside_the_first_character_still_cuts_to_the_limit() {
        assert_eq!(cut("é".as_bytes(), 1), (&b"\xc3"[..], true));
        assert_eq!(cut(b"abc", 0), (&b""[..], true));
        assert_eq!(char_boundary("aé".as_bytes(), 2), 1);
        assert_eq!(char_boundary("a😀".as_bytes(), 4), 1);
        assert_eq!(char_boundary("😀😀".as_bytes(), 6), 4);
    }

    #[test]
    fn mark_truncated_sets_the_field_and_the_flag() {
        let mut p = parse(b"<14>hello", &auto());
        p.mark_truncated();
        assert!(p.flags.truncated);
        assert_eq!(p.record.fields["truncated"], true);
    }

    #[test]
    fn tenant_and_received_at_come_from_the_origin() {
        let p = parse(b"<14>hello", &auto());
        assert_eq!(p.record.tenant, "t1");
        assert_eq!(p.record.received_at, at("2026-11-26T12:00:00Z"));
        assert_eq!(p.record.ts, at("2026-11-26T12:00:00Z"));
    }

    #[test]
    fn forced_rfc5424_reads_an_rfc3164_message_by_its_rules_and_marks_it() {
        let o = origin("2026-11-26T12:00:00Z", Format::Rfc5424);
        let p = parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", &o);
        assert!(p.flags.malformed);
        assert_eq!(
            p.record.fields["parse_error"],
            "rfc5424: no VERSION 1 after PRI"
        );
        assert_eq!(p.record.host.as_deref(), Some("mymachine"));
        assert_eq!(p.record.app.as_deref(), Some("su"));
        assert_eq!(p.record.message, "'su root' failed");
    }

    #[test]
    fn forced_rfc3164_reads_version_1_as_text() {
        let o = origin("2026-11-26T12:00:00Z", Format::Rfc3164);
        let p = parse(b"<14>1 - host app - - - hello", &o);
        assert_eq!(p.record.message, "1 - host app - - - hello");
        assert!(!p.flags.malformed);
    }

    #[test]
    fn timezones_are_read_from_their_names() {
        assert_eq!("UTC".parse(), Ok(Timezone::Utc));
        assert_eq!("local".parse(), Ok(Timezone::Local));
        let plus2 = Timezone::Fixed(FixedOffset::east_opt(7200).expect("offset"));
        assert_eq!("+02:00".parse(), Ok(plus2));
        assert_eq!("+0200".parse(), Ok(plus2));
        assert_eq!("+02".parse(), Ok(plus2));
        let minus = Timezone::Fixed(FixedOffset::west_opt(5 * 3600 + 1800).expect("offset"));
        assert_eq!("-05:30".parse(), Ok(minus));
        assert_eq!(
            "Europe/Berlin".parse(),
            Ok(Timezone::Named(chrono_tz::Europe::Berlin))
        );
        assert!("Mars/Olympus".parse::<Timezone>().is_err());
        assert!("+24:00".parse::<Timezone>().is_err());
        assert_eq!(plus2.to_string(), "+02:00");
        assert_eq!(
            Timezone::Named(chrono_tz::Europe::Berlin).to_string(),
            "Europe/Berlin"
        );
    }

    #[test]
    fn timezone_and_format_deserialise_from_config_strings() {
        let tz: Timezone = serde_json::from_str("\"Europe/Berlin\"").expect("tz");
        assert_eq!(tz, Timezone::Named(chrono_tz::Europe::Berlin));
        let f: Format = serde_json::from_str("\"rfc3164\"").expect("format");
        assert_eq!(f, Format::Rfc3164);
        assert!(serde_json::from_str::<Timezone>("\"nowhere\"").is_err());
    }

    #[test]
    fn named_zone_follows_daylight_saving_time() {
        let berlin = Timezone::Named(chrono_tz::Europe::Berlin);
        let summer = NaiveDateTime::parse_from_str("2026-07-01 12:00:00", "%F %T").expect("t");
        let winter = NaiveDateTime::parse_from_str("2026-01-01 12:00:00", "%F %T").expect("t");
        assert_eq!(berlin.to_utc(summer), Some(at("2026-07-01T10:00:00Z")));
        assert_eq!(berlin.to_utc(winter), Some(at("2026-01-01T11:00:00Z")));
        // 02:30 on 2026-03-29 does not exist in Berlin (clocks go 02:00 → 03:00).
        let gap = NaiveDateTime::parse_from_str("2026-03-29 02:30:00", "%F %T").expect("t");
        let t = berlin.to_utc(gap).expect("gap resolves");
        assert!(t >= at("2026-03-29T00:30:00Z") && t <= at("2026-03-29T01:30:00Z"));
        // 02:30 on 2026-10-25 happens twice: the first one counts.
        let twice = NaiveDateTime::parse_from_str("2026-10-25 02:30:00", "%F %T").expect("t");
        assert_eq!(berlin.to_utc(twice), Some(at("2026-10-25T00:30:00Z")));
    }
}
