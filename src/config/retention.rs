//! `[retention]`: how long records stay, and how much a shard may hold.

use std::collections::BTreeMap;

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
    /// Days per tenant, in place of `max_age_days` (0: for ever). Tenants of one
    /// age share a retention class: from the next day prepared, each day is
    /// sub-partitioned by class, so a class's records leave by `TRUNCATE` of its
    /// own partition, never by a `DELETE`.
    #[serde(default)]
    pub tenants: BTreeMap<String, u32>,
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
            tenants: BTreeMap::new(),
        }
    }
}

impl RetentionConfig {
    /// Whether anything is ever removed from `chute.logs`.
    pub fn limits_logs(&self) -> bool {
        self.max_age_days > 0 || self.max_mib > 0 || self.tenants.values().any(|&d| d > 0)
    }

    /// Days `tenant`'s records are kept; 0: for ever.
    pub fn age_of(&self, tenant: &str) -> u32 {
        self.tenants
            .get(tenant)
            .copied()
            .unwrap_or(self.max_age_days)
    }

    /// The longest age any tenant's records have; 0: some are kept for ever.
    pub fn longest_age(&self) -> u32 {
        self.tenants
            .values()
            .fold(self.max_age_days, |a, &d| longest(a, d))
    }

    /// The retention classes new days are sub-partitioned by: the tenants of each
    /// age that differs from `max_age_days`, shortest age first (0, for ever,
    /// last). Empty: days are not sub-partitioned.
    pub fn classes(&self) -> Vec<Vec<String>> {
        // Keyed (for ever?, age): shortest first, for ever last.
        let mut by_age: BTreeMap<(bool, u32), Vec<String>> = BTreeMap::new();
        for (tenant, &age) in &self.tenants {
            if age != self.max_age_days {
                by_age
                    .entry((age == 0, age))
                    .or_default()
                    .push(tenant.clone());
            }
        }
        by_age.into_values().collect()
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
        for (tenant, &age) in &self.tenants {
            let key = format!("retention.tenants.{tenant}");
            if !super::tokens::valid_name(tenant) {
                err(key, "is not a tenant name (1 to 64 of A-Z a-z 0-9 . _ -)");
            } else if age > 0 && age < self.min_days {
                err(key, "must be at least retention.min_days (or 0: for ever)");
            }
        }
    }
}

/// The longer of two ages in days, 0 (for ever) the longest.
pub fn longest(a: u32, b: u32) -> u32 {
    if a == 0 || b == 0 {
        0
    } else {
        a.max(b)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(default: u32, tenants: &[(&str, u32)]) -> RetentionConfig {
        RetentionConfig {
            max_age_days: default,
            tenants: tenants.iter().map(|(t, d)| ((*t).to_owned(), *d)).collect(),
            ..RetentionConfig::default()
        }
    }

    #[test]
    fn tenants_of_one_age_share_a_class_and_the_default_age_needs_none() {
        let c = config(
            30,
            &[
                ("audit", 0),
                ("debug", 3),
                ("sec", 365),
                ("trace", 3),
                ("web", 30),
            ],
        );
        assert_eq!(
            c.classes(),
            [vec!["debug", "trace"], vec!["sec"], vec!["audit"]]
        );
        assert_eq!(
            (c.age_of("audit"), c.age_of("web"), c.age_of("x")),
            (0, 30, 30)
        );
        assert!(config(30, &[("web", 30)]).classes().is_empty());
        assert!(config(0, &[("debug", 3)]).limits_logs());
        assert!(!config(0, &[("audit", 0)]).limits_logs());
    }

    #[test]
    fn a_tenant_age_is_checked_like_the_default() {
        let mut errors = Vec::new();
        config(30, &[("debug", 1), ("bad name", 5), ("ok", 0)])
            .check(&mut |k, m: &str| errors.push(format!("{k}: {m}")));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("retention.tenants.bad name"));
        assert!(errors[1].starts_with("retention.tenants.debug"));
    }

    #[test]
    fn for_ever_is_the_longest_age() {
        assert_eq!(longest(3, 30), 30);
        assert_eq!(longest(0, 30), 0);
        assert_eq!(longest(30, 0), 0);
    }
}
