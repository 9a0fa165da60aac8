//! A shard writer's upkeep of its storage: closed days' index rebuilds,
//! retention checks and the storage gauges, with their metrics.

use chrono::Utc;

use super::{db_message, WriteCtx, COMPACTION_BUDGET};
use crate::config::RetentionConfig;
use crate::sinks::postgres::schema;

impl WriteCtx {
    /// Rebuilds the indexes of closed days (never at start-up: it can take
    /// minutes, and writes need not wait for it).
    pub(super) async fn compact(&self) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let mut compacted = Vec::new();
        let result = schema::compact_closed_days(
            &client,
            Utc::now().date_naive(),
            COMPACTION_BUDGET,
            &mut compacted,
        )
        .await;
        for c in &compacted {
            self.metrics
                .index_compactions
                .with_label_values(&[&self.label])
                .inc();
            self.metrics
                .index_compaction_bytes
                .with_label_values(&[&self.label])
                .inc_by((c.before - c.after).max(0) as u64);
        }
        result.map_err(|e| format!("compacting a closed day's index failed: {}", db_message(&e)))
    }

    /// Applies `[retention]` to the shard, counting what it dropped and what
    /// failed; a failed check is tried again at the next.
    pub(super) async fn retain(&self, retention: &RetentionConfig) {
        use crate::sinks::postgres::retention;
        let (m, shard) = (&self.metrics, self.label.as_str());
        m.storage_limit
            .with_label_values(&[shard])
            .set(i64::try_from(retention.max_mib << 20).unwrap_or(i64::MAX));
        let mut done = retention::Outcome::default();
        let result = match self.pool.get().await {
            Ok(mut client) => {
                retention::apply(&mut client, Utc::now().date_naive(), retention, &mut done)
                    .await
                    .map_err(|e| {
                        let lock =
                            e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
                        (if lock { "lock_timeout" } else { "error" }, db_message(&e))
                    })
            }
            Err(e) => Err(("error", e.to_string())),
        };
        if !done.dropped.is_empty() || done.default_rows > 0 {
            self.known.forget_all();
        }
        for d in &done.dropped {
            m.retention_days
                .with_label_values(&[shard, d.why.label()])
                .inc();
            m.retention_bytes
                .with_label_values(&[shard])
                .inc_by(d.bytes.max(0) as u64);
            m.retention_rows
                .with_label_values(&[shard, "logs"])
                .inc_by(d.rows.max(0) as u64);
        }
        for (table, rows) in [
            ("logs_default", done.default_rows),
            ("rejected", done.rejected_rows),
        ] {
            m.retention_rows
                .with_label_values(&[shard, table])
                .inc_by(rows);
        }
        if let Err((reason, e)) = result {
            m.retention_failures
                .with_label_values(&[shard, reason])
                .inc();
            tracing::warn!(shard = self.shard, reason, error = %e, "retention check failed; it is tried again at the next");
        }
        if !done.dropped.is_empty() {
            self.measure().await;
        }
    }

    /// Sets the `chute_storage_*` gauges from the shard's catalog; a failure is
    /// logged and leaves them as they were.
    pub(super) async fn measure(&self) {
        let measured = match self.pool.get().await {
            Ok(client) => crate::sinks::postgres::storage::measure(&**client)
                .await
                .map_err(|e| db_message(&e)),
            Err(e) => Err(e.to_string()),
        };
        let s = match measured {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(shard = self.shard, error = %e, "measuring storage failed");
                return;
            }
        };
        let m = &self.metrics;
        for (table, bytes) in &s.tables {
            m.storage_bytes
                .with_label_values(&[&self.label, table])
                .set(*bytes);
        }
        m.storage_partitions
            .with_label_values(&[&self.label])
            .set(s.days().len() as i64);
        m.storage_oldest
            .with_label_values(&[&self.label])
            .set(s.oldest.map_or(0, |t| t.timestamp()));
    }
}
