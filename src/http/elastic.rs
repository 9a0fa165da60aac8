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
use serde::Serialize;
use serde_json::json;

use super::error::{counted, ApiError};
use super::logs::{agent_tenant, deliver_parsed, header_text, receive};
use super::AppState;
use crate::sources::elastic::bulk::{check_index, Bulk, Item};
use crate::sources::elastic::{BulkBody, SOURCE};
use crate::sources::http::body::ContentEncoding;

/// The Elasticsearch version chute answers as: the clients and agents of
/// version 8 check the major.
const VERSION: &str = "8.17.0";

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
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
    if browser && req.method() == Method::GET {
        let mut page = super::console::index(req).await;
        page.headers_mut()
            .insert(header::VARY, header::HeaderValue::from_static("Accept"));
        return page;
    }
    es(StatusCode::OK)
        .insert_header((header::VARY, "Accept"))
        .json(json!({
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
    // The address the client reached (a bind address such as 0.0.0.0 would
    // send a sniffing client nowhere).
    let addr = req.connection_info().host().to_owned();
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
/// Not `_bulk` with another method or a trailing slash: that would answer 2xx
/// for records never stored.
pub async fn accepted(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/_bulk") {
        return error_answer(&ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not_found",
            "_bulk takes POST or PUT, at /_bulk or /<index>/_bulk",
        ));
    }
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
    if let Some(Err(e)) = index.as_deref().map(check_index) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_index", e));
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
    deliver_parsed(state, SOURCE, &mut bulk.parsed).await?;
    Ok(es(StatusCode::OK).json(BulkAnswer {
        took: started.elapsed().as_millis() as u64,
        errors: bulk.parsed.rejected_count > 0,
        items: bulk.items.iter().map(ItemAnswer).collect(),
    }))
}

/// A bulk answer. Items are as short as agents need them (VictoriaLogs
/// answers with the status alone): the index, the id if the action named one,
/// the status, and `result` or `error`.
#[derive(Serialize)]
struct BulkAnswer<'a> {
    took: u64,
    errors: bool,
    items: Vec<ItemAnswer<'a>>,
}

/// `{"create": {"_index": "logs", "status": 201, "result": "created"}}`.
struct ItemAnswer<'a>(&'a Item);

#[derive(Serialize)]
struct ItemBody<'a> {
    _index: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    _id: Option<&'a str>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError<'a>>,
}

#[derive(Serialize)]
struct ItemError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    reason: &'a str,
}

impl Serialize for ItemAnswer<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let item = self.0;
        let body = ItemBody {
            _index: &item.index,
            _id: item.id.as_deref(),
            status: if item.error.is_some() { 400 } else { 201 },
            result: item.error.is_none().then_some("created"),
            error: item.error.as_deref().map(|reason| ItemError {
                kind: "document_parsing_exception",
                reason,
            }),
        };
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(item.op.name(), &body)?;
        map.end()
    }
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
