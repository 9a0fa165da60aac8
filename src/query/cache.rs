//! Counts of whole past hours, kept between queries, for the metric queries
//! PostgreSQL counts from the rows (a line filter, a host: what the per-minute
//! counts cannot answer).
//!
//! Grafana runs the same metric queries again and again (a dashboard's refresh,
//! Explore's volume histogram beside every search), and each run over days used
//! to read every row again. So a count over `(after, upto]` is split at whole
//! hours: each hour `(h - 1 h, h]` inside the window is counted per series and
//! minute and kept here, by shard, query (its conditions, parameters and
//! grouping) and hour; only the hours not kept and the partial hours at the two
//! ends are counted from the rows.
//!
//! A kept hour is used only while it is exact. With it is kept its stamp: how
//! many blocks and lines `chute.line_blooms` holds for the hour, read in the same
//! snapshot as the count (query transactions are `REPEATABLE READ`). Rows are
//! only appended, and each write adds its blocks in the transaction that adds
//! its rows, so any write into the hour (a late record) changes the stamp and
//! the hour is counted again. Rows put into `chute.logs` by other means than
//! chute's writers, with no block, are not seen by the stamp.
//!
//! The cache holds at most `[query] cache_mib` MiB, weighed by what its entries
//! hold; 0 turns it off.

use std::collections::HashMap;
use std::sync::Arc;

use super::counts::{counted_in_sql, Buckets, Counts, Grouping, Labels, Source};
use super::plan::{LogPlan, Param};
use super::time::from_nanos;
use super::{shard_error, QueryError};

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;

/// Per hour `(h - 1 h, h]` (named by `h`, in microseconds): the blocks and lines
/// `chute.line_blooms` holds for it. A block lies within one minute, so within
/// one hour, and is counted by its first row's hour.
const STAMPS: &str = "\
    SELECT (extract(epoch FROM date_trunc('hour', first_ts - interval '1 microsecond') \
                               + interval '1 hour') * 1000000)::int8, \
           count(*), sum(lines)::int8 \
    FROM chute.line_blooms WHERE first_ts > $1 AND first_ts <= $2 GROUP BY 1";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    shard: u32,
    query: Arc<str>,
    /// The hour's end, in nanoseconds.
    hour: i64,
}

/// One hour's counts per series and minute (1 to 60: the minute that ends
/// that many minutes after the hour starts).
#[derive(Debug)]
struct Hour {
    stamp: (i64, i64),
    counts: Vec<(Labels, i64, Counts)>,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<Key, Arc<Hour>> for Weigh {
    fn weight(&self, key: &Key, hour: &Arc<Hour>) -> u64 {
        let labels = |l: &Labels| l.iter().map(|(k, v)| k.len() + v.len() + 64).sum::<usize>();
        let counts: usize = hour.counts.iter().map(|(l, _, _)| labels(l) + 48).sum();
        (key.query.len() + 96 + counts) as u64
    }
}

/// The kept hours of every local shard.
pub struct CountCache {
    hours: Option<quick_cache::sync::Cache<Key, Arc<Hour>, Weigh>>,
}

impl CountCache {
    /// A cache of at most `mib` MiB; none for 0.
    pub fn new(mib: u64) -> CountCache {
        let bytes = mib * 1024 * 1024;
        CountCache {
            // The item estimate only sizes the tables: an hour of a few series.
            hours: (mib > 0).then(|| {
                quick_cache::sync::Cache::with_weighter((bytes / 4096) as usize, bytes, Weigh)
            }),
        }
    }
}

/// How a count used the cache: hours taken from it, and hours counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HourUse {
    pub hits: u64,
    pub misses: u64,
}

