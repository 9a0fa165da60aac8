//! Label values known before any traffic, and the fixed `reason` sets: every
//! counter and histogram they name is exported at 0 from start-up.

use prometheus::IntCounterVec;

use super::Metrics;

impl Metrics {
    /// Exports every counter and histogram whose label values are known before any
    /// traffic at 0, so `rate()` and `increase()` see the first event and panels show
    /// 0 rather than "No data" (the Prometheus instrumentation guide's advice).
    /// Gauges that mirror state are left to their owners, which set them when the
    /// state is known (a shard is not "down" before its first write).
    pub fn export_known(&self, known: &KnownLabels) {
        let touch = |c: &IntCounterVec, labels: &[&str]| {
            c.with_label_values(labels);
        };
        let each = |c: &IntCounterVec, first: &[String], reasons: &[&str]| {
            for f in first {
                for r in reasons {
                    c.with_label_values(&[f, r]);
                }
            }
        };
        let sources = ["http", "syslog", "loki", "otlp", "elasticsearch"];
        for source in sources {
            touch(&self.records_received, &[source]);
            touch(&self.records_accepted, &[source]);
            for r in reasons::RECORDS_REJECTED {
                touch(&self.records_rejected, &[source, r]);
            }
            for r in reasons::SANITIZED {
                touch(&self.records_sanitized, &[source, r]);
            }
        }
        for r in reasons::REQUESTS_REJECTED {
            touch(&self.requests_rejected, &[r]);
        }
        for r in reasons::INTERNAL_REFUSED {
            touch(&self.internal_refused, &[r]);
        }
        for endpoint in reasons::QUERY_ENDPOINTS {
            for result in reasons::QUERY_RESULTS {
                touch(&self.queries, &[endpoint, result]);
            }
            self.query_duration.with_label_values(&[endpoint]);
            touch(&self.query_rows, &[endpoint]);
        }
        for endpoint in ["query", "query_range"] {
            touch(&self.query_lines, &[endpoint]);
        }
        for kind in ["quarantine", "deadletter"] {
            for r in reasons::RETENTION_DROPPED {
                touch(&self.retention_files, &[kind, r]);
                touch(&self.retention_file_bytes, &[kind, r]);
            }
        }
        for limit in reasons::RATE_LIMITS {
            for action in reasons::RATE_LIMITED_ACTIONS {
                touch(&self.rate_limited, &["other", limit, action]);
            }
        }
        for r in reasons::AUTH_REFUSED {
            touch(&self.auth_refused, &[r]);
        }
        for r in reasons::QUERY_BLOCKS {
            touch(&self.query_blocks, &[r]);
        }
        for r in reasons::QUERY_CACHE {
            touch(&self.query_cache_hours, &[r]);
        }
        for kind in reasons::TAIL_KINDS {
            self.tail_clients.with_label_values(&[kind]);
        }
        for r in reasons::TAIL_DROPPED {
            touch(&self.tail_dropped, &[r]);
        }
        for r in reasons::CONFIG_RELOADS {
            touch(&self.config_reloads, &[r]);
        }
        for route in &known.routes {
            for class in ["2xx", "4xx", "5xx"] {
                touch(&self.http_requests, &[route, class]);
            }
        }
        for shard in &known.shards {
            let l = [shard.as_str()];
            for c in [
                &self.rows_written,
                &self.partitions_created,
                &self.partition_maintenance_failures,
                &self.index_compactions,
                &self.index_compaction_bytes,
                &self.duplicate_batches,
            ] {
                touch(c, &l);
            }
            self.batch_rows.with_label_values(&l);
            self.retention_bytes.with_label_values(&l);
            for r in reasons::RETENTION_DROPPED {
                touch(&self.retention_days, &[shard, r]);
            }
            for t in reasons::RETENTION_TABLES {
                touch(&self.retention_rows, &[shard, t]);
            }
            for r in reasons::RETENTION_FAILURES {
                touch(&self.retention_failures, &[shard, r]);
            }
            self.flush_duration.with_label_values(&l);
        }
        each(
            &self.rows_quarantined,
            &known.shards,
            reasons::ROWS_QUARANTINED,
        );
        each(&self.rows_dropped, &known.shards, reasons::ROWS_DROPPED);
        each(&self.write_retries, &known.shards, reasons::WRITE_RETRIES);
        for destination in &known.destinations {
            touch(&self.queue_appended_bytes, &[destination]);
            self.fsync_duration.with_label_values(&[destination]);
        }
        each(
            &self.queue_errors,
            &known.destinations,
            reasons::QUEUE_ERRORS,
        );
        each(
            &self.queue_corrupt,
            &known.destinations,
            reasons::QUEUE_CORRUPT,
        );
        for listener in &known.listeners {
            let l = [listener.as_str()];
            for c in [
                &self.syslog_messages,
                &self.syslog_parsed,
                &self.syslog_malformed,
                &self.syslog_truncated,
                &self.syslog_bytes,
                &self.syslog_paused,
            ] {
                touch(c, &l);
            }
        }
        each(
            &self.syslog_refused,
            &known.listeners,
            reasons::SYSLOG_REFUSED,
        );
        each(
            &self.syslog_closed,
            &known.listeners,
            reasons::SYSLOG_CLOSED,
        );
        for peer in &known.peers {
            let l = [peer.as_str()];
            for c in [
                &self.peer_batches_sent,
                &self.peer_records_sent,
                &self.peer_bytes_sent,
                &self.peer_retries,
                &self.peer_batches_received,
                &self.peer_records_received,
            ] {
                touch(c, &l);
            }
            self.peer_rtt.with_label_values(&l);
        }
        each(&self.peer_failures, &known.peers, reasons::PEER_FAILURES);
        each(&self.deadletter_moved, &known.peers, reasons::DEADLETTER);
        each(
            &self.deadletter_removed,
            &known.peers,
            reasons::DEADLETTER_REMOVED,
        );
    }
}

