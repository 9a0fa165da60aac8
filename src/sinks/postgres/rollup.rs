//! Per-minute counts, `chute.minute_counts`: lines and bytes per minute, tenant,
//! app and severity, written in the same transaction as the rows.
//!
//! Histograms of lines by level or by app over hours or days (Grafana's volume
//! panel, `sum by (level) (count_over_time(...))`) read these counts instead of
//! the rows: a write adds one row per (minute, tenant, app, severity) it holds,
//! so a day of a busy shard is some hundreds of thousands of count rows rather
//! than millions of log rows. Rows are appended, never updated: writers do not
//! wait on each other, and a query sums them. A minute is `(m - 60 s, m]`, named
//! by its end `m`, the way a range vector's window is `(t - r, t]`, so windows that
//! start on a whole minute cover whole count rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use crate::batch::RowLabels;

/// One minute, as its end in microseconds since 1970-01-01 UTC.
const MINUTE_US: i64 = 60_000_000;

const INSERT: &str = "INSERT INTO chute.minute_counts \
    (minute, tenant, app, severity, lines, bytes) \
    SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int2[], \
                         $5::int8[], $6::int8[])";

/// What rows are counted by: minute end, tenant, app, severity.
type Key = (i64, String, Option<String>, Option<i16>);

/// A [`Key`] borrowed from the rows.
type Borrowed<'r> = (i64, &'r str, Option<&'r str>, Option<i16>);

/// The end `m` of the minute `(m - 60 s, m]` holding `ts_us`, in microseconds.
pub fn minute_end(ts_us: i64) -> i64 {
    (ts_us + MINUTE_US - 1).div_euclid(MINUTE_US) * MINUTE_US
}

/// The counts of some rows: (lines, bytes) by [`Key`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts(HashMap<Key, (i64, i64)>);

impl Counts {
    /// The counts of `rows`: gathered borrowed from the rows, then copied once
    /// per key.
    pub fn of<'r>(rows: &[RowLabels<'r>]) -> Counts {
        let mut by: HashMap<Borrowed<'r>, (i64, i64)> = HashMap::new();
        for l in rows {
            let minute = minute_end(l.ts_us);
            let c = by.entry((minute, l.tenant, l.app, l.severity)).or_default();
            c.0 += 1;
            c.1 += l.message.len() as i64;
        }
        Counts(
            by.into_iter()
                .map(|((m, t, a, s), c)| ((m, t.to_owned(), a.map(str::to_owned), s), c))
                .collect(),
        )
    }
}

/// Appends `counts` in `tx` (nothing when there are none).
///
/// # Errors
/// As PostgreSQL answers.
pub async fn insert(tx: &Transaction<'_>, counts: &Counts) -> Result<(), tokio_postgres::Error> {
    if counts.0.is_empty() {
        return Ok(());
    }
    let n = counts.0.len();
    let (mut minutes, mut tenants, mut apps, mut severities, mut lines, mut bytes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((minute, tenant, app, severity), (l, b)) in &counts.0 {
        minutes.push(DateTime::<Utc>::from_timestamp_micros(*minute).unwrap_or_default());
        tenants.push(tenant.as_str());
        apps.push(app.as_deref());
        severities.push(*severity);
        lines.push(*l);
        bytes.push(*b);
    }
    let insert = tx.prepare_cached(INSERT).await?;
    tx.execute(
        &insert,
        &[&minutes, &tenants, &apps, &severities, &lines, &bytes],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::EncodedRows;
    use crate::record::Record;
    use chrono::TimeZone;

    fn record(ts: DateTime<Utc>, app: &str, message: &str) -> Record {
        Record {
            ts,
            received_at: ts,
            tenant: "t".into(),
            host: None,
            app: Some(app.into()),
            procid: None,
            msgid: None,
            severity: Some(6),
            facility: None,
            message: message.into(),
            fields: serde_json::Map::new(),
            sd: None,
        }
    }

    #[test]
    fn rows_count_into_the_minute_that_ends_at_or_after_them() {
        let m = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let rows = EncodedRows::encode(&[
            record(m, "a", "xx"),                                    // (9:59, 10:00]
            record(m + chrono::Duration::microseconds(1), "a", "y"), // (10:00, 10:01]
            record(m + chrono::Duration::seconds(60), "a", "zzz"),   // (10:00, 10:01]
            record(m, "b", "q"),
        ])
        .unwrap();
        let labels: Vec<_> = (0..rows.len()).filter_map(|i| rows.labels(i)).collect();
        let counts = Counts::of(&labels);
        let at = |t: DateTime<Utc>, app: &str| {
            counts.0[&(
                t.timestamp_micros(),
                "t".to_owned(),
                Some(app.to_owned()),
                Some(6),
            )]
        };
        assert_eq!(at(m, "a"), (1, 2));
        assert_eq!(at(m + chrono::Duration::seconds(60), "a"), (2, 4));
        assert_eq!(at(m, "b"), (1, 1));
        assert_eq!(counts.0.len(), 3);
    }
}
