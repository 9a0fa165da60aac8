//! RFC 3164 messages, as senders really write them.
//!
//! The full form is `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, but each
//! part after the PRI may be missing: glibc's `syslog()` over `/dev/log`
//! writes no HOSTNAME, Python's `SysLogHandler` writes neither a time stamp
//! nor a HOSTNAME (`<14>myapp: text` or just `<14>text`). Nothing is
//! required after the PRI, and nothing after it makes a message malformed.
//!
//! # Time stamp
//!
//! Read right after the PRI, in one of these forms:
//!
//! - `Mmm dd hh:mm:ss`, the day space-padded (`Feb  5`) or not (`Feb 5`,
//!   `Feb 05`), month names in any case, optionally with a year after the day
//!   (`Feb  5 2026 17:32:18`) and fractions of a second (`17:32:18.123`).
//!   Without a year, the year is the one that puts the time nearest to the
//!   time of receipt, so a `Dec 31 23:59:59` received on January 1st is from
//!   the year before, and a `Jan  1 00:00:01` from a clock running ahead,
//!   received on December 31st, is from the year after.
//! - RFC 3339, as rsyslog's high-precision format writes it:
//!   `2026-11-26T10:00:00.123456+01:00`.
//!
//! A stamp without an offset is read in the listener's `timezone`. A stamp
//! that is not one of these forms, or names a day that does not exist (such
//! as `Feb 30`), is no time stamp: the time of receipt is used and the text
//! stays in the message, as RFC 3164 §4.3.2 says.
//!
//! # HOSTNAME and TAG
//!
//! After the time stamp comes either a HOSTNAME or, from senders that write
//! none, the TAG. The word after the time stamp is taken to be the TAG when
//! it has the form of one (below); otherwise it is the HOSTNAME when it is
//! followed by a space and consists only of letters, digits and `.-_:%`
//! (host names, IPv4 and IPv6 addresses). Without a time stamp there is no
//! HOSTNAME.
//!
//! A TAG is a word made of any characters but space, `[`, `]` and `:`, not
//! only digits, followed by
//!
//! - `[PID]` and then `:`, a space, or the end (`CRON[123]:`,
//!   `sshd(pam_unix)[19939]:`, `postfix/smtpd[99]:`, and without the colon
//!   `sshd[42] message`), or
//! - `:` and then a space or the end (`kernel:`, `su:`).
//!
//! `app` is the TAG without the `[PID]`, `procid` the PID. One space after
//! the TAG is dropped; the rest is the message. A word that has neither form
//! is part of the message: `<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!` has
//! HOSTNAME `10.0.0.99`, no TAG, and the message `Use the BFG!`.
//!
//! The rules guess, since the format itself is ambiguous: a message that
//! starts with a word and a colon (`<14>Error: disk full` from Python) gets
//! that word as its `app`, and a host-less message with no TAG after a time
//! stamp (`<14>Feb  5 17:32:18 hello world`) has `hello` as its HOSTNAME.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};

use super::rfc5424::parse_rfc3339;
use super::{two_digits, Origin, Parts, Timezone};

/// Month abbreviations, lower case, January first.
const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses what follows `<PRI>`.
pub(crate) fn parse_after_pri<'t>(text: &'t str, origin: &Origin) -> Parts<'t> {
    let mut parts = Parts::default();
    let mut rest = text;
    if let Some((ts, len)) = timestamp(text.as_bytes(), origin) {
        parts.ts = Some(ts);
        rest = &text[len..];
        if tag(rest).is_none() {
            if let Some(sp) = rest.find(' ') {
                if is_hostname(&rest[..sp]) {
                    parts.host = Some(&rest[..sp]);
                    rest = &rest[sp + 1..];
                }
            }
        }
    }
    if let Some(t) = tag(rest) {
        parts.app = Some(t.app);
        parts.procid = t.pid;
        rest = &rest[t.len..];
    }
    parts.message = rest;
    parts
}

/// A TAG at the start of a text.
#[derive(Debug, PartialEq)]
struct Tag<'t> {
    app: &'t str,
    pid: Option<&'t str>,
    /// Bytes taken: the TAG, its colon and one space after it.
    len: usize,
}

