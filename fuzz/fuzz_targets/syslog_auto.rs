//! Format detection: never panics, and `auto` gives exactly what the format
//! it detects gives.

#![no_main]

mod common;

use chute::sources::syslog::{parse, Format};
use libfuzzer_sys::fuzz_target;

/// Whether the input starts with `<PRI>1 ` (PRI of 1-3 digits).
fn looks_like_rfc5424(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"<") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=3).contains(&digits) && rest[digits..].starts_with(b">1 ")
}

fuzz_target!(|data: &[u8]| {
    // Detection looks at the message after its trailing line breaks are gone.
    let end = data
        .iter()
        .rposition(|&b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    let forced = if looks_like_rfc5424(&data[..end]) {
        Format::Rfc5424
    } else {
        Format::Rfc3164
    };
    for origin in common::origins(Format::Auto) {
        let p = parse(data, &origin);
        common::check(&p, data);
        let other = parse(
            data,
            &chute::sources::syslog::Origin {
                format: forced,
                ..origin
            },
        );
        assert_eq!(p, other, "auto is not {forced:?}");
    }
});
