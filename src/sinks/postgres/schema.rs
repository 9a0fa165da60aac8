//! The schema on every shard: migrations and daily partitions.
//!
//! Migrations are numbered, idempotent, and applied at start-up under a
//! transaction-scoped advisory lock, so several chute nodes starting at once against
//! one database apply each migration exactly once.
//!
//! `chute.logs` is range-partitioned by day (UTC) on `ts`. Partitions are created
//! ahead of need by [`ensure_partitions`]; a default partition catches any timestamp
//! outside the prepared window, so no record is ever refused for its time. When a day
//! that already has rows in the default partition gets its own partition, those rows
//! move into it in the same transaction.
//!
//! When `[retention.tenants]` gives some tenants ages of their own, a new day is
//! itself partitioned by `LIST (tenant)`: a leaf per retention class (the tenants
//! of one age, listed in `chute.partition_tenants`) and a default leaf for every
//! other tenant, so each class leaves by a `TRUNCATE` of its leaf. Days prepared
//! before the classes changed keep their leaves, unless they are still empty.

use chrono::{Duration, NaiveDate};
use tokio_postgres::{Client, GenericClient};

/// Key of the advisory lock that serialises schema changes (any 64-bit constant;
/// this one spells "chute" in ASCII).
const SCHEMA_LOCK: i64 = 0x63_68_75_74_65;

/// The migrations, in order. Each runs once, recorded in `chute.schema_migrations`.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE chute.logs (
        ts          timestamptz NOT NULL,
        received_at timestamptz NOT NULL,
        tenant      text        NOT NULL,
        host        text,
        app         text,
        procid      text,
        msgid       text,
        severity    smallint CHECK (severity BETWEEN 0 AND 7),
        facility    smallint CHECK (facility BETWEEN 0 AND 23),
        message     text        NOT NULL,
        fields      jsonb       NOT NULL DEFAULT '{}'
    ) PARTITION BY RANGE (ts);
    CREATE TABLE chute.logs_default PARTITION OF chute.logs DEFAULT;
    -- BRIN: time-range scans for almost no write cost (rows arrive in time order).
    CREATE INDEX logs_ts_brin ON chute.logs USING brin (ts);
    -- btree: "this host, this time range", the most common search.
    CREATE INDEX logs_host_ts ON chute.logs (host, ts);
    -- Rows PostgreSQL refused for their content: kept, with the reason.
    CREATE TABLE chute.rejected (
        id          bigserial   PRIMARY KEY,
        rejected_at timestamptz NOT NULL DEFAULT now(),
        shard       integer     NOT NULL,
        sqlstate    text,
        error       text        NOT NULL,
        record      jsonb       NOT NULL
    );
    "#,
    ),
    (
        2,
        r#"
    -- Ids of committed batches: a batch delivered again (after a lost COMMIT reply,
    -- or a crash before the queue learnt of the commit) is recognised and skipped.
    -- Pruned after storage.batch_id_retention_hours.
    CREATE TABLE chute.batches (
        id           text        PRIMARY KEY,
        committed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX batches_committed_at ON chute.batches USING brin (committed_at);
    "#,
    ),
    (
        3,
        r#"
    -- The per-day label index: the values each label had each day, per tenant,
    -- written with the rows (see sinks::postgres::labels), read by the label
    -- browser instead of the day's rows. Filled from the rows already stored.
    CREATE TABLE chute.label_values (
        day    date NOT NULL,
        tenant text NOT NULL,
        label  text NOT NULL,
        value  text NOT NULL,
        PRIMARY KEY (tenant, label, day, value)
    );
    INSERT INTO chute.label_values (day, tenant, label, value)
    SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date, tenant, l.label, l.value
    FROM chute.logs,
         LATERAL (VALUES ('tenant', tenant), ('host', host), ('app', app),
                         ('msgid', msgid), ('severity', severity::text),
                         ('facility', facility::text)) AS l (label, value)
    WHERE l.value <> '';
    "#,
    ),
    (
        4,
        r#"
    -- Lines and bytes per minute (m - 60 s, m], tenant, app and severity, appended
    -- with the rows (see sinks::postgres::rollup), read by histograms instead of
    -- the rows. Filled from the rows already stored.
    CREATE TABLE chute.minute_counts (
        minute   timestamptz NOT NULL,
        tenant   text        NOT NULL,
        app      text,
        severity smallint,
        lines    bigint      NOT NULL,
        bytes    bigint      NOT NULL
    );
    -- BRIN: counts are appended in time order, and a query reads a range of them.
    CREATE INDEX minute_counts_minute ON chute.minute_counts USING brin (minute);
    INSERT INTO chute.minute_counts (minute, tenant, app, severity, lines, bytes)
    SELECT date_trunc('minute', ts - interval '1 microsecond', 'UTC') + interval '1 minute',
           tenant, app, severity, count(*), sum(octet_length(message))
    FROM chute.logs GROUP BY 1, 2, 3, 4;
    "#,
    ),
    (
        5,
        r#"
    -- Trigram blooms of the messages of each block (a write's rows of one minute),
    -- written with the rows (see sinks::postgres::blooms), read by searches for a
    -- string to skip the blocks that cannot hold it. A block without a bloom is
    -- read by every search: the rows stored before blooms were kept get such
    -- blocks here, one per minute, so that every row is in some block.
    CREATE TABLE chute.line_blooms (
        first_ts timestamptz NOT NULL,
        last_ts  timestamptz NOT NULL,
        lines    integer     NOT NULL,
        bloom    bytea
    ) WITH (toast_tuple_target = 8160);
    -- Random bits do not compress: never try; blooms up to 8 KB stay in the row.
    ALTER TABLE chute.line_blooms ALTER COLUMN bloom SET STORAGE EXTERNAL;
    -- btree, not BRIN: a write's blocks span its minutes, so the table is not in
    -- time order; at one entry per block it costs next to nothing.
    CREATE INDEX line_blooms_first_ts ON chute.line_blooms (first_ts);
    INSERT INTO chute.line_blooms (first_ts, last_ts, lines)
    SELECT min(ts), max(ts), count(*) FROM chute.logs
    GROUP BY date_trunc('minute', ts - interval '1 microsecond', 'UTC');
    "#,
    ),
    (
        6,
        r#"
    -- The tenants of each retention class partition of a day (a day is
    -- sub-partitioned by tenant list when [retention.tenants] gives tenants
    -- their own ages; its default leaf, for every other tenant, is not listed).
    -- Written with the partition, removed with it.
    CREATE TABLE chute.partition_tenants (
        partition text   PRIMARY KEY,
        day       date   NOT NULL,
        tenants   text[] NOT NULL
    );
    "#,
    ),
    (
        7,
        r#"
    -- Leaves of chute.logs whose (host, ts) index was rebuilt once their day had
    -- closed (see schema::compact_closed_days); removed with the leaf.
    CREATE TABLE chute.compacted (
        partition    text        PRIMARY KEY,
        compacted_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
    ),
];

/// Brings the schema up to date. Safe to run concurrently from several nodes.
///
/// # Errors
/// Any error from PostgreSQL; nothing is half-applied (one transaction).
pub async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS chute;
         CREATE TABLE IF NOT EXISTS chute.schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM chute.schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO chute.schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "applied schema migration");
    }
    tx.commit().await
}

