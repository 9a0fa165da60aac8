//! Ingest benchmark: the same records loaded by `psql \copy` (the raw rate) and pushed
//! through chute's `POST /api/v1/logs`, into identical tables (same partitions, same
//! indexes) on one PostgreSQL started for the run.
//!
//! `scripts/dev bench [--records N] [--connections C] [--batch B] [--index-costs]
//! [--syslog-first] [--cluster] [--classes]`
//!
//! Prints rows/s for both, their ratio, request latency p50/p99, and chute's peak RSS
//! (chute runs as a child process so its memory is its own). Then the same records
//! as RFC 5424 over TCP, and syslog's rate against HTTP's; `--syslog-first` runs
//! the syslog phase before the HTTP one, so alternating runs can show whether
//! going second costs a phase anything. Then the same records as Loki pushes
//! (snappy protobuf, `POST /loki/api/v1/push`), OTLP exports (protobuf,
//! `POST /v1/logs`) and Elasticsearch bulk bodies (`POST /_bulk`), each rate
//! against HTTP's.
//! Every phase also prints what it cost
//! PostgreSQL: WAL and stored bytes per record, and CPU. With `--index-costs`,
//! also loads the raw table without indexes, with each index of the schema or
//! candidate for it alone (`INDEX_CANDIDATES`), and with the schema's own.
//! With `--cluster`, runs only the cluster comparison instead: one node writing four
//! shards, then three nodes owning them (requests dealt round-robin over the nodes),
//! with the forwarded bytes per record and the CPU cost of a forwarded record.
//! With `--classes`, the days are partitioned by retention class (raw and chute
//! alike), to weigh what a second level of partition routing costs.

