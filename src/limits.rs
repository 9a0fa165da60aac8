//! Per-tenant rate limits at the node that receives the records (`[limits]`),
//! shared by every source.
//!
//! Each tenant has a bucket of records and one of bytes per second, each holding
//! one second's worth. How a source keeps within them depends on what it can do:
//!
//! - HTTP refuses a request that would take more than is left whole, with 429 and
//!   `Retry-After` (agents retry whole requests safely), and one larger than a
//!   whole second's worth, which can never pass, with 413 ([`Limits::admit`]).
//! - A syslog stream takes what it read and, when the buckets are short, stops
//!   reading until they refill ([`Limits::charge`], then [`Debt::settle`]): the
//!   sender's TCP window fills and it slows down, nothing is lost.
//! - A syslog datagram cannot wait: one over the limit is dropped and counted.
//!
//! Limits are per node: a tenant sending to three nodes may send three times the
//! limit. Buckets are made as tenants show up, for at most [`MAX_TENANTS`] of them;
//! any more share one. The metric's `tenant` label is a configured tenant's name or
//! `other`, so it stays bounded whatever names senders use.

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::metrics::Metrics;

/// Tenants with buckets of their own; past this many, the rest share one.
pub const MAX_TENANTS: usize = 10_000;

/// What a source did about a tenant over its limit (the `action` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A whole request refused (HTTP 429 or 413).
    Refused,
    /// A stream's reading paused until the buckets refilled.
    Paused,
    /// A datagram dropped.
    Dropped,
}

impl Action {
    /// One of `metrics::reasons::RATE_LIMITED_ACTIONS`.
    pub fn label(self) -> &'static str {
        match self {
            Action::Refused => "refused",
            Action::Paused => "paused",
            Action::Dropped => "dropped",
        }
    }
}

/// Why [`Limits::admit`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `limit`'s bucket holds too little now; it will in `wait`.
    Later { limit: &'static str, wait: Duration },
    /// More than `limit`'s bucket ever holds (a second's worth).
    Never { limit: &'static str },
}

impl Refusal {
    /// The limit that refused.
    pub fn limit(&self) -> &'static str {
        match self {
            Refusal::Later { limit, .. } | Refusal::Never { limit } => limit,
        }
    }
}

struct Bucket {
    limiter: DefaultDirectRateLimiter,
    /// What it holds when full: one second's worth.
    capacity: NonZeroU32,
}

fn bucket(per_s: u32) -> Option<Bucket> {
    NonZeroU32::new(per_s).map(|n| Bucket {
        limiter: RateLimiter::direct(Quota::per_second(n)),
        capacity: n,
    })
}

struct Buckets {
    records: Option<Bucket>,
    bytes: Option<Bucket>,
}

impl Buckets {
    fn each(&self) -> [(&Option<Bucket>, &'static str); 2] {
        // The `limit` label: one of `metrics::reasons::RATE_LIMITS`.
        [(&self.records, "records"), (&self.bytes, "bytes")]
    }
}

fn count(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

/// One `[limits]` and the buckets made for it.
struct Table {
    config: LimitsConfig,
    /// Whether any tenant is limited at all.
    any: bool,
    buckets: DashMap<String, Arc<Buckets>>,
    shared: Arc<Buckets>,
}

impl Table {
    fn new(config: LimitsConfig) -> Table {
        let limits = |r: u32, b: u32| r > 0 || b > 0;
        let any = limits(config.records_per_s, config.bytes_per_s)
            || config
                .tenants
                .iter()
                .any(|t| limits(t.records_per_s, t.bytes_per_s));
        let shared = Arc::new(Buckets {
            records: bucket(config.records_per_s),
            bytes: bucket(config.bytes_per_s),
        });
        Table {
            config,
            any,
            buckets: DashMap::new(),
            shared,
        }
    }

    fn buckets(&self, tenant: &str) -> Arc<Buckets> {
        if let Some(b) = self.buckets.get(tenant) {
            return b.clone();
        }
        if !self.configured(tenant) && self.buckets.len() >= MAX_TENANTS {
            return self.shared.clone();
        }
        let (records, bytes) = self.config.of(tenant);
        self.buckets
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                Arc::new(Buckets {
                    records: bucket(records),
                    bytes: bucket(bytes),
                })
            })
            .clone()
    }

    fn configured(&self, tenant: &str) -> bool {
        self.config.tenants.iter().any(|t| t.tenant == tenant)
    }
}

/// The node's rate limits.
pub struct Limits {
    /// Replaced whole by SIGHUP ([`Limits::set`]).
    table: RwLock<Arc<Table>>,
    clock: DefaultClock,
    metrics: Arc<Metrics>,
}

impl Limits {
    pub fn new(config: LimitsConfig, metrics: Arc<Metrics>) -> Limits {
        Limits {
            table: RwLock::new(Arc::new(Table::new(config))),
            clock: DefaultClock::default(),
            metrics,
        }
    }

