//! Binary COPY encoding of a batch of records.
//!
//! A batch is encoded once, row by row, into one buffer, remembering where each row
//! ends. Any contiguous run of rows can then be sent as a complete COPY stream
//! (header + rows + trailer) without encoding again: a retry resends the same bytes,
//! and isolating a row PostgreSQL refuses (bisection) costs no re-encoding.
//!
//! Values are encoded by `postgres-types` (`ToSql`), so the wire format of each type
//! is the driver's, not ours; only the COPY framing is written here
//! (PostgreSQL docs, "COPY ... Binary Format").

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_postgres::types::{Json, ToSql, Type};

use crate::record::Record;

/// The statement the encoded rows are meant for.
pub const COPY_LOGS: &str = "COPY chute.logs (ts, received_at, tenant, host, app, procid, \
     msgid, severity, facility, message, fields) FROM STDIN (FORMAT binary)";

/// Column types, in the order of [`COPY_LOGS`].
const TYPES: [Type; 11] = [
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT2,
    Type::TEXT,
    Type::JSONB,
];

/// Signature, flags and header-extension length of a binary COPY stream.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends a binary COPY stream.
const TRAILER: &[u8] = &[0xff, 0xff];

/// A batch encoded as binary COPY rows.
pub struct EncodedRows {
    rows: Bytes,
    /// `ends[i]` is the offset just past row `i` in `rows`.
    ends: Vec<usize>,
}

/// Encoding failed; only possible for a value the driver cannot encode, which the
/// ingest validation rules out. Reported per row so the row can be set aside.
#[derive(Debug, thiserror::Error)]
#[error("row {row} cannot be encoded: {error}")]
pub struct EncodeError {
    pub row: usize,
    pub error: String,
}

impl EncodedRows {
    /// Encodes every record, in order.
    ///
    /// # Errors
    /// The first record a value of which cannot be encoded.
    pub fn encode(records: &[Record]) -> Result<EncodedRows, EncodeError> {
        let mut buf = BytesMut::with_capacity(records.len() * 256);
        let mut ends = Vec::with_capacity(records.len());
        for (row, r) in records.iter().enumerate() {
            let values: [&(dyn ToSql + Sync); 11] = [
                &r.ts,
                &r.received_at,
                &r.tenant,
                &r.host,
                &r.app,
                &r.procid,
                &r.msgid,
                &r.severity,
                &r.facility,
                &r.message,
                &Json(&r.fields),
            ];
            buf.put_i16(values.len() as i16);
            for (value, ty) in values.iter().zip(TYPES.iter()) {
                let len_at = buf.len();
                buf.put_i32(0);
                let is_null = value
                    .to_sql_checked(ty, &mut buf)
                    .map_err(|e| EncodeError {
                        row,
                        error: e.to_string(),
                    })?;
                let len = match is_null {
                    tokio_postgres::types::IsNull::Yes => -1,
                    tokio_postgres::types::IsNull::No => (buf.len() - len_at - 4) as i32,
                };
                buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            }
            ends.push(buf.len());
        }
        Ok(EncodedRows {
            rows: buf.freeze(),
            ends,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// A complete COPY stream for rows `range`, as chunks to send in order.
    pub fn stream(&self, range: Range<usize>) -> [Bytes; 3] {
        let start = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1]
        };
        let end = if range.end == 0 {
            0
        } else {
            self.ends[range.end - 1]
        };
        [
            Bytes::from_static(HEADER),
            self.rows.slice(start..end),
            Bytes::from_static(TRAILER),
        ]
    }

    /// Encoded size of rows `range`, in bytes.
    pub fn bytes(&self, range: Range<usize>) -> usize {
        self.stream(range).iter().map(Bytes::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn record(msg: &str) -> Record {
        Record {
            ts: Utc::now(),
            received_at: Utc::now(),
            tenant: "t".into(),
            host: Some("h".into()),
            app: None,
            procid: None,
            msgid: None,
            severity: Some(6),
            facility: None,
            message: msg.into(),
            fields: Default::default(),
        }
    }

    #[test]
    fn each_row_range_is_a_complete_stream() {
        let rows = EncodedRows::encode(&[record("a"), record("bb"), record("ccc")]).unwrap();
        assert_eq!(rows.len(), 3);
        let all = rows.bytes(0..3);
        let parts = rows.bytes(0..1) + rows.bytes(1..2) + rows.bytes(2..3);
        // Each part carries its own header and trailer.
        assert_eq!(parts, all + 2 * (HEADER.len() + TRAILER.len()));
        let [h, body, t] = rows.stream(1..2);
        assert_eq!(&h[..], HEADER);
        assert_eq!(&t[..], TRAILER);
        assert_eq!(i16::from_be_bytes([body[0], body[1]]), 11);
        assert!(body.windows(2).any(|w| w == b"bb"));
    }
}