mod common;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chute::sinks::postgres::schema;
use chute_embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use common::{cores, cpu_model, scrape_sum, spawn_chute, sql, toml_dsn, ChuteChild, APPS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Drops every index of `chute.logs` (its partitions' indexes go with them).
const DROP_INDEXES: &str = "DO $$ DECLARE i regclass; BEGIN \
    FOR i IN SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'chute.logs'::regclass \
    LOOP EXECUTE 'DROP INDEX ' || i; END LOOP; END $$;";

/// The indexes `--index-costs` loads the raw table with, each alone: those of
/// chute's schema and the candidates weighed against them (BENCHMARKS.md).
const INDEX_CANDIDATES: &[(&str, &str)] = &[
    ("brin_ts", "CREATE INDEX ON chute.logs USING brin (ts);"),
    ("host_ts", "CREATE INDEX ON chute.logs (host, ts);"),
    ("app_ts", "CREATE INDEX ON chute.logs (app, ts);"),
    (
        "trgm",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm; \
         CREATE INDEX ON chute.logs USING gin (message gin_trgm_ops);",
    ),
];

struct Args {
    records: usize,
    connections: usize,
    batch: usize,
    index_costs: bool,
    cluster: bool,
    syslog_first: bool,
    /// `--alternate N`: only HTTP against each agent protocol, N pairs each.
    alternate: usize,
}

/// `--classes`: every day is partitioned by retention class (a tenant the
/// records do not use has an age of its own), so each row is routed one level
/// further, into the day's default leaf.
static CLASSES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn classes() -> Vec<Vec<String>> {
    if CLASSES.get().copied().unwrap_or(false) {
        vec![vec!["audit".to_owned()]]
    } else {
        Vec::new()
    }
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        records: 1_000_000,
        connections: 8,
        batch: 1000,
        index_costs: false,
        cluster: false,
        syslog_first: false,
        alternate: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .context(name.to_owned())
        };
        match arg.as_str() {
            "--records" => a.records = value("--records")?,
            "--connections" => a.connections = value("--connections")?,
            "--batch" => a.batch = value("--batch")?,
            "--index-costs" => a.index_costs = true,
            "--cluster" => a.cluster = true,
            "--syslog-first" => a.syslog_first = true,
            "--alternate" => a.alternate = value("--alternate")?,
            "--classes" => {
                CLASSES.set(true).ok();
            }
            "--bench" => {} // passed by `cargo bench`
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// One generated record, shaped like a busy fleet's logs.
struct Gen {
    ts: String,
    host: String,
    app: &'static str,
    procid: u32,
    msgid: Option<&'static str>,
    severity: u8,
    facility: u8,
    message: String,
    request_id: String,
    latency_ms: u32,
}

const WORDS: [&str; 24] = [
    "request",
    "completed",
    "user",
    "session",
    "timeout",
    "connection",
    "upstream",
    "accepted",
    "from",
    "port",
    "error",
    "retry",
    "GET",
    "POST",
    "/api/v2/orders",
    "status",
    "bytes",
    "latency",
    "cache",
    "miss",
    "hit",
    "token",
    "refreshed",
    "worker",
];

fn generate(n: usize) -> Vec<Gen> {
    let mut rng = StdRng::seed_from_u64(0x00c4_0735);
    let day = chrono::Utc::now().date_naive();
    (0..n)
        .map(|i| {
            let secs = (i as u64 * 86_000 / n.max(1) as u64) as i64;
            let ts = day.and_hms_opt(0, 0, 0).expect("midnight") + chrono::Duration::seconds(secs);
            let len = rng.gen_range(100..=300);
            let mut message = String::with_capacity(len + 16);
            while message.len() < len {
                message.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
                message.push(' ');
            }
            message.truncate(len);
            Gen {
                ts: format!("{}Z", ts.format("%Y-%m-%dT%H:%M:%S%.6f")),
                host: format!("host-{:03}", rng.gen_range(0..200)),
                app: APPS[rng.gen_range(0..APPS.len())],
                procid: rng.gen_range(100..65_000),
                msgid: if rng.gen_bool(0.3) {
                    Some("ID47")
                } else {
                    None
                },
                severity: [3, 4, 5, 6, 6, 6, 6, 7][rng.gen_range(0..8)],
                facility: [1, 3, 4, 10, 16, 23][rng.gen_range(0..6)],
                message,
                request_id: format!("{:016x}", rng.gen::<u64>()),
                latency_ms: rng.gen_range(1..2000),
            }
        })
        .collect()
}

fn write_csv(records: &[Gen], path: &Path) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    for r in records {
        // Messages hold no quotes or commas that need escaping beyond quoting.
        writeln!(
            w,
            "{},{},default,{},{},{},{},{},{},\"{}\",\"{{\"\"request_id\"\": \"\"{}\"\", \"\"latency_ms\"\": {}}}\"",
            r.ts, now, r.host, r.app, r.procid, r.msgid.unwrap_or(""), r.severity, r.facility, r.message,
            r.request_id, r.latency_ms
        )?;
    }
    w.flush()?;
    Ok(())
}

fn ndjson_bodies(records: &[Gen], batch: usize) -> Vec<Vec<u8>> {
    records
        .chunks(batch)
        .map(|chunk| {
            let mut body = Vec::with_capacity(chunk.len() * 400);
            for r in chunk {
                let v = serde_json::json!({
                    "ts": r.ts, "host": r.host, "app": r.app, "procid": r.procid, "msgid": r.msgid,
                    "severity": r.severity, "facility": r.facility, "message": r.message,
                    "request_id": r.request_id, "latency_ms": r.latency_ms,
                });
                serde_json::to_writer(&mut body, &v).expect("serialise");
                body.push(b'\n');
            }
            body
        })
        .collect()
}

/// The records as Loki pushes of `batch` entries, snappy protobuf as Promtail
/// sends them: one stream per host, app and level in each push, the extra
/// fields (and procid, msgid) as structured metadata. (Loki has no facility.)
fn loki_bodies(records: &[Gen], batch: usize) -> Vec<Vec<u8>> {
    use chute::sources::loki::proto;
    use prost::Message as _;
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
    ];
    records
        .chunks(batch)
        .map(|chunk| {
            let mut streams: Vec<proto::Stream> = Vec::new();
            for r in chunk {
                let labels = format!(
                    "{{host=\"{}\", app=\"{}\", level=\"{}\"}}",
                    r.host,
                    r.app,
                    LEVELS[usize::from(r.severity)]
                )
                .into_bytes();
                let ts = chrono::DateTime::parse_from_rfc3339(&r.ts).expect("generated");
                let pair = |name: &str, value: String| proto::LabelPair {
                    name: name.as_bytes().to_vec(),
                    value: value.into_bytes(),
                };
                let mut metadata = vec![
                    pair("request_id", r.request_id.clone()),
                    pair("latency_ms", r.latency_ms.to_string()),
                    pair("procid", r.procid.to_string()),
                ];
                if let Some(m) = r.msgid {
                    metadata.push(pair("msgid", m.to_owned()));
                }
                let entry = proto::Entry {
                    timestamp: Some(proto::Timestamp {
                        seconds: ts.timestamp(),
                        nanos: ts.timestamp_subsec_nanos() as i32,
                    }),
                    line: r.message.clone().into_bytes(),
                    structured_metadata: metadata,
                };
                match streams.iter_mut().find(|s| s.labels == labels) {
                    Some(s) => s.entries.push(entry),
                    None => streams.push(proto::Stream {
                        labels,
                        entries: vec![entry],
                        hash: 0,
                    }),
                }
            }
            let raw = proto::PushRequest { streams }.encode_to_vec();
            snap::raw::Encoder::new()
                .compress_vec(&raw)
                .expect("compresses")
        })
        .collect()
}

/// The records as OTLP exports of `batch` log records, protobuf as the
/// Collector's `otlphttp` exporter sends them: one resource per host and app in
/// each export (`host.name`, `service.name`), the severity as its
/// SeverityNumber, the extra fields (and procid, msgid) as attributes.
fn otlp_bodies(records: &[Gen], batch: usize) -> Vec<Vec<u8>> {
    use chute::sources::otlp::proto;
    use prost::Message as _;
    // syslog severity → OTLP SeverityNumber (FATAL, ERROR, WARN, INFO, DEBUG).
    const NUMBERS: [i32; 8] = [21, 21, 21, 17, 13, 10, 9, 5];
    let text = |s: &str| {
        Some(proto::AnyValue {
            value: Some(proto::Value::String(s.to_owned())),
        })
    };
    let kv = |key: &str, value| proto::KeyValue {
        key: key.to_owned(),
        value,
    };
    records
        .chunks(batch)
        .map(|chunk| {
            let mut resources: Vec<proto::ResourceLogs> = Vec::new();
            for r in chunk {
                let ts = chrono::DateTime::parse_from_rfc3339(&r.ts).expect("generated");
                let mut attributes = vec![
                    kv("request_id", text(&r.request_id)),
                    kv(
                        "latency_ms",
                        Some(proto::AnyValue {
                            value: Some(proto::Value::Int(i64::from(r.latency_ms))),
                        }),
                    ),
                    kv("procid", text(&r.procid.to_string())),
                ];
                if let Some(m) = r.msgid {
                    attributes.push(kv("msgid", text(m)));
                }
                let log = proto::LogRecord {
                    time_unix_nano: ts.timestamp_nanos_opt().expect("in range") as u64,
                    severity_number: NUMBERS[usize::from(r.severity)],
                    body: text(&r.message),
                    attributes,
                    ..Default::default()
                };
                let resource = vec![
                    kv("host.name", text(&r.host)),
                    kv("service.name", text(r.app)),
                ];
                let found = resources.iter_mut().find(|rl| {
                    rl.resource
                        .as_ref()
                        .is_some_and(|res| res.attributes == resource)
                });
                match found {
                    Some(rl) => rl.scope_logs[0].log_records.push(log),
                    None => resources.push(proto::ResourceLogs {
                        resource: Some(proto::Resource {
                            attributes: resource,
                        }),
                        scope_logs: vec![proto::ScopeLogs {
                            scope: None,
                            log_records: vec![log],
                        }],
                    }),
                }
            }
            proto::ExportLogsServiceRequest {
                resource_logs: resources,
            }
            .encode_to_vec()
        })
        .collect()
}

/// The records as Elasticsearch bulk bodies of `batch` `create` actions, ECS
/// documents as Filebeat sends them (`host.name`, `service.name`, `log.level`).
fn bulk_bodies(records: &[Gen], batch: usize) -> Vec<Vec<u8>> {
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
    ];
    records
        .chunks(batch)
        .map(|chunk| {
            let mut body = Vec::with_capacity(chunk.len() * 450);
            for r in chunk {
                body.extend_from_slice(b"{\"create\":{\"_index\":\"logs\"}}\n");
                let v = serde_json::json!({
                    "@timestamp": r.ts, "message": r.message,
                    "host": {"name": r.host}, "service": {"name": r.app},
                    "log": {"level": LEVELS[usize::from(r.severity)]},
                    "process": {"pid": r.procid}, "msgid": r.msgid,
                    "request_id": r.request_id, "latency_ms": r.latency_ms,
                });
                serde_json::to_writer(&mut body, &v).expect("serialise");
                body.push(b'\n');
            }
            body
        })
        .collect()
}

