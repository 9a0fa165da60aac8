//! The OTLP logs decoder (`POST /v1/logs`): never panics, holds its records to
//! 8 times its limit, lists at most `MAX_LISTED_REJECTIONS` refused records in body
//! order, and every record it accepts is one chute can store (COPY rows that read
//! back with the same text and fields, no NUL).
//!
//! Input: first byte, the format (even: protobuf, odd: JSON); second byte, the
//! limit in KiB (1-64); the rest, the body.

#![no_main]

#[path = "verdicts.rs"]
mod verdicts;

use chute::sources::otlp::logs::{decode, LogsFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, limit, body @ ..] = data else {
        return;
    };
    let limit = (usize::from(*limit % 64) + 1) * 1024;
    let format = if mode % 2 == 0 { LogsFormat::Protobuf } else { LogsFormat::Json };
    let received_at = chrono::DateTime::from_timestamp(1_795_694_400, 0).unwrap_or_default();
    let Ok(parsed) = decode(body, format, received_at, "tenant", limit) else {
        return;
    };
    let held: usize = parsed.records.iter().map(|r| r.message.len()).sum();
    // 8 times the limit, and each NUL replaced may grow to U+FFFD (3 bytes).
    assert!(held <= 24 * limit, "{held} bytes held under a limit of {limit}");
    verdicts::check(&parsed);
});
