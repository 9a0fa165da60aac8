//! HTTP errors: each answer has a status, a JSON body, and a bounded metric reason.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::actors::DeliverError;
use crate::cluster::Refusal;
use crate::sources::http::body::BodyError;
use crate::sources::verdict::ParseError;

/// An error answer of the HTTP API.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Bounded label for `chute_requests_rejected_total`.
    pub reason: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds) with 503.
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    reason: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 503 with Retry-After.
    pub fn unavailable(
        reason: &'static str,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason, message)
        }
    }
}

/// Counts a refused request in `chute_requests_rejected_total` (and logs it at
/// debug), passing the result on.
pub fn counted(
    metrics: &crate::metrics::Metrics,
    result: Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = &result {
        metrics
            .requests_rejected
            .with_label_values(&[e.reason])
            .inc();
        tracing::debug!(status = e.status.as_u16(), reason = e.reason, error = %e.message, "request refused");
    }
    result
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(after) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
        }
        r.json(Body {
            error: &self.message,
            reason: self.reason,
        })
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        let status = match e {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Corrupt(_) => StatusCode::BAD_REQUEST,
            BodyError::UnsupportedEncoding(_) | BodyError::UnsupportedContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
        };
        ApiError::new(status, e.reason(), e.to_string())
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        let status = match e {
            ParseError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.reason(), e.to_string())
    }
}

impl From<DeliverError> for ApiError {
    fn from(e: DeliverError) -> Self {
        let retry_after = match &e {
            // A retry cannot succeed: 413, without Retry-After.
            DeliverError::TooLarge { .. } => {
                return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.reason(), e.to_string())
            }
            DeliverError::Full { retry_after, .. } => *retry_after,
            DeliverError::Stopped { .. } | DeliverError::Unavailable { .. } => {
                Duration::from_secs(5)
            }
        };
        ApiError::unavailable(e.reason(), e.to_string(), retry_after)
    }
}

impl From<Refusal> for ApiError {
    fn from(e: Refusal) -> Self {
        let status = match e {
            Refusal::Unauthorized | Refusal::UnknownNode => StatusCode::UNAUTHORIZED,
            Refusal::LayoutMismatch { .. } => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.reason(), e.to_string())
    }
}