/// The records as octet-counted RFC 5424 messages, dealt round-robin over
/// `connections` byte streams.
fn syslog_streams(records: &[Gen], connections: usize) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new(); connections.max(1)];
    let n = out.len();
    for (i, r) in records.iter().enumerate() {
        let msg = format!(
            "<{}>1 {} {} {} {} {} [meta request_id=\"{}\" latency_ms=\"{}\"] {}",
            u16::from(r.facility) * 8 + u16::from(r.severity),
            r.ts,
            r.host,
            r.app,
            r.procid,
            r.msgid.unwrap_or("-"),
            r.request_id,
            r.latency_ms,
            r.message
        );
        let stream = &mut out[i % n];
        stream.extend_from_slice(format!("{} ", msg.len()).as_bytes());
        stream.extend_from_slice(msg.as_bytes());
    }
    out
}

/// Creates `db` with chute's own schema (migrations and partitions).
async fn prepare_db(pg: &EmbeddedPostgres, db: &str) -> anyhow::Result<()> {
    pg.create_database(db).await?;
    let (mut client, conn) = tokio_postgres::connect(&pg.dsn(db), tokio_postgres::NoTls).await?;
    actix_web::rt::spawn(conn);
    schema::migrate(&mut client).await?;
    schema::ensure_partitions(
        &mut client,
        chrono::Utc::now().date_naive(),
        (1, 3),
        &classes(),
    )
    .await?;
    Ok(())
}

/// Vacuums and analyses a database just loaded, then checkpoints, untimed, so
/// PostgreSQL's own maintenance of the 1M new rows (autovacuum after inserts) does not
/// run during the next measured phase.
fn settle_db(pg: &EmbeddedPostgres, db: &str) -> anyhow::Result<()> {
    sql(pg, db, "VACUUM (ANALYZE)")?;
    sql(pg, db, "CHECKPOINT")
}

