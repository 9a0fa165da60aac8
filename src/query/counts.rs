//! Lines and bytes per series and time bucket, counted by PostgreSQL: from the
//! rows, or, when they can answer, from the per-minute counts
//! (`chute.minute_counts`, written with the rows).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::labels::{facility_name, level_name, Label};
use super::plan::LogPlan;
use super::time::from_nanos;
use super::{shard_error, QueryError};

/// Most series one answer carries.
pub const MAX_SERIES: usize = 20_000;

/// A series' labels.
pub type Labels = BTreeMap<String, String>;

/// Lines and bytes of one series in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub lines: f64,
    pub bytes: f64,
}

/// Each series' counts per bucket.
pub type Buckets = BTreeMap<Labels, BTreeMap<i64, Counts>>;

/// The answer when a query would make more series than [`MAX_SERIES`].
pub fn too_many_series() -> QueryError {
    QueryError::Invalid(format!(
        "the query makes more than {MAX_SERIES} series; aggregate with sum by (...) or drop labels"
    ))
}

/// The stream labels a count is grouped by: every one, or those a `sum by` names.
pub struct Grouping {
    labels: Vec<Label>,
}

impl Grouping {
    pub fn of(by: Option<&[String]>) -> Grouping {
        Grouping {
            labels: match by {
                None => Label::ALL.to_vec(),
                // Names that are not stream labels are on no series here.
                Some(names) => Label::ALL
                    .into_iter()
                    .filter(|l| names.iter().any(|n| n == l.name()))
                    .collect(),
            },
        }
    }

    /// The columns, as SQL (fixed identifiers), each followed by a comma.
    pub(super) fn columns(&self) -> String {
        self.labels
            .iter()
            .map(|l| format!("{}, ", l.column()))
            .collect()
    }

    /// The labels of a row whose first columns are [`Grouping::columns`].
    fn labels_of(&self, row: &tokio_postgres::Row) -> Labels {
        let mut labels = Labels::new();
        for (i, label) in self.labels.iter().enumerate() {
            let value = match label {
                Label::Level => row
                    .get::<_, Option<i16>>(i)
                    .map(|s| level_name(Some(s)).to_owned()),
                Label::Facility => Some(facility_name(row.get(i)).to_owned()),
                _ => row.get::<_, Option<String>>(i),
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                labels.insert(label.name().to_owned(), v);
            }
        }
        labels
    }
}

/// One minute, in nanoseconds.
const MINUTE_NS: i64 = 60_000_000_000;

/// The plan over `chute.minute_counts` when they can answer: the count is
/// grouped by labels they keep (tenant, app, level), its buckets are whole
/// minutes from a whole minute, and the plan filters on nothing else. The window
/// ends at the last whole bucket: a partial last bucket ends no step's window.
pub fn minute_counts_plan(
    plan: &LogPlan,
    group: &Grouping,
    grouped: bool,
    after: i64,
    upto: i64,
    width: i64,
) -> Option<LogPlan> {
    let kept = group
        .labels
        .iter()
        .all(|l| matches!(l, Label::Tenant | Label::App | Label::Level));
    if !grouped || !kept || after % MINUTE_NS != 0 || width % MINUTE_NS != 0 || upto <= after {
        return None;
    }
    let whole = after + (upto - after) / width * width;
    plan.on_minute_counts(from_nanos(after), from_nanos(whole))
}

/// Where a count reads: the rows, or the per-minute counts.
#[derive(Clone, Copy)]
pub enum Source {
    Rows,
    MinuteCounts,
}

/// Lines and bytes per series and bucket, counted by PostgreSQL.
#[allow(clippy::too_many_arguments)]
pub async fn counted_in_sql(
    tx: &deadpool_postgres::Transaction<'_>,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    after: i64,
    width: i64,
    group: &Grouping,
    source: Source,
    (shard, timeout_ms): (u32, u64),
) -> Result<Buckets, QueryError> {
    let (after_us, width_us) = (after / 1_000, width / 1_000);
    let n = group.labels.len();
    let columns = group.columns();
    let keys: String = (1..=n + 1)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let (time, counts, table) = match source {
        Source::Rows => (
            "ts",
            "count(*)::float8, sum(octet_length(message))::float8",
            "chute.logs",
        ),
        Source::MinuteCounts => (
            "minute",
            "sum(lines)::float8, sum(bytes)::float8",
            "chute.minute_counts",
        ),
    };
    // Integers only (formatted numbers, not user text) and fixed names. The time
    // is after `after`, so the bucket (a ceiling division) is at least 1.
    let sql = format!(
        "SELECT {columns}\
                ((extract(epoch FROM {time}) * 1000000)::bigint - {after_us} + {width_us} - 1) / {width_us} AS b, \
                {counts} FROM {table} WHERE {filter} GROUP BY {keys}"
    );
    let rows = tx
        .query(&sql, params)
        .await
        .map_err(|e| shard_error(shard, timeout_ms, &e))?;
    let mut out = Buckets::new();
    for row in &rows {
        let c = out
            .entry(group.labels_of(row))
            .or_default()
            .entry(row.get(n))
            .or_default();
        c.lines += row.get::<_, f64>(n + 1);
        c.bytes += row.get::<_, f64>(n + 2);
    }
    if out.len() > MAX_SERIES {
        return Err(too_many_series());
    }
    Ok(out)
}
