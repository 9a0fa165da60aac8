//! Retention on one shard: whole days leave by dropping their partition of
//! `chute.logs`, never by a `DELETE` over it, so nothing is left to vacuum.
//!
//! A day goes when it is `max_age_days` behind today (all its records are older
//! than that), or, oldest first, while the partitions hold more than `max_mib`;
//! the newest `min_days` days are always kept. With the day go its entries in the
//! tables kept beside the rows (`chute.line_blooms`, `chute.minute_counts`,
//! `chute.label_values`), in the same transaction: the count cache trusts that
//! blocks and rows match.
//!
//! Dropping a partition needs an ACCESS EXCLUSIVE lock on `chute.logs`, which
//! waits for running writes and queries, and holds up new ones while it waits.
//! So each drop waits at most [`LOCK_TIMEOUT`]; past it the drop gives up,
//! counted, and is tried again at the next check. Writes are acknowledged from
//! the queue, so a held-up write delays nothing a sender sees.
//!
//! Rows of the default partition (times outside the partitioned window) and of
//! `chute.rejected` are few; past their age they are deleted.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use tokio_postgres::{Client, Transaction};

use std::collections::{BTreeMap, BTreeSet};

use super::schema::partition_name;
use super::storage::{self, Partition, Storage};
use crate::config::retention::longest;
use crate::config::RetentionConfig;

pub use super::schema::LOCK_TIMEOUT;

/// Key of the advisory lock one shard's retention runs under (ASCII "retain"), so
/// two nodes that both think they own a shard never drop at once.
const RETENTION_LOCK: i64 = 0x72_65_74_61_69_6e;

/// Why a day was dropped (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Age,
    /// A retention class of a day, past the age of its tenants.
    TenantAge,
    Size,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::Age => "age",
            Why::TenantAge => "tenant_age",
            Why::Size => "size",
        }
    }
}

/// The tenants a leaf of a sub-partitioned day holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    /// A retention class: these tenants.
    Only(Vec<String>),
    /// The day's default leaf: every tenant but the classes'.
    AllBut(Vec<String>),
}

impl Tenants {
    /// The tenant list and whether it is of those tenants (`true`) or of all
    /// others: the parameters of [`OF_CLASS`].
    fn filter(&self) -> (&Vec<String>, bool) {
        match self {
            Tenants::Only(t) => (t, true),
            Tenants::AllBut(t) => (t, false),
        }
    }
}

/// Rows of the tenants of [`Tenants::filter`], bound as `$3` and `$4`.
const OF_CLASS: &str = "((tenant = ANY($3::text[])) = $4::bool)";

/// One thing a check removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A whole day's partition, dropped.
    Day(NaiveDate),
    /// One retention class of a day, emptied by `TRUNCATE` of its leaf (the leaf
    /// stays for late records of its tenants).
    Class {
        day: NaiveDate,
        leaf: String,
        tenants: Tenants,
    },
}

impl Step {
    pub fn day(&self) -> NaiveDate {
        match self {
            Step::Day(day) | Step::Class { day, .. } => *day,
        }
    }
}

/// A day, or a class of one, that was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub day: NaiveDate,
    pub why: Why,
    pub bytes: i64,
    /// Rows, as chute wrote them (`chute.line_blooms`, or for a class
    /// `chute.minute_counts`).
    pub rows: i64,
}

/// What one check did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub dropped: Vec<Dropped>,
    /// Rows deleted from `chute.logs_default` and `chute.rejected`.
    pub default_rows: u64,
    pub rejected_rows: u64,
}

/// The tenants with an age of their own that wrote on each day
/// (`chute.label_values`), by day.
pub type Present = BTreeMap<NaiveDate, BTreeSet<String>>;

