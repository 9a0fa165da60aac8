//! Shard health as the writers see it, read by `/readyz`.

use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

/// Health of every local shard, keyed by shard id. Writers update their own entry;
/// HTTP workers read all entries without a global lock.
#[derive(Default)]
pub struct Health {
    shards: DashMap<u32, ShardState>,
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
    /// The destination's queue can no longer make records durable.
    pub fn set_queue_failed(&self, error: &str) {
        self.update(|s| {
            s.queue_failed = true;
            s.last_error = Some(error.to_owned());
        });
    }

    pub fn set_error(&self, error: &str) {
        self.update(|s| {
            s.up = false;
            s.last_error = Some(error.to_owned());
        });
    }
}
