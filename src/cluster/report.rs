//! The answer of `GET /api/v1/cluster`: the cluster as this node sees it, nodes and
//! shards with their health and queues. `chute cluster` prints it.

use serde::{Deserialize, Serialize};

use super::ClusterView;
use crate::config::ShardKey;
use crate::metrics::Metrics;
use crate::status::Health;

/// The answer of `GET /api/v1/cluster`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterReport {
    /// This node's id.
    pub node: String,
    /// Fingerprint of the layout; every node of a healthy cluster shows the same.
    pub layout: String,
    pub shard_key: ShardKey,
    pub nodes: Vec<NodeReport>,
    pub shards: Vec<ShardReport>,
    /// This node's counters since it started; two samples give its rates (the
    /// console samples them). Absent from older nodes' answers.
    #[serde(default)]
    pub totals: Totals,
}

/// Counters of this node since start-up, summed over their labels, and when they
/// were read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// When the counters were read, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Records received from senders, before validation (every source).
    pub records_received: u64,
    /// Records accepted: made durable here (every source).
    pub records_accepted: u64,
    /// Records refused (every source and reason).
    pub records_rejected: u64,
    /// Rows committed into this node's shards.
    pub rows_written: u64,
    /// Records forwarded to the nodes that own their shards.
    pub peer_records_sent: u64,
    /// Records other nodes forwarded here.
    pub peer_records_received: u64,
}

impl Totals {
    fn of(metrics: &Metrics) -> Totals {
        Totals {
            at_ms: chrono::Utc::now().timestamp_millis(),
            records_received: sum(&metrics.records_received),
            records_accepted: sum(&metrics.records_accepted),
            records_rejected: sum(&metrics.records_rejected),
            rows_written: sum(&metrics.rows_written),
            peer_records_sent: sum(&metrics.peer_records_sent),
            peer_records_received: sum(&metrics.peer_records_received),
        }
    }
}

/// The sum of a counter over all its label sets.
fn sum(counter: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    let total: f64 = counter
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value())
        .sum();
    // Counters are whole and non-negative.
    total as u64
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeReport {
    pub id: String,
    pub url: String,
    /// This node itself.
    pub local: bool,
    /// Whether the last forward to it succeeded (always true for this node; false for
    /// a peer nothing was sent to yet).
    pub up: bool,
    pub last_rtt_ms: Option<f64>,
    pub last_error: Option<String>,
    /// The queue of the peer link to it (absent for this node).
    pub queue: Option<QueueReport>,
    /// Batches it refused for good, waiting here as dead letters (`chute deadletter`).
    #[serde(default)]
    pub dead_letters: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ShardReport {
    pub id: u32,
    pub owner: String,
    /// Written by this node.
    pub local: bool,
    /// For a local shard: schema in place and the last write succeeded.
    pub up: Option<bool>,
    pub last_error: Option<String>,
    /// The queue in front of a local shard's writer.
    pub queue: Option<QueueReport>,
}

/// Depth of one destination's queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueReport {
    pub destination: String,
    pub bytes: i64,
    pub batches: i64,
    pub oldest_age_seconds: f64,
}

impl QueueReport {
    /// Read from the gauges the queue refreshes after every operation.
    pub fn of(metrics: &Metrics, destination: String) -> QueueReport {
        let l = [destination.as_str()];
        QueueReport {
            bytes: metrics.queue_bytes.with_label_values(&l).get(),
            batches: metrics.queue_records.with_label_values(&l).get(),
            oldest_age_seconds: metrics.queue_age(&destination),
            destination,
        }
    }
}

/// The cluster as `view`, `health` and the queue gauges in `metrics` show it now.
pub fn report(view: &ClusterView, health: &Health, metrics: &Metrics) -> ClusterReport {
    let peers = health.peers();
    let shards_health = health.snapshot();
    let nodes = view
        .nodes
        .iter()
        .map(|(id, url)| {
            let local = *id == view.node;
            let peer = peers.iter().find(|(p, _)| p == id).map(|(_, s)| s);
            NodeReport {
                id: id.clone(),
                url: url.clone(),
                local,
                up: local || peer.is_some_and(|s| s.up),
                last_rtt_ms: peer.and_then(|s| s.last_rtt_ms),
                last_error: peer.and_then(|s| s.last_error.clone()),
                queue: (!local).then(|| QueueReport::of(metrics, format!("peer-{id}"))),
                dead_letters: if local {
                    0
                } else {
                    metrics.deadletter_entries.with_label_values(&[id]).get()
                },
            }
        })
        .collect();
    let shards = view
        .shards
        .iter()
        .map(|(id, owner)| {
            let local = view.local.contains_key(id);
            let health = shards_health.iter().find(|(s, _)| s == id).map(|(_, s)| s);
            ShardReport {
                id: *id,
                owner: owner.clone(),
                local,
                up: health.map(|h| h.prepared && h.up && !h.queue_failed),
                last_error: health.and_then(|h| h.last_error.clone()),
                queue: local.then(|| QueueReport::of(metrics, format!("shard-{id}"))),
            }
        })
        .collect();
    ClusterReport {
        node: view.node.clone(),
        layout: view.fingerprint.clone(),
        shard_key: view.shard_key,
        nodes,
        shards,
        totals: Totals::of(metrics),
    }
}
