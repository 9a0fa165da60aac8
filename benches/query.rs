//! Query benchmark: a fleet's logs over the last days, loaded through chute, then the
//! searches and charts an operator runs, timed through chute's Loki API, as the SQL
//! chute sends PostgreSQL, and against VictoriaLogs loaded with the same records.
//!
//! `scripts/dev bench --query [--records N] [--days D] [--connections C]
//! [--batch B] [--no-victoria] [--hold]`
//!
//! Starts its own PostgreSQL (chute's embedded code) and chute as a child process,
//! loads N records (default 10,000,000) spread evenly over the D days (default 3)
//! ending now, through `POST /api/v1/logs`, waits until all are committed and runs
//! `VACUUM ANALYZE`. Each query then runs once untimed and five times timed; the
//! table (Markdown) gives the medians. VictoriaLogs runs when `victoria-logs` is on
//! the PATH or in `~/go/bin` (or `go install` can build it). `--hold` keeps
//! everything running after the table and prints how to reach PostgreSQL, for
//! trying indexes by hand, until a file `stop` appears in its directory.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, TimeZone, Utc};
use chute_embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use common::{cores, cpu_model, scrape_sum, spawn_chute, sql, toml_dsn, APPS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    records: usize,
    days: u32,
    connections: usize,
    batch: usize,
    victoria: bool,
    hold: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        records: 10_000_000,
        days: 3,
        connections: 8,
        batch: 1000,
        victoria: true,
        hold: false,
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
            "--days" => a.days = value("--days")? as u32,
            "--connections" => a.connections = value("--connections")?,
            "--batch" => a.batch = value("--batch")?,
            "--no-victoria" => a.victoria = false,
            "--hold" => a.hold = true,
            "--query" | "--bench" => {} // passed by scripts/dev and `cargo bench`
            other => bail!("unknown argument {other}"),
        }
    }
    if a.records < 60 || a.days == 0 {
        bail!("--records must be at least 60 and --days at least 1");
    }
    Ok(a)
}

/// A token found in exactly [`NEEDLES`] records, evenly spread over the time span.
const NEEDLE: &str = "zq7needle";
const NEEDLES: usize = 30;

/// Message words; "error" and "timeout" are added on purpose (see [`Fleet::chunk`]),
/// so no word here contains either.
const WORDS: [&str; 30] = [
    "request",
    "completed",
    "user",
    "session",
    "connection",
    "upstream",
    "accepted",
    "from",
    "port",
    "retry",
    "GET",
    "POST",
    "/api/v2/orders",
    "status=200",
    "status=404",
    "bytes",
    "latency",
    "cache",
    "miss",
    "hit",
    "token",
    "refreshed",
    "worker",
    "served",
    "closed",
    "client",
    "handshake",
    "queued",
    "in",
    "ms",
];

/// Apps each host runs (of the 30): a fleet of 200 hosts running 6 each gives 1200
/// app instances, 6000 streams with the levels.
const APPS_PER_HOST: usize = 6;

/// The generated fleet: record `i` of `n` is at `start + span * i / n`, so the
/// records arrive in time order, as a live fleet sends them.
struct Fleet {
    n: usize,
    start_us: i64,
    span_us: i64,
}

/// How a chunk of records is written: for chute's `/api/v1/logs`, or for
/// VictoriaLogs' `/insert/jsonline` (its stream fields and level names spelled out).
#[derive(Clone, Copy)]
enum Flavour {
    Chute,
    Victoria,
}

impl Fleet {
    fn ts_us(&self, i: usize) -> i64 {
        self.start_us + (self.span_us as i128 * i as i128 / self.n as i128) as i64
    }

    fn end(&self) -> DateTime<Utc> {
        from_us(self.start_us + self.span_us)
    }

    /// Whether record `i` holds [`NEEDLE`]: one in the middle of each thirtieth.
    fn is_needle(&self, i: usize) -> bool {
        let k = i * NEEDLES / self.n;
        i == k * self.n / NEEDLES + self.n / (2 * NEEDLES)
    }

