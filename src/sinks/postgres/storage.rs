//! What a shard's storage holds: bytes per table, the day partitions of
//! `chute.logs` with their bytes and estimated rows, and the oldest record.
//!
//! Everything comes from the catalog (`pg_total_relation_size`, `reltuples`) and
//! one index lookup (`min(first_ts)` of `chute.line_blooms`), so measuring costs the
//! same for a day of records as for a year: it can run every minute.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

/// The tables chute keeps besides `chute.logs`, as the `table` label names them.
/// Identifiers only from this fixed list ever reach SQL text.
pub const TABLES: &[&str] = &[
    "logs",
    "rejected",
    "batches",
    "label_values",
    "minute_counts",
    "line_blooms",
];

/// One leaf partition of `chute.logs`: a day, a retention class of a day, or
/// `chute.logs_default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    /// The day it holds; `None` for `chute.logs_default`.
    pub day: Option<NaiveDate>,
    /// The tenants of a retention class leaf; `None` for every other leaf (a
    /// day's default leaf holds the tenants of no class leaf of that day).
    pub tenants: Option<Vec<String>>,
    /// Table, indexes and TOAST.
    pub bytes: i64,
    /// The table alone: 0 when it holds no row (an empty leaf's indexes still
    /// take a few pages).
    pub heap: i64,
    /// PostgreSQL's estimate (`reltuples`, from the last ANALYZE or VACUUM); 0
    /// before the first.
    pub rows: i64,
}

/// A shard's storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    /// Bytes per table of [`TABLES`] (`logs`: all its partitions).
    pub tables: Vec<(&'static str, i64)>,
    /// The leaf partitions of `chute.logs`, oldest day first (a day's default
    /// leaf before its classes), `chute.logs_default` last.
    pub partitions: Vec<Partition>,
    /// The earliest record time chute wrote (`chute.line_blooms`), if any.
    pub oldest: Option<DateTime<Utc>>,
}

impl Storage {
    /// Bytes of every table together.
    pub fn bytes(&self) -> i64 {
        self.tables.iter().map(|(_, b)| b).sum()
    }

    /// The leaves of each day, oldest day first (`chute.logs_default` left out).
    pub fn days(&self) -> BTreeMap<NaiveDate, Vec<&Partition>> {
        let mut days: BTreeMap<NaiveDate, Vec<&Partition>> = BTreeMap::new();
        for p in &self.partitions {
            if let Some(day) = p.day {
                days.entry(day).or_default().push(p);
            }
        }
        days
    }
}

/// `GET /api/v1/storage`: what a node's local shards hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageReport {
    pub node: String,
    pub shards: Vec<ShardReport>,
}

/// One shard in a [`StorageReport`]; `error` when it could not be measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardReport {
    pub shard: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every table together.
    pub bytes: i64,
    /// Bytes per table of [`TABLES`].
    pub tables: BTreeMap<String, i64>,
    /// Day partitions, oldest first: day, bytes, estimated rows (and per
    /// retention class when the day has classes).
    pub days: Vec<DayReport>,
    /// `chute.logs_default`.
    pub default_partition: Option<DayReport>,
    pub oldest: Option<DateTime<Utc>>,
}

/// A partition in a [`ShardReport`] (`day` is `None` for the default one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DayReport {
    pub day: Option<NaiveDate>,
    pub bytes: i64,
    /// PostgreSQL's estimate, as of the last ANALYZE.
    pub rows_estimate: i64,
    /// The day's retention classes, when `[retention.tenants]` gave it some.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassReport>,
}

/// One retention class of a day: its tenants (none: every other tenant).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassReport {
    pub tenants: Option<Vec<String>>,
    pub bytes: i64,
    pub rows_estimate: i64,
}