/// `plan`'s lines and bytes by `group` per bucket of `width` from `after` to
/// `upto`, the whole hours taken from the cache while exact; with the rows
/// counted and how the cache was used. `None` when the cache cannot help: it is
/// off, the window holds no whole hour, or its buckets split minutes.
///
/// # Errors
/// As PostgreSQL answers, named after the shard of `at`.
#[allow(clippy::too_many_arguments)]
pub async fn counted(
    cache: &CountCache,
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &LogPlan,
    group: &Grouping,
    (after, upto, width): (i64, i64, i64),
    at: (u32, u64),
) -> Result<Option<(Buckets, u64, HourUse)>, QueryError> {
    let Some(hours) = &cache.hours else {
        return Ok(None);
    };
    // Every row of a whole minute must fall in one bucket.
    let one_bucket = upto - after <= width;
    let aligned = after % MINUTE_NS == 0 && width % MINUTE_NS == 0;
    let first = after.div_euclid(HOUR_NS) * HOUR_NS + HOUR_NS * i64::from(after % HOUR_NS != 0);
    let last = upto.div_euclid(HOUR_NS) * HOUR_NS;
    let samples = plan.conditions[0].starts_with("ts > $1 AND ts <= $2");
    if !(one_bucket || aligned) || last - first < HOUR_NS || !samples {
        return Ok(None);
    }
    let query: Arc<str> = format!(
        "{}\u{1f}{:?}\u{1f}{}",
        plan.conditions[1..].join(" AND "),
        &plan.params[2..],
        group.columns()
    )
    .into();
    let failed = |e: tokio_postgres::Error| shard_error(at.0, at.1, &e);
    let stamps: HashMap<i64, (i64, i64)> = tx
        .query(STAMPS, &[&from_nanos(first), &from_nanos(last)])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| (r.get::<_, i64>(0) * 1_000, (r.get(1), r.get(2))))
        .collect();
    let stamp = |h: i64| stamps.get(&h).copied().unwrap_or((0, 0));
    let key = |hour: i64| Key {
        shard: at.0,
        query: query.clone(),
        hour,
    };

    let mut out = Buckets::new();
    let mut read = 0.0;
    let add = |out: &mut Buckets, labels: &Labels, b: i64, c: Counts| {
        let sum = out.entry(labels.clone()).or_default().entry(b).or_default();
        sum.lines += c.lines;
        sum.bytes += c.bytes;
    };
    // The partial hours at the ends, from the rows, in the query's buckets.
    for (a, b) in [(after, first), (last, upto)] {
        if a < b {
            let part = counted_in_sql_within(tx, plan, group, (a, b), (after, width), at).await?;
            for (labels, buckets) in part {
                for (b, c) in buckets {
                    read += c.lines;
                    add(&mut out, &labels, b, c);
                }
            }
        }
    }
    // The whole hours: kept, or counted per minute (runs of missing hours at once).
    let mut used = HourUse::default();
    let mut whole: Vec<(i64, Arc<Hour>)> = Vec::new();
    let mut missing: Vec<i64> = Vec::new();
    for h in (first + HOUR_NS..=last).step_by(HOUR_NS as usize) {
        match hours.get(&key(h)) {
            Some(kept) if kept.stamp == stamp(h) => whole.push((h, kept)),
            _ => missing.push(h),
        }
    }
    used.hits = whole.len() as u64;
    used.misses = missing.len() as u64;
    for run in missing.chunk_by(|a, b| b - a == HOUR_NS) {
        let (start, end) = (run[0] - HOUR_NS, run[run.len() - 1]);
        let per_minute =
            counted_in_sql_within(tx, plan, group, (start, end), (start, MINUTE_NS), at).await?;
        let mut counted: HashMap<i64, Vec<(Labels, i64, Counts)>> =
            run.iter().map(|h| (*h, Vec::new())).collect();
        for (labels, buckets) in per_minute {
            for (b, c) in buckets {
                read += c.lines;
                let hour = start + ((b - 1) / 60 + 1) * HOUR_NS;
                if let Some(h) = counted.get_mut(&hour) {
                    h.push((labels.clone(), (b - 1) % 60 + 1, c));
                }
            }
        }
        for (h, counts) in counted {
            let hour = Arc::new(Hour {
                stamp: stamp(h),
                counts,
            });
            hours.insert(key(h), hour.clone());
            whole.push((h, hour));
        }
    }
    for (h, hour) in whole {
        for (labels, m, c) in &hour.counts {
            // The minute's end stands for its rows: they share its bucket.
            let t = h - HOUR_NS + m * MINUTE_NS;
            add(&mut out, labels, (t - after + width - 1) / width, *c);
        }
    }
    Ok(Some((out, read as u64, used)))
}

/// `plan` over `(a, b]` only, counted in buckets of `width` from `from`.
async fn counted_in_sql_within(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &LogPlan,
    group: &Grouping,
    (a, b): (i64, i64),
    (from, width): (i64, i64),
    at: (u32, u64),
) -> Result<Buckets, QueryError> {
    let mut within = plan.clone();
    within.params[0] = Param::Time(from_nanos(a));
    within.params[1] = Param::Time(from_nanos(b));
    counted_in_sql(
        tx,
        &within.where_clause(),
        &within.sql_params(),
        from,
        width,
        group,
        Source::Rows,
        at,
    )
    .await
}
