//! The JSON / NDJSON parser of `POST /api/v1/logs`: never panics, lists at most
//! `MAX_LISTED_REJECTIONS` refusals while counting them all, and every record it
//! accepts is one chute can store: it encodes as COPY rows, holds no NUL, and reads
//! back with the same text.
//!
//! Input: first byte, the format (array, NDJSON, or sniffed as when no Content-Type
//! is sent); the rest, the decompressed body.

#![no_main]

#[path = "verdicts.rs"]
mod verdicts;

use chute::sources::http::body::BodyFormat;
use chute::sources::http::json::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, body @ ..] = data else {
        return;
    };
    let format = match mode % 3 {
        0 => BodyFormat::JsonArray,
        1 => BodyFormat::Ndjson,
        _ => BodyFormat::sniff(body),
    };
    let received_at = chrono::DateTime::from_timestamp(1_795_694_400, 0).unwrap_or_default();
    let Ok(parsed) = parse(body, format, received_at, "tenant") else {
        return;
    };
    verdicts::check(&parsed);
});
