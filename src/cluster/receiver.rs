//! Storing the batches a peer forwarded: each goes straight to the spool of one of
//! this node's own shards. A node never forwards a record it received from a peer,
//! and a request naming a shard it does not own stores nothing.

use futures_util::future::join_all;
use serde::Serialize;

use super::ClusterView;
use crate::actors::{deliver, DeliverError, Rows};
use crate::batch::wire::Framed;

/// What one request stored: the answer to the sending peer link.
#[derive(Debug, Serialize)]
pub struct Stored {
    pub batches: usize,
    pub records: usize,
}

/// Why forwarded batches were not (all) stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request names a shard this node does not write; nothing was stored.
    #[error("shard {shard} is not written by node {node}")]
    NotOwned { shard: u32, node: String },
    /// A spool refused; batches before it may be durable already, and the sender's
    /// retry is recognised by batch id.
    #[error(transparent)]
    Deliver(#[from] DeliverError),
}

/// Makes every batch durable in its shard's queue; answers once all are.
///
/// # Errors
/// [`StoreError::NotOwned`] before anything is stored, or the first spool's refusal.
pub async fn store(view: &ClusterView, batches: Vec<Framed>) -> Result<Stored, StoreError> {
    // Check every shard before storing anything, so a misdirected request stores nothing.
    let spools = batches
        .iter()
        .map(|b| {
            view.local
                .get(&b.shard)
                .ok_or_else(|| StoreError::NotOwned {
                    shard: b.shard,
                    node: view.node.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let records: usize = batches.iter().map(|b| b.rows.len()).sum();
    let count = batches.len();
    let sends: Vec<_> = batches
        .into_iter()
        .zip(spools)
        .map(|(b, spool)| deliver(spool, b.shard, Rows::Encoded(b.rows), Some(b.id)))
        .collect();
    if let Some(Err(e)) = join_all(sends).await.into_iter().find(Result::is_err) {
        return Err(e.into());
    }
    Ok(Stored {
        batches: count,
        records,
    })
}
