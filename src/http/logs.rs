//! `POST /api/v1/logs`: records in, acknowledged once committed.

use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde::Serialize;

use super::budget::Charge;
use super::error::{counted, ApiError};
use super::AppState;
use crate::actors::ingest::{Decode, Parse};
use crate::actors::Route;
use crate::config::Scope;
use crate::limits::{Action, Refusal};
use crate::record::Record;
use crate::sources::http::body::{BodyCollector, BodyError, BodyFormat, ContentEncoding};
use crate::sources::http::JsonBody;
use crate::sources::verdict::{ParseError, Parsed, Rejection};

/// Header that names the tenant of every record in the request.
pub const TENANT_HEADER: &str = "x-chute-tenant";
/// Header that names the request for all time, so a retry of it is stored once.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Tenant of records whose request names none.
pub const DEFAULT_TENANT: &str = "default";
/// Bodies up to this size are parsed on the HTTP worker instead of the ingest pool.
const INLINE_PARSE_BYTES: usize = 16 * 1024;

#[derive(Serialize)]
struct Answer<'a> {
    accepted: usize,
    rejected: &'a [Rejection],
    rejected_count: usize,
}

/// Reads, decodes and parses the body, routes the good records, and answers once
/// they are committed.
pub async fn post_logs(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    counted(&state.metrics, ingest(&req, payload, &state).await)
}

async fn ingest(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let received_at = Utc::now();
    let headers = req.headers();
    let encoding = ContentEncoding::from_header(header_text(headers, header::CONTENT_ENCODING)?)?;
    let format = BodyFormat::from_content_type(header_text(headers, header::CONTENT_TYPE)?)?;
    let requested = tenant_header(headers, TENANT_HEADER, false)?;
    let caller = state
        .auth
        .admit(headers, req.peer_addr(), Scope::Ingest, requested)?;
    let tenant = caller.tenant;
    // Scoped by tenant and token: no other client can claim a sender's key.
    let origin = idempotency_key(headers)?.map(|key| match &caller.grant {
        Some(grant) => format!("req:{tenant}:{}:{key}", grant.name),
        None => format!("req:{tenant}:{key}"),
    });
    // Held until the answer: the parsed records take about as much again.
    let (mut parsed, _charge) = receive(
        SOURCE,
        &mut payload,
        encoding,
        headers,
        state,
        &tenant,
        |body, _| JsonBody {
            body,
            format,
            received_at,
            tenant: tenant.clone(),
        },
    )
    .await?;
    if parsed.records.is_empty() && parsed.rejected_count > 0 {
        state
            .metrics
            .requests_rejected
            .with_label_values(&["no_valid_records"])
            .inc();
        return Ok(HttpResponse::BadRequest().json(Answer {
            accepted: 0,
            rejected: &parsed.rejected,
            rejected_count: parsed.rejected_count,
        }));
    }
    let records = std::mem::take(&mut parsed.records);
    let accepted = records.len();
    deliver(state, SOURCE, records, origin).await?;
    Ok(HttpResponse::Ok().json(Answer {
        accepted,
        rejected: &parsed.rejected,
        rejected_count: parsed.rejected_count,
    }))
}

/// The `source` label of `POST /api/v1/logs`.
const SOURCE: &str = "http";

/// Reads the body (within `http.max_body_bytes`), decodes it as the job `job`
/// makes of it and its limit, and charges the request to `tenant`'s rate limits
/// (its records counted rejected for `source` when they are over them).
/// The [`Charge`] holds the body's bytes in the budget until it is dropped.
pub(super) async fn receive<D, O>(
    source: &str,
    payload: &mut web::Payload,
    encoding: ContentEncoding,
    headers: &HeaderMap,
    state: &AppState,
    tenant: &str,
    job: impl FnOnce(Vec<u8>, usize) -> D,
) -> Result<(O, Charge), ApiError>
where
    D: Decode<Output = Result<O, ParseError>>,
    O: AsRef<Parsed> + Send + 'static,
{
    let limit = body_limit(headers, state)?;
    let (body, charge) = read_body(payload, encoding, limit, state).await?;
    let body_bytes = body.len();
    let decoded = decode(state, job(body, limit), body_bytes).await?;
    let records = decoded.as_ref().records.len();
    admit(state, tenant, records, body_bytes).inspect_err(|_| {
        // Received (counted by the decoding), so counted refused too.
        state
            .metrics
            .records_rejected
            .with_label_values(&[source, "rate_limited"])
            .inc_by(records as u64);
    })?;
    Ok((decoded, charge))
}