fn raw_copy(pg: &EmbeddedPostgres, db: &str, csv: &Path, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    sql(
        pg,
        db,
        &format!(
            "\\copy chute.logs (ts, received_at, tenant, host, app, procid, msgid, severity, facility, message, fields) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    )?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Where the machine and PostgreSQL stood when a phase began: to tell what the
/// phase cost the database (WAL written, CPU that was neither chute's nor the
/// sender's) apart from what it cost chute.
struct Snapshot {
    busy_cpu: f64,
    own_cpu: f64,
    wal: f64,
}

impl Snapshot {
    async fn take(pg: &EmbeddedPostgres, db: &str) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            busy_cpu: busy_cpu_seconds(),
            own_cpu: cpu_seconds(std::process::id()),
            wal: query_f64(pg, db, "SELECT (pg_current_wal_lsn() - '0/0')::float8").await?,
        })
    }

    /// Prints the database's side of a phase that stored `n` records in `db`, where
    /// chute (process `chute`) used `chute_cpu` seconds.
    async fn report(
        &self,
        pg: &EmbeddedPostgres,
        db: &str,
        n: usize,
        chute_cpu: f64,
    ) -> anyhow::Result<()> {
        let wal =
            query_f64(pg, db, "SELECT (pg_current_wal_lsn() - '0/0')::float8").await? - self.wal;
        const STORED: &str = "SELECT sum(pg_total_relation_size(relid))::float8 \
             FROM pg_partition_tree('chute.logs') WHERE isleaf";
        let size = query_f64(pg, db, STORED).await?;
        let others = busy_cpu_seconds()
            - self.busy_cpu
            - (cpu_seconds(std::process::id()) - self.own_cpu)
            - chute_cpu;
        println!(
            "  PostgreSQL              {:.0} WAL bytes/record, {:.0} bytes/record stored, {:.1} us CPU/record (not chute's nor the sender's)",
            wal / n as f64,
            size / n as f64,
            others * 1e6 / n as f64
        );
        // What maintenance does once the day has closed, untimed.
        let (c, conn) = tokio_postgres::connect(&pg.dsn(db), tokio_postgres::NoTls).await?;
        actix_web::rt::spawn(conn);
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
        schema::compact_closed_days(&c, tomorrow, Duration::from_secs(600), &mut Vec::new())
            .await?;
        println!(
            "  once the day has closed {:.0} bytes/record stored (its index rebuilt packed)",
            query_f64(pg, db, STORED).await? / n as f64
        );
        Ok(())
    }
}

async fn query_f64(pg: &EmbeddedPostgres, db: &str, statement: &str) -> anyhow::Result<f64> {
    let (c, conn) = tokio_postgres::connect(&pg.dsn(db), tokio_postgres::NoTls).await?;
    actix_web::rt::spawn(conn);
    Ok(c.query_one(statement, &[]).await?.get::<_, f64>(0))
}

/// CPU seconds the whole machine has been busy (all cores, all processes), from
/// /proc/stat: everything but idle and iowait.
fn busy_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("cpu "))?;
            let f: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: f64 = f.iter().take(8).sum();
            Some((total - f.get(3)? - f.get(4)?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// User and system CPU time of a process so far, from /proc (in USER_HZ = 1/100 s;
/// the process collector's metric is rounded to whole seconds).
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = tempfile::Builder::new().prefix("chute-bench-").tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let pg_dir = dir.path().join("pg");
    let pg =
        std::thread::spawn(move || EmbeddedPostgres::start(&pg_dir, EmbeddedOptions::default()))
            .join()
            .map_err(|_| anyhow::anyhow!("start thread panicked"))??;
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "records: {}, {} per request, {} connections",
        args.records, args.batch, args.connections
    );

    let records = generate(args.records);
    let csv = dir.path().join("records.csv");
    write_csv(&records, &csv)?;
    let bodies = ndjson_bodies(&records, args.batch);
    let streams = syslog_streams(&records, args.connections.min(4));
    let loki = loki_bodies(&records, args.batch);
    let otlp = otlp_bodies(&records, args.batch);
    let bulk = bulk_bodies(&records, args.batch);
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    drop(records);
    println!(
        "payload: {:.1} MiB NDJSON ({:.0} bytes/record)",
        body_bytes as f64 / 1048576.0,
        body_bytes as f64 / args.records as f64
    );

    if args.cluster {
        actix_web::rt::System::new().block_on(cluster_run(&pg, dir.path(), bodies, &args))?;
        pg.shutdown()?;
        return Ok(());
    }
    if args.alternate > 0 {
        let agents = [(LOKI_PUSH, loki), (OTLP, otlp), (BULK, bulk)];
        actix_web::rt::System::new().block_on(alternate(
            &pg,
            dir.path(),
            &bodies,
            agents,
            &args,
        ))?;
        pg.shutdown()?;
        return Ok(());
    }

    actix_web::rt::System::new().block_on(async {
        // Each variant: a database name and what to run after chute's migrations.
        let mut variants: Vec<(String, String)> = Vec::new();
        if args.index_costs {
            variants.push(("raw_none".into(), DROP_INDEXES.into()));
            for (name, create) in INDEX_CANDIDATES {
                variants.push((format!("raw_{name}"), format!("{DROP_INDEXES} {create}")));
            }
        }
        variants.push(("raw".into(), String::new()));
        let mut raw_rate = 0.0;
        for (db, change) in &variants {
            let db = db.as_str();
            prepare_db(&pg, db).await?;
            if !change.is_empty() {
                sql(&pg, db, change)?;
            }
            sql(&pg, db, "CHECKPOINT")?;
            let before = Snapshot::take(&pg, db).await?;
            let rate = raw_copy(&pg, db, &csv, args.records)?;
            println!("psql \\copy into {db:<12} {rate:>10.0} rows/s");
            // psql's own CPU counts as PostgreSQL's here.
            before.report(&pg, db, args.records, 0.0).await?;
            raw_rate = rate;
            settle_db(&pg, db)?;
        }

        // Each phase ends with its database vacuumed and checkpointed, so the next
        // does not pay for it; which goes first alternates with --syslog-first.
        let (http_rate, syslog_rate) = if args.syslog_first {
            let syslog_rate = syslog_phase(&pg, dir.path(), streams, &args).await?;
            (
                http_phase(&pg, dir.path(), bodies, &args, raw_rate).await?,
                syslog_rate,
            )
        } else {
            let http_rate = http_phase(&pg, dir.path(), bodies, &args, raw_rate).await?;
            (
                http_rate,
                syslog_phase(&pg, dir.path(), streams, &args).await?,
            )
        };
        println!(
            "syslog / HTTP             {:>10.2}",
            syslog_rate / http_rate
        );
        for (api, bodies) in [(LOKI_PUSH, loki), (OTLP, otlp), (BULK, bulk)] {
            let rate = agent_phase(&pg, dir.path(), bodies, &args, api).await?;
            println!(
                "{:<25} {:>10.2}",
                format!("{} / HTTP", api.name),
                rate / http_rate
            );
        }
        Ok::<_, anyhow::Error>(())
    })?;
    pg.shutdown()?;
    Ok(())
}

