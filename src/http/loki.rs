//! The Loki HTTP API, read side: what Grafana's Loki data source, `logcli` and
//! `chute query` ask. Parameters come in the query string or (POST) a form body;
//! answers have Loki's shapes (`status`, `data`, `resultType`, time stamps as
//! nanosecond strings in streams and seconds in matrices); a bad query is a 400
//! whose message says where. The tenant is `X-Scope-OrgID` (`default` without it).

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chute_logql::Expr;
use serde_json::{json, Value};

use super::logs::{tenant_header, ORG_HEADER};
use super::AppState;
use crate::config::Scope;
use crate::query::exec::Direction;
use crate::query::fanout::Fanout;
use crate::query::labels::Label;
use crate::query::metric::{self, format_value, seconds, Context, Steps};
use crate::query::pipeline::{Entry, Pipeline};
use crate::query::plan::{LogPlan, Window};
use crate::query::shard::{Part, Read, Work, ALL_STREAMS};
use crate::query::time::{nanos, parse_step, parse_time};
use crate::query::QueryError;

/// The request header that asks for structured metadata apart from labels.
const ENCODING_FLAGS: &str = "x-loki-response-encoding-flags";
/// Response header naming the shards an answer does not cover.
pub const MISSING_SHARDS_HEADER: &str = "x-chute-missing-shards";

/// Lines a log query returns when it does not say (Loki's default).
const DEFAULT_LIMIT: usize = 100;
/// How far back a query reaches when it gives no start (Loki's default).
const DEFAULT_SINCE_NS: i64 = 3_600 * 1_000_000_000;

/// A failed Loki request: its status and message, in Loki's error shape.
#[derive(Debug)]
pub struct LokiError(pub QueryError);

impl std::fmt::Display for LokiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for LokiError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            QueryError::Invalid(_) => StatusCode::BAD_REQUEST,
            QueryError::Unavailable(_) | QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueryError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            QueryError::Forbidden(_) => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let kind = match self.0 {
            QueryError::Invalid(_) => "bad_data",
            QueryError::Timeout(_) => "timeout",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Unauthorized(_) => "unauthorized",
            QueryError::Forbidden(_) => "forbidden",
        };
        let text = self.0.to_string();
        HttpResponse::build(self.status_code()).json(json!({
            "status": "error", "errorType": kind, "error": text, "message": text,
        }))
    }
}

impl From<QueryError> for LokiError {
    fn from(e: QueryError) -> Self {
        LokiError(e)
    }
}

/// The request's parameters: query string, then the form body of a POST.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn of(req: &HttpRequest, body: &[u8]) -> Params {
        let mut all: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            all.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(all)
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(super) fn query(&self) -> Result<&str, QueryError> {
        self.get("query")
            .ok_or_else(|| QueryError::Invalid("the query parameter is missing".into()))
    }

    pub(super) fn time(&self, name: &'static str) -> Result<Option<i64>, QueryError> {
        self.get(name)
            .map(|v| parse_time(name, v).map(nanos))
            .transpose()
            .map_err(|e| QueryError::Invalid(e.to_string()))
    }

    /// `start` and `end`: an hour before `end` and now by default.
    fn range(&self) -> Result<(i64, i64), QueryError> {
        let end = self
            .time("end")?
            .unwrap_or_else(|| nanos(chrono::Utc::now()));
        let start = self.time("start")?.unwrap_or(end - DEFAULT_SINCE_NS);
        if end < start {
            return Err(QueryError::Invalid("end is before start".into()));
        }
        Ok((start, end))
    }

    pub(super) fn limit(&self, max: usize) -> Result<usize, QueryError> {
        let Some(v) = self.get("limit") else {
            return Ok(DEFAULT_LIMIT.min(max));
        };
        match v.parse::<usize>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(QueryError::Invalid(format!(
                "limit must be a whole number from 1 to {max} (query.max_limit)"
            ))),
        }
    }

    fn direction(&self) -> Result<Direction, QueryError> {
        self.get("direction").map_or(Ok(Direction::Backward), |d| {
            Direction::parse(d)
                .ok_or_else(|| QueryError::Invalid("direction must be backward or forward".into()))
        })
    }
}

