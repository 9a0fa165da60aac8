//! The request-body decoder (identity, gzip, zstd, with a size limit): never
//! panics, never holds or returns more than the limit, gives the same outcome
//! however the body is split into chunks, and returns exactly what was compressed.
//!
//! Input: first byte, the encoding and whether the rest is sent as it is (damaged
//! or hostile compressed data) or compressed here first (a round trip); second,
//! the limit (256 B to 64 KiB); third, the chunk size; the rest, the body.

#![no_main]

use std::io::Write;

use chute::sources::http::body::{BodyCollector, BodyError, ContentEncoding};
use libfuzzer_sys::fuzz_target;

fn collect(encoding: ContentEncoding, limit: usize, body: &[u8], chunk: usize) -> Result<Vec<u8>, BodyError> {
    let mut c = BodyCollector::new(encoding, limit);
    for part in body.chunks(chunk.max(1)) {
        c.push(part)?;
        // The buffer starts at 8 KiB and never grows past the limit.
        assert!(c.held_bytes() <= limit.max(8 << 10), "holds {} for a limit of {limit}", c.held_bytes());
    }
    c.finish()
}

fn compress(encoding: ContentEncoding, data: &[u8]) -> Vec<u8> {
    match encoding {
        ContentEncoding::Identity => data.to_vec(),
        ContentEncoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ContentEncoding::Zstd => zstd::bulk::compress(data, 1).unwrap(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, limit, chunk, rest @ ..] = data else {
        return;
    };
    let encoding = match mode % 3 {
        0 => ContentEncoding::Identity,
        1 => ContentEncoding::Gzip,
        _ => ContentEncoding::Zstd,
    };
    let round_trip = mode & 0x80 != 0;
    let limit = 256 * (usize::from(*limit) + 1);
    let body = if round_trip { compress(encoding, rest) } else { rest.to_vec() };
    let whole = collect(encoding, limit, &body, body.len());
    let chunked = collect(encoding, limit, &body, usize::from(*chunk) + 1);
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the same body whatever the chunks"),
        // Which error comes first may depend on where a chunk ends (a body over
        // the limit is refused before decoding, a chunk after corrupt data).
        (Err(_), Err(_)) => {}
        _ => panic!("chunks changed the outcome: {whole:?} vs {chunked:?}"),
    }
    if let Ok(out) = &whole {
        assert!(out.len() <= limit);
    }
    if round_trip && body.len() <= limit && rest.len() <= limit && !body.is_empty() {
        assert_eq!(whole.expect("a body within the limit decodes"), rest);
    }
});
