//! The metrics registry: one declared struct, one registry per running daemon.
//!
//! Names follow `chute_<what>_<unit>[_total]`. Labels are bounded: `shard`,
//! `source` (`http`, later `syslog`, `peer`), `reason` (a fixed set per metric,
//! listed in docs/metrics.md). Never a client address or raw error text.
//! Gauges that mirror state (queue depth, pool use) are refreshed at scrape time
//! by [`Metrics::render`] through the collectors registered with [`Metrics::on_scrape`].

use std::sync::{Arc, Mutex};

mod known;

pub use known::{reasons, KnownLabels};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

type ScrapeHook = Box<dyn Fn(&Metrics) + Send + Sync>;

/// A registry that remembers the name of everything registered, so the catalogue
/// (docs/metrics.md) can be checked against what chute really exports, including
/// metrics that have no samples yet.
#[derive(Default)]
pub struct NamedRegistry {
    inner: Registry,
    names: Mutex<Vec<String>>,
}

impl NamedRegistry {
    fn register(&self, c: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        let names: Vec<String> = c.desc().iter().map(|d| d.fq_name.clone()).collect();
        self.inner.register(c)?;
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(names);
        Ok(())
    }
}

/// Every metric chute exports. Field docs are the help texts.
pub struct Metrics {
    registry: NamedRegistry,
    hooks: Mutex<Vec<ScrapeHook>>,
    /// When the oldest unacknowledged batch of each destination's queue was appended
    /// (`None`: the queue is empty). The queue threads write it after each operation;
    /// `chute_queue_oldest_age_seconds` is computed from it when read, so the age
    /// keeps growing while nothing touches the queue (a peer or a database down).
    oldest_append: dashmap::DashMap<String, Option<std::time::SystemTime>>,
    /// Records received, before validation (`source`).
    pub records_received: IntCounterVec,
    /// Records accepted: validated and handed to their destination (`source`).
    pub records_accepted: IntCounterVec,
    /// Records refused, by `source` and `reason` (invalid_record, invalid_json,
    /// backpressure, timeout, shutdown).
    pub records_rejected: IntCounterVec,
    /// Records in which text PostgreSQL cannot hold was replaced with U+FFFD
    /// (`reason`: nul, invalid_utf8).
    pub records_sanitized: IntCounterVec,
    /// Whole requests refused before any record was read (`reason`).
    pub requests_rejected: IntCounterVec,
    /// Requests refused for their token (`reason`).
    pub auth_refused: IntCounterVec,
    /// Times a tenant's rate limit held back what it sent (`tenant`: configured
    /// or `other`; `limit`: records, bytes; `action`: refused, paused, dropped).
    pub rate_limited: IntCounterVec,
    /// Rows committed into `chute.logs` (`shard`).
    pub rows_written: IntCounterVec,
    /// Rows PostgreSQL refused for their content, stored in `chute.rejected` instead
    /// (`shard`, `reason`: data_exception, integrity_violation, other).
    pub rows_quarantined: IntCounterVec,
    /// Rows lost because even `chute.rejected` refused them (`shard`, `reason`).
    pub rows_dropped: IntCounterVec,
    /// Write attempts retried after a transient error (`shard`, `reason`:
    /// connection, admin_shutdown, serialization, resources, other).
    pub write_retries: IntCounterVec,
    /// Rows per COPY (`shard`).
    pub batch_rows: HistogramVec,
    /// Time to write one batch, retries included (`shard`).
    pub flush_duration: HistogramVec,
    /// 1 if the last write to the shard succeeded (or nothing failed yet), else 0.
    pub shard_up: IntGaugeVec,
    /// Connections in a shard's pool (`shard`, `state`: busy, idle).
    pub pool_connections: IntGaugeVec,
    /// Times the supervisor restarted an embedded PostgreSQL that died on its own.
    pub embedded_postgres_restarts: IntGauge,
    /// Partitions created by partition maintenance (`shard`).
    pub partitions_created: IntCounterVec,
    /// Partition maintenance runs that failed (`shard`).
    pub partition_maintenance_failures: IntCounterVec,
    /// Closed days' leaves whose `(host, ts)` index was rebuilt (`shard`).
    pub index_compactions: IntCounterVec,
    /// Bytes those rebuilds gave back (`shard`).
    pub index_compaction_bytes: IntCounterVec,
    /// Bytes a shard's tables hold, indexes and TOAST included (`shard`, `table`).
    pub storage_bytes: IntGaugeVec,
    /// Day partitions of `chute.logs` (`shard`).
    pub storage_partitions: IntGaugeVec,
    /// Unix time of the oldest record a shard holds (`shard`).
    pub storage_oldest: IntGaugeVec,
    /// `retention.max_mib` in bytes, 0 for none (`shard`).
    pub storage_limit: IntGaugeVec,
    /// Days dropped by retention (`shard`, `reason`: age, size).
    pub retention_days: IntCounterVec,
    /// Bytes of the days dropped by retention (`shard`).
    pub retention_bytes: IntCounterVec,
    /// Rows removed by retention (`shard`, `table`: logs, logs_default, rejected).
    pub retention_rows: IntCounterVec,
    /// Files retention removed (`kind`: quarantine, deadletter; `reason`: age, size).
    pub retention_files: IntCounterVec,
    /// Bytes of the files retention removed (`kind`, `reason`).
    pub retention_file_bytes: IntCounterVec,
    /// Retention checks that failed (`shard`, `reason`: lock_timeout, error).
    pub retention_failures: IntCounterVec,
    /// HTTP requests answered (`route`, `status` class: 2xx, 4xx, 5xx).
    pub http_requests: IntCounterVec,
    /// Batches (queue entries) a peer link delivered to its node (`peer`).
    pub peer_batches_sent: IntCounterVec,
    /// Records a peer link delivered to its node (`peer`).
    pub peer_records_sent: IntCounterVec,
    /// Compressed request bytes a peer link sent, retries included (`peer`).
    pub peer_bytes_sent: IntCounterVec,
    /// Requests that re-sent batches already tried once (`peer`).
    pub peer_retries: IntCounterVec,
    /// Forwards that failed (`peer`, `reason`: connect, timeout, unauthorized,
    /// layout_mismatch, refused, unavailable, server_error).
    pub peer_failures: IntCounterVec,
    /// 1 if the last forward to the peer succeeded, else 0 (`peer`).
    pub peer_up: IntGaugeVec,
    /// Round trip of a successful forward, until the peer made it durable (`peer`).
    pub peer_rtt: HistogramVec,
    /// Batches received from peers and made durable here (`peer`).
    pub peer_batches_received: IntCounterVec,
    /// Records received from peers and made durable here (`peer`).
    pub peer_records_received: IntCounterVec,
    /// Read API requests (`endpoint`, `result`: ok, invalid, unavailable, timeout).
    pub queries: IntCounterVec,
    /// Time to answer a read API request (`endpoint`).
    pub query_duration: HistogramVec,
    /// Lines returned by log queries (`endpoint`).
    pub query_lines: IntCounterVec,
    /// Log rows queries read on this node's shards (`endpoint`).
    pub query_rows: IntCounterVec,
    /// Blocks of rows string searches read or skipped by their blooms (`result`).
    pub query_blocks: IntCounterVec,
    /// Whole hours of counts metric queries took from the cache or counted (`result`).
    pub query_cache_hours: IntCounterVec,
    /// Live tails open (`kind`: client, a websocket here; peer, a node tailing
    /// this node's shards).
    pub tail_clients: IntGaugeVec,
    /// Entries a tail could not take in time, dropped (`reason`).
    pub tail_dropped: IntCounterVec,
    /// Forwarded batches a peer refused for good, set aside as dead letters (`peer`,
    /// `reason`: too_large, shard_not_owned, malformed).
    pub deadletter_moved: IntCounterVec,
    /// Dead letters waiting under `<data_dir>/deadletter/<peer>` (`peer`).
    pub deadletter_entries: IntGaugeVec,
    /// Dead letters replayed or dropped (`peer`, `action`).
    pub deadletter_removed: IntCounterVec,
    /// `/internal/` requests refused (`reason`: unauthorized, unknown_node,
    /// layout_mismatch, shard_not_owned, malformed, too_large).
    pub internal_refused: IntCounterVec,
    /// Unacknowledged bytes in a destination's queue (`destination`).
    pub queue_bytes: IntGaugeVec,
    /// Unacknowledged entries (batches) in a destination's queue (`destination`).
    pub queue_records: IntGaugeVec,
    /// Age of the oldest unacknowledged entry, in seconds (`destination`).
    pub queue_oldest_age: GaugeVec,
    /// Bytes appended to a destination's queue (`destination`).
    pub queue_appended_bytes: IntCounterVec,
    /// Queue operations that failed (`destination`, `reason`).
    pub queue_errors: IntCounterVec,
    /// Time of one group-commit fsync (`destination`).
    pub fsync_duration: HistogramVec,
    /// Damaged queue records found and set aside (`destination`, `reason`: torn, corrupt,
    /// segment, payload).
    pub queue_corrupt: IntCounterVec,
    /// Batches delivered again and skipped because they were stored before (`shard`).
    pub duplicate_batches: IntCounterVec,
    /// Syslog messages received (`listener`).
    pub syslog_messages: IntCounterVec,
    /// Syslog messages that parsed in their format (`listener`).
    pub syslog_parsed: IntCounterVec,
    /// Syslog messages stored whole because they parsed as neither format (`listener`).
    pub syslog_malformed: IntCounterVec,
    /// Syslog messages cut to `max_message_bytes` (`listener`).
    pub syslog_truncated: IntCounterVec,
    /// Bytes read by a syslog listener (`listener`).
    pub syslog_bytes: IntCounterVec,
    /// Open syslog connections (`listener`).
    pub syslog_connections: IntGaugeVec,
    /// Syslog connections refused (`listener`, `reason`: max_connections, tls_handshake).
    pub syslog_refused: IntCounterVec,
    /// Syslog connections closed by chute (`listener`, `reason`: idle, or a framing error).
    pub syslog_closed: IntCounterVec,
    /// Times a syslog connection paused reading because a queue was full (`listener`).
    pub syslog_paused: IntCounterVec,
    /// 1 when `/readyz` would answer 200 (every shard prepared, up, queue healthy).
    pub ready: IntGauge,
    /// A destination queue's byte limit (`destination`): `chute_queue_bytes` over it
    /// is how full the queue is.
    pub queue_max_bytes: IntGaugeVec,
    /// SIGHUP reloads (`result`: invalid, unchanged, applied, restart_needed, no_file).
    pub config_reloads: IntCounterVec,
    /// Version of the running binary (`version`), always 1.
    pub build_info: IntGaugeVec,
    /// Times the metrics were scraped; a cheap liveness signal for dashboards.
    pub scrapes: IntCounter,
}

