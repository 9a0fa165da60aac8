//! What the syslog fuzz targets share: the origins inputs are parsed with,
//! and the checks that hold for every parsed message.

#![allow(dead_code)]

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use chute::record::scrub_map;
use chute::sources::syslog::{Format, Origin, Parsed, Timezone};

/// 2026-11-26T12:00:00Z.
pub fn received_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_694_400, 0).unwrap_or_default()
}

fn berlin() -> &'static Timezone {
    static TZ: OnceLock<Timezone> = OnceLock::new();
    TZ.get_or_init(|| "Europe/Berlin".parse().unwrap_or(Timezone::Utc))
}

/// Each input is parsed twice: in UTC with the default size limit, and in a
/// zone with daylight saving time, a peer host name and a small limit (to
/// reach the cutting code).
pub fn origins(format: Format) -> [Origin<'static>; 2] {
    static UTC: Timezone = Timezone::Utc;
    [
        Origin {
            received_at: received_at(),
            tenant: "t",
            format,
            timezone: &UTC,
            max_message_bytes: 64 * 1024,
            peer_host: None,
        },
        Origin {
            received_at: received_at(),
            tenant: "t",
            format,
            timezone: berlin(),
            max_message_bytes: 48,
            peer_host: Some("peer"),
        },
    ]
}

/// What must hold for every parsed message, whatever the input.
pub fn check(p: &Parsed, input: &[u8]) {
    let r = &p.record;
    for s in [&r.tenant, &r.message]
        .into_iter()
        .chain([&r.host, &r.app, &r.procid, &r.msgid].into_iter().flatten())
    {
        assert!(!s.contains('\0'), "NUL left in {s:?}");
    }
    let mut fields = r.fields.clone();
    assert_eq!(scrub_map(&mut fields), 0, "NUL left in fields");
    // Structured data is stored as `fields.sd`, never beside an `sd` of `fields`.
    if let Some(sd) = &r.sd {
        assert!(!r.fields.contains_key("sd"));
        let mut stored = serde_json::Map::new();
        stored.insert("sd".to_owned(), sd.to_value());
        assert!(stored["sd"].is_object(), "sd written as {:?}", stored["sd"]);
        assert_eq!(scrub_map(&mut stored), 0, "NUL left in structured data");
    }
    assert!(matches!(r.severity, Some(0..=7)));
    assert!(matches!(r.facility, Some(0..=23)));
    assert_eq!(p.flags.malformed, r.fields.contains_key("parse_error"));
    assert_eq!(p.flags.truncated, r.fields.contains_key("truncated"));
    // U+FFFD takes 3 bytes: nothing grows more than that.
    assert!(r.message.len() <= 3 * input.len());
}
