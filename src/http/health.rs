//! The operator's routes: `/metrics`, `/healthz`, `/readyz` and `/api/v1/cluster`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::status::{PeerState, ShardState};

/// How long a readiness probe waits for a shard to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Prometheus text exposition.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admit_ops(req.headers(), req.peer_addr())?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()))
}

/// `GET /api/v1/cluster`: the cluster as this node sees it.
pub async fn get_cluster(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admit_ops(req.headers(), req.peer_addr())?;
    Ok(HttpResponse::Ok().json(crate::cluster::report::report(
        &state.cluster,
        &state.health,
        &state.metrics,
    )))
}

/// Liveness: the process answers HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    shards: Vec<ShardReadiness>,
    /// Peer links: shown for operators; a peer that is down does not make this node
    /// unready (its records wait in the queue), a peer queue that failed does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peers: Vec<PeerReadiness>,
}

#[derive(Serialize)]
struct PeerReadiness {
    node: String,
    #[serde(flatten)]
    state: PeerState,
}

#[derive(Serialize)]
struct ShardReadiness {
    id: u32,
    ready: bool,
    #[serde(flatten)]
    state: ShardState,
}

/// Readiness: every local shard's queue is healthy, its schema is in place, and it
/// answers a query right now; and no peer link's queue has failed. Those the
/// operator's endpoints are closed to (`http.ops_access`) get the status and
/// `{"ready": ...}` only.
pub async fn readyz(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let answer = readiness(&state).await;
    if state.auth.sees_ops(req.headers(), req.peer_addr()) {
        return answer;
    }
    HttpResponse::build(answer.status())
        .json(serde_json::json!({"ready": answer.status().is_success()}))
}

/// The full readiness answer.
async fn readiness(state: &AppState) -> HttpResponse {
    let snapshot = state.health.snapshot();
    let mut shards = Vec::with_capacity(snapshot.len());
    for (id, mut shard) in snapshot {
        let mut ready = shard.prepared && !shard.queue_failed;
        if ready {
            if let Some((_, pool)) = state.probes.iter().find(|(p, _)| *p == id) {
                let probe = async {
                    let describe = crate::sinks::postgres::error::describe;
                    let client = pool.get().await.map_err(|e| describe(&e))?;
                    client
                        .simple_query("SELECT 1")
                        .await
                        .map_err(|e| describe(&e))
                };
                match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        ready = false;
                        shard.last_error = Some(e);
                    }
                    Err(_) => {
                        ready = false;
                        shard.last_error = Some("no answer within 2 s".to_owned());
                    }
                }
            }
        }
        shards.push(ShardReadiness {
            id,
            ready,
            state: shard,
        });
    }
    let peers: Vec<PeerReadiness> = state
        .health
        .peers()
        .into_iter()
        .map(|(node, state)| PeerReadiness { node, state })
        .collect();
    let ready = shards.iter().all(|s| s.ready) && peers.iter().all(|p| !p.state.queue_failed);
    let body = Readiness {
        ready,
        shards,
        peers,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Loki's `GET /ready`: `ready` in plain text when `/readyz` would answer 200, the
/// reason otherwise (Grafana and `logcli` probe it).
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let answer = readiness(&state).await;
    if answer.status().is_success() {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready: see /readyz")
    }
}
