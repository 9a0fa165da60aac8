//! What a node does for a query on the shards it owns: a [`Work`] in, a [`Part`]
//! out, and how parts from several shards (or nodes) make one.
//!
//! The node a query is sent to parses and plans it, then hands the same `Work` to
//! each shard it owns and, over `/internal/v1/query`, to the owner of every other
//! shard ([`super::fanout`]). What travels is the typed request, with the log
//! expression as LogQL that node has already checked, never SQL: each owner plans
//! it again (planning is cheap and deterministic), so the only SQL a node runs is
//! its own. Parts are partial answers that combine without rereading rows: lines
//! sorted in the query's direction, lines and bytes per stream per time bucket,
//! sets of values or series, sums.

use std::collections::BTreeSet;

use chute_logql::Expr;
use serde::{Deserialize, Serialize};

use super::blooms::{self, Blocks};
use super::cache::{self, HourUse};
use super::counts::{counted_in_sql, minute_counts_plan, Grouping, Source};
pub use super::counts::{too_many_series, Buckets, Counts, Labels, MAX_SERIES};
use super::exec::{connect, entry, read_only, stream_labels, Direction, Shard};
use super::labels::{facility_name, level_name, Label};
use super::pipeline::{Entry, Pipeline};
use super::plan::{LogPlan, Window};
use super::time::from_nanos;
use super::{shard_error, QueryError};

/// Rows read from a cursor at a time, when chute filters them.
const PAGE_ROWS: usize = 2000;

/// The columns every line query reads, in the order [`entry`] takes them.
const COLUMNS: &str = "ts, tenant, host, app, severity, facility, procid, msgid, message, fields";

/// Most lines a metric query may read on one node to evaluate stages in chute.
pub const MAX_EVALUATED_LINES: usize = 2_000_000;

/// Every stream of the tenant: the selector of a request that gives none.
pub const ALL_STREAMS: &str = "{tenant=~\".+\"}";

/// One request for the shards of one node: the tenant, which shards, what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    pub tenant: String,
    pub shards: Vec<u32>,
    pub work: Work,
}

/// The part of a query one shard answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// The first `limit` lines of the log query `log` in `[start, end)`.
    Lines {
        log: String,
        start: i64,
        end: i64,
        direction: Direction,
        limit: usize,
    },
    /// Lines and bytes of each series of `log` in `(after, upto]`, in buckets of
    /// `width` ns: bucket `b` holds `(after + (b-1)·width, after + b·width]`.
    /// With `by`, a series has only the labels named there (for a `sum by`).
    Buckets {
        log: String,
        after: i64,
        upto: i64,
        width: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Vec<String>>,
    },
    /// Up to `limit` distinct values of `label` in the streams `selector` selects
    /// in `[start, end)`.
    Values {
        label: Label,
        selector: String,
        start: i64,
        end: i64,
        limit: usize,
    },
    /// The label sets of the streams `selector` selects in `[start, end)`.
    Series {
        selector: String,
        start: i64,
        end: i64,
    },
    /// Streams, lines and bytes `selector` selects in `[start, end)`.
    Stats {
        selector: String,
        start: i64,
        end: i64,
    },
}

/// Sums of [`Work::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub streams: i64,
    pub entries: i64,
    pub bytes: i64,
    /// Shards that answered.
    pub shards: i64,
}

/// A partial answer to a [`Work`] of the same kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Part {
    /// Sorted in the query's direction.
    Lines(Vec<Entry>),
    /// JSON has no map keyed by label sets: a list of series and their buckets.
    Buckets(Vec<(Labels, Vec<(i64, Counts)>)>),
    Values(BTreeSet<String>),
    Series(BTreeSet<Labels>),
    Stats(Stats),
}

/// What answering a part cost on shards: the log rows read (or, where PostgreSQL
/// counts them, counted), and the blocks the blooms let it read or skip.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub rows: u64,
    pub blocks: Blocks,
    /// Whole hours of counts taken from the cache, and counted.
    pub hours: HourUse,
}

impl std::ops::AddAssign for Read {
    fn add_assign(&mut self, other: Read) {
        self.rows += other.rows;
        self.blocks.read += other.blocks.read;
        self.blocks.skipped += other.blocks.skipped;
        self.hours.hits += other.hours.hits;
        self.hours.misses += other.hours.misses;
    }
}

