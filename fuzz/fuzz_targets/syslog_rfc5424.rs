//! RFC 5424 parsing: never panics, and a message read without complaint is
//! written back by `rfc5424::format` into text that reads as the same record.

#![no_main]

mod common;

use chrono::Datelike;
use chute::sources::syslog::{parse, rfc5424, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for origin in common::origins(Format::Rfc5424) {
        let p = parse(data, &origin);
        common::check(&p, data);
        let clean = !p.flags.malformed && !p.flags.truncated;
        // Offsets can push a 4-digit year out of 0000-9999, which RFC 3339 can't write.
        if clean && (0..=9999).contains(&p.record.ts.year()) {
            let text = rfc5424::format(&p.record);
            let unlimited = chute::sources::syslog::Origin {
                max_message_bytes: usize::MAX,
                ..origin
            };
            let again = parse(text.as_bytes(), &unlimited);
            assert_eq!(again.record, p.record, "format gave {text:?}");
        }
    }
});