/// Counts and times one request by endpoint and result.
fn observe(
    state: &AppState,
    endpoint: &'static str,
    started: Instant,
    result: Result<HttpResponse, QueryError>,
) -> Result<HttpResponse, LokiError> {
    let outcome = result.as_ref().map_or_else(|e| e.reason(), |_| "ok");
    let m = &state.metrics;
    m.queries.with_label_values(&[endpoint, outcome]).inc();
    m.query_duration
        .with_label_values(&[endpoint])
        .observe(started.elapsed().as_secs_f64());
    result.map_err(LokiError)
}

/// Adds what a request read on this node's shards to `chute_query_rows_read_total`
/// and `chute_query_blocks_total`.
fn count_rows(state: &AppState, endpoint: &'static str, fanout: &Fanout<'_>) {
    count_read(state, endpoint, fanout.read());
}

/// Adds `read` to `chute_query_rows_read_total`, `chute_query_blocks_total` and
/// `chute_query_cache_hours_total`.
pub(super) fn count_read(state: &AppState, endpoint: &'static str, read: Read) {
    let m = &state.metrics;
    m.query_rows
        .with_label_values(&[endpoint])
        .inc_by(read.rows);
    m.query_blocks
        .with_label_values(&["read"])
        .inc_by(read.blocks.read);
    m.query_blocks
        .with_label_values(&["skipped"])
        .inc_by(read.blocks.skipped);
    m.query_cache_hours
        .with_label_values(&["hit"])
        .inc_by(read.hours.hits);
    m.query_cache_hours
        .with_label_values(&["miss"])
        .inc_by(read.hours.misses);
}

/// The tenant a read request may use: the one `X-Scope-OrgID` names (or, with
/// tokens, the token's first), if its token may read it.
pub(super) fn tenant(req: &HttpRequest, state: &AppState) -> Result<String, QueryError> {
    let requested = tenant_header(req.headers(), ORG_HEADER, true)
        .map_err(|e| QueryError::Invalid(e.message))?;
    let caller = state
        .auth
        .admit(req.headers(), req.peer_addr(), Scope::Query, requested)?;
    Ok(caller.tenant)
}

/// `GET|POST /loki/api/v1/query_range`.
pub async fn query_range(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "query_range",
        async |p, (start, end), fanout| {
            let step = step_of(p, start, end)?;
            let steps = Steps { start, end, step };
            answer(&req, &state, p, fanout, start, end, steps, false).await
        },
    )
    .await
}

/// The `step` (or `interval`) of a range query: about 250 points over the range
/// by default, as Loki, and at most 11,000.
pub(super) fn step_of(p: &Params, start: i64, end: i64) -> Result<i64, QueryError> {
    let step = match p.get("step").or(p.get("interval")) {
        Some(s) => parse_step("step", s).map_err(|e| QueryError::Invalid(e.to_string()))?,
        None => ((end - start) / 250).max(1_000_000_000),
    };
    if (end - start) / step > 11_000 {
        return Err(QueryError::Invalid(
            "more than 11,000 points per series; use a larger step".into(),
        ));
    }
    Ok(step)
}

/// `GET|POST /loki/api/v1/query`: an instant query at `time` (now by default).
pub async fn query(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    let started = Instant::now();
    let result = async {
        let p = Params::of(&req, &body);
        let time = p.time("time")?.unwrap_or_else(|| nanos(chrono::Utc::now()));
        let steps = Steps {
            start: time,
            end: time,
            step: 1_000_000_000,
        };
        let fanout = Fanout::new(&state.query, &tenant(&req, &state)?);
        let reply = answer(
            &req,
            &state,
            &p,
            &fanout,
            time - DEFAULT_SINCE_NS,
            time,
            steps,
            true,
        )
        .await;
        count_rows(&state, "query", &fanout);
        respond(&p, &fanout, reply?)
    }
    .await;
    observe(&state, "query", started, result)
}

/// What an endpoint answers, before the shards that did not answer are stated.
pub(super) enum Reply {
    /// Wrapped in `{"status": "success", "data": ...}`, with any warnings.
    Data(Value),
    /// As it is (`index/stats` answers a bare object).
    Bare(Value),
}

