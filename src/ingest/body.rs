//! Request body collection for `POST /api/v1/logs`: content negotiation and
//! streaming decompression under a hard size limit.
//!
//! The body arrives in chunks from the network. [`BodyCollector`] decompresses
//! each chunk as it arrives instead of buffering the compressed body first, so
//! one limit (`max_body_bytes`) is enforced on two counts at once:
//!
//! - the bytes received (compressed, as sent), and
//! - the bytes after decompression.
//!
//! Either count passing the limit fails the request with
//! [`BodyError::TooLarge`] at once. The decompressed output goes into a buffer
//! that refuses to grow past the limit, so a "compression bomb" (1 GiB of zeros
//! gzips to about 1 MB) never makes chute allocate more than the limit plus the
//! decoders' fixed working buffers.
//!
//! Accepted `Content-Encoding`s: `gzip` (also `x-gzip`; several concatenated
//! gzip members are one valid body, as `cat a.gz b.gz` produces), `zstd`
//! (several concatenated frames are valid too), and `identity` or no header.
//! An empty body is returned as empty whatever the encoding, so the JSON layer
//! reports it as an empty body rather than a corrupt stream.

use std::io::{self, Write};

use flate2::write::MultiGzDecoder;

/// At most this many characters of a client-supplied header value are echoed
/// back in an error, so a hostile header cannot bloat responses or logs.
const MAX_ECHO_CHARS: usize = 64;

/// The first allocation for a body; small bodies are the common case and
/// must not pay for a limit-sized buffer.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// zstd frames may ask for a back-reference window of up to 2^31 bytes, and
/// the decoder allocates it up front. chute accepts windows up to the body
/// limit, but never refuses below 2^23 (8 MiB, what `zstd -19` uses for a
/// stream of unknown size) and never allows more than 2^27 (128 MiB,
/// zstd's own default ceiling).
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;
const ZSTD_WINDOW_LOG_CEILING: u32 = 27;

/// The `Content-Encoding` of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// Not compressed (`identity` or no header).
    Identity,
    /// gzip (RFC 1952), possibly several members back to back.
    Gzip,
    /// Zstandard (RFC 8878), possibly several frames back to back.
    Zstd,
}

impl ContentEncoding {
    /// Reads the `Content-Encoding` header, so the handler can refuse an
    /// encoding it cannot decode before reading the body.
    ///
    /// Case-insensitive, surrounding whitespace ignored; a missing or empty
    /// header means [`ContentEncoding::Identity`]. Stacked encodings
    /// (`gzip, zstd`) are not supported.
    ///
    /// # Errors
    ///
    /// [`BodyError::UnsupportedEncoding`] with the (truncated) header value
    /// for anything other than `identity`, `gzip`, `x-gzip` or `zstd`.
    pub fn from_header(value: Option<&str>) -> Result<Self, BodyError> {
        let Some(value) = value else {
            return Ok(Self::Identity);
        };
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Ok(Self::Identity)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Ok(Self::Gzip)
        } else if v.eq_ignore_ascii_case("zstd") {
            Ok(Self::Zstd)
        } else {
            Err(BodyError::UnsupportedEncoding(truncate_for_echo(v)))
        }
    }
}

/// How the records are laid out in the (decompressed) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON array of record objects (or one bare record object).
    JsonArray,
    /// Newline-delimited JSON: one record object per line.
    Ndjson,
}

/// `Content-Type` media types (lowercase) that mean NDJSON; clients and
/// libraries disagree on the name, so all the common ones are accepted.
const NDJSON_TYPES: [&str; 5] = [
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
];

