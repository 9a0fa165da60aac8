//! `POST /v1/logs`: OTLP/HTTP logs, for the OpenTelemetry Collector, SDKs and
//! agents (decoding in `crate::sources::otlp`). Also served alone on
//! `http.otlp_listen` (4318 by convention) when it is set. The tenant is
//! `X-Scope-OrgID` (the header the Collector is given for Loki), else the
//! token's; everything after the decoding is `POST /api/v1/logs`'s.
//!
//! Answers as the OTLP specification asks, in the request's own encoding
//! (protobuf or JSON): 200 with an `ExportLogsServiceResponse`, whose
//! `partial_success` counts and names the refused records when there are any
//! (the others are stored); 400 with a `google.rpc.Status` for a body that
//! cannot be decoded; 413, 415; 429 and 503 with `Retry-After`, which OTLP
//! exporters retry.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::error::{counted, ApiError};
use super::logs::{agent_tenant, deliver_parsed, header_text, receive};
use super::AppState;
use crate::sources::http::body::ContentEncoding;
use crate::sources::otlp::logs::LogsFormat;
use crate::sources::otlp::proto::{ExportLogsPartialSuccess, ExportLogsServiceResponse, Status};
use crate::sources::otlp::{LogsBody, SOURCE};

pub async fn export(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    // Errors are answered in the request's encoding; JSON when it names none.
    let format = logs_format(req.headers()).unwrap_or(LogsFormat::Json);
    match counted(&state.metrics, store(&req, payload, &state).await) {
        Ok(answer) => answer,
        Err(e) => {
            let mut r = HttpResponse::build(e.status);
            if let Some(after) = e.retry_after {
                r.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
            }
            let status = Status {
                code: rpc_code(e.status),
                message: e.message,
            };
            reply(&mut r, format, &status)
        }
    }
}

async fn store(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let received_at = Utc::now();
    let headers = req.headers();
    let format = logs_format(headers)?;
    let encoding = ContentEncoding::from_header(header_text(headers, header::CONTENT_ENCODING)?)?;
    let tenant = agent_tenant(req, state)?;
    let (mut parsed, _charge) = receive(
        SOURCE,
        &mut payload,
        encoding,
        headers,
        state,
        &tenant,
        |body, limit| LogsBody {
            body,
            format,
            received_at,
            tenant: tenant.clone(),
            limit,
        },
    )
    .await?;
    let stored = deliver_parsed(state, SOURCE, &mut parsed).await?;
    let partial_success = parsed
        .rejected
        .first()
        .map(|first| ExportLogsPartialSuccess {
            rejected_log_records: parsed.rejected_count as i64,
            error_message: format!(
                "{} of {} log records refused ({stored} stored); the first, record {}: {}",
                parsed.rejected_count,
                stored + parsed.rejected_count,
                first.index,
                first.error
            ),
        });
    // A partial refusal is still 200, as OTLP has it: a retry cannot help.
    let mut r = HttpResponse::Ok();
    Ok(reply(
        &mut r,
        format,
        &ExportLogsServiceResponse { partial_success },
    ))
}

/// `message` in the request's encoding.
fn reply<M: prost::Message + serde::Serialize>(
    r: &mut actix_web::HttpResponseBuilder,
    format: LogsFormat,
    message: &M,
) -> HttpResponse {
    match format {
        LogsFormat::Protobuf => r
            .content_type("application/x-protobuf")
            .body(message.encode_to_vec()),
        LogsFormat::Json => r.json(message),
    }
}

/// The body's encoding, from its Content-Type.
fn logs_format(headers: &header::HeaderMap) -> Result<LogsFormat, ApiError> {
    let media = header_text(headers, header::CONTENT_TYPE)?
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/x-protobuf") | Some("application/protobuf") => {
            Ok(LogsFormat::Protobuf)
        }
        Some("application/json") => Ok(LogsFormat::Json),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            format!(
                "unsupported Content-Type {:?}; expected application/x-protobuf or application/json",
                other.unwrap_or("").chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// The `google.rpc.Code` of an HTTP status, as OTLP pairs them.
fn rpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        408 => 4,             // DEADLINE_EXCEEDED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}
