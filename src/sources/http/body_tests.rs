use super::*;
use flate2::write::GzEncoder;
use flate2::Compression;

const MIB: usize = 1024 * 1024;

/// Allowed overshoot of the output buffer over the limit. The buffer's
/// growth policy makes it zero; the test tolerates a little in case the
/// allocator rounds capacities up.
const SLACK: usize = 64 * 1024;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("gzip into a Vec");
    e.finish().expect("gzip into a Vec")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).expect("zstd into a Vec")
}

/// Deterministic incompressible bytes (xorshift), no `rand` needed.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sample() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..2000 {
        s.extend_from_slice(format!("{{\"message\":\"line {i}\"}}\n").as_bytes());
    }
    s
}

fn collect(
    encoding: ContentEncoding,
    limit: usize,
    body: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut c = BodyCollector::new(encoding, limit);
    for part in body.chunks(chunk) {
        c.push(part)?;
    }
    c.finish()
}

#[test]
fn plain_body_comes_back_unchanged() {
    let body = sample();
    for chunk in [1, 7, 4096, body.len()] {
        assert_eq!(
            collect(ContentEncoding::Identity, MIB, &body, chunk),
            Ok(body.clone())
        );
    }
}

#[test]
fn gzip_body_is_decompressed_whatever_the_chunking() {
    let body = sample();
    let gz = gzip(&body);
    for chunk in [1, 3, 100, gz.len()] {
        assert_eq!(
            collect(ContentEncoding::Gzip, MIB, &gz, chunk),
            Ok(body.clone())
        );
    }
}

#[test]
fn concatenated_gzip_members_are_one_body() {
    let mut gz = gzip(b"{\"message\":\"a\"}\n");
    gz.extend(gzip(b"{\"message\":\"b\"}\n"));
    gz.extend(gzip(b""));
    gz.extend(gzip(b"{\"message\":\"c\"}\n"));
    for chunk in [1, 5, gz.len()] {
        assert_eq!(
            collect(ContentEncoding::Gzip, MIB, &gz, chunk),
            Ok(b"{\"message\":\"a\"}\n{\"message\":\"b\"}\n{\"message\":\"c\"}\n".to_vec())
        );
    }
}

#[test]
fn zstd_body_is_decompressed_whatever_the_chunking() {
    let body = sample();
    let z = zstd(&body);
    for chunk in [1, 3, 100, z.len()] {
        assert_eq!(
            collect(ContentEncoding::Zstd, MIB, &z, chunk),
            Ok(body.clone())
        );
    }
}

#[test]
fn concatenated_zstd_frames_are_one_body() {
    let mut z = zstd(b"abc");
    z.extend(zstd(b"def"));
    assert_eq!(
        collect(ContentEncoding::Zstd, MIB, &z, 2),
        Ok(b"abcdef".to_vec())
    );
}

#[test]
fn empty_body_is_empty_whatever_the_encoding() {
    for enc in [
        ContentEncoding::Identity,
        ContentEncoding::Gzip,
        ContentEncoding::Zstd,
    ] {
        let mut c = BodyCollector::new(enc, 10);
        assert_eq!(c.push(b""), Ok(()));
        assert_eq!(c.finish(), Ok(Vec::new()));
    }
}

#[test]
fn body_of_exactly_the_limit_is_accepted() {
    let body = noise(1000);
    assert_eq!(
        collect(ContentEncoding::Identity, 1000, &body, 300),
        Ok(body.clone())
    );
    assert_eq!(
        collect(ContentEncoding::Gzip, 1000, &gzip(&[7; 1000]), 10),
        Ok(vec![7; 1000])
    );
    assert_eq!(
        collect(ContentEncoding::Zstd, 1000, &zstd(&[7; 1000]), 10),
        Ok(vec![7; 1000])
    );
}

#[test]
fn plain_body_one_byte_over_the_limit_is_too_large() {
    let body = noise(1001);
    assert_eq!(
        collect(ContentEncoding::Identity, 1000, &body, 300),
        Err(BodyError::TooLarge { limit: 1000 })
    );
}

#[test]
fn compressed_bytes_over_the_limit_fail_before_any_decompression() {
    let gz = gzip(&noise(1000));
    assert!(gz.len() > 1000);
    let mut c = BodyCollector::new(ContentEncoding::Gzip, 500);
    assert_eq!(c.push(&gz), Err(BodyError::TooLarge { limit: 500 }));
    assert_eq!(c.capacity(), 0);
}