impl BodyFormat {
    /// From the `Content-Type` header, so the handler can refuse a body it
    /// cannot parse before reading it.
    ///
    /// `application/json` means [`BodyFormat::JsonArray`];
    /// `application/x-ndjson`, `application/ndjson`, `application/jsonl`,
    /// `application/x-jsonlines` and `application/jsonlines` mean
    /// [`BodyFormat::Ndjson`]. Parameters such as `charset=...` are ignored
    /// (the body is always read as UTF-8), matching is case-insensitive.
    /// No header (or an empty one) gives `Ok(None)`: the caller should
    /// [`sniff`](Self::sniff) the body.
    ///
    /// # Errors
    ///
    /// [`BodyError::UnsupportedContentType`] with the (truncated) media type
    /// for any other type.
    pub fn from_content_type(value: Option<&str>) -> Result<Option<Self>, BodyError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let mime = value.split(';').next().unwrap_or_default().trim();
        if mime.is_empty() {
            Ok(None)
        } else if mime.eq_ignore_ascii_case("application/json") {
            Ok(Some(Self::JsonArray))
        } else if NDJSON_TYPES.iter().any(|t| mime.eq_ignore_ascii_case(t)) {
            Ok(Some(Self::Ndjson))
        } else {
            Err(BodyError::UnsupportedContentType(truncate_for_echo(mime)))
        }
    }

    /// Guesses the format of a body sent without `Content-Type` (curl and
    /// shell scripts often omit it): a body whose first non-whitespace byte
    /// (after an optional UTF-8 byte order mark) is `[` is a JSON array; one
    /// whose first line is a whole object is NDJSON; an object spread over
    /// several lines (pretty-printed) is one record; anything else is NDJSON.
    pub fn sniff(body: &[u8]) -> Self {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        match body
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            Some(b'[') => Self::JsonArray,
            // One object per line is NDJSON; an object spread over several lines
            // (pretty-printed) is one record, which the array parser accepts.
            Some(b'{') => {
                let start = body.iter().position(|&b| b == b'{').unwrap_or(0);
                let line = body[start..]
                    .split(|&b| b == b'\n')
                    .next()
                    .unwrap_or_default();
                if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
                    Self::Ndjson
                } else {
                    Self::JsonArray
                }
            }
            _ => Self::Ndjson,
        }
    }
}

/// Why a request body could not be collected. Each maps to a 4xx response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body, compressed or decompressed, is larger than the limit (413).
    #[error("request body is larger than the limit of {limit} bytes (compressed or decompressed)")]
    TooLarge {
        /// The configured `max_body_bytes`.
        limit: usize,
    },
    /// The compressed stream is truncated or not in the declared encoding (400).
    #[error("request body is not valid for its Content-Encoding: {0}")]
    Corrupt(String),
    /// The `Content-Encoding` is not one chute decodes (415).
    #[error("unsupported Content-Encoding {0:?}; expected gzip, zstd or identity")]
    UnsupportedEncoding(String),
    /// The `Content-Type` is not JSON or NDJSON (415).
    #[error("unsupported Content-Type {0:?}; expected application/json or application/x-ndjson")]
    UnsupportedContentType(String),
}

impl BodyError {
    /// A bounded label for the `reason` of the rejected-requests metric
    /// (the message itself holds client data and must not become a label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Corrupt(_) => "corrupt_encoding",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::UnsupportedContentType(_) => "unsupported_content_type",
        }
    }
}

/// Collects a request body chunk by chunk as it arrives from the network,
/// decompressing on the fly and failing as soon as the limit is passed.
///
/// Usage: [`new`](Self::new), [`push`](Self::push) every chunk (stop reading
/// the request at the first error), then [`finish`](Self::finish).
pub struct BodyCollector {
    limit: usize,
    /// Bytes received so far, as sent (compressed).
    received: usize,
    state: State,
}

enum State {
    Identity(LimitedBuf),
    Gzip(Box<MultiGzDecoder<LimitedBuf>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, LimitedBuf>>),
    /// A push failed; the decoder and buffer are dropped and every later
    /// call returns this error again.
    Failed(BodyError),
}

impl BodyCollector {
    /// Starts collecting a body in `encoding`; `limit` is `max_body_bytes`
    /// and bounds both the received and the decompressed byte counts.
    ///
    /// Never fails: if the zstd decoder cannot be created (out of memory),
    /// the first [`push`](Self::push) reports it.
    pub fn new(encoding: ContentEncoding, limit: usize) -> Self {
        let out = LimitedBuf::new(limit);
        let state = match encoding {
            ContentEncoding::Identity => State::Identity(out),
            ContentEncoding::Gzip => State::Gzip(Box::new(MultiGzDecoder::new(out))),
            ContentEncoding::Zstd => match zstd_decoder(out, limit) {
                Ok(d) => State::Zstd(Box::new(d)),
                Err(e) => State::Failed(BodyError::Corrupt(format!(
                    "cannot start the zstd decoder: {e}"
                ))),
            },
        };
        Self {
            limit,
            received: 0,
            state,
        }
    }