    /// Takes new limits (SIGHUP). Every tenant starts again with full buckets.
    pub fn set(&self, config: LimitsConfig) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Table::new(config));
    }

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether any tenant is limited at all (none: sources skip the work).
    pub fn any(&self) -> bool {
        self.table().any
    }

    /// Counts one limiting in `chute_rate_limited_total`.
    pub fn count(&self, tenant: &str, limit: &str, action: Action) {
        self.count_in(&self.table(), tenant, limit, action);
    }

    fn count_in(&self, table: &Table, tenant: &str, limit: &str, action: Action) {
        let tenant = if table.configured(tenant) {
            tenant
        } else {
            "other"
        };
        self.metrics
            .rate_limited
            .with_label_values(&[tenant, limit, action.label()])
            .inc();
    }

    /// Takes `records` and `bytes` from `tenant`'s buckets, or nothing of the
    /// bucket that holds too little (one taken before it stays taken).
    ///
    /// # Errors
    /// [`Refusal`] when a bucket holds too little, counted as `action`.
    pub fn admit(
        &self,
        tenant: &str,
        records: usize,
        bytes: usize,
        action: Action,
    ) -> Result<(), Refusal> {
        let table = self.table();
        let (b, wanted) = (table.buckets(tenant), [records, bytes]);
        for (i, (bucket, limit)) in b.each().into_iter().enumerate() {
            let (Some(bucket), Some(n)) = (bucket, NonZeroU32::new(count(wanted[i]))) else {
                continue;
            };
            let refusal = match bucket.limiter.check_n(n) {
                Ok(Ok(())) => continue,
                Ok(Err(not_until)) => Refusal::Later {
                    limit,
                    wait: not_until.wait_time_from(self.clock.now()),
                },
                Err(_) => Refusal::Never { limit },
            };
            self.count_in(&table, tenant, limit, action);
            return Err(refusal);
        }
        Ok(())
    }

    /// Charges `records` and `bytes` to `tenant`: what its buckets hold is taken
    /// now, the rest is owed. A stream that owes stops reading until
    /// [`Debt::settle`] has paid.
    pub fn charge(&self, tenant: &str, records: usize, bytes: usize) -> Debt {
        let mut debt = Debt {
            buckets: self.table().buckets(tenant),
            owed: [count(records), count(bytes)],
            clock: self.clock.clone(),
            short: None,
        };
        debt.pay();
        debt
    }
}

/// What a stream still owes its tenant's buckets.
pub struct Debt {
    buckets: Arc<Buckets>,
    /// Records, bytes.
    owed: [u32; 2],
    clock: DefaultClock,
    /// The limit that fell short last, and when it will have refilled enough.
    short: Option<(&'static str, Duration)>,
}

impl Debt {
    /// Takes what the buckets hold now, a second's worth at most at a time.
    fn pay(&mut self) {
        self.short = None;
        let buckets = self.buckets.clone();
        for (i, (bucket, limit)) in buckets.each().into_iter().enumerate() {
            let Some(bucket) = bucket else {
                self.owed[i] = 0;
                continue;
            };
            while let Some(n) = NonZeroU32::new(self.owed[i].min(bucket.capacity.get())) {
                match bucket.limiter.check_n(n) {
                    Ok(Ok(())) => self.owed[i] -= n.get(),
                    Ok(Err(not_until)) => {
                        self.short = Some((limit, not_until.wait_time_from(self.clock.now())));
                        return;
                    }
                    // Never: `n` is within the capacity.
                    Err(_) => self.owed[i] = 0,
                }
            }
        }
    }

    /// The limit that is short, if anything is still owed.
    pub fn short_of(&self) -> Option<&'static str> {
        self.short.map(|(limit, _)| limit)
    }

    /// Waits until everything owed is paid.
    pub async fn settle(mut self) {
        while let Some((_, wait)) = self.short {
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
            self.pay();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantLimits;

    fn limits(records: u32, bytes: u32) -> Limits {
        Limits::new(
            LimitsConfig {
                records_per_s: 0,
                bytes_per_s: 0,
                tenants: vec![TenantLimits {
                    tenant: "t".into(),
                    records_per_s: records,
                    bytes_per_s: bytes,
                }],
            },
            Metrics::new(),
        )
    }

    #[test]
    fn admit_takes_a_seconds_worth_then_refuses_and_never_fits_more() {
        let l = limits(10, 0);
        assert!(l.any());
        assert_eq!(l.admit("t", 10, 999, Action::Refused), Ok(()));
        assert!(matches!(
            l.admit("t", 1, 0, Action::Refused),
            Err(Refusal::Later {
                limit: "records",
                ..
            })
        ));
        assert_eq!(
            l.admit("t", 11, 0, Action::Refused),
            Err(Refusal::Never { limit: "records" })
        );
        // Another tenant has no limit.
        assert_eq!(l.admit("u", 1_000_000, 0, Action::Refused), Ok(()));
        assert!(!limits(0, 0).any());
    }

    #[test]
    fn labels_are_the_known_ones() {
        use crate::metrics::reasons::{RATE_LIMITED_ACTIONS, RATE_LIMITS};
        for a in [Action::Refused, Action::Paused, Action::Dropped] {
            assert!(RATE_LIMITED_ACTIONS.contains(&a.label()));
        }
        let l = limits(0, 0);
        for (_, limit) in l.table().shared.each() {
            assert!(RATE_LIMITS.contains(&limit));
        }
    }

    #[test]
    fn new_limits_apply_at_once() {
        let l = limits(1, 0);
        assert_eq!(l.admit("t", 1, 0, Action::Refused), Ok(()));
        assert!(l.admit("t", 1, 0, Action::Refused).is_err());
        l.set(LimitsConfig::default());
        assert!(!l.any());
        assert_eq!(l.admit("t", 1_000, 0, Action::Refused), Ok(()));
    }

    #[test]
    fn a_debt_larger_than_a_second_is_paid_in_seconds() {
        let l = limits(0, 1000);
        let debt = l.charge("t", 1, 2500);
        assert_eq!(debt.short_of(), Some("bytes"));
        assert_eq!(debt.owed, [0, 1500]);
        let started = std::time::Instant::now();
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(debt.settle());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(l.charge("t", 0, 0).short_of(), None);
    }
}
