//! The `/internal/v1/batches` body decoder: never panics, and a body it accepts
//! is framed again into the same batches (shard, id, rows), byte for byte.

#![no_main]

use bytes::Bytes;
use chute::batch::wire::{parse_batches, BatchesBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batches) = parse_batches(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(!batches.is_empty());
    let mut again = BatchesBody::with_capacity(data.len());
    for b in &batches {
        assert!(!b.id.is_empty());
        again.push(b.shard, &b.id, &b.rows.to_payload(&[], None));
    }
    let compressed = again.finish().expect("compresses").expect("not empty");
    let body = zstd::bulk::decompress(&compressed, data.len() + 1024).expect("decompresses");
    let reparsed = parse_batches(Bytes::from(body)).expect("what was accepted is accepted again");
    assert_eq!(reparsed.len(), batches.len());
    for (a, b) in batches.iter().zip(&reparsed) {
        assert_eq!((a.shard, &a.id, a.rows.len()), (b.shard, &b.id, b.rows.len()));
        assert_eq!(a.rows.to_payload(&[], None), b.rows.to_payload(&[], None));
    }
});