    /// Records `[c * batch, (c + 1) * batch)` as NDJSON; the same records for a
    /// given `c` every time (and for either flavour).
    fn chunk(&self, c: usize, batch: usize, flavour: Flavour) -> Option<Vec<u8>> {
        let first = c * batch;
        if first >= self.n {
            return None;
        }
        let mut rng = StdRng::seed_from_u64(0x5157_0001 ^ (c as u64).wrapping_mul(0x9e37_79b9));
        let mut body = Vec::with_capacity(batch * 420);
        let mut message = String::with_capacity(320);
        for i in first..(first + batch).min(self.n) {
            let host = rng.gen_range(0..200usize);
            let app = (host * 7 + rng.gen_range(0..APPS_PER_HOST) * 5) % APPS.len();
            let severity: u8 = match rng.gen_range(0..100) {
                0..=2 => 3,
                3..=9 => 4,
                10..=19 => 5,
                20..=89 => 6,
                _ => 7,
            };
            message.clear();
            if self.is_needle(i) {
                message.push_str(NEEDLE);
                message.push(' ');
            }
            if rng.gen_bool(if severity == 3 { 0.8 } else { 0.01 }) {
                message.push_str("error ");
            }
            if rng.gen_bool(0.02) {
                message.push_str("upstream timeout ");
            }
            let len = rng.gen_range(100..=300);
            while message.len() < len {
                message.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
                message.push(' ');
            }
            message.truncate(len);
            let message = message.trim_end();
            let ts = from_us(self.ts_us(i)).format("%Y-%m-%dT%H:%M:%S%.6fZ");
            let procid = 1000 + host * 30 + app;
            let msgid = if app % 3 == 0 { "\"ID47\"" } else { "null" };
            let facility = [1, 3, 4, 10, 16, 23][app % 6];
            let request_id: u64 = rng.gen();
            let latency_ms = rng.gen_range(1..2000);
            let app = APPS[app];
            // Neither the words nor the names need JSON escaping.
            let _ = match flavour {
                Flavour::Chute => writeln!(
                    body,
                    r#"{{"ts":"{ts}","host":"web-{host}","app":"{app}","procid":{procid},"msgid":{msgid},"severity":{severity},"facility":{facility},"message":"{message}","request_id":"{request_id:016x}","latency_ms":{latency_ms}}}"#
                ),
                Flavour::Victoria => writeln!(
                    body,
                    r#"{{"ts":"{ts}","tenant":"default","host":"web-{host}","app":"{app}","level":"{}","procid":"{procid}","msgid":{msgid},"facility":"{facility}","message":"{message}","request_id":"{request_id:016x}","latency_ms":{latency_ms}}}"#,
                    level_name(severity)
                ),
            };
        }
        Some(body)
    }
}

/// chute's name for a severity (`level` label).
fn level_name(severity: u8) -> &'static str {
    match severity {
        0..=2 => "critical",
        3 => "error",
        4 => "warning",
        5 | 6 => "info",
        _ => "debug",
    }
}

