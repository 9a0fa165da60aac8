//! Splitting a syslog byte stream (TCP, TLS, Unix stream) into messages.
//!
//! Each connection uses one framing for its whole life, chosen from its first
//! byte (line breaks and NUL bytes before it are skipped):
//!
//! - a digit: **octet counting** (RFC 6587 §3.4.1), each message preceded by
//!   its length in bytes and a space: `59 <14>1 2026-11-26T10:00:00Z ...`.
//!   Line breaks and NUL bytes between frames are skipped (some senders end
//!   each frame with a line break).
//! - anything else (normally the `<` of a PRI): **delimited**, each message
//!   ended by LF, CRLF or NUL (RFC 6587 §3.4.2, and what `logger`, rsyslog's
//!   traditional framing and Python's `SysLogHandler` send). The last message
//!   may lack its delimiter when the connection ends.
//!
//! Empty messages (blank lines, a length of 0) are skipped.
//!
//! # Limits
//!
//! A message longer than `max_message_bytes` is cut at that length (at a
//! UTF-8 character boundary), passed on marked as truncated, and the rest of
//! it is discarded and counted: up to the next delimiter when delimited, or
//! read through to the end of its announced length when octet-counted (as
//! rsyslog does), so the connection goes on. Only an octet count over
//! [`MAX_FRAME_BYTES`] (64 MiB), a length that is not a number, or one not
//! followed by a space is an error that closes the connection, after the
//! messages that were complete before it have been passed on. A connection
//! that ends in the middle of an octet-counted message is an error too.
//!
//! A connection never holds more than `max_message_bytes` plus the bytes of
//! one read in memory.

use bytes::{Bytes, BytesMut};

use super::char_boundary;

/// Digits in the longest length that is read whole before it is judged;
/// longer ones are over any limit.
const MAX_LENGTH_DIGITS: usize = 20;

/// The longest octet-counted frame read through (cut to `max_message_bytes`)
/// rather than refused; a larger count is a broken or hostile sender, and
/// closes the connection. The same as the largest `max_message_bytes`.
pub const MAX_FRAME_BYTES: u64 = 64 << 20;

/// One message cut from the stream, to be handed to [`super::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message, without its delimiter or length prefix.
    pub bytes: Bytes,
    /// The message was longer than the limit and was cut; see
    /// [`super::Parsed::mark_truncated`].
    pub truncated: bool,
}

/// A stream that cannot be framed any further: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// An octet-counted frame announced more bytes than any message may have.
    #[error("octet-counted message of {len} bytes is over the limit of {max} bytes")]
    TooLong {
        /// The announced length; `u64::MAX` when it has more than 20 digits.
        len: u64,
        /// The limit: [`MAX_FRAME_BYTES`], or `max_message_bytes` if larger.
        max: u64,
    },
    /// Where a frame length was expected, there was no number followed by a
    /// space.
    #[error("octet counting: expected a message length and a space, got {found:?}")]
    BadLength {
        /// The first byte that is neither a digit nor the space after one.
        found: char,
    },
    /// The stream ended inside an octet-counted frame.
    #[error("connection closed after {got} of {expected} bytes of an octet-counted message")]
    Incomplete {
        /// The announced length (0 when the stream ended inside the length).
        expected: usize,
        /// The bytes received of it.
        got: usize,
    },
}

impl FramingError {
    /// A bounded label for the `reason` of the framing-errors metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "frame_too_long",
            Self::BadLength { .. } => "bad_frame_length",
            Self::Incomplete { .. } => "incomplete_frame",
        }
    }
}

/// The framing of a connection, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but line breaks and NUL bytes so far.
    Unknown,
    /// Octet counting, expecting a length.
    Length,
    /// Octet counting, inside a frame of this many bytes.
    Body(usize),
    /// Octet counting, reading through the rest of a frame that was longer than
    /// the limit (its first `max` bytes were passed on, cut).
    Skip {
        /// The frame's announced length.
        len: usize,
        /// Bytes of it still to be read and discarded.
        left: usize,
    },
    /// LF / CRLF / NUL delimited.
    Delimited {
        /// The current message was cut; its rest is being discarded up to
        /// the next delimiter.
        discarding: bool,
    },
    /// An error was reported, or the stream finished: nothing more is framed.
    Closed,
}