/// One chute with one shard, measured from the first record sent until PostgreSQL
/// holds them all; its database is settled when the phase ends.
struct Phase<'a> {
    pg: &'a EmbeddedPostgres,
    db: &'static str,
    dir: PathBuf,
    addr: String,
    child: ChuteChild,
    before: Snapshot,
    /// When the first record is sent; the caller sets it.
    started: Instant,
    records: usize,
}

impl<'a> Phase<'a> {
    /// Starts chute in `dir` on a fresh database `db` (see [`start_one_shard`]).
    async fn start(
        pg: &'a EmbeddedPostgres,
        dir: &Path,
        db: &'static str,
        listeners: &str,
        records: usize,
    ) -> anyhow::Result<Phase<'a>> {
        let (child, addr) = start_one_shard(pg, dir, db, listeners).await?;
        Ok(Phase {
            pg,
            db,
            dir: dir.to_owned(),
            addr,
            child,
            before: Snapshot::take(pg, db).await?,
            started: Instant::now(),
            records,
        })
    }

    /// Waits until PostgreSQL holds every record; returns the time since `started`.
    async fn committed(&self, client: &awc::Client) -> anyhow::Result<Duration> {
        let done = wait_committed(
            client,
            std::slice::from_ref(&self.addr),
            self.pg,
            &[self.db],
            self.records,
        )
        .await?;
        Ok(done - self.started)
    }

    /// Prints the writes, chute's CPU, PostgreSQL's costs and chute's peak RSS,
    /// labelled `what`; stops chute and settles the database.
    async fn finish(
        self,
        client: &awc::Client,
        what: &str,
        elapsed: Duration,
    ) -> anyhow::Result<()> {
        let pid = self.child.0.id();
        let cpu = cpu_seconds(pid);
        print_writes(client, &self.addr, self.records, elapsed).await;
        println!(
            "{:<26}{cpu:.2} s ({:.1} us/record)",
            format!("chute CPU ({what})"),
            cpu * 1e6 / self.records as f64
        );
        self.before
            .report(self.pg, self.db, self.records, cpu)
            .await?;
        println!(
            "{:<26}{:.1} MiB",
            format!("chute peak RSS ({what})"),
            peak_rss_kib(pid) as f64 / 1024.0
        );
        drop(self.child);
        settle_db(self.pg, self.db)
    }
}

/// HTTP: the NDJSON bodies posted `args.connections` at a time; returns the
/// committed rows/s.
async fn http_phase(
    pg: &EmbeddedPostgres,
    dir: &Path,
    bodies: Vec<Vec<u8>>,
    args: &Args,
    raw_rate: f64,
) -> anyhow::Result<f64> {
    let (phase, client, mut latencies, acked_after, elapsed) =
        post_phase(pg, &dir.join("http"), "bench", bodies, args, NDJSON).await?;
    let rate = args.records as f64 / elapsed.as_secs_f64();
    let queue_bytes = scrape_sum(&client, &phase.addr, "chute_queue_appended_bytes_total").await;
    let fsyncs = scrape_sum(&client, &phase.addr, "chute_fsync_duration_seconds_count").await;
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "chute, acknowledged       {:>10.0} rows/s  ({:.1} s; fsynced in chute's queue)",
        args.records as f64 / acked_after.as_secs_f64(),
        acked_after.as_secs_f64()
    );
    println!(
        "chute POST /api/v1/logs   {rate:>10.0} rows/s  ({:.1} s; committed in PostgreSQL)",
        elapsed.as_secs_f64()
    );
    println!(
        "queue                     {:.0} bytes/record, {:.0} fsyncs/s",
        queue_bytes / args.records as f64,
        fsyncs / acked_after.as_secs_f64()
    );
    println!("ratio chute / raw         {:>10.2}", rate / raw_rate);
    println!(
        "request latency           p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50),
        pct(0.99)
    );
    phase.finish(&client, "HTTP", elapsed).await?;
    Ok(rate)
}