/// A [`Work`] planned for this node: what PostgreSQL filters and what chute runs
/// on the rows. Planned once per node, shared by its shards.
pub struct Prepared {
    tenant: String,
    plan: LogPlan,
    pipeline: Pipeline,
}

impl Work {
    /// Plans the work for `tenant`; before any shard is asked, this is the check
    /// that the query parses and plans.
    ///
    /// # Errors
    /// [`QueryError::Invalid`] with the position of what is wrong.
    pub fn prepare(&self, tenant: &str) -> Result<Prepared, QueryError> {
        let lines = |start: &i64, end: &i64| Window::Lines {
            start: from_nanos(*start),
            end: from_nanos(*end),
        };
        let (plan, text) = match self {
            Work::Lines {
                log, start, end, ..
            } => (
                log_plan(log, "a log query", tenant, lines(start, end))?,
                log,
            ),
            Work::Buckets {
                log, after, upto, ..
            } => {
                let window = Window::Samples {
                    after: from_nanos(*after),
                    upto: from_nanos(*upto),
                };
                (log_plan(log, "a log query", tenant, window)?, log)
            }
            Work::Values {
                selector,
                start,
                end,
                ..
            }
            | Work::Series {
                selector,
                start,
                end,
            }
            | Work::Stats {
                selector,
                start,
                end,
            } => (
                log_plan(selector, "a stream selector", tenant, lines(start, end))?,
                selector,
            ),
        };
        let pipeline = Pipeline::new(&plan.residual, text)?;
        Ok(Prepared {
            tenant: tenant.to_owned(),
            plan,
            pipeline,
        })
    }

