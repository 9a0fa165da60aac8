//! Start-up: builds every actor, binds the listener, and runs until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use futures_util::future::join_all;

use crate::actors::ingest::Ingest;
use crate::actors::peer::PeerLink;
use crate::actors::queue_io::{Close, QueueIo};
use crate::actors::router::{Destination, Router};
use crate::actors::writer::{Drain, Writer};
use crate::batch::wire::Credentials;
use crate::cluster::ClusterView;
use crate::config::{Config, Secret, ShardConfig};
use crate::deadletter::DeadLetters;
use crate::http::{self, AppState};
use crate::metrics::{KnownLabels, Metrics};
use crate::sources::syslog::listener::Bound;
use crate::status::Health;
use chute_embedded_pg::{EmbeddedOptions, EmbeddedPostgres};

mod destinations;
mod reload;
pub mod sweep;

use destinations::{LocalShard, RemoteNode};
use reload::Live;

/// A running chute: its listener, actors, and (on the embedded default) PostgreSQL.
pub struct Application {
    addr: SocketAddr,
    /// `http.otlp_listen`'s address, when set.
    otlp_addr: Option<SocketAddr>,
    /// Where the syslog listeners listen.
    syslog: Vec<Bound>,
    /// Tells the syslog listeners to deliver what they hold and stop.
    syslog_stop: tokio::sync::watch::Sender<bool>,
    syslog_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The running configuration and the file it came from (SIGHUP re-reads it).
    config: Config,
    config_path: Option<std::path::PathBuf>,
    /// Where SIGHUP applies the settings that change live.
    live: Live,
    /// Actors the systemd watchdog pings.
    heartbeat: Vec<Recipient<crate::actors::Ping>>,
    server: Server,
    /// One thread per local shard (its spool and writer); stopped once drained.
    arbiters: Vec<Arbiter>,
    /// Drained on shutdown: running writes finish, the rest stays queued.
    writers: Vec<Addr<Writer>>,
    /// Drained on shutdown: a running forward gets its answer, the rest stays queued.
    links: Vec<Addr<PeerLink>>,
    /// Closed last, so the queue directories are unlocked when `run_until_stopped` returns.
    queues: Vec<Addr<QueueIo>>,
    shutdown_timeout: Duration,
    /// Closed first on shutdown, so no tail keeps the HTTP server waiting.
    tail: Arc<crate::query::tail::Hub>,
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
        let mut started = Started::default();
        match Application::start(config, &mut started).await {
            Ok(app) => Ok(app),
            Err(e) => {
                started.release().await;
                Err(e)
            }
        }
    }

    /// [`Application::build`]; what it starts on its own threads is also noted in
    /// `started`, so a failure half-way can release it.
    async fn start(config: Config, started: &mut Started) -> anyhow::Result<Application> {
        let metrics = Metrics::new();
        create_data_dir(&config)?;
        let mut embedded = None;
        let shards = if config.embedded() {
            let pg = start_embedded(&config).await?;
            let shard = ShardConfig {
                id: 0,
                owner: None,
                dsn: Secret::new(pg.dsn("chute")),
                pool_size: config.embedded.pool_size,
                password_file: None,
                password_env: None,
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
            let mut shards = config.shards.clone();
            shards.sort_by_key(|s| s.id);
            shards
        };

        let health = Arc::new(Health::default());
        let mut arbiters = Vec::new();
        let mut destinations = Vec::new();
        let mut pools = Vec::new();
        let mut probes = Vec::new();
        let mut writers = Vec::new();
        let mut heartbeat = Vec::new();
        let mut queues = Vec::new();
        let mut links = std::collections::HashMap::new();
        let mut local_spools = std::collections::HashMap::new();
        let tokens: Vec<&str> = config
            .cluster
            .peer_token
            .iter()
            .map(|t| t.expose())
            .collect();
        let credentials = Credentials::new(
            config.node.id.clone(),
            &tokens,
            config.layout_fingerprint(),
            crate::tls::cluster_client_config(&config.cluster)
                .context("cannot set up TLS to the peers")?,
        );
        for node in config.nodes.iter().filter(|n| n.id != config.node.id) {
            let link = RemoteNode::start(node, &config, &credentials, &metrics, &health).await?;
            heartbeat.push(link.link.clone().recipient());
            heartbeat.push(link.spool.clone().recipient());
            queues.push(link.io.clone());
            started.queues.push(link.io.clone());
            started.arbiters.push(link.arbiter.handle());
            arbiters.push(link.arbiter);
            links.insert(node.id.clone(), (link.spool, link.link));
        }
        let tail = crate::query::tail::Hub::new(
            metrics.tail_dropped.with_label_values(&["slow_subscriber"]),
        );
        let mut readers = crate::query::exec::Shards::default();
        let count_cache =
            std::sync::Arc::new(crate::query::cache::CountCache::new(config.query.cache_mib));
        for shard in &shards {
            if !config.is_local(shard) {
                readers
                    .remote
                    .push((shard.id, config.owner_of(shard).to_owned()));
                let (spool, _) = &links[config.owner_of(shard)];
                destinations.push(Destination {
                    shard: shard.id,
                    recipient: spool.clone().recipient(),
                });
                continue;
            }
            let local = LocalShard::start(shard, &config, &metrics, &health, &tail).await?;
            readers.local.push(crate::query::exec::Shard {
                id: shard.id,
                cache: count_cache.clone(),
                pool: crate::sinks::postgres::pool(
                    shard.dsn.expose(),
                    shard
                        .password()
                        .map_err(|e| anyhow::anyhow!("shard {}: {e}", shard.id))?
                        .as_ref()
                        .map(|p| p.expose()),
                    config.query.pool_size,
                    None,
                )
                .context("invalid shard DSN")?,
            });
            destinations.push(Destination {
                shard: shard.id,
                recipient: local.spool.clone().recipient(),
            });
            local_spools.insert(shard.id, local.spool.clone().recipient());
            pools.push((shard.id, local.pool));
            probes.push((shard.id, local.probe));
            heartbeat.push(local.writer.clone().recipient());
            heartbeat.push(local.spool.clone().recipient());
            writers.push(local.writer);
            started.queues.push(local.io.clone());
            started.arbiters.push(local.arbiter.handle());
            queues.push(local.io);
            arbiters.push(local.arbiter);
        }
        let links: Vec<Addr<PeerLink>> = links.into_values().map(|(_, link)| link).collect();
        let cluster = Arc::new(ClusterView::new(&config, local_spools));
        {
            let health = health.clone();
            metrics.on_scrape(move |m| {
                let ready = health
                    .snapshot()
                    .iter()
                    .all(|(_, s)| s.prepared && s.up && !s.queue_failed)
                    && !health.peer_queue_failed();
                m.ready.set(i64::from(ready));
            });
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

        let router = Router::new(destinations, config.cluster.shard_key);
        let layout = router.layout();
        let router = router.start();
        heartbeat.push(router.clone().recipient());
        let retention = Arc::new(std::sync::RwLock::new(config.retention.clone()));
        {
            // Quarantined bytes and dead letters, kept within [retention].
            let (live, data_dir, metrics) = (
                retention.clone(),
                config.node.data_dir.clone(),
                metrics.clone(),
            );
            let every = Duration::from_secs(config.retention.check_interval_s.max(1));
            actix_web::rt::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let config = live.read().unwrap_or_else(|e| e.into_inner()).clone();
                    let (dir, metrics) = (data_dir.clone(), metrics.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        sweep::sweep_all(&dir, &config, &metrics)
                    })
                    .await;
                }
            });
        }
        let (syslog_stop, stop) = tokio::sync::watch::channel(false);
        let limits = Arc::new(crate::limits::Limits::new(
            config.limits.clone(),
            metrics.clone(),
        ));
        let (syslog, live_listeners, syslog_tasks) = crate::sources::syslog::listener::start(
            &config.syslog.effective_listeners(),
            Duration::from_millis(config.syslog.group_commit_ms),
            crate::sources::syslog::listener::Sinks {
                router: router.clone(),
                layout,
                metrics: metrics.clone(),
                limits: limits.clone(),
            },
            stop,
        )
        .await?;
        let known = known_labels(&config, &shards, &syslog);
        metrics.export_known(&known);
        let deadletters = DeadLetters::new(&config.node.data_dir);
        deadletters.refresh_gauges(&metrics, &known.peers);
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
        let otlp_listener = config
            .http
            .otlp_listen
            .map(|a| {
                std::net::TcpListener::bind(a)
                    .with_context(|| format!("cannot listen on {a} (http.otlp_listen)"))
            })
            .transpose()?;
        let otlp_addr = otlp_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let http_live = Arc::new(std::sync::RwLock::new(config.http.clone()));
        let shutdown_timeout = Duration::from_millis(config.node.shutdown_timeout_ms);
        let running_config = config;
        let auth = Arc::new(http::auth::Auth::new(&running_config, metrics.clone()));
        let state = web::Data::new(AppState {
            http: http_live.clone(),
            metrics: metrics.clone(),
            ingest,
            router,
            health,
            probes,
            cluster,
            budget: http::budget::Budget::new(),
            deadletters,
            auth: auth.clone(),
            limits: limits.clone(),
            otlp_addr,
            query: Arc::new(crate::query::exec::QueryState {
                shards: readers,
                peers: running_config
                    .nodes
                    .iter()
                    .map(|n| (n.id.clone(), n.url.clone()))
                    .collect(),
                credentials: Some(credentials),
                tail: tail.clone(),
                timeout_ms: running_config.query.timeout_ms,
                max_limit: running_config.query.max_limit,
            }),
        });
        let tls = match (
            &running_config.http.tls_cert_file,
            &running_config.http.tls_key_file,
        ) {
            (Some(cert), Some(key)) => Some(
                crate::tls::server_config(
                    cert,
                    key,
                    running_config.http.tls_client_ca_file.as_deref(),
                )
                .context("cannot set up TLS for the HTTP listener")?,
            ),
            _ => None,
        };
        let h = &running_config.http;
        let keep_alive = match h.keep_alive_ms {
            0 => actix_web::http::KeepAlive::Disabled,
            ms => actix_web::http::KeepAlive::Timeout(Duration::from_millis(ms)),
        };
        let server = HttpServer::new(move || App::new().configure(http::configure(state.clone())))
            .workers(workers)
            // actix counts connections per worker.
            .max_connections(h.max_connections.div_ceil(workers).max(1))
            .client_request_timeout(Duration::from_millis(h.request_timeout_ms))
            .keep_alive(keep_alive)
            .shutdown_timeout(shutdown_timeout.as_secs().max(1));
        let https = tls.is_some();
        let mut server = server;
        for listener in std::iter::once(listener).chain(otlp_listener) {
            server = match &tls {
                Some(tls) => server.listen_rustls_0_23(listener, (**tls).clone())?,
                None => server.listen(listener)?,
            };
        }
        let server = server
            // chute handles SIGTERM/SIGINT itself (see `run_until_stopped`).
            .disable_signals()
            .run();
        tracing::info!(%addr, otlp = ?otlp_addr, https, shards = shards.len(), embedded = embedded.is_some(), tokens = running_config.tokens.len(), "chute is listening");
        for warning in running_config.warnings() {
            tracing::warn!("{warning}");
        }
        Ok(Application {
            addr,
            otlp_addr,
            syslog,
            syslog_stop,
            syslog_tasks,
            heartbeat,
            config: running_config,
            live: Live {
                http: http_live,
                listeners: live_listeners,
                auth: auth.clone(),
                limits: limits.clone(),
                retention,
            },
            config_path: None,
            server,
            writers,
            links,
            queues,
            shutdown_timeout,
            tail,
            arbiters,
            embedded,
            metrics,
        })
    }

    /// The file SIGHUP re-reads.
    pub fn with_config_path(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.config_path = path;
        self
    }

    /// The address the HTTP listener got.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the OTLP listener got (`http.otlp_listen`), if it is set.
    pub fn otlp_addr(&self) -> Option<SocketAddr> {
        self.otlp_addr
    }

    /// Where the syslog listeners listen (ports resolved).
    pub fn syslog(&self) -> &[Bound] {
        &self.syslog
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
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = actix_web::rt::spawn(self.server);
        let heartbeat = std::mem::take(&mut self.heartbeat);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        crate::systemd::ready();
        crate::systemd::start_watchdog(heartbeat);
        loop {
            tokio::select! {
                r = &mut server => {
                    r??;
                    break;
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    break;
                }
                _ = hup.recv() => {
                    let result = reload::reload(self.config_path.as_deref(), &mut self.config, &self.live, &self.writers);
                    self.metrics.config_reloads.with_label_values(&[result]).inc();
                }
            }
        }
        crate::systemd::stopping();
        // One deadline for everything that follows: HTTP, syslog, the drain and
        // the embedded PostgreSQL share node.shutdown_timeout_ms.
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        self.tail.close();
        if !server.is_finished() {
            // Stops accepting at once; running requests get what is left.
            let stopped = tokio::time::timeout(left(), handle.stop(true)).await;
            if stopped.is_err() {
                tracing::warn!("HTTP requests still running at the shutdown deadline");
                handle.stop(false).await;
            }
            server.await??;
        }
        self.syslog_stop.send_replace(true);
        let listeners = join_all(self.syslog_tasks);
        if tokio::time::timeout(left(), listeners).await.is_err() {
            tracing::warn!("syslog listeners still delivering at the shutdown deadline");
        }
        let drains = self
            .writers
            .iter()
            .map(|w| w.clone().recipient::<Drain>())
            .chain(self.links.iter().map(|l| l.clone().recipient()))
            .map(|r| r.send(Drain));
        if tokio::time::timeout(left(), join_all(drains))
            .await
            .is_err()
        {
            tracing::warn!(
                "writes still running at the shutdown deadline; their batches stay queued"
            );
        }
        for queue in &self.queues {
            let _ = queue.send(Close).await;
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        if let Some(pg) = self.embedded {
            // Fast shutdown gets what is left of the deadline (at least 1 s); past
            // it, SIGQUIT and then SIGKILL take at most 10 s more, which the unit's
            // TimeoutStopSec leaves room for.
            let fast = left().max(Duration::from_secs(1));
            tokio::task::spawn_blocking(move || match Arc::try_unwrap(pg) {
                Ok(pg) => pg.shutdown_within(fast),
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

/// What a start has set going on threads of its own, to release if it fails
/// half-way: the queues are closed (their locks go with them, so the next start can
/// open them) and the arbiters stopped.
#[derive(Default)]
struct Started {
    queues: Vec<Addr<QueueIo>>,
    arbiters: Vec<ArbiterHandle>,
}

impl Started {
    async fn release(self) {
        for queue in &self.queues {
            let _ = queue.send(Close).await;
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Creates the data directory, private to chute's user whatever the umask: its
/// queues hold log records. When chute runs as root and the embedded PostgreSQL as
/// its own user, others may pass through it (0711) to reach `<data_dir>/pg`, but
/// not list it; everything inside is 0700 / 0600.
fn create_data_dir(config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let passable = config.embedded() && nix::unistd::geteuid().is_root();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(if passable { 0o711 } else { 0o700 })
        .create(&config.node.data_dir)
        .with_context(|| format!("cannot create {}", config.node.data_dir.display()))
}

async fn start_embedded(config: &Config) -> anyhow::Result<Arc<EmbeddedPostgres>> {
    let dir = config.embedded_pg_dir();
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

/// The label values this node knows before any traffic: its shards and queues, its
/// syslog listeners, its peers and its routes.
fn known_labels(config: &Config, shards: &[ShardConfig], syslog: &[Bound]) -> KnownLabels {
    let local: Vec<&ShardConfig> = shards.iter().filter(|s| config.is_local(s)).collect();
    let peers: Vec<String> = config
        .nodes
        .iter()
        .filter(|n| n.id != config.node.id)
        .map(|n| n.id.clone())
        .collect();
    KnownLabels {
        shards: local.iter().map(|s| s.id.to_string()).collect(),
        destinations: local
            .iter()
            .map(|s| format!("shard-{}", s.id))
            .chain(peers.iter().map(|p| format!("peer-{p}")))
            .collect(),
        listeners: syslog.iter().map(|b| b.label.clone()).collect(),
        peers,
        routes: http::ROUTES.iter().map(|r| (*r).to_owned()).collect(),
    }
}
