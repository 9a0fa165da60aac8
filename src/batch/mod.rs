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

pub mod bloom;
pub mod wire;

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

/// A batch encoded as binary COPY rows. Cloning is cheap (shared bytes).
#[derive(Clone)]
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
        let mut buf = BytesMut::with_capacity(encoded_size_hint(records));
        let mut ends = Vec::with_capacity(records.len());
        encode_rows(records, &mut buf, &mut ends)?;
        Ok(EncodedRows {
            rows: buf.freeze(),
            ends,
        })
    }

    /// Encodes every record straight into the payload layout of
    /// [`EncodedRows::to_payload`] (the same bytes), without encoding into a buffer of
    /// its own first and copying: the row count, hence the size of the offset table,
    /// is known before the rows are.
    ///
    /// # Errors
    /// As [`EncodedRows::encode`].
    pub fn encode_payload(
        records: &[Record],
        prefix: &[u8],
        origin: Option<&str>,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut buf = BytesMut::with_capacity(64 + 4 * records.len() + encoded_size_hint(records));
        put_payload_head(&mut buf, prefix, origin, records.len());
        let offsets_at = buf.len();
        buf.put_bytes(0, 4 * records.len());
        let rows_at = buf.len();
        let mut ends = Vec::with_capacity(records.len());
        encode_rows(records, &mut buf, &mut ends)?;
        for (i, end) in ends.iter().enumerate() {
            let at = offsets_at + 4 * i;
            buf[at..at + 4].copy_from_slice(&((end - rows_at) as u32).to_be_bytes());
        }
        Ok(buf.into())
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

    /// A complete COPY stream of every row of several batches, one after another,
    /// without copying their bytes.
    pub fn stream_all(parts: &[&EncodedRows]) -> Vec<Bytes> {
        let mut chunks = Vec::with_capacity(parts.len() + 2);
        chunks.push(Bytes::from_static(HEADER));
        chunks.extend(parts.iter().map(|p| p.rows.clone()));
        chunks.push(Bytes::from_static(TRAILER));
        chunks
    }

    /// Encoded size of rows `range`, in bytes.
    pub fn bytes(&self, range: Range<usize>) -> usize {
        self.stream(range).iter().map(Bytes::len).sum()
    }
}

/// Version byte of the batch payload stored in queues and sent between nodes.
const PAYLOAD_VERSION: u8 = 1;