    /// Runs on one local shard: its part, and the log rows it read (or, where
    /// PostgreSQL counts them, the rows it counted).
    ///
    /// # Errors
    /// The shard cannot be reached or fails, the query runs past `timeout_ms`, or it
    /// would read more than its limits allow.
    pub async fn on(
        &self,
        shard: &Shard,
        prepared: &Prepared,
        timeout_ms: u64,
    ) -> Result<(Part, Read), QueryError> {
        let Prepared {
            tenant,
            plan,
            pipeline,
        } = prepared;
        let failed = |e: tokio_postgres::Error| shard_error(shard.id, timeout_ms, &e);
        let mut client = connect(shard).await?;
        let tx = read_only(&mut client, shard.id, timeout_ms).await?;
        let (narrowed, blocks) = match self {
            Work::Lines { .. } | Work::Buckets { .. } => {
                blooms::narrow(&tx, plan, (shard.id, timeout_ms)).await?
            }
            _ => (None, Blocks::default()),
        };
        let plan = narrowed.as_ref().unwrap_or(plan);
        let params = plan.sql_params();
        let filter = plan.where_clause();
        let mut read = 0u64;
        let mut hours = HourUse::default();
        let part = match self {
            Work::Lines {
                direction, limit, ..
            } => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM chute.logs WHERE {filter} ORDER BY ts {}",
                    direction.sql()
                );
                let mut out = Vec::new();
                if pipeline.is_empty() {
                    let rows = tx
                        .query(&format!("{sql} LIMIT {limit}"), &params)
                        .await
                        .map_err(failed)?;
                    read = rows.len() as u64;
                    out.extend(rows.iter().map(entry));
                } else {
                    let mut cursor = Cursor::open(&tx, &sql, &params, shard.id, timeout_ms).await?;
                    'pages: while let Some(rows) = cursor.next(&tx).await? {
                        read += rows.len() as u64;
                        for row in &rows {
                            if let Some(e) = pipeline.process(entry(row)) {
                                out.push(e);
                                if out.len() >= *limit {
                                    break 'pages;
                                }
                            }
                        }
                    }
                }
                Part::Lines(out)
            }
            Work::Buckets {
                after,
                upto,
                width,
                by,
                ..
            } => {
                let buckets = if pipeline.is_empty() {
                    let group = Grouping::of(by.as_deref());
                    let at = (shard.id, timeout_ms);
                    let window = (*after, *upto, *width);
                    let counts =
                        minute_counts_plan(plan, &group, by.is_some(), *after, *upto, *width);
                    let (source, filter, params) = match &counts {
                        Some(c) => (Source::MinuteCounts, c.where_clause(), c.sql_params()),
                        None => (Source::Rows, filter, params),
                    };
                    // A string search the blooms narrowed is cheap and never the same twice.
                    let kept = match (&counts, &narrowed) {
                        (None, None) => {
                            cache::counted(&shard.cache, &tx, plan, &group, window, at).await?
                        }
                        _ => None,
                    };
                    if let Some((counted, rows, used)) = kept {
                        read = rows;
                        hours = used;
                        counted
                    } else {
                        let counted = counted_in_sql(
                            &tx, &filter, &params, *after, *width, &group, source, at,
                        )
                        .await?;
                        read = counted
                            .values()
                            .flat_map(|b| b.values())
                            .map(|c| c.lines as u64)
                            .sum();
                        counted
                    }
                } else {
                    let sql = format!("SELECT {COLUMNS} FROM chute.logs WHERE {filter}");
                    let mut cursor = Cursor::open(&tx, &sql, &params, shard.id, timeout_ms).await?;
                    let mut out = Buckets::new();
                    while let Some(rows) = cursor.next(&tx).await? {
                        read += rows.len() as u64;
                        if read > MAX_EVALUATED_LINES as u64 {
                            return Err(QueryError::Invalid(format!(
                                "the query's stages would be evaluated on more than \
                                 {MAX_EVALUATED_LINES} lines; narrow the time range or the \
                                 stream selector, or filter lines before the parser"
                            )));
                        }
                        for row in &rows {
                            let Some(e) = pipeline.process(entry(row)) else {
                                continue;
                            };
                            let mut labels = e.labels;
                            labels.extend(e.parsed);
                            if let Some(by) = by {
                                labels.retain(|name, _| by.contains(name));
                            }
                            let b = (e.ts - after + width - 1) / width;
                            let c = out.entry(labels).or_default().entry(b).or_default();
                            c.lines += 1.0;
                            c.bytes += e.line.len() as f64;
                        }
                        if out.len() > MAX_SERIES {
                            return Err(too_many_series());
                        }
                    }
                    out
                };
                Part::from_buckets(buckets)
            }
            Work::Values {
                label,
                selector,
                start,
                end,
                limit,
            } if selector == ALL_STREAMS && *label != Label::Procid => {
                // The per-day label index: the values of the days the range touches.
                let day = |t: i64| from_nanos(t).date_naive();
                let sql = format!(
                    "SELECT DISTINCT value FROM chute.label_values \
                     WHERE tenant = ANY($1) AND label = $2 AND day >= $3 AND day <= $4 \
                     ORDER BY value LIMIT {limit}"
                );
                let tenants = super::plan::tenants_of(tenant);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
                    &tenants,
                    &label.column(),
                    &day(*start),
                    &day((*end - 1).max(*start)),
                ];
                let rows = tx.query(&sql, &params).await.map_err(failed)?;
                read = rows.len() as u64;
                let values = rows.iter().filter_map(|row| {
                    let value: String = row.get(0);
                    let code = || value.parse::<i16>().ok();
                    let value = match label {
                        Label::Level => level_name(code()).to_owned(),
                        Label::Facility => facility_name(code()).to_owned(),
                        _ => value,
                    };
                    (!value.is_empty()).then_some(value)
                });
                Part::Values(values.collect())
            }
            Work::Values { label, limit, .. } => {
                let col = label.column();
                // One row is enough to know a label has values: no DISTINCT then.
                let distinct = if *limit == 1 { "" } else { "DISTINCT" };
                let sql = format!(
                    "SELECT {distinct} {col} FROM chute.logs \
                     WHERE {filter} AND {col} IS NOT NULL LIMIT {limit}"
                );
                let rows = tx.query(&sql, &params).await.map_err(failed)?;
                read = rows.len() as u64;
                let values = rows.iter().filter_map(|row| {
                    let value = match label {
                        Label::Level => level_name(row.get(0)).to_owned(),
                        Label::Facility => facility_name(row.get(0)).to_owned(),
                        _ => row.get::<_, String>(0),
                    };
                    (!value.is_empty()).then_some(value)
                });
                Part::Values(values.collect())
            }
            Work::Series { .. } => {
                let sql = format!(
                    "SELECT DISTINCT tenant, host, app, severity, facility, procid, msgid \
                     FROM chute.logs WHERE {filter} LIMIT {MAX_SERIES}"
                );
                let rows = tx.query(&sql, &params).await.map_err(failed)?;
                read = rows.len() as u64;
                Part::Series(rows.iter().map(|r| stream_labels(r, 0)).collect())
            }
            Work::Stats { .. } => {
                let sql = format!(
                    "SELECT count(DISTINCT (tenant, host, app, severity, facility, procid, msgid)), \
                            count(*), coalesce(sum(octet_length(message)), 0)::bigint \
                     FROM chute.logs WHERE {filter}"
                );
                let row = tx.query_one(&sql, &params).await.map_err(failed)?;
                read = row.get::<_, i64>(1) as u64;
                Part::Stats(Stats {
                    streams: row.get(0),
                    entries: row.get(1),
                    bytes: row.get(2),
                    shards: 1,
                })
            }
        };
        // Read-only: nothing to keep; ending it frees any cursor.
        let _ = tx.rollback().await;
        Ok((
            part,
            Read {
                rows: read,
                blocks,
                hours,
            },
        ))
    }

    /// Runs on each of `shards` (all local), at once, and merges their parts; with
    /// the rows they read in all.
    ///
    /// # Errors
    /// As [`Work::on`] and [`Work::merge`].
    pub async fn on_all(
        &self,
        shards: &[&Shard],
        prepared: &Prepared,
        timeout_ms: u64,
    ) -> Result<(Part, Read), QueryError> {
        let answers =
            futures_util::future::join_all(shards.iter().map(|s| self.on(s, prepared, timeout_ms)))
                .await;
        let (mut parts, mut read) = (Vec::with_capacity(answers.len()), Read::default());
        for answer in answers {
            let (part, r) = answer?;
            parts.push(part);
            read += r;
        }
        Ok((self.merge(parts)?, read))
    }

    /// Parts of this work from several shards or nodes, as one. Lines are taken in
    /// the order the parts come (callers pass them in shard order) before a stable
    /// sort by time, so lines with equal time stamps come in the same order
    /// whichever node merges them.
    ///
    /// # Errors
    /// More series than [`MAX_SERIES`].
    pub fn merge(&self, parts: Vec<Part>) -> Result<Part, QueryError> {
        Ok(match self {
            Work::Lines {
                direction, limit, ..
            } => {
                let mut all: Vec<Entry> = Vec::new();
                for part in parts {
                    if let Part::Lines(lines) = part {
                        all.extend(lines);
                    }
                }
                match direction {
                    Direction::Backward => all.sort_by_key(|e| std::cmp::Reverse(e.ts)),
                    Direction::Forward => all.sort_by_key(|e| e.ts),
                }
                all.truncate(*limit);
                Part::Lines(all)
            }
            Work::Buckets { .. } => {
                let mut all = Buckets::new();
                for part in parts {
                    for (labels, buckets) in part.into_buckets() {
                        let series = all.entry(labels).or_default();
                        for (b, c) in buckets {
                            let sum = series.entry(b).or_default();
                            sum.lines += c.lines;
                            sum.bytes += c.bytes;
                        }
                    }
                    if all.len() > MAX_SERIES {
                        return Err(too_many_series());
                    }
                }
                Part::from_buckets(all)
            }
            Work::Values { limit, .. } => {
                let mut all = BTreeSet::new();
                for part in parts {
                    if let Part::Values(v) = part {
                        all.extend(v);
                    }
                }
                Part::Values(all.into_iter().take(*limit).collect())
            }
            Work::Series { .. } => {
                let mut all = BTreeSet::new();
                for part in parts {
                    if let Part::Series(s) = part {
                        all.extend(s);
                    }
                }
                Part::Series(all)
            }
            Work::Stats { .. } => {
                let mut sum = Stats::default();
                for part in parts {
                    if let Part::Stats(s) = part {
                        sum.streams += s.streams;
                        sum.entries += s.entries;
                        sum.bytes += s.bytes;
                        sum.shards += s.shards;
                    }
                }
                Part::Stats(sum)
            }
        })
    }
}

