//! Walking a segment file record by record, and finding the next valid record after
//! damage. Shared by recovery ([`super::Queue::open`]), reading, acknowledging and
//! [`super::verify`], so all of them agree on what a valid record is.
//!
//! Memory stays bounded: a [`SegReader`] holds one fixed read buffer, and payloads are
//! checked in buffer-sized pieces unless the caller asked for them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{BadReason, Header, HEADER_LEN, HEADER_LEN_U64, MAGIC};

/// Size of the read buffer of one [`SegReader`].
const READ_BUF: usize = 256 * 1024;

/// A read-only handle on one segment file with a small read-ahead buffer, so walking
/// many small records costs one `pread` per buffer, not two per record.
pub(crate) struct SegReader {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_off: u64,
    /// Valid bytes in `buf`.
    buf_len: usize,
}

impl SegReader {
    pub(crate) fn open(path: &Path) -> io::Result<SegReader> {
        Ok(SegReader {
            file: File::open(path)?,
            buf: vec![0; READ_BUF],
            buf_off: 0,
            buf_len: 0,
        })
    }

    pub(crate) fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Up to `n` (≤ the buffer size) bytes at `off`; fewer only at the end of the file.
    ///
    /// The segment files are append-only while a reader exists, so bytes once buffered
    /// never change; bytes past the end at fill time are simply not buffered.
    pub(crate) fn peek(&mut self, off: u64, n: usize) -> io::Result<&[u8]> {
        let n = n.min(READ_BUF);
        let buf_end = self.buf_off + self.buf_len as u64;
        if off < self.buf_off || off + n as u64 > buf_end {
            self.fill(off)?;
        }
        // `off >= buf_off` and `off - buf_off <= buf_len` hold after a fill, and before
        // one only when the range was inside the buffer.
        let start = usize::try_from(off - self.buf_off).unwrap_or(usize::MAX);
        let start = start.min(self.buf_len);
        let end = start.saturating_add(n).min(self.buf_len);
        Ok(&self.buf[start..end])
    }

