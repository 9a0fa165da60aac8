//! `GET /api/v1/storage`: what this node's shards hold (`chute storage`).

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::AppState;
use crate::sinks::postgres::storage::{self, ShardReport, StorageReport};

/// Measures every shard this node writes, from the catalog (one connection of
/// each shard's probe pool); a shard that cannot be measured says why. Guarded
/// like the other operator's endpoints (`http.ops_access`).
pub async fn get_storage(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admit_ops(req.headers(), req.peer_addr())?;
    let mut shards = Vec::with_capacity(state.probes.len());
    for (id, pool) in &state.probes {
        let measured = match pool.get().await {
            Ok(client) => storage::measure(&**client)
                .await
                .map_err(|e| crate::sinks::postgres::error::describe(&e)),
            Err(e) => Err(e.to_string()),
        };
        shards.push(ShardReport::of(*id, measured));
    }
    Ok(HttpResponse::Ok().json(StorageReport {
        node: state.cluster.node.clone(),
        shards,
    }))
}