/// Name of the partition that holds `day`.
pub fn partition_name(day: NaiveDate) -> String {
    format!("logs_{}", day.format("%Y%m%d"))
}

/// Makes sure a partition exists for every day from `today - behind` to
/// `today + ahead`, sub-partitioned by the retention `classes` (none: a plain
/// leaf). A day after today that is still empty and laid out for other classes
/// is made again. Returns how many were created.
///
/// # Errors
/// Any error from PostgreSQL; each partition is created in its own transaction.
pub async fn ensure_partitions(
    client: &mut Client,
    today: NaiveDate,
    (behind, ahead): (u32, u32),
    classes: &[Vec<String>],
) -> Result<usize, tokio_postgres::Error> {
    let existing: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'chute.logs'::regclass",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let wanted = layout_of(classes);
    let mut created = 0;
    for offset in -(behind as i64)..=(ahead as i64) {
        let day = today + Duration::days(offset);
        let name = partition_name(day);
        if existing.contains(&name) && (day <= today || layout(client, day).await? == wanted) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        if existing.contains(&name) && !remake_empty(&tx, day, &name).await? {
            continue;
        }
        if create_partition(&tx, day, &name, classes).await? {
            created += 1;
            tracing::info!(partition = %name, classes = classes.len(), "created partition");
        }
        tx.commit().await?;
    }
    Ok(created)
}

/// A day's retention classes, each sorted, in order, to compare layouts.
fn layout_of(classes: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = classes
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.sort();
            c
        })
        .collect();
    out.sort();
    out
}

/// The retention classes `day` is sub-partitioned by.
async fn layout(
    client: &impl GenericClient,
    day: NaiveDate,
) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT tenants FROM chute.partition_tenants WHERE day = $1",
            &[&day],
        )
        .await?;
    Ok(layout_of(
        &rows.iter().map(|r| r.get(0)).collect::<Vec<Vec<String>>>(),
    ))
}