/// The response: the reply, the warnings and header naming the shards left out;
/// or, with `partial_response=false`, a 503 when any shard is missing.
fn respond(p: &Params, fanout: &Fanout<'_>, reply: Reply) -> Result<HttpResponse, QueryError> {
    let missing = fanout.missing();
    if !missing.is_empty() && p.get("partial_response") == Some("false") {
        return Err(QueryError::Unavailable(format!(
            "partial_response=false and {}",
            fanout.warnings().join("; ")
        )));
    }
    let mut response = match reply {
        Reply::Data(data) => {
            let mut body = json!({"status": "success", "data": data});
            let warnings = fanout.warnings();
            if !warnings.is_empty() {
                body["warnings"] = json!(warnings);
            }
            HttpResponse::Ok().json(body)
        }
        Reply::Bare(value) => HttpResponse::Ok().json(value),
    };
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(u32::to_string).collect();
        if let Ok(v) = header::HeaderValue::from_str(&ids.join(",")) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(MISSING_SHARDS_HEADER), v);
        }
    }
    Ok(response)
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    p: &Params,
    fanout: &Fanout<'_>,
    start: i64,
    end: i64,
    steps: Steps,
    instant: bool,
) -> Result<Reply, QueryError> {
    let text = p.query()?;
    let q = &state.query;
    match chute_logql::parse(text)? {
        Expr::Log(expr) => {
            // Planned here first, so an error points into the query as written.
            let window = Window::Lines {
                start: crate::query::time::from_nanos(start),
                end: crate::query::time::from_nanos(end),
            };
            let plan = LogPlan::new(&expr, fanout.tenant(), window, text)?;
            Pipeline::new(&plan.residual, text)?;
            let work = Work::Lines {
                log: expr.to_string(),
                start,
                end,
                direction: p.direction()?,
                limit: p.limit(q.max_limit)?,
            };
            let Part::Lines(entries) = fanout.ask(work).await? else {
                unreachable!("lines answer lines");
            };
            state
                .metrics
                .query_lines
                .with_label_values(&[if instant { "query" } else { "query_range" }])
                .inc_by(entries.len() as u64);
            let categorize = req
                .headers()
                .get(ENCODING_FLAGS)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"));
            Ok(Reply::Data(json!({
                "resultType": "streams",
                "result": streams(entries, categorize),
                "stats": stats(),
            })))
        }
        Expr::Metric(expr) => {
            let cx = Context {
                fanout,
                query: text,
                steps,
            };
            let value = metric::evaluate(&expr, &cx).await?;
            Ok(Reply::Data(if instant {
                match value {
                    metric::Value::Scalar(v) => json!({
                        "resultType": "scalar",
                        "result": [seconds(steps.start), format_value(v)],
                        "stats": stats(),
                    }),
                    metric::Value::Vector(series) => vector(series),
                }
            } else {
                let series = match value {
                    metric::Value::Scalar(v) => vec![metric::Series {
                        labels: BTreeMap::new(),
                        points: steps.times().map(|t| (t, v)).collect(),
                    }],
                    metric::Value::Vector(series) => series,
                };
                matrix(series)
            }))
        }
    }
}

/// Series as an instant vector: each one's last point.
fn vector(series: Vec<metric::Series>) -> Value {
    json!({
        "resultType": "vector",
        "result": series.into_iter().filter_map(|s| {
            let (t, v) = *s.points.last()?;
            Some(json!({"metric": s.labels, "value": [seconds(t), format_value(v)]}))
        }).collect::<Vec<_>>(),
        "stats": stats(),
    })
}

