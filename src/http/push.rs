//! `POST /loki/api/v1/push`: Loki's push API, for the agents that speak it
//! (decoding in `crate::sources::loki`). The tenant is `X-Scope-OrgID`, as Loki
//! has it; everything after the decoding (limits, the durable queue, the answer
//! once fsynced) is `POST /api/v1/logs`'s.
//!
//! Answers as Loki does: 204 once every entry is durable; 400 with a text body
//! naming the refused entries (the others are stored); 413, 415, 429 and 503
//! (with `Retry-After`) as for chute's own JSON, with the message as text, the
//! form Loki's clients log.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::error::{counted, ApiError};
use super::logs::{agent_tenant, deliver_parsed, header_text, receive};
use super::AppState;
use crate::sources::http::body::{BodyError, ContentEncoding};
use crate::sources::loki::push::PushFormat;
use crate::sources::loki::{PushBody, SOURCE};

pub async fn push(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match counted(&state.metrics, store(&req, payload, &state).await) {
        Ok(answer) => answer,
        Err(e) => {
            let mut r = HttpResponse::build(e.status);
            if let Some(after) = e.retry_after {
                r.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
            }
            r.content_type("text/plain; charset=utf-8")
                .body(format!("{}\n", e.message))
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
    let format = push_format(header_text(headers, header::CONTENT_TYPE)?)?;
    // Snappy is part of the protobuf form; some clients also name it here.
    let encoding = match header_text(headers, header::CONTENT_ENCODING)? {
        Some(e) if format == PushFormat::Protobuf && e.eq_ignore_ascii_case("snappy") => {
            ContentEncoding::Identity
        }
        other => ContentEncoding::from_header(other)?,
    };
    let tenant = agent_tenant(req, state)?;
    let (mut parsed, _charge) = receive(
        SOURCE,
        &mut payload,
        encoding,
        headers,
        state,
        &tenant,
        |body, limit| PushBody {
            body,
            format,
            received_at,
            tenant: tenant.clone(),
            limit,
        },
    )
    .await?;
    let stored = deliver_parsed(state, SOURCE, &mut parsed).await?;
    let Some(first) = parsed.rejected.first() else {
        return Ok(HttpResponse::NoContent().finish());
    };
    let total = stored + parsed.rejected_count;
    Ok(HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "{} of {total} entries refused ({stored} stored); the first, entry {}: {}\n",
            parsed.rejected_count, first.index, first.error
        )))
}

/// The body's form, from its Content-Type: protobuf (Loki's clients) unless it
/// says JSON.
fn push_format(content_type: Option<&str>) -> Result<PushFormat, ApiError> {
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    match media.as_deref() {
        None | Some("application/x-protobuf") | Some("application/protobuf") => {
            Ok(PushFormat::Protobuf)
        }
        Some("application/json") => Ok(PushFormat::Json),
        Some(other) => {
            Err(BodyError::UnsupportedContentType(other.chars().take(64).collect()).into())
        }
    }
}