/// The TAG at the start of `s`, when there is one (the forms are in the
/// module docs).
fn tag(s: &str) -> Option<Tag<'_>> {
    let b = s.as_bytes();
    let name = b
        .iter()
        .position(|&c| matches!(c, b' ' | b'[' | b']' | b':'))?;
    // A number is no program name (Cisco's `<189>123: *Mar  1 ...` counts
    // its messages).
    if b[..name].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut at = name;
    let mut pid = None;
    match b[at] {
        b'[' => {
            let close = at + 1 + b[at + 1..].iter().position(|&c| c == b']' || c == b' ')?;
            if b[close] != b']' {
                return None;
            }
            pid = Some(&s[at + 1..close]).filter(|p| !p.is_empty());
            at = close + 1;
            if b.get(at) == Some(&b':') {
                at += 1;
                // `app[1]:text` is still unmistakably a TAG.
                if b.get(at) != Some(&b' ') {
                    return Some(Tag {
                        app: &s[..name],
                        pid,
                        len: at,
                    });
                }
            }
        }
        b':' => at += 1,
        _ => return None,
    }
    match b.get(at) {
        None => {}
        Some(b' ') => at += 1,
        Some(_) => return None,
    }
    Some(Tag {
        app: &s[..name],
        pid,
        len: at,
    })
}

/// Whether a word can be a HOSTNAME: a host name, or an IPv4 or IPv6
/// address (with a zone).
fn is_hostname(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 255
        && word
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'%'))
}

/// The time stamp at the start of `b` and the bytes it takes, with the space
/// after it.
fn timestamp(b: &[u8], origin: &Origin) -> Option<(DateTime<Utc>, usize)> {
    let (ts, len) = if b.first()?.is_ascii_digit() {
        let (stamp, len) = parse_rfc3339(b)?;
        let ts = match stamp.offset {
            Some(_) => stamp.to_utc()?,
            None => origin.timezone.to_utc(stamp.local)?,
        };
        (ts, len)
    } else {
        bsd_timestamp(b, origin)?
    };
    match b.get(len) {
        None => Some((ts, len)),
        Some(b' ') => Some((ts, len + 1)),
        Some(_) => None,
    }
}

/// `Mmm dd [yyyy ]hh:mm:ss[.frac]` at the start of `b`.
fn bsd_timestamp(b: &[u8], origin: &Origin) -> Option<(DateTime<Utc>, usize)> {
    if b.len() < 14 || b[3] != b' ' {
        return None;
    }
    let name = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    let month = MONTHS.iter().position(|m| **m == name)? as u32 + 1;
    // The day: " d", "dd" or "d", then a space.
    let (day, mut at) = match (b[4], b[5], b[6]) {
        (b' ', d, b' ') | (d, b' ', _) if d.is_ascii_digit() => {
            (u32::from(d - b'0'), if b[4] == b' ' { 7 } else { 6 })
        }
        (d1, d2, b' ') => (two_digits(d1, d2)?, 7),
        _ => return None,
    };
    let mut year = None;
    if b.len() >= at + 5 && b[at + 4] == b' ' {
        let y = two_digits(b[at], b[at + 1])? * 100 + two_digits(b[at + 2], b[at + 3])?;
        year = Some(y as i32);
        at += 5;
    }
    if b.len() < at + 8 || b[at + 2] != b':' || b[at + 5] != b':' {
        return None;
    }
    let hour = two_digits(b[at], b[at + 1])?;
    let minute = two_digits(b[at + 3], b[at + 4])?;
    let second = two_digits(b[at + 6], b[at + 7])?;
    at += 8;
    let (nanos, len) = super::fraction(&b[at..])?;
    at += len;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let ts = match year {
        Some(y) => origin
            .timezone
            .to_utc(NaiveDate::from_ymd_opt(y, month, day)?.and_time(time))?,
        None => nearest_year(month, day, time, origin.timezone, origin.received_at)?,
    };
    Some((ts, at))
}

