//! Retention on one shard: whole days leave by dropping their partition of
//! `chute.logs`, never by a `DELETE` over it, so nothing is left to vacuum.
//!
//! A day goes when it is `max_age_days` behind today (all its records are older
//! than that), or, oldest first, while the partitions hold more than `max_mib`;
//! the newest `min_days` days are always kept. With the day go its entries in the
//! tables kept beside the rows (`chute.line_blooms`, `chute.minute_counts`,
//! `chute.label_values`), in the same transaction: the count cache trusts that
//! blocks and rows match.
//!
//! Dropping a partition needs an ACCESS EXCLUSIVE lock on `chute.logs`, which
//! waits for running writes and queries, and holds up new ones while it waits.
//! So each drop waits at most [`LOCK_TIMEOUT`]; past it the drop gives up,
//! counted, and is tried again at the next check. Writes are acknowledged from
//! the queue, so a held-up write delays nothing a sender sees.
//!
//! Rows of the default partition (times outside the partitioned window) and of
//! `chute.rejected` are few; past their age they are deleted.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use tokio_postgres::{Client, Transaction};

use super::schema::partition_name;
use super::storage::{self, Storage};
use crate::config::RetentionConfig;

/// Longest a drop waits for its lock before it gives up until the next check.
pub const LOCK_TIMEOUT: &str = "1s";

/// Key of the advisory lock one shard's retention runs under (ASCII "retain"), so
/// two nodes that both think they own a shard never drop at once.
const RETENTION_LOCK: i64 = 0x72_65_74_61_69_6e;

/// Why a day was dropped (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Age,
    Size,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::Age => "age",
            Why::Size => "size",
        }
    }
}

/// A day that was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub day: NaiveDate,
    pub why: Why,
    pub bytes: i64,
    /// Rows, as chute wrote them (`chute.line_blooms`).
    pub rows: i64,
}

/// What one check did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub dropped: Vec<Dropped>,
    /// Rows deleted from `chute.logs_default` and `chute.rejected`.
    pub default_rows: u64,
    pub rejected_rows: u64,
}

/// The days to drop, oldest first, from what the shard holds.
pub fn plan(
    storage: &Storage,
    today: NaiveDate,
    config: &RetentionConfig,
) -> Vec<(NaiveDate, Why)> {
    let keep_from = today - Duration::days(i64::from(config.min_days.max(1)) - 1);
    let expired = |d: NaiveDate| {
        config.max_age_days > 0 && d < today - Duration::days(i64::from(config.max_age_days))
    };
    let limit = config.max_mib.saturating_mul(1 << 20);
    let mut total: i64 = storage.partitions.iter().map(|p| p.bytes).sum();
    let mut out = Vec::new();
    for p in storage.days() {
        let Some(day) = p.day.filter(|d| *d < keep_from) else {
            continue;
        };
        let why = if expired(day) {
            Why::Age
        } else if limit > 0 && total > i64::try_from(limit).unwrap_or(i64::MAX) {
            Why::Size
        } else {
            continue;
        };
        total -= p.bytes;
        out.push((day, why));
    }
    out
}

/// Applies `config` to the shard `client` is connected to, as of `today` (UTC).
///
/// # Errors
/// Any error from PostgreSQL, a lock not had within [`LOCK_TIMEOUT`] included;
/// the days dropped before it stay dropped (each is its own transaction).
pub async fn apply(
    client: &mut Client,
    today: NaiveDate,
    config: &RetentionConfig,
    done: &mut Outcome,
) -> Result<(), tokio_postgres::Error> {
    if config.limits_logs() {
        let measured = storage::measure(&*client).await?;
        for (day, why) in plan(&measured, today, config) {
            let bytes = measured
                .partitions
                .iter()
                .find(|p| p.day == Some(day))
                .map_or(0, |p| p.bytes);
            let tx = client.transaction().await?;
            if !locked(&tx).await? {
                return Ok(());
            }
            let rows = drop_day(&tx, day).await?;
            tx.commit().await?;
            tracing::info!(day = %day, reason = why.label(), bytes, rows, "retention dropped a day");
            done.dropped.push(Dropped {
                day,
                why,
                bytes,
                rows,
            });
        }
    }
    if config.max_age_days > 0 {
        let cutoff = today - Duration::days(i64::from(config.max_age_days));
        let tx = client.transaction().await?;
        if locked(&tx).await? {
            done.default_rows += delete_default_before(&tx, cutoff).await?;
            tx.commit().await?;
        }
    }
    if config.rejected_max_age_days > 0 {
        done.rejected_rows += client
            .execute(
                "DELETE FROM chute.rejected
                 WHERE rejected_at < now() - make_interval(days => $1)",
                &[&(config.rejected_max_age_days as i32)],
            )
            .await?;
    }
    Ok(())
}

