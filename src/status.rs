//! Shard and peer health as the writers and peer links see it, read by `/readyz`
//! and `/api/v1/cluster`.

use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

/// Health of every local shard, keyed by shard id. Writers update their own entry;
/// HTTP workers read all entries without a global lock.
#[derive(Default)]
pub struct Health {
    shards: DashMap<u32, ShardState>,
    peers: DashMap<String, PeerState>,
}

/// What the peer link to one node last saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerState {
    /// The last forward (or, before any, the first attempt) succeeded.
    pub up: bool,
    /// The link's queue failed to fsync: nothing more is acknowledged for this peer.
    pub queue_failed: bool,
    /// Round trip of the last successful forward, in milliseconds.
    pub last_rtt_ms: Option<f64>,
    /// The last error, for operators.
    pub last_error: Option<String>,
}

/// Something whose queue can fail: a local shard or a peer link.
pub trait QueueHealth: Send + Sync {
    /// The destination's queue can no longer make records durable.
    fn set_queue_failed(&self, error: &str);
}

/// What one shard's writer last saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardState {
    /// Schema migrated and partitions in place; writes may start.
    pub prepared: bool,
    /// The last write (or preparation) succeeded.
    pub up: bool,
    /// The queue failed to fsync: nothing more is acknowledged until a restart.
    pub queue_failed: bool,
    /// The last error, for operators reading `/readyz`.
    pub last_error: Option<String>,
}

impl Health {
    /// A handle through which the writer of `shard` reports.
    pub fn register(self: &Arc<Self>, shard: u32) -> Arc<ShardStatus> {
        self.shards.insert(shard, ShardState::default());
        Arc::new(ShardStatus {
            health: self.clone(),
            shard,
        })
    }

    /// A handle through which the peer link to `node` reports.
    pub fn register_peer(self: &Arc<Self>, node: &str) -> Arc<PeerStatus> {
        self.peers.insert(node.to_owned(), PeerState::default());
        Arc::new(PeerStatus {
            health: self.clone(),
            node: node.to_owned(),
        })
    }

    /// Every peer's state, ordered by node id.
    pub fn peers(&self) -> Vec<(String, PeerState)> {
        let mut v: Vec<_> = self
            .peers
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Whether some peer link's queue has failed (which makes the node unready).
    pub fn peer_queue_failed(&self) -> bool {
        self.peers.iter().any(|e| e.value().queue_failed)
    }

    /// Every shard's state, ordered by id.
    pub fn snapshot(&self) -> Vec<(u32, ShardState)> {
        let mut v: Vec<_> = self
            .shards
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

/// One writer's handle on its entry in [`Health`].
pub struct ShardStatus {
    health: Arc<Health>,
    shard: u32,
}

impl ShardStatus {
    fn update(&self, f: impl FnOnce(&mut ShardState)) {
        if let Some(mut s) = self.health.shards.get_mut(&self.shard) {
            f(&mut s);
        }
    }
    pub fn set_prepared(&self) {
        self.update(|s| {
            s.prepared = true;
            s.up = true;
            s.last_error = None;
        });
    }
    pub fn set_up(&self, up: bool) {
        self.update(|s| {
            s.up = up;
            if up {
                s.last_error = None;
            }
        });
    }

    pub fn set_error(&self, error: &str) {
        self.update(|s| {
            s.up = false;
            s.last_error = Some(error.to_owned());
        });
    }
}

impl QueueHealth for ShardStatus {
    fn set_queue_failed(&self, error: &str) {
        self.update(|s| {
            s.queue_failed = true;
            s.last_error = Some(error.to_owned());
        });
    }
}

/// One peer link's handle on its entry in [`Health`].
pub struct PeerStatus {
    health: Arc<Health>,
    node: String,
}

impl PeerStatus {
    fn update(&self, f: impl FnOnce(&mut PeerState)) {
        if let Some(mut s) = self.health.peers.get_mut(&self.node) {
            f(&mut s);
        }
    }
    pub fn set_up(&self, rtt_ms: f64) {
        self.update(|s| {
            s.up = true;
            s.last_rtt_ms = Some(rtt_ms);
            s.last_error = None;
        });
    }
    pub fn set_error(&self, error: &str) {
        self.update(|s| {
            s.up = false;
            s.last_error = Some(error.to_owned());
        });
    }
}

impl QueueHealth for PeerStatus {
    fn set_queue_failed(&self, error: &str) {
        self.update(|s| {
            s.queue_failed = true;
            s.last_error = Some(error.to_owned());
        });
    }
}
