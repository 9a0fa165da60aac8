//! Starting a destination: a local shard (its pools, queue, spool and writer) or a
//! remote node (its queue, spool and peer link), each on an arbiter of its own.

use crate::deadletter::DeadLetters;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use chute_queue::{Queue, QueueOptions};
use deadpool_postgres::Pool;

use crate::actors::peer::PeerLink;
use crate::actors::queue_io::QueueIo;
use crate::actors::spool::Spool;
use crate::actors::writer::{QueuePosition, Writer};
use crate::batch::wire::Credentials;
use crate::config::{Config, ShardConfig};
use crate::metrics::Metrics;
use crate::query::tail::Hub;
use crate::status::Health;

/// One local shard's actors, on a thread of their own: the spool (durable queue
/// front), the queue's I/O thread, and the writer (queue to PostgreSQL).
pub(super) struct LocalShard {
    pub(super) spool: Addr<Spool>,
    pub(super) io: Addr<QueueIo>,
    pub(super) writer: Addr<Writer>,
    pub(super) arbiter: Arbiter,
    pub(super) pool: Pool,
    pub(super) probe: Pool,
}

impl LocalShard {
    pub(super) async fn start(
        shard: &ShardConfig,
        config: &Config,
        metrics: &Arc<Metrics>,
        health: &Arc<Health>,
        tail: &Arc<Hub>,
    ) -> anyhow::Result<LocalShard> {
        let name = format!("shard-{}", shard.id);
        let invalid = || format!("shard {}: invalid connection string", shard.id);
        let idle_in_tx = Some(Duration::from_millis(config.writer.write_timeout_ms));
        let password = shard
            .password()
            .map_err(|e| anyhow::anyhow!("shard {}: {e}", shard.id))?;
        let password = password.as_ref().map(|p| p.expose());
        let pool =
            crate::sinks::postgres::pool(shard.dsn.expose(), password, shard.pool_size, idle_in_tx)
                .with_context(invalid)?;
        // Readiness probes get a connection of their own, so a pool busy with long
        // COPYs never reads as "not ready".
        let probe = crate::sinks::postgres::pool(shard.dsn.expose(), password, 1, None)
            .with_context(invalid)?;

        let OpenQueue {
            io,
            position,
            queue_id,
        } = OpenQueue::open(&name, config, metrics).await?;
        let arbiter = Arbiter::new();
        let status = health.register(shard.id);
        let writer = {
            let (pool, io, config, metrics, status, tail) = (
                pool.clone(),
                io.clone(),
                config.clone(),
                metrics.clone(),
                status.clone(),
                tail.clone(),
            );
            let (id, size) = (shard.id, shard.pool_size);
            Writer::start_in_arbiter(&arbiter.handle(), move |_| {
                Writer::new(
                    id,
                    queue_id,
                    position,
                    pool,
                    size,
                    io,
                    config.writer,
                    config.storage,
                    config.retention,
                    metrics,
                    status,
                    tail,
                )
            })
        };
        let spool = start_spool(
            &arbiter,
            name,
            &io,
            writer.clone().recipient(),
            metrics,
            status,
            None,
        );
        Ok(LocalShard {
            spool,
            io,
            writer,
            arbiter,
            pool,
            probe,
        })
    }
}

/// A destination's queue, open, with its I/O thread.
pub(super) struct OpenQueue {
    pub(super) io: Addr<QueueIo>,
    pub(super) position: QueuePosition,
    pub(super) queue_id: String,
}

impl OpenQueue {
    /// Opens (or creates) the queue `<data_dir>/queues/<name>`, recovering it.
    pub(super) async fn open(
        name: &str,
        config: &Config,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<OpenQueue> {
        let dir = config.node.data_dir.join("queues").join(name);
        let options = QueueOptions {
            max_bytes: config.queue.max_bytes,
            segment_bytes: config.queue.segment_bytes,
        };
        let (queue, recovery, queue_id) = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let (queue, recovery) = Queue::open(&dir, options)
                    .with_context(|| format!("cannot open the queue in {}", dir.display()))?;
                Ok((queue, recovery, queue_id(&dir)?))
            })
            .await??
        };
        report_recovery(name, &recovery, metrics);
        metrics
            .queue_max_bytes
            .with_label_values(&[name])
            .set(config.queue.max_bytes as i64);
        let stats = queue.stats();
        let position = QueuePosition {
            acked: stats.acked_seq,
            durable: stats.synced_seq,
        };
        tracing::info!(destination = %name, backlog_entries = stats.unacked_entries, backlog_bytes = stats.unacked_bytes, "queue open");

        // SyncArbiter wants a factory; there is exactly one thread and one queue.
        let slot = Mutex::new(Some(queue));
        let io = {
            let (name, metrics) = (name.to_owned(), metrics.clone());
            SyncArbiter::start(1, move || {
                let queue = slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .expect("a single queue thread is started once");
                QueueIo::new(queue, name.clone(), metrics.clone())
            })
        };
        Ok(OpenQueue {
            io,
            position,
            queue_id,
        })
    }
}