/// A payload that does not hold a well-formed batch. The queue's CRC rules out disk
/// corruption, so this means a bug or a peer speaking another version.
#[derive(Debug, thiserror::Error)]
#[error("malformed batch payload: {0}")]
pub struct PayloadError(pub &'static str);

impl EncodedRows {
    /// The batch as one self-contained byte string, for a queue entry or a peer:
    ///
    /// ```text
    /// u8  version (1)
    /// u16 origin length, then the origin batch id (UTF-8; empty = assigned locally)
    /// u32 row count N, then N x u32 offsets just past each row (from the rows' start)
    /// the rows, in binary COPY row format
    /// ```
    /// All integers big-endian, as in COPY itself. `prefix` goes first, untouched
    /// (a peer link's queue puts the shard id there).
    pub fn to_payload(&self, prefix: &[u8], origin: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(prefix.len() + 64 + 4 * self.ends.len() + self.rows.len());
        put_payload_head(&mut out, prefix, origin, self.ends.len());
        for end in &self.ends {
            out.put_u32(*end as u32);
        }
        out.extend_from_slice(&self.rows);
        out
    }

    /// The batch as payloads of at most `max_bytes` each (a single row larger than
    /// that goes alone into one), for a queue whose entries must stay small enough
    /// to forward. Unsplit, the one payload keeps `origin`; split, part `i` is named
    /// `<origin>#<i>`: the same rows always split the same way, so a retried request
    /// gives the same ids and is stored once.
    pub fn to_payloads(
        &self,
        prefix: &[u8],
        origin: Option<&str>,
        max_bytes: usize,
    ) -> Vec<Vec<u8>> {
        // Version, origin (with room for the part number), row count.
        let head = prefix.len() + 3 + origin.map_or(0, |o| o.len() + 8) + 4;
        let mut ranges = Vec::new();
        let (mut start, mut size, mut prev_end) = (0, head, 0);
        for (i, &end) in self.ends.iter().enumerate() {
            let add = 4 + end - prev_end;
            if i > start && size + add > max_bytes {
                ranges.push(start..i);
                (start, size) = (i, head);
            }
            size += add;
            prev_end = end;
        }
        if ranges.is_empty() {
            return vec![self.to_payload(prefix, origin)];
        }
        ranges.push(start..self.len());
        ranges
            .into_iter()
            .enumerate()
            .map(|(n, range)| {
                let id = origin.map(|o| format!("{o}#{n}"));
                self.slice(range).to_payload(prefix, id.as_deref())
            })
            .collect()
    }

    /// Rows `range` as a batch of their own (shared bytes, not copied).
    pub fn slice(&self, range: Range<usize>) -> EncodedRows {
        let at = |i: usize| if i == 0 { 0 } else { self.ends[i - 1] };
        let (base, end) = (at(range.start), at(range.end));
        EncodedRows {
            rows: self.rows.slice(base..end),
            ends: self.ends[range].iter().map(|e| e - base).collect(),
        }
    }

    /// Reads a payload written by [`EncodedRows::to_payload`]. Returns the origin
    /// batch id (None when it was assigned locally) and the rows.
    ///
    /// # Errors
    /// A payload that is truncated, of another version, or whose offsets are not
    /// increasing within the rows.
    pub fn from_payload(payload: Bytes) -> Result<(Option<String>, EncodedRows), PayloadError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<Bytes, PayloadError> {
            if payload.len() < at + n {
                return Err(PayloadError("truncated"));
            }
            at += n;
            Ok(payload.slice(at - n..at))
        };
        if take(1)?[0] != PAYLOAD_VERSION {
            return Err(PayloadError("unknown version"));
        }
        let origin_len = u16::from_be_bytes([take(1)?[0], take(1)?[0]]) as usize;
        let origin = String::from_utf8(take(origin_len)?.to_vec())
            .map_err(|_| PayloadError("origin is not UTF-8"))?;
        let count_bytes = take(4)?;
        let count = u32::from_be_bytes([
            count_bytes[0],
            count_bytes[1],
            count_bytes[2],
            count_bytes[3],
        ]) as usize;
        let offsets = take(
            count
                .checked_mul(4)
                .ok_or(PayloadError("row count overflows"))?,
        )?;
        let rows = payload.slice(at..);
        let mut ends = Vec::with_capacity(count);
        let mut last = 0usize;
        for chunk in offsets.chunks_exact(4) {
            let end = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
            if end < last || end > rows.len() {
                return Err(PayloadError("row offsets out of order"));
            }
            ends.push(end);
            last = end;
        }
        if last != rows.len() {
            return Err(PayloadError("bytes after the last row"));
        }
        let origin = (!origin.is_empty()).then_some(origin);
        Ok((origin, EncodedRows { rows, ends }))
    }

    /// Joins several batches into one, so they can go to PostgreSQL in one COPY.
    pub fn concat(parts: &[&EncodedRows]) -> EncodedRows {
        let len = parts.iter().map(|p| p.rows.len()).sum();
        let mut rows = BytesMut::with_capacity(len);
        let mut ends = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            let base = rows.len();
            ends.extend(p.ends.iter().map(|e| base + e));
            rows.extend_from_slice(&p.rows);
        }
        EncodedRows {
            rows: rows.freeze(),
            ends,
        }
    }

    /// Checks that every row is a well-formed row of [`COPY_LOGS`]: 11 fields whose
    /// lengths add up to the row (a batch from a peer is checked before it is queued;
    /// the values themselves are checked by PostgreSQL).
    ///
    /// # Errors
    /// The first malformed row.
    pub fn validate(&self) -> Result<(), PayloadError> {
        let mut start = 0;
        for &end in &self.ends {
            split_fields(&self.rows[start..end]).ok_or(PayloadError("malformed row"))?;
            start = end;
        }
        Ok(())
    }

    /// Decodes row `i` back into a record: needed only to store a row PostgreSQL
    /// refused into `chute.rejected`.
    ///
    /// # Errors
    /// The row is not a well-formed row of [`COPY_LOGS`].
    pub fn decode(&self, i: usize) -> Result<Record, PayloadError> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let row = &self.rows[start..self.ends[i]];
        let fields = split_fields(row).ok_or(PayloadError("malformed row"))?;
        fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
            raw: Option<&'a [u8]>,
            ty: &Type,
        ) -> Result<Option<T>, PayloadError> {
            raw.map(|b| T::from_sql(ty, b))
                .transpose()
                .map_err(|_| PayloadError("malformed value"))
        }
        fn need<T>(v: Option<T>) -> Result<T, PayloadError> {
            v.ok_or(PayloadError("missing value"))
        }
        Ok(Record {
            ts: need(get(fields[0], &TYPES[0])?)?,
            received_at: need(get(fields[1], &TYPES[1])?)?,
            tenant: need(get(fields[2], &TYPES[2])?)?,
            host: get(fields[3], &TYPES[3])?,
            app: get(fields[4], &TYPES[4])?,
            procid: get(fields[5], &TYPES[5])?,
            msgid: get(fields[6], &TYPES[6])?,
            severity: get(fields[7], &TYPES[7])?,
            facility: get(fields[8], &TYPES[8])?,
            message: need(get(fields[9], &TYPES[9])?)?,
            fields: need(get::<Json<serde_json::Map<String, serde_json::Value>>>(
                fields[10], &TYPES[10],
            )?)?
            .0,
            sd: None,
        })
    }
}