/// The instant of `month`-`day` `time` in `tz`, in the year that puts it
/// nearest to `received_at`; `None` when the day exists in none of the
/// years around it (February 29th in none of three ordinary years).
fn nearest_year(
    month: u32,
    day: u32,
    time: NaiveTime,
    tz: &Timezone,
    received_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let year = received_at.year();
    let mut best: Option<(i64, DateTime<Utc>)> = None;
    for y in [year, year - 1, year + 1] {
        let Some(t) =
            NaiveDate::from_ymd_opt(y, month, day).and_then(|d| tz.to_utc(d.and_time(time)))
        else {
            continue;
        };
        let distance = t.signed_duration_since(received_at).num_seconds().abs();
        if best.map_or(true, |(d, _)| distance < d) {
            best = Some((distance, t));
        }
        // Within half a year of receipt, no other year can be nearer.
        if distance < 182 * 86_400 {
            break;
        }
    }
    best.map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::syslog::tests::{at, origin};
    use crate::sources::syslog::{parse, Format, Parsed};
    use chrono::FixedOffset;

    const RECEIVED: &str = "2026-11-26T12:00:00Z";

    fn p(msg: &str) -> Parsed {
        parse(msg.as_bytes(), &origin(RECEIVED, Format::Auto))
    }

    /// ts, host, app, procid, message.
    fn cols(
        msg: &str,
    ) -> (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    ) {
        let r = p(msg);
        assert!(!r.flags.malformed, "{msg}");
        let r = r.record;
        (r.ts.to_rfc3339(), r.host, r.app, r.procid, r.message)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn rfc_example_1_with_hostname_and_tag() {
        let r = p("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert!(!r.flags.malformed);
        let r = r.record;
        assert_eq!((r.facility, r.severity), (Some(4), Some(2)));
        assert_eq!(r.ts, at("2026-10-11T22:14:15Z"));
        assert_eq!(r.host.as_deref(), Some("mymachine"));
        assert_eq!(r.app.as_deref(), Some("su"));
        assert_eq!(r.procid, None);
        assert_eq!(r.message, "'su root' failed for lonvick on /dev/pts/8");
        assert!(r.fields.is_empty());
    }

    #[test]
    fn rfc_example_2_relayed_with_a_padded_day_and_no_tag() {
        assert_eq!(
            cols("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!"),
            (
                "2027-02-05T17:32:18+00:00".to_owned(),
                s("10.0.0.99"),
                None,
                None,
                "Use the BFG!".to_owned()
            )
        );
    }

    #[test]
    fn rfc_example_3_with_a_zone_name_reads_it_as_the_hostname() {
        let r = p("<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%").record;
        assert_eq!((r.facility, r.severity), (Some(20), Some(5)));
        assert_eq!(r.ts, at("2026-08-24T05:34:00Z"));
        assert_eq!(r.host.as_deref(), Some("CST"));
        assert_eq!(r.app, None);
        assert!(r
            .message
            .starts_with("1987 mymachine myproc[10]: %% It's time"));
    }

    #[test]
    fn rfc_example_4_without_a_valid_time_stamp_is_all_message() {
        let text = "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!";
        let r = p(&format!("<0>{text}"));
        assert!(!r.flags.malformed);
        assert_eq!(r.record.ts, at(RECEIVED));
        assert_eq!(r.record.host, None);
        assert_eq!(r.record.app, None);
        assert_eq!(r.record.message, text);
        assert_eq!((r.record.facility, r.record.severity), (Some(0), Some(0)));
    }

    #[test]
    fn glibc_syslog_without_hostname() {
        assert_eq!(
            cols("<86>Nov 26 11:59:58 sshd[19939]: Accepted publickey for root"),
            (
                "2026-11-26T11:59:58+00:00".to_owned(),
                None,
                s("sshd"),
                s("19939"),
                "Accepted publickey for root".to_owned()
            )
        );
        assert_eq!(
            cols("<6>Nov 26 11:59:58 kernel: [ 12.345] usb 1-1: new device"),
            (
                "2026-11-26T11:59:58+00:00".to_owned(),
                None,
                s("kernel"),
                None,
                "[ 12.345] usb 1-1: new device".to_owned()
            )
        );
    }

    #[test]
    fn peer_host_is_used_when_the_message_has_no_hostname() {
        let mut o = origin(RECEIVED, Format::Auto);
        o.peer_host = Some("192.0.2.1");
        let r = parse(b"<86>Nov 26 11:59:58 CRON[123]: job", &o).record;
        assert_eq!(r.host.as_deref(), Some("192.0.2.1"));
        let r = parse(b"<86>Nov 26 11:59:58 web1 CRON[123]: job", &o).record;
        assert_eq!(r.host.as_deref(), Some("web1"));
    }

    #[test]
    fn python_sysloghandler_without_time_stamp_or_hostname() {
        let r = parse(b"<14>message\x00", &origin(RECEIVED, Format::Auto));
        assert_eq!(r.flags, crate::sources::syslog::Flags::default());
        assert_eq!(r.record.message, "message");
        assert_eq!(r.record.app, None);
        assert_eq!(r.record.ts, at(RECEIVED));
        assert_eq!(
            cols("<11>myapp: it broke\u{0}"),
            (
                "2026-11-26T12:00:00+00:00".to_owned(),
                None,
                s("myapp"),
                None,
                "it broke".to_owned()
            )
        );
        assert_eq!(cols("<14>hello world").4, "hello world");
    }

    #[test]
    fn tags_of_many_shapes_are_recognised() {
        for (line, app, pid, msg) in [
            (
                "sshd(pam_unix)[19939]: session opened",
                "sshd(pam_unix)",
                Some("19939"),
                "session opened",
            ),
            (
                "CRON[123]: (root) CMD (true)",
                "CRON",
                Some("123"),
                "(root) CMD (true)",
            ),
            (
                "postfix/smtpd[99]: connect from x",
                "postfix/smtpd",
                Some("99"),
                "connect from x",
            ),
            ("kernel: oops", "kernel", None, "oops"),
            (
                "systemd-logind[500]: New session",
                "systemd-logind",
                Some("500"),
                "New session",
            ),
            (
                "org.gnome.Shell.desktop[1234]: warn",
                "org.gnome.Shell.desktop",
                Some("1234"),
                "warn",
            ),
            ("app[42] no colon", "app", Some("42"), "no colon"),
            ("app[42]:tight", "app", Some("42"), "tight"),
            ("app[]: empty pid", "app", None, "empty pid"),
            ("app:", "app", None, ""),
            ("app: ", "app", None, ""),
            ("app:  two spaces", "app", None, " two spaces"),
            ("%ASA-6-302013: Built", "%ASA-6-302013", None, "Built"),
        ] {
            let (_, host, a, pr, m) = cols(&format!("<14>Nov 26 10:00:00 {line}"));
            assert_eq!(
                (host, a.as_deref(), pr.as_deref(), m.as_str()),
                (None, Some(app), pid, msg),
                "{line}"
            );
            let (_, host, a, pr, m) =
                cols(&format!("<14>Nov 26 10:00:00 web-1.example.com {line}"));
            assert_eq!(
                (host.as_deref(), a.as_deref(), pr.as_deref(), m.as_str()),
                (Some("web-1.example.com"), Some(app), pid, msg),
                "{line}"
            );
        }
    }

    #[test]
    fn words_that_are_not_tags_stay_in_the_message() {
        for line in [
            "http://example.com/ is down",
            "10:52:01 later",
            "a[1 x",
            "a]b: c",
            "[x]: y",
            ": y",
            "word",
            "app[12]x",
            "app:x",
        ] {
            let (_, host, app, _, m) = cols(&format!("<14>Nov 26 10:00:00 host {line}"));
            assert_eq!(
                (host.as_deref(), app, m.as_str()),
                (Some("host"), None, line),
                "{line}"
            );
        }
    }

    #[test]
    fn a_sequence_number_is_not_a_tag() {
        let text = "123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console";
        let r = p(&format!("<189>{text}")).record;
        assert_eq!((r.app, r.message.as_str()), (None, text));
    }

    #[test]
    fn a_lone_word_after_the_time_stamp_is_the_message() {
        let (_, host, app, _, m) = cols("<14>Nov 26 10:00:00 hello");
        assert_eq!((host, app, m.as_str()), (None, None, "hello"));
        let (_, host, _, _, m) = cols("<14>Nov 26 10:00:00 hello, world");
        assert_eq!((host, m.as_str()), (None, "hello, world"));
        let (_, host, _, _, m) = cols("<14>Nov 26 10:00:00");
        assert_eq!((host, m.as_str()), (None, ""));
    }

    #[test]
    fn ipv6_hostname_is_not_a_tag() {
        let (_, host, app, pid, m) = cols("<14>Nov 26 10:00:00 fe80::1%eth0 ntpd[7]: sync");
        assert_eq!(
            (host.as_deref(), app.as_deref(), pid.as_deref(), m.as_str()),
            (Some("fe80::1%eth0"), Some("ntpd"), Some("7"), "sync")
        );
    }

    #[test]
    fn day_may_be_space_padded_zero_padded_or_single() {
        for stamp in [
            "Feb  5 17:32:18",
            "Feb 05 17:32:18",
            "Feb 5 17:32:18",
            "feb  5 17:32:18",
            "FEB  5 17:32:18",
        ] {
            let r = p(&format!("<13>{stamp} host app: m")).record;
            assert_eq!(r.ts, at("2027-02-05T17:32:18Z"), "{stamp}");
            assert_eq!(r.host.as_deref(), Some("host"), "{stamp}");
        }
    }

    #[test]
    fn year_and_fractions_in_a_bsd_stamp_are_read() {
        let r = p("<13>Feb  5 2024 17:32:18 host app: m").record;
        assert_eq!(r.ts, at("2024-02-05T17:32:18Z"));
        let r = p("<13>Nov 26 10:00:00.123456 host app: m").record;
        assert_eq!(r.ts, at("2026-11-26T10:00:00.123456Z"));
        assert_eq!(r.host.as_deref(), Some("host"));
    }

    #[test]
    fn impossible_dates_are_no_time_stamp() {
        for text in [
            "Feb 30 10:00:00 host app: m",
            "Nov 31 10:00:00 host app: m",
            "Nov 26 24:00:00 host app: m",
            "Nov 26 10:60:00 host app: m",
            "Nov 26 10:00:60 host app: m",
            "Nov 32 10:00:00 host app: m",
            "Xyz 26 10:00:00 host app: m",
            "Nov 26 10:00:00.x host app: m",
            "Nov 26 10:00:00: host app: m",
            "Nov 26 1:00:00 host app: m",
            "Feb 29 10:00:00 host app: m",
        ] {
            let r = p(&format!("<13>{text}"));
            assert!(!r.flags.malformed, "{text}");
            assert_eq!(r.record.ts, at(RECEIVED), "{text}");
            assert_eq!(r.record.message, text, "{text}");
        }
    }

    #[test]
    fn february_29th_is_read_when_a_nearby_year_has_one() {
        let o = origin("2028-03-01T00:00:00Z", Format::Auto);
        let r = parse(b"<13>Feb 29 10:00:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2028-02-29T10:00:00Z"));
        let o = origin("2027-12-30T00:00:00Z", Format::Auto);
        let r = parse(b"<13>Feb 29 10:00:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2028-02-29T10:00:00Z"));
    }

    #[test]
    fn year_is_chosen_nearest_to_the_time_of_receipt_across_new_year() {
        let cases = [
            (
                "2027-01-01T00:00:30Z",
                "Dec 31 23:59:50",
                "2026-12-31T23:59:50Z",
            ),
            (
                "2026-12-31T23:59:50Z",
                "Jan  1 00:00:10",
                "2027-01-01T00:00:10Z",
            ),
            (
                "2026-06-15T00:00:00Z",
                "Jan  1 00:00:00",
                "2026-01-01T00:00:00Z",
            ),
            (
                "2026-06-15T00:00:00Z",
                "Dec  1 00:00:00",
                "2026-12-01T00:00:00Z",
            ),
            (
                "2026-06-15T00:00:00Z",
                "Dec 31 00:00:00",
                "2025-12-31T00:00:00Z",
            ),
            (
                "2026-11-26T12:00:00Z",
                "Feb  1 00:00:00",
                "2027-02-01T00:00:00Z",
            ),
            (
                "2026-11-26T12:00:00Z",
                "Jun  1 00:00:00",
                "2026-06-01T00:00:00Z",
            ),
            (
                "2026-11-26T12:00:00Z",
                "Apr  1 00:00:00",
                "2027-04-01T00:00:00Z",
            ),
        ];
        for (received, stamp, want) in cases {
            let r = parse(
                format!("<13>{stamp} host app: m").as_bytes(),
                &origin(received, Format::Auto),
            )
            .record;
            assert_eq!(r.ts, at(want), "{stamp} received {received}");
        }
    }

    #[test]
    fn stamps_without_zone_are_read_in_the_listener_timezone() {
        let tz = Timezone::Fixed(FixedOffset::east_opt(2 * 3600).expect("offset"));
        let mut o = origin(RECEIVED, Format::Auto);
        o.timezone = &tz;
        let r = parse(b"<13>Nov 26 10:00:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2026-11-26T08:00:00Z"));
        let r = parse(b"<13>2026-11-26T10:00:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2026-11-26T08:00:00Z"));
        // An offset in the stamp wins over the listener's zone.
        let r = parse(b"<13>2026-11-26T10:00:00-05:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2026-11-26T15:00:00Z"));
        let berlin = Timezone::Named(chrono_tz::Europe::Berlin);
        o.timezone = &berlin;
        let r = parse(b"<13>Jul  1 10:00:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2026-07-01T08:00:00Z"));
    }

    #[test]
    fn new_year_guess_uses_the_listener_timezone() {
        // 00:30 on January 1st in Berlin is 23:30 UTC on December 31st.
        let berlin = Timezone::Named(chrono_tz::Europe::Berlin);
        let mut o = origin("2026-12-31T23:30:05Z", Format::Auto);
        o.timezone = &berlin;
        let r = parse(b"<13>Jan  1 00:30:00 host app: m", &o).record;
        assert_eq!(r.ts, at("2026-12-31T23:30:00Z"));
    }

    #[test]
    fn rsyslog_high_precision_stamp() {
        assert_eq!(
            cols("<13>2026-11-26T10:00:00.123456+01:00 host tag[12]: msg"),
            (
                "2026-11-26T09:00:00.123456+00:00".to_owned(),
                s("host"),
                s("tag"),
                s("12"),
                "msg".to_owned()
            )
        );
    }

    #[test]
    fn rsyslog_forwarding_templates() {
        // RSYSLOG_TraditionalForwardFormat and the default forwarding template:
        // `<%PRI%>%TIMESTAMP% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%`.
        assert_eq!(
            cols("<38>Nov 26 09:59:01 web1 sshd[4242]: Accepted password for bob"),
            (
                "2026-11-26T09:59:01+00:00".to_owned(),
                s("web1"),
                s("sshd"),
                s("4242"),
                "Accepted password for bob".to_owned()
            )
        );
        // A tag cut at 32 characters loses its colon and stays in the message.
        let (_, host, app, _, m) =
            cols("<38>Nov 26 09:59:01 web1 org.freedesktop.a.very.long.n hello");
        assert_eq!(
            (host.as_deref(), app, m.as_str()),
            (Some("web1"), None, "org.freedesktop.a.very.long.n hello")
        );
        // RSYSLOG_ForwardFormat writes an RFC 3339 stamp.
        let (ts, host, app, _, _) =
            cols("<38>2026-11-26T09:59:01.123+00:00 web1 CRON[5]: (root) CMD");
        assert_eq!(
            (ts.as_str(), host.as_deref(), app.as_deref()),
            ("2026-11-26T09:59:01.123+00:00", Some("web1"), Some("CRON"))
        );
    }

    #[test]
    fn logger_rfc3164_output() {
        // util-linux `logger --rfc3164 -t myscript hello` and `logger --rfc3164 -i hello`.
        assert_eq!(
            cols("<13>Nov 26 10:00:00 myhost myscript: hello"),
            (
                "2026-11-26T10:00:00+00:00".to_owned(),
                s("myhost"),
                s("myscript"),
                None,
                "hello".to_owned()
            )
        );
        assert_eq!(
            cols("<13>Nov 26 10:00:00 myhost root[4242]: hello"),
            (
                "2026-11-26T10:00:00+00:00".to_owned(),
                s("myhost"),
                s("root"),
                s("4242"),
                "hello".to_owned()
            )
        );
    }

    #[test]
    fn tag_parser_takes_exactly_the_tag() {
        assert_eq!(
            tag("a[1]: m"),
            Some(Tag {
                app: "a",
                pid: Some("1"),
                len: 6
            })
        );
        assert_eq!(
            tag("a: m"),
            Some(Tag {
                app: "a",
                pid: None,
                len: 3
            })
        );
        assert_eq!(tag("a"), None);
        assert_eq!(tag(""), None);
        assert_eq!(tag("123: x"), None);
        assert_eq!(tag("1a: x").map(|t| t.app), Some("1a"));
        assert_eq!(tag("a[1"), None);
        assert_eq!(tag("a[1 2]: m"), None);
    }
}