/// The framing state of one connection: feed it bytes as they arrive, take
/// complete frames out.
#[derive(Debug)]
pub struct Framer {
    /// The longest message passed on, `max_message_bytes` (at least 1).
    max: usize,
    mode: Mode,
    /// Bytes received and not yet passed on: part of one message, or of a
    /// length; at most `max` + one push.
    buf: BytesMut,
    /// How much of `buf` (from its start) is known to hold no delimiter.
    scanned: usize,
    /// Bytes of cut messages thrown away since the last
    /// [`take_discarded`](Self::take_discarded).
    discarded: u64,
    /// The error that closed the stream, returned again by later pushes.
    error: Option<FramingError>,
}

impl Framer {
    /// A framer for a new connection whose messages may be up to
    /// `max_message_bytes` long (at least 1).
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max: max_message_bytes.max(1),
            mode: Mode::Unknown,
            buf: BytesMut::new(),
            scanned: 0,
            discarded: 0,
            error: None,
        }
    }

    /// Feeds bytes as they arrive; appends the frames they complete to `out`.
    ///
    /// # Errors
    ///
    /// In octet-counting mode, a length over the limit, one that is not a
    /// number, or one without the space after it: [`FramingError`]. The
    /// frames completed before it are in `out`; the connection must be
    /// closed, and every later call returns the error again.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), FramingError> {
        let mut bytes = bytes;
        if self.mode == Mode::Unknown {
            let start = bytes
                .iter()
                .position(|&b| !is_separator(b))
                .unwrap_or(bytes.len());
            bytes = &bytes[start..];
            match bytes.first() {
                None => return Ok(()),
                Some(b) if b.is_ascii_digit() => self.mode = Mode::Length,
                Some(_) => self.mode = Mode::Delimited { discarding: false },
            }
        }
        match self.mode {
            Mode::Delimited { discarding } => {
                self.push_delimited(bytes, discarding, out);
                Ok(())
            }
            Mode::Closed => match &self.error {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            },
            _ => {
                self.buf.extend_from_slice(bytes);
                self.octets(out)
            }
        }
    }

    /// Ends the stream: the last message of a delimited stream needs no
    /// delimiter and is appended to `out`. Bytes pushed after this are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`FramingError::Incomplete`] when an octet-counted stream ends inside
    /// a frame or its length.
    pub fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), FramingError> {
        let result = match self.mode {
            Mode::Unknown | Mode::Closed => Ok(()),
            Mode::Delimited { discarding } => {
                if !discarding {
                    let mut line = self.buf.split();
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    emit(line, out);
                }
                Ok(())
            }
            Mode::Length if self.buf.is_empty() => Ok(()),
            Mode::Length => Err(FramingError::Incomplete {
                expected: 0,
                got: 0,
            }),
            Mode::Body(len) => Err(FramingError::Incomplete {
                expected: len,
                got: self.buf.len(),
            }),
            Mode::Skip { len, left } => Err(FramingError::Incomplete {
                expected: len,
                got: len - left,
            }),
        };
        self.buf = BytesMut::new();
        self.scanned = 0;
        self.mode = Mode::Closed;
        result
    }

    /// Bytes of cut messages thrown away since the last call, for the
    /// metrics.
    pub fn take_discarded(&mut self) -> u64 {
        std::mem::take(&mut self.discarded)
    }

    /// Bytes held for messages not complete yet (never more than
    /// `max_message_bytes` plus the last push).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Delimited mode: frames end at LF (a CR before it is dropped) or NUL.
    fn push_delimited(&mut self, mut bytes: &[u8], mut discarding: bool, out: &mut Vec<Frame>) {
        if discarding {
            match memchr::memchr2(b'\n', 0, bytes) {
                None => {
                    self.discarded += bytes.len() as u64;
                    return;
                }
                Some(i) => {
                    self.discarded += i as u64;
                    bytes = &bytes[i + 1..];
                    discarding = false;
                }
            }
        }
        self.buf.extend_from_slice(bytes);
        while let Some(i) = memchr::memchr2(b'\n', 0, &self.buf[self.scanned..]) {
            let end = self.scanned + i;
            let mut line = self.buf.split_to(end + 1);
            self.scanned = 0;
            let mut len = end;
            if line[end] == b'\n' && end > 0 && line[end - 1] == b'\r' {
                len -= 1;
            }
            if len > self.max {
                let at = char_boundary(&line, self.max);
                self.discarded += (end - at) as u64;
                line.truncate(at);
                out.push(Frame {
                    bytes: line.freeze(),
                    truncated: true,
                });
            } else {
                line.truncate(len);
                emit(line, out);
            }
        }
        self.scanned = self.buf.len();
        // No delimiter yet: a message already over the limit is cut now
        // (a CR at the limit may still be the start of CRLF).
        let limit = self.max.saturating_add(1);
        let over =
            self.buf.len() > limit || (self.buf.len() == limit && self.buf.last() != Some(&b'\r'));
        if over {
            let at = char_boundary(&self.buf, self.max);
            self.discarded += (self.buf.len() - at) as u64;
            let line = self.buf.split_to(at);
            self.buf.clear();
            self.scanned = 0;
            out.push(Frame {
                bytes: line.freeze(),
                truncated: true,
            });
            discarding = true;
        }
        self.mode = Mode::Delimited { discarding };
    }

    /// Octet-counting mode: frames out of `buf` while complete ones are there.
    fn octets(&mut self, out: &mut Vec<Frame>) -> Result<(), FramingError> {
        loop {
            match self.mode {
                Mode::Body(len) if len <= self.max => {
                    if self.buf.len() < len {
                        return Ok(());
                    }
                    let frame = self.buf.split_to(len);
                    emit(frame, out);
                    self.mode = Mode::Length;
                }
                Mode::Body(len) => {
                    // Longer than the limit: pass the first `max` bytes on, cut and
                    // marked, and read the rest through without keeping it.
                    if self.buf.len() < self.max {
                        return Ok(());
                    }
                    let mut head = self.buf.split_to(self.max);
                    let at = char_boundary(&head, self.max);
                    self.discarded += (self.max - at) as u64;
                    head.truncate(at);
                    out.push(Frame {
                        bytes: head.freeze(),
                        truncated: true,
                    });
                    self.mode = Mode::Skip {
                        len,
                        left: len - self.max,
                    };
                }
                Mode::Skip { len, left } => {
                    let n = left.min(self.buf.len());
                    let _ = self.buf.split_to(n);
                    self.discarded += n as u64;
                    if n < left {
                        self.mode = Mode::Skip {
                            len,
                            left: left - n,
                        };
                        return Ok(());
                    }
                    self.mode = Mode::Length;
                }
                Mode::Length => {
                    let skip = self
                        .buf
                        .iter()
                        .position(|&b| !is_separator(b))
                        .unwrap_or(self.buf.len());
                    let _ = self.buf.split_to(skip);
                    let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
                    let len = self.buf[..digits].iter().fold(0u64, |n, d| {
                        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
                    let cap = MAX_FRAME_BYTES.max(self.max as u64);
                    if digits > MAX_LENGTH_DIGITS {
                        return self.failed(FramingError::TooLong {
                            len: u64::MAX,
                            max: cap,
                        });
                    }
                    match self.buf.get(digits) {
                        None => return Ok(()),
                        Some(b' ') if digits > 0 => {
                            let len = match usize::try_from(len) {
                                Ok(n) if len <= cap => n,
                                _ => return self.failed(FramingError::TooLong { len, max: cap }),
                            };
                            let _ = self.buf.split_to(digits + 1);
                            self.mode = Mode::Body(len);
                        }
                        Some(&b) => {
                            let found = if b.is_ascii() { b as char } else { '\u{FFFD}' };
                            return self.failed(FramingError::BadLength { found });
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Stops framing for good and reports why.
    fn failed(&mut self, e: FramingError) -> Result<(), FramingError> {
        self.mode = Mode::Closed;
        self.buf = BytesMut::new();
        self.scanned = 0;
        self.error = Some(e.clone());
        Err(e)
    }
}

/// Passes a whole message on, unless it is empty.
fn emit(frame: BytesMut, out: &mut Vec<Frame>) {
    if !frame.is_empty() {
        out.push(Frame {
            bytes: frame.freeze(),
            truncated: false,
        });
    }
}

/// Bytes skipped before the first frame, and between octet-counted frames.
fn is_separator(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of `chunks` pushed one after another, then `finish`; the first
    /// error ends it.
    fn frames(max: usize, chunks: &[&[u8]]) -> (Vec<(String, bool)>, Option<FramingError>) {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut error = None;
        for c in chunks {
            if let Err(e) = f.push(c, &mut out) {
                error = Some(e);
                break;
            }
        }
        if error.is_none() {
            error = f.finish(&mut out).err();
        }
        let frames = out
            .into_iter()
            .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.truncated))
            .collect();
        (frames, error)
    }

    fn whole(v: &[&str]) -> Vec<(String, bool)> {
        v.iter().map(|s| ((*s).to_owned(), false)).collect()
    }

    #[test]
    fn delimited_frames_end_at_lf_crlf_or_nul() {
        let (f, e) = frames(100, &[b"<14>a\n<14>b\r\n<14>c\x00<14>d"]);
        assert_eq!(f, whole(&["<14>a", "<14>b", "<14>c", "<14>d"]));
        assert_eq!(e, None);
    }

    #[test]
    fn a_lone_cr_is_part_of_the_message() {
        let (f, _) = frames(100, &[b"<14>a\rb\n<14>c\r"]);
        assert_eq!(f, whole(&["<14>a\rb", "<14>c"]));
    }

    #[test]
    fn blank_lines_and_leading_line_breaks_are_skipped() {
        let (f, _) = frames(100, &[b"\r\n\n\x00<14>a\n\n\r\n<14>b\n"]);
        assert_eq!(f, whole(&["<14>a", "<14>b"]));
        let (f, _) = frames(100, &[b"\n\n", b"\r\n", b"11 <14>1 - - -"]);
        assert_eq!(f, whole(&["<14>1 - - -"]));
    }

    #[test]
    fn a_stream_that_starts_without_pri_is_delimited() {
        let (f, _) = frames(100, &[b"hello\nworld\n"]);
        assert_eq!(f, whole(&["hello", "world"]));
    }

    #[test]
    fn frames_split_across_pushes_are_joined() {
        let (f, _) = frames(100, &[b"<14>a", b"bc\r", b"\n<1", b"4>d\n"]);
        assert_eq!(f, whole(&["<14>abc", "<14>d"]));
        let (f, e) = frames(100, &[b"1", b"1 <14>hello w", b"7 <14>", b"abc"]);
        assert_eq!(f, whole(&["<14>hello w", "<14>abc"]));
        assert_eq!(e, None);
    }

    #[test]
    fn octet_counted_frames_follow_each_other() {
        let msg = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\"] An application event log entry...";
        let stream = format!("{} {msg}{} {msg}", msg.len(), msg.len());
        let (f, e) = frames(1000, &[stream.as_bytes()]);
        assert_eq!(f, whole(&[msg, msg]));
        assert_eq!(e, None);
    }

    #[test]
    fn octet_counted_frames_may_hold_line_breaks_and_be_followed_by_one() {
        let (f, e) = frames(100, &[b"7 <14>a\nb\n8 <14>c\r\nd\r\n"]);
        assert_eq!(f, whole(&["<14>a\nb", "<14>c\r\nd"]));
        assert_eq!(e, None);
    }

    #[test]
    fn octet_frame_over_the_limit_is_cut_marked_and_read_through() {
        let (f, e) = frames(
            10,
            &[b"5 <14>a3 <1", b"4", b"20 <14>0123456789abcdef5 <14>b"],
        );
        assert_eq!(
            f,
            vec![
                ("<14>a".to_owned(), false),
                ("<14".to_owned(), false),
                ("<14>012345".to_owned(), true),
                ("<14>b".to_owned(), false),
            ]
        );
        assert_eq!(e, None, "the connection goes on");
        // The rest is discarded as it arrives, whatever the reads.
        let mut f = Framer::new(10);
        let mut out = Vec::new();
        f.push(b"1000 <14>", &mut out).unwrap();
        for _ in 0..99 {
            f.push(&[b'x'; 10], &mut out).unwrap();
            assert!(f.buffered() <= 10 + 10);
        }
        f.push(b"xxxxxx4 <1", &mut out).unwrap();
        f.push(b"4>", &mut out).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].truncated && out[0].bytes.len() == 10);
        assert_eq!(&out[1].bytes[..], b"<14>");
        assert_eq!(f.take_discarded(), 990);
    }

    #[test]
    fn octet_length_over_the_hard_cap_closes_after_the_complete_frames() {
        let (f, e) = frames(10, &[b"5 <14>a", b"67108865 <14>"]);
        assert_eq!(f, whole(&["<14>a"]));
        assert_eq!(
            e,
            Some(FramingError::TooLong {
                len: 67_108_865,
                max: MAX_FRAME_BYTES
            })
        );
        assert_eq!(e.as_ref().map(FramingError::reason), Some("frame_too_long"));
        let (_, e) = frames(10, &[b"123456789012345678901234567890"]);
        assert_eq!(
            e,
            Some(FramingError::TooLong {
                len: u64::MAX,
                max: MAX_FRAME_BYTES
            })
        );
        // Found by fuzzing: the length reported must not depend on how the
        // digits were split into reads.
        let digits = b"000000000000001903661401 x";
        let whole = frames(13, &[digits]);
        for i in 0..digits.len() {
            assert_eq!(frames(13, &[&digits[..i], &digits[i..]]), whole);
        }
    }

    #[test]
    fn a_stream_ending_inside_a_frame_being_read_through_is_incomplete() {
        let (f, e) = frames(4, &[b"10 <14>abc"]);
        assert_eq!(f, vec![("<14>".to_owned(), true)]);
        assert_eq!(
            e,
            Some(FramingError::Incomplete {
                expected: 10,
                got: 7
            })
        );
    }

    #[test]
    fn octet_length_that_is_not_a_number_closes_the_connection() {
        let (f, e) = frames(100, &[b"5 <14>a<14>b\n"]);
        assert_eq!(f, whole(&["<14>a"]));
        assert_eq!(e, Some(FramingError::BadLength { found: '<' }));
        let (_, e) = frames(100, &[b"5\t<14>a"]);
        assert_eq!(e, Some(FramingError::BadLength { found: '\t' }));
        let (_, e) = frames(100, &[b"5 <14>a 5 <14>b"]);
        assert_eq!(e, Some(FramingError::BadLength { found: ' ' }));
        assert_eq!(
            e.as_ref().map(FramingError::reason),
            Some("bad_frame_length")
        );
    }

    #[test]
    fn pushes_after_an_error_repeat_it() {
        let mut f = Framer::new(100);
        let mut out = Vec::new();
        let e = f.push(b"5x ", &mut out);
        assert!(e.is_err());
        let e = f.push(b"1", &mut out);
        let e2 = f.push(b"5 <14>abcd", &mut out);
        assert!(e.is_err() && e == e2);
        assert!(out.is_empty());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn connection_closed_inside_an_octet_counted_frame_is_an_error() {
        let (f, e) = frames(100, &[b"5 <14>a10 <14>"]);
        assert_eq!(f, whole(&["<14>a"]));
        assert_eq!(
            e,
            Some(FramingError::Incomplete {
                expected: 10,
                got: 4
            })
        );
        assert_eq!(
            e.as_ref().map(FramingError::reason),
            Some("incomplete_frame")
        );
        let (_, e) = frames(100, &[b"5 <14>a1"]);
        assert_eq!(
            e,
            Some(FramingError::Incomplete {
                expected: 0,
                got: 0
            })
        );
        let (f, e) = frames(100, &[b"5 <14>a\n"]);
        assert_eq!((f, e), (whole(&["<14>a"]), None));
    }

    #[test]
    fn last_line_without_delimiter_is_a_frame_at_the_end() {
        let (f, _) = frames(100, &[b"<14>a\n<14>b"]);
        assert_eq!(f, whole(&["<14>a", "<14>b"]));
        let (f, _) = frames(100, &[b"<14>a\n<14>b\r"]);
        assert_eq!(f, whole(&["<14>a", "<14>b"]));
    }

    #[test]
    fn long_line_is_cut_marked_and_its_rest_discarded() {
        // Complete in one push, and spread over pushes: the same frames.
        let expect = vec![
            ("<14>123456".to_owned(), true),
            ("<14>ok".to_owned(), false),
            ("<14>abcdef".to_owned(), true),
        ];
        let mut f = Framer::new(10);
        let mut out = Vec::new();
        f.push(b"<14>1234567890\n<14>ok\n<14>abcdefghijk", &mut out)
            .expect("delimited");
        f.push(b"lmn\r\n", &mut out).expect("delimited");
        f.finish(&mut out).expect("delimited");
        let got: Vec<_> = out
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.truncated))
            .collect();
        assert_eq!(got, expect);
        // "7890", then "ghijk" and "lmn\r" (the CR of CRLF counts).
        assert_eq!(f.take_discarded(), 4 + 5 + 4);
        assert_eq!(f.take_discarded(), 0);

        let (got, _) = frames(10, &[b"<14>12345", b"67890", b"\n<14>ok\n"]);
        assert_eq!(&got[..], &expect[..2]);
    }

    #[test]
    fn line_of_exactly_the_limit_is_whole_even_with_crlf_split() {
        let (f, _) = frames(6, &[b"<14>ab\r", b"\n<14>cd\n"]);
        assert_eq!(f, whole(&["<14>ab", "<14>cd"]));
        let (f, _) = frames(6, &[b"<14>ab\r", b"x\n<14>cd\n"]);
        assert_eq!(
            f,
            vec![("<14>ab".to_owned(), true), ("<14>cd".to_owned(), false)]
        );
    }

    #[test]
    fn long_line_is_cut_at_a_character_boundary() {
        let (f, _) = frames(7, &["<14>aé€x\n".as_bytes()]);
        assert_eq!(f, vec![("<14>aé".to_owned(), true)]);
        let (f, _) = frames(7, &["<14>aé€".as_bytes(), b"x"]);
        assert_eq!(f, vec![("<14>aé".to_owned(), true)]);
    }

    #[test]
    fn a_connection_holds_at_most_the_limit_plus_one_read() {
        let max = 1000;
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let chunk = [b'x'; 300];
        f.push(b"<14>", &mut out).expect("delimited");
        for _ in 0..100 {
            f.push(&chunk, &mut out).expect("delimited");
            assert!(f.buffered() <= max + chunk.len());
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].truncated && out[0].bytes.len() == max);

        let mut f = Framer::new(max);
        let mut out = Vec::new();
        f.push(b"1000 ", &mut out).expect("octets");
        for _ in 0..3 {
            f.push(&chunk, &mut out).expect("octets");
            assert!(f.buffered() <= max + chunk.len());
        }
        f.push(b"x", &mut out).expect("octets");
        assert_eq!(out.len(), 0);
        f.push(&chunk[..99], &mut out).expect("octets");
        assert_eq!(out.len(), 1);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_frames() {
        let streams: [&[u8]; 5] = [
            b"<14>a\r\n<14>bcdefghijklmnop\n\n<14>c\x00<14>d\r",
            b"\n5 <14>a\n12 <14>bcdefghi\n3 <14",
            b"5 <14>a99 <14>",
            "<14>é€é€é€é€é\n<14>x".as_bytes(),
            "30 <14>é€é€é€é€é€é€é€é€4 <14>".as_bytes(),
        ];
        for stream in streams {
            let reference = frames(12, &[stream]);
            for i in 0..=stream.len() {
                for j in i..=stream.len() {
                    let got = frames(12, &[&stream[..i], &stream[i..j], &stream[j..]]);
                    assert_eq!(got, reference, "{stream:?} split at {i}, {j}");
                }
            }
        }
    }

    #[test]
    fn huge_limit_does_not_overflow() {
        let (f, _) = frames(usize::MAX, &[b"<14>a\n<14>b"]);
        assert_eq!(f, whole(&["<14>a", "<14>b"]));
        let (f, e) = frames(usize::MAX, &[b"5 <14>a"]);
        assert_eq!((f, e), (whole(&["<14>a"]), None));
    }
}