/// Drops the day partition `name` so it can be made again, if it holds no row;
/// false (and nothing done) if it does, or if its lock is not had within
/// [`LOCK_TIMEOUT`]. The lock comes first, so no write can land in between the
/// check and the drop.
async fn remake_empty(
    tx: &impl GenericClient,
    day: NaiveDate,
    name: &str,
) -> Result<bool, tokio_postgres::Error> {
    bound_lock_waits(tx).await?;
    // The name is made from a date, never from input.
    let locked = tx
        .batch_execute(&format!(
            "LOCK TABLE chute.logs, chute.{name} IN ACCESS EXCLUSIVE MODE"
        ))
        .await;
    match locked {
        Ok(()) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::info!(partition = %name, "an empty day waits for its retention classes: its lock was busy");
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    let empty: bool = tx
        .query_one(
            &format!("SELECT NOT EXISTS (SELECT FROM chute.{name})"),
            &[],
        )
        .await?
        .get(0);
    if !empty {
        return Ok(false);
    }
    tx.batch_execute(&format!("DROP TABLE chute.{name}"))
        .await?;
    forget_leaves(tx, day).await?;
    Ok(true)
}

/// Forgets what is kept about `day`'s leaves (their classes, their compaction),
/// when they are dropped.
pub async fn forget_leaves(
    tx: &impl GenericClient,
    day: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "DELETE FROM chute.partition_tenants WHERE day = $1",
        &[&day],
    )
    .await?;
    let name = partition_name(day);
    tx.execute(
        "DELETE FROM chute.compacted WHERE partition = $1 OR partition LIKE $2",
        &[&name, &format!("{name}\\_%")],
    )
    .await?;
    Ok(())
}

/// Longest a partition drop waits for its lock on `chute.logs` before it gives up
/// until the next check (writes and queries wait behind a waiting drop).
pub const LOCK_TIMEOUT: &str = "1s";

/// Makes every lock of the transaction wait at most [`LOCK_TIMEOUT`].
pub async fn bound_lock_waits(tx: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await
}

/// Name of the leaf of `day`'s partition `name` for class `n` (0: the default).
pub fn leaf_name(name: &str, n: usize) -> String {
    format!("{name}_{n}")
}

/// Creates one day's partition, moving that day's rows out of the default partition.
/// Returns false if another node created it first.
async fn create_partition(
    tx: &impl GenericClient,
    day: NaiveDate,
    name: &str,
    classes: &[Vec<String>],
) -> Result<bool, tokio_postgres::Error> {
    let exists = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("chute.{name}")],
        )
        .await?
        .get::<_, bool>(0);
    if exists {
        return Ok(false);
    }
    let from = day.format("%Y-%m-%d 00:00:00+00").to_string();
    let to = (day + Duration::days(1))
        .format("%Y-%m-%d 00:00:00+00")
        .to_string();
    // The names and bounds are generated from a date, never from user input.
    let by_class = if classes.is_empty() {
        ""
    } else {
        " PARTITION BY LIST (tenant)"
    };
    tx.batch_execute(&format!(
        "CREATE TABLE chute.{name} (LIKE chute.logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS){by_class};
         ALTER TABLE chute.{name} ADD CONSTRAINT {name}_range
             CHECK (ts >= '{from}' AND ts < '{to}');"
    ))
    .await?;
    if !classes.is_empty() {
        let default = leaf_name(name, 0);
        tx.batch_execute(&format!(
            "CREATE TABLE chute.{default} PARTITION OF chute.{name} DEFAULT"
        ))
        .await?;
        for (n, tenants) in classes.iter().enumerate() {
            let leaf = leaf_name(name, n + 1);
            // Tenant names are quoted by PostgreSQL itself (`%L`), from a bound
            // array: config text never becomes SQL text here.
            let create: String = tx
                .query_one(
                    "SELECT format('CREATE TABLE chute.%I PARTITION OF chute.%I FOR VALUES IN (%s)',
                                   $1::text, $2::text,
                                   (SELECT string_agg(format('%L', t), ', ') FROM unnest($3::text[]) t))",
                    &[&leaf, &name, tenants],
                )
                .await?
                .get(0);
            tx.batch_execute(&create).await?;
            tx.execute(
                "INSERT INTO chute.partition_tenants (partition, day, tenants) VALUES ($1, $2, $3)",
                &[&leaf, &day, tenants],
            )
            .await?;
        }
    }
    tx.batch_execute(&format!(
        "WITH moved AS (
             DELETE FROM chute.logs_default WHERE ts >= '{from}' AND ts < '{to}' RETURNING *
         ) INSERT INTO chute.{name} SELECT * FROM moved;
         ALTER TABLE chute.logs ATTACH PARTITION chute.{name}
             FOR VALUES FROM ('{from}') TO ('{to}');
         ALTER TABLE chute.{name} DROP CONSTRAINT {name}_range;"
    ))
    .await?;
    Ok(true)
}

