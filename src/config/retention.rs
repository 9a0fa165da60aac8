//! `[retention]`: how long records stay, and how much a shard may hold.

use serde::Deserialize;

/// `[retention]`: records leave a whole day at a time, by dropping the day's
/// partition of `chute.logs` (never by a `DELETE` over it), on each shard by the
/// node that writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a record is kept: a day's partition goes once the day is this many
    /// days behind today (UTC). 0 keeps records for ever.
    #[serde(default)]
    pub max_age_days: u32,
    /// MiB a shard's `chute.logs` may hold (indexes included); past it, the oldest
    /// days go first. 0 is no limit.
    #[serde(default)]
    pub max_mib: u64,
    /// The newest days (today included) that are always kept, whatever the age or
    /// size limits say.
    #[serde(default = "default_min_days")]
    pub min_days: u32,
    /// Days the rows PostgreSQL refused stay in `chute.rejected`. 0: for ever.
    #[serde(default = "default_rejected_max_age_days")]
    pub rejected_max_age_days: u32,
    /// Days damaged queue bytes stay in `queues/*/quarantine/`; 0: for ever.
    #[serde(default = "default_quarantine_max_age_days")]
    pub quarantine_max_age_days: u32,
    /// MiB all quarantine directories together may hold (oldest go first); 0: no
    /// limit.
    #[serde(default = "default_quarantine_max_mib")]
    pub quarantine_max_mib: u64,
    /// Days dead letters stay in `deadletter/`. They hold acknowledged records
    /// stored nowhere else, so 0 (the default) keeps them until replayed or dropped.
    #[serde(default)]
    pub deadletter_max_age_days: u32,
    /// How often each shard's writer checks the limits (a check reads only the
    /// catalog; a day's partition is dropped when one is due).
    #[serde(default = "default_check_interval_s")]
    pub check_interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_days: 0,
            max_mib: 0,
            check_interval_s: default_check_interval_s(),
            min_days: default_min_days(),
            rejected_max_age_days: default_rejected_max_age_days(),
            quarantine_max_age_days: default_quarantine_max_age_days(),
            quarantine_max_mib: default_quarantine_max_mib(),
            deadletter_max_age_days: 0,
        }
    }
}

impl RetentionConfig {
    /// Whether anything is ever removed from `chute.logs`.
    pub fn limits_logs(&self) -> bool {
        self.max_age_days > 0 || self.max_mib > 0
    }

    /// The checks `chute validate` runs, reported through `err`.
    pub fn check(&self, err: &mut impl FnMut(String, &str)) {
        if self.check_interval_s == 0 {
            err("retention.check_interval_s".into(), "must be at least 1");
        }
        if self.min_days == 0 {
            err("retention.min_days".into(), "must be at least 1 (today)");
        }
        if self.max_age_days > 0 && self.max_age_days < self.min_days {
            err(
                "retention.max_age_days".into(),
                "must be at least retention.min_days (or 0: for ever)",
            );
        }
    }
}

fn default_quarantine_max_age_days() -> u32 {
    30
}
fn default_quarantine_max_mib() -> u64 {
    1024
}
fn default_check_interval_s() -> u64 {
    60
}
fn default_min_days() -> u32 {
    2
}
fn default_rejected_max_age_days() -> u32 {
    30
}