/// The body limit (`http.max_body_bytes`); a declared length past it is refused
/// before a byte is read.
fn body_limit(headers: &HeaderMap, state: &AppState) -> Result<usize, ApiError> {
    let limit = state
        .http
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .max_body_bytes;
    let declared =
        header_text(headers, header::CONTENT_LENGTH)?.and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge { limit }.into());
    }
    Ok(limit)
}

/// Decodes `job`: a small body here, at once (it costs less than the hand-over,
/// and it never waits behind large bodies queued for the ingest pool), a larger
/// one on the ingest pool.
async fn decode<D, O>(state: &AppState, job: D, body_bytes: usize) -> Result<O, ApiError>
where
    D: Decode<Output = Result<O, ParseError>>,
    O: Send + 'static,
{
    if body_bytes <= INLINE_PARSE_BYTES {
        Ok(job.decode(&state.metrics)?)
    } else {
        Ok(state
            .ingest
            .send(Parse(job))
            .await
            .map_err(|_| stopping())??)
    }
}

/// Charges a whole request to its tenant's rate limits: an agent retries a 429
/// as it sent it.
fn admit(
    state: &AppState,
    tenant: &str,
    records: usize,
    body_bytes: usize,
) -> Result<(), ApiError> {
    state
        .limits
        .admit(tenant, records, body_bytes, Action::Refused)
        .map_err(|r| rate_limited(tenant, r))
}

/// Hands `records` to the router and waits until they are durable (fsynced in
/// their queues), at most `http.ack_timeout_ms`; counts them accepted or
/// rejected for `source`.
pub(super) async fn deliver(
    state: &AppState,
    source: &str,
    records: Vec<Record>,
    origin: Option<String>,
) -> Result<(), ApiError> {
    let accepted = records.len();
    if accepted == 0 {
        return Ok(());
    }
    let wait = Duration::from_millis(
        state
            .http
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ack_timeout_ms,
    );
    let routed = tokio::time::timeout(wait, state.router.send(Route { records, origin })).await;
    let failure = match routed {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(refused))) => Some(ApiError::from(refused)),
        Ok(Err(_mailbox)) => Some(stopping()),
        Err(_elapsed) => Some(ApiError::unavailable(
            "timeout",
            "the records were not committed in time; they may still be stored",
            Duration::from_secs(5),
        )),
    };
    if let Some(e) = failure {
        state
            .metrics
            .records_rejected
            .with_label_values(&[source, e.reason])
            .inc_by(accepted as u64);
        return Err(e);
    }
    state
        .metrics
        .records_accepted
        .with_label_values(&[source])
        .inc_by(accepted as u64);
    Ok(())
}

/// Delivers the records of `parsed` (taking them out of it) as [`deliver`]
/// does, and counts the request in `no_valid_records` when it had records and
/// every one was refused. How many were stored.
pub(super) async fn deliver_parsed(
    state: &AppState,
    source: &str,
    parsed: &mut Parsed,
) -> Result<usize, ApiError> {
    let records = std::mem::take(&mut parsed.records);
    let stored = records.len();
    deliver(state, source, records, None).await?;
    if stored == 0 && parsed.rejected_count > 0 {
        state
            .metrics
            .requests_rejected
            .with_label_values(&["no_valid_records"])
            .inc();
    }
    Ok(stored)
}