impl Part {
    fn from_buckets(buckets: Buckets) -> Part {
        Part::Buckets(
            buckets
                .into_iter()
                .map(|(labels, b)| (labels, b.into_iter().collect()))
                .collect(),
        )
    }

    /// The buckets of a [`Part::Buckets`] (none for any other part).
    pub fn into_buckets(self) -> Vec<(Labels, Vec<(i64, Counts)>)> {
        match self {
            Part::Buckets(b) => b,
            _ => Vec::new(),
        }
    }

    /// Whether this part answers `work` (a peer's answer is checked before use).
    pub fn answers(&self, work: &Work) -> bool {
        matches!(
            (self, work),
            (Part::Lines(_), Work::Lines { .. })
                | (Part::Buckets(_), Work::Buckets { .. })
                | (Part::Values(_), Work::Values { .. })
                | (Part::Series(_), Work::Series { .. })
                | (Part::Stats(_), Work::Stats { .. })
        )
    }
}

/// The plan of `log` (which must be `what`: a log query, or a stream selector).
fn log_plan(log: &str, what: &str, tenant: &str, window: Window) -> Result<LogPlan, QueryError> {
    let Expr::Log(expr) = chute_logql::parse(log)? else {
        return Err(QueryError::Invalid(format!("{log:?} must be {what}")));
    };
    LogPlan::new(&expr, tenant, window, log)
}

