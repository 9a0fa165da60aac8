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

    /// Bytes the decoded body holds in memory now (its buffer's capacity).
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Identity(out) => out.buf.capacity(),
            State::Gzip(d) => d.get_ref().buf.capacity(),
            State::Zstd(d) => d.get_ref().buf.capacity(),
            State::Failed(_) => 0,
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
#[path = "body_tests.rs"]
mod tests;
