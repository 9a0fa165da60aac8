//! The Elasticsearch bulk decoder (`POST /_bulk`): never panics, gives exactly
//! one item per action, refuses items in body order (the first
//! `MAX_LISTED_REJECTIONS` listed), stores one record per item without an error,
//! and every record is one chute can store (COPY rows that read back with the
//! same text and fields, no NUL).
//!
//! Input: the bulk body; its first byte chooses whether the path names an index.

#![no_main]

#[path = "verdicts.rs"]
mod verdicts;

use chute::sources::elastic::bulk::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, body @ ..] = data else {
        return;
    };
    let index = (mode % 2 == 0).then_some("path-index");
    let received_at = chrono::DateTime::from_timestamp(1_795_694_400, 0).unwrap_or_default();
    let Ok(bulk) = decode(body, index, received_at, "tenant") else {
        return;
    };
    let parsed = &bulk.parsed;
    let refused = bulk.items.iter().filter(|i| i.error.is_some()).count();
    assert_eq!(refused, parsed.rejected_count);
    assert_eq!(bulk.items.len(), parsed.records.len() + refused);
    for r in &parsed.rejected {
        assert!(bulk.items[r.index].error.is_some());
    }
    verdicts::check(parsed);
});
