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

/// One partition of `chute.logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The day it holds; `None` for `chute.logs_default`.
    pub day: Option<NaiveDate>,
    /// Table, indexes and TOAST.
    pub bytes: i64,
    /// PostgreSQL's estimate (`reltuples`, from the last ANALYZE or VACUUM); 0
    /// before the first.
    pub rows: i64,
}

/// A shard's storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    /// Bytes per table of [`TABLES`] (`logs`: all its partitions).
    pub tables: Vec<(&'static str, i64)>,
    /// The partitions of `chute.logs`, oldest day first, the default last.
    pub partitions: Vec<Partition>,
    /// The earliest record time chute wrote (`chute.line_blooms`), if any.
    pub oldest: Option<DateTime<Utc>>,
}

impl Storage {
    /// Bytes of every table together.
    pub fn bytes(&self) -> i64 {
        self.tables.iter().map(|(_, b)| b).sum()
    }

    /// The day partitions (the default one left out).
    pub fn days(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().filter(|p| p.day.is_some())
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
    /// Day partitions, oldest first: day, bytes, estimated rows.
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
        let report = |p: &Partition| DayReport {
            day: p.day,
            bytes: p.bytes,
            rows_estimate: p.rows,
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
            days: s.days().map(report).collect(),
            default_partition: s.partitions.iter().find(|p| p.day.is_none()).map(report),
            oldest: s.oldest,
        }
    }
}

/// The day a partition's name stands for (`logs_YYYYMMDD`).
fn day_of(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("logs_")?, "%Y%m%d").ok()
}

/// Measures the shard `client` is connected to.
///
/// # Errors
/// Any error from PostgreSQL (the schema must exist).
pub async fn measure(client: &impl GenericClient) -> Result<Storage, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text, pg_total_relation_size(c.oid),
                    greatest(c.reltuples, 0)::bigint
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'chute.logs'::regclass",
            &[],
        )
        .await?;
    let mut partitions: Vec<Partition> = rows
        .iter()
        .map(|r| Partition {
            day: day_of(r.get(0)),
            bytes: r.get(1),
            rows: r.get(2),
        })
        .collect();
    // Days in order, the default (no day) last.
    partitions.sort_by_key(|p| (p.day.is_none(), p.day));
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
        assert_eq!(day_of("logs_default"), None);
        assert_eq!(day_of("logs_2026120"), None);
        assert_eq!(day_of("other_20261202"), None);
    }
}