#[test]
fn decompressed_bytes_over_the_limit_are_too_large() {
    let limit = 64 * 1024;
    let gz = gzip(&vec![b'x'; limit + 1]);
    let z = zstd(&vec![b'x'; limit + 1]);
    assert!(gz.len() < limit && z.len() < limit);
    assert_eq!(
        collect(ContentEncoding::Gzip, limit, &gz, 4096),
        Err(BodyError::TooLarge { limit })
    );
    assert_eq!(
        collect(ContentEncoding::Zstd, limit, &z, 4096),
        Err(BodyError::TooLarge { limit })
    );
}

/// Streams `total` zeros through `encoder` in 64 KiB writes.
fn bomb<W: Write>(mut encoder: W, total: usize) -> W {
    let zeros = vec![0u8; 64 * 1024];
    let mut left = total;
    while left > 0 {
        let n = left.min(zeros.len());
        encoder.write_all(&zeros[..n]).expect("compress into a Vec");
        left -= n;
    }
    encoder
}

fn assert_bomb_is_defused(encoding: ContentEncoding, compressed: &[u8], limit: usize) {
    let mut c = BodyCollector::new(encoding, limit);
    let mut outcome = Ok(());
    for part in compressed.chunks(16 * 1024) {
        outcome = c.push(part);
        assert!(
            c.capacity() <= limit + SLACK,
            "buffer grew to {} bytes, limit {limit}",
            c.capacity()
        );
        if outcome.is_err() {
            break;
        }
    }
    assert_eq!(outcome, Err(BodyError::TooLarge { limit }));
    assert_eq!(c.finish(), Err(BodyError::TooLarge { limit }));
}

#[test]
fn gzip_bomb_is_too_large_without_allocating_past_the_limit() {
    let gz = bomb(
        GzEncoder::new(Vec::new(), Compression::default()),
        1024 * MIB,
    )
    .finish()
    .expect("gzip into a Vec");
    assert!(gz.len() < 2 * MIB, "bomb is {} bytes", gz.len());
    assert_bomb_is_defused(ContentEncoding::Gzip, &gz, 8 * MIB);
}

#[test]
fn zstd_bomb_is_too_large_without_allocating_past_the_limit() {
    let z = bomb(
        zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd encoder"),
        256 * MIB,
    )
    .finish()
    .expect("zstd into a Vec");
    assert!(z.len() < MIB, "bomb is {} bytes", z.len());
    assert_bomb_is_defused(ContentEncoding::Zstd, &z, 8 * MIB);
}

#[test]
fn zstd_frame_asking_for_a_huge_window_is_refused() {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd encoder");
    e.window_log(28).expect("window log");
    let z = bomb(e, 1024).finish().expect("zstd into a Vec");
    let got = collect(ContentEncoding::Zstd, MIB, &z, 4096);
    assert!(matches!(got, Err(BodyError::Corrupt(_))), "{got:?}");
}

#[test]
fn truncated_gzip_is_corrupt() {
    let gz = gzip(&sample());
    for cut in [
        1,
        5,
        10,
        11,
        gz.len() / 2,
        gz.len() - 8,
        gz.len() - 4,
        gz.len() - 1,
    ] {
        let got = collect(ContentEncoding::Gzip, MIB, &gz[..cut], 100);
        assert!(
            matches!(got, Err(BodyError::Corrupt(_))),
            "cut at {cut}: {got:?}"
        );
    }
}

#[test]
fn truncated_zstd_is_corrupt() {
    let z = zstd(&sample());
    for cut in [1, 4, z.len() / 2, z.len() - 1] {
        let got = collect(ContentEncoding::Zstd, MIB, &z[..cut], 100);
        assert!(
            matches!(got, Err(BodyError::Corrupt(_))),
            "cut at {cut}: {got:?}"
        );
    }
}

#[test]
fn gzip_with_a_bad_checksum_is_corrupt() {
    let mut gz = gzip(&sample());
    let crc_at = gz.len() - 8;
    gz[crc_at] ^= 0xFF;
    let got = collect(ContentEncoding::Gzip, MIB, &gz, 100);
    assert!(matches!(got, Err(BodyError::Corrupt(_))), "{got:?}");
}

#[test]
fn garbage_is_corrupt_in_both_encodings() {
    let junk = b"{\"message\":\"this is not compressed\"}\n".repeat(10);
    for enc in [ContentEncoding::Gzip, ContentEncoding::Zstd] {
        let got = collect(enc, MIB, &junk, 7);
        assert!(
            matches!(got, Err(BodyError::Corrupt(_))),
            "{enc:?}: {got:?}"
        );
        assert_eq!(got.map_err(|e| e.reason()), Err("corrupt_encoding"));
    }
}

