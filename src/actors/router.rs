//! Shard-router: maps each record to its shard and hands each shard its part.
//!
//! The router owns the shard layout: an ordered list of destinations, one per shard.
//! A destination is any actor that handles [`Deliver`] (a local writer now, a peer
//! link for shards owned by other nodes later), so the router never needs to know
//! where a shard lives.
//!
//! Records of one stream (tenant, host, app) always go to the same shard: the stream
//! key is hashed with FNV-1a (stable across versions and platforms) and mapped to a
//! shard with jump consistent hashing (Lamping & Veach, 2014), which moves only ~1/N
//! of the streams when a shard is added.

use actix::prelude::*;
use futures_util::future::join_all;

use super::{Deliver, DeliverError, Route};
use crate::record::Record;

/// Where one shard's records go.
pub struct Destination {
    /// Shard id, for logs.
    pub shard: u32,
    /// The actor that makes the shard's records durable.
    pub recipient: Recipient<Deliver>,
}

/// Splits batches by shard and forwards each part to its destination.
pub struct Router {
    /// Destinations in shard-ring order; the hash picks an index into this list.
    destinations: Vec<Destination>,
}

impl Router {
    /// A router over `destinations`, which must not be empty.
    pub fn new(destinations: Vec<Destination>) -> Router {
        assert!(
            !destinations.is_empty(),
            "a router needs at least one shard"
        );
        Router { destinations }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Routing is cheap; a deep mailbox lets many HTTP workers hand over at once.
        ctx.set_mailbox_capacity(1024);
    }
}

/// Index of the shard, among `n`, that a record's stream maps to.
pub fn shard_index(record: &Record, n: usize) -> usize {
    let mut h = Fnv1a::new();
    h.write(record.tenant.as_bytes());
    h.write(&[0]);
    h.write(record.host.as_deref().unwrap_or("").as_bytes());
    h.write(&[0]);
    h.write(record.app.as_deref().unwrap_or("").as_bytes());
    jump_hash(h.0, n)
}

/// 64-bit FNV-1a: tiny, stable, and good enough to feed jump hashing.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Jump consistent hash: maps `key` to a bucket in `0..n`.
fn jump_hash(mut key: u64, n: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

impl Handler<Route> for Router {
    type Result = ResponseFuture<Result<(), DeliverError>>;

    /// Splits the batch by shard, delivers each part, and answers once all parts are
    /// durable (or with the first refusal).
    fn handle(&mut self, msg: Route, _ctx: &mut Self::Context) -> Self::Result {
        let n = self.destinations.len();
        let mut parts: Vec<Vec<Record>> = (0..n).map(|_| Vec::new()).collect();
        if n == 1 {
            parts[0] = msg.records;
        } else {
            for r in msg.records {
                parts[shard_index(&r, n)].push(r);
            }
        }
        let sends: Vec<_> = parts
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(i, records)| {
                let d = &self.destinations[i];
                let shard = d.shard;
                let req = d.recipient.send(Deliver {
                    records,
                    origin: None,
                });
                async move {
                    req.await.unwrap_or_else(|_| {
                        Err(DeliverError::Stopped {
                            destination: format!("shard {shard}"),
                        })
                    })
                }
            })
            .collect();
        Box::pin(async move {
            join_all(sends)
                .await
                .into_iter()
                .find(Result::is_err)
                .unwrap_or(Ok(()))
        })
    }
}

impl Handler<super::Ping> for Router {
    type Result = ();

    /// Answered as soon as the actor's thread gets to it.
    fn handle(&mut self, _: super::Ping, _: &mut Self::Context) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_moves_few_keys_when_a_shard_is_added() {
        let moved = (0..10_000u64)
            .filter(|k| {
                let k = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                jump_hash(k, 4) != jump_hash(k, 5)
            })
            .count();
        // About 1/5 of the keys move to the new shard; none move between old shards.
        assert!((1_500..2_500).contains(&moved), "moved {moved}");
        assert_eq!(jump_hash(42, 1), 0);
        assert_eq!(jump_hash(12345, 8), jump_hash(12345, 8));
    }
}