/// What to remove, oldest first, from what the shard holds. A leaf's age is the
/// longest of its tenants' ages; a day's default leaf (or a day without classes)
/// is kept as long as the longest age of the tenants in `present` it holds, so a
/// tenant given a longer age keeps the records it wrote before.
pub fn plan(
    storage: &Storage,
    present: &Present,
    today: NaiveDate,
    config: &RetentionConfig,
) -> Vec<(Step, Why)> {
    let keep_from = today - Duration::days(i64::from(config.min_days.max(1)) - 1);
    let expired = |d: NaiveDate, age: u32| age > 0 && d < today - Duration::days(i64::from(age));
    let limit = config.max_mib.saturating_mul(1 << 20);
    let mut total: i64 = storage.partitions.iter().map(|p| p.bytes).sum();
    let mut out = Vec::new();
    let mut left = Vec::new();
    for (day, leaves) in storage.days().into_iter().filter(|(d, _)| *d < keep_from) {
        let classes: Vec<String> = leaves
            .iter()
            .flat_map(|p| p.tenants.iter().flatten().cloned())
            .collect();
        let age = |p: &Partition| match &p.tenants {
            Some(tenants) => tenants
                .iter()
                .map(|t| config.age_of(t))
                .reduce(longest)
                .unwrap_or(config.max_age_days),
            None => present
                .get(&day)
                .into_iter()
                .flatten()
                .filter(|t| !classes.contains(t))
                .fold(config.max_age_days, |a, t| longest(a, config.age_of(t))),
        };
        let gone: Vec<bool> = leaves.iter().map(|p| expired(day, age(p))).collect();
        if gone.iter().all(|g| *g) {
            total -= leaves.iter().map(|p| p.bytes).sum::<i64>();
            out.push((Step::Day(day), Why::Age));
            continue;
        }
        let mut kept = 0;
        for (p, gone) in leaves.iter().zip(gone) {
            if !gone {
                kept += p.bytes;
                continue;
            }
            if p.heap == 0 {
                continue;
            }
            total -= p.bytes;
            let tenants = match &p.tenants {
                Some(t) => Tenants::Only(t.clone()),
                None => Tenants::AllBut(classes.clone()),
            };
            let leaf = p.name.clone();
            out.push((Step::Class { day, leaf, tenants }, Why::TenantAge));
        }
        left.push((day, kept));
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    for (day, bytes) in left {
        if limit == 0 || total <= limit {
            break;
        }
        total -= bytes;
        out.push((Step::Day(day), Why::Size));
    }
    out
}

/// Applies `config` to the shard `client` is connected to, as of `today` (UTC).
///
/// # Errors
/// Any error from PostgreSQL, a lock not had within [`LOCK_TIMEOUT`] included;
/// the days dropped before it stay dropped (each is its own transaction).
pub async fn apply(
    client: &mut Client,
    today: NaiveDate,
    config: &RetentionConfig,
    done: &mut Outcome,
) -> Result<(), tokio_postgres::Error> {
    if config.limits_logs() {
        let measured = storage::measure(&*client).await?;
        let present = present(&*client, config).await?;
        // Leaves emptied by this check: a day dropped after them counts only the rest.
        let mut emptied: Vec<String> = Vec::new();
        for (step, why) in plan(&measured, &present, today, config) {
            let day = step.day();
            let bytes = measured
                .partitions
                .iter()
                .filter(|p| match &step {
                    Step::Day(d) => p.day == Some(*d) && !emptied.contains(&p.name),
                    Step::Class { leaf, .. } => &p.name == leaf,
                })
                .map(|p| p.bytes)
                .sum();
            if let Step::Class { leaf, .. } = &step {
                emptied.push(leaf.clone());
            }
            let tx = client.transaction().await?;
            if !locked(&tx).await? {
                return Ok(());
            }
            let rows = match &step {
                Step::Day(day) => drop_day(&tx, *day).await?,
                Step::Class { day, leaf, tenants } => empty_class(&tx, *day, leaf, tenants).await?,
            };
            tx.commit().await?;
            tracing::info!(day = %day, reason = why.label(), bytes, rows, step = ?step, "retention removed records");
            done.dropped.push(Dropped {
                day,
                why,
                bytes,
                rows,
            });
        }
    }
    if config.max_age_days > 0 || config.tenants.values().any(|&d| d > 0) {
        let tx = client.transaction().await?;
        if locked(&tx).await? {
            done.default_rows += delete_default_expired(&tx, today, config).await?;
            tx.commit().await?;
        }
    }
    if config.rejected_max_age_days > 0 {
        done.rejected_rows += client
            .execute(
                "DELETE FROM chute.rejected
                 WHERE rejected_at < now() - make_interval(days => $1)",
                &[&(config.rejected_max_age_days as i32)],
            )
            .await?;
    }
    Ok(())
}

/// The tenants with an age of their own that wrote on each day, from the per-day
/// label index (its primary key starts with the tenant).
async fn present(
    client: &Client,
    config: &RetentionConfig,
) -> Result<Present, tokio_postgres::Error> {
    let mut out = Present::new();
    if config.tenants.is_empty() {
        return Ok(out);
    }
    let tenants: Vec<&String> = config.tenants.keys().collect();
    for r in client
        .query(
            "SELECT day, tenant FROM chute.label_values
             WHERE tenant = ANY($1) AND label = 'tenant'",
            &[&tenants],
        )
        .await?
    {
        out.entry(r.get(0)).or_default().insert(r.get(1));
    }
    Ok(out)
}

/// Takes the retention lock and sets the lock timeout for the transaction; false
/// when another node holds the lock.
async fn locked(tx: &Transaction<'_>) -> Result<bool, tokio_postgres::Error> {
    super::schema::bound_lock_waits(tx).await?;
    Ok(tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK])
        .await?
        .get(0))
}

