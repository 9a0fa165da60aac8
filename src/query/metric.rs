//! Metric queries: range aggregations counted by PostgreSQL, then vector
//! aggregations and arithmetic evaluated here, step by step.
//!
//! A range aggregation (`count_over_time`, `rate`, `bytes_over_time`,
//! `bytes_rate`) over `[r]` at step time `t` covers `(t - r, t]`. PostgreSQL counts
//! the lines and bytes of each stream in buckets of `g = gcd(step, r)`, aligned so
//! that every window is a whole number of buckets; the windows are then summed here
//! from the buckets, so no line is read twice however much the windows overlap.
//! When the query has stages chute must evaluate (a parser, a label filter), the
//! lines themselves are read (up to [`MAX_EVALUATED_LINES`] per node) and bucketed
//! by chute. Either way each shard's owner buckets its own lines, and the buckets
//! of every shard are added up ([`super::shard::Work::Buckets`]).
//!
//! Series carry their stream labels and the labels parsers extract; structured
//! metadata is not part of a series (Loki adds it; chute keeps series to streams).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chute_logql::{
    AggregationOp, BinaryOp, MetricExpr, RangeAggregation, RangeOp, VectorAggregation,
};

use super::fanout::Fanout;
use super::pipeline::Pipeline;
use super::plan::{LogPlan, Window};
use super::shard::{too_many_series, Work};
pub use super::shard::{Labels, MAX_EVALUATED_LINES, MAX_SERIES};
use super::time::from_nanos;
use super::QueryError;

/// One series: its labels and `(nanoseconds, value)` points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The value of a metric expression over the steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The same number at every step.
    Scalar(f64),
    Vector(Vec<Series>),
}

/// The steps a metric query is evaluated at: `start`, `start + step`, ... up to
/// and including `end` (an instant query is one step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    /// The step times, in order.
    pub fn times(self) -> impl Iterator<Item = i64> {
        let n = if self.end < self.start {
            0
        } else {
            (self.end - self.start) / self.step + 1
        };
        (0..n).map(move |i| self.start + i * self.step)
    }
}

/// What evaluating needs besides the expression.
pub struct Context<'a> {
    pub fanout: &'a Fanout<'a>,
    pub query: &'a str,
    pub steps: Steps,
}

/// Evaluates `expr` at every step.
///
/// # Errors
/// An invalid part of the query (with its position), a shard that fails, or a
/// query past its limits.
pub async fn evaluate(expr: &MetricExpr, cx: &Context<'_>) -> Result<Value, QueryError> {
    match expr {
        MetricExpr::Literal(l) => Ok(Value::Scalar(l.value)),
        MetricExpr::VectorLiteral(l) => Ok(Value::Vector(vec![Series {
            labels: Labels::new(),
            points: cx.steps.times().map(|t| (t, l.value)).collect(),
        }])),
        MetricExpr::Range(r) => range(r, None, cx).await.map(Value::Vector),
        MetricExpr::Vector(v) => {
            let inner = match (&*v.expr, kept_by_sum(v)) {
                // `sum by (labels)` of a range aggregation: the shards count
                // per those labels only (sums of sums: the same numbers).
                (MetricExpr::Range(r), Some(keep)) => {
                    Value::Vector(range(r, Some(keep), cx).await?)
                }
                _ => Box::pin(evaluate(&v.expr, cx)).await?,
            };
            aggregate(v, inner, cx.query)
        }
        MetricExpr::Binary(b) => {
            let lhs = Box::pin(evaluate(&b.lhs, cx)).await?;
            let rhs = Box::pin(evaluate(&b.rhs, cx)).await?;
            Ok(binary(b.op, lhs, rhs))
        }
    }
}

/// The labels a `sum` (or `sum by (...)`) keeps; `None` for any other
/// aggregation, which needs every series.
fn kept_by_sum(v: &VectorAggregation) -> Option<Vec<String>> {
    if v.op != AggregationOp::Sum {
        return None;
    }
    match &v.grouping {
        None => Some(Vec::new()),
        Some(g) if g.without => None,
        Some(g) => Some(g.labels.clone()),
    }
}