/// Starts chute on database `db` (no syslog listener) and posts every body to
/// `api`: the phase, its client, each request's latency, and the times until the
/// last answer (everything fsynced in chute's queue) and until every row was
/// committed in PostgreSQL.
async fn post_phase<'a>(
    pg: &'a EmbeddedPostgres,
    dir: &Path,
    db: &'static str,
    bodies: Vec<Vec<u8>>,
    args: &Args,
    api: Api,
) -> anyhow::Result<(Phase<'a>, awc::Client, Vec<Duration>, Duration, Duration)> {
    let no_syslog = "[syslog]\nlisteners = []\n";
    let mut phase = Phase::start(pg, dir, db, no_syslog, args.records).await?;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(bodies);
    phase.started = Instant::now();
    let addrs = std::slice::from_ref(&phase.addr);
    let latencies = send_bodies(&client, addrs, &bodies, args.connections, api).await?;
    let acked_after = phase.started.elapsed();
    let elapsed = phase.committed(&client).await?;
    Ok((phase, client, latencies, acked_after, elapsed))
}

/// An agent protocol (Loki push, OTLP, Elasticsearch bulk): the same records in
/// its bodies, posted like the NDJSON bodies; returns the committed rows/s.
async fn agent_phase(
    pg: &EmbeddedPostgres,
    dir: &Path,
    bodies: Vec<Vec<u8>>,
    args: &Args,
    api: Api,
) -> anyhow::Result<f64> {
    let (phase, client, _, _, elapsed) =
        post_phase(pg, &dir.join(api.db), api.db, bodies, args, api).await?;
    let rate = args.records as f64 / elapsed.as_secs_f64();
    println!(
        "chute {:<19} {rate:>10.0} rows/s  ({:.1} s; committed in PostgreSQL)",
        api.name,
        elapsed.as_secs_f64()
    );
    phase.finish(&client, api.name, elapsed).await?;
    Ok(rate)
}

/// `--alternate N`: HTTP NDJSON and each agent protocol in turn, N pairs
/// each (HTTP first in odd pairs, the agent first in even ones), on the same
/// records; prints each pair's ratio and the median.
async fn alternate(
    pg: &EmbeddedPostgres,
    dir: &Path,
    ndjson: &[Vec<u8>],
    agents: [(Api, Vec<Vec<u8>>); 3],
    args: &Args,
) -> anyhow::Result<()> {
    for (api, bodies) in agents {
        let mut ratios = Vec::new();
        for pair in 0..args.alternate {
            let dir = dir.join(format!("{}-{pair}", api.db));
            // A database of its own per phase, dropped after it (a name
            // made once per phase of this benchmark run).
            let named = |api: Api, prefix: &str| Api {
                db: Box::leak(format!("{prefix}_{}_{pair}", api.db).into_boxed_str()),
                ..api
            };
            let (with_http, with_agent) = (named(NDJSON, api.db), named(api, "alt"));
            let mut http = 0.0;
            let mut agent = 0.0;
            for second in [false, true] {
                let phase = if (pair % 2 == 1) == second {
                    http = agent_phase(pg, &dir, ndjson.to_vec(), args, with_http).await?;
                    with_http
                } else {
                    agent = agent_phase(pg, &dir, bodies.clone(), args, with_agent).await?;
                    with_agent
                };
                sql(
                    pg,
                    "postgres",
                    &format!("DROP DATABASE {} WITH (FORCE)", phase.db),
                )?;
            }
            println!("pair {pair}: {} / HTTP {:.2}", api.name, agent / http);
            ratios.push(agent / http);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{:<25} {:>10.2}  (median of {} alternating pairs)",
            format!("{} / HTTP", api.name),
            ratios[ratios.len() / 2],
            ratios.len()
        );
    }
    Ok(())
}

/// Syslog: the same records as RFC 5424 over TCP, octet-counted, one stream per
/// connection; returns the committed rows/s.
async fn syslog_phase(
    pg: &EmbeddedPostgres,
    dir: &Path,
    streams: Vec<Vec<u8>>,
    args: &Args,
) -> anyhow::Result<f64> {
    let tcp = "[[syslog.listeners]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let mut phase =
        Phase::start(pg, &dir.join("syslog"), "bench_syslog", tcp, args.records).await?;
    let text = std::fs::read_to_string(phase.dir.join("chute.log"))?;
    let port: u16 = text
        .lines()
        .find(|l| l.contains("syslog listener ready"))
        .and_then(|l| l.split("addr=Some(").nth(1))
        .and_then(|s| s.split(')').next())
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .context("syslog port in chute's log")?;
    phase.started = Instant::now();
    let senders: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            actix_web::rt::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                s.write_all(&stream).await?;
                s.shutdown().await
            })
        })
        .collect();
    for s in senders {
        s.await??;
    }
    let sent_after = phase.started.elapsed();
    let client = awc::Client::default();
    let elapsed = phase.committed(&client).await?;
    let rate = args.records as f64 / elapsed.as_secs_f64();
    println!(
        "chute syslog TCP (5424)   {rate:>10.0} rows/s  ({:.1} s; sent in {:.1} s; committed in PostgreSQL)",
        elapsed.as_secs_f64(),
        sent_after.as_secs_f64()
    );
    phase.finish(&client, "syslog", elapsed).await?;
    Ok(rate)
}

