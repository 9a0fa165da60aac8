//! Trigram blooms of the messages, `chute.line_blooms`, written in the same
//! transaction as the rows.
//!
//! A write's rows are cut into blocks: the rows of one minute `(m - 60 s, m]`,
//! at most [`MAX_BLOCK_BYTES`] of message text each. Each block gets one row:
//! its first and last `ts`, its line count, and the bloom of its messages'
//! trigrams ([`crate::batch::bloom`]). A search for a string then reads the
//! blooms of its time range and only the rows of the blocks whose bloom may hold
//! the string (see `query::blooms`). A block spans less than a minute, so what a
//! search reads for one block is the rows of about a minute.
//!
//! Messages longer than [`MAX_BLOOMED_MESSAGE_BYTES`] (a flood of 64 KiB syslog
//! messages, a dump) go into blocks of their own without a bloom, which every
//! search reads: hashing every trigram of them would cost the writer more than
//! reading them costs a search, and a sender could make the writer spend its time
//! there.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use crate::batch::bloom::Bloom;
use crate::batch::RowLabels;

/// The most message text one block holds (its bloom starts at 4 bits per byte,
/// at most 256 KiB, before folding).
pub const MAX_BLOCK_BYTES: usize = 512 * 1024;

/// Longer messages get no bloom (their blocks are read by every search).
pub const MAX_BLOOMED_MESSAGE_BYTES: usize = 8 * 1024;

const INSERT: &str = "INSERT INTO chute.line_blooms (first_ts, last_ts, lines, bloom) \
    SELECT * FROM unnest($1::timestamptz[], $2::timestamptz[], $3::int4[], $4::bytea[])";

/// The blocks of some rows, column by column, as they are inserted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Blocks {
    pub first: Vec<DateTime<Utc>>,
    pub last: Vec<DateTime<Utc>>,
    pub lines: Vec<i32>,
    /// `None`: a block of long messages, read by every search.
    pub blooms: Vec<Option<Vec<u8>>>,
}

impl Blocks {
    /// The blocks of `rows`: by minute, in the rows' order within a minute.
    pub fn of(rows: &[RowLabels<'_>]) -> Blocks {
        // By minute, and whether the message is bloomed.
        let mut by_minute: HashMap<(i64, bool), Vec<usize>> = HashMap::new();
        for (i, l) in rows.iter().enumerate() {
            let minute = super::rollup::minute_end(l.ts_us);
            let bloomed = l.message.len() <= MAX_BLOOMED_MESSAGE_BYTES;
            by_minute.entry((minute, bloomed)).or_default().push(i);
        }
        let mut minutes: Vec<_> = by_minute.into_iter().collect();
        minutes.sort_unstable_by_key(|((m, bloomed), _)| (*m, !*bloomed));
        let mut out = Blocks::default();
        for ((_, bloomed), rows_of_minute) in minutes {
            let mut start = 0;
            while start < rows_of_minute.len() {
                let mut bytes = 0;
                let mut end = start;
                while end < rows_of_minute.len() {
                    let len = rows[rows_of_minute[end]].message.len();
                    if end > start && bytes + len > MAX_BLOCK_BYTES {
                        break;
                    }
                    bytes += len;
                    end += 1;
                }
                let block = rows_of_minute[start..end].iter().map(|&i| &rows[i]);
                out.push(block, bloomed.then_some(bytes));
                start = end;
            }
        }
        out
    }

    /// Adds a block of `rows`, with the bloom of their `bytes` of text if given.
    fn push<'r>(&mut self, rows: impl Iterator<Item = &'r RowLabels<'r>>, bytes: Option<usize>) {
        let mut bloom = bytes.map(Bloom::for_bytes);
        let (mut first, mut last, mut lines) = (i64::MAX, i64::MIN, 0);
        for r in rows {
            if let Some(b) = &mut bloom {
                b.add(r.message);
            }
            first = first.min(r.ts_us);
            last = last.max(r.ts_us);
            lines += 1;
        }
        let at = |us| DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default();
        self.first.push(at(first));
        self.last.push(at(last));
        self.lines.push(lines);
        self.blooms.push(bloom.map(Bloom::finish));
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Appends `blocks` in `tx` (nothing when there are none).
///
/// # Errors
/// As PostgreSQL answers.
pub async fn insert(tx: &Transaction<'_>, blocks: &Blocks) -> Result<(), tokio_postgres::Error> {
    if blocks.is_empty() {
        return Ok(());
    }
    let insert = tx.prepare_cached(INSERT).await?;
    tx.execute(
        &insert,
        &[&blocks.first, &blocks.last, &blocks.lines, &blocks.blooms],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::bloom::{may_hold, probes};
    use crate::batch::EncodedRows;
    use crate::record::Record;
    use chrono::TimeZone;

    fn record(ts: DateTime<Utc>, message: String) -> Record {
        Record {
            ts,
            received_at: ts,
            tenant: "t".into(),
            host: None,
            app: None,
            procid: None,
            msgid: None,
            severity: None,
            facility: None,
            message,
            fields: serde_json::Map::new(),
            sd: None,
        }
    }

    #[test]
    fn rows_are_cut_into_blocks_by_minute_and_size() {
        let m = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let s = chrono::Duration::seconds;
        let big = "x".repeat(MAX_BLOOMED_MESSAGE_BYTES);
        let long = "y".repeat(MAX_BLOOMED_MESSAGE_BYTES + 1);
        let mut records = vec![
            record(m + s(90), "late in the second minute".into()),
            record(m + s(1), "first minute needle".into()),
            record(m + s(30), "first minute too".into()),
            record(m + s(40), long.clone()),
            record(m + s(41), long),
        ];
        // Enough text in the second minute to fill one block and start another.
        for i in 0..MAX_BLOCK_BYTES / big.len() {
            records.push(record(m + s(61 + i as i64 % 10), big.clone()));
        }
        let rows = EncodedRows::encode(&records).unwrap();
        let labels: Vec<_> = (0..rows.len()).filter_map(|i| rows.labels(i)).collect();
        let b = Blocks::of(&labels);
        // (10:00, 10:01]: two bloomed rows, then the two long ones without a bloom;
        // (10:01, 10:02]: 65 rows cut in two by size.
        assert_eq!(b.lines, [2, 2, 64, 1]);
        assert_eq!((b.first[0], b.last[0]), (m + s(1), m + s(30)));
        assert_eq!((b.first[1], b.last[1]), (m + s(40), m + s(41)));
        assert!(b.blooms[1].is_none());
        assert_eq!(b.first[2], m + s(61));
        assert_eq!(b.last[2], m + s(90));
        let bloom = |i: usize| b.blooms[i].as_deref().unwrap();
        assert!(may_hold(bloom(0), &probes(b"needle")));
        assert!(!may_hold(bloom(2), &probes(b"needle")));
    }
}