    fn fill(&mut self, off: u64) -> io::Result<()> {
        self.buf_off = off;
        self.buf_len = 0;
        while self.buf_len < self.buf.len() {
            match self
                .file
                .read_at(&mut self.buf[self.buf_len..], off + self.buf_len as u64)
            {
                Ok(0) => break,
                Ok(n) => self.buf_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf_len = 0;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Fills `out` from `off`; `Ok(false)` when the file ends first.
    pub(crate) fn read_exact_at(&mut self, off: u64, out: &mut [u8]) -> io::Result<bool> {
        if out.len() <= READ_BUF {
            let got = self.peek(off, out.len())?;
            if got.len() < out.len() {
                return Ok(false);
            }
            out.copy_from_slice(got);
            return Ok(true);
        }
        match self.file.read_exact_at(out, off) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// CRC-32C of `len` bytes at `off`, or `None` when the file ends first.
    pub(crate) fn crc_range(&mut self, off: u64, len: u64) -> io::Result<Option<u32>> {
        let mut crc = 0u32;
        let mut done = 0u64;
        while done < len {
            let want = usize::try_from(len - done)
                .unwrap_or(READ_BUF)
                .min(READ_BUF);
            let chunk = self.peek(off + done, want)?;
            if chunk.is_empty() {
                return Ok(None);
            }
            crc = crc32c::crc32c_append(crc, chunk);
            done += chunk.len() as u64;
        }
        Ok(Some(crc))
    }

    /// Whether every byte in `start..end` is zero (or missing): the signature of blocks
    /// that were allocated but never written before a crash.
    pub(crate) fn is_zero(&mut self, start: u64, end: u64) -> io::Result<bool> {
        let mut off = start;
        while off < end {
            let want = usize::try_from(end - off).unwrap_or(READ_BUF).min(READ_BUF);
            let chunk = self.peek(off, want)?;
            if chunk.is_empty() {
                return Ok(true);
            }
            if chunk.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            off += chunk.len() as u64;
        }
        Ok(true)
    }
}

/// How much of a record [`next_item`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only the header (its checksum covers length and sequence number); payloads are
    /// checked later, when they are read.
    Headers,
    /// Header and payload checksum, without keeping the payload.
    Verify,
    /// Header and payload checksum, returning the payload.
    Load,
}

/// A stretch of bytes that is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRegion {
    pub start: u64,
    /// Where the next valid record starts, or the end of the scanned range.
    pub end: u64,
    /// Why the first record in the stretch is bad.
    pub reason: BadReason,
    /// The sequence number of the first record, when its header was intact (a torn
    /// write or a damaged payload); `None` when the header itself is damaged.
    pub seq: Option<u64>,
    /// The highest intact-header sequence number in the stretch, if any.
    pub max_seq: Option<u64>,
}

impl BadRegion {
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Grows `self` by the stretch that follows it directly.
    fn absorb(&mut self, next: &BadRegion) {
        self.end = next.end;
        self.max_seq = self.max_seq.max(next.max_seq);
    }
}

/// One step of a walk through a segment.
#[derive(Debug)]
pub(crate) enum Item {
    Record {
        header: Header,
        start: u64,
        end: u64,
        /// The payload in [`Mode::Load`], otherwise `None`.
        payload: Option<Vec<u8>>,
    },
    Bad(BadRegion),
    /// `pos` reached `bound`.
    End,
}

/// Reads the item at `pos`, looking no further than `bound` (the end of the data
/// that may be read: the file length, or the synced length for readers).
///
/// `prev_seq` is the sequence number of the record before `pos` (or a lower bound of
/// it): a record must be above it to be valid. A damaged header is skipped by
/// scanning forward for the next valid record (see [`resync`]); a record with an
/// intact header but a damaged payload is skipped by its length, which the header
/// checksum vouches for.
///
/// # Errors
/// Only I/O errors reading the file; bad bytes are reported as [`Item::Bad`].
pub(crate) fn next_item(
    r: &mut SegReader,
    pos: u64,
    bound: u64,
    prev_seq: u64,
    mode: Mode,
) -> io::Result<Item> {
    if pos >= bound {
        return Ok(Item::End);
    }
    let decoded = if bound - pos < HEADER_LEN_U64 {
        Err(BadReason::Truncated)
    } else {
        Header::decode(r.peek(pos, HEADER_LEN)?)
    };
    let header = match decoded {
        Ok(h) => h,
        Err(reason) => {
            let end = resync(r, pos + 1, bound, prev_seq)?;
            return Ok(Item::Bad(BadRegion {
                start: pos,
                end,
                reason,
                seq: None,
                max_seq: None,
            }));
        }
    };
    let bad = |end: u64, reason: BadReason| {
        Item::Bad(BadRegion {
            start: pos,
            end,
            reason,
            seq: Some(header.seq),
            max_seq: Some(header.seq),
        })
    };
    let end = pos + header.record_len();
    if end > bound {
        // An intact header whose payload runs past the end: a torn write at the tail,
        // or damage. Anything valid inside it is found by scanning.
        let resume = resync(r, pos + 1, bound, prev_seq)?;
        return Ok(bad(resume, BadReason::Truncated));
    }
    if header.seq <= prev_seq {
        return Ok(bad(end, BadReason::SeqOutOfOrder));
    }
    let payload_at = pos + HEADER_LEN_U64;
    match mode {
        Mode::Headers => Ok(Item::Record {
            header,
            start: pos,
            end,
            payload: None,
        }),
        Mode::Verify => match r.crc_range(payload_at, u64::from(header.len))? {
            Some(crc) if crc == header.payload_crc => Ok(Item::Record {
                header,
                start: pos,
                end,
                payload: None,
            }),
            Some(_) => Ok(bad(end, BadReason::PayloadCrc)),
            None => Ok(bad(bound, BadReason::Truncated)),
        },
        Mode::Load => {
            // The header checksum vouches for the length, and the length is at most
            // MAX_PAYLOAD_BYTES, so this allocation is bounded.
            let mut payload = vec![0u8; header.len as usize];
            if !r.read_exact_at(payload_at, &mut payload)? {
                return Ok(bad(bound, BadReason::Truncated));
            }
            if crc32c::crc32c(&payload) != header.payload_crc {
                return Ok(bad(end, BadReason::PayloadCrc));
            }
            Ok(Item::Record {
                header,
                start: pos,
                end,
                payload: Some(payload),
            })
        }
    }
}

/// The offset of the first valid record at or after `from` (before `bound`), or
/// `bound` if there is none.
///
/// A candidate must carry the magic bytes, an intact header checksum, a sequence
/// number above `prev_seq`, fit before `bound`, *and* match its payload checksum:
/// two independent 32-bit checksums, so random or zeroed bytes are not mistaken for a
/// record.
fn resync(r: &mut SegReader, from: u64, bound: u64, prev_seq: u64) -> io::Result<u64> {
    let mut p = from;
    while p.saturating_add(HEADER_LEN_U64) <= bound {
        let want = usize::try_from(bound - p).unwrap_or(READ_BUF).min(READ_BUF);
        let chunk = r.peek(p, want)?;
        if chunk.len() < HEADER_LEN {
            break;
        }
        let found = chunk.windows(MAGIC.len()).position(|w| w == MAGIC);
        match found {
            None => p += (chunk.len() - 1) as u64, // the last byte may start a magic
            Some(i) => {
                let candidate = p + i as u64;
                if is_valid_record_at(r, candidate, bound, prev_seq)? {
                    return Ok(candidate);
                }
                p = candidate + 1;
            }
        }
    }
    Ok(bound)
}

fn is_valid_record_at(r: &mut SegReader, at: u64, bound: u64, prev_seq: u64) -> io::Result<bool> {
    if bound - at < HEADER_LEN_U64 {
        return Ok(false);
    }
    let Ok(h) = Header::decode(r.peek(at, HEADER_LEN)?) else {
        return Ok(false);
    };
    if h.seq <= prev_seq || at + h.record_len() > bound {
        return Ok(false);
    }
    Ok(r.crc_range(at + HEADER_LEN_U64, u64::from(h.len))? == Some(h.payload_crc))
}

/// What a whole-segment walk found.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    /// Valid records.
    pub records: u64,
    /// Sequence number of the last valid record.
    pub last_seq: Option<u64>,
    /// Bad bytes after the last valid record (up to the end of the file), merged.
    pub tail: Option<BadRegion>,
}

/// What [`scan_segment`] reports as it walks.
pub(crate) enum Visit<'a> {
    Record {
        header: &'a Header,
        start: u64,
    },
    /// Bad bytes followed by a valid record with sequence number `next_seq`.
    Bad {
        region: &'a BadRegion,
        next_seq: u64,
    },
}

