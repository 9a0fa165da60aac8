//! The byte layout of a queue record header and of the position file.
//!
//! `docs/queue-format.md` describes the same layout for people; keep the two in step.
//! Everything is little-endian. Checksums are CRC-32C (Castagnoli), hardware
//! accelerated on x86-64 (SSE 4.2) and aarch64 by the `crc32c` crate.

/// Bytes in a record header; the payload follows it directly.
pub(crate) const HEADER_LEN: usize = 32;
/// Same as [`HEADER_LEN`], for file offset arithmetic.
pub(crate) const HEADER_LEN_U64: u64 = HEADER_LEN as u64;

/// First two bytes of every record. Not ASCII and not zero, so neither log text nor
/// zero-filled blocks look like a record start when recovery scans for the next one.
pub(crate) const MAGIC: [u8; 2] = [0xC4, 0x51];
/// Format version of a record; byte 2 of the header.
pub(crate) const VERSION: u8 = 1;

/// The largest payload one record may carry. A length field above it is corrupt even
/// if its checksum matches, so a reader never allocates more than this for one entry.
pub const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

/// Bytes in the position file.
pub(crate) const POSITION_LEN: usize = 28;
const POSITION_MAGIC: [u8; 4] = *b"CQPO";
const POSITION_VERSION: u8 = 1;

/// Why a stretch of a segment is not a valid record.
///
/// The names double as the `reason` written into quarantine notes and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadReason {
    /// The first two bytes are not [`MAGIC`] (garbage, zeros, a shifted record).
    BadMagic,
    /// The header checksum does not match: a flipped bit, a zeroed length, a torn header.
    HeaderCrc,
    /// Checksum fine but the version or flags byte is one this code does not read.
    UnknownVersion,
    /// Checksum fine but the length is above [`MAX_PAYLOAD_BYTES`] or the sequence
    /// number is zero.
    BadField,
    /// Fewer bytes than the header announces: the record was cut short.
    Truncated,
    /// The payload does not match its checksum.
    PayloadCrc,
    /// A sequence number not above the one before it (a stale or misplaced record).
    SeqOutOfOrder,
}

impl BadReason {
    /// A short stable name for notes and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BadMagic => "bad_magic",
            Self::HeaderCrc => "header_crc",
            Self::UnknownVersion => "unknown_version",
            Self::BadField => "bad_field",
            Self::Truncated => "truncated",
            Self::PayloadCrc => "payload_crc",
            Self::SeqOutOfOrder => "seq_out_of_order",
        }
    }
}

/// The decoded header of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Payload bytes after the header.
    pub len: u32,
    /// The entry's sequence number, ≥ 1, increasing through the queue.
    pub seq: u64,
    /// When the entry was appended, in milliseconds since the Unix epoch; kept on disk so
    /// the age of the oldest unacknowledged entry survives a restart.
    pub appended_ms: u64,
    /// CRC-32C of the payload.
    pub payload_crc: u32,
}

impl Header {
    /// The record's total size on disk.
    pub(crate) fn record_len(&self) -> u64 {
        HEADER_LEN_U64 + u64::from(self.len)
    }

    /// Encodes the header, computing its own checksum.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = VERSION;
        b[3] = 0; // flags, none defined in version 1
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.appended_ms.to_le_bytes());
        b[24..28].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header. `b` must hold at least [`HEADER_LEN`] bytes.
    pub(crate) fn decode(b: &[u8]) -> Result<Header, BadReason> {
        let Some(b) = b.get(..HEADER_LEN) else {
            return Err(BadReason::Truncated);
        };
        if b[0..2] != MAGIC {
            return Err(BadReason::BadMagic);
        }
        if crc32c::crc32c(&b[0..28]) != le_u32(&b[28..32]) {
            return Err(BadReason::HeaderCrc);
        }
        if b[2] != VERSION || b[3] != 0 {
            return Err(BadReason::UnknownVersion);
        }
        let header = Header {
            len: le_u32(&b[4..8]),
            seq: le_u64(&b[8..16]),
            appended_ms: le_u64(&b[16..24]),
            payload_crc: le_u32(&b[24..28]),
        };
        if header.len > MAX_PAYLOAD_BYTES || header.seq == 0 {
            return Err(BadReason::BadField);
        }
        Ok(header)
    }
}

/// The consumer's persisted progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Position {
    /// Every entry with a sequence number ≤ this is consumed (0: none yet).
    pub acked: u64,
    /// A lower bound for the next sequence number, so numbers are never reused even
    /// when every segment holding higher ones has been deleted.
    pub next_seq: u64,
}

impl Position {
    pub(crate) fn encode(&self) -> [u8; POSITION_LEN] {
        let mut b = [0u8; POSITION_LEN];
        b[0..4].copy_from_slice(&POSITION_MAGIC);
        b[4] = POSITION_VERSION;
        b[8..16].copy_from_slice(&self.acked.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_seq.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` when the bytes are not a valid position file of this version.
    pub(crate) fn decode(b: &[u8]) -> Option<Position> {
        if b.len() != POSITION_LEN
            || b[0..4] != POSITION_MAGIC
            || b[4] != POSITION_VERSION
            || b[5..8] != [0, 0, 0]
            || crc32c::crc32c(&b[0..24]) != le_u32(&b[24..28])
        {
            return None;
        }
        Some(Position {
            acked: le_u64(&b[8..16]),
            next_seq: le_u64(&b[16..24]),
        })
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The file name of the segment whose first entry has sequence number ≥ `base`.
/// Twenty digits keep the names sorting in number order.
pub(crate) fn segment_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// The base sequence number of a segment file name, or `None` for any other file.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_every_single_bit_flip() {
        let h = Header {
            len: 1234,
            seq: 42,
            appended_ms: 1_700_000_000_000,
            payload_crc: 0xDEAD_BEEF,
        };
        let b = h.encode();
        assert_eq!(Header::decode(&b), Ok(h));
        for bit in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Header::decode(&c).is_err(),
                "flip of bit {bit} not detected"
            );
        }
    }

    #[test]
    fn a_zeroed_length_is_detected() {
        let h = Header {
            len: 77,
            seq: 1,
            appended_ms: 5,
            payload_crc: 9,
        };
        let mut b = h.encode();
        b[4..8].fill(0);
        assert_eq!(Header::decode(&b), Err(BadReason::HeaderCrc));
        assert_eq!(Header::decode(&[0u8; HEADER_LEN]), Err(BadReason::BadMagic));
        assert_eq!(Header::decode(&b[..10]), Err(BadReason::Truncated));
    }

    #[test]
    fn position_round_trips_and_rejects_damage() {
        let p = Position {
            acked: 7,
            next_seq: 99,
        };
        let b = p.encode();
        assert_eq!(Position::decode(&b), Some(p));
        let mut c = b;
        c[9] ^= 4;
        assert_eq!(Position::decode(&c), None);
        assert_eq!(Position::decode(&b[..20]), None);
    }

    #[test]
    fn segment_names_sort_and_parse() {
        assert_eq!(segment_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("1.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.seg"), None);
        assert_eq!(parse_segment_name("99999999999999999999.seg"), None);
    }
}
