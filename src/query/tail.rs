//! Live tail: committed records pushed to the tails that want them.
//!
//! Each shard's writer hands the [`Hub`] the records it has just committed (only
//! while someone tails: decoding them costs nothing otherwise). The hub runs every
//! subscription's [`Filter`] (its tenant, its stream matchers and its pipeline,
//! all in chute) and puts the entries that pass in the subscription's bounded
//! buffer. A subscriber that does not keep up loses entries, never memory: a full
//! buffer counts what it drops (`chute_tail_dropped_entries_total`) and keeps the
//! first [`MAX_DROPPED_SAMPLES`] of them (labels and time stamp) to tell the
//! client, as Loki's `dropped_entries`. Nobody polls PostgreSQL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chute_logql::{Expr, MatchOp};
use prometheus::IntCounter;
use tokio::sync::mpsc;

use super::labels::{facility_name, labels_of, level_name, Label};
use super::pipeline::{flatten_fields, Entry, Pipeline};
use super::QueryError;
use crate::record::Record;

/// Entries a subscription holds before it drops.
pub const BUFFER_ENTRIES: usize = 4096;

/// Bytes of entries (about) a subscription holds before it drops.
pub const BUFFER_BYTES: usize = 8 << 20;

/// About what an entry takes in memory and on the wire.
pub fn size_of(e: &Entry) -> usize {
    let map =
        |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
    64 + e.line.len() + map(&e.labels) + map(&e.metadata) + map(&e.parsed)
}

/// Dropped entries a subscription remembers, to name them to the client.
pub const MAX_DROPPED_SAMPLES: usize = 100;

/// A tail's query, evaluated on records as they are committed.
#[derive(Debug)]
pub struct Filter {
    /// One tenant, or several (`a|b`).
    tenants: Vec<String>,
    matchers: Vec<(Option<Label>, Test)>,
    pipeline: Pipeline,
}

#[derive(Debug)]
enum Test {
    Eq(String),
    Ne(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

impl Test {
    fn holds(&self, value: &str) -> bool {
        match self {
            Test::Eq(v) => value == v,
            Test::Ne(v) => value != v,
            Test::Re(re) => re.is_match(value),
            Test::NotRe(re) => !re.is_match(value),
        }
    }
}

impl Filter {
    /// The filter of log query `query` for `tenant`'s records.
    ///
    /// # Errors
    /// A query that does not parse, is a metric query, or has a regular expression
    /// or stage that does not compile; the message says where.
    pub fn new(query: &str, tenant: &str) -> Result<Filter, QueryError> {
        let Expr::Log(expr) = chute_logql::parse(query)? else {
            return Err(QueryError::Invalid(
                "a tail takes a log query, not a metric query".into(),
            ));
        };
        let mut matchers = Vec::new();
        for m in &expr.selector.matchers {
            let value = &m.value.value;
            let regex = || {
                super::regex::compile(value, true)
                    .map_err(|e| QueryError::at(query, m.value.span, e.to_string()))
            };
            let test = match m.op {
                MatchOp::Eq => Test::Eq(value.clone()),
                MatchOp::Ne => Test::Ne(value.clone()),
                MatchOp::Re => Test::Re(regex()?),
                MatchOp::NotRe => Test::NotRe(regex()?),
            };
            matchers.push((Label::parse(&m.name), test));
        }
        Ok(Filter {
            tenants: super::plan::tenants_of(tenant),
            matchers,
            pipeline: Pipeline::new(&expr.pipeline, query)?,
        })
    }

    /// The entry `record` makes, when the query selects it.
    pub fn apply(&self, record: &Record) -> Option<Entry> {
        if !self.tenants.contains(&record.tenant) {
            return None;
        }
        for (label, test) in &self.matchers {
            // As in PostgreSQL: a label a record lacks has the value "" (a level,
            // "unknown").
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            let value = match label {
                None => String::new(),
                Some(Label::Tenant) => record.tenant.clone(),
                Some(Label::Host) => text(&record.host),
                Some(Label::App) => text(&record.app),
                Some(Label::Procid) => text(&record.procid),
                Some(Label::Msgid) => text(&record.msgid),
                Some(Label::Level) => level_name(record.severity).to_owned(),
                Some(Label::Facility) => facility_name(record.facility).to_owned(),
            };
            if !test.holds(&value) {
                return None;
            }
        }
        self.pipeline.process(entry_of(record))
    }
}

/// A record as the read API shows it: the same entry a query returns for its row.
pub fn entry_of(r: &Record) -> Entry {
    Entry {
        ts: super::time::nanos(r.ts),
        labels: labels_of(
            Some(r.tenant.clone()),
            r.host.clone(),
            r.app.clone(),
            r.severity,
            r.facility,
            r.procid.clone(),
            r.msgid.clone(),
        ),
        metadata: flatten_fields(&r.fields),
        parsed: BTreeMap::new(),
        line: r.message.clone(),
    }
}

/// Entries a subscription dropped since the client was last told.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dropped {
    pub count: u64,
    /// The first [`MAX_DROPPED_SAMPLES`] of them: stream labels and time stamp.
    pub samples: Vec<(BTreeMap<String, String>, i64)>,
}

impl Dropped {
    /// Adds `other`'s, keeping at most [`MAX_DROPPED_SAMPLES`] samples.
    pub fn add(&mut self, other: Dropped) {
        self.count += other.count;
        let room = MAX_DROPPED_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }
}

struct Sub {
    id: u64,
    filter: Filter,
    tx: mpsc::Sender<Entry>,
    /// Bytes of the entries in the buffer.
    held: AtomicUsize,
    dropped: Mutex<Dropped>,
}

impl Sub {
    fn drop_entry(&self, entry: Entry, total: &IntCounter) {
        total.inc();
        let mut dropped = self.dropped.lock().expect("tail dropped lock");
        dropped.count += 1;
        if dropped.samples.len() < MAX_DROPPED_SAMPLES {
            dropped.samples.push((entry.labels, entry.ts));
        }
    }
}

/// Every tail of this node's shards.
pub struct Hub {
    subs: Mutex<Vec<Arc<Sub>>>,
    /// Set when the node shuts down: every tail ends.
    closed: tokio::sync::watch::Sender<bool>,
    watched: AtomicUsize,
    next_id: AtomicU64,
    dropped_total: IntCounter,
}

impl Hub {
    /// A hub counting what slow subscribers drop in `dropped_total`.
    pub fn new(dropped_total: IntCounter) -> Arc<Hub> {
        Arc::new(Hub {
            subs: Mutex::new(Vec::new()),
            closed: tokio::sync::watch::Sender::new(false),
            watched: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            dropped_total,
        })
    }

