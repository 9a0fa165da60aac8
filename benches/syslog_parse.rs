//! Syslog parsing speed on one core: messages per second for typical RFC 5424
//! and RFC 3164 messages, and for octet-counted and newline framing.
//!
//! `cargo bench --bench syslog_parse` (criterion; the `thrpt` line is
//! messages/s). Each iteration parses a batch of 1000 different messages,
//! shaped like a busy fleet's: 200 hosts, a dozen apps, 80-200 byte texts.

use chrono::{TimeZone, Utc};
use chute::sources::syslog::framing::Framer;
use chute::sources::syslog::{parse, Format, Origin, Timezone, DEFAULT_MAX_MESSAGE_BYTES};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 1000;

const APPS: [(&str, &str); 6] = [
    ("sshd", "Accepted publickey for deploy from 10.20.30.40 port 52344 ssh2: RSA SHA256:Zx8f3kq0v7yTq2mW9bVx"),
    ("nginx", "10.1.2.3 - - \"GET /api/v1/items?page=2&sort=desc HTTP/1.1\" 200 5123 \"-\" \"curl/8.5.0\""),
    ("CRON", "(root) CMD (/usr/local/bin/rotate-logs --keep 14 >/dev/null 2>&1)"),
    ("postfix/smtpd", "connect from mail-wr1-f54.google.com[209.85.221.54]"),
    ("kernel", "[12345.678901] EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro"),
    ("app-server", "request finished in 12.3 ms: user=4711 path=/checkout status=ok"),
];

fn rfc5424_messages(with_sd: bool) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let (app, text) = APPS[i % APPS.len()];
            let sd = if with_sd {
                format!("[meta sequenceId=\"{i}\"][origin ip=\"10.0.{}.{}\"]", i % 200, i % 250)
            } else {
                "-".to_owned()
            };
            format!(
                "<{}>1 2026-11-26T10:{:02}:{:02}.{:06}+01:00 web-{}.example.com {app} {} ID{} {sd} {text}",
                16 * 8 + i % 8,
                i % 60,
                (i * 7) % 60,
                i * 997 % 1_000_000,
                i % 200,
                1000 + i,
                i % 50,
            )
            .into_bytes()
        })
        .collect()
}

fn rfc3164_messages() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let (app, text) = APPS[i % APPS.len()];
            format!(
                "<{}>Nov {:2} 10:{:02}:{:02} web-{} {app}[{}]: {text}",
                3 * 8 + i % 8,
                1 + i % 28,
                i % 60,
                (i * 7) % 60,
                i % 200,
                1000 + i,
            )
            .into_bytes()
        })
        .collect()
}

fn bench_parse(c: &mut Criterion) {
    let received_at = Utc
        .with_ymd_and_hms(2026, 11, 26, 9, 30, 0)
        .single()
        .unwrap_or_default();
    let utc = Timezone::Utc;
    let berlin = Timezone::Named(chrono_tz::Europe::Berlin);
    let origin = |timezone| Origin {
        received_at,
        tenant: "default",
        format: Format::Auto,
        timezone,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        peer_host: Some("10.0.0.1"),
    };
    let mut g = c.benchmark_group("syslog_parse");
    g.throughput(Throughput::Elements(BATCH as u64));
    let cases = [
        ("rfc5424_with_sd", rfc5424_messages(true), origin(&utc)),
        ("rfc5424_without_sd", rfc5424_messages(false), origin(&utc)),
        ("rfc3164_utc", rfc3164_messages(), origin(&utc)),
        ("rfc3164_europe_berlin", rfc3164_messages(), origin(&berlin)),
    ];
    for (name, msgs, origin) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                for m in msgs {
                    black_box(parse(black_box(m), origin));
                }
            })
        });
    }
    g.finish();
}

fn bench_framing(c: &mut Criterion) {
    let msgs = rfc5424_messages(true);
    let mut octets = Vec::new();
    let mut lines = Vec::new();
    for m in &msgs {
        octets.extend_from_slice(format!("{} ", m.len()).as_bytes());
        octets.extend_from_slice(m);
        lines.extend_from_slice(m);
        lines.push(b'\n');
    }
    let mut g = c.benchmark_group("syslog_framing");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, stream) in [("octet_counting", &octets), ("newline", &lines)] {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(BATCH);
            b.iter(|| {
                let mut f = Framer::new(DEFAULT_MAX_MESSAGE_BYTES);
                out.clear();
                // 16 KiB reads, as a listener would do them.
                for chunk in stream.chunks(16 * 1024) {
                    let _ = f.push(chunk, &mut out);
                }
                let _ = f.finish(&mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_framing);
criterion_main!(benches);