fn from_us(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().expect("in range")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn nanos(t: DateTime<Utc>) -> String {
    (t.timestamp_micros() as i128 * 1000).to_string()
}

/// Posts every chunk of `fleet` to `url`, `connections` at a time; retries 503s and
/// 429s. Returns when the last is acknowledged.
async fn load(
    client: &awc::Client,
    url: &str,
    fleet: &Arc<Fleet>,
    args: &Args,
    flavour: Flavour,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let batch = args.batch;
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, next, fleet, url) =
                (client.clone(), next.clone(), fleet.clone(), url.to_owned());
            actix_web::rt::spawn(async move {
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = fleet.chunk(c, batch, flavour) else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    let body = bytes::Bytes::from(body);
                    loop {
                        let mut res = client
                            .post(&url)
                            .content_type("application/x-ndjson")
                            .send_body(body.clone())
                            .await
                            .map_err(|e| anyhow::anyhow!("request to {url} failed: {e}"))?;
                        let text = res.body().limit(1 << 20).await.unwrap_or_default();
                        match res.status().as_u16() {
                            200 | 204 => break,
                            429 | 503 => {
                                actix_web::rt::time::sleep(Duration::from_millis(200)).await
                            }
                            s => bail!("{url}: status {s}: {}", String::from_utf8_lossy(&text)),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One HTTP request of a query: a path and its parameters.
#[derive(Clone)]
struct Get {
    path: String,
    params: Vec<(&'static str, String)>,
}

impl Get {
    fn new(path: &str, params: &[(&'static str, String)]) -> Get {
        Get {
            path: path.to_owned(),
            params: params.to_vec(),
        }
    }

    fn url(&self, addr: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            q.append_pair(k, v);
        }
        format!("http://{addr}{}?{}", self.path, q.finish())
    }
}

/// One row of the table: the same question put to chute, to PostgreSQL as the SQL
/// chute sends, and to VictoriaLogs.
struct Query {
    what: String,
    target_ms: f64,
    chute: Vec<Get>,
    sql: Vec<String>,
    victoria: Vec<Get>,
}

/// Runs `requests` one after the other; returns the time taken and a short summary
/// of the last answer (how many lines, series or values it held).
async fn timed_gets(
    client: &awc::Client,
    addr: &str,
    requests: &[Get],
) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let mut summary = String::new();
    for g in requests {
        let url = g.url(addr);
        let mut res = client
            .get(&url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        let body = res.body().limit(256 << 20).await?;
        if !res.status().is_success() {
            bail!(
                "{url}: {}: {}",
                res.status(),
                String::from_utf8_lossy(&body)
            );
        }
        summary = summarise(&body);
    }
    Ok((started.elapsed().as_secs_f64() * 1000.0, summary))
}

/// What an answer holds: Loki's `data.result` (lines of streams, or series), a
/// `data` list (labels), a VictoriaLogs JSON-lines answer (lines), or its
/// `values`/`data.result` (field values, stats).
fn summarise(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        return format!("{lines} lines");
    };
    if let Some(result) = v.pointer("/data/result").and_then(|r| r.as_array()) {
        let lines: usize = result
            .iter()
            .filter_map(|s| s.get("values").and_then(|v| v.as_array()))
            .map(Vec::len)
            .sum();
        let single = result
            .first()
            .and_then(|s| s.get("value"))
            .and_then(|v| v.get(1))
            .and_then(|v| v.as_str());
        return match (
            v.pointer("/data/resultType").and_then(|t| t.as_str()),
            single,
        ) {
            (Some("streams"), _) => format!("{lines} lines"),
            (_, Some(value)) if result.len() == 1 => format!("value {value}"),
            _ => format!("{} series, {lines} points", result.len()),
        };
    }
    if let Some(list) = v.get("data").and_then(|d| d.as_array()) {
        return format!("{} values", list.len());
    }
    if let Some(list) = v.get("values").and_then(|d| d.as_array()) {
        return format!("{} values", list.len());
    }
    // VictoriaLogs answers a query of one line as a single JSON object.
    format!(
        "1 lines: {}",
        text.trim().chars().take(80).collect::<String>()
    )
}

async fn timed_sql(pg: &tokio_postgres::Client, statements: &[String]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for s in statements {
        pg.query(s.as_str(), &[]).await.with_context(|| s.clone())?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// One run, then the median of five more; with the first run's time (what a
/// cache cannot help).
async fn median<F, Fut>(mut run: F) -> anyhow::Result<(f64, f64, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(f64, String)>>,
{
    let (first, summary) = run().await?;
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(run().await?.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[2], first, summary))
}

/// The statement chute sends first for a `|=` filter over `(lo, hi)`: which
/// blocks' blooms may hold `needle` (parameters as literals).
fn blocks_sql(needle: &str, lo: DateTime<Utc>, hi: DateTime<Utc>) -> String {
    let probes: Vec<String> = chute::batch::bloom::probes(needle.as_bytes())
        .iter()
        .map(i64::to_string)
        .collect();
    chute::query::blooms::BLOCKS
        .replace("$1", &format!("'{}'", rfc3339(lo)))
        .replace("$2", &format!("'{}'", rfc3339(hi)))
        .replace("$3", &format!("'{{{}}}'", probes.join(",")))
}

/// The condition chute adds for the blocks that may hold `needle` over `(lo,
/// hi)`: their time spans, as it computes them.
async fn narrowed(
    pgc: &tokio_postgres::Client,
    needle: &str,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> anyhow::Result<String> {
    let row = pgc.query_one(&blocks_sql(needle, lo, hi), &[]).await?;
    let first: Vec<DateTime<Utc>> = row.get::<_, Option<_>>(3).unwrap_or_default();
    let last: Vec<DateTime<Utc>> = row.get::<_, Option<_>>(4).unwrap_or_default();
    let spans = chute::query::blooms::spans(first.into_iter().zip(last).collect());
    let any: Vec<String> = spans
        .iter()
        .map(|(a, b)| format!("ts >= '{}' AND ts <= '{}'", rfc3339(*a), rfc3339(*b)))
        .collect();
    Ok(format!(" AND ({})", any.join(" OR ")))
}

fn queries(fleet: &Fleet, needle_spans: &str) -> Vec<Query> {
    let end = fleet.end() + chrono::Duration::seconds(1);
    let m15 = end - chrono::Duration::minutes(15);
    let day = end - chrono::Duration::hours(24);
    // Grafana sends a metric query's range aligned to its step.
    let day_5m = from_us(day.timestamp_micros() / 300_000_000 * 300_000_000);
    let days3 = end - chrono::Duration::days(3);
    let lit = |t: DateTime<Utc>| format!("'{}'", rfc3339(t));
    let loki = |q: &str, start: DateTime<Utc>, limit: usize| {
        Get::new(
            "/loki/api/v1/query_range",
            &[
                ("query", q.to_owned()),
                ("start", nanos(start)),
                ("end", nanos(end)),
                ("limit", limit.to_string()),
                ("direction", "backward".into()),
            ],
        )
    };
    let vl = |q: &str, start: DateTime<Utc>, limit: usize| {
        Get::new(
            "/select/logsql/query",
            &[
                ("query", q.to_owned()),
                ("start", rfc3339(start)),
                ("end", rfc3339(end)),
                ("limit", limit.to_string()),
            ],
        )
    };
    let lines = |cond: &str, start: DateTime<Utc>, limit: usize| {
        format!(
            "SELECT ts, tenant, host, app, severity, facility, procid, msgid, message, fields \
             FROM chute.logs WHERE ts >= {} AND ts < {} AND tenant = 'default'{cond} \
             ORDER BY ts DESC LIMIT {limit}",
            lit(start),
            lit(end)
        )
    };
    let span = |start: DateTime<Utc>| [("start", nanos(start)), ("end", nanos(end))];
    let vl_span = |start: DateTime<Utc>| [("start", rfc3339(start)), ("end", rfc3339(end))];
    // The label browser reads the per-day label index (procid, which it does not
    // keep, from the rows).
    let days = |a: DateTime<Utc>, b: DateTime<Utc>| {
        format!(
            "day >= '{}' AND day <= '{}'",
            a.date_naive(),
            b.date_naive()
        )
    };
    let mut label_sql: Vec<String> = ["host", "app", "severity", "facility", "msgid"]
        .iter()
        .map(|col| {
            format!(
                "SELECT DISTINCT value FROM chute.label_values WHERE tenant = 'default' \
                 AND label = '{col}' AND {} ORDER BY value LIMIT 1",
                days(day, end)
            )
        })
        .collect();
    label_sql.push(format!(
        "SELECT procid FROM chute.logs WHERE ts >= {} AND ts < {} AND tenant = 'default' \
         AND tenant ~ '^(?:.+)$' AND procid IS NOT NULL LIMIT 1",
        lit(day),
        lit(end)
    ));
    label_sql.push(format!(
        "SELECT DISTINCT value FROM chute.label_values WHERE tenant = 'default' \
         AND label = 'app' AND {} ORDER BY value LIMIT 1000",
        days(day, end)
    ));
    vec![
        Query {
            what: "newest 100 of `{app=\"nginx\"}`, last 15 min".into(),
            target_ms: 20.0,
            chute: vec![loki("{app=\"nginx\"}", m15, 100)],
            sql: vec![lines(" AND app = 'nginx'", m15, 100)],
            victoria: vec![vl("{app=\"nginx\"}", m15, 100)],
        },
        Query {
            what: "`{host=\"web-7\"} |= \"timeout\"`, 24 h, limit 100".into(),
            target_ms: 20.0,
            chute: vec![loki("{host=\"web-7\"} |= \"timeout\"", day, 100)],
            sql: vec![
                blocks_sql("timeout", day, end),
                lines(
                    " AND host = 'web-7' AND strpos(message, 'timeout') > 0",
                    day,
                    100,
                ),
            ],
            victoria: vec![vl("{host=\"web-7\"} timeout", day, 100)],
        },
        Query {
            what: format!("`{{tenant=\"default\"}} |= \"{NEEDLE}\"`, 24 h, all hits"),
            target_ms: 100.0,
            chute: vec![loki(
                &format!("{{tenant=\"default\"}} |= \"{NEEDLE}\""),
                day,
                1000,
            )],
            sql: vec![
                blocks_sql(NEEDLE, day, end),
                lines(
                    &format!(" AND strpos(message, '{NEEDLE}') > 0{needle_spans}"),
                    day,
                    1000,
                ),
            ],
            victoria: vec![vl(&format!("{{tenant=\"default\"}} {NEEDLE}"), day, 1000)],
        },
        Query {
            what: "`sum by (level) (count_over_time({tenant=\"default\"}[5m]))`, 24 h, step 5m (start on the step, as Grafana sends it)"
                .into(),
            target_ms: 250.0,
            chute: vec![Get::new(
                "/loki/api/v1/query_range",
                &[
                    (
                        "query",
                        "sum by (level) (count_over_time({tenant=\"default\"}[5m]))".into(),
                    ),
                    ("start", nanos(day_5m)),
                    ("end", nanos(end)),
                    ("step", "300".into()),
                ],
            )],
            sql: vec![format!(
                "SELECT severity, \
                 ((extract(epoch FROM minute) * 1000000)::bigint - {a} + 300000000 - 1) / 300000000 AS b, \
                 sum(lines)::float8, sum(bytes)::float8 \
                 FROM chute.minute_counts WHERE minute > {} AND minute <= {} AND tenant = 'default' \
                 GROUP BY 1, 2",
                lit(day_5m - chrono::Duration::minutes(5)),
                lit(end),
                a = (day_5m - chrono::Duration::minutes(5)).timestamp_micros()
            )],
            victoria: vec![Get::new(
                "/select/logsql/stats_query_range",
                &[
                    (
                        "query",
                        "{tenant=\"default\"} | stats by (level) count() as n".into(),
                    ),
                    ("start", rfc3339(day_5m)),
                    ("end", rfc3339(end)),
                    ("step", "5m".into()),
                ],
            )],
        },
        Query {
            what: "labels, then values of `app`, 24 h".into(),
            target_ms: 20.0,
            chute: vec![
                Get::new("/loki/api/v1/labels", &span(day)),
                Get::new("/loki/api/v1/label/app/values", &span(day)),
            ],
            sql: label_sql,
            victoria: vec![
                Get::new(
                    "/select/logsql/stream_field_names",
                    &[&[("query", "*".to_owned())][..], &vl_span(day)[..]].concat(),
                ),
                Get::new(
                    "/select/logsql/stream_field_values",
                    &[
                        &[("query", "*".to_owned()), ("field", "app".to_owned())][..],
                        &vl_span(day)[..],
                    ]
                    .concat(),
                ),
            ],
        },
        Query {
            what: "`sum(count_over_time({tenant=\"default\"} |= \"error\" [3d]))`, instant".into(),
            target_ms: 1000.0,
            chute: vec![Get::new(
                "/loki/api/v1/query",
                &[
                    (
                        "query",
                        "sum(count_over_time({tenant=\"default\"} |= \"error\" [3d]))".into(),
                    ),
                    ("time", nanos(end)),
                ],
            )],
            sql: vec![
                blocks_sql("error", days3, end),
                format!(
                    "SELECT count(*)::float8, sum(octet_length(message))::float8 \
                     FROM chute.logs WHERE ts > {} AND ts <= {} AND tenant = 'default' \
                     AND strpos(message, 'error') > 0",
                    lit(days3),
                    lit(end)
                ),
            ],
            victoria: vec![Get::new(
                "/select/logsql/stats_query",
                &[
                    (
                        "query",
                        format!(
                            "_time:({}, {}] {{tenant=\"default\"}} error | stats count() as n",
                            rfc3339(days3),
                            rfc3339(end)
                        ),
                    ),
                    ("time", rfc3339(end)),
                ],
            )],
        },
    ]
}

/// VictoriaLogs as a child process, killed when dropped.
struct Victoria {
    child: Child,
    addr: String,
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const VICTORIA_MODULE: &str = "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1";

/// `victoria-logs` on the PATH, in `~/go/bin` or `$GOPATH/bin`; else built with
/// `go install` when Go is there. `None` (and why) when neither works.
fn find_victoria() -> Result<PathBuf, String> {
    let home = std::env::var("HOME").unwrap_or_default();
    let gopath = std::env::var("GOPATH").unwrap_or_else(|_| format!("{home}/go"));
    let in_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("victoria-logs"))
        .find(|p| p.exists());
    let in_go = Path::new(&gopath).join("bin/victoria-logs");
    if let Some(p) = in_path.or_else(|| in_go.exists().then(|| in_go.clone())) {
        return Ok(p);
    }
    if Command::new("go").arg("version").output().is_err() {
        return Err("no victoria-logs binary and no Go to build one".into());
    }
    eprintln!("building VictoriaLogs: go install {VICTORIA_MODULE} (takes minutes)");
    let status = Command::new("go")
        .args(["install", VICTORIA_MODULE])
        .env("GOFLAGS", "-mod=mod")
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() || !in_go.exists() {
        return Err(format!("go install {VICTORIA_MODULE} failed"));
    }
    Ok(in_go)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_victoria(bin: &Path, dir: &Path) -> anyhow::Result<Victoria> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin)
        .arg(format!("-storageDataPath={}", dir.join("vl").display()))
        .arg(format!("-httpListenAddr={addr}"))
        .arg("-retentionPeriod=30d")
        .arg("-loggerLevel=WARN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("victoria-logs.log"))?)
        .spawn()?;
    let v = Victoria { child, addr };
    let client = awc::Client::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("http://{}/health", v.addr)).send().await {
            if res.status().is_success() {
                return Ok(v);
            }
        }
        if Instant::now() > deadline {
            bail!("VictoriaLogs did not start on {}", v.addr);
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many records VictoriaLogs holds, after making it flush what it buffers.
async fn victoria_count(client: &awc::Client, addr: &str) -> anyhow::Result<u64> {
    let _ = client
        .get(format!("http://{addr}/internal/force_flush"))
        .send()
        .await;
    let g = Get::new(
        "/select/logsql/query",
        &[("query", "* | stats count() as n".to_owned())],
    );
    let mut res = client
        .get(g.url(addr))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = res.body().await?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| String::from_utf8_lossy(&body).into_owned())?;
    Ok(v.get("n")
        .and_then(|n| n.as_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = tempfile::Builder::new().prefix("chute-qbench-").tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let victoria = if args.victoria {
        find_victoria()
    } else {
        Err("--no-victoria".into())
    };
    let pg_dir = dir.path().join("pg");
    let pg =
        std::thread::spawn(move || EmbeddedPostgres::start(&pg_dir, EmbeddedOptions::default()))
            .join()
            .map_err(|_| anyhow::anyhow!("start thread panicked"))??;
    let span_us = i64::from(args.days) * 86_400_000_000;
    let now = Utc::now().timestamp_micros();
    let fleet = Arc::new(Fleet {
        n: args.records,
        start_us: now - span_us,
        span_us,
    });
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "records: {} over {} days ending {}, 200 hosts, 30 apps, {} holding {NEEDLE}",
        args.records,
        args.days,
        rfc3339(fleet.end()),
        NEEDLES
    );
    let result =
        actix_web::rt::System::new().block_on(run(&pg, dir.path(), &fleet, &args, victoria));
    pg.shutdown()?;
    result
}

async fn run(
    pg: &EmbeddedPostgres,
    dir: &Path,
    fleet: &Arc<Fleet>,
    args: &Args,
    victoria: Result<PathBuf, String>,
) -> anyhow::Result<()> {
    let db = "bench";
    pg.create_database(db).await?;
    let chute_dir = dir.join("chute");
    std::fs::create_dir_all(&chute_dir)?;
    let config = chute_dir.join("chute.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[syslog]\nlisteners = []\n\
             [storage]\npartition_days_behind = {}\n[[shards]]\nid = 0\ndsn = \"{}\"\npool_size = 4\n",
            chute_dir.join("data").display(),
            args.days + 1,
            toml_dsn(pg, db)
        ),
    )?;
    let (_chute, addr) = spawn_chute(&config, &chute_dir)?;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(300))
        .finish();

    let started = Instant::now();
    load(
        &client,
        &format!("http://{addr}/api/v1/logs"),
        fleet,
        args,
        Flavour::Chute,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    while scrape_sum(&client, &addr, "chute_rows_written_total").await < args.records as f64 {
        if Instant::now() > deadline {
            bail!("chute did not commit every record within an hour");
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let loaded = started.elapsed().as_secs_f64();
    let (pgc, conn) = tokio_postgres::connect(&pg.dsn(db), tokio_postgres::NoTls).await?;
    actix_web::rt::spawn(conn);
    // As chute's query transactions run.
    pgc.batch_execute("SET jit = off").await?;
    let stored: i64 = pgc
        .query_one("SELECT count(*) FROM chute.logs", &[])
        .await?
        .get(0);
    if stored != args.records as i64 {
        bail!("PostgreSQL holds {stored} rows, expected {}", args.records);
    }
    println!(
        "chute load:        {:>9.0} rows/s ({loaded:.1} s until committed)",
        args.records as f64 / loaded
    );
    let t = Instant::now();
    sql(pg, db, "VACUUM (ANALYZE)")?;
    let size: i64 = pgc
        .query_one(
            "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits \
             WHERE inhparent = 'chute.logs'::regclass",
            &[],
        )
        .await?
        .get(0);
    println!(
        "VACUUM ANALYZE:    {:.1} s; chute.logs {:.0} MiB ({:.0} bytes/record)",
        t.elapsed().as_secs_f64(),
        size as f64 / 1048576.0,
        size as f64 / args.records as f64
    );

    let victoria = match victoria {
        Ok(bin) => {
            let v = start_victoria(&bin, dir).await?;
            let started = Instant::now();
            let url = format!(
                "http://{}/insert/jsonline?_stream_fields=tenant,host,app,level&_time_field=ts&_msg_field=message",
                v.addr
            );
            load(&client, &url, fleet, args, Flavour::Victoria).await?;
            let mut held = victoria_count(&client, &v.addr).await?;
            while held < args.records as u64 {
                if started.elapsed() > Duration::from_secs(600) {
                    bail!(
                        "VictoriaLogs holds {held} records, expected {}",
                        args.records
                    );
                }
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                held = victoria_count(&client, &v.addr).await?;
            }
            let loaded = started.elapsed().as_secs_f64();
            println!(
                "VictoriaLogs load: {:>9.0} rows/s ({loaded:.1} s until searchable)",
                args.records as f64 / loaded
            );
            Some(v)
        }
        Err(why) => {
            println!("VictoriaLogs: skipped ({why})");
            None
        }
    };

    println!();
    println!("| query | chute API ms | first run ms | its SQL in PostgreSQL ms | VictoriaLogs ms | target ms | answer (chute / VictoriaLogs) |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let day = fleet.end() + chrono::Duration::seconds(1) - chrono::Duration::hours(24);
    let needle_spans = narrowed(
        &pgc,
        NEEDLE,
        day,
        fleet.end() + chrono::Duration::seconds(1),
    )
    .await?;
    for q in queries(fleet, &needle_spans) {
        let (api, first, summary) = median(|| timed_gets(&client, &addr, &q.chute)).await?;
        let (in_sql, _, _) =
            median(|| async { Ok((timed_sql(&pgc, &q.sql).await?, String::new())) }).await?;
        let (vl, vl_summary) = match &victoria {
            Some(v) => {
                let (ms, _, s) = median(|| timed_gets(&client, &v.addr, &q.victoria)).await?;
                (format!("{ms:.1}"), s)
            }
            None => ("—".to_owned(), "—".to_owned()),
        };
        let missed = if api > q.target_ms { " (missed)" } else { "" };
        println!(
            "| {} | {api:.1}{missed} | {first:.1} | {in_sql:.1} | {vl} | ≤ {} | {summary} / {vl_summary} |",
            q.what.replace('|', "\\|"),
            q.target_ms
        );
    }
    for busy in [false, true] {
        let (p50, p99, max) = tail_latency(&client, &addr, 200, busy).await?;
        println!(
            "| tail: from the 2xx to the line on a tail client, {} (200 records) | p50 {p50:.0}, p99 {p99:.0}, max {max:.0} | — | — | — | p99 ≤ 1000 | |",
            if busy { "while 40,000 other records/s arrive" } else { "idle" }
        );
    }
    if victoria.is_some() {
        println!();
        println!(
            "VictoriaLogs data directory: {:.0} MiB",
            dir_size(&dir.join("vl")) as f64 / 1048576.0
        );
    }

    if args.hold {
        println!();
        println!(
            "holding; PostgreSQL: {} -h {} -p {} -U {} {db}; chute: http://{addr}{}",
            common::psql().display(),
            pg.socket_dir().display(),
            pg.port(),
            pg.user(),
            victoria
                .as_ref()
                .map(|v| format!("; VictoriaLogs: http://{}", v.addr))
                .unwrap_or_default()
        );
        println!("touch {} to end", dir.join("stop").display());
        std::io::stdout().flush()?;
        while !dir.join("stop").exists() {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// From the 2xx of a POST of one record to its line on a tail client: p50, p99
/// and the largest, over `n` records sent one after another; with `busy`, while
/// four connections post a batch of 1000 other records every 100 ms each (40,000
/// records/s, below what the shard commits: above it, a line waits behind the
/// queue's backlog, whatever the tail does).
async fn tail_latency(
    client: &awc::Client,
    addr: &str,
    n: usize,
    busy: bool,
) -> anyhow::Result<(f64, f64, f64)> {
    use futures_util::StreamExt;
    let tag = if busy { "busy" } else { "idle" };
    let query: String =
        form_urlencoded::byte_serialize(format!("{{app=\"tailbench\"}} |= \"{tag}-\"").as_bytes())
            .collect();
    let (_, mut ws) = awc::Client::new()
        .ws(format!(
            "http://{addr}/loki/api/v1/tail?query={query}&limit=1"
        ))
        .max_frame_size(64 << 20)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("tail: {e}"))?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background: Vec<_> = (0..if busy { 4 } else { 0 })
        .map(|c| {
            let (client, stop, url) = (client.clone(), stop.clone(), format!("http://{addr}/api/v1/logs"));
            actix_web::rt::spawn(async move {
                let body: String = (0..1000)
                    .map(|i| format!("{{\"app\":\"background\",\"host\":\"b{c}\",\"message\":\"line {i} of the background load\"}}\n"))
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    let next = Instant::now() + Duration::from_millis(100);
                    let _ = client
                        .post(&url)
                        .content_type("application/x-ndjson")
                        .send_body(body.clone())
                        .await;
                    actix_web::rt::time::sleep_until(next.into()).await;
                }
            })
        })
        .collect();
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let marker = format!("{tag}-{i}-end");
        let body = format!("{{\"app\":\"tailbench\",\"message\":\"{marker}\"}}");
        let mut res = client
            .post(format!("http://{addr}/api/v1/logs"))
            .content_type("application/json")
            .send_body(body)
            .await
            .map_err(|e| anyhow::anyhow!("post: {e}"))?;
        let _ = res.body().await;
        anyhow::ensure!(res.status().is_success(), "post: {}", res.status());
        let acked = Instant::now();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .context("no tail frame within 30 s")?
                .context("the tail closed")??;
            if let awc::ws::Frame::Text(text) = frame {
                if String::from_utf8_lossy(&text).contains(&marker) {
                    took.push(acked.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for b in background {
        let _ = b.await;
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    Ok((at(0.5), at(0.99), took[took.len() - 1]))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
