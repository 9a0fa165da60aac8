//! `[cluster]` and `[[nodes]]`: how nodes share the shards, and the rules a cluster
//! configuration must follow.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, Secret};

/// `[[nodes]]`: one member of the cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The member's `[node] id`.
    pub id: String,
    /// Base URL of the member's HTTP listener (`http://10.0.0.2:7280`); peers send
    /// to `<url>/internal/v1/batches`.
    pub url: String,
}

/// What the shard-router hashes to pick a record's shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardKey {
    /// Tenant, host and app: a stream's records stay together in one shard.
    #[default]
    Stream,
    /// The record itself (tenant, host, app, timestamp, message): the most even spread.
    Record,
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShardKey::Stream => "stream",
            ShardKey::Record => "record",
        })
    }
}

/// `[cluster]`: how nodes share the shards.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `stream` (default) or `record`; every node must use the same.
    #[serde(default)]
    pub shard_key: ShardKey,
    /// Shared secret nodes present to each other (`Authorization: Bearer`); required
    /// with more than one node, at least 16 characters. Never printed or logged. A
    /// list during a rotation: the node accepts any of them and sends the first,
    /// and the next to a peer that refuses it.
    #[serde(default, deserialize_with = "one_or_many")]
    pub peer_token: Vec<Secret>,
    /// Most record bytes (uncompressed) one forwarded request carries, and the
    /// largest entry of a peer link's queue (larger batches are split when queued);
    /// 64 KiB to 64 MiB.
    #[serde(default = "default_peer_batch_bytes")]
    pub batch_bytes: usize,
    /// A forwarded request not answered in this long is retried.
    #[serde(default = "default_peer_timeout_ms")]
    pub request_timeout_ms: u64,
    /// First wait before retrying a failed forward; doubles on each failure.
    #[serde(default = "default_peer_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest wait between retries of a failed forward.
    #[serde(default = "default_peer_retry_max_ms")]
    pub retry_max_ms: u64,
    /// PEM CA certificates that signed the peers' HTTPS certificates; required when a
    /// node URL is `https://`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM certificate chain this node presents to peers (mutual TLS), with
    /// `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

impl Config {
    /// The cluster rules: unique node ids, this node among them, owners that exist,
    /// a token when there is more than one node.
    pub(super) fn check_cluster(&self, err: &mut impl FnMut(String, &str)) {
        let mut ids = std::collections::HashSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let name_ok = (1..=64).contains(&n.id.len())
                && n.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !name_ok {
                // It names a queue directory and a metric label.
                err(
                    format!("nodes[{i}].id"),
                    "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                );
            } else if !ids.insert(n.id.as_str()) {
                err(format!("nodes[{i}].id"), "duplicate node id");
            }
            let scheme_ok = n.url.starts_with("http://") || n.url.starts_with("https://");
            if !scheme_ok || n.url.parse::<awc::http::Uri>().is_err() {
                err(
                    format!("nodes[{i}].url"),
                    "must be an http:// or https:// URL",
                );
            }
        }
        if !self.nodes.is_empty() && !ids.contains(self.node.id.as_str()) {
            err(
                "node.id".into(),
                "this node is not among [[nodes]]; list every member, this node included",
            );
        }
        if self.nodes.len() > 1 {
            if self.shards.is_empty() {
                err(
                    "shards".into(),
                    "a cluster needs its [[shards]] listed, each with an owner",
                );
            }
            if self.cluster.peer_token.is_empty() {
                err(
                    "cluster.peer_token".into(),
                    "required when there is more than one node",
                );
            }
            if self
                .cluster
                .peer_token
                .iter()
                .any(|t| t.expose().len() < 16)
            {
                err(
                    "cluster.peer_token".into(),
                    "must be at least 16 characters",
                );
            }
        }
        for (i, shard) in self.shards.iter().enumerate() {
            match &shard.owner {
                Some(owner) if self.nodes.is_empty() && owner != &self.node.id => err(
                    format!("shards[{i}].owner"),
                    "names another node, but [[nodes]] is empty",
                ),
                Some(owner) if !self.nodes.is_empty() && !ids.contains(owner.as_str()) => err(
                    format!("shards[{i}].owner"),
                    "is not a node id in [[nodes]]",
                ),
                None if !self.nodes.is_empty() => err(
                    format!("shards[{i}].owner"),
                    "required when [[nodes]] is set",
                ),
                _ => {}
            }
        }
        if self.http.tls_cert_file.is_some() != self.http.tls_key_file.is_some() {
            err(
                "http.tls_cert_file".into(),
                "tls_cert_file and tls_key_file go together",
            );
        }
        if self.http.tls_client_ca_file.is_some() && self.http.tls_cert_file.is_none() {
            err(
                "http.tls_client_ca_file".into(),
                "needs tls_cert_file and tls_key_file (client certificates need TLS)",
            );
        }
        if self.cluster.tls_cert_file.is_some() != self.cluster.tls_key_file.is_some() {
            err(
                "cluster.tls_cert_file".into(),
                "tls_cert_file and tls_key_file go together",
            );
        }
        if self.cluster.tls_ca_file.is_none() {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.url.starts_with("https://") && n.id != self.node.id {
                    err(
                        format!("nodes[{i}].url"),
                        "an https:// peer needs cluster.tls_ca_file to verify it",
                    );
                }
            }
        }
        if self.cluster.batch_bytes < 64 * 1024
            || self.cluster.batch_bytes > crate::batch::wire::MAX_BATCH_BYTES
        {
            err(
                "cluster.batch_bytes".into(),
                "must be between 64 KiB and 64 MiB",
            );
        }
        if self.cluster.request_timeout_ms == 0 {
            err("cluster.request_timeout_ms".into(), "must be at least 1");
        }
        if self.cluster.retry_initial_ms == 0
            || self.cluster.retry_max_ms < self.cluster.retry_initial_ms
        {
            err(
                "cluster.retry_max_ms".into(),
                "retry_initial_ms must be at least 1 and retry_max_ms at least retry_initial_ms",
            );
        }
    }
}

fn default_peer_batch_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_peer_timeout_ms() -> u64 {
    30_000
}
fn default_peer_retry_initial_ms() -> u64 {
    100
}
fn default_peer_retry_max_ms() -> u64 {
    10_000
}

/// A string, or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Secret),
        Many(Vec<Secret>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}
