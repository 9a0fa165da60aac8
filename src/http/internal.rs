//! Node-to-node routes: `POST /internal/v1/batches` takes the batches a peer link
//! forwards, and answers once they are durable in this node's shard queues;
//! `POST /internal/v1/query` answers a peer's part of a query on this node's shards
//! ([`crate::query::fanout`]).
//!
//! Every request must carry the cluster's peer token, a known sender, and the same
//! layout fingerprint as this node ([`crate::cluster::ClusterView::admit`]); anything
//! else is refused (401/409) and counted before the body is read.

use actix_web::http::header::{self, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::error::ApiError;
use super::logs::{header_text, read_body};
use super::loki::LokiError;
use super::AppState;
use crate::batch::wire::{parse_batches, LAYOUT_HEADER, NODE_HEADER};
use crate::cluster::receiver::{store, StoreError};
use crate::query::shard::Ask;
use crate::sources::http::body::ContentEncoding;

/// The sending node, once the request proves it belongs to the cluster.
pub(super) fn admit(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let headers = req.headers();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let sender = header_text(headers, HeaderName::from_static(NODE_HEADER))?;
    let layout = header_text(headers, HeaderName::from_static(LAYOUT_HEADER))?;
    state
        .cluster
        .admit(token, sender, layout)
        .map(str::to_owned)
        .map_err(ApiError::from)
}

/// Any other `/internal/` request: 401 without the right token (counted), else 404.
pub async fn unknown(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = admit(&req, &state) {
        state
            .metrics
            .internal_refused
            .with_label_values(&[e.reason])
            .inc();
        return Err(e);
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such internal route",
    ))
}

/// Counts and logs a refused peer request.
pub(super) fn count_refusal(state: &AppState, e: &ApiError) {
    state
        .metrics
        .internal_refused
        .with_label_values(&[e.reason])
        .inc();
    tracing::warn!(status = e.status.as_u16(), reason = e.reason, error = %e.message, "refused a peer request");
}

/// `POST /internal/v1/batches`.
pub async fn post_batches(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = receive(&req, &mut payload, &state).await;
    if let Err(e) = &result {
        if e.status != StatusCode::SERVICE_UNAVAILABLE {
            count_refusal(&state, e);
        }
    }
    result
}

async fn receive(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let sender = admit(req, state)?;
    let encoding =
        ContentEncoding::from_header(header_text(req.headers(), header::CONTENT_ENCODING)?)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    let (body, _charge) = read_body(payload, encoding, state.cluster.max_request_bytes, state)
        .await
        .map_err(|e| {
            let reason = match e.status {
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                // Overloaded: the peer link retries, as after any 503.
                StatusCode::SERVICE_UNAVAILABLE => return e,
                _ => "malformed",
            };
            ApiError::new(e.status, reason, e.message)
        })?;
    let batches = parse_batches(Bytes::from(body)).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("malformed batches: {why}"),
        )
    })?;
    let stored = store(&state.cluster, batches).await.map_err(|e| match e {
        StoreError::NotOwned { .. } => {
            ApiError::new(StatusCode::CONFLICT, "shard_not_owned", e.to_string())
        }
        StoreError::Deliver(e) => ApiError::from(e),
    })?;
    let m = &state.metrics;
    m.peer_batches_received
        .with_label_values(&[&sender])
        .inc_by(stored.batches as u64);
    m.peer_records_received
        .with_label_values(&[&sender])
        .inc_by(stored.records as u64);
    Ok(HttpResponse::Ok().json(stored))
}

/// The request of a peer (admitted as for batches), read from its JSON body;
/// a refusal is counted.
///
/// # Errors
/// 401/409 for a request that is not a peer's, 400 for a body that is not a `T`.
pub(super) fn admitted<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<T, actix_web::Error> {
    let refused = |e: ApiError| {
        count_refusal(state, &e);
        actix_web::Error::from(e)
    };
    admit(req, state).map_err(refused)?;
    serde_json::from_slice(body).map_err(|e| {
        refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("malformed request: {e}"),
        ))
    })
}

/// Largest query request a peer sends (a LogQL text is at most 64 KiB).
pub const MAX_QUERY_REQUEST_BYTES: usize = 1 << 20;

/// `POST /internal/v1/query`: the part of a query the asking node wants from the
/// shards it names, which must all be this node's.
pub async fn post_query(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let refused = |e: ApiError| {
        count_refusal(&state, &e);
        actix_web::Error::from(e)
    };
    let ask: Ask = admitted(&req, &body, &state)?;
    let q = &state.query;
    let mut shards = Vec::new();
    for id in &ask.shards {
        let Some(shard) = q.shards.local.iter().find(|s| s.id == *id) else {
            return Err(refused(ApiError::new(
                StatusCode::CONFLICT,
                "shard_not_owned",
                format!("shard {id} is not written by this node"),
            )));
        };
        shards.push(shard);
    }
    let started = std::time::Instant::now();
    let result = match ask.work.prepare(&ask.tenant) {
        Ok(prepared) => ask.work.on_all(&shards, &prepared, q.timeout_ms).await,
        Err(e) => Err(e),
    };
    let m = &state.metrics;
    let outcome = result.as_ref().map_or_else(|e| e.reason(), |_| "ok");
    m.queries.with_label_values(&["internal", outcome]).inc();
    if let Ok((_, read)) = &result {
        super::loki::count_read(&state, "internal", *read);
    }
    m.query_duration
        .with_label_values(&["internal"])
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok((part, _)) => Ok(HttpResponse::Ok().json(part)),
        Err(e) => Err(LokiError(e).into()),
    }
}