fn counter(r: &NamedRegistry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn gauge(r: &NamedRegistry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric names are unique");
    g
}

fn histogram(
    r: &NamedRegistry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric names are unique");
    h
}

impl Metrics {
    /// Builds the registry. The definitions are constants, so registration cannot fail.
    pub fn new() -> Arc<Metrics> {
        let r = NamedRegistry::default();
        let embedded_postgres_restarts = IntGauge::new(
            "chute_embedded_postgres_restarts_total",
            "Times the supervisor restarted an embedded PostgreSQL that died on its own.",
        )
        .expect("valid metric definition");
        r.register(Box::new(embedded_postgres_restarts.clone()))
            .expect("metric names are unique");
        let scrapes = IntCounter::new("chute_metrics_scrapes_total", "Times /metrics was scraped.")
            .expect("valid metric definition");
        r.register(Box::new(scrapes.clone()))
            .expect("metric names are unique");
        // process_resident_memory_bytes, process_cpu_seconds_total, open fds, ...
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("metric names are unique");
        let ready = IntGauge::new(
            "chute_ready",
            "1 when every shard is prepared, up, and its queue healthy.",
        )
        .expect("valid metric definition");
        r.register(Box::new(ready.clone()))
            .expect("metric names are unique");
        let m = Metrics {
            ready,
            queue_max_bytes: gauge(
                &r,
                "chute_queue_max_bytes",
                "A destination queue's byte limit.",
                &["destination"],
            ),
            records_received: counter(
                &r,
                "chute_records_received_total",
                "Records received, before validation.",
                &["source"],
            ),
            records_accepted: counter(
                &r,
                "chute_records_accepted_total",
                "Records validated and handed to their destination.",
                &["source"],
            ),
            records_rejected: counter(
                &r,
                "chute_records_rejected_total",
                "Records refused, by reason.",
                &["source", "reason"],
            ),
            records_sanitized: counter(
                &r,
                "chute_records_sanitized_total",
                "Records in which NUL or invalid UTF-8 was replaced with U+FFFD.",
                &["source", "reason"],
            ),
            requests_rejected: counter(
                &r,
                "chute_requests_rejected_total",
                "Whole requests refused, by reason.",
                &["reason"],
            ),
            rate_limited: counter(
                &r,
                "chute_rate_limited_total",
                "Times a tenant's rate limit ([limits]) held back what it sent, by tenant (a configured one, or other), limit (records, bytes) and action: refused (an HTTP request, whole), paused (a syslog stream stopped reading until the limit allowed more), dropped (a syslog datagram).",
                &["tenant", "limit", "action"],
            ),
            auth_refused: counter(
                &r,
                "chute_auth_refused_total",
                "Requests refused for their token: none, unknown or unreadable (401), or a scope or tenant it lacks (403).",
                &["reason"],
            ),
            rows_written: counter(
                &r,
                "chute_rows_written_total",
                "Rows committed into chute.logs.",
                &["shard"],
            ),
            rows_quarantined: counter(
                &r,
                "chute_rows_quarantined_total",
                "Rows PostgreSQL refused for their content, stored in chute.rejected.",
                &["shard", "reason"],
            ),
            rows_dropped: counter(
                &r,
                "chute_rows_dropped_total",
                "Rows lost because chute.rejected refused them too.",
                &["shard", "reason"],
            ),
            write_retries: counter(
                &r,
                "chute_write_retries_total",
                "Batch writes retried after a transient error.",
                &["shard", "reason"],
            ),
            batch_rows: histogram(
                &r,
                "chute_batch_rows",
                "Rows per COPY batch.",
                &["shard"],
                vec![
                    1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 50000.0,
                ],
            ),
            flush_duration: histogram(
                &r,
                "chute_flush_duration_seconds",
                "Time to write one batch, retries included.",
                &["shard"],
                prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets"),
            ),
            shard_up: gauge(
                &r,
                "chute_shard_up",
                "1 if the last write to the shard succeeded, else 0.",
                &["shard"],
            ),
            pool_connections: gauge(
                &r,
                "chute_pool_connections",
                "Connections in a shard's pool, by state.",
                &["shard", "state"],
            ),
            embedded_postgres_restarts,
            partition_maintenance_failures: counter(
                &r,
                "chute_partition_maintenance_failures_total",
                "Partition maintenance runs that failed.",
                &["shard"],
            ),
            storage_bytes: gauge(
                &r,
                "chute_storage_bytes",
                "Bytes a shard's tables hold, indexes and TOAST included, by table (logs: all its partitions), measured every minute by the shard's writer.",
                &["shard", "table"],
            ),
            storage_partitions: gauge(
                &r,
                "chute_storage_partitions",
                "Day partitions of chute.logs on a shard.",
                &["shard"],
            ),
            storage_oldest: gauge(
                &r,
                "chute_storage_oldest_record_timestamp_seconds",
                "Unix time of the oldest record on a shard (0: none).",
                &["shard"],
            ),
            storage_limit: gauge(
                &r,
                "chute_storage_limit_bytes",
                "retention.max_mib of a shard in bytes; 0: no size limit.",
                &["shard"],
            ),
            retention_days: counter(
                &r,
                "chute_retention_dropped_days_total",
                "Days whose partition retention dropped (age, size), and retention classes of a day it emptied (tenant_age).",
                &["shard", "reason"],
            ),
            retention_bytes: counter(
                &r,
                "chute_retention_dropped_bytes_total",
                "Bytes of the partitions retention dropped.",
                &["shard"],
            ),
            retention_rows: counter(
                &r,
                "chute_retention_dropped_rows_total",
                "Rows retention removed, by table: logs (dropped days), logs_default and rejected (deleted past their age).",
                &["shard", "table"],
            ),
            retention_files: counter(
                &r,
                "chute_retention_removed_files_total",
                "Files retention removed, by kind (quarantine, deadletter) and reason (age, size).",
                &["kind", "reason"],
            ),
            retention_file_bytes: counter(
                &r,
                "chute_retention_removed_file_bytes_total",
                "Bytes of the files retention removed, by kind and reason.",
                &["kind", "reason"],
            ),
            retention_failures: counter(
                &r,
                "chute_retention_failures_total",
                "Retention checks that failed, by reason: lock_timeout (a drop waited longer than 1 s for running writes and queries; tried again at the next check), error.",
                &["shard", "reason"],
            ),
            partitions_created: counter(
                &r,
                "chute_partitions_created_total",
                "Daily partitions created.",
                &["shard"],
            ),
            index_compactions: counter(
                &r,
                "chute_index_compactions_total",
                "Leaves of closed days whose (host, ts) index was rebuilt packed.",
                &["shard"],
            ),
            index_compaction_bytes: counter(
                &r,
                "chute_index_compaction_saved_bytes_total",
                "Bytes the rebuilds of closed days' indexes gave back.",
                &["shard"],
            ),
            http_requests: counter(
                &r,
                "chute_http_requests_total",
                "HTTP requests answered, by route and status class.",
                &["route", "status"],
            ),
            queue_bytes: gauge(
                &r,
                "chute_queue_bytes",
                "Unacknowledged bytes in a destination's queue.",
                &["destination"],
            ),
            queue_records: gauge(
                &r,
                "chute_queue_entries",
                "Unacknowledged batches in a destination's queue.",
                &["destination"],
            ),
            queue_oldest_age: {
                let g = GaugeVec::new(
                    Opts::new(
                        "chute_queue_oldest_age_seconds",
                        "Age of the oldest unacknowledged batch in a destination's queue.",
                    ),
                    &["destination"],
                )
                .expect("valid metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric names are unique");
                g
            },
            queue_appended_bytes: counter(
                &r,
                "chute_queue_appended_bytes_total",
                "Bytes appended to a destination's queue.",
                &["destination"],
            ),
            queue_errors: counter(
                &r,
                "chute_queue_errors_total",
                "Queue operations that failed.",
                &["destination", "reason"],
            ),
            fsync_duration: histogram(
                &r,
                "chute_fsync_duration_seconds",
                "Time of one group-commit fsync.",
                &["destination"],
                prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets"),
            ),
            queue_corrupt: counter(
                &r,
                "chute_queue_corrupt_total",
                "Damaged queue records found and set aside.",
                &["destination", "reason"],
            ),
            duplicate_batches: counter(
                &r,
                "chute_duplicate_batches_total",
                "Batches delivered again and skipped as already stored.",
                &["shard"],
            ),
            syslog_messages: counter(
                &r,
                "chute_syslog_messages_total",
                "Syslog messages received.",
                &["listener"],
            ),
            syslog_parsed: counter(
                &r,
                "chute_syslog_parsed_total",
                "Syslog messages that parsed in their format.",
                &["listener"],
            ),
            syslog_malformed: counter(
                &r,
                "chute_syslog_malformed_total",
                "Syslog messages stored whole because they parsed as neither format.",
                &["listener"],
            ),
            syslog_truncated: counter(
                &r,
                "chute_syslog_truncated_total",
                "Syslog messages cut to max_message_bytes.",
                &["listener"],
            ),
            syslog_bytes: counter(
                &r,
                "chute_syslog_bytes_total",
                "Bytes read by a syslog listener.",
                &["listener"],
            ),
            syslog_connections: gauge(
                &r,
                "chute_syslog_connections",
                "Open syslog connections.",
                &["listener"],
            ),
            syslog_refused: counter(
                &r,
                "chute_syslog_connections_refused_total",
                "Syslog connections refused.",
                &["listener", "reason"],
            ),
            syslog_closed: counter(
                &r,
                "chute_syslog_connections_closed_total",
                "Syslog connections closed by chute.",
                &["listener", "reason"],
            ),
            syslog_paused: counter(
                &r,
                "chute_syslog_paused_total",
                "Times a syslog connection paused reading because a queue was full.",
                &["listener"],
            ),
            config_reloads: counter(
                &r,
                "chute_config_reloads_total",
                "SIGHUP reloads, by result.",
                &["result"],
            ),
            peer_batches_sent: counter(
                &r,
                "chute_peer_batches_sent_total",
                "Batches a peer link delivered to its node.",
                &["peer"],
            ),
            peer_records_sent: counter(
                &r,
                "chute_peer_records_sent_total",
                "Records a peer link delivered to its node.",
                &["peer"],
            ),
            peer_bytes_sent: counter(
                &r,
                "chute_peer_sent_bytes_total",
                "Compressed request bytes a peer link sent, retries included.",
                &["peer"],
            ),
            peer_retries: counter(
                &r,
                "chute_peer_retries_total",
                "Requests that re-sent batches already tried once.",
                &["peer"],
            ),
            peer_failures: counter(
                &r,
                "chute_peer_failures_total",
                "Forwards to a peer that failed, by reason.",
                &["peer", "reason"],
            ),
            peer_up: gauge(
                &r,
                "chute_peer_up",
                "1 if the last forward to the peer succeeded, else 0.",
                &["peer"],
            ),
            peer_rtt: histogram(
                &r,
                "chute_peer_rtt_seconds",
                "Round trip of a successful forward, until the peer made it durable.",
                &["peer"],
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            peer_batches_received: counter(
                &r,
                "chute_peer_received_batches_total",
                "Batches received from peers and made durable here.",
                &["peer"],
            ),
            peer_records_received: counter(
                &r,
                "chute_peer_received_records_total",
                "Records received from peers and made durable here.",
                &["peer"],
            ),
            queries: counter(
                &r,
                "chute_queries_total",
                "Read API requests, by endpoint and result.",
                &["endpoint", "result"],
            ),
            query_duration: histogram(
                &r,
                "chute_query_duration_seconds",
                "Time to answer a read API request, by endpoint.",
                &["endpoint"],
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            ),
            query_lines: counter(
                &r,
                "chute_query_lines_returned_total",
                "Lines log queries returned, by endpoint.",
                &["endpoint"],
            ),
            query_rows: counter(
                &r,
                "chute_query_rows_read_total",
                "Log rows queries read (or had PostgreSQL count) on this node's shards, by endpoint.",
                &["endpoint"],
            ),
            query_blocks: counter(
                &r,
                "chute_query_blocks_total",
                "Blocks of rows string searches read (their bloom may hold the strings) or skipped.",
                &["result"],
            ),
            query_cache_hours: counter(
                &r,
                "chute_query_cache_hours_total",
                "Whole hours of counts metric queries took from the cache (hit) or counted from the rows (miss).",
                &["result"],
            ),
            tail_clients: gauge(
                &r,
                "chute_tail_clients",
                "Live tails open: websocket clients here, and peers tailing this node's shards.",
                &["kind"],
            ),
            tail_dropped: counter(
                &r,
                "chute_tail_dropped_entries_total",
                "Entries a live tail did not take in time and lost, by reason.",
                &["reason"],
            ),
            deadletter_moved: counter(
                &r,
                "chute_deadletter_moved_total",
                "Forwarded batches a peer refused for good, set aside as dead letters, by reason.",
                &["peer", "reason"],
            ),
            deadletter_entries: gauge(
                &r,
                "chute_deadletter_entries",
                "Dead letters waiting to be replayed or dropped (chute deadletter).",
                &["peer"],
            ),
            deadletter_removed: counter(
                &r,
                "chute_deadletter_removed_total",
                "Dead letters replayed or dropped, by action.",
                &["peer", "action"],
            ),
            internal_refused: counter(
                &r,
                "chute_internal_refused_total",
                "Requests to /internal/ refused, by reason.",
                &["reason"],
            ),
            build_info: gauge(
                &r,
                "chute_build_info",
                "Version of the running binary; always 1.",
                &["version"],
            ),
            scrapes,
            registry: r,
            hooks: Mutex::new(Vec::new()),
            oldest_append: dashmap::DashMap::new(),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Arc::new(m)
    }

    /// The name of every metric family chute exports.
    pub fn names(&self) -> Vec<String> {
        let mut names = self
            .registry
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        names.sort();
        names
    }

    /// Registers a function that refreshes state-mirroring gauges before each scrape.
    pub fn on_scrape(&self, hook: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
    }

    /// Records when the oldest unacknowledged batch of `destination`'s queue was
    /// appended; its age gauge is computed from it when read. Runs on every queue
    /// append and acknowledgement: the name is copied only the first time.
    pub fn set_queue_oldest_append(&self, destination: &str, at: Option<std::time::SystemTime>) {
        match self.oldest_append.get_mut(destination) {
            Some(mut entry) => *entry = at,
            None => {
                self.oldest_append.insert(destination.to_owned(), at);
            }
        }
    }

    /// Age of the oldest unacknowledged batch in `destination`'s queue, now (0 when
    /// empty); also sets `chute_queue_oldest_age_seconds`.
    pub fn queue_age(&self, destination: &str) -> f64 {
        let age = age(self.oldest_append.get(destination).and_then(|a| *a));
        self.queue_oldest_age
            .with_label_values(&[destination])
            .set(age);
        age
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.scrapes.inc();
        for e in self.oldest_append.iter() {
            self.queue_oldest_age
                .with_label_values(&[e.key()])
                .set(age(*e.value()));
        }
        for hook in self.hooks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            hook(self);
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.inner.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Seconds since `at` (0 for none, or for a time ahead of the clock).
fn age(at: Option<std::time::SystemTime>) -> f64 {
    at.and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
