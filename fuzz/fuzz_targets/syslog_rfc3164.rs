//! RFC 3164 parsing: never panics, and the message is always the tail of the
//! (sanitised) input, so nothing after the header is ever lost.

#![no_main]

mod common;

use chute::sources::syslog::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for origin in common::origins(Format::Rfc3164) {
        let p = parse(data, &origin);
        common::check(&p, data);
        if !p.flags.truncated {
            let end = data
                .iter()
                .rposition(|&b| !matches!(b, b'\n' | b'\r' | 0))
                .map_or(0, |i| i + 1);
            let text = String::from_utf8_lossy(&data[..end]).replace('\0', "\u{FFFD}");
            assert!(
                text.ends_with(&p.record.message),
                "{text:?} → {:?}",
                p.record.message
            );
            for part in [&p.record.app, &p.record.procid].into_iter().flatten() {
                assert!(text.contains(part.as_str()));
            }
        }
    }
});