/// The version byte in front of JSONB's text in its binary form.
const JSONB_VERSION: u8 = 1;

/// Bytes to reserve for encoding `records`: their messages plus what the other
/// columns take in a typical row, so a batch's buffer rarely has to grow.
fn encoded_size_hint(records: &[Record]) -> usize {
    records.iter().map(|r| 192 + r.message.len()).sum()
}

/// Appends each record as a binary COPY row to `buf`, and the offset just past it
/// to `ends`.
fn encode_rows(
    records: &[Record],
    buf: &mut BytesMut,
    ends: &mut Vec<usize>,
) -> Result<(), EncodeError> {
    // serde_json writes a map in many small pieces: into a Vec they cost a few
    // instructions each, through a BytesMut writer several times that. So `fields`
    // goes into a scratch Vec first, then into the row in one piece.
    let mut json = Vec::with_capacity(256);
    let mut order = Vec::new();
    for (row, r) in records.iter().enumerate() {
        let values: [&(dyn ToSql + Sync); 10] = [
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
        ];
        buf.put_i16(TYPES.len() as i16);
        for (value, ty) in values.iter().zip(TYPES.iter()) {
            let len_at = buf.len();
            buf.put_i32(0);
            let is_null = value.to_sql_checked(ty, buf).map_err(|e| EncodeError {
                row,
                error: e.to_string(),
            })?;
            let len = match is_null {
                tokio_postgres::types::IsNull::Yes => -1,
                tokio_postgres::types::IsNull::No => (buf.len() - len_at - 4) as i32,
            };
            buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        }
        json.clear();
        write_fields(r, &mut json, &mut order).map_err(|e| EncodeError {
            row,
            error: e.to_string(),
        })?;
        let len = i32::try_from(json.len() + 1).map_err(|_| EncodeError {
            row,
            error: "fields too large for one value".to_owned(),
        })?;
        buf.put_i32(len);
        buf.put_u8(JSONB_VERSION);
        buf.put_slice(&json);
        ends.push(buf.len());
    }
    Ok(())
}

