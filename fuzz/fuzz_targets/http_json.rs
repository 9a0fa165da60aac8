//! The JSON / NDJSON parser of `POST /api/v1/logs`: never panics, lists at most
//! `MAX_LISTED_REJECTIONS` refusals while counting them all, and every record it
//! accepts is one chute can store: it encodes as COPY rows, holds no NUL, and reads
//! back with the same text.
//!
//! Input: first byte, the format (array, NDJSON, or sniffed as when no Content-Type
//! is sent); the rest, the decompressed body.

#![no_main]

use chute::batch::EncodedRows;
use chute::sources::http::body::BodyFormat;
use chute::sources::http::json::{parse, MAX_LISTED_REJECTIONS};
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
    assert!(parsed.rejected.len() <= MAX_LISTED_REJECTIONS);
    assert!(parsed.rejected.len() <= parsed.rejected_count);
    assert!(parsed.rejected_count == 0 || !parsed.rejected.is_empty());
    assert!(parsed.rejected.windows(2).all(|w| w[0].index < w[1].index), "in body order");
    for r in &parsed.records {
        for text in [Some(&r.message), r.host.as_ref(), r.app.as_ref(), r.procid.as_ref(), r.msgid.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(!text.contains('\0'), "NUL in {text:?}");
        }
        assert_eq!(r.tenant, "tenant");
    }
    let rows = EncodedRows::encode(&parsed.records).expect("an accepted record encodes");
    assert_eq!(rows.len(), parsed.records.len());
    rows.validate().expect("well-formed rows");
    for (i, r) in parsed.records.iter().enumerate() {
        let back = rows.decode(i).expect("decodes");
        assert_eq!((&back.message, &back.host, &back.app), (&r.message, &r.host, &r.app));
        assert_eq!(back.fields, r.fields);
    }
});