fn matrix(series: Vec<metric::Series>) -> Value {
    json!({
        "resultType": "matrix",
        "result": series.into_iter().map(|s| json!({
            "metric": s.labels,
            "values": s.points.into_iter()
                .map(|(t, v)| json!([seconds(t), format_value(v)]))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "stats": stats(),
    })
}

/// Loki's statistics object, as far as chute keeps them.
fn stats() -> Value {
    json!({"summary": {}})
}

/// Entries grouped into Loki streams. With `categorize`, a stream is its labels
/// and each value carries its structured metadata and parsed labels as a third
/// element; without, as Loki does, they join the stream's labels.
pub(super) fn streams(entries: Vec<Entry>, categorize: bool) -> Vec<Value> {
    let mut by_stream: BTreeMap<BTreeMap<String, String>, Vec<Value>> = BTreeMap::new();
    for e in entries {
        let ts = e.ts.to_string();
        if categorize {
            let mut extra = serde_json::Map::new();
            if !e.metadata.is_empty() {
                extra.insert("structuredMetadata".into(), json!(e.metadata));
            }
            if !e.parsed.is_empty() {
                extra.insert("parsed".into(), json!(e.parsed));
            }
            let value = if extra.is_empty() {
                json!([ts, e.line])
            } else {
                json!([ts, e.line, extra])
            };
            by_stream.entry(e.labels).or_default().push(value);
        } else {
            let mut labels = e.labels;
            labels.extend(e.metadata);
            labels.extend(e.parsed);
            by_stream
                .entry(labels)
                .or_default()
                .push(json!([ts, e.line]));
        }
    }
    by_stream
        .into_iter()
        .map(|(stream, values)| json!({"stream": stream, "values": values}))
        .collect()
}

/// Answers a request over a time range: reads the parameters, the range and the
/// tenant, runs `answer` with the fan-out that asks the cluster, states the
/// shards left out, and counts and times it as `endpoint`.
pub(super) async fn ranged(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    endpoint: &'static str,
    answer: impl AsyncFnOnce(&Params, (i64, i64), &Fanout<'_>) -> Result<Reply, QueryError>,
) -> Result<HttpResponse, LokiError> {
    let started = Instant::now();
    let result = async {
        let p = Params::of(req, body);
        let range = p.range()?;
        let fanout = Fanout::new(&state.query, &tenant(req, state)?);
        let reply = answer(&p, range, &fanout).await;
        count_rows(state, endpoint, &fanout);
        respond(&p, &fanout, reply?)
    }
    .await;
    observe(state, endpoint, started, result)
}

/// `GET /loki/api/v1/labels`: the labels that have a value in the range.
pub async fn labels(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "labels",
        async |p, (start, end), fanout| {
            let mut found = Vec::new();
            for label in Label::ALL {
                if label == Label::Tenant
                    || !values_of(fanout, label, start, end, p.get("query"), 1)
                        .await?
                        .is_empty()
                {
                    found.push(label.name());
                }
            }
            found.sort_unstable();
            Ok(Reply::Data(json!(found)))
        },
    )
    .await
}

/// `GET /loki/api/v1/label/{name}/values`, optionally within a stream selector.
pub async fn label_values(
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "label_values",
        async |p, (start, end), fanout| {
            let values = match Label::parse(&name) {
                Some(label) => values_of(fanout, label, start, end, p.get("query"), 1000).await?,
                None => Vec::new(),
            };
            Ok(Reply::Data(json!(values)))
        },
    )
    .await
}

/// Up to `limit` distinct values of `label` in the range, over every shard,
/// sorted; within the stream selector `query` when given.
async fn values_of(
    fanout: &Fanout<'_>,
    label: Label,
    start: i64,
    end: i64,
    query: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, QueryError> {
    let work = Work::Values {
        label,
        selector: query.unwrap_or(ALL_STREAMS).to_owned(),
        start,
        end,
        limit,
    };
    let Part::Values(values) = fanout.ask(work).await? else {
        unreachable!("values answer values");
    };
    Ok(values.into_iter().collect())
}

/// `GET|POST /loki/api/v1/series`: the label sets of the streams `match[]` selects.
pub async fn series(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "series",
        async |p, (start, end), fanout| {
            let mut selectors = p.all("match[]");
            selectors.extend(p.all("match"));
            if selectors.is_empty() {
                selectors.push(ALL_STREAMS);
            }
            let mut all = std::collections::BTreeSet::new();
            for selector in selectors {
                let work = Work::Series {
                    selector: selector.to_owned(),
                    start,
                    end,
                };
                if let Part::Series(found) = fanout.ask(work).await? {
                    all.extend(found);
                }
            }
            Ok(Reply::Data(json!(all)))
        },
    )
    .await
}

/// `GET|POST /loki/api/v1/index/stats`: streams, lines and bytes the stream
/// selector `query` covers in the range (Grafana shows it as the query's size).
/// chute has no chunks; `chunks` is the number of shards that answered.
pub async fn index_stats(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LokiError> {
    ranged(
        &req,
        &body,
        &state,
        "index_stats",
        async |p, (start, end), fanout| {
            let work = Work::Stats {
                selector: p.query()?.to_owned(),
                start,
                end,
            };
            let Part::Stats(s) = fanout.ask(work).await? else {
                unreachable!("stats answer stats");
            };
            Ok(Reply::Bare(json!({
                "streams": s.streams,
                "chunks": s.shards,
                "entries": s.entries,
                "bytes": s.bytes,
            })))
        },
    )
    .await
}

/// `GET /loki/api/v1/status/buildinfo`.
pub async fn buildinfo() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