/// Creates database `db` with chute's schema and starts a chute in `dir` with one
/// shard there (pool of 4), its HTTP listener on a free port, and `listeners` (the
/// TOML of its syslog listeners).
async fn start_one_shard(
    pg: &EmbeddedPostgres,
    dir: &Path,
    db: &str,
    listeners: &str,
) -> anyhow::Result<(ChuteChild, String)> {
    std::fs::create_dir_all(dir)?;
    prepare_db(pg, db).await?;
    sql(pg, db, "CHECKPOINT")?;
    let config = dir.join("chute.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n{listeners}[[shards]]\nid = 0\ndsn = \"{}\"\npool_size = 4\n{}",
            dir.join("data").display(),
            toml_dsn(pg, db),
            if classes().is_empty() { "" } else { "[retention.tenants]\naudit = 400\n" }
        ),
    )?;
    spawn_chute(&config, dir)
}

/// An ingest API the benchmark posts to.
#[derive(Clone, Copy)]
struct Api {
    /// As the report names it.
    name: &'static str,
    /// The phase's database (and directory).
    db: &'static str,
    path: &'static str,
    content_type: &'static str,
    /// The status of a stored body.
    ok: u16,
}

const NDJSON: Api = Api {
    name: "HTTP",
    db: "bench",
    path: "/api/v1/logs",
    content_type: "application/x-ndjson",
    ok: 200,
};

const LOKI_PUSH: Api = Api {
    name: "Loki push",
    db: "bench_loki",
    path: "/loki/api/v1/push",
    content_type: "application/x-protobuf",
    ok: 204,
};

const OTLP: Api = Api {
    name: "OTLP",
    db: "bench_otlp",
    path: "/v1/logs",
    content_type: "application/x-protobuf",
    ok: 200,
};

const BULK: Api = Api {
    name: "Elasticsearch bulk",
    db: "bench_bulk",
    path: "/_bulk",
    content_type: "application/x-ndjson",
    ok: 200,
};

/// Posts every body, `connections` at a time, dealing them round-robin over `addrs`;
/// retries 503s. Returns each request's latency.
async fn send_bodies(
    client: &awc::Client,
    addrs: &[String],
    bodies: &Arc<Vec<Vec<u8>>>,
    connections: usize,
    api: Api,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(bodies.len())));
    let urls: Arc<Vec<String>> = Arc::new(
        addrs
            .iter()
            .map(|a| format!("http://{a}{}", api.path))
            .collect(),
    );
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, bodies, next, latencies, urls) = (
                client.clone(),
                bodies.clone(),
                next.clone(),
                latencies.clone(),
                urls.clone(),
            );
            actix_web::rt::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    let url = &urls[i % urls.len()];
                    let t = Instant::now();
                    loop {
                        let mut res = client
                            .post(url)
                            .content_type(api.content_type)
                            .send_body(body.clone())
                            .await
                            .map_err(|e| anyhow::anyhow!("request failed: {e}"))?;
                        let _ = res.body().await;
                        match res.status().as_u16() {
                            s if s == api.ok => break,
                            503 => actix_web::rt::time::sleep(Duration::from_millis(200)).await,
                            s => bail!("unexpected status {s}"),
                        }
                    }
                    latencies.lock().expect("no poisoning").push(t.elapsed());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let l = latencies.lock().expect("no poisoning").clone();
    Ok(l)
}

/// Waits until the chutes at `addrs` have committed `n` rows (their
/// `chute_rows_written_total`; polling `count(*)` instead would scan the growing
/// table every few milliseconds and take CPU from the writes being measured), and
/// returns when that was. Then checks once that the databases hold exactly `n` rows.
async fn wait_committed(
    client: &awc::Client,
    addrs: &[String],
    pg: &EmbeddedPostgres,
    dbs: &[&str],
    n: usize,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let mut written = 0.0;
        for addr in addrs {
            written += scrape_sum(client, addr, "chute_rows_written_total").await;
        }
        if written >= n as f64 {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("chute committed {written} rows, expected {n}");
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    };
    let mut stored = 0i64;
    for db in dbs {
        let (c, conn) = tokio_postgres::connect(&pg.dsn(db), tokio_postgres::NoTls).await?;
        actix_web::rt::spawn(conn);
        stored += c
            .query_one("SELECT count(*) FROM chute.logs", &[])
            .await?
            .get::<_, i64>(0);
    }
    if stored != n as i64 {
        bail!("the databases hold {stored} rows, expected {n}");
    }
    Ok(done)
}