/// The link to one remote node, on a thread of its own: the spool (durable queue
/// front for every record bound for that node's shards), the queue's I/O thread,
/// and the peer link (queue to the node).
pub(super) struct RemoteNode {
    pub(super) spool: Addr<Spool>,
    pub(super) io: Addr<QueueIo>,
    pub(super) link: Addr<PeerLink>,
    pub(super) arbiter: Arbiter,
}

impl RemoteNode {
    pub(super) async fn start(
        node: &crate::config::NodeEntry,
        config: &Config,
        credentials: &Credentials,
        metrics: &Arc<Metrics>,
        health: &Arc<Health>,
    ) -> anyhow::Result<RemoteNode> {
        let name = format!("peer-{}", node.id);
        let OpenQueue {
            io,
            position,
            queue_id,
        } = OpenQueue::open(&name, config, metrics).await?;
        let arbiter = Arbiter::new();
        let status = health.register_peer(&node.id);
        let link = {
            let (id, url, io, credentials, cluster, metrics, status) = (
                node.id.clone(),
                node.url.clone(),
                io.clone(),
                credentials.clone(),
                config.cluster.clone(),
                metrics.clone(),
                status.clone(),
            );
            let deadletters = DeadLetters::new(&config.node.data_dir);
            PeerLink::start_in_arbiter(&arbiter.handle(), move |_| {
                PeerLink::new(
                    id,
                    &url,
                    queue_id,
                    position,
                    io,
                    credentials,
                    cluster,
                    metrics,
                    status,
                    deadletters,
                )
            })
        };
        let spool = start_spool(
            &arbiter,
            name,
            &io,
            link.clone().recipient(),
            metrics,
            status,
            Some(config.cluster.batch_bytes),
        );
        Ok(RemoteNode {
            spool,
            io,
            link,
            arbiter,
        })
    }
}

/// Starts a destination's spool on `arbiter`, in front of its queue and consumer.
pub(super) fn start_spool(
    arbiter: &Arbiter,
    name: String,
    io: &Addr<QueueIo>,
    consumer: Recipient<crate::actors::Available>,
    metrics: &Arc<Metrics>,
    status: Arc<dyn crate::status::QueueHealth>,
    peer_entries: Option<usize>,
) -> Addr<Spool> {
    let (io, metrics) = (io.clone(), metrics.clone());
    Spool::start_in_arbiter(&arbiter.handle(), move |_| {
        Spool::new(name, io, consumer, metrics, status, peer_entries)
    })
}

/// Logs and counts what opening a queue found damaged and set aside.
pub(super) fn report_recovery(name: &str, r: &chute_queue::Recovery, metrics: &Metrics) {
    let counts = [
        ("torn", r.torn_bytes_truncated.min(1)),
        ("corrupt", r.corrupt_records),
        ("segment", r.quarantined_segments),
    ];
    for (reason, n) in counts {
        if n > 0 {
            metrics
                .queue_corrupt
                .with_label_values(&[name, reason])
                .inc_by(n);
        }
    }
    if r.torn_bytes_truncated > 0 || r.corrupt_records > 0 || r.quarantined_segments > 0 {
        tracing::warn!(destination = %name, torn_bytes = r.torn_bytes_truncated, corrupt_records = r.corrupt_records,
            quarantined_segments = r.quarantined_segments, quarantined_bytes = r.quarantined_bytes,
            "the queue had damaged records; they were set aside and the records after them are delivered");
    }
}

/// The queue's name for all time: made at random when the queue is first created,
/// so batch ids stay unique even if the data directory is wiped and seqs restart.
pub(super) fn queue_id(dir: &Path) -> anyhow::Result<String> {
    let file = dir.join("queue-id");
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let tmp = dir.join("queue-id.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", file.display()))?;
    Ok(id)
}
