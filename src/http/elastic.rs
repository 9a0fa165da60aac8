//! Elasticsearch's bulk API for the agents that speak it (decoding in
//! `crate::sources::elastic`): `POST`/`PUT /_bulk` and `/<index>/_bulk`, and the
//! endpoints agents and clients probe before they send.
//!
//! - `GET /` (unless a browser asks for HTML: then it is the console) and
//!   `HEAD /`: a cluster of version 8 (`version.number`), which Filebeat,
//!   Logstash, Vector and the clients check.
//! - `GET /_license` (basic, active), `GET /_nodes[/...]` (this node),
//!   `GET /_cluster/health` (green).
//! - Anything else under `/_` (`_index_template`, `_ilm/policy`,
//!   `_data_stream`, `_ingest/pipeline`, `_template`...): `GET`/`HEAD` answer
//!   200 (it exists: an agent then does not try to install it), `PUT`, `POST`
//!   and `DELETE` answer `{"acknowledged": true}` and change nothing.
//!
//! Every answer has `X-Elastic-Product: Elasticsearch`, which the official
//! clients and Logstash require. The probes need no token; `_bulk` needs an
//! ingest token once `[[tokens]]` are set (HTTP Basic with the token as the
//! password, or Bearer). The tenant is `X-Scope-OrgID`, else the token's.
//!
//! A bulk answer has an item per action: 201 for a stored document, 400 for a
//! refused one (with `errors: true`; the others are stored). Overload, rate
//! limits and every other refusal of the request are whole-request errors
//! (429/503 with `Retry-After`, 413...) in Elasticsearch's error form, never
//! per-item: Fluent Bit retries a whole chunk with any item error, and Vector
//! drops what it judges partially failed.

use std::time::Instant;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::Utc;
use serde_json::{json, Value};

use super::error::{counted, ApiError};
use super::logs::{agent_tenant, deliver, header_text, receive};
use super::AppState;
use crate::sources::elastic::bulk::{Bulk, Item};
use crate::sources::elastic::{BulkBody, SOURCE};
use crate::sources::http::body::ContentEncoding;

/// The Elasticsearch version chute answers as: the clients and agents of
/// version 8 check the major.
const VERSION: &str = "8.17.0";
/// The longest index name Elasticsearch allows.
const MAX_INDEX_BYTES: usize = 255;

/// An answer builder with the product header every Elasticsearch answer has.
fn es(status: StatusCode) -> HttpResponseBuilder {
    let mut r = HttpResponse::build(status);
    r.insert_header(("x-elastic-product", "Elasticsearch"));
    r
}