/// A cursor over a query's rows, read a page at a time.
struct Cursor {
    shard: u32,
    timeout_ms: u64,
    done: bool,
}

impl Cursor {
    async fn open(
        tx: &deadpool_postgres::Transaction<'_>,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        shard: u32,
        timeout_ms: u64,
    ) -> Result<Cursor, QueryError> {
        tx.execute(&format!("DECLARE rows NO SCROLL CURSOR FOR {sql}"), params)
            .await
            .map_err(|e| shard_error(shard, timeout_ms, &e))?;
        Ok(Cursor {
            shard,
            timeout_ms,
            done: false,
        })
    }

    async fn next(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<Option<Vec<tokio_postgres::Row>>, QueryError> {
        if self.done {
            return Ok(None);
        }
        let rows = tx
            .query(&format!("FETCH {PAGE_ROWS} FROM rows"), &[])
            .await
            .map_err(|e| shard_error(self.shard, self.timeout_ms, &e))?;
        self.done = rows.len() < PAGE_ROWS;
        Ok((!rows.is_empty()).then_some(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: i64, text: &str) -> Entry {
        Entry {
            ts,
            line: text.into(),
            ..Entry::default()
        }
    }

    #[test]
    fn lines_merge_by_time_in_the_direction_and_keep_part_order_on_ties() {
        let work = Work::Lines {
            log: "{app=\"a\"}".into(),
            start: 0,
            end: 10,
            direction: Direction::Backward,
            limit: 3,
        };
        let merged = work
            .merge(vec![
                Part::Lines(vec![line(5, "a5"), line(2, "a2")]),
                Part::Lines(vec![line(5, "b5"), line(4, "b4")]),
            ])
            .unwrap();
        let Part::Lines(lines) = merged else { panic!() };
        let texts: Vec<&str> = lines.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(texts, ["a5", "b5", "b4"]);
    }

    #[test]
    fn buckets_of_the_same_series_add_up() {
        let work = Work::Buckets {
            log: "{app=\"a\"}".into(),
            after: 0,
            upto: 10,
            width: 1,
            by: None,
        };
        let labels: Labels = [("app".to_owned(), "a".to_owned())].into();
        let c = |lines, bytes| Counts { lines, bytes };
        let merged = work
            .merge(vec![
                Part::Buckets(vec![(
                    labels.clone(),
                    vec![(1, c(1.0, 10.0)), (2, c(2.0, 5.0))],
                )]),
                Part::Buckets(vec![(labels.clone(), vec![(2, c(3.0, 1.0))])]),
            ])
            .unwrap();
        assert_eq!(
            merged,
            Part::Buckets(vec![(labels, vec![(1, c(1.0, 10.0)), (2, c(5.0, 6.0))])])
        );
    }

    #[test]
    fn a_work_and_its_part_survive_the_wire() {
        let ask = Ask {
            tenant: "t".into(),
            shards: vec![2, 3],
            work: Work::Values {
                label: Label::Host,
                selector: "{app=~\"a.*\"}".into(),
                start: 1,
                end: 2,
                limit: 10,
            },
        };
        let text = serde_json::to_string(&ask).unwrap();
        assert_eq!(serde_json::from_str::<Ask>(&text).unwrap(), ask);
        let part = Part::Lines(vec![line(7, "x")]);
        let text = serde_json::to_string(&part).unwrap();
        assert_eq!(serde_json::from_str::<Part>(&text).unwrap(), part);
        assert!(part.answers(&Work::Lines {
            log: String::new(),
            start: 0,
            end: 0,
            direction: Direction::Forward,
            limit: 1
        }));
        assert!(!part.answers(&ask.work));
    }
}
