//! Loki's push decoder (`POST /loki/api/v1/push`): never panics, never
//! decompresses past its limit, refuses what would decode or hold past bounded
//! multiples of it, lists at most `MAX_LISTED_REJECTIONS` refused
//! entries in body order, and every entry it accepts is a record chute can store
//! (COPY rows that read back with the same text and fields, no NUL).
//!
//! Input: first byte, the mode: JSON body; a protobuf `PushRequest` that the
//! target snappy-compresses first (to reach the protobuf decoder); or the body
//! as sent (snappy framing fuzzed too). Second byte: the limit, in KiB (1-64).

#![no_main]

#[path = "verdicts.rs"]
mod verdicts;

use chute::sources::loki::push::{decode, PushFormat};
use chute::sources::verdict::ParseError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, limit, body @ ..] = data else {
        return;
    };
    let limit = (usize::from(*limit % 64) + 1) * 1024;
    let (format, body) = match mode % 3 {
        0 => (PushFormat::Json, body.to_vec()),
        1 => (
            PushFormat::Protobuf,
            snap::raw::Encoder::new().compress_vec(body).expect("compresses"),
        ),
        _ => (PushFormat::Protobuf, body.to_vec()),
    };
    let received_at = chrono::DateTime::from_timestamp(1_795_694_400, 0).unwrap_or_default();
    let parsed = match decode(&body, format, received_at, "tenant", limit) {
        Ok(p) => p,
        Err(ParseError::TooLarge { limit: refused }) => {
            // At the body limit: for its declared length alone, never after
            // decompressing. Past it: the weight of the decoded push, or of
            // its records, which are bounded multiples of the limit.
            if refused == limit {
                assert!(snap::raw::decompress_len(&body).expect("declared") > limit);
            } else {
                assert!(refused == 8 * limit || refused == 16 * limit, "{refused}");
            }
            return;
        }
        Err(_) => return,
    };
    if format == PushFormat::Protobuf {
        let decompressed = snap::raw::decompress_len(&body).expect("decoded, so snappy");
        assert!(decompressed <= limit);
        let bytes: usize = parsed.records.iter().map(|r| r.message.len()).sum();
        // Each replaced byte may grow to U+FFFD (3 bytes).
        assert!(bytes <= 3 * decompressed, "{bytes} bytes from {decompressed}");
    }
    verdicts::check(&parsed);
});