/// The label values of one node that are known at start-up.
#[derive(Debug, Clone, Default)]
pub struct KnownLabels {
    /// Local shards (`shard` label: the shard id).
    pub shards: Vec<String>,
    /// Queues (`shard-<id>`, `peer-<node>`).
    pub destinations: Vec<String>,
    /// Syslog listeners (`listener` label).
    pub listeners: Vec<String>,
    /// Other nodes of the cluster (`peer` label).
    pub peers: Vec<String>,
    /// HTTP route patterns (`route` label).
    pub routes: Vec<String>,
}

/// The fixed `reason` (or `result`) values of each metric, as docs/metrics.md lists
/// them; every one is exported at 0 from start-up.
pub mod reasons {
    pub const RECORDS_REJECTED: &[&str] = &[
        "invalid_record",
        "too_large",
        "backpressure",
        "timeout",
        "shutdown",
        "queue_failed",
        "rate_limited",
    ];
    pub const SANITIZED: &[&str] = &["nul", "invalid_utf8"];
    pub const REQUESTS_REJECTED: &[&str] = &[
        "too_large",
        "unsupported_content_type",
        "unsupported_encoding",
        "corrupt_encoding",
        "empty_body",
        "invalid_json",
        "invalid_body",
        "invalid_index",
        "invalid_header",
        "invalid_tenant",
        "read_error",
        "no_valid_records",
        "body_timeout",
        "overloaded",
        "not_local",
        "not_found",
        "rate_limited",
        "backpressure",
        "timeout",
        "shutdown",
        "queue_failed",
    ];
    pub const ROWS_QUARANTINED: &[&str] =
        &["data_exception", "integrity_violation", "program_limit"];
    pub const ROWS_DROPPED: &[&str] = &["quarantine_refused"];
    pub const WRITE_RETRIES: &[&str] = &[
        "timeout",
        "connection",
        "admin_shutdown",
        "serialization",
        "resources",
        "canceled",
        "permission",
        "undefined_object",
        "other",
        "schema",
    ];
    pub const QUEUE_ERRORS: &[&str] = &[
        "full",
        "too_large",
        "poisoned",
        "io",
        "locked",
        "ack_beyond_synced",
        "invalid_options",
    ];
    pub const QUEUE_CORRUPT: &[&str] = &["torn", "corrupt", "segment", "payload"];
    pub const RATE_LIMITS: &[&str] = &["records", "bytes"];
    pub const RETENTION_DROPPED: &[&str] = &["age", "tenant_age", "size"];
    pub const RETENTION_TABLES: &[&str] = &["logs", "logs_default", "rejected"];
    pub const RETENTION_FAILURES: &[&str] = &["lock_timeout", "error"];
    pub const RATE_LIMITED_ACTIONS: &[&str] = &["refused", "paused", "dropped"];
    pub const SYSLOG_REFUSED: &[&str] = &[
        "max_connections",
        "tls_handshake",
        "unmapped_client",
        "ambiguous_client",
        "unreadable_client_certificate",
    ];
    pub const SYSLOG_CLOSED: &[&str] = &[
        "idle",
        "frame_too_long",
        "bad_frame_length",
        "incomplete_frame",
    ];
    pub const PEER_FAILURES: &[&str] = &[
        "connect",
        "timeout",
        "unauthorized",
        "layout_mismatch",
        "refused",
        "unavailable",
        "server_error",
        "compress",
        "too_large",
        "shard_not_owned",
        "malformed",
        "deadletter_failed",
    ];
    /// Refusals a retry cannot cure: the entry becomes a dead letter.
    pub const DEADLETTER: &[&str] = &["too_large", "shard_not_owned", "malformed"];
    pub const DEADLETTER_REMOVED: &[&str] = &["replayed", "dropped"];
    pub const INTERNAL_REFUSED: &[&str] = &[
        "unauthorized",
        "unknown_node",
        "layout_mismatch",
        "shard_not_owned",
        "malformed",
        "too_large",
    ];
    pub const QUERY_ENDPOINTS: &[&str] = &[
        "query_range",
        "query",
        "labels",
        "label_values",
        "series",
        "index_stats",
        "index_volume",
        "volume_range",
        "internal",
    ];
    pub const TAIL_KINDS: &[&str] = &["client", "peer"];
    pub const QUERY_BLOCKS: &[&str] = &["read", "skipped"];
    pub const AUTH_REFUSED: &[&str] = &[
        "cross_origin",
        "missing_token",
        "malformed_credentials",
        "unknown_token",
        "scope",
        "tenant",
    ];
    pub const QUERY_CACHE: &[&str] = &["hit", "miss"];
    pub const TAIL_DROPPED: &[&str] = &["slow_subscriber"];
    pub const QUERY_RESULTS: &[&str] = &[
        "ok",
        "invalid",
        "unavailable",
        "timeout",
        "unauthorized",
        "forbidden",
    ];
    pub const CONFIG_RELOADS: &[&str] = &[
        "invalid",
        "unchanged",
        "applied",
        "restart_needed",
        "no_file",
    ];
}