/// Drops `day`'s partition and its entries beside the rows; returns its rows.
async fn drop_day(tx: &Transaction<'_>, day: NaiveDate) -> Result<i64, tokio_postgres::Error> {
    let (from, to) = day_bounds(day);
    // The minute counts, not the blocks: a class emptied before took its counts
    // with it, and its rows were counted then.
    let rows: i64 = tx
        .query_one(
            "SELECT coalesce(sum(lines), 0)::bigint FROM chute.minute_counts
             WHERE minute > $1 AND minute <= $2",
            &[&from, &to],
        )
        .await?
        .get(0);
    // The name is made from a date, never from input.
    tx.batch_execute(&format!("DROP TABLE chute.{}", partition_name(day)))
        .await?;
    super::schema::forget_leaves(tx, day).await?;
    forget(tx, from, to).await?;
    Ok(rows)
}

/// Empties the retention class `leaf` of `day` and deletes its tenants' entries
/// beside the rows; returns its rows (as `chute.minute_counts` counted them).
///
/// The day's blocks (`chute.line_blooms`) hold every tenant's rows together and
/// stay; an empty block is added to each hour of the day instead, so counts kept
/// for those hours (`query::cache`) are seen to be stale.
async fn empty_class(
    tx: &Transaction<'_>,
    day: NaiveDate,
    leaf: &str,
    tenants: &Tenants,
) -> Result<i64, tokio_postgres::Error> {
    let (from, to) = day_bounds(day);
    let (listed, only) = tenants.filter();
    let rows: i64 = tx
        .query_one(
            &format!(
                "SELECT coalesce(sum(lines), 0)::bigint FROM chute.minute_counts
                 WHERE minute > $1 AND minute <= $2 AND {OF_CLASS}"
            ),
            &[&from, &to, listed, &only],
        )
        .await?
        .get(0);
    // `leaf` is a name from the catalog that `storage::day_of` accepted:
    // `logs_` and digits only.
    debug_assert!(
        leaf.starts_with("logs_") && leaf[5..].bytes().all(|b| b.is_ascii_digit() || b == b'_')
    );
    tx.batch_execute(&format!("TRUNCATE chute.{leaf}")).await?;
    forget_tenants(tx, day, tenants).await?;
    mark_changed(tx, from, to).await?;
    Ok(rows)
}

