//! Start-up: builds every actor, binds the listener, and runs until stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::actors::ingest::Ingest;
use crate::actors::router::{Destination, Router};
use crate::actors::writer::Writer;
use crate::config::{Config, Secret, ShardConfig};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::pg::embedded::{EmbeddedOptions, EmbeddedPostgres};
use crate::status::Health;

/// A running chute: its listener, actors, and (on the embedded default) PostgreSQL.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    /// One thread per shard writer; stopped once the server has drained.
    arbiters: Vec<Arbiter>,
    embedded: Option<Arc<EmbeddedPostgres>>,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Starts the embedded PostgreSQL when no shards are configured, then the actors,
    /// then binds the HTTP listener (port 0 picks a free one: see [`Application::addr`]).
    ///
    /// # Errors
    /// The embedded PostgreSQL cannot start, a shard's connection string is invalid,
    /// or the listen address cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let metrics = Metrics::new();
        let mut embedded = None;
        let shards = if config.embedded() {
            let pg = start_embedded(&config).await?;
            let shard = ShardConfig {
                id: 0,
                dsn: Secret::new(pg.dsn("chute")),
                pool_size: config.embedded.pool_size,
            };
            // Weak: the registry must not keep PostgreSQL alive past shutdown.
            let watched = Arc::downgrade(&pg);
            metrics.on_scrape(move |m| {
                if let Some(pg) = watched.upgrade() {
                    m.embedded_postgres_restarts.set(pg.restarts() as i64);
                }
            });
            embedded = Some(pg);
            vec![shard]
        } else {
            config.shards.clone()
        };

        let health = Arc::new(Health::default());
        let mut arbiters = Vec::new();
        let mut destinations = Vec::new();
        let mut pools = Vec::new();
        let mut probes = Vec::new();
        for shard in &shards {
            let pool = crate::pg::pool(shard.dsn.expose(), shard.pool_size)
                .with_context(|| format!("shard {}: invalid connection string", shard.id))?;
            let arbiter = Arbiter::new();
            let writer = {
                let (pool, config, metrics) = (pool.clone(), config.clone(), metrics.clone());
                let (id, size, status) = (shard.id, shard.pool_size, health.register(shard.id));
                Writer::start_in_arbiter(&arbiter.handle(), move |_| {
                    Writer::new(
                        id,
                        pool,
                        size,
                        config.writer,
                        config.storage,
                        metrics,
                        status,
                    )
                })
            };
            destinations.push(Destination {
                shard: shard.id,
                recipient: writer.recipient(),
            });
            // Readiness probes get a connection of their own, so a pool busy with
            // long COPYs never reads as "not ready".
            let probe = crate::pg::pool(shard.dsn.expose(), 1)
                .with_context(|| format!("shard {}: invalid connection string", shard.id))?;
            pools.push((shard.id, pool));
            probes.push((shard.id, probe));
            arbiters.push(arbiter);
        }
        metrics.on_scrape(move |m| {
            for (id, pool) in &pools {
                let s = pool.status();
                let label = id.to_string();
                let busy = s.size.saturating_sub(s.available);
                m.pool_connections
                    .with_label_values(&[&label, "busy"])
                    .set(busy as i64);
                m.pool_connections
                    .with_label_values(&[&label, "idle"])
                    .set(s.available as i64);
            }
        });

        let router = Router::new(destinations).start();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let ingest = {
            let metrics = metrics.clone();
            SyncArbiter::start(cores, move || Ingest::new(metrics.clone()))
        };
        let workers = if config.http.workers == 0 {
            cores
        } else {
            config.http.workers
        };
        let listener = std::net::TcpListener::bind(config.http.listen)
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        let addr = listener.local_addr()?;
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            metrics: metrics.clone(),
            ingest,
            router,
            health,
            probes,
        });
        let server = HttpServer::new(move || App::new().configure(http::configure(state.clone())))
            .workers(workers)
            .listen(listener)?
            .run();
        tracing::info!(%addr, shards = shards.len(), embedded = embedded.is_some(), "chute is listening");
        Ok(Application {
            addr,
            server,
            arbiters,
            embedded,
            metrics,
        })
    }

    /// The address the HTTP listener got.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server (graceful: in-flight requests finish first).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The metrics registry (tests read it).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The embedded PostgreSQL, when chute runs one.
    pub fn embedded(&self) -> Option<Arc<EmbeddedPostgres>> {
        self.embedded.clone()
    }

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`]: stops accepting, lets
    /// in-flight requests finish (they wait for their commits), then stops the
    /// writers and the embedded PostgreSQL.
    ///
    /// # Errors
    /// The server failed, or the embedded PostgreSQL did not stop cleanly.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        if let Some(pg) = self.embedded {
            tokio::task::spawn_blocking(move || match Arc::try_unwrap(pg) {
                Ok(pg) => pg.shutdown(),
                Err(_) => {
                    tracing::warn!(
                        "the embedded PostgreSQL is still in use; it stops when released"
                    );
                    Ok(())
                }
            })
            .await??;
        }
        tracing::info!("chute stopped");
        Ok(())
    }
}

async fn start_embedded(config: &Config) -> anyhow::Result<Arc<EmbeddedPostgres>> {
    let dir = config.embedded_pg_dir();
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("cannot create {}", config.node.data_dir.display()))?;
    let options = EmbeddedOptions {
        run_as: config.embedded.run_as.clone(),
        ..EmbeddedOptions::default()
    };
    tracing::info!(dir = %dir.display(), "starting the embedded PostgreSQL");
    let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir, options))
        .await?
        .context("the embedded PostgreSQL did not start")?;
    Ok(Arc::new(pg))
}