#[test]
fn garbage_after_a_gzip_member_is_corrupt() {
    let mut gz = gzip(b"ok");
    gz.extend_from_slice(b"trailing junk");
    let got = collect(ContentEncoding::Gzip, MIB, &gz, 4);
    assert!(matches!(got, Err(BodyError::Corrupt(_))), "{got:?}");
}

#[test]
fn collector_stays_failed_after_an_error() {
    let mut c = BodyCollector::new(ContentEncoding::Gzip, MIB);
    let first = c.push(b"not gzip at all");
    assert!(matches!(first, Err(BodyError::Corrupt(_))));
    assert_eq!(c.push(&gzip(b"fine")), first);
    assert_eq!(c.finish(), first.map(|()| Vec::new()));
}

#[test]
fn content_encoding_header_is_case_insensitive_and_trimmed() {
    use ContentEncoding::*;
    assert_eq!(ContentEncoding::from_header(None), Ok(Identity));
    assert_eq!(ContentEncoding::from_header(Some("")), Ok(Identity));
    assert_eq!(
        ContentEncoding::from_header(Some(" Identity ")),
        Ok(Identity)
    );
    assert_eq!(ContentEncoding::from_header(Some("gzip")), Ok(Gzip));
    assert_eq!(ContentEncoding::from_header(Some("GZIP")), Ok(Gzip));
    assert_eq!(ContentEncoding::from_header(Some("\tx-gzip ")), Ok(Gzip));
    assert_eq!(ContentEncoding::from_header(Some("ZStd")), Ok(Zstd));
}

#[test]
fn unknown_content_encoding_is_refused_by_name() {
    for v in ["br", "deflate", "gzip, zstd", "compress"] {
        let err = ContentEncoding::from_header(Some(v));
        assert_eq!(err, Err(BodyError::UnsupportedEncoding(v.to_owned())));
        assert_eq!(err.map_err(|e| e.reason()), Err("unsupported_encoding"));
    }
}

#[test]
fn long_header_values_are_truncated_in_errors() {
    let long = "é".repeat(1000);
    let Err(BodyError::UnsupportedEncoding(echo)) = ContentEncoding::from_header(Some(&long))
    else {
        panic!("expected UnsupportedEncoding");
    };
    assert_eq!(echo.chars().count(), MAX_ECHO_CHARS + 3);
}

#[test]
fn content_type_picks_the_format_ignoring_case_and_parameters() {
    use BodyFormat::*;
    let ct = BodyFormat::from_content_type;
    assert_eq!(ct(None), Ok(None));
    assert_eq!(ct(Some("")), Ok(None));
    assert_eq!(ct(Some("application/json")), Ok(Some(JsonArray)));
    assert_eq!(
        ct(Some("Application/JSON; charset=utf-8")),
        Ok(Some(JsonArray))
    );
    for t in NDJSON_TYPES {
        assert_eq!(ct(Some(t)), Ok(Some(Ndjson)), "{t}");
        assert_eq!(
            ct(Some(&format!(" {} ;charset=UTF-8", t.to_uppercase()))),
            Ok(Some(Ndjson)),
            "{t}"
        );
    }
}

#[test]
fn other_content_types_are_refused() {
    for t in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "json",
    ] {
        let err = BodyFormat::from_content_type(Some(t));
        assert_eq!(err, Err(BodyError::UnsupportedContentType(t.to_owned())));
        assert_eq!(err.map_err(|e| e.reason()), Err("unsupported_content_type"));
    }
}

#[test]
fn sniffing_looks_at_the_first_non_whitespace_byte() {
    assert_eq!(BodyFormat::sniff(b"[{}]"), BodyFormat::JsonArray);
    assert_eq!(BodyFormat::sniff(b" \r\n\t [ ]"), BodyFormat::JsonArray);
    assert_eq!(BodyFormat::sniff(b"\xEF\xBB\xBF[]"), BodyFormat::JsonArray);
    assert_eq!(
        BodyFormat::sniff(b"{\"a\":1}\n{\"a\":2}"),
        BodyFormat::Ndjson
    );
    assert_eq!(BodyFormat::sniff(b"  {}"), BodyFormat::Ndjson);
    assert_eq!(BodyFormat::sniff(b""), BodyFormat::Ndjson);
    assert_eq!(BodyFormat::sniff(b"garbage"), BodyFormat::Ndjson);
    assert_eq!(
        BodyFormat::sniff(b"{\n  \"message\": \"pretty\"\n}\n"),
        BodyFormat::JsonArray
    );
}

#[test]
fn too_large_reason_is_a_bounded_label() {
    assert_eq!(BodyError::TooLarge { limit: 1 }.reason(), "too_large");
}