/// Deletes the rows of the default partition past their tenant's age, and what
/// is kept beside them. Their days have no partition of their own (a day's rows
/// move into its partition when it is made), so the minute counts and label
/// entries of those days and tenants are theirs alone; the day's blocks go once
/// no row of the day is left, else an empty block per hour marks the change.
async fn delete_default_expired(
    tx: &Transaction<'_>,
    today: NaiveDate,
    config: &RetentionConfig,
) -> Result<u64, tokio_postgres::Error> {
    let (names, ages): (Vec<&str>, Vec<i32>) = config
        .tenants
        .iter()
        .map(|(t, d)| (t.as_str(), i32::try_from(*d).unwrap_or(i32::MAX)))
        .unzip();
    let default_age = i32::try_from(config.max_age_days).unwrap_or(i32::MAX);
    let gone = tx
        .query(
            "WITH ages (tenant, days) AS (SELECT * FROM unnest($1::text[], $2::int[])),
             gone AS (
                 DELETE FROM chute.logs_default d
                 USING (SELECT t.tenant, coalesce(a.days, $3) AS days
                        FROM (SELECT DISTINCT tenant FROM chute.logs_default) t
                        LEFT JOIN ages a USING (tenant)) k
                 WHERE d.tenant = k.tenant AND k.days > 0
                   AND d.ts < (($4::date - k.days)::timestamp AT TIME ZONE 'UTC')
                 RETURNING (d.ts AT TIME ZONE 'UTC')::date AS day, d.tenant
             )
             SELECT day, tenant, count(*) FROM gone GROUP BY 1, 2 ORDER BY 1, 2",
            &[&names, &ages, &default_age, &today],
        )
        .await?;
    let mut rows = 0u64;
    let mut days: Vec<NaiveDate> = Vec::new();
    for r in &gone {
        let (day, tenant, n): (NaiveDate, String, i64) = (r.get(0), r.get(1), r.get(2));
        rows += n.max(0) as u64;
        forget_tenants(tx, day, &Tenants::Only(vec![tenant])).await?;
        if !days.contains(&day) {
            days.push(day);
        }
    }
    for day in days {
        let (from, to) = day_bounds(day);
        let left: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT FROM chute.logs_default WHERE ts >= $1 AND ts < $2)",
                &[&from, &to],
            )
            .await?
            .get(0);
        if left {
            mark_changed(tx, from, to).await?;
        } else {
            tx.execute(
                "DELETE FROM chute.line_blooms WHERE first_ts >= $1 AND first_ts < $2",
                &[&from, &to],
            )
            .await?;
        }
    }
    Ok(rows)
}

/// Deletes the minute counts and label index entries of `tenants` on `day`.
async fn forget_tenants(
    tx: &Transaction<'_>,
    day: NaiveDate,
    tenants: &Tenants,
) -> Result<(), tokio_postgres::Error> {
    let (from, to) = day_bounds(day);
    let (listed, only) = tenants.filter();
    tx.execute(
        &format!(
            "DELETE FROM chute.minute_counts WHERE minute > $1 AND minute <= $2 AND {OF_CLASS}"
        ),
        &[&from, &to, listed, &only],
    )
    .await?;
    tx.execute(
        "DELETE FROM chute.label_values
         WHERE day = $1 AND ((tenant = ANY($2::text[])) = $3::bool)",
        &[&day, listed, &only],
    )
    .await?;
    Ok(())
}

/// The start of `day` and of the day after (UTC).
fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = day.and_time(NaiveTime::MIN).and_utc();
    (from, from + Duration::days(1))
}

