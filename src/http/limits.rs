//! Per-tenant rate limits at the node that receives the records (`[limits]`).
//!
//! Each tenant has a bucket of records and one of bytes per second, each holding
//! one second's worth. A request that would take more than is left is refused
//! whole with 429 and `Retry-After` (agents retry whole requests safely); one
//! larger than a whole second's worth can never pass and is a 413. Limits are per
//! node: a tenant sending to three nodes may send three times the limit.
//!
//! Buckets are made as tenants show up, for at most [`MAX_TENANTS`] of them; any
//! more share one. The metric's `tenant` label is a configured tenant's name or
//! `other`, so it stays bounded whatever names senders use.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::config::LimitsConfig;
use crate::metrics::Metrics;

/// Tenants with buckets of their own; past this many, the rest share one.
pub const MAX_TENANTS: usize = 10_000;

struct Buckets {
    records: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
}

fn bucket(per_s: u32) -> Option<DefaultDirectRateLimiter> {
    NonZeroU32::new(per_s).map(|n| RateLimiter::direct(Quota::per_second(n)))
}

/// The node's rate limits.
pub struct Limits {
    config: LimitsConfig,
    buckets: DashMap<String, Arc<Buckets>>,
    shared: Arc<Buckets>,
    clock: DefaultClock,
    metrics: Arc<Metrics>,
}

impl Limits {
    pub fn new(config: LimitsConfig, metrics: Arc<Metrics>) -> Limits {
        let shared = Arc::new(Buckets {
            records: bucket(config.records_per_s),
            bytes: bucket(config.bytes_per_s),
        });
        Limits {
            config,
            buckets: DashMap::new(),
            shared,
            clock: DefaultClock::default(),
            metrics,
        }
    }

    fn buckets(&self, tenant: &str) -> Arc<Buckets> {
        if let Some(b) = self.buckets.get(tenant) {
            return b.clone();
        }
        let configured = self.config.tenants.iter().any(|t| t.tenant == tenant);
        if !configured && self.buckets.len() >= MAX_TENANTS {
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

    /// Takes `records` and `bytes` from `tenant`'s buckets.
    ///
    /// # Errors
    /// 429 with `Retry-After` when they are not there yet, 413 when they never
    /// will be; counted in `chute_rate_limited_total`.
    pub fn admit(&self, tenant: &str, records: usize, bytes: usize) -> Result<(), ApiError> {
        let b = self.buckets(tenant);
        for (limiter, n, limit) in [(&b.records, records, "records"), (&b.bytes, bytes, "bytes")] {
            let (Some(limiter), Some(n)) =
                (limiter, NonZeroU32::new(n.min(u32::MAX as usize) as u32))
            else {
                continue;
            };
            let refused = match limiter.check_n(n) {
                Ok(Ok(())) => continue,
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    ApiError {
                        retry_after: Some(wait.max(Duration::from_secs(1))),
                        ..ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate_limited",
                            format!("tenant {tenant} is over its {limit} per second; retry later"),
                        )
                    }
                }
                Err(_) => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "rate_limited",
                    format!(
                        "the request holds more {limit} than tenant {tenant} may send in a second; split it"
                    ),
                ),
            };
            let label = if self.config.tenants.iter().any(|t| t.tenant == tenant) {
                tenant
            } else {
                "other"
            };
            self.metrics
                .rate_limited
                .with_label_values(&[label, limit])
                .inc();
            return Err(refused);
        }
        Ok(())
    }
}