/// Writes the `fields` column's JSON: `fields`, with the structured data under
/// `sd` when the record has some.
fn write_fields(r: &Record, out: &mut Vec<u8>, order: &mut Vec<u32>) -> serde_json::Result<()> {
    let Some(sd) = &r.sd else {
        return serde_json::to_writer(out, &r.fields);
    };
    // Only the syslog parser sets `sd`, and it never puts an `sd` in `fields`.
    debug_assert!(!r.fields.contains_key("sd"));
    // The other fields' object, open at its end for `sd`.
    serde_json::to_writer(&mut *out, &r.fields)?;
    out.pop();
    if !r.fields.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"sd\":");
    sd.write_json(out, order)?;
    out.push(b'}');
    Ok(())
}

/// The payload's head up to the row count: prefix, version, origin, count.
fn put_payload_head(buf: &mut impl BufMut, prefix: &[u8], origin: Option<&str>, rows: usize) {
    let origin = origin.unwrap_or("").as_bytes();
    let origin = &origin[..origin.len().min(u16::MAX as usize)];
    buf.put_slice(prefix);
    buf.put_u8(PAYLOAD_VERSION);
    buf.put_u16(origin.len() as u16);
    buf.put_slice(origin);
    buf.put_u32(rows as u32);
}

/// The stream labels of one encoded row, read in place: what the per-day label
/// index (`chute.label_values`) records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLabels<'a> {
    /// The row's `ts`, in microseconds since 1970-01-01 UTC.
    pub ts_us: i64,
    /// Days since 1970-01-01 (UTC) of the row's `ts`.
    pub day: i32,
    pub tenant: &'a str,
    pub host: Option<&'a str>,
    pub app: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub severity: Option<i16>,
    pub facility: Option<i16>,
    /// The message's bytes (UTF-8; `octet_length(message)` counts them).
    pub message: &'a [u8],
}

impl EncodedRows {
    /// The stream labels of row `i`; `None` for a malformed row.
    pub fn labels(&self, i: usize) -> Option<RowLabels<'_>> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let f = split_fields(self.rows.get(start..*self.ends.get(i)?)?)?;
        // Binary timestamptz: microseconds since 2000-01-01 UTC.
        const Y2K_US: i64 = 946_684_800_000_000;
        let ts_us = i64::from_be_bytes(f[0]?.try_into().ok()?) + Y2K_US;
        let day = ts_us.div_euclid(86_400_000_000);
        fn text(v: Option<&[u8]>) -> Option<&str> {
            v.and_then(|b| std::str::from_utf8(b).ok())
        }
        let small = |v: Option<&[u8]>| v.and_then(|b| b.try_into().ok()).map(i16::from_be_bytes);
        Some(RowLabels {
            ts_us,
            day: i32::try_from(day).ok()?,
            tenant: text(f[2])?,
            host: text(f[3]),
            app: text(f[4]),
            msgid: text(f[6]),
            severity: small(f[7]),
            facility: small(f[8]),
            message: f[9].unwrap_or_default(),
        })
    }
}