/// Adds an empty block to each hour of `[from, to)`, so counts kept for those
/// hours (`query::cache`, stamped by blocks and lines) are seen to be stale.
async fn mark_changed(
    tx: &Transaction<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO chute.line_blooms (first_ts, last_ts, lines, bloom)
         SELECT h + interval '1 microsecond', h + interval '1 microsecond', 0,
                decode('0000000000000000', 'hex')
         FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour',
                              interval '1 hour') h",
        &[&from, &to],
    )
    .await?;
    Ok(())
}

/// Deletes the blocks, minute counts and label index entries of the day
/// `[from, to)`.
async fn forget(
    tx: &Transaction<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "DELETE FROM chute.line_blooms WHERE first_ts >= $1 AND first_ts < $2",
        &[&from, &to],
    )
    .await?;
    // A minute's counts are of (minute - 60 s, minute].
    tx.execute(
        "DELETE FROM chute.minute_counts WHERE minute > $1 AND minute <= $2",
        &[&from, &to],
    )
    .await?;
    tx.execute(
        "DELETE FROM chute.label_values
         WHERE day >= ($1 AT TIME ZONE 'UTC')::date AND day < ($2 AT TIME ZONE 'UTC')::date",
        &[&from, &to],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap() - Duration::days(n)
    }

    /// A leaf of day `ago`: class `n` of it, or with no `n` the day unclassed.
    fn leaf(ago: i64, n: Option<usize>, tenants: Option<&[&str]>, mib: i64) -> Partition {
        let name = partition_name(day(ago));
        Partition {
            name: n.map_or(name.clone(), |n| format!("{name}_{n}")),
            day: Some(day(ago)),
            tenants: tenants.map(|t| t.iter().map(|t| (*t).to_owned()).collect()),
            bytes: mib << 20,
            heap: mib << 20,
            rows: 0,
        }
    }

    /// `partitions`, plus an empty default partition.
    fn storage_of(mut partitions: Vec<Partition>) -> Storage {
        partitions.push(Partition {
            name: "logs_default".into(),
            day: None,
            tenants: None,
            bytes: 0,
            heap: 0,
            rows: 0,
        });
        Storage {
            tables: Vec::new(),
            partitions,
            oldest: None,
        }
    }

    /// Days `ago` (each `mib` MiB), without classes.
    fn storage(days: &[(i64, i64)]) -> Storage {
        let mut days = days.to_vec();
        days.sort_by_key(|(ago, _)| -ago);
        storage_of(
            days.iter()
                .map(|(ago, mib)| leaf(*ago, None, None, *mib))
                .collect(),
        )
    }

    fn config(max_age_days: u32, max_mib: u64, min_days: u32) -> RetentionConfig {
        RetentionConfig {
            max_age_days,
            max_mib,
            min_days,
            ..RetentionConfig::default()
        }
    }

    fn days(steps: Vec<(Step, Why)>) -> Vec<(NaiveDate, Why)> {
        steps
            .into_iter()
            .map(|(s, why)| match s {
                Step::Day(d) => (d, why),
                other => panic!("{other:?} is not a whole day"),
            })
            .collect()
    }

    #[test]
    fn age_drops_the_days_wholly_older_than_the_age_never_today_or_the_future() {
        let s = storage(&[(-2, 1), (-1, 1), (0, 1), (1, 1), (5, 1), (6, 1), (9, 1)]);
        let none = Present::new();
        assert_eq!(
            days(plan(&s, &none, day(0), &config(5, 0, 2))),
            [(day(9), Why::Age), (day(6), Why::Age)]
        );
        assert_eq!(plan(&s, &none, day(0), &config(0, 0, 2)), []);
    }

    #[test]
    fn size_drops_the_oldest_first_until_within_and_keeps_min_days() {
        let s = storage(&[(0, 10), (1, 10), (2, 10), (3, 10)]);
        let none = Present::new();
        let plan = |c| days(plan(&s, &none, day(0), &c));
        // 40 MiB against 25: the two oldest go.
        assert_eq!(
            plan(config(0, 25, 2)),
            [(day(3), Why::Size), (day(2), Why::Size)]
        );
        // Against 1 MiB: still never today or yesterday.
        assert_eq!(
            plan(config(0, 1, 2)),
            [(day(3), Why::Size), (day(2), Why::Size)]
        );
        // Age first, then size for what is left.
        assert_eq!(
            plan(config(3, 15, 1)),
            [
                (day(3), Why::Size),
                (day(2), Why::Size),
                (day(1), Why::Size)
            ]
        );
        assert_eq!(plan(config(2, 35, 1)), [(day(3), Why::Age)]);
    }

    /// 30 days by default, `debug` 3, `audit` 365.
    fn with_tenants() -> RetentionConfig {
        RetentionConfig {
            max_age_days: 30,
            tenants: [("debug".to_owned(), 3), ("audit".to_owned(), 365)].into(),
            ..RetentionConfig::default()
        }
    }

    /// A day with a default leaf, a `debug` class and an `audit` class.
    fn classed(ago: i64) -> Vec<Partition> {
        vec![
            leaf(ago, Some(0), None, 1),
            leaf(ago, Some(1), Some(&["debug"]), 1),
            leaf(ago, Some(2), Some(&["audit"]), 1),
        ]
    }

    #[test]
    fn each_class_goes_at_its_tenants_age_and_the_day_when_all_have() {
        let mut leaves = classed(400);
        leaves.extend(classed(31));
        leaves.extend(classed(4));
        leaves.extend(classed(3));
        let s = storage_of(leaves);
        let steps = plan(&s, &Present::new(), day(0), &with_tenants());
        let class = |ago: i64, n: usize, tenants: Tenants| {
            (
                Step::Class {
                    day: day(ago),
                    leaf: format!("{}_{n}", partition_name(day(ago))),
                    tenants,
                },
                Why::TenantAge,
            )
        };
        let all_but = || Tenants::AllBut(vec!["debug".into(), "audit".into()]);
        assert_eq!(
            steps,
            [
                (Step::Day(day(400)), Why::Age),
                class(31, 0, all_but()),
                class(31, 1, Tenants::Only(vec!["debug".into()])),
                class(4, 1, Tenants::Only(vec!["debug".into()])),
            ]
        );
        // A class already emptied is not emptied again.
        let mut s = s;
        for p in &mut s.partitions {
            if p.day == Some(day(4)) {
                p.heap = 0;
            }
        }
        let again = plan(&s, &Present::new(), day(0), &with_tenants());
        assert_eq!(again.len(), 3, "{again:?}");
    }

    #[test]
    fn records_written_before_a_tenant_had_a_longer_age_are_kept_that_long() {
        // Days without classes, on which `audit` wrote, and one on which it did not.
        let s = storage(&[(40, 1), (41, 1)]);
        let present: Present = [(day(40), ["audit".to_owned()].into())].into();
        assert_eq!(
            days(plan(&s, &present, day(0), &with_tenants())),
            [(day(41), Why::Age)]
        );
        // In a day's default leaf alike; a tenant with a class of its own that
        // day is not in the default leaf.
        let s = storage_of(classed(40));
        let present: Present = [(day(40), ["audit".to_owned()].into())].into();
        let steps = plan(&s, &present, day(0), &with_tenants());
        assert!(
            steps.iter().any(|(s, _)| matches!(
                s,
                Step::Class {
                    tenants: Tenants::AllBut(_),
                    ..
                }
            )),
            "{steps:?}"
        );
    }

    #[test]
    fn size_drops_whole_days_after_the_classes_past_their_age() {
        let mut leaves = classed(5);
        leaves.extend(classed(2));
        let mut config = with_tenants();
        config.max_mib = 4;
        let steps = plan(&storage_of(leaves), &Present::new(), day(0), &config);
        // 6 MiB; the debug class of day 5 goes for its age (5 MiB left), then day
        // 5's other 2 MiB for size.
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(steps[1], (Step::Day(day(5)), Why::Size));
    }
}
