//! The cluster as this node sees it: who its peers are, which node owns each shard,
//! how a peer proves it belongs ([`ClusterView::admit`]), how forwarded batches are
//! stored ([`receiver`]), and the report behind `GET /api/v1/cluster` and
//! `chute cluster` ([`report`]).
//!
//! Batches a peer refused for good wait in [`crate::deadletter`].
//!
//! The wire form of forwarded batches is in [`crate::batch::wire`], shared with the
//! peer links that send them; the HTTP handlers are in `crate::http::internal`.

pub mod receiver;
pub mod report;

use std::collections::HashMap;

use actix::Recipient;
use subtle::ConstantTimeEq;

use crate::actors::Deliver;
use crate::batch::wire::{MAX_REQUEST_BYTES, NODE_HEADER};
use crate::config::{Config, Secret, ShardKey};

/// The cluster as this node knows it: who may talk to it, and where each shard is.
pub struct ClusterView {
    pub node: String,
    /// The peer tokens this node accepts (any of them).
    pub tokens: Vec<Secret>,
    pub fingerprint: String,
    pub shard_key: ShardKey,
    /// Every member (id, URL); empty for a single node.
    pub nodes: Vec<(String, String)>,
    /// Every shard (id, owner), in id order.
    pub shards: Vec<(u32, String)>,
    /// Spools of the shards this node writes.
    pub local: HashMap<u32, Recipient<Deliver>>,
    /// Largest batches request, received and decoded ([`MAX_REQUEST_BYTES`] or more).
    pub max_request_bytes: usize,
}

impl ClusterView {
    /// The view of `config`, with the spools of the local shards.
    pub fn new(config: &Config, local: HashMap<u32, Recipient<Deliver>>) -> ClusterView {
        let mut shards: Vec<(u32, String)> = config
            .shards
            .iter()
            .map(|s| (s.id, config.owner_of(s).to_owned()))
            .collect();
        if shards.is_empty() {
            shards.push((0, config.node.id.clone()));
        }
        shards.sort();
        ClusterView {
            node: config.node.id.clone(),
            tokens: config.cluster.peer_token.clone(),
            fingerprint: config.layout_fingerprint(),
            shard_key: config.cluster.shard_key,
            nodes: config
                .nodes
                .iter()
                .map(|n| (n.id.clone(), n.url.clone()))
                .collect(),
            shards,
            local,
            // What any sender can make, and at least what earlier versions took.
            max_request_bytes: config
                .http
                .max_body_bytes
                .max(config.cluster.batch_bytes)
                .saturating_mul(4)
                .max(MAX_REQUEST_BYTES),
        }
    }

    /// The sending node, once the request proves it belongs to the cluster: the peer
    /// token (compared in constant time), a sender that is another member, and this
    /// node's layout fingerprint.
    ///
    /// # Errors
    /// Which of the three was missing or wrong.
    pub fn admit<'h>(
        &self,
        token: Option<&str>,
        sender: Option<&'h str>,
        layout: Option<&str>,
    ) -> Result<&'h str, Refusal> {
        let presented = token.unwrap_or("");
        // Every token compared, each in constant time.
        let valid = self.tokens.iter().fold(false, |any, t| {
            any | bool::from(t.expose().as_bytes().ct_eq(presented.as_bytes()))
        });
        if !valid {
            return Err(Refusal::Unauthorized);
        }
        let sender = sender.unwrap_or("");
        if sender == self.node || !self.nodes.iter().any(|(id, _)| id == sender) {
            return Err(Refusal::UnknownNode);
        }
        let layout = layout.unwrap_or("");
        if layout != self.fingerprint {
            return Err(Refusal::LayoutMismatch {
                theirs: layout.to_owned(),
                ours: self.fingerprint.clone(),
            });
        }
        Ok(sender)
    }
}

/// Why a request from a peer was refused before its body was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing or wrong peer token")]
    Unauthorized,
    #[error("{NODE_HEADER} must name another member of the cluster")]
    UnknownNode,
    #[error("cluster layout {theirs:?} differs from this node's {ours}; give every node the same [[nodes]], [[shards]] and shard_key")]
    LayoutMismatch { theirs: String, ours: String },
}

impl Refusal {
    /// Bounded label for `chute_internal_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::UnknownNode => "unknown_node",
            Refusal::LayoutMismatch { .. } => "layout_mismatch",
        }
    }
}