/// The series of range aggregation `r` at every step; with `keep`, with only
/// those stream labels (for a `sum by` of them).
async fn range(
    r: &RangeAggregation,
    keep: Option<Vec<String>>,
    cx: &Context<'_>,
) -> Result<Vec<Series>, QueryError> {
    let width = r.range.range.as_nanos();
    let offset = r.range.offset.map_or(0, |o| o.as_nanos());
    // Buckets of whole microseconds (PostgreSQL keeps no finer time). One step
    // (an instant query) has one window: one bucket, not one per gcd.
    let g = if cx.steps.start == cx.steps.end {
        width
    } else {
        gcd(cx.steps.step, width)
    };
    let g = g.max(1_000) / 1_000 * 1_000;
    let anchor = cx.steps.start - offset - width;
    // Planned here first, so an error points into the query as it was written.
    let window = Window::Samples {
        after: from_nanos(anchor),
        upto: from_nanos(cx.steps.end - offset),
    };
    let plan = LogPlan::new(&r.range.log, cx.fanout.tenant(), window, cx.query)?;
    Pipeline::new(&plan.residual, cx.query)?;
    let buckets = cx
        .fanout
        .ask(Work::Buckets {
            log: r.range.log.to_string(),
            after: anchor,
            upto: cx.steps.end - offset,
            width: g,
            by: keep,
        })
        .await?
        .into_buckets();
    if buckets.len() > MAX_SERIES {
        return Err(too_many_series());
    }
    let per_window = width / g;
    let secs = width as f64 / 1e9;
    let series = buckets
        .into_iter()
        .filter_map(|(labels, counts)| {
            let mut points = Vec::new();
            for (i, t) in cx.steps.times().enumerate() {
                // Window (t - offset - width, t - offset]: buckets after i*step/g.
                let first = (i as i64) * cx.steps.step / g + 1;
                let lo = counts.partition_point(|(b, _)| *b < first);
                let hi = counts.partition_point(|(b, _)| *b < first + per_window);
                let (mut lines, mut bytes) = (0.0, 0.0);
                let mut any = false;
                for (_, c) in &counts[lo..hi] {
                    lines += c.lines;
                    bytes += c.bytes;
                    any = true;
                }
                if !any {
                    continue;
                }
                let v = match r.op {
                    RangeOp::CountOverTime => lines,
                    RangeOp::Rate => lines / secs,
                    RangeOp::BytesOverTime => bytes,
                    RangeOp::BytesRate => bytes / secs,
                };
                points.push((t, v));
            }
            (!points.is_empty()).then_some(Series { labels, points })
        })
        .collect();
    Ok(series)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// `sum`, `avg`, `min`, `max`, `count` by/without labels, and `topk`/`bottomk`.
fn aggregate(v: &VectorAggregation, inner: Value, query: &str) -> Result<Value, QueryError> {
    let Value::Vector(series) = inner else {
        return Err(QueryError::at(
            query,
            v.span,
            "an aggregation needs a vector, not a number",
        ));
    };
    let key = |labels: &Labels| -> Labels {
        match &v.grouping {
            None => Labels::new(),
            Some(g) if g.without => labels
                .iter()
                .filter(|(k, _)| !g.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(g) => labels
                .iter()
                .filter(|(k, _)| g.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    if let AggregationOp::TopK(k) | AggregationOp::BottomK(k) = v.op {
        return Ok(Value::Vector(top(series, k, v.op, &key)));
    }
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for s in series {
        let g = groups.entry(key(&s.labels)).or_default();
        for (t, value) in s.points {
            g.entry(t).or_default().push(value);
        }
    }
    let out = groups
        .into_iter()
        .map(|(labels, points)| Series {
            labels,
            points: points
                .into_iter()
                .map(|(t, values)| {
                    let n = values.len() as f64;
                    let v = match v.op {
                        AggregationOp::Sum => values.iter().sum(),
                        AggregationOp::Avg => values.iter().sum::<f64>() / n,
                        AggregationOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                        AggregationOp::Max => {
                            values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                        }
                        AggregationOp::Count => n,
                        AggregationOp::TopK(_) | AggregationOp::BottomK(_) => {
                            unreachable!("handled above")
                        }
                    };
                    (t, v)
                })
                .collect(),
        })
        .collect();
    Ok(Value::Vector(out))
}

/// The `k` largest (or smallest) series of each group at each step; a series keeps
/// its labels and the points where it was among them.
fn top(
    series: Vec<Series>,
    k: u64,
    op: AggregationOp,
    key: &dyn Fn(&Labels) -> Labels,
) -> Vec<Series> {
    let mut at: BTreeMap<(Labels, i64), Vec<(f64, usize)>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for &(t, v) in &s.points {
            at.entry((key(&s.labels), t)).or_default().push((v, i));
        }
    }
    let mut kept: Vec<BTreeMap<i64, f64>> = vec![BTreeMap::new(); series.len()];
    for ((_, t), mut values) in at {
        values.sort_by(|a, b| {
            let o = a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal);
            if matches!(op, AggregationOp::TopK(_)) {
                o.reverse()
            } else {
                o
            }
        });
        for (v, i) in values.into_iter().take(k as usize) {
            kept[i].insert(t, v);
        }
    }
    series
        .into_iter()
        .zip(kept)
        .filter(|(_, points)| !points.is_empty())
        .map(|(s, points)| Series {
            labels: s.labels,
            points: points.into_iter().collect(),
        })
        .collect()
}

fn apply(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        BinaryOp::Pow => a.powf(b),
    }
}

/// Arithmetic: number with number, a vector's every point with a number, or two
/// vectors' series with the same labels, point by point.
fn binary(op: BinaryOp, lhs: Value, rhs: Value) -> Value {
    let map = |series: Vec<Series>, f: &dyn Fn(f64) -> f64| {
        series
            .into_iter()
            .map(|s| Series {
                labels: s.labels,
                points: s.points.into_iter().map(|(t, v)| (t, f(v))).collect(),
            })
            .collect()
    };
    match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(apply(op, a, b)),
        (Value::Vector(v), Value::Scalar(b)) => Value::Vector(map(v, &|a| apply(op, a, b))),
        (Value::Scalar(a), Value::Vector(v)) => Value::Vector(map(v, &|b| apply(op, a, b))),
        (Value::Vector(l), Value::Vector(r)) => {
            let right: BTreeMap<Labels, BTreeMap<i64, f64>> = r
                .into_iter()
                .map(|s| (s.labels, s.points.into_iter().collect()))
                .collect();
            Value::Vector(
                l.into_iter()
                    .filter_map(|s| {
                        let other = right.get(&s.labels)?;
                        let points: Vec<(i64, f64)> = s
                            .points
                            .into_iter()
                            .filter_map(|(t, a)| other.get(&t).map(|b| (t, apply(op, a, *b))))
                            .collect();
                        (!points.is_empty()).then_some(Series {
                            labels: s.labels,
                            points,
                        })
                    })
                    .collect(),
            )
        }
    }
}

/// A sample value as Prometheus and Loki print it (`2`, `0.5`, `+Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A step time as the API prints it: seconds, with a fraction when there is one.
pub fn seconds(t: i64) -> serde_json::Value {
    if t % 1_000_000_000 == 0 {
        serde_json::json!(t / 1_000_000_000)
    } else {
        serde_json::json!(t as f64 / 1e9)
    }
}

/// Nanoseconds of a time.
pub fn at(t: DateTime<Utc>) -> i64 {
    super::time::nanos(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(points: &[(&str, &[(i64, f64)])]) -> Value {
        Value::Vector(
            points
                .iter()
                .map(|(host, p)| Series {
                    labels: [("host".to_owned(), host.to_string())].into(),
                    points: p.to_vec(),
                })
                .collect(),
        )
    }

    #[test]
    fn arithmetic_matches_series_by_labels_and_numbers_apply_to_every_point() {
        let a = vector(&[("a", &[(1, 2.0), (2, 4.0)]), ("b", &[(1, 1.0)])]);
        let b = vector(&[("a", &[(2, 1.0)])]);
        assert_eq!(
            binary(BinaryOp::Div, a.clone(), b),
            vector(&[("a", &[(2, 4.0)])])
        );
        assert_eq!(
            binary(BinaryOp::Mul, a, Value::Scalar(10.0)),
            vector(&[("a", &[(1, 20.0), (2, 40.0)]), ("b", &[(1, 10.0)])])
        );
        assert_eq!(
            binary(BinaryOp::Pow, Value::Scalar(2.0), Value::Scalar(10.0)),
            Value::Scalar(1024.0)
        );
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1.0 / 0.0), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(seconds(1_500_000_000), serde_json::json!(1.5));
        assert_eq!(seconds(2_000_000_000), serde_json::json!(2));
    }

    #[test]
    fn steps_run_from_start_to_end_inclusive() {
        let s = Steps {
            start: 10,
            end: 30,
            step: 10,
        };
        assert_eq!(s.times().collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(
            Steps {
                start: 10,
                end: 5,
                step: 10
            }
            .times()
            .count(),
            0
        );
        assert_eq!(gcd(300_000_000_000, 60_000_000_000), 60_000_000_000);
    }
}
