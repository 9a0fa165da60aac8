//! `/api/v1/deadletter`: the batches peers refused for good
//! ([`crate::deadletter`]), listed, replayed or dropped; what
//! `chute deadletter` calls.
//!
//! - `GET /api/v1/deadletter` lists them.
//! - `POST /api/v1/deadletter/replay` delivers each chosen one to whichever node
//!   owns its shard now, under the batch id it was first forwarded with (stored
//!   once, however often it is replayed), then removes it.
//! - `POST /api/v1/deadletter/drop` removes the chosen ones unstored.
//!
//! The body chooses: `{"ids": ["b/00000000000000000042", ...]}` or `{"all": true}`;
//! an id that is not listed is 404 and nothing is done. These routes change what
//! this node stores or discards, so only clients on the same host (a loopback
//! address) may use them; others get 403.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::{counted, ApiError};
use super::AppState;
use crate::actors::Redeliver;
use crate::batch::EncodedRows;
use crate::deadletter::{DeadLetters, Meta};

/// Which dead letters a replay or drop is for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

#[derive(Serialize)]
struct Listed {
    entries: Vec<Meta>,
}

#[derive(Serialize, Default)]
struct Done {
    /// Ids replayed (and removed), or dropped.
    done: Vec<String>,
    /// Ids that could not be replayed, with why; they stay.
    failed: Vec<Failed>,
}

#[derive(Serialize)]
struct Failed {
    id: String,
    error: String,
}

fn only_local(req: &HttpRequest) -> Result<(), ApiError> {
    if req.peer_addr().is_some_and(|a| a.ip().is_loopback()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_local",
            "dead letters can only be managed from this node's own host (chute deadletter)",
        ))
    }
}

async fn listed(state: &AppState) -> Result<Vec<(Meta, std::path::PathBuf)>, ApiError> {
    let store = state.deadletters.clone();
    web::block(move || store.list())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the dead letters");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "read_error",
                "cannot read the dead-letter directory (see the node's log)",
            )
        })
}

/// `GET /api/v1/deadletter`.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let result = async {
        only_local(&req)?;
        let entries = listed(&state).await?.into_iter().map(|(m, _)| m).collect();
        Ok(HttpResponse::Ok().json(Listed { entries }))
    }
    .await;
    counted(&state.metrics, result)
}

/// `POST /api/v1/deadletter/{replay|drop}`.
pub async fn act(
    req: HttpRequest,
    action: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = act_inner(&req, &action, &body, &state).await;
    counted(&state.metrics, result)
}

async fn act_inner(
    req: &HttpRequest,
    action: &str,
    body: &[u8],
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    only_local(req)?;
    let replay = match action {
        "replay" => true,
        "drop" => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such action; use replay or drop",
            ))
        }
    };
    let choice: Choice = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("expected {{\"ids\": [...]}} or {{\"all\": true}}: {e}"),
        )
    })?;
    // Both or neither.
    if choice.all != choice.ids.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "give either \"ids\" or \"all\": true",
        ));
    }
    // Chosen from the listing: an id never becomes a path.
    let listed = listed(state).await?;
    if let Some(missing) = choice
        .ids
        .iter()
        .find(|id| !listed.iter().any(|(m, _)| &m.id == *id))
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dead letter {missing:?} (chute deadletter list)"),
        ));
    }
    let chosen = listed
        .into_iter()
        .filter(|(m, _)| choice.all || choice.ids.contains(&m.id));
    let mut done = Done::default();
    let mut peers = Vec::new();
    for (meta, path) in chosen {
        let outcome = if replay {
            replay_one(state, path).await
        } else {
            remove(path).await
        };
        match outcome {
            Ok(()) => {
                let action = if replay { "replayed" } else { "dropped" };
                tracing::info!(dead_letter = %meta.id, batch = %meta.batch, shard = meta.shard, records = meta.records, action, "dead letter removed");
                state
                    .metrics
                    .deadletter_removed
                    .with_label_values(&[&meta.peer, action])
                    .inc();
                done.done.push(meta.id);
            }
            Err(error) => {
                tracing::warn!(dead_letter = %meta.id, %error, "cannot replay a dead letter; it stays");
                done.failed.push(Failed { id: meta.id, error });
            }
        }
        peers.push(meta.peer);
    }
    let store = state.deadletters.clone();
    let metrics = state.metrics.clone();
    let _ = web::block(move || store.refresh_gauges(&metrics, &peers)).await;
    let status = if done.failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(HttpResponse::build(status).json(done))
}

/// Delivers one dead letter to its shard's current destination and, once it is
/// durable there, removes it.
async fn replay_one(state: &AppState, path: std::path::PathBuf) -> Result<(), String> {
    let read_path = path.clone();
    let (meta, payload) = web::block(move || DeadLetters::read(&read_path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read it: {e}"))?;
    let (_, rows) = EncodedRows::from_payload(Bytes::from(payload)).map_err(|e| e.to_string())?;
    rows.validate().map_err(|e| e.to_string())?;
    state
        .router
        .send(Redeliver {
            shard: meta.shard,
            rows,
            origin: meta.batch,
        })
        .await
        .map_err(|_| "shutting down".to_owned())?
        .map_err(|e| e.to_string())?;
    remove(path).await
}

async fn remove(path: std::path::PathBuf) -> Result<(), String> {
    web::block(move || DeadLetters::remove(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot remove it: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_clients_on_this_host_may_manage_dead_letters() {
        let from = |addr: &str| {
            TestRequest::default()
                .peer_addr(addr.parse().unwrap())
                .to_http_request()
        };
        assert!(only_local(&from("127.0.0.1:40000")).is_ok());
        assert!(only_local(&from("[::1]:40000")).is_ok());
        let refused = only_local(&from("10.1.2.3:40000")).unwrap_err();
        assert_eq!(
            (refused.status.as_u16(), refused.reason),
            (403, "not_local")
        );
        assert!(only_local(&TestRequest::default().to_http_request()).is_err());
    }
}
