//! The Elasticsearch bulk decoder (`POST /_bulk`): never panics, gives exactly
//! one item per action, refuses items in body order (the first
//! `MAX_LISTED_REJECTIONS` listed), stores one record per item without an error,
//! and every record is one chute can store (COPY rows that read back with the
//! same text and fields, no NUL).
//!
//! Input: the bulk body; its first byte chooses whether the path names an index.

#![no_main]

use chute::batch::EncodedRows;
use chute::sources::elastic::bulk::decode;
use chute::sources::verdict::MAX_LISTED_REJECTIONS;
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
    assert!(parsed.rejected.len() <= MAX_LISTED_REJECTIONS);
    assert!(parsed.rejected.windows(2).all(|w| w[0].index < w[1].index), "in body order");
    for r in &parsed.rejected {
        assert!(bulk.items[r.index].error.is_some());
    }
    for r in &parsed.records {
        for text in [Some(&r.message), r.host.as_ref(), r.app.as_ref()].into_iter().flatten() {
            assert!(!text.contains('\0'), "NUL in {text:?}");
        }
        assert_eq!(r.tenant, "tenant");
    }
    let rows = EncodedRows::encode(&parsed.records).expect("an accepted record encodes");
    rows.validate().expect("well-formed rows");
    for (i, r) in parsed.records.iter().enumerate() {
        let back = rows.decode(i).expect("decodes");
        assert_eq!((&back.message, &back.host, &back.app), (&r.message, &r.host, &r.app));
        assert_eq!(back.fields, r.fields);
    }
});