/// `GET /` and `HEAD /`: the cluster's identity, or the console for a browser.
pub async fn root(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let browser = header_text(req.headers(), header::ACCEPT)
        .ok()
        .flatten()
        .is_some_and(|a| a.contains("text/html"));
    if browser && req.method() == Method::GET {
        return super::console::index(req).await;
    }
    es(StatusCode::OK).json(json!({
        "name": state.cluster.node,
        "cluster_name": "chute",
        "cluster_uuid": "chute",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "chute",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "2024-12-11T12:08:05.663969764Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    }))
}

/// `GET /_license`.
pub async fn license() -> HttpResponse {
    es(StatusCode::OK).json(json!({"license": {
        "status": "active", "uid": "chute", "type": "basic", "mode": "basic",
        "issue_date_in_millis": 0, "max_nodes": 1000, "issued_to": "chute",
        "issuer": "chute", "start_date_in_millis": -1
    }}))
}

/// `GET /_nodes[/...]`: this node, where clients that sniff find it.
pub async fn nodes(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let addr = req.app_config().local_addr().to_string();
    let name = &state.cluster.node;
    es(StatusCode::OK).json(json!({
        "_nodes": {"total": 1, "successful": 1, "failed": 0},
        "cluster_name": "chute",
        "nodes": {name: {
            "name": name, "version": VERSION, "roles": ["data", "ingest", "master"],
            "http": {"publish_address": addr}
        }}
    }))
}

/// `GET /_cluster/health`.
pub async fn health() -> HttpResponse {
    es(StatusCode::OK).json(json!({
        "cluster_name": "chute", "status": "green", "timed_out": false,
        "number_of_nodes": 1, "number_of_data_nodes": 1
    }))
}

/// Every other `/_...` an agent sets up or probes: present, and acknowledged.
pub async fn accepted(req: HttpRequest) -> HttpResponse {
    match *req.method() {
        Method::GET | Method::HEAD => es(StatusCode::OK).json(json!({})),
        _ => es(StatusCode::OK).json(json!({"acknowledged": true})),
    }
}

/// `POST`/`PUT /_bulk` and `/<index>/_bulk`.
pub async fn bulk(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    match counted(&state.metrics, store(&req, payload, &state, started).await) {
        Ok(answer) => answer,
        Err(e) => error_answer(&e),
    }
}

async fn store(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let received_at = Utc::now();
    let headers = req.headers();
    let index = req.match_info().get("index").map(str::to_owned);
    if let Some(index) = &index {
        if index.len() > MAX_INDEX_BYTES || index.starts_with('_') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_index",
                format!("an index name is 1 to {MAX_INDEX_BYTES} bytes and does not start with _"),
            ));
        }
    }
    check_content_type(header_text(headers, header::CONTENT_TYPE)?)?;
    let encoding = ContentEncoding::from_header(header_text(headers, header::CONTENT_ENCODING)?)?;
    let tenant = agent_tenant(req, state)?;
    let (mut bulk, _charge): (Bulk, _) = receive(
        SOURCE,
        &mut payload,
        encoding,
        headers,
        state,
        &tenant,
        |body, _| BulkBody {
            body,
            index,
            received_at,
            tenant: tenant.clone(),
        },
    )
    .await?;
    let records = std::mem::take(&mut bulk.parsed.records);
    let stored = records.len();
    deliver(state, SOURCE, records, None).await?;
    if stored == 0 && bulk.parsed.rejected_count > 0 {
        state
            .metrics
            .requests_rejected
            .with_label_values(&["no_valid_records"])
            .inc();
    }
    let items: Vec<Value> = bulk
        .items
        .iter()
        .enumerate()
        .map(|(n, item)| item_answer(item, received_at.timestamp_micros(), n))
        .collect();
    Ok(es(StatusCode::OK).json(json!({
        "took": started.elapsed().as_millis() as u64,
        "errors": bulk.parsed.rejected_count > 0,
        "items": items,
    })))
}

/// One action's item: `{"create": {"_index": ..., "status": 201, ...}}`.
fn item_answer(item: &Item, batch: i64, n: usize) -> Value {
    // Records have no id: a made-up one, unique per request and position, for
    // clients that read it.
    let id = item.id.clone().unwrap_or_else(|| format!("{batch:x}-{n}"));
    let body = match &item.error {
        None => json!({
            "_index": item.index, "_id": id, "_version": 1, "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": n, "_primary_term": 1, "status": 201
        }),
        Some(reason) => json!({
            "_index": item.index, "_id": id, "status": 400,
            "error": {"type": "document_parsing_exception", "reason": reason}
        }),
    };
    json!({ item.op.name(): body })
}

/// Bulk bodies are NDJSON under any of the names clients give it: none,
/// `application/json`, `application/x-ndjson`, and version 8's
/// `application/vnd.elasticsearch+x-ndjson; compatible-with=8` (and `+json`).
fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(media) = content_type.and_then(|t| t.split(';').next()) else {
        return Ok(());
    };
    let media = media.trim().to_ascii_lowercase();
    let known = [
        "application/json",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+x-ndjson",
    ];
    if known.contains(&media.as_str()) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        format!(
            "unsupported Content-Type {:?}; expected application/x-ndjson or application/json",
            media.chars().take(64).collect::<String>()
        ),
    ))
}

/// An error in Elasticsearch's form, with `Retry-After` where it applies.
fn error_answer(e: &ApiError) -> HttpResponse {
    let kind = match e.status.as_u16() {
        400 => "parse_exception",
        401 | 403 => "security_exception",
        413 => "content_too_long_exception",
        415 => "media_type_header_exception",
        429 | 503 => "es_rejected_execution_exception",
        _ => "exception",
    };
    let mut r = es(e.status);
    if let Some(after) = e.retry_after {
        r.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
    }
    r.json(json!({
        "error": {
            "root_cause": [{"type": kind, "reason": e.message}],
            "type": kind,
            "reason": e.message,
            "chute_reason": e.reason,
        },
        "status": e.status.as_u16(),
    }))
}