    /// Whether anyone tails (if not, there is nothing to publish).
    pub fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed) > 0
    }

    /// A subscription to the records `filter` selects, from now on.
    pub fn subscribe(self: &Arc<Hub>, filter: Filter) -> Subscription {
        let (tx, rx) = mpsc::channel(BUFFER_ENTRIES);
        let sub = Arc::new(Sub {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            filter,
            tx,
            held: AtomicUsize::new(0),
            dropped: Mutex::new(Dropped::default()),
        });
        let mut subs = self.subs.lock().expect("tail hub lock");
        subs.push(sub.clone());
        self.watched.store(subs.len(), Ordering::Relaxed);
        Subscription {
            hub: self.clone(),
            sub,
            rx,
        }
    }

    /// Hands committed records to every subscription whose filter selects them.
    pub fn publish<'r>(&self, records: impl IntoIterator<Item = &'r Record>) {
        let subs: Vec<Arc<Sub>> = self.subs.lock().expect("tail hub lock").clone();
        if subs.is_empty() {
            return;
        }
        for record in records {
            for sub in &subs {
                let Some(entry) = sub.filter.apply(record) else {
                    continue;
                };
                let size = size_of(&entry);
                if sub.held.load(Ordering::Relaxed) + size > BUFFER_BYTES {
                    sub.drop_entry(entry, &self.dropped_total);
                    continue;
                }
                match sub.tx.try_send(entry) {
                    Ok(()) => {
                        sub.held.fetch_add(size, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(entry)) => {
                        sub.drop_entry(entry, &self.dropped_total);
                    }
                    // The subscription is ending.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    /// Ends every tail (the node is shutting down).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once the hub is closed.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + use<> {
        let mut closed = self.closed.subscribe();
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    fn remove(&self, id: u64) {
        let mut subs = self.subs.lock().expect("tail hub lock");
        subs.retain(|s| s.id != id);
        self.watched.store(subs.len(), Ordering::Relaxed);
    }
}

/// One tail's entries; unsubscribes when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    sub: Arc<Sub>,
    rx: mpsc::Receiver<Entry>,
}

impl Subscription {
    /// Waits for entries and appends up to `limit` of them to `out`; 0 once the
    /// hub is gone.
    pub async fn recv_many(&mut self, out: &mut Vec<Entry>, limit: usize) -> usize {
        let from = out.len();
        let got = self.rx.recv_many(out, limit).await;
        let size: usize = out[from..].iter().map(size_of).sum();
        self.sub.held.fetch_sub(size, Ordering::Relaxed);
        got
    }

    /// What was dropped since the last call.
    pub fn take_dropped(&self) -> Dropped {
        std::mem::take(&mut *self.sub.dropped.lock().expect("tail dropped lock"))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.sub.id);
    }
}

/// What a node tailing a peer's shards gets, one JSON line at a time.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Entry>,
    /// Entries the peer dropped since its last chunk.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<(BTreeMap<String, String>, i64)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a tail hears from one of its sources.
#[derive(Debug)]
pub enum Event {
    Chunk(Chunk),
    /// A node's shards cannot be followed now (the tail retries).
    Lost {
        node: String,
        why: String,
    },
    /// A node's shards are followed again.
    Back {
        node: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, severity: Option<i16>, message: &str) -> Record {
        let ts = chrono::Utc::now();
        Record {
            ts,
            received_at: ts,
            tenant: "default".into(),
            host: Some(host.into()),
            app: Some("api".into()),
            procid: None,
            msgid: None,
            severity,
            facility: None,
            message: message.into(),
            fields: serde_json::Map::new(),
            sd: None,
        }
    }

    fn hub() -> Arc<Hub> {
        Hub::new(IntCounter::new("dropped", "dropped").unwrap())
    }

    #[test]
    fn a_filter_selects_as_a_query_would() {
        let f = Filter::new(
            r#"{host=~"web-.*", level!="debug", msgid=""} |= "GET""#,
            "default",
        )
        .unwrap();
        assert!(f.apply(&record("web-1", Some(3), "GET /")).is_some());
        assert!(
            f.apply(&record("web-1", None, "GET /")).is_some(),
            "level unknown"
        );
        assert!(f.apply(&record("db-1", Some(3), "GET /")).is_none());
        assert!(f.apply(&record("web-1", Some(7), "GET /")).is_none());
        assert!(f.apply(&record("web-1", Some(3), "POST /")).is_none());
        let other = Filter::new(r#"{host="web-1"}"#, "other").unwrap();
        assert!(
            other.apply(&record("web-1", Some(3), "x")).is_none(),
            "tenant"
        );
        assert!(Filter::new("count_over_time({a=\"b\"}[1m])", "t").is_err());
    }

    #[tokio::test]
    async fn a_full_buffer_drops_counts_and_names_and_memory_stays_bounded() {
        let hub = hub();
        let mut sub = hub.subscribe(Filter::new(r#"{app="api"}"#, "default").unwrap());
        assert!(hub.is_watched());
        let records: Vec<Record> = (0..BUFFER_ENTRIES + 250)
            .map(|i| record("h", Some(6), &format!("m{i}")))
            .collect();
        hub.publish(&records);
        let dropped = sub.take_dropped();
        assert_eq!(dropped.count, 250);
        assert_eq!(dropped.samples.len(), MAX_DROPPED_SAMPLES);
        assert_eq!(hub.dropped_total.get(), 250);
        let mut first = Vec::new();
        sub.recv_many(&mut first, 1).await;
        assert_eq!(first[0].line, "m0");
        assert_eq!(sub.take_dropped(), Dropped::default(), "told once");
        drop(sub);
        assert!(!hub.is_watched());
    }

    #[tokio::test]
    async fn big_entries_are_dropped_by_bytes_before_the_count_is_reached() {
        let hub = hub();
        let mut sub = hub.subscribe(Filter::new(r#"{app="api"}"#, "default").unwrap());
        let big = "x".repeat(1 << 20);
        let records: Vec<Record> = (0..20).map(|_| record("h", None, &big)).collect();
        hub.publish(&records);
        let dropped = sub.take_dropped().count;
        assert!((12..=13).contains(&dropped), "{dropped} of 20 dropped");
        let mut got = Vec::new();
        sub.recv_many(&mut got, 100).await;
        assert_eq!(got.len() as u64, 20 - dropped);
        assert_eq!(
            sub.sub.held.load(Ordering::Relaxed),
            0,
            "held bytes given back"
        );
    }
}