    /// Feeds the next chunk of the body as received.
    ///
    /// # Errors
    ///
    /// [`BodyError::TooLarge`] as soon as the received or the decompressed
    /// byte count passes the limit; [`BodyError::Corrupt`] as soon as the
    /// decoder sees invalid data. After an error the collector stays failed:
    /// further pushes and [`finish`](Self::finish) return the same error.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.received = self.received.saturating_add(chunk.len());
        if self.received > self.limit {
            return Err(self.fail(BodyError::TooLarge { limit: self.limit }));
        }
        let written = match &mut self.state {
            State::Identity(out) => out.write_all(chunk),
            State::Gzip(d) => d.write_all(chunk),
            State::Zstd(d) => d.write_all(chunk),
            State::Failed(e) => return Err(e.clone()),
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = self.classify(&e);
                Err(self.fail(err))
            }
        }
    }

    /// Ends the body and returns it decompressed.
    ///
    /// A body of zero bytes is returned empty whatever the encoding.
    ///
    /// # Errors
    ///
    /// [`BodyError::Corrupt`] when the compressed stream is truncated (ends
    /// inside a gzip member or zstd frame) or fails its checksum;
    /// [`BodyError::TooLarge`] when the last decompressed bytes pass the
    /// limit; the earlier error if a [`push`](Self::push) failed.
    pub fn finish(mut self) -> Result<Vec<u8>, BodyError> {
        if self.received == 0 {
            if let State::Failed(e) = self.state {
                return Err(e);
            }
            return Ok(Vec::new());
        }
        let finished = match &mut self.state {
            State::Identity(_) => Ok(()),
            State::Gzip(d) => d.try_finish(),
            State::Zstd(d) => d.do_finish(),
            State::Failed(e) => return Err(e.clone()),
        };
        if let Err(e) = finished {
            return Err(self.classify(&e));
        }
        match self.state {
            State::Identity(out) => Ok(out.buf),
            // Already finished above; this only hands the writer back.
            State::Gzip(d) => d
                .finish()
                .map(|out| out.buf)
                .map_err(|e| BodyError::Corrupt(e.to_string())),
            State::Zstd(d) => Ok(d.into_inner().buf),
            State::Failed(e) => Err(e),
        }
    }

    /// The output buffer, wherever it currently lives.
    fn output(&self) -> Option<&LimitedBuf> {
        match &self.state {
            State::Identity(out) => Some(out),
            State::Gzip(d) => Some(d.get_ref()),
            State::Zstd(d) => Some(d.get_ref()),
            State::Failed(_) => None,
        }
    }

    /// Tells a refused write into the size-limited buffer (the decoders
    /// report it as an I/O error) apart from invalid compressed data.
    fn classify(&self, e: &io::Error) -> BodyError {
        if self.output().is_some_and(|out| out.overflowed) {
            BodyError::TooLarge { limit: self.limit }
        } else {
            BodyError::Corrupt(e.to_string())
        }
    }

    /// Drops the decoder and the buffer now (freeing the memory while the
    /// error response is sent) and remembers the error.
    fn fail(&mut self, err: BodyError) -> BodyError {
        self.state = State::Failed(err.clone());
        err
    }

    /// Current capacity of the output buffer, for tests of the memory bound.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.output().map_or(0, |out| out.buf.capacity())
    }
}

/// A zstd streaming decoder whose window (allocated up front from the frame
/// header) is bounded, so a tiny frame cannot make chute allocate 2 GiB.
fn zstd_decoder(
    out: LimitedBuf,
    limit: usize,
) -> io::Result<zstd::stream::write::Decoder<'static, LimitedBuf>> {
    let mut d = zstd::stream::write::Decoder::new(out)?;
    // ceil(log2(limit)): the smallest window that can hold the whole body.
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    d.window_log_max(needed.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEILING))?;
    Ok(d)
}

/// A byte buffer that refuses any write that would take it past `limit`, and
/// grows so that its capacity never exceeds `limit` either (a plain `Vec`
/// doubles, which could allocate up to twice the limit).
struct LimitedBuf {
    buf: Vec<u8>,
    limit: usize,
    /// Set when a write was refused, so the collector can report
    /// [`BodyError::TooLarge`] instead of the decoder's generic I/O error.
    overflowed: bool,
}

impl LimitedBuf {
    fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl Write for LimitedBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let needed = match self.buf.len().checked_add(data.len()) {
            Some(n) if n <= self.limit => n,
            _ => {
                self.overflowed = true;
                return Err(io::Error::other("decompressed body is over the limit"));
            }
        };
        if needed > self.buf.capacity() {
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(INITIAL_CAPACITY)
                .min(self.limit)
                .max(needed);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Cuts a client-supplied value to [`MAX_ECHO_CHARS`] characters for an
/// error message.
fn truncate_for_echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
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
}