/// One node writing four shards, then three nodes owning them (a: 0 and 3, b: 1,
/// c: 2), the same records, requests dealt round-robin over the nodes.
async fn cluster_run(
    pg: &EmbeddedPostgres,
    dir: &Path,
    bodies: Vec<Vec<u8>>,
    args: &Args,
) -> anyhow::Result<()> {
    const OWNERS: [usize; 4] = [0, 1, 2, 0];
    let bodies = Arc::new(bodies);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    let mut single = None;
    for (label, nodes) in [("one node, 4 shards", 1usize), ("three nodes, 4 shards", 3)] {
        let run = dir.join(format!("cluster{nodes}"));
        std::fs::create_dir_all(&run)?;
        let dbs: Vec<String> = (0..4).map(|s| format!("c{nodes}_s{s}")).collect();
        for db in &dbs {
            prepare_db(pg, db).await?;
        }
        sql(pg, "postgres", "CHECKPOINT")?;
        let ports: Vec<u16> = (0..nodes)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
            })
            .collect::<Result<_, _>>()?;
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut text = format!(
                "[node]\nid = \"n{i}\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [syslog]\nlisteners = []\n[cluster]\npeer_token = \"bench-token-0123456789\"\n",
                run.join(format!("data{i}")).display()
            );
            if nodes > 1 {
                for (j, p) in ports.iter().enumerate() {
                    text.push_str(&format!(
                        "[[nodes]]\nid = \"n{j}\"\nurl = \"http://127.0.0.1:{p}\"\n"
                    ));
                }
            }
            for (s, db) in dbs.iter().enumerate() {
                let owner = if nodes > 1 {
                    format!("owner = \"n{}\"\n", OWNERS[s])
                } else {
                    String::new()
                };
                text.push_str(&format!(
                    "[[shards]]\nid = {s}\n{owner}dsn = \"{}\"\npool_size = 2\n",
                    toml_dsn(pg, db)
                ));
            }
            let node_dir = run.join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir)?;
            let config = node_dir.join("chute.toml");
            std::fs::write(&config, text)?;
            let (child, addr) = spawn_chute(&config, &node_dir)?;
            children.push(child);
            addrs.push(addr);
        }
        let started = Instant::now();
        send_bodies(&client, &addrs, &bodies, args.connections, NDJSON).await?;
        let acked = started.elapsed();
        let names: Vec<&str> = dbs.iter().map(String::as_str).collect();
        let committed = wait_committed(&client, &addrs, pg, &names, args.records).await?;
        let elapsed = committed - started;
        let (mut cpu, mut fwd_records, mut fwd_bytes, mut rss) = (0.0, 0.0, 0.0, 0.0);
        for (addr, child) in addrs.iter().zip(&children) {
            cpu += cpu_seconds(child.0.id());
            fwd_records += scrape_sum(&client, addr, "chute_peer_records_sent_total").await;
            fwd_bytes += scrape_sum(&client, addr, "chute_peer_sent_bytes_total").await;
            rss += peak_rss_kib(child.0.id()) as f64 / 1024.0;
        }
        let rate = args.records as f64 / elapsed.as_secs_f64();
        println!(
            "{label:<24} {rate:>10.0} rows/s  ({:.1} s committed; acknowledged in {:.1} s)",
            elapsed.as_secs_f64(),
            acked.as_secs_f64()
        );
        println!(
            "  chute CPU              {:.2} s in all, {:.1} us/record; peak RSS {:.0} MiB over {nodes} node(s)",
            cpu,
            cpu * 1e6 / args.records as f64,
            rss
        );
        if nodes > 1 {
            println!(
                "  forwarded              {:.0} records ({:.0}%), {:.0} bytes/record on the wire (zstd)",
                fwd_records,
                100.0 * fwd_records / args.records as f64,
                fwd_bytes / fwd_records.max(1.0)
            );
            if let Some((single_rate, single_cpu)) = single {
                println!(
                    "  vs one node            {:.2} of its rows/s; +{:.1} us CPU per forwarded record (a local one costs {:.1} us)",
                    rate / single_rate,
                    (cpu - single_cpu) * 1e6 / fwd_records.max(1.0),
                    single_cpu * 1e6 / args.records as f64
                );
            }
        } else {
            single = Some((rate, cpu));
        }
        drop(children);
    }
    Ok(())
}

/// Prints how chute at `addr` wrote `n` records to PostgreSQL in `elapsed`.
async fn print_writes(client: &awc::Client, addr: &str, n: usize, elapsed: Duration) {
    let writes = scrape_sum(client, addr, "chute_flush_duration_seconds_count").await;
    let write_secs = scrape_sum(client, addr, "chute_flush_duration_seconds_sum").await;
    println!(
        "writes                    {writes:.0} transactions of {:.0} rows, {:.0} ms each, {:.1} in flight on average",
        n as f64 / writes.max(1.0),
        1000.0 * write_secs / writes.max(1.0),
        write_secs / elapsed.as_secs_f64()
    );
}