/// Takes the retention lock and sets the lock timeout for the transaction; false
/// when another node holds the lock.
async fn locked(tx: &Transaction<'_>) -> Result<bool, tokio_postgres::Error> {
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    Ok(tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK])
        .await?
        .get(0))
}

/// Drops `day`'s partition and its entries beside the rows; returns its rows.
async fn drop_day(tx: &Transaction<'_>, day: NaiveDate) -> Result<i64, tokio_postgres::Error> {
    let from = day.and_time(NaiveTime::MIN).and_utc();
    let to = from + Duration::days(1);
    let rows: i64 = tx
        .query_one(
            "SELECT coalesce(sum(lines), 0)::bigint FROM chute.line_blooms
             WHERE first_ts >= $1 AND first_ts < $2",
            &[&from, &to],
        )
        .await?
        .get(0);
    // The name is made from a date, never from input.
    tx.batch_execute(&format!("DROP TABLE chute.{}", partition_name(day)))
        .await?;
    forget(tx, Some(from), to).await?;
    Ok(rows)
}

/// Deletes the rows of the default partition from before `cutoff`, and their
/// entries beside the rows.
async fn delete_default_before(
    tx: &Transaction<'_>,
    cutoff: NaiveDate,
) -> Result<u64, tokio_postgres::Error> {
    let to = cutoff.and_time(NaiveTime::MIN).and_utc();
    let rows = tx
        .execute("DELETE FROM chute.logs_default WHERE ts < $1", &[&to])
        .await?;
    if rows > 0 {
        forget(tx, None, to).await?;
    }
    Ok(rows)
}

/// Deletes the blocks, minute counts and label index entries of `[from, to)`
/// (no `from`: everything before `to`).
async fn forget(
    tx: &Transaction<'_>,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "DELETE FROM chute.line_blooms
         WHERE ($1::timestamptz IS NULL OR first_ts >= $1) AND first_ts < $2",
        &[&from, &to],
    )
    .await?;
    // A minute's counts are of (minute - 60 s, minute].
    tx.execute(
        "DELETE FROM chute.minute_counts
         WHERE ($1::timestamptz IS NULL OR minute > $1) AND minute <= $2",
        &[&from, &to],
    )
    .await?;
    tx.execute(
        "DELETE FROM chute.label_values
         WHERE ($1::timestamptz IS NULL OR day >= ($1 AT TIME ZONE 'UTC')::date)
           AND day < ($2 AT TIME ZONE 'UTC')::date",
        &[&from, &to],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::postgres::storage::Partition;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap() - Duration::days(n)
    }

    /// Days `ago` (each `mib` MiB), plus an empty default partition.
    fn storage(days: &[(i64, i64)]) -> Storage {
        let mut partitions: Vec<Partition> = days
            .iter()
            .map(|(ago, mib)| Partition {
                day: Some(day(*ago)),
                bytes: mib << 20,
                rows: 0,
            })
            .collect();
        partitions.sort_by_key(|p| p.day);
        partitions.push(Partition {
            day: None,
            bytes: 0,
            rows: 0,
        });
        Storage {
            tables: Vec::new(),
            partitions,
            oldest: None,
        }
    }

    fn config(max_age_days: u32, max_mib: u64, min_days: u32) -> RetentionConfig {
        RetentionConfig {
            max_age_days,
            max_mib,
            min_days,
            ..RetentionConfig::default()
        }
    }

    #[test]
    fn age_drops_the_days_wholly_older_than_the_age_never_today_or_the_future() {
        let s = storage(&[(-2, 1), (-1, 1), (0, 1), (1, 1), (5, 1), (6, 1), (9, 1)]);
        assert_eq!(
            plan(&s, day(0), &config(5, 0, 2)),
            [(day(9), Why::Age), (day(6), Why::Age)]
        );
        assert_eq!(plan(&s, day(0), &config(0, 0, 2)), []);
    }

    #[test]
    fn size_drops_the_oldest_first_until_within_and_keeps_min_days() {
        let s = storage(&[(0, 10), (1, 10), (2, 10), (3, 10)]);
        // 40 MiB against 25: the two oldest go.
        assert_eq!(
            plan(&s, day(0), &config(0, 25, 2)),
            [(day(3), Why::Size), (day(2), Why::Size)]
        );
        // Against 1 MiB: still never today or yesterday.
        assert_eq!(
            plan(&s, day(0), &config(0, 1, 2)),
            [(day(3), Why::Size), (day(2), Why::Size)]
        );
        // Age first, then size for what is left.
        assert_eq!(
            plan(&s, day(0), &config(3, 15, 1)),
            [
                (day(3), Why::Size),
                (day(2), Why::Size),
                (day(1), Why::Size)
            ]
        );
        assert_eq!(plan(&s, day(0), &config(2, 35, 1)), [(day(3), Why::Age)]);
    }
}
