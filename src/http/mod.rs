//! The HTTP API: one listener for ingest, cluster traffic, metrics and health.

pub mod auth;
pub mod budget;
mod console;
mod deadletter;
mod elastic;
pub mod error;
mod health;
mod internal;
mod logs;
mod loki;
mod otlp;
mod push;
mod storage;
mod tail;
mod volume;

use std::sync::Arc;

use actix::Addr;
use actix_web::dev::Service;
use actix_web::web;
use deadpool_postgres::Pool;
use futures_util::FutureExt;

use crate::actors::ingest::Ingest;
use crate::actors::router::Router;
use crate::cluster::ClusterView;
use crate::config::HttpConfig;
use crate::deadletter::DeadLetters;
use crate::metrics::Metrics;
use crate::status::Health;

/// What every request handler can reach.
pub struct AppState {
    /// `[http]`, behind a lock so SIGHUP can change the limits of a running server.
    pub http: Arc<std::sync::RwLock<HttpConfig>>,
    pub metrics: Arc<Metrics>,
    pub ingest: Addr<Ingest>,
    pub router: Addr<Router>,
    pub health: Arc<Health>,
    /// One-connection pools per local shard, for readiness probes.
    pub probes: Vec<(u32, Pool)>,
    /// The cluster layout, the peer token, and the spools peers deliver to.
    pub cluster: Arc<ClusterView>,
    /// Request bytes held by running requests (`http.max_inflight_bytes`).
    pub budget: Arc<budget::Budget>,
    /// Forwarded batches peers refused for good (`/api/v1/deadletter`).
    pub deadletters: DeadLetters,
    /// The shards queries read, and the `[query]` limits.
    pub query: Arc<crate::query::exec::QueryState>,
    /// The tokens requests must present (`[[tokens]]`; none: the API is open).
    pub auth: Arc<auth::Auth>,
    /// Per-tenant rate limits (`[limits]`).
    pub limits: Arc<crate::limits::Limits>,
    /// The OTLP listener (`http.otlp_listen`): it serves `/v1/logs` alone.
    pub otlp_addr: Option<std::net::SocketAddr>,
}

/// The route patterns [`configure`] registers (the `route` label of
/// `chute_http_requests_total`, exported at 0 from start-up).
pub const ROUTES: &[&str] = &[
    "/api/v1/logs",
    "/api/v1/cluster",
    "/api/v1/storage",
    "/api/v1/deadletter",
    "/api/v1/deadletter/{action}",
    "/internal/v1/batches",
    "/internal/v1/query",
    "/internal/v1/tail",
    "/internal/{rest:.*}",
    "/loki/api/v1/push",
    "/v1/logs",
    "/_bulk",
    "/{index}/_bulk",
    "/_license",
    "/_nodes",
    "/_nodes/{rest:.*}",
    "/_cluster/health",
    "/_{rest:.*}",
    "/loki/api/v1/query_range",
    "/loki/api/v1/query",
    "/loki/api/v1/labels",
    "/loki/api/v1/label/{name}/values",
    "/loki/api/v1/series",
    "/loki/api/v1/index/stats",
    "/loki/api/v1/index/volume",
    "/loki/api/v1/index/volume_range",
    "/loki/api/v1/tail",
    "/loki/api/v1/status/buildinfo",
    "/ready",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "/console/{file}",
];

/// GET or POST: the Loki API takes its parameters either way.
fn read_method() -> impl actix_web::guard::Guard {
    actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Post())
}