/// One leaf whose index [`compact_closed_days`] rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub partition: String,
    /// The index's bytes before and after.
    pub before: i64,
    pub after: i64,
}

/// Key of the advisory lock index rebuilds run under (ASCII "compact"), so two
/// maintenance runs (hourly, and one a SIGHUP starts) never rebuild at once.
const COMPACTION_LOCK: i64 = 0x63_6f_6d_70_61_63_74;

/// Rebuilds the `(host, ts)` index of each leaf of a closed day (before
/// `today`, UTC) once, with `REINDEX ... CONCURRENTLY`, which neither blocks nor
/// is blocked by writes and queries. Rows of a day arrive in time order from
/// every host at once, so each host's run of the index is appended at its end
/// and its pages split half full: about 72 bytes per row. A sorted rebuild packs
/// them (about 41). Stops starting new rebuilds after `budget`; pushes each
/// rebuild to `done` as it completes. Does nothing while another run holds the
/// lock.
///
/// A rebuild that failed half-way leaves an invalid `_ccnew` index behind; those
/// are dropped first.
///
/// # Errors
/// Any error from PostgreSQL; the leaves rebuilt before it stay recorded.
pub async fn compact_closed_days(
    client: &Client,
    today: NaiveDate,
    budget: std::time::Duration,
    done: &mut Vec<Compacted>,
) -> Result<(), tokio_postgres::Error> {
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&COMPACTION_LOCK])
        .await?
        .get(0);
    if !locked {
        return Ok(());
    }
    let result = compact(client, today, budget, done).await;
    // A session lock: released here, or with the session if the connection died.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&COMPACTION_LOCK])
        .await;
    result.and(unlocked.map(|_| ()))
}

async fn compact(
    client: &Client,
    today: NaiveDate,
    budget: std::time::Duration,
    done: &mut Vec<Compacted>,
) -> Result<(), tokio_postgres::Error> {
    let started = std::time::Instant::now();
    for r in client
        .query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             WHERE NOT i.indisvalid AND c.relnamespace = 'chute'::regnamespace
               AND c.relname LIKE '%\\_ccnew%'",
            &[],
        )
        .await?
    {
        let index: String = r.get(0);
        // The name comes from the catalog (`regclass` output, quoted where needed).
        client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
            .await?;
        tracing::info!(index = %index, "dropped an index rebuild that had failed");
    }
    let rows = client
        .query(
            "SELECT t.relname::text, i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)
             FROM pg_partition_tree('chute.logs_host_ts') p
             JOIN pg_index i ON i.indexrelid = p.relid
             JOIN pg_class t ON t.oid = i.indrelid
             WHERE p.isleaf
               AND NOT EXISTS (SELECT FROM chute.compacted c WHERE c.partition = t.relname)
             ORDER BY t.relname DESC",
            &[],
        )
        .await?;
    for r in rows {
        let (partition, index, before): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let closed = super::storage::day_of(&partition).is_some_and(|d| d < today);
        if !closed || started.elapsed() >= budget {
            continue;
        }
        // The name comes from the catalog (`regclass` output, quoted where needed).
        client
            .batch_execute(&format!("REINDEX INDEX CONCURRENTLY {index}"))
            .await?;
        let after: i64 = client
            .query_one("SELECT pg_relation_size($1::text::regclass)", &[&index])
            .await?
            .get(0);
        client
            .execute(
                "INSERT INTO chute.compacted (partition) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&partition],
            )
            .await?;
        tracing::info!(partition = %partition, before, after, "compacted a closed day's index");
        done.push(Compacted {
            partition,
            before,
            after,
        });
    }
    Ok(())
}

/// Forgets the ids of batches committed more than `hours` ago. A batch can only
/// come back while it still sits in some queue, so the retention must be longer
/// than any backlog is expected to last.
///
/// # Errors
/// Any error from PostgreSQL.
pub async fn prune_batches(client: &Client, hours: u32) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM chute.batches WHERE committed_at < now() - make_interval(hours => $1)",
            &[&(hours as i32)],
        )
        .await
}
