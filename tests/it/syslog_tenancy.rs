//! Syslog tenants: a mutual-TLS client's certificate names its tenant, and a
//! tenant's rate limits pause a TCP sender (nothing lost) and drop UDP datagrams
//! (every one counted).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chute::config::{ListenerConfig, Protocol, TenantLimits};
use tokio::io::AsyncWriteExt;

use crate::helpers::*;
use crate::syslog::{addr_of, any_port, mutual_tls, send_tls, with_listeners};

fn limited(tenant: &str, records_per_s: u32) -> Vec<TenantLimits> {
    vec![TenantLimits {
        tenant: tenant.into(),
        records_per_s,
        bytes_per_s: 0,
    }]
}

/// Waits until `sql` counts `want`, or fails after 60 s.
async fn wait_count(app: &TestApp, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = app.scalar(sql).await;
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {n}, expected {want}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_tcp_sender_over_its_tenants_rate_is_paused_to_the_rate_and_loses_nothing() {
    const RATE: u32 = 5_000;
    const TOTAL: usize = 70_000;
    let app = spawn_app_with(|c| {
        c.syslog.listeners = Some(vec![ListenerConfig {
            tenant: "acme".into(),
            ..ListenerConfig::plain(Protocol::Tcp, any_port())
        }]);
        c.syslog.group_commit_ms = 5;
        c.limits.tenants = limited("acme", RATE);
    })
    .await;
    let addr = addr_of(&app, Protocol::Tcp);
    let sender = actix_web::rt::spawn(async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let pad = "x".repeat(60);
        for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(500) {
            let lines: String = chunk
                .iter()
                .map(|i| format!("<165>1 - h paced - - - n {i:06} {pad}\n"))
                .collect();
            tcp.write_all(lines.as_bytes()).await.unwrap();
        }
        tcp.shutdown().await.unwrap();
    });
    // The rate read by chute between 2 s and 12 s after the start: past the
    // bucket's first second's worth, before the sender runs out.
    let read = || app.metric("chute_syslog_messages_total", &[]);
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let (from, at) = (read(), Instant::now());
    actix_web::rt::time::sleep(Duration::from_secs(10)).await;
    let rate = (read() - from) / at.elapsed().as_secs_f64();
    eprintln!("read {rate:.0} records/s with a limit of {RATE}");
    assert!(
        (rate - f64::from(RATE)).abs() <= f64::from(RATE) * 0.1,
        "{rate} records/s, expected {RATE} within 10%"
    );
    sender.await.unwrap();
    wait_count(
        &app,
        "SELECT count(*) FROM chute.logs WHERE tenant = 'acme' AND app = 'paced'",
        TOTAL as i64,
    )
    .await;
    assert_eq!(
        app.scalar("SELECT count(DISTINCT message) FROM chute.logs")
            .await,
        TOTAL as i64,
        "every record once"
    );
    assert!(
        app.metric(
            "chute_rate_limited_total",
            &["tenant=\"acme\"", "limit=\"records\"", "action=\"paused\""]
        ) > 0.0
    );
    assert_eq!(
        app.metric(
            "chute_records_rejected_total",
            &["source=\"syslog\"", "reason=\"rate_limited\""]
        ),
        0.0,
        "a stream waits, it does not drop"
    );
    app.stop().await;
}

#[actix_web::test]
async fn udp_datagrams_over_the_tenants_rate_are_dropped_and_every_one_counted() {
    const RATE: u32 = 200;
    const SENT: usize = 2_000;
    let app = spawn_app_with(|c| {
        c.syslog.listeners = Some(vec![ListenerConfig {
            tenant: "noisy".into(),
            ..ListenerConfig::plain(Protocol::Udp, any_port())
        }]);
        c.syslog.group_commit_ms = 5;
        c.limits.tenants = limited("noisy", RATE);
    })
    .await;
    let addr = addr_of(&app, Protocol::Udp);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Every datagram has the same length, so the bytes chute read count them.
    let datagram = |i: usize| format!("<165>1 - h burst - - - n {i:06}");
    let started = Instant::now();
    for i in 0..SENT {
        socket.send_to(datagram(i).as_bytes(), addr).await.unwrap();
        if i % 50 == 49 {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let dropped = || {
        app.metric(
            "chute_records_rejected_total",
            &["source=\"syslog\"", "reason=\"rate_limited\""],
        )
    };
    // Wait until chute has read every datagram it got.
    let mut read = 0.0;
    for _ in 0..100 {
        read = app.metric("chute_syslog_bytes_total", &[]) / datagram(0).len() as f64;
        if read >= SENT as f64 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        read >= SENT as f64 * 0.95,
        "chute read {read} of {SENT} datagrams"
    );
    let kept = read - dropped();
    wait_count(
        &app,
        "SELECT count(*) FROM chute.logs WHERE tenant = 'noisy'",
        kept as i64,
    )
    .await;
    let most = f64::from(RATE) * (1.0 + elapsed) + 5.0;
    eprintln!("kept {kept} of {read} datagrams in {elapsed:.2} s (at most {most})");
    assert!(
        (f64::from(RATE)..=most).contains(&kept),
        "kept {kept}: a second's worth, then the rate"
    );
    assert_eq!(
        app.metric(
            "chute_rate_limited_total",
            &[
                "tenant=\"noisy\"",
                "limit=\"records\"",
                "action=\"dropped\""
            ]
        ),
        dropped()
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_client_certificate_names_the_tenant_and_an_unmapped_or_ambiguous_one_is_refused() {
    let (pki, dir) = (pki(), temp_dir());
    let listener = ListenerConfig {
        client_tenants: BTreeMap::from([
            ("web-1".to_owned(), "web".to_owned()),
            ("db-1.example.net".to_owned(), "db".to_owned()),
        ]),
        ..mutual_tls(&pki, dir.path())
    };
    let app = with_listeners(vec![listener]).await;
    let addr = addr_of(&app, Protocol::Tls);
    let send = |cert: rcgen::CertifiedKey, message: &'static str| {
        let ca = pki.ca.clone();
        async move {
            let line = format!("<165>1 - h certs - - - {message}");
            send_tls(addr, &ca, &cert, &[&line]).await
        }
    };
    // By the subject's common name, and by a DNS name in any case.
    send(pki.client_named("web-1", &[]), "from web")
        .await
        .unwrap();
    send(pki.client_named("db", &["DB-1.example.NET"]), "from db")
        .await
        .unwrap();
    // Refused: no mapped name; names of two tenants.
    let _ = send(
        pki.client_named("nobody", &["nobody.example.net"]),
        "lost 1",
    )
    .await;
    let _ = send(pki.client_named("web-1", &["db-1.example.net"]), "lost 2").await;
    wait_count(&app, "SELECT count(*) FROM chute.logs", 2).await;
    let rows = app
        .db
        .query(
            "SELECT tenant, message FROM chute.logs ORDER BY tenant",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        [
            ("db".to_owned(), "from db".to_owned()),
            ("web".to_owned(), "from web".to_owned())
        ]
    );
    for reason in ["unmapped_client", "ambiguous_client"] {
        assert_eq!(
            app.metric(
                "chute_syslog_connections_refused_total",
                &[&format!("reason=\"{reason}\"")]
            ),
            1.0,
            "{reason}"
        );
    }
    // What was refused never arrives, even later.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.scalar("SELECT count(*) FROM chute.logs").await, 2);
    app.stop().await;
}
