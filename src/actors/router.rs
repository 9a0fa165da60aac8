//! Shard-router: maps each record to its shard and hands each shard its part.
//!
//! The router owns the shard layout: the shards in id order, each with its
//! destination. A destination is any actor that handles [`Deliver`]: the spool of a
//! shard this node writes, or the spool of the peer link to the node that owns the
//! shard, so the router never needs to know where a shard lives.
//!
//! The shard key (`[cluster] shard_key`) is hashed with XXH3-64 and the hash mapped
//! to a shard with jump consistent hashing (Lamping & Veach, 2014): every node
//! computes the same shard for the same record, and adding a shard moves only about
//! 1/N of the keys, all of them to the new shard. docs/sharding.md explains the
//! choice and shows the figures.

use actix::prelude::*;
use futures_util::future::join_all;

use super::{deliver, Deliver, DeliverError, Redeliver, Route, RouteParts, Rows};
use crate::config::ShardKey;
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
    /// Destinations in shard id order; the hash picks an index into this list.
    destinations: Vec<Destination>,
    key: ShardKey,
}

impl Router {
    /// A router over `destinations`, which must not be empty; they are put in shard
    /// id order, the order every node of a cluster agrees on.
    pub fn new(mut destinations: Vec<Destination>, key: ShardKey) -> Router {
        assert!(
            !destinations.is_empty(),
            "a router needs at least one shard"
        );
        destinations.sort_by_key(|d| d.shard);
        Router { destinations, key }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Routing is cheap; a deep mailbox lets many HTTP workers hand over at once.
        ctx.set_mailbox_capacity(1024);
    }
}

/// What the router maps records over: the number of shards and the shard key.
/// Senders that encode their own batches (the syslog listeners) split with it.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub shards: usize,
    pub key: ShardKey,
}

impl Layout {
    /// The records grouped by shard index, in order of first appearance; no record
    /// is copied.
    pub fn split(&self, records: Vec<Record>) -> Vec<(usize, Vec<Record>)> {
        if self.shards == 1 {
            return vec![(0, records)];
        }
        let mut parts: Vec<Vec<Record>> = (0..self.shards).map(|_| Vec::new()).collect();
        for r in records {
            parts[shard_index(&r, self.shards, self.key)].push(r);
        }
        parts
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .collect()
    }
}

/// Index of the shard, among `n` in id order, that a record maps to.
pub fn shard_index(record: &Record, n: usize, key: ShardKey) -> usize {
    if n == 1 {
        return 0;
    }
    jump_hash(key_hash(record, key), n)
}

/// XXH3-64 of the record's shard key. Fields are separated by a 0 byte (which no
/// field can contain: ingest replaces NUL), so ("ab", "c") and ("a", "bc") differ.
pub fn key_hash(record: &Record, key: ShardKey) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(record.tenant.as_bytes());
    h.update(&[0]);
    h.update(record.host.as_deref().unwrap_or("").as_bytes());
    h.update(&[0]);
    h.update(record.app.as_deref().unwrap_or("").as_bytes());
    if key == ShardKey::Record {
        h.update(&[0]);
        let nanos = record
            .ts
            .timestamp_nanos_opt()
            .unwrap_or_else(|| record.ts.timestamp_micros().saturating_mul(1000));
        h.update(&nanos.to_be_bytes());
        h.update(&[0]);
        h.update(record.message.as_bytes());
    }
    h.digest()
}