/// Registers every route, and counts each answer by route and status class.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let metrics = state.metrics.clone();
        let otlp_addr = state.otlp_addr;
        cfg.app_data(state).service(
            web::scope("")
                .wrap_fn(move |req, srv| {
                    // The OTLP listener serves OTLP alone.
                    if otlp_addr.is_some_and(|a| req.app_config().local_addr() == a)
                        && req.path() != "/v1/logs"
                    {
                        metrics
                            .http_requests
                            .with_label_values(&["unmatched", "4xx"])
                            .inc();
                        let answer = actix_web::HttpResponse::NotFound()
                            .content_type("text/plain; charset=utf-8")
                            .body("this listener (http.otlp_listen) serves POST /v1/logs only\n");
                        return futures_util::future::Either::Left(futures_util::future::ready(
                            Ok(req.into_response(answer)),
                        ));
                    }
                    // The route pattern, not the path: a bounded label.
                    let route = req
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_owned());
                    let metrics = metrics.clone();
                    futures_util::future::Either::Right(srv.call(req).map(move |res| {
                        if let Ok(res) = &res {
                            let class = match res.status().as_u16() {
                                200..=299 => "2xx",
                                400..=499 => "4xx",
                                500..=599 => "5xx",
                                _ => "other",
                            };
                            metrics
                                .http_requests
                                .with_label_values(&[&route, class])
                                .inc();
                        }
                        res
                    }))
                })
                .route("/api/v1/logs", web::post().to(logs::post_logs))
                .route("/api/v1/cluster", web::get().to(health::get_cluster))
                .route("/api/v1/storage", web::get().to(storage::get_storage))
                .route("/api/v1/deadletter", web::get().to(deadletter::list))
                .route(
                    "/api/v1/deadletter/{action}",
                    web::post().to(deadletter::act),
                )
                .route(
                    "/internal/v1/batches",
                    web::post().to(internal::post_batches),
                )
                .service(
                    web::resource("/internal/v1/query")
                        .app_data(web::PayloadConfig::new(internal::MAX_QUERY_REQUEST_BYTES))
                        .route(web::post().to(internal::post_query)),
                )
                .service(
                    web::resource("/internal/v1/tail")
                        .app_data(web::PayloadConfig::new(internal::MAX_QUERY_REQUEST_BYTES))
                        .route(web::post().to(tail::internal_tail)),
                )
                .route("/internal/{rest:.*}", web::route().to(internal::unknown))
                .route("/loki/api/v1/push", web::post().to(push::push))
                .route("/v1/logs", web::post().to(otlp::export))
                .route("/_bulk", web::post().to(elastic::bulk))
                .route("/_bulk", web::put().to(elastic::bulk))
                .route("/{index}/_bulk", web::post().to(elastic::bulk))
                .route("/{index}/_bulk", web::put().to(elastic::bulk))
                .route("/_license", web::get().to(elastic::license))
                .route("/_nodes", web::get().to(elastic::nodes))
                .route("/_nodes/{rest:.*}", web::get().to(elastic::nodes))
                .route("/_cluster/health", web::get().to(elastic::health))
                .route("/_{rest:.*}", web::route().to(elastic::accepted))
                .route(
                    "/loki/api/v1/query_range",
                    web::route().guard(read_method()).to(loki::query_range),
                )
                .route(
                    "/loki/api/v1/query",
                    web::route().guard(read_method()).to(loki::query),
                )
                .route(
                    "/loki/api/v1/labels",
                    web::route().guard(read_method()).to(loki::labels),
                )
                .route(
                    "/loki/api/v1/label/{name}/values",
                    web::route().guard(read_method()).to(loki::label_values),
                )
                .route(
                    "/loki/api/v1/series",
                    web::route().guard(read_method()).to(loki::series),
                )
                .route(
                    "/loki/api/v1/index/stats",
                    web::route().guard(read_method()).to(loki::index_stats),
                )
                .route(
                    "/loki/api/v1/index/volume",
                    web::route().guard(read_method()).to(volume::volume),
                )
                .route(
                    "/loki/api/v1/index/volume_range",
                    web::route().guard(read_method()).to(volume::volume_range),
                )
                .route("/loki/api/v1/tail", web::get().to(tail::tail))
                .route(
                    "/loki/api/v1/status/buildinfo",
                    web::get().to(loki::buildinfo),
                )
                .route("/ready", web::get().to(health::ready))
                .route("/metrics", web::get().to(health::metrics))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route(
                    "/",
                    web::route()
                        .guard(
                            actix_web::guard::Any(actix_web::guard::Get())
                                .or(actix_web::guard::Head()),
                        )
                        .to(elastic::root),
                )
                .route("/console/{file}", web::get().to(console::file)),
        );
    }
}
