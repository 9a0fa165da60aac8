//! `[query]`: the read path's limits.

use serde::Deserialize;

/// `[query]`: how long a query may run, how many lines it may return, and the
/// connections it may use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// A query running longer is cancelled, in PostgreSQL too (`statement_timeout`),
    /// and answered 503.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most lines one log query returns (`limit` above it is refused with 400).
    #[serde(default = "default_max_limit")]
    pub max_limit: usize,
    /// Connections per local shard for queries, apart from the writer's, so reads
    /// never starve writes.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// MiB of counts of past hours kept between metric queries that count rows
    /// (a line filter, a host); 0 keeps none.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
}

fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_limit() -> usize {
    5_000
}
fn default_pool_size() -> usize {
    4
}
fn default_cache_mib() -> u64 {
    64
}