/// Jump consistent hash: maps `key` to a bucket in `0..n`.
pub fn jump_hash(mut key: u64, n: usize) -> usize {
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
        let layout = self.layout();
        let sends: Vec<_> = layout
            .split(msg.records)
            .into_iter()
            .map(|(i, records)| {
                let origin = msg
                    .origin
                    .as_ref()
                    .map(|o| format!("{o}/{}", self.destinations[i].shard));
                self.send(i, Rows::Records(records), origin)
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

impl Router {
    pub fn layout(&self) -> Layout {
        Layout {
            shards: self.destinations.len(),
            key: self.key,
        }
    }

    /// Delivers `rows` to the destination of shard index `i`; the future answers
    /// once they are durable there.
    fn send(
        &self,
        i: usize,
        rows: Rows,
        origin: Option<String>,
    ) -> impl std::future::Future<Output = Result<(), DeliverError>> + 'static {
        let d = &self.destinations[i];
        deliver(&d.recipient, d.shard, rows, origin)
    }
}

impl Handler<RouteParts> for Router {
    type Result = ResponseFuture<Vec<Result<(), DeliverError>>>;

    /// Delivers each part to its shard's destination; answers each part's outcome,
    /// in order, once all are known.
    fn handle(&mut self, msg: RouteParts, _ctx: &mut Self::Context) -> Self::Result {
        let sends: Vec<_> = msg
            .parts
            .into_iter()
            .map(|(i, rows)| {
                let send = (i < self.destinations.len()).then(|| self.send(i, rows, None));
                async move {
                    match send {
                        Some(send) => send.await,
                        None => Err(DeliverError::Unavailable {
                            destination: format!("shard index {i}"),
                            why: "no such shard".into(),
                        }),
                    }
                }
            })
            .collect();
        Box::pin(join_all(sends))
    }
}

impl Handler<Redeliver> for Router {
    type Result = ResponseFuture<Result<(), DeliverError>>;

    /// Delivers the batch to whichever destination holds its shard now.
    fn handle(&mut self, msg: Redeliver, _ctx: &mut Self::Context) -> Self::Result {
        let Some(i) = self.destinations.iter().position(|d| d.shard == msg.shard) else {
            let err = DeliverError::Unavailable {
                destination: format!("shard {}", msg.shard),
                why: "no such shard in this layout".into(),
            };
            return Box::pin(async move { Err(err) });
        };
        Box::pin(self.send(i, Rows::Encoded(msg.rows), Some(msg.origin)))
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

    /// A record of stream (`tenant`, `host`, `app`) at `ts_ms` milliseconds after
    /// 2024-01-01T00:00:00Z.
    fn record(tenant: &str, host: &str, app: &str, ts_ms: i64, message: String) -> Record {
        let ts = chrono::DateTime::from_timestamp_millis(1_704_067_200_000 + ts_ms)
            .expect("a valid timestamp");
        Record {
            ts,
            received_at: ts,
            tenant: tenant.into(),
            host: Some(host.into()),
            app: Some(app.into()),
            procid: None,
            msgid: None,
            severity: Some(6),
            facility: Some(1),
            message,
            fields: serde_json::Map::new(),
            sd: None,
        }
    }

    /// Counts per shard and the largest deviation from the mean, as a fraction.
    fn spread(counts: &[usize]) -> f64 {
        let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (c as f64 - mean).abs() / mean)
            .fold(0.0, f64::max)
    }

    #[test]
    fn adding_a_shard_moves_about_one_nth_of_the_streams_all_to_the_new_shard() {
        const APPS: [&str; 5] = ["nginx", "api", "worker", "cron", "sshd"];
        let streams: Vec<Record> = (0..10_000)
            .map(|i| {
                let host = format!("host-{i}");
                record("default", &host, APPS[i % APPS.len()], 0, "m".into())
            })
            .collect();
        for (from, to, range) in [(4, 5, 0.15..0.25), (8, 9, 0.08..0.14)] {
            let mut moved = 0;
            for r in &streams {
                let before = shard_index(r, from, ShardKey::Stream);
                let after = shard_index(r, to, ShardKey::Stream);
                assert!(before < from && after < to);
                if before != after {
                    assert_eq!(after, to - 1, "a key moved between old shards");
                    moved += 1;
                }
            }
            let fraction = moved as f64 / streams.len() as f64;
            println!(
                "shards {from} -> {to}: {moved} of {} streams moved ({:.2}%, ideal 1/{to} = {:.2}%), all to the new shard",
                streams.len(),
                fraction * 100.0,
                100.0 / to as f64
            );
            assert!(
                range.contains(&fraction),
                "{from} -> {to}: moved {fraction}"
            );
        }
    }

    #[test]
    fn stream_key_keeps_streams_together_and_balances_by_stream_count() {
        let mut counts = [0usize; 4];
        for s in 0..1_000 {
            let host = format!("h{s}");
            let first = shard_index(
                &record("default", &host, "app", 0, "x".into()),
                4,
                ShardKey::Stream,
            );
            for i in 0..100 {
                let r = record("default", &host, "app", i, format!("message {i}"));
                let shard = shard_index(&r, 4, ShardKey::Stream);
                assert_eq!(shard, first, "a stream's records must stay on one shard");
                counts[shard] += 1;
            }
        }
        let dev = spread(&counts);
        println!(
            "shard_key = stream, 1000 streams x 100 records over 4 shards: {counts:?}, largest deviation from the mean {:.1}%",
            dev * 100.0
        );
        assert_eq!(counts.iter().sum::<usize>(), 100_000);
        assert!(dev <= 0.15, "rows per shard {counts:?}");
    }

    #[test]
    fn record_key_spreads_records_evenly() {
        let mut counts = [0usize; 4];
        for s in 0..1_000 {
            let host = format!("h{s}");
            for i in 0..100 {
                let r = record(
                    "default",
                    &host,
                    "app",
                    s * 100 + i,
                    format!("request {i} done"),
                );
                counts[shard_index(&r, 4, ShardKey::Record)] += 1;
            }
        }
        let dev = spread(&counts);
        println!(
            "shard_key = record, 100000 records (1000 streams x 100) over 4 shards: {counts:?}, largest deviation from the mean {:.2}%",
            dev * 100.0
        );
        assert_eq!(counts.iter().sum::<usize>(), 100_000);
        assert!(dev <= 0.02, "rows per shard {counts:?}");
    }

    #[test]
    fn a_split_keeps_every_record_in_its_shard_and_order() {
        let records: Vec<Record> = (0..500)
            .map(|i| record("t", &format!("h{}", i % 37), "app", i, format!("m{i}")))
            .collect();
        let layout = Layout {
            shards: 3,
            key: ShardKey::Stream,
        };
        let parts = layout.split(records.clone());
        let mut seen = 0;
        for (index, part) in &parts {
            assert!(!part.is_empty());
            for r in part {
                assert_eq!(shard_index(r, 3, ShardKey::Stream), *index);
            }
            let order: Vec<&str> = part.iter().map(|r| r.message.as_str()).collect();
            let expected: Vec<&str> = records
                .iter()
                .filter(|r| shard_index(r, 3, ShardKey::Stream) == *index)
                .map(|r| r.message.as_str())
                .collect();
            assert_eq!(order, expected);
            seen += part.len();
        }
        assert_eq!(seen, records.len());
        let one = Layout {
            shards: 1,
            key: ShardKey::Record,
        }
        .split(records);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].1.len(), 500);
    }

    #[test]
    fn the_shard_of_a_record_is_pinned() {
        // Part of the on-disk contract: every cluster's stored records were placed by
        // these functions. A change to the hash, the key bytes or jump_hash moves the
        // records of every existing cluster to other shards, so these values must
        // never change.
        let r = record(
            "default",
            "web-01",
            "nginx",
            0,
            "GET /index.html 200".into(),
        );
        assert_eq!(key_hash(&r, ShardKey::Stream), 0xc04c_36fa_30ff_97e9);
        assert_eq!(key_hash(&r, ShardKey::Record), 0x579e_f3c2_d6e5_3b03);
        assert_eq!(shard_index(&r, 1, ShardKey::Stream), 0);
        assert_eq!(shard_index(&r, 4, ShardKey::Stream), 2);
        assert_eq!(shard_index(&r, 16, ShardKey::Stream), 5);
        assert_eq!(shard_index(&r, 4, ShardKey::Record), 0);
        assert_eq!(shard_index(&r, 16, ShardKey::Record), 0);
    }
}