impl ShardReport {
    pub fn of(shard: u32, measured: Result<Storage, String>) -> ShardReport {
        let s = match measured {
            Ok(s) => s,
            Err(e) => {
                return ShardReport {
                    shard,
                    error: Some(e),
                    ..ShardReport::default()
                }
            }
        };
        let report = |day: Option<NaiveDate>, leaves: &[&Partition]| DayReport {
            day,
            bytes: leaves.iter().map(|p| p.bytes).sum(),
            rows_estimate: leaves.iter().map(|p| p.rows).sum(),
            classes: if leaves.len() > 1 {
                leaves
                    .iter()
                    .map(|p| ClassReport {
                        tenants: p.tenants.clone(),
                        bytes: p.bytes,
                        rows_estimate: p.rows,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        };
        ShardReport {
            shard,
            error: None,
            bytes: s.bytes(),
            tables: s
                .tables
                .iter()
                .map(|(t, b)| ((*t).to_owned(), *b))
                .collect(),
            days: s
                .days()
                .iter()
                .map(|(day, leaves)| report(Some(*day), leaves))
                .collect(),
            default_partition: s
                .partitions
                .iter()
                .find(|p| p.day.is_none())
                .map(|p| report(None, &[p])),
            oldest: s.oldest,
        }
    }
}

/// The day a leaf's name stands for (`logs_YYYYMMDD`, or `logs_YYYYMMDD_N` for
/// a retention class of it).
pub fn day_of(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("logs_")?;
    let (date, class) = rest.split_at_checked(8)?;
    let class_ok = class.is_empty()
        || class
            .strip_prefix('_')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    class_ok
        .then(|| NaiveDate::parse_from_str(date, "%Y%m%d").ok())
        .flatten()
}

/// Measures the shard `client` is connected to.
///
/// # Errors
/// Any error from PostgreSQL (the schema must exist).
pub async fn measure(client: &impl GenericClient) -> Result<Storage, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text, pg_total_relation_size(c.oid), pg_relation_size(c.oid),
                    greatest(c.reltuples, 0)::bigint, t.tenants
             FROM pg_partition_tree('chute.logs') p JOIN pg_class c ON c.oid = p.relid
             LEFT JOIN chute.partition_tenants t ON t.partition = c.relname
             WHERE p.isleaf",
            &[],
        )
        .await?;
    let mut partitions: Vec<Partition> = rows
        .iter()
        .map(|r| Partition {
            name: r.get(0),
            day: day_of(r.get(0)),
            tenants: r.get(4),
            bytes: r.get(1),
            heap: r.get(2),
            rows: r.get(3),
        })
        .collect();
    // Days in order, the default (no day) last; in a day, its default leaf first.
    partitions.sort_by(|a, b| {
        (a.day.is_none(), a.day, a.tenants.is_some(), &a.name).cmp(&(
            b.day.is_none(),
            b.day,
            b.tenants.is_some(),
            &b.name,
        ))
    });
    let logs = partitions.iter().map(|p| p.bytes).sum::<i64>();
    let mut tables = vec![("logs", logs)];
    for &table in &TABLES[1..] {
        // `table` comes from the fixed list above, never from input.
        let bytes: i64 = client
            .query_one(
                &format!("SELECT pg_total_relation_size('chute.{table}'::regclass)"),
                &[],
            )
            .await?
            .get(0);
        tables.push((table, bytes));
    }
    let oldest = client
        .query_one("SELECT min(first_ts) FROM chute.line_blooms", &[])
        .await?
        .get(0);
    Ok(Storage {
        tables,
        partitions,
        oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_their_day_and_nothing_else_does() {
        assert_eq!(
            day_of("logs_20261202"),
            NaiveDate::from_ymd_opt(2026, 12, 2)
        );
        assert_eq!(
            day_of("logs_20261202_12"),
            NaiveDate::from_ymd_opt(2026, 12, 2)
        );
        assert_eq!(day_of("logs_default"), None);
        assert_eq!(day_of("logs_20261202_"), None);
        assert_eq!(day_of("logs_20261202x1"), None);
        assert_eq!(day_of("logs_2026120"), None);
        assert_eq!(day_of("other_20261202"), None);
    }
}