/// The 11 field values of one binary COPY row (None for NULL).
fn split_fields(row: &[u8]) -> Option<[Option<&[u8]>; 11]> {
    let count = i16::from_be_bytes(row.get(0..2)?.try_into().ok()?);
    if count != 11 {
        return None;
    }
    let mut out = [None; 11];
    let mut at = 2;
    for slot in out.iter_mut() {
        let len = i32::from_be_bytes(row.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len >= 0 {
            let len = len as usize;
            *slot = Some(row.get(at..at + len)?);
            at += len;
        }
    }
    (at == row.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_rows_labels_are_read_in_place() {
        let mut r = record("m");
        r.host = Some("web-1".into());
        r.severity = Some(3);
        let rows = EncodedRows::encode(&[r.clone()]).unwrap();
        let l = rows.labels(0).unwrap();
        let day = (r.ts.timestamp().div_euclid(86_400)) as i32;
        assert_eq!(
            l,
            RowLabels {
                ts_us: r.ts.timestamp_micros(),
                day,
                tenant: "t",
                host: Some("web-1"),
                app: r.app.as_deref(),
                msgid: r.msgid.as_deref(),
                severity: Some(3),
                facility: r.facility,
                message: b"m",
            }
        );
        assert!(rows.labels(1).is_none());
    }

    fn record(msg: &str) -> Record {
        // PostgreSQL keeps microseconds.
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        Record {
            ts: t,
            received_at: t,
            tenant: "t".into(),
            host: Some("h".into()),
            app: None,
            procid: None,
            msgid: None,
            severity: Some(6),
            facility: None,
            message: msg.into(),
            fields: Default::default(),
            sd: None,
        }
    }

    #[test]
    fn a_batch_splits_into_bounded_payloads_with_stable_ids_and_every_row_once() {
        let records: Vec<Record> = (0..200).map(|i| record(&"x".repeat(i * 7))).collect();
        let rows = EncodedRows::encode(&records).unwrap();
        let whole = rows.to_payload(&[0, 0, 0, 9], Some("key/3"));
        // Room enough: one payload, the same bytes and id as unsplit.
        assert_eq!(
            rows.to_payloads(&[0, 0, 0, 9], Some("key/3"), whole.len() + 16),
            [whole]
        );
        let max = 4096;
        let parts = rows.to_payloads(&[0, 0, 0, 9], Some("key/3"), max);
        assert!(parts.len() > 10, "{} parts", parts.len());
        let mut back = Vec::new();
        for (n, part) in parts.iter().enumerate() {
            assert!(part.len() <= max, "part {n}: {} bytes", part.len());
            assert_eq!(&part[..4], &[0, 0, 0, 9], "the prefix stays first");
            let (origin, rows) =
                EncodedRows::from_payload(Bytes::from(part[4..].to_vec())).unwrap();
            assert_eq!(origin.unwrap(), format!("key/3#{n}"));
            back.extend((0..rows.len()).map(|i| rows.decode(i).unwrap()));
        }
        assert_eq!(back, records, "every row once, in order");
        // The same rows split the same way; a row over the limit goes alone.
        assert_eq!(rows.to_payloads(&[0, 0, 0, 9], Some("key/3"), max), parts);
        let big =
            EncodedRows::encode(&[record("a"), record(&"y".repeat(9000)), record("b")]).unwrap();
        let parts = big.to_payloads(&[], None, 4096);
        let counts: Vec<usize> = parts
            .iter()
            .map(|p| {
                EncodedRows::from_payload(Bytes::from(p.clone()))
                    .unwrap()
                    .1
                    .len()
            })
            .collect();
        assert_eq!(counts, [1, 1, 1]);
    }

    #[test]
    fn a_payload_round_trips_and_rows_decode_back_into_records() {
        let mut a = record("a");
        a.fields.insert("k".into(), serde_json::json!([1, "two"]));
        a.facility = Some(23);
        let records = vec![a, record("bb")];
        let rows = EncodedRows::encode(&records).unwrap();
        let payload = Bytes::from(rows.to_payload(&[], Some("node-b:shard-0:7")));
        let (origin, back) = EncodedRows::from_payload(payload.clone()).unwrap();
        assert_eq!(origin.as_deref(), Some("node-b:shard-0:7"));
        assert_eq!(back.len(), 2);
        assert_eq!(back.decode(0).unwrap(), records[0]);
        assert_eq!(back.decode(1).unwrap(), records[1]);
        // Every truncation is an error, never a panic or a shorter batch.
        for cut in 0..payload.len() {
            assert!(
                EncodedRows::from_payload(payload.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let (origin, _) =
            EncodedRows::from_payload(Bytes::from(rows.to_payload(&[], None))).unwrap();
        assert_eq!(origin, None);
    }

    #[test]
    fn encoding_straight_into_a_payload_gives_the_same_bytes() {
        let mut a = record("a");
        a.fields
            .insert("k".into(), serde_json::json!({"n": [1, 2]}));
        let records = vec![a, record("bb"), record("")];
        let rows = EncodedRows::encode(&records).unwrap();
        for (prefix, origin) in [(&[][..], None), (&[0, 0, 0, 7][..], Some("q:9"))] {
            assert_eq!(
                EncodedRows::encode_payload(&records, prefix, origin).unwrap(),
                rows.to_payload(prefix, origin)
            );
        }
        assert_eq!(
            EncodedRows::encode_payload(&[], &[], None).unwrap(),
            EncodedRows::encode(&[]).unwrap().to_payload(&[], None)
        );
    }

    #[test]
    fn fields_are_encoded_as_postgres_types_encodes_jsonb() {
        let mut a = record("a");
        a.fields.insert(
            "sd".into(),
            serde_json::json!({"meta": {"q": "\"x\" \\ y", "n": "1"}}),
        );
        let rows = EncodedRows::encode(std::slice::from_ref(&a)).unwrap();
        let mut expected = BytesMut::new();
        Json(&a.fields).to_sql(&Type::JSONB, &mut expected).unwrap();
        let row = &rows.rows[..rows.ends[0]];
        let fields = split_fields(row).unwrap()[10].unwrap();
        assert_eq!(fields, &expected[..]);
    }

    #[test]
    fn structured_data_is_stored_under_fields_sd_beside_the_other_fields() {
        let origin = crate::sources::syslog::tests::origin(
            "2026-11-26T12:00:00Z",
            crate::sources::syslog::Format::Auto,
        );
        let mut records = Vec::new();
        for msg in [
            r#"<14>1 - h a - - [m t="1" t="2"][e] x"#,
            // Marked truncated below, so `fields` has a key of its own.
            r#"<14>1 - h a - - [m t="\"q\""] y"#,
        ] {
            records.push(crate::sources::syslog::parse(msg.as_bytes(), &origin).record);
        }
        records[1]
            .fields
            .insert("truncated".into(), serde_json::Value::Bool(true));
        let rows = EncodedRows::encode(&records).unwrap();
        assert_eq!(
            rows.decode(0).unwrap().fields,
            *serde_json::json!({"sd": {"m": {"t": ["1", "2"]}, "e": {}}})
                .as_object()
                .unwrap()
        );
        assert_eq!(
            rows.decode(1).unwrap().fields,
            *serde_json::json!({"sd": {"m": {"t": "\"q\""}}, "truncated": true})
                .as_object()
                .unwrap()
        );
    }

    #[test]
    fn validation_finds_a_malformed_row() {
        let rows = EncodedRows::encode(&[record("a"), record("bb")]).unwrap();
        rows.validate().unwrap();
        let mut payload = rows.to_payload(&[], None);
        // Version, origin length, row count and two offsets: the first row starts at
        // byte 15 with its field count.
        payload[15] = 0x7f;
        let (_, bad) = EncodedRows::from_payload(Bytes::from(payload)).unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn concatenated_batches_keep_every_row() {
        let a = EncodedRows::encode(&[record("a"), record("b")]).unwrap();
        let b = EncodedRows::encode(&[record("c")]).unwrap();
        let all = EncodedRows::concat(&[&a, &b]);
        assert_eq!(all.len(), 3);
        assert_eq!(all.decode(2).unwrap().message, "c");
        assert_eq!(all.decode(1).unwrap().message, "b");
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