/// Reads the whole body, decoded, refusing it once either its received or its
/// decoded size passes `limit`, once it would pass the budget of bytes held by all
/// requests (503), or once it sends nothing for `http.body_timeout_ms` (408). The
/// returned [`Charge`] holds the body's bytes in the budget until it is dropped.
pub(super) async fn read_body(
    payload: &mut web::Payload,
    encoding: ContentEncoding,
    limit: usize,
    state: &AppState,
) -> Result<(Vec<u8>, Charge), ApiError> {
    let (budget_limit, idle) = {
        let http = state.http.read().unwrap_or_else(|p| p.into_inner());
        (
            http.max_inflight_bytes,
            Duration::from_millis(http.body_timeout_ms),
        )
    };
    let mut charge = state.budget.charge();
    let mut collector = BodyCollector::new(encoding, limit);
    loop {
        let chunk = match tokio::time::timeout(idle, payload.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_elapsed) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the body sent nothing for {} ms", idle.as_millis()),
                ))
            }
        };
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "read_error",
                format!("cannot read the body: {e}"),
            )
        })?;
        collector.push(&chunk)?;
        charge
            .grow_to(collector.held_bytes(), budget_limit)
            .map_err(|_| overloaded())?;
    }
    let body = collector.finish()?;
    charge
        .grow_to(body.capacity(), budget_limit)
        .map_err(|_| overloaded())?;
    Ok((body, charge))
}

fn overloaded() -> ApiError {
    ApiError::unavailable(
        "overloaded",
        "chute holds as many request bytes as it may (http.max_inflight_bytes); retry later",
        Duration::from_secs(1),
    )
}

fn stopping() -> ApiError {
    ApiError::unavailable("shutdown", "chute is shutting down", Duration::from_secs(5))
}

/// A header's value as text; a value that is not visible ASCII is a client error.
pub(super) fn header_text(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Result<Option<&str>, ApiError> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_header",
                    format!("{name} is not valid text"),
                )
            })
        })
        .transpose()
}

/// The tenant named by header `name`, if any: 1 to 64 of `A-Z a-z 0-9 . _ -`.
/// With `several`, also several tenants joined by `|` (a query's `a|b`).
pub(super) fn tenant_header(
    headers: &HeaderMap,
    name: &'static str,
    several: bool,
) -> Result<Option<String>, ApiError> {
    let Some(value) = header_text(headers, header::HeaderName::from_static(name))? else {
        return Ok(None);
    };
    let valid = crate::config::tokens::valid_name;
    if valid(value) || (several && value.split('|').all(valid)) {
        return Ok(Some(value.to_owned()));
    }
    let or_several = if several {
        ", or several joined by |"
    } else {
        ""
    };
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        format!("{name} must be 1 to 64 characters of A-Z a-z 0-9 . _ -{or_several}"),
    ))
}

/// The tenant header of Loki's API, read and write, and of the other agent
/// protocols (OTLP, `_bulk`), which agents already send to Loki.
pub(super) const ORG_HEADER: &str = "x-scope-orgid";

/// The tenant of an agent protocol's request: `X-Scope-OrgID` if it names one,
/// else the token's, as the token allows (`Scope::Ingest`).
pub(super) fn agent_tenant(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let headers = req.headers();
    let requested = tenant_header(headers, ORG_HEADER, false)?;
    Ok(state
        .auth
        .admit(headers, req.peer_addr(), Scope::Ingest, requested)?
        .tenant)
}

/// The request's idempotency key, if it names one: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = header_text(headers, header::HeaderName::from_static(IDEMPOTENCY_HEADER))?
    else {
        return Ok(None);
    };
    if (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(Some(value.to_owned()))
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "Idempotency-Key must be 1 to 128 visible ASCII characters",
        ))
    }
}

/// The answer to a request over its tenant's rate limit: 429 with `Retry-After`
/// (at least a second), or 413 when it holds more than a second's worth.
fn rate_limited(tenant: &str, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Later { limit, wait } => ApiError {
            retry_after: Some(wait.max(Duration::from_secs(1))),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("tenant {tenant} is over its {limit} per second; retry later"),
            )
        },
        Refusal::Never { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "rate_limited",
            format!("the request holds more {limit} than tenant {tenant} may send in a second; split it"),
        ),
    }
}
