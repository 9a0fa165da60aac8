//! `GET|POST /loki/api/v1/index/volume` and `index/volume_range`: how many bytes
//! of log lines the streams a selector picks hold, grouped by labels (those
//! `targetLabels` names, else those the selector's matchers name), largest first.
//! Grafana's Logs Drilldown and volume panels ask them. chute counts them as
//! `bytes_over_time` would: each shard's owner buckets its own lines, and the
//! buckets are added up; `volume` is one bucket over the whole range, `volume_range`
//! one per `step`, each ending at its step time.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chute_logql::Expr;
use serde_json::{json, Value};

use super::loki::{ranged, step_of, LokiError, Params, Reply};
use super::AppState;
use crate::query::fanout::Fanout;
use crate::query::labels::Label;
use crate::query::metric::{format_value, seconds};
use crate::query::shard::{Labels, Work};
use crate::query::QueryError;

/// Series a volume answer lists when `limit` is not given (Loki's default).
const DEFAULT_LIMIT: usize = 100;

/// `GET|POST /loki/api/v1/index/volume`.
pub async fn volume(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "index_volume",
        async |p, (start, end), fanout| {
            // One bucket of whole microseconds that holds the range.
            let width = ((end - start).max(1_000) + 999) / 1_000 * 1_000;
            let series = volumes(p, fanout, start - 1, end - 1, width).await?;
            let result: Vec<Value> = series
                .into_iter()
                .map(|(labels, points)| {
                    let bytes: f64 = points.values().sum();
                    json!({"metric": labels, "value": [seconds(end), format_value(bytes)]})
                })
                .collect();
            Ok(Reply::Data(
                json!({"resultType": "vector", "result": result}),
            ))
        },
    )
    .await
}

/// `GET|POST /loki/api/v1/index/volume_range`.
pub async fn volume_range(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "volume_range",
        async |p, (start, end), fanout| {
            let step = step_of(p, start, end)?.max(1_000) / 1_000 * 1_000;
            // Point `t = start + k·step` covers `(t - step, t]`: bucket k + 1.
            let series = volumes(p, fanout, start - step, end, step).await?;
            let result: Vec<Value> = series
                .into_iter()
                .map(|(labels, points)| {
                    let values: Vec<Value> = points
                        .into_iter()
                        .map(|(b, bytes)| {
                            json!([seconds(start + (b - 1) * step), format_value(bytes)])
                        })
                        .collect();
                    json!({"metric": labels, "values": values})
                })
                .collect();
            Ok(Reply::Data(
                json!({"resultType": "matrix", "result": result}),
            ))
        },
    )
    .await
}

/// Bytes per bucket of `width` over `(after, upto]`, per group of the labels the
/// request aggregates by; the `limit` largest groups, largest first.
async fn volumes(
    p: &Params,
    fanout: &Fanout<'_>,
    after: i64,
    upto: i64,
    width: i64,
) -> Result<Vec<(Labels, BTreeMap<i64, f64>)>, QueryError> {
    let selector = p.query()?;
    let Expr::Log(expr) = chute_logql::parse(selector)? else {
        return Err(QueryError::Invalid(
            "query must be a stream selector".into(),
        ));
    };
    if !expr.pipeline.is_empty() {
        return Err(QueryError::Invalid(
            "query must be a stream selector, without a pipeline".into(),
        ));
    }
    if p.get("aggregateBy").is_some_and(|a| a != "series") {
        return Err(QueryError::Invalid(
            "aggregateBy: only series is supported".into(),
        ));
    }
    let by: Vec<String> = match p.get("targetLabels") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| match Label::parse(l) {
                Some(label) => Ok(label.name().to_owned()),
                None => Err(QueryError::Invalid(format!(
                    "targetLabels: {l:?} is not a label chute keeps"
                ))),
            })
            .collect::<Result<_, _>>()?,
        None => expr
            .selector
            .matchers
            .iter()
            .map(|m| m.name.clone())
            .collect(),
    };
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| QueryError::Invalid("limit must be a whole number from 1".into()))?,
    };
    let buckets = fanout
        .ask(Work::Buckets {
            log: selector.to_owned(),
            after,
            upto,
            width,
            by: Some(by.clone()),
        })
        .await?
        .into_buckets();
    let mut groups: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    for (labels, counts) in buckets {
        let key: Labels = labels
            .into_iter()
            .filter(|(name, _)| by.contains(name))
            .collect();
        let group = groups.entry(key).or_default();
        for (b, c) in counts {
            *group.entry(b).or_default() += c.bytes;
        }
    }
    let mut largest: Vec<_> = groups.into_iter().collect();
    let total = |points: &BTreeMap<i64, f64>| points.values().sum::<f64>();
    largest.sort_by(|a, b| total(&b.1).total_cmp(&total(&a.1)).then(a.0.cmp(&b.0)));
    largest.truncate(limit);
    Ok(largest)
}