/// Walks a whole segment of `len` bytes, calling `visit` for each valid record and each
/// bad stretch that has a valid record after it. Bad bytes with no valid record after
/// them are returned as [`SegmentScan::tail`] instead, since whether they are a torn
/// write or damage depends on where the segment sits in the queue.
///
/// # Errors
/// I/O errors reading the file, and whatever `visit` returns.
pub(crate) fn scan_segment(
    r: &mut SegReader,
    len: u64,
    mut prev_seq: u64,
    mode: Mode,
    mut visit: impl FnMut(Visit<'_>) -> io::Result<()>,
) -> io::Result<SegmentScan> {
    let mut scan = SegmentScan::default();
    let mut pending: Option<BadRegion> = None;
    let mut pos = 0;
    loop {
        match next_item(r, pos, len, prev_seq, mode)? {
            Item::End => break,
            Item::Bad(region) => {
                pos = region.end;
                match &mut pending {
                    Some(p) => p.absorb(&region),
                    None => pending = Some(region),
                }
            }
            Item::Record {
                header, start, end, ..
            } => {
                if let Some(region) = pending.take() {
                    visit(Visit::Bad {
                        region: &region,
                        next_seq: header.seq,
                    })?;
                }
                visit(Visit::Record {
                    header: &header,
                    start,
                })?;
                scan.records += 1;
                scan.last_seq = Some(header.seq);
                prev_seq = header.seq;
                pos = end;
            }
        }
    }
    scan.tail = pending;
    Ok(scan)
}

/// Whether bad bytes at the end of the *last* segment look like a write that a crash
/// interrupted (cut off silently) rather than damage (quarantined): a record whose
/// intact header promises more bytes than reached the disk or whose payload did not
/// all reach it, a header cut short, or blocks allocated but never written (zeros).
///
/// # Errors
/// I/O errors reading the file.
pub(crate) fn tail_is_torn(r: &mut SegReader, tail: &BadRegion) -> io::Result<bool> {
    let torn_record =
        tail.seq.is_some() && matches!(tail.reason, BadReason::Truncated | BadReason::PayloadCrc);
    Ok(torn_record || tail.len() < HEADER_LEN_U64 || r.is_zero(tail.start, tail.end)?)
}
